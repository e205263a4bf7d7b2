// `medvfs export --deidentify` and `medvfs deid-map`, on an unmounted archive and through a
// mount, over python3-pydicom's samples. Skipped without the samples or dcmtk's tools.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/tools/cli_fixture.h"

namespace medvfs::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const fs::path kCt = fs::path(kDicomSamples) / "CT_small.dcm";
const fs::path kMr = fs::path(kDicomSamples) / "MR_small.dcm";
constexpr const char* kCtPatientId = "1CT1";
constexpr const char* kCtPatientName = "CompressedSamples^CT1";
constexpr const char* kCtStudyUid = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
constexpr const char* kCtSopUid = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";

std::string MissingTools() {
  if (!fs::exists(kCt) || !fs::exists(kMr)) return "python3-pydicom's samples are not installed";
  if (FindProgram("dcmdump").empty() || FindProgram("dcmodify").empty()) {
    return "dcmdump and dcmodify (package dcmtk) are not installed";
  }
  return "";
}

// Every regular file under `root`, relative to it.
std::vector<std::string> FilesUnder(const fs::path& root) {
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) files.push_back(entry.path().lexically_relative(root).string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The output of `dcmdump FILE`; fails the test unless dcmdump accepts the file.
std::string Dcmdump(const fs::path& file) {
  RunResult result = RunProgram({FindProgram("dcmdump"), file.string()});
  EXPECT_EQ(result.exit_code, 0) << file << ": " << result.err;
  return result.out;
}

class ExportTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (std::string missing = MissingTools(); !missing.empty()) GTEST_FAIL() << missing;
    InitArchive();
    // The same patient in a second study, born on the 12th.
    second_study_ = dir_ / "ct-second-study.dcm";
    DcmodifyCopy(kCt, second_study_, "StudyInstanceUID=1.2.826.0.1.3680043.2.1143.777.1");
    RunResult modified = RunProgram(
        {FindProgram("dcmodify"), "-nb", "-m", "SOPInstanceUID=1.2.826.0.1.3680043.2.1143.777.2",
         "-m", "PatientBirthDate=19670312", "-m", "StudyDate=20050301", second_study_.string()});
    ASSERT_EQ(modified.exit_code, 0) << modified.err;
    dest_ = dir_ / "export";
  }

  void PopulateSamples() {
    Populate({"mkdir:/ct", "mkdir:/mr", "file:/ct/a.dcm=" + kCt.string(),
              "file:/ct/b.dcm=" + second_study_.string(), "file:/mr/m.dcm=" + kMr.string(),
              "write:/ct/readme.txt=not an image"});
  }

  fs::path second_study_;
  fs::path dest_;
};

TEST_F(ExportTest, WritesPseudonymousCopiesOfEveryDicomFile) {
  PopulateSamples();
  RunResult result = Medvfs({"export", "--deidentify", InArchive("/"), dest_.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("exported 3 de-identified DICOM files"));
  EXPECT_THAT(result.out, HasSubstr("left out 1 non-DICOM files"));

  std::vector<std::string> files = FilesUnder(dest_);
  ASSERT_EQ(files.size(), 3u);
  std::set<std::string> ct_pseudonyms;
  for (const std::string& relative : files) {
    // No original identifier in any path.
    for (const char* original :
         {kCtPatientId, kCtStudyUid, kCtSopUid, "4MR1", "CompressedSamples"}) {
      EXPECT_EQ(relative.find(original), std::string::npos) << relative;
    }
    EXPECT_THAT(relative, StartsWith("ANON-"));
    const fs::path file = dest_ / relative;
    const std::string dump = Dcmdump(file);
    const std::string bytes = ReadAll(file);
    EXPECT_EQ(bytes.find(kCtPatientName), std::string::npos) << relative;
    EXPECT_EQ(bytes.find("CompressedSamples^MR1"), std::string::npos) << relative;
    EXPECT_EQ(bytes.find("ABCD1234"), std::string::npos) << relative;  // OtherPatientIDs
    // The file's PatientID is the pseudonym its directory is named after.
    const std::string pseudonym = relative.substr(0, relative.find('/'));
    EXPECT_EQ(DcmdumpValue(file, "PatientID"), pseudonym);
    EXPECT_EQ(DcmdumpValue(file, "PatientIdentityRemoved"), "YES");
    if (DcmdumpValue(file, "Modality") == "CT") ct_pseudonyms.insert(pseudonym);
  }
  // One patient, two studies: one pseudonym.
  EXPECT_EQ(ct_pseudonyms.size(), 1u);

  // The second study keeps its StudyDate and has the birth date on the 15th.
  bool found_second = false;
  for (const std::string& relative : files) {
    if (DcmdumpValue(dest_ / relative, "StudyDate") != "20050301") continue;
    found_second = true;
    EXPECT_EQ(DcmdumpValue(dest_ / relative, "PatientBirthDate"), "19670315");
  }
  EXPECT_TRUE(found_second);

  // Each file read was audited.
  RunResult audit = Medvfs({"audit", archive_.string()});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("export --deidentify"));
}

