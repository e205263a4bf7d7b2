// History views: names that ever existed, version chains, a directory at a moment, restore.
#include <sys/stat.h>

#include <map>
#include <optional>

#include "store/archive/archive_impl.h"
#include "store/posix_acl.h"

namespace medvfs::store {
namespace {

NameRecord ToNameRecord(const NameEventRecord& event) {
  NameRecord record;
  record.name = event.name;
  record.mode = event.mode;
  record.ino = event.removed ? 0 : event.ino;
  record.history = S_ISREG(event.mode) ? event.history : 0;
  record.last_ino = event.ino;
  return record;
}

}  // namespace

StatusOr<std::vector<NameRecord>> ArchiveImpl::ListNames(InodeId dir) {
  // Events are keyed parent | name hash | sequence, so the last event of each name comes
  // right before the next name's first.
  std::map<std::string, NameRecord> by_name;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<NameEventRecord>(
      NameEventPrefix(dir), [&](std::string_view, const NameEventRecord& event) {
        by_name[event.name] = ToNameRecord(event);
        return true;
      }));
  std::vector<NameRecord> names;
  names.reserve(by_name.size());
  for (auto& [name, record] : by_name) names.push_back(std::move(record));
  return names;
}

StatusOr<NameRecord> ArchiveImpl::ResolveName(InodeId dir, std::string_view name) {
  NameEventRecord event;
  MEDVFS_RETURN_IF_ERROR(LastNameEvent(dir, name, &event));
  return ToNameRecord(event);
}

StatusOr<std::vector<VersionInfo>> ArchiveImpl::ListVersions(HistoryId history) {
  std::vector<VersionInfo> versions;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<VersionRecord>(
      VersionPrefix(history), [&](std::string_view, const VersionRecord& record) {
        versions.push_back(record.info);
        return true;
      }));
  if (versions.empty()) return Status::NotFound("no such history");
  // Deferred digests computed since are shown; the others stay pending (never computed here).
  std::vector<VersionInfo*> all;
  for (VersionInfo& info : versions) {
    MEDVFS_RETURN_IF_ERROR(ResolveDeferredDigest(history, &info));
    all.push_back(&info);
  }
  MEDVFS_RETURN_IF_ERROR(FillHolds(history, all));
  return versions;
}

StatusOr<VersionInfo> ArchiveImpl::GetVersion(HistoryId history, uint64_t number) {
  VersionRecord record;
  MEDVFS_RETURN_IF_ERROR(LoadVersion(history, number, &record));
  MEDVFS_RETURN_IF_ERROR(ResolveDeferredDigest(history, &record.info));
  MEDVFS_RETURN_IF_ERROR(FillHolds(history, {&record.info}));
  return record.info;
}

StatusOr<std::vector<MetadataEvent>> ArchiveImpl::ListMetadataEvents(HistoryId history) {
  std::vector<MetadataEvent> events;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<MetadataEvent>(
      MetaEventPrefix(history), [&](std::string_view, const MetadataEvent& event) {
        events.push_back(event);
        return true;
      }));
  return events;
}

StatusOr<std::vector<DirEntryAt>> ArchiveImpl::ListDirAt(InodeId dir, int64_t time_ns) {
  // The last event of each name at or before time_ns.
  std::map<std::string, NameEventRecord> at_time;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<NameEventRecord>(
      NameEventPrefix(dir), [&](std::string_view, const NameEventRecord& event) {
        if (event.time_ns <= time_ns) at_time[event.name] = event;
        return true;
      }));
  std::vector<DirEntryAt> entries;
  for (const auto& [name, event] : at_time) {
    MEDVFS_ASSIGN_OR_RETURN(std::optional<DirEntryAt> entry, EntryAt(event, time_ns));
    if (entry) entries.push_back(std::move(*entry));
  }
  return entries;
}

StatusOr<DirEntryAt> ArchiveImpl::ResolveNameAt(InodeId dir, std::string_view name,
                                                int64_t time_ns) {
  // The name's events sit under parent | name hash in the order they were written, so the one
  // current at time_ns is the newest written at or before it (the one ListDirAt keeps): scan
  // backwards and stop there. Only the events written after time_ns are read on the way.
  std::optional<NameEventRecord> current;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<NameEventRecord>(
      NameEventPrefix(dir, NameHash(name)),
      [&](std::string_view, const NameEventRecord& event) {
        if (event.time_ns > time_ns || event.name != name) return true;
        current = event;
        return false;
      },
      /*reverse=*/true));
  if (!current) return Status::NotFound("the name was not bound then");
  MEDVFS_ASSIGN_OR_RETURN(std::optional<DirEntryAt> entry, EntryAt(*current, time_ns));
  if (!entry) return Status::NotFound("the name was not bound then");
  return std::move(*entry);
}

StatusOr<std::optional<DirEntryAt>> ArchiveImpl::EntryAt(const NameEventRecord& event,
                                                         int64_t time_ns) {
  if (event.removed) return std::optional<DirEntryAt>();
  DirEntryAt entry;
  entry.name = event.name;
  entry.mode = event.mode;
  entry.ino = event.ino;
  entry.symlink_target = event.symlink_target;
  if (S_ISREG(event.mode)) {
    if (event.history == 0) return std::optional<DirEntryAt>();
    VersionInfo found;
    const Status s = VersionAt(event.history, time_ns, &found);
    if (s.code() == Code::kNotFound) return std::optional<DirEntryAt>();
    MEDVFS_RETURN_IF_ERROR(s);
    // A pruned or purged version has nothing to show: the name shows nothing then.
    if (found.is_delete_marker() || found.content_removed()) return std::optional<DirEntryAt>();
    entry.history = event.history;
    entry.version = found.number;
    entry.size = found.size;
    entry.mtime_ns = found.time_ns;
    entry.mode = S_IFREG | (found.file_mode & 07777);
  }
  return std::optional<DirEntryAt>(std::move(entry));
}

