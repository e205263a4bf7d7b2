// Archive::Backup, ListBackups and RestoreBackup: a restored archive holds every file and
// version byte for byte and verifies; a second backup copies only what is new; a damaged
// backup, a wrong key and a used target are refused and leave nothing behind; a backup taken
// while a writer commits holds every version committed before it began.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "store/archive.h"
#include "store/crypto/crypto.h"
#include "store/keys.h"
#include "store/verify.h"
#include "tests/fs/as_user.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::TempDirTest;
namespace stdfs = std::filesystem;

std::string RandomContent(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// Bytes of the regular files below `root`.
uint64_t DiskBytes(const stdfs::path& root) {
  uint64_t total = 0;
  for (const auto& entry : stdfs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) total += entry.file_size();
  }
  return total;
}

std::vector<stdfs::path> FilesWithExtension(const stdfs::path& root, const std::string& ext) {
  std::vector<stdfs::path> out;
  for (const auto& entry : stdfs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() && entry.path().extension() == ext) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class BackupTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    options_.kdf.n = 1 << 10;
    caller_.uid = 1000;
    caller_.gid = 1000;
    caller_.program = "test";
  }

  stdfs::path archive_dir() const { return dir() / "archive"; }
  stdfs::path dest() const { return dir() / "backups"; }
  static KeySource Key() { return KeySource::Passphrase("correct horse"); }

  std::unique_ptr<Archive> OpenArchive(const stdfs::path& path, const KeySource& key = Key()) {
    auto opened = Archive::Open(path, key, options_);
    EXPECT_OK(opened);
    return opened.ok() ? std::move(opened).value() : nullptr;
  }

  Attr Save(Archive& archive, InodeId parent, const std::string& name, const std::string& content) {
    InodeId ino = 0;
    if (auto existing = archive.Lookup(parent, name); existing.ok()) {
      ino = existing->ino;
    } else {
      auto made = archive.MakeNode(parent, name, S_IFREG | 0644, 0, caller_);
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
    return attr.ok() ? *attr : Attr{};
  }

  // Creates the archive with three versions of a big file, a second big file, a small one, a
  // deleted one, a note and a restore; closes it and opens it again, so that the write-ahead
  // log is flushed into table and blob files.
  std::unique_ptr<Archive> MakeArchive() {
    {
      auto created = Archive::Create(archive_dir(), Key(), options_);
      EXPECT_OK(created);
      if (!created.ok()) return nullptr;
      Archive& a = **created;
      auto ct = a.MakeDir(kRootInode, "ct", 0755, caller_);
      EXPECT_OK(ct);
      const Attr scan = Save(a, ct->ino, "scan.dcm", RandomContent(3 << 20, 1));
      Save(a, ct->ino, "scan.dcm", RandomContent(3 << 20, 2));
      Save(a, ct->ino, "other.dcm", RandomContent(2 << 20, 3));
      Save(a, kRootInode, "notes.txt", "short text");
      Save(a, kRootInode, "gone.txt", "deleted later");
      EXPECT_OK(a.Unlink(kRootInode, "gone.txt", caller_));
      EXPECT_OK(a.SetNote(scan.history, 2, "a note", caller_));
      EXPECT_OK(a.Restore(scan.history, 1, caller_));
    }
    return OpenArchive(archive_dir());
  }

  StatusOr<BackupResult> BackUp(Archive& archive, const stdfs::path& to) {
    return archive.Backup(to, BackupRequest{}, caller_);
  }

  StatusOr<RestoredBackup> Restore(const stdfs::path& into, std::optional<uint32_t> id = {},
                                   const KeySource& key = Key()) {
    RestoreBackupOptions options;
    options.backup_id = id;
    return RestoreBackup(dest(), into, key, options, caller_);
  }

  ArchiveOptions options_;
  Caller caller_;
};

std::string ReadVersion(Archive& archive, HistoryId history, uint64_t number) {
  auto handle = archive.OpenVersion(history, number);
  EXPECT_OK(handle);
  if (!handle.ok()) return {};
  std::string content;
  std::string buf(1 << 16, '\0');
  for (uint64_t offset = 0;;) {
    auto n = (*handle)->Read(offset, std::span<char>(buf.data(), buf.size()));
    EXPECT_OK(n);
    if (!n.ok() || *n == 0) break;
    content.append(buf.data(), *n);
    offset += *n;
  }
  return content;
}

