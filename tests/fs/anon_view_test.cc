// The de-identified view /@anon, -o anon_only and -o deid_config on a real mount, with real
// DICOM files (Debian's python3-pydicom samples) and DCMTK's tools.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "store/audit.h"
#include "tests/fs/audit_reader.h"
#include "tests/fs/mount_fixture.h"
#include "tests/posix_regex.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

const stdfs::path kSamples = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
// (Encapsulated pixels: rtdose_rle.dcm; JPEG2000.dcm is a secondary capture, withheld.)
const std::vector<std::string> kDicomSamples = {"CT_small.dcm", "MR_small.dcm", "rtdose_rle.dcm",
                                                "rtplan.dcm"};

ssize_t ListXattrSize(const stdfs::path& path) {
  char names[4096];
  return llistxattr(path.c_str(), names, sizeof(names));
}

// How a view refuses a change: EROFS from the daemon, or EACCES from the kernel's own check of
// the 0550/0440 modes when the caller is not root.
bool Refused(int err) { return err == EROFS || err == EACCES; }

int StatErrno(const stdfs::path& path) {
  struct stat st {};
  return ErrnoOf(stat(path.c_str(), &st));
}

std::vector<std::string> Split(const std::string& path, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t at = path.find(separator); at != std::string::npos;
       start = at + 1, at = path.find(separator, start)) {
    parts.push_back(path.substr(start, at - start));
  }
  parts.push_back(path.substr(start));
  return parts;
}

class AnonViewTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_TRUE(stdfs::exists(kSamples / "CT_small.dcm"))
        << "python3-pydicom's sample files are needed";
    ASSERT_EQ(system("command -v dcmdump >/dev/null 2>&1"), 0) << "dcmtk's tools are needed";
  }

  void CopyIn(const stdfs::path& from, const std::string& relative) {
    const ProcResult cp = RunProgram({"cp", from.string(), P(relative).string()});
    ASSERT_EQ(cp.exit_code, 0) << cp.err;
  }

  // The four samples and a text file, in two directories.
  void CopySamples() {
    ASSERT_EQ(mkdir(P("ct").c_str(), 0755), 0);
    ASSERT_EQ(mkdir(P("other").c_str(), 0755), 0);
    CopyIn(kSamples / kDicomSamples[0], "ct/slice.dcm");
    for (size_t i = 1; i < kDicomSamples.size(); ++i) {
      CopyIn(kSamples / kDicomSamples[i], "other/" + kDicomSamples[i]);
    }
    ASSERT_EQ(WriteFile(P("other/notes.txt"), "Patient CompressedSamples^CT1 is fine\n"), 0);
  }

  // Every regular file under MNT/@anon, relative to the mount ("@anon/.../x.dcm"), sorted.
  std::vector<std::string> AnonFiles() {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = stdfs::recursive_directory_iterator(P("@anon"), ec);
         !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file() && it->path().filename() != "WITHHELD.tsv") {
        out.push_back(stdfs::relative(it->path(), mnt_).string());
      }
    }
    EXPECT_FALSE(ec) << ec.message();
    std::sort(out.begin(), out.end());
    return out;
  }

  // Copies an @anon file out (so that dcmdump reads a plain file) and returns the copy.
  stdfs::path CopyOut(const std::string& relative, const std::string& name) {
    const stdfs::path out = Plain(name);
    EXPECT_EQ(WriteFile(out, ReadFile(P(relative))), 0);
    return out;
  }
};

