// `medvfs tags` and the traceability flag of `medvfs log`, over python3-pydicom's samples, on an
// unmounted archive and through a mount, compared with each other and with dcmdump. Fails
// without the samples or dcmtk's tools (tools/install-deps.sh installs them).
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/dicom/dicom.h"
#include "tests/tools/cli_fixture.h"

namespace medvfs::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSopReused = "SOPInstanceUID reused with different content";

// One line of the `medvfs tags` table.
struct TagLine {
  std::string vr;
  std::string keyword;
  std::string value;
};

// The table by tag, e.g. "(0010,0020)".
std::map<std::string, TagLine> ParseTagTable(const std::string& table) {
  std::map<std::string, TagLine> rows;
  std::istringstream lines(table);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() < 11) continue;
    std::istringstream fields(line.substr(11));
    TagLine row;
    fields >> row.vr >> row.keyword;
    std::getline(fields >> std::ws, row.value);
    rows[line.substr(0, 11)] = row;
  }
  return rows;
}

// Why the DICOM tests cannot run here; empty when they can.
std::string MissingDicomTools() {
  if (!std::filesystem::exists(std::filesystem::path(kDicomSamples) / "CT_small.dcm")) {
    return "python3-pydicom's sample files are not installed";
  }
  if (FindProgram("dcmdump").empty() || FindProgram("dcmodify").empty()) {
    return "dcmdump and dcmodify (package dcmtk) are not installed";
  }
  return "";
}

const std::filesystem::path kCtSmall = std::filesystem::path(kDicomSamples) / "CT_small.dcm";

// The elements the tests compare with dcmdump: tag, keyword.
const std::vector<std::pair<std::string, std::string>> kCheckedElements = {
    {"(0010,0020)", "PatientID"},
    {"(0010,0010)", "PatientName"},
    {"(0008,0018)", "SOPInstanceUID"},
    {"(0008,0020)", "StudyDate"},
    {"(0008,0021)", "SeriesDate"},  // equal to AcquisitionDate and ContentDate
    {"(0008,0060)", "Modality"},
    {"(0020,000d)", "StudyInstanceUID"},
    {"(0008,0008)", "ImageType"},  // several values, joined with '\'
    {"(0008,0005)", "SpecificCharacterSet"}};

void ExpectTableMatchesDcmdump(const std::string& table, const std::filesystem::path& file) {
  std::map<std::string, TagLine> rows = ParseTagTable(table);
  for (const auto& [tag, keyword] : kCheckedElements) {
    ASSERT_TRUE(rows.count(tag)) << tag << " missing from\n" << table;
    EXPECT_EQ(rows[tag].keyword, keyword) << tag;
    std::string expected = DcmdumpValue(file, keyword);
    EXPECT_FALSE(expected.empty()) << keyword;
    EXPECT_EQ(rows[tag].value, expected) << keyword;
  }
  EXPECT_EQ(rows["(0010,0020)"].vr, "LO");
  EXPECT_EQ(rows["(0010,0010)"].vr, "PN");
}

class CliDicomTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (std::string why = MissingDicomTools(); !why.empty()) FAIL() << why;
    modified_ = dir_ / "modified.dcm";
    DcmodifyCopy(kCtSmall, modified_, "PatientName=X");
  }

  std::filesystem::path modified_;  // CT_small.dcm with another PatientName: same SOP UID
};

