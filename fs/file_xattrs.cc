#include "fs/file_xattrs.h"

#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>

#include "store/views.h"

namespace medvfs::fs {
namespace {

using store::Status;
using store::StatusOr;

constexpr std::string_view kMedvfsXattrPrefix = "user.medvfs.";

Status NoData() { return Status(store::Code::kNoData, "no such attribute"); }
Status ReadOnlyAttribute() {
  return Status(store::Code::kPermission, "this medvfs attribute is read-only");
}

struct Current {
  store::HistoryId history = 0;
  store::VersionInfo version;
};

// The current version of the live regular file `ino`; kNoData for other nodes and before the
// first commit.
StatusOr<Current> CurrentVersion(store::Archive& archive, store::InodeId ino) {
  MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, archive.GetAttr(ino));
  if (!S_ISREG(attr.mode) || attr.history == 0 || attr.version == 0) return NoData();
  Current current;
  current.history = attr.history;
  MEDVFS_ASSIGN_OR_RETURN(current.version, archive.GetVersion(attr.history, attr.version));
  return current;
}

bool IsDicomXattrKeyword(std::string_view keyword) {
  return std::find(kDicomXattrKeywords.begin(), kDicomXattrKeywords.end(), keyword) !=
         kDicomXattrKeywords.end();
}

StatusOr<std::string> DicomXattr(store::Archive& archive, store::InodeId ino,
                                 std::string_view keyword) {
  if (!IsDicomXattrKeyword(keyword)) return NoData();
  MEDVFS_ASSIGN_OR_RETURN(Current current, CurrentVersion(archive, ino));
  if (!current.version.has_dicom_tags) return NoData();
  auto tags = archive.GetTags(current.history, current.version.number);
  if (!tags.ok()) {
    if (tags.status().code() == store::Code::kNotFound) return NoData();
    return tags.status();
  }
  const store::DicomElement* element = tags->Find(keyword);
  if (element == nullptr) return NoData();
  return element->value;
}

}  // namespace

bool IsVirtualXattr(std::string_view name) {
  return name.starts_with(kMedvfsXattrPrefix) || name.starts_with(kDicomXattrPrefix);
}

StatusOr<std::string> GetVirtualXattr(store::Archive& archive, store::InodeId ino,
                                      std::string_view name,
                                      const std::function<bool()>& cancelled) {
  if (name.starts_with(kDicomXattrPrefix)) {
    return DicomXattr(archive, ino, name.substr(kDicomXattrPrefix.size()));
  }
  if (name != kVersionXattr && name != kSha256Xattr && name != kNoteXattr) return NoData();
  MEDVFS_ASSIGN_OR_RETURN(Current current, CurrentVersion(archive, ino));
  if (name == kVersionXattr) return std::to_string(current.version.number);
  if (name == kSha256Xattr) {
    if (!current.version.sha256_deferred) return store::FormatSha256Hex(current.version.sha256);
    MEDVFS_ASSIGN_OR_RETURN(
        store::Sha256Digest sha256,
        archive.VersionSha256(current.history, current.version.number, cancelled));
    return store::FormatSha256Hex(sha256);
  }
  if (current.version.note.empty()) return NoData();
  return current.version.note;
}

Status SetVirtualXattr(store::Archive& archive, store::InodeId ino, std::string_view name,
                       std::string_view value, int flags, const store::Caller& caller) {
  if (name != kNoteXattr) return ReadOnlyAttribute();
  auto current = CurrentVersion(archive, ino);
  if (!current.ok()) {
    // Not a file with a version: there is nothing to annotate.
    if (current.status().code() == store::Code::kNoData) return ReadOnlyAttribute();
    return current.status();
  }
  const bool has_note = !current->version.note.empty();
  if ((flags & XATTR_CREATE) && has_note) return Status::Exists("the version has a note");
  if ((flags & XATTR_REPLACE) && !has_note) return NoData();
  // Tools often pass the terminating NUL of a C string along.
  while (!value.empty() && value.back() == '\0') value.remove_suffix(1);
  return archive.SetNote(current->history, current->version.number, value, caller);
}

Status RemoveVirtualXattr(store::Archive& archive, store::InodeId ino, std::string_view name,
                          const store::Caller& caller) {
  if (name != kNoteXattr) return ReadOnlyAttribute();
  auto current = CurrentVersion(archive, ino);
  if (!current.ok()) {
    if (current.status().code() == store::Code::kNoData) return ReadOnlyAttribute();
    return current.status();
  }
  if (current->version.note.empty()) return NoData();
  return archive.SetNote(current->history, current->version.number, "", caller);
}

}  // namespace medvfs::fs
