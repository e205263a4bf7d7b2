// PendingContent: streaming and overlay writes, truncation, and the incremental rechunking
// that keeps a small edit of a large file cheap.
#include "store/engine/content.h"

#include <random>
#include <set>

// The heap in use: the sanitizer's allocator counts it under ASan and TSan (where the resident
// size is inflated by shadow memory and quarantine); glibc's mallinfo2 otherwise.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEDVFS_TEST_SANITIZER_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MEDVFS_TEST_SANITIZER_HEAP 1
#endif
#endif
#ifdef MEDVFS_TEST_SANITIZER_HEAP
// From the sanitizer runtime (sanitizer/allocator_interface.h, which GCC 12 does not ship).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#else
#include <malloc.h>
#endif

#include "store/engine/kv_store.h"
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
    ASSERT_OK_AND_ASSIGN(chunks_, OpenChunks());
  }

  // A chunk store on this test's database. A second writable one beside chunks_ needs packs
  // of its own (two stores appending to one pack directory would overwrite each other's);
  // a read_only one may read chunks_'s.
  StatusOr<std::unique_ptr<ChunkStore>> OpenChunks(uint64_t cache_bytes = 32ull << 20,
                                                   bool read_only = false,
                                                   const std::string& packs = "packs") {
    ChunkStoreOptions options;
    options.packs_dir = dir() / packs;
    options.packs.read_only = read_only;
    options.cache_bytes = cache_bytes;
    return ChunkStore::Open(kv_.get(), data_key_, options);
  }

  static std::string Random(size_t n, uint32_t seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  }

  // Reads through `store` (default: chunks_).
  std::string ReadAll(const ExtentList& list, ChunkStore* store = nullptr) {
    std::string out(list.size(), '\0');
    auto n = ReadExtents(store != nullptr ? *store : *chunks_, list, 0,
                         std::span<char>(out.data(), out.size()));
    EXPECT_OK(n);
    return out;
  }

  // When `writer` claims to know its head (KnownHead), it must be the model's; counts both
  // cases, so that a test can show the check ran both ways.
  static void CheckKnownHead(const PendingContent& writer, const std::string& model, int* known,
                             int* unknown) {
    if (const std::string* head = writer.KnownHead()) {
      ++*known;
      ASSERT_EQ(*head, model.substr(0, PendingContent::kHeadBytes));
    } else {
      ++*unknown;
    }
  }

  // Bytes that zstd compresses to almost nothing, yet different from `seed` to `seed`: what the
  // archive stores of them is small, so the heap measured around a writer is the writer's own,
  // not RocksDB's memtable filling with what it stored.
  static std::string Compressible(size_t n, uint32_t seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, 'x');
    for (size_t i = 0; i < n; i += 4096) s[i] = static_cast<char>(rng());
    return s;
  }

  SecretKey data_key_ = SecretKey::Random();
  std::unique_ptr<KvStore> kv_;
  std::unique_ptr<ChunkStore> chunks_;
  bool deferred_ = false;  // Finalize's: no test above kMaxHashedHoleBytes of hole expects it
};

// Heap bytes allocated and not yet freed, by the whole process.
uint64_t HeapBytesInUse() {
#ifdef MEDVFS_TEST_SANITIZER_HEAP
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
#endif
}

// The most the heap grew above its size at construction, over the Sample() calls. A
// measurement, not an estimate: it sees every allocation, the library's included.
class HeapGrowth {
 public:
  HeapGrowth() : baseline_(HeapBytesInUse()) {}
  void Sample() {
    const uint64_t now = HeapBytesInUse();
    if (now > baseline_) peak_ = std::max(peak_, now - baseline_);
  }
  uint64_t peak() const { return peak_; }

 private:
  uint64_t baseline_;
  uint64_t peak_ = 0;
};

// The meter itself: a test that trusts it must be able to see a buffer of a few MiB.
TEST(HeapGrowthTest, SeesABufferOfAFewMebibytes) {
  HeapGrowth growth;
  std::string buffer(8 << 20, 'x');
  growth.Sample();
  EXPECT_GE(growth.peak(), uint64_t{8} << 20) << buffer.size();
  EXPECT_LT(growth.peak(), uint64_t{9} << 20);
}

