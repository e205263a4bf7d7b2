// The history views (fs/views.h) over a real archive, without mounting.
#include "fs/views.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/xattr.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fs/file_xattrs.h"
#include "store/dicom_files.h"
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
  // Write bits too: whoever may write the file may restore it through this directory.
  EXPECT_EQ(before.mode, static_cast<uint32_t>(S_IFDIR | 0755));
  EXPECT_EQ(before.uid, caller_.uid);
  store::SetAttrRequest chmod;
  chmod.mode = 0640;
  ASSERT_OK(archive_->SetAttr(ino, chmod, caller_));
  ASSERT_OK_AND_ASSIGN(Attr after, ViewAttr(*archive_, history.view));
  EXPECT_EQ(after.mode, static_cast<uint32_t>(S_IFDIR | 0750));
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
  EXPECT_EQ(Names(meta_entries), (std::vector<std::string>{"versions.tsv", "v1", "v2"}));
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
  ASSERT_OK_AND_ASSIGN(Attr looked_up,
                       store::ReleasedAttr(archive_->Lookup(store::kRootInode, "scan.dcm")));
  EXPECT_EQ(live.ino, looked_up.ino);
  EXPECT_EQ(looked_up.size, 5u);
  ASSERT_OK_AND_ASSIGN(auto entries, ListView(*archive_, history.view, false));
  EXPECT_EQ(entries.size(), 3u);  // first, second, restored first
  EXPECT_EQ(ReadAll(entries.back().view), "first");
}

// --- Metadata views, notes, virtual xattrs, patient index -------------------------------------

constexpr const char* kPydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files/";

