// The views a mount draws beside the live tree (DESIGN.md section 1):
//
//   DIR/@version/                      one entry per name that ever existed in DIR
//   DIR/@version/NAME/                 regular file: its content versions, v<N>_<time><ext>
//                                      directory: that directory's own @version listing
//                                      symlink (or other): empty
//   DIR/@version/NAME/vN...            one stored version (read-only regular file)
//   DIR/@version/NAME/.meta/           versions.tsv, and vN/ for each content version
//   DIR/@version/NAME/.meta/versions.tsv   FormatVersionsTsv of the history
//   DIR/@version/NAME/.meta/vN/        metadata of version N (like DIR/.meta/NAME/)
//   DIR/@version/@<time>/              DIR as it was then, recursively
//   DIR/.meta/                         one entry per live regular file of DIR
//   DIR/.meta/NAME/                    metadata of NAME's current version: dicom.json, tags/,
//                                      versions.tsv, sha256, note (dicom.json and tags/ only
//                                      for DICOM content)
//   /@patients/<PatientID>/<study>/    symlinks to the live DICOM files of a study
//   /@anon/<pseudonym>/<study>/<series>/<SOPInstanceUID>.dcm
//                                      the live DICOM files de-identified (fs/anon_views.h)
//
// Everything is read-only except the `note` files (fs/meta_views.cc). Views under a file
// follow the file's current owner and read permissions; /@patients and /@anon are 0550, owned
// like the mount's root.
//
// A view node is named by a ViewDescriptor. These are plain functions over store::Archive, so
// tests call them without a mount; the FUSE handlers (fs/ops_*.cc) only translate.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
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
// At the mount root only: the patient index.
inline constexpr std::string_view kPatientsDirName = "@patients";
// At the mount root only: the de-identified view (fs/anon_views.h).
inline constexpr std::string_view kAnonDirName = "@anon";
// Entries of a metadata directory (DIR/.meta/NAME, DIR/@version/NAME/.meta/vN).
inline constexpr std::string_view kDicomJsonName = "dicom.json";
inline constexpr std::string_view kTagsDirName = "tags";
inline constexpr std::string_view kTagsTsvName = "tags.tsv";
inline constexpr std::string_view kSha256Name = "sha256";
inline constexpr std::string_view kNoteName = "note";
// In DIR/@version/NAME/.meta/vN only: vN compared with the version before it (medvfs diff).
inline constexpr std::string_view kDiffName = "diff";
// setxattr on DIR/@version/NAME with a version number as value restores that version.
inline constexpr std::string_view kRestoreXattr = "user.medvfs.restore";
// getxattr on the mount root: ArchiveStats as a JSON object.
inline constexpr std::string_view kStatsXattr = "user.medvfs.stats";

// True for the names a real entry may not be created under (in any directory).
bool IsReservedName(std::string_view name);
// True when `name` in directory `parent` (a real node id) is a view: @version and .meta
// everywhere, @patients and @anon in the root. Such names can be neither created nor removed.
bool IsViewName(uint64_t parent, std::string_view name);

enum class ViewKind : uint8_t {
  kVersionRoot = 1,  // `ino`'s @version: every name that ever existed in directory `ino`
  kHistory,          // DIR/@version/NAME of a regular file: the versions of `history`
  kEmptyDir,         // DIR/@version/NAME of a symlink or special file
  kMetaDir,          // DIR/@version/NAME/.meta
  kVersionsTsv,      // DIR/@version/NAME/.meta/versions.tsv
  kVersionFile,      // version `version` of `history` (0: an empty file never committed)
  kTimeDir,          // directory `ino` as it was at `time_ns`
  kTimeSymlink,      // symlink `ino` as seen under an @<time> view; its target is `text`
  // Metadata views (fs/meta_views.cc). Those of one file carry `ino` = the directory DIR that
  // holds the name, `text` = NAME, `history`, and `version` (0: the live file's current
  // version, resolved at each access).
  kLiveMetaRoot,  // DIR/.meta: the live regular files of directory `ino`
  kFileMeta,      // DIR/.meta/NAME (version 0) or DIR/@version/NAME/.meta/vN
  kTagsDir,       // .../tags: one file per top-level DICOM element with a keyword
  kTagFile,       // .../tags/<keyword>: the element's value and a newline
  kDicomJson,     // .../dicom.json: DicomTags::json
  kSha256File,    // .../sha256: the version's SHA-256 in hex and a newline
  kNoteFile,      // .../note: the version's note (and a newline); writable
  // The patient index (fs/patient_views.cc).
  kPatientsRoot,  // /@patients: every PatientID of the live DICOM files
  kPatient,       // /@patients/<text>: the studies of patient `text`
  kStudy,         // /@patients/<text>/<study>: the files of one study, as symlinks
  kPatientLink,   // a symlink to the live file `ino`; its target is `text`
  // DIR/@version/NAME/.meta/vN/diff (fs/meta_views.cc): the text of `medvfs diff` of the
  // version before vN against vN.
  kDiffFile,
  // The de-identified view (fs/anon_views.h), served by AnonView rather than the functions
  // below: `text` is the path inside /@anon ("" for the root).
  kAnonRoot,  // /@anon
  kAnonDir,   // /@anon/<pseudonym>, .../<study>, .../<series>
  kAnonFile,  // a live DICOM file de-identified: `ino`, `history`, `version` (fixed at lookup)
  // .../tags.tsv (fs/meta_views.cc): every top-level DICOM element, store::FormatTagsTsv.
  kTagsTsv,
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
  // kHistory, kEmptyDir, kMetaDir and the metadata views of one file: NAME; kTimeSymlink,
  // kPatientLink: the target; kPatient, kStudy: the PatientID; kAnonDir, kAnonFile: the path
  // inside /@anon.
  std::string text;
  std::string keyword;  // kTagFile: the DICOM keyword
  std::string study;    // kStudy: the study directory's name

