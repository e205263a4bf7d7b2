// medvfs verify: every stored byte decrypted and checked, without a mount. The database is
// read through KvStore with the same subkeys and record decoders as ArchiveImpl, so that a
// damaged record is reported where it is instead of stopping the check.
#include "store/verify.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "store/archive.h"
#include "store/archive/records.h"
#include "store/archive/remote.h"
#include "store/archive/state_digest.h"
#include "store/crypto/crypto.h"
#include "store/crypto/sealed_record.h"
#include "store/crypto/subkeys.h"
#include "store/engine/chunk_store.h"
#include "store/engine/kv_store.h"

namespace medvfs::store {
namespace {

using Severity = VerifyProblem::Severity;

// Chunks read for verification are not kept: each is checked once per reference.
constexpr uint64_t kChunkCacheBytes = 8ull << 20;
// Directory depth beyond which a path is not followed further (a loop in damaged records).
constexpr int kMaxDepth = 4096;

std::string ChunkName(const ChunkId& id) { return "chunk " + HexEncode(id).substr(0, 16); }

// A hole's bytes, for the content's SHA-256.
void HashZeros(Sha256* sha, uint64_t length) {
  static const std::string kZeros(1 << 20, '\0');
  for (; length > 0;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(length, kZeros.size()));
    sha->Update(std::string_view(kZeros.data(), n));
    length -= n;
  }
}

// "failed authentication (altered or damaged)" from ChunkStore's "a chunk failed
// authentication".
std::string ChunkReason(const Status& status) {
  const std::string& message = status.message();
  if (!message.starts_with("a chunk ")) return "cannot be read: " + message;
  std::string what = message.substr(8);
  if (what.find("authentication") != std::string::npos) what += " (altered or damaged)";
  return what;
}

// "chunk 5 of 9 failed authentication (altered or damaged)".
std::string ChunkFailure(uint64_t index, uint64_t count, const Status& status) {
  return "chunk " + std::to_string(index) + " of " + std::to_string(count) + " " +
         ChunkReason(status);
}

struct DirName {
  InodeId parent = 0;
  std::string name;
};

class Verifier {
 public:
  Verifier(std::filesystem::path dir, const VerifyOptions& options, VerifyReport* report)
      : dir_(std::move(dir)), options_(options), report_(*report) {}

  Status Run(const KeySource& key) {
    SecretKey data_key;
    std::string archive_id;
    MEDVFS_RETURN_IF_ERROR(UnlockKeySlot(dir_ / "keyslot", key, &data_key, &archive_id));
    MEDVFS_RETURN_IF_ERROR(OpenDatabase(data_key));
    meta_key_ = DeriveSubkey(data_key, kMetaSealLabel);
    digest_hmac_ = std::make_unique<KeyedHmacSha256>(DeriveSubkey(meta_key_, kStateDigestLabel));
    chunk_seal_key_ = DeriveSubkey(data_key, kChunkSealLabel);
    ChunkStoreOptions chunk_options;
    chunk_options.packs_dir = dir_ / "packs";
    chunk_options.packs.read_only = true;  // verify changes nothing, not even a torn tail
    chunk_options.cache_bytes = kChunkCacheBytes;
    // Packs only the S3 remote holds (local_packs) are read from the bucket: their content is
    // checked as any other (the pack pass below reads local files only).
    if (auto reading = CapacityTierReading(dir_, 0, uint64_t{256} << 20)) {
      MEDVFS_ASSIGN_OR_RETURN(chunk_options.packs.remote, OpenRemotePacks(*reading));
    }
    MEDVFS_ASSIGN_OR_RETURN(chunks_, ChunkStore::Open(kv_.get(), data_key, chunk_options));
    CheckDatabaseFiles();
    MEDVFS_RETURN_IF_ERROR(ScanRecords());
    MEDVFS_RETURN_IF_ERROR(CheckVersions());
    MEDVFS_RETURN_IF_ERROR(CheckChunkIndex());
    MEDVFS_RETURN_IF_ERROR(CheckPacks());
    CheckLeftoverExtents();
    chunks_.reset();
    kv_.reset();
    CheckAuditChain(key);
    return Status::Ok();
  }

 private:
  void Report(Severity severity, std::string where, std::string what) {
    (severity == Severity::kError ? report_.errors : report_.warnings)++;
    if (report_.problems.size() >= options_.max_problems) {
      ++report_.problems_dropped;
      return;
    }
    report_.problems.push_back({severity, std::move(where), std::move(what)});
  }
  void Error(std::string where, std::string what) {
    Report(Severity::kError, std::move(where), std::move(what));
  }
  void Progress(std::string_view phase, uint64_t done, uint64_t total, bool bytes) {
    if (options_.progress) options_.progress({phase, done, total, bytes});
  }

