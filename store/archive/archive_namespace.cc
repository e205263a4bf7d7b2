// The live namespace: lookup, create, link, unlink, rename, attributes, extended attributes.
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>

#include "store/archive/archive_impl.h"
#include "store/log.h"
#include "store/posix_acl.h"

namespace medvfs::store {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxSymlinkLength = 4095;

bool IsRegular(uint32_t mode) { return S_ISREG(mode); }

}  // namespace

Status ArchiveImpl::CheckName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return Status::Invalid("invalid name");
  if (name.size() > kMaxNameLength) return Status(Code::kNameTooLong, "name too long");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return Status::Invalid("invalid name");
  }
  return Status::Ok();
}

Status ArchiveImpl::LoadInode(InodeId ino, InodeRecord* record) {
  auto orphan = orphans_.find(ino);
  if (orphan != orphans_.end()) {
    *record = orphan->second;
    return Status::Ok();
  }
  Status s = GetRecord(InodeKey(ino), record);
  if (s.code() == Code::kNotFound) return Status::NotFound("no such inode");
  return s;
}

Status ArchiveImpl::LoadDir(InodeId ino, InodeRecord* record) {
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, record));
  if (!S_ISDIR(record->mode)) return Status(Code::kNotDirectory, "not a directory");
  if (record->nlink == 0) return Status::NotFound("directory removed");
  return Status::Ok();
}

StatusOr<DirentRecord> ArchiveImpl::FindEntry(InodeId parent, std::string_view name) {
  DirentRecord entry;
  Status s = GetRecord(DirentKey(parent, NameHash(name)), &entry);
  if (s.code() == Code::kNotFound) return Status::NotFound("no such entry");
  MEDVFS_RETURN_IF_ERROR(s);
  if (entry.name != name) return Status::NotFound("no such entry");  // hash collision
  return entry;
}

Attr ArchiveImpl::ToAttr(InodeId ino, const InodeRecord& r) {
  Attr a;
  a.ino = ino;
  a.mode = r.mode;
  a.uid = r.uid;
  a.gid = r.gid;
  a.nlink = r.nlink;
  a.size = r.size;
  a.rdev = r.rdev;
  a.atime_ns = r.atime_ns;
  a.mtime_ns = r.mtime_ns;
  a.ctime_ns = r.ctime_ns;
  a.history = r.history;
  a.version = r.version;
  for (const auto& [name, value] : r.xattrs) {
    if (name == kAclAccessXattr) a.acl = value;
  }
  auto session = sessions_.find(ino);
  if (session != sessions_.end()) {
    a.size = session->second->size.load();
    const int64_t written = session->second->mtime_ns.load();
    if (written > a.mtime_ns) a.mtime_ns = a.ctime_ns = written;
  }
  return a;
}

// REQUIRES: mu_ held, shared or exclusive.
void ArchiveImpl::CountLookup(InodeId ino) {
  std::lock_guard lookups_lock(lookups_mu_);
  ++lookups_[ino];
}

void ArchiveImpl::Forget(InodeId ino, uint64_t lookups) {
  std::lock_guard lock(mu_);
  auto it = lookups_.find(ino);
  if (it == lookups_.end()) return;
  it->second -= std::min(it->second, lookups);
  if (it->second > 0) return;
  lookups_.erase(it);
  if (!sessions_.contains(ino)) orphans_.erase(ino);
}

StatusOr<Attr> ArchiveImpl::GetAttr(InodeId ino) {
  std::shared_lock lock(mu_);
  InodeRecord record;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &record));
  return ToAttr(ino, record);
}

NodeRef::NodeRef(NodeRef&& other) noexcept
    : Attr(std::move(static_cast<Attr&>(other))),
      archive_(std::exchange(other.archive_, nullptr)) {}

