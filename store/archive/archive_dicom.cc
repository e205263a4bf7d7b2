// DICOM tags of versions, notes, and the patient index (`/@patients`).
#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "store/archive/archive_impl.h"
#include "store/log.h"
#include "store/posix_acl.h"

namespace medvfs::store {
namespace {

// A value usable as one directory name: no '/', no NUL, not "." or "..", not empty.
std::string DirectoryNameOf(std::string_view value, std::string_view fallback) {
  std::string name(value);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\0')) name.pop_back();
  for (char& c : name) {
    if (c == '/' || c == '\0') c = '_';
  }
  if (name.empty()) name = std::string(fallback);
  if (name == "." || name == "..") name = "_";
  if (name.size() > 255) name.resize(255);
  return name;
}

std::string TagValue(const DicomTags& tags, std::string_view keyword) {
  const DicomElement* element = tags.Find(keyword);
  return element == nullptr ? std::string() : element->value;
}

}  // namespace

std::optional<DicomTags> ArchiveImpl::ParseContentTags(PendingContent& content) {
  const uint64_t size = content.size();
  // A Part 10 file shows in 132 bytes; a data set without its header, in its first elements.
  bool dicom = false;
  if (const std::string* known = content.KnownHead()) {
    dicom = LooksLikeDicom(*known);  // the commit of a file written from its start
  } else {
    std::string head(static_cast<size_t>(std::min<uint64_t>(size, PendingContent::kHeadBytes)),
                     '\0');
    auto got = content.Read(0, std::span<char>(head.data(), head.size()));
    dicom = got.ok() && *got == head.size() && LooksLikeDicom(head);
    Wipe(head.data(), head.size());
  }
  if (!dicom) return std::nullopt;
  // Read up to the Pixel Data element (found by its tag bytes, as the chunker does), so a
  // large image never sits in memory whole; capped for files without pixel data.
  const uint64_t limit = std::min<uint64_t>(size, kMaxDicomHeaderBytes);
  std::string bytes;
  static constexpr std::string_view kPixelDataTag("\xE0\x7F\x10\x00", 4);
  constexpr size_t kStep = 1 << 20;
  while (bytes.size() < limit) {
    const size_t old_size = bytes.size();
    bytes.resize(static_cast<size_t>(std::min<uint64_t>(limit, old_size + kStep)));
    auto n =
        content.Read(old_size, std::span<char>(bytes.data() + old_size, bytes.size() - old_size));
    if (!n.ok()) return std::nullopt;
    bytes.resize(old_size + *n);
    if (*n == 0) break;
    const size_t from = old_size > 3 ? old_size - 3 : 132;
    const size_t at = bytes.find(kPixelDataTag, std::max<size_t>(from, 132));
    if (at != std::string::npos) {
      // Keep the element header (up to 12 bytes) and a little more, so the parser sees it.
      const size_t want = std::min<size_t>(at + 256, static_cast<size_t>(limit));
      if (bytes.size() < want) {
        const size_t have = bytes.size();
        bytes.resize(want);
        auto more = content.Read(have, std::span<char>(bytes.data() + have, want - have));
        if (!more.ok()) return std::nullopt;
        bytes.resize(have + *more);
      }
      break;
    }
  }
  auto tags = ParseDicom(bytes, size);
  if (!tags.ok() && bytes.size() < limit) {
    // The tag bytes may have been a false match inside another element: try it all.
    const size_t have = bytes.size();
    bytes.resize(static_cast<size_t>(limit));
    auto n = content.Read(have, std::span<char>(bytes.data() + have, bytes.size() - have));
    if (!n.ok()) return std::nullopt;
    bytes.resize(have + *n);
    tags = ParseDicom(bytes, size);
  }
  Wipe(bytes.data(), bytes.size());
  if (!tags.ok()) return std::nullopt;
  return std::move(tags).value();
}

void ArchiveImpl::MarkSopReuse(HistoryId history, const HistoryRecord& history_record,
                               VersionInfo* info) {
  info->sop_instance_uid_reused = false;
  if (info->sop_instance_uid.empty()) return;
  // The newest earlier version with content decides.
  for (uint64_t number = history_record.last_version; number > 0; --number) {
    VersionRecord earlier;
    if (!LoadVersion(history, number, &earlier).ok() || earlier.info.is_delete_marker()) {
      continue;
    }
    // A deferred digest (mostly hole) compares only once computed; until then only a size
    // difference shows different bytes (never a false alarm).
    if (!ResolveDeferredDigest(history, &earlier.info).ok()) return;
    const bool differ = earlier.info.sha256_deferred || info->sha256_deferred
                            ? earlier.info.size != info->size
                            : earlier.info.sha256 != info->sha256;
    info->sop_instance_uid_reused =
        earlier.info.sop_instance_uid == info->sop_instance_uid && differ;
    return;
  }
}

VersionRecord ArchiveImpl::NewVersion(HistoryId history_id, HistoryRecord* history,
                                      VersionInfo content, Operation op, int64_t now,
                                      const Caller& caller, const InodeRecord& file) {
  VersionRecord version;
  version.info = std::move(content);
  version.info.note.clear();  // a note belongs to the version it was written on
  MarkSopReuse(history_id, *history, &version.info);
  version.info.number = ++history->last_version;
  version.info.time_ns = now;
  version.info.writer_uid = caller.uid;
  version.info.writer_gid = caller.gid;
  version.info.writer_pid = caller.pid;
  version.info.program = caller.program;
  version.info.op = op;
  version.info.file_mode = file.mode;
  version.info.file_uid = file.uid;
  version.info.file_gid = file.gid;
  version.info.file_acl.clear();
  for (const auto& [name, value] : file.xattrs) {
    if (name == kAclAccessXattr) version.info.file_acl = value;
  }
  return version;
}

void ArchiveImpl::UpdatePatientIndex(KvBatch& batch, InodeId ino, const DicomTags* tags) {
  PatientIndexRecord old;
  if (GetRecord(IndexedKey(ino), &old).ok()) {
    batch.Delete(Family::kMeta, PatientKey(NameHash(old.patient_id), NameHash(old.study), ino));
    batch.Delete(Family::kMeta, IndexedKey(ino));
  }
  if (tags == nullptr) return;
  const std::string patient = TagValue(*tags, "PatientID");
  if (patient.empty() && tags->Find("StudyInstanceUID") == nullptr) return;
  PatientIndexRecord entry;
  entry.patient_id = DirectoryNameOf(patient, "UNKNOWN");
  std::string description = TagValue(*tags, "StudyDescription");
  if (description.empty()) description = TagValue(*tags, "StudyInstanceUID");
  // Appended piece by piece: GCC 12's -Wrestrict misfires on chained string operator+.
  std::string study = TagValue(*tags, "StudyDate");
  study += '_';
  study += description;
  entry.study = DirectoryNameOf(study, "UNKNOWN");
  PutRecord(batch, PatientKey(NameHash(entry.patient_id), NameHash(entry.study), ino), entry);
  PutRecord(batch, IndexedKey(ino), entry);
}

void ArchiveImpl::CopyTags(KvBatch& batch, HistoryId from, uint64_t from_number, HistoryId to,
                           uint64_t to_number) {
  DicomTags tags;
  if (GetRecord(TagsKey(from, from_number), &tags).ok()) {
    PutRecord(batch, TagsKey(to, to_number), tags);
  }
}

StatusOr<DicomTags> ArchiveImpl::GetTags(HistoryId history, uint64_t number) {
  DicomTags tags;
  Status s = GetRecord(TagsKey(history, number), &tags);
  if (s.code() == Code::kNotFound) return Status::NotFound("that version has no DICOM tags");
  MEDVFS_RETURN_IF_ERROR(s);
  return tags;
}

Status ArchiveImpl::DoSetNote(HistoryId history, uint64_t number, std::string_view text,
                              const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  if (text.size() > size_t{64} * 1024) return Status(Code::kTooBig, "a note holds at most 64 KiB");
  {
    std::lock_guard lock(mu_);
    VersionRecord version;
    MEDVFS_RETURN_IF_ERROR(LoadVersion(history, number, &version));
    const int64_t now = NowNs();
    NoteEvent note{now, std::string(text), caller.uid, caller.pid, caller.program};
    KvBatch batch;
    PutRecord(batch, NoteKey(history, number, AllocateSeq()), note);
    version.info.note = std::string(text);
    PutRecord(batch, VersionKey(history, number), version);
    MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  }
  return kv_->SyncWal();
}

StatusOr<std::vector<NoteEvent>> ArchiveImpl::ListNotes(HistoryId history, uint64_t number) {
  std::vector<NoteEvent> notes;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<NoteEvent>(NotePrefix(history, number),
                                                [&](std::string_view, const NoteEvent& note) {
                                                  notes.push_back(note);
                                                  return true;
                                                }));
  return notes;
}

