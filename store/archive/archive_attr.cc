// Attributes (chmod, chown, utimens, truncate) and extended attributes.
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstdio>

#include "store/archive/archive_impl.h"

namespace medvfs::store {
namespace {

constexpr size_t kMaxXattrNameLength = 255;
constexpr size_t kMaxXattrValueSize = size_t{64} * 1024;
constexpr size_t kMaxXattrTotalSize = size_t{256} * 1024;

Status CheckXattrName(std::string_view name) {
  if (name.empty()) return Status::Invalid("empty attribute name");
  if (name.size() > kMaxXattrNameLength) return Status(Code::kRange, "attribute name too long");
  if (name.starts_with("user.") || name.starts_with("trusted.") || name.starts_with("security.")) {
    return Status::Ok();
  }
  return Status::NotSupported("attribute namespace not supported");
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
  std::lock_guard lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  for (const auto& [key, value] : node.xattrs) {
    if (key == name) return value;
  }
  return Status(Code::kNoData, "no such attribute");
}

StatusOr<std::vector<std::string>> ArchiveImpl::ListXattr(InodeId ino) {
  std::lock_guard lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  std::vector<std::string> names;
  for (const auto& entry : node.xattrs) names.push_back(entry.first);
  return names;
}

Status ArchiveImpl::DoSetXattr(InodeId ino, std::string_view name, std::string_view value,
                               int flags) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  MEDVFS_RETURN_IF_ERROR(CheckXattrName(name));
  if (value.size() > kMaxXattrValueSize) return Status(Code::kTooBig, "attribute too large");
  std::lock_guard lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  auto it = std::find_if(node.xattrs.begin(), node.xattrs.end(),
                         [&](const auto& entry) { return entry.first == name; });
  if (it != node.xattrs.end() && (flags & XATTR_CREATE)) {
    return Status::Exists("attribute exists");
  }
  if (it == node.xattrs.end() && (flags & XATTR_REPLACE)) {
    return Status(Code::kNoData, "no such attribute");
  }
  size_t total = name.size() + value.size();
  for (const auto& [key, old] : node.xattrs) {
    if (key != name) total += key.size() + old.size();
  }
  if (total > kMaxXattrTotalSize) return Status(Code::kNoSpace, "no room for more attributes");
  if (it != node.xattrs.end()) {
    it->second = std::string(value);
  } else {
    node.xattrs.emplace_back(std::string(name), std::string(value));
    std::sort(node.xattrs.begin(), node.xattrs.end());
  }
  node.ctime_ns = NowNs();
  if (orphans_.contains(ino)) {
    orphans_[ino] = node;
    return Status::Ok();
  }
  KvBatch batch;
  PutRecord(batch, InodeKey(ino), node);
  return WriteBatchLocked(batch);
}

Status ArchiveImpl::DoRemoveXattr(InodeId ino, std::string_view name) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  std::lock_guard lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  auto it = std::find_if(node.xattrs.begin(), node.xattrs.end(),
                         [&](const auto& entry) { return entry.first == name; });
  if (it == node.xattrs.end()) return Status(Code::kNoData, "no such attribute");
  node.xattrs.erase(it);
  node.ctime_ns = NowNs();
  if (orphans_.contains(ino)) {
    orphans_[ino] = node;
    return Status::Ok();
  }
  KvBatch batch;
  PutRecord(batch, InodeKey(ino), node);
  return WriteBatchLocked(batch);
}

}  // namespace medvfs::store
