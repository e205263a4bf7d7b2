#include "fs/views.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "fs/view_detail.h"
#include "store/posix_acl.h"
#include "store/views.h"

namespace medvfs::fs {

namespace view_detail {

using store::Archive;
using store::Attr;
using store::Status;
using store::StatusOr;

Status NotFound() { return Status::NotFound("no such view entry"); }

Attr OwnerAttr(Archive& archive, store::InodeId ino) {
  auto attr = archive.GetAttr(ino);
  if (!attr.ok()) return Attr{};
  return *attr;
}

}  // namespace view_detail

namespace {

using store::Archive;
using store::Attr;
using store::Status;
using store::StatusOr;
using view_detail::NotFound;
using view_detail::OwnerAttr;

constexpr uint32_t kViewDirMode = S_IFDIR | 0555;

// /@anon needs a de-identifier and its caches, which the mount holds (fs/anon_views.h).
Status AnonNeedsItsIndex() { return Status::Invalid("the @anon view is answered by AnonView"); }

// Mixes a 64-bit value (splitmix64 finaliser).
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

Attr DirAttr(Archive& archive, const ViewDescriptor& view) {
  const Attr owner = OwnerAttr(archive, view.owner_dir);
  Attr attr;
  attr.mode = kViewDirMode;
  attr.uid = owner.uid;
  attr.gid = owner.gid;
  attr.nlink = 2;
  if (view.kind == ViewKind::kTimeDir) {
    attr.atime_ns = attr.mtime_ns = attr.ctime_ns = view.time_ns;
  } else {
    attr.atime_ns = owner.atime_ns;
    attr.mtime_ns = owner.mtime_ns;
    attr.ctime_ns = owner.ctime_ns;
  }
  return attr;
}

// The live file now bound to the history, found through the inode that held it.
std::optional<Attr> LiveFile(Archive& archive, store::InodeId ino, store::HistoryId history) {
  if (ino == 0) return std::nullopt;
  auto attr = archive.GetAttr(ino);
  if (!attr.ok() || attr->history != history || attr->nlink == 0) return std::nullopt;
  return *attr;
}

// The owner and permission bits that guard a history now: the live file's, else those of its
// last version (a deleted file).
StatusOr<Attr> CurrentGuard(Archive& archive, store::InodeId ino, store::HistoryId history) {
  if (std::optional<Attr> live = LiveFile(archive, ino, history)) return *live;
  MEDVFS_ASSIGN_OR_RETURN(auto versions, archive.ListVersions(history));
  Attr guard;
  guard.mode = 0444;
  if (!versions.empty()) {
    guard.mode = versions.back().file_mode;
    guard.uid = versions.back().file_uid;
    guard.gid = versions.back().file_gid;
    guard.acl = versions.back().file_acl;
  }
  return guard;
}

StatusOr<Attr> HistoryDirAttr(Archive& archive, const ViewDescriptor& view) {
  Attr attr = DirAttr(archive, view);
  MEDVFS_ASSIGN_OR_RETURN(Attr guard,
                          view_detail::GuardOfName(archive, view.ino, view.text, view.history));
  // With the file's write bits: restoring (user.medvfs.restore on this directory) writes the
  // file, and the kernel's default_permissions asks w on the directory for that setxattr.
  attr.mode = S_IFDIR | view_detail::ReadAndSearch(guard.mode) | (guard.mode & 0222);
  // The file's ACL, mapped the same way: who may read the file may list its history.
  if (auto acl = store::ParseAcl(guard.acl); acl.ok() && !acl->empty()) {
    for (store::AclEntry& entry : *acl) {
      entry.perm = static_cast<uint16_t>(view_detail::ReadAndSearch(entry.perm) | (entry.perm & 2));
    }
    attr.acl = store::SerializeAcl(*acl);
  }
  attr.uid = guard.uid;
  attr.gid = guard.gid;
  return attr;
}

Attr VersionAttr(const store::VersionInfo& v) {
  Attr attr;
  attr.mode = S_IFREG | (v.file_mode & 0555);
  // The ACL the file had then, read-only as the mode is.
  if (!v.file_acl.empty()) attr.acl = store::WithoutWrite(v.file_acl);
  attr.uid = v.file_uid;
  attr.gid = v.file_gid;
  attr.nlink = 1;
  attr.size = v.size;
  attr.atime_ns = attr.mtime_ns = attr.ctime_ns = v.time_ns;
  return attr;
}

StatusOr<Attr> VersionsTsvAttr(Archive& archive, const ViewDescriptor& view) {
  MEDVFS_ASSIGN_OR_RETURN(auto versions, archive.ListVersions(view.history));
  Attr attr;
  attr.mode = S_IFREG | 0444;
  attr.nlink = 1;
  attr.size = store::FormatVersionsTsv(versions).size();
  if (!versions.empty()) {
    const store::VersionInfo& last = versions.back();
    attr.mode = S_IFREG | (last.file_mode & 0444);
    attr.uid = last.file_uid;
    attr.gid = last.file_gid;
    attr.atime_ns = attr.mtime_ns = attr.ctime_ns = last.time_ns;
  }
  return attr;
}

uint32_t TypeOf(const ViewDescriptor& view) {
  switch (view.kind) {
    case ViewKind::kVersionFile:
    case ViewKind::kVersionsTsv:
    case ViewKind::kTagFile:
    case ViewKind::kTagsTsv:
    case ViewKind::kDicomJson:
    case ViewKind::kSha256File:
    case ViewKind::kNoteFile:
    case ViewKind::kDiffFile:
    case ViewKind::kAnonFile:
      return S_IFREG;
    case ViewKind::kTimeSymlink:
    case ViewKind::kPatientLink:
      return S_IFLNK;
    default:
      return S_IFDIR;
  }
}

}  // namespace

namespace view_detail {

ViewEntry MakeEntry(std::string name, ViewDescriptor view) {
  ViewEntry entry;
  entry.name = std::move(name);
  entry.mode = TypeOf(view);
  entry.view = std::move(view);
  return entry;
}

StatusOr<Attr> GuardOfName(Archive& archive, store::InodeId dir, std::string_view name,
                           store::HistoryId history) {
  auto record = archive.ResolveName(dir, name);
  store::InodeId live_ino = 0;
  if (record.ok() && record->history == history) live_ino = record->ino;
  return CurrentGuard(archive, live_ino, history);
}

}  // namespace view_detail

namespace {

using view_detail::MakeEntry;

// DIR/@version/NAME for one name record of DIR.
ViewEntry ChildForName(const store::NameRecord& record, store::InodeId dir,
                       store::InodeId owner_dir) {
  ViewDescriptor child;
  child.owner_dir = owner_dir;
  if (record.history != 0) {
    child.kind = ViewKind::kHistory;
    child.ino = dir;
    child.history = record.history;
    child.text = record.name;
  } else if (S_ISDIR(record.mode)) {
    // A directory, live or deleted: walk it through its own @version listing.
    child.kind = ViewKind::kVersionRoot;
    child.ino = record.last_ino != 0 ? record.last_ino : record.ino;
  } else {
    child.kind = ViewKind::kEmptyDir;
    child.ino = record.last_ino;
    child.text = record.name;
  }
  return MakeEntry(record.name, std::move(child));
}

ViewDescriptor VersionFile(store::HistoryId history, uint64_t number) {
  ViewDescriptor view;
  view.kind = ViewKind::kVersionFile;
  view.history = history;
  view.version = number;
  return view;
}

// One entry of an @<time> view; nullopt for node types the view does not show.
std::optional<ViewEntry> ChildAtTime(const store::DirEntryAt& entry, const ViewDescriptor& dir) {
  ViewDescriptor child;
  child.owner_dir = dir.owner_dir;
  if (S_ISREG(entry.mode)) {
    child = VersionFile(entry.history, entry.version);
    child.ino = entry.ino;  // to apply the file's current permissions
  } else if (S_ISDIR(entry.mode)) {
    child.kind = ViewKind::kTimeDir;
    child.ino = entry.ino;
    child.time_ns = dir.time_ns;
  } else if (S_ISLNK(entry.mode)) {
    child.kind = ViewKind::kTimeSymlink;
    child.ino = entry.ino;
    child.text = entry.symlink_target;
  } else {
    return std::nullopt;
  }
  return MakeEntry(entry.name, std::move(child));
}

StatusOr<ViewEntry> ResolveInVersionRoot(Archive& archive, const ViewDescriptor& parent,
                                         std::string_view name) {
  auto record = archive.ResolveName(parent.ino, name);
  if (record.ok()) return ChildForName(*record, parent.ino, parent.owner_dir);
  if (record.status().code() != store::Code::kNotFound) return record.status();
  const std::optional<int64_t> time = store::ParseTimeDirName(name);
  if (!time) return NotFound();
  ViewDescriptor child;
  child.kind = ViewKind::kTimeDir;
  child.ino = parent.ino;
  child.owner_dir = parent.owner_dir;
  child.time_ns = *time;
  return MakeEntry(std::string(name), std::move(child));
}

StatusOr<ViewEntry> ResolveInHistory(Archive& archive, const ViewDescriptor& parent,
                                     std::string_view name) {
  if (name == kMetaDirName) return view_detail::MetaDirOf(parent);
  const std::optional<uint64_t> number = store::ParseVersionFileName(name);
  if (!number) return NotFound();
  auto version = archive.GetVersion(parent.history, *number);
  if (!version.ok()) {
    if (version.status().code() == store::Code::kNotFound) return NotFound();
    return version.status();
  }
  if (version->is_delete_marker() || version->content_removed()) return NotFound();
  return MakeEntry(std::string(name), VersionFile(parent.history, *number));
}

StatusOr<ViewEntry> ResolveAtTime(Archive& archive, const ViewDescriptor& parent,
                                  std::string_view name) {
  // One name's events and a search of its versions, never the whole directory at that time.
  auto entry = archive.ResolveNameAt(parent.ino, name, parent.time_ns);
  if (!entry.ok()) {
    if (entry.status().code() == store::Code::kNotFound) return NotFound();
    return entry.status();
  }
  std::optional<ViewEntry> child = ChildAtTime(*entry, parent);
  if (!child) return NotFound();
  return std::move(*child);
}

}  // namespace

bool IsReservedName(std::string_view name) {
  return name == kVersionDirName || name == kMetaDirName;
}

bool IsViewName(uint64_t parent, std::string_view name) {
  return IsReservedName(name) ||
         (parent == store::kRootInode && (name == kPatientsDirName || name == kAnonDirName));
}

bool ViewDescriptor::is_dir() const { return TypeOf(*this) == S_IFDIR; }

ViewDescriptor VersionRootOf(store::InodeId dir) {
  ViewDescriptor view;
  view.kind = ViewKind::kVersionRoot;
  view.ino = dir;
  view.owner_dir = dir;
  return view;
}

ViewDescriptor LiveMetaRootOf(store::InodeId dir) {
  ViewDescriptor view;
  view.kind = ViewKind::kLiveMetaRoot;
  view.ino = dir;
  view.owner_dir = dir;
  return view;
}

ViewDescriptor PatientsRoot() {
  ViewDescriptor view;
  view.kind = ViewKind::kPatientsRoot;
  view.owner_dir = store::kRootInode;
  return view;
}

ViewDescriptor AnonRoot() {
  ViewDescriptor view;
  view.kind = ViewKind::kAnonRoot;
  view.owner_dir = store::kRootInode;
  return view;
}

bool IsAnonKind(ViewKind kind) {
  return kind == ViewKind::kAnonRoot || kind == ViewKind::kAnonDir || kind == ViewKind::kAnonFile;
}

uint64_t StableViewIno(const ViewDescriptor& view) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the fields, then mixed
  auto add = [&h](uint64_t value) { h = Mix(h ^ value) * 0x100000001b3ull; };
  add(static_cast<uint64_t>(view.kind));
  add(view.ino);
  add(view.owner_dir);
  add(view.history);
  add(view.version);
  add(static_cast<uint64_t>(view.time_ns));
  for (const std::string* text : {&view.text, &view.keyword, &view.study}) {
    add(text->size());  // so that ("ab", "") and ("a", "b") differ
    for (char c : *text) {
      h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    }
  }
  return Mix(h) | (uint64_t{1} << 63);
}