NodeRef& NodeRef::operator=(NodeRef&& other) noexcept {
  if (this != &other) {
    if (archive_ != nullptr) archive_->Forget(ino, 1);
    static_cast<Attr&>(*this) = std::move(static_cast<Attr&>(other));
    archive_ = std::exchange(other.archive_, nullptr);
  }
  return *this;
}

NodeRef::~NodeRef() {
  if (archive_ != nullptr) archive_->Forget(ino, 1);
}

Attr NodeRef::Release() {
  archive_ = nullptr;
  return attr();
}

StatusOr<NodeRef> ArchiveImpl::Lookup(InodeId parent, std::string_view name) {
  std::shared_lock lock(mu_);
  InodeRecord dir;
  MEDVFS_RETURN_IF_ERROR(LoadDir(parent, &dir));
  if (name.size() > kMaxNameLength) return Status(Code::kNameTooLong, "name too long");
  MEDVFS_ASSIGN_OR_RETURN(DirentRecord entry, FindEntry(parent, name));
  InodeRecord child;
  Status s = LoadInode(entry.ino, &child);
  if (!s.ok()) {
    MEDVFS_LOG_ERROR("directory %llu names inode %llu, which cannot be loaded: %s",
                     static_cast<unsigned long long>(parent),
                     static_cast<unsigned long long>(entry.ino), s.ToString().c_str());
    return s.code() == Code::kNotFound ? Status::Corruption("dangling directory entry") : s;
  }
  CountLookup(entry.ino);
  return NodeRef(this, ToAttr(entry.ino, child));
}

StatusOr<std::vector<DirEntry>> ArchiveImpl::ReadDir(InodeId dir_ino) {
  std::shared_lock lock(mu_);
  InodeRecord dir;
  MEDVFS_RETURN_IF_ERROR(LoadDir(dir_ino, &dir));
  std::vector<DirEntry> entries;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<DirentRecord>(
      DirentPrefix(dir_ino), [&](std::string_view, const DirentRecord& entry) {
        entries.push_back({entry.name, entry.ino, entry.mode});
        return true;
      }));
  return entries;
}

void ArchiveImpl::TouchDir(KvBatch& batch, InodeId dir, InodeRecord& record, int64_t now,
                           int nlink_delta) {
  record.mtime_ns = record.ctime_ns = now;
  record.nlink = static_cast<uint32_t>(static_cast<int64_t>(record.nlink) + nlink_delta);
  PutRecord(batch, InodeKey(dir), record);
}

void ArchiveImpl::AddEntry(KvBatch& batch, InodeId parent, std::string_view name, InodeId ino,
                           const InodeRecord& node, int64_t now) {
  const std::string hash = NameHash(name);
  PutRecord(batch, DirentKey(parent, hash), DirentRecord{std::string(name), ino, node.mode});
  NameEventRecord event;
  event.name = std::string(name);
  event.time_ns = now;
  event.ino = ino;
  event.history = node.history;
  event.mode = node.mode;
  event.symlink_target = node.symlink_target;
  PutRecord(batch, NameEventKey(parent, hash, AllocateSeq()), event);
}

void ArchiveImpl::RemoveEntry(KvBatch& batch, InodeId parent, std::string_view name, int64_t now,
                              bool record_event) {
  const std::string hash = NameHash(name);
  batch.Delete(Family::kMeta, DirentKey(parent, hash));
  if (!record_event) return;
  // The removal event repeats the last binding, so the name's record keeps its history.
  NameEventRecord last;
  std::string key;
  std::string value;
  if (kv_->SeekLast(Family::kMeta, NameEventPrefix(parent, hash),
                    NameEventKey(parent, hash, UINT64_MAX), &key, &value)
          .ok()) {
    // A damaged event is reported when it is read; the removal is recorded regardless.
    if (!OpenRecord(key, value, &last).ok()) last = NameEventRecord{};
  }
  last.name = std::string(name);
  last.time_ns = now;
  last.removed = true;
  // How many of the history's versions the name held (what a copy made for it takes along).
  HistoryRecord history;
  if (last.history != 0 && GetRecord(HistoryKey(last.history), &history).ok()) {
    last.version = history.last_version;
  }
  PutRecord(batch, NameEventKey(parent, hash, AllocateSeq()), last);
}

