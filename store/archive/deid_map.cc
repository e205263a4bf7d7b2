// BuildDeidMap: every PatientID the archive has held, with its pseudonym (medvfs deid-map).
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "store/archive.h"

namespace medvfs::store {
namespace {

std::string TrimmedPatientId(const DicomTags& tags) {
  const DicomElement* element = tags.Find("PatientID");
  if (element == nullptr) return {};
  std::string_view value = element->value;
  while (!value.empty() && (value.back() == ' ' || value.back() == '\0')) value.remove_suffix(1);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  return std::string(value);
}

// Adds the PatientIDs of every DICOM version of every name `dir` has held, then descends into
// its live subdirectories (a deleted directory's files were deleted first: their histories are
// reached through the names they had, as long as the directory lives).
Status CollectPatients(Archive& archive, InodeId dir, std::map<std::string, uint64_t>* versions,
                       int depth) {
  if (depth > 4096) return Status::Corruption("directories nested too deep");
  MEDVFS_ASSIGN_OR_RETURN(std::vector<NameRecord> names, archive.ListNames(dir));
  for (const NameRecord& record : names) {
    if (S_ISDIR(record.mode) && record.live()) {
      MEDVFS_RETURN_IF_ERROR(CollectPatients(archive, record.ino, versions, depth + 1));
      continue;
    }
    if (!S_ISREG(record.mode) || record.history == 0) continue;
    MEDVFS_ASSIGN_OR_RETURN(std::vector<VersionInfo> infos, archive.ListVersions(record.history));
    for (const VersionInfo& info : infos) {
      if (info.is_delete_marker() || !info.has_dicom_tags) continue;
      StatusOr<DicomTags> tags = archive.GetTags(record.history, info.number);
      if (tags.status().code() == Code::kNotFound) continue;
      MEDVFS_RETURN_IF_ERROR(tags.status());
      std::string patient_id = TrimmedPatientId(*tags);
      if (!patient_id.empty()) ++(*versions)[patient_id];  // no ID: no pseudonym (UNKNOWN)
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<PseudonymEntry>> BuildDeidMap(Archive& archive,
                                                   const Deidentifier& deidentifier) {
  std::map<std::string, uint64_t> versions;
  MEDVFS_RETURN_IF_ERROR(CollectPatients(archive, kRootInode, &versions, 0));
  std::vector<PseudonymEntry> entries;
  entries.reserve(versions.size());
  for (const auto& [patient_id, count] : versions) {
    entries.push_back({deidentifier.Pseudonym(patient_id), patient_id, count});
  }
  std::sort(entries.begin(), entries.end(), [](const PseudonymEntry& a, const PseudonymEntry& b) {
    return a.pseudonym < b.pseudonym;
  });
  return entries;
}

}  // namespace medvfs::store