StatusOr<Attr> ViewAttr(Archive& archive, const ViewDescriptor& view) {
  if (IsAnonKind(view.kind)) return AnonNeedsItsIndex();
  Attr attr;
  if (view_detail::IsMetaKind(view.kind)) {
    MEDVFS_ASSIGN_OR_RETURN(attr, view_detail::MetaViewAttr(archive, view));
    attr.ino = StableViewIno(view);
    return attr;
  }
  if (view_detail::IsPatientKind(view.kind)) {
    MEDVFS_ASSIGN_OR_RETURN(attr, view_detail::PatientViewAttr(archive, view));
    attr.ino = StableViewIno(view);
    return attr;
  }
  switch (view.kind) {
    case ViewKind::kVersionFile:
      if (view.version == 0) {
        attr.mode = S_IFREG | 0444;
        attr.nlink = 1;
      } else {
        MEDVFS_ASSIGN_OR_RETURN(auto version, archive.GetVersion(view.history, view.version));
        attr = VersionAttr(version);
      }
      if (view.ino != 0 && view.history != 0) {  // under @<time>: what the file grants now
        MEDVFS_ASSIGN_OR_RETURN(Attr guard, CurrentGuard(archive, view.ino, view.history));
        attr.mode &= S_IFMT | (guard.mode & 0555);
      }
      break;
    case ViewKind::kHistory: {
      MEDVFS_ASSIGN_OR_RETURN(attr, HistoryDirAttr(archive, view));
      break;
    }
    case ViewKind::kVersionsTsv: {
      MEDVFS_ASSIGN_OR_RETURN(attr, VersionsTsvAttr(archive, view));
      break;
    }
    case ViewKind::kTimeSymlink: {
      const Attr owner = OwnerAttr(archive, view.owner_dir);
      attr.mode = S_IFLNK | 0777;
      attr.uid = owner.uid;
      attr.gid = owner.gid;
      attr.nlink = 1;
      attr.size = view.text.size();
      break;
    }
    default:
      attr = DirAttr(archive, view);
  }
  attr.ino = StableViewIno(view);
  return attr;
}

