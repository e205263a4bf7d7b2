// The history views (fs/views.h) over a real archive, without mounting.
#include "fs/views.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/views.h"
#include "tests/store/test_util.h"

namespace medvfs::fs {
namespace {

using store::Archive;
using store::Attr;
using store::Caller;
using store::InodeId;

class ViewsTest : public store::test_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    store::ArchiveOptions options;
    options.kdf.n = uint64_t{1} << 10;  // cheap key derivation: tests only
    auto created = Archive::Create(dir() / "archive", store::KeySource::Passphrase("pw"), options);
    ASSERT_OK(created);
    archive_ = std::move(created).value();
    caller_.uid = 1000;
    caller_.gid = 100;
    caller_.pid = 42;
    caller_.program = "viewtest";
  }

  // Creates or replaces the content of NAME in `dir` and commits it as one version.
  InodeId Save(InodeId dir, const std::string& name, const std::string& content,
               uint32_t mode = 0640) {
    InodeId ino = 0;
    auto existing = archive_->Lookup(dir, name);
    if (existing.ok()) {
      ino = existing->ino;
    } else {
      auto made = archive_->MakeNode(dir, name, S_IFREG | mode, 0, caller_);
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

  InodeId MakeDir(InodeId parent, const std::string& name) {
    auto made = archive_->MakeDir(parent, name, 0750, caller_);
    EXPECT_OK(made);
    return made.ok() ? made->ino : 0;
  }

  static std::vector<std::string> Names(const std::vector<ViewEntry>& entries) {
    std::vector<std::string> names;
    for (const ViewEntry& e : entries) names.push_back(e.name);
    return names;
  }

  std::string ReadAll(const ViewDescriptor& view) {
    auto handle = OpenViewFile(*archive_, view);
    EXPECT_OK(handle);
    if (!handle.ok()) return "";
    std::string out;
    char buf[7];  // small, to cross read boundaries
    for (uint64_t off = 0;;) {
      auto n = (*handle)->Read(off, std::span<char>(buf, sizeof(buf)));
      EXPECT_OK(n);
      if (!n.ok() || *n == 0) break;
      out.append(buf, *n);
      off += *n;
    }
    return out;
  }

  std::unique_ptr<Archive> archive_;
  Caller caller_;
};

TEST_F(ViewsTest, VersionRootListsLiveAndDeletedNames) {
  Save(store::kRootInode, "scan.dcm", "one");
  Save(store::kRootInode, "gone.txt", "bye");
  MakeDir(store::kRootInode, "study");
  ASSERT_OK(archive_->MakeSymlink(store::kRootInode, "link", "scan.dcm", caller_));
  ASSERT_OK(archive_->Unlink(store::kRootInode, "gone.txt", caller_));

  ASSERT_OK_AND_ASSIGN(auto entries, ListView(*archive_, VersionRootOf(store::kRootInode), false));
  EXPECT_EQ(Names(entries), (std::vector<std::string>{"gone.txt", "link", "scan.dcm", "study"}));
  for (const ViewEntry& e : entries) {
    EXPECT_EQ(e.mode, static_cast<uint32_t>(S_IFDIR)) << e.name;
    EXPECT_TRUE(e.view.is_dir());
  }
  EXPECT_EQ(entries[0].view.kind, ViewKind::kHistory);
  EXPECT_EQ(entries[1].view.kind, ViewKind::kEmptyDir);
  EXPECT_EQ(entries[2].view.kind, ViewKind::kHistory);
  EXPECT_EQ(entries[3].view.kind, ViewKind::kVersionRoot);
}

TEST_F(ViewsTest, HistoryListsContentVersionsWithoutDeleteMarkers) {
  Save(store::kRootInode, "scan.dcm", "first");
  Save(store::kRootInode, "scan.dcm", "second");
  ASSERT_OK(archive_->Unlink(store::kRootInode, "scan.dcm", caller_));
  ASSERT_OK_AND_ASSIGN(ViewEntry history,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "scan.dcm"));
  ASSERT_EQ(history.view.kind, ViewKind::kHistory);
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(history.view.history));
  ASSERT_EQ(versions.size(), 3u);  // two contents and a delete marker

