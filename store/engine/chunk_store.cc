#include "store/engine/chunk_store.h"

#include <algorithm>

#include "store/crypto/compress.h"
#include "store/crypto/sealed_record.h"
#include "store/crypto/subkeys.h"
#include "store/engine/chunk_settle.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

constexpr uint8_t kChunkFormat = 1;
constexpr uint8_t kEncodingRaw = 0;
constexpr uint8_t kEncodingZstd = 1;
constexpr int kZstdLevel = 3;

std::string ChunkAad(const ChunkId& id) {
  std::string aad = "chunk";
  aad.append(reinterpret_cast<const char*>(id.data()), id.size());
  return aad;
}

std::string ChunkKey(const ChunkId& id) {
  return std::string(reinterpret_cast<const char*>(id.data()), id.size());
}

}  // namespace

ChunkStore::ChunkStore(KvStore* kv, const SecretKey& data_key, uint64_t cache_bytes)
    : kv_(kv),
      id_key_(DeriveSubkey(data_key, kChunkIdLabel)),
      seal_key_(DeriveSubkey(data_key, kChunkSealLabel)),
      cache_capacity_(cache_bytes) {}

ChunkStore::~ChunkStore() {
  {
    std::lock_guard lock(read_ahead_mu_);
    stopping_ = true;
  }
  read_ahead_cv_.notify_all();
  for (std::thread& thread : read_ahead_threads_) thread.join();
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
    const Extent extent = read_ahead_queue_.front();
    read_ahead_queue_.pop_front();
    lock.unlock();
    std::shared_ptr<const std::string> ignored;
    Get(extent.id, extent.length, &ignored).IgnoreError();  // the reader reports
    lock.lock();
    read_ahead_pending_.erase(extent.id);
  }
}

ChunkId ChunkStore::IdOf(std::string_view plaintext) const {
  return HmacSha256(id_key_, plaintext);
}

Status ChunkStore::Put(std::string_view plaintext, ChunkId* id, uint64_t owner, bool* inserted) {
  *id = IdOf(plaintext);
  if (inserted != nullptr) *inserted = false;
  const std::string index_key = ChunkIndexKey(*id);
  // Stored already (the common case of an unchanged chunk): nothing to seal. The check and
  // the mark are one step under fresh_mu_, so ReleaseFresh never deletes a chunk handed out.
  auto found = [&]() -> StatusOr<bool> {
    MEDVFS_ASSIGN_OR_RETURN(bool present, kv_->Contains(Family::kMeta, index_key));
    if (!present) return false;
    auto it = fresh_.find(*id);
    if (it != fresh_.end() && it->second != owner) it->second = kSharedOwner;
    return true;
  };
  {
    std::lock_guard lock(fresh_mu_);
    MEDVFS_ASSIGN_OR_RETURN(bool present, found());
    if (present) return Status::Ok();
  }

  std::string compressed;
  MEDVFS_RETURN_IF_ERROR(Compress(plaintext, kZstdLevel, &compressed));
  const bool use_zstd = compressed.size() < plaintext.size();
  std::string value;
  value.reserve(2 + kSealOverhead + plaintext.size());
  value.push_back(static_cast<char>(kChunkFormat));
  value.push_back(static_cast<char>(use_zstd ? kEncodingZstd : kEncodingRaw));
  MEDVFS_RETURN_IF_ERROR(Seal(seal_key_, ChunkAad(*id), use_zstd ? compressed : plaintext, &value));

  ChunkIndexRecord index{static_cast<uint32_t>(plaintext.size()),
                         static_cast<uint32_t>(value.size())};
  std::string sealed_index;
  MEDVFS_RETURN_IF_ERROR(SealRecord(seal_key_, index_key, Encode(index), &sealed_index));

  KvBatch batch;
  batch.Put(Family::kChunks, ChunkKey(*id), value);
  batch.Put(Family::kMeta, index_key, sealed_index);
  std::lock_guard lock(fresh_mu_);
  MEDVFS_ASSIGN_OR_RETURN(bool present, found());  // stored meanwhile by another writer
  if (present) return Status::Ok();
  MEDVFS_RETURN_IF_ERROR(kv_->Write(batch, /*sync=*/false));
  if (owner != 0) fresh_[*id] = owner;  // a writer without a name never releases
  bytes_written_ += value.size();
  if (inserted != nullptr) *inserted = true;
  return Status::Ok();
}