  Status OpenDatabase(const SecretKey& data_key) {
    const std::filesystem::path db = dir_ / "db";
    report_.archive_in_use = KvStore::LockedForWriting(db);
    KvOpenOptions kv_options;
    kv_options.read_only = true;
    // The log is replayed as a mount replays it: after a power loss within a commit interval
    // it may end with commits whose pack bytes never reached the disk, which the mount drops
    // (the contract: a prefix of the commits survives). Checked without them, the archive is
    // what the next mount serves; that they were dropped is reported below.
    kv_options.replay_check = ChunkStore::ReplayCheck(data_key, dir_ / "packs", nullptr,
                                                      /*sync_packs=*/false, RemotePackSizes(dir_));
    auto kv = KvStore::Open(db, kv_options);
    if (!kv.ok() && kv.status().code() == Code::kCorruption) {
      // A damaged log (valid records follow a damaged one): report it, and check what the
      // database holds up to the damage. Read-only: nothing is dropped on disk.
      kv_options.accept_wal_damage = true;
      auto accepted = KvStore::Open(db, kv_options);
      if (accepted.ok() && (*accepted)->wal_damage_accepted()) {
        Error("database write-ahead log",
              (*accepted)->wal_recovery_note() +
                  "; committed versions may be among them. The check below covers the state "
                  "before the damage. Restore from a backup, or mount with "
                  "--accept-wal-damage to keep that state and lose the rest");
      } else {
        Error("database", kv.status().message());
      }
      kv = std::move(accepted);
    }
    if (!kv.ok()) return kv.status();
    kv_ = std::move(kv).value();
    if (kv_->replay_stopped()) {
      Report(Severity::kWarning, "database write-ahead log",
             kv_->wal_recovery_note() +
                 ". These are the last commits before a power loss, made within the commit "
                 "interval (man 5 medvfs-format, Durability); the next mount drops them too");
    }
    return Status::Ok();
  }

  void CheckDatabaseFiles() {
    std::vector<KvFile> files = kv_->LiveFiles();
    uint64_t total = 0;
    for (const KvFile& file : files) total += file.size;
    uint64_t done = 0;
    for (const KvFile& file : files) {
      ++report_.database_files;
      report_.database_bytes += file.size;
      if (!file.blob) {
        Status s = kv_->VerifyTableFile(file);
        if (!s.ok()) Error("database file " + file.name, s.message());
      }
      done += file.size;
      Progress("database files", done, total, /*bytes=*/true);
    }
  }

  // Opens a sealed record; on failure reports it at `where` and returns false.
  // `noun` names the record in the message ("the version record failed ...").
  // Reports a record that did not open (store/crypto/sealed_record.h, the opener the archive
  // uses too) at `where`; true when it opened.
  bool Opened(RecordFault fault, const std::string& where, std::string_view noun = "record") {
    switch (fault) {
      case RecordFault::kNone:
        return true;
      case RecordFault::kUnknownFormat:
        Error(where, "the " + std::string(noun) + " has an unknown format byte");
        return false;
      case RecordFault::kAuthentication:
        Error(where,
              "the " + std::string(noun) + " failed authentication (altered, damaged or moved)");
        return false;
      case RecordFault::kDecode:
        Error(where, "the " + std::string(noun) + " does not decode");
        return false;
    }
    return false;
  }

  bool OpenSealed(std::string_view key, std::string_view value, const SecretKey& seal,
                  const std::string& where, std::string* plain, std::string_view noun = "record") {
    return Opened(UnsealRecord(seal, key, value, plain), where, noun);
  }

  template <typename Record>
  bool OpenRecord(std::string_view key, std::string_view value, const SecretKey& seal,
                  const std::string& where, Record* record, std::string_view noun = "record") {
    const bool ok = Opened(OpenSealedRecord(seal, key, value, record), where, noun);
    if (ok) ++report_.records;
    return ok;
  }

  // --- Pass 1: every meta record except versions, extents and the chunk index -----------
  Status ScanRecords() {
    uint64_t done = 0;
    StateDigest digest{};
    Status s = kv_->Scan(Family::kMeta, "", [&](std::string_view key, std::string_view value) {
      if (CoveredByStateDigest(key)) {
        StateDigestAdd(&digest, StateDigestTerm(*digest_hmac_, key, value));
      } else if (key == kStateDigestKey) {
        stored_digest_ = std::string(value);
      }
      CheckRecord(key, value);
      Progress("records", ++done, 0, /*bytes=*/false);
      return true;
    });
    if (!s.ok()) Error("database", "the records cannot be read to the end: " + s.message());
    if (s.ok()) CheckStateDigest(digest);
    for (const auto& [ino, history, version] : file_inodes_) {
      auto it = histories_.find(history);
      if (it == histories_.end()) {
        Error("inode " + std::to_string(ino) + " record",
              "its history " + std::to_string(history) + " has no record");
      } else if (version > it->second.last_version) {
        Error(FileWhere(history, 0), "inode " + std::to_string(ino) + " names version " +
                                         std::to_string(version) + ", the history ends at " +
                                         std::to_string(it->second.last_version));
      }
    }
    for (const auto& [parent, ino] : dirents_) {
      if (!inodes_.contains(ino)) {
        Error(DirWhere(parent),
              "an entry names inode " + std::to_string(ino) + ", which has no record");
      }
    }
    for (auto& [history, number, what] : deferred_) Error(FileWhere(history, number), what);
    deferred_.clear();
    report_.files = histories_.size();
    return Status::Ok();
  }