TEST_F(AnonViewTest, TreeIsPseudonymousAndEveryFileIsDeidentifiedDicom) {
  MountOk();
  CopySamples();
  const std::vector<std::string> root = ListDir(P(""));
  EXPECT_EQ(std::count(root.begin(), root.end(), "@anon"), 0);  // reachable, never listed
  EXPECT_FALSE(ListDir(P("@anon")).empty());
  EXPECT_EQ(StatErrno(P("ct/@anon")), ENOENT);  // at the root only

  const std::vector<std::string> files = AnonFiles();
  ASSERT_EQ(files.size(), kDicomSamples.size()) << "the text file must not be shown";
  const std::string layout =
      R"(@anon/ANON-[0-9a-f]{20}/[0-9]{8}_2\.25\.[0-9]+/[0-9]+_2\.25\.[0-9]+/2\.25\.[0-9]+\.dcm)";
  std::string all_paths;
  for (const std::string& file : files) {
    EXPECT_TRUE(medvfs::testing::RegexFullMatch(file, layout)) << file;
    all_paths += file + "\n";
  }
  for (const std::string& sample : kDicomSamples) {
    for (const char* tag : {"PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID",
                            "SOPInstanceUID", "StudyDescription", "SeriesDescription"}) {
      const std::string value = Dcmdump(tag, kSamples / sample);
      if (value.size() >= 3) {
        EXPECT_FALSE(Contains(all_paths, value)) << tag << " " << value;
      }
    }
  }
  for (size_t i = 0; i < files.size(); ++i) {
    struct stat st {};
    ASSERT_EQ(stat(P(files[i]).c_str(), &st), 0) << files[i];
    const std::string content = ReadFile(P(files[i]));
    EXPECT_EQ(static_cast<size_t>(st.st_size), content.size()) << files[i];
    const stdfs::path copy = CopyOut(files[i], "anon" + std::to_string(i) + ".dcm");
    const ProcResult dump = RunProgram({"dcmdump", "-q", copy.string()});
    EXPECT_EQ(dump.exit_code, 0) << files[i] << ": " << dump.err;
    EXPECT_EQ(Dcmdump("PatientID", copy), Split(files[i], '/')[1]) << files[i];
    for (const std::string& sample : kDicomSamples) {
      for (const char* tag : {"PatientID", "PatientName"}) {
        const std::string value = Dcmdump(tag, kSamples / sample);
        if (value.size() >= 3) {
          EXPECT_FALSE(Contains(content, value)) << files[i] << " " << value;
        }
      }
    }
  }
}

