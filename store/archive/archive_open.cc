// Creating and opening archives, sealed record access, statistics.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <system_error>

#include "store/archive/archive_impl.h"
#include "store/archive/archive_testing.h"
#include "store/archive/remote.h"
#include "store/archive/state_digest.h"
#include "store/crypto/subkeys.h"
#include "store/engine/pack_format.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

std::filesystem::path KeySlotPath(const std::filesystem::path& dir) {
  return dir / kKeySlotFileName;
}
std::filesystem::path DatabasePath(const std::filesystem::path& dir) { return dir / "db"; }

StatusOr<std::unique_ptr<ChunkStore>> OpenChunkStore(KvStore* kv, const SecretKey& data_key,
                                                     const std::filesystem::path& dir,
                                                     const ArchiveOptions& options,
                                                     rocksdb::Env* storage_env) {
  ChunkStoreOptions chunk_options;
  chunk_options.packs_dir = dir / "packs";
  chunk_options.packs.seal_bytes = options.pack_bytes;
  chunk_options.packs.read_only = options.no_writes;
  chunk_options.packs.env = storage_env;
  if (options.remote_packs) {
    MEDVFS_ASSIGN_OR_RETURN(chunk_options.packs.remote, OpenRemotePacks(*options.remote_packs));
  }
  return ChunkStore::Open(kv, data_key, chunk_options);
}

// Refuses an archive whose records this medvfs does not know how to read, naming its schema
// and what to do. Schema 1 (chunks inside RocksDB) is read: its chunks stay where they are,
// and new ones go to packs (the first change marks it schema 2, see Load).
Status CheckSchema(const KvStore& kv, const SecretKey& data_key) {
  const SecretKey meta_key = DeriveSubkey(data_key, kMetaSealLabel);
  std::string value;
  Status s = kv.Get(Family::kMeta, kSuperKey, &value);
  if (s.code() == Code::kNotFound) return Status::Corruption("the archive has no super record");
  MEDVFS_RETURN_IF_ERROR(s);
  SuperRecord super;
  if (OpenSealedRecord(meta_key, kSuperKey, value, &super) != RecordFault::kNone) {
    return Status::Corruption("the archive's super record does not open");
  }
  if (super.schema < kOldestReadableSchema || super.schema > kSchemaVersion) {
    return Status(Code::kNotSupported,
                  "the archive has format (schema) " + std::to_string(super.schema) +
                      "; this medvfs reads schemas " + std::to_string(kOldestReadableSchema) +
                      " to " + std::to_string(kSchemaVersion) +
                      (super.schema > kSchemaVersion
                           ? ": it was written by a newer medvfs; use that version (or newer)"
                           : ": export it with the medvfs that wrote it, and import it here"));
  }
  return Status::Ok();
}

Status AddStateDigest(const KvStore& kv, const SecretKey& meta_key,
                      const KeyedHmacSha256& digest_hmac, const StateDigestSnapshot* known,
                      KvBatch& batch, std::optional<StateDigestSnapshot>* after);
Status ComputeStateDigest(const KvStore& kv, const KeyedHmacSha256& digest_hmac,
                          StateDigest* digest);
Status OpenStateDigestRecord(const SecretKey& meta_key, std::string_view value,
                             StateDigest* digest);

// Test seam (FailRecordSealsForTesting): the next this-many record seals fail.
std::atomic<int> failing_seals_for_testing{0};

}  // namespace

// For tests only: makes the next `count` seals of a meta record fail, as an out-of-memory
// OpenSSL would (declared by the tests that use it).
void FailRecordSealsForTesting(int count);
void FailRecordSealsForTesting(int count) { failing_seals_for_testing.store(count); }

namespace {
std::atomic<int64_t (*)()> clock_for_testing{nullptr};
}  // namespace

void SetClockForTesting(int64_t (*clock)()) { clock_for_testing.store(clock); }

