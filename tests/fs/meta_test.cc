// DICOM tags as files (.meta), notes, virtual xattrs and the patient index on a real mount,
// with real DICOM files (Debian's python3-pydicom samples) and DCMTK's tools.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/archive.h"
#include "store/dicom_files.h"
#include "store/views.h"
#include "tests/fs/as_user.h"
#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

const stdfs::path kSamples = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
constexpr const char* kCtPatientId = "1CT1";
constexpr const char* kCtPatientName = "CompressedSamples^CT1";
constexpr const char* kCtStudy = "20040119_e+1";

std::vector<std::string> ListXattrNames(const stdfs::path& path) {
  std::string names(65536, '\0');
  const ssize_t n = llistxattr(path.c_str(), names.data(), names.size());
  std::vector<std::string> out;
  if (n <= 0) return out;
  for (size_t start = 0; start < static_cast<size_t>(n);) {
    const size_t end = names.find('\0', start);
    out.push_back(names.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

int StatErrno(const stdfs::path& path) {
  struct stat st {};
  return ErrnoOf(stat(path.c_str(), &st));
}

// Runs `body` as user and group 65534 (nobody), on a thread of its own (tests/fs/as_user.h).
template <typename Body>
int AsNobody(Body&& body) {
  return RunAsNobody(std::forward<Body>(body));
}

class MetaTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped()) return;
    if (!stdfs::exists(kSamples / "CT_small.dcm")) {
      GTEST_FAIL() << "python3-pydicom's sample files are not installed";
    }
    if (system("command -v dcmdump >/dev/null 2>&1") != 0) GTEST_FAIL() << "no dcmtk";
  }

  // `cp SAMPLE MNT/relative`, which must succeed.
  void CopyIn(const std::string& sample, const std::string& relative) {
    const ProcResult cp = RunProgram({"cp", (kSamples / sample).string(), P(relative).string()});
    ASSERT_EQ(cp.exit_code, 0) << cp.err;
  }

  std::vector<store::VersionInfo> VersionsTsv(const std::string& path) {
    const std::string text = ReadFile(P(path));
    auto parsed = store::ParseVersionsTsv(text);
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << text;
    return parsed.ok() ? *parsed : std::vector<store::VersionInfo>{};
  }
};

