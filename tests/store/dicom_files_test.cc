// store/dicom_files.h: the Part 10 header of received data sets, path templates, tags.tsv.
#include "store/dicom_files.h"

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

// --- Part 10 ------------------------------------------------------------------------------------

// The hand-written File Meta Information `medvfs receive` wrote before DCMTK wrote it (tools/,
// until issue 18): the oracle the DCMTK writer must equal byte for byte, so that files received
// before and after the change have the same header.
void PutMetaElement(std::string* out, uint16_t element, std::string_view vr, std::string value) {
  if (value.size() % 2 != 0) value.push_back(vr == "UI" ? '\0' : ' ');
  auto put16 = [out](uint32_t v) {
    out->push_back(static_cast<char>(v & 0xff));
    out->push_back(static_cast<char>((v >> 8) & 0xff));
  };
  put16(0x0002);
  put16(element);
  out->append(vr);
  if (vr == "OB") {
    put16(0);
    put16(static_cast<uint32_t>(value.size()) & 0xffff);
    put16(static_cast<uint32_t>(value.size()) >> 16);
  } else {
    put16(static_cast<uint32_t>(value.size()));
  }
  out->append(value);
}

std::string HandWrittenHeader(const Part10Meta& meta, const std::string& class_uid) {
  std::string group;
  PutMetaElement(&group, 0x0001, "OB", std::string("\0\1", 2));
  PutMetaElement(&group, 0x0002, "UI", meta.sop_class_uid);
  PutMetaElement(&group, 0x0003, "UI", meta.sop_instance_uid);
  PutMetaElement(&group, 0x0010, "UI", meta.transfer_syntax_uid);
  PutMetaElement(&group, 0x0012, "UI", class_uid);
  PutMetaElement(&group, 0x0013, "SH", meta.implementation_version.substr(0, 16));
  if (!meta.source_aet.empty()) PutMetaElement(&group, 0x0016, "AE", meta.source_aet);
  std::string out(128, '\0');
  out += "DICM";
  const auto length = static_cast<uint32_t>(group.size());
  std::string length_le;
  for (int shift = 0; shift < 32; shift += 8) {
    length_le.push_back(static_cast<char>((length >> shift) & 0xff));
  }
  PutMetaElement(&out, 0x0000, "UL", length_le);
  return out + group;
}

// A UID of `length` characters (digits and dots, no leading zero in a component).
std::string RandomUid(std::mt19937& rng, size_t length) {
  std::string uid = "1";
  while (uid.size() < length) {
    if (uid.size() + 2 <= length && rng() % 4 == 0 && uid.back() != '.') {
      uid += '.';
      uid += static_cast<char>('1' + rng() % 9);
    } else {
      uid += static_cast<char>('0' + rng() % 10);
    }
  }
  return uid;
}

// The data set of CT_small.dcm: the bytes after its own File Meta Information.
std::string SampleDataSet() {
  const std::string file = test_util::ReadFile(test_util::kPydicomSamples / "CT_small.dcm");
  if (file.size() < 144) return "";
  uint32_t group_length = 0;
  for (int i = 3; i >= 0; --i) {
    group_length = (group_length << 8) | static_cast<uint8_t>(file[140 + static_cast<size_t>(i)]);
  }
  return file.substr(144 + group_length);
}

TEST(Part10HeaderTest, DcmtkWritesTheHeaderTheReceiverWroteByHand) {
  // The Implementation Class UID is DCMTK's (OFFIS_IMPLEMENTATION_CLASS_UID, as before):
  // read it from a written header, so that the comparison holds for any DCMTK version.
  const std::string dataset = SampleDataSet();
  ASSERT_FALSE(dataset.empty()) << "python3-pydicom's sample files are not installed";
  ASSERT_OK_AND_ASSIGN(std::string sample_header,
                       Part10Header({"1.2.840.10008.5.1.4.1.1.2", "1.2.3", "1.2.840.10008.1.2.1",
                                     "MEDVFS_0", "AET"}));
  ASSERT_OK_AND_ASSIGN(DicomTags sample, ParseDicom(sample_header + dataset));
  ASSERT_NE(sample.Find("ImplementationClassUID"), nullptr);
  const std::string class_uid = sample.Find("ImplementationClassUID")->value;
  EXPECT_TRUE(class_uid.starts_with("1.2.276.0.7230010.3.")) << class_uid;  // OFFIS's root
  std::mt19937 rng(18);
  for (int i = 0; i < 300; ++i) {
    Part10Meta meta;
    meta.sop_class_uid = RandomUid(rng, 1 + rng() % 64);
    meta.sop_instance_uid = RandomUid(rng, 1 + rng() % 64);
    meta.transfer_syntax_uid = RandomUid(rng, 1 + rng() % 64);
    meta.implementation_version = "MEDVFS_" + std::string(rng() % 14, '1');
    const size_t aet_length = rng() % 17;
    for (size_t c = 0; c < aet_length; ++c) {
      meta.source_aet += static_cast<char>('A' + rng() % 26);
    }
    ASSERT_OK_AND_ASSIGN(std::string header, Part10Header(meta));
    ASSERT_EQ(header, HandWrittenHeader(meta, class_uid))
        << meta.sop_class_uid << " " << meta.sop_instance_uid << " " << meta.transfer_syntax_uid
        << " [" << meta.implementation_version << "] [" << meta.source_aet << "]";
  }
}