Status ArchiveImpl::VersionAt(HistoryId history, int64_t time_ns, VersionInfo* found) {
  // Versions are numbered in commit order and stamped with their commit time, so times grow
  // with numbers: a binary search over 1..last_version finds the newest version made at or
  // before time_ns in a few point reads (the newest is tried first: a time after the last
  // save is the common case). Where a number has no record (a scratch file keeps only its
  // current version) or the history record is missing, the versions are scanned backwards
  // instead, as ListDirAt did before there was a search.
  HistoryRecord record;
  Status s = GetRecord(HistoryKey(history), &record);
  if (!s.ok() && s.code() != Code::kNotFound) return s;
  bool searched = s.ok() && record.last_version > 0;
  bool have = false;
  if (searched) {
    uint64_t lo = 1;
    uint64_t hi = record.last_version;
    uint64_t probe = hi;  // then the middle of [lo, hi]
    while (lo <= hi) {
      VersionRecord version;
      s = LoadVersion(history, probe, &version);
      if (s.code() == Code::kNotFound) {
        searched = false;
        have = false;
        break;
      }
      MEDVFS_RETURN_IF_ERROR(s);
      if (version.info.time_ns <= time_ns) {
        *found = std::move(version.info);
        have = true;
        lo = probe + 1;
      } else {
        hi = probe - 1;
      }
      probe = lo + (hi - lo) / 2;
    }
  }
  if (!searched) {
    MEDVFS_RETURN_IF_ERROR(ScanRecords<VersionRecord>(
        VersionPrefix(history),
        [&](std::string_view, const VersionRecord& version) {
          if (version.info.time_ns > time_ns) return true;
          *found = version.info;
          have = true;
          return false;
        },
        /*reverse=*/true));
  }
  if (!have) return Status::NotFound("no version was made by then");
  return Status::Ok();
}

StatusOr<Attr> ArchiveImpl::DoRestore(HistoryId history_id, uint64_t number, const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  std::lock_guard lock(mu_);
  HistoryRecord history;
  Status s = GetRecord(HistoryKey(history_id), &history);
  if (s.code() == Code::kNotFound) return Status::NotFound("no such history");
  MEDVFS_RETURN_IF_ERROR(s);
  VersionRecord source;
  MEDVFS_RETURN_IF_ERROR(LoadVersion(history_id, number, &source));
  if (source.info.is_delete_marker()) {
    return Status::Invalid("that version is a delete marker; choose one with content");
  }
  if (source.info.content_removed()) {
    return Status::NotFound("the content of that version was " +
                            std::string(ContentRemovalName(source.info.removed)));
  }
  // A deferred digest computed since goes with the copy.
  MEDVFS_RETURN_IF_ERROR(ResolveDeferredDigest(history_id, &source.info));
  ExtentList extents;
  MEDVFS_RETURN_IF_ERROR(LoadExtents(history_id, source, &extents));
  const int64_t now = NowNs();
  KvBatch batch;
  InodeId ino = history.live_ino;
  InodeRecord node;
  if (ino != 0) {
    MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
    VersionRecord current;
    if (node.version > 0 && LoadVersion(history_id, node.version, &current).ok()) {
      MEDVFS_ASSIGN_OR_RETURN(const bool same,
                              SameContentAs(history_id, current, source.info, extents));
      if (same) return ToAttr(ino, node);  // already the current content
    }
  } else {
    // Bring the file back where it was last seen.
    InodeRecord dir;
    Status dir_status = LoadDir(history.last_parent, &dir);
    if (!dir_status.ok()) {
      return Status::NotFound("the directory the file was in no longer exists");
    }
    if (FindEntry(history.last_parent, history.last_name).ok()) {
      return Status::Exists("another file now has that name");
    }
    ino = AllocateInode();
    node.mode = S_IFREG | (source.info.file_mode & 07777);
    node.uid = source.info.file_uid;
    node.gid = source.info.file_gid;
    if (!source.info.file_acl.empty()) {
      node.xattrs.emplace_back(std::string(kAclAccessXattr), source.info.file_acl);
    }
    node.nlink = 1;
    node.history = history_id;
    node.atime_ns = now;
    AddEntry(batch, history.last_parent, history.last_name, ino, node, now);
    TouchDir(batch, history.last_parent, dir, now, 0);
    history.live_ino = ino;
  }
  history.fresh = false;
  VersionInfo content = source.info;
  content.restored_from = number;
  const VersionRecord restored =
      NewVersion(history_id, &history, std::move(content), Operation::kRestore, now, caller, node);
  PutVersion(batch, history_id, restored, extents);
  PutRecord(batch, HistoryKey(history_id), history);
  CopyTags(batch, history_id, number, history_id, restored.info.number);
  DicomTags tags;
  const bool has_tags = GetRecord(TagsKey(history_id, number), &tags).ok();
  UpdatePatientIndex(batch, ino, has_tags ? &tags : nullptr);
  node.version = restored.info.number;
  node.size = extents.size();
  node.mtime_ns = node.ctime_ns = now;
  PutRecord(batch, InodeKey(ino), node);
  MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  MEDVFS_RETURN_IF_ERROR(kv_->SyncWal());
  return ToAttr(ino, node);
}

}  // namespace medvfs::store
