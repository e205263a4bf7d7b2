// Chunks a writer stored but overwrote or truncated away before its commit are released by that
// commit (store/engine/chunk_settle.h), checked against a model of the file's bytes: after random
// sequences of appends, writes nearer the start, truncates, fsyncs and closes, the file reads
// as the model says and `medvfs verify` finds no chunk that nothing references. Issue 17: an
// archive Orthanc used as its storage folder (SQLite writes its -wal file to the end, then
// again from its start) had such a chunk.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>

#include "store/archive.h"
#include "store/verify.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::TempDirTest;

std::string RandomBytes(size_t n, std::mt19937_64& rng) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string Describe(const VerifyReport& report) {
  std::string text;
  for (const auto& problem : report.problems) text += problem.ToString() + "\n";
  return text;
}

class ChunkSettleTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    options_.kdf.n = 1 << 10;
    // A small overlay cap, so that writes away from the end are checkpointed (stored as
    // chunks) before the commit and may be overwritten again.
    options_.max_dirty_bytes_per_file = 256 << 10;
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Create(path(), Key(), options_));
    caller_.uid = 1000;
    caller_.gid = 1000;
    caller_.pid = 42;
    caller_.program = "test";
  }
  std::filesystem::path path() const { return dir() / "archive"; }
  static KeySource Key() { return KeySource::Passphrase("correct horse"); }

  std::string ReadLive(InodeId ino) {
    auto handle = archive_->Open(ino, O_RDONLY, caller_);
    EXPECT_OK(handle);
    if (!handle.ok()) return "";
    std::string out;
    std::string buffer(1 << 20, '\0');
    for (uint64_t offset = 0;;) {
      auto n = (*handle)->Read(offset, std::span<char>(buffer.data(), buffer.size()));
      EXPECT_OK(n);
      if (!n.ok() || *n == 0) break;
      out.append(buffer.data(), *n);
      offset += *n;
    }
    return out;
  }

  // No chunk is stored that no version references, and nothing is damaged.
  void ExpectNoUnreferencedChunk() {
    archive_.reset();
    ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
    EXPECT_TRUE(report.clean()) << Describe(report);
    EXPECT_EQ(report.unreferenced_chunks, 0u) << Describe(report);
    EXPECT_EQ(report.warnings, 0u) << Describe(report);
  }

  ArchiveOptions options_;
  std::unique_ptr<Archive> archive_;
  Caller caller_;
};

// The pattern found: written to its end (chunks stored as the bytes arrive), then a few bytes
// near its start, then closed. The chunks that held the old start were left behind.
TEST_F(ChunkSettleTest, AWriteNearTheStartAfterStreamingReleasesTheOldChunks) {
  std::mt19937_64 rng(1);
  ASSERT_OK_AND_ASSIGN(Attr file, ReleasedAttr(archive_->MakeNode(kRootInode, "index-wal",
                                                                  S_IFREG | 0644, 0, caller_)));
  std::string model = RandomBytes(2 << 20, rng);
  {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(file.ino, O_WRONLY, caller_));
    ASSERT_OK(handle->Write(0, model).status());
    ASSERT_OK(handle->Write(0, "header rewritten").status());
    ASSERT_OK(handle->Flush(caller_));
  }
  model.replace(0, 16, "header rewritten");
  EXPECT_TRUE(ReadLive(file.ino) == model);
  ExpectNoUnreferencedChunk();
}

// Random sequences against the model: appends (streamed), writes anywhere (overlay pages,
// checkpointed past 256 KiB), truncates (each a commit), fsyncs and closes, on two files.
TEST_F(ChunkSettleTest, RandomWritesLeaveNoUnreferencedChunk) {
  std::mt19937_64 rng(17);
  constexpr int kFiles = 2;
  constexpr int kSteps = 60;
  InodeId inos[kFiles];
  std::string models[kFiles];
  std::unique_ptr<FileHandle> handles[kFiles];
  for (int f = 0; f < kFiles; ++f) {
    ASSERT_OK_AND_ASSIGN(Attr made,
                         ReleasedAttr(archive_->MakeNode(kRootInode, "f" + std::to_string(f),
                                                         S_IFREG | 0644, 0, caller_)));
    inos[f] = made.ino;
  }
  for (int step = 0; step < kSteps; ++step) {
    const int f = static_cast<int>(rng() % kFiles);
    std::string& model = models[f];
    if (handles[f] == nullptr) {
      ASSERT_OK_AND_ASSIGN(handles[f], archive_->Open(inos[f], O_RDWR, caller_));
    }
    FileHandle& handle = *handles[f];
    const unsigned op = static_cast<unsigned>(rng() % 10);
    SCOPED_TRACE("step " + std::to_string(step) + " op " + std::to_string(op));
    if (op < 3) {  // append, up to 600 KiB
      const std::string data = RandomBytes(rng() % (600 << 10) + 1, rng);
      ASSERT_OK(handle.Write(model.size(), data).status());
      model += data;
    } else if (op < 6 && !model.empty()) {  // overwrite somewhere inside, up to 200 KiB
      const size_t at = rng() % model.size();
      const std::string data = RandomBytes(rng() % (200 << 10) + 1, rng);
      ASSERT_OK(handle.Write(at, data).status());
      if (model.size() < at + data.size()) model.resize(at + data.size());
      model.replace(at, data.size(), data);
    } else if (op == 6) {  // truncate, shorter (sometimes to nothing) or longer
      const size_t size = rng() % 4 == 0 ? 0 : rng() % (model.size() + (300 << 10) + 1);
      SetAttrRequest request;
      request.size = size;
      ASSERT_OK(archive_->SetAttr(inos[f], request, caller_).status());
      model.resize(size, '\0');
    } else if (op == 7) {
      ASSERT_OK(handle.Sync(caller_));
    } else {  // close
      ASSERT_OK(handle.Flush(caller_));
      handles[f].reset();
    }
  }
  for (int f = 0; f < kFiles; ++f) {
    if (handles[f] != nullptr) {
      ASSERT_OK(handles[f]->Flush(caller_));
    }
    handles[f].reset();
    EXPECT_TRUE(ReadLive(inos[f]) == models[f]) << "file " << f;
  }
  ExpectNoUnreferencedChunk();
}

}  // namespace
}  // namespace medvfs::store
