// The metadata views of files: DIR/.meta/NAME/ (the current version) and
// DIR/@version/NAME/.meta/vN/ (version N), with dicom.json, tags/, tags.tsv, sha256, note and
// versions.tsv (and, for version N, `diff` against the version before); and the writable
// `note` files.
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>

#include "fs/view_detail.h"
#include "store/dicom_files.h"
#include "store/diff.h"
#include "store/views.h"

namespace medvfs::fs {
namespace view_detail {
namespace {

using store::Archive;
using store::Attr;
using store::Status;
using store::StatusOr;
using store::VersionInfo;

// The longest note the store keeps, and what a handle may hold before the trailing newline
// is stripped.
constexpr size_t kMaxNoteBytes = size_t{64} * 1024;
constexpr size_t kMaxNoteHandleBytes = kMaxNoteBytes + 2;

// The version a metadata view shows: version N, or the live file's current version (kNotFound
// when the name no longer holds a live file of the history, or before its first commit).
StatusOr<VersionInfo> MetaVersion(Archive& archive, const ViewDescriptor& view) {
  uint64_t number = view.version;
  if (number == 0) {
    auto record = archive.ResolveName(view.ino, view.text);
    if (!record.ok() || !record->live() || record->history != view.history) {
      return Status::NotFound("the file is no longer there");
    }
    MEDVFS_ASSIGN_OR_RETURN(Attr live, archive.GetAttr(record->ino));
    if (live.history != view.history || live.version == 0) {
      return Status::NotFound("the file has no version yet");
    }
    number = live.version;
  }
  MEDVFS_ASSIGN_OR_RETURN(VersionInfo version, archive.GetVersion(view.history, number));
  if (version.is_delete_marker()) return Status::NotFound("a delete marker has no metadata");
  return version;
}

StatusOr<store::DicomTags> TagsOf(Archive& archive, const ViewDescriptor& view,
                                  const VersionInfo& version) {
  if (!version.has_dicom_tags) return Status::NotFound("not DICOM content");
  return archive.GetTags(view.history, version.number);
}

// A child of a metadata directory: same file and version, another kind.
ViewDescriptor ChildOf(const ViewDescriptor& parent, ViewKind kind) {
  ViewDescriptor child;
  child.kind = kind;
  child.ino = parent.ino;
  child.owner_dir = parent.owner_dir;
  child.history = parent.history;
  child.version = parent.version;
  child.text = parent.text;
  return child;
}

ViewDescriptor VersionsTsvOf(const ViewDescriptor& parent) {
  ViewDescriptor tsv;
  tsv.kind = ViewKind::kVersionsTsv;
  tsv.history = parent.history;
  return tsv;
}

// DICOM keywords are letters and digits; anything else is no file name.
bool IsKeywordFileName(std::string_view keyword) {
  return !keyword.empty() && keyword.size() <= 255 &&
         std::all_of(keyword.begin(), keyword.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_';
         });
}

std::string NoteContent(const VersionInfo& version) {
  return version.note.empty() ? std::string() : version.note + "\n";
}

std::string_view StripTrailingNewlines(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

StatusOr<Attr> LiveMetaRootAttr(Archive& archive, const ViewDescriptor& view) {
  MEDVFS_ASSIGN_OR_RETURN(Attr dir, archive.GetAttr(view.ino));
  Attr attr;
  attr.mode = S_IFDIR | (dir.mode & 0555);
  attr.uid = dir.uid;
  attr.gid = dir.gid;
  attr.nlink = 2;
  attr.atime_ns = dir.atime_ns;
  attr.mtime_ns = dir.mtime_ns;
  attr.ctime_ns = dir.ctime_ns;
  return attr;
}

StatusOr<std::vector<ViewEntry>> ListLiveMetaRoot(Archive& archive, const ViewDescriptor& view) {
  MEDVFS_ASSIGN_OR_RETURN(auto names, archive.ListNames(view.ino));
  std::vector<ViewEntry> out;
  for (const store::NameRecord& record : names) {
    if (!record.live() || record.history == 0) continue;
    ViewDescriptor meta;
    meta.kind = ViewKind::kFileMeta;
    meta.ino = view.ino;
    meta.owner_dir = view.owner_dir;
    meta.history = record.history;
    meta.text = record.name;
    out.push_back(MakeEntry(record.name, std::move(meta)));
  }
  std::sort(out.begin(), out.end(),
            [](const ViewEntry& a, const ViewEntry& b) { return a.name < b.name; });
  return out;
}

StatusOr<ViewEntry> ResolveInLiveMetaRoot(Archive& archive, const ViewDescriptor& parent,
                                          std::string_view name) {
  MEDVFS_ASSIGN_OR_RETURN(store::NameRecord record, archive.ResolveName(parent.ino, name));
  if (!record.live() || record.history == 0) return NotFound();  // gone, or not a file
  ViewDescriptor meta;
  meta.kind = ViewKind::kFileMeta;
  meta.ino = parent.ino;
  meta.owner_dir = parent.owner_dir;
  meta.history = record.history;
  meta.text = std::string(name);
  return MakeEntry(std::string(name), std::move(meta));
}

// "v3" exactly (the metadata directories of versions have no time in their names).
std::optional<uint64_t> ParseMetaVersionName(std::string_view name) {
  if (name.find('_') != std::string_view::npos) return std::nullopt;
  return store::ParseVersionFileName(name);
}

StatusOr<ViewEntry> ResolveInMetaDir(Archive& archive, const ViewDescriptor& parent,
                                     std::string_view name) {
  if (name == kVersionsTsvName) return MakeEntry(std::string(name), VersionsTsvOf(parent));
  const std::optional<uint64_t> number = ParseMetaVersionName(name);
  if (!number) return NotFound();
  auto version = archive.GetVersion(parent.history, *number);
  if (!version.ok()) {
    if (version.status().code() == store::Code::kNotFound) return NotFound();
    return version.status();
  }
  // A purged version left only its line in versions.tsv.
  if (version->is_delete_marker() || version->removed == store::ContentRemoval::kPurged) {
    return NotFound();
  }
  ViewDescriptor meta = ChildOf(parent, ViewKind::kFileMeta);
  meta.version = *number;
  return MakeEntry(std::string(name), std::move(meta));
}

StatusOr<std::vector<ViewEntry>> ListMetaDir(Archive& archive, const ViewDescriptor& view) {
  MEDVFS_ASSIGN_OR_RETURN(auto versions, archive.ListVersions(view.history));
  std::vector<ViewEntry> out;
  out.push_back(MakeEntry(std::string(kVersionsTsvName), VersionsTsvOf(view)));
  for (const VersionInfo& v : versions) {
    if (v.is_delete_marker() || v.removed == store::ContentRemoval::kPurged) continue;
    ViewDescriptor meta = ChildOf(view, ViewKind::kFileMeta);
    meta.version = v.number;
    out.push_back(MakeEntry(std::string("v").append(std::to_string(v.number)), std::move(meta)));
  }
  return out;
}

StatusOr<ViewEntry> ResolveInFileMeta(Archive& archive, const ViewDescriptor& parent,
                                      std::string_view name) {
  if (name == kVersionsTsvName && parent.version == 0) {
    return MakeEntry(std::string(name), VersionsTsvOf(parent));
  }
  ViewKind kind{};
  bool needs_tags = false;
  if (name == kSha256Name) {
    kind = ViewKind::kSha256File;
  } else if (name == kNoteName) {
    kind = ViewKind::kNoteFile;
  } else if (name == kDicomJsonName) {
    kind = ViewKind::kDicomJson;
    needs_tags = true;
  } else if (name == kTagsDirName) {
    kind = ViewKind::kTagsDir;
    needs_tags = true;
  } else if (name == kTagsTsvName) {
    kind = ViewKind::kTagsTsv;
    needs_tags = true;
  } else if (name == kDiffName && parent.version != 0) {
    kind = ViewKind::kDiffFile;
  } else {
    return NotFound();
  }
  MEDVFS_ASSIGN_OR_RETURN(VersionInfo version, MetaVersion(archive, parent));
  if (needs_tags && !version.has_dicom_tags) return NotFound();
  return MakeEntry(std::string(name), ChildOf(parent, kind));
}

StatusOr<std::vector<ViewEntry>> ListFileMeta(Archive& archive, const ViewDescriptor& view) {
  std::vector<ViewEntry> out;
  auto version = MetaVersion(archive, view);
  if (!version.ok() && (view.version != 0 || version.status().code() != store::Code::kNotFound)) {
    return version.status();
  }
  if (version.ok()) {  // in name order
    if (version->has_dicom_tags) {
      out.push_back(MakeEntry(std::string(kDicomJsonName), ChildOf(view, ViewKind::kDicomJson)));
    }
    if (view.version != 0) {
      out.push_back(MakeEntry(std::string(kDiffName), ChildOf(view, ViewKind::kDiffFile)));
    }
    out.push_back(MakeEntry(std::string(kNoteName), ChildOf(view, ViewKind::kNoteFile)));
    out.push_back(MakeEntry(std::string(kSha256Name), ChildOf(view, ViewKind::kSha256File)));
    if (version->has_dicom_tags) {
      out.push_back(MakeEntry(std::string(kTagsDirName), ChildOf(view, ViewKind::kTagsDir)));
      out.push_back(MakeEntry(std::string(kTagsTsvName), ChildOf(view, ViewKind::kTagsTsv)));
    }
  }
  if (view.version == 0) {
    out.push_back(MakeEntry(std::string(kVersionsTsvName), VersionsTsvOf(view)));
  }
  return out;
}

StatusOr<std::vector<ViewEntry>> ListTags(Archive& archive, const ViewDescriptor& view) {
  MEDVFS_ASSIGN_OR_RETURN(VersionInfo version, MetaVersion(archive, view));
  MEDVFS_ASSIGN_OR_RETURN(store::DicomTags tags, TagsOf(archive, view, version));
  std::set<std::string> seen;
  std::vector<ViewEntry> out;
  for (const store::DicomElement& element : tags.elements) {
    if (!IsKeywordFileName(element.keyword) || !seen.insert(element.keyword).second) continue;
    ViewDescriptor tag = ChildOf(view, ViewKind::kTagFile);
    tag.keyword = element.keyword;
    out.push_back(MakeEntry(element.keyword, std::move(tag)));
  }
  return out;
}

StatusOr<ViewEntry> ResolveInTags(Archive& archive, const ViewDescriptor& parent,
                                  std::string_view name) {
  if (!IsKeywordFileName(name)) return NotFound();
  MEDVFS_ASSIGN_OR_RETURN(VersionInfo version, MetaVersion(archive, parent));
  MEDVFS_ASSIGN_OR_RETURN(store::DicomTags tags, TagsOf(archive, parent, version));
  if (tags.Find(name) == nullptr) return NotFound();
  ViewDescriptor tag = ChildOf(parent, ViewKind::kTagFile);
  tag.keyword = std::string(name);
  return MakeEntry(std::string(name), std::move(tag));
}

// A note open for writing (see OpenNoteForWriting).
class NoteFileHandle final : public store::FileHandle {
 public:
  NoteFileHandle(Archive& archive, store::InodeId ino, store::HistoryId history, uint64_t number,
                 std::string text, bool dirty, bool append)
      : archive_(archive),
        ino_(ino),
        history_(history),
        number_(number),
        append_(append),
        text_(std::move(text)),
        dirty_(dirty) {}

  store::InodeId ino() const override { return ino_; }

  StatusOr<size_t> Read(uint64_t offset, std::span<char> out) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (offset >= text_.size()) return size_t{0};
    const size_t n = std::min(out.size(), text_.size() - static_cast<size_t>(offset));
    std::memcpy(out.data(), text_.data() + offset, n);
    return n;
  }

  StatusOr<size_t> Write(uint64_t offset, std::string_view data) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (append_) offset = text_.size();
    if (offset > kMaxNoteHandleBytes || data.size() > kMaxNoteHandleBytes - offset) {
      return Status(store::Code::kTooBig, "a note holds at most 64 KiB");
    }
    const size_t at = static_cast<size_t>(offset);
    if (text_.size() < at + data.size()) text_.resize(at + data.size(), '\0');
    std::memcpy(text_.data() + at, data.data(), data.size());
    dirty_ = true;
    return data.size();
  }