TEST_F(CliDicomTest, TagsOfAnUnmountedArchiveMatchDcmdump) {
  InitArchive();
  Populate({"mkdir:/ct", "file:/ct/scan.dcm=" + kCtSmall.string()});
  RunResult table = Medvfs({"tags", InArchive("/ct/scan.dcm")});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  ExpectTableMatchesDcmdump(table.out, kCtSmall);
  RunResult with_option = Medvfs({"tags", "--archive", archive_.string(), "ct/scan.dcm"});
  EXPECT_EQ(with_option.exit_code, 0) << with_option.err;
  EXPECT_EQ(with_option.out, table.out);

  RunResult json = Medvfs({"tags", InArchive("/ct/scan.dcm"), "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json parsed = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << json.out;
  EXPECT_EQ(parsed["00100020"]["vr"], "LO");
  EXPECT_EQ(parsed["00100020"]["Value"][0], DcmdumpValue(kCtSmall, "PatientID"));
  EXPECT_EQ(parsed["00100010"]["Value"][0]["Alphabetic"], DcmdumpValue(kCtSmall, "PatientName"));
  // Pixel data is never printed as base64.
  EXPECT_LT(json.out.size(), 64u * 1024) << "pixel data in the JSON?";
}

TEST_F(CliDicomTest, TagsOfEachVersion) {
  InitArchive();
  Populate({"file:/scan.dcm=" + kCtSmall.string(), "file:/scan.dcm=" + modified_.string()});
  std::map<std::string, TagLine> current =
      ParseTagTable(Medvfs({"tags", InArchive("/scan.dcm")}).out);
  EXPECT_EQ(current["(0010,0010)"].value, "X");
  std::map<std::string, TagLine> first =
      ParseTagTable(Medvfs({"tags", InArchive("/scan.dcm"), "--version", "1"}).out);
  EXPECT_EQ(first["(0010,0010)"].value, DcmdumpValue(kCtSmall, "PatientName"));
  RunResult json = Medvfs({"tags", InArchive("/scan.dcm"), "--version", "2", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["00100010"]["Value"][0]["Alphabetic"], "X");
}

TEST_F(CliDicomTest, TagsOfFilesWithoutTagsFailClearly) {
  InitArchive();
  Populate({"write:/notes.txt=hello", "file:/scan.dcm=" + kCtSmall.string(), "rm:/scan.dcm"});
  RunResult text = Medvfs({"tags", InArchive("/notes.txt")});
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(text));
  EXPECT_THAT(text.err, HasSubstr(InArchive("/notes.txt") + " version 1 has no DICOM tags"));
  EXPECT_TRUE(text.out.empty());
  RunResult deleted = Medvfs({"tags", InArchive("/scan.dcm")});
  EXPECT_EQ(deleted.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(deleted));
  EXPECT_THAT(deleted.err, HasSubstr("deleted"));
  RunResult marker = Medvfs({"tags", InArchive("/scan.dcm"), "--version", "2"});
  EXPECT_EQ(marker.exit_code, 1);
  EXPECT_THAT(marker.err, HasSubstr("delete marker"));
  RunResult unknown = Medvfs({"tags", InArchive("/scan.dcm"), "--version", "9"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(unknown));
  EXPECT_THAT(unknown.err, HasSubstr("no version 9"));
  EXPECT_EQ(Medvfs({"tags", InArchive("/scan.dcm"), "--version", "1"}).exit_code, 0);
}

TEST_F(CliDicomTest, LogFlagsASopInstanceUidReusedWithOtherContent) {
  InitArchive();
  Populate({"file:/scan.dcm=" + kCtSmall.string(), "file:/scan.dcm=" + modified_.string(),
            "write:/plain.txt=hello"});
  nlohmann::json versions = LogJson(InArchive("/scan.dcm"))["versions"];
  ASSERT_EQ(versions.size(), 2u) << versions.dump();
  EXPECT_EQ(versions[0]["sop_instance_uid"], DcmdumpValue(kCtSmall, "SOPInstanceUID"));
  EXPECT_EQ(versions[1]["sop_instance_uid"], versions[0]["sop_instance_uid"]);
  EXPECT_EQ(versions[0]["sop_instance_uid_reused"], false);
  EXPECT_EQ(versions[1]["sop_instance_uid_reused"], true);

  RunResult table = Medvfs({"log", InArchive("/scan.dcm")});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("\n2!  "));
  EXPECT_THAT(table.out, HasSubstr("\n1   "));
  EXPECT_THAT(table.out, HasSubstr(std::string("\n! ") + kSopReused));

  nlohmann::json plain = LogJson(InArchive("/plain.txt"))["versions"];
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_TRUE(plain[0]["sop_instance_uid"].is_null());
  EXPECT_EQ(plain[0]["sop_instance_uid_reused"], false);
  EXPECT_THAT(Medvfs({"log", InArchive("/plain.txt")}).out, Not(HasSubstr(kSopReused)));
}

class CliDicomMountTest : public CliMountTest {
 protected:
  void SetUp() override {
    if (std::string why = MissingDicomTools(); !why.empty()) FAIL() << why;
    CliMountTest::SetUp();
  }
};

TEST_F(CliDicomMountTest, TagsAndTraceabilityThroughTheMount) {
  std::filesystem::create_directory(mnt_ / "ct");
  std::filesystem::path scan = mnt_ / "ct" / "scan.dcm";
  std::filesystem::copy_file(kCtSmall, scan);
  ASSERT_TRUE(std::filesystem::exists(mnt_ / "ct" / ".meta" / "scan.dcm" / "dicom.json"));
  RunResult modify =
      RunProgram({FindProgram("dcmodify"), "-nb", "-m", "PatientName=X", scan.string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;

  RunResult table = Medvfs({"tags", scan.string()}, NoKey());
  ASSERT_EQ(table.exit_code, 0) << table.err;
  std::map<std::string, TagLine> rows = ParseTagTable(table.out);
  EXPECT_EQ(rows["(0010,0010)"].keyword, "PatientName");
  EXPECT_EQ(rows["(0010,0010)"].value, "X");
  RunResult first = Medvfs({"tags", scan.string(), "--version", "1"}, NoKey());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ExpectTableMatchesDcmdump(first.out, kCtSmall);
  RunResult json = Medvfs({"tags", scan.string(), "--json"}, NoKey());
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["00100010"]["Value"][0]["Alphabetic"], "X");

  RunResult log = Medvfs({"log", scan.string(), "--json"}, NoKey());
  ASSERT_EQ(log.exit_code, 0) << log.err;
  nlohmann::json versions = nlohmann::json::parse(log.out)["versions"];
  ASSERT_EQ(versions.size(), 2u) << log.out;
  EXPECT_EQ(versions[0]["sop_instance_uid"], DcmdumpValue(kCtSmall, "SOPInstanceUID"));
  EXPECT_EQ(versions[0]["sop_instance_uid_reused"], false);
  EXPECT_EQ(versions[1]["sop_instance_uid_reused"], true);
  RunResult log_table = Medvfs({"log", scan.string()}, NoKey());
  EXPECT_THAT(log_table.out, HasSubstr("\n2!  "));
  EXPECT_THAT(log_table.out, HasSubstr(kSopReused));

  Save(mnt_ / "notes.txt", "hello");
  RunResult text = Medvfs({"tags", (mnt_ / "notes.txt").string()}, NoKey());
  EXPECT_EQ(text.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(text));
  EXPECT_THAT(text.err, HasSubstr("version 1 has no DICOM tags"));

  // The unmounted archive says the same; through the mount every keyword shown is right.
  RunResult first_json = Medvfs({"tags", scan.string(), "--version", "1", "--json"}, NoKey());
  Unmount();
  RunResult archive_table = Medvfs({"tags", InArchive("/ct/scan.dcm"), "--version", "1"});
  ASSERT_EQ(archive_table.exit_code, 0) << archive_table.err;
  // Issue 18: the mount's tags.tsv holds the archive's own elements: the same table, to the byte.
  EXPECT_EQ(first.out, archive_table.out);
  std::map<std::string, TagLine> archive_rows = ParseTagTable(archive_table.out);
  for (const auto& [tag, row] : ParseTagTable(first.out)) {
    ASSERT_TRUE(archive_rows.count(tag)) << tag;
    EXPECT_EQ(row.vr, archive_rows[tag].vr) << tag;
    if (row.keyword == "-") {
      // Only private elements (odd groups) have no keyword.
      EXPECT_EQ(archive_rows[tag].keyword, "-") << tag << " has no keyword through the mount";
      continue;
    }
    EXPECT_EQ(row.keyword, archive_rows[tag].keyword) << tag;
    EXPECT_EQ(row.value, archive_rows[tag].value) << tag;
  }
  EXPECT_EQ(Medvfs({"tags", InArchive("/ct/scan.dcm"), "--version", "1", "--json"}).out,
            first_json.out);
  nlohmann::json archive_versions = LogJson(InArchive("/ct/scan.dcm"))["versions"];
  EXPECT_EQ(archive_versions, versions);
}

// dcmdump's keyword of each top-level element (the last word of its line), by tag as the table
// prints it, e.g. "(0008,0016)" -> "SOPClassUID"; retired ones without DCMTK's "RETIRED_".
std::map<std::string, std::string> DcmdumpKeywords(const std::filesystem::path& file) {
  RunResult dump = RunProgram({FindProgram("dcmdump"), "-q", "+L", file.string()});
  EXPECT_EQ(dump.exit_code, 0) << file << ": " << dump.err;
  std::map<std::string, std::string> keywords;
  std::istringstream lines(dump.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() < 11 || line[0] != '(') continue;  // items and nested lines are indented
    std::string keyword = line.substr(line.find_last_of(' ') + 1);
    if (keyword.starts_with("RETIRED_")) keyword = keyword.substr(8);
    keywords[line.substr(0, 11)] = keyword;
  }
  return keywords;
}

// Issue 17: through a mount, `medvfs tags` named (0008,0016) and (0008,0018) after the meta
// header's MediaStorageSOP* elements for these two files, and a data set without a Part 10
// header (rtstruct.dcm; the two ExplVR_*NoMeta files) had no tags at all. Through the mount and
// on the unmounted archive, the tables are equal (byte for byte since issue 18: the mount's
// tags.tsv), and every keyword is dcmdump's.
TEST_F(CliDicomMountTest, TagsThroughTheMountEqualTheUnmountedArchiveAndDcmdump) {
  const std::vector<std::string> samples = {"GDCMJ2K_TextGBR.dcm",
                                            "image_dfl.dcm",
                                            "rtstruct.dcm",
                                            "ExplVR_LitEndNoMeta.dcm",
                                            "ExplVR_BigEndNoMeta.dcm",
                                            "CT_small.dcm",
                                            "MR_small_bigendian.dcm",
                                            "nested_priv_SQ.dcm",
                                            "waveform_ecg.dcm",
                                            "rtplan.dcm"};
  std::filesystem::create_directory(mnt_ / "s");
  std::map<std::string, std::string> through_mount;
  for (const std::string& name : samples) {
    std::filesystem::copy_file(std::filesystem::path(kDicomSamples) / name, mnt_ / "s" / name);
    RunResult table = Medvfs({"tags", (mnt_ / "s" / name).string()}, NoKey());
    EXPECT_EQ(table.exit_code, 0) << name << ": " << table.err;
    through_mount[name] = table.out;
  }
  std::map<std::string, TagLine> gdcm = ParseTagTable(through_mount["GDCMJ2K_TextGBR.dcm"]);
  EXPECT_EQ(gdcm["(0008,0016)"].keyword, "SOPClassUID");
  EXPECT_EQ(gdcm["(0008,0018)"].keyword, "SOPInstanceUID");
  EXPECT_EQ(gdcm["(0002,0002)"].keyword, "MediaStorageSOPClassUID");

  // The data set without a header is DICOM through the mount: tags, the patient index, @anon.
  std::map<std::string, TagLine> rtstruct = ParseTagTable(through_mount["rtstruct.dcm"]);
  EXPECT_EQ(rtstruct["(0008,0060)"].value, "RTSTRUCT");
  const std::string patient = rtstruct["(0010,0020)"].value;
  ASSERT_FALSE(patient.empty()) << through_mount["rtstruct.dcm"];
  EXPECT_TRUE(std::filesystem::is_directory(mnt_ / "@patients" / patient));
  bool anonymised = false;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(mnt_ / "@anon", ec), end;
       !ec && it != end && !anonymised; it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string bytes = ReadAll(it->path());
    auto tags = store::ParseDicom(bytes, bytes.size());
    anonymised = tags.ok() && tags->Find("Modality") != nullptr &&
                 tags->Find("Modality")->value == "RTSTRUCT";
  }
  EXPECT_TRUE(anonymised) << "rtstruct.dcm is not in /@anon";

  Unmount();
  for (const std::string& name : samples) {
    SCOPED_TRACE(name);
    RunResult table = Medvfs({"tags", InArchive("/s/" + name)});
    ASSERT_EQ(table.exit_code, 0) << table.err;
    // Issue 18: private elements and values included, the tables are equal to the byte.
    EXPECT_EQ(through_mount[name], table.out);
    const std::map<std::string, TagLine> archive_rows = ParseTagTable(table.out);
    const std::map<std::string, TagLine> mount_rows = ParseTagTable(through_mount[name]);
    std::set<std::string> archive_tags, mount_tags;
    for (const auto& [tag, row] : archive_rows) archive_tags.insert(tag);
    for (const auto& [tag, row] : mount_rows) mount_tags.insert(tag);
    EXPECT_EQ(mount_tags, archive_tags);
    const std::map<std::string, std::string> dcmdump =
        DcmdumpKeywords(std::filesystem::path(kDicomSamples) / name);
    for (const auto& [tag, row] : archive_rows) {
      auto mounted = mount_rows.find(tag);
      if (mounted == mount_rows.end()) continue;
      EXPECT_EQ(mounted->second.vr, row.vr) << tag;
      EXPECT_EQ(mounted->second.keyword, row.keyword) << tag;
      if (row.keyword == "-") continue;
      EXPECT_EQ(mounted->second.value, row.value) << tag;
      auto theirs = dcmdump.find(tag);
      ASSERT_NE(theirs, dcmdump.end()) << tag << " is not in dcmdump's output";
      EXPECT_EQ(row.keyword, theirs->second) << tag;
    }
  }
}

}  // namespace
}  // namespace medvfs::testing
