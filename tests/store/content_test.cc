// PendingContent: streaming and overlay writes, truncation, and the incremental rechunking
// that keeps a small edit of a large file cheap.
#include "store/content.h"

#include <random>
#include <set>

#include "store/kv_store.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

class ContentTest : public test_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    KvOpenOptions options;
    options.create = true;
    ASSERT_OK_AND_ASSIGN(kv_, KvStore::Open(dir() / "db", options));
    chunks_ = std::make_unique<ChunkStore>(kv_.get(), data_key_);
  }

  static std::string Random(size_t n, uint32_t seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  }

  std::string ReadAll(const ExtentList& list) {
    std::string out(list.size(), '\0');
    auto n = ReadExtents(*chunks_, list, 0, std::span<char>(out.data(), out.size()));
    EXPECT_OK(n);
    return out;
  }

  SecretKey data_key_ = SecretKey::Random();
  std::unique_ptr<KvStore> kv_;
  std::unique_ptr<ChunkStore> chunks_;
};

TEST_F(ContentTest, SmallEditOfLargeContentReusesAlmostEveryChunk) {
  const std::string original = Random(16 << 20, 1);
  PendingContent writer(chunks_.get(), ExtentList(), 32 << 20);
  for (size_t off = 0; off < original.size(); off += 1 << 20) {
    ASSERT_OK(writer.Write(off, std::string_view(original).substr(off, 1 << 20)));
  }
  ExtentList first;
  Sha256Digest first_sha;
  ASSERT_OK(writer.Finalize(&first, &first_sha));
  EXPECT_EQ(first_sha, Sha256Of(original));

  PendingContent editor(chunks_.get(), first, 32 << 20);
  std::string edited = original;
  const std::string patch = "a change in the middle";
  edited.replace(7 << 20, patch.size(), patch);
  ASSERT_OK(editor.Write(7 << 20, patch));
  ExtentList second;
  Sha256Digest second_sha;
  ASSERT_OK(editor.Finalize(&second, &second_sha));
  EXPECT_EQ(second_sha, Sha256Of(edited));
  EXPECT_EQ(ReadAll(second), edited);

  std::set<ChunkId> before;
  for (const auto& e : first.extents()) before.insert(e.id);
  size_t fresh = 0;
  for (const auto& e : second.extents()) fresh += before.contains(e.id) ? 0 : 1;
  EXPECT_LE(fresh, 2u) << "of " << second.extents().size() << " chunks";
}

TEST_F(ContentTest, OverlayCheckpointsKeepMemoryBoundedAndContentRight) {
  const std::string original = Random(6 << 20, 2);
  PendingContent writer(chunks_.get(), ExtentList(), 256 << 10);  // tiny cap: many checkpoints
  ASSERT_OK(writer.Write(0, original));
  ExtentList base;
  Sha256Digest sha;
  ASSERT_OK(writer.Finalize(&base, &sha));
  PendingContent editor(chunks_.get(), base, 256 << 10);
  std::string expected = original;
  std::mt19937 rng(9);
  for (int i = 0; i < 200; ++i) {
    const size_t off = rng() % (7 << 20);
    const std::string patch = Random(1 + rng() % 9000, static_cast<uint32_t>(i));
    ASSERT_OK(editor.Write(off, patch));
    if (expected.size() < off + patch.size()) expected.resize(off + patch.size(), '\0');
    expected.replace(off, patch.size(), patch);
    if (i == 100) {
      ASSERT_OK(editor.Truncate(3 << 20));
      expected.resize(3 << 20);
    }
  }
  ExtentList result;
  ASSERT_OK(editor.Finalize(&result, &sha));
  EXPECT_EQ(sha, Sha256Of(expected));
  EXPECT_EQ(ReadAll(result), expected);
}

TEST_F(ContentTest, ReadsSeeStreamedBytesBeforeTheyAreStored) {
  PendingContent writer(chunks_.get(), ExtentList(), 32 << 20);
  const std::string data = Random(300000, 3);
  ASSERT_OK(writer.Write(0, data));
  std::string out(data.size(), '\0');
  ASSERT_OK_AND_ASSIGN(size_t n, writer.Read(0, std::span<char>(out.data(), out.size())));
  EXPECT_EQ(n, data.size());
  EXPECT_EQ(out, data);
  // A write behind the stream's end switches to the overlay without losing bytes.
  ASSERT_OK(writer.Write(10, "xyz"));
  std::string expected = data;
  expected.replace(10, 3, "xyz");
  ASSERT_OK_AND_ASSIGN(n, writer.Read(0, std::span<char>(out.data(), out.size())));
  EXPECT_EQ(out, expected);
  ExtentList result;
  Sha256Digest sha;
  ASSERT_OK(writer.Finalize(&result, &sha));
  EXPECT_EQ(ReadAll(result), expected);
}

// Reads of FUSE's read-ahead size fetch the following chunks in the background (ChunkStore::
// ReadAhead). The content read back must be exact, and a store destroyed while read-ahead
// threads still work must wait for them (ASan and TSan builds check the latter).
TEST_F(ContentTest, SequentialReadsWithReadAheadReturnTheContent) {
  const std::string original = Random(8 << 20, 7);
  PendingContent writer(chunks_.get(), ExtentList(), 32 << 20);
  for (size_t off = 0; off < original.size(); off += 1 << 20) {
    ASSERT_OK(writer.Write(off, std::string_view(original).substr(off, 1 << 20)));
  }
  ExtentList content;
  Sha256Digest sha;
  ASSERT_OK(writer.Finalize(&content, &sha));
  for (int round = 0; round < 3; ++round) {
    // A fresh store: an empty cache, so every chunk comes from the disk or the read-ahead.
    ChunkStore cold(kv_.get(), data_key_);
    std::string read(original.size(), '\0');
    constexpr size_t kRead = 128 * 1024;
    for (size_t off = 0; off < read.size(); off += kRead) {
      ASSERT_OK_AND_ASSIGN(
          size_t n, ReadExtents(cold, content, off, std::span<char>(read.data() + off, kRead)));
      ASSERT_EQ(n, kRead);
      if (round == 2 && off >= read.size() / 2) break;  // destroyed mid-stream
    }
    if (round < 2) {
      EXPECT_TRUE(read == original) << "round " << round;
    }
  }
}

// Read-ahead is only a hint: a chunk it cannot read is reported by the reader's own read.
TEST_F(ContentTest, ReadAheadLeavesAMissingChunkToTheReader) {
  const std::string original = Random(1 << 20, 8);
  PendingContent writer(chunks_.get(), ExtentList(), 32 << 20);
  ASSERT_OK(writer.Write(0, original));
  ExtentList content;
  Sha256Digest sha;
  ASSERT_OK(writer.Finalize(&content, &sha));
  ExtentList damaged;
  for (const Extent& extent : content.extents()) damaged.Append(extent);
  Extent missing;
  missing.id.fill(0x5a);
  missing.length = 4096;
  damaged.Append(missing);
  std::string out(original.size(), '\0');
  ASSERT_OK_AND_ASSIGN(size_t n, ReadExtents(*chunks_, damaged, 0, std::span<char>(out)));
  EXPECT_EQ(n, original.size());  // this read asked for the missing chunk to be read ahead
  char tail[4096];
  auto last = ReadExtents(*chunks_, damaged, original.size(), std::span<char>(tail));
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(last.status().code(), Code::kCorruption);
}

}  // namespace
}  // namespace medvfs::store
