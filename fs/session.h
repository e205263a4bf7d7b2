// Mounting an archive and serving FUSE requests until unmount or a signal.
#pragma once

#include <memory>
#include <string>

#include "fs/filesystem.h"
#include "store/archive.h"
#include "store/status.h"

namespace medvfs::fs {

class MountedSession {
 public:
  // Creates a session with `fuse_options` (a -o list, see FuseOptionString) and mounts it at
  // `mountpoint`. Requests queue in the kernel until Run() serves them, so the mount is usable
  // as soon as this returns. `archive` must outlive the session. kInvalid / kIoError carry
  // libfuse's reason. The options FuseOptionString adds for medvfs itself are taken out of
  // `fuse_options` first: anon_only sets FsConfig::anon_only and read_only, and
  // deid_config=FILE is read into FsConfig::deid (kInvalid naming the file, and the line, when
  // it cannot be read or parsed).
  static store::StatusOr<std::unique_ptr<MountedSession>> Mount(store::Archive& archive,
                                                                const FsConfig& config,
                                                                const std::string& fuse_options,
                                                                const std::string& mountpoint);
  MountedSession(const MountedSession&) = delete;
  MountedSession& operator=(const MountedSession&) = delete;
  // Unmounts (if still mounted) and destroys the session.
  ~MountedSession();

  // Serves requests on up to `max_threads` threads until the file system is unmounted or
  // SIGTERM, SIGINT or SIGHUP arrives. Threads start only when every running one is busy, so
  // a generous bound costs nothing, and a few slow requests (a commit hashing a large file)
  // leave threads for everybody else. Default: 64.
  store::Status Run(unsigned max_threads = 64);

  // For changes made beside the FUSE requests (the control socket's): BeginChange/EndChange
  // and the invalidations.
  Filesystem& filesystem() { return *fs_; }

 private:
  MountedSession() = default;
  std::unique_ptr<Filesystem> fs_;
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
};

}  // namespace medvfs::fs
