// A fixture that mounts a fresh archive with the built `medvfs` for real, and always unmounts
// it again. Tests fail where FUSE is unavailable (no /dev/fuse, no fusermount3): never skip.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/store/test_util.h"

namespace medvfs::fs_test {

inline constexpr const char* kPassphrase = "mount test passphrase";

struct ProcResult {
  int exit_code = -1;  // -1: killed by a signal or the timeout
  std::string out;
  std::string err;
};

// Changes to the environment of a child: a value sets the variable, nullopt removes it.
using EnvChanges = std::map<std::string, std::optional<std::string>>;

// Runs argv to completion (killing it after `timeout_s`), with output captured in files (so a
// daemon it leaves behind holding them does not block the caller).
ProcResult RunProgram(const std::vector<std::string>& argv, const EnvChanges& env = {},
                      int timeout_s = 30);

// True when `mountpoint` is a fuse.medvfs mount in /proc/self/mountinfo.
bool IsMedvfsMount(const std::filesystem::path& mountpoint);

// Polls `condition` every 10 ms until it holds or `timeout_ms` passes.
template <typename Condition>
bool PollUntil(Condition&& condition, int timeout_ms);

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // `medvfs mount ARCHIVE MNT [-o OPTS]` with MEDVFS_PASSPHRASE=kPassphrase (changed by env).
  ProcResult Mount(const std::string& options = "", const EnvChanges& env = {});
  // Mount() that must succeed; records the daemon pid from ARCHIVE/medvfs.pid.
  void MountOk(const std::string& options = "");
  // `medvfs umount MNT`, which must succeed and leave no daemon behind.
  void UmountOk();
  // Starts `medvfs mount -f ...` without waiting; returns its pid (killed in TearDown if still
  // running).
  pid_t SpawnForeground(const std::string& options = "");

  std::filesystem::path P(const std::string& relative) const { return mnt_ / relative; }
  // Where mounts keep their rollback high-water marks (MEDVFS_STATE_DIR): inside the test's
  // temporary directory, never the host's.
  std::string StateDir() const { return (dir_ / "state").string(); }
  std::filesystem::path Plain(const std::string& relative) const { return plain_ / relative; }

  std::filesystem::path dir_;
  std::filesystem::path archive_;
  std::filesystem::path mnt_;
  std::filesystem::path plain_;
  pid_t daemon_pid_ = 0;
  std::vector<pid_t> spawned_;

 private:
  store::test_util::ScopedTempDir temp_;
};

template <typename Condition>
bool PollUntil(Condition&& condition, int timeout_ms) {
  for (int waited = 0;; waited += 10) {
    if (condition()) return true;
    if (waited >= timeout_ms) return false;
    struct timespec ts = {0, 10'000'000};
    nanosleep(&ts, nullptr);
  }
}

// Small POSIX helpers for the tests: each returns the errno of a failure, 0 on success.
int WriteFile(const std::filesystem::path& path, const std::string& content, int flags = 0);
std::string ReadFile(const std::filesystem::path& path);
int ErrnoOf(int rc);
std::vector<std::string> ListDir(const std::filesystem::path& dir);  // sorted, no . and ..
std::string ErrnoName(int err);
bool Contains(const std::string& haystack, const std::string& needle);
// getxattr: the value, or the errno as "errno:NAME".
std::string Xattr(const std::filesystem::path& path, const std::string& name);
// The value `dcmdump -s +P TAG` prints for the first instance of TAG in `file` (without the
// brackets); empty if it prints none.
std::string Dcmdump(const std::string& tag, const std::filesystem::path& file);

// True when `needle` occurs in any zstd frame found inside `data` (at-rest checks: compressed
// chunks must be encrypted too).
bool InZstdFrames(const std::string& data, const std::string& needle);

}  // namespace medvfs::fs_test
