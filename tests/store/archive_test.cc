// The archive without FUSE: namespace, version chains, history views, restore, tampering.
#include "store/archive.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <random>

#include "store/archive/archive_impl.h"
#include "store/engine/kv_store.h"
#include "store/verify.h"
#include "store/views.h"
#include "tests/store/pack_files.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::TempDirTest;

class ArchiveTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    options_.kdf.n = 1 << 10;
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Create(path(), Key(), options_));
    caller_.uid = 1000;
    caller_.gid = 1000;
    caller_.pid = 42;
    caller_.program = "test";
  }
  std::filesystem::path path() const { return dir() / "archive"; }
  static KeySource Key() { return KeySource::Passphrase("correct horse"); }

  void Reopen() {
    archive_.reset();
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), options_));
  }

  // Creates (or truncates) `name` in `dir` with `content` and closes it: one save.
  InodeId Save(InodeId dir, const std::string& name, const std::string& content) {
    InodeId ino;
    auto existing = archive_->Lookup(dir, name);
    if (existing.ok()) {
      ino = existing->ino;
    } else {
      auto made = archive_->MakeNode(dir, name, S_IFREG | 0644, 0, caller_);
      EXPECT_OK(made);
      if (!made.ok()) return 0;
      ino = made->ino;
    }
    auto handle = archive_->Open(ino, O_WRONLY | O_TRUNC, caller_);
    EXPECT_OK(handle);
    if (!handle.ok()) return 0;
    EXPECT_OK((*handle)->Write(0, content));
    EXPECT_OK((*handle)->Flush(caller_));
    return ino;
  }

  std::string ReadAll(FileHandle& handle) {
    std::string out;
    std::string buffer(100000, '\0');
    for (uint64_t offset = 0;;) {
      auto n = handle.Read(offset, std::span<char>(buffer.data(), buffer.size()));
      EXPECT_OK(n);
      if (!n.ok() || *n == 0) break;
      out.append(buffer.data(), *n);
      offset += *n;
    }
    return out;
  }

  std::string ReadLive(InodeId ino) {
    auto handle = archive_->Open(ino, O_RDONLY, caller_);
    EXPECT_OK(handle);
    return handle.ok() ? ReadAll(**handle) : "";
  }

  std::string ReadVersion(HistoryId history, uint64_t number) {
    auto handle = archive_->OpenVersion(history, number);
    EXPECT_OK(handle);
    return handle.ok() ? ReadAll(**handle) : "";
  }

  static std::string RandomBytes(size_t n, uint32_t seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  }

  ArchiveOptions options_;
  std::unique_ptr<Archive> archive_;
  Caller caller_;
};

TEST_F(ArchiveTest, WrongPassphraseIsRefusedAndWritesNothing) {
  archive_.reset();
  auto opened = Archive::Open(path(), KeySource::Passphrase("wrong"), options_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Code::kWrongKey);
}

TEST_F(ArchiveTest, SecondWriterIsBusy) {
  auto second = Archive::Open(path(), Key(), options_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy);
}

TEST_F(ArchiveTest, WriteCloseWriteCloseGivesTwoVersions) {
  InodeId ino = Save(kRootInode, "scan.dcm", "first");
  Save(kRootInode, "scan.dcm", "second!");
  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  EXPECT_EQ(attr.version, 2u);
  EXPECT_EQ(attr.size, 7u);
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(attr.history));
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0].size, 5u);
  EXPECT_EQ(versions[0].writer_uid, 1000u);
  EXPECT_EQ(versions[0].writer_pid, 42u);
  EXPECT_EQ(versions[0].program, "test");
  EXPECT_EQ(versions[0].op, Operation::kWrite);
  EXPECT_EQ(versions[0].sha256, Sha256Of("first"));
  EXPECT_LE(versions[0].time_ns, versions[1].time_ns);
  EXPECT_EQ(ReadVersion(attr.history, 1), "first");
  EXPECT_EQ(ReadVersion(attr.history, 2), "second!");
  EXPECT_EQ(ReadLive(ino), "second!");
}

