// DiffDicomTags (store/dicom/diff_internal.h) on pydicom's sample files changed with DCMTK's own
// tools (dcmodify, dcmconv, dcmcjpls), and on hand-made files.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store/dicom/diff_internal.h"
#include "store/diff.h"
#include "tests/store/test_util.h"

namespace medvfs::store::diff_internal {
namespace {

using test_util::ReadFile;
using test_util::ShellQuote;

const std::string kSamples = test_util::kPydicomSamples.string() + "/";

// Runs a shell command; true when it succeeded.
bool RunQuietly(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

bool HaveTool(const char* tool) { return RunQuietly(std::string("command -v ") + tool); }

// One line per difference, for failure messages.
std::string Describe(const std::vector<TagDifference>& differences) {
  std::string out;
  for (const TagDifference& d : differences) {
    out += TagChangeName(d.change) + " " + d.keyword_path + " " + d.tag_path + " " + d.vr + " [" +
           d.old_value + "] -> [" + d.new_value + "]\n";
  }
  return out;
}

// The differences outside the File Meta Information (which DCMTK's tools rewrite).
std::vector<TagDifference> DataSetOnly(const std::vector<TagDifference>& differences) {
  std::vector<TagDifference> out;
  for (const TagDifference& d : differences) {
    if (!d.tag_path.starts_with("(0002,")) out.push_back(d);
  }
  return out;
}

const TagDifference* FindPath(const std::vector<TagDifference>& differences,
                              const std::string& tag_path) {
  for (const TagDifference& d : differences) {
    if (d.tag_path == tag_path) return &d;
  }
  return nullptr;
}

class DiffTagsTest : public test_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!std::filesystem::is_directory(kSamples)) {
      GTEST_FAIL() << "python3-pydicom's sample files are not installed";
    }
    if (!HaveTool("dcmodify")) GTEST_FAIL() << "dcmodify (package dcmtk) is not installed";
  }

  static std::string Sample(const char* name) {
    return ReadFile(std::filesystem::path(kSamples) / name);
  }

  // The sample as DCMTK's tools write it, unchanged otherwise: they rewrite the File Meta
  // Information (ImplementationClassUID, ImplementationVersionName, ...), so a changed copy is
  // compared with this.
  std::string Baseline(const char* sample) { return Converted(sample, "dcmconv", ""); }

  // A copy of the sample changed by `dcmodify -nb <arguments>`, as bytes.
  std::string Modified(const char* sample, const std::string& arguments) {
    const std::filesystem::path copy = dir() / ("modified" + std::to_string(++copies_) + ".dcm");
    std::filesystem::copy_file(std::filesystem::path(kSamples) / sample, copy);
    EXPECT_TRUE(RunQuietly("dcmodify -nb -q " + arguments + " " + ShellQuote(copy.string())))
        << "dcmodify " << arguments;
    return ReadFile(copy);
  }

  // The sample converted by `tool <arguments> in out`, as bytes.
  std::string Converted(const char* sample, const std::string& tool, const std::string& arguments) {
    const std::filesystem::path out = dir() / ("converted" + std::to_string(++copies_) + ".dcm");
    EXPECT_TRUE(RunQuietly(tool + " " + arguments + " " +
                           ShellQuote((std::filesystem::path(kSamples) / sample).string()) + " " +
                           ShellQuote(out.string())))
        << tool << " " << arguments;
    return ReadFile(out);
  }

 private:
  int copies_ = 0;
};

TEST_F(DiffTagsTest, IdenticalFilesHaveNoDifferences) {
  for (const char* name : {"MR_small.dcm", "CT_small.dcm", "rtplan.dcm", "image_dfl.dcm",
                           "MR_small_jpeg_ls_lossless.dcm", "nested_priv_SQ.dcm"}) {
    const std::string bytes = Sample(name);
    ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(bytes, bytes));
    EXPECT_TRUE(differences.empty()) << name << "\n" << Describe(differences);
  }
}

TEST_F(DiffTagsTest, ChangedPatientName) {
  const std::string a = Baseline("MR_small.dcm");
  const std::string b = Modified("MR_small.dcm", "-m 'PatientName=Doe^Jane'");
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  const TagDifference& d = differences[0];
  EXPECT_EQ(d.change, TagChange::kChanged);
  EXPECT_EQ(d.keyword_path, "PatientName");
  EXPECT_EQ(d.tag_path, "(0010,0010)");
  EXPECT_EQ(d.vr, "PN");
  EXPECT_EQ(d.old_value, "CompressedSamples^MR1");
  EXPECT_EQ(d.new_value, "Doe^Jane");

  // And the other way round.
  ASSERT_OK_AND_ASSIGN(differences, DiffDicomTags(b, a));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  EXPECT_EQ(differences[0].old_value, "Doe^Jane");
  EXPECT_EQ(differences[0].new_value, "CompressedSamples^MR1");
}

