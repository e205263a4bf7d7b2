// rename(2), including the editor-style save: a temporary file renamed over its target
// becomes a new version of the target's history, and leaves no history of its own.
#include <linux/fs.h>
#include <sys/stat.h>

#include "store/archive/archive_impl.h"

namespace medvfs::store {

Status ArchiveImpl::EraseHistory(KvBatch& batch, HistoryId history, InodeId parent,
                                 std::string_view name) {
  auto erase_prefix = [&](const std::string& prefix) {
    return kv_->Scan(Family::kMeta, prefix, [&](std::string_view key, std::string_view) {
      batch.Delete(Family::kMeta, key);
      return true;
    });
  };
  MEDVFS_RETURN_IF_ERROR(erase_prefix(VersionPrefix(history)));
  MEDVFS_RETURN_IF_ERROR(erase_prefix(ExtentHistoryPrefix(history)));
  MEDVFS_RETURN_IF_ERROR(erase_prefix(MetaEventPrefix(history)));
  MEDVFS_RETURN_IF_ERROR(erase_prefix(TagsHistoryPrefix(history)));
  MEDVFS_RETURN_IF_ERROR(erase_prefix(NoteHistoryPrefix(history)));
  MEDVFS_RETURN_IF_ERROR(erase_prefix(VersionDigestHistoryPrefix(history)));
  batch.Delete(Family::kMeta, HistoryKey(history));
  if (name.empty()) return Status::Ok();
  // The name's events that bound it to this history go too; older ones (another file that
  // once had the name) stay.
  return ScanRecords<NameEventRecord>(NameEventPrefix(parent, NameHash(name)),
                                      [&](std::string_view key, const NameEventRecord& event) {
                                        if (event.history == history)
                                          batch.Delete(Family::kMeta, key);
                                        return true;
                                      });
}

Status ArchiveImpl::RenameOver(KvBatch& batch, InodeId src_ino, InodeRecord& src, InodeId dst_ino,
                               InodeRecord& dst, InodeId src_parent, std::string_view src_name,
                               InodeId new_parent, std::string_view new_name, const Caller& caller,
                               int64_t now, bool* src_name_kept) {
  const HistoryId target = dst.history;
  HistoryRecord target_history;
  MEDVFS_RETURN_IF_ERROR(GetRecord(HistoryKey(target), &target_history));
  uint64_t new_version = dst.version;
  if (src.version > 0) {
    VersionRecord incoming;
    MEDVFS_RETURN_IF_ERROR(LoadVersion(src.history, src.version, &incoming));
    // A deferred digest computed since goes with the copy.
    MEDVFS_RETURN_IF_ERROR(ResolveDeferredDigest(src.history, &incoming.info));
    ExtentList extents;
    MEDVFS_RETURN_IF_ERROR(LoadExtents(src.history, incoming, &extents));
    VersionRecord current;
    bool unchanged = false;
    if (dst.version > 0 && LoadVersion(target, dst.version, &current).ok()) {
      MEDVFS_ASSIGN_OR_RETURN(unchanged, SameContentAs(target, current, incoming.info, extents));
    }
    if (!unchanged) {
      const VersionRecord saved = NewVersion(target, &target_history, incoming.info,
                                             Operation::kRenameOver, now, caller, src);
      PutVersion(batch, target, saved, extents);
      CopyTags(batch, src.history, src.version, target, saved.info.number);
      if (target_history.scratch && dst.version > 0) {
        MEDVFS_RETURN_IF_ERROR(DropVersion(batch, target, dst.version));
      }
      new_version = saved.info.number;
    }
  } else {
    new_version = 0;  // the renamed file's first commit will continue the target's history
  }
  // The source's own history: a temporary name's goes (its one version is the target's
  // newest now); any other stays whole under the source name, carried by no file, like a
  // deleted file's (nothing but prune destroys versions).
  HistoryRecord source_history;
  MEDVFS_RETURN_IF_ERROR(GetRecord(HistoryKey(src.history), &source_history));
  *src_name_kept = !IsTemporary(source_history);
  if (*src_name_kept) {
    source_history.live_ino = 0;
    source_history.last_parent = src_parent;
    source_history.last_name = std::string(src_name);
    source_history.fresh = false;
    PutRecord(batch, HistoryKey(src.history), source_history);
  } else {
    MEDVFS_RETURN_IF_ERROR(EraseHistory(batch, src.history, src_parent, src_name));
  }
  src.history = target;
  target_history.fresh = false;
  src.version = new_version;
  src.ctime_ns = now;
  target_history.live_ino = src_ino;
  target_history.last_parent = new_parent;
  target_history.last_name = std::string(new_name);
  PutRecord(batch, HistoryKey(target), target_history);
  // The old target inode loses its name; its history now lives on in src.
  dst.nlink -= 1;
  dst.ctime_ns = now;
  if (dst.nlink == 0) {
    // Gone, but programs that still have it open read on: its history and version still name
    // its last content (versions never change), and an inode without links commits nothing.
    UpdatePatientIndex(batch, dst_ino, nullptr);
    batch.Delete(Family::kMeta, InodeKey(dst_ino));
    if (lookups_.contains(dst_ino) || sessions_.contains(dst_ino)) orphans_[dst_ino] = dst;
  } else {
    dst.history = 0;
    PutRecord(batch, InodeKey(dst_ino), dst);
  }
  return Status::Ok();
}

StatusOr<bool> ArchiveImpl::MoveHistory(KvBatch& batch, const InodeRecord& src, InodeId src_ino,
                                        InodeId parent, std::string_view name, InodeId new_parent,
                                        std::string_view new_name) {
  HistoryRecord history;
  MEDVFS_RETURN_IF_ERROR(GetRecord(HistoryKey(src.history), &history));
  // A new file leaving its first name for another that is not a backup of it (rsync's
  // .name.XXXXXX, a tool's out.tmp) arrives from a temporary name: the name leaves no trace,
  // and the history is as if born under the new name. A move to a backup name keeps the
  // name's history, for the new file that the save writes next (HistoryForNewFile).
  const bool to_backup = parent == new_parent && IsBackupName(new_name, name);
  // A scratch file leaves no trace under any name, and becomes an ordinary file under a name
  // that is not a scratch name.
  const bool temporary_name = history.scratch || (IsTemporary(history) && !to_backup);
  history.scratch = history.scratch && IsScratchName(new_name);
  if (temporary_name) {
    MEDVFS_RETURN_IF_ERROR(EraseNameEvents(batch, parent, name, src.history));
  } else {
    history.fresh = false;
  }
  history.live_ino = src_ino;
  history.last_parent = new_parent;
  history.last_name = std::string(new_name);
  PutRecord(batch, HistoryKey(src.history), history);
  return !temporary_name;
}

Status ArchiveImpl::DoRename(InodeId parent, std::string_view name, InodeId new_parent,
                             std::string_view new_name, unsigned int flags, const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  MEDVFS_RETURN_IF_ERROR(CheckName(new_name));
  if ((flags & ~static_cast<unsigned int>(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0 ||
      ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))) {
    return Status::Invalid("unsupported rename flags");
  }
  std::lock_guard lock(mu_);
  InodeRecord src_dir;
  MEDVFS_RETURN_IF_ERROR(LoadDir(parent, &src_dir));
  InodeRecord dst_dir_storage;
  if (new_parent != parent) MEDVFS_RETURN_IF_ERROR(LoadDir(new_parent, &dst_dir_storage));
  InodeRecord& dst_dir = new_parent == parent ? src_dir : dst_dir_storage;
  MEDVFS_ASSIGN_OR_RETURN(DirentRecord src_entry, FindEntry(parent, name));
  InodeRecord src;
  MEDVFS_RETURN_IF_ERROR(LoadInode(src_entry.ino, &src));
  auto dst_entry = FindEntry(new_parent, new_name);
  if (!dst_entry.ok() && dst_entry.status().code() != Code::kNotFound) return dst_entry.status();
  const bool dst_exists = dst_entry.ok();
  if (dst_exists && dst_entry->ino == src_entry.ino) return Status::Ok();  // same file
  if ((flags & RENAME_NOREPLACE) && dst_exists) return Status::Exists("target exists");
  if ((flags & RENAME_EXCHANGE) && !dst_exists) return Status::NotFound("no target");

  // A directory may not move into itself or below itself.
  if (S_ISDIR(src.mode) && new_parent != parent) {
    for (InodeId up = new_parent; up != 0 && up != kRootInode;) {
      if (up == src_entry.ino) return Status::Invalid("a directory cannot move below itself");
      InodeRecord step;
      MEDVFS_RETURN_IF_ERROR(LoadInode(up, &step));
      up = step.parent;
    }
  }
  InodeRecord dst;
  if (dst_exists) {
    MEDVFS_RETURN_IF_ERROR(LoadInode(dst_entry->ino, &dst));
    if (S_ISDIR(dst.mode) && (flags & RENAME_EXCHANGE) == 0) {
      if (!S_ISDIR(src.mode)) return Status(Code::kIsDirectory, "target is a directory");
      bool empty = true;
      MEDVFS_RETURN_IF_ERROR(kv_->Scan(Family::kMeta, DirentPrefix(dst_entry->ino),
                                       [&](std::string_view, std::string_view) {
                                         empty = false;
                                         return false;
                                       }));
      if (!empty) return Status(Code::kNotEmpty, "target directory not empty");
    } else if (S_ISDIR(src.mode) && (flags & RENAME_EXCHANGE) == 0) {
      return Status(Code::kNotDirectory, "target is not a directory");
    }
    if ((flags & RENAME_EXCHANGE) && S_ISDIR(dst.mode) && parent != new_parent) {
      for (InodeId up = parent; up != 0 && up != kRootInode;) {
        if (up == dst_entry->ino) return Status::Invalid("a directory cannot move below itself");
        InodeRecord step;
        MEDVFS_RETURN_IF_ERROR(LoadInode(up, &step));
        up = step.parent;
      }
    }
  }

  const int64_t now = NowNs();
  KvBatch batch;
  const InodeId src_ino = src_entry.ino;
  const int src_is_dir = S_ISDIR(src.mode) ? 1 : 0;

  if (flags & RENAME_EXCHANGE) {
    const InodeId dst_ino = dst_entry->ino;
    const int dst_is_dir = S_ISDIR(dst.mode) ? 1 : 0;
    RemoveEntry(batch, parent, name, now);
    RemoveEntry(batch, new_parent, new_name, now);
    AddEntry(batch, parent, name, dst_ino, dst, now);
    AddEntry(batch, new_parent, new_name, src_ino, src, now);
    // Directories (and nodes without a history, for audit paths) know their name.
    if (!S_ISREG(src.mode)) {
      src.parent = new_parent;
      src.name = std::string(new_name);
    }
    if (!S_ISREG(dst.mode)) {
      dst.parent = parent;
      dst.name = std::string(name);
    }
    src.ctime_ns = dst.ctime_ns = now;
    for (const InodeRecord* node : {&src, &dst}) {
      HistoryRecord history;
      if (S_ISREG(node->mode) && node->history != 0 && node->nlink == 1 &&
          GetRecord(HistoryKey(node->history), &history).ok()) {
        history.fresh = false;
        history.last_parent = node == &src ? new_parent : parent;
        history.last_name = std::string(node == &src ? new_name : name);
        PutRecord(batch, HistoryKey(node->history), history);
      }
    }
    PutRecord(batch, InodeKey(src_ino), src);
    PutRecord(batch, InodeKey(dst_ino), dst);
    if (parent == new_parent) {
      TouchDir(batch, parent, src_dir, now, 0);
    } else {
      TouchDir(batch, parent, src_dir, now, dst_is_dir - src_is_dir);
      TouchDir(batch, new_parent, dst_dir, now, src_is_dir - dst_is_dir);
    }
    return WriteBatchLocked(batch);
  }

  int dst_dir_nlink_delta = 0;
  bool renamed_over = false;
  bool src_name_kept = true;
  if (dst_exists) {
    const InodeId dst_ino = dst_entry->ino;
    if (S_ISDIR(dst.mode)) {
      batch.Delete(Family::kMeta, InodeKey(dst_ino));
      dst.nlink = 0;
      if (lookups_.contains(dst_ino)) orphans_[dst_ino] = dst;
      dst_dir_nlink_delta -= 1;
    } else if (S_ISREG(src.mode) && S_ISREG(dst.mode) && src.nlink == 1 && dst.nlink == 1 &&
               src.history != 0 && dst.history != 0) {
      MEDVFS_RETURN_IF_ERROR(RenameOver(batch, src_ino, src, dst_ino, dst, parent, name, new_parent,
                                        new_name, caller, now, &src_name_kept));
      renamed_over = true;
    } else {
      // The name leaves the target's history (as an unlink would) before it binds the source;
      // a scratch file's last name leaves nothing.
      HistoryRecord target_history;
      const bool scratch_gone = S_ISREG(dst.mode) && dst.history != 0 && dst.nlink == 1 &&
                                GetRecord(HistoryKey(dst.history), &target_history).ok() &&
                                target_history.scratch;
      RemoveEntry(batch, new_parent, new_name, now, /*record_event=*/!scratch_gone);
      MEDVFS_RETURN_IF_ERROR(DropLink(batch, dst_ino, dst, new_parent, new_name, caller, now));
    }
  }
  if (!renamed_over && S_ISREG(src.mode) && src.history != 0 && src.nlink == 1) {
    MEDVFS_ASSIGN_OR_RETURN(src_name_kept,
                            MoveHistory(batch, src, src_ino, parent, name, new_parent, new_name));
  }
  // A temporary name leaves no history (its events were erased above).
  RemoveEntry(batch, parent, name, now, /*record_event=*/src_name_kept);
  if (!S_ISREG(src.mode)) {
    src.parent = new_parent;
    src.name = std::string(new_name);
  }
  src.ctime_ns = now;
  PutRecord(batch, InodeKey(src_ino), src);
  AddEntry(batch, new_parent, new_name, src_ino, src, now);
  if (parent == new_parent) {
    TouchDir(batch, parent, src_dir, now, dst_dir_nlink_delta);
  } else {
    TouchDir(batch, parent, src_dir, now, -src_is_dir);
    TouchDir(batch, new_parent, dst_dir, now, src_is_dir + dst_dir_nlink_delta);
  }
  return WriteBatchLocked(batch);
}

}  // namespace medvfs::store