TEST_F(ArchiveTest, UnchangedSaveAddsNoVersion) {
  InodeId ino = Save(kRootInode, "a", "same");
  Save(kRootInode, "a", "same");
  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(attr.history));
  EXPECT_EQ(versions.size(), 1u);
}

TEST_F(ArchiveTest, EmptyCreatedFileGetsOneVersion) {
  ASSERT_OK_AND_ASSIGN(
      Attr made, ReleasedAttr(archive_->MakeNode(kRootInode, "empty", S_IFREG | 0600, 0, caller_)));
  {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(made.ino, O_WRONLY, caller_));
    ASSERT_OK(handle->Flush(caller_));
  }
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(made.history));
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].size, 0u);
}

TEST_F(ArchiveTest, EditorSaveThroughTemporaryFileContinuesHistory) {
  InodeId target = Save(kRootInode, "report.txt", "v1");
  ASSERT_OK_AND_ASSIGN(Attr before, archive_->GetAttr(target));
  InodeId tmp = Save(kRootInode, ".report.txt.swp", "v2 from the editor");
  ASSERT_OK(archive_->Rename(kRootInode, ".report.txt.swp", kRootInode, "report.txt", 0, caller_));
  ASSERT_OK_AND_ASSIGN(Attr after, ReleasedAttr(archive_->Lookup(kRootInode, "report.txt")));
  EXPECT_EQ(after.ino, tmp);
  EXPECT_EQ(after.history, before.history);
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(after.history));
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[1].op, Operation::kRenameOver);
  EXPECT_EQ(ReadVersion(after.history, 1), "v1");
  EXPECT_EQ(ReadVersion(after.history, 2), "v2 from the editor");
  EXPECT_EQ(ReadLive(after.ino), "v2 from the editor");
  // The temporary name left no history.
  ASSERT_OK_AND_ASSIGN(auto names, archive_->ListNames(kRootInode));
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0].name, "report.txt");
  EXPECT_FALSE(archive_->ResolveName(kRootInode, ".report.txt.swp").ok());
  // A later save continues the same chain.
  Save(kRootInode, "report.txt", "v3");
  ASSERT_OK_AND_ASSIGN(auto three, archive_->ListVersions(after.history));
  EXPECT_EQ(three.size(), 3u);
}

TEST_F(ArchiveTest, BackupRenameThenRewriteContinuesTheNamesHistory) {
  // dcmodify's save: rename(file, file.bak), then write a new file under the old name.
  InodeId original = Save(kRootInode, "ct.dcm", "original");
  ASSERT_OK_AND_ASSIGN(Attr before, archive_->GetAttr(original));
  ASSERT_OK(archive_->Rename(kRootInode, "ct.dcm", kRootInode, "ct.dcm.bak", 0, caller_));
  InodeId rewritten = Save(kRootInode, "ct.dcm", "modified");
  ASSERT_OK_AND_ASSIGN(Attr now, archive_->GetAttr(rewritten));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(now.history));
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(ReadVersion(now.history, 1), "original");
  EXPECT_EQ(ReadVersion(now.history, 2), "modified");
  // The backup keeps its history; the new file starts with a copy of what the name held, so
  // the two live files never share one.
  ASSERT_OK_AND_ASSIGN(Attr backup, ReleasedAttr(archive_->Lookup(kRootInode, "ct.dcm.bak")));
  EXPECT_EQ(backup.history, before.history);
  EXPECT_NE(now.history, backup.history);
  EXPECT_EQ(ReadLive(backup.ino), "original");
  ASSERT_OK_AND_ASSIGN(NameRecord bak_name, archive_->ResolveName(kRootInode, "ct.dcm.bak"));
  EXPECT_EQ(bak_name.history, backup.history);
  ASSERT_OK_AND_ASSIGN(auto backup_versions, archive_->ListVersions(backup.history));
  EXPECT_EQ(backup_versions.size(), 1u);
}