int64_t NowNs() {
  if (int64_t(*clock)() = clock_for_testing.load(std::memory_order_relaxed)) return clock();
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool Archive::Exists(const std::filesystem::path& dir) {
  std::error_code ec;
  return std::filesystem::exists(KeySlotPath(dir), ec);
}

StatusOr<std::unique_ptr<Archive>> Archive::Create(const std::filesystem::path& dir,
                                                   const KeySource& key,
                                                   const ArchiveOptions& options) {
  return CreateArchiveWithEnv(dir, key, options, nullptr);
}

StatusOr<std::unique_ptr<Archive>> Archive::Open(const std::filesystem::path& dir,
                                                 const KeySource& key,
                                                 const ArchiveOptions& options) {
  return OpenArchiveWithEnv(dir, key, options, nullptr);
}

StatusOr<std::unique_ptr<Archive>> CreateArchiveWithEnv(const std::filesystem::path& dir,
                                                        const KeySource& key,
                                                        const ArchiveOptions& options,
                                                        rocksdb::Env* storage_env) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    if (!std::filesystem::is_directory(dir, ec)) {
      return Status(Code::kNotDirectory, "the archive path exists and is not a directory");
    }
    if (!std::filesystem::is_empty(dir, ec)) {
      return Status(Code::kExists, "the archive directory exists and is not empty");
    }
  } else if (::mkdir(dir.c_str(), 0700) != 0) {
    return StatusFromErrno(errno, "creating the archive directory");
  }
  // Patient data: only the archive's owner may enter, whatever the umask (RocksDB creates its
  // files 0644 under the umask; the directories keep everyone else out of them).
  if (::chmod(dir.c_str(), 0700) != 0) {
    return StatusFromErrno(errno, "making the archive directory private");
  }
  if (::mkdir(DatabasePath(dir).c_str(), 0700) != 0) {
    return StatusFromErrno(errno, "creating the database directory");
  }
  std::string archive_id(16, '\0');
  RandomBytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(archive_id.data()), 16));
  SecretKey data_key;
  MEDVFS_RETURN_IF_ERROR(CreateKeySlot(KeySlotPath(dir), key, options.kdf, archive_id, &data_key));
  KvOpenOptions kv_options;
  kv_options.create = true;
  kv_options.env = storage_env;
  MEDVFS_ASSIGN_OR_RETURN(auto kv, KvStore::Open(DatabasePath(dir), kv_options));
  MEDVFS_ASSIGN_OR_RETURN(auto chunks,
                          OpenChunkStore(kv.get(), data_key, dir, options, storage_env));
  auto archive = std::make_unique<ArchiveImpl>(std::move(kv), std::move(chunks), data_key,
                                               archive_id, options, dir);
  Caller creator;
  creator.uid = ::geteuid();
  creator.gid = ::getegid();
  MEDVFS_RETURN_IF_ERROR(archive->Initialize(creator));
  MEDVFS_RETURN_IF_ERROR(archive->OpenAudit());
  archive->StartBackgroundSync();
  return std::unique_ptr<Archive>(std::move(archive));
}

Status Archive::CheckKey(const std::filesystem::path& dir, const KeySource& key) {
  if (!Archive::Exists(dir))
    return Status::NotFound("the directory is not a medvfs archive (no keyslot)");
  SecretKey data_key;
  std::string archive_id;
  Status unlocked = UnlockKeySlot(KeySlotPath(dir), key, &data_key, &archive_id);
  if (unlocked.code() == Code::kWrongKey) RecordFailedUnlock(dir);
  return unlocked;
}

