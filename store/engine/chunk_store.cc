#include "store/engine/chunk_store.h"

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <algorithm>

#include "store/crypto/compress.h"
#include "store/crypto/sealed_record.h"
#include "store/crypto/subkeys.h"
#include "store/engine/chunk_settle.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

constexpr uint8_t kLegacyChunkFormat = 1;  // schema 1: a chunk value in the "chunks" family
constexpr int kZstdLevel = 3;
// Chunks pending (appended, not yet indexed) beyond which a Put makes them durable itself, so
// that a file written for a long time without a commit keeps this map small (~100 bytes per
// chunk: ~1.6 MiB at this bound, 1 GiB of chunks).
constexpr size_t kMaxPendingChunks = 16384;
// A chunk that zstd shrinks by less than 1/kMinCompressionGain of its size counts as
// incompressible (ChunkStore::CompressionSkip); the longest skip is 32 chunks (~2 MiB).
constexpr size_t kMinCompressionGain = 32;
constexpr uint32_t kMaxCompressionSkip = 32;

std::string LegacyChunkAad(const ChunkId& id) {
  std::string aad = "chunk";
  aad.append(reinterpret_cast<const char*>(id.data()), id.size());
  return aad;
}

std::string LegacyChunkKey(const ChunkId& id) {
  return std::string(reinterpret_cast<const char*>(id.data()), id.size());
}

std::string ShortId(const ChunkId& id) { return HexEncode(id).substr(0, 16); }

}  // namespace

ChunkStore::ChunkStore(KvStore* kv, const SecretKey& data_key, uint64_t cache_bytes)
    : kv_(kv),
      id_mac_(DeriveSubkey(data_key, kChunkIdLabel)),
      seal_key_(DeriveSubkey(data_key, kChunkSealLabel)),
      cache_capacity_(cache_bytes) {}

StatusOr<std::unique_ptr<ChunkStore>> ChunkStore::Open(KvStore* kv, const SecretKey& data_key,
                                                       const ChunkStoreOptions& options) {
  std::unique_ptr<ChunkStore> store(new ChunkStore(kv, data_key, options.cache_bytes));
  MEDVFS_RETURN_IF_ERROR(store->LoadPackRecords());
  std::vector<KnownPack> known;
  for (const auto& [number, record] : store->pack_records_) {
    known.push_back(KnownPack{number, record.sealed, record.indexed_end, record.removed});
  }
  std::vector<RecoveredPack> recovered;
  MEDVFS_ASSIGN_OR_RETURN(store->packs_, PackStore::Open(options.packs_dir, store->seal_key_,
                                                         options.packs, known, &recovered));
  KvBatch batch;
  for (const RecoveredPack& found : recovered) {
    ++store->recovery_.packs;
    store->recovery_.orphan_entries += found.orphan_entries;
    store->recovery_.orphan_bytes += found.orphan_bytes;
    store->recovery_.cut_bytes += found.cut_bytes;
    PackRecord& record = store->pack_records_[found.pack];
    record.pack = found.pack;
    record.size = found.end;
    record.sealed = record.sealed || found.sealed_on_disk;
    store->PutPackRecord(batch, record);
  }
  if (!options.packs.read_only && batch.count() > 0) {
    MEDVFS_RETURN_IF_ERROR(kv->Write(batch, /*sync=*/false));
  }
  store->packs_->TakeSealed();  // recorded just now
  if (!options.packs.read_only) {
    ChunkStore* raw = store.get();
    kv->SetBeforeDurable([raw] { return raw->SyncPacksIndexedAhead(); });
    store->hook_set_ = true;
  }
  if (!store->recovery_.empty()) {
    MEDVFS_LOG_INFO(
        "packs: %llu orphan chunks (%llu bytes) kept for garbage collection, %llu torn "
        "bytes cut, in %u packs that were taking appends",
        static_cast<unsigned long long>(store->recovery_.orphan_entries),
        static_cast<unsigned long long>(store->recovery_.orphan_bytes),
        static_cast<unsigned long long>(store->recovery_.cut_bytes), store->recovery_.packs);
  }
  return store;
}