TEST_F(ArchiveTest, UnlinkLeavesDeleteMarkerAndRestoreBringsFileBack) {
  ASSERT_OK_AND_ASSIGN(Attr dir, ReleasedAttr(archive_->MakeDir(kRootInode, "ct", 0755, caller_)));
  Save(dir.ino, "slice.dcm", "one");
  InodeId ino = Save(dir.ino, "slice.dcm", "two");
  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  ASSERT_OK(archive_->Unlink(dir.ino, "slice.dcm", caller_));
  EXPECT_EQ(archive_->Lookup(dir.ino, "slice.dcm").status().code(), Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(NameRecord name, archive_->ResolveName(dir.ino, "slice.dcm"));
  EXPECT_FALSE(name.live());
  EXPECT_EQ(name.history, attr.history);
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(attr.history));
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_TRUE(versions[2].is_delete_marker());

  ASSERT_OK_AND_ASSIGN(Attr restored, archive_->Restore(attr.history, 1, caller_));
  ASSERT_OK_AND_ASSIGN(Attr found, ReleasedAttr(archive_->Lookup(dir.ino, "slice.dcm")));
  EXPECT_EQ(found.ino, restored.ino);
  EXPECT_EQ(ReadLive(found.ino), "one");
  ASSERT_OK_AND_ASSIGN(auto after, archive_->ListVersions(attr.history));
  ASSERT_EQ(after.size(), 4u);
  EXPECT_EQ(after[3].op, Operation::kRestore);
  EXPECT_EQ(after[3].restored_from, 1u);
}

TEST_F(ArchiveTest, CreatingADeletedNameContinuesItsHistory) {
  InodeId ino = Save(kRootInode, "x", "old");
  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  ASSERT_OK(archive_->Unlink(kRootInode, "x", caller_));
  InodeId again = Save(kRootInode, "x", "new");
  ASSERT_OK_AND_ASSIGN(Attr now, archive_->GetAttr(again));
  EXPECT_EQ(now.history, attr.history);
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(now.history));
  ASSERT_EQ(versions.size(), 3u);  // old, delete marker, new
  EXPECT_EQ(ReadVersion(now.history, 3), "new");
}

TEST_F(ArchiveTest, HistorySurvivesReopen) {
  InodeId ino = Save(kRootInode, "keep", "a");
  Save(kRootInode, "keep", "bb");
  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  Reopen();
  ASSERT_OK_AND_ASSIGN(Attr again, ReleasedAttr(archive_->Lookup(kRootInode, "keep")));
  EXPECT_EQ(again.history, attr.history);
  EXPECT_EQ(ReadVersion(attr.history, 1), "a");
  EXPECT_EQ(ReadLive(again.ino), "bb");
  // New inodes do not collide with old ones.
  InodeId other = Save(kRootInode, "other", "c");
  EXPECT_NE(other, ino);
}

TEST_F(ArchiveTest, RandomWritesTruncateAndLargeContent) {
  options_.max_dirty_bytes_per_file = 1 << 20;  // force checkpoints
  Reopen();
  const std::string big = RandomBytes(5 << 20, 7);
  InodeId ino = Save(kRootInode, "big", big);
  std::string expected = big;
  {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(ino, O_RDWR, caller_));
    std::mt19937 rng(3);
    for (int i = 0; i < 60; ++i) {
      const size_t offset = rng() % (6 << 20);
      const std::string patch = RandomBytes(1 + rng() % 70000, static_cast<uint32_t>(i));
      ASSERT_OK(handle->Write(offset, patch));
      if (expected.size() < offset + patch.size()) expected.resize(offset + patch.size(), '\0');
      expected.replace(offset, patch.size(), patch);
    }
    std::string check(4096, '\0');
    ASSERT_OK_AND_ASSIGN(size_t n, handle->Read(1000, std::span<char>(check.data(), 4096)));
    EXPECT_EQ(n, 4096u);
    EXPECT_EQ(check, expected.substr(1000, 4096));
    ASSERT_OK(handle->Flush(caller_));
  }
  EXPECT_EQ(ReadLive(ino), expected);
  SetAttrRequest shrink;
  shrink.size = 12345;
  ASSERT_OK(archive_->SetAttr(ino, shrink, caller_));
  SetAttrRequest grow;
  grow.size = 20000;
  ASSERT_OK(archive_->SetAttr(ino, grow, caller_));
  std::string truncated = expected.substr(0, 12345) + std::string(20000 - 12345, '\0');
  EXPECT_EQ(ReadLive(ino), truncated);
  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(attr.history));
  ASSERT_EQ(versions.size(), 4u);
  EXPECT_EQ(versions[2].op, Operation::kTruncate);
  EXPECT_EQ(ReadVersion(attr.history, 1), big);
  EXPECT_EQ(ReadVersion(attr.history, 2), expected);
}

