// Power loss at chosen points of RocksDB's writes, without FUSE: every save that returned Ok
// must survive, byte for byte, and nothing may half-exist.
//
// Each round opens an archive through PowerLossFileSystem, arms a crash at the n-th write-side
// file operation, saves files until an operation fails, drops everything not synced (or keeps
// a random torn part of it), reopens with the real file system and checks the result.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "store/archive.h"
#include "store/archive/archive_testing.h"
#include "store/verify.h"
#include "tests/store/power_loss_fs.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::PowerLossFileSystem;
using test_util::TempDirTest;

constexpr int kSavesPerRound = 10;
constexpr int kFileNames = 3;

// The content of save number `i`: a header naming it, then bytes only it has. Sizes vary from
// empty to larger than the per-file memory cap below, so some saves store chunks ahead of
// their commit.
std::string SaveContent(int i) {
  static constexpr size_t kSizes[] = {0, 100, 5000, 70'000, 300'000, 700'000};
  std::string content = "save " + std::to_string(i) + "\n";
  std::mt19937 rng(static_cast<uint32_t>(i));
  const size_t size = kSizes[static_cast<size_t>(i) % std::size(kSizes)];
  while (content.size() < size) content += static_cast<char>('a' + rng() % 26);
  return content;
}

// Which save a content is, or -1 if it is not exactly one of them (a half-written version).
int SaveNumberOf(const std::string& content) {
  if (content.rfind("save ", 0) != 0) return -1;
  const size_t newline = content.find('\n');
  if (newline == std::string::npos) return -1;
  const int i = std::stoi(content.substr(5, newline - 5));
  return SaveContent(i) == content ? i : -1;
}

class CrashTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    caller_.uid = 1000;
    caller_.gid = 1000;
    caller_.program = "crash-test";
  }

  static KeySource Key() { return KeySource::Passphrase("crash test"); }

  ArchiveOptions Options(const std::filesystem::path& round_dir) const {
    ArchiveOptions options;
    options.kdf.n = 1 << 10;
    options.max_dirty_bytes_per_file = 128 << 10;
    options.high_water_dir = round_dir / "high-water";  // a crash must not look like a rollback
    return options;
  }

  // One save: create or truncate, write, close. Ok only if every step was.
  Status Save(Archive& archive, const std::string& name, const std::string& content) {
    return SaveInRoot(archive, caller_, name, content);
  }

  // Runs the saves of one round until one fails; returns the acknowledged ones per name, in
  // order.
  std::map<std::string, std::vector<int>> RunSaves(Archive& archive, int* failed_at) {
    std::map<std::string, std::vector<int>> acknowledged;
    *failed_at = -1;
    for (int i = 0; i < kSavesPerRound; ++i) {
      const std::string name = "scan" + std::to_string(i % kFileNames) + ".dat";
      if (!Save(archive, name, SaveContent(i)).ok()) {
        *failed_at = i;
        break;
      }
      acknowledged[name].push_back(i);
    }
    return acknowledged;
  }

  static std::string ReadVersion(Archive& archive, HistoryId history, uint64_t number) {
    return ReadWholeVersion(archive, history, number);
  }

  // After the power loss: every acknowledged save is there in order, every version is exactly
  // one save (the one in flight may be there whole or not at all), and verify is clean.
  void CheckRecovered(const std::filesystem::path& path, const ArchiveOptions& options,
                      const std::map<std::string, std::vector<int>>& acknowledged, int in_flight,
                      const std::string& round) {
    auto reopened = Archive::Open(path, Key(), options);
    ASSERT_TRUE(reopened.ok()) << round << ": " << reopened.status().ToString();
    Archive& archive = **reopened;
    for (int n = 0; n < kFileNames; ++n) {
      const std::string name = "scan" + std::to_string(n) + ".dat";
      const auto expected = acknowledged.find(name);
      auto attr = archive.Lookup(kRootInode, name);
      if (!attr.ok()) {
        EXPECT_TRUE(expected == acknowledged.end()) << round << ": " << name << " is gone";
        continue;
      }
      if (attr->history == 0) continue;  // created, never committed
      // A file created whose first save never committed has a history without versions.
      auto versions = archive.ListVersions(attr->history);
      if (!versions.ok() && versions.status().code() == Code::kNotFound) {
        versions = std::vector<VersionInfo>{};
      }
      ASSERT_TRUE(versions.ok()) << round << ": " << versions.status().ToString();
      std::vector<int> found;
      for (const VersionInfo& version : *versions) {
        const int i = SaveNumberOf(ReadVersion(archive, attr->history, version.number));
        EXPECT_GE(i, 0) << round << ": " << name << " version " << version.number
                        << " is not any whole save";
        found.push_back(i);
      }
      std::vector<int> want =
          expected == acknowledged.end() ? std::vector<int>{} : expected->second;
      // The save in flight at the crash may have committed: then it is the last version.
      if (found.size() == want.size() + 1 && found.back() == in_flight) found.pop_back();
      EXPECT_EQ(found, want) << round << ": versions of " << name;
    }
    reopened->reset();
    auto report = VerifyArchive(path, Key());
    ASSERT_TRUE(report.ok()) << round << ": " << report.status().ToString();
    EXPECT_TRUE(report->clean()) << round << ": verify found " << report->errors << " errors, "
                                 << (report->problems.empty() ? std::string()
                                                              : report->problems[0].what);
  }

  // Counts the write-side operations of one crash-free round.
  int64_t OperationsOfARound() {
    const auto path = dir() / "dry-run" / "archive";
    std::filesystem::create_directories(path.parent_path());
    auto fs = std::make_shared<PowerLossFileSystem>(rocksdb::FileSystem::Default());
    auto env = rocksdb::NewCompositeEnv(fs);
    const ArchiveOptions options = Options(path.parent_path());
    { EXPECT_OK(CreateArchiveWithEnv(path, Key(), options, env.get())); }
    auto archive = OpenArchiveWithEnv(path, Key(), options, env.get());
    EXPECT_OK(archive);
    if (!archive.ok()) return 0;
    const int64_t before = fs->operations();  // the crash rounds arm after opening
    int failed_at = 0;
    RunSaves(**archive, &failed_at);
    EXPECT_EQ(failed_at, -1);
    return fs->operations() - before;
  }

  void CrashRound(int64_t crash_point, bool torn_tail, uint32_t seed) {
    const std::string round = "crash at operation " + std::to_string(crash_point) +
                              (torn_tail ? " (torn tail, seed " + std::to_string(seed) + ")" : "");
    const auto round_dir = dir() / ("round-" + std::to_string(crash_point) + "-" +
                                    std::to_string(static_cast<int>(torn_tail)));
    const auto path = round_dir / "archive";
    std::filesystem::create_directories(round_dir);
    { ASSERT_OK(Archive::Create(path, Key(), Options(round_dir))); }

    auto fs = std::make_shared<PowerLossFileSystem>(rocksdb::FileSystem::Default());
    auto env = rocksdb::NewCompositeEnv(fs);
    std::map<std::string, std::vector<int>> acknowledged;
    int failed_at = -1;
    {
      auto archive = OpenArchiveWithEnv(path, Key(), Options(round_dir), env.get());
      ASSERT_OK(archive);
      fs->ArmCrash(crash_point);
      acknowledged = RunSaves(**archive, &failed_at);
      // Closing on a dead disk fails quietly; what matters is what reached the disk.
    }
    ASSERT_TRUE(fs->crashed()) << round << ": the crash point was never reached";
    std::mt19937 rng(seed);
    fs->DropUnsyncedData(torn_tail ? &rng : nullptr);
    env.reset();
    CheckRecovered(path, Options(round_dir), acknowledged, failed_at, round);
  }

  // --- Within a commit interval (ArchiveOptions::commit_interval_ms) ---

  // One save as above; with `durable`, fsync()ed before it counts as acknowledged.
  Status SaveAndMaybeSync(Archive& archive, const std::string& name, const std::string& content,
                          bool durable) {
    MEDVFS_RETURN_IF_ERROR(Save(archive, name, content));
    if (!durable) return Status::Ok();
    auto attr = archive.Lookup(kRootInode, name);
    if (!attr.ok()) return attr.status();
    auto handle = archive.Open(attr->ino, O_RDONLY, caller_);
    if (!handle.ok()) return handle.status();
    return (*handle)->Sync(caller_);
  }

  // After a power loss within a commit interval: the saves that survived, over all names, are
  // the first k of the acknowledged ones in the order they were made (never a later save
  // without an earlier one), k covers every save fsync()ed, each version is exactly one save,
  // and verify is clean.
  void CheckPrefixRecovered(const std::filesystem::path& path, const ArchiveOptions& options,
                            int acknowledged, int last_durable, const std::string& round) {
    auto reopened = Archive::Open(path, Key(), options);
    ASSERT_TRUE(reopened.ok()) << round << ": " << reopened.status().ToString();
    Archive& archive = **reopened;
    std::vector<int> survived;
    for (int n = 0; n < kFileNames; ++n) {
      const std::string name = "scan" + std::to_string(n) + ".dat";
      auto attr = archive.Lookup(kRootInode, name);
      if (!attr.ok() || attr->history == 0) continue;
      auto versions = archive.ListVersions(attr->history);
      if (!versions.ok() && versions.status().code() == Code::kNotFound) continue;
      ASSERT_TRUE(versions.ok()) << round << ": " << versions.status().ToString();
      int previous = -1;
      for (const VersionInfo& version : *versions) {
        const int i = SaveNumberOf(ReadVersion(archive, attr->history, version.number));
        ASSERT_GE(i, 0) << round << ": " << name << " version " << version.number
                        << " is not any whole save";
        EXPECT_GT(i, previous) << round << ": " << name << " versions out of order";
        EXPECT_EQ(i % kFileNames, n) << round << ": save " << i << " under " << name;
        previous = i;
        survived.push_back(i);
      }
    }
    std::sort(survived.begin(), survived.end());
    for (size_t k = 0; k < survived.size(); ++k) {
      ASSERT_EQ(survived[k], static_cast<int>(k))
          << round << ": save " << survived[k] << " survived without save " << k;
    }
    // The save in flight at the crash may be there too.
    EXPECT_LE(static_cast<int>(survived.size()), acknowledged + 1) << round;
    EXPECT_GT(static_cast<int>(survived.size()), last_durable)
        << round << ": save " << last_durable << " was fsync()ed and is gone";
    reopened->reset();
    auto report = VerifyArchive(path, Key());
    ASSERT_TRUE(report.ok()) << round << ": " << report.status().ToString();
    EXPECT_TRUE(report->clean()) << round << ": verify found " << report->errors << " errors, "
                                 << (report->problems.empty() ? std::string()
                                                              : report->problems[0].what);
  }

  // Saves with a commit interval until the crash point; every `sync_every`-th save (0: none)
  // is fsync()ed. Returns the acknowledged count and the last fsync()ed save (-1: none).
  void RunIntervalSaves(Archive& archive, int saves, int sync_every, int* acknowledged,
                        int* last_durable) {
    *acknowledged = 0;
    *last_durable = -1;
    for (int i = 0; i < saves; ++i) {
      const bool durable = sync_every > 0 && i % sync_every == sync_every - 1;
      const std::string name = "scan" + std::to_string(i % kFileNames) + ".dat";
      if (!SaveAndMaybeSync(archive, name, SaveContent(i), durable).ok()) return;
      *acknowledged = i + 1;
      if (durable) *last_durable = i;
    }
  }

  ArchiveOptions IntervalOptions(const std::filesystem::path& round_dir, uint32_t interval_ms) {
    ArchiveOptions options = Options(round_dir);
    options.commit_interval_ms = interval_ms;
    return options;
  }

  void IntervalCrashRound(int64_t crash_point, uint32_t interval_ms, int sync_every, bool torn_tail,
                          uint32_t seed) {
    const std::string round = "interval " + std::to_string(interval_ms) + " ms, crash at " +
                              std::to_string(crash_point) +
                              (torn_tail ? ", torn tails (seed " + std::to_string(seed) + ")" : "");
    const auto round_dir =
        dir() / ("interval-" + std::to_string(interval_ms) + "-" + std::to_string(crash_point) +
                 "-" + std::to_string(static_cast<int>(torn_tail)) + "-" + std::to_string(seed));
    const auto path = round_dir / "archive";
    std::filesystem::create_directories(round_dir);
    { ASSERT_OK(Archive::Create(path, Key(), Options(round_dir))); }
    auto fs = std::make_shared<PowerLossFileSystem>(rocksdb::FileSystem::Default());
    auto env = rocksdb::NewCompositeEnv(fs);
    int acknowledged = 0;
    int last_durable = -1;
    {
      auto archive =
          OpenArchiveWithEnv(path, Key(), IntervalOptions(round_dir, interval_ms), env.get());
      ASSERT_OK(archive);
      fs->ArmCrash(crash_point);
      RunIntervalSaves(**archive, kIntervalSaves, sync_every, &acknowledged, &last_durable);
      if (!fs->crashed()) fs->ArmCrash(1);  // power lost before the archive is closed
    }
    std::mt19937 rng(seed);
    fs->DropUnsyncedData(torn_tail ? &rng : nullptr);
    env.reset();
    // An admin's first step after a power loss: verify, before any mount. It replays the log
    // as the mount will (dropping the commits whose pack bytes were lost), so it finds the
    // archive clean, and changes nothing.
    auto before_mount = VerifyArchive(path, Key());
    ASSERT_TRUE(before_mount.ok()) << round << ": " << before_mount.status().ToString();
    EXPECT_TRUE(before_mount->clean())
        << round << ": verify before the mount found " << before_mount->errors << " errors, "
        << (before_mount->problems.empty() ? std::string() : before_mount->problems[0].what);
    CheckPrefixRecovered(path, Options(round_dir), acknowledged, last_durable, round);
  }
  static constexpr int kIntervalSaves = 24;

  Caller caller_;
};