TEST(Part10HeaderTest, HeaderBeforeADataSetMakesAFileTheParserReads) {
  const std::string file = test_util::ReadFile(test_util::kPydicomSamples / "CT_small.dcm");
  ASSERT_GT(file.size(), 144u) << "python3-pydicom's sample files are not installed";
  ASSERT_OK_AND_ASSIGN(DicomTags original, ParseDicom(file, file.size()));
  const std::string dataset = SampleDataSet();
  Part10Meta meta;
  meta.sop_class_uid = original.Find("SOPClassUID")->value;
  meta.sop_instance_uid = original.Find("SOPInstanceUID")->value;
  meta.transfer_syntax_uid = original.Find("TransferSyntaxUID")->value;
  meta.implementation_version = "MEDVFS_TEST_VERSION_TOO_LONG";
  meta.source_aet = "MODALITY1";
  ASSERT_OK_AND_ASSIGN(std::string header, Part10Header(meta));
  const std::string received = header + dataset;
  ASSERT_OK_AND_ASSIGN(DicomTags tags, ParseDicom(received, received.size()));
  EXPECT_EQ(tags.Find("MediaStorageSOPClassUID")->value, meta.sop_class_uid);
  EXPECT_EQ(tags.Find("MediaStorageSOPInstanceUID")->value, meta.sop_instance_uid);
  EXPECT_EQ(tags.Find("TransferSyntaxUID")->value, meta.transfer_syntax_uid);
  EXPECT_EQ(tags.Find("ImplementationVersionName")->value, "MEDVFS_TEST_VERS");
  EXPECT_EQ(tags.Find("SourceApplicationEntityTitle")->value, "MODALITY1");
  EXPECT_EQ(tags.json, original.json);  // the data set is the same
}

// --- Path templates -----------------------------------------------------------------------------

TEST(PathTemplateTest, ExpandsKeywordsIntoSafeComponents) {
  ASSERT_OK_AND_ASSIGN(PathTemplate parsed, PathTemplate::Parse(kDefaultPathTemplate));
  DicomTags tags;
  tags.elements = {{0x0008, 0x0018, "SOPInstanceUID", "UI", "1.2.3"},
                   {0x0008, 0x0020, "StudyDate", "DA", "20261206"},
                   {0x0010, 0x0020, "PatientID", "LO", " ../a/b\\c\x01\xc3\xa9 "},
                   {0x0020, 0x000d, "StudyInstanceUID", "UI", "1.2"},
                   {0x0020, 0x0011, "SeriesNumber", "IS", ""}};
  EXPECT_EQ(parsed.Expand(tags), (std::vector<std::string>{"_._a_b_c___", "20261206_1.2",
                                                           "UNKNOWN_UNKNOWN", "1.2.3.dcm"}));
  ASSERT_OK_AND_ASSIGN(PathTemplate literal, PathTemplate::Parse("in/{Modality}x"));
  tags.elements.push_back({0x0008, 0x0060, "Modality", "CS", std::string(300, 'M')});
  std::vector<std::string> long_one = literal.Expand(tags);
  ASSERT_EQ(long_one.size(), 2u);
  EXPECT_EQ(long_one[0], "in");
  EXPECT_EQ(long_one[1], std::string(255, 'M'));
}

TEST(PathTemplateTest, RefusesWhatIsNoSafeTemplate) {
  for (const char* bad : {"", "a//b", "a/", "/a", "../{PatientID}", ".hidden", "{PatientID",
                          "{NoSuchKeyword}", "{patientid}", "{}", "a*b", "a\\b"}) {
    auto parsed = PathTemplate::Parse(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), Code::kInvalid) << bad;
    }
  }
  EXPECT_OK(PathTemplate::Parse("{PatientID}/{Modality}_x-y+z=1^2 3.dcm"));
}

TEST(PathTemplateTest, SanitizePathValue) {
  EXPECT_EQ(SanitizePathValue(""), "UNKNOWN");
  EXPECT_EQ(SanitizePathValue("   "), "UNKNOWN");
  EXPECT_EQ(SanitizePathValue("  Doe^Jane  "), "Doe^Jane");
  EXPECT_EQ(SanitizePathValue(".."), "_.");
  EXPECT_EQ(SanitizePathValue(std::string("a\0b/c", 5)), "a_b_c");
}

