// Lifecycle (Archive::Prune, Purge, SetRetention, SetHold): prune decisions checked against a
// reference model on random histories of known times (a fake clock makes the times), legal
// holds and retention rules that keep what prune would take, compliance rules that nobody can
// shorten, purges that take the ciphertext out of the pack files, disk space that comes back
// with garbage collection, and power losses at every step of prune and its collection.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "store/archive.h"
#include "store/archive/archive_testing.h"
#include "store/verify.h"
#include "tests/store/power_loss_fs.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::TempDirTest;

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kDay = 86'400 * kSecond;

std::atomic<int64_t> fake_now_ns{0};
int64_t FakeNow() { return fake_now_ns.load(); }

// 2025-01-01T00:00:00Z
constexpr int64_t kStart = int64_t{1'735'689'600} * kSecond;

std::string Describe(const VerifyReport& report) {
  std::string text;
  for (const auto& problem : report.problems) text += problem.ToString() + "\n";
  return text;
}

std::string RandomBytes(size_t n, std::mt19937_64& rng) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

uint64_t PackDirBytes(const std::filesystem::path& archive) {
  uint64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(archive / "packs")) {
    total += entry.file_size();
  }
  return total;
}

std::string AllPackBytes(const std::filesystem::path& archive) {
  std::string all;
  for (const auto& entry : std::filesystem::directory_iterator(archive / "packs")) {
    all += test_util::ReadFile(entry.path());
  }
  return all;
}

std::map<std::string, std::string> PackFiles(const std::filesystem::path& archive) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(archive / "packs")) {
    files[entry.path().filename().string()] = test_util::ReadFile(entry.path());
  }
  return files;
}

// --- the reference model of prune's keep options, written with <chrono>'s calendar -----------

struct ModelVersion {
  uint64_t number = 0;
  int64_t time_ns = 0;
  bool marker = false;
  std::string content;
};

struct ModelFile {
  std::string name;
  HistoryId history = 0;
  bool live = true;
  std::vector<ModelVersion> versions;
};

using std::chrono::days;
using std::chrono::floor;
using std::chrono::nanoseconds;
using std::chrono::sys_days;
using std::chrono::sys_time;

sys_days DayOfTime(int64_t time_ns) {
  return floor<days>(sys_time<nanoseconds>(nanoseconds(time_ns)));
}
int64_t DayBucket(int64_t t) { return DayOfTime(t).time_since_epoch().count(); }
int64_t WeekBucket(int64_t t) {
  const sys_days day = DayOfTime(t);
  const sys_days monday = day - (std::chrono::weekday(day) - std::chrono::Monday);
  return monday.time_since_epoch().count();
}
int64_t MonthBucket(int64_t t) {
  const std::chrono::year_month_day ymd(DayOfTime(t));
  return int64_t{static_cast<int>(ymd.year())} * 12 + static_cast<unsigned>(ymd.month());
}

// The numbers prune removes from `file` (no holds, no rules).
std::set<uint64_t> ExpectedRemoved(const ModelFile& file, const PruneRequest& request,
                                   int64_t now) {
  std::vector<const ModelVersion*> newest_first;
  for (auto it = file.versions.rbegin(); it != file.versions.rend(); ++it) {
    if (!it->marker) newest_first.push_back(&*it);
  }
  std::set<uint64_t> removed;
  const ModelVersion& last = file.versions.back();
  if (request.deleted_older_than_s && !file.live && last.marker &&
      now - last.time_ns >= *request.deleted_older_than_s * kSecond) {
    for (const ModelVersion* v : newest_first) removed.insert(v->number);
    return removed;
  }
  const bool keeps = request.keep_last || request.keep_within_s || request.keep_daily ||
                     request.keep_weekly || request.keep_monthly;
  if (!keeps) return removed;
  std::set<uint64_t> keep;
  if (file.live && !newest_first.empty()) keep.insert(newest_first.front()->number);
  for (size_t i = 0; i < newest_first.size(); ++i) {
    const ModelVersion& v = *newest_first[i];
    if (i < request.keep_last) keep.insert(v.number);
    if (request.keep_within_s && now - v.time_ns < *request.keep_within_s * kSecond) {
      keep.insert(v.number);
    }
  }
  auto per_bucket = [&](uint64_t count, int64_t (*bucket)(int64_t)) {
    std::vector<int64_t> seen;
    for (const ModelVersion* v : newest_first) {
      const int64_t b = bucket(v->time_ns);
      if (std::find(seen.begin(), seen.end(), b) != seen.end()) continue;
      seen.push_back(b);
      if (seen.size() > count) return;
      keep.insert(v->number);
    }
  };
  per_bucket(request.keep_daily, DayBucket);
  per_bucket(request.keep_weekly, WeekBucket);
  per_bucket(request.keep_monthly, MonthBucket);
  for (const ModelVersion* v : newest_first) {
    if (!keep.contains(v->number)) removed.insert(v->number);
  }
  return removed;
}

class LifecycleTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fake_now_ns = kStart;
    SetClockForTesting(FakeNow);
    options_.kdf.n = 1 << 10;
    options_.pack_bytes = 256 << 10;
    caller_.uid = 1000;
    caller_.gid = 1000;
    caller_.pid = 42;
    caller_.program = "lifecycle-test";
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Create(path(), Key(), options_));
  }
  void TearDown() override {
    archive_.reset();
    SetClockForTesting(nullptr);
    TempDirTest::TearDown();
  }
  std::filesystem::path path() const { return dir() / "archive"; }
  static KeySource Key() { return KeySource::Passphrase("lifecycle test"); }

  // Saves a new version of file at fake time `time_ns` and records it in the model.
  void SaveAt(ModelFile* file, int64_t time_ns, std::string content, Archive* archive = nullptr) {
    Archive& a = archive != nullptr ? *archive : *archive_;
    fake_now_ns = time_ns;
    ASSERT_OK(SaveInRoot(a, caller_, file->name, content));
    ASSERT_OK_AND_ASSIGN(Attr attr, ReleasedAttr(a.Lookup(kRootInode, file->name)));
    file->history = attr.history;
    file->live = true;
    file->versions.push_back({attr.version, time_ns, false, std::move(content)});
  }
  void DeleteAt(ModelFile* file, int64_t time_ns) {
    fake_now_ns = time_ns;
    ASSERT_OK(archive_->Unlink(kRootInode, file->name, caller_));
    file->live = false;
    file->versions.push_back({file->versions.back().number + 1, time_ns, true, ""});
  }

  // Every version of every file: what the model says was removed is removed (record kept, no
  // content), the rest reads back byte for byte.
  void ExpectFiles(Archive& archive, const std::vector<ModelFile>& files,
                   const std::map<HistoryId, std::set<uint64_t>>& removed, ContentRemoval how,
                   const std::string& when) {
    for (const ModelFile& file : files) {
      ASSERT_OK_AND_ASSIGN(auto listed, archive.ListVersions(file.history));
      ASSERT_EQ(listed.size(), file.versions.size()) << when << ": " << file.name;
      const auto it = removed.find(file.history);
      for (size_t i = 0; i < listed.size(); ++i) {
        const VersionInfo& v = listed[i];
        const ModelVersion& m = file.versions[i];
        ASSERT_EQ(v.number, m.number) << when;
        EXPECT_EQ(v.time_ns, m.time_ns) << when << ": the record of v" << v.number << " stays";
        if (m.marker) continue;
        const bool gone = it != removed.end() && it->second.contains(v.number);
        if (gone) {
          EXPECT_EQ(v.removed, how) << when << ": " << file.name << " v" << v.number;
          EXPECT_EQ(v.removed_by_uid, caller_.uid) << when;
          EXPECT_EQ(archive.OpenVersion(file.history, v.number).status().code(), Code::kNotFound)
              << when << ": " << file.name << " v" << v.number;
        } else {
          EXPECT_FALSE(v.content_removed()) << when << ": " << file.name << " v" << v.number;
          EXPECT_TRUE(ReadWholeVersion(archive, file.history, v.number) == m.content)
              << when << ": " << file.name << " v" << v.number << " reads wrong";
        }
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

  static std::map<HistoryId, std::set<uint64_t>> Numbers(const std::vector<RemovedVersion>& list) {
    std::map<HistoryId, std::set<uint64_t>> numbers;
    for (const RemovedVersion& v : list) numbers[v.history].insert(v.number);
    return numbers;
  }

  ArchiveOptions options_;
  Caller caller_;
  std::unique_ptr<Archive> archive_;
};

// Random histories (versions minutes to weeks apart over about a year, some files deleted)
// and random keep options: a dry run names exactly what the reference model removes, the
// prune removes exactly that, and every other version still reads back.
TEST_F(LifecycleTest, PruneRemovesWhatTheReferenceModelRemoves) {
  std::mt19937_64 rng(2026);
  for (int round = 0; round < 12; ++round) {
    const std::string when = "round " + std::to_string(round);
    archive_.reset();
    std::filesystem::remove_all(path());
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Create(path(), Key(), options_));
    std::vector<ModelFile> files(4);
    int64_t now = kStart;
    for (size_t f = 0; f < files.size(); ++f) {
      files[f].name = "file" + std::to_string(f) + ".dat";
    }
    const int total = 20 + static_cast<int>(rng() % 60);
    for (int i = 0; i < total; ++i) {
      // Gaps from a minute to three weeks: several versions a day, and empty weeks.
      const int64_t gap = rng() % 4 == 0 ? static_cast<int64_t>(rng() % (21 * kDay))
                                         : static_cast<int64_t>(rng() % (6 * 60 * kMinute));
      now += kMinute + gap;
      ModelFile& file = files[rng() % files.size()];
      SaveAt(&file, now, RandomBytes(1024 + rng() % 4096, rng));
      if (HasFatalFailure()) return;
    }
    for (ModelFile& file : files) {
      if (!file.versions.empty() && rng() % 3 == 0) {
        now += static_cast<int64_t>(rng() % (30 * kDay));
        DeleteAt(&file, now);
      }
    }
    std::erase_if(files, [](const ModelFile& f) { return f.versions.empty(); });
    now += static_cast<int64_t>(rng() % (40 * kDay));
    fake_now_ns = now;

    PruneRequest request;
    do {
      if (rng() % 2) request.keep_last = rng() % 5;
      if (rng() % 3 == 0) request.keep_within_s = static_cast<int64_t>(rng() % (60 * 86'400));
      if (rng() % 2) request.keep_daily = rng() % 8;
      if (rng() % 2) request.keep_weekly = rng() % 6;
      if (rng() % 2) request.keep_monthly = rng() % 4;
      if (rng() % 3 == 0) {
        request.deleted_older_than_s = static_cast<int64_t>(rng() % (40 * 86'400));
      }
    } while (!request.keep_last && !request.keep_within_s && !request.keep_daily &&
             !request.keep_weekly && !request.keep_monthly && !request.deleted_older_than_s);
    std::map<HistoryId, std::set<uint64_t>> expected;
    size_t expected_count = 0;
    for (const ModelFile& file : files) {
      std::set<uint64_t> removed = ExpectedRemoved(file, request, now);
      expected_count += removed.size();
      if (!removed.empty()) expected[file.history] = std::move(removed);
    }
    request.dry_run = true;
    ASSERT_OK_AND_ASSIGN(PruneResult dry, archive_->Prune(request, caller_));
    EXPECT_EQ(Numbers(dry.removed), expected) << when << " (dry run)";
    ExpectFiles(*archive_, files, {}, ContentRemoval::kNone, when + ", after the dry run");

    request.dry_run = false;
    ASSERT_OK_AND_ASSIGN(PruneResult pruned, archive_->Prune(request, caller_));
    EXPECT_EQ(pruned.removed.size(), expected_count) << when;
    EXPECT_EQ(Numbers(pruned.removed), expected) << when;
    ExpectFiles(*archive_, files, expected, ContentRemoval::kPruned, when);
    // Pruning again with the same options removes nothing more.
    ASSERT_OK_AND_ASSIGN(PruneResult again, archive_->Prune(request, caller_));
    EXPECT_TRUE(again.removed.empty()) << when;
    if (round % 4 == 0) {
      ASSERT_OK(archive_->CollectGarbage({}, caller_));
      ExpectClean(when);
      ExpectFiles(*archive_, files, expected, ContentRemoval::kPruned, when + ", reopened");
    }
    if (HasFailure()) return;
  }
}

// One version a day at noon for 70 days from Wednesday 2025-01-01, two on the last day; now is
// the day after. Each option alone keeps what restic's documentation says it keeps.
TEST_F(LifecycleTest, EachKeepOptionOnAHistoryOfKnownTimes) {
  ModelFile file;
  file.name = "daily.dat";
  std::mt19937_64 rng(7);
  for (int day = 0; day < 70; ++day) {
    SaveAt(&file, kStart + day * kDay + 12 * 60 * kMinute, RandomBytes(512, rng));
    if (HasFatalFailure()) return;
  }
  SaveAt(&file, kStart + 69 * kDay + 18 * 60 * kMinute, RandomBytes(512, rng));  // v71
  const int64_t now = kStart + 70 * kDay + 12 * 60 * kMinute;
  auto kept_by = [&](PruneRequest request) -> std::set<uint64_t> {
    fake_now_ns = now;
    request.dry_run = true;
    auto result = archive_->Prune(request, caller_);
    EXPECT_OK(result);
    std::set<uint64_t> kept;
    for (uint64_t n = 1; n <= 71; ++n) kept.insert(n);
    if (result.ok()) {
      for (const RemovedVersion& v : result->removed) kept.erase(v.number);
    }
    return kept;
  };
  PruneRequest last;
  last.keep_last = 3;
  EXPECT_EQ(kept_by(last), (std::set<uint64_t>{69, 70, 71}));
  PruneRequest within;
  within.keep_within_s = 2 * 86'400 + 1;  // back to just before noon of day 68
  EXPECT_EQ(kept_by(within), (std::set<uint64_t>{69, 70, 71}));
  PruneRequest daily;
  daily.keep_daily = 3;  // the newest of days 69 (v71), 68 (v69), 67 (v68)
  EXPECT_EQ(kept_by(daily), (std::set<uint64_t>{68, 69, 71}));
  PruneRequest weekly;
  weekly.keep_weekly = 2;
  // Day 69 is Wednesday 2025-03-12; its week began Monday day 68 (v69), the week before ends
  // Sunday day 67 (v68).
  EXPECT_EQ(kept_by(weekly), (std::set<uint64_t>{68, 71}));
  PruneRequest monthly;
  monthly.keep_monthly = 3;  // March: v71; February 28 is day 58 (v59); January 31 day 30 (v31)
  EXPECT_EQ(kept_by(monthly), (std::set<uint64_t>{31, 59, 71}));
}

// A legal hold (on a file, or on a directory above it) and retention rules (governance or
// compliance, on the archive or a subtree) keep versions every prune would remove; released,
// or once old enough, they go.
TEST_F(LifecycleTest, HeldAndRetainedVersionsSurviveEveryPrune) {
  ASSERT_OK_AND_ASSIGN(Attr evidence_dir,
                       ReleasedAttr(archive_->MakeDir(kRootInode, "evidence", 0755, caller_)));
  ASSERT_OK_AND_ASSIGN(Attr kept_dir,
                       ReleasedAttr(archive_->MakeDir(kRootInode, "kept", 0755, caller_)));
  // Four files, five versions a day apart: held.dat (a file hold), evidence/x.dat (a
  // directory hold), kept/y.dat (governance 30 days on kept/), plain.dat (nothing).
  struct File {
    InodeId dir;
    std::string name;
    HistoryId history = 0;
  };
  std::vector<File> files = {{kRootInode, "held.dat"},
                             {evidence_dir.ino, "x.dat"},
                             {kept_dir.ino, "y.dat"},
                             {kRootInode, "plain.dat"}};
  for (int day = 0; day < 5; ++day) {
    fake_now_ns = kStart + day * kDay;
    for (File& file : files) {
      auto existing = archive_->Lookup(file.dir, file.name);
      InodeId ino = existing.ok() ? existing->ino : 0;
      if (ino == 0) {
        ASSERT_OK_AND_ASSIGN(Attr made, ReleasedAttr(archive_->MakeNode(
                                            file.dir, file.name, S_IFREG | 0644, 0, caller_)));
        ino = made.ino;
      }
      ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(ino, O_WRONLY | O_TRUNC, caller_));
      ASSERT_OK(handle->Write(0, file.name + " day " + std::to_string(day)));
      ASSERT_OK(handle->Flush(caller_));
      ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
      file.history = attr.history;
    }
  }
  LegalHold on_file;
  on_file.history = files[0].history;
  on_file.reason = "litigation 2026-17";
  ASSERT_OK(archive_->SetHold(on_file, caller_));
  LegalHold on_dir;
  on_dir.dir = evidence_dir.ino;
  on_dir.reason = "incident review";
  ASSERT_OK(archive_->SetHold(on_dir, caller_));
  RetentionRule rule;
  rule.dir = kept_dir.ino;
  rule.mode = RetentionMode::kGovernance;
  rule.min_age_s = 3 * 86'400 + 1;  // versions of days 2, 3, 4 are younger on day 5
  ASSERT_OK(archive_->SetRetention(rule, caller_));

  // Shown with the versions, counted by stats.
  ASSERT_OK_AND_ASSIGN(auto held_versions, archive_->ListVersions(files[1].history));
  for (const VersionInfo& v : held_versions) EXPECT_EQ(v.hold, "incident review");
  ASSERT_OK_AND_ASSIGN(ArchiveStats stats, archive_->Stats());
  EXPECT_EQ(stats.held_versions, 10u);
  EXPECT_EQ(stats.holds.size(), 2u);
  ASSERT_EQ(stats.retention.size(), 1u);
  EXPECT_EQ(stats.retention[0].path, "/kept");

  fake_now_ns = kStart + 5 * kDay;
  PruneRequest request;
  request.keep_last = 1;
  ASSERT_OK_AND_ASSIGN(PruneResult pruned, archive_->Prune(request, caller_));
  EXPECT_EQ(pruned.held, 8u);      // 4 + 4 of the held files
  EXPECT_EQ(pruned.retained, 2u);  // y.dat of days 2 and 3 (day 4's is the current)
  std::map<HistoryId, std::set<uint64_t>> removed = Numbers(pruned.removed);
  EXPECT_EQ(removed, (std::map<HistoryId, std::set<uint64_t>>{{files[2].history, {1, 2}},
                                                              {files[3].history, {1, 2, 3, 4}}}));
  // Deleted, held files keep everything too (the current version is no more).
  ASSERT_OK(archive_->Unlink(kRootInode, "held.dat", caller_));
  request = PruneRequest{};
  request.deleted_older_than_s = 0;
  ASSERT_OK_AND_ASSIGN(pruned, archive_->Prune(request, caller_));
  EXPECT_TRUE(pruned.removed.empty());
  EXPECT_EQ(pruned.held, 5u);

  // Released, the hold keeps nothing; two days later the rule keeps nothing either.
  ASSERT_OK(archive_->ReleaseHold(files[0].history, 0, caller_));
  EXPECT_EQ(archive_->ReleaseHold(files[0].history, 0, caller_).code(), Code::kNotFound);
  fake_now_ns = kStart + 7 * kDay;
  request = PruneRequest{};
  request.keep_last = 1;
  request.deleted_older_than_s = 0;
  ASSERT_OK_AND_ASSIGN(pruned, archive_->Prune(request, caller_));
  removed = Numbers(pruned.removed);
  EXPECT_EQ(removed, (std::map<HistoryId, std::set<uint64_t>>{{files[0].history, {1, 2, 3, 4, 5}},
                                                              {files[2].history, {3, 4}}}));
  EXPECT_EQ(pruned.held, 4u);  // evidence/x.dat: still held
  ASSERT_OK(archive_->CollectGarbage({}, caller_));
  ExpectClean("after the prunes");
}

// Removing the directories a held or retained file was in (rm -r) does not take it out of
// the hold or the rule: where it was is not known any more, so every hold and rule applies.
TEST_F(LifecycleTest, RemovingTheDirectoriesAboveAFileDoesNotFreeIt) {
  ASSERT_OK_AND_ASSIGN(Attr a, ReleasedAttr(archive_->MakeDir(kRootInode, "a", 0755, caller_)));
  ASSERT_OK_AND_ASSIGN(Attr b, ReleasedAttr(archive_->MakeDir(a.ino, "b", 0755, caller_)));
  ASSERT_OK_AND_ASSIGN(
      Attr file, ReleasedAttr(archive_->MakeNode(b.ino, "x.dat", S_IFREG | 0644, 0, caller_)));
  for (const char* content : {"one", "two"}) {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(file.ino, O_WRONLY | O_TRUNC, caller_));
    ASSERT_OK(handle->Write(0, content));
    ASSERT_OK(handle->Flush(caller_));
  }
  ASSERT_OK_AND_ASSIGN(Attr written, archive_->GetAttr(file.ino));
  LegalHold hold;
  hold.dir = a.ino;
  hold.reason = "case 5";
  ASSERT_OK(archive_->SetHold(hold, caller_));
  ASSERT_OK(archive_->Unlink(b.ino, "x.dat", caller_));
  ASSERT_OK(archive_->RemoveDir(a.ino, "b", caller_));
  PruneRequest request;
  request.deleted_older_than_s = 0;
  ASSERT_OK_AND_ASSIGN(PruneResult pruned, archive_->Prune(request, caller_));
  EXPECT_TRUE(pruned.removed.empty());
  EXPECT_EQ(pruned.held, 2u);
  PurgeRequest purge;
  purge.history = written.history;
  purge.reason = "test";
  EXPECT_EQ(archive_->Purge(purge, caller_).status().code(), Code::kPermission);
  // Released, the file goes.
  ASSERT_OK(archive_->ReleaseHold(0, a.ino, caller_));
  ASSERT_OK_AND_ASSIGN(pruned, archive_->Prune(request, caller_));
  EXPECT_EQ(pruned.removed.size(), 2u);
}

// A whole-file purge of a file with other names refuses before it unlinks anything.
TEST_F(LifecycleTest, APurgeOfAFileWithHardLinksUnlinksNothing) {
  ModelFile file;
  file.name = "linked.dat";
  std::mt19937_64 rng(1);
  SaveAt(&file, kStart, RandomBytes(100, rng));
  ASSERT_OK_AND_ASSIGN(Attr attr, ReleasedAttr(archive_->Lookup(kRootInode, file.name)));
  ASSERT_OK(archive_->Link(attr.ino, kRootInode, "other-name.dat", caller_));
  PurgeRequest purge;
  purge.history = file.history;
  purge.reason = "test";
  EXPECT_EQ(archive_->Purge(purge, caller_).status().code(), Code::kBusy);
  EXPECT_OK(archive_->Lookup(kRootInode, file.name));
  EXPECT_OK(archive_->Lookup(kRootInode, "other-name.dat"));
  ExpectFiles(*archive_, {file}, {}, ContentRemoval::kNone, "after the refused purge");
}

TEST_F(LifecycleTest, AComplianceRuleCannotBeShortenedNorRemovedNorPurgedThrough) {
  RetentionRule rule;
  rule.mode = RetentionMode::kCompliance;
  rule.min_age_s = 10 * 365 * 86'400;
  ASSERT_OK(archive_->SetRetention(rule, caller_));
  RetentionRule shorter = rule;
  shorter.min_age_s = 365 * 86'400;
  EXPECT_EQ(archive_->SetRetention(shorter, caller_).code(), Code::kPermission);
  RetentionRule governance = rule;
  governance.mode = RetentionMode::kGovernance;
  EXPECT_EQ(archive_->SetRetention(governance, caller_).code(), Code::kPermission);
  RetentionRule removal = rule;
  removal.min_age_s = 0;
  EXPECT_EQ(archive_->SetRetention(removal, caller_).code(), Code::kPermission);
  RetentionRule forever = rule;
  forever.min_age_s = kRetainForever;
  ASSERT_OK(archive_->SetRetention(forever, caller_));
  EXPECT_EQ(archive_->SetRetention(rule, caller_).code(), Code::kPermission);
  ASSERT_OK_AND_ASSIGN(auto rules, archive_->ListRetention());
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].min_age_s, kRetainForever);
  EXPECT_EQ(rules[0].mode, RetentionMode::kCompliance);

  // Neither prune nor purge removes anything, a hundred years later.
  ModelFile file;
  file.name = "scan.dat";
  std::mt19937_64 rng(3);
  SaveAt(&file, kStart, RandomBytes(4096, rng));
  SaveAt(&file, kStart + kDay, RandomBytes(4096, rng));
  fake_now_ns = kStart + 100 * 365 * kDay;
  PruneRequest prune;
  prune.keep_last = 1;
  ASSERT_OK_AND_ASSIGN(PruneResult pruned, archive_->Prune(prune, caller_));
  EXPECT_TRUE(pruned.removed.empty());
  EXPECT_EQ(pruned.retained, 1u);
  PurgeRequest purge;
  purge.history = file.history;
  purge.reason = "filed under the wrong patient";
  EXPECT_EQ(archive_->Purge(purge, caller_).status().code(), Code::kPermission);
  purge.number = 1;
  EXPECT_EQ(archive_->Purge(purge, caller_).status().code(), Code::kPermission);
  ExpectFiles(*archive_, {file}, {}, ContentRemoval::kNone, "under compliance");
  // The whole-file purge refused before it unlinked anything.
  EXPECT_OK(archive_->Lookup(kRootInode, file.name));

  // A governance rule may be shortened and removed, and does not stop a purge.
  ASSERT_OK_AND_ASSIGN(Attr sub, ReleasedAttr(archive_->MakeDir(kRootInode, "sub", 0755, caller_)));
  RetentionRule sub_rule;
  sub_rule.dir = sub.ino;
  sub_rule.min_age_s = 30 * 86'400;
  ASSERT_OK(archive_->SetRetention(sub_rule, caller_));
  sub_rule.min_age_s = 86'400;
  ASSERT_OK(archive_->SetRetention(sub_rule, caller_));
  sub_rule.min_age_s = 0;
  ASSERT_OK(archive_->SetRetention(sub_rule, caller_));
  ASSERT_OK_AND_ASSIGN(rules, archive_->ListRetention());
  EXPECT_EQ(rules.size(), 1u);
  // Every change (and refusal) is in the audit log.
  int retention_entries = 0;
  ASSERT_OK(archive_->ScanAudit({}, [&](const AuditEntry& entry) {
    if (entry.op == AuditOp::kRetention) ++retention_entries;
    return true;
  }));
  EXPECT_EQ(retention_entries, 9);
}

// A purged version's chunks leave the pack files (no byte of their ciphertext is left), its
// tags and notes go, the record stays, the audit chain verifies and names the reason, and
// the archive verifies clean.
TEST_F(LifecycleTest, PurgeTakesTheCiphertextOutOfThePackFiles) {
  std::mt19937_64 rng(11);
  ModelFile file;
  file.name = "wrong-patient.dat";
  ModelFile other;
  other.name = "other.dat";
  SaveAt(&other, kStart, RandomBytes(300 << 10, rng));
  const std::map<std::string, std::string> before = PackFiles(path());
  SaveAt(&file, kStart + kMinute, RandomBytes(600 << 10, rng));
  // The bytes v1 appended to the pack files: its chunks' ciphertext.
  std::vector<std::string> samples;
  for (const auto& [name, bytes] : PackFiles(path())) {
    const auto it = before.find(name);
    const size_t from = it == before.end() ? 0 : it->second.size();
    for (size_t offset = from + 64; offset + 48 < bytes.size(); offset += 4096) {
      samples.push_back(bytes.substr(offset, 48));
    }
  }
  ASSERT_GT(samples.size(), 100u);
  SaveAt(&file, kStart + 2 * kMinute, RandomBytes(200 << 10, rng));
  SaveAt(&other, kStart + 3 * kMinute, RandomBytes(100 << 10, rng));
  ASSERT_OK(archive_->SetNote(file.history, 1, "CT of the wrong patient", caller_));

  PurgeRequest request;
  request.history = file.history;
  request.number = 2;  // the current version of a live file: refused
  request.reason = "ticket 4711";
  EXPECT_EQ(archive_->Purge(request, caller_).status().code(), Code::kBusy);
  request.number = 1;
  request.reason.clear();
  EXPECT_EQ(archive_->Purge(request, caller_).status().code(), Code::kInvalid);
  request.reason = "ticket 4711";
  ASSERT_OK_AND_ASSIGN(PurgeResult purged, archive_->Purge(request, caller_));
  ASSERT_EQ(purged.removed.size(), 1u);
  EXPECT_GT(purged.gc.packs_removed, 0u);

  const std::string packs = AllPackBytes(path());
  size_t found = 0;
  for (const std::string& sample : samples) {
    if (packs.find(sample) != std::string::npos) ++found;
  }
  EXPECT_EQ(found, 0u) << "of " << samples.size() << " samples of the purged ciphertext";
  ASSERT_OK_AND_ASSIGN(VersionInfo v1, archive_->GetVersion(file.history, 1));
  EXPECT_EQ(v1.removed, ContentRemoval::kPurged);
  EXPECT_EQ(v1.removed_reason, "ticket 4711");
  EXPECT_EQ(v1.sha256, Sha256Digest{});
  EXPECT_TRUE(v1.note.empty());
  ASSERT_OK_AND_ASSIGN(auto notes, archive_->ListNotes(file.history, 1));
  EXPECT_TRUE(notes.empty());
  std::map<HistoryId, std::set<uint64_t>> removed = {{file.history, {1}}};
  ExpectFiles(*archive_, {file, other}, removed, ContentRemoval::kPurged, "after the purge");

  // The whole file: unlinked first, every version purged.
  request.number.reset();
  ASSERT_OK_AND_ASSIGN(purged, archive_->Purge(request, caller_));
  EXPECT_TRUE(purged.unlinked);
  EXPECT_EQ(archive_->Lookup(kRootInode, file.name).status().code(), Code::kNotFound);
  file.live = false;
  file.versions.push_back({3, kStart + 3 * kMinute, true, ""});
  removed[file.history].insert(2);
  ASSERT_OK_AND_ASSIGN(auto listed, archive_->ListVersions(file.history));
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_TRUE(listed[2].is_delete_marker());
  file.versions[2].time_ns = listed[2].time_ns;
  ExpectFiles(*archive_, {file, other}, removed, ContentRemoval::kPurged, "whole file");

  ASSERT_OK_AND_ASSIGN(AuditChainReport chain, archive_->VerifyAuditChain());
  EXPECT_TRUE(chain.intact);
  int purge_entries = 0;
  ASSERT_OK(archive_->ScanAudit({}, [&](const AuditEntry& entry) {
    if (entry.op == AuditOp::kPurge && entry.result == 0 && entry.detail == "reason: ticket 4711") {
      ++purge_entries;
    }
    return true;
  }));
  EXPECT_EQ(purge_entries, 2);
  ExpectClean("after the purges");
  ExpectFiles(*archive_, {file, other}, removed, ContentRemoval::kPurged, "reopened");
}

// Prune, then collect: the pack files shrink by what the removed versions took (their
// content is incompressible and unshared), within 10%; a backup taken then restores and
// verifies.
TEST_F(LifecycleTest, DiskSpaceFallsByWhatPruneRemovedAndABackupAfterRestores) {
  std::mt19937_64 rng(5);
  std::vector<ModelFile> files(3);
  uint64_t removed_bytes = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    files[f].name = "series" + std::to_string(f) + ".dat";
    for (int v = 0; v < 5; ++v) {
      const size_t size = (400 + rng() % 400) << 10;
      if (v < 4) removed_bytes += size;
      SaveAt(&files[f], kStart + (f * 5 + v) * kMinute, RandomBytes(size, rng));
      if (HasFatalFailure()) return;
    }
  }
  ASSERT_OK(archive_->SyncAll());
  const uint64_t before = PackDirBytes(path());
  PruneRequest request;
  request.keep_last = 1;
  ASSERT_OK_AND_ASSIGN(PruneResult pruned, archive_->Prune(request, caller_));
  EXPECT_EQ(pruned.removed.size(), 12u);
  EXPECT_EQ(pruned.removed_bytes, removed_bytes);
  ASSERT_OK(archive_->CollectGarbage({}, caller_));
  const uint64_t after = PackDirBytes(path());
  const double fell = static_cast<double>(before) - static_cast<double>(after);
  EXPECT_NEAR(fell, static_cast<double>(removed_bytes), 0.1 * static_cast<double>(removed_bytes))
      << "before " << before << ", after " << after;
  std::map<HistoryId, std::set<uint64_t>> removed = Numbers(pruned.removed);
  const auto dest = dir() / "backups";
  ASSERT_OK(archive_->Backup(dest, {}, caller_));
  archive_.reset();
  const auto restored = dir() / "restored";
  ASSERT_OK(RestoreBackup(dest, restored, Key(), {}, caller_));
  auto report = VerifyArchive(restored, Key());
  ASSERT_OK(report);
  EXPECT_TRUE(report->clean()) << Describe(*report);
  ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(restored, Key(), options_));
  ExpectFiles(*archive, files, removed, ContentRemoval::kPruned, "restored backup");
}