TEST_F(MetaTest, TagsAreFilesThatMatchDcmdump) {
  MountOk();
  ASSERT_EQ(mkdir(P("study").c_str(), 0755), 0);
  for (const std::string sample : {"CT_small.dcm", "MR_small.dcm"}) {
    SCOPED_TRACE(sample);
    CopyIn(sample, "study/" + sample);
    const std::string meta = "study/.meta/" + sample;
    for (const std::string keyword : {"PatientID", "PatientName", "StudyDate", "Modality",
                                      "StudyInstanceUID", "SOPInstanceUID"}) {
      const std::string want = Dcmdump(keyword, kSamples / sample);
      ASSERT_FALSE(want.empty()) << keyword;
      EXPECT_EQ(ReadFile(P(meta + "/tags/" + keyword)), want + "\n") << keyword;
      EXPECT_EQ(Xattr(P("study/" + sample), "user.dicom." + keyword), want) << keyword;
    }
    const nlohmann::json json = nlohmann::json::parse(ReadFile(P(meta + "/dicom.json")));
    ASSERT_TRUE(json.is_object());
    EXPECT_EQ(json["00100020"]["Value"][0], Dcmdump("PatientID", kSamples / sample));
    EXPECT_EQ(ListDir(P(meta)), (std::vector<std::string>{"dicom.json", "note", "sha256", "tags",
                                                          "tags.tsv", "versions.tsv"}));
    // tags.tsv: every element with its tag, VR, keyword and value, as tags/ and dcmdump say.
    const std::string tsv = ReadFile(P(meta + "/tags.tsv"));
    auto rows = store::ParseTagsTsv(tsv);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    for (const std::string keyword : {"PatientID", "PatientName", "StudyDate", "Modality",
                                      "StudyInstanceUID", "SOPInstanceUID"}) {
      auto row = std::find_if(rows->begin(), rows->end(),
                              [&](const store::DicomElement& e) { return e.keyword == keyword; });
      ASSERT_NE(row, rows->end()) << keyword;
      EXPECT_EQ(row->value, Dcmdump(keyword, kSamples / sample)) << keyword;
    }
    struct stat tsv_stat {};
    ASSERT_EQ(stat(P(meta + "/tags.tsv").c_str(), &tsv_stat), 0);
    EXPECT_EQ(static_cast<size_t>(tsv_stat.st_size), tsv.size());
    EXPECT_EQ(WriteFile(P(meta + "/tags.tsv"), "x"), EROFS);
    const std::vector<std::string> tags = ListDir(P(meta + "/tags"));
    EXPECT_NE(std::find(tags.begin(), tags.end(), "PatientName"), tags.end());
    // stat's size is the content's, so that cat and cp read it whole.
    struct stat st {};
    ASSERT_EQ(stat(P(meta + "/tags/PatientID").c_str(), &st), 0);
    EXPECT_EQ(static_cast<size_t>(st.st_size), ReadFile(P(meta + "/tags/PatientID")).size());
    EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFREG | 0444));  // cp made it 0644
  }
  // .meta is found by name, never listed; it lists the live files.
  EXPECT_EQ(ListDir(P("study")), (std::vector<std::string>{"CT_small.dcm", "MR_small.dcm"}));
  EXPECT_EQ(ListDir(P("study/.meta")), (std::vector<std::string>{"CT_small.dcm", "MR_small.dcm"}));
  const ProcResult find = RunProgram({"/usr/bin/find", mnt_.string()});
  EXPECT_FALSE(Contains(find.out, ".meta")) << find.out;
  EXPECT_FALSE(Contains(find.out, "@patients")) << find.out;
  const ProcResult getfattr =
      RunProgram({"getfattr", "--only-values", "-n", "user.dicom.PatientName",
                  P("study/CT_small.dcm").string()});
  EXPECT_EQ(getfattr.exit_code, 0) << getfattr.err;
  EXPECT_EQ(getfattr.out, kCtPatientName);
}

// What `dcmdump +L -Un +P KEYWORD` prints as the value of the first KEYWORD in `file`: the
// text between the VR and the '#', without brackets; empty for sequences and empty values.
std::string DcmdumpAnyValue(const std::string& keyword, const stdfs::path& file) {
  const ProcResult result =
      RunProgram({"dcmdump", "-q", "+L", "-Un", "+P", keyword, file.string()});
  const std::string line = result.out.substr(0, result.out.find('\n'));
  if (line.size() < 15 || line[0] != '(') return "";
  const size_t hash = line.rfind(" #");
  if (hash == std::string::npos || hash < 15) return "";
  std::string value = line.substr(15, hash - 15);
  while (!value.empty() && value.back() == ' ') value.pop_back();
  if (value.size() >= 2 && value.front() == '[' && value.back() == ']') {
    return value.substr(1, value.size() - 2);
  }
  if (value.starts_with("(")) return "";  // (Sequence ...), (no value available), ...
  return value;
}

// The issue's acceptance list: for each sample, every tags/ file (bulk Pixel Data aside)
// holds what dcmdump prints for the same file.
TEST_F(MetaTest, EveryTagFileOfTheSamplesMatchesDcmdump) {
  MountOk();
  size_t compared = 0;
  for (const std::string sample :
       {"CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPGExtended.dcm",
        "SC_rgb_rle_2frame.dcm", "rtdose.dcm", "ExplVR_BigEnd.dcm", "JPEG2000.dcm"}) {
    SCOPED_TRACE(sample);
    CopyIn(sample, sample);
    const std::vector<std::string> keywords = ListDir(P(".meta/" + sample + "/tags"));
    ASSERT_GT(keywords.size(), 20u);
    for (const std::string& keyword : keywords) {
      if (keyword == "PixelData") continue;
      const std::string want = DcmdumpAnyValue(keyword, kSamples / sample);
      if (want.empty()) continue;
      EXPECT_EQ(ReadFile(P(".meta/" + sample + "/tags/" + keyword)), want + "\n") << keyword;
      ++compared;
    }
  }
  EXPECT_GT(compared, 400u);
}

