// `medvfs hold`, `retention`, `prune` and `purge` on an unmounted archive and through a mount:
// what a dry run lists is what goes, held and retained versions stay, a compliance rule
// cannot be shortened, a purge needs a confirmation and a reason and leaves the audit chain
// intact, and a prune killed with SIGKILL at random moments loses no version it keeps.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <set>
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

nlohmann::json Json(const RunResult& run) {
  return nlohmann::json::parse(run.out, nullptr, /*allow_exceptions=*/false);
}

// The numbers of the versions `medvfs log --json` shows as pruned or purged.
std::set<uint64_t> Removed(const nlohmann::json& log) {
  std::set<uint64_t> numbers;
  for (const auto& v : log["versions"]) {
    if (v.contains("content")) numbers.insert(v["number"].get<uint64_t>());
  }
  return numbers;
}

class CliLifecycleTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    InitArchive();
    // Four versions of /a.txt, three of /ct/scan.dcm, one of /ct/other.txt.
    Populate({"write:/a.txt=one", "write:/a.txt=two", "write:/a.txt=three", "write:/a.txt=four",
              "mkdir:/ct", "write:/ct/scan.dcm=s1", "write:/ct/scan.dcm=s2",
              "write:/ct/scan.dcm=s3", "write:/ct/other.txt=o1"});
  }
};