ChunkStore::~ChunkStore() {
  // Waits for a hook that runs right now (a flush's).
  if (hook_set_) kv_->SetBeforeDurable(nullptr);
  {
    std::lock_guard lock(read_ahead_mu_);
    stopping_ = true;
  }
  read_ahead_cv_.notify_all();
  read_ahead_done_cv_.notify_all();
  for (std::thread& thread : read_ahead_threads_) thread.join();
}

Status ChunkStore::LoadPackRecords() {
  std::lock_guard lock(index_mu_);
  Status failed;
  MEDVFS_RETURN_IF_ERROR(kv_->Scan(Family::kMeta, std::string(1, kPackPrefix),
                                   [&](std::string_view key, std::string_view value) {
                                     PackRecord record;
                                     if (OpenSealedRecord(seal_key_, key, value, &record) !=
                                         RecordFault::kNone) {
                                       failed = Status::Corruption("a pack record does not open");
                                       return false;
                                     }
                                     pack_records_[record.pack] = record;
                                     return true;
                                   }));
  return failed;
}

void ChunkStore::PutPackRecord(KvBatch& batch, const PackRecord& record) const {
  const std::string key = PackKey(record.pack);
  std::string sealed;
  Status s = SealRecord(seal_key_, key, Encode(record), &sealed);
  if (!s.ok()) {
    batch.Fail(s);
    return;
  }
  batch.Put(Family::kMeta, key, sealed);
}

std::map<uint64_t, PackRecord> ChunkStore::PackRecords() const {
  std::lock_guard lock(index_mu_);
  return pack_records_;
}

void ChunkStore::ReadAhead(std::span<const Extent> extents) {
  std::vector<Extent> wanted;
  {
    std::lock_guard lock(cache_mu_);
    for (const Extent& extent : extents) {
      if (!IsHole(extent) && !cache_index_.contains(extent.id)) wanted.push_back(extent);
    }
  }
  if (wanted.empty()) return;
  {
    std::lock_guard lock(read_ahead_mu_);
    if (stopping_) return;
    if (read_ahead_threads_.empty()) {
      for (size_t i = 0; i < kReadAheadThreads; ++i) {
        read_ahead_threads_.emplace_back([this] { ReadAheadLoop(); });
      }
    }
    for (const Extent& extent : wanted) {
      if (read_ahead_queue_.size() >= kMaxQueuedReads) break;
      if (read_ahead_pending_.insert(extent.id).second) read_ahead_queue_.push_back(extent);
    }
  }
  read_ahead_cv_.notify_all();
}

void ChunkStore::ReadAheadLoop() {
  std::unique_lock lock(read_ahead_mu_);
  while (true) {
    read_ahead_cv_.wait(lock, [this] { return stopping_ || !read_ahead_queue_.empty(); });
    if (stopping_) return;
    std::vector<Extent> batch;
    while (!read_ahead_queue_.empty() && batch.size() < kReadAheadBatch) {
      batch.push_back(read_ahead_queue_.front());
      read_ahead_queue_.pop_front();
    }
    lock.unlock();
    ReadAheadBatch(batch);
    lock.lock();
    for (const Extent& extent : batch) read_ahead_pending_.erase(extent.id);
    read_ahead_done_cv_.notify_all();
  }
}

void ChunkStore::WaitForReadAhead(const ChunkId& id) {
  std::unique_lock lock(read_ahead_mu_);
  if (!read_ahead_pending_.contains(id)) return;
  auto queued = std::find_if(read_ahead_queue_.begin(), read_ahead_queue_.end(),
                             [&](const Extent& extent) { return extent.id == id; });
  if (queued != read_ahead_queue_.end()) {
    read_ahead_queue_.erase(queued);
    read_ahead_pending_.erase(id);
    return;
  }
  read_ahead_done_cv_.wait(lock, [&] { return stopping_ || !read_ahead_pending_.contains(id); });
}

