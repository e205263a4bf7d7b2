#include "store/engine/chunker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace medvfs::store {
namespace {

constexpr std::string_view kPixelDataTag("\xE0\x7F\x10\x00", 4);
constexpr size_t kLookAhead = 3;  // bytes the chunker may hold beyond max_size

// Deterministic bytes on every platform: mt19937_64's output sequence is fixed by the standard.
std::string RandomData(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < size; ++j) {
      out[i + j] = static_cast<char>(v & 0xff);
      v >>= 8;
    }
  }
  return out;
}

struct Result {
  std::vector<std::string> chunks;
  size_t max_pending = 0;  // the most bytes held between Update calls
};

// Feeds `data` in pieces whose sizes come from `next_piece`, then finishes the stream.
Result ChunkPieces(std::string_view data, const ChunkerParams& params,
                   const std::function<size_t()>& next_piece) {
  Result r;
  Chunker chunker(params);
  auto emit = [&r](std::string_view chunk) { r.chunks.emplace_back(chunk); };
  size_t fed = 0;
  while (fed < data.size()) {
    const size_t n = std::min(next_piece(), data.size() - fed);
    chunker.Update(data.substr(fed, n), emit);
    fed += n;
    EXPECT_EQ(chunker.position(), fed);
    r.max_pending = std::max(r.max_pending, chunker.pending().size());
  }
  chunker.Finish(emit);
  EXPECT_EQ(chunker.position(), 0u);
  EXPECT_TRUE(chunker.pending().empty());
  return r;
}

Result ChunkFixed(std::string_view data, const ChunkerParams& params, size_t piece) {
  return ChunkPieces(data, params, [piece] { return piece; });
}

Result ChunkRandomPieces(std::string_view data, const ChunkerParams& params, uint64_t seed,
                         size_t max_piece) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> dist(1, max_piece);
  return ChunkPieces(data, params, [&] { return dist(rng); });
}

std::vector<std::string> ChunkAll(std::string_view data, const ChunkerParams& params = {}) {
  return ChunkFixed(data, params, data.empty() ? 1 : data.size()).chunks;
}

std::vector<uint64_t> Offsets(const std::vector<std::string>& chunks) {
  std::vector<uint64_t> offsets;
  uint64_t at = 0;
  for (const std::string& c : chunks) {
    offsets.push_back(at);
    at += c.size();
  }
  return offsets;
}

std::vector<size_t> Sizes(const std::vector<std::string>& chunks) {
  std::vector<size_t> sizes;
  for (const std::string& c : chunks) sizes.push_back(c.size());
  return sizes;
}

std::string Concat(const std::vector<std::string>& chunks) {
  std::string out;
  for (const std::string& c : chunks) out += c;
  return out;
}

// The chunks that start at or after stream offset `from`.
std::vector<std::string> ChunksFrom(const std::vector<std::string>& chunks, uint64_t from) {
  std::vector<std::string> out;
  const std::vector<uint64_t> offsets = Offsets(chunks);
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (offsets[i] >= from) out.push_back(chunks[i]);
  }
  return out;
}

bool HasBoundaryAt(const std::vector<std::string>& chunks, uint64_t offset) {
  const std::vector<uint64_t> offsets = Offsets(chunks);
  return std::find(offsets.begin(), offsets.end(), offset) != offsets.end();
}

void ExpectSizeBounds(const std::vector<std::string>& chunks, const ChunkerParams& params) {
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    EXPECT_GE(chunks[i].size(), params.min_size) << "chunk " << i;
    EXPECT_LE(chunks[i].size(), params.max_size) << "chunk " << i;
  }
  if (!chunks.empty()) {
    EXPECT_GE(chunks.back().size(), 1u);
    EXPECT_LE(chunks.back().size(), params.max_size);
  }
}

// A DICOM-like file: preamble, "DICM", `header` bytes (which must not contain the Pixel Data
// tag), then the Pixel Data element (OW, explicit VR little endian) and its value.
std::string MakeDicom(std::string_view header, std::string_view pixels) {
  std::string out(128, '\0');
  out += "DICM";
  out += header;
  out += kPixelDataTag;
  out += std::string_view("OW\0\0", 4);
  const auto length = static_cast<uint32_t>(pixels.size());
  for (int shift = 0; shift < 32; shift += 8) out += static_cast<char>((length >> shift) & 0xff);
  out += pixels;
  return out;
}

// Random header bytes that cannot contain the Pixel Data tag.
std::string FakeHeader(size_t size, uint64_t seed) {
  std::string header = RandomData(size, seed);
  std::replace(header.begin(), header.end(), '\xE0', '\xE1');
  return header;
}

