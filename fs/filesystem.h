// The FUSE low-level adapter: state shared by the handlers in fs/ops_*.cc, and the operation
// table they form. Node ids: a real node's id is its store InodeId (root 1 = FUSE_ROOT_ID);
// view nodes (fs/views.h) get ids from fs/node_table.h.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <mutex>
#include <unordered_set>

#include "fs/node_table.h"
#include "store/archive.h"

namespace medvfs::fs {
namespace internal {
struct OpenFile;
}  // namespace internal

struct FsConfig {
  // List @version (and .meta in history directories) in readdir. Default: false.
  bool versions_visible = false;
  // Refuse every change with EROFS (the archive is opened read-only too). Default: false.
  bool read_only = false;
  // Attribute and entry timeout for real nodes and view directories, in seconds. Write
  // handlers always return fresh attributes. Default: 1.
  double timeout_s = 1.0;
};

class Filesystem {
 public:
  Filesystem(store::Archive& archive, FsConfig config) : archive_(archive), config_(config) {}
  // Commits and closes the files the kernel never released (an aborted connection).
  ~Filesystem();
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  store::Archive& archive() { return archive_; }
  const FsConfig& config() const { return config_; }
  NodeTable& nodes() { return nodes_; }
  // The session, for notifications (set before the loop starts).
  void set_session(fuse_session* session) { session_ = session; }
  fuse_session* session() const { return session_.load(); }

  // Open files, so that shutdown can close what the kernel never released.
  void TrackFile(internal::OpenFile* file);
  void UntrackFile(internal::OpenFile* file);

 private:
  store::Archive& archive_;
  const FsConfig config_;
  NodeTable nodes_;
  std::atomic<fuse_session*> session_{nullptr};
  std::mutex files_mu_;                            // a leaf lock
  std::unordered_set<internal::OpenFile*> files_;  // GUARDED_BY(files_mu_)
};

// The operation table; its userdata must be a Filesystem*.
const fuse_lowlevel_ops& LowLevelOps();

}  // namespace medvfs::fs