TEST_F(ContentTest, SmallEditOfLargeContentReusesAlmostEveryChunk) {
  const std::string original = Random(16 << 20, 1);
  PendingContent writer(chunks_.get(), ExtentList(), 32 << 20);
  for (size_t off = 0; off < original.size(); off += 1 << 20) {
    ASSERT_OK(writer.Write(off, std::string_view(original).substr(off, 1 << 20)));
  }
  ExtentList first;
  Sha256Digest first_sha;
  ASSERT_OK(writer.Finalize(&first, &first_sha, &deferred_));
  EXPECT_EQ(first_sha, Sha256Of(original));

  PendingContent editor(chunks_.get(), first, 32 << 20);
  std::string edited = original;
  const std::string patch = "a change in the middle";
  edited.replace(7 << 20, patch.size(), patch);
  ASSERT_OK(editor.Write(7 << 20, patch));
  ExtentList second;
  Sha256Digest second_sha;
  ASSERT_OK(editor.Finalize(&second, &second_sha, &deferred_));
  EXPECT_EQ(second_sha, Sha256Of(edited));
  EXPECT_EQ(ReadAll(second), edited);

  std::set<ChunkId> before;
  for (const auto& e : first.extents()) before.insert(e.id);
  size_t fresh = 0;
  for (const auto& e : second.extents()) fresh += before.contains(e.id) ? 0 : 1;
  EXPECT_LE(fresh, 2u) << "of " << second.extents().size() << " chunks";
}

// Random writes into a 6 MiB file with a 256 KiB dirty-bytes cap: the pages the writer holds
// are stored whenever they exceed the cap, so the heap never grows by much more than the cap
// (and the store's chunk cache, 256 KiB here), whereas the ~100 distinct 64 KiB pages these
// writes touch would be ~6 MiB held at once.
TEST_F(ContentTest, OverlayCheckpointsKeepMemoryBoundedAndContentRight) {
  constexpr uint64_t kCap = 256 << 10;
  constexpr uint64_t kCache = 256 << 10;
  ASSERT_OK_AND_ASSIGN(auto small_cache, OpenChunks(kCache, false, "packs-small-cache"));
  ChunkStore& chunks = *small_cache;
  const std::string original = Compressible(6 << 20, 2);
  PendingContent writer(&chunks, ExtentList(), kCap);
  ASSERT_OK(writer.Write(0, original));
  ExtentList base;
  Sha256Digest sha;
  ASSERT_OK(writer.Finalize(&base, &sha, &deferred_));
  PendingContent editor(&chunks, base, kCap);
  std::string expected = original;
  expected.reserve((7 << 20) + 9000);  // its growth is the test's, not the writer's
  std::mt19937 rng(9);
  HeapGrowth growth;
  for (int i = 0; i < 200; ++i) {
    const size_t off = rng() % (7 << 20);
    const std::string patch = Compressible(1 + rng() % 9000, static_cast<uint32_t>(i));
    ASSERT_OK(editor.Write(off, patch));
    growth.Sample();
    if (expected.size() < off + patch.size()) expected.resize(off + patch.size(), '\0');
    expected.replace(off, patch.size(), patch);
    if (i == 100) {
      ASSERT_OK(editor.Truncate(3 << 20));
      growth.Sample();
      expected.resize(3 << 20);
    }
  }
  ExtentList result;
  ASSERT_OK(editor.Finalize(&result, &sha, &deferred_));
  growth.Sample();
  EXPECT_LE(growth.peak(), kCap + kCache + (1 << 20)) << "heap growth while writing, in bytes";
  EXPECT_EQ(sha, Sha256Of(expected));
  EXPECT_EQ(ReadAll(result, &chunks), expected);
}

