// The virtual extended attributes of live regular files (DESIGN.md section 1), answered from
// the archive's version records and DICOM tags, never stored:
//
//   user.medvfs.version      the current version's number, in decimal
//   user.medvfs.sha256       the current version's SHA-256, 64 hex digits
//   user.medvfs.note         the current version's note (settable; removing it clears it)
//   user.dicom.<Keyword>     the value of a main DICOM tag of the current version
//   user.medvfs.anon_path    where the file's de-identified copy is: "@anon/<...>.dcm",
//                            relative to the mount root (DICOM files shown in /@anon only;
//                            answered by AnonView, fs/anon_views.h, not by GetVirtualXattr)
//
// The namespaces user.medvfs. and user.dicom. belong to medvfs on every node: nothing is
// stored under them, and listxattr never lists them (so that cp -a, rsync -X and getfattr -d
// never copy them onto other files; they are read by name, e.g. getfattr -n).
#pragma once

#include <array>
#include <functional>
#include <string>
#include <string_view>

#include "store/archive.h"
#include "store/status.h"

namespace medvfs::fs {

inline constexpr std::string_view kVersionXattr = "user.medvfs.version";
inline constexpr std::string_view kSha256Xattr = "user.medvfs.sha256";
inline constexpr std::string_view kNoteXattr = "user.medvfs.note";
inline constexpr std::string_view kAnonPathXattr = "user.medvfs.anon_path";
inline constexpr std::string_view kDicomXattrPrefix = "user.dicom.";

// The keywords served as user.dicom.<Keyword>.
inline constexpr std::array<std::string_view, 11> kDicomXattrKeywords = {
    "PatientID",        "PatientName",       "PatientBirthDate", "StudyDate",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",   "Modality",
    "StudyDescription", "SeriesDescription", "InstitutionName"};

// True for names in the namespaces medvfs answers itself (user.medvfs.*, user.dicom.*).
bool IsVirtualXattr(std::string_view name);

// The value of a virtual attribute of node `ino`. kNoData when the node is not a regular file,
// the name is not one of the above, the file has no version yet, the note is empty, or the
// tag is absent (or the content is not DICOM). user.medvfs.sha256 of a version whose commit
// deferred its digest computes it (Archive::VersionSha256): `cancelled` (may be empty; the
// FUSE request's interruption) stops that with kBusy.
store::StatusOr<std::string> GetVirtualXattr(store::Archive& archive, store::InodeId ino,
                                             std::string_view name,
                                             const std::function<bool()>& cancelled = {});

// setxattr of a virtual attribute. user.medvfs.note on a regular file sets the current
// version's note (XATTR_CREATE: kExists if there is one; XATTR_REPLACE: kNoData if there is
// none). Every other name in the namespaces: kPermission (EPERM).
store::Status SetVirtualXattr(store::Archive& archive, store::InodeId ino, std::string_view name,
                              std::string_view value, int flags, const store::Caller& caller);

// removexattr of a virtual attribute: user.medvfs.note clears the note (kNoData if there is
// none); every other name: kPermission.
store::Status RemoveVirtualXattr(store::Archive& archive, store::InodeId ino, std::string_view name,
                                 const store::Caller& caller);

}  // namespace medvfs::fs