TEST_F(DiffTagsTest, ChangedElementInsideASequence) {
  const std::string a = Baseline("rtplan.dcm");
  const std::string b = Modified("rtplan.dcm", "-m '(300C,0002)[0].(0008,1155)=1.2.3.4'");
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  const TagDifference& d = differences[0];
  EXPECT_EQ(d.change, TagChange::kChanged);
  EXPECT_EQ(d.keyword_path, "ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID");
  EXPECT_EQ(d.tag_path, "(300C,0002)[0].(0008,1155)");
  EXPECT_EQ(d.vr, "UI");
  EXPECT_EQ(d.old_value, "1.9.999.999.99.9.9999.9999.20030903145128");
  EXPECT_EQ(d.new_value, "1.2.3.4");

  // Two levels down: BeamSequence[0].ControlPointSequence[1].ReferencedDoseReferenceSequence[0]
  // .ReferencedDoseReferenceNumber.
  const std::string c =
      Modified("rtplan.dcm", "-m '(300A,00B0)[0].(300A,0111)[1].(300C,0050)[0].(300C,0051)=7'");
  ASSERT_OK_AND_ASSIGN(differences, DiffDicomTags(a, c));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  EXPECT_EQ(differences[0].keyword_path,
            "BeamSequence[0].ControlPointSequence[1].ReferencedDoseReferenceSequence[0]."
            "ReferencedDoseReferenceNumber");
  EXPECT_EQ(differences[0].tag_path, "(300A,00B0)[0].(300A,0111)[1].(300C,0050)[0].(300C,0051)");
  EXPECT_EQ(differences[0].vr, "IS");
  EXPECT_EQ(differences[0].new_value, "7");
}

TEST_F(DiffTagsTest, AddedPrivateElementsShowTheirTags) {
  const std::string a = Baseline("MR_small.dcm");
  // A private creator DCMTK's private dictionary knows (its element is an LO), and an unknown
  // one (its element is UN, given in hex).
  const std::string b =
      Modified("MR_small.dcm",
               "-i '(0009,0010)=GEMS_IDEN_01' -i '(0009,1001)=hello' -i '(0011,0010)=ACME' "
               "-i '(0011,1001)=68\\65\\6c\\6c\\6f\\00'");
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
  ASSERT_EQ(differences.size(), 4u) << Describe(differences);
  const struct {
    const char* tag;
    const char* vr;
    const char* value;
  } expected[] = {{"(0009,0010)", "LO", "GEMS_IDEN_01"},
                  {"(0009,1001)", "LO", "hello"},
                  {"(0011,0010)", "LO", "ACME"},
                  {"(0011,1001)", "UN", "68\\65\\6c\\6c\\6f\\00"}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(differences[i].change, TagChange::kAdded) << i;
    EXPECT_EQ(differences[i].keyword_path, expected[i].tag);
    EXPECT_EQ(differences[i].tag_path, expected[i].tag);
    EXPECT_EQ(differences[i].vr, expected[i].vr);
    EXPECT_EQ(differences[i].old_value, "");
    EXPECT_EQ(differences[i].new_value, expected[i].value);
  }

  // Removed, the other way round.
  ASSERT_OK_AND_ASSIGN(differences, DiffDicomTags(b, a));
  ASSERT_EQ(differences.size(), 4u) << Describe(differences);
  EXPECT_EQ(differences[1].change, TagChange::kRemoved);
  EXPECT_EQ(differences[1].vr, "LO");
  EXPECT_EQ(differences[1].old_value, "hello");
  EXPECT_EQ(differences[1].new_value, "");
}

TEST_F(DiffTagsTest, RemovedElement) {
  const std::string a = Baseline("CT_small.dcm");
  const std::string b = Modified("CT_small.dcm", "-e '(0010,0040)'");
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  EXPECT_EQ(differences[0].change, TagChange::kRemoved);
  EXPECT_EQ(differences[0].keyword_path, "PatientSex");
  EXPECT_EQ(differences[0].tag_path, "(0010,0040)");
  EXPECT_EQ(differences[0].vr, "CS");
  EXPECT_EQ(differences[0].old_value, "O");
  EXPECT_EQ(differences[0].new_value, "");
}