  // The records present must add up to the digest the last change stored (state_digest.h).
  void CheckStateDigest(const StateDigest& computed) {
    const std::string where = "archive state";
    if (!stored_digest_ && keeps_state_digest_) {
      Error(where,
            "the state digest record is missing (deleted): records put back from an older copy "
            "or deleted cannot be told from the rest");
      return;
    }
    if (!stored_digest_) {
      Report(Severity::kWarning, where,
             "no state digest record (an archive last changed by an older medvfs; the next "
             "change adds it): records put back from an older copy or deleted cannot be found");
      return;
    }
    StateDigest stored{};
    const RecordFault fault =
        OpenSealedRecord(meta_key_, kStateDigestKey, *stored_digest_, &stored, DecodeStateDigest);
    if (fault != RecordFault::kDecode && !Opened(fault, where, "state digest record")) return;
    if (fault == RecordFault::kDecode) {
      Error(where, "the state digest record does not decode");
      return;
    }
    ++report_.records;
    if (stored != computed) {
      Error(where,
            "the records do not add up to the archive's state digest: a record was put back "
            "from an older copy, deleted, or mixed from another point in time (by someone "
            "with write access to the archive directory; the files affected are not known)");
    }
  }

  void CheckRecord(std::string_view key, std::string_view value) {
    const char kind = key.empty() ? '\0' : key[0];
    const bool has_u64 = key.size() >= 9;
    const uint64_t first = has_u64 ? KeyU64(key, 1) : 0;
    switch (kind) {
      case 'S': {
        SuperRecord super;
        if (key == kSuperKey && OpenRecord(key, value, meta_key_, "super record", &super)) {
          if (super.schema < kOldestReadableSchema || super.schema > kSchemaVersion) {
            Error("super record", "unknown schema " + std::to_string(super.schema));
          }
          keeps_state_digest_ = super.keeps_state_digest;
        }
        return;
      }
      case kInodePrefix: {
        InodeRecord inode;
        if (!OpenRecord(key, value, meta_key_, "inode " + std::to_string(first) + " record",
                        &inode)) {
          return;
        }
        inodes_.insert(first);
        if (S_ISDIR(inode.mode)) dirs_[first] = {inode.parent, inode.name};
        if (inode.history != 0) file_inodes_.push_back({first, inode.history, inode.version});
        return;
      }
      case kDirentPrefix: {
        DirentRecord entry;
        if (OpenRecord(key, value, meta_key_,
                       "directory entry record in inode " + std::to_string(first), &entry)) {
          dirents_.emplace_back(first, entry.ino);
        }
        return;
      }
      case kNameEventPrefix:
        Check<NameEventRecord>(key, value, "name event record in inode " + std::to_string(first));
        return;
      case kHistoryPrefix: {
        HistoryRecord history;
        if (OpenRecord(key, value, meta_key_, "history " + std::to_string(first) + " record",
                       &history)) {
          histories_[first] = std::move(history);
        }
        return;
      }
      case kVersionPrefix: {
        // Checked and reported in pass 2; here only the content total for progress.
        VersionRecord version;
        if (OpenSealedRecord(meta_key_, key, value, &version) == RecordFault::kNone) {
          content_total_ += version.info.size;
        }
        return;
      }
      case kExtentPrefix:
        extent_keys_.insert(std::string(key));
        return;
      case kDroppedExtentPrefix: {
        // A dropped scratch version's, or a pruned or purged version's: its chunks may be
        // unreferenced (garbage).
        std::vector<Extent> extents;
        if (OpenRecord(key, value, meta_key_, "dropped extent group", &extents)) {
          for (const Extent& extent : extents) dropped_.push_back(extent.id);
        }
        return;
      }
      case kPackPrefix: {
        PackRecord record;
        if (OpenRecord(key, value, chunk_seal_key_, "pack record", &record)) {
          if (!has_u64 || record.pack != first) {
            Error("pack record", "names another pack than its key");
          } else {
            pack_records_[record.pack] = record;
          }
        }
        return;
      }
      case kChunkIndexPrefix:  // pass 3
      case kAuditPrefix:       // the audit chain, checked by the Archive (VerifyAuditChain)
      case kAuditHeadKey[0]:
        return;
      case kMetaEventPrefix:
        CheckFileRecord<MetadataEvent>(key, value, first, 0, "metadata event");
        return;
      case kTagsPrefix:
        CheckFileRecord<DicomTags>(key, value, first, key.size() >= 17 ? KeyU64(key, 9) : 0,
                                   "DICOM tags");
        return;
      case kVersionDigestPrefix:
        CheckFileRecord<VersionDigestRecord>(
            key, value, first, key.size() >= 17 ? KeyU64(key, 9) : 0, "version digest");
        return;
      case kNotePrefix:
        CheckFileRecord<NoteEvent>(key, value, first, key.size() >= 17 ? KeyU64(key, 9) : 0,
                                   "note");
        return;
      case kPatientPrefix:
      case kIndexedPrefix:
        Check<PatientIndexRecord>(key, value, "patient index record");
        return;
      case kRetentionPrefix:
        Check<RetentionRule>(key, value, "retention rule of inode " + std::to_string(first));
        return;
      case kHoldPrefix:
        Check<LegalHold>(key, value, "legal hold record");
        return;
      case kLastGcKey[0]:
        if (key.size() == 1) {
          Check<GcResult>(key, value, "last garbage collection record");
          return;
        }
        CheckUnknownRecord(key, value);
        return;
      case kStateDigestKey[0]:
        if (key.size() == 1) return;  // checked by CheckStateDigest
        CheckUnknownRecord(key, value);
        return;
      default:
        CheckUnknownRecord(key, value);
        return;
    }
  }

