// Issue 16, item 5: a hole costs nothing to commit. A commit of content that is mostly hole
// defers its SHA-256 (VersionInfo::sha256_deferred); Archive::VersionSha256 computes and
// records it on request; "a save whose content equals the current version adds no version"
// still holds, decided by comparing stored bytes.
#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>
#include <random>

#include "store/archive.h"
#include "store/crypto/crypto.h"
#include "store/engine/content.h"
#include "store/verify.h"
#include "store/views.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
// Just past the hole a commit still hashes: the smallest deferred content worth testing.
constexpr uint64_t kHole = kMaxHashedHoleBytes + 16 * kMiB;

class DeferredDigestTest : public test_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    options_.kdf.n = 1 << 10;
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Create(path(), Key(), options_));
    caller_.uid = 1000;
    caller_.program = "test";
  }
  std::filesystem::path path() const { return dir() / "archive"; }
  static KeySource Key() { return KeySource::Passphrase("correct horse"); }

  void Reopen(ArchiveOptions options) {
    archive_.reset();
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Open(path(), Key(), options));
  }

  InodeId Create(const std::string& name) {
    auto made = archive_->MakeNode(kRootInode, name, S_IFREG | 0644, 0, caller_);
    EXPECT_OK(made);
    return made.ok() ? made->ino : 0;
  }

  // One save: the content becomes "head", a hole of `hole` bytes, then `tail`.
  void SaveSparse(InodeId ino, uint64_t hole, const std::string& tail) {
    auto handle = archive_->Open(ino, O_WRONLY | O_TRUNC, caller_);
    ASSERT_OK(handle);
    ASSERT_OK((*handle)->Write(0, "head"));
    ASSERT_OK((*handle)->Write(4 + hole, tail));
    ASSERT_OK((*handle)->Flush(caller_));
  }

  // The SHA-256 of a version's bytes as read back (holes read as zeros).
  Sha256Digest HashOfReadBack(HistoryId history, uint64_t number) {
    auto handle = archive_->OpenVersion(history, number);
    EXPECT_OK(handle);
    if (!handle.ok()) return {};
    Sha256 sha;
    std::string buffer(4 * kMiB, '\0');
    for (uint64_t offset = 0;;) {
      auto n = (*handle)->Read(offset, std::span<char>(buffer));
      EXPECT_OK(n);
      if (!n.ok() || *n == 0) break;
      sha.Update(std::string_view(buffer.data(), *n));
      offset += *n;
    }
    return sha.Finish();
  }

  Attr AttrOf(InodeId ino) {
    auto attr = archive_->GetAttr(ino);
    EXPECT_OK(attr);
    return attr.ok() ? *attr : Attr{};
  }

  ArchiveOptions options_;
  std::unique_ptr<Archive> archive_;
  Caller caller_;
};

TEST_F(DeferredDigestTest, ATruncateTo200GiBCommitsWithADeferredDigest) {
  const InodeId ino = Create("big.dat");
  SetAttrRequest grow;
  grow.size = uint64_t{200} << 30;
  ASSERT_OK(archive_->SetAttr(ino, grow, caller_).status());
  const Attr attr = AttrOf(ino);
  EXPECT_EQ(attr.size, uint64_t{200} << 30);
  ASSERT_OK_AND_ASSIGN(VersionInfo version, archive_->GetVersion(attr.history, attr.version));
  EXPECT_TRUE(version.sha256_deferred);
  EXPECT_EQ(version.sha256, Sha256Digest{});
  EXPECT_EQ(version.size, uint64_t{200} << 30);
  // Listings show it pending, and never compute it.
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(attr.history));
  ASSERT_FALSE(versions.empty());
  EXPECT_TRUE(versions.back().sha256_deferred);
  const std::string tsv = FormatVersionsTsv(versions);
  EXPECT_NE(tsv.find("\t" + std::string(kSha256PendingText) + "\t"), std::string::npos) << tsv;
  ASSERT_OK_AND_ASSIGN(auto parsed, ParseVersionsTsv(tsv));
  EXPECT_TRUE(parsed.back().sha256_deferred);
  EXPECT_EQ(parsed.back().sha256, Sha256Digest{});
}