StatusOr<ViewEntry> ResolveViewChild(Archive& archive, const ViewDescriptor& parent,
                                     std::string_view name) {
  if (!parent.is_dir()) return Status(store::Code::kNotDirectory, "view node is not a directory");
  if (IsAnonKind(parent.kind)) return AnonNeedsItsIndex();
  if (view_detail::IsMetaKind(parent.kind))
    return view_detail::ResolveInMeta(archive, parent, name);
  if (view_detail::IsPatientKind(parent.kind)) {
    return view_detail::ResolveInPatients(archive, parent, name);
  }
  switch (parent.kind) {
    case ViewKind::kVersionRoot:
      return ResolveInVersionRoot(archive, parent, name);
    case ViewKind::kHistory:
      return ResolveInHistory(archive, parent, name);
    case ViewKind::kTimeDir:
      return ResolveAtTime(archive, parent, name);
    case ViewKind::kEmptyDir:
      return NotFound();
    default:
      return Status(store::Code::kNotDirectory, "view node is not a directory");
  }
}

StatusOr<std::vector<ViewEntry>> ListView(Archive& archive, const ViewDescriptor& view,
                                          bool show_hidden) {
  if (!view.is_dir()) return Status(store::Code::kNotDirectory, "view node is not a directory");
  if (IsAnonKind(view.kind)) return AnonNeedsItsIndex();
  if (view_detail::IsMetaKind(view.kind)) return view_detail::ListMeta(archive, view);
  if (view_detail::IsPatientKind(view.kind)) return view_detail::ListPatients(archive, view);
  std::vector<ViewEntry> out;
  switch (view.kind) {
    case ViewKind::kVersionRoot: {
      MEDVFS_ASSIGN_OR_RETURN(auto names, archive.ListNames(view.ino));
      for (const store::NameRecord& record : names) {
        out.push_back(ChildForName(record, view.ino, view.owner_dir));
      }
      std::sort(out.begin(), out.end(),
                [](const ViewEntry& a, const ViewEntry& b) { return a.name < b.name; });
      break;
    }
    case ViewKind::kHistory: {
      MEDVFS_ASSIGN_OR_RETURN(auto versions, archive.ListVersions(view.history));
      for (const store::VersionInfo& v : versions) {
        // Pruned and purged versions are lines of versions.tsv, no files.
        if (v.is_delete_marker() || v.content_removed()) continue;
        out.push_back(
            MakeEntry(store::VersionFileName(v, view.text), VersionFile(view.history, v.number)));
      }
      if (show_hidden) {
        MEDVFS_ASSIGN_OR_RETURN(auto meta, ResolveInHistory(archive, view, kMetaDirName));
        out.push_back(std::move(meta));
      }
      break;
    }
    case ViewKind::kTimeDir: {
      MEDVFS_ASSIGN_OR_RETURN(auto entries, archive.ListDirAt(view.ino, view.time_ns));
      for (const store::DirEntryAt& entry : entries) {
        std::optional<ViewEntry> child = ChildAtTime(entry, view);
        if (child) out.push_back(std::move(*child));
      }
      break;
    }
    case ViewKind::kEmptyDir:
      break;
    default:
      return Status(store::Code::kNotDirectory, "view node is not a directory");
  }
  return out;
}

