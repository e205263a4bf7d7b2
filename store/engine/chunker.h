// Content-defined chunking (FastCDC with normalized chunking, gear hash) of a byte stream.
//
// Boundaries depend only on the content, so an edit early in a file changes the chunks around
// it and leaves the rest identical; identical chunks are stored once. For DICOM files (a
// 128-byte preamble followed by "DICM") a boundary is also forced right before the Pixel Data
// element (7FE0,0010), so a header edit never touches the pixel chunks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace medvfs::store {

struct ChunkerParams {
  uint32_t min_size = 16 * 1024;   // Default: 16 KiB
  uint32_t avg_size = 64 * 1024;   // Default: 64 KiB (a power of two)
  uint32_t max_size = 256 * 1024;  // Default: 256 KiB
};

// Streaming chunker: feed bytes with Update, get whole chunks through the callback.
// Holds at most max_size + 3 bytes (3 bytes of look-ahead while a DICOM stream may still reveal
// the Pixel Data tag). Not thread-safe.
class Chunker {
 public:
  using Emit = std::function<void(std::string_view chunk)>;
  explicit Chunker(ChunkerParams params = {});

  // Appends data; calls emit for every chunk completed by it, in order.
  void Update(std::string_view data, const Emit& emit);
  // Emits the remaining bytes (if any) as the last chunk and resets for a new stream.
  void Finish(const Emit& emit);
  // Forgets buffered bytes and starts a new stream.
  void Reset();
  // Bytes fed since the stream began.
  uint64_t position() const { return position_; }
  // Bytes held that have not been emitted yet.
  std::string_view pending() const { return std::string_view(buffer_).substr(begin_); }

 private:
  enum class DicomState { kUndecided, kSearching, kDone };

  // Runs the DICOM detection and the Pixel Data tag search over `data`, which starts at stream
  // offset `offset`.
  void ScanDicom(std::string_view data, uint64_t offset);
  void SearchTag(std::string_view data, uint64_t offset);
  // Emits every chunk that the bytes held so far decide. At the end of the stream, also the rest.
  void Drain(bool at_end, const Emit& emit);
  // Hashes held bytes from scanned_ up to chunk offset `limit`; returns the length of the chunk
  // if a boundary was found (0 otherwise).
  size_t FindBoundary(size_t limit);
  // The same over `bytes`, whose first byte is at chunk offset `first` (REQUIRES: the bytes
  // before it are hashed, scanned_ >= first), up to chunk offset `limit`.
  size_t FindBoundary(const uint8_t* bytes, size_t first, size_t limit);
  // Update once no DICOM rule is pending: chunks that lie wholly in `data` are emitted from
  // it without a copy; only a chunk begun by an earlier call, and the unfinished tail, are
  // copied into buffer_.
  void UpdateInPlace(std::string_view data, const Emit& emit);
  void EmitChunk(size_t length, const Emit& emit);

  ChunkerParams params_;
  uint64_t mask_small_;  // used for chunk lengths in [min_size, avg_size)
  uint64_t mask_large_;  // used for chunk lengths in [avg_size, max_size]
  size_t capacity_;      // max_size + 3
  std::string buffer_;   // buffer_[begin_..] is the current, unfinished chunk
  size_t begin_ = 0;
  uint64_t base_ = 0;      // stream offset of buffer_[begin_]
  uint64_t position_ = 0;  // stream offset of the end of buffer_
  size_t scanned_ = 0;     // bytes of the current chunk already hashed
  uint64_t hash_ = 0;      // gear hash after scanned_ bytes
  // DICOM pixel-data boundary detection state.
  DicomState dicom_ = DicomState::kUndecided;
  size_t tag_match_ = 0;     // bytes of a partial Pixel Data tag match at the end of buffer_
  uint64_t forced_cut_ = 0;  // stream offset of a forced boundary, valid if has_forced_cut_
  bool has_forced_cut_ = false;
};

}  // namespace medvfs::store