  ASSERT_OK_AND_ASSIGN(auto entries, ListView(*archive_, history.view, false));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, store::VersionFileName(versions[0], "scan.dcm"));
  EXPECT_EQ(entries[1].name, store::VersionFileName(versions[1], "scan.dcm"));
  EXPECT_EQ(entries[0].mode, static_cast<uint32_t>(S_IFREG));
  EXPECT_EQ(ReadAll(entries[0].view), "first");
  EXPECT_EQ(ReadAll(entries[1].view), "second");

  // versions=visible adds .meta.
  ASSERT_OK_AND_ASSIGN(auto visible, ListView(*archive_, history.view, true));
  EXPECT_EQ(Names(visible).back(), ".meta");
}

TEST_F(ViewsTest, VersionLookupAcceptsShortAndAnyLongForm) {
  Save(store::kRootInode, "scan.dcm", "first");
  Save(store::kRootInode, "scan.dcm", "second");
  ASSERT_OK_AND_ASSIGN(ViewEntry history,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "scan.dcm"));
  for (const char* name : {"v1", "v1_", "v1_whatever.dcm"}) {
    ASSERT_OK_AND_ASSIGN(ViewEntry v1, ResolveViewChild(*archive_, history.view, name));
    EXPECT_EQ(v1.view.kind, ViewKind::kVersionFile);
    EXPECT_EQ(v1.view.version, 1u);
    EXPECT_EQ(ReadAll(v1.view), "first");
  }
  for (const char* name : {"v3", "v0", "x", "scan.dcm", "v2.dcm"}) {
    auto missing = ResolveViewChild(*archive_, history.view, name);
    EXPECT_EQ(missing.status().code(), store::Code::kNotFound) << name;
  }
}

TEST_F(ViewsTest, DeleteMarkerIsNotAFile) {
  Save(store::kRootInode, "a", "x");
  ASSERT_OK(archive_->Unlink(store::kRootInode, "a", caller_));
  ASSERT_OK_AND_ASSIGN(ViewEntry history,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "a"));
  EXPECT_EQ(ResolveViewChild(*archive_, history.view, "v2").status().code(),
            store::Code::kNotFound);
}

TEST_F(ViewsTest, VersionFileAttributesDropWriteBits) {
  Save(store::kRootInode, "scan.dcm", "content", 0664);
  ASSERT_OK_AND_ASSIGN(ViewEntry history,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "scan.dcm"));
  ASSERT_OK_AND_ASSIGN(ViewEntry v1, ResolveViewChild(*archive_, history.view, "v1"));
  ASSERT_OK_AND_ASSIGN(Attr attr, ViewAttr(*archive_, v1.view));
  ASSERT_OK_AND_ASSIGN(store::VersionInfo info, archive_->GetVersion(history.view.history, 1));
  EXPECT_EQ(attr.mode, static_cast<uint32_t>(S_IFREG | 0444));
  EXPECT_EQ(attr.uid, info.file_uid);
  EXPECT_EQ(attr.gid, info.file_gid);
  EXPECT_EQ(attr.size, 7u);
  EXPECT_EQ(attr.mtime_ns, info.time_ns);
  EXPECT_EQ(attr.ino, StableViewIno(v1.view));
}

TEST_F(ViewsTest, ViewDirectoriesAreReadOnlyAndOwnedLikeTheirDirectory) {
  const InodeId study = MakeDir(store::kRootInode, "study");
  store::SetAttrRequest chown;
  chown.uid = 1234;
  chown.gid = 567;
  ASSERT_OK(archive_->SetAttr(study, chown, caller_));
  ASSERT_OK_AND_ASSIGN(Attr attr, ViewAttr(*archive_, VersionRootOf(study)));
  EXPECT_EQ(attr.mode, static_cast<uint32_t>(S_IFDIR | 0555));
  EXPECT_EQ(attr.uid, 1234u);
  EXPECT_EQ(attr.gid, 567u);
}

