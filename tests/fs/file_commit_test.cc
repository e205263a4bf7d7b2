// When an open file's writes become versions (fs/file_commit.h), with a handle whose commits
// are recorded and whose sync lets a write land in the middle, as a FUSE write thread can.
#include "fs/file_commit.h"

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace medvfs::fs::internal {
namespace {

using store::Status;

// Pending bytes become a "version" on Flush or Sync, in order.
class RecordingHandle : public store::FileHandle {
 public:
  store::InodeId ino() const override { return 2; }
  store::StatusOr<size_t> Read(uint64_t, std::span<char>) override { return size_t{0}; }
  store::StatusOr<size_t> Write(uint64_t, std::string_view data) override {
    pending_ += data;
    return data.size();
  }
  Status Flush(const store::Caller&) override { return Commit(); }
  Status Sync(const store::Caller&) override {
    Status status = Commit();
    if (during_sync) std::exchange(during_sync, nullptr)();  // after the commit took its data
    return status;
  }

  std::function<void()> during_sync;
  bool fail = false;
  std::vector<std::string> versions;

 private:
  Status Commit() {
    if (fail) return Status::IoError("disk gone");
    if (!pending_.empty()) versions.push_back(std::exchange(pending_, std::string()));
    return Status::Ok();
  }
  std::string pending_;
};

struct Fixture {
  Fixture() {
    auto owned = std::make_unique<RecordingHandle>();
    handle = owned.get();
    file.handle = std::move(owned);
    file.writable = true;
  }
  // What the write handler does: the bytes, then the mark.
  void Write(std::string_view data) {
    ASSERT_TRUE(file.handle->Write(0, data).ok());
    file.wrote = true;
  }
  OpenFile file;
  RecordingHandle* handle = nullptr;
  store::Caller caller;
};

TEST(FileCommitTest, AWriteRacingAnFsyncIsCommittedByTheClose) {
  Fixture f;
  f.Write("first");
  // The second write arrives while the fsync commits the first.
  f.handle->during_sync = [&] { f.Write("second"); };
  ASSERT_TRUE(SyncOpenFile(f.file, f.caller).ok());
  EXPECT_EQ(f.handle->versions, std::vector<std::string>{"first"});
  EXPECT_TRUE(f.file.wrote) << "fsync erased the mark of a write it did not commit";
  ASSERT_TRUE(CommitOnClose(f.file, f.caller).ok());
  EXPECT_EQ(f.handle->versions, (std::vector<std::string>{"first", "second"}));
  EXPECT_FALSE(f.file.wrote);
}

TEST(FileCommitTest, AFailedCommitKeepsTheMark) {
  Fixture f;
  f.Write("data");
  f.handle->fail = true;
  EXPECT_FALSE(SyncOpenFile(f.file, f.caller).ok());
  EXPECT_TRUE(f.file.wrote);
  EXPECT_FALSE(CommitOnClose(f.file, f.caller).ok());
  EXPECT_TRUE(f.file.wrote);  // release retries
  f.handle->fail = false;
  ASSERT_TRUE(CommitOnClose(f.file, f.caller).ok());
  EXPECT_EQ(f.handle->versions, std::vector<std::string>{"data"});
  EXPECT_FALSE(f.file.wrote);
}

TEST(FileCommitTest, ACloseWithoutWritesCommitsNothing) {
  Fixture f;
  ASSERT_TRUE(CommitOnClose(f.file, f.caller).ok());
  f.Write("x");
  ASSERT_TRUE(SyncOpenFile(f.file, f.caller).ok());
  ASSERT_TRUE(CommitOnClose(f.file, f.caller).ok());  // the fsync committed it already
  EXPECT_EQ(f.handle->versions, std::vector<std::string>{"x"});
  EXPECT_FALSE(f.file.wrote);
}

}  // namespace
}  // namespace medvfs::fs::internal