TEST_F(ArchiveTest, HeaderEditStoresLittleMoreThanTheHeader) {
  std::string dicom(128, '\0');
  dicom += "DICM";
  dicom += std::string(600, 'h');
  dicom += std::string("\xE0\x7F\x10\x00OW\0\0", 8);
  dicom += std::string("\x00\x00\x20\x00", 4);
  dicom += RandomBytes(2 << 20, 11);
  Save(kRootInode, "ct.dcm", dicom);
  ASSERT_OK_AND_ASSIGN(ArchiveStats before, archive_->Stats());
  std::string edited = dicom;
  edited.insert(200, "Doe^Jane");
  Save(kRootInode, "ct.dcm", edited);
  ASSERT_OK_AND_ASSIGN(ArchiveStats after, archive_->Stats());
  EXPECT_EQ(after.versions, 2u);
  EXPECT_LT(after.stored_bytes - before.stored_bytes, 4096u)
      << "a header edit re-stored pixel data";
}

TEST_F(ArchiveTest, DirectoryAsItWasAtATime) {
  Save(kRootInode, "a", "a1");
  const int64_t t1 = NowNs();
  Save(kRootInode, "a", "a2");
  Save(kRootInode, "b", "b1");
  ASSERT_OK(archive_->Unlink(kRootInode, "a", caller_));
  ASSERT_OK_AND_ASSIGN(auto then, archive_->ListDirAt(kRootInode, t1));
  ASSERT_EQ(then.size(), 1u);
  EXPECT_EQ(then[0].name, "a");
  EXPECT_EQ(then[0].version, 1u);
  EXPECT_EQ(ReadVersion(then[0].history, then[0].version), "a1");
  ASSERT_OK_AND_ASSIGN(auto now, archive_->ListDirAt(kRootInode, NowNs()));
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].name, "b");
  ASSERT_OK_AND_ASSIGN(auto names, archive_->ListNames(kRootInode));
  EXPECT_EQ(names.size(), 2u);
}

TEST_F(ArchiveTest, RenameRules) {
  ASSERT_OK_AND_ASSIGN(Attr d1, ReleasedAttr(archive_->MakeDir(kRootInode, "d1", 0755, caller_)));
  ASSERT_OK_AND_ASSIGN(Attr d2, ReleasedAttr(archive_->MakeDir(d1.ino, "d2", 0755, caller_)));
  EXPECT_EQ(archive_->Rename(kRootInode, "d1", d2.ino, "x", 0, caller_).code(), Code::kInvalid);
  Save(kRootInode, "f", "f");
  EXPECT_EQ(archive_->Rename(kRootInode, "f", kRootInode, "d1", 0, caller_).code(),
            Code::kIsDirectory);
  EXPECT_EQ(archive_->Rename(kRootInode, "d1", kRootInode, "f", 0, caller_).code(),
            Code::kNotDirectory);
  Save(kRootInode, "g", "g");
  EXPECT_EQ(archive_->Rename(kRootInode, "f", kRootInode, "g", RENAME_NOREPLACE, caller_).code(),
            Code::kExists);
  ASSERT_OK(archive_->Rename(kRootInode, "f", kRootInode, "g", RENAME_EXCHANGE, caller_));
  ASSERT_OK_AND_ASSIGN(Attr g, ReleasedAttr(archive_->Lookup(kRootInode, "g")));
  EXPECT_EQ(ReadLive(g.ino), "f");
  ASSERT_OK(archive_->Rename(kRootInode, "g", d2.ino, "moved", 0, caller_));
  ASSERT_OK_AND_ASSIGN(Attr moved, ReleasedAttr(archive_->Lookup(d2.ino, "moved")));
  EXPECT_EQ(ReadLive(moved.ino), "f");
  EXPECT_EQ(archive_->RemoveDir(kRootInode, "d1", caller_).code(), Code::kNotEmpty);
  ASSERT_OK_AND_ASSIGN(Attr root, archive_->GetAttr(kRootInode));
  EXPECT_EQ(root.nlink, 3u);
}