StatusOr<std::vector<std::string>> ArchiveImpl::ListPatients() {
  std::set<std::string> patients;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<PatientIndexRecord>(
      std::string(1, kPatientPrefix), [&](std::string_view, const PatientIndexRecord& entry) {
        patients.insert(entry.patient_id);
        return true;
      }));
  return std::vector<std::string>(patients.begin(), patients.end());
}

StatusOr<std::vector<std::string>> ArchiveImpl::ListStudies(std::string_view patient_id) {
  std::set<std::string> studies;
  MEDVFS_RETURN_IF_ERROR(
      ScanRecords<PatientIndexRecord>(PatientPrefix(NameHash(patient_id), ""),
                                      [&](std::string_view, const PatientIndexRecord& entry) {
                                        if (entry.patient_id == patient_id)
                                          studies.insert(entry.study);
                                        return true;
                                      }));
  if (studies.empty()) return Status::NotFound("no such patient");
  return std::vector<std::string>(studies.begin(), studies.end());
}

StatusOr<std::string> ArchiveImpl::IndexPathOf(InodeId ino) {
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  if (node.history == 0) return Status::NotFound("not a file with a history");
  HistoryRecord history;
  MEDVFS_RETURN_IF_ERROR(GetRecord(HistoryKey(node.history), &history));
  std::string path = history.last_name;
  for (InodeId dir = history.last_parent; dir != kRootInode;) {
    InodeRecord record;
    MEDVFS_RETURN_IF_ERROR(LoadInode(dir, &record));
    if (record.parent == 0) return Status::NotFound("directory outside the tree");
    path.insert(0, 1, '/');
    path.insert(0, record.name);
    dir = record.parent;
  }
  return path;
}

StatusOr<std::vector<IndexedFile>> ArchiveImpl::ListStudyFiles(std::string_view patient_id,
                                                               std::string_view study) {
  std::vector<InodeId> inodes;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<PatientIndexRecord>(
      PatientPrefix(NameHash(patient_id), NameHash(study)),
      [&](std::string_view key, const PatientIndexRecord& entry) {
        if (entry.patient_id == patient_id && entry.study == study) {
          inodes.push_back(KeyU64(key, key.size() - 8));
        }
        return true;
      }));
  if (inodes.empty()) return Status::NotFound("no such study");
  std::vector<IndexedFile> files;
  std::lock_guard lock(mu_);
  for (InodeId ino : inodes) {
    auto path = IndexPathOf(ino);
    if (path.ok()) files.push_back({ino, std::move(path).value()});
  }
  return files;
}

std::unique_ptr<Deidentifier> ArchiveImpl::NewDeidentifier(const DeidConfig& config) {
  return std::make_unique<Deidentifier>(deid_key_, config);
}

}  // namespace medvfs::store