TEST_F(CrashTest, EveryAcknowledgedSaveSurvivesAPowerLossAtAnyWrite) {
  const int64_t operations = OperationsOfARound();
  ASSERT_GT(operations, 20) << "the workload does too few writes to crash in";
  // Points spread over the whole round, each once with unsynced data dropped and once with a
  // torn tail kept.
  constexpr int kRounds = 12;
  for (int r = 0; r < kRounds; ++r) {
    const int64_t point = 1 + (operations - 1) * r / (kRounds - 1);
    CrashRound(point, /*torn_tail=*/false, 0);
    if (HasFatalFailure()) return;
    CrashRound(point, /*torn_tail=*/true, static_cast<uint32_t>(r + 1));
    if (HasFatalFailure()) return;
  }
}

// The durability half of the contract on its own: with the crash after the last save, a power
// loss that drops all unsynced data keeps every save (each commit synced the log).
TEST_F(CrashTest, CommittedSavesNeedNoLaterSync) {
  const auto path = dir() / "archive";
  { ASSERT_OK(Archive::Create(path, Key(), Options(dir()))); }
  auto fs = std::make_shared<PowerLossFileSystem>(rocksdb::FileSystem::Default());
  auto env = rocksdb::NewCompositeEnv(fs);
  std::map<std::string, std::vector<int>> acknowledged;
  {
    auto archive = OpenArchiveWithEnv(path, Key(), Options(dir()), env.get());
    ASSERT_OK(archive);
    int failed_at = 0;
    acknowledged = RunSaves(**archive, &failed_at);
    ASSERT_EQ(failed_at, -1);
    fs->ArmCrash(1);  // the machine stops before the archive is closed
  }
  fs->DropUnsyncedData();
  env.reset();
  CheckRecovered(path, Options(dir()), acknowledged, -1, "power loss after the saves");
}

