// File content as a list of chunks, and the pending state of a file being written.
// Internal to store/.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "store/crypto/crypto.h"
#include "store/engine/chunk_store.h"
#include "store/engine/chunker.h"
#include "store/engine/record_format.h"

namespace medvfs::store {

// The largest file size: 256 GiB. A version's extent list is held whole in memory while it
// is open or read (~44 bytes per 64 KiB chunk: 176 MiB at 256 GiB, most of the daemon's
// memory budget), so larger sizes are refused with kTooBig (EFBIG) at once.
inline constexpr uint64_t kMaxFileSize = uint64_t{1} << 38;
// The longest single hole extent: 2 GiB (the largest hole is 128 extents, one extent group).
inline constexpr uint32_t kMaxHoleExtent = uint32_t{1} << 31;

// A mount-wide bound on the written bytes held in memory and not yet stored: the overlay pages
// of files written in place and the queued pipelined appends, over every open file (the
// per-file caps alone would let a thousand open files hold a thousand times as much). A
// writer that finds no room stores its bytes at once instead of holding them (a checkpoint of
// its overlay, or an append stored on its own thread): slower, never blocked, never lost.
// Thread-safe.
class DirtyBudget {
 public:
  explicit DirtyBudget(uint64_t limit) : limit_(limit) {}
  // Takes `bytes` if they fit under the limit.
  bool TryTake(uint64_t bytes) {
    uint64_t used = used_.load();
    do {
      if (used + bytes > limit_) return false;
    } while (!used_.compare_exchange_weak(used, used + bytes));
    return true;
  }
  void Give(uint64_t bytes) { used_.fetch_sub(bytes); }
  uint64_t used() const { return used_.load(); }
  uint64_t limit() const { return limit_; }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

// The chunks of one content, in order, with their offsets. ~40 bytes per 64 KiB chunk.
// Holes (IsHole: zeros never written as chunks) are extents too.
class ExtentList {
 public:
  void Append(const Extent& extent);
  // Appends `length` bytes of hole, as extents of at most kMaxHoleExtent bytes.
  void AppendHole(uint64_t length);
  void Clear();
  uint64_t size() const { return size_; }
  const std::vector<Extent>& extents() const { return extents_; }
  // Index of the extent holding `offset`. REQUIRES: offset < size().
  size_t IndexAt(uint64_t offset) const;
  uint64_t StartOf(size_t index) const { return starts_[index]; }