TEST_F(AnonViewTest, OnePatientInTwoStudiesHasOnePseudonymAndDuplicatesGetSuffixes) {
  MountOk();
  CopyIn(kSamples / "CT_small.dcm", "a.dcm");
  CopyIn(kSamples / "CT_small.dcm", "copy.dcm");  // the same instance twice
  CopyIn(kSamples / "CT_small.dcm", "b.dcm");
  const ProcResult modify = RunProgram({"dcmodify", "-nb", "-m", "StudyInstanceUID=1.2.826.0.1.99",
                                        "-m", "StudyDate=20200101", P("b.dcm").string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;

  // The patients, and the report of withheld files (none here).
  const std::vector<std::string> patients = ListDir(P("@anon"));
  ASSERT_EQ(patients.size(), 2u);
  EXPECT_EQ(patients[1], "WITHHELD.tsv");
  const std::vector<std::string> studies = ListDir(P("@anon/" + patients[0]));
  ASSERT_EQ(studies.size(), 2u);
  EXPECT_TRUE(studies[0].starts_with("20040119_2.25.")) << studies[0];
  EXPECT_TRUE(studies[1].starts_with("20200101_2.25.")) << studies[1];
  const std::vector<std::string> files = AnonFiles();
  ASSERT_EQ(files.size(), 3u);
  // Two live files with the same names: the second by inode order gets "_2".
  const std::string first = files[0].substr(0, files[0].size() - 4);
  EXPECT_EQ(files[1], first + "_2.dcm");
  EXPECT_EQ(ReadFile(P(files[0])), ReadFile(P(files[1])));
  EXPECT_EQ(Xattr(P("a.dcm"), "user.medvfs.anon_path"), files[0]);
  EXPECT_EQ(Xattr(P("copy.dcm"), "user.medvfs.anon_path"), files[1]);
}

TEST_F(AnonViewTest, ViewIsReadOnlyAndShowsNoRealMetadata) {
  MountOk();
  CopyIn(kSamples / "CT_small.dcm", "a.dcm");
  const std::vector<std::string> files = AnonFiles();
  ASSERT_EQ(files.size(), 1u);
  const std::string file = files[0];
  const std::string series = stdfs::path(file).parent_path().string();
  EXPECT_PRED1(Refused, WriteFile(P("@anon/new.dcm"), "x"));
  EXPECT_PRED1(Refused, WriteFile(P(series + "/new.dcm"), "x"));
  EXPECT_PRED1(Refused, ErrnoOf(mkdir(P("@anon/dir").c_str(), 0755)));
  EXPECT_PRED1(Refused, ErrnoOf(unlink(P(file).c_str())));
  EXPECT_PRED1(Refused, ErrnoOf(rename(P(file).c_str(), P(series + "/x.dcm").c_str())));
  EXPECT_EQ(ErrnoOf(rmdir(P("@anon").c_str())), EROFS);
  const int fd = open(P(file).c_str(), O_WRONLY);
  const int open_error = errno;
  EXPECT_LT(fd, 0);
  if (fd >= 0) close(fd);
  EXPECT_PRED1(Refused, fd < 0 ? open_error : 0);
  EXPECT_PRED1(Refused, ErrnoOf(setxattr(P(file).c_str(), "user.x", "1", 1, 0)));

  // No way back to the real values from inside @anon.
  for (const std::string& dir : {std::string("@anon"), series}) {
    for (const char* name : {".meta", "@version", "@patients"}) {
      EXPECT_EQ(StatErrno(P(dir + "/" + name)), ENOENT) << dir << "/" << name;
    }
  }
  EXPECT_EQ(StatErrno(P(file + "/.meta")), ENOTDIR);
  EXPECT_EQ(ListXattrSize(P(file)), 0);
  EXPECT_EQ(Xattr(P(file), "user.dicom.PatientID"), "errno:ENODATA");
  EXPECT_EQ(Xattr(P(file), "user.medvfs.version"), "errno:ENODATA");

  // Like /@patients: the root's owner and group only.
  struct stat root {
  }, dir{}, st{};
  ASSERT_EQ(stat(mnt_.c_str(), &root), 0);
  ASSERT_EQ(stat(P(series).c_str(), &dir), 0);
  ASSERT_EQ(stat(P(file).c_str(), &st), 0);
  EXPECT_EQ(dir.st_mode, static_cast<mode_t>(S_IFDIR | 0550));
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFREG | 0440));
  EXPECT_EQ(st.st_uid, root.st_uid);
  EXPECT_EQ(st.st_gid, root.st_gid);
}

