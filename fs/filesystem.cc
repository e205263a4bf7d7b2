#include "fs/filesystem.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "fs/op_util.h"
#include "store/log.h"

namespace medvfs::fs {
namespace internal {

store::Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  store::Caller caller;
  caller.uid = ctx->uid;
  caller.gid = ctx->gid;
  caller.pid = static_cast<uint32_t>(ctx->pid);
  if (ctx->pid <= 0) return caller;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/comm", static_cast<int>(ctx->pid));
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return caller;
  char comm[64];
  const ssize_t n = read(fd, comm, sizeof(comm));
  close(fd);
  if (n > 0) {
    caller.program.assign(comm, static_cast<size_t>(n));
    while (!caller.program.empty() && caller.program.back() == '\n') caller.program.pop_back();
  }
  return caller;
}

store::Caller CreatorOf(fuse_req_t req) {
  store::Caller caller = CallerOf(req);
  caller.umask = fuse_req_ctx(req)->umask & 0777;
  return caller;
}

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

namespace {
timespec ToTimespec(int64_t ns) {
  timespec ts{};
  ts.tv_sec = ns / 1'000'000'000;
  ts.tv_nsec = ns % 1'000'000'000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1'000'000'000;
    --ts.tv_sec;
  }
  return ts;
}
}  // namespace

struct stat ToStat(const store::Attr& attr) {
  struct stat st {};
  st.st_ino = attr.ino;
  st.st_mode = attr.mode;
  st.st_nlink = attr.nlink;
  st.st_uid = attr.uid;
  st.st_gid = attr.gid;
  st.st_rdev = attr.rdev;
  st.st_size = static_cast<off_t>(attr.size);
  st.st_blksize = 4096;
  st.st_blocks = static_cast<blkcnt_t>((attr.size + 511) / 512);
  st.st_atim = ToTimespec(attr.atime_ns);
  st.st_mtim = ToTimespec(attr.mtime_ns);
  st.st_ctim = ToTimespec(attr.ctime_ns);
  return st;
}

void ReplyError(fuse_req_t req, const char* op, uint64_t nodeid, const store::Status& status) {
  int err = status.ToErrno();
  if (err <= 0) err = EIO;
  if (err == EIO) {
    // Status messages carry inode and version numbers only, never names.
    MEDVFS_LOG_ERROR("%s on node %llu failed: %s", op, static_cast<unsigned long long>(nodeid),
                     status.ToString().c_str());
  }
  fuse_reply_err(req, err);
}

store::StatusOr<ViewDescriptor> ViewOf(Filesystem& fs, fuse_ino_t nodeid) {
  std::optional<ViewDescriptor> view = fs.nodes().Get(nodeid);
  if (!view) return store::Status::NotFound("stale view node");
  return std::move(*view);
}

fuse_entry_param RealEntry(const Filesystem& fs, const store::Attr& attr) {
  fuse_entry_param e{};
  e.ino = attr.ino;
  e.attr = ToStat(attr);
  e.attr_timeout = fs.config().timeout_s;
  e.entry_timeout = EntryTimeout(fs);
  return e;
}

void ReplyRealEntry(fuse_req_t req, Filesystem& fs, store::NodeRef node) {
  const fuse_entry_param e = RealEntry(fs, node.attr());
  // The kernel takes the reference with the reply (and gives it back with FORGET); one it did
  // not take (an interrupted request) is released with `node`.
  if (fuse_reply_entry(req, &e) == 0) node.Release();
}

double ViewTimeout(const Filesystem& fs, const ViewDescriptor& view) {
  // versions.tsv grows with the history; a history directory's permissions follow the live
  // file's, which a chmod changes; metadata views follow the current version; the patient
  // index follows saves, renames and deletes.
  // A history directory is the exception: a change to its name's binding drops its entry,
  // and a change to the live file's mode, owner or ACL its attributes, from the kernel's cache
  // before the change is answered (Filesystem::InvalidateHistoryEntry, InvalidateHistoryAttrs),
  // so they are cached like a real directory's: every path walk through it (three per entry
  // of `ls -l`) would otherwise cost a LOOKUP or GETATTR.
  if (IsVolatileView(view) && view.kind != ViewKind::kHistory) return 0.0;
  return fs.config().timeout_s;
}

double EntryTimeout(const Filesystem& fs) {
  // Under daemon-side checks a cached entry would let a path walk skip lookup, and with it
  // the search permission check of the caller at hand.
  return Enforcing(fs) ? 0.0 : fs.config().timeout_s;
}

