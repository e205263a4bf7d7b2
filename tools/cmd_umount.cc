// medvfs umount MOUNTPOINT: unmounts, then waits until the daemon has closed the archive, so
// that a remount right after works.
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tools/cli_error.h"
#include "tools/mount_commands.h"
#include "tools/target.h"

extern char** environ;

namespace medvfs::tools {
namespace fs = std::filesystem;

namespace {

constexpr std::chrono::seconds kDaemonExitTimeout{30};

struct UmountArgs {
  std::string mountpoint;
  bool lazy = false;
};

std::string ReadSmallFile(const fs::path& path) {
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  return text;
}

// Runs `fusermount3 -u [-z] MOUNTPOINT`; returns its exit status (127 if it cannot run).
// posix_spawn, so that nothing runs between fork and exec whatever threads this process has.
int RunFusermount(const std::string& mountpoint, bool lazy) {
  std::vector<std::string> argv = {"fusermount3", "-u"};
  if (lazy) argv.push_back("-z");
  argv.push_back(mountpoint);
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (std::string& arg : argv) cargv.push_back(arg.data());
  cargv.push_back(nullptr);
  pid_t child = -1;
  if (posix_spawnp(&child, cargv[0], nullptr, nullptr, cargv.data(), environ) != 0) return 127;
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

void Unmount(const std::string& mountpoint, bool lazy) {
  if (geteuid() == 0) {
    if (umount2(mountpoint.c_str(), lazy ? MNT_DETACH : 0) == 0) return;
    const int err = errno;
    if (err == EBUSY) {
      Fail(mountpoint + " is busy (a process has a file open or its working directory there)",
           "close those programs (fuser -vm " + mountpoint + " lists them), or use --lazy");
    }
    Fail("cannot unmount " + mountpoint + ": " + std::strerror(err), "check the mount point");
  }
  const int rc = RunFusermount(mountpoint, lazy);
  if (rc == 127) {
    Fail("cannot run fusermount3", "install the fuse3 package, or run medvfs umount as root");
  }
  if (rc != 0) {
    Fail("fusermount3 could not unmount " + mountpoint,
         "see its message above; if the mount is busy, close the programs using it or use "
         "--lazy");
  }
}

void RunUmount(const UmountArgs& args) {
  const fs::path mountpoint = fs::absolute(args.mountpoint).lexically_normal();
  std::string mp = mountpoint.string();
  while (mp.size() > 1 && mp.back() == '/') mp.pop_back();
  std::optional<MountEntry> entry;
  for (const MountEntry& m : ReadMountInfo()) {
    if (m.mountpoint == fs::path(mp)) entry = m;  // the last one is the top of the stack
  }
  if (!entry) {
    Fail(args.mountpoint + " is not mounted", "list medvfs mounts with: findmnt -t fuse.medvfs");
  }
  if (entry->fstype != kMedvfsFsType) {
    Fail(args.mountpoint + " is a " + entry->fstype + " mount, not medvfs", "use umount(8) for it");
  }
  // Read the daemon's pid before unmounting: it removes the file as it exits.
  const std::optional<pid_t> daemon = LiveDaemonPid(entry->source);
  Unmount(mp, args.lazy);
  if (!daemon || args.lazy) return;
  if (!WaitForExit(*daemon, kDaemonExitTimeout)) {
    Fail("unmounted, but the daemon (pid " + std::to_string(*daemon) +
             ") is still closing the archive after 30 s",
         "wait for it to finish (see the system log) before mounting the archive again");
  }
}

}  // namespace

fs::path PidFilePath(const fs::path& archive) { return archive / "medvfs.pid"; }

bool ProcessExited(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  // A zombie (a child not yet reaped, in tests) counts as gone: it no longer holds anything.
  const std::string stat = ReadSmallFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close_paren = stat.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < stat.size() &&
         stat[close_paren + 2] == 'Z';
}

bool DetachMount(const std::string& mountpoint) {
  if (geteuid() == 0) return umount2(mountpoint.c_str(), MNT_DETACH) == 0;
  return RunFusermount(mountpoint, /*lazy=*/true) == 0;
}

std::optional<pid_t> LiveDaemonPid(const fs::path& archive) {
  const std::string text = ReadSmallFile(PidFilePath(archive));
  if (text.empty()) return std::nullopt;
  long value = 0;
  try {
    value = std::stol(text);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (value <= 1) return std::nullopt;
  const pid_t pid = static_cast<pid_t>(value);
  if (ProcessExited(pid)) return std::nullopt;
  const std::string comm = ReadSmallFile("/proc/" + std::to_string(pid) + "/comm");
  if (comm != "medvfs" && comm != "mount.medvfs") return std::nullopt;  // stale file
  return pid;
}

bool WaitForExit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (ProcessExited(pid)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void RegisterUmountCommand(CLI::App& app) {
  auto args = std::make_shared<UmountArgs>();
  CLI::App* command = app.add_subcommand(
      "umount", "Unmount a mounted archive and wait until its daemon has closed it");
  command->add_option("MOUNTPOINT", args->mountpoint, "The mount point")->required();
  command->add_flag("-l,--lazy", args->lazy,
                    "Detach now even if busy; the daemon closes the archive once the last "
                    "file is closed (no waiting)");
  command->callback([args] { RunUmount(*args); });
}

}  // namespace medvfs::tools