// Every name ever seen below `dir` (deleted ones included) with every version: number, size,
// operation, note and the SHA-256 of the content read back, one line each, sorted.
void Describe(Archive& archive, InodeId dir, const std::string& path,
              std::vector<std::string>* lines) {
  auto names = archive.ListNames(dir);
  ASSERT_OK(names);
  for (const NameRecord& record : *names) {
    const std::string child = path + "/" + record.name;
    if (S_ISDIR(record.mode) && record.live()) {
      lines->push_back(child + "/");
      Describe(archive, record.ino, child, lines);
      continue;
    }
    if (record.history == 0) continue;
    auto versions = archive.ListVersions(record.history);
    ASSERT_OK(versions);
    for (const VersionInfo& v : *versions) {
      std::string line = child + " v" + std::to_string(v.number) + " " +
                         std::string(OperationName(v.op)) + " size " + std::to_string(v.size) +
                         " note '" + v.note + "' live " + (record.live() ? "yes" : "no");
      if (!v.is_delete_marker()) {
        line += " " + HexEncode(Sha256Of(ReadVersion(archive, record.history, v.number)));
      }
      lines->push_back(line);
    }
  }
}

std::string Snapshot(Archive& archive) {
  std::vector<std::string> lines;
  Describe(archive, kRootInode, "", &lines);
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

std::vector<AuditEntry> AuditEntries(Archive& archive, AuditOp op) {
  std::vector<AuditEntry> out;
  EXPECT_OK(archive.ScanAudit({}, [&](const AuditEntry& e) {
    if (e.op == op) out.push_back(e);
    return true;
  }));
  return out;
}

TEST_F(BackupTest, RestoredArchiveIsIdenticalAndVerifies) {
  auto archive = MakeArchive();
  ASSERT_NE(archive, nullptr);
  ASSERT_OK_AND_ASSIGN(BackupResult made, BackUp(*archive, dest()));
  EXPECT_EQ(made.id, 1u);
  EXPECT_GT(made.size, 8u << 20);
  EXPECT_EQ(made.new_bytes, made.size);  // the first backup copies everything
  // The chunks live in pack files: the backup must carry them.
  EXPECT_FALSE(FilesWithExtension(dest() / "packs", ".pack").empty());
  EXPECT_FALSE(FilesWithExtension(dest() / "shared_checksum", ".sst").empty());
  const std::string before = Snapshot(*archive);
  archive.reset();

  ASSERT_OK_AND_ASSIGN(RestoredBackup restored, Restore(dir() / "restored"));
  EXPECT_EQ(restored.id, 1u);
  EXPECT_FALSE(restored.rollback_accepted);  // no high-water directory given
  auto copy = OpenArchive(dir() / "restored");
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(Snapshot(*copy), before);
  // The backup holds its own audit entry; the restore adds one.
  auto backups = AuditEntries(*copy, AuditOp::kBackup);
  ASSERT_EQ(backups.size(), 1u);
  EXPECT_EQ(backups[0].uid, 1000u);
  EXPECT_EQ(backups[0].detail, "to " + dest().string());
  auto restores = AuditEntries(*copy, AuditOp::kRestoreBackup);
  ASSERT_EQ(restores.size(), 1u);
  EXPECT_EQ(restores[0].detail, "from " + dest().string() + " backup 1");
  ASSERT_OK_AND_ASSIGN(AuditChainReport chain, copy->VerifyAuditChain());
  EXPECT_TRUE(chain.intact) << chain.problem;
  copy.reset();

  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(dir() / "restored", Key()));
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.warnings, 0u);
  // Private: in the backup directory 0700 directories and 0600 files; the restored archive
  // like a new one (0700 directories and key slot; RocksDB's later files follow the umask
  // behind them).
  for (const stdfs::path& root : {dest(), dir() / "restored"}) {
    for (const auto& entry : stdfs::recursive_directory_iterator(root)) {
      struct stat st {};
      ASSERT_EQ(lstat(entry.path().c_str(), &st), 0);
      if (root == dest() || S_ISDIR(st.st_mode)) {
        EXPECT_EQ(st.st_mode & 077, 0u) << entry.path();
      }
    }
  }
  struct stat slot {};
  ASSERT_EQ(lstat((dir() / "restored" / kKeySlotFileName).c_str(), &slot), 0);
  EXPECT_EQ(slot.st_mode & 0777, 0600u);
  struct stat top {};
  ASSERT_EQ(lstat((dir() / "restored").c_str(), &top), 0);
  EXPECT_EQ(top.st_mode & 0777, 0700u);
}