StatusOr<std::unique_ptr<store::FileHandle>> OpenViewFile(Archive& archive,
                                                          const ViewDescriptor& view,
                                                          const std::function<bool()>& cancelled) {
  if (IsAnonKind(view.kind)) return AnonNeedsItsIndex();
  const store::InodeId ino = StableViewIno(view);
  switch (view.kind) {
    case ViewKind::kVersionFile:
      if (view.version == 0)
        return std::unique_ptr<store::FileHandle>(new StringFileHandle(ino, ""));
      return archive.OpenVersion(view.history, view.version);
    case ViewKind::kVersionsTsv: {
      MEDVFS_ASSIGN_OR_RETURN(auto versions, archive.ListVersions(view.history));
      return std::unique_ptr<store::FileHandle>(
          new StringFileHandle(ino, store::FormatVersionsTsv(versions)));
    }
    case ViewKind::kTagFile:
    case ViewKind::kTagsTsv:
    case ViewKind::kDicomJson:
    case ViewKind::kSha256File:
    case ViewKind::kNoteFile:
    case ViewKind::kDiffFile: {
      MEDVFS_ASSIGN_OR_RETURN(std::string content,
                              view_detail::MetaFileContent(archive, view, cancelled));
      return std::unique_ptr<store::FileHandle>(new StringFileHandle(ino, std::move(content)));
    }
    case ViewKind::kTimeSymlink:
    case ViewKind::kPatientLink:
      return Status(store::Code::kLoop, "open of a symlink view");
    default:
      return Status(store::Code::kIsDirectory, "open of a view directory");
  }
}