// Issue 19: an in-place edit of a large file (a header patched by an editor that writes into
// the file) commits without reading the file back for its digest; one written from its start
// is hashed as it arrives. Both digests, once computed, are the content's.
TEST_F(DeferredDigestTest, AnInPlaceEditOfALargeFileDefersItsDigest) {
  const InodeId ino = Create("multiframe.dcm");
  std::string content(kMaxRehashedBytes + (4 << 20), '\0');
  std::mt19937_64 rng(19);
  for (size_t i = 0; i < content.size(); i += 8) {
    const uint64_t word = rng();
    std::memcpy(&content[i], &word, 8);
  }
  {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(ino, O_WRONLY | O_TRUNC, caller_));
    for (size_t offset = 0; offset < content.size(); offset += 1 << 20) {
      ASSERT_OK(handle->Write(offset, std::string_view(content).substr(offset, 1 << 20)));
    }
    ASSERT_OK(handle->Flush(caller_));
  }
  Attr attr = AttrOf(ino);
  ASSERT_OK_AND_ASSIGN(VersionInfo streamed, archive_->GetVersion(attr.history, attr.version));
  EXPECT_FALSE(streamed.sha256_deferred);
  EXPECT_EQ(streamed.sha256, Sha256Of(content));

  content.replace(128, 11, "EDITED NAME");
  {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(ino, O_WRONLY, caller_));
    ASSERT_OK(handle->Write(128, "EDITED NAME"));
    ASSERT_OK(handle->Flush(caller_));
  }
  attr = AttrOf(ino);
  ASSERT_EQ(attr.version, streamed.number + 1);
  ASSERT_OK_AND_ASSIGN(VersionInfo edited, archive_->GetVersion(attr.history, attr.version));
  EXPECT_TRUE(edited.sha256_deferred);
  ASSERT_OK_AND_ASSIGN(Sha256Digest computed,
                       archive_->VersionSha256(attr.history, attr.version, {}));
  EXPECT_EQ(computed, Sha256Of(content));
}

TEST_F(DeferredDigestTest, TheDigestIsComputedOnRequestOnceAndRecorded) {
  const InodeId ino = Create("sparse.dat");
  SaveSparse(ino, kHole, "tail");
  const Attr attr = AttrOf(ino);
  ASSERT_OK_AND_ASSIGN(VersionInfo before, archive_->GetVersion(attr.history, attr.version));
  ASSERT_TRUE(before.sha256_deferred);

  // An interrupted computation stops and records nothing.
  Status stopped =
      archive_->VersionSha256(attr.history, attr.version, [] { return true; }).status();
  EXPECT_EQ(stopped.code(), Code::kBusy) << stopped.ToString();
  ASSERT_OK_AND_ASSIGN(VersionInfo still, archive_->GetVersion(attr.history, attr.version));
  EXPECT_TRUE(still.sha256_deferred);

  const Sha256Digest expected = HashOfReadBack(attr.history, attr.version);
  ASSERT_OK_AND_ASSIGN(Sha256Digest computed,
                       archive_->VersionSha256(attr.history, attr.version, {}));
  EXPECT_EQ(computed, expected);

  // Recorded: a second request reads it (a computation would poll, and stop, here), and it
  // survives a reopen, in listings too.
  Reopen(options_);
  bool polled = false;
  ASSERT_OK_AND_ASSIGN(Sha256Digest again, archive_->VersionSha256(attr.history, attr.version, [&] {
    polled = true;
    return true;
  }));
  EXPECT_FALSE(polled);
  EXPECT_EQ(again, expected);
  ASSERT_OK_AND_ASSIGN(VersionInfo after, archive_->GetVersion(attr.history, attr.version));
  EXPECT_FALSE(after.sha256_deferred);
  EXPECT_EQ(after.sha256, expected);
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(attr.history));
  EXPECT_EQ(FormatVersionsTsv(versions).find(std::string(kSha256PendingText)), std::string::npos);

  // verify checks the content against the recorded digest.
  archive_.reset();
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems[0].ToString());
  EXPECT_EQ(report.digests_pending, 0u);
  EXPECT_EQ(report.warnings, 0u);
}

TEST_F(DeferredDigestTest, VerifyCountsAPendingDigestAndAReadOnlyArchiveRecordsNothing) {
  const InodeId ino = Create("sparse.dat");
  SaveSparse(ino, kHole, "tail");
  const Attr attr = AttrOf(ino);
  archive_.reset();
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems[0].ToString());
  EXPECT_EQ(report.digests_pending, 1u);

  ArchiveOptions read_only = options_;
  read_only.read_only = true;
  Reopen(read_only);
  const Sha256Digest expected = HashOfReadBack(attr.history, attr.version);
  ASSERT_OK_AND_ASSIGN(Sha256Digest computed,
                       archive_->VersionSha256(attr.history, attr.version, {}));
  EXPECT_EQ(computed, expected);
  ASSERT_OK_AND_ASSIGN(VersionInfo version, archive_->GetVersion(attr.history, attr.version));
  EXPECT_TRUE(version.sha256_deferred);
}