  template <typename Record>
  void Check(std::string_view key, std::string_view value, const std::string& where) {
    Record record;
    OpenRecord(key, value, meta_key_, where, &record);
  }

  // A record of a file's history: a failure is reported under the file's path once every
  // history record is known.
  template <typename Record>
  void CheckFileRecord(std::string_view key, std::string_view value, HistoryId history,
                       uint64_t number, const char* what) {
    Record record;
    const RecordFault fault = OpenSealedRecord(meta_key_, key, value, &record);
    if (fault == RecordFault::kUnknownFormat || fault == RecordFault::kAuthentication) {
      deferred_.push_back({history, number,
                           std::string("the ") + what +
                               " record failed authentication (altered, damaged or moved)"});
    } else if (fault == RecordFault::kDecode) {
      deferred_.push_back(
          {history, number, std::string("the ") + what + " record does not decode"});
    } else {
      ++report_.records;
    }
  }

  void CheckUnknownRecord(std::string_view key, std::string_view value) {
    std::string printable = key.empty() ? std::string("(empty key)") : std::string(1, key[0]);
    if (key.empty() || static_cast<unsigned char>(key[0]) < 0x21 ||
        static_cast<unsigned char>(key[0]) > 0x7e) {
      printable = "0x" + HexEncode(std::span<const uint8_t>(
                             reinterpret_cast<const uint8_t*>(key.data()), key.empty() ? 0 : 1));
    }
    const std::string where = "record of unknown kind " + printable;
    std::string plain;
    const bool opened = OpenSealed(key, value, meta_key_, where, &plain);
    Wipe(plain.data(), plain.size());
    if (!opened) return;
    ++report_.records;
    Report(Severity::kWarning, where, "opens, but this medvfs does not know the kind");
  }

  // --- Paths ---------------------------------------------------------------------------------
  // "/a/b" for a directory ("" for the root).
  std::string DirPath(InodeId dir) const {
    std::vector<const std::string*> names;
    for (int depth = 0; dir != kRootInode; ++depth) {
      auto it = dirs_.find(dir);
      if (it == dirs_.end() || depth > kMaxDepth) {
        std::string path = "(directory " + std::to_string(dir) + ")";
        for (auto name = names.rbegin(); name != names.rend(); ++name) path += "/" + **name;
        return path;
      }
      names.push_back(&it->second.name);
      dir = it->second.parent;
    }
    std::string path;
    for (auto name = names.rbegin(); name != names.rend(); ++name) path += "/" + **name;
    return path;
  }

  std::string DirWhere(InodeId dir) const {
    std::string path = DirPath(dir);
    return path.empty() ? "/" : path;
  }

  // "/ct/scan.dcm v3", or "/ct/scan.dcm" for number 0; "history 7 v3" without a history record.
  std::string FileWhere(HistoryId history, uint64_t number) const {
    auto it = histories_.find(history);
    std::string where = it == histories_.end()
                            ? "history " + std::to_string(history)
                            : DirPath(it->second.last_parent) + "/" + it->second.last_name;
    if (number != 0) where += " v" + std::to_string(number);
    return where;
  }

  // --- Pass 2: versions and their content ----------------------------------------------------
  Status CheckVersions() {
    uint64_t done = 0;
    Status s = kv_->Scan(Family::kMeta, std::string(1, kVersionPrefix),
                         [&](std::string_view key, std::string_view value) {
                           if (key.size() != 17) {
                             CheckUnknownRecord(key, value);
                           } else {
                             CheckVersion(KeyU64(key, 1), KeyU64(key, 9), key, value, &done);
                           }
                           return true;
                         });
    if (!s.ok()) Error("database", "the version records cannot be read to the end: " + s.message());
    FinishHistory();
    for (const auto& [history, record] : histories_) {
      if (record.last_version != 0 && !histories_seen_.contains(history)) {
        Error(FileWhere(history, 0),
              "all " + std::to_string(record.last_version) + " versions are missing");
      }
    }
    return Status::Ok();
  }

