// The read-only history views a mount draws beside the live tree (DESIGN.md section 1):
//
//   DIR/@version/                      one entry per name that ever existed in DIR
//   DIR/@version/NAME/                 regular file: its content versions, v<N>_<time><ext>
//                                      directory: that directory's own @version listing
//                                      symlink (or other): empty
//   DIR/@version/NAME/vN...            one stored version (read-only regular file)
//   DIR/@version/NAME/.meta/versions.tsv   FormatVersionsTsv of the history (lookup only)
//   DIR/@version/@<time>/              DIR as it was then, recursively
//
// A view node is named by a ViewDescriptor. These are plain functions over store::Archive, so
// tests call them without a mount; the FUSE handlers (fs/ops_*.cc) only translate.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/archive.h"
#include "store/status.h"

namespace medvfs::fs {

// Entry names with a meaning of their own; real entries cannot take them (EPERM).
inline constexpr std::string_view kVersionDirName = "@version";
inline constexpr std::string_view kMetaDirName = ".meta";
inline constexpr std::string_view kVersionsTsvName = "versions.tsv";
// setxattr on DIR/@version/NAME with a version number as value restores that version.
inline constexpr std::string_view kRestoreXattr = "user.medvfs.restore";
// getxattr on the mount root: ArchiveStats as a JSON object.
inline constexpr std::string_view kStatsXattr = "user.medvfs.stats";

// True for the names a real entry may not be created under.
bool IsReservedName(std::string_view name);

enum class ViewKind : uint8_t {
  kVersionRoot = 1,  // `ino`'s @version: every name that ever existed in directory `ino`
  kHistory,          // DIR/@version/NAME of a regular file: the versions of `history`
  kEmptyDir,         // DIR/@version/NAME of a symlink or special file
  kMetaDir,          // DIR/@version/NAME/.meta
  kVersionsTsv,      // DIR/@version/NAME/.meta/versions.tsv
  kVersionFile,      // version `version` of `history` (0: an empty file never committed)
  kTimeDir,          // directory `ino` as it was at `time_ns`
  kTimeSymlink,      // symlink `ino` as seen under an @<time> view; its target is `text`
};

struct ViewDescriptor {
  ViewKind kind = ViewKind::kVersionRoot;
  // kVersionRoot, kTimeDir: a directory; kTimeSymlink: the link; kHistory: the directory that
  // holds NAME; kVersionFile under @<time>: the inode that held the name then.
  store::InodeId ino = 0;
  store::InodeId owner_dir = 0;  // the live directory DIR the view hangs off; owns view dirs
  store::HistoryId history = 0;  // kHistory, kMetaDir, kVersionsTsv, kVersionFile
  uint64_t version = 0;          // kVersionFile
  int64_t time_ns = 0;           // kTimeDir
  std::string text;              // kHistory, kEmptyDir: NAME; kTimeSymlink: the target

  auto operator<=>(const ViewDescriptor&) const = default;
  bool operator==(const ViewDescriptor&) const = default;
  bool is_dir() const;
};

// The descriptor of `DIR/@version` for a live directory DIR.
ViewDescriptor VersionRootOf(store::InodeId dir);

// A stable st_ino for a view node (top bit set, so it never equals a real inode number): the
// same descriptor always gets the same number, across lookups, forgets and remounts.
uint64_t StableViewIno(const ViewDescriptor& view);

struct ViewEntry {
  std::string name;
  ViewDescriptor view;
  uint32_t mode = 0;  // file type bits (what readdir reports)
};

// Attributes of a view node; `ino` is StableViewIno(view). Directories are 0555 owned by the
// owner of view.owner_dir, except a file's history directory (DIR/@version/NAME), which follows
// the file's current owner and read permissions (r becomes r-x; the last version's if the file
// is gone), so that a chmod also guards the file's past. Version files carry the version's owner
// and permission bits minus every write bit (under @<time>, also minus what the live file no
// longer grants).
store::StatusOr<store::Attr> ViewAttr(store::Archive& archive, const ViewDescriptor& view);

// The child `name` of view directory `parent`; kNotFound if there is none, kNotDirectory if
// `parent` is not a directory.
store::StatusOr<ViewEntry> ResolveViewChild(store::Archive& archive, const ViewDescriptor& parent,
                                            std::string_view name);

// The entries of view directory `view` in a stable order. `show_hidden` (mount option
// versions=visible) also lists `.meta` in a history directory.
store::StatusOr<std::vector<ViewEntry>> ListView(store::Archive& archive,
                                                 const ViewDescriptor& view, bool show_hidden);

// Opens a view file (kVersionFile or kVersionsTsv) for reading.
store::StatusOr<std::unique_ptr<store::FileHandle>> OpenViewFile(store::Archive& archive,
                                                                 const ViewDescriptor& view);

// The target of a kTimeSymlink.
store::StatusOr<std::string> ReadViewLink(const ViewDescriptor& view);

// Restores a history to the version number in `value` ("3", "v3", optionally followed by a
// newline). REQUIRES: view.kind == kHistory, else kReadOnly. Returns the live attributes.
store::StatusOr<store::Attr> RestoreFromView(store::Archive& archive, const ViewDescriptor& view,
                                             std::string_view value, const store::Caller& caller);

// {"files":N,"live_files":N,...}: the value of the user.medvfs.stats attribute.
std::string FormatStatsJson(const store::ArchiveStats& stats);

// A read-only FileHandle over bytes held in memory (generated view files).
class StringFileHandle : public store::FileHandle {
 public:
  StringFileHandle(store::InodeId ino, std::string content)
      : ino_(ino), content_(std::move(content)) {}
  store::InodeId ino() const override { return ino_; }
  store::StatusOr<size_t> Read(uint64_t offset, std::span<char> out) override;
  store::StatusOr<size_t> Write(uint64_t offset, std::string_view data) override;
  store::Status Flush(const store::Caller& caller) override;
  store::Status Sync(const store::Caller& caller) override;

 private:
  store::InodeId ino_;
  std::string content_;
};

}  // namespace medvfs::fs
