// File content as a list of chunks, and the pending state of a file being written.
// Internal to store/.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/chunk_store.h"
#include "store/chunker.h"
#include "store/crypto.h"
#include "store/records.h"

namespace medvfs::store {

// The chunks of one content, in order, with their offsets. ~40 bytes per 64 KiB chunk.
class ExtentList {
 public:
  void Append(const Extent& extent);
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

// The content of a file while handles write to it: the committed (or checkpointed) chunks
// as a base, plus either a streaming tail (a sequential writer: chunks are cut and stored as
// the bytes arrive) or an overlay of modified 64 KiB pages (random writes). Memory stays
// bounded: the streaming tail holds at most one chunk; the overlay is chunked and stored
// ("checkpointed") when it exceeds the dirty-bytes cap.
// Not thread-safe; the owner serialises calls.
class PendingContent {
 public:
  PendingContent(ChunkStore* chunks, ExtentList base, uint64_t max_dirty_bytes);

  uint64_t size() const { return size_; }
  // After any failure (a chunk that could not be stored: a full disk, an I/O error) the
  // pending content is no longer known to be whole, so every later call fails with that
  // error, and no version can be made of it, until Truncate(0) starts over.
  StatusOr<size_t> Read(uint64_t offset, std::span<char> out);
  Status Write(uint64_t offset, std::string_view data);
  Status Truncate(uint64_t new_size);
  // Stores every pending byte as chunks and returns the complete content with its SHA-256.
  // Afterwards the object continues from that content.
  Status Finalize(ExtentList* content, Sha256Digest* sha256);

 private:
  StatusOr<size_t> ReadPending(uint64_t offset, std::span<char> out);
  Status WritePending(uint64_t offset, std::string_view data);
  Status TruncatePending(uint64_t new_size);
  Status FinalizePending(ExtentList* content, Sha256Digest* sha256);
  // Remembers the first failure (see Read).
  Status Fail(Status status) {
    if (!status.ok() && failed_.ok()) failed_ = status;
    return status;
  }
  static constexpr uint64_t kPageSize = 64 * 1024;
  Status SwitchToOverlay();
  Status LoadPage(uint64_t index, std::string* page);
  // Stores the overlay as chunks; the result becomes the base.
  Status Checkpoint();
  // SHA-256 of the base content (one read pass).
  Status HashBase(Sha256Digest* sha256);
  Status StoreChunk(std::string_view chunk, ExtentList* into);

  ChunkStore* chunks_;
  ExtentList base_;
  uint64_t size_;
  uint64_t max_dirty_bytes_;
  // Streaming mode: base_ holds the chunks cut so far, chunker_ the bytes after them.
  bool streaming_;
  Chunker chunker_;
  Sha256 stream_sha_;
  // Overlay mode: base bytes at or beyond base_visible_ read as zeros (truncated away).
  uint64_t base_visible_;
  std::map<uint64_t, std::string> pages_;  // page index -> kPageSize bytes
  Status failed_;                          // the first failure, if any
};

}  // namespace medvfs::store