  Status Flush(const store::Caller& caller) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!dirty_) return Status::Ok();
    MEDVFS_RETURN_IF_ERROR(
        archive_.SetNote(history_, number_, StripTrailingNewlines(text_), caller));
    dirty_ = false;
    return Status::Ok();
  }

  Status Sync(const store::Caller& caller) override { return Flush(caller); }

  Status Truncate(uint64_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    if (size > kMaxNoteHandleBytes)
      return Status(store::Code::kTooBig, "a note holds at most 64 KiB");
    text_.resize(static_cast<size_t>(size), '\0');
    dirty_ = true;
    return Status::Ok();
  }

 private:
  Archive& archive_;
  const store::InodeId ino_;
  const store::HistoryId history_;
  const uint64_t number_;
  const bool append_;
  // Lock order: before the store's locks (Flush calls SetNote while holding it).
  std::mutex mu_;
  std::string text_;  // GUARDED_BY(mu_)
  bool dirty_;        // GUARDED_BY(mu_)
};

// The `diff` view: texts already made, by what they depend on only (both versions' content,
// numbers and times), so that one cache serves every archive the process opens. Bounded: a
// diff decodes both versions, and getattr, open and read each ask for the text.
class DiffTextCache {
 public:
  using Key =
      std::tuple<store::Sha256Digest, uint64_t, int64_t, store::Sha256Digest, uint64_t, int64_t>;
  std::optional<std::string> Get(const Key& key) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first != key) continue;
      entries_.splice(entries_.begin(), entries_, it);  // most recently used first
      return it->second;
    }
    return std::nullopt;
  }
  void Put(const Key& key, const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.emplace_front(key, text);
    if (entries_.size() > kMaxEntries) entries_.pop_back();
  }

 private:
  static constexpr size_t kMaxEntries = 32;
  std::mutex mu_;
  std::list<std::pair<Key, std::string>> entries_;  // GUARDED_BY(mu_)
};

