// Tampering seen through a real mount: a file whose stored chunk was altered reads as EIO,
// never as data; the other files read fine and the mount keeps serving.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <string>
#include <vector>

#include "tests/fs/audit_reader.h"
#include "tests/fs/mount_fixture.h"
#include "tests/store/pack_files.h"

namespace medvfs::fs_test {
namespace {

std::string RandomContent(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// Reads the whole file with read(2); returns 0 or the errno of the first failure.
int ReadAll(const std::filesystem::path& path, std::string* out) {
  out->clear();
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return errno;
  char buffer[65536];
  int err = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      err = errno;
      break;
    }
    if (n == 0) break;
    out->append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return err;
}

class TamperTest : public MountTest {};

TEST_F(TamperTest, DamagedChunkReadsAsEioAndTheMountKeepsServing) {
  const std::string big = RandomContent(400000, 7);  // several chunks, in a pack file
  const std::string small = "a short report";        // one chunk of a few dozen stored bytes
  MountOk();
  ASSERT_EQ(WriteFile(P("scan.dcm"), big), 0);
  ASSERT_EQ(WriteFile(P("report.txt"), small), 0);
  UmountOk();

  {
    // Flip one bit in every chunk of scan.dcm (the large ones), in the pack files.
    size_t damaged = 0;
    for (const auto& entry : store::test_util::PackEntriesOnDisk(archive_)) {
      if (entry.info.length <= 1000) continue;
      store::test_util::FlipBitInPackEntry(entry);
      ++damaged;
    }
    ASSERT_GE(damaged, 2u);
  }

  MountOk();
  std::string read;
  EXPECT_EQ(ReadAll(P("scan.dcm"), &read), EIO);
  EXPECT_EQ(read.find(big.substr(0, 4096)), std::string::npos) << "damaged data was returned";
  EXPECT_EQ(ReadAll(P("report.txt"), &read), 0);
  EXPECT_EQ(read, small);
  // Again, after the failure: the daemon is still there and still answers.
  EXPECT_EQ(ReadAll(P("scan.dcm"), &read), EIO);
  EXPECT_EQ(ReadFile(P("report.txt")), small);
  const std::vector<std::string> names = ListDir(mnt_);
  EXPECT_NE(std::find(names.begin(), names.end(), "scan.dcm"), names.end());
  ASSERT_EQ(WriteFile(P("new.txt"), "still writable"), 0);
  EXPECT_EQ(ReadFile(P("new.txt")), "still writable");
  UmountOk();
  // Each open that met the damage is in the audit log (once, however often it read), with
  // the file and EIO; the intact file's reads are not.
  const std::vector<store::AuditEntry> entries = ReadAudit(archive_);
  size_t damage = 0;
  for (const store::AuditEntry& entry : entries) {
    if (entry.op != store::AuditOp::kDamageFound) continue;
    ++damage;
    EXPECT_EQ(entry.path, "/scan.dcm");
    EXPECT_EQ(entry.result, EIO);
  }
  EXPECT_EQ(damage, 2u) << "one per open of the damaged file";
}

}  // namespace
}  // namespace medvfs::fs_test
