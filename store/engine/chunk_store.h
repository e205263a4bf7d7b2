// ChunkStore: content chunks, stored once each, compressed, sealed and appended to pack files
// (PackStore); RocksDB keeps the chunk index (chunk id -> pack, offset, length) and one record
// per pack (its live bytes, for garbage collection). Internal to store/.
//
// A chunk's id is HMAC-SHA-256(id key, plaintext): equal chunks get equal ids (deduplication)
// but the id reveals nothing about the content to someone without the key. A read checks the
// entry's seal (whose additional data binds the id, the pack and the offset); `medvfs verify`
// also checks that the plaintext hashes to the id again.
//
// The index refers to an entry only once its bytes are durable (MakeDurable: the packs are
// synced, then the index batch is written, before the commit's own batch, in the same
// write-ahead log). Until then a chunk is "pending": known to this process only.
// Archives written before packs (schema 1) hold their chunks in RocksDB's "chunks" family;
// their index records name no pack, and those chunks are read from there.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
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
#include "store/engine/pack_store.h"
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

struct ChunkStoreOptions {
  // The archive's packs/ directory, and how packs are written (read_only: nothing is).
  std::filesystem::path packs_dir;
  PackStoreOptions packs;
  // Plaintext chunks kept for reads. Default 32 MiB.
  uint64_t cache_bytes = 32ull << 20;
};

// What the open found in the packs that were taking appends when the archive was last closed
// (or its daemon died): orphans (whole entries the index never took: written for a commit
// that did not happen) and torn bytes cut off.
struct PackRecoverySummary {
  uint32_t packs = 0;
  uint64_t orphan_entries = 0;
  uint64_t orphan_bytes = 0;
  uint64_t cut_bytes = 0;
  bool empty() const { return orphan_entries == 0 && cut_bytes == 0; }
};

class ChunkStore {
 public:
  // Opens the packs (recovering those that were taking appends: see PackStore::Open) and
  // loads the pack records.
  static StatusOr<std::unique_ptr<ChunkStore>> Open(KvStore* kv, const SecretKey& data_key,
                                                    const ChunkStoreOptions& options);
  // Stops the read-ahead threads (waiting for the reads they are doing).
  ~ChunkStore();
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  const PackRecoverySummary& recovery() const { return recovery_; }

  ChunkId IdOf(std::string_view plaintext) const;
  // Stores the chunk unless an equal one is stored already: appends it to a pack (not
  // synced: see MakeDurable). kNoSpace (and nothing written) when the disk would fall below
  // the database's free-space reserve (KvOpenOptions::reserved_bytes).
  // `owner` names the writer (PendingContent::owner(), 0 for none); *inserted (if given) is
  // set to whether this call stored the chunk. A chunk a named writer stored stays "fresh"
  // (owned by it) until Settle; a Put of it by any other owner marks it shared.
  Status Put(std::string_view plaintext, ChunkId* id, uint64_t owner = 0, bool* inserted = nullptr);
  // Makes every chunk Put before the call durable and indexed: syncs the packs that took
  // appends, then writes their index records (not syncing the log: the commit that follows
  // does, and the log is sequential). Concurrent callers share one sync. A commit calls this
  // before writing the batch that references its chunks.
  Status MakeDurable();
  // A commit within a commit interval (ArchiveOptions::commit_interval_ms) calls this instead
  // of MakeDurable: the index records of every chunk Put before the call are written now,
  // while their pack bytes are only written (write(2): a killed process loses nothing). The
  // packs are synced before anything logged after them becomes durable (the hook this store
  // sets with KvStore::SetBeforeDurable), and after a power loss the open drops the commits
  // whose pack bytes did not reach the disk, and every change after them (ReplayCheck): the
  // archive keeps a prefix of its commits.
  Status IndexWritten();
  // The check for KvOpenOptions::replay_check: refuses a logged chunk index record whose pack
  // entry is not (wholly) in its pack file. With `sync_packs` (a writable open), every pack
  // file a record names is synced once, before the recovery writes the records into table
  // files. `env`: the FileSystem to use (null: the default). `remote_sizes`: sealed packs
  // that are in an S3 bucket and may be missing here (pack -> size), taken as present.
  static std::function<bool(std::string_view key, std::string_view value)> ReplayCheck(
      const SecretKey& data_key, const std::filesystem::path& packs_dir, rocksdb::Env* env,
      bool sync_packs, const std::map<uint64_t, uint64_t>& remote_sizes = {});
  // The writer is done (its last handle closed): its pack may go to another writer.
  void EndWriter(uint64_t owner);
  // The commit that references these chunks is written: they are no longer fresh.
  void Settle(std::span<const ChunkId> ids);
  // Drops those of `ids` that are still fresh, owned by `owner` and never shared: nothing
  // else can reference them (the chunks of a file deleted before a commit kept them). The
  // others are left alone. Their index records go (their pack bytes become garbage, counted
  // out of the pack's live bytes). Returns how many were dropped.
  StatusOr<size_t> ReleaseFresh(uint64_t owner, std::span<const ChunkId> ids);
  // Reads a chunk (through the cache). kCorruption if it fails authentication, does not
  // decompress or has the wrong length. Authentication suffices to serve it: the seal's
  // additional data binds the id, so only a holder of the key could have stored other bytes
  // under it.
  Status Get(const ChunkId& id, uint32_t expected_length, std::shared_ptr<const std::string>* out);
  // Get for `medvfs verify`: bypasses the cache and recomputes the keyed hash, which catches a
  // chunk sealed under the wrong id (a bug in a writer that had the key).
  Status GetAndCheckId(const ChunkId& id, uint32_t expected_length,
                       std::shared_ptr<const std::string>* out);
  // Reads these chunks into the cache in the background, several at once, so that a
  // sequential reader finds the next chunks ready. Chunks that lie next to each other in a
  // pack (a file's chunks, written in order) are read with one read. Chunks already cached or
  // queued are skipped; at most kMaxQueuedReads wait, the rest are dropped (read-ahead is a
  // hint). Errors are left for the reader's own Get to report.
  void ReadAhead(std::span<const Extent> extents);
  static constexpr size_t kReadAheadThreads = 2;
  static constexpr size_t kMaxQueuedReads = 64;
  // Queued chunks one read-ahead thread takes at once (and reads as few runs as it can).
  static constexpr size_t kReadAheadBatch = 8;