  auto operator<=>(const ViewDescriptor&) const = default;
  bool operator==(const ViewDescriptor&) const = default;
  bool is_dir() const;
};

// The descriptor of `DIR/@version` for a live directory DIR.
ViewDescriptor VersionRootOf(store::InodeId dir);
// The descriptor of `DIR/.meta` for a live directory DIR.
ViewDescriptor LiveMetaRootOf(store::InodeId dir);
// The descriptor of `/@patients`.
ViewDescriptor PatientsRoot();
// The descriptor of `/@anon`.
ViewDescriptor AnonRoot();
// True for the nodes of /@anon, which only AnonView (fs/anon_views.h) can answer: ViewAttr,
// ResolveViewChild, ListView and OpenViewFile give kInvalid for them.
bool IsAnonKind(ViewKind kind);

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
// the file's current owner and read and write permissions (r becomes r-x; the last version's if
// the file is gone), so that a chmod also guards the file's past and whoever may write the file
// may restore it (the kernel checks w on the directory for user.medvfs.restore); nothing can
// be created in it. Version files carry the version's owner
// and permission bits minus every write bit (under @<time>, also minus what the live file no
// longer grants). The metadata views of a file (DIR/@version/NAME/.meta and everything under
// DIR/.meta/NAME) follow the file's current owner and read permissions like its history
// directory; a `note` also carries the file's write bits. DIR/.meta has DIR's owner and read
// and search bits. /@patients and everything in it is 0550 owned by the root's owner and
// group (it lists patient IDs); its symlinks are 0777.
store::StatusOr<store::Attr> ViewAttr(store::Archive& archive, const ViewDescriptor& view);

// The child `name` of view directory `parent`; kNotFound if there is none, kNotDirectory if
// `parent` is not a directory.
store::StatusOr<ViewEntry> ResolveViewChild(store::Archive& archive, const ViewDescriptor& parent,
                                            std::string_view name);

// The entries of view directory `view` in a stable order. `show_hidden` (mount option
// versions=visible) also lists `.meta` in a history directory.
store::StatusOr<std::vector<ViewEntry>> ListView(store::Archive& archive,
                                                 const ViewDescriptor& view, bool show_hidden);

// Opens a view file (a version, versions.tsv or a metadata file) for reading. A `sha256`
// metadata file of a version whose commit deferred its digest computes it here
// (Archive::VersionSha256); `cancelled` (may be empty: the FUSE request's interruption) stops
// that with kBusy.
store::StatusOr<std::unique_ptr<store::FileHandle>> OpenViewFile(
    store::Archive& archive, const ViewDescriptor& view,
    const std::function<bool()>& cancelled = {});

// True for views whose content is generated (and may change): they are read with direct I/O.
bool IsGeneratedViewFile(const ViewDescriptor& view);

// True for view nodes whose attributes change as the live tree changes (a save, a chmod): the
// kernel must not cache their attributes.
bool IsVolatileView(const ViewDescriptor& view);
// True for the metadata views, the patient index and /@anon, whose names resolve to something else
// after a save, rename or delete: the kernel must not cache their entries either.
bool ResolvesAgainstLiveTree(const ViewDescriptor& view);

// Opens a kNoteFile for writing: what is written replaces the note of the version when the
// handle is flushed (close), with trailing newlines stripped. The version is fixed at open
// (for version 0, the file's current version then). `truncate` (O_TRUNC) starts from an empty
// text, else from the current note; `append` (O_APPEND) writes at the end whatever the
// offset. kReadOnly for other views. A note holds at most 64 KiB (kTooBig beyond).
store::StatusOr<std::unique_ptr<store::FileHandle>> OpenNoteForWriting(store::Archive& archive,
                                                                       const ViewDescriptor& view,
                                                                       bool truncate, bool append);

// truncate(2) of a kNoteFile: through `open_note` (a handle from OpenNoteForWriting) when
// given, else by setting the version's note to its first `size` bytes right away.
store::Status TruncateNote(store::Archive& archive, const ViewDescriptor& view,
                           store::FileHandle* open_note, uint64_t size,
                           const store::Caller& caller);

// The target of a kTimeSymlink or kPatientLink.
store::StatusOr<std::string> ReadViewLink(const ViewDescriptor& view);

// Restores a history to the version number in `value` ("3", "v3", optionally followed by a
// newline). REQUIRES: view.kind == kHistory, else kReadOnly. Returns the live attributes.
store::StatusOr<store::Attr> RestoreFromView(store::Archive& archive, const ViewDescriptor& view,
                                             std::string_view value, const store::Caller& caller);

// The symlink names of one study's files in /@patients/P/S/: each file's base name, with
// "~<ino>" before the extension of names that occur more than once (e.g. "IM1~57.dcm"). Same
// order as `files`.
std::vector<std::string> StudyLinkNames(const std::vector<store::IndexedFile>& files);
// The target of a /@patients/P/S/ symlink to the live file at `path` (relative to the root):
// "../../../" + path.
std::string PatientLinkTarget(std::string_view path);

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