void ChunkStore::ReadAheadBatch(const std::vector<Extent>& batch) {
  struct Wanted {
    Extent extent;
    PackLocation at;
  };
  std::vector<Wanted> located;
  for (const Extent& extent : batch) {
    {
      std::lock_guard lock(cache_mu_);
      if (cache_index_.contains(extent.id)) continue;
    }
    PackLocation at;
    if (!Locate(extent.id, &at).ok()) continue;  // the reader's own Get reports it
    if (at.pack == 0) {
      std::shared_ptr<const std::string> ignored;
      Get(extent.id, extent.length, &ignored).IgnoreError();
      continue;
    }
    located.push_back(Wanted{extent, at});
  }
  std::sort(located.begin(), located.end(), [](const Wanted& a, const Wanted& b) {
    return a.at.pack != b.at.pack ? a.at.pack < b.at.pack : a.at.offset < b.at.offset;
  });
  // Entries that follow each other in a pack are read with one read.
  constexpr uint64_t kMaxRunBytes = uint64_t{4} << 20;
  for (size_t first = 0; first < located.size();) {
    size_t last = first;
    while (last + 1 < located.size() && located[last + 1].at.pack == located[first].at.pack &&
           located[last + 1].at.offset == located[last].at.end() &&
           located[last + 1].at.end() - located[first].at.offset <= kMaxRunBytes) {
      ++last;
    }
    const uint64_t run_start = located[first].at.offset;
    std::string run;
    if (packs_->ReadRaw(located[first].at.pack, run_start, located[last].at.end() - run_start, &run)
            .ok()) {
      for (size_t i = first; i <= last; ++i) {
        const Wanted& w = located[i];
        const std::string_view bytes =
            std::string_view(run).substr(w.at.offset - run_start, w.at.length);
        PackEntryInfo info;
        std::string payload;
        auto plaintext = std::make_shared<std::string>();
        if (ParsePackEntryHeader(bytes, w.at.offset, &info).ok() && info.id == w.extent.id &&
            info.length == w.at.length &&
            packs_->OpenEntry(w.at.pack, info, bytes, &payload).ok() &&
            Decode(w.extent.id, w.extent.length, IdCheck::kSkip, info, std::move(payload),
                   plaintext.get())
                .ok()) {
          CacheInsert(w.extent.id, std::move(plaintext));
        }
      }
    }
    first = last + 1;
  }
}

ChunkId ChunkStore::IdOf(std::string_view plaintext) const { return id_mac_.Mac(plaintext); }

