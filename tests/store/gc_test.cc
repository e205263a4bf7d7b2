// Garbage collection (Archive::CollectGarbage, ChunkStore's sweep and repack), checked
// against a model: random histories of kept files, scratch files (whose versions become
// garbage) and shared content; after collections every version the model holds reads back
// byte for byte, verify is clean, and the space of what nothing references comes back.
// Writers that run while collections run never lose a chunk they took up.
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/archive.h"
#include "store/archive/archive_testing.h"
#include "store/engine/chunk_store.h"
#include "store/engine/kv_store.h"
#include "store/verify.h"
#include "tests/store/power_loss_fs.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::TempDirTest;

std::string Describe(const VerifyReport& report) {
  std::string text;
  for (const auto& problem : report.problems) text += problem.ToString() + "\n";
  return text;
}

uint64_t PackDirBytes(const std::filesystem::path& archive) {
  uint64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(archive / "packs")) {
    total += entry.file_size();
  }
  return total;
}

// Incompressible bytes: what a stored chunk costs is then what was written.
std::string RandomBytes(size_t n, std::mt19937_64& rng) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

class GcTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    options_.kdf.n = 1 << 10;
    options_.pack_bytes = 256 << 10;  // many packs, so that some are all garbage, some part
    caller_.uid = 1000;
    caller_.gid = 1000;
    caller_.pid = 42;
    caller_.program = "gc-test";
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Create(path(), Key(), options_));
  }
  std::filesystem::path path() const { return dir() / "archive"; }
  static KeySource Key() { return KeySource::Passphrase("gc test"); }

  Status Save(const std::string& name, const std::string& content) {
    return SaveInRoot(*archive_, caller_, name, content, 96 << 10);
  }
  Status SaveIn(Archive& archive, const std::string& name, const std::string& content) {
    return SaveInRoot(archive, caller_, name, content, 96 << 10);
  }
  // Every version of every kept file is the model's, in order.
  void ExpectModel(const std::map<std::string, std::vector<std::string>>& model,
                   const std::string& when) {
    ExpectModelIn(*archive_, model, when);
  }
  static void ExpectModelIn(Archive& archive,
                            const std::map<std::string, std::vector<std::string>>& model,
                            const std::string& when) {
    for (const auto& [name, versions] : model) {
      auto attr = archive.Lookup(kRootInode, name);
      ASSERT_OK(attr) << when << ": " << name;
      auto listed = archive.ListVersions(attr->history);
      ASSERT_OK(listed) << when;
      ASSERT_EQ(listed->size(), versions.size()) << when << ": versions of " << name;
      for (size_t i = 0; i < versions.size(); ++i) {
        EXPECT_TRUE(ReadWholeVersion(archive, attr->history, (*listed)[i].number) == versions[i])
            << when << ": " << name << " version " << (*listed)[i].number << " reads wrong";
      }
    }
  }

  void ExpectClean(const std::string& when) {
    archive_.reset();
    auto report = VerifyArchive(path(), Key());
    ASSERT_OK(report) << when;
    EXPECT_TRUE(report->clean()) << when << ":\n" << Describe(*report);
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), options_));
  }

  GcRequest Everything() const {
    GcRequest request;
    request.repack_garbage_percent = 0;
    request.rate_bytes_per_s = 0;
    return request;
  }

  ArchiveOptions options_;
  Caller caller_;
  std::unique_ptr<Archive> archive_;
};