  void CheckVersion(HistoryId history, uint64_t number, std::string_view key,
                    std::string_view value, uint64_t* done) {
    if (history != current_history_) {
      FinishHistory();
      current_history_ = history;
      next_number_ = 1;
      histories_seen_.insert(history);
    }
    const std::string where = FileWhere(history, number);
    if (number > next_number_) {
      Error(FileWhere(history, 0), "versions " + std::to_string(next_number_) + " to " +
                                       std::to_string(number - 1) + " are missing");
    }
    next_number_ = number + 1;
    ++report_.versions;
    if (!histories_.contains(history)) Error(where, "the version has no history record");
    VersionRecord version;
    if (!OpenRecord(key, value, meta_key_, where, &version, "version record")) return;
    if (version.info.number != number) {
      Error(where, "the record holds version " + std::to_string(version.info.number));
      return;
    }
    if (version.info.is_delete_marker()) {
      if (version.extent_count != 0 || !version.group_offsets.empty()) {
        Error(where, "a delete marker with content");
      }
      return;
    }
    if (version.info.content_removed()) {
      ++report_.removed_versions;
      if (version.extent_count != 0 || !version.group_offsets.empty()) {
        Error(where, "a version whose content was " +
                         std::string(ContentRemovalName(version.info.removed)) +
                         " still lists content");
      }
      return;
    }
    CheckContent(history, version, where, done);
  }

  void FinishHistory() {
    if (current_history_ == 0) return;
    auto it = histories_.find(current_history_);
    const uint64_t last = next_number_ - 1;
    if (it != histories_.end() && last != it->second.last_version) {
      Error(FileWhere(current_history_, 0),
            last < it->second.last_version
                ? "versions " + std::to_string(last + 1) + " to " +
                      std::to_string(it->second.last_version) + " are missing"
                : "version " + std::to_string(last) + " is beyond the history's last version " +
                      std::to_string(it->second.last_version));
    }
    current_history_ = 0;
  }

  // Streams the version's chunks in order: each is checked by ChunkStore (seal, decompression,
  // length, id) and hashed into the content's SHA-256.
  void CheckContent(HistoryId history, const VersionRecord& version, const std::string& where,
                    uint64_t* done) {
    const uint64_t number = version.info.number;
    Sha256 sha;
    bool content_ok = true;
    uint64_t offset = 0;
    uint64_t index = 0;
    for (uint32_t group = 0; group < version.group_offsets.size(); ++group) {
      const std::string key = ExtentKey(history, number, group);
      extent_keys_.erase(key);
      const std::string group_where = where + " extent group " + std::to_string(group + 1) +
                                      " of " + std::to_string(version.group_offsets.size());
      std::string value;
      Status s = kv_->Get(Family::kMeta, key, &value);
      std::vector<Extent> extents;
      if (s.code() == Code::kNotFound) {
        Error(where, "extent group " + std::to_string(group + 1) + " is missing");
        return;
      }
      if (!s.ok()) {
        Error(group_where, "cannot be read: " + s.message());
        return;
      }
      if (!OpenRecord(key, value, meta_key_, where, &extents,
                      "extent group " + std::to_string(group + 1) + " record")) {
        ++unreadable_extent_groups_;
        return;
      }
      if (version.group_offsets[group] != offset) {
        Error(group_where, "starts at byte " + std::to_string(version.group_offsets[group]) +
                               ", its chunks end at " + std::to_string(offset));
        return;
      }
      for (const Extent& extent : extents) {
        ++index;
        if (IsHole(extent)) {  // zeros that were never stored: nothing to read
          if (content_ok) HashZeros(&sha, extent.length);
          offset += extent.length;
          *done += extent.length;
          continue;
        }
        referenced_.push_back(extent.id);
        std::shared_ptr<const std::string> plain;
        s = chunks_->GetAndCheckId(extent.id, extent.length, &plain);
        ++report_.chunk_reads;
        if (s.ok()) {
          if (content_ok) sha.Update(*plain);
          report_.content_bytes += plain->size();
        } else {
          Error(where, ChunkFailure(index, version.extent_count, s));
          content_ok = false;
        }
        offset += extent.length;
        *done += extent.length;
        Progress("content", *done, content_total_, /*bytes=*/true);
      }
    }
    CompactReferences();
    if (index != version.extent_count) {
      Error(where, "its extents hold " + std::to_string(index) + " chunks, the version record " +
                       std::to_string(version.extent_count));
    } else if (offset != version.info.size) {
      Error(where, "its chunks add up to " + std::to_string(offset) + " bytes, the version has " +
                       std::to_string(version.info.size));
    } else if (content_ok && !version.info.sha256_deferred) {
      if (sha.Finish() != version.info.sha256) {
        Error(where, "the content does not match the version's SHA-256");
      }
    } else if (content_ok) {
      // The commit deferred the digest: compare with the one computed since, if any.
      std::string digest_key = VersionKey(history, number);
      digest_key[0] = kVersionDigestPrefix;  // W history number: the same layout
      std::string value;
      VersionDigestRecord digest;
      if (!kv_->Get(Family::kMeta, digest_key, &value).ok()) {
        ++report_.digests_pending;  // not computed yet: not damage
      } else {
        // An unreadable digest record is reported by the record pass.
        if (OpenSealedRecord(meta_key_, digest_key, value, &digest) == RecordFault::kNone &&
            sha.Finish() != digest.sha256) {
          Error(where, "the content does not match the SHA-256 computed for it");
        }
      }
    }
  }

