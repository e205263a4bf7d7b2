// access, and the permission and audit helpers the other handlers share (fs/op_util.h).
//
// Without default_permissions the kernel sends FUSE_ACCESS for access(2), faccessat(2) and
// chdir(2); with it (every medvfs mount since default_permissions is always set, see
// fs/mount_options.h), the kernel answers those itself and this handler is not called. It
// stays, complete, for a session mounted without it.
#include <unistd.h>

#include <cstdio>

#include "fs/op_util.h"
#include "store/log.h"

namespace medvfs::fs::internal {
namespace {

using store::AuditEvent;
using store::AuditOp;
using store::Status;

std::string JoinAuditPath(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string();  // unknown stays unknown
  std::string out(dir);
  if (out.back() != '/') out += '/';
  out += name;
  return out;
}

std::vector<uint32_t> GroupsOf(fuse_req_t req) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    const int n = fuse_req_getgroups(req, static_cast<int>(groups.size()), groups.data());
    if (n < 0) {
      // The process is gone or /proc is unreadable: it counts as in no supplementary group.
      MEDVFS_LOG_WARNING("cannot read the supplementary groups of pid %d: error %d",
                         static_cast<int>(fuse_req_ctx(req)->pid), -n);
      return {};
    }
    if (static_cast<size_t>(n) <= groups.size()) {
      return std::vector<uint32_t>(groups.begin(), groups.begin() + n);
    }
    groups.resize(static_cast<size_t>(n));
  }
  return {};
}

bool IsWithinFile(ViewKind kind) {
  switch (kind) {
    case ViewKind::kHistory:
    case ViewKind::kEmptyDir:
    case ViewKind::kMetaDir:
    case ViewKind::kFileMeta:
    case ViewKind::kTagsDir:
      return true;
    default:
      return false;
  }
}

std::string ViewDirDetail(const ViewDescriptor& view) {
  switch (view.kind) {
    case ViewKind::kVersionRoot:
    case ViewKind::kHistory:
    case ViewKind::kEmptyDir:
      return std::string(kVersionDirName);
    case ViewKind::kMetaDir:
      return std::string(kVersionDirName) + "/" + std::string(kMetaDirName);
    case ViewKind::kTimeDir:
      return std::string(kVersionDirName) + "/@time";
    case ViewKind::kLiveMetaRoot:
    case ViewKind::kFileMeta:
      return std::string(kMetaDirName);
    case ViewKind::kTagsDir:
      return std::string(kMetaDirName) + "/" + std::string(kTagsDirName);
    case ViewKind::kAnonRoot:
    case ViewKind::kAnonDir:
      return std::string(kAnonDirName);
    default:
      return std::string(kPatientsDirName);
  }
}

void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
  RunOp(req, "access", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (Enforcing(fs) && mask != F_OK) {
      MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, NodeAttr(fs, ino));
      const Status check = CheckAccess(CredentialsOf(req), attr, mask);
      if (!check.ok()) {
        AuditEvent denied;
        if (IsViewNode(ino)) {
          MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
          denied = ViewReadEvent(fs, ino, view);
          denied.detail = "access " + denied.detail;
        } else {
          denied.op = S_ISDIR(attr.mode) ? AuditOp::kListDir : AuditOp::kOpenRead;
          denied.path = AuditPathOf(fs, ino);
          denied.detail = "access";
        }
        if (mask & kMayWrite) denied.op = AuditOp::kOpenWrite;
        return AuditDenial(req, fs, check, std::move(denied));
      }
    }
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

}  // namespace

Credentials CredentialsOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return Credentials(ctx->uid, ctx->gid, [req] { return GroupsOf(req); });
}

store::StatusOr<store::Attr> NodeAttr(Filesystem& fs, fuse_ino_t node) {
  if (!IsViewNode(node)) return fs.archive().GetAttr(node);
  MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, node));
  return ViewAttrOf(fs, view);
}

std::string AuditPathOf(Filesystem& fs, fuse_ino_t node) {
  if (IsViewNode(node)) return fs.nodes().AuditPath(node);
  auto path = fs.archive().PathOf(node);
  return path.ok() ? std::move(*path) : std::string();
}

std::string AuditPathOf(Filesystem& fs, fuse_ino_t parent, std::string_view name) {
  return JoinAuditPath(AuditPathOf(fs, parent), name);
}

std::string ChildAuditPath(const ViewDescriptor& parent, const std::string& parent_path,
                           const ViewEntry& child) {
  // Inside one file's views everything is about that file; an @<time> view is its directory.
  if (IsWithinFile(parent.kind)) return parent_path;
  if (parent.kind == ViewKind::kVersionRoot && child.view.kind == ViewKind::kTimeDir) {
    return parent_path;
  }
  return JoinAuditPath(parent_path, child.name);
}