TEST_F(ArchiveTest, XattrsFollowCreateReplaceRules) {
  InodeId ino = Save(kRootInode, "x", "x");
  EXPECT_EQ(archive_->GetXattr(ino, "user.a").status().code(), Code::kNoData);
  EXPECT_EQ(archive_->SetXattr(ino, "user.a", "1", XATTR_REPLACE, caller_).code(), Code::kNoData);
  ASSERT_OK(archive_->SetXattr(ino, "user.a", "1", XATTR_CREATE, caller_));
  EXPECT_EQ(archive_->SetXattr(ino, "user.a", "2", XATTR_CREATE, caller_).code(), Code::kExists);
  ASSERT_OK(archive_->SetXattr(ino, "user.a", "2", 0, caller_));
  ASSERT_OK_AND_ASSIGN(std::string value, archive_->GetXattr(ino, "user.a"));
  EXPECT_EQ(value, "2");
  ASSERT_OK_AND_ASSIGN(auto names, archive_->ListXattr(ino));
  EXPECT_EQ(names, std::vector<std::string>{"user.a"});
  ASSERT_OK(archive_->RemoveXattr(ino, "user.a", caller_));
  EXPECT_EQ(archive_->RemoveXattr(ino, "user.a", caller_).code(), Code::kNoData);
}

TEST_F(ArchiveTest, AlteredChunkIsNeverReturnedAsData) {
  const std::string content = RandomBytes(300000, 5);
  InodeId ino = Save(kRootInode, "victim", content);
  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  archive_.reset();
  // Flip one bit in every stored chunk, straight in the pack files.
  const auto entries = test_util::PackEntriesOnDisk(path());
  ASSERT_FALSE(entries.empty());
  for (const auto& entry : entries) test_util::FlipBitInPackEntry(entry);
  Reopen();
  ASSERT_OK_AND_ASSIGN(auto handle, archive_->OpenVersion(attr.history, 1));
  std::string buffer(4096, '\0');
  auto read = handle->Read(0, std::span<char>(buffer.data(), buffer.size()));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), Code::kCorruption);
  EXPECT_EQ(read.status().ToErrno(), EIO);
}

TEST_F(ArchiveTest, ReadOnlyArchiveRefusesChanges) {
  Save(kRootInode, "x", "x");
  archive_.reset();
  options_.read_only = true;
  ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), options_));
  EXPECT_EQ(archive_->MakeDir(kRootInode, "d", 0755, caller_).status().code(), Code::kReadOnly);
  ASSERT_OK_AND_ASSIGN(Attr x, ReleasedAttr(archive_->Lookup(kRootInode, "x")));
  EXPECT_EQ(ReadLive(x.ino), "x");
}

