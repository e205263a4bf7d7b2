#include "store/crypto/compress.h"

#include <algorithm>
#include <memory>
#include <string>

#include <zstd.h>

namespace medvfs::store {
namespace {

// Output grows by at most this much per step when the frame does not state its size.
constexpr size_t kStreamStep = size_t{1} << 20;

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* context) const { ZSTD_freeCCtx(context); }
};

struct DStreamDeleter {
  void operator()(ZSTD_DStream* stream) const { ZSTD_freeDStream(stream); }
};

// Decompresses a frame whose header does not state its content size, growing *out step by
// step and refusing to pass max_size.
Status DecompressStreaming(std::string_view input, size_t max_size, std::string* out) {
  std::unique_ptr<ZSTD_DStream, DStreamDeleter> stream(ZSTD_createDStream());
  if (!stream) return Status::IoError("cannot allocate a zstd decompression stream");
  if (ZSTD_isError(ZSTD_initDStream(stream.get()))) {
    return Status::IoError("cannot initialise a zstd decompression stream");
  }
  out->clear();
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  size_t produced = 0;
  while (true) {
    if (produced == out->size()) {
      if (produced == max_size) {
        // Full: one more byte of output would pass the cap. Probe with a 1-byte buffer.
        char probe = 0;
        ZSTD_outBuffer extra{&probe, 1, 0};
        const size_t ret = ZSTD_decompressStream(stream.get(), &extra, &in);
        if (ZSTD_isError(ret)) return Status::Corruption("compressed chunk is damaged");
        if (extra.pos > 0) return Status::Corruption("compressed chunk exceeds its size limit");
        if (ret == 0) break;
        if (in.pos == in.size) return Status::Corruption("compressed chunk is truncated");
        continue;
      }
      out->resize(produced + std::min(kStreamStep, max_size - produced));
    }
    ZSTD_outBuffer buffer{out->data(), out->size(), produced};
    const size_t ret = ZSTD_decompressStream(stream.get(), &buffer, &in);
    if (ZSTD_isError(ret)) return Status::Corruption("compressed chunk is damaged");
    produced = buffer.pos;
    if (ret == 0) break;  // the frame is complete and flushed
    // Room left in the output and no input left: zstd is waiting for bytes that never come.
    if (in.pos == in.size && produced < out->size()) {
      return Status::Corruption("compressed chunk is truncated");
    }
  }
  if (in.pos != in.size) return Status::Corruption("compressed chunk has trailing bytes");
  out->resize(produced);
  return Status::Ok();
}

}  // namespace

Status Compress(std::string_view input, int level, std::string* out) {
  if (level < 1 || level > ZSTD_maxCLevel()) {
    return Status::Invalid("zstd compression level must be between 1 and " +
                           std::to_string(ZSTD_maxCLevel()));
  }
  // One context per thread, reused: ZSTD_compress would allocate a context and clear its
  // tables for every chunk (a measurable share of a write's CPU).
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> context(ZSTD_createCCtx());
  if (!context) return Status::IoError("cannot allocate a zstd compression context");
  out->resize(ZSTD_compressBound(input.size()));
  const size_t size =
      ZSTD_compressCCtx(context.get(), out->data(), out->size(), input.data(), input.size(), level);
  if (ZSTD_isError(size)) {
    out->clear();
    return Status::IoError(std::string("zstd compression failed: ") + ZSTD_getErrorName(size));
  }
  out->resize(size);
  return Status::Ok();
}

Status Decompress(std::string_view input, size_t max_size, std::string* out) {
  const unsigned long long content_size = ZSTD_getFrameContentSize(input.data(), input.size());
  if (content_size == ZSTD_CONTENTSIZE_ERROR) {
    return Status::Corruption("compressed chunk has no valid zstd frame header");
  }
  if (content_size == ZSTD_CONTENTSIZE_UNKNOWN) {
    Status status = DecompressStreaming(input, max_size, out);
    if (!status.ok()) out->clear();
    return status;
  }
  if (content_size > max_size) {
    return Status::Corruption("compressed chunk exceeds its size limit");
  }
  // Exactly one frame: trailing bytes (or a second frame) mean damage.
  const size_t frame_size = ZSTD_findFrameCompressedSize(input.data(), input.size());
  if (ZSTD_isError(frame_size)) return Status::Corruption("compressed chunk is truncated");
  if (frame_size != input.size()) {
    return Status::Corruption("compressed chunk has trailing bytes");
  }
  out->resize(static_cast<size_t>(content_size));
  const size_t size = ZSTD_decompress(out->data(), out->size(), input.data(), input.size());
  if (ZSTD_isError(size) || size != content_size) {
    out->clear();
    return Status::Corruption("compressed chunk is damaged");
  }
  return Status::Ok();
}

}  // namespace medvfs::store
