// The `medvfs` command line through a mount: log, cat, restore and stats on paths in a mounted
// archive (no key needed), and ARCHIVE::/path redirected to the mount. Skipped where FUSE is
// not available.
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/crypto/crypto.h"
#include "store/views.h"
#include "tests/tools/cli_fixture.h"

namespace medvfs::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(CliMountTest, LogCatAndRestoreThroughTheMount) {
  std::filesystem::create_directory(mnt_ / "study");
  std::filesystem::path scan = mnt_ / "study" / "scan.dcm";
  Save(scan, "first");
  Save(scan, "second!");
  std::filesystem::remove(scan);

  RunResult log = Medvfs({"log", scan.string(), "--json"}, NoKey());
  ASSERT_EQ(log.exit_code, 0) << log.err;
  nlohmann::json versions = nlohmann::json::parse(log.out)["versions"];
  ASSERT_EQ(versions.size(), 3u) << log.out;
  EXPECT_EQ(versions[0]["sha256"], store::HexEncode(store::Sha256Of("first")));
  EXPECT_EQ(versions[2]["operation"], store::OperationName(store::Operation::kDeleteMarker));

  EXPECT_EQ(Medvfs({"cat", scan.string(), "--version", "1"}, NoKey()).out, "first");
  int64_t t1 = versions[0]["time_ns"];
  int64_t t2 = versions[1]["time_ns"];
  std::string between = store::FormatTimeNs(t1 + (t2 - t1) / 2);
  EXPECT_EQ(Medvfs({"cat", scan.string(), "--at", between}, NoKey()).out, "first");
  RunResult deleted = Medvfs({"cat", scan.string()}, NoKey());
  EXPECT_EQ(deleted.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(deleted));
  EXPECT_THAT(deleted.err, HasSubstr("deleted"));

  RunResult restore = Medvfs({"restore", scan.string(), "--version", "2"}, NoKey());
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  EXPECT_THAT(restore.out, HasSubstr("version 4"));
  EXPECT_EQ(Medvfs({"cat", scan.string()}, NoKey()).out, "second!");
  std::ifstream in(scan, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "second!");
}

TEST_F(CliMountTest, RelativePathsAndMissingVersions) {
  Save(mnt_ / "a.txt", "hello");
  RunOptions in_mount = NoKey();
  in_mount.working_dir = mnt_.string();
  RunResult cat = Medvfs({"cat", "a.txt"}, in_mount);
  EXPECT_EQ(cat.exit_code, 0) << cat.err;
  EXPECT_EQ(cat.out, "hello");
  RunResult missing = Medvfs({"cat", "a.txt", "--version", "5"}, in_mount);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(missing));
  EXPECT_THAT(missing.err, HasSubstr("no version 5"));
  RunResult never = Medvfs({"log", "never.txt"}, in_mount);
  EXPECT_EQ(never.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(never));
}

TEST_F(CliMountTest, ArchivePathsOfAMountedArchiveGoThroughTheMount) {
  Save(mnt_ / "a.txt", "hello");
  RunResult log = Medvfs({"log", InArchive("/a.txt")}, NoKey());
  EXPECT_EQ(log.exit_code, 0) << log.err;
  EXPECT_THAT(log.out, HasSubstr(store::HexEncode(store::Sha256Of("hello")).substr(0, 12)));
  RunResult cat = Medvfs({"cat", "--archive", archive_.string(), "a.txt"}, NoKey());
  EXPECT_EQ(cat.out, "hello");
}

TEST_F(CliMountTest, StatsOfAMountedArchive) {
  Save(mnt_ / "a.txt", "hello");
  Save(mnt_ / "a.txt", "hello again");
  for (const std::string& which : {archive_.string(), mnt_.string()}) {
    RunResult stats = Medvfs({"stats", which, "--json"}, NoKey());
    ASSERT_EQ(stats.exit_code, 0) << which << stats.err;
    nlohmann::json json = nlohmann::json::parse(stats.out);
    EXPECT_EQ(json["files"], 1) << which;
    EXPECT_EQ(json["versions"], 2) << which;
    EXPECT_EQ(json["logical_bytes"], 5 + 11) << which;
  }
}

TEST_F(CliMountTest, RestoreOnAReadOnlyMountIsRefused) {
  Save(mnt_ / "a.txt", "one");
  Save(mnt_ / "a.txt", "two");
  Unmount();
  RunResult mount = Medvfs({"mount", archive_.string(), mnt_.string(), "-o", "ro"});
  ASSERT_EQ(mount.exit_code, 0) << mount.err;
  mounted_ = true;
  RunResult restore = Medvfs({"restore", (mnt_ / "a.txt").string(), "--version", "1"}, NoKey());
  EXPECT_EQ(restore.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(restore));
  EXPECT_THAT(restore.err, HasSubstr("read-only"));
  EXPECT_EQ(Medvfs({"cat", (mnt_ / "a.txt").string()}, NoKey()).out, "two");
}

}  // namespace
}  // namespace medvfs::testing