// A power loss at every write-side file operation of prune and the collection after it
// (unsynced bytes dropped or torn): verify is clean before any other open, no version the
// prune keeps is lost, and each version is either still whole or removed; pruning and
// collecting again completes the work.
TEST_F(LifecycleTest, APowerLossAtAnyStepOfPruneLosesNoKeptVersion) {
  archive_.reset();
  std::vector<ModelFile> files;
  auto populate = [&](Archive& archive) {
    std::mt19937_64 rng(9);
    files.assign(3, ModelFile{});
    for (size_t f = 0; f < files.size(); ++f) {
      files[f].name = "f" + std::to_string(f) + ".dat";
      for (int v = 0; v < 4; ++v) {
        SaveAt(&files[f], kStart + static_cast<int64_t>(f * 4 + v) * kMinute,
               RandomBytes(120 << 10, rng), &archive);
        if (HasFatalFailure()) return;
      }
    }
  };
  PruneRequest request;
  request.keep_last = 2;
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
      auto pruned = (*archive)->Prune(request, caller_);
      if (pruned.ok()) {
        GcRequest gc;
        gc.repack_garbage_percent = 0;
        gc.rate_bytes_per_s = 0;
        auto collected = (*archive)->CollectGarbage(gc, caller_);
        if (crash_point == 0) {
          ASSERT_OK(collected);
        }
      }
      if (crash_point == 0) {
        ASSERT_OK(pruned);
      }
      if (operations != nullptr) *operations = fs->operations() - before;
      if (!fs->crashed()) fs->ArmCrash(1);
    }
    std::mt19937 torn_rng(static_cast<uint32_t>(crash_point));
    fs->DropUnsyncedData(torn ? &torn_rng : nullptr);
  };
  int64_t operations = 0;
  run(dir() / "dry", 0, false, &operations);
  if (HasFatalFailure()) return;
  ASSERT_GT(operations, 5);
  constexpr int64_t kMaxRounds = 24;
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
      ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(where, Key(), options_));
      for (const ModelFile& file : files) {
        ASSERT_OK_AND_ASSIGN(auto listed, archive->ListVersions(file.history));
        ASSERT_EQ(listed.size(), file.versions.size()) << round;
        for (size_t i = 0; i < listed.size(); ++i) {
          const bool must_stay = i + 2 >= listed.size();
          if (listed[i].content_removed()) {
            EXPECT_FALSE(must_stay) << round << ": " << file.name << " v" << listed[i].number;
          } else {
            EXPECT_TRUE(ReadWholeVersion(*archive, file.history, listed[i].number) ==
                        file.versions[i].content)
                << round << ": " << file.name << " v" << listed[i].number;
          }
        }
      }
      ASSERT_OK(archive->Prune(request, caller_)) << round;
      ASSERT_OK(archive->CollectGarbage({}, caller_)) << round;
      std::map<HistoryId, std::set<uint64_t>> removed;
      for (const ModelFile& file : files) removed[file.history] = {1, 2};
      ExpectFiles(*archive, files, removed, ContentRemoval::kPruned, round + ", pruned again");
    }
    auto after = VerifyArchive(where, Key());
    ASSERT_OK(after) << round;
    EXPECT_TRUE(after->clean()) << round << ", after pruning again:\n" << Describe(*after);
    std::filesystem::remove_all(where);
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace medvfs::store