StatusOr<std::unique_ptr<Archive>> OpenArchiveWithEnv(const std::filesystem::path& dir,
                                                      const KeySource& key,
                                                      const ArchiveOptions& options,
                                                      rocksdb::Env* storage_env) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return Status::NotFound("no archive at that path");
  }
  if (!Archive::Exists(dir))
    return Status::NotFound("the directory is not a medvfs archive (no keyslot)");
  // The key is checked before the database is touched, so a wrong key writes nothing there;
  // it is only noted in the plaintext failed-unlocks file, for the audit log's next open.
  SecretKey data_key;
  std::string archive_id;
  Status unlocked = UnlockKeySlot(KeySlotPath(dir), key, &data_key, &archive_id);
  if (unlocked.code() == Code::kWrongKey && !options.no_writes) RecordFailedUnlock(dir);
  MEDVFS_RETURN_IF_ERROR(unlocked);
  // read_only keeps the database writable for audit entries; only no_writes opens it
  // read-only (and then without its lock, beside a writer).
  KvOpenOptions kv_options;
  kv_options.read_only = options.no_writes;
  kv_options.accept_wal_damage = options.accept_wal_damage;
  kv_options.env = storage_env;
  // An archive that keeps packs in a bucket only (local_packs, or a remote mount's mirror)
  // reads them from there, whoever opens it.
  ArchiveOptions opened = options;
  if (!opened.remote_packs)
    opened.remote_packs = CapacityTierReading(dir, options.local_packs, options.remote_cache_bytes);
  kv_options.replay_check = ChunkStore::ReplayCheck(
      data_key, dir / "packs", storage_env, !options.no_writes,
      opened.remote_packs ? RemotePackSizes(dir) : std::map<uint64_t, uint64_t>{});
  MEDVFS_ASSIGN_OR_RETURN(auto kv, KvStore::Open(DatabasePath(dir), kv_options));
  // The schema is checked before the packs are touched: an archive of an unknown schema is
  // refused with nothing changed.
  MEDVFS_RETURN_IF_ERROR(CheckSchema(*kv, data_key));
  MEDVFS_ASSIGN_OR_RETURN(auto chunks,
                          OpenChunkStore(kv.get(), data_key, dir, opened, storage_env));
  auto archive = std::make_unique<ArchiveImpl>(std::move(kv), std::move(chunks), data_key,
                                               archive_id, opened, dir);
  MEDVFS_RETURN_IF_ERROR(archive->Load());
  MEDVFS_RETURN_IF_ERROR(archive->OpenAudit());
  archive->StartBackgroundSync();
  return std::unique_ptr<Archive>(std::move(archive));
}

ArchiveImpl::ArchiveImpl(std::unique_ptr<KvStore> kv, std::unique_ptr<ChunkStore> chunks,
                         const SecretKey& data_key, std::string archive_id,
                         const ArchiveOptions& options, std::filesystem::path dir)
    : kv_(std::move(kv)),
      meta_key_(DeriveSubkey(data_key, kMetaSealLabel)),
      name_hmac_(DeriveSubkey(data_key, kNameHashLabel)),
      audit_chain_hmac_(DeriveSubkey(data_key, kAuditChainLabel)),
      state_digest_hmac_(DeriveSubkey(meta_key_, kStateDigestLabel)),
      high_water_key_(DeriveSubkey(data_key, kHighWaterLabel)),
      deid_key_(DeriveSubkey(data_key, kDeidLabel)),
      remote_key_(DeriveSubkey(data_key, kRemoteLabel)),
      archive_id_(std::move(archive_id)),
      chunks_(std::move(chunks)),
      options_(options),
      dir_(std::move(dir)),
      dirty_budget_(options.max_dirty_bytes) {}

ArchiveImpl::~ArchiveImpl() {
  StopBackgroundSync();
  // Commit what open handles wrote and did not close (best effort, as a clean unmount would).
  std::unordered_map<InodeId, std::shared_ptr<WriteSession>> sessions;
  {
    std::lock_guard lock(mu_);
    sessions.swap(sessions_);
  }
  Caller closing;
  closing.program = "medvfs";
  for (auto& [ino, session] : sessions) {
    Status s = Commit(ino, session, closing);
    if (!s.ok()) {
      MEDVFS_LOG_ERROR("inode %llu: pending writes not committed at close: %s",
                       static_cast<unsigned long long>(ino), s.ToString().c_str());
    }
  }
  if (options_.no_writes) return;
  // Audit entries are appended without a sync (even on a read-only open): make them durable,
  // then let the high-water mark follow.
  kv_->SyncWal().IgnoreError();
  RaiseHighWater();
}