// Random saves of kept files (some sharing content with each other and with scratch files),
// scratch files saved and deleted (their versions become garbage), collections in between.
TEST_F(GcTest, RandomHistoriesKeepEveryVersionAndGiveScratchSpaceBack) {
  std::mt19937_64 rng(20261207);
  // Blocks the contents are made of: the same block in two files is stored once.
  std::vector<std::string> blocks;
  for (int i = 0; i < 24; ++i) blocks.push_back(RandomBytes(70 << 10, rng));
  auto content = [&] {
    std::string c;
    const int n = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < n; ++i) c += blocks[rng() % blocks.size()];
    if (rng() % 3 == 0) c += RandomBytes(rng() % 200'000, rng);  // bytes only it has
    return c;
  };
  std::map<std::string, std::vector<std::string>> model;
  int collections = 0;
  for (int step = 0; step < 120; ++step) {
    const unsigned what = static_cast<unsigned>(rng() % 10);
    if (what < 5) {
      const std::string name = "kept" + std::to_string(rng() % 5) + ".dat";
      std::string c = content();
      auto& versions = model[name];
      ASSERT_OK(Save(name, c));
      if (versions.empty() || versions.back() != c) versions.push_back(std::move(c));
    } else if (what < 9) {
      // vim's swap file pattern: only its current version is kept, nothing once deleted.
      const std::string name = ".scratch" + std::to_string(rng() % 3) + ".swp";
      ASSERT_OK(Save(name, content()));
      if (rng() % 2 == 0) {
        ASSERT_OK(archive_->Unlink(kRootInode, name, caller_));
      }
    } else {
      ASSERT_OK(archive_->CollectGarbage(Everything(), caller_));
      ++collections;
      ExpectModel(model, "after collection " + std::to_string(collections));
    }
  }
  for (int i = 0; i < 3; ++i) {
    archive_->Unlink(kRootInode, ".scratch" + std::to_string(i) + ".swp", caller_).IgnoreError();
  }
  // Garbage for the last collection whatever the steps left: bytes only a deleted scratch
  // file had, filling sealed packs.
  ASSERT_OK(Save(".last.swp", RandomBytes(700 << 10, rng)));
  ASSERT_OK(archive_->Unlink(kRootInode, ".last.swp", caller_));
  ExpectClean("before the last collection");
  const uint64_t before = PackDirBytes(path());
  ASSERT_OK_AND_ASSIGN(GcResult dry, archive_->CollectGarbage(
                                         [&] {
                                           GcRequest request = Everything();
                                           request.dry_run = true;
                                           return request;
                                         }(),
                                         caller_));
  EXPECT_EQ(PackDirBytes(path()), before) << "a dry run changed the packs";
  ASSERT_OK_AND_ASSIGN(GcResult result, archive_->CollectGarbage(Everything(), caller_));
  EXPECT_GT(result.chunks_dropped + result.dropped_extent_groups + result.packs_removed, 0u);
  EXPECT_EQ(dry.chunks_dropped, result.chunks_dropped);
  EXPECT_EQ(dry.packs_removed, result.packs_removed + result.packs_skipped);
  EXPECT_EQ(result.packs_skipped, 0u);
  const uint64_t after = PackDirBytes(path());
  EXPECT_LT(after, before);
  ExpectModel(model, "after the last collection");
  ExpectClean("after the last collection");
  ExpectModel(model, "after reopening");
  // Nothing is left to drop; the stats tell the last run.
  ASSERT_OK_AND_ASSIGN(GcResult again, archive_->CollectGarbage(Everything(), caller_));
  EXPECT_EQ(again.chunks_dropped, 0u);
  EXPECT_EQ(again.dropped_extent_groups, 0u);
  // A pack holding only live chunks has no garbage, even at --threshold 0: its header,
  // trailer and footer are structure, not garbage. (The pack that was taking appends may have
  // been sealed since, at the reopen, with a released chunk's entry in it.)
  EXPECT_GE(again.packs, 5u);
  EXPECT_LE(again.packs_removed, 1u);
  ASSERT_OK_AND_ASSIGN(ArchiveStats stats, archive_->Stats());
  ASSERT_TRUE(stats.last_gc.has_value());
  EXPECT_EQ(stats.last_gc->chunks_indexed, again.chunks_indexed);
  EXPECT_EQ(stats.chunks, again.chunks_indexed);
}