AuditEvent ViewReadEvent(Filesystem& fs, fuse_ino_t node, const ViewDescriptor& view) {
  AuditEvent event;
  event.path = fs.nodes().AuditPath(node);
  event.version = view.version;
  event.op = AuditOp::kReadMeta;
  switch (view.kind) {
    case ViewKind::kVersionFile:
      event.op = AuditOp::kReadVersion;
      // Under @<time> the descriptor carries the inode that held the name then.
      event.detail = std::string(kVersionDirName) + (view.ino != 0 ? "/@time" : "");
      break;
    case ViewKind::kVersionsTsv:
      event.detail = std::string(kVersionsTsvName);
      break;
    case ViewKind::kTagFile:
      event.detail = std::string(kTagsDirName) + "/" + view.keyword;
      break;
    case ViewKind::kDicomJson:
      event.detail = std::string(kDicomJsonName);
      break;
    case ViewKind::kTagsTsv:
      event.detail = std::string(kTagsTsvName);
      break;
    case ViewKind::kSha256File:
      event.detail = std::string(kSha256Name);
      break;
    case ViewKind::kNoteFile:
      event.detail = std::string(kNoteName);
      break;
    case ViewKind::kDiffFile:
      event.detail = std::string(kDiffName);
      break;
    case ViewKind::kAnonFile:
      // Named by its @anon path (the audit path), so the entry shows what was handed out.
      event.op = AuditOp::kReadVersion;
      event.detail = std::string(kAnonDirName);
      break;
    default:
      event.op = AuditOp::kListDir;
      event.detail = ViewDirDetail(view);
      if (view.kind != ViewKind::kFileMeta) event.version = 0;
      break;
  }
  return event;
}

void RecordAudit(fuse_req_t req, Filesystem& fs, AuditEvent event) {
  const store::Caller caller = CallerOf(req);
  event.uid = caller.uid;
  event.gid = caller.gid;
  event.pid = caller.pid;
  event.program = caller.program;
  const Status status = fs.archive().RecordAudit(event);
  if (!status.ok()) {
    // The operation goes on: an audit failure must not become the user's failure.
    MEDVFS_LOG_ERROR("could not record a %s audit entry (uid %u, pid %u): %s",
                     std::string(store::AuditOpName(event.op)).c_str(), event.uid, event.pid,
                     status.ToString().c_str());
  }
}

Status AuditDenial(fuse_req_t req, Filesystem& fs, Status check, AuditEvent denied) {
  if (check.code() != store::Code::kAccess && check.code() != store::Code::kPermission) {
    return check;
  }
  denied.result = check.ToErrno();
  RecordAudit(req, fs, std::move(denied));
  return check;
}

Status RequireAccess(fuse_req_t req, Filesystem& fs, fuse_ino_t node, int mask, AuditOp op,
                     std::string_view name, std::string_view detail) {
  if (!Enforcing(fs)) return Status::Ok();
  MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, NodeAttr(fs, node));
  Status check = CheckAccess(CredentialsOf(req), attr, mask);
  if (check.ok()) return check;
  AuditEvent denied;
  denied.op = op;
  denied.path = name.empty() ? AuditPathOf(fs, node) : AuditPathOf(fs, node, name);
  denied.detail = detail;
  return AuditDenial(req, fs, std::move(check), std::move(denied));
}

Status RequireStickyAllows(fuse_req_t req, Filesystem& fs, fuse_ino_t dir, std::string_view name,
                           AuditOp op) {
  if (!Enforcing(fs)) return Status::Ok();
  MEDVFS_ASSIGN_OR_RETURN(store::Attr dir_attr, NodeAttr(fs, dir));
  if (!(dir_attr.mode & S_ISVTX)) return Status::Ok();
  auto record = fs.archive().ResolveName(dir, name);
  if (!record.ok() || !record->live()) return Status::Ok();
  MEDVFS_ASSIGN_OR_RETURN(store::Attr entry, fs.archive().GetAttr(record->ino));
  Status check = CheckSticky(CredentialsOf(req), dir_attr, entry);
  if (check.ok()) return check;
  AuditEvent denied;
  denied.op = op;
  denied.path = AuditPathOf(fs, dir, name);
  denied.detail = "sticky directory";
  return AuditDenial(req, fs, std::move(check), std::move(denied));
}

void AddAccessOps(fuse_lowlevel_ops& ops) { ops.access = Access; }

}  // namespace medvfs::fs::internal
