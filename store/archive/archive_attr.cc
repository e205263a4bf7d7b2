// Attributes (chmod, chown, utimens, truncate) and extended attributes.
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstdio>

#include "store/archive/archive_impl.h"
#include "store/posix_acl.h"

namespace medvfs::store {
namespace {

constexpr size_t kMaxXattrNameLength = 255;
constexpr size_t kMaxXattrValueSize = size_t{64} * 1024;
constexpr size_t kMaxXattrTotalSize = size_t{256} * 1024;

Status CheckXattrName(std::string_view name) {
  if (name.empty()) return Status::Invalid("empty attribute name");
  if (name.size() > kMaxXattrNameLength) return Status(Code::kRange, "attribute name too long");
  if (name.starts_with("user.") || name.starts_with("trusted.") || name.starts_with("security.") ||
      IsAclXattr(name)) {
    return Status::Ok();
  }
  return Status::NotSupported("attribute namespace not supported");
}

using XattrList = std::vector<std::pair<std::string, std::string>>;

XattrList::iterator FindXattr(XattrList& xattrs, std::string_view name) {
  return std::find_if(xattrs.begin(), xattrs.end(),
                      [&](const auto& entry) { return entry.first == name; });
}

// posix_acl_chmod(): the access ACL follows new permission bits.
Status ChmodAccessAcl(InodeRecord* node) {
  auto it = FindXattr(node->xattrs, kAclAccessXattr);
  if (it == node->xattrs.end()) return Status::Ok();
  MEDVFS_ASSIGN_OR_RETURN(Acl acl, ParseAcl(it->second));
  ChmodAcl(&acl, node->mode);
  it->second = SerializeAcl(acl);
  return Status::Ok();
}

// What setting ACL `name` to `value` does besides storing it (posix_acl_update_mode and
// set_posix_acl): an access ACL sets the permission bits and is not kept when they say it all;
// an ACL of no entries is a removal; default ACLs only exist on directories. Returns the value
// to store, empty for none.
StatusOr<std::string> PrepareAcl(InodeRecord* node, std::string_view name, std::string_view value,
                                 const Caller& caller) {
  MEDVFS_ASSIGN_OR_RETURN(Acl acl, ParseAcl(value));
  if (name == kAclDefaultXattr) {
    if (!S_ISDIR(node->mode) && !acl.empty()) {
      return Status(Code::kAccess, "default ACLs are for directories");
    }
    return acl.empty() ? std::string() : SerializeAcl(acl);
  }
  if (acl.empty()) return std::string();
  const AclMode equivalent = ModeOfAcl(acl);
  node->mode = (node->mode & ~uint32_t{0777}) | equivalent.perms;
  // Without being in the file's group (or root), S_ISGID goes, as chmod would drop it.
  if (caller.uid != 0 && caller.gid != node->gid) node->mode &= ~static_cast<uint32_t>(S_ISGID);
  return equivalent.equivalent ? std::string() : SerializeAcl(acl);
}

std::string AclEvent(std::string_view name, bool removed) {
  std::string what = name == kAclDefaultXattr ? "setfacl -d" : "setfacl";
  return removed ? what + " -b" : what;
}

}  // namespace

StatusOr<Attr> ArchiveImpl::DoSetAttr(InodeId ino, const SetAttrRequest& request,
                                      const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  if (request.size.has_value()) {
    if (*request.size > kMaxFileSize) {
      return Status(Code::kTooBig, "a file can hold at most " + std::to_string(kMaxFileSize >> 30) +
                                       " GiB (the archive's limit)");
    }
    InodeRecord node;
    std::shared_ptr<WriteSession> session;
    {
      std::lock_guard lock(mu_);
      MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
      if (S_ISDIR(node.mode)) return Status(Code::kIsDirectory, "is a directory");
      if (!S_ISREG(node.mode)) return Status::Invalid("not a regular file");
      auto it = sessions_.find(ino);
      if (it != sessions_.end()) session = it->second;
    }
    if (session) {
      // Joins the pending version of the open handles.
      std::lock_guard session_lock(session->mu);
      MEDVFS_RETURN_IF_ERROR(session->content.Truncate(*request.size));
      session->dirty = true;
      session->size = *request.size;
      session->mtime_ns = NowNs();
    } else {
      MEDVFS_RETURN_IF_ERROR(TruncateClosed(ino, *request.size, caller));
    }
  }
  std::lock_guard lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  const int64_t now = NowNs();
  KvBatch batch;
  if (request.mode.has_value()) {
    node.mode = (node.mode & S_IFMT) | (*request.mode & 07777);
    MEDVFS_RETURN_IF_ERROR(ChmodAccessAcl(&node));
    RecordMetadataEvent(
        batch, node.history,
        "chmod " +
            [&] {
              char text[8];
              std::snprintf(text, sizeof(text), "%04o", *request.mode & 07777);
              return std::string(text);
            }(),
        caller, now);
  }
  if (request.uid.has_value() || request.gid.has_value()) {
    if (request.uid.has_value()) node.uid = *request.uid;
    if (request.gid.has_value()) node.gid = *request.gid;
    // chown by anyone clears set-user-id and (for group-executable files) set-group-id.
    if (!S_ISDIR(node.mode)) {
      node.mode &= ~static_cast<uint32_t>(S_ISUID);
      if (node.mode & S_IXGRP) node.mode &= ~static_cast<uint32_t>(S_ISGID);
    }
    RecordMetadataEvent(batch, node.history,
                        "chown " + std::to_string(node.uid) + ":" + std::to_string(node.gid),
                        caller, now);
  }
  if (request.atime_ns.has_value()) node.atime_ns = *request.atime_ns;
  if (request.mtime_ns.has_value()) node.mtime_ns = *request.mtime_ns;
  node.ctime_ns = now;
  if (orphans_.contains(ino)) {
    orphans_[ino] = node;
    return ToAttr(ino, node);
  }
  PutRecord(batch, InodeKey(ino), node);
  MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  Attr attr = ToAttr(ino, node);
  // An explicit mtime wins over the pending write time.
  if (request.mtime_ns.has_value()) {
    attr.mtime_ns = *request.mtime_ns;
    auto it = sessions_.find(ino);
    if (it != sessions_.end()) it->second->mtime_ns = 0;
  }
  return attr;
}

StatusOr<std::string> ArchiveImpl::GetXattr(InodeId ino, std::string_view name) {
  std::shared_lock lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  for (const auto& [key, value] : node.xattrs) {
    if (key == name) return value;
  }
  return Status(Code::kNoData, "no such attribute");
}

StatusOr<std::vector<std::string>> ArchiveImpl::ListXattr(InodeId ino) {
  std::shared_lock lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  std::vector<std::string> names;
  for (const auto& entry : node.xattrs) names.push_back(entry.first);
  return names;
}

Status ArchiveImpl::DoSetXattr(InodeId ino, std::string_view name, std::string_view value,
                               int flags, const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  MEDVFS_RETURN_IF_ERROR(CheckXattrName(name));
  if (value.size() > kMaxXattrValueSize) return Status(Code::kTooBig, "attribute too large");
  std::lock_guard lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  auto it = FindXattr(node.xattrs, name);
  if (it != node.xattrs.end() && (flags & XATTR_CREATE)) {
    return Status::Exists("attribute exists");
  }
  if (it == node.xattrs.end() && (flags & XATTR_REPLACE)) {
    return Status(Code::kNoData, "no such attribute");
  }
  std::string stored(value);
  const bool acl = IsAclXattr(name);
  if (acl) {
    if (S_ISLNK(node.mode)) return Status::NotSupported("symlinks have no ACLs");
    MEDVFS_ASSIGN_OR_RETURN(stored, PrepareAcl(&node, name, value, caller));
  }
  size_t total = name.size() + stored.size();
  for (const auto& [key, old] : node.xattrs) {
    if (key != name) total += key.size() + old.size();
  }
  if (total > kMaxXattrTotalSize) return Status(Code::kNoSpace, "no room for more attributes");
  if (acl && stored.empty()) {
    // Equivalent to the permission bits, or no entries: nothing to keep.
    if (it != node.xattrs.end()) node.xattrs.erase(it);
  } else if (it != node.xattrs.end()) {
    it->second = std::move(stored);
  } else {
    node.xattrs.emplace_back(std::string(name), std::move(stored));
    std::sort(node.xattrs.begin(), node.xattrs.end());
  }
  const int64_t now = NowNs();
  node.ctime_ns = now;
  if (orphans_.contains(ino)) {
    orphans_[ino] = node;
    return Status::Ok();
  }
  KvBatch batch;
  // A setfacl is a metadata change recorded on the version chain, as chmod is.
  if (acl) RecordMetadataEvent(batch, node.history, AclEvent(name, false), caller, now);
  PutRecord(batch, InodeKey(ino), node);
  return WriteBatchLocked(batch);
}

Status ArchiveImpl::DoRemoveXattr(InodeId ino, std::string_view name, const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  std::lock_guard lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  auto it = FindXattr(node.xattrs, name);
  if (it == node.xattrs.end()) return Status(Code::kNoData, "no such attribute");
  node.xattrs.erase(it);
  const int64_t now = NowNs();
  node.ctime_ns = now;
  if (orphans_.contains(ino)) {
    orphans_[ino] = node;
    return Status::Ok();
  }
  KvBatch batch;
  if (IsAclXattr(name)) RecordMetadataEvent(batch, node.history, AclEvent(name, true), caller, now);
  PutRecord(batch, InodeKey(ino), node);
  return WriteBatchLocked(batch);
}

}  // namespace medvfs::store
