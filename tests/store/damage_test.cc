// Storage damage is never silent: a damaged write-ahead log refuses the open (and is not
// mistaken for a rollback), a damaged table block becomes kCorruption instead of an abort,
// records put back from an older copy or deleted refuse the open and are found by verify (the
// state digest), and a record that cannot be sealed fails its batch.
#include <fcntl.h>
#include <rocksdb/options.h>
#include <rocksdb/table_properties.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <random>

#include "store/archive.h"
#include "store/archive/records.h"
#include "store/engine/kv_store.h"
#include "store/verify.h"
#include "tests/store/pack_files.h"
#include "tests/store/test_util.h"

namespace medvfs::store {

void FailRecordSealsForTesting(int count);  // store/archive/archive_open.cc

namespace {

using test_util::TempDirTest;

std::string RandomContent(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

std::string Describe(const VerifyReport& report) {
  std::string out;
  for (const VerifyProblem& p : report.problems) out += p.ToString() + "\n";
  return out;
}

bool HasProblem(const VerifyReport& report, std::string_view where_prefix,
                std::string_view what_part) {
  return std::any_of(report.problems.begin(), report.problems.end(), [&](const VerifyProblem& p) {
    return p.severity == VerifyProblem::Severity::kError && p.where.starts_with(where_prefix) &&
           p.what.find(what_part) != std::string::npos;
  });
}

bool MentionsRollback(const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("roll") != std::string::npos;
}

class DamageTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    options_.kdf.n = 1 << 10;
    options_.high_water_dir = dir() / "state";
    caller_.uid = 1000;
    caller_.gid = 1000;
    caller_.program = "test";
    ASSERT_OK_AND_ASSIGN(auto archive, Archive::Create(path(), Key(), options_));
    // Closed without a flush: everything below is only in the write-ahead log.
    scan_ = Save(*archive, kRootInode, "scan.dcm", RandomContent(200000, 1));
    for (uint32_t i = 2; i <= 6; ++i)
      Save(*archive, kRootInode, "scan.dcm", RandomContent(200000, i));
    ASSERT_OK(archive->SetNote(scan_.history, 2, "a note", caller_));
    // The log holds records only (chunks go to pack files): more saves spread it over several
    // of its 32 KiB blocks, so that damage in its middle has committed versions after it in
    // blocks of their own (damage that leaves nothing readable after it is a torn tail).
    for (int i = 0; i < 150; ++i) {
      Save(*archive, kRootInode, "report" + std::to_string(i) + ".txt",
           "report " + std::to_string(i));
    }
  }

  std::filesystem::path path() const { return dir() / "archive"; }
  std::filesystem::path db() const { return path() / "db"; }
  static KeySource Key() { return KeySource::Passphrase("correct horse"); }

  Attr Save(Archive& archive, InodeId dir, const std::string& name, const std::string& content) {
    InodeId ino = 0;
    auto existing = archive.Lookup(dir, name);
    if (existing.ok()) {
      ino = existing->ino;
    } else {
      auto made = archive.MakeNode(dir, name, S_IFREG | 0644, 0, caller_);
      EXPECT_OK(made);
      if (!made.ok()) return {};
      ino = made->ino;
    }
    auto handle = archive.Open(ino, O_WRONLY | O_TRUNC, caller_);
    EXPECT_OK(handle);
    if (!handle.ok()) return {};
    EXPECT_OK((*handle)->Write(0, content));
    EXPECT_OK((*handle)->Flush(caller_));
    auto attr = archive.GetAttr(ino);
    EXPECT_OK(attr);
    return attr.ok() ? *attr : Attr{};
  }

  std::vector<std::filesystem::path> DbFiles(const std::filesystem::path& db_dir,
                                             const std::string& extension) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(db_dir)) {
      if (entry.path().extension() == extension) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
  }

  // The closed archive's database opened writable (which flushes its log into table files).
  std::unique_ptr<KvStore> OpenDb(const std::filesystem::path& db_dir) {
    auto kv = KvStore::Open(db_dir, {});
    EXPECT_OK(kv);
    return kv.ok() ? std::move(kv).value() : nullptr;
  }

  // The whole current content of /scan.dcm through the archive.
  Status ReadScan(Archive& archive) {
    MEDVFS_ASSIGN_OR_RETURN(auto handle, archive.Open(scan_.ino, O_RDONLY, caller_));
    std::string buffer(1 << 16, '\0');
    uint64_t offset = 0;
    while (true) {
      MEDVFS_ASSIGN_OR_RETURN(size_t n, handle->Read(offset, std::span<char>(buffer)));
      if (n == 0) return Status::Ok();
      offset += n;
    }
  }