Status ChunkStore::Put(std::string_view plaintext, ChunkId* id, uint64_t owner, bool* inserted) {
  *id = IdOf(plaintext);
  if (inserted != nullptr) *inserted = false;
  const std::string index_key = ChunkIndexKey(*id);
  // Stored already (the common case of an unchanged chunk): nothing to seal. The check and
  // the mark are one step under mu_, so ReleaseFresh never drops a chunk handed out.
  auto found = [&]() -> StatusOr<bool> {
    if (!pending_.contains(*id)) {
      MEDVFS_ASSIGN_OR_RETURN(bool present, kv_->Contains(Family::kMeta, index_key));
      if (!present) return false;
    }
    auto it = fresh_.find(*id);
    if (it != fresh_.end() && it->second != owner) it->second = kSharedOwner;
    if (collecting_) taken_up_.insert(*id);
    return true;
  };
  bool try_zstd = true;
  {
    std::lock_guard lock(mu_);
    MEDVFS_ASSIGN_OR_RETURN(bool present, found());
    if (present) return Status::Ok();
    if (owner != 0) {
      auto skip = compression_skip_.find(owner);
      if (skip != compression_skip_.end() && skip->second.remaining > 0) {
        --skip->second.remaining;
        try_zstd = false;
      }
    }
  }

  std::string compressed;
  if (try_zstd) {
    MEDVFS_RETURN_IF_ERROR(Compress(plaintext, kZstdLevel, &compressed));
    if (owner != 0) {
      const bool gained =
          compressed.size() + plaintext.size() / kMinCompressionGain < plaintext.size();
      std::lock_guard lock(mu_);
      CompressionSkip& skip = compression_skip_[owner];
      skip.backoff = gained ? 0 : std::clamp<uint32_t>(skip.backoff * 2, 1, kMaxCompressionSkip);
      skip.remaining = skip.backoff;
    }
  }
  const bool use_zstd = try_zstd && compressed.size() < plaintext.size();
  const std::string_view payload = use_zstd ? std::string_view(compressed) : plaintext;
  MEDVFS_RETURN_IF_ERROR(kv_->CheckDataWrite(PackEntryLength(payload.size())));
  PackLocation at;
  MEDVFS_RETURN_IF_ERROR(packs_->Append(owner, *id, static_cast<uint32_t>(plaintext.size()),
                                        use_zstd ? kEncodingZstd : kEncodingRaw, payload, &at));
  bytes_written_ += at.length;
  size_t pending_count = 0;
  {
    std::lock_guard lock(mu_);
    // Stored meanwhile by another writer: this entry stays unreferenced (garbage).
    MEDVFS_ASSIGN_OR_RETURN(bool present, found());
    if (present) return Status::Ok();
    pending_[*id] = Pending{at, static_cast<uint32_t>(plaintext.size())};
    if (collecting_) taken_up_.insert(*id);
    ++appends_;
    if (owner != 0) fresh_[*id] = owner;  // a writer without a name never releases
    pending_count = pending_.size();
  }
  if (inserted != nullptr) *inserted = true;
  if (pending_count > kMaxPendingChunks) MEDVFS_RETURN_IF_ERROR(MakeDurable());
  return Status::Ok();
}

Status ChunkStore::MakeDurable() {
  uint64_t wanted = 0;
  {
    std::lock_guard lock(mu_);
    wanted = appends_;
  }
  std::unique_lock lock(durable_mu_);
  while (true) {
    if (durable_appends_ >= wanted) return Status::Ok();
    if (!durable_running_) break;
    durable_cv_.wait(lock);
  }
  durable_running_ = true;
  lock.unlock();
  uint64_t target = 0;
  {
    std::lock_guard appends_lock(mu_);
    target = appends_;
  }
  Status s = packs_->Sync();
  if (s.ok()) s = IndexPending(/*durable_only=*/true);
  lock.lock();
  durable_running_ = false;
  if (s.ok()) durable_appends_ = std::max(durable_appends_, target);
  lock.unlock();
  durable_cv_.notify_all();
  return s;
}