  // --- Garbage collection (chunk_gc.cc; the archive decides what is referenced) ---
  // From BeginCollection to EndCollection every chunk Put hands out (stored now, or found
  // stored already) is remembered, so that a chunk a writer takes up after the collector's
  // mark is never dropped. One collection at a time.
  void BeginCollection();
  void EndCollection();
  // Calls visit for every chunk index record, in key order, until it returns false.
  // kCorruption for a record that does not open.
  Status ScanIndex(
      const std::function<bool(const ChunkId& id, const ChunkIndexRecord& record)>& visit) const;
  struct DropResult {
    uint64_t chunks = 0;
    uint64_t bytes = 0;  // stored bytes of the dropped chunks' pack entries
  };
  // Drops the index records of `unreferenced` (chunks the collector's mark did not reach),
  // except those taken up since BeginCollection and those still fresh or pending: their pack
  // bytes become garbage, counted out of their packs' live bytes. An id no longer indexed is
  // skipped. Written in batches (not synced: the next commit or sync makes them durable).
  StatusOr<DropResult> DropUnreferenced(std::span<const ChunkId> unreferenced);
  struct RepackOptions {
    // Bytes per second read from the old packs and written to the new ones together (0: no
    // limit), so that clients keep the disk.
    uint64_t rate_bytes_per_s = 0;
    // Called with the live bytes copied so far.
    std::function<void(uint64_t bytes_copied)> progress;
    // Polled between entries: true stops the rewrite (what is copied by then is kept).
    std::function<bool()> cancelled;
  };
  struct RepackResult {
    uint64_t packs_removed = 0;  // packs whose files were deleted
    uint64_t packs_skipped = 0;  // packs left as they were (damaged, or changed meanwhile)
    uint64_t chunks_copied = 0;  // live entries copied to new packs
    uint64_t bytes_copied = 0;   // their stored bytes
    uint64_t bytes_removed = 0;  // sizes of the deleted pack files
    bool cancelled = false;
  };
  // Rewrites sealed packs: each pack's live entries (those the index names) are read,
  // authenticated and appended to new packs, which are synced; then, in one batch, the index
  // records move to the copies and the old pack's record is marked removed; the log is
  // synced and the memory tables flushed (no log to be replayed still names the old pack);
  // then the old file is deleted. A crash at any point leaves either the old pack in use
  // (the copies are orphans) or the new one (and the next open deletes the old file).
  // A pack with an entry that fails authentication, or one that gained index records the
  // rewrite did not copy, is left as it is (packs_skipped).
  StatusOr<RepackResult> Repack(std::span<const uint64_t> packs, const RepackOptions& options);
  // Seals those of `packs` that still take appends (PackStore::Seal) and records them
  // sealed, so that Repack may rewrite them.
  Status SealPacks(std::span<const uint64_t> packs);
  // The writer name garbage collection appends under (never a PendingContent's).
  static constexpr uint64_t kCollectorWriter = UINT64_MAX - 1;