// --- tags.tsv -----------------------------------------------------------------------------------

void ExpectSameElements(const std::vector<DicomElement>& got,
                        const std::vector<DicomElement>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].group, want[i].group) << i;
    EXPECT_EQ(got[i].element, want[i].element) << i;
    EXPECT_EQ(got[i].vr, want[i].vr) << i;
    EXPECT_EQ(got[i].keyword, want[i].keyword) << i;
    EXPECT_EQ(got[i].value, want[i].value) << i;
  }
}

TEST(TagsTsvTest, Format) {
  EXPECT_EQ(FormatTagsTsv({{0x0002, 0x0010, "TransferSyntaxUID", "UI", "1.2.840.10008.1.2"},
                           {0x0008, 0x0008, "ImageType", "CS", "ORIGINAL\\PRIMARY"},
                           {0x0009, 0x1001, "", "LO", "a\tb\nc\r"},
                           {0x7fe0, 0x0010, "PixelData", "OW", "(32768 bytes)"}}),
            "tag\tvr\tkeyword\tvalue\n"
            "(0002,0010)\tUI\tTransferSyntaxUID\t1.2.840.10008.1.2\n"
            "(0008,0008)\tCS\tImageType\tORIGINAL\\\\PRIMARY\n"
            "(0009,1001)\tLO\t\ta\\tb\\nc\r\n"
            "(7fe0,0010)\tOW\tPixelData\t(32768 bytes)\n");
  EXPECT_EQ(FormatTagsTsv({}), kTagsTsvHeader);
}

// Model: any elements, with any bytes in their values, read back as they were.
TEST(TagsTsvTest, RandomElementsReadBackExactly) {
  std::mt19937 rng(1806);
  const std::string alphabet = std::string("ab\\\t\n\r\x01 ^=\xc3\xa9", 12) + std::string(1, '\0');
  for (int round = 0; round < 200; ++round) {
    std::vector<DicomElement> elements(rng() % 20);
    for (DicomElement& e : elements) {
      e.group = static_cast<uint16_t>(rng());
      e.element = static_cast<uint16_t>(rng());
      e.vr = rng() % 8 == 0 ? "" : "LO";
      e.keyword = rng() % 3 == 0 ? "" : "PatientID";
      const size_t length = rng() % 12;
      for (size_t i = 0; i < length; ++i) e.value += alphabet[rng() % alphabet.size()];
    }
    ASSERT_OK_AND_ASSIGN(std::vector<DicomElement> parsed, ParseTagsTsv(FormatTagsTsv(elements)));
    ExpectSameElements(parsed, elements);
  }
}

// Differential over every file of python3-pydicom the store parses: the table is the store's
// own list of elements, every field of every element, File Meta Information, private elements
// and values the JSON model cannot hold included.
TEST(TagsTsvTest, EveryPydicomFileReadsBackAsTheStoreParsedIt) {
  ASSERT_TRUE(std::filesystem::is_directory(test_util::kPydicomSamples))
      << "python3-pydicom's sample files are not installed (tools/install-deps.sh)";
  int compared = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(test_util::kPydicomSamples)) {
    if (!entry.is_regular_file()) continue;
    const std::string bytes = test_util::ReadFile(entry.path());
    auto tags = ParseDicom(bytes, bytes.size());
    if (!tags.ok()) continue;
    SCOPED_TRACE(entry.path().filename().string());
    ++compared;
    ASSERT_OK_AND_ASSIGN(std::vector<DicomElement> parsed,
                         ParseTagsTsv(FormatTagsTsv(tags->elements)));
    ExpectSameElements(parsed, tags->elements);
  }
  EXPECT_GT(compared, 140);
}

TEST(TagsTsvTest, RefusesOtherText) {
  for (const char* bad : {"", "(0010,0020)\tLO\tPatientID\tx\n",
                          "tag\tvr\tkeyword\tvalue\n(0010,0020)\tLO\tPatientID\tx",
                          "tag\tvr\tkeyword\tvalue\n(0010,0020)\tLO\tPatientID\n",
                          "tag\tvr\tkeyword\tvalue\n(0010,0020)\tLO\tPatientID\tx\ty\n",
                          "tag\tvr\tkeyword\tvalue\n(0010,002G)\tLO\tPatientID\tx\n",
                          "tag\tvr\tkeyword\tvalue\n0010,0020\tLO\tPatientID\tx\n",
                          "tag\tvr\tkeyword\tvalue\n(0010,0020)\tLO\tPatientID\tx\\q\n",
                          "tag\tvr\tkeyword\tvalue\n(0010,0020)\tLO\tPatientID\tx\\\n"}) {
    auto parsed = ParseTagsTsv(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), Code::kInvalid) << bad;
    }
  }
}

}  // namespace
}  // namespace medvfs::store