DiffTextCache& DiffTexts() {
  static DiffTextCache* cache = new DiffTextCache();  // never destroyed: used until exit
  return *cache;
}

// The daemon decodes files up to this size for the view; larger ones are compared by bytes and
// tags (the command line decodes larger files).
constexpr uint64_t kMaxViewDecodeBytes = uint64_t{64} << 20;

class HandleSource final : public store::DiffSource {
 public:
  HandleSource(std::unique_ptr<store::FileHandle> handle, uint64_t size)
      : handle_(std::move(handle)), size_(size) {}
  uint64_t size() const override { return size_; }
  StatusOr<size_t> ReadAt(uint64_t offset, std::span<char> out) override {
    return handle_->Read(offset, out);
  }

 private:
  std::unique_ptr<store::FileHandle> handle_;
  const uint64_t size_;
};

std::string VersionLabel(const VersionInfo& version) {
  return "v" + std::to_string(version.number);
}

// vN compared with the last version with content before it.
StatusOr<std::string> DiffText(Archive& archive, const ViewDescriptor& view,
                               const VersionInfo& version) {
  if (version.content_removed()) {
    return VersionLabel(version) + " has no content any more (" +
           std::string(store::ContentRemovalName(version.removed)) + "): nothing to compare.\n";
  }
  MEDVFS_ASSIGN_OR_RETURN(auto versions, archive.ListVersions(view.history));
  const VersionInfo* before = nullptr;
  bool deleted_between = false;
  for (const VersionInfo& v : versions) {
    if (v.number >= version.number) break;
    if (v.is_delete_marker()) {
      deleted_between = true;
    } else if (!v.content_removed()) {
      before = &v;
      deleted_between = false;
    }
  }
  if (before == nullptr) {
    return VersionLabel(version) +
           " is the first version with content: there is no version "
           "before it to compare with.\n";
  }
  const DiffTextCache::Key key{before->sha256, before->number, before->time_ns,
                               version.sha256, version.number, version.time_ns};
  if (std::optional<std::string> cached = DiffTexts().Get(key)) return std::move(*cached);

  MEDVFS_ASSIGN_OR_RETURN(auto handle_a, archive.OpenVersion(view.history, before->number));
  MEDVFS_ASSIGN_OR_RETURN(auto handle_b, archive.OpenVersion(view.history, version.number));
  HandleSource source_a(std::move(handle_a), before->size);
  HandleSource source_b(std::move(handle_b), version.size);
  store::DiffOptions options;
  options.max_decode_bytes = kMaxViewDecodeBytes;
  MEDVFS_ASSIGN_OR_RETURN(
      store::DiffResult result,
      store::DiffVersions({VersionLabel(*before), before->time_ns, &source_a},
                          {VersionLabel(version), version.time_ns, &source_b}, options));
  std::string text;
  if (deleted_between) {
    text += "The file was deleted after " + VersionLabel(*before) + " and saved again as " +
            VersionLabel(version) + ".\n";
  }
  text += store::FormatDiffText(result);
  if (before->size > kMaxViewDecodeBytes || version.size > kMaxViewDecodeBytes) {
    text += "For the tag and pixel comparison of large files run: medvfs diff PATH " +
            VersionLabel(*before) + " " + VersionLabel(version) + "\n";
  }
  DiffTexts().Put(key, text);
  return text;
}

}  // namespace