  // Sealed bytes of chunks stored by this process (a statistic).
  uint64_t bytes_written() const { return bytes_written_; }
  // Sum of the stored sizes of every indexed chunk, from the chunk index.
  Status SumStoredBytes(uint64_t* total) const;
  // The pack records (live bytes per pack), by pack number.
  std::map<uint64_t, PackRecord> PackRecords() const;
  PackStore& packs() { return *packs_; }

 private:
  ChunkStore(KvStore* kv, const SecretKey& data_key, uint64_t cache_bytes);
  enum class IdCheck { kSkip, kRecompute };
  struct Pending {
    PackLocation at;
    uint32_t plain_length = 0;
  };
  // Where the chunk is: pending in this process, or from the index. kCorruption when the
  // index has no record of it (a chunk a version references is missing).
  Status Locate(const ChunkId& id, PackLocation* at);
  Status ReadAndVerify(const ChunkId& id, uint32_t expected_length, IdCheck id_check,
                       std::string* plaintext);
  Status ReadLegacy(const ChunkId& id, uint32_t expected_length, std::string* plaintext);
  Status Decode(const ChunkId& id, uint32_t expected_length, IdCheck id_check,
                const PackEntryInfo& info, std::string payload, std::string* plaintext) const;
  // Writes the index records of the pending chunks whose bytes are durable now (all pending
  // chunks with `durable_only` false).
  Status IndexPending(bool durable_only);
  // KvStore's before-durable hook: syncs the packs if IndexWritten indexed chunks since the
  // last sync.
  Status SyncPacksIndexedAhead();
  Status LoadPackRecords();
  void PutPackRecord(KvBatch& batch, const PackRecord& record) const;
  // The pack record bookkeeping every index write shares. REQUIRES: index_mu_ held (all four).
  // The record of `pack` in `changed`, copied from pack_records_ the first time.
  PackRecord& ChangedRecord(std::map<uint64_t, PackRecord>& changed, uint64_t pack);
  // Puts the index record of chunk `id` at `at` in `batch` and counts the entry as live in its
  // pack's record.
  Status PutIndexed(KvBatch& batch, std::map<uint64_t, PackRecord>& changed, const ChunkId& id,
                    uint32_t plain_length, const PackLocation& at);
  // Marks the packs sealed since the last call (PackStore::TakeSealed) sealed, with their sizes.
  void CountSealed(std::map<uint64_t, PackRecord>& changed);
  // Puts the changed pack records in `batch`, writes it (if it holds anything) and makes them
  // the known ones.
  Status WriteWithPackRecords(KvBatch& batch, std::map<uint64_t, PackRecord>& changed);
  // The index record of `id`; false when there is none or it does not open.
  bool ReadIndexed(const ChunkId& id, ChunkIndexRecord* index) const;
  // Deletes the index record of `id` (and, schema 1, its value) in `batch` and counts its
  // entry out of its pack's record in `changed`. Returns the entry's stored length, 0 when
  // the chunk is not indexed (or its record does not open: verify reports that).
  // REQUIRES: index_mu_ held.
  uint64_t DropIndexed(const ChunkId& id, KvBatch& batch, std::map<uint64_t, PackRecord>& changed);
  void ForgetCached(std::span<const ChunkId> ids);
  struct MovedEntry {
    ChunkId id{};
    uint64_t old_offset = 0;
    PackLocation now;
    uint32_t plain_length = 0;
  };
  struct CopiedPack {
    uint64_t pack = 0;
    std::vector<MovedEntry> moved;
  };
  // Repack's two halves: copying one pack's live entries, and switching the index over to
  // the copies of a group of packs (then deleting the old files).
  Status CopyLiveEntries(uint64_t pack, std::vector<MovedEntry>* entries,
                         const RepackOptions& options, class RateLimit& limit,
                         RepackResult* result);
  Status SwitchToCopies(std::vector<CopiedPack>& group, RepackResult* result);
  // The cached plaintext of `id` (made most recently used), if cached.
  bool CacheLookup(const ChunkId& id, std::shared_ptr<const std::string>* out);
  void CacheInsert(const ChunkId& id, std::shared_ptr<const std::string> chunk);
  void ReadAheadLoop();
  void ReadAheadBatch(const std::vector<Extent>& batch);
  // A reader's Get that missed the cache: if a read-ahead thread is reading `id` right now,
  // waits for it (reading the same bytes twice was a fifth of a cold read's pack reads); if
  // `id` is only queued, takes it off the queue (the reader reads it at once).
  void WaitForReadAhead(const ChunkId& id);