TEST(ChunkerTest, EmptyStreamEmitsNothing) {
  EXPECT_TRUE(ChunkAll("").empty());
  Chunker chunker;
  int calls = 0;
  chunker.Finish([&calls](std::string_view) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ChunkerTest, ShortStreamIsOneChunk) {
  const std::string data = RandomData(1000, 1);
  const std::vector<std::string> chunks = ChunkAll(data);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0], data);
}

TEST(ChunkerTest, ConcatenationEqualsInput) {
  const std::string data = RandomData(8 << 20, 2);
  const std::vector<std::string> chunks = ChunkAll(data);
  EXPECT_GT(chunks.size(), 50u);
  EXPECT_EQ(Concat(chunks), data);
}

TEST(ChunkerTest, SplitInvariance) {
  const std::string data = RandomData(4 << 20, 3);
  const ChunkerParams params;
  const Result whole = ChunkFixed(data, params, data.size());
  ASSERT_GT(whole.chunks.size(), 20u);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}, size_t{65536 + 13}}) {
    SCOPED_TRACE(piece);
    const Result r = ChunkFixed(data, params, piece);
    EXPECT_EQ(Sizes(r.chunks), Sizes(whole.chunks));
    EXPECT_TRUE(r.chunks == whole.chunks);
    EXPECT_LE(r.max_pending, params.max_size + kLookAhead);
  }
  for (uint64_t seed : {11U, 12U, 13U}) {
    SCOPED_TRACE(seed);
    const Result r = ChunkRandomPieces(data, params, seed, 300000);
    EXPECT_TRUE(r.chunks == whole.chunks);
    EXPECT_LE(r.max_pending, params.max_size + kLookAhead);
  }
}

TEST(ChunkerTest, SplitInvarianceWithSmallChunks) {
  const ChunkerParams params{.min_size = 64, .avg_size = 256, .max_size = 1024};
  const std::string data = RandomData(1 << 20, 4);
  const Result whole = ChunkFixed(data, params, data.size());
  ASSERT_GT(whole.chunks.size(), 1000u);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}}) {
    SCOPED_TRACE(piece);
    EXPECT_TRUE(ChunkFixed(data, params, piece).chunks == whole.chunks);
  }
  EXPECT_TRUE(ChunkRandomPieces(data, params, 14, 3000).chunks == whole.chunks);
}

TEST(ChunkerTest, SizeBounds) {
  const ChunkerParams params;
  const std::vector<std::string> chunks = ChunkAll(RandomData(32 << 20, 5), params);
  ExpectSizeBounds(chunks, params);

  const ChunkerParams small{.min_size = 100, .avg_size = 512, .max_size = 2000};
  ExpectSizeBounds(ChunkAll(RandomData(4 << 20, 6), small), small);
}

TEST(ChunkerTest, LowEntropyDataIsCutAtMaxSize) {
  const ChunkerParams params;
  // Constant bytes give a constant hash: either it matches at once or never. Zeros never do
  // with this gear table, so every chunk is max_size long.
  const std::string zeros(3 * params.max_size + 5, '\0');
  const std::vector<std::string> chunks = ChunkAll(zeros, params);
  ExpectSizeBounds(chunks, params);
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0].size(), params.max_size);
  EXPECT_EQ(chunks[3].size(), 5u);
}

TEST(ChunkerTest, AverageChunkSizeOnRandomData) {
  const ChunkerParams params;
  const std::string data = RandomData(64 << 20, 7);
  const std::vector<std::string> chunks = ChunkAll(data, params);
  const double average = static_cast<double>(data.size()) / static_cast<double>(chunks.size());
  RecordProperty("average_chunk_size", std::to_string(average));
  std::printf("average chunk size on 64 MiB of random data: %.0f bytes (%zu chunks)\n", average,
              chunks.size());
  EXPECT_GT(average, 0.7 * params.avg_size);
  EXPECT_LT(average, 1.3 * params.avg_size);
}

TEST(ChunkerTest, InsertionChangesFewChunks) {
  const std::string data = RandomData(16 << 20, 8);
  std::string edited = data;
  edited.insert(data.size() / 2, RandomData(100, 9));
  const std::vector<std::string> before = ChunkAll(data);
  const std::vector<std::string> after = ChunkAll(edited);
  EXPECT_EQ(Concat(after), edited);
  const std::set<std::string> known(before.begin(), before.end());
  const auto changed = std::count_if(after.begin(), after.end(),
                                     [&known](const std::string& c) { return !known.contains(c); });
  EXPECT_GE(changed, 1);
  EXPECT_LE(changed, 3);
}