bool IsMetaKind(ViewKind kind) {
  switch (kind) {
    case ViewKind::kMetaDir:
    case ViewKind::kLiveMetaRoot:
    case ViewKind::kFileMeta:
    case ViewKind::kTagsDir:
    case ViewKind::kTagFile:
    case ViewKind::kTagsTsv:
    case ViewKind::kDicomJson:
    case ViewKind::kSha256File:
    case ViewKind::kNoteFile:
    case ViewKind::kDiffFile:
      return true;
    default:
      return false;
  }
}

ViewEntry MetaDirOf(const ViewDescriptor& history_dir) {
  return MakeEntry(std::string(kMetaDirName), ChildOf(history_dir, ViewKind::kMetaDir));
}

StatusOr<Attr> MetaViewAttr(Archive& archive, const ViewDescriptor& view) {
  if (view.kind == ViewKind::kLiveMetaRoot) return LiveMetaRootAttr(archive, view);
  MEDVFS_ASSIGN_OR_RETURN(Attr guard, GuardOfName(archive, view.ino, view.text, view.history));
  Attr attr;
  attr.uid = guard.uid;
  attr.gid = guard.gid;
  attr.atime_ns = guard.atime_ns;
  attr.mtime_ns = guard.mtime_ns;
  attr.ctime_ns = guard.ctime_ns;
  if (view.is_dir()) {
    attr.mode = S_IFDIR | ReadAndSearch(guard.mode);
    attr.nlink = 2;
    return attr;
  }
  MEDVFS_ASSIGN_OR_RETURN(VersionInfo version, MetaVersion(archive, view));
  attr.mode = S_IFREG | (guard.mode & 0444);
  if (view.kind == ViewKind::kNoteFile) attr.mode |= guard.mode & 0222;
  attr.nlink = 1;
  if (view.kind == ViewKind::kSha256File) {
    // 64 hex digits and a newline, known without computing a deferred digest (a stat must
    // stay cheap).
    attr.size = 2 * sizeof(store::Sha256Digest) + 1;
  } else {
    MEDVFS_ASSIGN_OR_RETURN(std::string content, MetaFileContent(archive, view));
    attr.size = content.size();
  }
  attr.atime_ns = attr.mtime_ns = attr.ctime_ns = version.time_ns;
  return attr;
}