bool IsGeneratedViewFile(const ViewDescriptor& view) {
  // An @anon file shows one fixed version (a save makes another node): its content is fixed.
  return view.kind != ViewKind::kVersionFile && view.kind != ViewKind::kAnonFile &&
         TypeOf(view) == S_IFREG;
}

bool IsVolatileView(const ViewDescriptor& view) {
  return view.kind == ViewKind::kVersionsTsv || view.kind == ViewKind::kHistory ||
         ResolvesAgainstLiveTree(view);
}

bool ResolvesAgainstLiveTree(const ViewDescriptor& view) {
  return view_detail::IsMetaKind(view.kind) || view_detail::IsPatientKind(view.kind) ||
         IsAnonKind(view.kind);
}

StatusOr<std::string> ReadViewLink(const ViewDescriptor& view) {
  if (view.kind != ViewKind::kTimeSymlink && view.kind != ViewKind::kPatientLink) {
    return Status::Invalid("not a symlink");
  }
  return view.text;
}

StatusOr<Attr> RestoreFromView(Archive& archive, const ViewDescriptor& view, std::string_view value,
                               const store::Caller& caller) {
  if (view.kind != ViewKind::kHistory) {
    return Status::ReadOnly("restore is only possible on a file's @version directory");
  }
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r' || value.back() == ' ' ||
                            value.back() == '\0')) {
    value.remove_suffix(1);
  }
  const std::string spelled =
      (!value.empty() && value[0] == 'v') ? std::string(value) : std::string("v").append(value);
  const std::optional<uint64_t> number = store::ParseVersionFileName(spelled);
  if (!number) return Status::Invalid("restore needs a version number");
  return archive.Restore(view.history, *number, caller);
}

