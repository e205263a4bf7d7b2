// `medvfs gc`: on an unmounted archive (a dry run changes nothing; a collection frees the
// space of a deleted scratch file and keeps every version), while mounted with a writer saving
// through the mount (the daemon collects, nothing committed is lost), and killed with SIGKILL
// at random moments (verify stays clean, every version reads back, a second run finishes).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/tools/cli_fixture.h"

namespace medvfs::testing {
namespace {

using ::testing::HasSubstr;
namespace stdfs = std::filesystem;

uint64_t DirBytes(const stdfs::path& dir) {
  uint64_t total = 0;
  for (const auto& entry : stdfs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) total += entry.file_size();
  }
  return total;
}

nlohmann::json GcJson(const RunResult& run) {
  return nlohmann::json::parse(run.out, nullptr, /*allow_exceptions=*/false);
}

class CliGcTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    InitArchive();
    // Kept files with two versions each, and a 24 MB scratch file (vim's swap name) that is
    // deleted: its chunks are garbage, in the pack still taking appends.
    Populate({"write:/a.txt=first", "write:/a.txt=second", "big:/b.dat=3000000",
              "big:/.b.dat.swp=24000000", "rm:/.b.dat.swp", "write:/b.dat=small now"});
  }
};

TEST_F(CliGcTest, DryRunChangesNothingThenCollectionFreesTheScratchSpace) {
  const uint64_t packs_before = DirBytes(archive_ / "packs");
  RunResult dry = Medvfs({"gc", archive_.string(), "--dry-run", "--json"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  nlohmann::json planned = GcJson(dry);
  ASSERT_TRUE(planned.is_object()) << dry.out;
  EXPECT_TRUE(planned["dry_run"].get<bool>());
  EXPECT_GT(planned["chunks_dropped"].get<uint64_t>(), 0u);
  // What the scratch file's chunks take once compressed and sealed.
  const uint64_t garbage = planned["bytes_dropped"].get<uint64_t>();
  EXPECT_GT(garbage, 2'000'000u);
  EXPECT_GE(planned["bytes_freed"].get<uint64_t>(), garbage);
  EXPECT_EQ(DirBytes(archive_ / "packs"), packs_before);

  RunResult gc = Medvfs({"gc", archive_.string()});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  EXPECT_THAT(gc.out, HasSubstr("space freed:"));
  const uint64_t packs_after = DirBytes(archive_ / "packs");
  EXPECT_LE(packs_after + garbage * 9 / 10, packs_before)
      << "before " << packs_before << ", after " << packs_after << ", garbage " << garbage;

  RunResult verify = Medvfs({"verify", archive_.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(Medvfs({"cat", InArchive("/a.txt"), "--version", "1"}).out, "first");
  EXPECT_EQ(Medvfs({"cat", InArchive("/b.dat")}).out, "small now");
  EXPECT_EQ(Medvfs({"cat", InArchive("/b.dat"), "--version", "1"}).out.size(), 3'000'000u);

  RunResult stats = Medvfs({"stats", archive_.string(), "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  nlohmann::json s = nlohmann::json::parse(stats.out, nullptr, false);
  ASSERT_TRUE(s.is_object()) << stats.out;
  ASSERT_TRUE(s["last_gc"].is_object()) << stats.out;
  EXPECT_GE(s["last_gc"]["bytes_freed"].get<uint64_t>(), garbage * 9 / 10);
  RunResult audit = Medvfs({"audit", archive_.string(), "--json"});
  EXPECT_THAT(audit.out, HasSubstr("\"op\":\"gc\""));
}

// SIGKILL at random moments of a collection: nothing committed is lost, verify is clean, and
// the next collection finishes the work.
TEST_F(CliGcTest, KilledAtAnyMomentLosesNothing) {
  std::mt19937 rng(11);
  const std::string b_v1 = Medvfs({"cat", InArchive("/b.dat"), "--version", "1"}).out;
  ASSERT_EQ(b_v1.size(), 3'000'000u);
  for (int round = 0; round < 4; ++round) {
    // The collection, without a rate limit, so that a kill lands in any step of it.
    const pid_t pid =
        SpawnProgram({MEDVFS_BIN, "gc", archive_.string(), "--threshold", "0", "--rate", "0"},
                     Options(), dir_ / ("gc-" + std::to_string(round) + ".log"));
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 1500));
    kill(pid, SIGKILL);
    WaitExit(pid);
    RunResult verify = Medvfs({"verify", archive_.string()});
    EXPECT_EQ(verify.exit_code, 0) << "round " << round << ": " << verify.out << verify.err;
    EXPECT_EQ(Medvfs({"cat", InArchive("/a.txt"), "--version", "1"}).out, "first");
    EXPECT_TRUE(Medvfs({"cat", InArchive("/b.dat"), "--version", "1"}).out == b_v1);
  }
  RunResult gc = Medvfs({"gc", archive_.string(), "--json"});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  RunResult again = Medvfs({"gc", archive_.string(), "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(GcJson(again)["chunks_dropped"].get<uint64_t>(), 0u);
  RunResult verify = Medvfs({"verify", archive_.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

class CliGcMountTest : public CliMountTest {};

// The daemon collects while a writer saves through the mount; every save is there afterwards.
TEST_F(CliGcMountTest, OnlineCollectionWhileWriting) {
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::pair<std::string, std::string>> saved;
  std::thread writer([&] {
    std::mt19937 rng(3);
    for (int i = 0; !stop.load() || i < 30; ++i) {
      std::string content(200'000 + rng() % 100'000, '\0');
      for (char& c : content) c = static_cast<char>(rng());
      // A scratch save, deleted: garbage for the collection; then the same bytes kept.
      const stdfs::path scratch = mnt_ / ".w.swp";
      Save(scratch, content);
      if (unlink(scratch.c_str()) != 0) ++failures;
      const std::string name = "w" + std::to_string(i % 4) + ".dat";
      Save(mnt_ / name, content);
      saved.emplace_back(name, content);
    }
  });
  for (int i = 0; i < 3; ++i) {
    RunResult gc = Medvfs({"gc", archive_.string(), "--threshold", "0"}, NoKey());
    EXPECT_EQ(gc.exit_code, 0) << gc.err;
    EXPECT_THAT(gc.out, HasSubstr("by its mount daemon"));
  }
  stop = true;
  writer.join();
  EXPECT_EQ(failures.load(), 0);
  // The last save of each name reads back through the mount.
  std::map<std::string, std::string> last;
  for (const auto& [name, content] : saved) last[name] = content;
  for (const auto& [name, content] : last) {
    std::string read;
    const int fd = open((mnt_ / name).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << name;
    char buffer[65536];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof(buffer))) > 0;) read.append(buffer, n);
    close(fd);
    EXPECT_TRUE(read == content) << name;
  }
  Unmount();
  RunResult verify = Medvfs({"verify", archive_.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace medvfs::testing