// The space of a deleted scratch file comes back, as much as it took (within 10%), and what
// is kept costs no more than before.
TEST_F(GcTest, DiskSpaceFallsByWhatNothingReferences) {
  std::mt19937_64 rng(7);
  const std::string kept = RandomBytes(3 << 20, rng);
  ASSERT_OK(Save("kept.dat", kept));
  const uint64_t with_kept = PackDirBytes(path());
  const std::string scratch = RandomBytes(5 << 20, rng);
  ASSERT_OK(Save(".big.swp", scratch));
  ASSERT_OK(archive_->Unlink(kRootInode, ".big.swp", caller_));
  const uint64_t before = PackDirBytes(path());
  ASSERT_GT(before, with_kept + (5 << 20));
  ASSERT_OK_AND_ASSIGN(GcResult result, archive_->CollectGarbage(Everything(), caller_));
  const uint64_t after = PackDirBytes(path());
  const double freed = static_cast<double>(before - after);
  EXPECT_NEAR(freed, static_cast<double>(scratch.size()), 0.1 * static_cast<double>(scratch.size()))
      << "before " << before << ", after " << after;
  EXPECT_NEAR(static_cast<double>(result.bytes_freed), freed, 0.02 * freed);
  EXPECT_LE(after, with_kept + (with_kept / 10));
  ASSERT_OK_AND_ASSIGN(ArchiveStats stats, archive_->Stats());
  // Only the pack still taking appends may hold garbage (it is rewritten once sealed).
  EXPECT_LT(stats.reclaimable_bytes, options_.pack_bytes);
  ExpectModel({{"kept.dat", {kept}}}, "after the collection");
  ExpectClean("after the collection");
}

// Writers save content that duplicates what scratch files just left as garbage while
// collections run back to back: a chunk a writer takes up after a collection's mark must
// never be dropped by its sweep.
TEST_F(GcTest, WritersRacingCollectionsLoseNothing) {
  std::mt19937_64 rng(99);

  std::atomic<bool> done{false};
  std::atomic<int> collections{0};
  Status collector_failed;
  GcRequest request = Everything();
  // Widens the window between the mark and the sweep, where a writer's dedup hit on a chunk
  // the mark found unreferenced must keep it.
  request.progress = [](std::string_view phase, uint64_t, uint64_t) {
    if (phase == "sweep") std::this_thread::sleep_for(std::chrono::milliseconds(3));
  };
  std::thread collector([&] {
    while (!done.load()) {
      auto result = archive_->CollectGarbage(request, caller_);
      if (!result.ok()) {
        collector_failed = result.status();
        return;
      }
      ++collections;
    }
  });
  std::map<std::string, std::vector<std::string>> model;
  for (int round = 0; round < 60; ++round) {
    const std::string c = RandomBytes(150 << 10, rng);
    // The content becomes garbage, then is saved again under a kept name.
    ASSERT_OK(Save(".tmp.swp", c));
    ASSERT_OK(archive_->Unlink(kRootInode, ".tmp.swp", caller_));
    const std::string name = "file" + std::to_string(round % 4) + ".dat";
    ASSERT_OK(Save(name, c));
    auto& versions = model[name];
    if (versions.empty() || versions.back() != c) versions.push_back(c);
  }
  done = true;
  collector.join();
  ASSERT_OK(collector_failed);
  EXPECT_GT(collections.load(), 1);
  ExpectModel(model, "after the race");
  ExpectClean("after the race");
}