std::function<bool(std::string_view key, std::string_view value)> ChunkStore::ReplayCheck(
    const SecretKey& data_key, const std::filesystem::path& packs_dir, rocksdb::Env* env,
    bool sync_packs, const std::map<uint64_t, uint64_t>& remote_sizes) {
  struct State {
    SecretKey seal_key;
    std::filesystem::path dir;
    std::shared_ptr<rocksdb::FileSystem> fs;
    bool sync_packs = false;
    std::map<uint64_t, uint64_t> sizes;  // pack -> file size (0: missing), synced once
    std::map<uint64_t, uint64_t> remote_sizes;
  };
  auto state = std::make_shared<State>();
  state->seal_key = DeriveSubkey(data_key, kChunkSealLabel);
  state->dir = packs_dir;
  state->fs = env != nullptr ? env->GetFileSystem() : rocksdb::FileSystem::Default();
  state->sync_packs = sync_packs;
  state->remote_sizes = remote_sizes;
  return [state](std::string_view key, std::string_view value) {
    if (key.size() != 1 + sizeof(ChunkId) || key[0] != kChunkIndexPrefix) return true;
    ChunkIndexRecord index;
    // A record that does not open is left for the archive's own checks to report.
    if (OpenSealedRecord(state->seal_key, key, value, &index) != RecordFault::kNone) return true;
    if (index.pack == 0) return true;  // schema 1: the chunk is in RocksDB itself
    auto it = state->sizes.find(index.pack);
    if (it == state->sizes.end()) {
      const std::string path = (state->dir / PackFileName(index.pack)).string();
      uint64_t size = 0;
      if (!state->fs->GetFileSize(path, rocksdb::IOOptions(), &size, nullptr).ok()) {
        auto remote = state->remote_sizes.find(index.pack);
        size = remote != state->remote_sizes.end() ? remote->second : 0;
      }
      if (size > 0 && state->sync_packs) {
        std::unique_ptr<rocksdb::FSWritableFile> file;
        if (state->fs->ReopenWritableFile(path, rocksdb::FileOptions(), &file, nullptr).ok()) {
          file->Sync(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
          file->Close(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
        }
      }
      it = state->sizes.emplace(index.pack, size).first;
    }
    return index.offset + index.stored_length <= it->second;
  };
}

Status ChunkStore::IndexWritten() {
  // Set before the records are written: a sync that starts once they are logged covers them.
  indexed_ahead_.store(true);
  return IndexPending(/*durable_only=*/false);
}

Status ChunkStore::SyncPacksIndexedAhead() {
  if (!indexed_ahead_.exchange(false)) return Status::Ok();
  Status s = packs_->Sync();
  if (!s.ok()) indexed_ahead_.store(true);
  return s;
}

Status ChunkStore::IndexPending(bool durable_only) {
  std::lock_guard index_lock(index_mu_);
  std::vector<std::pair<ChunkId, Pending>> to_index;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, pending] : pending_) {
      if (!durable_only || pending.at.end() <= packs_->DurableEnd(pending.at.pack))
        to_index.emplace_back(id, pending);
    }
  }
  std::map<uint64_t, PackRecord> changed;
  CountSealed(changed);
  if (to_index.empty() && changed.empty()) return Status::Ok();
  KvBatch batch;
  for (const auto& [id, pending] : to_index) {
    MEDVFS_RETURN_IF_ERROR(PutIndexed(batch, changed, id, pending.plain_length, pending.at));
  }
  MEDVFS_RETURN_IF_ERROR(WriteWithPackRecords(batch, changed));
  std::lock_guard lock(mu_);
  for (const auto& [id, pending] : to_index) {
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second.at.pack == pending.at.pack &&
        it->second.at.offset == pending.at.offset) {
      pending_.erase(it);
    }
  }
  return Status::Ok();
}

void ChunkStore::EndWriter(uint64_t owner) {
  packs_->EndWriter(owner);
  std::lock_guard lock(mu_);
  compression_skip_.erase(owner);
}

void ChunkStore::Settle(std::span<const ChunkId> ids) {
  std::lock_guard lock(mu_);
  for (const ChunkId& id : ids) fresh_.erase(id);
}

StatusOr<size_t> ChunkStore::ReleaseFresh(uint64_t owner, std::span<const ChunkId> ids) {
  std::lock_guard index_lock(index_mu_);
  std::lock_guard lock(mu_);
  KvBatch batch;
  std::vector<ChunkId> released;
  std::map<uint64_t, PackRecord> changed;
  for (const ChunkId& id : ids) {
    auto it = fresh_.find(id);
    if (it == fresh_.end()) continue;  // settled, or released already
    const bool owned = it->second == owner;
    fresh_.erase(it);
    if (!owned) continue;
    released.push_back(id);
    // Not indexed yet: forgetting it is all (its pack bytes were never live).
    if (pending_.erase(id) > 0) continue;
    DropIndexed(id, batch, changed);
  }
  if (released.empty()) return size_t{0};
  MEDVFS_RETURN_IF_ERROR(WriteWithPackRecords(batch, changed));
  ForgetCached(released);
  return released.size();
}

PackRecord& ChunkStore::ChangedRecord(std::map<uint64_t, PackRecord>& changed, uint64_t pack) {
  auto it = changed.find(pack);
  if (it != changed.end()) return it->second;
  PackRecord record = pack_records_.contains(pack) ? pack_records_[pack] : PackRecord{};
  record.pack = pack;
  return changed.emplace(pack, record).first->second;
}

