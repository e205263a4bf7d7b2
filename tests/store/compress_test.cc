#include "store/crypto/compress.h"

#include <string>

#include <gtest/gtest.h>
#include <zstd.h>

#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

std::string SampleData(size_t size) {
  std::string data;
  data.reserve(size);
  uint32_t x = 12345;
  while (data.size() < size) {
    x = x * 1103515245u + 12345u;
    // Compressible but not trivial: short runs of a few symbols.
    data.append(1 + (x >> 28) % 8, static_cast<char>('a' + (x >> 16) % 4));
  }
  data.resize(size);
  return data;
}

// A frame whose header does not state its content size (as a streaming writer produces).
std::string CompressWithoutContentSize(const std::string& input) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  EXPECT_NE(cctx, nullptr);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  std::string out(ZSTD_compressBound(input.size()), '\0');
  size_t n = ZSTD_compress2(cctx, out.data(), out.size(), input.data(), input.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  EXPECT_EQ(ZSTD_getFrameContentSize(out.data(), out.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  return out;
}

TEST(CompressTest, RoundTrip) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{1000}, size_t{3} << 20}) {
    SCOPED_TRACE(size);
    const std::string input = SampleData(size);
    std::string compressed;
    ASSERT_OK(Compress(input, 3, &compressed));
    if (size >= 1000) {
      EXPECT_LT(compressed.size(), input.size());
    }
    std::string output = "stale";
    ASSERT_OK(Decompress(compressed, size, &output));
    EXPECT_EQ(output, input);
  }
}

TEST(CompressTest, LevelsAreChecked) {
  std::string out;
  ASSERT_OK(Compress("abc", 1, &out));
  ASSERT_OK(Compress("abc", 19, &out));
  EXPECT_EQ(Compress("abc", 0, &out).code(), Code::kInvalid);
  EXPECT_EQ(Compress("abc", 100, &out).code(), Code::kInvalid);
}

TEST(CompressTest, CapExceededIsCorruption) {
  const std::string input = SampleData(10000);
  std::string compressed;
  ASSERT_OK(Compress(input, 3, &compressed));
  std::string output;
  EXPECT_EQ(Decompress(compressed, 9999, &output).code(), Code::kCorruption);
  ASSERT_OK(Decompress(compressed, 10000, &output));
}

TEST(CompressTest, CorruptFramesAreCorruption) {
  const std::string input = SampleData(100000);
  std::string compressed;
  ASSERT_OK(Compress(input, 3, &compressed));
  std::string output;
  EXPECT_EQ(Decompress("", 1 << 20, &output).code(), Code::kCorruption);
  EXPECT_EQ(Decompress("not a zstd frame", 1 << 20, &output).code(), Code::kCorruption);
  // Truncated.
  EXPECT_EQ(
      Decompress(std::string_view(compressed).substr(0, compressed.size() - 1), 1 << 20, &output)
          .code(),
      Code::kCorruption);
  // Trailing garbage.
  EXPECT_EQ(Decompress(compressed + "x", 1 << 20, &output).code(), Code::kCorruption);
  // Damaged payload. Frames carry no content checksum (chunks are sealed with AES-GCM, which
  // catches damage first), so some flips may decode to wrong bytes; but most must fail, and
  // every failure must be kCorruption.
  int failures = 0;
  for (size_t pos = 20; pos < compressed.size(); pos += compressed.size() / 16) {
    std::string damaged = compressed;
    damaged[pos] = static_cast<char>(damaged[pos] ^ 0x5a);
    Status status = Decompress(damaged, 1 << 20, &output);
    if (!status.ok()) {
      EXPECT_EQ(status.code(), Code::kCorruption);
      ++failures;
    }
  }
  EXPECT_GT(failures, 0);
}

TEST(CompressTest, UnknownContentSizeIsStreamedWithCap) {
  const std::string input = SampleData(3 << 20);
  const std::string compressed = CompressWithoutContentSize(input);
  std::string output;
  ASSERT_OK(Decompress(compressed, input.size(), &output));
  EXPECT_EQ(output, input);
  EXPECT_EQ(Decompress(compressed, input.size() - 1, &output).code(), Code::kCorruption);
  EXPECT_EQ(Decompress(compressed, 1000, &output).code(), Code::kCorruption);
  EXPECT_EQ(
      Decompress(std::string_view(compressed).substr(0, compressed.size() - 3), 1 << 30, &output)
          .code(),
      Code::kCorruption);
  EXPECT_EQ(Decompress(compressed + "junk", 1 << 30, &output).code(), Code::kCorruption);

  const std::string empty = CompressWithoutContentSize("");
  output = "stale";
  ASSERT_OK(Decompress(empty, 0, &output));
  EXPECT_TRUE(output.empty());
}

}  // namespace
}  // namespace medvfs::store