  ArchiveOptions options_;
  Caller caller_;
  Attr scan_;
};

TEST_F(DamageTest, FlippedWalByteRefusesTheOpenAndVerifyNamesIt) {
  std::vector<std::filesystem::path> logs = DbFiles(db(), ".log");
  ASSERT_EQ(logs.size(), 1u);
  std::string bytes = test_util::ReadFile(logs[0]);
  ASSERT_GT(bytes.size(), 3u * 32768) << "the versions should still be in the log";
  // In the middle: committed versions follow the damage.
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
  test_util::WriteFile(logs[0], bytes);

  auto opened = Archive::Open(path(), Key(), options_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Code::kCorruption) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find("write-ahead log"), std::string::npos)
      << opened.status().ToString();
  EXPECT_NE(opened.status().message().find(logs[0].filename().string()), std::string::npos)
      << opened.status().ToString();
  EXPECT_FALSE(MentionsRollback(opened.status().message())) << opened.status().ToString();
  // Nothing was cut or deleted: the damaged log is still there, as it was.
  EXPECT_EQ(test_util::ReadFile(logs[0]), bytes);

  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(HasProblem(report, "database write-ahead log", "damaged")) << Describe(report);
  EXPECT_TRUE(report.audit_checked) << Describe(report);  // up to the damage
  EXPECT_EQ(test_util::ReadFile(logs[0]), bytes);

  // The explicit way out keeps what precedes the damage and records the loss.
  ArchiveOptions accept = options_;
  accept.accept_wal_damage = true;
  ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(path(), Key(), accept));
  bool recorded = false;
  ASSERT_OK(archive->ScanAudit({}, [&](const AuditEntry& entry) {
    if (entry.op == AuditOp::kWalDamageAccepted) recorded = true;
    return true;
  }));
  EXPECT_TRUE(recorded);
}

TEST_F(DamageTest, TornLogTailStillOpens) {
  // What a crash in the middle of a log write leaves: the last record incomplete.
  std::vector<std::filesystem::path> logs = DbFiles(db(), ".log");
  ASSERT_EQ(logs.size(), 1u);
  std::string bytes = test_util::ReadFile(logs[0]);
  bytes.resize(bytes.size() - 3);
  test_util::WriteFile(logs[0], bytes);
  ArchiveOptions no_mark = options_;
  no_mark.high_water_dir.clear();
  ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(path(), Key(), no_mark));
  archive.reset();
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(report.clean()) << Describe(report);
}

TEST_F(DamageTest, LostCommittedLogTailIsNotCalledARollback) {
  // The last record was synced and the host's high-water mark counts its audit entry: losing
  // it is damage, not an older copy put back.
  std::vector<std::filesystem::path> logs = DbFiles(db(), ".log");
  ASSERT_EQ(logs.size(), 1u);
  std::string bytes = test_util::ReadFile(logs[0]);
  bytes.resize(bytes.size() - 3);
  test_util::WriteFile(logs[0], bytes);
  auto opened = Archive::Open(path(), Key(), options_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Code::kCorruption) << opened.status().ToString();
  EXPECT_NE(opened.status().message().find("write-ahead log"), std::string::npos)
      << opened.status().ToString();
  EXPECT_FALSE(MentionsRollback(opened.status().message())) << opened.status().ToString();
  // The recovery flushed and deleted the log; the copy taken before it is the evidence.
  const std::filesystem::path copy = path() / "db-log-before-recovery" / logs[0].filename();
  EXPECT_NE(opened.status().message().find("db-log-before-recovery"), std::string::npos);
  EXPECT_EQ(test_util::ReadFile(copy), bytes);
}

// Someone without the key edits what a pack shows in plaintext: the pack header and the
// length field of every entry header (a huge length must not become a huge read or
// allocation). Reads fail with kCorruption and verify names the pack; nothing aborts.
TEST_F(DamageTest, EditedPackHeadersAreCorruptionNotAnAbort) {
  const auto entries = test_util::PackEntriesOnDisk(path());
  ASSERT_FALSE(entries.empty());
  const std::filesystem::path pack = entries.front().file;
  for (const auto& entry : entries) {
    // The sealed length: bytes 4..7 of the entry header, little-endian.
    test_util::OverwriteInFile(entry.file, entry.info.offset + 4,
                               std::string("\xff\xff\xff\x7f", 4));
  }
  test_util::OverwriteInFile(pack, 16, std::string(8, '\x07'));  // the pack number
  {
    ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(path(), Key(), options_));
    Status read = ReadScan(*archive);
    EXPECT_EQ(read.code(), Code::kCorruption) << read.ToString();
  }
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_FALSE(report.clean());
  EXPECT_TRUE(HasProblem(report, "pack 1", "")) << Describe(report);
  EXPECT_TRUE(HasProblem(report, "/scan.dcm", "failed authentication")) << Describe(report);
}