 private:
  std::vector<Extent> extents_;
  std::vector<uint64_t> starts_;
  uint64_t size_ = 0;
};

// Reads [offset, offset + out.size()) of the content, clipped to its size. Returns bytes read.
StatusOr<size_t> ReadExtents(ChunkStore& chunks, const ExtentList& list, uint64_t offset,
                             std::span<char> out);

// A commit defers a content's SHA-256 (VersionInfo::sha256_deferred) when more than this many
// of its bytes are hole: 64 MiB of zeros cost ~50 ms to hash, about what writing a few MiB
// costs anyway, while a `truncate -s 200G` would cost minutes of CPU in the commit. Below it,
// the digest is computed at once, as before.
inline constexpr uint64_t kMaxHashedHoleBytes = uint64_t{64} << 20;
// Likewise a commit of content written in place (random writes: the overlay), whose digest
// would mean reading every stored byte of the file back, defers it when the file holds more
// than this many stored bytes: a header edit of a 2 GB multi-frame DICOM then costs what the
// edit changed, not a 2 GB read. A streaming writer hashes as the bytes arrive and never
// defers.
inline constexpr uint64_t kMaxRehashedBytes = uint64_t{64} << 20;

// Bytes of `list` that are hole (an O(extent count) walk).
uint64_t HoleBytes(const ExtentList& list);

// SHA-256 of the whole content: stored bytes read, holes hashed as zeros. `cancelled` (may be
// empty) is polled between pieces of at most 1 MiB; when it returns true the hash stops with
// kBusy.
Status HashExtents(ChunkStore& chunks, const ExtentList& list,
                   const std::function<bool()>& cancelled, Sha256Digest* sha256);

// Whether two contents are the same bytes, by walking both extent lists together: different
// sizes differ; ranges where both are holes, or where both hold the same chunk at the same
// place in it, are equal without reading; the rest is read and compared (a hole against data:
// the data must be all zeros). Reads at most the stored bytes of both, never the holes.
StatusOr<bool> SameContent(ChunkStore& chunks, const ExtentList& a, const ExtentList& b);

// The content of a file while handles write to it: the committed (or checkpointed) chunks
// as a base, plus either a streaming tail (a sequential writer: chunks are cut and stored as
// the bytes arrive) or an overlay of modified 64 KiB pages (random writes). Memory stays
// bounded: the streaming tail holds at most one chunk; the overlay is chunked and stored
// ("checkpointed") when it exceeds the dirty-bytes cap.
// Not thread-safe; the owner serialises calls.
//
// Pipelined appends: a streaming append of at least kPipelinedWriteBytes is copied into a
// bounded queue (kMaxQueuedBytes) and Write returns; a worker thread of this object chunks,
// hashes, seals and stores the queued bytes in order, so the writer's next bytes cross FUSE
// while the last ones are stored, on the other core. Every other call first waits for the
// queue to empty. A failure of a queued append is reported by the next call (a later Write,
// or the Finalize of the flush, fsync or close), as the kernel reports the failure of a
// buffered write.
class PendingContent {
 public:
  // `budget` (may be null: no mount-wide bound) is shared by every writer of the mount.
  PendingContent(ChunkStore* chunks, ExtentList base, uint64_t max_dirty_bytes,
                 DirtyBudget* budget = nullptr);
  ~PendingContent();
  // The worker holds `this`: never moved or copied (WriteSession constructs it in place).
  PendingContent(const PendingContent&) = delete;
  PendingContent& operator=(const PendingContent&) = delete;

  static constexpr size_t kPipelinedWriteBytes = size_t{128} * 1024;
  static constexpr size_t kMaxQueuedBytes = size_t{2} << 20;

  uint64_t size() const { return size_; }
  // After any failure (a chunk that could not be stored: a full disk, an I/O error) the
  // pending content is no longer known to be whole, so every later call fails with that
  // error, and no version can be made of it, until Truncate(0) starts over.
  StatusOr<size_t> Read(uint64_t offset, std::span<char> out);
  // Writing or truncating beyond kMaxFileSize fails with kTooBig and changes nothing. Bytes
  // between the old end and a write or truncate beyond it become a hole: they cost no chunk.
  Status Write(uint64_t offset, std::string_view data);
  Status Truncate(uint64_t new_size);
  // Stores every pending byte as chunks and returns the complete content with its SHA-256.
  // When more than kMaxHashedHoleBytes of it are hole, or the content was written in place and
  // holds more than kMaxRehashedBytes of stored bytes, the hash is not computed: *deferred is
  // set and *sha256 is all zeros (the cost of a commit follows the bytes written and the
  // extent count, never a size the writer merely told). Afterwards the object continues from
  // that content.
  Status Finalize(ExtentList* content, Sha256Digest* sha256, bool* deferred);

  // The content's first min(size(), kHeadBytes) bytes when they are known without reading
  // chunks back: the content was written as one stream from empty (a new file, or one
  // truncated to zero, written from its start). Null otherwise. Lets a commit look for a
  // DICOM header without decrypting the file's first chunk again.
  static constexpr size_t kHeadBytes = 4096;
  const std::string* KnownHead() const { return head_known_ ? &stream_head_ : nullptr; }

  // Appends the ids of every chunk the content holds now (its base, once the queued appends
  // are stored) to *ids: garbage collection's mark of a file being written.
  void AppendChunkIds(std::vector<ChunkId>* ids);

  // This writer's name for ChunkStore::Put (unique in the process).
  uint64_t owner() const { return owner_; }
  // The chunks this writer stored (new to the archive) since the last TakeInserted: the
  // commit that references them settles them, and a file deleted before any commit
  // references them releases them (ChunkStore::Settle, ReleaseFresh).
  std::vector<ChunkId> TakeInserted() {
    WaitForQueue();
    return std::exchange(inserted_, {});
  }