  KvStore* kv_;
  KeyedHmacSha256 id_mac_;  // names chunks (ChunkId)
  SecretKey seal_key_;
  uint64_t cache_capacity_;
  std::unique_ptr<PackStore> packs_;
  PackRecoverySummary recovery_;
  std::atomic<uint64_t> bytes_written_{0};

  // Lock order: after any ArchiveImpl lock (leaf lock).
  std::mutex cache_mu_;
  using LruList = std::list<std::pair<ChunkId, std::shared_ptr<const std::string>>>;
  LruList lru_;  // GUARDED_BY(cache_mu_), most recent first
  std::unordered_map<ChunkId, LruList::iterator, ChunkIdHash>
      cache_index_;           // GUARDED_BY(cache_mu_)
  uint64_t cache_bytes_ = 0;  // GUARDED_BY(cache_mu_)

  // Index writes (IndexDurable, ReleaseFresh) and the pack records. Lock order: before mu_.
  mutable std::mutex index_mu_;
  std::map<uint64_t, PackRecord> pack_records_;  // GUARDED_BY(index_mu_)

  // Chunks stored by this process and not yet settled by a commit: id -> owner, or
  // kSharedOwner once another owner's Put returned it; and the chunks not yet indexed.
  // Lock order: before cache_mu_, after index_mu_ and any ArchiveImpl lock.
  static constexpr uint64_t kSharedOwner = UINT64_MAX;
  std::mutex mu_;
  std::unordered_map<ChunkId, uint64_t, ChunkIdHash> fresh_;   // GUARDED_BY(mu_)
  std::unordered_map<ChunkId, Pending, ChunkIdHash> pending_;  // GUARDED_BY(mu_)
  uint64_t appends_ = 0;                                       // GUARDED_BY(mu_)
  // After a writer's chunk does not compress (encrypted, already compressed or noise-like
  // bytes), its next chunks skip zstd for a while, 1, 2, 4 ... up to kMaxCompressionSkip
  // chunks, then try again: zstd failing on such data was a fifth of a write's CPU.
  struct CompressionSkip {
    uint32_t remaining = 0;  // chunks still to store without trying zstd
    uint32_t backoff = 0;    // the length of the last skip
  };
  std::unordered_map<uint64_t, CompressionSkip> compression_skip_;  // GUARDED_BY(mu_)
  // Garbage collection (BeginCollection): the chunks Put handed out since it began.
  bool collecting_ = false;                            // GUARDED_BY(mu_)
  std::unordered_set<ChunkId, ChunkIdHash> taken_up_;  // GUARDED_BY(mu_)

  // One MakeDurable at a time; the others wait for it and return if it covered them.
  std::mutex durable_mu_;
  std::condition_variable durable_cv_;
  bool durable_running_ = false;  // GUARDED_BY(durable_mu_)
  uint64_t durable_appends_ = 0;  // GUARDED_BY(durable_mu_): appends_ the last sync covered
  // IndexWritten indexed chunks whose pack bytes no sync has covered yet.
  std::atomic<bool> indexed_ahead_{false};
  bool hook_set_ = false;  // the KvStore hook is this store's (a writable open)

  // Read-ahead. Lock order: a leaf lock, never held with cache_mu_.
  std::mutex read_ahead_mu_;
  std::condition_variable read_ahead_cv_;
  std::condition_variable read_ahead_done_cv_;  // a batch finished: see WaitForReadAhead
  std::deque<Extent> read_ahead_queue_;         // GUARDED_BY(read_ahead_mu_)
  std::unordered_set<ChunkId, ChunkIdHash> read_ahead_pending_;  // GUARDED_BY(read_ahead_mu_)
  bool stopping_ = false;                                        // GUARDED_BY(read_ahead_mu_)
  std::vector<std::thread> read_ahead_threads_;                  // started by the first ReadAhead
};

}  // namespace medvfs::store