StatusOr<ViewEntry> ResolveInMeta(Archive& archive, const ViewDescriptor& parent,
                                  std::string_view name) {
  switch (parent.kind) {
    case ViewKind::kLiveMetaRoot:
      return ResolveInLiveMetaRoot(archive, parent, name);
    case ViewKind::kMetaDir:
      return ResolveInMetaDir(archive, parent, name);
    case ViewKind::kFileMeta:
      return ResolveInFileMeta(archive, parent, name);
    case ViewKind::kTagsDir:
      return ResolveInTags(archive, parent, name);
    default:
      return Status(store::Code::kNotDirectory, "view node is not a directory");
  }
}

StatusOr<std::vector<ViewEntry>> ListMeta(Archive& archive, const ViewDescriptor& view) {
  switch (view.kind) {
    case ViewKind::kLiveMetaRoot:
      return ListLiveMetaRoot(archive, view);
    case ViewKind::kMetaDir:
      return ListMetaDir(archive, view);
    case ViewKind::kFileMeta:
      return ListFileMeta(archive, view);
    case ViewKind::kTagsDir:
      return ListTags(archive, view);
    default:
      return Status(store::Code::kNotDirectory, "view node is not a directory");
  }
}

StatusOr<std::string> MetaFileContent(Archive& archive, const ViewDescriptor& view,
                                      const std::function<bool()>& cancelled) {
  MEDVFS_ASSIGN_OR_RETURN(VersionInfo version, MetaVersion(archive, view));
  switch (view.kind) {
    case ViewKind::kSha256File: {
      if (!version.sha256_deferred) return store::FormatSha256Hex(version.sha256) + "\n";
      MEDVFS_ASSIGN_OR_RETURN(store::Sha256Digest sha256,
                              archive.VersionSha256(view.history, version.number, cancelled));
      return store::FormatSha256Hex(sha256) + "\n";
    }
    case ViewKind::kNoteFile:
      return NoteContent(version);
    case ViewKind::kDiffFile:
      return DiffText(archive, view, version);
    case ViewKind::kDicomJson: {
      MEDVFS_ASSIGN_OR_RETURN(store::DicomTags tags, TagsOf(archive, view, version));
      if (!tags.json.empty() && tags.json.back() != '\n') tags.json += '\n';
      return std::move(tags.json);
    }
    case ViewKind::kTagFile: {
      MEDVFS_ASSIGN_OR_RETURN(store::DicomTags tags, TagsOf(archive, view, version));
      const store::DicomElement* element = tags.Find(view.keyword);
      if (element == nullptr) return NotFound();
      return element->value + "\n";
    }
    case ViewKind::kTagsTsv: {
      MEDVFS_ASSIGN_OR_RETURN(store::DicomTags tags, TagsOf(archive, view, version));
      return store::FormatTagsTsv(tags.elements);
    }
    default:
      return Status::Invalid("not a metadata file");
  }
}

}  // namespace view_detail

