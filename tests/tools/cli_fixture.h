// Temp-dir fixtures that run the built `medvfs` (and the populate helper) as subprocesses, on
// an unmounted archive (CliTest) or a mounted one (CliMountTest), and helpers for the DICOM
// samples of python3-pydicom and the dcmtk tools.
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

// An archive mounted at mnt_ for the test (failed where FUSE is not available).
class CliMountTest : public CliTest {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Options without any key: through the mount none is needed.
  RunOptions NoKey() const;
  // `medvfs umount mnt_`; fails the test unless it succeeds.
  void Unmount();

  std::filesystem::path mnt_;
  bool mounted_ = false;
};

bool FuseAvailable();

// Saves content the ordinary way: open, write, close (one version per save).
void Save(const std::filesystem::path& path, const std::string& content);

// The DICOM sample files of python3-pydicom.
inline constexpr const char* kDicomSamples =
    "/usr/lib/python3/dist-packages/pydicom/data/test_files";

// The full path of a program found in PATH, or empty.
std::string FindProgram(const std::string& name);

// The value `dcmdump` prints, without its brackets, for the top-level element `keyword` of a
// DICOM file; empty when dcmdump does not show it.
std::string DcmdumpValue(const std::filesystem::path& file, const std::string& keyword);

// Copies `source` to `copy` and changes it in place with `dcmodify -nb -m ASSIGNMENT` (e.g.
// "PatientName=X"); fails the test unless dcmodify succeeds.
void DcmodifyCopy(const std::filesystem::path& source, const std::filesystem::path& copy,
                  const std::string& assignment);

// Every error is one line on stderr: "medvfs: <what>; <what to do>".
::testing::AssertionResult IsOneLineError(const RunResult& result);

// A recursive listing of names, sizes, modification times and content hashes; equal listings
// mean the tree was not touched.
std::string SnapshotTree(const std::filesystem::path& root);

// The whole file; empty when it cannot be read.
std::string ReadAll(const std::filesystem::path& path);

}  // namespace medvfs::testing