TEST_F(DiffTagsTest, RemovedSequenceItemListsItsElements) {
  // CT_small's OtherPatientIDsSequence has two items: ABCD1234 and 1234ABCD.
  const std::string a = Baseline("CT_small.dcm");
  const std::string b = Modified("CT_small.dcm", "-e '(0010,1002)[0]'");
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
  // The item count; item 0 now holds what item 1 held; item 1's elements are gone.
  ASSERT_EQ(differences.size(), 4u) << Describe(differences);
  EXPECT_EQ(differences[0].change, TagChange::kChanged);
  EXPECT_EQ(differences[0].keyword_path, "OtherPatientIDsSequence");
  EXPECT_EQ(differences[0].vr, "SQ");
  EXPECT_EQ(differences[0].old_value, "(Sequence with 2 items)");
  EXPECT_EQ(differences[0].new_value, "(Sequence with 1 items)");
  EXPECT_EQ(differences[1].change, TagChange::kChanged);
  EXPECT_EQ(differences[1].keyword_path, "OtherPatientIDsSequence[0].PatientID");
  EXPECT_EQ(differences[1].old_value, "ABCD1234");
  EXPECT_EQ(differences[1].new_value, "1234ABCD");
  EXPECT_EQ(differences[2].change, TagChange::kRemoved);
  EXPECT_EQ(differences[2].keyword_path, "OtherPatientIDsSequence[1].PatientID");
  EXPECT_EQ(differences[2].tag_path, "(0010,1002)[1].(0010,0020)");
  EXPECT_EQ(differences[2].old_value, "1234ABCD");
  EXPECT_EQ(differences[3].change, TagChange::kRemoved);
  EXPECT_EQ(differences[3].keyword_path, "OtherPatientIDsSequence[1].TypeOfPatientID");
  EXPECT_EQ(differences[3].vr, "CS");
  EXPECT_EQ(differences[3].old_value, "TEXT");
}

TEST_F(DiffTagsTest, AddedSequenceItemListsItsElements) {
  const std::string a = Baseline("CT_small.dcm");
  const std::string b = Modified("CT_small.dcm", "-i '(0010,1002)[2].(0010,0020)=XYZ'");
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
  ASSERT_EQ(differences.size(), 2u) << Describe(differences);
  EXPECT_EQ(differences[0].change, TagChange::kChanged);
  EXPECT_EQ(differences[0].tag_path, "(0010,1002)");
  EXPECT_EQ(differences[0].new_value, "(Sequence with 3 items)");
  EXPECT_EQ(differences[1].change, TagChange::kAdded);
  EXPECT_EQ(differences[1].keyword_path, "OtherPatientIDsSequence[2].PatientID");
  EXPECT_EQ(differences[1].tag_path, "(0010,1002)[2].(0010,0020)");
  EXPECT_EQ(differences[1].vr, "LO");
  EXPECT_EQ(differences[1].new_value, "XYZ");
}

TEST_F(DiffTagsTest, RemovedSequenceListsEverythingInIt) {
  const std::string a = Baseline("rtplan.dcm");
  const std::string b = Modified("rtplan.dcm", "-e '(300A,0070)'");  // FractionGroupSequence
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
  ASSERT_GE(differences.size(), 3u) << Describe(differences);
  EXPECT_EQ(differences[0].change, TagChange::kRemoved);
  EXPECT_EQ(differences[0].keyword_path, "FractionGroupSequence");
  EXPECT_EQ(differences[0].vr, "SQ");
  EXPECT_EQ(differences[0].old_value, "(Sequence with 1 items)");
  for (const TagDifference& d : differences) {
    EXPECT_EQ(d.change, TagChange::kRemoved) << d.tag_path;
    EXPECT_TRUE(d.tag_path.starts_with("(300A,0070)")) << d.tag_path;
    EXPECT_EQ(d.new_value, "");
  }
  // A nested sequence, and an element inside it.
  const TagDifference* nested = FindPath(differences, "(300A,0070)[0].(300C,0004)");
  ASSERT_NE(nested, nullptr) << Describe(differences);
  EXPECT_EQ(nested->keyword_path, "FractionGroupSequence[0].ReferencedBeamSequence");
  EXPECT_NE(FindPath(differences, "(300A,0070)[0].(300C,0004)[0].(300C,0006)"), nullptr)
      << Describe(differences);
  // Ordered by tag path.
  for (size_t i = 1; i < differences.size(); ++i) {
    EXPECT_LT(differences[i - 1].tag_path, differences[i].tag_path);
  }
}

