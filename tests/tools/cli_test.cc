// The `medvfs` command line on unmounted archives, run as a subprocess.
#include <algorithm>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/archive.h"
#include "store/crypto/crypto.h"
#include "store/views.h"
#include "tests/tools/cli_fixture.h"
#include "tests/tools/pattern.h"

namespace medvfs::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Sha(const std::string& content) { return store::HexEncode(store::Sha256Of(content)); }

void WriteFile(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

TEST_F(CliTest, PrintsItsVersion) {
  for (const char* arg : {"--version", "version"}) {
    RunResult result = Medvfs({arg});
    EXPECT_EQ(result.exit_code, 0) << arg;
    EXPECT_EQ(result.out, "medvfs " MEDVFS_VERSION "\n") << arg;
  }
}

TEST_F(CliTest, UsageErrorsExitTwoWithOneLine) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{},
                                               {"frobnicate"},
                                               {"log"},
                                               {"log", "x", "--bogus"},
                                               {"cat", "x", "--version", "1", "--at", "2026-01-01"},
                                               {"restore", "x"},
                                               {"init", "a", "--kdf-cost", "cheap"},
                                               {"cat", "x", "--at", "yesterday"},
                                               {"tags"},
                                               {"tags", "x", "--version", "0"},
                                               {"note"},
                                               {"note", "x", "one", "two"}}) {
    RunResult result = Medvfs(args);
    EXPECT_EQ(result.exit_code, 2) << ::testing::PrintToString(args) << result.err;
    EXPECT_TRUE(IsOneLineError(result)) << ::testing::PrintToString(args);
  }
}

