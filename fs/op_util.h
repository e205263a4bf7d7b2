// Helpers shared by the FUSE handlers (fs/ops_*.cc). Internal to fs/.
//
// Every handler has the same shape: it calls RunOp with a body that either replies and returns
// Ok, or returns an error Status without replying; RunOp then replies fuse_reply_err with the
// Status's errno and logs why for EIO. So each request gets exactly one reply.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fs/access.h"
#include "fs/filesystem.h"
#include "fs/views.h"
#include "store/archive.h"
#include "store/audit.h"
#include "store/status.h"

namespace medvfs::fs::internal {

inline Filesystem& Fs(fuse_req_t req) { return *static_cast<Filesystem*>(fuse_req_userdata(req)); }

// Who sent the request: uid, gid and pid from the kernel, the program name from
// /proc/PID/comm (empty if the process is gone).
store::Caller CallerOf(fuse_req_t req);
// CallerOf, with the umask of a request that creates a node (create, mknod, mkdir): the
// kernel leaves it to the daemon (FUSE_CAP_DONT_MASK), which ignores it under a default ACL.
store::Caller CreatorOf(fuse_req_t req);

// Nanoseconds since the epoch now (UTC).
int64_t NowNs();

struct stat ToStat(const store::Attr& attr);

// Replies with the error for `status` (which must not be ok), logging EIO causes with the
// operation name and node id only.
void ReplyError(fuse_req_t req, const char* op, uint64_t nodeid, const store::Status& status);

// True for the operations that never change the archive; the others run between
// Filesystem::BeginChange and EndChange.
bool IsReadOnlyOp(std::string_view op);

// RunOp for an operation that changes the archive only sometimes: an open changes nothing
// unless it may write, and counting every read-only open as a change would drop the cached
// listings (fs/listing_cache.h, /@anon) at each file a reader opens.
template <typename Body>
void RunOpThatMayChange(fuse_req_t req, const char* op, uint64_t nodeid, bool changes,
                        Body&& body) {
  Filesystem& fs = Fs(req);  // taken before the body replies
  if (changes) fs.BeginChange();
  store::Status status;
  bool replied = false;
  try {
    status = body();
  } catch (const std::bad_alloc&) {
    fuse_reply_err(req, ENOMEM);
    replied = true;
  } catch (const std::exception& e) {
    status = store::Status::IoError(std::string("unexpected exception: ") + e.what());
  }
  if (!replied && !status.ok()) ReplyError(req, op, nodeid, status);
  if (changes) fs.EndChange();
}

template <typename Body>
void RunOp(fuse_req_t req, const char* op, uint64_t nodeid, Body&& body) {
  RunOpThatMayChange(req, op, nodeid, !IsReadOnlyOp(op), std::forward<Body>(body));
}

// ViewAttr and OpenViewFile, with /@anon answered by Filesystem::anon().
store::StatusOr<store::Attr> ViewAttrOf(Filesystem& fs, const ViewDescriptor& view);
store::StatusOr<std::unique_ptr<store::FileHandle>> OpenViewFileOf(
    Filesystem& fs, const ViewDescriptor& view, const std::function<bool()>& cancelled = {});
// The listing of view directory `view`, through Filesystem::listings() for the costly ones
// (and Filesystem::anon() for /@anon).
store::StatusOr<std::vector<ViewEntry>> ListViewCached(Filesystem& fs, const ViewDescriptor& view);
// The child `name` of view directory `parent` (ResolveViewChild, with the cache).
store::StatusOr<ViewEntry> ResolveViewChildCached(Filesystem& fs, const ViewDescriptor& parent,
                                                  std::string_view name);

// The view behind a view node id (kNotFound if the kernel forgot it).
store::StatusOr<ViewDescriptor> ViewOf(Filesystem& fs, fuse_ino_t nodeid);

// The entry of a real node (attr.ino is the node id), with its timeouts.
fuse_entry_param RealEntry(const Filesystem& fs, const store::Attr& attr);
// Registers `view` in the node table (with the path the audit log names it by: one lookup
// reference) and returns its entry, with its timeouts.
store::StatusOr<fuse_entry_param> AcquireViewEntry(Filesystem& fs, const ViewDescriptor& view,
                                                   std::string audit_path);
// Replies RealEntry (the caller holds the lookup reference it adds).
void ReplyRealEntry(fuse_req_t req, Filesystem& fs, store::NodeRef node);
// Replies AcquireViewEntry.
store::Status ReplyViewEntry(fuse_req_t req, Filesystem& fs, const ViewDescriptor& view,
                             std::string audit_path);
// Entry timeout for real nodes: 0 when the daemon checks permissions (every path walk must
// reach lookup), else the configured timeout.
double EntryTimeout(const Filesystem& fs);
// Attribute timeout for a view node: 0 for versions.tsv, history directories, metadata views
// and the patient index, whose attributes change with the live file.
double ViewTimeout(const Filesystem& fs, const ViewDescriptor& view);
// Entry timeout for a view node: 0 for metadata views and the patient index.
double ViewEntryTimeout(const Filesystem& fs, const ViewDescriptor& view);

// --- Permissions and audit (fs/ops_access.cc) --------------------------------------------
// The daemon checks permissions itself (FsConfig::check_permissions).
inline bool Enforcing(const Filesystem& fs) { return fs.config().check_permissions; }

// The requester's credentials; supplementary groups are read (fuse_req_getgroups) on first need.
Credentials CredentialsOf(fuse_req_t req);

// Attributes of a real or a view node.
store::StatusOr<store::Attr> NodeAttr(Filesystem& fs, fuse_ino_t node);

// How the audit log names things. A real node: its path from the root ("/ct/a.dcm"). A view
// node: the path of the live file or directory it shows (where it was last linked if deleted),
// the view part going to the entry's detail and version (see man/medvfs-views.7); the
// patient index: "/@patients/<PatientID>/<study>"; the de-identified view: its own path
// ("/@anon/<pseudonym>/...", never the real file's). "" when the store cannot tell.
std::string AuditPathOf(Filesystem& fs, fuse_ino_t node);
// `name` in directory `parent`.
std::string AuditPathOf(Filesystem& fs, fuse_ino_t parent, std::string_view name);
// The audit path of view `child`, found as `name` in view `parent` whose audit path is
// `parent_path`.
std::string ChildAuditPath(const ViewDescriptor& parent, const std::string& parent_path,
                           const ViewEntry& child);
// What reading view node `node` records: kReadVersion (version, detail "@version", or "@anon"
// for a de-identified file), kReadMeta
// (version, 0 for the current one; detail: "tags/PatientName", "dicom.json", "diff"...) or,
// for a directory, kListDir (detail: the view, e.g. "@version", ".meta").
store::AuditEvent ViewReadEvent(Filesystem& fs, fuse_ino_t node, const ViewDescriptor& view);

// Records `event` (time: now) with the requester as caller. Never fails the operation: a
// failure is logged, without the path, and dropped.
void RecordAudit(fuse_req_t req, Filesystem& fs, store::AuditEvent event);

// Passes `check` through; a denial (kAccess, kPermission) is recorded first, as `denied` with
// the errno as result.
store::Status AuditDenial(fuse_req_t req, Filesystem& fs, store::Status check,
                          store::AuditEvent denied);

// With Enforcing: `mask` (kMay* bits) on node `node` for the requester, a denial recorded as
// `op` on the node's path (or on `name` inside it, when given) with `detail`. Ok without
// Enforcing.
store::Status RequireAccess(fuse_req_t req, Filesystem& fs, fuse_ino_t node, int mask,
                            store::AuditOp op, std::string_view name = {},
                            std::string_view detail = {});

// With Enforcing: the sticky-bit rule (CheckSticky) for removing, renaming away or replacing
// the live entry `name` of `dir`, a denial recorded as `op` on its path. Ok without Enforcing,
// when `dir` is not sticky, or when there is no such entry (the operation itself says ENOENT).
store::Status RequireStickyAllows(fuse_req_t req, Filesystem& fs, fuse_ino_t dir,
                                  std::string_view name, store::AuditOp op);

// Refusals shared by the namespace handlers.
store::Status ViewIsReadOnly();
// EROFS when mounted read-only, EPERM for reserved names (IsViewName), EROFS for view parents.
store::Status CheckNewRealName(Filesystem& fs, fuse_ino_t parent, const char* name);

// An open file (fuse_file_info::fh).
struct OpenFile {
  std::unique_ptr<store::FileHandle> handle;
  bool writable = false;  // opened for writing: close commits a version
  store::Caller opener;   // for the commit on release (its context carries no caller)
  // Data was written (or the file truncated) through this handle since its last commit.
  std::atomic<bool> wrote{false};
  // A read through this handle met damaged stored bytes, and that was recorded (once).
  std::atomic<bool> damage_recorded{false};
};
inline OpenFile* FileOf(fuse_file_info* fi) { return reinterpret_cast<OpenFile*>(fi->fh); }

// An open directory (fuse_file_info::fh): the listing taken at opendir, so offsets are stable.
struct DirItem {
  std::string name;
  uint64_t ino = 0;   // st_ino
  uint32_t mode = 0;  // file type bits
  // A child of a view directory: what readdirplus looks up. Real children are looked up by name.
  std::optional<ViewDescriptor> view;
  // Attributes may come with the name (readdirplus): false for "." and "..", and for the view
  // roots shown by versions=visible (looked up separately).
  bool with_attributes = true;
};
struct OpenDir {
  std::vector<DirItem> items;
};
inline OpenDir* DirOf(fuse_file_info* fi) { return reinterpret_cast<OpenDir*>(fi->fh); }

// Each operation family fills its part of the table.
void AddAttrOps(fuse_lowlevel_ops& ops);    // fs/ops_attr.cc
void AddDirOps(fuse_lowlevel_ops& ops);     // fs/ops_dir.cc
void AddFileOps(fuse_lowlevel_ops& ops);    // fs/ops_file.cc
void AddLinkOps(fuse_lowlevel_ops& ops);    // fs/ops_link.cc
void AddXattrOps(fuse_lowlevel_ops& ops);   // fs/ops_xattr.cc
void AddAccessOps(fuse_lowlevel_ops& ops);  // fs/ops_access.cc

}  // namespace medvfs::fs::internal
