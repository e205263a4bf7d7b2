// The FUSE low-level adapter: state shared by the handlers in fs/ops_*.cc, and the operation
// table they form. Node ids: a real node's id is its store InodeId (root 1 = FUSE_ROOT_ID);
// view nodes (fs/views.h) get ids from fs/node_table.h.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_set>

#include "fs/anon_views.h"
#include "fs/entry_invalidator.h"
#include "fs/listing_cache.h"
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
  // The daemon checks POSIX permissions itself (fs/access.h), after the kernel, and records
  // every denial it makes in the audit log: for allow_other mounts.
  // Entries are then never cached (entry timeout 0), so that every path walk reaches lookup
  // with the caller's credentials. Default: false (the kernel checks).
  bool check_permissions = false;
  // A read whose audit entry cannot be recorded goes on (the failure is logged) instead of
  // being refused with ENOSPC or EIO (-o audit_failure=allow). Default: false (refused).
  bool audit_failure_allow = false;
  // Serve /@anon only (a research workstation): the root lists `@anon` alone, and every other
  // name and view is ENOENT. REQUIRES: read_only. Default: false.
  bool anon_only = false;
  // How /@anon de-identifies (-o deid_config=FILE). Default: the built-in DeidConfig{}.
  store::DeidConfig deid;
};

class Filesystem {
 public:
  Filesystem(store::Archive& archive, FsConfig config);
  // Commits and closes the files the kernel never released (an aborted connection).
  ~Filesystem();
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  store::Archive& archive() { return archive_; }
  const FsConfig& config() const { return config_; }
  NodeTable& nodes() { return nodes_; }
  ListingCache& listings() { return listings_; }
  AnonView& anon() { return anon_; }
  // Requests that may change the archive run between BeginChange and EndChange (RunOp and
  // release do that). A listing may be cached under the generation StableGeneration gave
  // before computing it, and served while StableGeneration still gives the same value: none
  // while a change is in flight, and a new one after each (see fs/listing_cache.h).
  void BeginChange() { changing_.fetch_add(1); }
  void EndChange() {
    generation_.fetch_add(1);  // before the in-flight count drops: see StableGeneration
    changing_.fetch_sub(1);
  }
  std::optional<uint64_t> StableGeneration() const {
    if (changing_.load() != 0) return std::nullopt;  // read first, then the generation
    return generation_.load();
  }
  // The session, for notifications (set before the loop starts). ClearSession stops the
  // notifications; called once the loop has ended, before the session is destroyed.
  void set_session(fuse_session* session);
  void ClearSession();
  fuse_session* session() const { return session_.load(); }
  // A change to the live entry `name` of directory `dir` (made, removed, renamed, linked) may
  // make DIR/@version/NAME show another history: the kernel's cached entry of it is dropped
  // before the change is answered (history directories' entries are cached for timeout_s).
  void InvalidateHistoryEntry(store::InodeId dir, std::string_view name);
  // The mode, owner or ACL of a live file of `history` changed: its history directories'
  // attributes (which follow the file's: ViewAttr) are dropped before the change is answered.
  void InvalidateHistoryAttrs(store::HistoryId history);
  // A file `path` ("/dir/name") was unlinked outside a FUSE request (medvfs purge, run by the
  // daemon for the command line): the kernel's entry of it, and of its history directory, is
  // dropped.
  void InvalidateUnlinkedOutside(std::string_view path);

  // Open files, so that shutdown can close what the kernel never released.
  void TrackFile(internal::OpenFile* file);
  void UntrackFile(internal::OpenFile* file);

 private:
  store::Archive& archive_;
  const FsConfig config_;
  NodeTable nodes_;
  ListingCache listings_;
  AnonView anon_;
  std::atomic<uint64_t> changing_{0};    // requests that may change the archive, in flight
  std::atomic<uint64_t> generation_{0};  // such requests done
  void SendInvalidation(EntryInvalidator::Notice notice);

  std::atomic<fuse_session*> session_{nullptr};
  std::unique_ptr<EntryInvalidator> invalidator_;  // while there is a session
  std::mutex files_mu_;                            // a leaf lock
  std::unordered_set<internal::OpenFile*> files_;  // GUARDED_BY(files_mu_)
};

// The operation table; its userdata must be a Filesystem*.
const fuse_lowlevel_ops& LowLevelOps();

}  // namespace medvfs::fs
