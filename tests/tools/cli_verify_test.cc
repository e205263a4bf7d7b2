// `medvfs verify`: exit codes and messages on a clean and on a damaged archive.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/store/pack_files.h"
#include "tests/tools/cli_fixture.h"

namespace medvfs::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class CliVerifyTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    InitArchive();
    Populate({"mkdir:/ct", "big:/ct/scan.dcm=700000", "write:/report.txt=a short report",
              "write:/report.txt=a second report", "write:/gone.txt=x", "rm:/gone.txt"});
  }

  // Flips one byte of the smallest stored chunk (gone.txt's "x"), or of the largest (one of
  // scan.dcm's).
  void DamageChunk(bool largest = false) {
    auto entries = store::test_util::PackEntriesOnDisk(archive_);
    ASSERT_FALSE(entries.empty());
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.info.length < b.info.length; });
    store::test_util::FlipBitInPackEntry(largest ? entries.back() : entries.front());
  }
};

TEST_F(CliVerifyTest, CleanArchiveExitsZero) {
  RunResult run = Medvfs({"verify", archive_.string()});
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_THAT(run.out, HasSubstr("no damage found"));
  EXPECT_THAT(run.out, HasSubstr("checked: "));
  EXPECT_THAT(run.out, Not(HasSubstr("error:")));
  EXPECT_THAT(run.err, Not(HasSubstr("verify: content")));  // no progress when not a terminal

  RunResult quiet = Medvfs({"verify", "--quiet", archive_.string()});
  EXPECT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.out, "");

  RunResult json = Medvfs({"verify", "--json", archive_.string()});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json parsed = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << json.out;
  EXPECT_EQ(parsed["clean"], true);
  EXPECT_EQ(parsed["errors"], 0);
  EXPECT_EQ(parsed["files"], 3);
  EXPECT_EQ(parsed["content_bytes"], 700000 + 14 + 15 + 1);
}

TEST_F(CliVerifyTest, DamagedChunkExitsOneAndNamesFileAndVersion) {
  DamageChunk();
  RunResult run = Medvfs({"verify", archive_.string()});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_THAT(run.out, HasSubstr("error: /gone.txt v1: chunk 1 of 1 failed authentication"));
  EXPECT_THAT(run.out, HasSubstr("1 errors"));
  EXPECT_THAT(run.out, Not(HasSubstr("/ct/scan.dcm")));

  RunResult json = Medvfs({"verify", "--json", archive_.string()});
  EXPECT_EQ(json.exit_code, 1) << json.err;
  nlohmann::json parsed = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << json.out;
  EXPECT_EQ(parsed["clean"], false);
  ASSERT_EQ(parsed["problems"].size(), 1u) << json.out;
  EXPECT_EQ(parsed["problems"][0]["where"], "/gone.txt v1");
  EXPECT_EQ(parsed["problems"][0]["severity"], "error");

  RunResult quiet = Medvfs({"verify", "-q", archive_.string()});
  EXPECT_EQ(quiet.exit_code, 1);
  EXPECT_THAT(quiet.out, HasSubstr("error: /gone.txt v1: chunk 1 of 1"));
  EXPECT_THAT(quiet.out, Not(HasSubstr("checked:")));
}

// `medvfs cat` of a file whose stored bytes were damaged: it fails with the damage named,
// writes none of the damaged chunk's bytes, and the audit log records who met the damage where
// (damage-found), as a read through a mount does.
TEST_F(CliVerifyTest, CatOfDamagedBytesFailsAndIsAudited) {
  DamageChunk(/*largest=*/true);
  RunResult cat = Medvfs({"cat", archive_.string() + "::/ct/scan.dcm"});
  EXPECT_NE(cat.exit_code, 0) << cat.err;
  EXPECT_THAT(cat.err, HasSubstr("/ct/scan.dcm"));
  EXPECT_LT(cat.out.size(), 700000u);
  RunResult report = Medvfs({"cat", archive_.string() + "::/report.txt"});
  EXPECT_EQ(report.exit_code, 0) << report.err;  // other files read on
  RunResult audit = Medvfs({"audit", archive_.string()});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, ::testing::ContainsRegex("damage-found +EIO +v1 +/ct/scan.dcm +cat: "))
      << audit.out;
}

// A flipped byte in the write-ahead log, with committed versions after it: verify names the
// log, and a mount refuses without calling it a rollback (and without dropping the log).
TEST_F(CliVerifyTest, DamagedWriteAheadLogIsNamedAndTheMountRefuses) {
  // The log holds records only (chunks go to pack files): enough small saves that it spans
  // several of its 32 KiB blocks, so that the damage has committed versions after it.
  std::vector<std::string> saves{"mkdir:/notes"};
  for (int i = 0; i < 200; ++i) {
    saves.push_back("write:/notes/n" + std::to_string(i) + ".txt=note " + std::to_string(i));
  }
  Populate(saves);
  std::vector<std::filesystem::path> logs;
  for (const auto& entry : std::filesystem::directory_iterator(archive_ / "db")) {
    if (entry.path().extension() == ".log") logs.push_back(entry.path());
  }
  ASSERT_EQ(logs.size(), 1u);
  std::string bytes;
  {
    std::ifstream in(logs[0], std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(bytes.size(), 3u * 32768) << "the populate run's versions should be in the log";
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
  {
    std::ofstream out(logs[0], std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  const std::string log_name = logs[0].filename().string();

  RunResult run = Medvfs({"verify", archive_.string()});
  EXPECT_EQ(run.exit_code, 1) << run.out << run.err;
  EXPECT_THAT(run.out, HasSubstr("error: database write-ahead log: the write-ahead log (" +
                                 log_name + ") is damaged"));
  EXPECT_THAT(run.out, HasSubstr("committed versions may be among them"));

  ASSERT_TRUE(FuseAvailable()) << "no FUSE here: the mount half cannot run";
  const std::filesystem::path mnt = dir_ / "mnt";
  std::filesystem::create_directories(mnt);
  RunResult mount = Medvfs({"mount", archive_.string(), mnt.string()});
  if (mount.exit_code == 0) Medvfs({"umount", mnt.string()});
  EXPECT_NE(mount.exit_code, 0);
  EXPECT_TRUE(IsOneLineError(mount));
  EXPECT_THAT(mount.err, HasSubstr("write-ahead log (" + log_name + ") is damaged"));
  EXPECT_THAT(mount.err, HasSubstr("--accept-wal-damage"));
  EXPECT_THAT(mount.err, Not(HasSubstr("roll")));
  EXPECT_TRUE(std::filesystem::exists(logs[0]));
}

TEST_F(CliVerifyTest, WrongKeyAndBadArguments) {
  RunOptions wrong = Options();
  wrong.env["MEDVFS_PASSPHRASE"] = "not the passphrase";
  RunResult run = Medvfs({"verify", archive_.string()}, wrong);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(run));
  EXPECT_THAT(run.err, HasSubstr("passphrase"));

  RunResult missing = Medvfs({"verify", (dir_ / "nowhere").string()});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(missing));

  RunResult usage = Medvfs({"verify"});
  EXPECT_EQ(usage.exit_code, 2);
  RunResult unknown = Medvfs({"verify", "--frobnicate", archive_.string()});
  EXPECT_EQ(unknown.exit_code, 2);
}

}  // namespace
}  // namespace medvfs::testing
