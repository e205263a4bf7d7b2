// The audit log: append and scan, the hash chain against tampering (through KvStore, as an
// attacker with the database would), the store's own events, read-only opens, failed unlocks
// and rollback detection with high-water marks.
#include "store/audit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "store/archive.h"
#include "store/archive/records.h"
#include "store/engine/kv_store.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::TempDirTest;

class AuditTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    options_.kdf.n = 1 << 10;
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Create(path(), Key(), options_));
    caller_.uid = 1000;
    caller_.gid = 1001;
    caller_.pid = 42;
    caller_.program = "test";
  }
  std::filesystem::path path() const { return dir() / "archive"; }
  static KeySource Key() { return KeySource::Passphrase("correct horse"); }

  void Reopen() {
    archive_.reset();
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), options_));
  }

  AuditEvent Event(AuditOp op, std::string path_in_archive, uint32_t uid = 1000,
                   int64_t time_ns = 0) {
    AuditEvent event;
    event.time_ns = time_ns;
    event.uid = uid;
    event.gid = 100;
    event.pid = 7;
    event.program = "cat";
    event.op = op;
    event.path = std::move(path_in_archive);
    return event;
  }

  std::vector<AuditEntry> Entries(const AuditFilter& filter = {}) {
    std::vector<AuditEntry> entries;
    Status s = archive_->ScanAudit(filter, [&](const AuditEntry& e) {
      entries.push_back(e);
      return true;
    });
    EXPECT_OK(s);
    return entries;
  }

  // The entries the store recorded with `op`.
  std::vector<AuditEntry> EntriesWith(AuditOp op) {
    std::vector<AuditEntry> all = Entries();
    std::vector<AuditEntry> matching;
    std::copy_if(all.begin(), all.end(), std::back_inserter(matching),
                 [op](const AuditEntry& e) { return e.op == op; });
    return matching;
  }

  void RecordN(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_OK(archive_->RecordAudit(Event(AuditOp::kOpenRead, "/f" + std::to_string(i))));
    }
  }

  // Closes the archive, lets `damage` change the database directly, and opens it again.
  template <typename Damage>
  void Tamper(Damage&& damage) {
    archive_.reset();
    {
      auto kv = KvStore::Open(path() / "db", KvOpenOptions{});
      ASSERT_OK(kv);
      damage(**kv);
    }
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), options_));
  }

  AuditChainReport Verify() {
    auto report = archive_->VerifyAuditChain();
    EXPECT_OK(report);
    return report.ok() ? *report : AuditChainReport{};
  }

  std::unique_ptr<Archive> archive_;
  ArchiveOptions options_;
  Caller caller_;
};

std::string GetValue(KvStore& kv, const std::string& key) {
  std::string value;
  EXPECT_OK(kv.Get(Family::kMeta, key, &value));
  return value;
}

void Delete(KvStore& kv, const std::string& key) {
  KvBatch batch;
  batch.Delete(Family::kMeta, key);
  EXPECT_OK(kv.Write(batch, true));
}

TEST(AuditOpNames, RoundTrip) {
  for (int op = 1; op <= 35; ++op) {
    const auto value = static_cast<AuditOp>(op);
    ASSERT_NE(AuditOpName(value), "unknown") << op;
    EXPECT_EQ(ParseAuditOpName(AuditOpName(value)), value);
  }
  EXPECT_EQ(ParseAuditOpName("nonsense"), std::nullopt);
}