double ViewEntryTimeout(const Filesystem& fs, const ViewDescriptor& view) {
  // What a name resolves to under .meta and @patients changes with the live tree. So does the
  // history that DIR/@version/NAME shows (a new file under NAME may carry another one), but
  // every change of a live name drops that entry from the kernel's cache before it is
  // answered (Filesystem::InvalidateHistoryEntry): caching it spares `ls -l` of a history
  // three lookups per version (every path walk through it would look NAME up again).
  if (ResolvesAgainstLiveTree(view) || view.kind == ViewKind::kEmptyDir) return 0.0;
  return EntryTimeout(fs);
}

store::StatusOr<fuse_entry_param> AcquireViewEntry(Filesystem& fs, const ViewDescriptor& view,
                                                   std::string audit_path) {
  MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, ViewAttrOf(fs, view));
  fuse_entry_param e{};
  e.ino = fs.nodes().Acquire(view, std::move(audit_path));
  e.attr = ToStat(attr);
  e.attr_timeout = ViewTimeout(fs, view);
  e.entry_timeout = ViewEntryTimeout(fs, view);
  return e;
}

store::Status ReplyViewEntry(fuse_req_t req, Filesystem& fs, const ViewDescriptor& view,
                             std::string audit_path) {
  MEDVFS_ASSIGN_OR_RETURN(fuse_entry_param e, AcquireViewEntry(fs, view, std::move(audit_path)));
  if (fuse_reply_entry(req, &e) != 0) fs.nodes().Forget(e.ino, 1);
  return store::Status::Ok();
}

bool IsReadOnlyOp(std::string_view op) {
  static constexpr std::string_view kReadOnly[] = {"lookup",    "getattr",  "statfs",   "opendir",
                                                   "readdir",   "read",     "readlink", "getxattr",
                                                   "listxattr", "fsyncdir", "write",    "access"};
  // write only fills a pending version: the flush, fsync or release that commits it counts.
  for (std::string_view name : kReadOnly) {
    if (op == name) return true;
  }
  return false;
}

store::StatusOr<store::Attr> ViewAttrOf(Filesystem& fs, const ViewDescriptor& view) {
  if (IsAnonKind(view.kind)) return fs.anon().Attr(view);
  // A history directory's attributes are asked for at every path walk through it (see
  // fs/listing_cache.h); they change only with the archive.
  if (view.kind != ViewKind::kHistory) return ViewAttr(fs.archive(), view);
  const std::optional<uint64_t> generation = fs.StableGeneration();
  if (generation) {
    if (auto cached = fs.listings().GetAttr(view, *generation)) return *cached;
  }
  MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, ViewAttr(fs.archive(), view));
  if (generation) fs.listings().PutAttr(view, *generation, attr);
  return attr;
}

store::StatusOr<std::unique_ptr<store::FileHandle>> OpenViewFileOf(
    Filesystem& fs, const ViewDescriptor& view, const std::function<bool()>& cancelled) {
  if (IsAnonKind(view.kind)) return fs.anon().Open(view);
  return OpenViewFile(fs.archive(), view, cancelled);
}

store::StatusOr<std::vector<ViewEntry>> ListViewCached(Filesystem& fs, const ViewDescriptor& view) {
  // /@anon keeps its own layout, under the same generation rule.
  if (IsAnonKind(view.kind)) return fs.anon().List(view, fs.StableGeneration());
  if (view.kind != ViewKind::kStudy) {
    return ListView(fs.archive(), view, fs.config().versions_visible);
  }
  const std::optional<uint64_t> generation = fs.StableGeneration();
  if (generation) {
    if (auto cached = fs.listings().Get(view, *generation)) return std::move(*cached);
  }
  MEDVFS_ASSIGN_OR_RETURN(auto entries, ListView(fs.archive(), view, fs.config().versions_visible));
  if (generation) fs.listings().Put(view, *generation, entries);
  return entries;
}

store::StatusOr<ViewEntry> ResolveViewChildCached(Filesystem& fs, const ViewDescriptor& parent,
                                                  std::string_view name) {
  if (IsAnonKind(parent.kind)) return fs.anon().Resolve(parent, name, fs.StableGeneration());
  if (parent.kind == ViewKind::kVersionRoot) {
    // DIR/@version/NAME: looked up again at every path walk through it (fs/listing_cache.h).
    const std::optional<uint64_t> generation = fs.StableGeneration();
    if (generation) {
      if (auto cached = fs.listings().GetChild(parent, name, *generation)) return *cached;
    }
    MEDVFS_ASSIGN_OR_RETURN(ViewEntry child, ResolveViewChild(fs.archive(), parent, name));
    if (generation) fs.listings().PutChild(parent, name, *generation, child);
    return child;
  }
  if (parent.kind != ViewKind::kStudy) return ResolveViewChild(fs.archive(), parent, name);
  MEDVFS_ASSIGN_OR_RETURN(auto entries, ListViewCached(fs, parent));
  for (ViewEntry& entry : entries) {
    if (entry.name == name) return std::move(entry);
  }
  return store::Status::NotFound("no such view entry");
}