void ChunkStore::Settle(std::span<const ChunkId> ids) {
  std::lock_guard lock(fresh_mu_);
  for (const ChunkId& id : ids) fresh_.erase(id);
}

StatusOr<size_t> ChunkStore::ReleaseFresh(uint64_t owner, std::span<const ChunkId> ids) {
  std::lock_guard lock(fresh_mu_);
  KvBatch batch;
  std::vector<ChunkId> released;
  for (const ChunkId& id : ids) {
    auto it = fresh_.find(id);
    if (it == fresh_.end()) continue;  // settled, or released already
    if (it->second == owner) {
      batch.Delete(Family::kChunks, ChunkKey(id));
      batch.Delete(Family::kMeta, ChunkIndexKey(id));
      released.push_back(id);
    }
    fresh_.erase(it);
  }
  if (released.empty()) return size_t{0};
  MEDVFS_RETURN_IF_ERROR(kv_->Write(batch, /*sync=*/false));
  std::lock_guard cache_lock(cache_mu_);
  for (const ChunkId& id : released) {
    auto it = cache_index_.find(id);
    if (it == cache_index_.end()) continue;
    cache_bytes_ -= it->second->second->size();
    lru_.erase(it->second);
    cache_index_.erase(it);
  }
  return released.size();
}

Status ChunkStore::ReadAndVerify(const ChunkId& id, uint32_t expected_length, IdCheck id_check,
                                 std::string* plaintext) {
  std::string value;
  Status s = id_check == IdCheck::kRecompute
                 ? kv_->GetWithChecksums(Family::kChunks, ChunkKey(id), &value)
                 : kv_->Get(Family::kChunks, ChunkKey(id), &value);
  if (s.code() == Code::kNotFound) {
    MEDVFS_LOG_ERROR("chunk %s is missing from the archive", HexEncode(id).substr(0, 16).c_str());
    return Status::Corruption("a chunk is missing");
  }
  MEDVFS_RETURN_IF_ERROR(s);
  if (value.size() < 2 || static_cast<uint8_t>(value[0]) != kChunkFormat) {
    MEDVFS_LOG_ERROR("chunk %s has an unknown format", HexEncode(id).substr(0, 16).c_str());
    return Status::Corruption("a chunk has an unknown format");
  }
  const uint8_t encoding = static_cast<uint8_t>(value[1]);
  std::string payload;
  s = Unseal(seal_key_, ChunkAad(id), std::string_view(value).substr(2), &payload);
  if (!s.ok()) {
    MEDVFS_LOG_ERROR("chunk %s failed authentication (altered or damaged)",
                     HexEncode(id).substr(0, 16).c_str());
    return Status::Corruption("a chunk failed authentication");
  }
  if (encoding == kEncodingZstd) {
    s = Decompress(payload, expected_length, plaintext);
    if (!s.ok()) {
      MEDVFS_LOG_ERROR("chunk %s does not decompress", HexEncode(id).substr(0, 16).c_str());
      return Status::Corruption("a chunk does not decompress");
    }
  } else if (encoding == kEncodingRaw) {
    *plaintext = std::move(payload);
  } else {
    return Status::Corruption("a chunk has an unknown encoding");
  }
  if (plaintext->size() != expected_length ||
      (id_check == IdCheck::kRecompute && IdOf(*plaintext) != id)) {
    MEDVFS_LOG_ERROR("chunk %s does not match its id", HexEncode(id).substr(0, 16).c_str());
    return Status::Corruption("a chunk does not match its id");
  }
  return Status::Ok();
}

Status ChunkStore::Get(const ChunkId& id, uint32_t expected_length,
                       std::shared_ptr<const std::string>* out) {
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_index_.find(id);
    if (it != cache_index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      *out = it->second->second;
      return Status::Ok();
    }
  }
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
