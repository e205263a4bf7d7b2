// Many threads on one inode at once, against the archive directly: savers (truncate, write,
// close), readers through the live name and through versions, chmod, xattrs, and a renamer
// that moves the file away and back. Readers take the archive lock shared and run beside each
// other and beside the savers' chunk work; every read must still see exactly one whole save,
// versions must stay whole and in order, and nothing may fail except what the moves explain.
// Run under ThreadSanitizer by .ci/tsan (lock order, data races); under ASan in CI.
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "store/archive.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::TempDirTest;

// Save `i` of writer `w`: a header naming both, then bytes only it has (sizes cross chunk
// boundaries and the pipelined-append threshold).
std::string SaveContent(int w, int i) {
  static constexpr size_t kSizes[] = {10, 5000, 70'000, 200'000};
  std::string content = "save " + std::to_string(w) + " " + std::to_string(i) + "\n";
  std::mt19937 rng(static_cast<uint32_t>(w * 1000 + i));
  const size_t size = kSizes[static_cast<size_t>(i + w) % std::size(kSizes)];
  while (content.size() < size) content += static_cast<char>('a' + rng() % 26);
  return content;
}

// Whether `content` is exactly one save (or empty: a save between its truncate and its write).
bool IsWholeSave(const std::string& content) {
  if (content.empty()) return true;
  int w = 0;
  int i = 0;
  if (std::sscanf(content.c_str(), "save %d %d\n", &w, &i) != 2) return false;
  return SaveContent(w, i) == content;
}

class SameInodeTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    ArchiveOptions options;
    options.kdf.n = 1 << 10;
    options.max_dirty_bytes_per_file = 128 << 10;
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Create(dir() / "archive", Key(), options));
    caller_.uid = 1000;
    caller_.gid = 1000;
    caller_.program = "same-inode-test";
  }
  static KeySource Key() { return KeySource::Passphrase("same inode"); }

  static std::string ReadAll(FileHandle& handle) {
    std::string out;
    std::string buffer(64 << 10, '\0');
    for (uint64_t offset = 0;;) {
      auto n = handle.Read(offset, std::span<char>(buffer.data(), buffer.size()));
      if (!n.ok()) return "<" + n.status().ToString() + ">";
      if (*n == 0) return out;
      out.append(buffer.data(), *n);
      offset += *n;
    }
  }

  std::unique_ptr<Archive> archive_;
  Caller caller_;
};