TEST_F(AuditTest, AppendsInOrderAndFilters) {
  ASSERT_OK(archive_->RecordAudit(Event(AuditOp::kOpenRead, "/ct/a.dcm", 1000, 1000)));
  ASSERT_OK(archive_->RecordAudit(Event(AuditOp::kOpenRead, "/ctx/b.dcm", 1000, 2000)));
  AuditEvent rename = Event(AuditOp::kRename, "/tmp/x", 2000, 3000);
  rename.target_path = "/ct/c.dcm";
  ASSERT_OK(archive_->RecordAudit(rename));
  ASSERT_OK(archive_->RecordAudit(Event(AuditOp::kOpenRead, "/ct", 2000, 4000)));
  ASSERT_OK(archive_->RecordAudit(Event(AuditOp::kOpenRead, "/other", 1000, 0)));

  std::vector<AuditEntry> all = Entries();
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].seq, i + 1);
  EXPECT_EQ(all[0].path, "/ct/a.dcm");
  EXPECT_EQ(all[0].program, "cat");
  EXPECT_EQ(all[0].gid, 100u);
  EXPECT_EQ(all[2].target_path, "/ct/c.dcm");
  EXPECT_GT(all[4].time_ns, 1'000'000'000'000'000'000);  // 0 means now

  AuditFilter by_path;
  by_path.path = "/ct";
  std::vector<AuditEntry> under = Entries(by_path);
  ASSERT_EQ(under.size(), 3u);  // a.dcm, the rename into /ct, /ct itself; not /ctx
  EXPECT_EQ(under[0].seq, 1u);
  EXPECT_EQ(under[1].seq, 3u);
  EXPECT_EQ(under[2].seq, 4u);

  AuditFilter by_uid;
  by_uid.uid = 2000;
  EXPECT_EQ(Entries(by_uid).size(), 2u);

  AuditFilter window;
  window.since_ns = 2000;
  window.until_ns = 4000;
  std::vector<AuditEntry> in_window = Entries(window);
  ASSERT_EQ(in_window.size(), 2u);
  EXPECT_EQ(in_window[0].seq, 2u);
  EXPECT_EQ(in_window[1].seq, 3u);

  int visited = 0;
  ASSERT_OK(archive_->ScanAudit({}, [&](const AuditEntry&) { return ++visited < 2; }));
  EXPECT_EQ(visited, 2);
}

TEST_F(AuditTest, ChainIsIntactAndContinuesAcrossOpens) {
  AuditChainReport empty = Verify();
  EXPECT_TRUE(empty.intact);
  EXPECT_EQ(empty.entries, 0u);
  RecordN(4);
  Reopen();
  RecordN(2);
  AuditChainReport report = Verify();
  EXPECT_TRUE(report.intact) << report.problem;
  EXPECT_EQ(report.entries, 6u);
  EXPECT_EQ(report.head_seq, 6u);
  EXPECT_EQ(Entries().back().seq, 6u);
}

TEST_F(AuditTest, DeletedEntryIsDetected) {
  RecordN(5);
  Tamper([](KvStore& kv) { Delete(kv, AuditKey(3)); });
  AuditChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.first_bad_seq, 3u);
  EXPECT_EQ(report.problem, "entry 3 is missing");
}

TEST_F(AuditTest, TruncatedLogIsDetected) {
  RecordN(5);
  Tamper([](KvStore& kv) {
    Delete(kv, AuditKey(5));
    Delete(kv, AuditKey(4));
  });
  AuditChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.first_bad_seq, 4u);
  EXPECT_EQ(report.entries, 3u);
}

TEST_F(AuditTest, AlteredEntryIsDetectedAndNotReturned) {
  RecordN(5);
  Tamper([](KvStore& kv) {
    std::string value = GetValue(kv, AuditKey(2));
    value[value.size() / 2] ^= 0x01;
    EXPECT_OK(kv.Put(Family::kMeta, AuditKey(2), value, true));
  });
  AuditChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.first_bad_seq, 2u);
  EXPECT_NE(report.problem.find("altered"), std::string::npos) << report.problem;
  EXPECT_EQ(archive_->ScanAudit({}, [](const AuditEntry&) { return true; }).code(),
            Code::kCorruption);
}

TEST_F(AuditTest, SwappedEntriesAreDetected) {
  RecordN(5);
  Tamper([](KvStore& kv) {
    const std::string two = GetValue(kv, AuditKey(2));
    const std::string four = GetValue(kv, AuditKey(4));
    EXPECT_OK(kv.Put(Family::kMeta, AuditKey(2), four, true));
    EXPECT_OK(kv.Put(Family::kMeta, AuditKey(4), two, true));
  });
  AuditChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.first_bad_seq, 2u);
}