// "A save whose content equals the current version adds no version", with deferred digests
// on either side: by commit, by restore and by an editor-style rename.
TEST_F(DeferredDigestTest, EqualSparseContentAddsNoVersionAndDifferentBytesDo) {
  const InodeId ino = Create("sparse.dat");
  SaveSparse(ino, kHole, "tail");
  const uint64_t first = AttrOf(ino).version;
  SaveSparse(ino, kHole, "tail");
  EXPECT_EQ(AttrOf(ino).version, first) << "the same sparse content again";
  SaveSparse(ino, kHole, "tall");
  const uint64_t second = AttrOf(ino).version;
  EXPECT_EQ(second, first + 1) << "different bytes after the hole";
  SaveSparse(ino, kHole + 1, "tall");
  const uint64_t third = AttrOf(ino).version;
  EXPECT_EQ(third, second + 1) << "a hole one byte longer";

  // The same bytes with the hole written out as zeros: equal, though not deferred.
  {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(ino, O_WRONLY | O_TRUNC, caller_));
    std::string zeros(4 * kMiB, '\0');
    ASSERT_OK(handle->Write(0, "head"));
    for (uint64_t at = 4; at < 4 + kHole + 1; at += zeros.size()) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), 4 + kHole + 1 - at));
      ASSERT_OK(handle->Write(at, std::string_view(zeros.data(), n)));
    }
    ASSERT_OK(handle->Write(4 + kHole + 1, "tall"));
    ASSERT_OK(handle->Flush(caller_));
  }
  EXPECT_EQ(AttrOf(ino).version, third) << "zeros written where the hole was";

  // Restore: of the current content, nothing; of an older deferred one, a new version, once.
  const HistoryId history = AttrOf(ino).history;
  ASSERT_OK(archive_->Restore(history, third, caller_).status());
  EXPECT_EQ(AttrOf(ino).version, third);
  ASSERT_OK(archive_->Restore(history, first, caller_).status());
  const uint64_t restored = AttrOf(ino).version;
  EXPECT_EQ(restored, third + 1);
  ASSERT_OK(archive_->Restore(history, first, caller_).status());
  EXPECT_EQ(AttrOf(ino).version, restored);

  // An editor-style save through a temporary name with the same sparse content: nothing.
  const InodeId tmp = Create(".sparse.dat.tmp");
  SaveSparse(tmp, kHole, "tail");
  ASSERT_OK(archive_->Rename(kRootInode, ".sparse.dat.tmp", kRootInode, "sparse.dat", 0, caller_));
  ASSERT_OK_AND_ASSIGN(Attr after, ReleasedAttr(archive_->Lookup(kRootInode, "sparse.dat")));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(after.history));
  EXPECT_EQ(versions.back().number, restored);
  // With other bytes: a new version, its digest still deferred.
  const InodeId tmp2 = Create(".sparse.dat.tmp");
  SaveSparse(tmp2, kHole, "tale");
  ASSERT_OK(archive_->Rename(kRootInode, ".sparse.dat.tmp", kRootInode, "sparse.dat", 0, caller_));
  ASSERT_OK_AND_ASSIGN(after, ReleasedAttr(archive_->Lookup(kRootInode, "sparse.dat")));
  ASSERT_OK_AND_ASSIGN(versions, archive_->ListVersions(after.history));
  EXPECT_EQ(versions.back().number, restored + 1);
  EXPECT_TRUE(versions.back().sha256_deferred);
  ASSERT_OK_AND_ASSIGN(Sha256Digest digest,
                       archive_->VersionSha256(after.history, restored + 1, {}));
  EXPECT_EQ(digest, HashOfReadBack(after.history, restored + 1));

  archive_.reset();
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_TRUE(report.clean()) << (report.problems.empty() ? "" : report.problems[0].ToString());
}

// A file moved to a backup name and saved anew continues with copies of its versions: a digest
// computed for one goes with the copy (no recomputation, not pending again).
TEST_F(DeferredDigestTest, ACopiedHistoryKeepsAComputedDigest) {
  const InodeId ino = Create("x.dat");
  SaveSparse(ino, kHole, "tail");
  const Attr attr = AttrOf(ino);
  ASSERT_OK_AND_ASSIGN(Sha256Digest digest,
                       archive_->VersionSha256(attr.history, attr.version, {}));
  ASSERT_OK(archive_->Rename(kRootInode, "x.dat", kRootInode, "x.dat.bak", 0, caller_));
  const InodeId again = Create("x.dat");
  SaveSparse(again, 0, "new");
  const Attr now = AttrOf(again);
  ASSERT_NE(now.history, attr.history);
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(now.history));
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_FALSE(versions[0].sha256_deferred);
  EXPECT_EQ(versions[0].sha256, digest);
  EXPECT_EQ(versions[1].sha256, Sha256Of("headnew"));
}

}  // namespace
}  // namespace medvfs::store