// The bytes of a sample file of Debian's python3-pydicom; empty if it is not installed.
std::string SampleDicom(const std::string& name) {
  std::ifstream in(std::string(kPydicomFiles) + name, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Replaces `from` by `to` (of the same length) in a DICOM file's bytes.
std::string Patched(std::string bytes, const std::string& from, const std::string& to) {
  const size_t at = bytes.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  EXPECT_EQ(from.size(), to.size());
  if (at != std::string::npos) bytes.replace(at, from.size(), to);
  return bytes;
}

class MetaViewsTest : public ViewsTest {
 protected:
  void SetUp() override {
    ViewsTest::SetUp();
    ct_ = SampleDicom("CT_small.dcm");
  }

  ViewEntry Resolve(const ViewDescriptor& parent, const std::string& path) {
    ViewEntry entry{"", parent, 0};
    size_t start = 0;
    while (start <= path.size()) {
      const size_t slash = std::min(path.find('/', start), path.size());
      auto child = ResolveViewChild(*archive_, entry.view, path.substr(start, slash - start));
      EXPECT_OK(child) << path;
      if (!child.ok()) return entry;
      entry = std::move(child).value();
      start = slash + 1;
    }
    return entry;
  }

  store::Code ResolveCode(const ViewDescriptor& parent, const std::string& path) {
    const size_t slash = path.rfind('/');
    ViewDescriptor dir = parent;
    if (slash != std::string::npos) dir = Resolve(parent, path.substr(0, slash)).view;
    return ResolveViewChild(*archive_, dir, path.substr(slash == std::string::npos ? 0 : slash + 1))
        .status()
        .code();
  }

  std::string ReadPath(const ViewDescriptor& parent, const std::string& path) {
    return ReadAll(Resolve(parent, path).view);
  }

  std::vector<std::string> ListPath(const ViewDescriptor& parent, const std::string& path) {
    const ViewDescriptor dir = path.empty() ? parent : Resolve(parent, path).view;
    auto entries = ListView(*archive_, dir, false);
    EXPECT_OK(entries);
    return entries.ok() ? Names(*entries) : std::vector<std::string>{};
  }

  std::string ct_;
};

TEST_F(MetaViewsTest, MetaRootListsLiveRegularFilesOnly) {
  Save(store::kRootInode, "b.txt", "b");
  Save(store::kRootInode, "a.txt", "a");
  Save(store::kRootInode, "gone.txt", "x");
  ASSERT_OK(archive_->Unlink(store::kRootInode, "gone.txt", caller_));
  MakeDir(store::kRootInode, "d");
  ASSERT_OK(archive_->MakeSymlink(store::kRootInode, "l", "a.txt", caller_));
  const ViewDescriptor meta = LiveMetaRootOf(store::kRootInode);
  EXPECT_EQ(ListPath(meta, ""), (std::vector<std::string>{"a.txt", "b.txt"}));
  for (const char* name : {"gone.txt", "d", "l", "never"}) {
    EXPECT_EQ(ResolveViewChild(*archive_, meta, name).status().code(), store::Code::kNotFound)
        << name;
  }
  ASSERT_OK_AND_ASSIGN(Attr attr, ViewAttr(*archive_, meta));
  EXPECT_EQ(attr.mode, static_cast<uint32_t>(S_IFDIR | 0555));  // the root is 0755
}

TEST_F(MetaViewsTest, NonDicomFileHasNoTags) {
  const std::string random(65536, '\x5a');
  Save(store::kRootInode, "x.dcm", random);
  const ViewDescriptor meta = LiveMetaRootOf(store::kRootInode);
  EXPECT_EQ(ListPath(meta, "x.dcm"), (std::vector<std::string>{"note", "sha256", "versions.tsv"}));
  EXPECT_EQ(ResolveCode(meta, "x.dcm/dicom.json"), store::Code::kNotFound);
  EXPECT_EQ(ResolveCode(meta, "x.dcm/tags"), store::Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(Attr live,
                       store::ReleasedAttr(archive_->Lookup(store::kRootInode, "x.dcm")));
  ASSERT_OK_AND_ASSIGN(store::VersionInfo v1, archive_->GetVersion(live.history, 1));
  EXPECT_EQ(ReadPath(meta, "x.dcm/sha256"), store::FormatSha256Hex(v1.sha256) + "\n");
  EXPECT_EQ(ReadPath(meta, "x.dcm/note"), "");
  ASSERT_OK_AND_ASSIGN(auto tsv, store::ParseVersionsTsv(ReadPath(meta, "x.dcm/versions.tsv")));
  ASSERT_EQ(tsv.size(), 1u);
  EXPECT_EQ(tsv[0].sop_instance_uid, "");
  EXPECT_EQ(GetVirtualXattr(*archive_, live.ino, "user.dicom.PatientID").status().code(),
            store::Code::kNoData);
}

TEST_F(MetaViewsTest, DicomFileShowsItsTags) {
  if (ct_.empty()) GTEST_FAIL() << "python3-pydicom's sample files are not installed";
  const InodeId dir = MakeDir(store::kRootInode, "ct");
  Save(dir, "slice1.dcm", ct_);
  const ViewDescriptor meta = LiveMetaRootOf(dir);
  EXPECT_EQ(ListPath(meta, "slice1.dcm"),
            (std::vector<std::string>{"dicom.json", "note", "sha256", "tags", "tags.tsv",
                                      "versions.tsv"}));
  // tags.tsv: every element as the archive has it, keywords included (issue 18).
  ASSERT_OK_AND_ASSIGN(store::DicomTags stored,
                       archive_->GetTags(Resolve(meta, "slice1.dcm").view.history, 1));
  EXPECT_EQ(ReadPath(meta, "slice1.dcm/tags.tsv"), store::FormatTagsTsv(stored.elements));
  EXPECT_THAT(ReadPath(meta, "slice1.dcm/tags.tsv"),
              ::testing::HasSubstr("\n(0010,0020)\tLO\tPatientID\t1CT1\n"));
  EXPECT_EQ(ReadPath(meta, "slice1.dcm/tags/PatientID"), "1CT1\n");
  EXPECT_EQ(ReadPath(meta, "slice1.dcm/tags/PatientName"), "CompressedSamples^CT1\n");
  EXPECT_EQ(ReadPath(meta, "slice1.dcm/tags/Modality"), "CT\n");
  const std::vector<std::string> tags = ListPath(meta, "slice1.dcm/tags");
  EXPECT_NE(std::find(tags.begin(), tags.end(), "SOPInstanceUID"), tags.end());
  EXPECT_EQ(ResolveCode(meta, "slice1.dcm/tags/NoSuchKeyword"), store::Code::kNotFound);
  EXPECT_EQ(ResolveCode(meta, "slice1.dcm/tags/.."), store::Code::kNotFound);
  const nlohmann::json json = nlohmann::json::parse(ReadPath(meta, "slice1.dcm/dicom.json"));
  EXPECT_EQ(json["00100020"]["Value"][0], "1CT1");
  // Sizes agree with the content (the kernel reads up to the size it was told).
  const ViewEntry tag = Resolve(meta, "slice1.dcm/tags/PatientID");
  ASSERT_OK_AND_ASSIGN(Attr attr, ViewAttr(*archive_, tag.view));
  EXPECT_EQ(attr.size, 5u);
  EXPECT_EQ(attr.mode, static_cast<uint32_t>(S_IFREG | 0440));  // saved 0640
  EXPECT_EQ(attr.uid, caller_.uid);
  // The versions.tsv column.
  ASSERT_OK_AND_ASSIGN(auto tsv,
                       store::ParseVersionsTsv(ReadPath(meta, "slice1.dcm/versions.tsv")));
  ASSERT_EQ(tsv.size(), 1u);
  EXPECT_EQ(tsv[0].sop_instance_uid, "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322");
  EXPECT_FALSE(tsv[0].sop_instance_uid_reused);
}

TEST_F(MetaViewsTest, EachVersionKeepsItsOwnTags) {
  if (ct_.empty()) GTEST_FAIL() << "python3-pydicom's sample files are not installed";
  Save(store::kRootInode, "ct.dcm", ct_);
  Save(store::kRootInode, "ct.dcm", Patched(ct_, "CompressedSamples^CT1", "CompressedSamples^XY1"));
  ASSERT_OK_AND_ASSIGN(ViewEntry history,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "ct.dcm"));
  EXPECT_EQ(ListPath(history.view, ".meta"),
            (std::vector<std::string>{"versions.tsv", "v1", "v2"}));
  EXPECT_EQ(ListPath(history.view, ".meta/v1"),
            (std::vector<std::string>{"dicom.json", "diff", "note", "sha256", "tags", "tags.tsv"}));
  EXPECT_EQ(ReadPath(history.view, ".meta/v1/tags/PatientName"), "CompressedSamples^CT1\n");
  // The diff of v2 names the one tag the save changed.
  EXPECT_THAT(ReadPath(history.view, ".meta/v2/diff"),
              ::testing::HasSubstr("changed PatientName (0010,0010) PN: \"CompressedSamples^CT1\" "
                                   "-> \"CompressedSamples^XY1\""));
  EXPECT_EQ(ReadPath(history.view, ".meta/v2/tags/PatientName"), "CompressedSamples^XY1\n");
  EXPECT_EQ(ReadPath(LiveMetaRootOf(store::kRootInode), "ct.dcm/tags/PatientName"),
            "CompressedSamples^XY1\n");
  for (const char* name : {"v3", "v0", "v1_2026", "x"}) {
    EXPECT_EQ(ResolveCode(history.view, std::string(".meta/") + name), store::Code::kNotFound)
        << name;
  }
  // Same SOPInstanceUID, different content: flagged on the second version.
  ASSERT_OK_AND_ASSIGN(auto tsv,
                       store::ParseVersionsTsv(ReadPath(history.view, ".meta/versions.tsv")));
  ASSERT_EQ(tsv.size(), 2u);
  EXPECT_FALSE(tsv[0].sop_instance_uid_reused);
  EXPECT_TRUE(tsv[1].sop_instance_uid_reused);
  EXPECT_EQ(tsv[0].sop_instance_uid, tsv[1].sop_instance_uid);
}

TEST_F(MetaViewsTest, WritingANoteRecordsItWithoutAVersion) {
  const InodeId ino = Save(store::kRootInode, "scan.dcm", "content");
  const ViewDescriptor meta = LiveMetaRootOf(store::kRootInode);
  const ViewEntry note = Resolve(meta, "scan.dcm/note");
  ASSERT_EQ(note.view.kind, ViewKind::kNoteFile);
  {
    ASSERT_OK_AND_ASSIGN(auto handle, OpenNoteForWriting(*archive_, note.view, true, false));
    ASSERT_OK(handle->Write(0, "checked by dr. a\n"));
    ASSERT_OK(handle->Flush(caller_));
    ASSERT_OK(handle->Flush(caller_));  // nothing new: no second note
  }
  ASSERT_OK_AND_ASSIGN(Attr live, archive_->GetAttr(ino));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(live.history));
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].note, "checked by dr. a");
  EXPECT_EQ(ReadAll(note.view), "checked by dr. a\n");
  ASSERT_OK_AND_ASSIGN(Attr attr, ViewAttr(*archive_, note.view));
  EXPECT_EQ(attr.mode, static_cast<uint32_t>(S_IFREG | 0640));
  ASSERT_OK_AND_ASSIGN(std::string xattr, GetVirtualXattr(*archive_, ino, kNoteXattr));
  EXPECT_EQ(xattr, "checked by dr. a");
  {  // O_APPEND adds to the end, whatever the offset.
    ASSERT_OK_AND_ASSIGN(auto handle, OpenNoteForWriting(*archive_, note.view, false, true));
    ASSERT_OK(handle->Write(0, "and dr. b\n"));
    ASSERT_OK(handle->Flush(caller_));
  }
  EXPECT_EQ(ReadAll(note.view), "checked by dr. a\nand dr. b\n");
  ASSERT_OK(TruncateNote(*archive_, note.view, nullptr, 0, caller_));
  EXPECT_EQ(ReadAll(note.view), "");
  ASSERT_OK_AND_ASSIGN(auto notes, archive_->ListNotes(live.history, 1));
  EXPECT_EQ(notes.size(), 3u);  // every earlier note is kept
  ASSERT_OK_AND_ASSIGN(auto after, archive_->ListVersions(live.history));
  EXPECT_EQ(after.size(), 1u);
  // Only note files open for writing; a note is at most 64 KiB.
  EXPECT_EQ(OpenNoteForWriting(*archive_, Resolve(meta, "scan.dcm/sha256").view, true, false)
                .status()
                .code(),
            store::Code::kReadOnly);
  ASSERT_OK_AND_ASSIGN(auto handle, OpenNoteForWriting(*archive_, note.view, true, false));
  EXPECT_EQ(handle->Write(0, std::string(70 * 1024, 'n')).status().code(), store::Code::kTooBig);
}