Status ArchiveImpl::RecordFaultStatus(std::string_view key, RecordFault fault) const {
  switch (fault) {
    case RecordFault::kNone:
      return Status::Ok();
    case RecordFault::kUnknownFormat:
      return Status::Corruption("a record has an unknown format");
    case RecordFault::kAuthentication:
      MEDVFS_LOG_ERROR("a record (kind %c) failed authentication (altered or damaged)",
                       key.empty() ? '?' : key[0]);
      return Status::Corruption("a record failed authentication");
    case RecordFault::kDecode:
      return Status::Corruption("a record does not decode");
  }
  return Status::Corruption("a record does not open");
}

template <typename Record>
Status ArchiveImpl::GetRecord(std::string_view key, Record* record) const {
  std::string value;
  MEDVFS_RETURN_IF_ERROR(kv_->Get(Family::kMeta, key, &value));
  return OpenRecord(key, value, record);
}

template <typename Record>
void ArchiveImpl::PutRecord(KvBatch& batch, std::string_view key, const Record& record) const {
  std::string plain = Encode(record);
  std::string value;
  Status sealed = failing_seals_for_testing.load() > 0 && failing_seals_for_testing-- > 0
                      ? Status::IoError("sealing failed (injected by a test)")
                      : SealRecord(meta_key_, key, plain, &value);
  Wipe(plain.data(), plain.size());
  if (!sealed.ok()) {
    // Sealing fails only when OpenSSL cannot allocate; storing the bare format byte instead
    // would leave a record that never opens again. The whole batch is refused instead.
    MEDVFS_LOG_ERROR("a record (kind %c) could not be sealed: %s", key.empty() ? '?' : key[0],
                     sealed.ToString().c_str());
    batch.Fail(Status::IoError("a record could not be encrypted: " + sealed.message()));
    return;
  }
  batch.Put(Family::kMeta, key, value);
}

// Explicit instantiations used by the other archive_*.cc files.
#define MEDVFS_RECORD_ACCESS(Record)                                               \
  template Status ArchiveImpl::GetRecord<Record>(std::string_view, Record*) const; \
  template void ArchiveImpl::PutRecord<Record>(KvBatch&, std::string_view, const Record&) const;
MEDVFS_RECORD_ACCESS(SuperRecord)
MEDVFS_RECORD_ACCESS(InodeRecord)
MEDVFS_RECORD_ACCESS(DirentRecord)
MEDVFS_RECORD_ACCESS(NameEventRecord)
MEDVFS_RECORD_ACCESS(HistoryRecord)
MEDVFS_RECORD_ACCESS(VersionRecord)
MEDVFS_RECORD_ACCESS(std::vector<Extent>)
MEDVFS_RECORD_ACCESS(MetadataEvent)
MEDVFS_RECORD_ACCESS(DicomTags)
MEDVFS_RECORD_ACCESS(NoteEvent)
MEDVFS_RECORD_ACCESS(PatientIndexRecord)
MEDVFS_RECORD_ACCESS(VersionDigestRecord)
MEDVFS_RECORD_ACCESS(AuditRecord)
MEDVFS_RECORD_ACCESS(AuditHeadRecord)
MEDVFS_RECORD_ACCESS(GcResult)
MEDVFS_RECORD_ACCESS(RetentionRule)
MEDVFS_RECORD_ACCESS(LegalHold)
#undef MEDVFS_RECORD_ACCESS