// Issue 16, item 5: a size beyond the format's limit is refused at once; growing a file makes
// a hole that stores no chunk, commits, reads as zeros, hashes right and verifies clean.
TEST_F(ArchiveTest, TruncateBeyondTheLimitIsEfbigAndGrowingMakesAFreeHole) {
  const std::string head = RandomBytes(5000, 16);
  const InodeId ino = Save(kRootInode, "big.dcm", head);
  SetAttrRequest huge;
  huge.size = 999'999'999'999'999;
  EXPECT_EQ(archive_->SetAttr(ino, huge, caller_).status().code(), Code::kTooBig);

  ASSERT_OK_AND_ASSIGN(ArchiveStats before, archive_->Stats());
  constexpr uint64_t kGrown = uint64_t{256} << 20;
  SetAttrRequest grow;
  grow.size = kGrown;
  ASSERT_OK(archive_->SetAttr(ino, grow, caller_).status());
  ASSERT_OK_AND_ASSIGN(ArchiveStats after, archive_->Stats());
  EXPECT_LE(after.chunks, before.chunks + 1) << "at most the re-cut head";
  EXPECT_LT(after.stored_bytes - before.stored_bytes, 10'000u);

  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  EXPECT_EQ(attr.size, kGrown);
  // Mostly hole: the commit deferred the digest; it is computed on request.
  ASSERT_OK_AND_ASSIGN(VersionInfo grown, archive_->GetVersion(attr.history, attr.version));
  EXPECT_TRUE(grown.sha256_deferred);
  ASSERT_OK_AND_ASSIGN(grown.sha256, archive_->VersionSha256(attr.history, attr.version, {}));
  Sha256 sha;
  sha.Update(head);
  const std::string zeros(1 << 20, '\0');
  for (uint64_t left = kGrown - head.size(); left > 0;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
    sha.Update(std::string_view(zeros.data(), n));
    left -= n;
  }
  EXPECT_EQ(grown.sha256, sha.Finish());

  // A write after the hole reads back, with zeros before it.
  {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(ino, O_RDWR, caller_));
    ASSERT_OK(handle->Write(kGrown - 3, "end").status());
    ASSERT_OK(handle->Flush(caller_));
  }
  Reopen();
  {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(ino, O_RDONLY, caller_));
    std::string tail(4096, 'x');
    ASSERT_OK_AND_ASSIGN(size_t n, handle->Read(kGrown - 4096, std::span<char>(tail)));
    EXPECT_EQ(n, 4096u);
    EXPECT_EQ(tail, std::string(4093, '\0') + "end");
    std::string start(head.size() + 10, 'x');
    ASSERT_OK_AND_ASSIGN(n, handle->Read(0, std::span<char>(start)));
    EXPECT_EQ(start, head + std::string(10, '\0'));
  }
  // And back: the small file again.
  SetAttrRequest shrink;
  shrink.size = head.size();
  ASSERT_OK(archive_->SetAttr(ino, shrink, caller_).status());
  EXPECT_EQ(ReadLive(ino), head);
  ASSERT_OK_AND_ASSIGN(attr, archive_->GetAttr(ino));
  EXPECT_EQ(ReadVersion(attr.history, attr.version - 1).size(), kGrown);
  archive_.reset();
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems[0].ToString());
  EXPECT_EQ(report.unreferenced_chunks, 0u);
  // Four versions of at most two chunks each: no chunk of zeros was ever stored or read (the
  // zeros of 256 MiB written as data would be 1024 chunks of 256 KiB).
  EXPECT_LE(report.chunk_reads, 8u);
}