TEST_F(DiffTagsTest, RecompressionChangesTheTransferSyntaxOnly) {
  if (!HaveTool("dcmcjpls")) GTEST_FAIL() << "dcmcjpls (package dcmtk) is not installed";
  const std::string a = Sample("MR_small.dcm");
  const std::string b = Converted("MR_small.dcm", "dcmcjpls", "");
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
  const TagDifference* syntax = FindPath(differences, "(0002,0010)");
  ASSERT_NE(syntax, nullptr) << Describe(differences);
  EXPECT_EQ(syntax->change, TagChange::kChanged);
  EXPECT_EQ(syntax->keyword_path, "TransferSyntaxUID");
  EXPECT_EQ(syntax->vr, "UI");
  EXPECT_EQ(syntax->old_value, "1.2.840.10008.1.2.1");
  EXPECT_EQ(syntax->new_value, "1.2.840.10008.1.2.4.80");
  EXPECT_EQ(FindPath(differences, "(7FE0,0010)"), nullptr) << Describe(differences);
  for (const TagDifference& d : differences) {
    EXPECT_FALSE(d.tag_path.starts_with("(7FE0,")) << Describe(differences);
  }
}

TEST_F(DiffTagsTest, ByteOrderDoesNotChangeValues) {
  if (!HaveTool("dcmconv")) GTEST_FAIL() << "dcmconv (package dcmtk) is not installed";
  // Big endian and implicit VR: numbers and strings read the same; only the meta header
  // says how they are stored.
  const std::string a = Sample("MR_small.dcm");
  for (const char* option : {"+tb", "+ti"}) {
    const std::string b = Converted("MR_small.dcm", "dcmconv", option);
    ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
    EXPECT_TRUE(DataSetOnly(differences).empty()) << option << "\n" << Describe(differences);
    EXPECT_NE(FindPath(differences, "(0002,0010)"), nullptr) << option;
  }
}

TEST_F(DiffTagsTest, BulkBinaryValuesDifferingWithTheSameText) {
  // A 2 KiB private OB shows as "(2048 bytes)" on both sides, yet one byte differs.
  const std::filesystem::path data_a = dir() / "a.bin";
  const std::filesystem::path data_b = dir() / "b.bin";
  std::string bytes(2048, 'x');
  std::ofstream(data_a, std::ios::binary) << bytes;
  bytes[1000] = 'y';
  std::ofstream(data_b, std::ios::binary) << bytes;
  const std::string a =
      Modified("MR_small.dcm", "-i '(0011,0010)=ACME' -if '(0011,1010)=" + data_a.string() + "'");
  const std::string b =
      Modified("MR_small.dcm", "-i '(0011,0010)=ACME' -if '(0011,1010)=" + data_b.string() + "'");
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  EXPECT_EQ(differences[0].change, TagChange::kChanged);
  EXPECT_EQ(differences[0].keyword_path, "(0011,1010)");
  EXPECT_EQ(differences[0].old_value, "(2048 bytes)");
  EXPECT_EQ(differences[0].new_value, "(2048 bytes)");
  ASSERT_OK_AND_ASSIGN(differences, DiffDicomTags(a, a));
  EXPECT_TRUE(differences.empty()) << Describe(differences);
}

TEST_F(DiffTagsTest, Latin1ValuesAreShownInUtf8) {
  // CT_small declares ISO_IR 100 (Latin-1).
  const std::string a = Baseline("CT_small.dcm");
  const std::string b = Modified("CT_small.dcm", "-m '(0010,0010)=M\xFCller^J\xFCrgen'");
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, b));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  EXPECT_EQ(differences[0].keyword_path, "PatientName");
  EXPECT_EQ(differences[0].new_value, "M\xC3\xBCller^J\xC3\xBCrgen");

  // The same name declared in UTF-8: the character set differs, the name does not.
  const std::string c = Modified(
      "CT_small.dcm", "-m '(0008,0005)=ISO_IR 192' -m '(0010,0010)=M\xC3\xBCller^J\xC3\xBCrgen'");
  ASSERT_OK_AND_ASSIGN(differences, DiffDicomTags(b, c));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  EXPECT_EQ(differences[0].keyword_path, "SpecificCharacterSet");
  EXPECT_EQ(differences[0].old_value, "ISO_IR 100");
  EXPECT_EQ(differences[0].new_value, "ISO_IR 192");
}