TEST_F(AuditTest, DeletedHeadIsDetectedAndNothingIsOverwritten) {
  RecordN(5);
  Tamper([](KvStore& kv) { Delete(kv, kAuditHeadKey); });
  AuditChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.first_bad_seq, 6u);
  EXPECT_NE(report.problem.find("head record is missing"), std::string::npos) << report.problem;
  // The log continues after the last entry, never over it.
  RecordN(1);
  EXPECT_EQ(Entries().size(), 6u);
  EXPECT_TRUE(Verify().intact);
}

TEST_F(AuditTest, AlteredHeadIsDetected) {
  RecordN(3);
  Tamper([](KvStore& kv) {
    std::string value = GetValue(kv, kAuditHeadKey);
    value.back() ^= 0x40;
    EXPECT_OK(kv.Put(Family::kMeta, kAuditHeadKey, value, true));
  });
  AuditChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_NE(report.problem.find("head record was altered"), std::string::npos) << report.problem;
}

TEST_F(AuditTest, ForgedEntryBeyondTheHeadIsDetected) {
  RecordN(5);
  Tamper([](KvStore& kv) {
    EXPECT_OK(kv.Put(Family::kMeta, AuditKey(6), GetValue(kv, AuditKey(1)), true));
  });
  AuditChainReport report = Verify();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.first_bad_seq, 6u);
  EXPECT_NE(report.problem.find("beyond the head"), std::string::npos) << report.problem;
}

TEST_F(AuditTest, ConcurrentAppendsKeepTheChain) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 150;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_OK(archive_->RecordAudit(
            Event(AuditOp::kOpenRead, "/t" + std::to_string(t), static_cast<uint32_t>(t))));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  AuditChainReport report = Verify();
  EXPECT_TRUE(report.intact) << report.problem;
  EXPECT_EQ(report.entries, static_cast<uint64_t>(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t) {
    AuditFilter filter;
    filter.uid = static_cast<uint32_t>(t);
    EXPECT_EQ(Entries(filter).size(), static_cast<size_t>(kPerThread));
  }
}

TEST_F(AuditTest, PathOfNamesNodesFromTheRoot) {
  EXPECT_EQ(archive_->PathOf(kRootInode).value(), "/");
  ASSERT_OK_AND_ASSIGN(Attr ct, ReleasedAttr(archive_->MakeDir(kRootInode, "ct", 0755, caller_)));
  ASSERT_OK_AND_ASSIGN(Attr sub, ReleasedAttr(archive_->MakeDir(ct.ino, "sub", 0755, caller_)));
  ASSERT_OK_AND_ASSIGN(
      Attr file, ReleasedAttr(archive_->MakeNode(sub.ino, "a.dcm", S_IFREG | 0644, 0, caller_)));
  ASSERT_OK_AND_ASSIGN(Attr link,
                       ReleasedAttr(archive_->MakeSymlink(ct.ino, "l", "sub/a.dcm", caller_)));
  EXPECT_EQ(archive_->PathOf(sub.ino).value(), "/ct/sub");
  EXPECT_EQ(archive_->PathOf(file.ino).value(), "/ct/sub/a.dcm");
  EXPECT_EQ(archive_->PathOf(link.ino).value(), "/ct/l");
  ASSERT_OK(archive_->Rename(ct.ino, "sub", kRootInode, "moved", 0, caller_));
  EXPECT_EQ(archive_->PathOf(file.ino).value(), "/moved/a.dcm");
  EXPECT_EQ(archive_->PathOf(999).status().code(), Code::kNotFound);
}