TEST_F(AnonViewTest, ANewVersionShowsNewContentAndTheAttributeFollows) {
  MountOk();
  CopyIn(kSamples / "CT_small.dcm", "a.dcm");
  ASSERT_EQ(WriteFile(P("notes.txt"), "text"), 0);
  EXPECT_EQ(Xattr(P("notes.txt"), "user.medvfs.anon_path"), "errno:ENODATA");
  const std::string path = Xattr(P("a.dcm"), "user.medvfs.anon_path");
  ASSERT_TRUE(path.starts_with("@anon/ANON-")) << path;
  EXPECT_EQ(AnonFiles(), std::vector<std::string>{path});
  const std::string before = ReadFile(P(path));
  ASSERT_FALSE(before.empty());

  const ProcResult modify =
      RunProgram({"dcmodify", "-nb", "-m", "Modality=OT", P("a.dcm").string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;
  EXPECT_EQ(Xattr(P("a.dcm"), "user.medvfs.anon_path"), path);  // the same names
  const std::string after = ReadFile(P(path));
  EXPECT_NE(after, before);
  struct stat st {};
  ASSERT_EQ(stat(P(path).c_str(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), after.size());
  EXPECT_EQ(Dcmdump("Modality", CopyOut(path, "after.dcm")), "OT");

  // A save that changes a name moves the file.
  const ProcResult series =
      RunProgram({"dcmodify", "-nb", "-m", "SeriesNumber=77", P("a.dcm").string()});
  ASSERT_EQ(series.exit_code, 0) << series.err;
  const std::string moved = Xattr(P("a.dcm"), "user.medvfs.anon_path");
  EXPECT_NE(moved, path);
  EXPECT_TRUE(Contains(moved, "/77_2.25.")) << moved;
  EXPECT_EQ(StatErrno(P(path)), ENOENT);
  EXPECT_EQ(AnonFiles(), std::vector<std::string>{moved});
}

TEST_F(AnonViewTest, AnonOnlyMountServesAnonAlone) {
  MountOk();
  CopySamples();
  const std::vector<std::string> files = AnonFiles();
  ASSERT_EQ(files.size(), kDicomSamples.size());
  const std::string served = ReadFile(P(files[0]));
  UmountOk();

  MountOk("anon_only");
  EXPECT_EQ(ListDir(P("")), std::vector<std::string>{"@anon"});
  EXPECT_EQ(AnonFiles(), files);
  EXPECT_EQ(ReadFile(P(files[0])), served);
  for (const char* name :
       {"ct", "ct/slice.dcm", "other/notes.txt", "@patients", ".meta", "@version", "ct/@version"}) {
    EXPECT_EQ(StatErrno(P(name)), ENOENT) << name;
  }
  EXPECT_EQ(WriteFile(P("new.txt"), "x"), EROFS);
  EXPECT_EQ(ErrnoOf(mkdir(P("dir").c_str(), 0755)), EROFS);
  EXPECT_EQ(Xattr(mnt_, "user.medvfs.stats"), "errno:ENODATA");
  EXPECT_EQ(ListXattrSize(mnt_), 0);
}

TEST_F(AnonViewTest, DeidConfigChoosesTheBirthDateRuleAndABadOneFailsTheMount) {
  const stdfs::path sample = Plain("born.dcm");
  stdfs::copy_file(kSamples / "CT_small.dcm", sample);
  const ProcResult modify =
      RunProgram({"dcmodify", "-nb", "-m", "PatientBirthDate=19670312", sample.string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;
  MountOk();
  CopyIn(sample, "born.dcm");
  std::vector<std::string> files = AnonFiles();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(Dcmdump("PatientBirthDate", CopyOut(files[0], "default.dcm")), "19670315");
  UmountOk();

  const stdfs::path config = dir_ / "deid.conf";
  std::ofstream(config) << "# research export\nbirth_date = year\n";
  MountOk("deid_config=" + config.string());
  files = AnonFiles();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(Dcmdump("PatientBirthDate", CopyOut(files[0], "year.dcm")), "19670101");
  UmountOk();

  const stdfs::path bad = dir_ / "bad.conf";
  std::ofstream(bad) << "birth_date = year\nbirth_day_of_the_week = monday\n";
  const ProcResult refused = Mount("deid_config=" + bad.string());
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(Contains(refused.err, bad.string())) << refused.err;
  EXPECT_TRUE(Contains(refused.err, "line 2")) << refused.err;
  EXPECT_FALSE(IsMedvfsMount(mnt_));
}

// A burned-in ultrasound (CT_small.dcm made one by dcmodify) is withheld by default, named in
// WITHHELD.tsv by its reason and pseudonymous path, and its reason is in
// user.medvfs.anon_withheld; with a mask rule it is shown, the rectangle zeroed.
TEST_F(AnonViewTest, BurnedInUltrasoundIsWithheldAndReportedOrMasked) {
  const stdfs::path us = Plain("us.dcm");
  stdfs::copy_file(kSamples / "CT_small.dcm", us);
  const ProcResult modify =
      RunProgram({"dcmodify", "-nb", "-m", "SOPClassUID=1.2.840.10008.5.1.4.1.1.6.1", "-m",
                  "Modality=US", "-i", "BurnedInAnnotation=YES", us.string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;
  MountOk();
  CopyIn(us, "us.dcm");
  CopyIn(kSamples / "MR_small.dcm", "mr.dcm");
  std::vector<std::string> files = AnonFiles();
  ASSERT_EQ(files.size(), 1u) << "the ultrasound must not be shown";
  EXPECT_EQ(Xattr(P("mr.dcm"), "user.medvfs.anon_path"), files[0]);
  EXPECT_EQ(Xattr(P("us.dcm"), "user.medvfs.anon_path"), "errno:ENODATA");
  EXPECT_EQ(Xattr(P("us.dcm"), "user.medvfs.anon_withheld"), "burned-in-annotation");
  EXPECT_EQ(Xattr(P("mr.dcm"), "user.medvfs.anon_withheld"), "errno:ENODATA");
  const std::vector<std::string> root = ListDir(P("@anon"));
  EXPECT_EQ(std::count(root.begin(), root.end(), "WITHHELD.tsv"), 1);
  const std::string report = ReadFile(P("@anon/WITHHELD.tsv"));
  EXPECT_TRUE(report.starts_with("# 1 withheld: 1 burned-in-annotation\nreason\tpath\n")) << report;
  EXPECT_TRUE(
      medvfs::testing::RegexFullMatch(report.substr(report.rfind("\nburned") + 1),
                                      "burned-in-annotation\tANON-[0-9a-f]{20}/[^\t]*\\.dcm\n"))
      << report;
  EXPECT_FALSE(Contains(report, "CompressedSamples"));
  EXPECT_FALSE(Contains(report, "1CT1"));
  UmountOk();

  const stdfs::path config = dir_ / "mask.conf";
  std::ofstream(config) << "burned_in_annotation = mask\npixel_mask = modality=US : (0,0,128,8)\n";
  MountOk("deid_config=" + config.string());
  files = AnonFiles();
  ASSERT_EQ(files.size(), 2u);
  const std::string masked = Xattr(P("us.dcm"), "user.medvfs.anon_path");
  const std::string content = ReadFile(P(masked));
  const std::string original = ReadFile(us);
  constexpr size_t kPixels = 128 * 128 * 2;
  ASSERT_GT(content.size(), kPixels);
  EXPECT_EQ(content.substr(content.size() - kPixels, 128 * 8 * 2), std::string(128 * 8 * 2, '\0'));
  EXPECT_EQ(content.substr(content.size() - kPixels + 128 * 8 * 2),
            original.substr(original.size() - kPixels + 128 * 8 * 2));
  EXPECT_EQ(Dcmdump("BurnedInAnnotation", CopyOut(masked, "masked.dcm")), "NO");
  EXPECT_EQ(ReadFile(P("@anon/WITHHELD.tsv")), "# 0 withheld\nreason\tpath\n");
}

TEST_F(AnonViewTest, ReadsAreAuditedUnderTheAnonPath) {
  MountOk();
  CopyIn(kSamples / "CT_small.dcm", "a.dcm");
  const std::vector<std::string> files = AnonFiles();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_FALSE(ReadFile(P(files[0])).empty());
  UmountOk();
  const std::vector<store::AuditEntry> entries = ReadAudit(archive_);
  const auto read =
      FindAudit(entries, AuditMatch().Op(store::AuditOp::kReadVersion).Path("/" + files[0]));
  ASSERT_TRUE(read.has_value()) << DescribeAudit(entries);
  EXPECT_EQ(read->detail, "@anon");
  EXPECT_EQ(read->version, 1u);
  EXPECT_TRUE(FindAudit(entries, AuditMatch().Op(store::AuditOp::kListDir).Path("/@anon")))
      << DescribeAudit(entries);
}

}  // namespace
}  // namespace medvfs::fs_test