// The sweep's rule on its own, without threads: a chunk found unreferenced by the mark is
// kept when a writer takes it up (Put finds it stored) before the sweep.
TEST_F(GcTest, AChunkTakenUpAfterTheMarkIsNotDropped) {
  archive_.reset();
  std::filesystem::create_directories(dir() / "engine");
  KvOpenOptions kv_options;
  kv_options.create = true;
  ASSERT_OK_AND_ASSIGN(auto kv, KvStore::Open(dir() / "engine" / "db", kv_options));
  ChunkStoreOptions chunk_options;
  chunk_options.packs_dir = dir() / "engine" / "packs";
  ASSERT_OK_AND_ASSIGN(auto chunks, ChunkStore::Open(kv.get(), SecretKey::Random(), chunk_options));
  ChunkId taken, left;
  ASSERT_OK(chunks->Put("taken up again", &taken, /*owner=*/1));
  ASSERT_OK(chunks->Put("left alone", &left, /*owner=*/1));
  ASSERT_OK(chunks->MakeDurable());
  chunks->Settle(std::vector<ChunkId>{taken, left});
  chunks->BeginCollection();
  // The mark finds neither referenced; then a writer stores "taken up again" (a dedup hit).
  ChunkId again;
  ASSERT_OK(chunks->Put("taken up again", &again, /*owner=*/2));
  ASSERT_EQ(again, taken);
  ASSERT_OK_AND_ASSIGN(ChunkStore::DropResult dropped,
                       chunks->DropUnreferenced(std::vector<ChunkId>{taken, left}));
  chunks->EndCollection();
  EXPECT_EQ(dropped.chunks, 1u);
  std::shared_ptr<const std::string> read;
  EXPECT_OK(chunks->Get(taken, 14, &read));
  EXPECT_EQ(chunks->Get(left, 10, &read).code(), Code::kCorruption);
}

// Backups around a collection: one taken before it and one after both restore and verify,
// and the one after copies the packs the collection wrote, not the ones it kept.
TEST_F(GcTest, BackupsBeforeAndAfterACollectionRestore) {
  std::mt19937_64 rng(17);
  std::map<std::string, std::vector<std::string>> model;
  for (int i = 0; i < 4; ++i) {
    const std::string name = "kept" + std::to_string(i) + ".dat";
    model[name].push_back(RandomBytes(300 << 10, rng));
    ASSERT_OK(Save(name, model[name].back()));
    ASSERT_OK(Save(".junk.swp", RandomBytes(300 << 10, rng)));
  }
  ASSERT_OK(archive_->Unlink(kRootInode, ".junk.swp", caller_));
  const auto dest = dir() / "backups";
  ASSERT_OK(archive_->Backup(dest, {}, caller_));
  std::set<std::string> backed_up;
  for (const auto& entry : std::filesystem::directory_iterator(dest / "packs")) {
    backed_up.insert(entry.path().filename().string());
  }
  ASSERT_OK_AND_ASSIGN(GcResult result, archive_->CollectGarbage(Everything(), caller_));
  ASSERT_GT(result.packs_removed, 0u);
  model["kept0.dat"].push_back(RandomBytes(100 << 10, rng));
  ASSERT_OK(Save("kept0.dat", model["kept0.dat"].back()));
  uint64_t new_pack_bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(path() / "packs")) {
    if (!backed_up.contains(entry.path().filename().string())) new_pack_bytes += entry.file_size();
  }
  ASSERT_OK_AND_ASSIGN(BackupResult second, archive_->Backup(dest, {}, caller_));
  // The packs the collection kept are not copied again (a little slack for the database
  // files and the seal of the pack still taking appends).
  EXPECT_LT(second.new_bytes, new_pack_bytes + (2u << 20));
  archive_.reset();
  for (uint32_t id : {1u, 2u}) {
    const auto restored = dir() / ("restored-" + std::to_string(id));
    RestoreBackupOptions options;
    options.backup_id = id;
    ASSERT_OK(RestoreBackup(dest, restored, Key(), options, caller_)) << "backup " << id;
    auto report = VerifyArchive(restored, Key());
    ASSERT_OK(report);
    EXPECT_TRUE(report->clean()) << "backup " << id << ":\n" << Describe(*report);
    if (id == 2) {
      ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(restored, Key(), options_));
      ExpectModelIn(*archive, model, "restored backup 2");
    }
  }
}