// Issue 16, item 8: a file written, unlinked while open, then closed leaves no chunk that
// nothing references; chunks another open file was handed meanwhile stay.
TEST_F(ArchiveTest, ChunksOfAFileUnlinkedWhileOpenGoWithItsLastClose) {
  const std::string kept = RandomBytes(300'000, 21);
  Save(kRootInode, "kept.dat", kept);
  const std::string lost = RandomBytes(2 << 20, 22);
  const std::string shared = RandomBytes(1 << 20, 23);
  ASSERT_OK_AND_ASSIGN(Attr gone, ReleasedAttr(archive_->MakeNode(kRootInode, "gone.dat",
                                                                  S_IFREG | 0644, 0, caller_)));
  ASSERT_OK_AND_ASSIGN(Attr other, ReleasedAttr(archive_->MakeNode(kRootInode, "other.dat",
                                                                   S_IFREG | 0644, 0, caller_)));
  ASSERT_OK_AND_ASSIGN(auto other_handle, archive_->Open(other.ino, O_WRONLY, caller_));
  {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(gone.ino, O_WRONLY, caller_));
    ASSERT_OK(handle->Write(0, shared).status());        // streamed: its chunks are stored now
    ASSERT_OK(other_handle->Write(0, shared).status());  // the same chunks, handed to another
    ASSERT_OK(handle->Write(shared.size(), lost).status());
    ASSERT_OK(archive_->Unlink(kRootInode, "gone.dat", caller_));
    ASSERT_OK(handle->Write(shared.size() + lost.size(), "more after the unlink").status());
  }
  ASSERT_OK(other_handle->Flush(caller_));
  other_handle.reset();
  ASSERT_OK_AND_ASSIGN(Attr other_now, ReleasedAttr(archive_->Lookup(kRootInode, "other.dat")));
  EXPECT_TRUE(ReadLive(other_now.ino) == shared);
  archive_.reset();
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems[0].ToString());
  EXPECT_EQ(report.unreferenced_chunks, 0u);
  EXPECT_EQ(report.warnings, 0u) << (report.problems.empty() ? "" : report.problems[0].ToString());
}

// A NodeRef keeps its node, even unlinked, until it dies; moving it hands the reference on;
// Release() hands it to the caller, who then owes Forget; LookupPath keeps only the last step.
TEST_F(ArchiveTest, NodeRefHoldsItsNodeUntilItDiesOrIsReleased) {
  InodeId held_ino = 0;
  {
    ASSERT_OK_AND_ASSIGN(NodeRef node,
                         archive_->MakeNode(kRootInode, "held.dat", S_IFREG | 0644, 0, caller_));
    held_ino = node.ino;
    ASSERT_OK(archive_->Unlink(kRootInode, "held.dat", caller_));
    EXPECT_OK(archive_->GetAttr(held_ino));
    NodeRef moved = std::move(node);
    EXPECT_FALSE(node.holds_reference());  // NOLINT(bugprone-use-after-move): checked on purpose
    EXPECT_TRUE(moved.holds_reference());
    EXPECT_OK(archive_->GetAttr(held_ino));
  }
  EXPECT_EQ(archive_->GetAttr(held_ino).status().code(), Code::kNotFound);

  Attr released;
  {
    ASSERT_OK_AND_ASSIGN(NodeRef node,
                         archive_->MakeNode(kRootInode, "kept.dat", S_IFREG | 0644, 0, caller_));
    released = node.Release();
    EXPECT_FALSE(node.holds_reference());
  }
  ASSERT_OK(archive_->Unlink(kRootInode, "kept.dat", caller_));
  EXPECT_OK(archive_->GetAttr(released.ino));  // the caller still owes the reference
  archive_->Forget(released.ino, 1);
  EXPECT_EQ(archive_->GetAttr(released.ino).status().code(), Code::kNotFound);

  // Walking a path takes and drops a reference per step: once the walk's result is gone,
  // removing the directories frees them.
  ASSERT_OK_AND_ASSIGN(Attr a, ReleasedAttr(archive_->MakeDir(kRootInode, "a", 0755, caller_)));
  ASSERT_OK_AND_ASSIGN(Attr b, ReleasedAttr(archive_->MakeDir(a.ino, "b", 0755, caller_)));
  {
    ASSERT_OK_AND_ASSIGN(NodeRef found, LookupPath(*archive_, "a/b"));
    EXPECT_EQ(found.ino, b.ino);
  }
  ASSERT_OK(archive_->RemoveDir(a.ino, "b", caller_));
  ASSERT_OK(archive_->RemoveDir(kRootInode, "a", caller_));
  EXPECT_EQ(archive_->GetAttr(b.ino).status().code(), Code::kNotFound);
  EXPECT_EQ(archive_->GetAttr(a.ino).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace medvfs::store