TEST_F(ViewsTest, HistoryDirectoryFollowsTheFilesCurrentPermissions) {
  const InodeId ino = Save(store::kRootInode, "scan.dcm", "content", 0644);
  ASSERT_OK_AND_ASSIGN(ViewEntry history,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "scan.dcm"));
  ASSERT_OK_AND_ASSIGN(Attr before, ViewAttr(*archive_, history.view));
  EXPECT_EQ(before.mode, static_cast<uint32_t>(S_IFDIR | 0555));
  EXPECT_EQ(before.uid, caller_.uid);
  store::SetAttrRequest chmod;
  chmod.mode = 0640;
  ASSERT_OK(archive_->SetAttr(ino, chmod, caller_));
  ASSERT_OK_AND_ASSIGN(Attr after, ViewAttr(*archive_, history.view));
  EXPECT_EQ(after.mode, static_cast<uint32_t>(S_IFDIR | 0550));
  // Under @<time>, a version file also loses what the live file no longer grants.
  const std::string now = "@" + store::FormatTimeNs(int64_t{4102444800} * 1'000'000'000);
  ASSERT_OK_AND_ASSIGN(ViewEntry then,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), now));
  ASSERT_OK_AND_ASSIGN(ViewEntry file, ResolveViewChild(*archive_, then.view, "scan.dcm"));
  ASSERT_OK_AND_ASSIGN(Attr file_attr, ViewAttr(*archive_, file.view));
  EXPECT_EQ(file_attr.mode, static_cast<uint32_t>(S_IFREG | 0440));
}

TEST_F(ViewsTest, VersionsTsvIsHiddenButResolvable) {
  Save(store::kRootInode, "scan.dcm", "first");
  Save(store::kRootInode, "scan.dcm", "second");
  ASSERT_OK_AND_ASSIGN(ViewEntry history,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "scan.dcm"));
  ASSERT_OK_AND_ASSIGN(auto listed, ListView(*archive_, history.view, false));
  for (const ViewEntry& e : listed) EXPECT_NE(e.name, ".meta");
  ASSERT_OK_AND_ASSIGN(ViewEntry meta, ResolveViewChild(*archive_, history.view, ".meta"));
  ASSERT_OK_AND_ASSIGN(auto meta_entries, ListView(*archive_, meta.view, false));
  EXPECT_EQ(Names(meta_entries), std::vector<std::string>{"versions.tsv"});
  ASSERT_OK_AND_ASSIGN(ViewEntry tsv, ResolveViewChild(*archive_, meta.view, "versions.tsv"));
  const std::string text = ReadAll(tsv.view);
  ASSERT_OK_AND_ASSIGN(Attr attr, ViewAttr(*archive_, tsv.view));
  EXPECT_EQ(attr.size, text.size());
  ASSERT_OK_AND_ASSIGN(auto parsed, store::ParseVersionsTsv(text));
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[0].program, "viewtest");
  EXPECT_EQ(parsed[1].writer_uid, 1000u);
  EXPECT_EQ(parsed[1].size, 6u);
}

TEST_F(ViewsTest, DeletedDirectoryCanBeWalked) {
  const InodeId study = MakeDir(store::kRootInode, "study");
  Save(study, "img.dcm", "pixels");
  ASSERT_OK(archive_->Unlink(study, "img.dcm", caller_));
  ASSERT_OK(archive_->RemoveDir(store::kRootInode, "study", caller_));

  ASSERT_OK_AND_ASSIGN(ViewEntry dir,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "study"));
  EXPECT_EQ(dir.view.kind, ViewKind::kVersionRoot);
  ASSERT_OK_AND_ASSIGN(auto names, ListView(*archive_, dir.view, false));
  ASSERT_EQ(Names(names), std::vector<std::string>{"img.dcm"});
  ASSERT_OK_AND_ASSIGN(auto versions, ListView(*archive_, names[0].view, false));
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(ReadAll(versions[0].view), "pixels");
}

TEST_F(ViewsTest, TimeViewShowsTheTreeAsItWas) {
  const InodeId study = MakeDir(store::kRootInode, "study");
  Save(study, "img.dcm", "old");
  ASSERT_OK(archive_->MakeSymlink(study, "latest", "img.dcm", caller_));
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  const int64_t between = int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
  Save(study, "img.dcm", "new");
  Save(store::kRootInode, "later.txt", "not yet");

  const std::string when = "@" + store::FormatTimeNs(between);
  ASSERT_OK_AND_ASSIGN(ViewEntry then,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), when));
  EXPECT_EQ(then.view.kind, ViewKind::kTimeDir);
  ASSERT_OK_AND_ASSIGN(auto top, ListView(*archive_, then.view, false));
  EXPECT_EQ(Names(top), std::vector<std::string>{"study"});
  ASSERT_OK_AND_ASSIGN(ViewEntry sub, ResolveViewChild(*archive_, then.view, "study"));
  EXPECT_EQ(sub.view.kind, ViewKind::kTimeDir);
  ASSERT_OK_AND_ASSIGN(auto inside, ListView(*archive_, sub.view, false));
  std::vector<std::string> names = Names(inside);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"img.dcm", "latest"}));
  ASSERT_OK_AND_ASSIGN(ViewEntry img, ResolveViewChild(*archive_, sub.view, "img.dcm"));
  EXPECT_EQ(ReadAll(img.view), "old");
  ASSERT_OK_AND_ASSIGN(ViewEntry link, ResolveViewChild(*archive_, sub.view, "latest"));
  EXPECT_EQ(link.mode, static_cast<uint32_t>(S_IFLNK));
  ASSERT_OK_AND_ASSIGN(std::string target, ReadViewLink(link.view));
  EXPECT_EQ(target, "img.dcm");
  EXPECT_EQ(ResolveViewChild(*archive_, then.view, "later.txt").status().code(),
            store::Code::kNotFound);
  // A bad time is no entry.
  EXPECT_EQ(
      ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "@yesterday").status().code(),
      store::Code::kNotFound);
}

