// The records of an archive and their binary encoding (see man/medvfs-format.5).
// Internal to store/. Each record is encoded, then sealed by ArchiveImpl before RocksDB sees
// it; keys hold only numbers and keyed hashes of names.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/archive.h"
#include "store/engine/record_format.h"
#include "store/status.h"

namespace medvfs::store {

// The schema of the records this medvfs writes (SuperRecord::schema): 3. Schema 2 put chunks
// in pack files; 3 adds what an older medvfs would misread: version records whose content
// prune or purge removed (it would take them for empty content), retention and hold records.
// Schemas 1 (chunks in RocksDB's "chunks" family) and 2 are still read, and upgraded by the
// first writable open, so that an older medvfs refuses the archive instead of misreading it.
inline constexpr uint32_t kSchemaVersion = 3;
inline constexpr uint32_t kOldestReadableSchema = 1;

struct SuperRecord {
  uint32_t schema = kSchemaVersion;
  uint64_t next_inode = 2;
  uint64_t next_history = 1;
  uint64_t next_seq = 1;
  // Set by the first change that stores a state digest record (state_digest.h); from then
  // on a missing digest record is damage, not an archive made by an older medvfs.
  bool keeps_state_digest = false;
};

struct VersionDigestRecord {
  Sha256Digest sha256{};
};

struct InodeRecord {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  HistoryId history = 0;
  uint64_t version = 0;
  std::string symlink_target;
  std::vector<std::pair<std::string, std::string>> xattrs;  // sorted by name
  InodeId parent = 0;  // directories: the parent directory (for rename loop checks)
  std::string name;    // directories: the name in the parent (for paths in the patient index)
};

struct DirentRecord {
  std::string name;
  InodeId ino = 0;
  uint32_t mode = 0;
};

// A name of a directory was bound to a node, or (removed) unbound from it.
struct NameEventRecord {
  std::string name;
  int64_t time_ns = 0;
  InodeId ino = 0;
  HistoryId history = 0;
  uint32_t mode = 0;
  std::string symlink_target;
  bool removed = false;
  // Regular files: the history's last version number when the event was written. On a
  // removal, the versions 1..version are the ones the name held (a name that a file left by
  // rename keeps exactly those; see ArchiveImpl::HistoryForNewFile).
  uint64_t version = 0;
};

struct HistoryRecord {
  uint64_t last_version = 0;
  InodeId live_ino = 0;     // the inode carrying this history now, 0 when deleted
  InodeId last_parent = 0;  // where the file was last linked (for restore after delete)
  std::string last_name;
  // Born new for its inode under last_name, and since then never renamed, linked, or
  // continued by another file: the name it has may be a temporary one (see archive_rename.cc).
  bool fresh = false;
  // A scratch file's (its name matches ArchiveOptions::scratch_patterns): only the current
  // version is kept, and nothing is left once the file is deleted.
  bool scratch = false;
};

struct VersionRecord {
  VersionInfo info;
  uint64_t extent_count = 0;
  std::vector<uint64_t> group_offsets;  // content offset at which each extent group starts
};

struct PatientIndexRecord {
  std::string patient_id;
  std::string study;  // "<StudyDate>_<StudyDescription or StudyInstanceUID>"
};

// --- keys ---
std::string InodeKey(InodeId ino);
std::string DirentPrefix(InodeId parent);
std::string DirentKey(InodeId parent, std::string_view name_hash);
std::string NameEventPrefix(InodeId parent);
std::string NameEventPrefix(InodeId parent, std::string_view name_hash);
std::string NameEventKey(InodeId parent, std::string_view name_hash, uint64_t seq);
std::string HistoryKey(HistoryId history);
std::string VersionPrefix(HistoryId history);
std::string VersionKey(HistoryId history, uint64_t number);
std::string ExtentPrefix(HistoryId history, uint64_t number);
std::string ExtentKey(HistoryId history, uint64_t number, uint32_t group);
std::string DroppedExtentKey(HistoryId history, uint64_t number, uint32_t group);
std::string MetaEventPrefix(HistoryId history);
std::string ExtentHistoryPrefix(HistoryId history);
std::string TagsKey(HistoryId history, uint64_t number);
std::string TagsHistoryPrefix(HistoryId history);
std::string NotePrefix(HistoryId history, uint64_t number);
std::string NoteHistoryPrefix(HistoryId history);
std::string NoteKey(HistoryId history, uint64_t number, uint64_t seq);
// patient_hash and study_hash are keyed hashes (kNameHashSize bytes); either may be empty for
// a shorter prefix.
std::string PatientKey(std::string_view patient_hash, std::string_view study_hash, InodeId ino);
std::string PatientPrefix(std::string_view patient_hash, std::string_view study_hash);
std::string IndexedKey(InodeId ino);
std::string MetaEventKey(HistoryId history, uint64_t seq);

std::string RetentionKey(InodeId dir);
inline constexpr char kHoldOnFile = 'f';
inline constexpr char kHoldOnDir = 'd';
std::string HoldKey(const LegalHold& hold);  // by hold.history, else hold.dir

// --- values ---
// C -> GcResult of the last garbage collection that changed the archive (medvfs stats).
// Not covered by the state digest: a statistic, nothing of the file system's state.
inline constexpr char kLastGcKey[] = "C";

std::string Encode(const SuperRecord& r);
std::string Encode(const GcResult& r);
std::string Encode(const VersionDigestRecord& r);
std::string Encode(const InodeRecord& r);
std::string Encode(const DirentRecord& r);
std::string Encode(const NameEventRecord& r);
std::string Encode(const HistoryRecord& r);
std::string Encode(const VersionRecord& r);
std::string Encode(const MetadataEvent& r);
std::string Encode(const DicomTags& r);
std::string Encode(const NoteEvent& r);
std::string Encode(const PatientIndexRecord& r);
std::string Encode(const RetentionRule& r);
std::string Encode(const LegalHold& r);
Status Decode(std::string_view in, SuperRecord* r);
Status Decode(std::string_view in, GcResult* r);
Status Decode(std::string_view in, VersionDigestRecord* r);
Status Decode(std::string_view in, InodeRecord* r);
Status Decode(std::string_view in, DirentRecord* r);
Status Decode(std::string_view in, NameEventRecord* r);
Status Decode(std::string_view in, HistoryRecord* r);
Status Decode(std::string_view in, VersionRecord* r);
Status Decode(std::string_view in, MetadataEvent* r);
Status Decode(std::string_view in, DicomTags* r);
Status Decode(std::string_view in, NoteEvent* r);
Status Decode(std::string_view in, PatientIndexRecord* r);
// Key fields (dir, history) and path are not encoded: the key holds them.
Status Decode(std::string_view in, RetentionRule* r);
Status Decode(std::string_view in, LegalHold* r);

}  // namespace medvfs::store