  // Keeps the list of referenced chunk ids from growing with every shared reference.
  void CompactReferences() {
    if (referenced_.size() < 2 * compacted_size_ + 4096) return;
    std::sort(referenced_.begin(), referenced_.end());
    referenced_.erase(std::unique(referenced_.begin(), referenced_.end()), referenced_.end());
    compacted_size_ = referenced_.size();
  }

  // --- Pass 3: the chunk index ---------------------------------------------------------------
  Status CheckChunkIndex() {
    std::sort(dropped_.begin(), dropped_.end());
    std::sort(referenced_.begin(), referenced_.end());
    referenced_.erase(std::unique(referenced_.begin(), referenced_.end()), referenced_.end());
    auto next_referenced = referenced_.begin();
    uint64_t done = 0;
    Status s = kv_->Scan(
        Family::kMeta, std::string(1, kChunkIndexPrefix),
        [&](std::string_view key, std::string_view value) {
          Progress("chunk index", ++done, referenced_.size(), /*bytes=*/false);
          if (key.size() != 1 + sizeof(ChunkId)) {
            CheckUnknownRecord(key, value);
            return true;
          }
          ChunkId id;
          std::copy(key.begin() + 1, key.end(), reinterpret_cast<char*>(id.data()));
          for (; next_referenced != referenced_.end() && *next_referenced < id; ++next_referenced) {
            Error(ChunkName(*next_referenced), "used by a version, missing from the chunk index");
          }
          const bool referenced = next_referenced != referenced_.end() && *next_referenced == id;
          if (referenced) ++next_referenced;
          ++report_.chunks;
          ChunkIndexRecord index;
          if (!OpenRecord(key, value, chunk_seal_key_, ChunkName(id) + " index record", &index)) {
            return true;
          }
          if (index.pack != 0) {
            IndexedBytes& live = indexed_per_pack_[index.pack];
            live.bytes += index.stored_length;
            ++live.chunks;
          }
          if (referenced) return true;  // checked with the content that uses it
          if (std::binary_search(dropped_.begin(), dropped_.end(), id)) {
            ++report_.chunks_awaiting_gc;  // a dropped or removed version's: expected
            return true;
          }
          // With damaged extent groups, the chunks they list look unreferenced: counted, and
          // summed up in one warning below.
          ++report_.unreferenced_chunks;
          if (unreadable_extent_groups_ == 0) {
            Report(Severity::kWarning, ChunkName(id),
                   "used by no version (left by an interrupted write?)");
          }
          std::shared_ptr<const std::string> plain;
          Status got = chunks_->GetAndCheckId(id, index.plain_length, &plain);
          if (!got.ok()) Error(ChunkName(id), ChunkReason(got));
          return true;
        });
    if (!s.ok()) Error("database", "the chunk index cannot be read to the end: " + s.message());
    for (; next_referenced != referenced_.end(); ++next_referenced) {
      Error(ChunkName(*next_referenced), "used by a version, missing from the chunk index");
    }
    if (unreadable_extent_groups_ != 0 && report_.unreferenced_chunks != 0) {
      Report(Severity::kWarning, "chunk index",
             std::to_string(report_.unreferenced_chunks) +
                 " chunks are used by no readable version (some extent groups are damaged)");
    }
    return Status::Ok();
  }