TEST_F(CliTest, HelpExitsZero) {
  RunResult result = Medvfs({"log", "--help"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(result.out, HasSubstr("--json"));
}

TEST_F(CliTest, InitCreatesAnArchive) {
  InitArchive();
  EXPECT_TRUE(store::Archive::Exists(archive_));
  RunResult stats = Medvfs({"stats", archive_.string(), "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_EQ(nlohmann::json::parse(stats.out)["files"], 0);
}

TEST_F(CliTest, InitAcceptsAnEmptyDirectory) {
  std::filesystem::create_directory(archive_);
  InitArchive();
  EXPECT_TRUE(store::Archive::Exists(archive_));
}

TEST_F(CliTest, InitRefusesANonEmptyDirectory) {
  std::filesystem::create_directory(archive_);
  WriteFile(archive_ / "precious.txt", "keep me");
  std::string before = SnapshotTree(dir_);
  RunResult result = Medvfs({"init", archive_.string(), "--kdf-cost", "fast"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(result));
  EXPECT_THAT(result.err, HasSubstr("not empty"));
  EXPECT_EQ(SnapshotTree(dir_), before);
}

TEST_F(CliTest, InitRefusesAnExistingArchive) {
  InitArchive();
  std::string before = SnapshotTree(archive_);
  RunResult result = Medvfs({"init", archive_.string(), "--kdf-cost", "fast"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(result));
  EXPECT_EQ(SnapshotTree(archive_), before);
}

TEST_F(CliTest, InitWithoutAnyKeySourceOrTerminalFails) {
  RunOptions options = Options();
  options.env["MEDVFS_PASSPHRASE"] = std::nullopt;
  RunResult result = Medvfs({"init", archive_.string(), "--kdf-cost", "fast"}, options);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(result));
  EXPECT_THAT(result.err, HasSubstr("MEDVFS_PASSPHRASE"));
  EXPECT_FALSE(std::filesystem::exists(archive_));
}

TEST_F(CliTest, InitRefusesAnEmptyPassphrase) {
  RunOptions options = Options();
  options.env["MEDVFS_PASSPHRASE"] = "";
  RunResult result = Medvfs({"init", archive_.string(), "--kdf-cost", "fast"}, options);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(result));
  EXPECT_FALSE(std::filesystem::exists(archive_));
}

TEST_F(CliTest, PassphraseFileUsesItsFirstLine) {
  WriteFile(dir_ / "pass", std::string(kPassphrase) + "\nsecond line\n");
  RunOptions no_env = Options();
  no_env.env["MEDVFS_PASSPHRASE"] = std::nullopt;
  RunResult init = Medvfs(
      {"init", archive_.string(), "--kdf-cost", "fast", "--passphrase-file", "pass"}, no_env);
  ASSERT_EQ(init.exit_code, 0) << init.err;
  Populate({"write:/a.txt=hello"});  // MEDVFS_PASSPHRASE=kPassphrase unlocks it
  RunResult log =
      Medvfs({"log", InArchive("/a.txt"), "--passphrase-file", (dir_ / "pass").string()}, no_env);
  EXPECT_EQ(log.exit_code, 0) << log.err;
}

TEST_F(CliTest, KeyFileArchive) {
  std::filesystem::path key = dir_ / "archive.key";
  WriteFile(key, PatternBytes(7, 64));
  RunOptions no_env = Options();
  no_env.env["MEDVFS_PASSPHRASE"] = std::nullopt;
  RunResult init = Medvfs({"init", archive_.string(), "--key-file", key.string()}, no_env);
  ASSERT_EQ(init.exit_code, 0) << init.err;
  Populate({"write:/scan.dcm=content"}, {"--key-file", key.string()});
  RunResult cat = Medvfs({"cat", InArchive("/scan.dcm"), "--key-file", key.string()}, no_env);
  EXPECT_EQ(cat.exit_code, 0) << cat.err;
  EXPECT_EQ(cat.out, "content");
  RunResult with_passphrase = Medvfs({"cat", InArchive("/scan.dcm")});
  EXPECT_EQ(with_passphrase.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(with_passphrase));
  EXPECT_THAT(with_passphrase.err, HasSubstr("key file"));
}

TEST_F(CliTest, ShortKeyFileIsRefused) {
  WriteFile(dir_ / "short.key", "too short");
  RunResult init = Medvfs({"init", archive_.string(), "--key-file", "short.key"});
  EXPECT_EQ(init.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(init));
  EXPECT_FALSE(store::Archive::Exists(archive_));
}

TEST_F(CliTest, WrongPassphraseIsRefusedAndChangesNothing) {
  InitArchive();
  Populate({"write:/scan.dcm=first", "write:/scan.dcm=second"});
  // The database and the key slot stay untouched; the refused attempt is only noted beside
  // them (failed-unlocks), for the audit log at the next unlock.
  const std::string before = SnapshotTree(archive_ / "db") + ReadAll(archive_ / "keyslot");
  size_t attempts = 0;
  RunOptions wrong = Options();
  wrong.env["MEDVFS_PASSPHRASE"] = "not the passphrase";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"log", InArchive("/scan.dcm")},
        {"cat", InArchive("/scan.dcm")},
        {"restore", InArchive("/scan.dcm"), "--version", "1"},
        {"stats", archive_.string()},
        {"tags", InArchive("/scan.dcm")},
        {"note", InArchive("/scan.dcm"), "text"},
        {"note", InArchive("/scan.dcm")}}) {
    RunResult result = Medvfs(args, wrong);
    EXPECT_EQ(result.exit_code, 1) << args[0];
    EXPECT_TRUE(IsOneLineError(result)) << args[0];
    EXPECT_THAT(result.err, HasSubstr("the passphrase does not unlock this archive")) << args[0];
    EXPECT_TRUE(result.out.empty()) << args[0];
    EXPECT_EQ(SnapshotTree(archive_ / "db") + ReadAll(archive_ / "keyslot"), before) << args[0];
    ++attempts;
    const std::string noted = ReadAll(archive_ / "failed-unlocks");
    EXPECT_EQ(static_cast<size_t>(std::count(noted.begin(), noted.end(), '\n')), attempts);
    EXPECT_THAT(noted, Not(HasSubstr("not the passphrase")));
    EXPECT_THAT(noted, Not(HasSubstr("scan.dcm")));
  }
}

TEST_F(CliTest, LogShowsEveryVersionIncludingDeleteMarkers) {
  InitArchive();
  Populate({"mkdir:/study", "write:/study/scan.dcm=first", "write:/study/scan.dcm=second!",
            "rm:/study/scan.dcm"});
  nlohmann::json log = LogJson(InArchive("/study/scan.dcm"));
  const nlohmann::json& versions = log["versions"];
  ASSERT_EQ(versions.size(), 3u) << log.dump();
  EXPECT_EQ(versions[0]["number"], 1);
  EXPECT_EQ(versions[0]["size"], 5);
  EXPECT_EQ(versions[0]["sha256"], Sha("first"));
  EXPECT_EQ(versions[0]["operation"], store::OperationName(store::Operation::kWrite));
  EXPECT_EQ(versions[1]["sha256"], Sha("second!"));
  EXPECT_EQ(versions[1]["program"], "populate");
  EXPECT_EQ(versions[2]["operation"], store::OperationName(store::Operation::kDeleteMarker));
  EXPECT_TRUE(versions[2]["sha256"].is_null());
  EXPECT_LE(versions[0]["time_ns"].get<int64_t>(), versions[1]["time_ns"].get<int64_t>());

  RunResult table = Medvfs({"log", InArchive("/study/scan.dcm")});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(std::count(table.out.begin(), table.out.end(), '\n'), 4) << table.out;
  EXPECT_THAT(table.out, HasSubstr(Sha("first").substr(0, 12)));
  EXPECT_THAT(table.out, ::testing::Not(HasSubstr(Sha("first").substr(0, 13))));
}

TEST_F(CliTest, ArchiveOptionTakesAPathInsideTheArchive) {
  InitArchive();
  Populate({"mkdir:/study", "write:/study/scan.dcm=first"});
  for (const char* path : {"/study/scan.dcm", "study/scan.dcm", "study/../study/scan.dcm"}) {
    RunResult result = Medvfs({"cat", "--archive", archive_.string(), path});
    EXPECT_EQ(result.exit_code, 0) << path << result.err;
    EXPECT_EQ(result.out, "first") << path;
  }
}

TEST_F(CliTest, UnknownPathsFailClearly) {
  InitArchive();
  Populate({"write:/scan.dcm=first"});
  RunResult missing = Medvfs({"log", InArchive("/nope.dcm")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(missing));
  RunResult no_dir = Medvfs({"log", InArchive("/nodir/scan.dcm")});
  EXPECT_EQ(no_dir.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(no_dir));
  RunResult outside = Medvfs({"log", (dir_ / "not-in-an-archive.dcm").string()});
  EXPECT_EQ(outside.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(outside));
  EXPECT_THAT(outside.err, HasSubstr("not inside a mounted medvfs archive"));
  RunResult not_archive = Medvfs({"stats", dir_.string()});
  EXPECT_EQ(not_archive.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(not_archive));
}

TEST_F(CliTest, CatWritesCurrentAndEarlierVersions) {
  InitArchive();
  Populate({"write:/scan.dcm=first"});
  Populate({"write:/scan.dcm=second!"});
  EXPECT_EQ(Medvfs({"cat", InArchive("/scan.dcm")}).out, "second!");
  EXPECT_EQ(Medvfs({"cat", InArchive("/scan.dcm"), "--version", "1"}).out, "first");
  EXPECT_EQ(Medvfs({"cat", InArchive("/scan.dcm"), "--version", "2"}).out, "second!");

  nlohmann::json versions = LogJson(InArchive("/scan.dcm"))["versions"];
  ASSERT_EQ(versions.size(), 2u);
  int64_t t1 = versions[0]["time_ns"];
  int64_t t2 = versions[1]["time_ns"];
  ASSERT_LT(t1, t2);
  std::string between = store::FormatTimeNs(t1 + (t2 - t1) / 2);
  EXPECT_EQ(Medvfs({"cat", InArchive("/scan.dcm"), "--at", between}).out, "first");
  EXPECT_EQ(Medvfs({"cat", InArchive("/scan.dcm"), "--at", store::FormatTimeNs(t2)}).out,
            "second!");
  RunResult before = Medvfs({"cat", InArchive("/scan.dcm"), "--at", "2000-01-01"});
  EXPECT_EQ(before.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(before));
  EXPECT_THAT(before.err, HasSubstr("did not exist"));
}

TEST_F(CliTest, CatStreamsLargeFiles) {
  InitArchive();
  constexpr uint64_t kSize = (5u << 20) + 12345;
  Populate({"big:/big.bin=" + std::to_string(kSize)});
  RunResult result = Medvfs({"cat", InArchive("/big.bin")});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  ASSERT_EQ(result.out.size(), kSize);
  EXPECT_EQ(result.out, PatternBytes(0, kSize));
}

TEST_F(CliTest, CatOfDeletedFileNeedsAVersion) {
  InitArchive();
  Populate({"write:/scan.dcm=first", "rm:/scan.dcm"});
  RunResult current = Medvfs({"cat", InArchive("/scan.dcm")});
  EXPECT_EQ(current.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(current));
  EXPECT_THAT(current.err, HasSubstr("deleted"));
  EXPECT_EQ(Medvfs({"cat", InArchive("/scan.dcm"), "--version", "1"}).out, "first");
  RunResult marker = Medvfs({"cat", InArchive("/scan.dcm"), "--version", "2"});
  EXPECT_EQ(marker.exit_code, 1);
  EXPECT_THAT(marker.err, HasSubstr("delete marker"));
  RunResult unknown = Medvfs({"cat", InArchive("/scan.dcm"), "--version", "9"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(unknown));
  EXPECT_THAT(unknown.err, HasSubstr("no version 9"));
}

TEST_F(CliTest, RestoreAddsAVersionEqualToTheOldOne) {
  InitArchive();
  Populate({"write:/scan.dcm=first", "write:/scan.dcm=second!"});
  RunResult restore = Medvfs({"restore", InArchive("/scan.dcm"), "--version", "1"});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  EXPECT_THAT(restore.out, HasSubstr("version 3"));
  EXPECT_EQ(Medvfs({"cat", InArchive("/scan.dcm")}).out, "first");
  nlohmann::json versions = LogJson(InArchive("/scan.dcm"))["versions"];
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(versions[2]["operation"], store::OperationName(store::Operation::kRestore));
  EXPECT_EQ(versions[2]["restored_from"], 1);
  EXPECT_EQ(versions[2]["sha256"], Sha("first"));
  EXPECT_EQ(versions[2]["program"], "medvfs");
}

TEST_F(CliTest, RestoreBringsBackADeletedFile) {
  InitArchive();
  Populate({"mkdir:/study", "write:/study/scan.dcm=first", "rm:/study/scan.dcm"});
  RunResult restore = Medvfs({"restore", InArchive("/study/scan.dcm"), "--version", "1"});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  EXPECT_EQ(Medvfs({"cat", InArchive("/study/scan.dcm")}).out, "first");
  RunResult marker = Medvfs({"restore", InArchive("/study/scan.dcm"), "--version", "2"});
  EXPECT_EQ(marker.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(marker));
}

TEST_F(CliTest, RestoreOfAnArchiveInUseSaysSo) {
  InitArchive();
  Populate({"write:/scan.dcm=first", "write:/scan.dcm=second!"});
  auto held = store::Archive::Open(archive_, store::KeySource::Passphrase(kPassphrase));
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  RunResult result = Medvfs({"restore", InArchive("/scan.dcm"), "--version", "1"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(result));
  EXPECT_THAT(result.err, HasSubstr("in use"));
}

TEST_F(CliTest, StatsCountsFilesVersionsAndBytes) {
  InitArchive();
  Populate({"mkdir:/study", "write:/study/a.dcm=first", "write:/study/a.dcm=second!",
            "write:/study/b.dcm=other", "rm:/study/b.dcm"});
  RunResult result = Medvfs({"stats", archive_.string(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  nlohmann::json stats = nlohmann::json::parse(result.out);
  EXPECT_EQ(stats["files"], 2);
  EXPECT_EQ(stats["live_files"], 1);
  EXPECT_EQ(stats["versions"], 3);
  EXPECT_EQ(stats["logical_bytes"], 5 + 7 + 5);
  EXPECT_GT(stats["disk_bytes"].get<uint64_t>(), 0u);
  RunResult table = Medvfs({"stats", archive_.string()});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("(1 live)"));
  EXPECT_THAT(table.out, HasSubstr("(17 bytes)"));
}

}  // namespace
}  // namespace medvfs::testing