Status ChunkStore::PutIndexed(KvBatch& batch, std::map<uint64_t, PackRecord>& changed,
                              const ChunkId& id, uint32_t plain_length, const PackLocation& at) {
  const std::string key = ChunkIndexKey(id);
  const ChunkIndexRecord index{plain_length, at.length, at.pack, at.offset};
  std::string sealed;
  MEDVFS_RETURN_IF_ERROR(SealRecord(seal_key_, key, Encode(index), &sealed));
  batch.Put(Family::kMeta, key, sealed);
  PackRecord& record = ChangedRecord(changed, at.pack);
  record.live_bytes += at.length;
  ++record.live_chunks;
  record.indexed_end = std::max(record.indexed_end, at.end());
  record.size = std::max(record.size, at.end());
  return Status::Ok();
}

void ChunkStore::CountSealed(std::map<uint64_t, PackRecord>& changed) {
  for (const auto& [pack, size] : packs_->TakeSealed()) {
    PackRecord& record = ChangedRecord(changed, pack);
    record.sealed = true;
    record.size = size;
  }
}

Status ChunkStore::WriteWithPackRecords(KvBatch& batch, std::map<uint64_t, PackRecord>& changed) {
  for (const auto& [pack, record] : changed) PutPackRecord(batch, record);
  if (batch.count() > 0) MEDVFS_RETURN_IF_ERROR(kv_->Write(batch, /*sync=*/false));
  for (auto& [pack, record] : changed) pack_records_[pack] = record;
  return Status::Ok();
}

bool ChunkStore::ReadIndexed(const ChunkId& id, ChunkIndexRecord* index) const {
  const std::string key = ChunkIndexKey(id);
  std::string value;
  return kv_->Get(Family::kMeta, key, &value).ok() &&
         OpenSealedRecord(seal_key_, key, value, index) == RecordFault::kNone;
}

uint64_t ChunkStore::DropIndexed(const ChunkId& id, KvBatch& batch,
                                 std::map<uint64_t, PackRecord>& changed) {
  ChunkIndexRecord index;
  if (!ReadIndexed(id, &index)) return 0;
  batch.Delete(Family::kMeta, ChunkIndexKey(id));
  if (index.pack == 0) {
    batch.Delete(Family::kChunks, LegacyChunkKey(id));
    return index.stored_length;
  }
  PackRecord& record = ChangedRecord(changed, index.pack);
  record.live_bytes -= std::min<uint64_t>(record.live_bytes, index.stored_length);
  if (record.live_chunks > 0) --record.live_chunks;
  return index.stored_length;
}

void ChunkStore::ForgetCached(std::span<const ChunkId> ids) {
  std::lock_guard cache_lock(cache_mu_);
  for (const ChunkId& id : ids) {
    auto it = cache_index_.find(id);
    if (it == cache_index_.end()) continue;
    cache_bytes_ -= it->second->second->size();
    lru_.erase(it->second);
    cache_index_.erase(it);
  }
}

Status ChunkStore::Locate(const ChunkId& id, PackLocation* at) {
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(id);
    if (it != pending_.end()) {
      *at = it->second.at;
      return Status::Ok();
    }
  }
  const std::string key = ChunkIndexKey(id);
  std::string value;
  Status s = kv_->Get(Family::kMeta, key, &value);
  if (s.code() == Code::kNotFound) {
    MEDVFS_LOG_ERROR("chunk %s is missing from the chunk index", ShortId(id).c_str());
    return Status::Corruption("a chunk is missing");
  }
  MEDVFS_RETURN_IF_ERROR(s);
  ChunkIndexRecord index;
  if (OpenSealedRecord(seal_key_, key, value, &index) != RecordFault::kNone) {
    MEDVFS_LOG_ERROR("the index record of chunk %s does not open", ShortId(id).c_str());
    return Status::Corruption("a chunk index record failed authentication");
  }
  *at = PackLocation{index.pack, index.offset, index.stored_length};
  return Status::Ok();
}