TEST(ChunkerTest, ResetAndFinishStartANewStream) {
  const std::string data = RandomData(1 << 20, 10);
  const std::vector<std::string> expected = ChunkAll(data);
  Chunker chunker;
  std::vector<std::string> got;
  auto emit = [&got](std::string_view c) { got.emplace_back(c); };
  chunker.Update(RandomData(100000, 11), emit);
  chunker.Reset();
  EXPECT_TRUE(chunker.pending().empty());
  EXPECT_EQ(chunker.position(), 0u);
  got.clear();
  chunker.Update(data, emit);
  chunker.Finish(emit);
  EXPECT_TRUE(got == expected);
  got.clear();
  chunker.Update(data, emit);  // the same chunker, a second stream
  chunker.Finish(emit);
  EXPECT_TRUE(got == expected);
}

// Pins the boundaries: they are part of the on-disk format (deduplication against existing
// archives). If this test fails, the chunker changed the format; do not update the numbers
// without a format migration. The numbers were cross-checked with an independent, byte-by-byte
// Python implementation of the cut rule in store/engine/chunker.cc.
TEST(ChunkerTest, BoundariesAreStable) {
  const std::vector<size_t> expected = {98545, 66438, 92771, 66541, 120856, 71780, 56514,
                                        61513, 92048, 76481, 68290, 106246, 57614, 12939};
  const std::vector<size_t> sizes = Sizes(ChunkAll(RandomData(1 << 20, 20240601)));
  EXPECT_EQ(sizes, expected);
  const std::vector<size_t> expected_small = {367, 225, 138, 410, 438, 96,  261, 126,
                                              353, 266, 339, 302, 375, 151, 296, 263};
  const ChunkerParams small{.min_size = 64, .avg_size = 256, .max_size = 1024};
  std::vector<size_t> sizes_small = Sizes(ChunkAll(RandomData(1 << 20, 20240601), small));
  sizes_small.resize(std::min<size_t>(sizes_small.size(), 16));
  EXPECT_EQ(sizes_small, expected_small);
}

// The cut rule of store/engine/chunker.cc written the plain way (the gear table generated
// again, every byte hashed from the chunk's start, one test per byte): the reference that the
// optimized scan (warm-up skip, four positions per comparison, chunks cut in the caller's
// buffer) must agree with on any stream fed in any pieces.
std::vector<size_t> ReferenceSizes(std::string_view data, const ChunkerParams& params) {
  std::array<uint64_t, 256> gear{};
  uint64_t state = 0x6d65647666732d31ULL;
  for (uint64_t& value : gear) {
    state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    value = z ^ (z >> 31);
  }
  const int bits = std::countr_zero(params.avg_size);
  const uint64_t mask_small = ~0ULL << (64 - (bits + 2));
  const uint64_t mask_large = ~0ULL << (64 - (bits - 2));
  std::vector<size_t> sizes;
  for (size_t start = 0; start < data.size();) {
    uint64_t h = 0;
    size_t cut = data.size() - start;
    for (size_t len = 1; start + len <= data.size(); ++len) {
      h = (h << 1) + gear[static_cast<uint8_t>(data[start + len - 1])];
      const bool small_cut =
          len >= params.min_size && len < params.avg_size && (h & mask_small) == 0;
      const bool large_cut =
          len >= params.avg_size && len < params.max_size && (h & mask_large) == 0;
      if (small_cut || large_cut || len == params.max_size) {
        cut = len;
        break;
      }
    }
    sizes.push_back(cut);
    start += cut;
  }
  return sizes;
}

TEST(ChunkerTest, AgreesWithAPlainImplementationOfTheCutRuleFedInAnyPieces) {
  // Random bytes, bytes that rarely cut (max_size chunks), and a mix of runs of both.
  std::string mixed;
  for (uint64_t run = 0; mixed.size() < (6u << 20); ++run) {
    mixed += run % 3 == 0 ? std::string(100000 + run * 997, static_cast<char>(run))
                          : RandomData(50000 + run * 7919, 40 + run);
  }
  const std::vector<std::pair<std::string, std::string>> streams = {
      {"random", RandomData(6 << 20, 41)}, {"mixed", mixed}};
  const std::vector<ChunkerParams> param_sets = {
      ChunkerParams{}, ChunkerParams{.min_size = 64, .avg_size = 256, .max_size = 1024}};
  for (const ChunkerParams& params : param_sets) {
    for (const auto& [name, data] : streams) {
      SCOPED_TRACE(name + ", avg " + std::to_string(params.avg_size));
      const std::vector<size_t> expected = ReferenceSizes(data, params);
      EXPECT_EQ(Sizes(ChunkAll(data, params)), expected);
      for (size_t piece : {size_t{1} << 20, size_t{128} << 10, size_t{3} << 20}) {
        EXPECT_EQ(Sizes(ChunkFixed(data, params, piece).chunks), expected) << piece;
      }
      for (uint64_t seed : {51U, 52U}) {
        EXPECT_EQ(Sizes(ChunkRandomPieces(data, params, seed, 3 << 20).chunks), expected) << seed;
      }
    }
  }
}