TEST_F(MetaViewsTest, NoteOfAnEarlierVersion) {
  Save(store::kRootInode, "f", "one");
  Save(store::kRootInode, "f", "two");
  ASSERT_OK_AND_ASSIGN(ViewEntry history,
                       ResolveViewChild(*archive_, VersionRootOf(store::kRootInode), "f"));
  const ViewEntry note = Resolve(history.view, ".meta/v1/note");
  ASSERT_OK_AND_ASSIGN(auto handle, OpenNoteForWriting(*archive_, note.view, true, false));
  ASSERT_OK(handle->Write(0, "the first"));
  ASSERT_OK(handle->Flush(caller_));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(history.view.history));
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0].note, "the first");
  EXPECT_EQ(versions[1].note, "");
  EXPECT_EQ(ReadPath(history.view, ".meta/v1/sha256"),
            store::FormatSha256Hex(versions[0].sha256) + "\n");
}

TEST_F(MetaViewsTest, MetaFollowsTheFilesPermissionsAndLife) {
  const InodeId ino = Save(store::kRootInode, "scan.dcm", "content", 0644);
  const ViewDescriptor meta = LiveMetaRootOf(store::kRootInode);
  const ViewEntry dir = Resolve(meta, "scan.dcm");
  const ViewEntry sha = Resolve(meta, "scan.dcm/sha256");
  const ViewEntry note = Resolve(meta, "scan.dcm/note");
  store::SetAttrRequest chmod;
  chmod.mode = 0640;
  ASSERT_OK(archive_->SetAttr(ino, chmod, caller_));
  ASSERT_OK_AND_ASSIGN(Attr dir_attr, ViewAttr(*archive_, dir.view));
  EXPECT_EQ(dir_attr.mode, static_cast<uint32_t>(S_IFDIR | 0550));
  ASSERT_OK_AND_ASSIGN(Attr sha_attr, ViewAttr(*archive_, sha.view));
  EXPECT_EQ(sha_attr.mode, static_cast<uint32_t>(S_IFREG | 0440));
  ASSERT_OK_AND_ASSIGN(Attr note_attr, ViewAttr(*archive_, note.view));
  EXPECT_EQ(note_attr.mode, static_cast<uint32_t>(S_IFREG | 0640));
  // A new version shows through the same view; a deleted file has no current metadata.
  Save(store::kRootInode, "scan.dcm", "changed");
  ASSERT_OK_AND_ASSIGN(Attr live, archive_->GetAttr(ino));
  ASSERT_OK_AND_ASSIGN(store::VersionInfo v2, archive_->GetVersion(live.history, 2));
  EXPECT_EQ(ReadAll(sha.view), store::FormatSha256Hex(v2.sha256) + "\n");
  ASSERT_OK(archive_->Unlink(store::kRootInode, "scan.dcm", caller_));
  EXPECT_EQ(OpenViewFile(*archive_, sha.view).status().code(), store::Code::kNotFound);
  EXPECT_EQ(ResolveViewChild(*archive_, meta, "scan.dcm").status().code(), store::Code::kNotFound);
}

