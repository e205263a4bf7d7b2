// PackStore on its own: appends read back, packs seal at their size, and the recovery at open
// cuts exactly what a crash left torn, keeps whole unindexed entries as orphans, and never
// cuts an entry the index refers to.
#include "store/engine/pack_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "tests/store/pack_files.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

class PackStoreTest : public test_util::TempDirTest {
 protected:
  std::filesystem::path packs_dir() const { return dir() / "packs"; }

  std::unique_ptr<PackStore> Open(const std::vector<KnownPack>& known = {},
                                  std::vector<RecoveredPack>* recovered = nullptr,
                                  uint64_t seal_bytes = 1 << 20) {
    PackStoreOptions options;
    options.seal_bytes = seal_bytes;
    std::vector<RecoveredPack> ignored;
    auto store = PackStore::Open(packs_dir(), key_, options, known,
                                 recovered != nullptr ? recovered : &ignored);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  static ChunkId IdOf(int i) {
    ChunkId id{};
    id[0] = static_cast<uint8_t>(i);
    id[1] = static_cast<uint8_t>(i >> 8);
    id[31] = 0x5a;
    return id;
  }
  static std::string Payload(int i, size_t size) {
    std::mt19937 rng(static_cast<uint32_t>(i));
    std::string s(size, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    return s;
  }

  // Appends chunk i (a payload of `size` bytes) and returns where it went.
  PackLocation Append(PackStore& store, int i, size_t size = 50000, uint64_t writer = 1) {
    PackLocation at;
    EXPECT_OK(store.Append(writer, IdOf(i), static_cast<uint32_t>(size), kEncodingRaw,
                           Payload(i, size), &at));
    return at;
  }

  void ExpectReads(PackStore& store, const PackLocation& at, int i, size_t size = 50000) {
    PackEntryInfo info;
    std::string payload;
    ASSERT_OK(store.Read(at, IdOf(i), &info, &payload));
    EXPECT_EQ(payload, Payload(i, size)) << "chunk " << i;
  }

  SecretKey key_ = SecretKey::Random();
};

TEST_F(PackStoreTest, AppendsReadBackAndPacksSealAtTheirSize) {
  std::vector<PackLocation> at;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 50; ++i) at.push_back(Append(*store, i));  // ~2.5 MiB: packs of 1 MiB
    ASSERT_OK(store->Sync());
    for (int i = 0; i < 50; ++i) ExpectReads(*store, at[static_cast<size_t>(i)], i);
    EXPECT_GE(store->TakeSealed().size(), 2u);
  }
  // One writer's chunks lie in order, one after the other.
  for (size_t i = 1; i < at.size(); ++i) {
    if (at[i].pack == at[i - 1].pack) {
      EXPECT_EQ(at[i].offset, at[i - 1].end());
    }
  }
  // Reopened with every pack known and fully indexed: nothing is cut, everything reads.
  std::vector<KnownPack> known;
  for (uint64_t pack = 1; pack <= at.back().pack; ++pack) {
    uint64_t end = 0;
    for (const auto& a : at) {
      if (a.pack == pack) end = a.end();
    }
    known.push_back(KnownPack{pack, pack < at.back().pack, end});
  }
  std::vector<RecoveredPack> recovered;
  auto store = Open(known, &recovered);
  ASSERT_NE(store, nullptr);
  for (const auto& r : recovered) {
    EXPECT_EQ(r.cut_bytes, 0u);
    EXPECT_EQ(r.orphan_entries, 0u);
  }
  for (int i = 0; i < 50; ++i) ExpectReads(*store, at[static_cast<size_t>(i)], i);
  // A sealed pack's trailer lists exactly its entries.
  PackStore::ScanResult scanned;
  int entries = 0;
  ASSERT_OK(store->ScanPack(
      1,
      [&](const PackEntryInfo&, const Status& s, std::string_view) {
        EXPECT_OK(s);
        ++entries;
      },
      &scanned));
  EXPECT_TRUE(scanned.sealed);
  EXPECT_GT(entries, 10);
}

// A crash in the middle of an append: the entry's tail never reached the disk. The torn
// bytes are cut at the next open, whole entries after the indexed end are kept as orphans,
// and the pack takes appends again right after them.
TEST_F(PackStoreTest, TornTailIsCutAndWholeUnindexedEntriesAreOrphans) {
  std::vector<PackLocation> at;
  {
    auto store = Open();
    for (int i = 0; i < 5; ++i) at.push_back(Append(*store, i));
    ASSERT_OK(store->Sync());
  }
  const std::filesystem::path file = packs_dir() / PackFileName(1);
  const uint64_t torn_size = at[4].offset + 1000;  // entry 4 cut after 1000 bytes
  std::filesystem::resize_file(file, torn_size);
  // The index knows entries 0 and 1; 2 and 3 are whole but unindexed; 4 is torn.
  std::vector<RecoveredPack> recovered;
  auto store = Open({KnownPack{1, false, at[1].end()}}, &recovered);
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].orphan_entries, 2u);
  EXPECT_EQ(recovered[0].orphan_bytes, uint64_t{at[2].length} + at[3].length);
  EXPECT_EQ(recovered[0].cut_bytes, 1000u);
  EXPECT_EQ(std::filesystem::file_size(file), at[3].end());
  ExpectReads(*store, at[0], 0);
  ExpectReads(*store, at[3], 3);
  const PackLocation next = Append(*store, 9);
  EXPECT_EQ(next.pack, 1u);
  EXPECT_EQ(next.offset, at[3].end());
  ASSERT_OK(store->Sync());
  ExpectReads(*store, next, 9);
}

