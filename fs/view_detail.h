// Helpers shared by the view implementations (fs/views.cc, fs/meta_views.cc,
// fs/patient_views.cc). Internal to fs/.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fs/views.h"
#include "store/archive.h"
#include "store/status.h"

namespace medvfs::fs::view_detail {

store::Status NotFound();

// A view entry whose mode is the type of `view`.
ViewEntry MakeEntry(std::string name, ViewDescriptor view);

// Owner and times of a live node; root and epoch if it is gone.
store::Attr OwnerAttr(store::Archive& archive, store::InodeId ino);

// The owner and permission bits that guard the history `history` last bound to `name` in
// directory `dir` now: the live file's, else those of its last version (a deleted file).
store::StatusOr<store::Attr> GuardOfName(store::Archive& archive, store::InodeId dir,
                                         std::string_view name, store::HistoryId history);

// Read bits of `mode`, each with the search bit beside it (r-- becomes r-x).
inline uint32_t ReadAndSearch(uint32_t mode) {
  const uint32_t read = mode & 0444;
  return read | (read >> 2);
}

// --- fs/meta_views.cc ------------------------------------------------------------------------
// DIR/@version/NAME/.meta of the history directory `history_dir`.
ViewEntry MetaDirOf(const ViewDescriptor& history_dir);
store::StatusOr<store::Attr> MetaViewAttr(store::Archive& archive, const ViewDescriptor& view);
store::StatusOr<ViewEntry> ResolveInMeta(store::Archive& archive, const ViewDescriptor& parent,
                                         std::string_view name);
store::StatusOr<std::vector<ViewEntry>> ListMeta(store::Archive& archive,
                                                 const ViewDescriptor& view);
// The content of a generated metadata file (kDicomJson, kSha256File, kNoteFile, kTagFile,
// kTagsTsv, kDiffFile). `cancelled`: see OpenViewFile (a deferred digest is computed for
// kSha256File).
store::StatusOr<std::string> MetaFileContent(store::Archive& archive, const ViewDescriptor& view,
                                             const std::function<bool()>& cancelled = {});
bool IsMetaKind(ViewKind kind);

// --- fs/patient_views.cc ---------------------------------------------------------------------
store::StatusOr<store::Attr> PatientViewAttr(store::Archive& archive, const ViewDescriptor& view);
store::StatusOr<ViewEntry> ResolveInPatients(store::Archive& archive, const ViewDescriptor& parent,
                                             std::string_view name);
store::StatusOr<std::vector<ViewEntry>> ListPatients(store::Archive& archive,
                                                     const ViewDescriptor& view);
bool IsPatientKind(ViewKind kind);

}  // namespace medvfs::fs::view_detail