Status ChunkStore::Decode(const ChunkId& id, uint32_t expected_length, IdCheck id_check,
                          const PackEntryInfo& info, std::string payload,
                          std::string* plaintext) const {
  if (info.plain_length != expected_length) {
    MEDVFS_LOG_ERROR("chunk %s has another length than its reference", ShortId(id).c_str());
    return Status::Corruption("a chunk does not match its id");
  }
  if (info.encoding == kEncodingZstd) {
    Status s = Decompress(payload, expected_length, plaintext);
    if (!s.ok()) {
      MEDVFS_LOG_ERROR("chunk %s does not decompress", ShortId(id).c_str());
      return Status::Corruption("a chunk does not decompress");
    }
  } else if (info.encoding == kEncodingRaw) {
    *plaintext = std::move(payload);
  } else {
    return Status::Corruption("a chunk has an unknown encoding");
  }
  if (plaintext->size() != expected_length ||
      (id_check == IdCheck::kRecompute && IdOf(*plaintext) != id)) {
    MEDVFS_LOG_ERROR("chunk %s does not match its id", ShortId(id).c_str());
    return Status::Corruption("a chunk does not match its id");
  }
  return Status::Ok();
}

Status ChunkStore::ReadAndVerify(const ChunkId& id, uint32_t expected_length, IdCheck id_check,
                                 std::string* plaintext) {
  PackLocation at;
  MEDVFS_RETURN_IF_ERROR(Locate(id, &at));
  if (at.pack == 0) {
    MEDVFS_RETURN_IF_ERROR(ReadLegacy(id, expected_length, plaintext));
    if (id_check == IdCheck::kRecompute && IdOf(*plaintext) != id) {
      MEDVFS_LOG_ERROR("chunk %s does not match its id", ShortId(id).c_str());
      return Status::Corruption("a chunk does not match its id");
    }
    return Status::Ok();
  }
  PackEntryInfo info;
  std::string payload;
  Status s = packs_->Read(at, id, &info, &payload);
  if (s.code() == Code::kNotFound) {
    // Garbage collection may have moved the chunk and deleted its old pack between the
    // lookup and the read: the index then names the new place.
    PackLocation again;
    MEDVFS_RETURN_IF_ERROR(Locate(id, &again));
    if (again.pack != at.pack || again.offset != at.offset) {
      s = packs_->Read(again, id, &info, &payload);
      at = again;
    }
    if (s.code() == Code::kNotFound) {
      MEDVFS_LOG_ERROR("pack %llu is missing from the archive",
                       static_cast<unsigned long long>(at.pack));
      return Status::Corruption("a pack file is missing");
    }
  }
  if (!s.ok()) {
    if (s.code() == Code::kCorruption) {
      MEDVFS_LOG_ERROR("chunk %s failed authentication (altered or damaged)", ShortId(id).c_str());
      return Status::Corruption("a chunk failed authentication");
    }
    return s;
  }
  return Decode(id, expected_length, id_check, info, std::move(payload), plaintext);
}

Status ChunkStore::ReadLegacy(const ChunkId& id, uint32_t expected_length, std::string* plaintext) {
  std::string value;
  Status s = kv_->GetWithChecksums(Family::kChunks, LegacyChunkKey(id), &value);
  if (s.code() == Code::kNotFound) {
    MEDVFS_LOG_ERROR("chunk %s is missing from the archive", ShortId(id).c_str());
    return Status::Corruption("a chunk is missing");
  }
  MEDVFS_RETURN_IF_ERROR(s);
  if (value.size() < 2 || static_cast<uint8_t>(value[0]) != kLegacyChunkFormat) {
    MEDVFS_LOG_ERROR("chunk %s has an unknown format", ShortId(id).c_str());
    return Status::Corruption("a chunk has an unknown format");
  }
  PackEntryInfo info;
  info.id = id;
  info.plain_length = expected_length;
  info.encoding = static_cast<uint8_t>(value[1]);
  std::string payload;
  s = Unseal(seal_key_, LegacyChunkAad(id), std::string_view(value).substr(2), &payload);
  if (!s.ok()) {
    MEDVFS_LOG_ERROR("chunk %s failed authentication (altered or damaged)", ShortId(id).c_str());
    return Status::Corruption("a chunk failed authentication");
  }
  return Decode(id, expected_length, IdCheck::kSkip, info, std::move(payload), plaintext);
}