std::string ArchiveImpl::NameHash(std::string_view name) const {
  auto mac = name_hmac_.Mac(name);
  return std::string(reinterpret_cast<const char*>(mac.data()), kNameHashSize);
}

Status ArchiveImpl::Initialize(const Caller& creator) {
  std::lock_guard lock(mu_);
  const int64_t now = NowNs();
  InodeRecord root;
  root.mode = S_IFDIR | 0755;
  root.uid = creator.uid;
  root.gid = creator.gid;
  root.nlink = 2;
  root.atime_ns = root.mtime_ns = root.ctime_ns = now;
  super_ = SuperRecord{};
  super_.schema = kSchemaVersion;
  super_.keeps_state_digest = true;
  KvBatch batch;
  PutRecord(batch, InodeKey(kRootInode), root);
  PutRecord(batch, kSuperKey, super_);
  MEDVFS_RETURN_IF_ERROR(
      AddStateDigest(*kv_, meta_key_, state_digest_hmac_, nullptr, batch, nullptr));
  state_digest_cache_.reset();
  return kv_->Write(batch, /*sync=*/true);
}

Status ArchiveImpl::Load() {
  std::lock_guard lock(mu_);
  Status s = GetRecord(kSuperKey, &super_);
  if (s.code() == Code::kNotFound) return Status::Corruption("the archive has no super record");
  MEDVFS_RETURN_IF_ERROR(s);
  if (super_.schema < kOldestReadableSchema || super_.schema > kSchemaVersion) {
    return Status(Code::kNotSupported, "the archive has schema " + std::to_string(super_.schema) +
                                           "; this medvfs reads schemas " +
                                           std::to_string(kOldestReadableSchema) + " to " +
                                           std::to_string(kSchemaVersion));
  }
  if (super_.schema < kSchemaVersion && !options_.no_writes && !options_.read_only) {
    // Schema 1 wrote chunks into RocksDB; they stay there and are read from there. New chunks
    // go to packs, which a medvfs of schema 1 would not find; and a medvfs of schema 2 would
    // take a pruned version for empty content. The archive says so from now on (before any
    // pack is referenced or any content removed), and such a medvfs then refuses it instead of
    // misreading.
    const uint32_t old_schema = super_.schema;
    super_.schema = kSchemaVersion;
    KvBatch batch;
    PutRecord(batch, kSuperKey, super_);
    MEDVFS_RETURN_IF_ERROR(
        AddStateDigest(*kv_, meta_key_, state_digest_hmac_, nullptr, batch, nullptr));
    state_digest_cache_.reset();
    MEDVFS_RETURN_IF_ERROR(kv_->Write(batch, /*sync=*/true));
    MEDVFS_LOG_INFO("the archive was upgraded from schema %u to schema %u", old_schema,
                    kSchemaVersion);
  }
  MEDVFS_RETURN_IF_ERROR(CheckStateDigestLocked());
  return LoadAuditHead();
}