// Within a commit interval a close() is not durable by itself, but a power loss may only take
// a suffix of the commits: packs and log are written without a sync, so the disk may keep any
// part of either (torn tails keep a random part of each file's unsynced bytes, so the log may
// keep index records whose pack bytes are gone). Interval long enough that only fsync() syncs.
TEST_F(CrashTest, APowerLossWithinTheCommitIntervalKeepsAPrefixOfTheCommits) {
  // The operations of one crash-free round, to spread the crash points over it.
  int64_t operations = 0;
  {
    const auto round_dir = dir() / "interval-dry-run";
    const auto path = round_dir / "archive";
    std::filesystem::create_directories(round_dir);
    { ASSERT_OK(Archive::Create(path, Key(), Options(round_dir))); }
    auto fs = std::make_shared<PowerLossFileSystem>(rocksdb::FileSystem::Default());
    auto env = rocksdb::NewCompositeEnv(fs);
    auto archive = OpenArchiveWithEnv(path, Key(), IntervalOptions(round_dir, 600'000), env.get());
    ASSERT_OK(archive);
    const int64_t before = fs->operations();
    int acknowledged = 0;
    int last_durable = -1;
    RunIntervalSaves(**archive, kIntervalSaves, 5, &acknowledged, &last_durable);
    ASSERT_EQ(acknowledged, kIntervalSaves);
    operations = fs->operations() - before;
  }
  ASSERT_GT(operations, 20);
  constexpr int kRounds = 10;
  for (int r = 0; r < kRounds; ++r) {
    const int64_t point = 1 + (operations - 1) * r / (kRounds - 1);
    IntervalCrashRound(point, 600'000, /*sync_every=*/5, /*torn_tail=*/true,
                       static_cast<uint32_t>(100 + r));
    if (HasFatalFailure()) return;
  }
  // The power loss after the last save: everything since the last fsync may go, as a suffix.
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    IntervalCrashRound(operations + 1000, 600'000, /*sync_every=*/5, /*torn_tail=*/seed > 1, seed);
    if (HasFatalFailure()) return;
  }
}

// The same with the background sync running (5 ms) and no fsync at all: whatever the sync
// thread had made durable when the power went, the archive keeps a prefix.
TEST_F(CrashTest, APowerLossWhileTheBackgroundSyncRunsKeepsAPrefix) {
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    IntervalCrashRound(20 + 37 * seed, 5, /*sync_every=*/0, /*torn_tail=*/true, seed);
    if (HasFatalFailure()) return;
  }
}

// A killed process (the disk keeps every byte written, synced or not) loses nothing that a
// close() within the commit interval acknowledged.
TEST_F(CrashTest, AKilledProcessLosesNoCommitOfTheInterval) {
  const auto path = dir() / "archive";
  { ASSERT_OK(Archive::Create(path, Key(), Options(dir()))); }
  auto fs = std::make_shared<PowerLossFileSystem>(rocksdb::FileSystem::Default());
  auto env = rocksdb::NewCompositeEnv(fs);
  int acknowledged = 0;
  int last_durable = -1;
  {
    auto archive = OpenArchiveWithEnv(path, Key(), IntervalOptions(dir(), 600'000), env.get());
    ASSERT_OK(archive);
    RunIntervalSaves(**archive, kIntervalSaves, 0, &acknowledged, &last_durable);
    ASSERT_EQ(acknowledged, kIntervalSaves);
    fs->ArmCrash(1);  // nothing more reaches the files: not even the close's sync
  }
  env.reset();  // no DropUnsyncedData: the page cache survives a killed process
  std::map<std::string, std::vector<int>> all;
  for (int i = 0; i < kIntervalSaves; ++i) {
    all["scan" + std::to_string(i % kFileNames) + ".dat"].push_back(i);
  }
  CheckRecovered(path, Options(dir()), all, -1, "killed within the commit interval");
}

}  // namespace
}  // namespace medvfs::store
