// symlink, readlink, link, unlink, rename.
#include <linux/fs.h>

#include <optional>

#include "fs/op_util.h"

namespace medvfs::fs::internal {
namespace {

using store::AuditOp;
using store::Status;

constexpr int kWriteAndSearch = kMayWrite | kMayExec;

// The live node bound to `name` in `dir`, if any.
store::StatusOr<std::optional<store::Attr>> LiveAttrOf(Filesystem& fs, fuse_ino_t dir,
                                                       const char* name) {
  auto record = fs.archive().ResolveName(dir, name);
  if (!record.ok()) {
    if (record.status().code() == store::Code::kNotFound) return std::optional<store::Attr>();
    return record.status();
  }
  if (!record->live()) return std::optional<store::Attr>();
  MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, fs.archive().GetAttr(record->ino));
  return std::optional<store::Attr>(attr);
}

// vfs_rename's checks beyond both directories' w and x (fs/access.h).
Status CheckRenameSides(fuse_req_t req, Filesystem& fs, fuse_ino_t parent, const char* name,
                        fuse_ino_t new_parent, const char* new_name, unsigned int flags) {
  if (!Enforcing(fs) || parent == new_parent) return Status::Ok();
  MEDVFS_ASSIGN_OR_RETURN(std::optional<store::Attr> source, LiveAttrOf(fs, parent, name));
  if (!source) return Status::NotFound("no such entry");
  MEDVFS_ASSIGN_OR_RETURN(std::optional<store::Attr> target, LiveAttrOf(fs, new_parent, new_name));
  store::AuditEvent denied;
  denied.op = AuditOp::kRename;
  denied.path = AuditPathOf(fs, parent, name);
  denied.target_path = AuditPathOf(fs, new_parent, new_name);
  return AuditDenial(
      req, fs,
      CheckRenameNodes(CredentialsOf(req), *source, target, false, (flags & RENAME_EXCHANGE) != 0),
      std::move(denied));
}

void Symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  RunOp(req, "symlink", parent, [&]() -> Status {
    Filesystem& fs = Fs(req);
    MEDVFS_RETURN_IF_ERROR(CheckNewRealName(fs, parent, name));
    MEDVFS_RETURN_IF_ERROR(
        RequireAccess(req, fs, parent, kWriteAndSearch, AuditOp::kSymlink, name));
    MEDVFS_ASSIGN_OR_RETURN(store::NodeRef node,
                            fs.archive().MakeSymlink(parent, name, target, CallerOf(req)));
    fs.InvalidateHistoryEntry(parent, name);
    ReplyRealEntry(req, fs, std::move(node));
    return Status::Ok();
  });
}

void ReadLink(fuse_req_t req, fuse_ino_t ino) {
  RunOp(req, "readlink", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    std::string target;
    if (IsViewNode(ino)) {
      MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
      MEDVFS_ASSIGN_OR_RETURN(target, ReadViewLink(view));
    } else {
      MEDVFS_ASSIGN_OR_RETURN(target, fs.archive().ReadLink(ino));
    }
    fuse_reply_readlink(req, target.c_str());
    return Status::Ok();
  });
}

void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  RunOp(req, "link", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    MEDVFS_RETURN_IF_ERROR(CheckNewRealName(fs, new_parent, new_name));
    if (IsViewNode(ino)) {
      return Status(store::Code::kCrossDevice, "history files cannot be linked into the tree");
    }
    MEDVFS_RETURN_IF_ERROR(
        RequireAccess(req, fs, new_parent, kWriteAndSearch, AuditOp::kLink, new_name));
    if (Enforcing(fs)) {
      MEDVFS_ASSIGN_OR_RETURN(store::Attr source, fs.archive().GetAttr(ino));
      store::AuditEvent denied;
      denied.op = AuditOp::kLink;
      denied.path = AuditPathOf(fs, ino);
      denied.target_path = AuditPathOf(fs, new_parent, new_name);
      MEDVFS_RETURN_IF_ERROR(
          AuditDenial(req, fs, CheckLinkSource(CredentialsOf(req), source), std::move(denied)));
    }
    MEDVFS_ASSIGN_OR_RETURN(store::NodeRef node,
                            fs.archive().Link(ino, new_parent, new_name, CallerOf(req)));
    fs.InvalidateHistoryEntry(new_parent, new_name);
    ReplyRealEntry(req, fs, std::move(node));
    return Status::Ok();
  });
}

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  RunOp(req, "unlink", parent, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(parent) || IsViewName(parent, name)) return ViewIsReadOnly();
    MEDVFS_RETURN_IF_ERROR(RequireAccess(req, fs, parent, kWriteAndSearch, AuditOp::kUnlink, name));
    MEDVFS_RETURN_IF_ERROR(RequireStickyAllows(req, fs, parent, name, AuditOp::kUnlink));
    MEDVFS_RETURN_IF_ERROR(fs.archive().Unlink(parent, name, CallerOf(req)));
    fs.InvalidateHistoryEntry(parent, name);
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
            const char* new_name, unsigned int flags) {
  RunOp(req, "rename", parent, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(parent) || IsViewName(parent, name)) return ViewIsReadOnly();
    MEDVFS_RETURN_IF_ERROR(CheckNewRealName(fs, new_parent, new_name));
    if (flags & ~static_cast<unsigned int>(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
      return Status::Invalid("unsupported rename flags");  // RENAME_WHITEOUT
    }
    MEDVFS_RETURN_IF_ERROR(RequireAccess(req, fs, parent, kWriteAndSearch, AuditOp::kRename, name));
    MEDVFS_RETURN_IF_ERROR(
        RequireAccess(req, fs, new_parent, kWriteAndSearch, AuditOp::kRename, new_name));
    // may_delete() on both sides: the entry moved away, and the one replaced or exchanged.
    MEDVFS_RETURN_IF_ERROR(RequireStickyAllows(req, fs, parent, name, AuditOp::kRename));
    MEDVFS_RETURN_IF_ERROR(RequireStickyAllows(req, fs, new_parent, new_name, AuditOp::kRename));
    MEDVFS_RETURN_IF_ERROR(CheckRenameSides(req, fs, parent, name, new_parent, new_name, flags));
    MEDVFS_RETURN_IF_ERROR(
        fs.archive().Rename(parent, name, new_parent, new_name, flags, CallerOf(req)));
    fs.InvalidateHistoryEntry(parent, name);
    fs.InvalidateHistoryEntry(new_parent, new_name);
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

}  // namespace

void AddLinkOps(fuse_lowlevel_ops& ops) {
  ops.symlink = Symlink;
  ops.readlink = ReadLink;
  ops.link = Link;
  ops.unlink = Unlink;
  ops.rename = Rename;
}

}  // namespace medvfs::fs::internal