// Adds up the covered records (one scan per record kind; the audit log and the chunk index
// are skipped, so the cost follows the number of files and versions, not of reads or bytes)
// and compares the sum with the digest record. Where they differ nothing the archive serves
// can be trusted to be current, and which files are affected is not known: the open is
// refused unless the admin accepts the records as they are (see accept_record_damage).
Status ArchiveImpl::CheckStateDigestLocked() {
  StateDigest computed{};
  MEDVFS_RETURN_IF_ERROR(ComputeStateDigest(*kv_, state_digest_hmac_, &computed));
  std::string value;
  Status got = kv_->Get(Family::kMeta, kStateDigestKey, &value);
  if (got.code() == Code::kNotFound && !super_.keeps_state_digest) {
    // An archive last changed by a medvfs before the digest: its next change adds it.
    return Status::Ok();
  }
  std::string problem;
  if (got.code() == Code::kNotFound) {
    problem = "its state digest record is missing (deleted)";
  } else {
    MEDVFS_RETURN_IF_ERROR(got);
    StateDigest stored{};
    const Status opened = OpenStateDigestRecord(meta_key_, value, &stored);
    if (!opened.ok()) {
      problem = "its " + opened.message();
    } else if (stored != computed) {
      problem =
          "its records do not add up to its state digest: a record was put back from an older "
          "copy, deleted, or mixed from another point in time";
    }
  }
  if (problem.empty()) return Status::Ok();
  MEDVFS_LOG_ERROR("the archive was altered outside medvfs: %s", problem.c_str());
  if (!options_.accept_record_damage) {
    return Status::Corruption(
        "the archive's records were altered outside medvfs: " + problem +
        " (by someone with write access to the archive directory; which files are affected "
        "is not known). Run `medvfs verify` to see what it finds, then restore the archive "
        "from a backup (medvfs restore-backup), or, to serve the records as they are, mount it "
        "with --accept-record-damage (recorded in the audit log)");
  }
  accepted_record_damage_ = problem;
  accepted_state_digest_ = computed;
  return Status::Ok();
}

Status ArchiveImpl::CheckWritable() const {
  if (options_.read_only || options_.no_writes) {
    return Status::ReadOnly("the archive is open read-only");
  }
  return Status::Ok();
}

Status ArchiveImpl::WriteBatchLocked(KvBatch& batch) {
  super_.keeps_state_digest = true;
  PutRecord(batch, kSuperKey, super_);
  std::optional<StateDigestSnapshot> after;
  MEDVFS_RETURN_IF_ERROR(AddStateDigest(*kv_, meta_key_, state_digest_hmac_,
                                        state_digest_cache_ ? &*state_digest_cache_ : nullptr,
                                        batch, &after));
  state_digest_cache_.reset();  // until the batch is known to be written
  MEDVFS_RETURN_IF_ERROR(kv_->Write(batch, /*sync=*/false));
  state_digest_cache_ = std::move(after);
  return Status::Ok();
}

