// A temp-dir fixture that runs the built `medvfs` (and the populate helper) as subprocesses.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/tools/subprocess.h"

namespace medvfs::testing {

inline constexpr const char* kPassphrase = "correct horse battery staple";

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // The environment every run gets: MEDVFS_PASSPHRASE set to kPassphrase.
  RunOptions Options() const;
  // Runs `medvfs ARGS...`.
  RunResult Medvfs(const std::vector<std::string>& args) const;
  RunResult Medvfs(const std::vector<std::string>& args, const RunOptions& options) const;
  // `medvfs init archive_ --kdf-cost fast`; fails the test unless it succeeds.
  void InitArchive(const std::vector<std::string>& extra = {});
  // Runs the populate helper on archive_; fails the test unless it succeeds.
  void Populate(const std::vector<std::string>& ops, const std::vector<std::string>& key = {});
  // `medvfs log PATH --json`, parsed.
  nlohmann::json LogJson(const std::string& path) const;
  // "ARCHIVE::/dir/file" for archive_.
  std::string InArchive(const std::string& path) const { return archive_.string() + "::" + path; }

  std::filesystem::path dir_;
  std::filesystem::path archive_;
};

// Every error is one line on stderr: "medvfs: <what>; <what to do>".
::testing::AssertionResult IsOneLineError(const RunResult& result);

// A recursive listing of names, sizes, modification times and content hashes; equal listings
// mean the tree was not touched.
std::string SnapshotTree(const std::filesystem::path& root);

}  // namespace medvfs::testing
