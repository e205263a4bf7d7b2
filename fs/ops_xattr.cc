// setxattr, getxattr, listxattr, removexattr.
//
// Some attributes are served here rather than by the store: user.medvfs.restore (settable on
// DIR/@version/NAME: restores a version), user.medvfs.stats (readable on the mount root: the
// archive's statistics as JSON), and the virtual attributes of live files (fs/file_xattrs.h:
// user.medvfs.version, .sha256, .note, .anon_path and user.dicom.<Keyword>). None of them is
// listed: the
// namespaces user.medvfs. and user.dicom. are medvfs's, and listxattr shows stored
// attributes only, so that cp -a, rsync -X and getfattr -d copy nothing virtual.
#include "fs/file_xattrs.h"
#include "fs/op_util.h"
#include "fs/view_detail.h"
#include "store/log.h"
#include "store/posix_acl.h"

namespace medvfs::fs::internal {
namespace {

using store::AuditOp;
using store::Status;

// With Enforcing: xattr_permission() for `name` on live node `ino`; a denial is recorded as
// `op` (kReadMeta for reads) with the attribute's name as detail.
Status CheckLiveXattr(fuse_req_t req, Filesystem& fs, fuse_ino_t ino, std::string_view name,
                      XattrAccess access, AuditOp op) {
  if (!Enforcing(fs)) return Status::Ok();
  MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, fs.archive().GetAttr(ino));
  store::AuditEvent denied;
  denied.op = op;
  denied.path = AuditPathOf(fs, ino);
  denied.detail = op == AuditOp::kReadMeta ? "xattr " + std::string(name) : std::string(name);
  return AuditDenial(req, fs, CheckXattr(CredentialsOf(req), attr, name, access),
                     std::move(denied));
}

// With Enforcing: restoring through DIR/@version/NAME writes the file, so it needs w on the
// file (its current, or for a deleted file its last, owner and mode), and, when the name is
// gone, w and x on DIR to bring it back.
Status CheckRestore(fuse_req_t req, Filesystem& fs, fuse_ino_t node, const ViewDescriptor& view) {
  if (!Enforcing(fs) || view.kind != ViewKind::kHistory) return Status::Ok();
  const Credentials creds = CredentialsOf(req);
  MEDVFS_ASSIGN_OR_RETURN(
      store::Attr guard, view_detail::GuardOfName(fs.archive(), view.ino, view.text, view.history));
  Status check = CheckAccess(creds, guard, kMayWrite);
  if (check.ok()) {
    auto record = fs.archive().ResolveName(view.ino, view.text);
    if (!record.ok() || !record->live()) {
      MEDVFS_ASSIGN_OR_RETURN(store::Attr dir, fs.archive().GetAttr(view.ino));
      check = CheckAccess(creds, dir, kMayWrite | kMayExec);
    }
  }
  store::AuditEvent denied;
  denied.op = AuditOp::kRestore;
  denied.path = fs.nodes().AuditPath(node);
  return AuditDenial(req, fs, std::move(check), std::move(denied));
}

// The size-0 query protocol: with size 0 reply the length; ERANGE when the buffer is short.
Status ReplyXattrValue(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (value.size() > size) {
    return Status(store::Code::kRange, "xattr buffer too small");
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
  return Status::Ok();
}

// Tells the kernel to drop what it caches about a live inode whose content changed behind
// its back (a restore).
void InvalidateInode(Filesystem& fs, store::InodeId ino) {
  fuse_session* session = fs.session();
  if (session == nullptr) return;
  const int rc = fuse_lowlevel_notify_inval_inode(session, ino, 0, 0);
  if (rc != 0 && rc != -ENOENT) {
    MEDVFS_LOG_WARNING("could not invalidate node %llu: error %d",
                       static_cast<unsigned long long>(ino), -rc);
  }
}

// A live file's access ACL changed: so did its history directories' (HistoryDirAttr).
void InvalidateHistoryAcl(Filesystem& fs, store::InodeId ino, std::string_view name) {
  if (name != store::kAclAccessXattr) return;
  auto attr = fs.archive().GetAttr(ino);
  if (attr.ok()) fs.InvalidateHistoryAttrs(attr->history);
}

// The access ACL of a view node: a version's (as the live file had it then, without w, as
// the version's mode has none); other views have none.
Status GetViewAcl(fuse_req_t req, Filesystem& fs, fuse_ino_t ino, std::string_view name,
                  size_t size) {
  if (name != store::kAclAccessXattr) return Status(store::Code::kNoData, "no ACL");
  MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
  MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, ViewAttrOf(fs, view));
  if (attr.acl.empty()) return Status(store::Code::kNoData, "no ACL");
  return ReplyXattrValue(req, attr.acl, size);
}

void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) {
  RunOp(req, "setxattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(ino)) {
      if (name != kRestoreXattr) return ViewIsReadOnly();
      if (fs.config().read_only) return Status::ReadOnly("mounted read-only");
      MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
      MEDVFS_RETURN_IF_ERROR(CheckRestore(req, fs, ino, view));
      MEDVFS_ASSIGN_OR_RETURN(
          store::Attr live,
          RestoreFromView(fs.archive(), view, std::string_view(value, size), CallerOf(req)));
      fs.InvalidateHistoryAttrs(live.history);  // a relinked file guards its history again
      fuse_reply_err(req, 0);
      InvalidateInode(fs, live.ino);
      InvalidateInode(fs, view.ino);  // the directory that holds the name (relinked if deleted)
      return Status::Ok();
    }
    if (fs.config().read_only) return Status::ReadOnly("mounted read-only");
    MEDVFS_RETURN_IF_ERROR(
        CheckLiveXattr(req, fs, ino, name, XattrAccess::kWrite, AuditOp::kSetXattr));
    if (IsVirtualXattr(name)) {
      MEDVFS_RETURN_IF_ERROR(SetVirtualXattr(fs.archive(), ino, name, std::string_view(value, size),
                                             flags, CallerOf(req)));
      fuse_reply_err(req, 0);
      return Status::Ok();
    }
    MEDVFS_RETURN_IF_ERROR(
        fs.archive().SetXattr(ino, name, std::string_view(value, size), flags, CallerOf(req)));
    InvalidateHistoryAcl(fs, ino, name);
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  RunOp(req, "getxattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(ino)) return GetViewAcl(req, fs, ino, name, size);
    // The root's attributes (and stored ones anyone may have set) could name patients.
    if (fs.config().anon_only) return Status(store::Code::kNoData, "this mount serves @anon only");
    MEDVFS_RETURN_IF_ERROR(
        CheckLiveXattr(req, fs, ino, name, XattrAccess::kRead, AuditOp::kReadMeta));
    std::string value;
    if (ino == FUSE_ROOT_ID && name == kStatsXattr) {
      MEDVFS_ASSIGN_OR_RETURN(store::ArchiveStats stats, fs.archive().Stats());
      value = FormatStatsJson(stats);
    } else if (IsVirtualXattr(name)) {
      if (name == kAnonPathXattr) {
        MEDVFS_ASSIGN_OR_RETURN(value, fs.anon().PathOfLiveFile(ino, fs.StableGeneration()));
      } else if (name == kAnonWithheldXattr) {  // why a DICOM file is not in @anon
        MEDVFS_ASSIGN_OR_RETURN(value,
                                fs.anon().WithheldReasonOfLiveFile(ino, fs.StableGeneration()));
      } else {
        // user.medvfs.sha256 may compute a deferred digest: an interrupted request stops it.
        auto got = GetVirtualXattr(fs.archive(), ino, name,
                                   [req] { return fuse_req_interrupted(req) != 0; });
        if (!got.ok() && fuse_req_interrupted(req) != 0) {
          fuse_reply_err(req, EINTR);
          return Status::Ok();
        }
        MEDVFS_ASSIGN_OR_RETURN(value, std::move(got));
      }
      if (size != 0) {  // the value itself (user.dicom.PatientName...), not just its length
        store::AuditEvent read;
        read.op = AuditOp::kReadMeta;
        read.path = AuditPathOf(fs, ino);
        read.detail = "xattr " + std::string(name);
        RecordAudit(req, fs, std::move(read));
      }
    } else {
      MEDVFS_ASSIGN_OR_RETURN(value, fs.archive().GetXattr(ino, name));
    }
    return ReplyXattrValue(req, value, size);
  });
}