TEST_F(BackupTest, SecondBackupCopiesOnlyWhatIsNew) {
  auto archive = MakeArchive();
  ASSERT_NE(archive, nullptr);
  ASSERT_OK_AND_ASSIGN(BackupResult first, BackUp(*archive, dest()));
  const uint64_t after_first = DiskBytes(dest());
  Save(*archive, kRootInode, "new.txt", RandomContent(20000, 9));
  ASSERT_OK_AND_ASSIGN(BackupResult second, BackUp(*archive, dest()));
  const uint64_t growth = DiskBytes(dest()) - after_first;
  EXPECT_EQ(second.id, 2u);
  EXPECT_GE(second.size, first.size);
  EXPECT_LT(second.new_bytes, first.size / 20) << second.new_bytes;
  EXPECT_LT(growth, first.size / 20) << growth;
  std::printf(
      "[ measured ] archive db %llu bytes; backup 1 copied %llu, backup 2 copied %llu "
      "(backup directory grew by %llu)\n",
      static_cast<unsigned long long>(first.size), static_cast<unsigned long long>(first.new_bytes),
      static_cast<unsigned long long>(second.new_bytes), static_cast<unsigned long long>(growth));
  const std::string latest = Snapshot(*archive);
  archive.reset();

  ASSERT_OK_AND_ASSIGN(auto list, ListBackups(dest()));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, 1u);
  EXPECT_EQ(list[1].id, 2u);
  EXPECT_EQ(list[0].archive_id.size(), 32u);
  EXPECT_EQ(list[0].archive_id, list[1].archive_id);

  // The older backup restores the older state: no new.txt there.
  ASSERT_OK(Restore(dir() / "one", 1u));
  auto one = OpenArchive(dir() / "one");
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(one->Lookup(kRootInode, "new.txt").status().code(), Code::kNotFound);
  one.reset();
  ASSERT_OK(Restore(dir() / "two"));
  auto two = OpenArchive(dir() / "two");
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(Snapshot(*two), latest);
}

TEST_F(BackupTest, DamagedBackupFileIsRefusedAndNothingIsLeft) {
  auto archive = MakeArchive();
  ASSERT_NE(archive, nullptr);
  ASSERT_OK(BackUp(*archive, dest()));
  archive.reset();
  const auto packs = FilesWithExtension(dest() / "packs", ".pack");
  ASSERT_FALSE(packs.empty());
  std::string bytes = test_util::ReadFile(packs[0]);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
  ::chmod(packs[0].c_str(), 0600);
  test_util::WriteFile(packs[0], bytes);

  auto restored = Restore(dir() / "restored");
  EXPECT_EQ(restored.status().code(), Code::kCorruption) << restored.status().ToString();
  EXPECT_NE(restored.status().message().find(".pack"), std::string::npos)
      << restored.status().ToString();
  EXPECT_FALSE(stdfs::exists(dir() / "restored"));
  // An existing empty target stays, empty.
  stdfs::create_directory(dir() / "empty");
  EXPECT_EQ(Restore(dir() / "empty").status().code(), Code::kCorruption);
  EXPECT_TRUE(stdfs::is_empty(dir() / "empty"));
}