TEST_F(DiffTagsTest, UnreadableSidesAreNamed) {
  const std::string good = Sample("MR_small.dcm");
  const std::string garbage = std::string(128, '\0') + "DICM" + std::string(300, '\x7f');
  const std::string truncated = good.substr(0, good.size() / 2);  // inside Pixel Data
  const std::string header_cut = good.substr(0, 700);             // inside the data set
  for (const std::string& bad : {std::string("not DICOM at all"), garbage, truncated, header_cut}) {
    auto result = DiffDicomTags(bad, good);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), Code::kInvalid);
    EXPECT_TRUE(result.status().message().starts_with("A is not a readable DICOM file"))
        << result.status().ToString();
    result = DiffDicomTags(good, bad);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), Code::kInvalid);
    EXPECT_TRUE(result.status().message().starts_with("B is not a readable DICOM file"))
        << result.status().ToString();
    EXPECT_EQ(result.status().message().find("CompressedSamples"), std::string::npos);
  }
}

TEST_F(DiffTagsTest, ComparesFromManyThreadsAtOnce) {
  const std::string a = Baseline("CT_small.dcm");
  const std::string b = Modified("CT_small.dcm", "-m 'PatientName=Doe^Jane'");
  std::vector<int> results(4, -1);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      int count = 0;
      for (int i = 0; i < 10; ++i) {
        auto differences = DiffDicomTags(a, b);
        count = differences.ok() ? static_cast<int>(differences->size()) : -1;
        if (count != 1) break;
      }
      results[t] = count;
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int count : results) EXPECT_EQ(count, 1);
}

// ---- Hand-made files ------------------------------------------------------------------------

void AppendU16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xFF));
  out->push_back(static_cast<char>(v >> 8));
}
void AppendU32(std::string* out, uint32_t v) {
  AppendU16(out, static_cast<uint16_t>(v & 0xFFFF));
  AppendU16(out, static_cast<uint16_t>(v >> 16));
}
void AppendTag(std::string* out, uint16_t group, uint16_t element) {
  AppendU16(out, group);
  AppendU16(out, element);
}
// An explicit VR little endian element with a 2-byte length.
void AppendShort(std::string* out, uint16_t group, uint16_t element, const char* vr,
                 std::string value) {
  if (value.size() % 2) value += (std::string_view(vr) == "UI" ? '\0' : ' ');
  AppendTag(out, group, element);
  out->append(vr, 2);
  AppendU16(out, static_cast<uint16_t>(value.size()));
  *out += value;
}
// An element of undefined length (a sequence, encapsulated pixel data) or an item.
void AppendOpen(std::string* out, uint16_t group, uint16_t element, const char* vr) {
  AppendTag(out, group, element);
  if (vr != nullptr) {
    out->append(vr, 2);
    AppendU16(out, 0);
  }
  AppendU32(out, 0xFFFFFFFF);
}
void AppendItem(std::string* out) { AppendOpen(out, 0xFFFE, 0xE000, nullptr); }
void AppendItemEnd(std::string* out) {
  AppendTag(out, 0xFFFE, 0xE00D);
  AppendU32(out, 0);
}
void AppendSequenceEnd(std::string* out) {
  AppendTag(out, 0xFFFE, 0xE0DD);
  AppendU32(out, 0);
}
// A Part 10 file: preamble, meta header with the transfer syntax, then `dataset`.
std::string Part10(const std::string& transfer_syntax, const std::string& dataset) {
  std::string file(128, '\0');
  file += "DICM";
  AppendShort(&file, 0x0002, 0x0010, "UI", transfer_syntax);
  return file + dataset;
}
constexpr char kExplicitLittle[] = "1.2.840.10008.1.2.1";
constexpr char kJpegBaseline[] = "1.2.840.10008.1.2.4.50";

// ContentSequence nested `depth` deep, a PatientID at the bottom.
std::string DeepSequences(int depth, const std::string& patient_id) {
  std::string dataset;
  for (int i = 0; i < depth; ++i) {
    AppendOpen(&dataset, 0x0040, 0xA730, "SQ");
    AppendItem(&dataset);
  }
  AppendShort(&dataset, 0x0010, 0x0020, "LO", patient_id);
  for (int i = 0; i < depth; ++i) {
    AppendItemEnd(&dataset);
    AppendSequenceEnd(&dataset);
  }
  return Part10(kExplicitLittle, dataset);
}