void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  RunOp(req, "listxattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    std::string names;
    if (!IsViewNode(ino) && !fs.config().anon_only) {
      MEDVFS_ASSIGN_OR_RETURN(auto list, fs.archive().ListXattr(ino));
      for (const std::string& name : list) {
        if (IsVirtualXattr(name)) continue;  // never stored since medvfs owns the namespace
        names += name;
        names += '\0';
      }
    }
    return ReplyXattrValue(req, names, size);
  });
}

void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  RunOp(req, "removexattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(ino)) return ViewIsReadOnly();
    if (fs.config().read_only) return Status::ReadOnly("mounted read-only");
    MEDVFS_RETURN_IF_ERROR(
        CheckLiveXattr(req, fs, ino, name, XattrAccess::kWrite, AuditOp::kRemoveXattr));
    if (IsVirtualXattr(name)) {
      MEDVFS_RETURN_IF_ERROR(RemoveVirtualXattr(fs.archive(), ino, name, CallerOf(req)));
    } else {
      MEDVFS_RETURN_IF_ERROR(fs.archive().RemoveXattr(ino, name, CallerOf(req)));
      InvalidateHistoryAcl(fs, ino, name);
    }
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

}  // namespace

void AddXattrOps(fuse_lowlevel_ops& ops) {
  ops.setxattr = SetXattr;
  ops.getxattr = GetXattr;
  ops.listxattr = ListXattr;
  ops.removexattr = RemoveXattr;
}

}  // namespace medvfs::fs::internal