TEST_F(ExportTest, IsDeterministicAndHonoursTheConfig) {
  PopulateSamples();
  ASSERT_EQ(Medvfs({"export", "--deidentify", InArchive("/ct"), dest_.string()}).exit_code, 0);
  const fs::path again = dir_ / "again";
  ASSERT_EQ(Medvfs({"export", "--deidentify", InArchive("/ct/b.dcm"), again.string()}).exit_code,
            0);
  std::vector<std::string> once = FilesUnder(again);
  ASSERT_EQ(once.size(), 1u);
  EXPECT_EQ(ReadAll(again / once[0]), ReadAll(dest_ / once[0]));

  const fs::path config = dir_ / "deid.conf";
  std::ofstream(config) << "# research project 42\nbirth_date = year\npseudonym_prefix = P42\n";
  const fs::path by_year = dir_ / "by-year";
  RunResult result = Medvfs({"export", "--deidentify", "--config", config.string(),
                             InArchive("/ct/b.dcm"), by_year.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::vector<std::string> files = FilesUnder(by_year);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_THAT(files[0], StartsWith("P42-"));
  EXPECT_EQ(DcmdumpValue(by_year / files[0], "PatientBirthDate"), "19670101");

  std::ofstream(config) << "birth_date = sometimes\n";
  result = Medvfs({"export", "--deidentify", "--config", config.string(), InArchive("/ct"),
                   (dir_ / "bad").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("line 1"));
  EXPECT_TRUE(IsOneLineError(result));
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

TEST_F(ExportTest, RefusesWithoutDeidentifyOrForAMissingPath) {
  PopulateSamples();
  RunResult result = Medvfs({"export", InArchive("/ct"), dest_.string()});
  EXPECT_EQ(result.exit_code, 2);
  result = Medvfs({"export", "--deidentify", InArchive("/nothing-here"), dest_.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(result));
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(ExportTest, DeidMapGivesEachPseudonymItsPatient) {
  PopulateSamples();
  ASSERT_EQ(Medvfs({"export", "--deidentify", InArchive("/"), dest_.string()}).exit_code, 0);
  std::string ct_pseudonym;
  for (const std::string& relative : FilesUnder(dest_)) {
    if (DcmdumpValue(dest_ / relative, "Modality") == "CT") {
      ct_pseudonym = relative.substr(0, relative.find('/'));
    }
  }
  ASSERT_FALSE(ct_pseudonym.empty());

  RunResult result = Medvfs({"deid-map", archive_.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, StartsWith("pseudonym\tpatient_id\tversions\n"));
  EXPECT_THAT(result.out, HasSubstr(ct_pseudonym + "\t1CT1\t2\n"));
  EXPECT_THAT(result.out, HasSubstr("\t4MR1\t1\n"));

  result = Medvfs({"deid-map", archive_.string(), "--pseudonym", ct_pseudonym});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "pseudonym\tpatient_id\tversions\n" + ct_pseudonym + "\t1CT1\t2\n");

  result = Medvfs({"deid-map", archive_.string(), "--pseudonym", "ANON-00000000000000000000"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(result));

  // A deleted file's patient stays re-identifiable.
  Populate({"rm:/mr/m.dcm"});
  result = Medvfs({"deid-map", archive_.string()});
  EXPECT_THAT(result.out, HasSubstr("\t4MR1\t1\n"));

  RunOptions wrong_key = Options();
  wrong_key.env["MEDVFS_PASSPHRASE"] = "not the passphrase";
  result = Medvfs({"deid-map", archive_.string()}, wrong_key);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "");
  EXPECT_TRUE(IsOneLineError(result));
}

class ExportMountTest : public CliMountTest {
 protected:
  void SetUp() override {
    CliMountTest::SetUp();
    if (IsSkipped()) return;
    if (std::string missing = MissingTools(); !missing.empty()) GTEST_FAIL() << missing;
  }
};

TEST_F(ExportMountTest, ThroughAMountCopiesWhatAnonServesWithoutAKey) {
  fs::create_directories(mnt_ / "ct");
  fs::copy_file(kCt, mnt_ / "ct" / "a.dcm");
  Save(mnt_ / "ct" / "notes.txt", "not an image");
  const fs::path dest = dir_ / "export";
  RunResult result =
      Medvfs({"export", "--deidentify", (mnt_ / "ct").string(), dest.string()}, NoKey());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("exported 1 de-identified DICOM files"));
  std::vector<std::string> files = FilesUnder(dest);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(ReadAll(dest / files[0]), ReadAll(mnt_ / "@anon" / files[0]));
  EXPECT_EQ(ReadAll(dest / files[0]).find(kCtPatientName), std::string::npos);

  // DEST inside the mount is refused.
  result =
      Medvfs({"export", "--deidentify", (mnt_ / "ct").string(), (mnt_ / "out").string()}, NoKey());
  EXPECT_EQ(result.exit_code, 2);

  // deid-map while mounted: the key is checked, the daemon answers and audits.
  const std::string pseudonym = files[0].substr(0, files[0].find('/'));
  result = Medvfs({"deid-map", archive_.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "pseudonym\tpatient_id\tversions\n" + pseudonym + "\t1CT1\t1\n");
  RunOptions wrong_key = Options();
  wrong_key.env["MEDVFS_PASSPHRASE"] = "not the passphrase";
  result = Medvfs({"deid-map", mnt_.string()}, wrong_key);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "");
  EXPECT_TRUE(IsOneLineError(result));

  // The same file exported from the unmounted archive is the same bytes: one key, one result.
  Unmount();
  const fs::path offline = dir_ / "offline";
  result = Medvfs({"export", "--deidentify", InArchive("/ct"), offline.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(ReadAll(offline / files[0]), ReadAll(dest / files[0]));
  RunResult audit = Medvfs({"audit", archive_.string()});
  EXPECT_THAT(audit.out, HasSubstr("deid-map"));
}

// Every pydicom sample, an Encapsulated PDF naming its patient and a burned-in ultrasound, in a
// mount: the export through the mount and the export of the unmounted archive give the same
// files, byte for byte, and the same counts of what they left out and why; @anon lists what
// it withholds in WITHHELD.tsv.
TEST_F(ExportMountTest, BothWaysExportOneFileSetAndWithholdTheSame) {
  ASSERT_FALSE(FindProgram("pdf2dcm").empty()) << "pdf2dcm (package dcmtk) is needed";
  const fs::path pdf = dir_ / "letter.pdf", pdf_dcm = dir_ / "letter.dcm";
  std::ofstream(pdf) << "%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n(Doe^Jane 19670312 MRN4711)\n"
                        "trailer<</Root 1 0 R>>\n%%EOF\n";
  RunResult made = RunProgram({FindProgram("pdf2dcm"), "+pn", "Doe^Jane", "+pi", "MRN4711",
                               pdf.string(), pdf_dcm.string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const fs::path us = dir_ / "us.dcm";
  DcmodifyCopy(kCt, us, "SOPClassUID=1.2.840.10008.5.1.4.1.1.6.1");
  RunResult modified = RunProgram({FindProgram("dcmodify"), "-nb", "-m", "Modality=US", "-i",
                                   "BurnedInAnnotation=YES", "-m",
                                   "SOPInstanceUID=1.2.826.0.1.3680043.2.1143.778.1", us.string()});
  ASSERT_EQ(modified.exit_code, 0) << modified.err;

  fs::create_directories(mnt_ / "in" / "docs");
  int samples = 0;
  for (const auto& entry : fs::directory_iterator(kDicomSamples)) {
    if (entry.path().extension() != ".dcm") continue;
    fs::copy_file(entry.path(), mnt_ / "in" / entry.path().filename());
    ++samples;
  }
  ASSERT_GE(samples, 60);
  fs::copy_file(pdf_dcm, mnt_ / "in" / "docs" / "letter.dcm");
  fs::copy_file(us, mnt_ / "in" / "docs" / "us.dcm");
  Save(mnt_ / "in" / "docs" / "notes.txt", "not an image");

  const fs::path mounted = dir_ / "mounted";
  RunResult through = Medvfs({"export", "--deidentify", mnt_.string(), mounted.string()}, NoKey());
  ASSERT_EQ(through.exit_code, 0) << through.err;
  EXPECT_THAT(through.out, HasSubstr("withheld 1 DICOM files: encapsulated-document\n"));
  EXPECT_THAT(through.out, HasSubstr("DICOM files: burned-in-annotation\n"));
  EXPECT_THAT(through.out, HasSubstr(" non-DICOM files"));  // notes.txt at least
  EXPECT_EQ(through.out.find("Doe"), std::string::npos);
  // DICOM files outside the patient index (priv_SQ.dcm has no PatientID) are withheld as such,
  // not counted as non-DICOM; the live file says why.
  EXPECT_THAT(through.out, HasSubstr("DICOM files: no-patient-or-study\n"));
  RunResult why = RunProgram({FindProgram("getfattr"), "--only-values", "-n",
                              "user.medvfs.anon_withheld", (mnt_ / "in" / "priv_SQ.dcm").string()});
  EXPECT_EQ(why.out, "no-patient-or-study");
  why = RunProgram({FindProgram("getfattr"), "--only-values", "-n", "user.medvfs.anon_withheld",
                    (mnt_ / "in" / "docs" / "letter.dcm").string()});
  EXPECT_EQ(why.out, "encapsulated-document");

  const std::string report = ReadAll(mnt_ / "@anon" / "WITHHELD.tsv");
  EXPECT_THAT(report, HasSubstr("\nreason\tpath\n"));
  EXPECT_THAT(report, HasSubstr("1 encapsulated-document"));
  EXPECT_THAT(report, HasSubstr("\nburned-in-annotation\tANON-"));
  for (const char* original : {"Doe", "MRN4711", kCtPatientId, "CompressedSamples", "docs"}) {
    EXPECT_EQ(report.find(original), std::string::npos) << original;
  }
  std::vector<std::string> listed;
  for (const auto& entry : fs::directory_iterator(mnt_ / "@anon")) {
    listed.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(listed, ::testing::Contains("WITHHELD.tsv"));
  Unmount();

  const fs::path offline = dir_ / "offline";
  RunResult unmounted = Medvfs({"export", "--deidentify", InArchive("/"), offline.string()});
  ASSERT_EQ(unmounted.exit_code, 0) << unmounted.err;
  // The same summary but for DEST, the same files, the same bytes.
  const auto after_dest = [](const std::string& out) { return out.substr(out.find('\n')); };
  EXPECT_EQ(after_dest(through.out), after_dest(unmounted.out));
  EXPECT_EQ(through.out.substr(0, through.out.find(" to ")),
            unmounted.out.substr(0, unmounted.out.find(" to ")));
  const std::vector<std::string> files = FilesUnder(mounted);
  ASSERT_EQ(files, FilesUnder(offline));
  EXPECT_GE(files.size(), 25u);
  for (const std::string& relative : files) {
    const std::string bytes = ReadAll(mounted / relative);
    EXPECT_TRUE(bytes == ReadAll(offline / relative)) << relative;
    EXPECT_EQ(bytes.find("MRN4711"), std::string::npos) << relative;
    EXPECT_EQ(bytes.find(kCtPatientName), std::string::npos) << relative;
  }
}

}  // namespace
}  // namespace medvfs::testing
