// DICOM tags committed with versions, SOPInstanceUID traceability, notes, and the patient
// index, through the Archive API (no FUSE).
#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "store/archive.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::ReadFile;

const std::string kSamples = test_util::kPydicomSamples.string() + "/";

class ArchiveDicomTest : public test_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!std::filesystem::exists(std::string(kSamples) + "CT_small.dcm")) {
      GTEST_FAIL() << "python3-pydicom's sample files are not installed";
    }
    ArchiveOptions options;
    options.kdf.n = 1 << 10;
    ASSERT_OK_AND_ASSIGN(archive_,
                         Archive::Create(dir() / "archive", KeySource::Passphrase("pw"), options));
    caller_.uid = 1000;
    caller_.program = "test";
  }

  InodeId Save(InodeId parent, const std::string& name, const std::string& content) {
    InodeId ino;
    auto existing = archive_->Lookup(parent, name);
    if (existing.ok()) {
      ino = existing->ino;
    } else {
      auto made = archive_->MakeNode(parent, name, S_IFREG | 0644, 0, caller_);
      EXPECT_OK(made);
      if (!made.ok()) return 0;
      ino = made->ino;
    }
    auto handle = archive_->Open(ino, O_WRONLY | O_TRUNC, caller_);
    EXPECT_OK(handle);
    if (!handle.ok()) return 0;
    EXPECT_OK((*handle)->Write(0, content));
    EXPECT_OK((*handle)->Flush(caller_));
    return ino;
  }

  // A copy of a sample with one tag changed by dcmodify (same SOPInstanceUID).
  std::string Modified(const std::string& sample, const std::string& assignment) {
    const auto copy = dir() / "modified.dcm";
    std::filesystem::copy_file(std::string(kSamples) + sample, copy,
                               std::filesystem::copy_options::overwrite_existing);
    const std::string command =
        "dcmodify -nb -i '" + assignment + "' " + copy.string() + " >/dev/null 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    return ReadFile(copy);
  }

  std::unique_ptr<Archive> archive_;
  Caller caller_;
};

TEST_F(ArchiveDicomTest, TagsAreStoredPerVersionAndReuseIsFlagged) {
  const std::string original = ReadFile(std::string(kSamples) + "CT_small.dcm");
  InodeId ino = Save(kRootInode, "ct.dcm", original);
  Save(kRootInode, "ct.dcm", Modified("CT_small.dcm", "PatientName=Changed^Name"));
  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  ASSERT_OK_AND_ASSIGN(DicomTags v1, archive_->GetTags(attr.history, 1));
  ASSERT_OK_AND_ASSIGN(DicomTags v2, archive_->GetTags(attr.history, 2));
  ASSERT_NE(v1.Find("PatientName"), nullptr);
  ASSERT_NE(v2.Find("PatientName"), nullptr);
  EXPECT_EQ(v2.Find("PatientName")->value, "Changed^Name");
  EXPECT_NE(v1.Find("PatientName")->value, "Changed^Name");
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(attr.history));
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_TRUE(versions[0].has_dicom_tags);
  EXPECT_FALSE(versions[0].sop_instance_uid.empty());
  EXPECT_EQ(versions[0].sop_instance_uid, versions[1].sop_instance_uid);
  EXPECT_FALSE(versions[0].sop_instance_uid_reused);
  EXPECT_TRUE(versions[1].sop_instance_uid_reused);
}

TEST_F(ArchiveDicomTest, BrokenOrForeignContentSavesWithoutTags) {
  const std::string original = ReadFile(std::string(kSamples) + "CT_small.dcm");
  InodeId truncated = Save(kRootInode, "truncated.dcm", original.substr(0, 1000));
  // Cut inside its Pixel Data: the header is whole, the file is not.
  InodeId cut_pixels = Save(kRootInode, "cut.dcm", original.substr(0, original.size() - 5000));
  std::string noise(65536, '\0');
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>(i * 7919 % 251);
  InodeId random = Save(kRootInode, "random.dcm", noise);
  for (InodeId ino : {truncated, cut_pixels, random}) {
    ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
    EXPECT_EQ(attr.version, 1u);
    EXPECT_EQ(archive_->GetTags(attr.history, 1).status().code(), Code::kNotFound);
  }
}

TEST_F(ArchiveDicomTest, EditorSaveAndRestoreCarryTags) {
  const std::string original = ReadFile(std::string(kSamples) + "MR_small.dcm");
  InodeId ino = Save(kRootInode, "mr.dcm", original);
  ASSERT_OK_AND_ASSIGN(Attr first, archive_->GetAttr(ino));
  Save(kRootInode, "mr.dcm.tmp", Modified("MR_small.dcm", "StudyDescription=Edited"));
  ASSERT_OK(archive_->Rename(kRootInode, "mr.dcm.tmp", kRootInode, "mr.dcm", 0, caller_));
  ASSERT_OK_AND_ASSIGN(DicomTags saved, archive_->GetTags(first.history, 2));
  ASSERT_NE(saved.Find("StudyDescription"), nullptr);
  EXPECT_EQ(saved.Find("StudyDescription")->value, "Edited");
  ASSERT_OK(archive_->Restore(first.history, 1, caller_));
  ASSERT_OK_AND_ASSIGN(DicomTags restored, archive_->GetTags(first.history, 3));
  ASSERT_OK_AND_ASSIGN(DicomTags v1, archive_->GetTags(first.history, 1));
  EXPECT_EQ(restored.json, v1.json);
}

TEST_F(ArchiveDicomTest, NotesAreMetadataAndEveryNoteIsKept) {
  InodeId ino = Save(kRootInode, "a.txt", "content");
  ASSERT_OK_AND_ASSIGN(Attr attr, archive_->GetAttr(ino));
  ASSERT_OK(archive_->SetNote(attr.history, 1, "first look", caller_));
  ASSERT_OK(archive_->SetNote(attr.history, 1, "second opinion", caller_));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(attr.history));
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].note, "second opinion");
  ASSERT_OK_AND_ASSIGN(auto notes, archive_->ListNotes(attr.history, 1));
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0].text, "first look");
  EXPECT_EQ(notes[1].writer_uid, 1000u);
  EXPECT_EQ(archive_->SetNote(attr.history, 9, "x", caller_).code(), Code::kNotFound);
}

TEST_F(ArchiveDicomTest, PatientIndexFollowsSavesRenamesAndDeletes) {
  const std::string ct = ReadFile(std::string(kSamples) + "CT_small.dcm");
  ASSERT_OK_AND_ASSIGN(Attr dir,
                       ReleasedAttr(archive_->MakeDir(kRootInode, "scans", 0755, caller_)));
  Save(dir.ino, "ct.dcm", ct);
  Save(kRootInode, "notes.txt", "not DICOM");
  ASSERT_OK_AND_ASSIGN(auto patients, archive_->ListPatients());
  ASSERT_EQ(patients.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto studies, archive_->ListStudies(patients[0]));
  ASSERT_EQ(studies.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto files, archive_->ListStudyFiles(patients[0], studies[0]));
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].path, "scans/ct.dcm");

  ASSERT_OK(archive_->Rename(kRootInode, "scans", kRootInode, "archive2026", 0, caller_));
  ASSERT_OK_AND_ASSIGN(files, archive_->ListStudyFiles(patients[0], studies[0]));
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].path, "archive2026/ct.dcm");

  ASSERT_OK(archive_->Unlink(dir.ino, "ct.dcm", caller_));
  ASSERT_OK_AND_ASSIGN(patients, archive_->ListPatients());
  EXPECT_TRUE(patients.empty());
}

}  // namespace
}  // namespace medvfs::store