TEST_F(CliLifecycleTest, ADryRunListsExactlyWhatThePruneRemoves) {
  RunResult none = Medvfs({"prune", archive_.string()});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_TRUE(IsOneLineError(none));
  RunResult dry = Medvfs({"prune", archive_.string(), "--keep-last", "2", "--dry-run", "--json"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  nlohmann::json planned = Json(dry);
  ASSERT_TRUE(planned.is_object()) << dry.out;
  std::set<std::pair<std::string, uint64_t>> listed;
  for (const auto& item : planned["items"]) {
    listed.emplace(item["path"].get<std::string>(), item["version"].get<uint64_t>());
  }
  const std::set<std::pair<std::string, uint64_t>> expected = {
      {"/a.txt", 1}, {"/a.txt", 2}, {"/ct/scan.dcm", 1}};
  EXPECT_EQ(listed, expected);
  EXPECT_TRUE(Removed(LogJson(InArchive("/a.txt"))).empty()) << "the dry run changed nothing";

  RunResult pruned = Medvfs({"prune", archive_.string(), "--keep-last", "2"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_THAT(pruned.out, HasSubstr("Removed 3 versions"));
  EXPECT_THAT(pruned.out, HasSubstr("Garbage collection:"));
  nlohmann::json log = LogJson(InArchive("/a.txt"));
  EXPECT_EQ(Removed(log), (std::set<uint64_t>{1, 2}));
  EXPECT_EQ(log["versions"][0]["content"], "pruned");
  EXPECT_EQ(log["versions"][0]["removed_program"], "medvfs");
  EXPECT_EQ(Removed(LogJson(InArchive("/ct/scan.dcm"))), (std::set<uint64_t>{1}));
  // The version numbers stay; what remains reads back; what went says so.
  EXPECT_EQ(Medvfs({"cat", InArchive("/a.txt"), "--version", "3"}).out, "three");
  RunResult gone = Medvfs({"cat", InArchive("/a.txt"), "--version", "1"});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_THAT(gone.err, HasSubstr("pruned"));
  RunResult text_log = Medvfs({"log", InArchive("/a.txt")});
  EXPECT_THAT(text_log.out, HasSubstr("LIFECYCLE"));
  EXPECT_THAT(text_log.out, HasSubstr("pruned"));
  RunResult verify = Medvfs({"verify", archive_.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_THAT(verify.out, HasSubstr("3 versions had their content removed"));
  // Only a path: the rest is left alone.
  ASSERT_EQ(Medvfs({"prune", archive_.string(), "/ct", "--keep-last", "1"}).exit_code, 0);
  EXPECT_EQ(Removed(LogJson(InArchive("/ct/scan.dcm"))), (std::set<uint64_t>{1, 2}));
  EXPECT_EQ(Removed(LogJson(InArchive("/a.txt"))), (std::set<uint64_t>{1, 2}));
}

TEST_F(CliLifecycleTest, AHeldDirectoryKeepsEveryVersionUntilReleased) {
  RunResult no_reason = Medvfs({"hold", InArchive("/ct")});
  EXPECT_EQ(no_reason.exit_code, 2);
  ASSERT_EQ(Medvfs({"hold", InArchive("/ct"), "--reason", "case 2026-17"}).exit_code, 0);
  RunResult list = Medvfs({"hold", "--list", archive_.string()});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("/ct"));
  EXPECT_THAT(list.out, HasSubstr("case 2026-17"));
  nlohmann::json log = LogJson(InArchive("/ct/scan.dcm"));
  EXPECT_EQ(log["versions"][0]["hold"], "case 2026-17");

  RunResult pruned = Medvfs({"prune", archive_.string(), "--keep-last", "1", "--json"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_EQ(Json(pruned)["summary"]["held"], 2);
  EXPECT_TRUE(Removed(LogJson(InArchive("/ct/scan.dcm"))).empty());
  EXPECT_EQ(Removed(LogJson(InArchive("/a.txt"))), (std::set<uint64_t>{1, 2, 3}));
  RunResult purge =
      Medvfs({"purge", InArchive("/ct/scan.dcm"), "--version", "1", "--reason", "x", "--yes"});
  EXPECT_EQ(purge.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(purge));
  EXPECT_THAT(purge.err, HasSubstr("legal hold"));

  ASSERT_EQ(Medvfs({"hold", "--release", InArchive("/ct")}).exit_code, 0);
  RunResult again = Medvfs({"hold", "--release", InArchive("/ct")});
  EXPECT_NE(again.exit_code, 0);
  ASSERT_EQ(Medvfs({"prune", archive_.string(), "--keep-last", "1"}).exit_code, 0);
  EXPECT_EQ(Removed(LogJson(InArchive("/ct/scan.dcm"))), (std::set<uint64_t>{1, 2}));
  RunResult audit = Medvfs({"audit", archive_.string(), "--json"});
  EXPECT_THAT(audit.out, HasSubstr("\"op\":\"hold\""));
  EXPECT_THAT(audit.out, HasSubstr("\"op\":\"hold-release\""));
  EXPECT_THAT(audit.out, HasSubstr("\"op\":\"prune\""));
}

TEST_F(CliLifecycleTest, AComplianceRuleCanOnlyGrow) {
  ASSERT_EQ(
      Medvfs({"retention", archive_.string(), "set", "--mode", "compliance", "--min-age", "10y"})
          .exit_code,
      0);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"set", "--mode", "compliance", "--min-age", "1y"},
        std::vector<std::string>{"set", "--mode", "governance", "--min-age", "20y"},
        std::vector<std::string>{"remove"}}) {
    std::vector<std::string> command = {"retention", archive_.string()};
    command.insert(command.end(), args.begin(), args.end());
    RunResult refused = Medvfs(command);
    EXPECT_EQ(refused.exit_code, 1) << args[0];
    EXPECT_TRUE(IsOneLineError(refused));
  }
  ASSERT_EQ(Medvfs({"retention", archive_.string(), "set", "--mode", "compliance", "--min-age",
                    "forever"})
                .exit_code,
            0);
  RunResult show = Medvfs({"retention", archive_.string(), "--json"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  nlohmann::json rules = Json(show)["items"];
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]["mode"], "compliance");
  EXPECT_EQ(rules[0]["min_age"], "for ever");
  // Nothing can go now.
  RunResult pruned = Medvfs({"prune", archive_.string(), "--keep-last", "1", "--json"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_EQ(Json(pruned)["summary"]["removed"], 0);
  EXPECT_EQ(Json(pruned)["summary"]["retained"], 5);  // a.txt 1-3, ct/scan.dcm 1-2
  RunResult purge = Medvfs({"purge", InArchive("/a.txt"), "--reason", "x", "--yes"});
  EXPECT_EQ(purge.exit_code, 1);
  EXPECT_THAT(purge.err, HasSubstr("compliance"));
  RunResult stats = Medvfs({"stats", archive_.string()});
  EXPECT_THAT(stats.out, HasSubstr("/ compliance for ever"));
}

TEST_F(CliLifecycleTest, APurgeAsksAReasonAndAConfirmationAndKeepsTheAuditChain) {
  EXPECT_EQ(Medvfs({"purge", InArchive("/ct/scan.dcm"), "--yes"}).exit_code, 2);
  RunResult unconfirmed = Medvfs({"purge", InArchive("/ct/scan.dcm"), "--reason", "wrong patient"});
  EXPECT_EQ(unconfirmed.exit_code, 2) << "no terminal to confirm on";
  EXPECT_TRUE(Removed(LogJson(InArchive("/ct/scan.dcm"))).empty());
  RunResult current = Medvfs(
      {"purge", InArchive("/ct/scan.dcm"), "--version", "3", "--reason", "wrong patient", "--yes"});
  EXPECT_EQ(current.exit_code, 1);
  EXPECT_THAT(current.err, HasSubstr("current version"));

  RunResult purged = Medvfs(
      {"purge", InArchive("/ct/scan.dcm"), "--reason", "ticket 4711: wrong patient", "--yes"});
  ASSERT_EQ(purged.exit_code, 0) << purged.err;
  EXPECT_THAT(purged.out, HasSubstr("Purged 3 versions"));
  EXPECT_THAT(purged.out, HasSubstr("unlinked first"));
  nlohmann::json log = LogJson(InArchive("/ct/scan.dcm"));
  EXPECT_EQ(Removed(log), (std::set<uint64_t>{1, 2, 3}));
  EXPECT_EQ(log["versions"][0]["content"], "purged");
  EXPECT_EQ(log["versions"][0]["removed_reason"], "ticket 4711: wrong patient");
  EXPECT_TRUE(log["versions"][0]["sha256"].is_null());
  EXPECT_EQ(log["versions"][3]["operation"], "delete");
  RunResult chain = Medvfs({"audit", archive_.string(), "--verify"});
  EXPECT_EQ(chain.exit_code, 0) << chain.out << chain.err;
  RunResult audit = Medvfs({"audit", archive_.string(), "--json"});
  EXPECT_THAT(audit.out, HasSubstr("ticket 4711: wrong patient"));
  RunResult verify = Medvfs({"verify", archive_.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  // The rest of the archive is untouched.
  EXPECT_EQ(Medvfs({"cat", InArchive("/a.txt")}).out, "four");
  EXPECT_EQ(Medvfs({"cat", InArchive("/ct/other.txt")}).out, "o1");
}

// SIGKILL at random moments of prune (and the collection it runs): verify stays clean, the
// versions it keeps read back, and a second prune finishes the work.
TEST_F(CliLifecycleTest, APruneKilledAtAnyMomentLosesNoKeptVersion) {
  std::vector<std::string> ops;
  for (int i = 0; i < 6; ++i) {
    ops.push_back("big:/series/s" + std::to_string(i % 3) +
                  ".dat=" + std::to_string(4'000'000 + i));
  }
  ops.insert(ops.begin(), "mkdir:/series");
  Populate(ops);
  std::vector<std::string> current;
  for (int f = 0; f < 3; ++f) {
    current.push_back(Medvfs({"cat", InArchive("/series/s" + std::to_string(f) + ".dat")}).out);
    ASSERT_GT(current.back().size(), 4'000'000u);
  }
  std::mt19937 rng(23);
  for (int round = 0; round < 4; ++round) {
    const pid_t pid = SpawnProgram({MEDVFS_BIN, "prune", archive_.string(), "--keep-last", "1"},
                                   Options(), dir_ / ("prune-" + std::to_string(round) + ".log"));
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 800));
    kill(pid, SIGKILL);
    WaitExit(pid);
    RunResult verify = Medvfs({"verify", archive_.string()});
    EXPECT_EQ(verify.exit_code, 0) << "round " << round << ": " << verify.out << verify.err;
    for (int f = 0; f < 3; ++f) {
      EXPECT_TRUE(Medvfs({"cat", InArchive("/series/s" + std::to_string(f) + ".dat")}).out ==
                  current[f])
          << "round " << round << ", file " << f;
    }
    EXPECT_EQ(Medvfs({"cat", InArchive("/a.txt")}).out, "four");
  }
  RunResult pruned = Medvfs({"prune", archive_.string(), "--keep-last", "1"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  for (int f = 0; f < 3; ++f) {
    EXPECT_EQ(Removed(LogJson(InArchive("/series/s" + std::to_string(f) + ".dat"))),
              (std::set<uint64_t>{1}));
  }
  RunResult verify = Medvfs({"verify", archive_.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

class CliLifecycleMountTest : public CliMountTest {};

// Through a mount: the daemon runs the requests (the key is still needed for changes), and
// the views show what went: no file for a pruned version in @version, its line in versions.tsv.
TEST_F(CliLifecycleMountTest, HoldPruneAndPurgeThroughTheMount) {
  for (const char* content : {"v1", "v2", "v3"}) Save(mnt_ / "f.txt", content);
  stdfs::create_directory(mnt_ / "ct");
  Save(mnt_ / "ct" / "scan.dcm", "s1");
  Save(mnt_ / "ct" / "scan.dcm", "s2");
  RunResult keyless = Medvfs({"hold", (mnt_ / "ct").string(), "--reason", "case 9"}, NoKey());
  EXPECT_NE(keyless.exit_code, 0) << "a change needs the key";
  ASSERT_EQ(Medvfs({"hold", (mnt_ / "ct").string(), "--reason", "case 9"}).exit_code, 0);
  RunResult pruned = Medvfs({"prune", mnt_.string(), "--keep-last", "1", "--json"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_EQ(Json(pruned)["summary"]["removed"], 2);
  EXPECT_EQ(Json(pruned)["summary"]["held"], 1);

  std::set<std::string> files;
  for (const auto& entry : stdfs::directory_iterator(mnt_ / "@version" / "f.txt")) {
    files.insert(entry.path().filename().string());
  }
  EXPECT_EQ(files.size(), 1u) << "only v3 keeps a file";
  EXPECT_TRUE((*files.begin()).starts_with("v3_"));
  const std::string tsv = ReadAll(mnt_ / "@version" / "f.txt" / ".meta" / "versions.tsv");
  EXPECT_THAT(tsv, HasSubstr("\tpruned\t"));
  EXPECT_THAT(ReadAll(mnt_ / "ct" / "@version" / "scan.dcm" / ".meta" / "versions.tsv"),
              HasSubstr("\tcase 9\n"));
  RunResult log = Medvfs({"log", (mnt_ / "ct" / "scan.dcm").string()}, NoKey());
  EXPECT_THAT(log.out, HasSubstr("held: case 9"));

  RunResult purged =
      Medvfs({"purge", (mnt_ / "f.txt").string(), "--reason", "wrong patient", "--yes"});
  ASSERT_EQ(purged.exit_code, 0) << purged.err;
  EXPECT_FALSE(stdfs::exists(mnt_ / "f.txt")) << "unlinked first";
  nlohmann::json after = LogJson((mnt_ / "f.txt").string());
  EXPECT_EQ(Removed(after), (std::set<uint64_t>{1, 2, 3}));
  Unmount();
  RunResult verify = Medvfs({"verify", archive_.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  RunResult chain = Medvfs({"audit", archive_.string(), "--verify"});
  EXPECT_EQ(chain.exit_code, 0) << chain.out << chain.err;
}

}  // namespace
}  // namespace medvfs::testing
