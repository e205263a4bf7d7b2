#include "fs/access.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

#include "store/posix_acl.h"

namespace medvfs::fs {
namespace {

using store::Status;

Status Denied() { return Status(store::Code::kAccess, "permission denied"); }
Status NotPermitted() { return Status(store::Code::kPermission, "operation not permitted"); }

bool IsOwner(const Credentials& creds, const store::Attr& attr) { return creds.uid() == attr.uid; }

}  // namespace

bool Credentials::InGroup(uint32_t gid) const {
  if (gid == gid_) return true;
  if (!groups_) groups_ = load_groups_ ? load_groups_() : std::vector<uint32_t>{};
  return std::find(groups_->begin(), groups_->end(), gid) != groups_->end();
}

Status CheckSticky(const Credentials& creds, const store::Attr& dir, const store::Attr& entry) {
  if (!(dir.mode & S_ISVTX) || creds.is_root()) return Status::Ok();
  if (IsOwner(creds, entry) || IsOwner(creds, dir)) return Status::Ok();
  return NotPermitted();
}

Status CheckAccess(const Credentials& creds, const store::Attr& attr, int mask) {
  mask &= kMayRead | kMayWrite | kMayExec;
  if (creds.is_root()) {
    if (!(mask & kMayExec) || S_ISDIR(attr.mode) || (attr.mode & 0111)) return Status::Ok();
    return Denied();
  }
  if (!attr.acl.empty()) {
    if (auto acl = store::ParseAcl(attr.acl); acl.ok()) {
      const bool permitted = store::AclPermits(
          *acl, attr.uid, creds.uid(), [&](uint32_t gid) { return creds.InGroup(gid); }, attr.gid,
          mask);
      return permitted ? Status::Ok() : Denied();
    }
  }
  uint32_t granted = 0;
  if (IsOwner(creds, attr)) {
    granted = (attr.mode >> 6) & 7;
  } else if (creds.InGroup(attr.gid)) {
    granted = (attr.mode >> 3) & 7;
  } else {
    granted = attr.mode & 7;
  }
  return (static_cast<uint32_t>(mask) & ~granted) == 0 ? Status::Ok() : Denied();
}

int OpenMask(int flags) {
  int mask = 0;
  switch (flags & O_ACCMODE) {
    case O_RDONLY:
      mask = kMayRead;
      break;
    case O_WRONLY:
      mask = kMayWrite;
      break;
    default:
      mask = kMayRead | kMayWrite;
      break;
  }
  if (flags & O_TRUNC) mask |= kMayWrite;
  return mask;
}

Status CheckSetAttr(const Credentials& creds, const store::Attr& current, AttrChange* change) {
  const bool root = creds.is_root();
  const bool owner = IsOwner(creds, current);
  if (change->uid && !root && !(owner && *change->uid == current.uid)) return NotPermitted();
  if (change->gid && !root) {
    if (!owner || (*change->gid != current.gid && !creds.InGroup(*change->gid))) {
      return NotPermitted();
    }
  }
  if (change->mode) {
    const uint32_t old_bits = current.mode & 07777;
    const uint32_t new_bits = *change->mode & 07777;
    if (!root && !owner) {
      // Only the kernel's own "kill set-id bits" on a write by a non-owner: the same bits
      // minus S_ISUID/S_ISGID, by someone who may write the file.
      const bool only_clears_setid = (new_bits & ~old_bits) == 0 &&
                                     ((old_bits ^ new_bits) & ~uint32_t{S_ISUID | S_ISGID}) == 0;
      if (!only_clears_setid) return NotPermitted();
      MEDVFS_RETURN_IF_ERROR(CheckAccess(creds, current, kMayWrite));
    } else if (!root && !creds.InGroup(change->gid.value_or(current.gid))) {
      change->mode = new_bits & ~static_cast<uint32_t>(S_ISGID);
    }
  }
  if (change->size && !change->size_through_handle) {
    MEDVFS_RETURN_IF_ERROR(CheckAccess(creds, current, kMayWrite));
  }
  // Times sent along with a size change are the truncate's own.
  if (change->times && !change->size && !root && !owner) {
    if (!change->times_now) return NotPermitted();
    MEDVFS_RETURN_IF_ERROR(CheckAccess(creds, current, kMayWrite));
  }
  return Status::Ok();
}

Status CheckXattr(const Credentials& creds, const store::Attr& attr, std::string_view name,
                  XattrAccess access) {
  const bool write = access == XattrAccess::kWrite;
  if (name.starts_with("trusted.")) {
    if (creds.is_root()) return Status::Ok();
    return write ? NotPermitted() : Status(store::Code::kNoData, "no such attribute");
  }
  if (name.starts_with("security.")) {
    return (!write || creds.is_root()) ? Status::Ok() : NotPermitted();
  }
  if (name.starts_with("user.")) return CheckAccess(creds, attr, write ? kMayWrite : kMayRead);
  if (store::IsAclXattr(name)) {
    // posix_acl_xattr_set(): only the owner (or root) sets a node's ACLs; anyone reads them.
    return (!write || creds.is_root() || IsOwner(creds, attr)) ? Status::Ok() : NotPermitted();
  }
  return Status::Ok();
}

Status CheckLinkSource(const Credentials& creds, const store::Attr& source) {
  if (creds.is_root() || IsOwner(creds, source)) return Status::Ok();
  if (!S_ISREG(source.mode) || (source.mode & S_ISUID)) return NotPermitted();
  if ((source.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) return NotPermitted();
  if (!CheckAccess(creds, source, kMayRead | kMayWrite).ok()) return NotPermitted();
  return Status::Ok();
}

Status CheckRenameNodes(const Credentials& creds, const store::Attr& source,
                        const std::optional<store::Attr>& target, bool same_parent, bool exchange) {
  if (same_parent) return Status::Ok();
  if (S_ISDIR(source.mode)) MEDVFS_RETURN_IF_ERROR(CheckAccess(creds, source, kMayWrite));
  if (exchange && target && S_ISDIR(target->mode)) {
    MEDVFS_RETURN_IF_ERROR(CheckAccess(creds, *target, kMayWrite));
  }
  return Status::Ok();
}

}  // namespace medvfs::fs