// A power loss at every write-side file operation of a collection (the sweep's batches, the
// copies, their sync, the switch of the index, the flush, the deletion of old packs), with
// unsynced bytes dropped or torn: afterwards verify is clean before any other open, every
// version reads back, and a collection run again completes the work.
TEST_F(GcTest, APowerLossAtAnyStepOfACollectionLosesNoVersion) {
  archive_.reset();
  std::map<std::string, std::vector<std::string>> model;
  // Kept files and a scratch file's garbage, saved in the same open as the collection: the
  // index records naming the packs it deletes are then still in the live write-ahead log.
  auto populate = [&](Archive& archive) {
    std::mt19937_64 rng(5);
    std::vector<std::string> shared;
    for (int i = 0; i < 4; ++i) shared.push_back(RandomBytes(80 << 10, rng));
    model.clear();
    for (int i = 0; i < 6; ++i) {
      const std::string name = "kept" + std::to_string(i % 3) + ".dat";
      std::string c = shared[static_cast<size_t>(i) % shared.size()] + RandomBytes(100 << 10, rng);
      ASSERT_OK(SaveIn(archive, name, c));
      model[name].push_back(std::move(c));
      ASSERT_OK(
          SaveIn(archive, ".junk.swp",
                 shared[static_cast<size_t>(i + 1) % shared.size()] + RandomBytes(150 << 10, rng)));
    }
    ASSERT_OK(archive.Unlink(kRootInode, ".junk.swp", caller_));
  };
  // Populates a new archive at `where` and collects, with a power loss at write-side
  // operation `crash_point` of the collection (0: none; *operations gets their count).
  auto run = [&](const std::filesystem::path& where, int64_t crash_point, bool torn,
                 int64_t* operations) {
    { ASSERT_OK(Archive::Create(where, Key(), options_)); }
    auto fs = std::make_shared<test_util::PowerLossFileSystem>(rocksdb::FileSystem::Default());
    auto env = rocksdb::NewCompositeEnv(fs);
    {
      auto archive = OpenArchiveWithEnv(where, Key(), options_, env.get());
      ASSERT_OK(archive);
      populate(**archive);
      if (HasFatalFailure()) return;
      ASSERT_OK((*archive)->SyncAll());
      const int64_t before = fs->operations();
      if (crash_point > 0) fs->ArmCrash(crash_point);
      auto result = (*archive)->CollectGarbage(Everything(), caller_);
      if (crash_point == 0) {
        ASSERT_OK(result);
        EXPECT_GT(result->packs_removed, 0u);
      }
      if (operations != nullptr) *operations = fs->operations() - before;
      if (!fs->crashed()) fs->ArmCrash(1);  // the power goes before the archive is closed
    }
    std::mt19937 torn_rng(static_cast<uint32_t>(crash_point));
    fs->DropUnsyncedData(torn ? &torn_rng : nullptr);
  };
  int64_t operations = 0;
  run(dir() / "dry", 0, false, &operations);
  if (HasFatalFailure()) return;
  ASSERT_GT(operations, 10);
  // Every point when there are few, else points spread over the whole collection.
  constexpr int64_t kMaxRounds = 32;
  const int64_t rounds = std::min(operations, kMaxRounds);
  for (int64_t r = 0; r < rounds; ++r) {
    const int64_t point = 1 + (operations - 1) * r / std::max<int64_t>(1, rounds - 1);
    const bool torn = r % 2 == 1;
    const std::string round = "power loss at operation " + std::to_string(point) + " of " +
                              std::to_string(operations) + (torn ? " (torn)" : "");
    const auto where = dir() / ("round-" + std::to_string(r));
    run(where, point, torn, nullptr);
    if (HasFatalFailure()) return;
    auto before_open = VerifyArchive(where, Key());
    ASSERT_OK(before_open) << round;
    EXPECT_TRUE(before_open->clean()) << round << ", verify before any open:\n"
                                      << Describe(*before_open);
    {
      auto archive = Archive::Open(where, Key(), options_);
      ASSERT_OK(archive) << round;
      ExpectModelIn(**archive, model, round);
      ASSERT_OK((*archive)->CollectGarbage(Everything(), caller_)) << round;
      ExpectModelIn(**archive, model, round + ", collected again");
    }
    auto after = VerifyArchive(where, Key());
    ASSERT_OK(after) << round;
    EXPECT_TRUE(after->clean()) << round << ", after collecting again:\n" << Describe(*after);
    std::filesystem::remove_all(where);
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace medvfs::store