TEST(DiffTagsHandMadeTest, DeepNesting) {
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences,
                       DiffDicomTags(DeepSequences(20, "ONE"), DeepSequences(20, "TWO")));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  std::string keywords, tags;
  for (int i = 0; i < 20; ++i) {
    keywords += "ContentSequence[0].";
    tags += "(0040,A730)[0].";
  }
  EXPECT_EQ(differences[0].keyword_path, keywords + "PatientID");
  EXPECT_EQ(differences[0].tag_path, tags + "(0010,0020)");

  const std::string deep = DeepSequences(200, "ONE");
  auto result = DiffDicomTags(DeepSequences(20, "ONE"), deep);
  EXPECT_EQ(result.status().code(), Code::kInvalid);
  EXPECT_TRUE(result.status().message().starts_with("B is not a readable DICOM file"))
      << result.status().ToString();
}

// Patient ID, name and image type with the given values.
std::string PaddedFile(const std::string& id, const std::string& name, const std::string& type) {
  std::string dataset;
  AppendShort(&dataset, 0x0008, 0x0008, "CS", type);
  AppendShort(&dataset, 0x0010, 0x0010, "PN", name);
  AppendShort(&dataset, 0x0010, 0x0020, "LO", id);
  return Part10(kExplicitLittle, dataset);
}

TEST(DiffTagsHandMadeTest, PaddingIsNotADifference) {
  const std::string a = PaddedFile("ABC", "Doe^Jane", "ORIGINAL\\PRIMARY");
  ASSERT_OK_AND_ASSIGN(
      std::vector<TagDifference> differences,
      DiffDicomTags(a, PaddedFile("ABC   ", "Doe^Jane    ", "ORIGINAL  \\PRIMARY ")));
  EXPECT_TRUE(differences.empty()) << Describe(differences);
  ASSERT_OK_AND_ASSIGN(differences,
                       DiffDicomTags(a, PaddedFile("ABD ", "Doe^Jane", "ORIGINAL\\PRIMARY")));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  EXPECT_EQ(differences[0].keyword_path, "PatientID");
  EXPECT_EQ(differences[0].old_value, "ABC");
  EXPECT_EQ(differences[0].new_value, "ABD");
}

// An icon (IconImageSequence) with encapsulated pixel data of one fragment.
std::string IconFile(const std::string& fragment) {
  std::string dataset;
  AppendShort(&dataset, 0x0010, 0x0020, "LO", "ICON");
  AppendOpen(&dataset, 0x0088, 0x0200, "SQ");
  AppendItem(&dataset);
  AppendShort(&dataset, 0x0028, 0x0002, "US", std::string("\x01\x00", 2));
  AppendOpen(&dataset, 0x7FE0, 0x0010, "OB");
  AppendTag(&dataset, 0xFFFE, 0xE000);  // the empty basic offset table
  AppendU32(&dataset, 0);
  AppendTag(&dataset, 0xFFFE, 0xE000);
  AppendU32(&dataset, static_cast<uint32_t>(fragment.size()));
  dataset += fragment;
  AppendSequenceEnd(&dataset);
  AppendItemEnd(&dataset);
  AppendSequenceEnd(&dataset);
  return Part10(kJpegBaseline, dataset);
}

TEST(DiffTagsHandMadeTest, PixelDataInsideASequenceIsCompared) {
  const std::string a = IconFile("abcd");
  ASSERT_OK_AND_ASSIGN(std::vector<TagDifference> differences, DiffDicomTags(a, a));
  EXPECT_TRUE(differences.empty()) << Describe(differences);
  ASSERT_OK_AND_ASSIGN(differences, DiffDicomTags(a, IconFile("abce")));
  ASSERT_EQ(differences.size(), 1u) << Describe(differences);
  EXPECT_EQ(differences[0].change, TagChange::kChanged);
  EXPECT_EQ(differences[0].keyword_path, "IconImageSequence[0].PixelData");
  EXPECT_EQ(differences[0].tag_path, "(0088,0200)[0].(7FE0,0010)");
  EXPECT_EQ(differences[0].vr, "OB");
  EXPECT_EQ(differences[0].old_value, "(4 bytes)");  // the fragments' bytes
  EXPECT_EQ(differences[0].new_value, "(4 bytes)");
}

}  // namespace
}  // namespace medvfs::store::diff_internal