TEST_F(AuditTest, StoreRecordsItsOwnEvents) {
  ASSERT_OK_AND_ASSIGN(Attr ct, ReleasedAttr(archive_->MakeDir(kRootInode, "ct", 0755, caller_)));
  ASSERT_OK_AND_ASSIGN(
      Attr file, ReleasedAttr(archive_->MakeNode(ct.ino, "a.dcm", S_IFREG | 0644, 0, caller_)));
  {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(file.ino, O_WRONLY, caller_));
    ASSERT_OK(handle->Write(0, "content one"));
    ASSERT_OK(handle->Flush(caller_));
  }
  ASSERT_OK(archive_->Rename(ct.ino, "a.dcm", ct.ino, "b.dcm", 0, caller_));
  SetAttrRequest chmod;
  chmod.mode = 0640;
  ASSERT_OK(archive_->SetAttr(file.ino, chmod, caller_));
  SetAttrRequest chown;
  chown.uid = 7;
  chown.gid = 8;
  ASSERT_OK(archive_->SetAttr(file.ino, chown, caller_));
  SetAttrRequest truncate;
  truncate.size = 3;
  ASSERT_OK(archive_->SetAttr(file.ino, truncate, caller_));
  ASSERT_OK(archive_->SetXattr(file.ino, "user.reviewed", "secret value", 0, caller_));
  ASSERT_OK(archive_->RemoveXattr(file.ino, "user.reviewed", caller_));
  ASSERT_OK(archive_->SetNote(file.history, 1, "a note", caller_));
  ASSERT_OK(archive_->Unlink(ct.ino, "b.dcm", caller_));
  ASSERT_OK(archive_->Restore(file.history, 1, caller_));
  EXPECT_EQ(archive_->Unlink(ct.ino, "missing", caller_).code(), Code::kNotFound);

  auto one = [&](AuditOp op) {
    std::vector<AuditEntry> entries = EntriesWith(op);
    EXPECT_EQ(entries.size(), 1u) << AuditOpName(op);
    return entries.empty() ? AuditEntry{} : entries[0];
  };
  EXPECT_EQ(one(AuditOp::kMkdir).path, "/ct");
  const AuditEntry created = one(AuditOp::kCreate);
  EXPECT_EQ(created.path, "/ct/a.dcm");
  EXPECT_EQ(created.uid, 1000u);
  EXPECT_EQ(created.gid, 1001u);
  EXPECT_EQ(created.pid, 42u);
  EXPECT_EQ(created.program, "test");
  EXPECT_EQ(created.result, 0);
  const AuditEntry commit = one(AuditOp::kCommit);
  EXPECT_EQ(commit.path, "/ct/a.dcm");
  EXPECT_EQ(commit.version, 1u);
  const AuditEntry renamed = one(AuditOp::kRename);
  EXPECT_EQ(renamed.path, "/ct/a.dcm");
  EXPECT_EQ(renamed.target_path, "/ct/b.dcm");
  EXPECT_EQ(one(AuditOp::kChmod).detail, "0640");
  EXPECT_EQ(one(AuditOp::kChmod).path, "/ct/b.dcm");
  EXPECT_EQ(one(AuditOp::kChown).detail, "7:8");
  const AuditEntry truncated = one(AuditOp::kTruncate);
  EXPECT_EQ(truncated.detail, "3");
  EXPECT_EQ(truncated.version, 2u);
  EXPECT_EQ(one(AuditOp::kSetXattr).detail, "user.reviewed");
  EXPECT_EQ(one(AuditOp::kRemoveXattr).detail, "user.reviewed");
  const AuditEntry note = one(AuditOp::kNote);
  EXPECT_EQ(note.version, 1u);
  EXPECT_EQ(note.detail.find("a note"), std::string::npos);
  std::vector<AuditEntry> unlinks = EntriesWith(AuditOp::kUnlink);
  ASSERT_EQ(unlinks.size(), 2u);
  EXPECT_EQ(unlinks[0].path, "/ct/b.dcm");
  EXPECT_EQ(unlinks[0].result, 0);
  EXPECT_EQ(unlinks[1].path, "/ct/missing");
  EXPECT_EQ(unlinks[1].result, ENOENT);
  const AuditEntry restored = one(AuditOp::kRestore);
  EXPECT_EQ(restored.path, "/ct/b.dcm");
  EXPECT_EQ(restored.version, 4u);  // 2 truncate, 3 delete marker, 4 restore
  EXPECT_EQ(restored.detail, "from version 1");
  // No attribute value (possibly patient data) is kept.
  for (const AuditEntry& e : Entries()) {
    EXPECT_EQ(e.detail.find("secret value"), std::string::npos);
  }
  EXPECT_TRUE(Verify().intact);
}

