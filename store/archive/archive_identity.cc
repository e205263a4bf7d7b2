// History identity: which history a new file carries, and what a name keeps when its file
// leaves it. The rules (man/medvfs-views.7, "History identity"):
//   - an inode carries exactly one history, and a history is carried by at most one inode:
//     a history is never taken from a live file, renumbered, or shared by two live files
//     (hard links are one file);
//   - a file created under a name whose last file was deleted there continues that history;
//   - a file created under a name whose file was just moved to a backup name of it (x.dcm to
//     x.dcm.bak, x.dcm~, x.bak: the save of dcmodify, vim and emacs) starts with a copy of the
//     versions the name held, so both files show the common past and diverge from there;
//   - any other new file starts a new history;
//   - a temporary name leaves no history (see archive_rename.cc for when a name is one).
#include <fnmatch.h>
#include <sys/stat.h>

#include "store/archive/archive_impl.h"

namespace medvfs::store {

bool IsBackupName(std::string_view candidate, std::string_view name) {
  if (candidate.size() > name.size() && candidate.starts_with(name)) return true;
  const size_t dot = name.rfind('.');
  const std::string_view stem =
      dot == std::string_view::npos || dot == 0 ? name : name.substr(0, dot);
  for (std::string_view suffix : {".bak", ".BAK", ".old", ".orig", "~"}) {
    if (candidate.size() == stem.size() + suffix.size() && candidate.starts_with(stem) &&
        candidate.ends_with(suffix)) {
      return true;
    }
  }
  return false;
}

Status ArchiveImpl::LastNameEvent(InodeId parent, std::string_view name, NameEventRecord* event) {
  const std::string hash = NameHash(name);
  std::string key;
  std::string value;
  Status s = kv_->SeekLast(Family::kMeta, NameEventPrefix(parent, hash),
                           NameEventKey(parent, hash, UINT64_MAX), &key, &value);
  if (s.code() == Code::kNotFound) return Status::NotFound("the name never existed here");
  MEDVFS_RETURN_IF_ERROR(s);
  MEDVFS_RETURN_IF_ERROR(OpenRecord(key, value, event));
  if (event->name != name) return Status::NotFound("the name never existed here");
  return Status::Ok();
}

StatusOr<HistoryId> ArchiveImpl::HistoryForNewFile(KvBatch& batch, InodeId parent,
                                                   std::string_view name, InodeId ino) {
  HistoryRecord history;
  HistoryId id = 0;
  // A scratch file (a swap or lock file) never continues or copies another history.
  const bool scratch = IsScratchName(name);
  NameEventRecord last;
  Status found = scratch ? Status::NotFound("") : LastNameEvent(parent, name, &last);
  if (!found.ok() && found.code() != Code::kNotFound) return found;
  HistoryRecord old;
  if (found.ok() && last.removed && S_ISREG(last.mode) && last.history != 0 &&
      GetRecord(HistoryKey(last.history), &old).ok()) {
    const bool last_bound_here = old.last_parent == parent && old.last_name == name;
    if (old.live_ino == 0 && last_bound_here) {
      id = last.history;  // the name's file was deleted here: its history continues
      history = old;
    } else if (old.live_ino != 0 && old.last_parent == parent &&
               IsBackupName(old.last_name, name)) {
      // Moved to a backup name: this file continues the versions the name held.
      id = AllocateHistory();
      const uint64_t held = last.version != 0 ? last.version : old.last_version;
      MEDVFS_RETURN_IF_ERROR(CopyHistoryPrefix(batch, last.history, held, id));
      history.last_version = held;
    }
  }
  if (id == 0) {
    id = AllocateHistory();
    history = HistoryRecord{};
    history.fresh = true;
    history.scratch = scratch;
  } else {
    history.fresh = false;
  }
  history.live_ino = ino;
  history.last_parent = parent;
  history.last_name = std::string(name);
  PutRecord(batch, HistoryKey(id), history);
  return id;
}

Status ArchiveImpl::CopyHistoryPrefix(KvBatch& batch, HistoryId from, uint64_t up_to,
                                      HistoryId to) {
  for (uint64_t number = 1; number <= up_to; ++number) {
    VersionRecord version;
    Status s = LoadVersion(from, number, &version);
    if (s.code() == Code::kNotFound) continue;  // a gap (never made, or pruned)
    MEDVFS_RETURN_IF_ERROR(s);
    ExtentList extents;
    if (!version.info.is_delete_marker()) {
      MEDVFS_RETURN_IF_ERROR(LoadExtents(from, version, &extents));
    }
    // A deferred digest computed since goes with the copy.
    MEDVFS_RETURN_IF_ERROR(ResolveDeferredDigest(from, &version.info));
    PutVersion(batch, to, version, extents);
    CopyTags(batch, from, number, to, number);
    MEDVFS_RETURN_IF_ERROR(ScanRecords<NoteEvent>(
        NotePrefix(from, number), [&](std::string_view key, const NoteEvent& note) {
          PutRecord(batch, NoteKey(to, number, KeyU64(key, key.size() - 8)), note);
          return true;
        }));
  }
  return Status::Ok();
}

Status ArchiveImpl::EraseNameEvents(KvBatch& batch, InodeId parent, std::string_view name,
                                    HistoryId history) {
  return ScanRecords<NameEventRecord>(NameEventPrefix(parent, NameHash(name)),
                                      [&](std::string_view key, const NameEventRecord& event) {
                                        if (event.history == history && event.name == name) {
                                          batch.Delete(Family::kMeta, key);
                                        }
                                        return true;
                                      });
}

bool ArchiveImpl::IsScratchName(std::string_view name) const {
  const std::string text(name);
  for (const std::string& pattern : options_.scratch_patterns) {
    if (::fnmatch(pattern.c_str(), text.c_str(), 0) == 0) return true;
  }
  return false;
}

Status ArchiveImpl::DropVersion(KvBatch& batch, HistoryId history, uint64_t number) {
  VersionRecord version;
  Status s = LoadVersion(history, number, &version);
  if (s.code() == Code::kNotFound) return Status::Ok();
  MEDVFS_RETURN_IF_ERROR(s);
  for (uint32_t group = 0; group < version.group_offsets.size(); ++group) {
    std::vector<Extent> extents;
    Status got = GetRecord(ExtentKey(history, number, group), &extents);
    if (got.code() == Code::kNotFound) continue;
    MEDVFS_RETURN_IF_ERROR(got);
    PutRecord(batch, DroppedExtentKey(history, number, group), extents);
    batch.Delete(Family::kMeta, ExtentKey(history, number, group));
  }
  batch.Delete(Family::kMeta, VersionKey(history, number));
  batch.Delete(Family::kMeta, TagsKey(history, number));
  batch.Delete(Family::kMeta, VersionDigestKey(history, number));
  return kv_->Scan(Family::kMeta, NotePrefix(history, number),
                   [&](std::string_view key, std::string_view) {
                     batch.Delete(Family::kMeta, key);
                     return true;
                   });
}

Status ArchiveImpl::EraseScratchHistory(KvBatch& batch, HistoryId history,
                                        const HistoryRecord& record) {
  std::vector<uint64_t> numbers;  // only the current one, normally
  MEDVFS_RETURN_IF_ERROR(ScanRecords<VersionRecord>(
      VersionPrefix(history), [&](std::string_view, const VersionRecord& version) {
        numbers.push_back(version.info.number);
        return true;
      }));
  for (uint64_t number : numbers) MEDVFS_RETURN_IF_ERROR(DropVersion(batch, history, number));
  return EraseHistory(batch, history, record.last_parent, record.last_name);
}

}  // namespace medvfs::store
