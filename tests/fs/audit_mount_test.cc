// What a mount records in the audit log on its own (mount, unmount, opens, view reads),
// read-only mounts, and the rollback check of `medvfs mount`.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fs/audit_reader.h"
#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;
using store::AuditOp;

class AuditMountTest : public MountTest {
 protected:
  // Copies the unmounted archive, writes b.txt through a mount (a newer state the host sees),
  // then puts the older copy back in its place.
  void PutBackAnOlderCopy() {
    const stdfs::path old_copy = dir_ / "old-copy";
    stdfs::copy(archive_, old_copy, stdfs::copy_options::recursive);
    ASSERT_NO_FATAL_FAILURE(MountOk());
    ASSERT_EQ(WriteFile(P("b.txt"), "two"), 0);
    ASSERT_NO_FATAL_FAILURE(UmountOk());
    stdfs::remove_all(archive_);
    stdfs::rename(old_copy, archive_);
  }
};

TEST_F(AuditMountTest, OpensAndViewReadsAreRecordedOncePerOpen) {
  ASSERT_NO_FATAL_FAILURE(MountOk());
  ASSERT_EQ(mkdir(P("ct").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(P("ct/scan.txt"), "one"), 0);
  ASSERT_EQ(WriteFile(P("ct/scan.txt"), "two"), 0);
  // Many reads through one open: one entry.
  const int fd = open(P("ct/scan.txt").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char c;
  for (off_t off = 0; off < 3; ++off) ASSERT_EQ(pread(fd, &c, 1, off), 1);
  close(fd);
  EXPECT_EQ(ReadFile(P("ct/@version/scan.txt/v1")), "one");
  EXPECT_FALSE(ReadFile(P("ct/.meta/scan.txt/sha256")).empty());
  EXPECT_FALSE(ReadFile(P("ct/@version/scan.txt/.meta/versions.tsv")).empty());
  EXPECT_EQ(ListDir(P("ct")), (std::vector<std::string>{"scan.txt"}));
  ASSERT_NO_FATAL_FAILURE(UmountOk());

  const std::vector<store::AuditEntry> audit = ReadAudit(archive_);
  const std::string log = DescribeAudit(audit);
  const auto mount = FindAudit(audit, AuditMatch().Op(AuditOp::kMount));
  ASSERT_TRUE(mount) << log;
  EXPECT_EQ(mount->detail, "rw,commit=0.1") << log;
  EXPECT_TRUE(FindAudit(audit, AuditMatch().Op(AuditOp::kUnmount))) << log;
  int reads = 0;
  for (const store::AuditEntry& entry : audit) {
    if (entry.op == AuditOp::kOpenRead && entry.path == "/ct/scan.txt") {
      ++reads;
      EXPECT_EQ(entry.version, 2u) << log;
      EXPECT_EQ(entry.uid, getuid());
      EXPECT_EQ(entry.pid, static_cast<uint32_t>(getpid()));
    }
  }
  EXPECT_EQ(reads, 1) << log;
  EXPECT_TRUE(FindAudit(audit, AuditMatch().Op(AuditOp::kOpenWrite).Path("/ct/scan.txt").Result(0)))
      << log;
  const auto version =
      FindAudit(audit, AuditMatch().Op(AuditOp::kReadVersion).Path("/ct/scan.txt"));
  ASSERT_TRUE(version) << log;
  EXPECT_EQ(version->version, 1u);
  EXPECT_EQ(version->detail, "@version");
  const auto sha = FindAudit(audit, AuditMatch().Op(AuditOp::kReadMeta).Path("/ct/scan.txt"));
  ASSERT_TRUE(sha) << log;
  EXPECT_EQ(sha->detail, "sha256");
  bool tsv = false;
  for (const store::AuditEntry& entry : audit) {
    tsv |= entry.op == AuditOp::kReadMeta && entry.detail == "versions.tsv" &&
           entry.path == "/ct/scan.txt";
  }
  EXPECT_TRUE(tsv) << log;
  EXPECT_TRUE(FindAudit(audit, AuditMatch().Op(AuditOp::kListDir).Path("/ct"))) << log;
}

TEST_F(AuditMountTest, ReadOnlyMountRefusesEveryChangeAndStillRecordsReads) {
  ASSERT_NO_FATAL_FAILURE(MountOk());
  ASSERT_EQ(WriteFile(P("a.txt"), "kept"), 0);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(UmountOk());

  ASSERT_NO_FATAL_FAILURE(MountOk("ro"));
  EXPECT_EQ(ErrnoName(WriteFile(P("a.txt"), "changed")), "EROFS");
  EXPECT_EQ(ErrnoName(WriteFile(P("new.txt"), "x")), "EROFS");
  EXPECT_EQ(ErrnoName(ErrnoOf(mkdir(P("e").c_str(), 0755))), "EROFS");
  EXPECT_EQ(ErrnoName(ErrnoOf(unlink(P("a.txt").c_str()))), "EROFS");
  EXPECT_EQ(ErrnoName(ErrnoOf(rmdir(P("d").c_str()))), "EROFS");
  EXPECT_EQ(ErrnoName(ErrnoOf(rename(P("a.txt").c_str(), P("b.txt").c_str()))), "EROFS");
  EXPECT_EQ(ErrnoName(ErrnoOf(chmod(P("a.txt").c_str(), 0600))), "EROFS");
  EXPECT_EQ(ErrnoName(ErrnoOf(truncate(P("a.txt").c_str(), 0))), "EROFS");
  EXPECT_EQ(ErrnoName(ErrnoOf(symlink("a.txt", P("l").c_str()))), "EROFS");
  EXPECT_EQ(ErrnoName(ErrnoOf(setxattr(P("a.txt").c_str(), "user.x", "1", 1, 0))), "EROFS");
  EXPECT_EQ(
      ErrnoName(ErrnoOf(setxattr(P("@version/a.txt").c_str(), "user.medvfs.restore", "1", 1, 0))),
      "EROFS");
  EXPECT_EQ(ErrnoName(WriteFile(P(".meta/a.txt/note"), "n")), "EROFS");
  EXPECT_EQ(ReadFile(P("a.txt")), "kept");
  ASSERT_NO_FATAL_FAILURE(UmountOk());

  const std::vector<store::AuditEntry> audit = ReadAudit(archive_);
  const std::string log = DescribeAudit(audit);
  // The read happened during the read-only mount, after its kMount entry.
  uint64_t ro_mount_seq = 0;
  for (const store::AuditEntry& entry : audit) {
    if (entry.op == AuditOp::kMount && entry.detail == "ro") ro_mount_seq = entry.seq;
  }
  ASSERT_NE(ro_mount_seq, 0u) << log;
  bool read_recorded = false;
  for (const store::AuditEntry& entry : audit) {
    read_recorded |= entry.seq > ro_mount_seq && entry.op == AuditOp::kOpenRead &&
                     entry.path == "/a.txt" && entry.result == 0;
    // Nothing changed under the read-only mount.
    if (entry.seq > ro_mount_seq) {
      EXPECT_NE(entry.op, AuditOp::kCommit) << log;
      EXPECT_NE(entry.op, AuditOp::kOpenWrite) << log;
    }
  }
  EXPECT_TRUE(read_recorded) << log;
}

TEST_F(AuditMountTest, AnArchivePutBackOverANewerStateIsRefusedUnlessAccepted) {
  ASSERT_NO_FATAL_FAILURE(MountOk());
  ASSERT_EQ(WriteFile(P("a.txt"), "one"), 0);
  ASSERT_NO_FATAL_FAILURE(UmountOk());
  ASSERT_NO_FATAL_FAILURE(PutBackAnOlderCopy());

  const ProcResult refused = Mount();
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_FALSE(IsMedvfsMount(mnt_));
  EXPECT_NE(refused.err.find("older than the last state"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--accept-rollback"), std::string::npos) << refused.err;
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;

  const ProcResult accepted =
      RunProgram({MEDVFS_BIN, "mount", "--accept-rollback", archive_.string(), mnt_.string()},
                 {{"MEDVFS_PASSPHRASE", kPassphrase}, {"MEDVFS_STATE_DIR", StateDir()}});
  ASSERT_EQ(accepted.exit_code, 0) << accepted.err;
  daemon_pid_ = static_cast<pid_t>(std::stol(ReadFile(archive_ / "medvfs.pid")));
  EXPECT_EQ(ReadFile(P("a.txt")), "one");
  EXPECT_FALSE(stdfs::exists(P("b.txt")));
  ASSERT_NO_FATAL_FAILURE(UmountOk());

  // Accepted once: the mark now follows the restored archive.
  ASSERT_NO_FATAL_FAILURE(MountOk());
  ASSERT_NO_FATAL_FAILURE(UmountOk());
  const std::vector<store::AuditEntry> audit = ReadAudit(archive_);
  EXPECT_TRUE(FindAudit(audit, AuditMatch().Op(AuditOp::kRollbackAccepted)))
      << DescribeAudit(audit);
  const auto mount = FindAudit(audit, AuditMatch().Op(AuditOp::kMount).Uid(getuid()));
  ASSERT_TRUE(mount);
}

TEST_F(AuditMountTest, AcceptRollbackAlsoWorksAsAMountOption) {
  ASSERT_NO_FATAL_FAILURE(MountOk());
  ASSERT_NO_FATAL_FAILURE(UmountOk());
  ASSERT_NO_FATAL_FAILURE(PutBackAnOlderCopy());
  EXPECT_EQ(Mount().exit_code, 1);
  ASSERT_NO_FATAL_FAILURE(MountOk("accept_rollback"));
  EXPECT_FALSE(stdfs::exists(P("b.txt")));
  ASSERT_NO_FATAL_FAILURE(UmountOk());
}

}  // namespace
}  // namespace medvfs::fs_test