store::Status ViewIsReadOnly() { return store::Status::ReadOnly("history views are read-only"); }

store::Status CheckNewRealName(Filesystem& fs, fuse_ino_t parent, const char* name) {
  if (IsViewNode(parent)) return ViewIsReadOnly();
  if (fs.config().read_only) return store::Status::ReadOnly("mounted read-only");
  if (IsViewName(parent, name)) {
    return store::Status(store::Code::kPermission, "reserved name");
  }
  return store::Status::Ok();
}

namespace {

void Init(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  // Live files are opened with keep_cache (fs/ops_file.cc): the kernel must drop cached pages
  // whenever it sees a file's mtime or size change.
  if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  // POSIX ACLs: the kernel evaluates them under default_permissions and caches them per inode
  // (one GETXATTR per inode instead of one per ls -l); the daemon keeps mode and ACL in step
  // and applies default ACLs and the umask on create (store/posix_acl.h), so the kernel must
  // not apply the umask first.
  if ((conn->capable & FUSE_CAP_POSIX_ACL) && (conn->capable & FUSE_CAP_DONT_MASK)) {
    conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  }
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_EXPORT_SUPPORT);
  conn->max_write = 1u << 20;
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops{};
  ops.init = Init;
  AddAttrOps(ops);
  AddDirOps(ops);
  AddFileOps(ops);
  AddLinkOps(ops);
  AddXattrOps(ops);
  AddAccessOps(ops);
  return ops;
}

}  // namespace
}  // namespace internal

Filesystem::Filesystem(store::Archive& archive, FsConfig config)
    : archive_(archive),
      config_(std::move(config)),
      anon_(archive, archive.NewDeidentifier(config_.deid)) {}

Filesystem::~Filesystem() {
  std::lock_guard<std::mutex> lock(files_mu_);
  for (internal::OpenFile* file : files_) {
    if (file->writable) file->handle->Flush(file->opener).IgnoreError();
    delete file;
  }
  files_.clear();
}

void Filesystem::set_session(fuse_session* session) {
  session_ = session;
  if (session == nullptr) return;
  invalidator_ = std::make_unique<EntryInvalidator>([this](const EntryInvalidator::Notice& n) {
    fuse_session* live = session_.load();
    if (live == nullptr) return 0;
    if (n.name.empty()) return fuse_lowlevel_notify_inval_inode(live, n.node, -1, 0);
    return fuse_lowlevel_notify_inval_entry(live, n.node, n.name.data(), n.name.size());
  });
}

void Filesystem::ClearSession() {
  invalidator_.reset();  // sends what is queued, then stops
  session_ = nullptr;
}

void Filesystem::InvalidateHistoryEntry(store::InodeId dir, std::string_view name) {
  if (!invalidator_) return;
  // Without the kernel holding DIR/@version, it holds nothing under it either.
  const std::optional<uint64_t> version_root = nodes_.Find(VersionRootOf(dir));
  if (!version_root) return;
  SendInvalidation({*version_root, std::string(name)});
}

void Filesystem::InvalidateUnlinkedOutside(std::string_view path) {
  if (!invalidator_) return;
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos || slash + 1 == path.size()) return;
  auto dir = store::LookupPath(archive_, path.substr(0, slash));
  if (!dir.ok()) return;
  const std::string name(path.substr(slash + 1));
  SendInvalidation({dir->ino, name});  // a live directory's node is its inode
  InvalidateHistoryEntry(dir->ino, name);
}

void Filesystem::InvalidateHistoryAttrs(store::HistoryId history) {
  if (!invalidator_ || history == 0) return;
  for (uint64_t node : nodes_.HistoryDirsOf(history)) SendInvalidation({node, {}});
}

void Filesystem::SendInvalidation(EntryInvalidator::Notice notice) {
  // Normally microseconds; the bound only guards against every daemon thread waiting (see
  // fs/entry_invalidator.h).
  constexpr std::chrono::milliseconds kBound{200};
  if (!invalidator_->InvalidateAndWait(std::move(notice), kBound)) {
    MEDVFS_LOG_WARNING(
        "an invalidation is late: @version may show a history as it was for up "
        "to %.1f s",
        config_.timeout_s);
  }
}

void Filesystem::TrackFile(internal::OpenFile* file) {
  std::lock_guard<std::mutex> lock(files_mu_);
  files_.insert(file);
}

void Filesystem::UntrackFile(internal::OpenFile* file) {
  std::lock_guard<std::mutex> lock(files_mu_);
  files_.erase(file);
}

const fuse_lowlevel_ops& LowLevelOps() {
  static const fuse_lowlevel_ops ops = internal::MakeOps();
  return ops;
}

}  // namespace medvfs::fs
