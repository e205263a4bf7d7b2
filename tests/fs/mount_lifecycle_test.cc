// Mounting, unmounting, keys, stale mounts, the mount(8) helper, read-only mounts and
// encryption at rest, with the built `medvfs` and `mount.medvfs`.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

// Names, sizes and modification times of everything under root.
std::map<std::string, std::string> Snapshot(const stdfs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& entry : stdfs::recursive_directory_iterator(root)) {
    struct stat st {};
    lstat(entry.path().c_str(), &st);
    out[entry.path().string()] = std::to_string(st.st_size) + "@" +
                                 std::to_string(st.st_mtim.tv_sec) + "." +
                                 std::to_string(st.st_mtim.tv_nsec);
  }
  return out;
}

using MountLifecycleTest = MountTest;

TEST_F(MountLifecycleTest, HistorySurvivesARemount) {
  MountOk();
  ASSERT_EQ(mkdir(P("d").c_str(), 0750), 0);
  ASSERT_EQ(WriteFile(P("d/f.dcm"), "v1"), 0);
  ASSERT_EQ(WriteFile(P("d/f.dcm"), "v2"), 0);
  ASSERT_EQ(WriteFile(P("d/gone"), "deleted"), 0);
  ASSERT_EQ(unlink(P("d/gone").c_str()), 0);
  UmountOk();
  EXPECT_TRUE(ListDir(mnt_).empty());
  MountOk();
  EXPECT_EQ(ReadFile(P("d/f.dcm")), "v2");
  EXPECT_EQ(ListDir(P("d/@version")), (std::vector<std::string>{"f.dcm", "gone"}));
  EXPECT_EQ(ReadFile(P("d/@version/f.dcm/v1")), "v1");
  EXPECT_EQ(ReadFile(P("d/@version/gone/v1")), "deleted");
  struct stat st {};
  ASSERT_EQ(stat(P("d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST_F(MountLifecycleTest, RemountRightAfterFusermountWaitsForTheOldDaemon) {
  MountOk();
  ASSERT_EQ(WriteFile(P("f"), "data"), 0);
  // fusermount3 returns before the daemon has closed the archive: mount retries while busy.
  ASSERT_EQ(RunProgram({"fusermount3", "-u", mnt_.string()}).exit_code, 0);
  MountOk();
  EXPECT_EQ(ReadFile(P("f")), "data");
}

TEST_F(MountLifecycleTest, ReadOnlyMountRefusesWrites) {
  MountOk();
  ASSERT_EQ(WriteFile(P("f"), "one"), 0);
  ASSERT_EQ(WriteFile(P("f"), "two"), 0);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  UmountOk();
  MountOk("ro");
  EXPECT_EQ(ReadFile(P("f")), "two");
  EXPECT_EQ(ReadFile(P("@version/f/v1")), "one");
  EXPECT_EQ(open(P("f").c_str(), O_WRONLY), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(WriteFile(P("new"), "x"), EROFS);
  EXPECT_EQ(ErrnoOf(mkdir(P("d2").c_str(), 0755)), EROFS);
  EXPECT_EQ(ErrnoOf(unlink(P("f").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(rmdir(P("d").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(rename(P("f").c_str(), P("g").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(chmod(P("f").c_str(), 0600)), EROFS);
  EXPECT_EQ(ErrnoOf(truncate(P("f").c_str(), 0)), EROFS);
  EXPECT_EQ(ErrnoOf(setxattr(P("f").c_str(), "user.a", "b", 1, 0)), EROFS);
  EXPECT_EQ(ErrnoOf(symlink("f", P("s").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(setxattr(P("@version/f").c_str(), "user.medvfs.restore", "1", 1, 0)), EROFS);
  EXPECT_EQ(ReadFile(P("f")), "two");
}

// The database and the key slot stay untouched; the attempt is only noted beside them
// (failed-unlocks), to enter the audit log at the next unlock.
TEST_F(MountLifecycleTest, WrongKeyIsRefusedAndWritesNothing) {
  const auto before = Snapshot(archive_ / "db");
  const std::string slot_before = ReadFile(archive_ / "keyslot");
  const ProcResult result = Mount("", {{"MEDVFS_PASSPHRASE", "not the passphrase"}});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_TRUE(result.err.starts_with("medvfs: the passphrase does not unlock this archive"))
      << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_EQ(result.out, "");
  EXPECT_FALSE(IsMedvfsMount(mnt_));
  EXPECT_EQ(Snapshot(archive_ / "db"), before);
  EXPECT_EQ(ReadFile(archive_ / "keyslot"), slot_before);
  const std::string noted = ReadFile(archive_ / "failed-unlocks");
  EXPECT_EQ(std::count(noted.begin(), noted.end(), '\n'), 1) << noted;
  EXPECT_FALSE(Contains(noted, "not the passphrase"));
}

TEST_F(MountLifecycleTest, StaleMountOfADeadDaemonIsClearedByTheNextMount) {
  MountOk();
  ASSERT_EQ(WriteFile(P("before"), "saved"), 0);
  ASSERT_EQ(kill(daemon_pid_, SIGKILL), 0);  // the daemon this test started
  struct stat st {};
  ASSERT_TRUE(PollUntil([&] { return stat(mnt_.c_str(), &st) != 0 && errno == ENOTCONN; }, 10'000));
  daemon_pid_ = 0;
  const ProcResult again = Mount();
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(Contains(again.err, "left mounted by a medvfs daemon that died")) << again.err;
  ASSERT_TRUE(IsMedvfsMount(mnt_));
  daemon_pid_ = static_cast<pid_t>(std::stol(ReadFile(archive_ / "medvfs.pid")));
  EXPECT_EQ(ReadFile(P("before")), "saved");
  ASSERT_EQ(WriteFile(P("after"), "ok"), 0);
  EXPECT_EQ(ReadFile(P("after")), "ok");
  UmountOk();
}

// A dead mount that is not medvfs's is left alone, with the advice to unmount it.
TEST_F(MountLifecycleTest, StaleForeignMountIsExplained) {
  if (geteuid() != 0) GTEST_FAIL() << "needs root to make a foreign mount";
  // A FUSE mount whose "daemon" is this test: it opens /dev/fuse, mounts, and closes the fd,
  // which leaves the mount dead (ENOTCONN) like a crashed daemon.
  const int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::string data = "fd=" + std::to_string(fd) + ",rootmode=40000,user_id=0,group_id=0";
  ASSERT_EQ(mount("other", mnt_.c_str(), "fuse.otherfs", MS_NOSUID | MS_NODEV, data.c_str()), 0)
      << std::strerror(errno);
  close(fd);
  struct stat st {};
  ASSERT_TRUE(PollUntil([&] { return stat(mnt_.c_str(), &st) != 0 && errno == ENOTCONN; }, 10'000));
  const ProcResult again = Mount();
  EXPECT_NE(again.exit_code, 0);
  EXPECT_TRUE(Contains(again.err, "not connected")) << again.err;
  EXPECT_TRUE(Contains(again.err, "medvfs umount " + mnt_.string())) << again.err;
  EXPECT_EQ(umount2(mnt_.c_str(), MNT_DETACH), 0);
}

TEST_F(MountLifecycleTest, ForegroundMountStopsCleanlyOnSigterm) {
  const pid_t pid = SpawnForeground();
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(PollUntil([&] { return IsMedvfsMount(mnt_); }, 20'000)) << ReadFile(dir_ / "fg.err");
  ASSERT_EQ(WriteFile(P("f"), "foreground"), 0);
  EXPECT_EQ(ReadFile(archive_ / "medvfs.pid"), std::to_string(pid) + "\n");
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_TRUE(PollUntil([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 20'000));
  spawned_.clear();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(dir_ / "fg.err");
  EXPECT_FALSE(IsMedvfsMount(mnt_));
  EXPECT_FALSE(stdfs::exists(archive_ / "medvfs.pid"));
  MountOk();
  EXPECT_EQ(ReadFile(P("f")), "foreground");
}

TEST_F(MountLifecycleTest, MountHelperTakesMountStyleArguments) {
  const stdfs::path pass = dir_ / "pass";
  std::ofstream(pass) << kPassphrase << "\n";
  const ProcResult result =
      RunProgram({MOUNT_HELPER_BIN, archive_.string(), mnt_.string(), "-s", "-n", "-o",
                  "rw,noauto,_netdev,passphrase_file=" + pass.string()},
                 {{"MEDVFS_PASSPHRASE", std::nullopt}});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  ASSERT_TRUE(IsMedvfsMount(mnt_));
  daemon_pid_ = static_cast<pid_t>(std::stol(ReadFile(archive_ / "medvfs.pid")));
  ASSERT_EQ(WriteFile(P("f"), "via helper"), 0);
  UmountOk();
}

TEST_F(MountLifecycleTest, NothingReadableAtRest) {
  const std::string marker = "ZEBRA-PATIENT-4711";
  MountOk();
  const std::string dir = "study-" + marker;
  ASSERT_EQ(mkdir(P(dir).c_str(), 0755), 0);
  std::string compressible;
  for (int i = 0; i < 20000; ++i) compressible += "PatientName=" + marker + ";";
  ASSERT_EQ(WriteFile(P(dir + "/" + marker + ".dcm"), compressible), 0);
  ASSERT_EQ(WriteFile(P(dir + "/" + marker + ".dcm"), compressible + "v2"), 0);
  ASSERT_EQ(WriteFile(P("note-" + marker + ".txt"), marker), 0);
  ASSERT_EQ(symlink(("target-" + marker).c_str(), P("link-" + marker).c_str()), 0);
  ASSERT_EQ(setxattr(P("note-" + marker + ".txt").c_str(), ("user." + marker).c_str(),
                     marker.data(), marker.size(), 0),
            0);
  ASSERT_EQ(unlink(P("note-" + marker + ".txt").c_str()), 0);
  UmountOk();

  for (const auto& entry : stdfs::recursive_directory_iterator(archive_)) {
    EXPECT_FALSE(Contains(entry.path().string(), marker)) << entry.path();
    if (!entry.is_regular_file()) continue;
    const std::string data = ReadFile(entry.path());
    EXPECT_FALSE(Contains(data, marker)) << entry.path();
    EXPECT_FALSE(InZstdFrames(data, marker)) << entry.path();
  }
  const ProcResult grep = RunProgram({"/bin/grep", "-r", "-l", "-a", marker, archive_.string()});
  EXPECT_EQ(grep.exit_code, 1) << grep.out;
}

}  // namespace
}  // namespace medvfs::fs_test
