// `medvfs audit`: the audit log of an unmounted archive as text and JSON lines, its filters,
// --verify on an intact and on a damaged chain, and the reads and failed unlocks it records.
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/archive/records.h"
#include "store/engine/kv_store.h"
#include "tests/tools/cli_fixture.h"
#include "tests/tools/subprocess.h"

namespace medvfs::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;

class CliAuditTest : public CliTest {
 protected:
  void PopulateHistory() {
    InitArchive();
    Populate({"mkdir:/ct", "write:/ct/a.dcm=one", "write:/ct/a.dcm=two", "mv:/ct/a.dcm=/ct/b.dcm",
              "chmod:/ct/b.dcm=0640", "rm:/ct/b.dcm", "write:/other=x"});
  }

  // `medvfs audit ARCHIVE --json EXTRA...`, one object per line.
  std::vector<nlohmann::json> JsonLines(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"audit", archive_.string(), "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult run = Medvfs(args);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    std::vector<nlohmann::json> lines;
    std::istringstream in(run.out);
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      EXPECT_TRUE(object.is_object()) << line;
      lines.push_back(object);
    }
    return lines;
  }

  static std::vector<std::string> Ops(const std::vector<nlohmann::json>& lines) {
    std::vector<std::string> ops;
    for (const auto& line : lines) ops.push_back(line.value("op", ""));
    return ops;
  }
};

TEST_F(CliAuditTest, ListsWhatWasDoneAsAlignedText) {
  PopulateHistory();
  RunResult run = Medvfs({"audit", archive_.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("TIME (UTC)"));
  EXPECT_THAT(run.out, ContainsRegex("mkdir +ok +- +/ct\n"));
  EXPECT_THAT(run.out, ContainsRegex("commit +ok +v2 +/ct/a.dcm\n"));
  EXPECT_THAT(run.out, HasSubstr("/ct/a.dcm -> /ct/b.dcm"));
  EXPECT_THAT(run.out, ContainsRegex("chmod +ok +- +/ct/b.dcm  0640\n"));
  EXPECT_THAT(run.out, HasSubstr("populate"));
  // Every line of the listing has its columns in the same places.
  std::istringstream in(run.out);
  std::string header;
  std::getline(in, header);
  const size_t op_column = header.find("OPERATION");
  ASSERT_NE(op_column, std::string::npos);
  std::string line;
  while (std::getline(in, line)) {
    ASSERT_GT(line.size(), op_column) << line;
    EXPECT_EQ(line[op_column - 1], ' ') << line;
    EXPECT_NE(line[op_column], ' ') << line;
  }
}

TEST_F(CliAuditTest, JsonLinesCarryEveryField) {
  PopulateHistory();
  std::vector<nlohmann::json> lines = JsonLines();
  EXPECT_EQ(Ops(lines), (std::vector<std::string>{"mkdir", "create", "commit", "commit", "rename",
                                                  "chmod", "unlink", "create", "commit"}));
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["seq"], i + 1);
  const nlohmann::json& renamed = lines[4];
  EXPECT_EQ(renamed["path"], "/ct/a.dcm");
  EXPECT_EQ(renamed["target_path"], "/ct/b.dcm");
  EXPECT_EQ(renamed["result"], "ok");
  EXPECT_EQ(renamed["errno"], 0);
  EXPECT_EQ(renamed["program"], "populate");
  EXPECT_EQ(renamed["uid"], getuid());
  EXPECT_TRUE(renamed["time"].get<std::string>().ends_with("Z"));
  EXPECT_EQ(lines[3]["version"], 2);
  EXPECT_TRUE(lines[0]["version"].is_null());
  EXPECT_EQ(lines[5]["detail"], "0640");
}

TEST_F(CliAuditTest, FiltersByPathUidAndTime) {
  PopulateHistory();
  std::vector<nlohmann::json> ct = JsonLines({"--path", "/ct"});
  ASSERT_FALSE(ct.empty());
  for (const auto& line : ct) EXPECT_TRUE(line["path"].get<std::string>().starts_with("/ct"));
  EXPECT_EQ(ct.size(), 7u);  // mkdir .. unlink; not /other
  EXPECT_TRUE(JsonLines({"--uid", std::to_string(getuid() + 1)}).empty());
  EXPECT_TRUE(JsonLines({"--since", "2200-01-01"}).empty());
  EXPECT_TRUE(JsonLines({"--until", "2000-01-01"}).empty());
  EXPECT_FALSE(JsonLines({"--since", "2000-01-01", "--path", "other"}).empty());

  RunResult bad = Medvfs({"audit", archive_.string(), "--since", "yesterday"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(IsOneLineError(bad));
  EXPECT_THAT(bad.err, HasSubstr("--since yesterday is not a time"));
}

TEST_F(CliAuditTest, ReadingTheLogIsRecorded) {
  PopulateHistory();
  ASSERT_EQ(Medvfs({"audit", archive_.string()}).exit_code, 0);
  std::vector<nlohmann::json> lines = JsonLines();
  ASSERT_FALSE(lines.empty());
  const nlohmann::json& read = lines.back();
  EXPECT_EQ(read["op"], "audit-read");
  EXPECT_EQ(read["program"], "medvfs");
  EXPECT_EQ(read["detail"], "list");
}

TEST_F(CliAuditTest, VerifyReportsAnIntactChain) {
  PopulateHistory();
  RunResult run = Medvfs({"audit", archive_.string(), "--verify"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "audit chain: 9 entries, intact\n");
  // The verification itself is the tenth entry.
  EXPECT_EQ(Medvfs({"audit", archive_.string(), "--verify"}).out,
            "audit chain: 10 entries, intact\n");
}

TEST_F(CliAuditTest, VerifyFindsADeletedEntry) {
  PopulateHistory();
  {
    auto kv = store::KvStore::Open(archive_ / "db", store::KvOpenOptions{});
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    store::KvBatch batch;
    batch.Delete(store::Family::kMeta, store::AuditKey(4));
    ASSERT_TRUE((*kv)->Write(batch, true).ok());
  }
  RunResult run = Medvfs({"audit", archive_.string(), "--verify"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "audit chain broken at entry 4: entry 4 is missing\n");
}

TEST_F(CliAuditTest, WrongKeyIsRecordedAtTheNextUnlock) {
  PopulateHistory();
  RunOptions wrong = Options();
  wrong.env["MEDVFS_PASSPHRASE"] = "not the passphrase";
  RunResult refused = Medvfs({"audit", archive_.string()}, wrong);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(refused));
  EXPECT_TRUE(std::filesystem::exists(archive_ / "failed-unlocks"));
  std::vector<nlohmann::json> lines = JsonLines({"--uid", std::to_string(getuid())});
  EXPECT_FALSE(std::filesystem::exists(archive_ / "failed-unlocks"));
  ASSERT_FALSE(lines.empty());
  const nlohmann::json& failed = lines.back();
  EXPECT_EQ(failed["op"], "unlock-failed");
  EXPECT_EQ(failed["result"], "EACCES");
  EXPECT_EQ(failed["program"], "medvfs");
}

}  // namespace
}  // namespace medvfs::testing