 private:
  StatusOr<size_t> ReadPending(uint64_t offset, std::span<char> out);
  Status WritePending(uint64_t offset, std::string_view data);
  Status TruncatePending(uint64_t new_size);
  Status FinalizePending(ExtentList* content, Sha256Digest* sha256, bool* deferred);
  // Remembers the first failure (see Read).
  Status Fail(Status status) {
    if (!status.ok() && failed_.ok()) failed_ = status;
    return status;
  }
  static constexpr uint64_t kPageSize = uint64_t{64} * 1024;
  Status SwitchToOverlay();
  Status LoadPage(uint64_t index, std::string* page);
  // Stores the overlay as chunks; the result becomes the base. Zeros nobody wrote (beyond
  // the visible base, or in the base's holes) become holes, not chunks.
  Status Checkpoint();
  // True if [offset, end) of the pending content reads as zeros without holding written
  // bytes (no overlay page, and the base is truncated away or a hole there); *end is the end
  // of that maximal run, or of the run of written bytes that starts at offset.
  // REQUIRES: overlay mode, offset < size_.
  bool HoleAt(uint64_t offset, uint64_t* end) const;
  Status StoreChunk(std::string_view chunk, ExtentList* into);
  void ForgetHead() {
    head_known_ = false;
    stream_head_.clear();
  }
  // Makes the budget held for overlay pages match pages_; when the budget has no room for
  // new pages, checkpoints the overlay (which empties it) instead.
  Status SettlePageBudget();
  // Chunks and stores an append to the streaming tail (on the caller's thread or the
  // worker's); the caller hashes it (stream_sha_ is only ever touched by the owner).
  Status StoreAppend(std::string_view data);
  // Queues a pipelined append (see the class comment), starting the worker if needed.
  Status QueueAppend(std::string_view data);
  void WorkerLoop();
  // Returns once every queued append is stored or failed; a failure becomes failed_.
  void WaitForQueue();

  // The queue of pipelined appends, shared with the worker. While it is not empty, or the
  // worker is busy, only the worker touches base_, chunker_ and inserted_.
  struct Intake {
    std::mutex mu;
    std::condition_variable changed;
    std::deque<std::string> queue;  // GUARDED_BY(mu)
    size_t queued_bytes = 0;        // GUARDED_BY(mu): also counts the append being stored
    bool busy = false;              // GUARDED_BY(mu): the worker is storing an append
    bool stopping = false;          // GUARDED_BY(mu)
    Status failed;                  // GUARDED_BY(mu): the first failure of a queued append
    std::thread worker;
  };
  std::unique_ptr<Intake> intake_;  // made at the first pipelined append

  ChunkStore* chunks_;
  ExtentList base_;
  uint64_t size_;
  uint64_t max_dirty_bytes_;
  // Streaming mode: base_ holds the chunks cut so far, chunker_ the bytes after them.
  bool streaming_;
  Chunker chunker_;
  Sha256 stream_sha_;
  // KnownHead: while head_known_, stream_head_ holds the content's first
  // min(size_, kHeadBytes) bytes (set while streaming from empty, cleared by anything else).
  bool head_known_;
  std::string stream_head_;
  // Overlay mode: base bytes at or beyond base_visible_ read as zeros (truncated away).
  uint64_t base_visible_;
  std::map<uint64_t, std::string> pages_;  // page index -> kPageSize bytes
  Status failed_;                          // the first failure, if any
  uint64_t owner_;
  std::vector<ChunkId> inserted_;  // see TakeInserted
  DirtyBudget* budget_;
  uint64_t page_budget_held_ = 0;  // bytes of budget_ held for pages_
  // Bytes of budget_ held for queued appends (given back by the worker as it stores them).
  std::atomic<uint64_t> queue_budget_held_{0};
};

}  // namespace medvfs::store