TEST_F(AuditTest, ReadOnlyOpenRefusesChangesButRecords) {
  archive_.reset();
  options_.read_only = true;
  ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), options_));
  EXPECT_TRUE(archive_->read_only());
  EXPECT_EQ(archive_->MakeDir(kRootInode, "d", 0755, caller_).status().code(), Code::kReadOnly);
  ASSERT_OK(archive_->RecordAudit(Event(AuditOp::kOpenRead, "/x")));
  Reopen();
  std::vector<AuditEntry> entries = Entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].op, AuditOp::kMkdir);
  EXPECT_EQ(entries[0].result, EROFS);
  EXPECT_EQ(entries[1].op, AuditOp::kOpenRead);
  EXPECT_TRUE(Verify().intact);
}

TEST_F(AuditTest, NoWritesOpenRecordsNothing) {
  RecordN(2);
  archive_.reset();
  options_.no_writes = true;
  ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), options_));
  EXPECT_TRUE(archive_->read_only());
  EXPECT_EQ(archive_->RecordAudit(Event(AuditOp::kOpenRead, "/x")).code(), Code::kReadOnly);
  EXPECT_EQ(archive_->MakeDir(kRootInode, "d", 0755, caller_).status().code(), Code::kReadOnly);
  EXPECT_EQ(Entries().size(), 2u);
  EXPECT_TRUE(Verify().intact);
}

TEST_F(AuditTest, FailedUnlockIsImportedAtTheNextOpen) {
  archive_.reset();
  auto wrong = Archive::Open(path(), KeySource::Passphrase("wrong"), options_);
  ASSERT_EQ(wrong.status().code(), Code::kWrongKey);
  const std::filesystem::path side = path() / "failed-unlocks";
  ASSERT_TRUE(std::filesystem::exists(side));
  struct stat st {};
  ASSERT_EQ(::stat(side.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const std::string line = test_util::ReadFile(side);
  EXPECT_NE(line.find("uid=" + std::to_string(::getuid())), std::string::npos) << line;
  EXPECT_NE(line.find("pid=" + std::to_string(::getpid())), std::string::npos) << line;

  ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), options_));
  EXPECT_FALSE(std::filesystem::exists(side));
  std::vector<AuditEntry> entries = EntriesWith(AuditOp::kUnlockFailed);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].result, EACCES);
  EXPECT_EQ(entries[0].uid, ::getuid());
  EXPECT_EQ(entries[0].pid, static_cast<uint32_t>(::getpid()));
  EXPECT_FALSE(entries[0].program.empty());
  EXPECT_TRUE(Verify().intact);
}

class HighWaterTest : public AuditTest {
 protected:
  void SetUp() override {
    AuditTest::SetUp();
    options_.high_water_dir = dir() / "state" / "high-water";
    Reopen();
  }
  std::filesystem::path MarkFile() const {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(options_.high_water_dir)) {
      files.push_back(entry.path());
    }
    EXPECT_EQ(files.size(), 1u);
    return files.empty() ? std::filesystem::path() : files[0];
  }
  // Copies the closed archive aside, then lets `later` change the real one.
  void KeepOldCopy() {
    archive_.reset();
    std::filesystem::copy(path(), dir() / "old", std::filesystem::copy_options::recursive);
  }
  void PutOldCopyBack() {
    archive_.reset();
    std::filesystem::remove_all(path());
    std::filesystem::rename(dir() / "old", path());
  }
};