// ---- DICOM pixel-data boundary ----

TEST(ChunkerDicomTest, CutRightBeforePixelData) {
  const std::string header = FakeHeader(3000, 30);
  const std::string dicom = MakeDicom(header, RandomData(2 << 20, 31));
  const uint64_t tag = 132 + header.size();
  ASSERT_EQ(dicom.find(kPixelDataTag, 132), tag);
  const std::vector<std::string> chunks = ChunkAll(dicom);
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].size(), tag);  // shorter than min_size: cut short by the forced boundary
  EXPECT_EQ(chunks[1].substr(0, 4), kPixelDataTag);
  EXPECT_EQ(Concat(chunks), dicom);
}

// A DICOM stream: the plain cut rule up to the Pixel Data tag, a cut there, and the plain
// rule again from the tag on, however the stream is fed.
TEST(ChunkerDicomTest, AgreesWithThePlainCutRuleOnEachSideOfThePixelDataTag) {
  const std::string dicom = MakeDicom(FakeHeader(200000, 42), RandomData(5 << 20, 43));
  const size_t tag = dicom.find(kPixelDataTag, 132);
  std::vector<size_t> expected = ReferenceSizes(std::string_view(dicom).substr(0, tag), {});
  for (size_t size : ReferenceSizes(std::string_view(dicom).substr(tag), {})) {
    expected.push_back(size);
  }
  EXPECT_EQ(Sizes(ChunkAll(dicom)), expected);
  for (uint64_t seed : {61U, 62U, 63U}) {
    EXPECT_EQ(Sizes(ChunkRandomPieces(dicom, {}, seed, 3 << 20).chunks), expected) << seed;
  }
}

TEST(ChunkerDicomTest, HeaderEditKeepsPixelChunks) {
  const std::string header = FakeHeader(3000, 32);
  std::string longer = header;
  longer.insert(1500, FakeHeader(37, 33));
  const std::string pixels = RandomData(2 << 20, 34);
  const std::string a = MakeDicom(header, pixels);
  const std::string b = MakeDicom(longer, pixels);
  const uint64_t tag_a = a.find(kPixelDataTag, 132);
  const uint64_t tag_b = b.find(kPixelDataTag, 132);
  ASSERT_EQ(tag_b, tag_a + 37);
  const std::vector<std::string> chunks_a = ChunkAll(a);
  const std::vector<std::string> chunks_b = ChunkAll(b);
  EXPECT_TRUE(HasBoundaryAt(chunks_a, tag_a));
  EXPECT_TRUE(HasBoundaryAt(chunks_b, tag_b));
  const std::vector<std::string> pixel_a = ChunksFrom(chunks_a, tag_a);
  const std::vector<std::string> pixel_b = ChunksFrom(chunks_b, tag_b);
  ASSERT_GT(pixel_a.size(), 10u);
  EXPECT_TRUE(pixel_a == pixel_b);
  EXPECT_EQ(Concat(pixel_a), a.substr(tag_a));
}

TEST(ChunkerDicomTest, SplitInvarianceAndBoundedMemory) {
  // A header longer than max_size: normal chunks are emitted while the tag is searched for.
  const ChunkerParams params;
  const std::string header = FakeHeader(1 << 20, 35);
  const std::string dicom = MakeDicom(header, RandomData(2 << 20, 36));
  const uint64_t tag = 132 + header.size();
  const Result whole = ChunkFixed(dicom, params, dicom.size());
  EXPECT_TRUE(HasBoundaryAt(whole.chunks, tag));
  const size_t header_chunks = whole.chunks.size() - ChunksFrom(whole.chunks, tag).size();
  EXPECT_GE(header_chunks, 5u);
  EXPECT_LE(whole.max_pending, params.max_size + kLookAhead);
  std::vector<std::string> uncut = whole.chunks;
  uncut.erase(uncut.begin() + static_cast<std::ptrdiff_t>(header_chunks) - 1);
  ExpectSizeBounds(uncut, params);  // all but the one cut short before the tag
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{4096}}) {
    SCOPED_TRACE(piece);
    const Result r = ChunkFixed(dicom, params, piece);
    EXPECT_TRUE(r.chunks == whole.chunks);
    EXPECT_LE(r.max_pending, params.max_size + kLookAhead);
  }
  const Result r = ChunkRandomPieces(dicom, params, 37, 100000);
  EXPECT_TRUE(r.chunks == whole.chunks);
}