TEST_F(MetaViewsTest, VirtualXattrs) {
  const InodeId plain = Save(store::kRootInode, "plain.txt", "text");
  ASSERT_OK_AND_ASSIGN(std::string version, GetVirtualXattr(*archive_, plain, kVersionXattr));
  EXPECT_EQ(version, "1");
  Save(store::kRootInode, "plain.txt", "text 2");
  ASSERT_OK_AND_ASSIGN(version, GetVirtualXattr(*archive_, plain, kVersionXattr));
  EXPECT_EQ(version, "2");
  ASSERT_OK_AND_ASSIGN(Attr live, archive_->GetAttr(plain));
  ASSERT_OK_AND_ASSIGN(store::VersionInfo v2, archive_->GetVersion(live.history, 2));
  ASSERT_OK_AND_ASSIGN(std::string sha, GetVirtualXattr(*archive_, plain, kSha256Xattr));
  EXPECT_EQ(sha, store::FormatSha256Hex(v2.sha256));
  EXPECT_EQ(GetVirtualXattr(*archive_, plain, kNoteXattr).status().code(), store::Code::kNoData);
  EXPECT_EQ(SetVirtualXattr(*archive_, plain, kNoteXattr, "x", XATTR_REPLACE, caller_).code(),
            store::Code::kNoData);
  ASSERT_OK(SetVirtualXattr(*archive_, plain, kNoteXattr, std::string("hello\0", 6), 0, caller_));
  ASSERT_OK_AND_ASSIGN(std::string note, GetVirtualXattr(*archive_, plain, kNoteXattr));
  EXPECT_EQ(note, "hello");
  EXPECT_EQ(SetVirtualXattr(*archive_, plain, kNoteXattr, "x", XATTR_CREATE, caller_).code(),
            store::Code::kExists);
  ASSERT_OK(RemoveVirtualXattr(*archive_, plain, kNoteXattr, caller_));
  EXPECT_EQ(GetVirtualXattr(*archive_, plain, kNoteXattr).status().code(), store::Code::kNoData);
  EXPECT_EQ(RemoveVirtualXattr(*archive_, plain, kNoteXattr, caller_).code(), store::Code::kNoData);
  ASSERT_OK_AND_ASSIGN(auto notes, archive_->ListNotes(live.history, 2));
  EXPECT_EQ(notes.size(), 2u);
  // Read-only names, unknown names, directories.
  for (std::string_view name :
       {kVersionXattr, kSha256Xattr, std::string_view("user.dicom.PatientID"),
        std::string_view("user.medvfs.restore")}) {
    EXPECT_EQ(SetVirtualXattr(*archive_, plain, name, "1", 0, caller_).code(),
              store::Code::kPermission)
        << name;
    EXPECT_EQ(RemoveVirtualXattr(*archive_, plain, name, caller_).code(), store::Code::kPermission)
        << name;
  }
  EXPECT_EQ(GetVirtualXattr(*archive_, plain, "user.dicom.Rows").status().code(),
            store::Code::kNoData);
  EXPECT_EQ(GetVirtualXattr(*archive_, store::kRootInode, kVersionXattr).status().code(),
            store::Code::kNoData);
  EXPECT_TRUE(IsVirtualXattr("user.dicom.PatientID"));
  EXPECT_TRUE(IsVirtualXattr("user.medvfs.anything"));
  EXPECT_FALSE(IsVirtualXattr("user.comment"));
  EXPECT_FALSE(IsVirtualXattr("security.selinux"));

  if (ct_.empty()) GTEST_FAIL() << "python3-pydicom's sample files are not installed";
  const InodeId ct = Save(store::kRootInode, "ct.dcm", ct_);
  const std::pair<const char*, const char*> want[] = {
      {"PatientID", "1CT1"},
      {"PatientName", "CompressedSamples^CT1"},
      {"StudyDate", "20040119"},
      {"Modality", "CT"},
      {"SOPInstanceUID", "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"}};
  for (const auto& [keyword, value] : want) {
    ASSERT_OK_AND_ASSIGN(std::string got,
                         GetVirtualXattr(*archive_, ct, std::string("user.dicom.") + keyword));
    EXPECT_EQ(got, value) << keyword;
  }
}