  // --- Pass 4: the pack files ---------------------------------------------------------------
  // Every entry of every pack is read and authenticated (a damaged entry nothing refers to
  // yet is found too), sealed packs' trailers are checked against their entries, entries the
  // index does not refer to are counted as orphans, and each pack record's live bytes must be
  // what the index refers to.
  Status CheckPacks() {
    auto files = chunks_->packs().ListFiles();
    if (!files.ok()) {
      if (!pack_records_.empty() || !indexed_per_pack_.empty()) {
        Error("packs", "the pack directory cannot be read: " + files.status().message());
      }
      return Status::Ok();
    }
    uint64_t total_bytes = 0;
    for (const auto& [pack, size] : *files) total_bytes += size;
    uint64_t done_bytes = 0;
    for (const auto& file : *files) {
      // Named copies: a lambda below uses them (clang 14 cannot capture structured bindings).
      const uint64_t pack = file.first;
      const uint64_t size = file.second;
      const std::string where = "pack " + std::to_string(pack);
      auto removed = pack_records_.find(pack);
      if (removed != pack_records_.end() && removed->second.removed) {
        done_bytes += size;
        if (indexed_per_pack_[pack].chunks != 0) {
          Error(where, "garbage collection removed it, yet the chunk index refers to it");
        } else {
          Report(Severity::kWarning, where,
                 "garbage collection removed it, but its file is still there (the next "
                 "writable open deletes it)");
        }
        continue;
      }
      ++report_.packs;
      report_.pack_bytes += size;
      uint64_t live_bytes = 0;
      uint64_t live_chunks = 0;
      PackStore::ScanResult scanned;
      Status s = chunks_->packs().ScanPack(
          pack,
          [&](const PackEntryInfo& info, const Status& entry_status, std::string_view) {
            Progress("packs", done_bytes + info.end(), total_bytes, /*bytes=*/true);
            const std::string key = ChunkIndexKey(info.id);
            std::string value;
            ChunkIndexRecord index;
            const bool indexed_here =
                kv_->Get(Family::kMeta, key, &value).ok() &&
                OpenSealedRecord(chunk_seal_key_, key, value, &index) == RecordFault::kNone &&
                index.pack == pack && index.offset == info.offset;
            // A damaged entry the index refers to is an error of the content or index pass
            // (named by file and version there); damaged garbage is only a warning, but
            // damage nonetheless: the disk may be failing.
            if (!entry_status.ok() && !indexed_here) {
              Report(Severity::kWarning, where,
                     "an entry nothing refers to (garbage) at offset " +
                         std::to_string(info.offset) + " is damaged");
            }
            if (indexed_here) {
              live_bytes += info.length;
              ++live_chunks;
            } else if (entry_status.ok()) {
              ++report_.orphan_chunks;
              report_.orphan_bytes += info.length;
            }
          },
          &scanned);
      done_bytes += size;
      if (!s.ok()) {
        Error(where, s.message());
        continue;
      }
      if (scanned.tail_bytes != 0) {
        Report(Severity::kWarning, where,
               std::to_string(scanned.tail_bytes) +
                   " bytes after its last whole entry (a torn write; the next writable open "
                   "cuts them)");
      }
      auto record = pack_records_.find(pack);
      const IndexedBytes indexed = indexed_per_pack_[pack];
      if (indexed.bytes != live_bytes || indexed.chunks != live_chunks) {
        Error(where, "the chunk index refers to " + std::to_string(indexed.chunks) +
                         " entries in it, " + std::to_string(live_chunks) +
                         " of them are there and whole");
      }
      if (record == pack_records_.end()) {
        if (live_chunks != 0) Error(where, "has no pack record, yet the index refers to it");
      } else if (record->second.live_bytes != live_bytes ||
                 record->second.live_chunks != live_chunks) {
        Error(where, "its record counts " + std::to_string(record->second.live_chunks) +
                         " live entries (" + std::to_string(record->second.live_bytes) +
                         " bytes), the index " + std::to_string(live_chunks) + " (" +
                         std::to_string(live_bytes) + " bytes)");
      } else if (record->second.sealed && !scanned.sealed) {
        Error(where, "its record says sealed, but it has no valid trailer");
      }
    }
    const std::map<uint64_t, uint64_t> remote_only = RemotePackSizes(dir_);
    for (const auto& [pack, indexed] : indexed_per_pack_) {
      if (!files->contains(pack) && remote_only.contains(pack)) {
        ++report_.remote_only_packs;
        continue;
      }
      if (!files->contains(pack) && indexed.chunks != 0) {
        Error("pack " + std::to_string(pack), "is missing: the chunk index refers to " +
                                                  std::to_string(indexed.chunks) +
                                                  " entries in it");
      }
    }
    // Orphans are counted (report_.orphan_chunks), not reported: a commit that drops chunks
    // its writer overwrote makes them as surely as a crash does.
    return Status::Ok();
  }

  // Extent groups no version claimed.
  void CheckLeftoverExtents() {
    for (const std::string& key : extent_keys_) {
      const uint64_t history = key.size() >= 9 ? KeyU64(key, 1) : 0;
      const uint64_t number = key.size() >= 17 ? KeyU64(key, 9) : 0;
      const std::string where = FileWhere(history, number);
      std::string value;
      std::vector<Extent> extents;
      if (!kv_->Get(Family::kMeta, key, &value).ok()) continue;
      if (OpenRecord(key, value, meta_key_, where + " extent group", &extents)) {
        Report(Severity::kWarning, where, "an extent group that no version record uses");
      }
    }
  }