TEST(ChunkerDicomTest, TagStraddlingMaxSize) {
  // The tag starts 2 bytes before max_size: the chunker must hold the look-ahead bytes instead
  // of cutting at max_size.
  const ChunkerParams params{.min_size = 64, .avg_size = 256, .max_size = 1024};
  std::string zeros_header(1024 - 2 - 132, '\0');  // zeros: no CDC boundary, cut at max_size
  const std::string dicom = MakeDicom(zeros_header, RandomData(10000, 38));
  ASSERT_EQ(dicom.find(kPixelDataTag, 132), 1022u);
  for (size_t piece : {size_t{1}, size_t{1022}, size_t{1023}, size_t{1024}, dicom.size()}) {
    SCOPED_TRACE(piece);
    const Result r = ChunkFixed(dicom, params, piece);
    ASSERT_FALSE(r.chunks.empty());
    EXPECT_EQ(r.chunks[0].size(), 1022u);
    EXPECT_LE(r.max_pending, params.max_size + kLookAhead);
  }
}

TEST(ChunkerDicomTest, TagRightAfterMagic) {
  const std::string dicom = MakeDicom("", RandomData(100000, 39));
  const std::vector<std::string> chunks = ChunkAll(dicom);
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].size(), 132u);
}

TEST(ChunkerDicomTest, NoCutWithoutDicmMagic) {
  std::string data = MakeDicom(FakeHeader(500, 40), RandomData(5000, 41));
  EXPECT_EQ(ChunkAll(data).size(), 2u);
  data[130] = 'X';  // "DIXM": not DICOM, so no forced boundary; the stream is < min_size
  EXPECT_EQ(ChunkAll(data).size(), 1u);
}

TEST(ChunkerDicomTest, OnlyTheFirstTagCuts) {
  std::string pixels = RandomData(5000, 42);
  std::replace(pixels.begin(), pixels.end(), '\xE0', '\xE1');
  pixels.replace(2000, 4, kPixelDataTag);
  EXPECT_EQ(ChunkAll(MakeDicom(FakeHeader(500, 43), pixels)).size(), 2u);
}

TEST(ChunkerDicomTest, SearchStopsAt64MiB) {
  constexpr uint64_t kWindow = 64ULL << 20;
  std::string data = MakeDicom("", "");
  data.resize(kWindow + 100000);
  std::string body = FakeHeader(data.size() - 132, 44);
  data.replace(132, body.size(), body);
  // The tag lies entirely within the first 64 MiB: forced.
  std::string inside = data;
  inside.replace(kWindow - 4, 4, kPixelDataTag);
  EXPECT_TRUE(HasBoundaryAt(ChunkAll(inside), kWindow - 4));
  // Its last byte is beyond 64 MiB: not forced.
  std::string outside = data;
  outside.replace(kWindow - 3, 4, kPixelDataTag);
  const std::vector<std::string> chunks = ChunkAll(outside);
  EXPECT_FALSE(HasBoundaryAt(chunks, kWindow - 3));
}

TEST(ChunkerDicomTest, RealDicomFile) {
  const std::filesystem::path path =
      "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";
  std::ifstream in(path, std::ios::binary);
  if (!in) GTEST_FAIL() << path << " not found (apt install python3-pydicom)";
  const std::string dicom((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(dicom.substr(128, 4), "DICM");
  const size_t tag = dicom.find(kPixelDataTag, 132);
  ASSERT_NE(tag, std::string::npos);
  for (const ChunkerParams& params :
       {ChunkerParams{}, ChunkerParams{.min_size = 512, .avg_size = 2048, .max_size = 8192}}) {
    SCOPED_TRACE(params.avg_size);
    const std::vector<std::string> chunks = ChunkAll(dicom, params);
    EXPECT_TRUE(HasBoundaryAt(chunks, tag));
    EXPECT_EQ(Concat(chunks), dicom);
    EXPECT_TRUE(ChunkFixed(dicom, params, 1).chunks == chunks);
  }
  EXPECT_EQ(ChunkAll(dicom)[0].size(), tag);
}

}  // namespace
}  // namespace medvfs::store