TEST_F(MetaTest, DcmodifyVersionsKeepTheirOwnTags) {
  MountOk();
  CopyIn("CT_small.dcm", "ct.dcm");
  const std::string sop = Dcmdump("SOPInstanceUID", kSamples / "CT_small.dcm");
  // In place (-nb: no backup file).
  ProcResult modify =
      RunProgram({"dcmodify", "-nb", "-m", "PatientName=Changed^Name", P("ct.dcm").string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;
  EXPECT_EQ(ReadFile(P("@version/ct.dcm/.meta/v1/tags/PatientName")),
            std::string(kCtPatientName) + "\n");
  EXPECT_EQ(ReadFile(P("@version/ct.dcm/.meta/v2/tags/PatientName")), "Changed^Name\n");
  EXPECT_EQ(ReadFile(P(".meta/ct.dcm/tags/PatientName")), "Changed^Name\n");
  EXPECT_EQ(Dcmdump("PatientName", P("@version/ct.dcm/v1")), kCtPatientName);
  EXPECT_EQ(ListDir(P("@version/ct.dcm/.meta")),
            (std::vector<std::string>{"v1", "v2", "versions.tsv"}));

  // DICOM traceability: dcmodify keeps the SOPInstanceUID while the content changes.
  const std::string tsv_text = ReadFile(P(".meta/ct.dcm/versions.tsv"));
  EXPECT_TRUE(Contains(tsv_text, "\tsop_instance_uid\ttraceability\tcontent\t")) << tsv_text;
  EXPECT_TRUE(Contains(tsv_text, sop + "\tSOPInstanceUID reused with different content\t"))
      << tsv_text;
  auto tsv = VersionsTsv(".meta/ct.dcm/versions.tsv");
  ASSERT_EQ(tsv.size(), 2u);
  EXPECT_EQ(tsv[0].sop_instance_uid, sop);
  EXPECT_FALSE(tsv[0].sop_instance_uid_reused);
  EXPECT_EQ(tsv[1].sop_instance_uid, sop);
  EXPECT_TRUE(tsv[1].sop_instance_uid_reused);

  // With a backup: dcmodify renames ct.dcm to ct.dcm.bak and writes a new ct.dcm. The history
  // continues on the name.
  modify = RunProgram({"dcmodify", "-m", "PatientName=Third^Name", P("ct.dcm").string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;
  EXPECT_EQ(ListDir(P("")), (std::vector<std::string>{"ct.dcm", "ct.dcm.bak"}));
  EXPECT_EQ(ReadFile(P("@version/ct.dcm/.meta/v3/tags/PatientName")), "Third^Name\n");
  EXPECT_EQ(ReadFile(P(".meta/ct.dcm/tags/PatientName")), "Third^Name\n");
  EXPECT_EQ(ReadFile(P(".meta/ct.dcm.bak/tags/PatientName")), "Changed^Name\n");
  EXPECT_EQ(ReadFile(P("@version/ct.dcm/.meta/v1/tags/PatientName")),
            std::string(kCtPatientName) + "\n");
  tsv = VersionsTsv("@version/ct.dcm/.meta/versions.tsv");
  ASSERT_EQ(tsv.size(), 3u);
  EXPECT_TRUE(tsv[2].sop_instance_uid_reused);
  EXPECT_EQ(Xattr(P("ct.dcm"), "user.medvfs.version"), "3");
}

TEST_F(MetaTest, BrokenAndRandomFilesSaveWithoutTags) {
  MountOk();
  const std::string ct = ReadFile(kSamples / "CT_small.dcm");
  ASSERT_GT(ct.size(), 1000u);
  std::mt19937_64 rng(42);
  std::string random(64 * 1024, '\0');
  for (char& c : random) c = static_cast<char>(rng());
  ASSERT_EQ(WriteFile(P("truncated.dcm"), ct.substr(0, 1000)), 0);
  ASSERT_EQ(WriteFile(P("x.dcm"), random), 0);
  for (const std::string name : {"truncated.dcm", "x.dcm"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(ListDir(P("@version/" + name)).size(), 1u);
    EXPECT_EQ(StatErrno(P(".meta/" + name + "/tags")), ENOENT);
    EXPECT_EQ(StatErrno(P(".meta/" + name + "/dicom.json")), ENOENT);
    EXPECT_EQ(StatErrno(P("@version/" + name + "/.meta/v1/tags")), ENOENT);
    EXPECT_EQ(ListDir(P(".meta/" + name)),
              (std::vector<std::string>{"note", "sha256", "versions.tsv"}));
    const ProcResult sum = RunProgram({"sha256sum", P(name).string()});
    ASSERT_EQ(sum.exit_code, 0);
    EXPECT_EQ(ReadFile(P(".meta/" + name + "/sha256")), sum.out.substr(0, 64) + "\n");
    EXPECT_EQ(Xattr(P(name), "user.medvfs.sha256"), sum.out.substr(0, 64));
    EXPECT_EQ(Xattr(P(name), "user.dicom.PatientID"), "errno:ENODATA");
    const auto tsv = VersionsTsv(".meta/" + name + "/versions.tsv");
    ASSERT_EQ(tsv.size(), 1u);
    EXPECT_EQ(tsv[0].sop_instance_uid, "");
  }
}

TEST_F(MetaTest, NotesAreMetadataNotVersions) {
  MountOk();
  CopyIn("CT_small.dcm", "n.dcm");
  ProcResult set =
      RunProgram({"setfattr", "-n", "user.medvfs.note", "-v", "hello", P("n.dcm").string()});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_EQ(ReadFile(P(".meta/n.dcm/note")), "hello\n");
  EXPECT_EQ(Xattr(P("n.dcm"), "user.medvfs.note"), "hello");
  EXPECT_EQ(VersionsTsv(".meta/n.dcm/versions.tsv").back().note, "hello");

  ASSERT_EQ(WriteFile(P(".meta/n.dcm/note"), "reviewed\tby dr. b\n"), 0);
  EXPECT_EQ(ReadFile(P(".meta/n.dcm/note")), "reviewed\tby dr. b\n");
  EXPECT_EQ(Xattr(P("n.dcm"), "user.medvfs.note"), "reviewed\tby dr. b");
  EXPECT_EQ(VersionsTsv("@version/n.dcm/.meta/versions.tsv").back().note, "reviewed\tby dr. b");
  // Appending adds a line.
  const int fd = open(P(".meta/n.dcm/note").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << strerror(errno);
  ASSERT_EQ(write(fd, "ok\n", 3), 3);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(ReadFile(P(".meta/n.dcm/note")), "reviewed\tby dr. b\nok\n");
  // A note on a version by its number.
  ASSERT_EQ(WriteFile(P("@version/n.dcm/.meta/v1/note"), "first version\n"), 0);
  EXPECT_EQ(ReadFile(P(".meta/n.dcm/note")), "first version\n");

  // Notes never make content versions.
  EXPECT_EQ(ListDir(P("@version/n.dcm")).size(), 1u);
  EXPECT_EQ(Xattr(P("n.dcm"), "user.medvfs.version"), "1");

  // removexattr clears it; read-only attributes refuse changes.
  set = RunProgram({"setfattr", "-x", "user.medvfs.note", P("n.dcm").string()});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_EQ(ReadFile(P(".meta/n.dcm/note")), "");
  EXPECT_EQ(Xattr(P("n.dcm"), "user.medvfs.note"), "errno:ENODATA");
  for (const char* name : {"user.medvfs.version", "user.medvfs.sha256", "user.dicom.PatientID",
                           "user.dicom.Anything"}) {
    EXPECT_EQ(ErrnoOf(setxattr(P("n.dcm").c_str(), name, "x", 1, 0)), EPERM) << name;
    EXPECT_EQ(ErrnoOf(removexattr(P("n.dcm").c_str(), name)), EPERM) << name;
  }
  EXPECT_EQ(WriteFile(P(".meta/n.dcm/sha256"), "x"), EROFS);
  EXPECT_EQ(WriteFile(P(".meta/n.dcm/tags/PatientID"), "x"), EROFS);
  EXPECT_EQ(ErrnoOf(truncate(P(".meta/n.dcm/tags/PatientID").c_str(), 0)), EROFS);
  EXPECT_EQ(ErrnoOf(mkdir(P(".meta/x").c_str(), 0755)), EROFS);
  EXPECT_EQ(ErrnoOf(unlink(P(".meta/n.dcm/note").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(rmdir(P(".meta").c_str())), EROFS);
  EXPECT_EQ(Xattr(P("n.dcm"), "user.dicom.PatientID"), kCtPatientId);
  UmountOk();

  // Every note is kept (Archive::ListNotes): hello, reviewed, +ok, cleared; v1's own note.
  auto archive = store::Archive::Open(archive_, store::KeySource::Passphrase(kPassphrase));
  ASSERT_TRUE(archive.ok()) << archive.status().ToString();
  auto attr = store::LookupPath(**archive, "n.dcm");
  ASSERT_TRUE(attr.ok()) << attr.status().ToString();
  auto notes = (*archive)->ListNotes(attr->history, 1);
  ASSERT_TRUE(notes.ok()) << notes.status().ToString();
  ASSERT_EQ(notes->size(), 5u);
  EXPECT_EQ((*notes)[0].text, "hello");
  EXPECT_EQ((*notes)[0].program, "setfattr");
  EXPECT_EQ(notes->back().text, "");
}

TEST_F(MetaTest, CopiesCarryNoVirtualAttributes) {
  MountOk();
  CopyIn("CT_small.dcm", "a.dcm");
  ASSERT_EQ(setxattr(P("a.dcm").c_str(), "user.comment", "kept", 4, 0), 0) << strerror(errno);
  // listxattr shows stored attributes only.
  EXPECT_EQ(ListXattrNames(P("a.dcm")), std::vector<std::string>{"user.comment"});
  const ProcResult dump = RunProgram({"getfattr", "-d", "-m", "-", P("a.dcm").string()});
  EXPECT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_TRUE(Contains(dump.out, "user.comment")) << dump.out;
  EXPECT_FALSE(Contains(dump.out, "user.dicom")) << dump.out;
  EXPECT_FALSE(Contains(dump.out, "user.medvfs")) << dump.out;

  const ProcResult cp = RunProgram({"cp", "-a", P("a.dcm").string(), Plain("a.dcm").string()});
  EXPECT_EQ(cp.exit_code, 0) << cp.err;
  EXPECT_EQ(cp.err, "");
  EXPECT_EQ(ReadFile(Plain("a.dcm")), ReadFile(kSamples / "CT_small.dcm"));
  for (const std::string& name : ListXattrNames(Plain("a.dcm"))) {
    EXPECT_FALSE(name.starts_with("user.dicom.")) << name;
    EXPECT_FALSE(name.starts_with("user.medvfs.")) << name;
  }
  // Copying back onto the mount (cp -a, and a file with its stored attribute) works too.
  const ProcResult back = RunProgram({"cp", "-a", Plain("a.dcm").string(), P("b.dcm").string()});
  EXPECT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(Xattr(P("b.dcm"), "user.dicom.PatientID"), kCtPatientId);
}

TEST_F(MetaTest, PatientIndexFollowsSavesRenamesAndDeletes) {
  MountOk();
  ASSERT_EQ(mkdir(P("ct").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("mr").c_str(), 0755), 0);
  CopyIn("CT_small.dcm", "ct/slice1.dcm");
  CopyIn("MR_small.dcm", "mr/img.dcm");
  EXPECT_EQ(ListDir(P("")), (std::vector<std::string>{"ct", "mr"}));
  const std::string mr_id = Dcmdump("PatientID", kSamples / "MR_small.dcm");
  EXPECT_EQ(ListDir(P("@patients")), (std::vector<std::string>{kCtPatientId, mr_id}));
  EXPECT_EQ(ListDir(P(std::string("@patients/") + kCtPatientId)),
            std::vector<std::string>{kCtStudy});
  const std::string study = std::string("@patients/") + kCtPatientId + "/" + kCtStudy;
  EXPECT_EQ(ListDir(P(study)), std::vector<std::string>{"slice1.dcm"});
  char target[256] = {};
  ASSERT_GT(readlink(P(study + "/slice1.dcm").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_EQ(std::string(target), "../../../ct/slice1.dcm");
  struct stat through {
  }, direct{};
  ASSERT_EQ(stat(P(study + "/slice1.dcm").c_str(), &through), 0) << strerror(errno);
  ASSERT_EQ(stat(P("ct/slice1.dcm").c_str(), &direct), 0);
  EXPECT_EQ(through.st_ino, direct.st_ino);
  EXPECT_EQ(ReadFile(P(study + "/slice1.dcm")), ReadFile(kSamples / "CT_small.dcm"));
  // The index lists patient IDs: owner and group of the root only.
  struct stat index {
  }, root{};
  ASSERT_EQ(stat(P("@patients").c_str(), &index), 0);
  ASSERT_EQ(stat(mnt_.c_str(), &root), 0);
  EXPECT_EQ(index.st_mode, static_cast<mode_t>(S_IFDIR | 0550));
  EXPECT_EQ(index.st_uid, root.st_uid);
  EXPECT_EQ(index.st_gid, root.st_gid);
  // Read-only.
  EXPECT_EQ(ErrnoOf(unlink(P(study + "/slice1.dcm").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(mkdir(P("@patients/x").c_str(), 0755)), EROFS);
  EXPECT_EQ(ErrnoOf(symlink("x", P(study + "/l").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(rmdir(P("@patients").c_str())), EROFS);
  // Only at the root.
  EXPECT_EQ(StatErrno(P("ct/@patients")), ENOENT);

  ASSERT_EQ(rename(P("ct/slice1.dcm").c_str(), P("mr/moved.dcm").c_str()), 0);
  EXPECT_EQ(ListDir(P(study)), std::vector<std::string>{"moved.dcm"});
  std::fill(std::begin(target), std::end(target), '\0');
  ASSERT_GT(readlink(P(study + "/moved.dcm").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_EQ(std::string(target), "../../../mr/moved.dcm");
  EXPECT_EQ(ReadFile(P(study + "/moved.dcm")), ReadFile(kSamples / "CT_small.dcm"));

  // A save that changes the patient moves the file in the index.
  const ProcResult modify =
      RunProgram({"dcmodify", "-nb", "-m", "PatientID=OTHER7", P("mr/moved.dcm").string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;
  EXPECT_EQ(ListDir(P("@patients")), (std::vector<std::string>{mr_id, "OTHER7"}));
  EXPECT_EQ(StatErrno(P(study)), ENOENT);

  ASSERT_EQ(unlink(P("mr/moved.dcm").c_str()), 0);
  EXPECT_EQ(ListDir(P("@patients")), std::vector<std::string>{mr_id});
  EXPECT_EQ(StatErrno(P("@patients/OTHER7")), ENOENT);
}

TEST_F(MetaTest, ViewsFollowTheFilesPermissionsForOtherUsers) {
  MountOk("allow_other");
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  ASSERT_EQ(chmod(mnt_.c_str(), 0755), 0);
  CopyIn("CT_small.dcm", "secret.dcm");
  CopyIn("CT_small.dcm", "public.dcm");
  ASSERT_EQ(chmod(P("secret.dcm").c_str(), 0600), 0);
  ASSERT_EQ(chmod(P("public.dcm").c_str(), 0644), 0);
  const auto nobody = [&](const std::function<int()>& step) {
    return AsNobody([&] {
      errno = 0;
      return step() < 0 ? errno : 0;
    });
  };
  const auto open_read = [&](const std::string& rel) {
    return nobody([&] { return open(P(rel).c_str(), O_RDONLY); });
  };
  EXPECT_EQ(open_read(".meta/secret.dcm/tags/PatientID"), EACCES);
  EXPECT_EQ(open_read(".meta/secret.dcm/dicom.json"), EACCES);
  EXPECT_EQ(open_read("@version/secret.dcm/.meta/v1/tags/PatientID"), EACCES);
  EXPECT_EQ(open_read(".meta/public.dcm/tags/PatientID"), 0);
  EXPECT_EQ(open_read("@patients"), EACCES);
  EXPECT_EQ(nobody([&] {
              char buf[64];
              return static_cast<int>(
                  getxattr(P("secret.dcm").c_str(), "user.dicom.PatientID", buf, sizeof(buf)));
            }),
            EACCES);
  // Others can read public.dcm but not write it: nor its note.
  EXPECT_EQ(nobody([&] { return open(P(".meta/public.dcm/note").c_str(), O_WRONLY | O_TRUNC); }),
            EACCES);
  EXPECT_EQ(
      nobody([&] { return setxattr(P("public.dcm").c_str(), "user.medvfs.note", "x", 1, 0); }),
      EACCES);
  // A chmod guards the metadata at once.
  ASSERT_EQ(chmod(P("public.dcm").c_str(), 0600), 0);
  EXPECT_EQ(open_read(".meta/public.dcm/tags/PatientID"), EACCES);
}

TEST_F(MetaTest, VisibleVersionsListTheViewsAndReadOnlyMountsRefuseNotes) {
  MountOk();
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  CopyIn("CT_small.dcm", "d/ct.dcm");
  UmountOk();
  MountOk("versions=visible,ro");
  const std::vector<std::string> root = ListDir(P(""));
  EXPECT_EQ(root, (std::vector<std::string>{".meta", "@anon", "@patients", "@version", "d"}));
  EXPECT_EQ(ListDir(P("d")), (std::vector<std::string>{".meta", "@version", "ct.dcm"}));
  EXPECT_EQ(ReadFile(P("d/.meta/ct.dcm/tags/PatientID")), std::string(kCtPatientId) + "\n");
  EXPECT_EQ(WriteFile(P("d/.meta/ct.dcm/note"), "x"), EROFS);
  EXPECT_EQ(ErrnoOf(setxattr(P("d/ct.dcm").c_str(), "user.medvfs.note", "x", 1, 0)), EROFS);
}

TEST_F(MetaTest, NoTagValueIsReadableAtRest) {
  MountOk();
  CopyIn("CT_small.dcm", "ct.dcm");
  CopyIn("MR_small.dcm", "mr.dcm");
  const ProcResult modify = RunProgram(
      {"dcmodify", "-nb", "-m", "InstitutionName=QUOKKA-CLINIC-93", P("ct.dcm").string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;
  ASSERT_EQ(ReadFile(P(".meta/ct.dcm/tags/InstitutionName")), "QUOKKA-CLINIC-93\n");
  ASSERT_EQ(WriteFile(P(".meta/ct.dcm/note"), "NOTE-WOMBAT-58"), 0);
  ASSERT_FALSE(ListDir(P("@patients")).empty());
  UmountOk();

  const std::string mr_name = Dcmdump("PatientName", kSamples / "MR_small.dcm");
  for (const std::string& marker : {std::string(kCtPatientName), std::string(kCtPatientId), mr_name,
                                    std::string("QUOKKA-CLINIC-93"), std::string("NOTE-WOMBAT-58"),
                                    Dcmdump("SOPInstanceUID", kSamples / "CT_small.dcm")}) {
    SCOPED_TRACE(marker);
    for (const auto& entry : stdfs::recursive_directory_iterator(archive_)) {
      if (!entry.is_regular_file()) continue;
      const std::string data = ReadFile(entry.path());
      EXPECT_FALSE(Contains(data, marker)) << entry.path();
      EXPECT_FALSE(InZstdFrames(data, marker)) << entry.path();
    }
    const ProcResult grep =
        RunProgram({"/bin/grep", "-r", "-l", "-a", "-F", marker, archive_.string()});
    EXPECT_EQ(grep.exit_code, 1) << grep.out;
  }
}

}  // namespace
}  // namespace medvfs::fs_test
