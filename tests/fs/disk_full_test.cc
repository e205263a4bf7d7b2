// A full disk under a mounted archive: the writer gets ENOSPC, the last committed version stays
// intact and readable, and once space is freed the same mount takes new versions again.
//
// The archive lives on a 256 MiB tmpfs (root only), beside a 64 MiB ballast file that the test
// deletes to free space.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>

#include "tests/fs/mount_fixture.h"

#include "store/archive.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  return bytes;
}

class DiskFullTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (geteuid() != 0) GTEST_FAIL() << "mounting a tmpfs needs root";
    small_ = dir_ / "small-disk";
    stdfs::create_directory(small_);
    ASSERT_EQ(mount("medvfs-test", small_.c_str(), "tmpfs", 0, "size=256m,mode=0700"), 0)
        << std::strerror(errno);
    tmpfs_mounted_ = true;
    ASSERT_EQ(fs_test::WriteFile(small_ / "ballast", RandomBytes(64 << 20, 1)), 0);
    // The fixture's archive is on the big disk: make the one under test on the small one.
    archive_ = small_ / "archive";
    store::ArchiveOptions options;
    options.kdf.n = uint64_t{1} << 10;
    auto created =
        store::Archive::Create(archive_, store::KeySource::Passphrase(kPassphrase), options);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
  }

  void TearDown() override {
    MountTest::TearDown();  // the FUSE mount first: its daemon has files open on the tmpfs
    if (tmpfs_mounted_ && umount2(small_.c_str(), 0) != 0) umount2(small_.c_str(), MNT_DETACH);
  }

  // Writes `size` incompressible bytes to NAME in 1 MiB writes; returns the errno of the first
  // failing write or of close (0 if all went through).
  int WriteUntilFull(const std::string& name, size_t size, uint32_t seed) {
    const int fd = open(P(name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return errno;
    int err = 0;
    for (size_t done = 0; done < size && err == 0; done += 1 << 20) {
      const std::string block = RandomBytes(1 << 20, seed + static_cast<uint32_t>(done >> 20));
      if (write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
        err = errno;
      }
    }
    if (close(fd) != 0 && err == 0) err = errno;
    return err;
  }

  // Fills the small disk with ballast (fallocate'd, so it costs no writing) until about
  // `free_bytes` are left.
  void LeaveFree(uint64_t free_bytes) {
    struct statvfs fs {};
    ASSERT_EQ(statvfs(small_.c_str(), &fs), 0);
    const uint64_t now = uint64_t{fs.f_bavail} * fs.f_frsize;
    if (now <= free_bytes) return;
    const stdfs::path file = small_ / ("fill" + std::to_string(++fills_));
    const int fd = open(file.c_str(), O_WRONLY | O_CREAT, 0600);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    EXPECT_EQ(posix_fallocate(fd, 0, static_cast<off_t>(now - free_bytes)), 0);
    close(fd);
  }
  void RemoveFills() {
    for (int i = 1; i <= fills_; ++i) unlink((small_ / ("fill" + std::to_string(i))).c_str());
  }

  stdfs::path small_;
  bool tmpfs_mounted_ = false;
  int fills_ = 0;
};

TEST_F(DiskFullTest, WriterGetsEnospcAndTheArchiveKeepsWorking) {
  MountOk();
  const std::string kept = RandomBytes(300 << 10, 7);
  ASSERT_EQ(WriteFile(P("kept.dat"), kept), 0);

  // Far more than fits: the write or the close that commits must fail with ENOSPC.
  EXPECT_EQ(ErrnoName(WriteUntilFull("fill.bin", size_t{400} << 20, 100)), "ENOSPC");

  // The committed version is intact, through the live file and through @version; the mount
  // answers; small changes (a rename, an unlink) still go through on a full disk.
  EXPECT_TRUE(ReadFile(P("kept.dat")) == kept);
  EXPECT_TRUE(ReadFile(P("@version/kept.dat/v1")) == kept);
  EXPECT_EQ(ErrnoName(ErrnoOf(rename(P("kept.dat").c_str(), P("kept2.dat").c_str()))), "ok");
  EXPECT_EQ(ErrnoName(ErrnoOf(unlink(P("fill.bin").c_str()))), "ok");
  // Another large save is refused the same way, without damage.
  EXPECT_EQ(ErrnoName(WriteUntilFull("second.bin", size_t{8} << 20, 200)), "ENOSPC");
  EXPECT_TRUE(ReadFile(P("kept2.dat")) == kept);

  // Free space beside the archive: the same mount takes new versions again.
  ASSERT_EQ(unlink((small_ / "ballast").c_str()), 0);
  const std::string after = RandomBytes(2 << 20, 9);
  EXPECT_EQ(ErrnoName(WriteFile(P("after.dat"), after)), "ok");
  EXPECT_EQ(ErrnoName(WriteFile(P("kept2.dat"), after)), "ok");
  EXPECT_TRUE(ReadFile(P("after.dat")) == after);
  EXPECT_TRUE(ReadFile(P("@version/kept2.dat/v2")) == after);
  EXPECT_TRUE(ReadFile(P("@version/kept2.dat/v1")) == kept);

  UmountOk();
  const ProcResult verify = RunProgram({MEDVFS_BIN, "verify", archive_.string()},
                                       {{"MEDVFS_PASSPHRASE", kPassphrase}}, 120);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  // The chunks of the refused saves went with their files' last close.
  EXPECT_FALSE(Contains(verify.out + verify.err, "interrupted write")) << verify.out;
}

// Issue 16, item 6. The reserve (96 MiB) has three tiers: data writes need all of it, other
// changes (mkdir) half, deletions, renames and audit entries a quarter. Below half a user can
// still make room (rm, mv) and read with every read audited; below a quarter a read that
// cannot be audited is refused, by default. No saved version is damaged.
TEST_F(DiskFullTest, BelowTheReserveDeletesAndRenamesWorkAndUnauditedReadsAreRefused) {
  MountOk();
  const std::string kept = RandomBytes(300 << 10, 7);
  ASSERT_EQ(WriteFile(P("kept.dat"), kept), 0);
  ASSERT_EQ(WriteFile(P("victim.dat"), "delete me"), 0);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);

  LeaveFree(40 << 20);  // between a quarter and half of the reserve (less the memory tables)
  EXPECT_EQ(ErrnoName(ErrnoOf(mkdir(P("d2").c_str(), 0755))), "ENOSPC");
  EXPECT_EQ(ErrnoName(WriteFile(P("new.dat"), RandomBytes(1 << 20, 8))), "ENOSPC");
  EXPECT_EQ(ErrnoName(ErrnoOf(rename(P("kept.dat").c_str(), P("d/kept.dat").c_str()))), "ok");
  EXPECT_EQ(ErrnoName(ErrnoOf(unlink(P("victim.dat").c_str()))), "ok");
  EXPECT_TRUE(ReadFile(P("d/kept.dat")) == kept);

  LeaveFree(12 << 20);  // below a quarter: not even an audit entry fits
  const int fd = open(P("d/kept.dat").c_str(), O_RDONLY);
  EXPECT_EQ(fd < 0 ? ErrnoName(errno) : std::string("opened"), "ENOSPC");
  if (fd >= 0) close(fd);
  const int old = open(P("d/@version/kept.dat/v1").c_str(), O_RDONLY);
  EXPECT_EQ(old < 0 ? ErrnoName(errno) : std::string("opened"), "ENOSPC");
  if (old >= 0) close(old);

  RemoveFills();
  EXPECT_TRUE(ReadFile(P("d/kept.dat")) == kept);
  EXPECT_EQ(ErrnoName(ErrnoOf(mkdir(P("d2").c_str(), 0755))), "ok");
  UmountOk();
  const ProcResult verify = RunProgram({MEDVFS_BIN, "verify", archive_.string()},
                                       {{"MEDVFS_PASSPHRASE", kPassphrase}}, 120);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST_F(DiskFullTest, AuditFailureAllowLetsUnauditedReadsThrough) {
  MountOk("audit_failure=allow");
  const std::string kept = RandomBytes(300 << 10, 7);
  ASSERT_EQ(WriteFile(P("kept.dat"), kept), 0);
  LeaveFree(12 << 20);
  EXPECT_TRUE(ReadFile(P("kept.dat")) == kept);
  RemoveFills();
  UmountOk();
}

}  // namespace
}  // namespace medvfs::fs_test