namespace {

// The digest of the records present now (for an archive made before the digest existed).
// The digest in the sealed state digest record `value`; kCorruption ("state digest record
// fails authentication" or "... does not decode") otherwise.
Status OpenStateDigestRecord(const SecretKey& meta_key, std::string_view value,
                             StateDigest* digest) {
  switch (OpenSealedRecord(meta_key, kStateDigestKey, value, digest, DecodeStateDigest)) {
    case RecordFault::kNone:
      return Status::Ok();
    case RecordFault::kDecode:
      return Status::Corruption("state digest record does not decode");
    default:
      return Status::Corruption("state digest record fails authentication");
  }
}

// One scan per covered kind, so that the audit log (most of the records) is never read.
Status ComputeStateDigest(const KvStore& kv, const KeyedHmacSha256& digest_hmac,
                          StateDigest* digest) {
  digest->fill(0);
  for (const char kind : kStateDigestKinds) {
    MEDVFS_RETURN_IF_ERROR(kv.Scan(Family::kMeta, std::string_view(&kind, 1),
                                   [&](std::string_view key, std::string_view value) {
                                     if (CoveredByStateDigest(key)) {
                                       StateDigestAdd(digest,
                                                      StateDigestTerm(digest_hmac, key, value));
                                     }
                                     return true;
                                   }));
  }
  return Status::Ok();
}

// Adds the state digest record to a batch: the digest before it, less the terms of the
// covered records the batch overwrites or deletes, plus those of the ones it puts. `known`,
// when given, is what the last batch left (StateDigestSnapshot), so neither the digest record
// nor the super record is read back; `after`, when given, receives what this batch leaves
// (unset if the batch does not write the super record and `known` is not given).
// REQUIRES: mu_ held by the caller (no other batch of covered records is in flight).
Status AddStateDigest(const KvStore& kv, const SecretKey& meta_key,
                      const KeyedHmacSha256& digest_hmac, const StateDigestSnapshot* known,
                      KvBatch& batch, std::optional<StateDigestSnapshot>* after) {
  MEDVFS_RETURN_IF_ERROR(batch.status());
  StateDigest digest{};
  if (known != nullptr) {
    digest = known->digest;
  } else {
    std::string value;
    Status s = kv.Get(Family::kMeta, kStateDigestKey, &value);
    if (s.code() == Code::kNotFound) {
      MEDVFS_LOG_INFO("the archive has no state digest yet: computing it from its records");
      MEDVFS_RETURN_IF_ERROR(ComputeStateDigest(kv, digest_hmac, &digest));
    } else {
      MEDVFS_RETURN_IF_ERROR(s);
      const Status opened = OpenStateDigestRecord(meta_key, value, &digest);
      if (!opened.ok()) MEDVFS_LOG_ERROR("the %s", opened.message().c_str());
      MEDVFS_RETURN_IF_ERROR(opened);
    }
  }
  // What each covered key holds before the batch and after each of its operations.
  std::map<std::string, std::optional<std::string>, std::less<>> current;
  if (known != nullptr) current.emplace(kSuperKey, known->super_value);
  Status failed;
  batch.ForEach([&](Family family, bool is_delete, std::string_view key, std::string_view put) {
    if (family != Family::kMeta || !CoveredByStateDigest(key) || !failed.ok()) return;
    auto it = current.find(key);
    if (it == current.end()) {
      std::string old;
      Status got = kv.Get(Family::kMeta, key, &old);
      if (got.code() == Code::kNotFound) {
        it = current.emplace(std::string(key), std::nullopt).first;
      } else if (!got.ok()) {
        failed = got;
        return;
      } else {
        it = current.emplace(std::string(key), std::move(old)).first;
      }
    }
    if (it->second) StateDigestSubtract(&digest, StateDigestTerm(digest_hmac, key, *it->second));
    if (is_delete) {
      it->second.reset();
    } else {
      StateDigestAdd(&digest, StateDigestTerm(digest_hmac, key, put));
      it->second = std::string(put);
    }
  });
  MEDVFS_RETURN_IF_ERROR(failed);
  std::string sealed;
  MEDVFS_RETURN_IF_ERROR(SealRecord(meta_key, kStateDigestKey, EncodeStateDigest(digest), &sealed));
  batch.Put(Family::kMeta, kStateDigestKey, sealed);
  if (after != nullptr) {
    after->reset();
    const auto super = current.find(kSuperKey);
    if (super != current.end() && super->second) {
      *after = StateDigestSnapshot{digest, std::move(*super->second)};
    }
  }
  return Status::Ok();
}

}  // namespace

void ArchiveImpl::StartBackgroundSync() {
  if (options_.commit_interval_ms == 0 || read_only()) return;
  background_sync_ = std::thread([this] {
    const auto interval = std::chrono::milliseconds(options_.commit_interval_ms);
    std::unique_lock lock(background_sync_mu_);
    while (!background_sync_stopping_) {
      background_sync_cv_.wait_for(lock, interval, [this] { return background_sync_stopping_; });
      if (background_sync_stopping_) break;
      if (!kv_->HasUnsyncedWrites()) continue;
      lock.unlock();
      // The packs that logged index records name, then the log (KvStore's hook orders them).
      Status s = kv_->SyncWal();
      if (!s.ok()) {
        MEDVFS_LOG_ERROR("the background sync of the commit interval failed: %s",
                         s.ToString().c_str());
      }
      lock.lock();
    }
  });
}

void ArchiveImpl::StopBackgroundSync() {
  {
    std::lock_guard lock(background_sync_mu_);
    background_sync_stopping_ = true;
  }
  background_sync_cv_.notify_all();
  if (background_sync_.joinable()) background_sync_.join();
}

Status ArchiveImpl::SyncAll() {
  if (options_.no_writes) return Status::Ok();
  return kv_->SyncWal();
}