TEST_F(MetaViewsTest, PatientIndexLinksToTheLiveFiles) {
  if (ct_.empty()) GTEST_FAIL() << "python3-pydicom's sample files are not installed";
  const InodeId a = MakeDir(store::kRootInode, "a");
  const InodeId b = MakeDir(store::kRootInode, "b");
  const InodeId one = Save(a, "slice.dcm", ct_);
  const InodeId two =
      Save(b, "slice.dcm", Patched(ct_, "CompressedSamples^CT1", "CompressedSamples^XY1"));
  Save(a, "other.dcm", ct_);
  Save(a, "notes.txt", "not DICOM");
  const ViewDescriptor root = PatientsRoot();
  ASSERT_OK_AND_ASSIGN(Attr root_attr, ViewAttr(*archive_, root));
  EXPECT_EQ(root_attr.mode, static_cast<uint32_t>(S_IFDIR | 0550));
  EXPECT_EQ(ListPath(root, ""), std::vector<std::string>{"1CT1"});
  EXPECT_EQ(ListPath(root, "1CT1"), std::vector<std::string>{"20040119_e+1"});
  const std::vector<std::string> links = ListPath(root, "1CT1/20040119_e+1");
  const std::string first = "slice~" + std::to_string(one) + ".dcm";
  const std::string second = "slice~" + std::to_string(two) + ".dcm";
  std::vector<std::string> want = {"other.dcm", first, second};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(links, want);
  const ViewEntry link = Resolve(root, "1CT1/20040119_e+1/" + second);
  EXPECT_EQ(link.mode, static_cast<uint32_t>(S_IFLNK));
  ASSERT_OK_AND_ASSIGN(std::string target, ReadViewLink(link.view));
  EXPECT_EQ(target, "../../../b/slice.dcm");
  EXPECT_EQ(ResolveCode(root, "nobody"), store::Code::kNotFound);
  EXPECT_EQ(ResolveCode(root, "1CT1/19990101_x"), store::Code::kNotFound);
  // A rename shows at once; a delete removes the link.
  ASSERT_OK(archive_->Rename(b, "slice.dcm", store::kRootInode, "moved.dcm", 0, caller_));
  ASSERT_OK_AND_ASSIGN(target, ReadViewLink(Resolve(root, "1CT1/20040119_e+1/moved.dcm").view));
  EXPECT_EQ(target, "../../../moved.dcm");
  ASSERT_OK(archive_->Unlink(a, "other.dcm", caller_));
  EXPECT_EQ(ListPath(root, "1CT1/20040119_e+1"),
            (std::vector<std::string>{"moved.dcm", "slice.dcm"}));
}