TEST_F(DamageTest, RecordPutBackFromAnOlderCopyIsFound) {
  {
    ASSERT_OK_AND_ASSIGN(VerifyReport clean, VerifyArchive(path(), Key()));
    ASSERT_TRUE(clean.clean()) << Describe(clean);
  }
  const std::filesystem::path copy = dir() / "copy";
  std::filesystem::copy(path(), copy, std::filesystem::copy_options::recursive);
  {
    ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(path(), Key(), options_));
    Save(*archive, kRootInode, "scan.dcm", RandomContent(1000, 7));
  }
  // As ldb would: the inode and history records of the older copy, written straight into the
  // database (both name version 6 as current; the archive is at version 7).
  std::string inode;
  std::string history;
  {
    auto old_kv = OpenDb(copy / "db");
    ASSERT_OK(old_kv->Get(Family::kMeta, InodeKey(scan_.ino), &inode));
    ASSERT_OK(old_kv->Get(Family::kMeta, HistoryKey(scan_.history), &history));
  }
  {
    auto kv = OpenDb(db());
    KvBatch batch;
    batch.Put(Family::kMeta, InodeKey(scan_.ino), inode);
    batch.Put(Family::kMeta, HistoryKey(scan_.history), history);
    ASSERT_OK(kv->Write(batch, /*sync=*/true));
  }
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(HasProblem(report, "archive state", "put back")) << Describe(report);
  // The audit log holds the newer commit: the file is named too.
  EXPECT_TRUE(HasProblem(report, "/scan.dcm", "records version 7 committed")) << Describe(report);
  // The archive does not open to serve version 6 as current, and says why (not a rollback).
  auto refused = Archive::Open(path(), Key(), options_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kCorruption) << refused.status().ToString();
  EXPECT_FALSE(MentionsRollback(refused.status().message())) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("medvfs verify"), std::string::npos);
  EXPECT_NE(refused.status().message().find("--accept-record-damage"), std::string::npos);
  // Accepted on purpose: it opens, says so in the audit log, and still does not serve the
  // put-back version 6 as the current one (the audit log holds version 7's commit).
  ArchiveOptions accepting = options_;
  accepting.accept_record_damage = true;
  {
    ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(path(), Key(), accepting));
    Status read = ReadScan(*archive);
    EXPECT_EQ(read.code(), Code::kCorruption) << read.ToString();
    bool recorded = false;
    ASSERT_OK(archive->ScanAudit({}, [&](const AuditEntry& entry) {
      recorded = recorded || entry.op == AuditOp::kRecordDamageAccepted;
      return true;
    }));
    EXPECT_TRUE(recorded);
  }
  // The records as they are became the reference: the next plain open succeeds.
  EXPECT_OK(Archive::Open(path(), Key(), options_));
}