Status ChunkStore::Get(const ChunkId& id, uint32_t expected_length,
                       std::shared_ptr<const std::string>* out) {
  if (CacheLookup(id, out)) return Status::Ok();
  WaitForReadAhead(id);
  if (CacheLookup(id, out)) return Status::Ok();
  auto plaintext = std::make_shared<std::string>();
  MEDVFS_RETURN_IF_ERROR(ReadAndVerify(id, expected_length, IdCheck::kSkip, plaintext.get()));
  *out = plaintext;
  CacheInsert(id, std::move(plaintext));
  return Status::Ok();
}

Status ChunkStore::GetAndCheckId(const ChunkId& id, uint32_t expected_length,
                                 std::shared_ptr<const std::string>* out) {
  auto plaintext = std::make_shared<std::string>();
  MEDVFS_RETURN_IF_ERROR(ReadAndVerify(id, expected_length, IdCheck::kRecompute, plaintext.get()));
  *out = std::move(plaintext);
  return Status::Ok();
}

Status ChunkStore::SumStoredBytes(uint64_t* total) const {
  *total = 0;
  Status failed;
  MEDVFS_RETURN_IF_ERROR(
      kv_->Scan(Family::kMeta, std::string(1, kChunkIndexPrefix),
                [&](std::string_view key, std::string_view value) {
                  ChunkIndexRecord record;
                  switch (OpenSealedRecord(seal_key_, key, value, &record)) {
                    case RecordFault::kNone:
                      break;
                    case RecordFault::kUnknownFormat:
                      failed = Status::Corruption("a chunk index record has an unknown format");
                      return false;
                    case RecordFault::kAuthentication:
                      failed = Status::Corruption("authentication failed");
                      return false;
                    case RecordFault::kDecode:
                      failed = Status::Corruption("malformed chunk index record");
                      return false;
                  }
                  *total += record.stored_length;
                  return true;
                }));
  return failed;
}

bool ChunkStore::CacheLookup(const ChunkId& id, std::shared_ptr<const std::string>* out) {
  std::lock_guard lock(cache_mu_);
  auto it = cache_index_.find(id);
  if (it == cache_index_.end()) return false;
  lru_.splice(lru_.begin(), lru_, it->second);
  *out = it->second->second;
  return true;
}

void ChunkStore::CacheInsert(const ChunkId& id, std::shared_ptr<const std::string> chunk) {
  std::lock_guard lock(cache_mu_);
  if (cache_index_.contains(id)) return;
  cache_bytes_ += chunk->size();
  lru_.emplace_front(id, std::move(chunk));
  cache_index_[id] = lru_.begin();
  while (cache_bytes_ > cache_capacity_ && !lru_.empty()) {
    cache_bytes_ -= lru_.back().second->size();
    cache_index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

StatusOr<size_t> SettleCommitted(ChunkStore& chunks, uint64_t owner, std::vector<ChunkId> inserted,
                                 const ExtentList& content) {
  std::vector<ChunkId> referenced;
  referenced.reserve(content.extents().size());
  for (const Extent& extent : content.extents()) {
    if (!IsHole(extent)) referenced.push_back(extent.id);
  }
  std::sort(referenced.begin(), referenced.end());
  auto unreferenced = std::partition(inserted.begin(), inserted.end(), [&](const ChunkId& id) {
    return std::binary_search(referenced.begin(), referenced.end(), id);
  });
  chunks.Settle(std::span<const ChunkId>(inserted.data(),
                                         static_cast<size_t>(unreferenced - inserted.begin())));
  if (unreferenced == inserted.end()) return size_t{0};
  return chunks.ReleaseFresh(
      owner,
      std::span<const ChunkId>(&*unreferenced, static_cast<size_t>(inserted.end() - unreferenced)));
}

}  // namespace medvfs::store