TEST(StudyLinkNamesTest, DisambiguatesDuplicatesByInode) {
  const std::vector<store::IndexedFile> files = {
      {10, "ct/IM1.dcm"}, {11, "mr/IM1.dcm"}, {12, "IM2.dcm"}, {13, "x/README"}, {14, "y/README"}};
  EXPECT_EQ(StudyLinkNames(files), (std::vector<std::string>{"IM1~10.dcm", "IM1~11.dcm", "IM2.dcm",
                                                             "README~13", "README~14"}));
  EXPECT_EQ(PatientLinkTarget("ct/IM1.dcm"), "../../../ct/IM1.dcm");
}

TEST(ViewNamesTest, ReservedNames) {
  EXPECT_TRUE(IsReservedName("@version"));
  EXPECT_TRUE(IsReservedName(".meta"));
  EXPECT_FALSE(IsReservedName("@versions"));
  EXPECT_FALSE(IsReservedName("meta"));
  EXPECT_FALSE(IsReservedName("@2026-01-01"));
  EXPECT_TRUE(IsViewName(store::kRootInode, "@patients"));
  EXPECT_FALSE(IsViewName(5, "@patients"));
  EXPECT_TRUE(IsViewName(5, ".meta"));
  EXPECT_TRUE(IsViewName(5, "@version"));
  EXPECT_FALSE(IsViewName(5, "note"));
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
  stats.reclaimable_bytes = 77;
  stats.remotes = 2;
  stats.remote_lag_bytes = 4096;
  stats.remote_lag_seconds = 42;
  stats.remote_errors = 1;
  EXPECT_EQ(FormatStatsJson(stats),
            "{\"files\":3,\"live_files\":0,\"directories\":0,\"versions\":0,"
            "\"logical_bytes\":0,\"stored_bytes\":0,\"chunks\":0,\"disk_bytes\":12345678901,"
            "\"pack_bytes\":0,\"reclaimable_bytes\":77,\"gc_time_ns\":0,\"gc_duration_ms\":0,"
            "\"gc_chunks_dropped\":0,\"gc_packs_removed\":0,\"gc_bytes_freed\":0,"
            "\"held_versions\":0,\"removed_versions\":0,\"holds\":0,\"retention_rules\":0,"
            "\"remotes\":2,\"remote_lag_bytes\":4096,\"remote_lag_seconds\":42,"
            "\"remote_errors\":1}");
  stats.last_gc = store::GcResult{};
  stats.last_gc->time_ns = 5;
  stats.last_gc->bytes_freed = 9;
  EXPECT_NE(FormatStatsJson(stats).find("\"gc_time_ns\":5,"), std::string::npos);
  EXPECT_NE(FormatStatsJson(stats).find("\"gc_bytes_freed\":9,"), std::string::npos);
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
