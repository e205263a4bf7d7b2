// Pieces shared by `medvfs mount` (tools/cmd_mount.cc) and `medvfs umount`
// (tools/cmd_umount.cc).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace medvfs::tools {

void RegisterMountCommand(CLI::App& app);   // tools/cmd_mount.cc
void RegisterUmountCommand(CLI::App& app);  // tools/cmd_umount.cc

// ARCHIVE/medvfs.pid: the pid of the daemon serving the archive (mode 0600), removed when it
// exits.
std::filesystem::path PidFilePath(const std::filesystem::path& archive);

// The pid in ARCHIVE/medvfs.pid if that process is alive and is a medvfs daemon (its command
// name is medvfs or mount.medvfs); nullopt otherwise (no file, stale file).
std::optional<pid_t> LiveDaemonPid(const std::filesystem::path& archive);

// Detaches the mount at `mountpoint` (umount2 MNT_DETACH as root, else fusermount3 -u -z);
// false if that failed.
bool DetachMount(const std::string& mountpoint);

// True when process `pid` no longer runs (gone, or a zombie).
bool ProcessExited(pid_t pid);

// Polls until process `pid` has exited; false if it is still there after `timeout`.
bool WaitForExit(pid_t pid, std::chrono::milliseconds timeout);

}  // namespace medvfs::tools