// A crash while sealing: part of the trailer was written. The next open cuts it (it is not an
// entry), the pack takes appends again, and seals whole later.
TEST_F(PackStoreTest, CrashWhileSealingCutsThePartialTrailer) {
  std::vector<PackLocation> at;
  {
    auto store = Open();
    for (int i = 0; i < 30 && (at.empty() || at.back().pack == 1); ++i)
      at.push_back(Append(*store, i));
  }
  ASSERT_EQ(at.back().pack, 2u);  // pack 1 sealed after its last entry
  at.pop_back();
  const std::filesystem::path file = packs_dir() / PackFileName(1);
  std::filesystem::resize_file(file, at.back().end() + 20);  // the trailer, cut
  std::vector<RecoveredPack> recovered;
  auto store = Open({KnownPack{1, false, at.back().end()}}, &recovered);
  ASSERT_NE(store, nullptr);
  ASSERT_FALSE(recovered.empty());
  EXPECT_EQ(recovered[0].pack, 1u);
  EXPECT_EQ(recovered[0].cut_bytes, 20u);
  EXPECT_FALSE(recovered[0].sealed_on_disk);
  for (size_t i = 0; i < at.size(); ++i) ExpectReads(*store, at[i], static_cast<int>(i));
  // Full already: it is sealed again at once, whole.
  PackStore::ScanResult scanned;
  ASSERT_OK(store->ScanPack(
      1, [](const PackEntryInfo&, const Status& s, std::string_view) { EXPECT_OK(s); }, &scanned));
  EXPECT_TRUE(scanned.sealed);
}

// Damage before the indexed end is never "cut": the pack is left exactly as it is (verify
// reports it), and what is intact still reads.
TEST_F(PackStoreTest, DamageBeforeTheIndexedEndIsNeverCut) {
  std::vector<PackLocation> at;
  {
    auto store = Open();
    for (int i = 0; i < 4; ++i) at.push_back(Append(*store, i));
    ASSERT_OK(store->Sync());
  }
  const std::filesystem::path file = packs_dir() / PackFileName(1);
  const uint64_t size = std::filesystem::file_size(file);
  test_util::OverwriteInFile(file, at[1].offset, "XXXX");  // entry 1's magic
  std::vector<RecoveredPack> recovered;
  auto store = Open({KnownPack{1, false, at[3].end()}}, &recovered);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(std::filesystem::file_size(file), size);
  ExpectReads(*store, at[0], 0);
  ExpectReads(*store, at[3], 3);
  PackEntryInfo info;
  std::string payload;
  EXPECT_EQ(store->Read(at[1], IdOf(1), &info, &payload).code(), Code::kCorruption);
  // New chunks go to a new pack.
  EXPECT_NE(Append(*store, 7).pack, 1u);
}

// A flipped bit anywhere in an entry is kCorruption, and so is an entry read at another
// offset or under another id (the seal binds both).
TEST_F(PackStoreTest, FlippedBitsAndMisplacedReadsAreCorruption) {
  auto store = Open();
  const PackLocation a = Append(*store, 1);
  const PackLocation b = Append(*store, 2);
  ASSERT_OK(store->Sync());
  PackEntryInfo info;
  std::string payload;
  EXPECT_EQ(store->Read(a, IdOf(2), &info, &payload).code(), Code::kCorruption);
  store.reset();
  // Entry a copied over entry b (the same length): read where b was, it claims chunk 1 with a
  // whole, once-valid seal, but the seal binds the offset.
  const std::filesystem::path file = packs_dir() / PackFileName(a.pack);
  const std::string bytes = test_util::ReadWholeFile(file);
  ASSERT_EQ(a.length, b.length);
  test_util::OverwriteInFile(file, b.offset, bytes.substr(a.offset, a.length));
  {
    auto moved = Open({KnownPack{1, false, b.end()}});
    EXPECT_EQ(moved->Read(b, IdOf(1), &info, &payload).code(), Code::kCorruption);
    ExpectReads(*moved, a, 1);
  }
  for (const auto& entry : test_util::PackEntriesOnDisk(dir()))
    test_util::FlipBitInPackEntry(entry);
  auto reopened = Open({KnownPack{1, false, b.end()}});
  EXPECT_EQ(reopened->Read(a, IdOf(1), &info, &payload).code(), Code::kCorruption);
  EXPECT_EQ(reopened->Read(b, IdOf(2), &info, &payload).code(), Code::kCorruption);
}

}  // namespace
}  // namespace medvfs::store