TEST_F(HighWaterTest, MarkIsPrivate) {
  struct stat st {};
  ASSERT_EQ(::stat(options_.high_water_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat(MarkFile().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(HighWaterTest, RolledBackArchiveIsRefusedUnlessAccepted) {
  RecordN(2);
  KeepOldCopy();
  Reopen();
  RecordN(5);
  PutOldCopyBack();
  auto refused = Archive::Open(path(), Key(), options_);
  ASSERT_EQ(refused.status().code(), Code::kRolledBack);
  EXPECT_NE(refused.status().message().find("audit entry 2, mark 7"), std::string::npos)
      << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("--accept-rollback"), std::string::npos);

  options_.accept_rollback = true;
  ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), options_));
  std::vector<AuditEntry> accepted = EntriesWith(AuditOp::kRollbackAccepted);
  ASSERT_EQ(accepted.size(), 1u);
  EXPECT_EQ(accepted[0].detail, "head 2, mark 7");
  EXPECT_EQ(accepted[0].seq, 3u);
  // The mark was lowered: the restored copy opens without --accept-rollback from now on.
  options_.accept_rollback = false;
  Reopen();
  EXPECT_TRUE(Verify().intact);
}

TEST_F(HighWaterTest, OldCopyGrownPastTheMarkIsRefused) {
  RecordN(2);
  KeepOldCopy();
  Reopen();
  RecordN(3);
  PutOldCopyBack();
  // Used without the mark (medvfs log, say) until its log is longer than the mark.
  ArchiveOptions unchecked = options_;
  unchecked.high_water_dir.clear();
  ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), unchecked));
  RecordN(10);
  archive_.reset();
  auto refused = Archive::Open(path(), Key(), options_);
  ASSERT_EQ(refused.status().code(), Code::kRolledBack);
  EXPECT_NE(refused.status().message().find("differs"), std::string::npos)
      << refused.status().ToString();
}

TEST_F(HighWaterTest, TamperedMarkIsRefused) {
  RecordN(3);
  archive_.reset();
  const std::filesystem::path mark = MarkFile();
  std::string text = test_util::ReadFile(mark);
  const size_t digit = text.find(" 1 ") + 3;  // the sequence number after the format
  ASSERT_LT(digit, text.size());
  text[digit] = text[digit] == '9' ? '8' : '9';
  test_util::WriteFile(mark, text);
  auto refused = Archive::Open(path(), Key(), options_);
  ASSERT_EQ(refused.status().code(), Code::kRolledBack);
  EXPECT_NE(refused.status().message().find(mark.string()), std::string::npos)
      << refused.status().ToString();
  // The refused open left the file as it was.
  EXPECT_EQ(test_util::ReadFile(mark), text);
}

TEST_F(HighWaterTest, MarkFollowsTheHeadAtClose) {
  RecordN(4);
  archive_.reset();
  const std::string text = test_util::ReadFile(MarkFile());
  EXPECT_NE(text.find(" 4 "), std::string::npos) << text;
}

TEST(DefaultHighWaterDir, HonoursTheStateDirectory) {
  const char* saved = std::getenv("MEDVFS_STATE_DIR");
  const std::string before = saved != nullptr ? saved : "";
  ::setenv("MEDVFS_STATE_DIR", "/srv/state", 1);
  EXPECT_EQ(DefaultHighWaterDir(), std::filesystem::path("/srv/state"));
  ::unsetenv("MEDVFS_STATE_DIR");
  if (::geteuid() == 0) {
    EXPECT_EQ(DefaultHighWaterDir(), std::filesystem::path("/var/lib/medvfs/high-water"));
  } else {
    EXPECT_TRUE(DefaultHighWaterDir().string().ends_with("medvfs/high-water"));
  }
  if (saved != nullptr) ::setenv("MEDVFS_STATE_DIR", before.c_str(), 1);
}

}  // namespace
}  // namespace medvfs::store