// Any one covered record deleted, put back from an older copy, or swapped with another of its
// kind refuses the open and is named by verify; chosen at random over every kind of record.
TEST_F(DamageTest, AnyAlteredRecordRefusesTheOpen) {
  const std::filesystem::path copy = dir() / "copy";
  std::filesystem::copy(path(), copy, std::filesystem::copy_options::recursive);
  {
    ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(path(), Key(), options_));
    ASSERT_OK_AND_ASSIGN(Attr dir, ReleasedAttr(archive->MakeDir(kRootInode, "ct", 0755, caller_)));
    Save(*archive, dir.ino, "a.dcm", RandomContent(5000, 8));
    Save(*archive, kRootInode, "scan.dcm", RandomContent(3000, 9));
    ASSERT_OK(archive->SetNote(scan_.history, 7, "another note", caller_));
  }
  std::map<std::string, std::string> older;
  {
    auto old_kv = OpenDb(copy / "db");
    ASSERT_OK(old_kv->Scan(Family::kMeta, "", [&](std::string_view key, std::string_view value) {
      older.emplace(key, value);
      return true;
    }));
  }
  const std::string pristine = (dir() / "pristine").string();
  std::filesystem::copy(path(), pristine, std::filesystem::copy_options::recursive);
  std::mt19937 rng(20261206);
  constexpr std::string_view kKinds = "SIDHYVXMTN";
  for (int round = 0; round < 12; ++round) {
    std::filesystem::remove_all(path());
    std::filesystem::copy(pristine, path(), std::filesystem::copy_options::recursive);
    std::string what;
    {
      auto kv = OpenDb(db());
      std::vector<std::pair<std::string, std::string>> records;
      ASSERT_OK(kv->Scan(Family::kMeta, "", [&](std::string_view key, std::string_view value) {
        if (kKinds.find(key[0]) != std::string_view::npos && (key[0] != 'S' || key.size() == 1)) {
          records.emplace_back(key, value);
        }
        return true;
      }));
      ASSERT_GE(records.size(), 10u);
      const auto& [key, value] = records[rng() % records.size()];
      KvBatch batch;
      auto old = older.find(key);
      const int how = static_cast<int>(rng() % 3);
      if (how == 0) {
        what = "deleted";
        batch.Delete(Family::kMeta, key);
      } else if (how == 1 && old != older.end() && old->second != value) {
        what = "put back";
        batch.Put(Family::kMeta, key, old->second);
      } else {
        // Another record of the same kind, under this key (it fails its seal, being bound to
        // its own key) or, for a record alone of its kind, deleted.
        what = "swapped";
        auto other = std::find_if(records.begin(), records.end(), [&](const auto& r) {
          return r.first[0] == key[0] && r.first != key;
        });
        if (other == records.end()) {
          batch.Delete(Family::kMeta, key);
        } else {
          batch.Put(Family::kMeta, key, other->second);
        }
      }
      ASSERT_OK(kv->Write(batch, /*sync=*/true));
    }
    SCOPED_TRACE("round " + std::to_string(round) + ": a record of kind " +
                 std::string(1, what.empty() ? '?' : what[0]) + " " + what);
    auto refused = Archive::Open(path(), Key(), options_);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), Code::kCorruption) << refused.status().ToString();
    ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
    EXPECT_FALSE(report.clean()) << Describe(report);
  }
}

TEST_F(DamageTest, DeletedStateDigestRecordIsDamageNotANewArchive) {
  {
    auto kv = OpenDb(db());
    KvBatch batch;
    batch.Delete(Family::kMeta, "Z");
    ASSERT_OK(kv->Write(batch, /*sync=*/true));
  }
  auto refused = Archive::Open(path(), Key(), options_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kCorruption);
  EXPECT_NE(refused.status().message().find("missing"), std::string::npos)
      << refused.status().ToString();
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(HasProblem(report, "archive state", "missing")) << Describe(report);
}

TEST_F(DamageTest, DeletedRecordIsFound) {
  {
    auto kv = OpenDb(db());
    std::vector<std::string> notes;
    ASSERT_OK(kv->Scan(Family::kMeta, std::string(1, kNotePrefix),
                       [&](std::string_view key, std::string_view) {
                         notes.emplace_back(key);
                         return true;
                       }));
    ASSERT_EQ(notes.size(), 1u);
    KvBatch batch;
    batch.Delete(Family::kMeta, notes[0]);
    ASSERT_OK(kv->Write(batch, /*sync=*/true));
  }
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(HasProblem(report, "archive state", "deleted")) << Describe(report);
  EXPECT_EQ(Archive::Open(path(), Key(), options_).status().code(), Code::kCorruption);
}

TEST_F(DamageTest, ChangesKeepTheStateDigest) {
  {
    ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(path(), Key(), options_));
    ASSERT_OK_AND_ASSIGN(Attr dir, ReleasedAttr(archive->MakeDir(kRootInode, "ct", 0755, caller_)));
    Save(*archive, dir.ino, "a.dcm", "a");
    ASSERT_OK(archive->Rename(kRootInode, "scan.dcm", dir.ino, "a.dcm", 0, caller_));
    ASSERT_OK(archive->Unlink(dir.ino, "a.dcm", caller_));
    ASSERT_OK(archive->Restore(scan_.history, 1, caller_));
  }
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(report.clean()) << Describe(report);
  EXPECT_EQ(report.warnings, 0u) << Describe(report);
}

TEST_F(DamageTest, FailedSealFailsTheBatch) {
  ASSERT_OK_AND_ASSIGN(auto archive, Archive::Open(path(), Key(), options_));
  FailRecordSealsForTesting(1);
  auto made = archive->MakeDir(kRootInode, "ct", 0755, caller_);
  FailRecordSealsForTesting(0);
  EXPECT_FALSE(made.ok());
  EXPECT_EQ(archive->Lookup(kRootInode, "ct").status().code(), Code::kNotFound);
  archive.reset();
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(report.clean()) << Describe(report);
}

}  // namespace
}  // namespace medvfs::store
