// Runs a piece of test code as another user, without fork. The test process has threads
// (RocksDB's, once a test opened an archive in-process), so a forked child may only make
// async-signal-safe calls until it execs; test code that builds paths or calls std::function
// would not qualify. Linux credentials belong to each thread: the raw system calls below
// (unlike glibc's setuid, which changes every thread of the process) change only a fresh thread
// that runs the code and ends. That thread also gets its own working directory and its own
// table of file descriptors, as a child process would: a chdir made as the other user cannot
// move the test, and what the code opens and leaves open is closed when the thread ends (an
// open file would keep the mount busy).
#pragma once

#include <grp.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <functional>
#include <thread>
#include <vector>

namespace medvfs::fs_test {

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

// The user's supplementary groups as login would set them (initgroups), read now: the thread
// that takes them must not change the process's.
inline std::vector<gid_t> GroupsOf(const char* name, gid_t gid) {
  std::vector<gid_t> groups(64);
  int count = static_cast<int>(groups.size());
  while (getgrouplist(name, gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<size_t>(count) + 64);
    count = static_cast<int>(groups.size());
  }
  groups.resize(static_cast<size_t>(count));
  return groups;
}

// What fn returned, run on a thread of its own with `who`'s uid, gid and groups (real,
// effective and saved; capabilities go with uid 0); -1 if the thread could not take them.
inline int RunAs(const Credentials& who, const std::function<int()>& fn) {
  int result = -1;
  std::thread worker([&] {
    if (unshare(CLONE_FS | CLONE_FILES) != 0) return;
    if (syscall(SYS_setgroups, who.groups.size(), who.groups.data()) != 0) return;
    if (syscall(SYS_setresgid, who.gid, who.gid, who.gid) != 0) return;
    if (syscall(SYS_setresuid, who.uid, who.uid, who.uid) != 0) return;
    result = fn();
  });
  worker.join();
  return result;
}

// As user and group 65534 (nobody), without supplementary groups.
inline int RunAsNobody(const std::function<int()>& fn) {
  return RunAs(Credentials{65534, 65534, {}}, fn);
}

}  // namespace medvfs::fs_test
