// ChunkStore: content chunks, stored once each, compressed then sealed.
// Internal to store/.
//
// A chunk's id is HMAC-SHA-256(id key, plaintext): equal chunks get equal ids (deduplication)
// but the id reveals nothing about the content to someone without the key. A stored chunk is
//   [format byte][encoding byte: 0 raw, 1 zstd][Seal(chunk key, aad = "chunk" || id, payload)]
// and a read checks the seal (whose additional data binds the id); `medvfs verify` also checks
// that the plaintext hashes to the id again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "store/crypto/crypto.h"
#include "store/engine/kv_store.h"
#include "store/engine/record_format.h"

namespace medvfs::store {

struct ChunkIdHash {
  size_t operator()(const ChunkId& id) const {
    size_t h = 0;
    static_assert(sizeof(h) <= sizeof(ChunkId));
    __builtin_memcpy(&h, id.data(), sizeof(h));
    return h;
  }
};

// An extent with the all-zero id is a hole: no chunk is stored for it and it reads as zeros
// (see ExtentList in store/engine/content.h). Nothing is ever read from or written to the chunk
// store for it.
inline bool IsHole(const Extent& extent) {
  for (uint8_t byte : extent.id) {
    if (byte != 0) return false;
  }
  return true;
}

class ChunkStore {
 public:
  // cache_bytes: plaintext chunks kept for reads. Default 32 MiB.
  ChunkStore(KvStore* kv, const SecretKey& data_key, uint64_t cache_bytes = 32ull << 20);
  // Stops the read-ahead threads (waiting for the reads they are doing).
  ~ChunkStore();
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  ChunkId IdOf(std::string_view plaintext) const;
  // Stores the chunk unless an equal one is stored already. Not synced: the commit that
  // references the chunk syncs the log, which makes every earlier write durable.
  // `owner` names the writer (PendingContent::owner(), 0 for none); *inserted (if given) is
  // set to whether this call stored the chunk. A chunk a named writer stored stays "fresh"
  // (owned by it) until Settle; a Put of it by any other owner marks it shared.
  Status Put(std::string_view plaintext, ChunkId* id, uint64_t owner = 0, bool* inserted = nullptr);
  // The commit that references these chunks is written: they are no longer fresh.
  void Settle(std::span<const ChunkId> ids);
  // Deletes those of `ids` that are still fresh, owned by `owner` and never shared: nothing
  // else can reference them (the chunks of a file deleted before a commit kept them). The
  // others are left alone. Returns how many were deleted.
  StatusOr<size_t> ReleaseFresh(uint64_t owner, std::span<const ChunkId> ids);
  // Reads a chunk (through the cache). kCorruption if it fails authentication, does not
  // decompress or has the wrong length. Authentication suffices to serve it: the seal's
  // additional data binds the id, so only a holder of the key could have stored other bytes
  // under it.
  Status Get(const ChunkId& id, uint32_t expected_length, std::shared_ptr<const std::string>* out);
  // Get for `medvfs verify`: bypasses the cache, has RocksDB check the blob's checksum, and
  // recomputes the keyed hash, which catches a chunk sealed under the wrong id (a bug in a
  // writer that had the key).
  Status GetAndCheckId(const ChunkId& id, uint32_t expected_length,
                       std::shared_ptr<const std::string>* out);
  // Reads these chunks into the cache in the background, several at once, so that a
  // sequential reader finds the next chunks ready: chunk keys are hashes, so a file's chunks
  // lie in random order in the blob files and each read is a random read on the disk. Chunks
  // already cached or queued are skipped; at most kMaxQueuedReads wait, the rest are dropped
  // (read-ahead is a hint). Errors are left for the reader's own Get to report.
  void ReadAhead(std::span<const Extent> extents);
  static constexpr size_t kReadAheadThreads = 4;
  static constexpr size_t kMaxQueuedReads = 64;

  // Sealed bytes of chunks stored by this process (a statistic).
  uint64_t bytes_written() const { return bytes_written_; }
  // Sum of the sealed sizes of every stored chunk, from the chunk index.
  Status SumStoredBytes(uint64_t* total) const;

 private:
  enum class IdCheck { kSkip, kRecompute };
  Status ReadAndVerify(const ChunkId& id, uint32_t expected_length, IdCheck id_check,
                       std::string* plaintext);
  void CacheInsert(const ChunkId& id, std::shared_ptr<const std::string> chunk);
  void ReadAheadLoop();

  KvStore* kv_;
  SecretKey id_key_;
  SecretKey seal_key_;
  uint64_t cache_capacity_;
  std::atomic<uint64_t> bytes_written_{0};

  // Lock order: after any ArchiveImpl lock (leaf lock).
  std::mutex cache_mu_;
  using LruList = std::list<std::pair<ChunkId, std::shared_ptr<const std::string>>>;
  LruList lru_;  // GUARDED_BY(cache_mu_), most recent first
  std::unordered_map<ChunkId, LruList::iterator, ChunkIdHash>
      cache_index_;           // GUARDED_BY(cache_mu_)
  uint64_t cache_bytes_ = 0;  // GUARDED_BY(cache_mu_)

  // Chunks stored by this process and not yet settled by a commit: id -> owner, or
  // kSharedOwner once another owner's Put returned it. Lock order: before cache_mu_, after
  // any ArchiveImpl lock.
  static constexpr uint64_t kSharedOwner = UINT64_MAX;
  std::mutex fresh_mu_;
  std::unordered_map<ChunkId, uint64_t, ChunkIdHash> fresh_;  // GUARDED_BY(fresh_mu_)

  // Read-ahead. Lock order: a leaf lock, never held with cache_mu_.
  std::mutex read_ahead_mu_;
  std::condition_variable read_ahead_cv_;
  std::deque<Extent> read_ahead_queue_;                          // GUARDED_BY(read_ahead_mu_)
  std::unordered_set<ChunkId, ChunkIdHash> read_ahead_pending_;  // GUARDED_BY(read_ahead_mu_)
  bool stopping_ = false;                                        // GUARDED_BY(read_ahead_mu_)
  std::vector<std::thread> read_ahead_threads_;                  // started by the first ReadAhead
};

}  // namespace medvfs::store