// A sequential writer stores chunks as the bytes arrive: writing 48 MiB holds at most one chunk
// (256 KiB) and the extent list, never the file.
TEST_F(ContentTest, StreamingALargeFileKeepsMemoryBounded) {
  constexpr size_t kPiece = 1 << 20;
  constexpr size_t kPieces = 48;
  std::string piece = Compressible(kPiece, 4);
  Sha256 whole;
  // A small chunk cache: not measured.
  ASSERT_OK_AND_ASSIGN(auto small_cache, OpenChunks(256 << 10, false, "packs-small-cache"));
  ChunkStore& chunks = *small_cache;
  PendingContent writer(&chunks, ExtentList(), 32 << 20);
  HeapGrowth growth;
  for (size_t i = 0; i < kPieces; ++i) {
    piece[i] = static_cast<char>('a' + i % 26);  // no two pieces alike
    piece[kPiece - 1 - i] = static_cast<char>('A' + i % 26);
    whole.Update(piece);
    ASSERT_OK(writer.Write(i * kPiece, piece));
    growth.Sample();
  }
  ExtentList content;
  Sha256Digest sha;
  ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
  growth.Sample();
  EXPECT_LE(growth.peak(), uint64_t{4} << 20) << "heap growth while writing, in bytes";
  EXPECT_EQ(content.size(), kPieces * kPiece);
  EXPECT_EQ(sha, whole.Finish());
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
  ASSERT_OK(writer.Finalize(&result, &sha, &deferred_));
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
  ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
  ASSERT_OK(chunks_->MakeDurable());  // indexed, so that another store finds them
  for (int round = 0; round < 3; ++round) {
    // A fresh store: an empty cache, so every chunk comes from the disk or the read-ahead.
    ASSERT_OK_AND_ASSIGN(auto cold_store, OpenChunks(32ull << 20, /*read_only=*/true));
    ChunkStore& cold = *cold_store;
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
  ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
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

// --- Holes (issue 16, item 5) ---------------------------------------------------------------

size_t CountHoles(const ExtentList& list) {
  size_t holes = 0;
  for (const Extent& e : list.extents()) holes += IsHole(e) ? 1 : 0;
  return holes;
}

TEST_F(ContentTest, SizesBeyondTheLimitAreRefusedAtOnce) {
  PendingContent writer(chunks_.get(), ExtentList(), 1 << 20);
  ASSERT_OK(writer.Write(0, "abc"));
  EXPECT_EQ(writer.Truncate(999'999'999'999'999).code(), Code::kTooBig);
  EXPECT_EQ(writer.Write(kMaxFileSize, "x").code(), Code::kTooBig);
  EXPECT_EQ(writer.Write(kMaxFileSize - 1, "xy").code(), Code::kTooBig);
  // Nothing changed, and the content still works.
  EXPECT_EQ(writer.size(), 3u);
  ExtentList content;
  Sha256Digest sha;
  ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
  EXPECT_EQ(sha, Sha256Of("abc"));
}

// A large truncate up and back stores no chunk for the zeros: the hole is extents only.
TEST_F(ContentTest, TruncateUpMakesAHoleThatStoresNothing) {
  const std::string head = Random(100'000, 3);
  PendingContent writer(chunks_.get(), ExtentList(), 1 << 20);
  ASSERT_OK(writer.Write(0, head));
  ExtentList first;
  Sha256Digest sha;
  ASSERT_OK(writer.Finalize(&first, &sha, &deferred_));
  const uint64_t stored_before = chunks_->bytes_written();

  constexpr uint64_t kHuge = uint64_t{200} << 30;  // 200 GiB
  ASSERT_OK(writer.Truncate(kHuge));
  ExtentList content;
  // Finalize hashes the hole (in memory) only when the content is finalized: test the
  // extents through a checkpoint-free path first.
  std::string probe(4096, 'x');
  ASSERT_OK_AND_ASSIGN(size_t n, writer.Read(kHuge - 4096, std::span<char>(probe)));
  EXPECT_EQ(n, 4096u);
  EXPECT_EQ(probe, std::string(4096, '\0'));
  ASSERT_OK(writer.Truncate(head.size() + 10));
  ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
  EXPECT_EQ(sha, Sha256Of(head + std::string(10, '\0')));
  EXPECT_EQ(ReadAll(content), head + std::string(10, '\0'));
  EXPECT_LE(chunks_->bytes_written() - stored_before, 70'000u) << "only the re-cut last chunk";
  EXPECT_EQ(CountHoles(content), 1u);
}

// Differential: a file made with holes (truncate up, seek past the end and write) hashes and
// reads exactly like the same bytes written in full, and its holes cost no chunk.
TEST_F(ContentTest, ContentWithHolesEqualsTheSameBytesWrittenInFull) {
  const std::string a = Random(70'000, 4);
  const std::string b = Random(300'000, 5);
  const uint64_t gap = 5ull << 20;
  std::string plain = a + std::string(gap, '\0') + b;
  const uint64_t tail_hole = 3ull << 20;
  plain += std::string(tail_hole, '\0');

  PendingContent holey(chunks_.get(), ExtentList(), 1 << 20);
  ASSERT_OK(holey.Write(0, a));
  ASSERT_OK(holey.Write(a.size() + gap, b));
  ASSERT_OK(holey.Truncate(plain.size()));
  const uint64_t before = chunks_->bytes_written();
  ExtentList with_holes;
  Sha256Digest holey_sha;
  ASSERT_OK(holey.Finalize(&with_holes, &holey_sha, &deferred_));
  EXPECT_LT(chunks_->bytes_written() - before, 600'000u);
  EXPECT_EQ(CountHoles(with_holes), 2u);

  PendingContent full(chunks_.get(), ExtentList(), 1 << 20);
  ASSERT_OK(full.Write(0, plain));
  ExtentList written;
  Sha256Digest full_sha;
  ASSERT_OK(full.Finalize(&written, &full_sha, &deferred_));

  EXPECT_EQ(holey_sha, full_sha);
  EXPECT_EQ(holey_sha, Sha256Of(plain));
  EXPECT_EQ(with_holes.size(), plain.size());
  EXPECT_TRUE(ReadAll(with_holes) == plain);

  // A write into the hole and one after the end, on top of the stored content.
  PendingContent editor(chunks_.get(), with_holes, 1 << 20);
  const std::string patch = Random(1000, 6);
  ASSERT_OK(editor.Write(a.size() + 1'000'000, patch));
  plain.replace(a.size() + 1'000'000, patch.size(), patch);
  ASSERT_OK(editor.Write(plain.size() + 77, "end"));
  plain += std::string(77, '\0') + "end";
  ExtentList edited;
  Sha256Digest edited_sha;
  ASSERT_OK(editor.Finalize(&edited, &edited_sha, &deferred_));
  EXPECT_EQ(edited_sha, Sha256Of(plain));
  EXPECT_TRUE(ReadAll(edited) == plain);
  EXPECT_EQ(CountHoles(edited), 3u);  // the gap before and after the patch, and the tail
}

// Extent groups with holes survive their record encoding; groups without keep format 1.
TEST_F(ContentTest, ExtentGroupsWithHolesRoundTrip) {
  std::vector<Extent> group;
  Extent data;
  data.id = chunks_->IdOf("data");
  data.length = 4;
  group.push_back(data);
  for (int i = 0; i < 100; ++i) group.push_back({ChunkId{}, kMaxHoleExtent});
  group.push_back({ChunkId{}, 12345});
  group.push_back(data);
  const std::string encoded = Encode(group);
  EXPECT_LT(encoded.size(), 100u);
  std::vector<Extent> decoded;
  ASSERT_OK(Decode(encoded, &decoded));
  ASSERT_EQ(decoded.size(), group.size());
  for (size_t i = 0; i < group.size(); ++i) {
    EXPECT_EQ(decoded[i].id, group[i].id);
    EXPECT_EQ(decoded[i].length, group[i].length);
  }
  const std::vector<Extent> no_holes = {data, data};
  EXPECT_EQ(static_cast<uint8_t>(Encode(no_holes)[0]), 1);
  // A damaged count is refused, never read past.
  std::string damaged = encoded;
  damaged[1] = static_cast<char>(100);
  EXPECT_FALSE(Decode(damaged, &decoded).ok());
}

// --- Deferred digests and content equality (issue 16, item 5) ---------------------------

// A commit of a content that is mostly hole does not hash the zeros it was merely told about.
TEST_F(ContentTest, AHugeHoleDefersTheDigestAndStoresNothing) {
  PendingContent writer(chunks_.get(), ExtentList(), 1 << 20);
  ASSERT_OK(writer.Truncate(200ull << 30));
  const uint64_t before = chunks_->bytes_written();
  ExtentList content;
  Sha256Digest sha;
  bool deferred = false;
  ASSERT_OK(writer.Finalize(&content, &sha, &deferred));
  EXPECT_TRUE(deferred);
  EXPECT_EQ(sha, Sha256Digest{});
  EXPECT_EQ(content.size(), 200ull << 30);
  EXPECT_EQ(chunks_->bytes_written(), before);
  EXPECT_EQ(HoleBytes(content), 200ull << 30);

  // Seek far past the end and write (a streaming writer's file): a hole too, deferred.
  PendingContent seeker(chunks_.get(), ExtentList(), 1 << 20);
  ASSERT_OK(seeker.Write(0, "head"));
  ASSERT_OK(seeker.Write(kMaxHashedHoleBytes + (1 << 20), "tail"));
  ASSERT_OK(seeker.Finalize(&content, &sha, &deferred));
  EXPECT_TRUE(deferred);
  EXPECT_EQ(content.size(), kMaxHashedHoleBytes + (1 << 20) + 4);

  // At most kMaxHashedHoleBytes of hole: hashed at once, as before.
  PendingContent small(chunks_.get(), ExtentList(), 1 << 20);
  ASSERT_OK(small.Write(0, "head"));
  ASSERT_OK(small.Truncate(kMaxHashedHoleBytes));
  ASSERT_OK(small.Finalize(&content, &sha, &deferred));
  EXPECT_FALSE(deferred);
  EXPECT_EQ(sha, Sha256Of("head" + std::string(kMaxHashedHoleBytes - 4, '\0')));
}

TEST_F(ContentTest, HashExtentsHashesHolesAsZerosAndStopsWhenCancelled) {
  const std::string data = Random(300'000, 11);
  PendingContent writer(chunks_.get(), ExtentList(), 1 << 20);
  ASSERT_OK(writer.Write(5 << 20, data));
  ASSERT_OK(writer.Truncate((9 << 20) + 17));
  ExtentList content;
  Sha256Digest sha;
  ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
  std::string plain(5 << 20, '\0');
  plain += data;
  plain.resize((9 << 20) + 17, '\0');
  Sha256Digest hashed;
  ASSERT_OK(HashExtents(*chunks_, content, {}, &hashed));
  EXPECT_EQ(hashed, Sha256Of(plain));
  EXPECT_EQ(hashed, sha);

  int polls = 0;
  Status stopped = HashExtents(
      *chunks_, content, [&] { return ++polls == 3; }, &hashed);
  EXPECT_EQ(stopped.code(), Code::kBusy) << stopped.ToString();
  EXPECT_EQ(polls, 3);
}

// Model-based: SameContent agrees with a byte-by-byte comparison on random sparse contents,
// built in different ways (holes, written zeros, shared and different chunks, sizes).
TEST_F(ContentTest, SameContentAgreesWithByteComparisonOnRandomSparseContents) {
  std::mt19937_64 rng(20261206);
  struct Op {
    uint64_t offset;
    std::string bytes;  // empty: a truncate to `offset`
  };
  auto build = [&](const std::vector<Op>& ops, uint64_t dirty, ExtentList* out) {
    PendingContent writer(chunks_.get(), ExtentList(), dirty);
    for (const Op& op : ops) {
      if (op.bytes.empty()) {
        ASSERT_OK(writer.Truncate(op.offset));
      } else {
        ASSERT_OK(writer.Write(op.offset, op.bytes));
      }
    }
    Sha256Digest sha;
    ASSERT_OK(writer.Finalize(out, &sha, &deferred_));
  };
  int equal_cases = 0;
  int different_cases = 0;
  for (int round = 0; round < 60; ++round) {
    std::vector<Op> ops;
    const int count = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < count; ++i) {
      const uint64_t offset = rng() % (3 << 20);
      if (rng() % 4 == 0) {
        ops.push_back({offset, ""});
      } else {
        const size_t n = 1 + rng() % 200'000;
        ops.push_back({offset, rng() % 3 == 0 ? std::string(n, '\0')
                                              : Random(n, static_cast<uint32_t>(rng()))});
      }
    }
    if (ops.back().bytes.empty() && ops.back().offset == 0) ops.back().offset = 1;
    ExtentList a;
    build(ops, 1 << 20, &a);
    const std::string plain_a = ReadAll(a);
    ASSERT_EQ(plain_a.size(), a.size());

    // The variants: the same operations again; the bytes written in full (the holes become
    // chunks of zeros); a byte changed (maybe inside a hole); one byte longer; other bytes.
    std::vector<ExtentList> variants(5);
    build(ops, 1 << 20, &variants[0]);
    build({{0, plain_a}}, 1 << 20, &variants[1]);
    std::vector<Op> changed = ops;
    const uint64_t at = rng() % plain_a.size();
    changed.push_back({at, std::string(1, static_cast<char>(plain_a[at] ^ (1 + rng() % 255)))});
    build(changed, 1 << 20, &variants[2]);
    std::vector<Op> longer = ops;
    longer.push_back({plain_a.size() + 1, ""});
    build(longer, 1 << 20, &variants[3]);
    build({{0, Random(plain_a.size(), static_cast<uint32_t>(rng()))}}, 1 << 20, &variants[4]);
    for (const ExtentList& b : variants) {
      const bool expected = ReadAll(b) == plain_a;
      (expected ? equal_cases : different_cases)++;
      ASSERT_OK_AND_ASSIGN(const bool same_ab, SameContent(*chunks_, a, b));
      ASSERT_OK_AND_ASSIGN(const bool same_ba, SameContent(*chunks_, b, a));
      EXPECT_EQ(same_ab, expected) << "round " << round;
      EXPECT_EQ(same_ba, expected) << "round " << round;
    }
  }
  // The generator reaches both outcomes often.
  EXPECT_GE(equal_cases, 100);
  EXPECT_GE(different_cases, 150);
}

// Two huge sparse contents are compared without touching their holes: only stored bytes.
TEST_F(ContentTest, SameContentOfHugeHolesReadsOnlyStoredBytes) {
  auto make = [&](char last) {
    PendingContent writer(chunks_.get(), ExtentList(), 1 << 20);
    EXPECT_OK(writer.Write(0, "head"));
    EXPECT_OK(writer.Write(100ull << 30, std::string(1, last)));
    ExtentList content;
    Sha256Digest sha;
    EXPECT_OK(writer.Finalize(&content, &sha, &deferred_));
    EXPECT_TRUE(deferred_);
    return content;
  };
  const ExtentList a = make('x');
  const ExtentList b = make('x');
  const ExtentList c = make('y');
  ASSERT_OK_AND_ASSIGN(const bool ab, SameContent(*chunks_, a, b));
  ASSERT_OK_AND_ASSIGN(const bool ac, SameContent(*chunks_, a, c));
  EXPECT_TRUE(ab);
  EXPECT_FALSE(ac);
}

// Pipelined appends (writes of at least kPipelinedWriteBytes at the streaming end are stored by
// a worker thread after Write returns) against a plain string as the model: random sequences
// of large and small appends, overwrites behind the end, reads, truncates and commits. Every
// read and every commit must see exactly the model's bytes, whatever the worker has done yet;
// and whenever the content claims to know its head (KnownHead), that is the model's head.
TEST_F(ContentTest, PipelinedAppendsAgreeWithAModelUnderRandomOperations) {
  constexpr size_t kLarge = PendingContent::kPipelinedWriteBytes;
  int heads_known = 0;
  int heads_unknown = 0;
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto pick = [&](size_t below) { return static_cast<size_t>(rng() % below); };
    PendingContent writer(chunks_.get(), ExtentList(), 4 << 20);
    std::string model;
    for (int step = 0; step < 60; ++step) {
      const size_t op = pick(100);
      if (op < 45) {  // append: mostly large enough to be pipelined
        const size_t n = op < 35 ? kLarge + pick(3 * kLarge) : 1 + pick(kLarge - 1);
        const std::string data = Random(n, seed * 1000 + static_cast<uint32_t>(step));
        ASSERT_OK(writer.Write(model.size(), data));
        model += data;
      } else if (op < 55 && !model.empty()) {  // overwrite inside: leaves streaming
        const size_t at = pick(model.size());
        const std::string data = Random(1 + pick(2 * kLarge), seed * 2000 + step);
        ASSERT_OK(writer.Write(at, data));
        if (at + data.size() > model.size()) model.resize(at + data.size());
        model.replace(at, data.size(), data);
      } else if (op < 75) {  // read a random range
        const size_t at = model.empty() ? 0 : pick(model.size());
        std::string out(1 + pick(2 * kLarge), '\0');
        ASSERT_OK_AND_ASSIGN(size_t n, writer.Read(at, std::span<char>(out.data(), out.size())));
        ASSERT_EQ(std::string_view(out).substr(0, n), std::string_view(model).substr(at, n));
        ASSERT_EQ(n, std::min(out.size(), model.size() - at));
      } else if (op < 82) {  // truncate, to zero now and then (streaming again)
        const size_t size = pick(4) == 0 ? 0 : pick(model.size() + 1);
        ASSERT_OK(writer.Truncate(size));
        model.resize(size);
      } else {  // commit
        ExtentList content;
        Sha256Digest sha;
        ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
        ASSERT_EQ(content.size(), model.size());
        ASSERT_EQ(ReadAll(content), model);
        if (!deferred_) {
          ASSERT_EQ(sha, Sha256Of(model));
        }
      }
      ASSERT_EQ(writer.size(), model.size());
      ASSERT_NO_FATAL_FAILURE(CheckKnownHead(writer, model, &heads_known, &heads_unknown));
    }
    ExtentList content;
    Sha256Digest sha;
    ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
    EXPECT_EQ(ReadAll(content), model);
  }
  // Both cases occurred, so the check above could have failed.
  EXPECT_GT(heads_known, 20);
  EXPECT_GT(heads_unknown, 20);
}

// KnownHead (what a commit checks for a DICOM header instead of reading the first chunk back)
// against a model, on small contents where writes, truncates and commits often touch the
// first kHeadBytes: whenever the head is claimed known it must be the model's.
TEST_F(ContentTest, KnownHeadAgreesWithAModelUnderRandomSmallOperations) {
  constexpr size_t kHead = PendingContent::kHeadBytes;
  int heads_known = 0;
  int heads_unknown = 0;
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto pick = [&](size_t below) { return static_cast<size_t>(rng() % below); };
    PendingContent writer(chunks_.get(), ExtentList(), 1 << 20);
    std::string model;
    for (int step = 0; step < 40; ++step) {
      const size_t op = pick(100);
      const std::string data = Random(1 + pick(kHead), seed * 1000 + static_cast<uint32_t>(step));
      if (op < 50) {  // append at the end
        ASSERT_OK(writer.Write(model.size(), data));
        model += data;
      } else if (op < 70) {  // write anywhere up to the end (often inside the head)
        const size_t at = pick(model.size() + 1);
        ASSERT_OK(writer.Write(at, data));
        if (at + data.size() > model.size()) model.resize(at + data.size());
        model.replace(at, data.size(), data);
      } else if (op < 85) {  // truncate, often to zero (a new stream)
        const size_t size = pick(3) == 0 ? 0 : pick(model.size() + kHead);
        ASSERT_OK(writer.Truncate(size));
        model.resize(size);
      } else {
        ExtentList content;
        Sha256Digest sha;
        ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
        ASSERT_EQ(ReadAll(content), model);
      }
      SCOPED_TRACE("step " + std::to_string(step));
      ASSERT_NO_FATAL_FAILURE(CheckKnownHead(writer, model, &heads_known, &heads_unknown));
    }
  }
  // Both cases occurred often, so the check above could fail.
  EXPECT_GT(heads_known, 100);
  EXPECT_GT(heads_unknown, 100);
}

// Several writers share one mount-wide budget far smaller than their per-file caps: random
// appends, overwrites, truncates and commits on each must agree with a model of each file,
// the budget must never be exceeded, and it must be whole again once the writers are gone.
TEST_F(ContentTest, WritersSharingAMountWideBudgetStayUnderItAndAgreeWithAModel) {
  constexpr size_t kLarge = PendingContent::kPipelinedWriteBytes;
  constexpr uint64_t kBudget = 6 * 64 * 1024;  // six overlay pages for all of them
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto pick = [&](size_t below) { return static_cast<size_t>(rng() % below); };
    DirtyBudget budget(kBudget);
    {
      constexpr int kWriters = 3;
      std::vector<std::unique_ptr<PendingContent>> writers;
      std::vector<std::string> models(kWriters);
      for (int w = 0; w < kWriters; ++w) {
        writers.push_back(
            std::make_unique<PendingContent>(chunks_.get(), ExtentList(), 32 << 20, &budget));
      }
      for (int step = 0; step < 90; ++step) {
        const size_t w = pick(kWriters);
        PendingContent& writer = *writers[w];
        std::string& model = models[w];
        const size_t op = pick(100);
        const uint32_t data_seed = seed * 100'000 + static_cast<uint32_t>(step);
        if (op < 35) {  // append, pipelined or not
          const std::string data =
              Random(op < 25 ? kLarge + pick(2 * kLarge) : 1 + pick(5000), data_seed);
          ASSERT_OK(writer.Write(model.size(), data));
          model += data;
        } else if (op < 70 && !model.empty()) {  // scattered overwrites: overlay pages
          const size_t at = pick(model.size());
          const std::string data = Random(1 + pick(3 * 64 * 1024), data_seed);
          ASSERT_OK(writer.Write(at, data));
          if (at + data.size() > model.size()) model.resize(at + data.size());
          model.replace(at, data.size(), data);
        } else if (op < 80) {
          const size_t size = pick(5) == 0 ? 0 : pick(model.size() + 1);
          ASSERT_OK(writer.Truncate(size));
          model.resize(size);
        } else {
          ExtentList content;
          Sha256Digest sha;
          ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
          ASSERT_EQ(ReadAll(content), model);
        }
        ASSERT_LE(budget.used(), kBudget);
        std::string out(model.size(), '\0');
        ASSERT_OK_AND_ASSIGN(size_t n, writer.Read(0, std::span<char>(out.data(), out.size())));
        ASSERT_EQ(n, model.size());
        ASSERT_EQ(out, model);
      }
      for (int w = 0; w < kWriters; ++w) {
        ExtentList content;
        Sha256Digest sha;
        ASSERT_OK(writers[w]->Finalize(&content, &sha, &deferred_));
        EXPECT_EQ(ReadAll(content), models[w]);
      }
    }
    EXPECT_EQ(budget.used(), 0u);
  }
}

// A pipelined append that cannot be stored (here: the disk is "full") was acknowledged before
// the failure was known; the next call reports it, no commit is made of the content, and
// nothing written after it is taken either, until Truncate(0) starts over.
TEST_F(ContentTest, AFailedPipelinedAppendIsReportedByTheNextCall) {
  KvOpenOptions options;
  options.create = true;
  options.reserved_bytes = uint64_t{1} << 62;  // every data write is refused: kNoSpace
  ASSERT_OK_AND_ASSIGN(auto full_kv, KvStore::Open(dir() / "full-db", options));
  ChunkStoreOptions chunk_options;
  chunk_options.packs_dir = dir() / "full-packs";
  ASSERT_OK_AND_ASSIGN(auto full_chunks, ChunkStore::Open(full_kv.get(), data_key_, chunk_options));
  for (int reporter = 0; reporter < 3; ++reporter) {
    SCOPED_TRACE("reporter " + std::to_string(reporter));
    PendingContent writer(full_chunks.get(), ExtentList(), 4 << 20);
    const std::string data = Random(PendingContent::kPipelinedWriteBytes * 2, 7);
    ASSERT_OK(writer.Write(0, data));  // queued: the failure is not known yet
    Status reported;
    if (reporter == 0) {
      // Appends keep being accepted only until the failure is seen; it must come out.
      for (int i = 1; i < 64 && reported.ok(); ++i) reported = writer.Write(i * data.size(), data);
    } else if (reporter == 1) {
      std::string out(16, '\0');
      reported = writer.Read(0, std::span<char>(out.data(), out.size())).status();
    } else {
      ExtentList content;
      Sha256Digest sha;
      reported = writer.Finalize(&content, &sha, &deferred_);
    }
    EXPECT_EQ(reported.code(), Code::kNoSpace) << reported.ToString();
    ExtentList content;
    Sha256Digest sha;
    EXPECT_EQ(writer.Finalize(&content, &sha, &deferred_).code(), Code::kNoSpace);
    ASSERT_OK(writer.Truncate(0));  // starts over: empty content commits
    ASSERT_OK(writer.Finalize(&content, &sha, &deferred_));
    EXPECT_EQ(content.size(), 0u);
  }
}

}  // namespace
}  // namespace medvfs::store