TEST_F(ViewsTest, RestoreFromHistoryDirectory) {
  Save(store::kRootInode, "scan.dcm", "first");
  Save(store::kRootInode, "scan.dcm", "second");
  ASSERT_OK(archive_->Unlink(store::kRootInode, "scan.dcm", caller_));
  ASSERT_OK_AND_ASSIGN(ViewEntry history,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "scan.dcm"));
  EXPECT_EQ(RestoreFromView(*archive_, history.view, "nonsense", caller_).status().code(),
            store::Code::kInvalid);
  EXPECT_EQ(
      RestoreFromView(*archive_, VersionRootOf(store::kRootInode), "1", caller_).status().code(),
      store::Code::kReadOnly);
  ASSERT_OK_AND_ASSIGN(Attr live, RestoreFromView(*archive_, history.view, "1\n", caller_));
  ASSERT_OK_AND_ASSIGN(Attr looked_up, archive_->Lookup(store::kRootInode, "scan.dcm"));
  EXPECT_EQ(live.ino, looked_up.ino);
  EXPECT_EQ(looked_up.size, 5u);
  ASSERT_OK_AND_ASSIGN(auto entries, ListView(*archive_, history.view, false));
  EXPECT_EQ(entries.size(), 3u);  // first, second, restored first
  EXPECT_EQ(ReadAll(entries.back().view), "first");
  archive_->Forget(looked_up.ino, 1);
}

TEST(ViewNamesTest, ReservedNames) {
  EXPECT_TRUE(IsReservedName("@version"));
  EXPECT_TRUE(IsReservedName(".meta"));
  EXPECT_FALSE(IsReservedName("@versions"));
  EXPECT_FALSE(IsReservedName("meta"));
  EXPECT_FALSE(IsReservedName("@2026-01-01"));
}

TEST(ViewNamesTest, StableInodeNumbers) {
  ViewDescriptor a = VersionRootOf(5);
  ViewDescriptor b = VersionRootOf(6);
  EXPECT_EQ(StableViewIno(a), StableViewIno(VersionRootOf(5)));
  EXPECT_NE(StableViewIno(a), StableViewIno(b));
  EXPECT_GE(StableViewIno(a), uint64_t{1} << 63);
  ViewDescriptor c = a;
  c.text = "x";
  EXPECT_NE(StableViewIno(a), StableViewIno(c));
}

TEST(ViewNamesTest, StatsJson) {
  store::ArchiveStats stats;
  stats.files = 3;
  stats.disk_bytes = 12345678901ull;
  EXPECT_EQ(FormatStatsJson(stats),
            "{\"files\":3,\"live_files\":0,\"directories\":0,\"versions\":0,"
            "\"logical_bytes\":0,\"stored_bytes\":0,\"chunks\":0,\"disk_bytes\":12345678901}");
}

TEST(StringFileHandleTest, ReadsAndRefusesWrites) {
  StringFileHandle handle(7, "abcdef");
  char buf[4];
  ASSERT_OK_AND_ASSIGN(size_t n, handle.Read(4, std::span<char>(buf, 4)));
  EXPECT_EQ(std::string(buf, n), "ef");
  ASSERT_OK_AND_ASSIGN(size_t past, handle.Read(10, std::span<char>(buf, 4)));
  EXPECT_EQ(past, 0u);
  EXPECT_EQ(handle.Write(0, "x").status().code(), store::Code::kReadOnly);
}

}  // namespace
}  // namespace medvfs::fs