TEST_F(SameInodeTest, ReadersWritersAndMetadataChangesOnOneFileAgree) {
  ASSERT_OK_AND_ASSIGN(Attr made, ReleasedAttr(archive_->MakeNode(kRootInode, "scan.dat",
                                                                  S_IFREG | 0644, 0, caller_)));
  const InodeId ino = made.ino;
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  auto fail = [&](const std::string& what) {
    if (failures++ < 10) ADD_FAILURE() << what;
  };
  std::vector<std::thread> threads;
  constexpr int kWriters = 2;
  constexpr int kSavesEach = 25;
  // Two savers take turns (two unsynchronised writers of one file interleave their bytes, as
  // on any file system); everything else runs beside them.
  std::mutex save_mu;
  threads.reserve(kWriters + 4);
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kSavesEach; ++i) {
        std::lock_guard save_lock(save_mu);
        auto handle = archive_->Open(ino, O_WRONLY | O_TRUNC, caller_);
        if (!handle.ok()) return fail("open for writing: " + handle.status().ToString());
        const std::string content = SaveContent(w, i);
        auto written = (*handle)->Write(0, content);
        if (!written.ok()) return fail("write: " + written.status().ToString());
        Status flushed = (*handle)->Flush(caller_);
        if (!flushed.ok()) return fail("flush: " + flushed.ToString());
      }
    });
  }
  // Readers: by inode (an open file), by name (the name may be moved away for a moment),
  // and through the newest version.
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      while (!stop) {
        auto attr = archive_->GetAttr(ino);
        if (!attr.ok()) return fail("getattr: " + attr.status().ToString());
        auto handle = archive_->Open(ino, O_RDONLY, caller_);
        if (!handle.ok()) return fail("open: " + handle.status().ToString());
        // One read call (larger than any save): a save is written with one call too, so the
        // read sees it whole or not at all. (Several reads may each see another save.)
        std::string content(1 << 20, '\0');
        auto n = (*handle)->Read(0, std::span<char>(content.data(), content.size()));
        if (!n.ok()) return fail("read: " + n.status().ToString());
        content.resize(*n);
        if (!IsWholeSave(content))
          return fail("a read saw part of a save: " + content.substr(0, 40));
        auto named = archive_->Lookup(kRootInode, "scan.dat");
        if (!named.ok() && named.status().code() != Code::kNotFound) {
          return fail("lookup: " + named.status().ToString());
        }
        if (attr->history == 0) continue;
        auto versions = archive_->ListVersions(attr->history);
        if (!versions.ok() || versions->empty()) continue;
        uint64_t previous = 0;
        for (const VersionInfo& version : *versions) {
          if (version.number <= previous) return fail("versions out of order");
          previous = version.number;
        }
        const VersionInfo& newest = versions->back();
        if (newest.is_delete_marker()) continue;
        auto version = archive_->OpenVersion(attr->history, newest.number);
        if (!version.ok()) return fail("open version: " + version.status().ToString());
        const std::string stored = ReadAll(**version);
        if (!IsWholeSave(stored) || stored.size() != newest.size) {
          return fail("version " + std::to_string(newest.number) + " is not one whole save");
        }
      }
    });
  }
  // Metadata: chmod and xattrs on the same inode, and a rename away and back.
  threads.emplace_back([&] {
    for (uint32_t i = 0; !stop; ++i) {
      SetAttrRequest chmod;
      chmod.mode = (i % 2 == 0) ? 0640 : 0644;
      auto changed = archive_->SetAttr(ino, chmod, caller_);
      if (!changed.ok()) return fail("chmod: " + changed.status().ToString());
      Status set = archive_->SetXattr(ino, "user.step", std::to_string(i), 0, caller_);
      if (!set.ok()) return fail("setxattr: " + set.ToString());
      auto got = archive_->GetXattr(ino, "user.step");
      if (!got.ok()) return fail("getxattr: " + got.status().ToString());
      auto names = archive_->ListXattr(ino);
      if (!names.ok()) return fail("listxattr: " + names.status().ToString());
    }
  });
  threads.emplace_back([&] {
    while (!stop) {
      Status away = archive_->Rename(kRootInode, "scan.dat", kRootInode, "moved.dat", 0, caller_);
      if (!away.ok()) return fail("rename away: " + away.ToString());
      auto listed = archive_->ReadDir(kRootInode);
      if (!listed.ok()) return fail("readdir: " + listed.status().ToString());
      auto path = archive_->PathOf(ino);
      if (!path.ok()) return fail("path: " + path.status().ToString());
      Status back = archive_->Rename(kRootInode, "moved.dat", kRootInode, "scan.dat", 0, caller_);
      if (!back.ok()) return fail("rename back: " + back.ToString());
    }
  });
  for (int w = 0; w < kWriters; ++w) threads[static_cast<size_t>(w)].join();
  stop = true;
  for (size_t t = kWriters; t < threads.size(); ++t) threads[t].join();
  ASSERT_EQ(failures.load(), 0);

  // Every save made a version (no two are alike), each whole, and the live file is the last.
  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(attr.history));
  int content_versions = 0;
  for (const VersionInfo& version : versions) {
    if (version.is_delete_marker()) continue;
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->OpenVersion(attr.history, version.number));
    const std::string content = ReadAll(*handle);
    EXPECT_TRUE(IsWholeSave(content) && !content.empty()) << "version " << version.number;
    ++content_versions;
  }
  EXPECT_EQ(content_versions, kWriters * kSavesEach);
  ASSERT_OK_AND_ASSIGN(auto live, archive_->Open(ino, O_RDONLY, caller_));
  const VersionInfo& newest = versions.back();
  ASSERT_OK_AND_ASSIGN(auto newest_handle, archive_->OpenVersion(attr.history, newest.number));
  EXPECT_EQ(ReadAll(*live), ReadAll(*newest_handle));
}

}  // namespace
}  // namespace medvfs::store