  // --- The audit chain, through the Archive -----------------------------------------------
  void CheckAuditChain(const KeySource& key) {
    Progress("audit log", 0, 0, /*bytes=*/false);
    ArchiveOptions options;
    options.read_only = true;
    options.no_writes = true;
    // Log damage was reported above; the chain is checked up to it (nothing is written).
    options.accept_wal_damage = true;
    // Records that do not add up to the state digest were reported above.
    options.accept_record_damage = true;
    auto archive = Archive::Open(dir_, key, options);
    if (!archive.ok()) {
      Error("audit log", "the archive does not open to check it: " + archive.status().message());
      return;
    }
    auto chain = (*archive)->VerifyAuditChain();
    if (!chain.ok()) {
      Error("audit log", "cannot be checked: " + chain.status().message());
      return;
    }
    report_.audit = *chain;
    report_.audit_checked = true;
    if (!chain->intact) {
      Error("audit log", chain->problem.empty() ? "the chain is broken" : chain->problem);
    }
    CrossCheckCommits(**archive);
    Progress("audit log", 1, 1, /*bytes=*/false);
  }

  // The audit log's commits against the records: a live file whose last audited commit is a
  // version its history does not reach lost records (put back from an older copy, or
  // deleted). Conservative: a path's knowledge is dropped at every rename, link, unlink or
  // rmdir that touches it or a directory above it, so only commits made at the file's current
  // path since then count.
  void CrossCheckCommits(Archive& archive) {
    std::map<std::string, uint64_t> last_commit;  // path -> version
    auto forget = [&](const std::string& path) {
      if (path.empty()) return;
      last_commit.erase(path);
      const std::string below = path + "/";
      for (auto it = last_commit.lower_bound(below);
           it != last_commit.end() && it->first.starts_with(below);) {
        it = last_commit.erase(it);
      }
    };
    Status s = archive.ScanAudit({}, [&](const AuditEntry& entry) {
      if (entry.result != 0) return true;
      switch (entry.op) {
        case AuditOp::kCommit:
        case AuditOp::kTruncate:
        case AuditOp::kRestore:
          if (entry.version != 0) last_commit[entry.path] = entry.version;
          break;
        case AuditOp::kRename:
        case AuditOp::kLink:
        case AuditOp::kUnlink:
        case AuditOp::kRmdir:
          forget(entry.path);
          forget(entry.target_path);
          break;
        default:
          break;
      }
      return true;
    });
    if (!s.ok()) return;  // a damaged entry: the chain check above reports it
    for (const auto& [history, record] : histories_) {
      if (record.live_ino == 0) continue;
      const std::string path = FileWhere(history, 0);
      auto it = last_commit.find(path);
      if (it == last_commit.end() || it->second <= record.last_version) continue;
      Error(path, "the audit log records version " + std::to_string(it->second) +
                      " committed, the file's history ends at version " +
                      std::to_string(record.last_version) +
                      ": its records were put back from an older copy or deleted");
    }
  }

  const std::filesystem::path dir_;
  const VerifyOptions& options_;
  VerifyReport& report_;
  std::unique_ptr<KvStore> kv_;
  SecretKey meta_key_;
  std::unique_ptr<KeyedHmacSha256> digest_hmac_;
  std::optional<std::string> stored_digest_;  // the sealed state digest record
  bool keeps_state_digest_ = false;           // the super record says a digest record must exist
  SecretKey chunk_seal_key_;
  std::unique_ptr<ChunkStore> chunks_;
  // Pack records (pass 1) and what the chunk index refers to per pack (pass 3), for pass 4.
  struct IndexedBytes {
    uint64_t bytes = 0;
    uint64_t chunks = 0;
  };
  std::map<uint64_t, PackRecord> pack_records_;
  std::map<uint64_t, IndexedBytes> indexed_per_pack_;

  // Pass 1.
  std::set<InodeId> inodes_;
  std::unordered_map<InodeId, DirName> dirs_;
  std::map<HistoryId, HistoryRecord> histories_;
  struct FileInode {
    InodeId ino;
    HistoryId history;
    uint64_t version;
  };
  std::vector<FileInode> file_inodes_;
  std::vector<std::pair<InodeId, InodeId>> dirents_;  // (directory, inode named)
  struct Deferred {
    HistoryId history;
    uint64_t number;
    std::string what;
  };
  std::vector<Deferred> deferred_;
  std::set<std::string> extent_keys_;  // removed as versions claim them
  uint64_t content_total_ = 0;

  // Pass 2.
  HistoryId current_history_ = 0;
  uint64_t next_number_ = 1;
  std::set<HistoryId> histories_seen_;
  std::vector<ChunkId> referenced_;
  std::vector<ChunkId> dropped_;  // listed by kDroppedExtentPrefix records
  size_t compacted_size_ = 0;
  uint64_t unreadable_extent_groups_ = 0;
};

}  // namespace

std::string VerifyProblem::ToString() const { return where + ": " + what; }

StatusOr<VerifyReport> VerifyArchive(const std::filesystem::path& dir, const KeySource& key,
                                     const VerifyOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return Status::NotFound("no archive at that path");
  if (!Archive::Exists(dir)) {
    return Status::NotFound("the directory is not a medvfs archive (no keyslot)");
  }
  VerifyReport report;
  Verifier verifier(dir, options, &report);
  MEDVFS_RETURN_IF_ERROR(verifier.Run(key));
  return report;
}

}  // namespace medvfs::store