store::StatusOr<std::unique_ptr<store::FileHandle>> OpenNoteForWriting(store::Archive& archive,
                                                                       const ViewDescriptor& view,
                                                                       bool truncate, bool append) {
  if (view.kind != ViewKind::kNoteFile) return store::Status::ReadOnly("views are read-only");
  MEDVFS_ASSIGN_OR_RETURN(store::VersionInfo version, view_detail::MetaVersion(archive, view));
  std::string text = truncate ? std::string() : view_detail::NoteContent(version);
  return std::unique_ptr<store::FileHandle>(
      new view_detail::NoteFileHandle(archive, StableViewIno(view), view.history, version.number,
                                      std::move(text), truncate, append));
}

store::Status TruncateNote(store::Archive& archive, const ViewDescriptor& view,
                           store::FileHandle* open_note, uint64_t size,
                           const store::Caller& caller) {
  if (view.kind != ViewKind::kNoteFile) return store::Status::ReadOnly("views are read-only");
  if (open_note != nullptr) {
    auto* note = dynamic_cast<view_detail::NoteFileHandle*>(open_note);
    if (note == nullptr) return store::Status::ReadOnly("handle not open for writing");
    return note->Truncate(size);
  }
  MEDVFS_ASSIGN_OR_RETURN(store::VersionInfo version, view_detail::MetaVersion(archive, view));
  std::string text = view_detail::NoteContent(version);
  if (size > text.size()) return store::Status::Invalid("a note cannot be extended by truncate");
  text.resize(static_cast<size_t>(size));
  return archive.SetNote(view.history, version.number, view_detail::StripTrailingNewlines(text),
                         caller);
}

}  // namespace medvfs::fs