TEST_F(BackupTest, WrongKeyAndUsedTargetsAreRefused) {
  auto archive = MakeArchive();
  ASSERT_NE(archive, nullptr);
  ASSERT_OK(BackUp(*archive, dest()));
  EXPECT_EQ(Restore(dir() / "r", {}, KeySource::Passphrase("wrong")).status().code(),
            Code::kWrongKey);
  EXPECT_FALSE(stdfs::exists(dir() / "r"));
  // The live archive itself, and a non-empty directory, are never written over.
  EXPECT_EQ(Restore(archive_dir()).status().code(), Code::kExists);
  stdfs::create_directory(dir() / "full");
  test_util::WriteFile(dir() / "full" / "x", "x");
  EXPECT_EQ(Restore(dir() / "full").status().code(), Code::kNotEmpty);
  EXPECT_EQ(test_util::ReadFile(dir() / "full" / "x"), "x");
  EXPECT_EQ(Restore(dir() / "no" / "parent").status().code(), Code::kNotFound);
  EXPECT_EQ(Restore(dir() / "r", 7u).status().code(), Code::kNotFound);
  EXPECT_EQ(RestoreBackup(dir() / "nothing", dir() / "r", Key(), {}, caller_).status().code(),
            Code::kNotFound);
}

TEST_F(BackupTest, DestinationIsChecked) {
  auto archive = MakeArchive();
  ASSERT_NE(archive, nullptr);
  EXPECT_EQ(BackUp(*archive, archive_dir() / "inside").status().code(), Code::kInvalid);
  EXPECT_EQ(BackUp(*archive, dir()).status().code(), Code::kInvalid);  // holds the archive
  stdfs::create_directory(dir() / "other");
  test_util::WriteFile(dir() / "other" / "file", "x");
  EXPECT_EQ(BackUp(*archive, dir() / "other").status().code(), Code::kNotEmpty);
  EXPECT_EQ(BackUp(*archive, dir() / "no" / "parent").status().code(), Code::kNotFound);
  // A backup directory belongs to one archive.
  ASSERT_OK(BackUp(*archive, dest()));
  auto other = Archive::Create(dir() / "archive2", Key(), options_);
  ASSERT_OK(other);
  EXPECT_EQ(BackUp(**other, dest()).status().code(), Code::kExists);
  // Refusals are recorded, with the caller.
  auto entries = AuditEntries(*archive, AuditOp::kBackup);
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[0].result, EINVAL);
  EXPECT_EQ(entries[4].result, 0);
  // Not writable. Root writes anyway: as another user, who may cross the directories above.
  stdfs::create_directory(dir() / "locked");
  ::chmod((dir() / "locked").c_str(), 0755);
  ::chmod(dir().c_str(), 0711);
  Code code = Code::kOk;
  ASSERT_EQ(fs_test::RunAsNobody([&] {
              code = BackUp(*archive, dir() / "locked").status().code();
              return 0;
            }),
            0);
  EXPECT_EQ(code, Code::kAccess);
}

TEST_F(BackupTest, EachBackupKeepsTheKeySlotOfItsDay) {
  auto archive = MakeArchive();
  ASSERT_NE(archive, nullptr);
  ASSERT_OK(BackUp(*archive, dest()));
  const KeySource new_key = KeySource::Passphrase("new passphrase");
  ASSERT_OK(RewrapKeySlot(archive_dir() / kKeySlotFileName, Key(), new_key, options_.kdf));
  ASSERT_OK(BackUp(*archive, dest()));
  archive.reset();
  EXPECT_EQ(Restore(dir() / "a", 1u, new_key).status().code(), Code::kWrongKey);
  ASSERT_OK(Restore(dir() / "a", 1u, Key()));
  EXPECT_EQ(Restore(dir() / "b", 2u, Key()).status().code(), Code::kWrongKey);
  ASSERT_OK(Restore(dir() / "b", 2u, new_key));
  EXPECT_NE(OpenArchive(dir() / "b", new_key), nullptr);
}