StatusOr<FsStats> ArchiveImpl::StatFs() {
  struct statvfs vfs {};
  if (::statvfs(dir_.c_str(), &vfs) != 0) return StatusFromErrno(errno, "statfs of the archive");
  FsStats stats;
  stats.block_size = vfs.f_frsize;
  stats.blocks = vfs.f_blocks;
  stats.blocks_free = vfs.f_bfree;
  stats.blocks_available = vfs.f_bavail;
  std::lock_guard lock(mu_);
  stats.files = super_.next_inode;
  stats.files_free = vfs.f_ffree;
  stats.name_max = 255;
  return stats;
}

StatusOr<ArchiveStats> ArchiveImpl::Stats() {
  ArchiveStats stats;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<HistoryRecord>(
      std::string(1, kHistoryPrefix), [&](std::string_view, const HistoryRecord& history) {
        if (history.last_version == 0) return true;
        ++stats.files;
        if (history.live_ino != 0) ++stats.live_files;
        return true;
      }));
  MEDVFS_RETURN_IF_ERROR(ScanRecords<VersionRecord>(
      std::string(1, kVersionPrefix), [&](std::string_view, const VersionRecord& version) {
        if (version.info.is_delete_marker()) return true;
        if (version.info.content_removed()) {
          ++stats.removed_versions;
          return true;
        }
        ++stats.versions;
        stats.logical_bytes += version.info.size;
        return true;
      }));
  MEDVFS_RETURN_IF_ERROR(ScanRecords<InodeRecord>(std::string(1, kInodePrefix),
                                                  [&](std::string_view, const InodeRecord& inode) {
                                                    if (S_ISDIR(inode.mode)) ++stats.directories;
                                                    return true;
                                                  }));
  MEDVFS_RETURN_IF_ERROR(kv_->Scan(Family::kMeta, std::string(1, kChunkIndexPrefix),
                                   [&](std::string_view, std::string_view) {
                                     ++stats.chunks;
                                     return true;
                                   }));
  // Stored bytes: what the sealed chunks take (their index records hold each size).
  MEDVFS_RETURN_IF_ERROR(chunks_->SumStoredBytes(&stats.stored_bytes));
  for (const auto& [pack, record] : chunks_->PackRecords()) {
    if (record.removed) continue;
    stats.pack_bytes += record.size;
    stats.reclaimable_bytes += PackGarbageBytes(record);
  }
  MEDVFS_ASSIGN_OR_RETURN(stats.last_gc, LastCollection());
  MEDVFS_ASSIGN_OR_RETURN(stats.retention, ListRetention());
  MEDVFS_ASSIGN_OR_RETURN(stats.holds, ListHolds());
  MEDVFS_ASSIGN_OR_RETURN(auto remotes, ListRemotes());
  for (const RemoteStatus& remote : remotes) {
    ++stats.remotes;
    stats.remote_lag_bytes = std::max(stats.remote_lag_bytes, remote.lag_bytes);
    stats.remote_lag_seconds = std::max(stats.remote_lag_seconds, remote.lag_seconds);
    if (!remote.last_error.empty()) ++stats.remote_errors;
  }
  MEDVFS_RETURN_IF_ERROR(CountHeldVersions(&stats.held_versions));
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir_, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) stats.disk_bytes += it->file_size(ec);
  }
  return stats;
}

StatusOr<NodeRef> LookupPath(Archive& archive, std::string_view path) {
  MEDVFS_ASSIGN_OR_RETURN(Attr root, archive.GetAttr(kRootInode));
  NodeRef node(nullptr, root);  // the root is never freed: it needs no reference
  while (!path.empty()) {
    const size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    // Each step's reference is released as the next one is taken.
    MEDVFS_ASSIGN_OR_RETURN(node, archive.Lookup(node.ino, part));
  }
  return node;
}

}  // namespace medvfs::store