std::string FormatStatsJson(const store::ArchiveStats& stats) {
  const std::pair<const char*, uint64_t> fields[] = {
      {"files", stats.files},
      {"live_files", stats.live_files},
      {"directories", stats.directories},
      {"versions", stats.versions},
      {"logical_bytes", stats.logical_bytes},
      {"stored_bytes", stats.stored_bytes},
      {"chunks", stats.chunks},
      {"disk_bytes", stats.disk_bytes},
      {"pack_bytes", stats.pack_bytes},
      {"reclaimable_bytes", stats.reclaimable_bytes},
      // The last garbage collection (all 0 when none ran).
      {"gc_time_ns", stats.last_gc ? static_cast<uint64_t>(stats.last_gc->time_ns) : 0},
      {"gc_duration_ms", stats.last_gc ? static_cast<uint64_t>(stats.last_gc->duration_ms) : 0},
      {"gc_chunks_dropped", stats.last_gc ? stats.last_gc->chunks_dropped : 0},
      {"gc_packs_removed", stats.last_gc ? stats.last_gc->packs_removed : 0},
      {"gc_bytes_freed", stats.last_gc ? stats.last_gc->bytes_freed : 0},
      // Lifecycle (medvfs retention, hold, prune, purge).
      {"held_versions", stats.held_versions},
      {"removed_versions", stats.removed_versions},
      {"holds", stats.holds.size()},
      {"retention_rules", stats.retention.size()},
      // The S3 tier (medvfs remote list has the details).
      {"remotes", stats.remotes},
      {"remote_lag_bytes", stats.remote_lag_bytes},
      {"remote_lag_seconds", static_cast<uint64_t>(stats.remote_lag_seconds)},
      {"remote_errors", stats.remote_errors},
  };
  std::string out = "{";
  for (const auto& [key, value] : fields) {
    if (out.size() > 1) out += ',';
    out += '"';
    out += key;
    out += "\":";
    out += std::to_string(value);
  }
  out += '}';
  return out;
}

StatusOr<size_t> StringFileHandle::Read(uint64_t offset, std::span<char> out) {
  if (offset >= content_.size()) return size_t{0};
  const size_t n = std::min(out.size(), content_.size() - static_cast<size_t>(offset));
  std::memcpy(out.data(), content_.data() + offset, n);
  return n;
}

StatusOr<size_t> StringFileHandle::Write(uint64_t, std::string_view) {
  return Status::ReadOnly("view files are read-only");
}

Status StringFileHandle::Flush(const store::Caller&) { return Status::Ok(); }
Status StringFileHandle::Sync(const store::Caller&) { return Status::Ok(); }

}  // namespace medvfs::fs