void ArchiveImpl::RecordMetadataEvent(KvBatch& batch, HistoryId history, std::string what,
                                      const Caller& caller, int64_t now) {
  if (history == 0) return;
  MetadataEvent event{now, std::move(what), caller.uid, caller.pid, caller.program};
  PutRecord(batch, MetaEventKey(history, AllocateSeq()), event);
}

namespace {

// posix_acl_create(): a new node's mode and ACLs from its directory's default ACL, or its mode
// less the caller's umask when the directory has none.
Status InheritAcls(const InodeRecord& dir, uint32_t mode, const Caller& caller, InodeRecord* node) {
  std::string_view parent_default;
  for (const auto& [name, value] : dir.xattrs) {
    if (name == kAclDefaultXattr) parent_default = value;
  }
  MEDVFS_ASSIGN_OR_RETURN(InheritedAcl inherited, InheritAcl(parent_default, mode, caller.umask));
  node->mode = inherited.mode;
  if (!inherited.access.empty()) {
    node->xattrs.emplace_back(std::string(kAclAccessXattr), std::move(inherited.access));
  }
  if (!inherited.default_acl.empty()) {
    node->xattrs.emplace_back(std::string(kAclDefaultXattr), std::move(inherited.default_acl));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Attr> ArchiveImpl::DoMakeNode(InodeId parent, std::string_view name, uint32_t mode,
                                       uint64_t rdev, const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  MEDVFS_RETURN_IF_ERROR(CheckName(name));
  if ((mode & S_IFMT) == 0) mode |= S_IFREG;
  if (S_ISDIR(mode) || S_ISLNK(mode)) return Status::Invalid("use mkdir or symlink");
  std::lock_guard lock(mu_);
  InodeRecord dir;
  MEDVFS_RETURN_IF_ERROR(LoadDir(parent, &dir));
  if (FindEntry(parent, name).ok()) return Status::Exists("entry exists");
  const int64_t now = NowNs();
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(InheritAcls(dir, mode, caller, &node));
  const InodeId ino = AllocateInode();
  node.uid = caller.uid;
  node.gid = (dir.mode & S_ISGID) ? dir.gid : caller.gid;
  node.nlink = 1;
  node.rdev = rdev;
  node.atime_ns = node.mtime_ns = node.ctime_ns = now;
  if (!IsRegular(mode)) {
    // Nodes without a history remember their last name (for audit paths).
    node.parent = parent;
    node.name = std::string(name);
  }
  KvBatch batch;
  if (IsRegular(mode)) {
    MEDVFS_ASSIGN_OR_RETURN(node.history, HistoryForNewFile(batch, parent, name, ino));
  }
  PutRecord(batch, InodeKey(ino), node);
  AddEntry(batch, parent, name, ino, node, now);
  TouchDir(batch, parent, dir, now, 0);
  MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  CountLookup(ino);
  return ToAttr(ino, node);
}

StatusOr<Attr> ArchiveImpl::DoMakeDir(InodeId parent, std::string_view name, uint32_t mode,
                                      const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  MEDVFS_RETURN_IF_ERROR(CheckName(name));
  std::lock_guard lock(mu_);
  InodeRecord dir;
  MEDVFS_RETURN_IF_ERROR(LoadDir(parent, &dir));
  if (FindEntry(parent, name).ok()) return Status::Exists("entry exists");
  const int64_t now = NowNs();
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(InheritAcls(dir, S_IFDIR | (mode & 07777), caller, &node));
  const InodeId ino = AllocateInode();
  node.uid = caller.uid;
  node.gid = caller.gid;
  if (dir.mode & S_ISGID) {
    node.gid = dir.gid;
    node.mode |= S_ISGID;
  }
  node.nlink = 2;
  node.parent = parent;
  node.name = std::string(name);
  node.atime_ns = node.mtime_ns = node.ctime_ns = now;
  KvBatch batch;
  PutRecord(batch, InodeKey(ino), node);
  AddEntry(batch, parent, name, ino, node, now);
  TouchDir(batch, parent, dir, now, +1);
  MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  CountLookup(ino);
  return ToAttr(ino, node);
}

StatusOr<Attr> ArchiveImpl::DoMakeSymlink(InodeId parent, std::string_view name,
                                          std::string_view target, const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  MEDVFS_RETURN_IF_ERROR(CheckName(name));
  if (target.empty()) return Status(Code::kNotFound, "empty symlink target");
  if (target.size() > kMaxSymlinkLength) return Status(Code::kNameTooLong, "target too long");
  std::lock_guard lock(mu_);
  InodeRecord dir;
  MEDVFS_RETURN_IF_ERROR(LoadDir(parent, &dir));
  if (FindEntry(parent, name).ok()) return Status::Exists("entry exists");
  const int64_t now = NowNs();
  const InodeId ino = AllocateInode();
  InodeRecord node;
  node.mode = S_IFLNK | 0777;
  node.uid = caller.uid;
  node.gid = (dir.mode & S_ISGID) ? dir.gid : caller.gid;
  node.nlink = 1;
  node.size = target.size();
  node.symlink_target = std::string(target);
  node.parent = parent;  // the last name, for audit paths
  node.name = std::string(name);
  node.atime_ns = node.mtime_ns = node.ctime_ns = now;
  KvBatch batch;
  PutRecord(batch, InodeKey(ino), node);
  AddEntry(batch, parent, name, ino, node, now);
  TouchDir(batch, parent, dir, now, 0);
  MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  CountLookup(ino);
  return ToAttr(ino, node);
}

StatusOr<Attr> ArchiveImpl::DoLink(InodeId ino, InodeId new_parent, std::string_view new_name) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  MEDVFS_RETURN_IF_ERROR(CheckName(new_name));
  std::lock_guard lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  if (S_ISDIR(node.mode)) return Status(Code::kPermission, "hard links to directories");
  if (node.nlink == 0) return Status::NotFound("file was removed");
  InodeRecord dir;
  MEDVFS_RETURN_IF_ERROR(LoadDir(new_parent, &dir));
  if (FindEntry(new_parent, new_name).ok()) return Status::Exists("entry exists");
  const int64_t now = NowNs();
  node.nlink += 1;
  node.ctime_ns = now;
  if (!IsRegular(node.mode)) {
    node.parent = new_parent;  // the last name, for audit paths
    node.name = std::string(new_name);
  }
  KvBatch batch;
  HistoryRecord history;
  if (IsRegular(node.mode) && node.history != 0 &&
      GetRecord(HistoryKey(node.history), &history).ok() && history.fresh) {
    history.fresh = false;  // two names now: neither is a temporary one
    PutRecord(batch, HistoryKey(node.history), history);
  }
  PutRecord(batch, InodeKey(ino), node);
  AddEntry(batch, new_parent, new_name, ino, node, now);
  TouchDir(batch, new_parent, dir, now, 0);
  MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  CountLookup(ino);
  return ToAttr(ino, node);
}

Status ArchiveImpl::DropLink(KvBatch& batch, InodeId ino, InodeRecord& node, InodeId parent,
                             std::string_view name, const Caller& caller, int64_t now) {
  node.nlink -= 1;
  node.ctime_ns = now;
  if (node.nlink > 0) {
    PutRecord(batch, InodeKey(ino), node);
    return Status::Ok();
  }
  if (IsRegular(node.mode) && node.history != 0) {
    HistoryRecord history;
    MEDVFS_RETURN_IF_ERROR(GetRecord(HistoryKey(node.history), &history));
    history.live_ino = 0;
    history.last_parent = parent;  // where a restore brings it back
    history.last_name = std::string(name);
    if (history.scratch) {
      // A deleted scratch file leaves nothing.
      MEDVFS_RETURN_IF_ERROR(EraseScratchHistory(batch, node.history, history));
    } else if (history.last_version > 0) {
      const VersionRecord marker = NewVersion(node.history, &history, VersionInfo{},
                                              Operation::kDeleteMarker, now, caller, node);
      PutVersion(batch, node.history, marker, ExtentList());
      PutRecord(batch, HistoryKey(node.history), history);
    } else {
      // Never committed: leaves no history at all.
      MEDVFS_RETURN_IF_ERROR(
          EraseHistory(batch, node.history, history.last_parent, history.last_name));
    }
  }
  batch.Delete(Family::kMeta, InodeKey(ino));
  UpdatePatientIndex(batch, ino, nullptr);
  // The kernel may still hold the inode (open files): keep it in memory until forgotten.
  if (lookups_.contains(ino) || sessions_.contains(ino)) orphans_[ino] = node;
  return Status::Ok();
}

Status ArchiveImpl::DoUnlink(InodeId parent, std::string_view name, const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  std::lock_guard lock(mu_);
  InodeRecord dir;
  MEDVFS_RETURN_IF_ERROR(LoadDir(parent, &dir));
  MEDVFS_ASSIGN_OR_RETURN(DirentRecord entry, FindEntry(parent, name));
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(entry.ino, &node));
  if (S_ISDIR(node.mode)) return Status(Code::kIsDirectory, "is a directory");
  const int64_t now = NowNs();
  KvBatch batch;
  // A file that was never committed leaves no trace; any other leaves a removal event.
  bool leaves_history = true;
  if (IsRegular(node.mode) && node.history != 0 && node.nlink == 1) {
    HistoryRecord history;
    MEDVFS_RETURN_IF_ERROR(GetRecord(HistoryKey(node.history), &history));
    leaves_history = history.last_version > 0 && !history.scratch;
  }
  RemoveEntry(batch, parent, name, now, leaves_history);
  MEDVFS_RETURN_IF_ERROR(DropLink(batch, entry.ino, node, parent, name, caller, now));
  TouchDir(batch, parent, dir, now, 0);
  MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  return Status::Ok();
}

Status ArchiveImpl::DoRemoveDir(InodeId parent, std::string_view name) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  if (name == ".") return Status::Invalid("cannot remove .");
  if (name == "..") return Status(Code::kNotEmpty, "cannot remove ..");
  std::lock_guard lock(mu_);
  InodeRecord dir;
  MEDVFS_RETURN_IF_ERROR(LoadDir(parent, &dir));
  MEDVFS_ASSIGN_OR_RETURN(DirentRecord entry, FindEntry(parent, name));
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(entry.ino, &node));
  if (!S_ISDIR(node.mode)) return Status(Code::kNotDirectory, "not a directory");
  bool empty = true;
  MEDVFS_RETURN_IF_ERROR(
      kv_->Scan(Family::kMeta, DirentPrefix(entry.ino), [&](std::string_view, std::string_view) {
        empty = false;
        return false;
      }));
  if (!empty) return Status(Code::kNotEmpty, "directory not empty");
  const int64_t now = NowNs();
  KvBatch batch;
  RemoveEntry(batch, parent, name, now);
  batch.Delete(Family::kMeta, InodeKey(entry.ino));
  node.nlink = 0;
  if (lookups_.contains(entry.ino)) orphans_[entry.ino] = node;
  TouchDir(batch, parent, dir, now, -1);
  return WriteBatchLocked(batch);
}

StatusOr<std::string> ArchiveImpl::ReadLink(InodeId ino) {
  std::shared_lock lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  if (!S_ISLNK(node.mode)) return Status::Invalid("not a symlink");
  return node.symlink_target;
}

}  // namespace medvfs::store