TEST_F(BackupTest, KeepPurgesOldBackups) {
  auto archive = MakeArchive();
  ASSERT_NE(archive, nullptr);
  BackupRequest request;
  request.keep = 2;
  for (int i = 0; i < 3; ++i) {
    Save(*archive, kRootInode, "n" + std::to_string(i), RandomContent(5000, 20 + i));
    ASSERT_OK(archive->Backup(dest(), request, caller_));
  }
  ASSERT_OK_AND_ASSIGN(auto list, ListBackups(dest()));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, 2u);
  EXPECT_EQ(list[1].id, 3u);
  archive.reset();
  ASSERT_OK(Restore(dir() / "r", 2u));
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(dir() / "r", Key()));
  EXPECT_TRUE(report.clean());
}

TEST_F(BackupTest, CancelledBackupLeavesNoBackup) {
  auto archive = MakeArchive();
  ASSERT_NE(archive, nullptr);
  BackupRequest request;
  request.cancelled = [] { return true; };
  auto made = archive->Backup(dest(), request, caller_);
  EXPECT_EQ(made.status().code(), Code::kBusy) << made.status().ToString();
  EXPECT_EQ(ListBackups(dest()).status().code(), Code::kNotFound);
  ASSERT_OK(BackUp(*archive, dest()));  // and the next one works
}

// A restore lowers the host's high-water mark (recording the accepted rollback), so that the
// restored archive opens as a mount opens it.
TEST_F(BackupTest, RestoreAcceptsTheRollbackOnce) {
  options_.high_water_dir = dir() / "state";
  auto archive = MakeArchive();
  ASSERT_NE(archive, nullptr);
  ASSERT_OK(BackUp(*archive, dest()));
  Save(*archive, kRootInode, "later.txt", "after the backup");
  archive.reset();  // the mark follows the head

  RestoreBackupOptions options;
  options.high_water_dir = options_.high_water_dir;
  ASSERT_OK_AND_ASSIGN(RestoredBackup restored,
                       RestoreBackup(dest(), dir() / "restored", Key(), options, caller_));
  EXPECT_TRUE(restored.rollback_accepted);
  auto copy = Archive::Open(dir() / "restored", Key(), options_);  // no accept_rollback
  ASSERT_OK(copy);
  EXPECT_EQ(AuditEntries(**copy, AuditOp::kRollbackAccepted).size(), 1u);
}

// A writer commits versions while backups are taken: every version committed before a backup
// began is in it, identical, and the restored archive verifies.
TEST_F(BackupTest, BackupWhileWriting) {
  auto archive = MakeArchive();
  ASSERT_NE(archive, nullptr);
  std::mutex mu;
  std::map<std::string, std::string> committed;  // GUARDED_BY(mu): name -> last content
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      const std::string name = "w" + std::to_string(i % 7);
      const std::string content = RandomContent(static_cast<size_t>(40000 + i * 13), 100 + i);
      Save(*archive, kRootInode, name, content);
      std::lock_guard lock(mu);
      committed[name] = content;
    }
  });
  std::map<std::string, std::string> before_second;
  ASSERT_OK(BackUp(*archive, dest()));
  {
    std::lock_guard lock(mu);
    before_second = committed;
  }
  ASSERT_OK_AND_ASSIGN(BackupResult second, BackUp(*archive, dest()));
  stop = true;
  writer.join();
  archive.reset();
  ASSERT_FALSE(before_second.empty());

  ASSERT_OK(Restore(dir() / "restored", second.id));
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(dir() / "restored", Key()));
  EXPECT_TRUE(report.clean());
  auto copy = OpenArchive(dir() / "restored");
  ASSERT_NE(copy, nullptr);
  for (const auto& [name, content] : before_second) {
    ASSERT_OK_AND_ASSIGN(Attr attr, ReleasedAttr(copy->Lookup(kRootInode, name)));
    ASSERT_OK_AND_ASSIGN(auto versions, copy->ListVersions(attr.history));
    // The version seen committed, or a later one, is there; every version reads back whole.
    bool found = false;
    for (const VersionInfo& v : versions) {
      const std::string read = ReadVersion(*copy, attr.history, v.number);
      EXPECT_EQ(read.size(), v.size);
      EXPECT_EQ(Sha256Of(read), v.sha256);
      found = found || read == content;
    }
    EXPECT_TRUE(found) << name;
  }
}

}  // namespace
}  // namespace medvfs::store
