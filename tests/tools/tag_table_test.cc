// The table of `medvfs tags`, and how it is rebuilt from a mount's dicom.json and tags/ views.
#include "tools/tag_table.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace medvfs::tools {
namespace {

using store::DicomElement;

// A small data set in the DICOM JSON model: two equal dates, a person name, numbers, a
// sequence, bulk data, a private element and an empty value.
constexpr const char* kJson = R"({
  "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane", "Ideographic": "Doe"}]},
  "00080021": {"vr": "DA", "Value": ["20040119"]},
  "00080020": {"vr": "DA", "Value": ["20040119"]},
  "00100020": {"vr": "LO", "Value": ["1CT1"]},
  "00080008": {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY"]},
  "00280030": {"vr": "DS", "Value": [0.661468, 0.661468]},
  "00280010": {"vr": "US", "Value": [128]},
  "00081140": {"vr": "SQ", "Value": [{}, {}]},
  "00091001": {"vr": "LO", "Value": ["20040119"]},
  "00200012": {"vr": "IS"},
  "00209165": {"vr": "AT", "Value": ["00280010"]},
  "7FE00010": {"vr": "OW", "BulkDataURI": "7FE00010"},
  "00280106": {"vr": "OB", "InlineBinary": "AAEC"}
})";

std::vector<DicomElement> Elements() {
  auto elements = ElementsFromDicomJson(kJson);
  EXPECT_TRUE(elements.ok()) << elements.status().ToString();
  return elements.ok() ? *elements : std::vector<DicomElement>{};
}

const DicomElement* Find(const std::vector<DicomElement>& elements, uint16_t group,
                         uint16_t element) {
  for (const DicomElement& e : elements) {
    if (e.group == group && e.element == element) return &e;
  }
  return nullptr;
}

// The `tags/` files of kJson, in tag order (as the mount lists them).
std::vector<KeywordFile> FilesInTagOrder() {
  return {{"ImageType", "ORIGINAL\\PRIMARY\n"},
          {"StudyDate", "20040119\n"},
          {"SeriesDate", "20040119\n"},
          {"ReferencedImageSequence", "(Sequence with 2 items)\n"},
          {"PatientName", "Doe^Jane=Doe\n"},
          {"PatientID", "1CT1\n"},
          {"AcquisitionNumber", "\n"},
          {"DimensionIndexPointer", "(0028,0010)\n"},
          {"Rows", "128\n"},
          {"PixelSpacing", "0.661468\\0.661468\n"},
          {"SmallestImagePixelValue", "(3 bytes)\n"},
          {"PixelData", "(32768 bytes)\n"}};
}

TEST(TagTableTest, ElementsFromDicomJsonInTagOrderWithTextValues) {
  std::vector<DicomElement> elements = Elements();
  ASSERT_EQ(elements.size(), 13u);
  EXPECT_TRUE(std::is_sorted(elements.begin(), elements.end(), [](const auto& a, const auto& b) {
    return std::pair(a.group, a.element) < std::pair(b.group, b.element);
  }));
  EXPECT_EQ(Find(elements, 0x0010, 0x0010)->value, "Doe^Jane=Doe");
  EXPECT_EQ(Find(elements, 0x0010, 0x0010)->vr, "PN");
  EXPECT_EQ(Find(elements, 0x0008, 0x0008)->value, "ORIGINAL\\PRIMARY");
  EXPECT_EQ(Find(elements, 0x0028, 0x0030)->value, "0.661468\\0.661468");
  EXPECT_EQ(Find(elements, 0x0028, 0x0010)->value, "128");
  EXPECT_EQ(Find(elements, 0x0008, 0x1140)->value, "(Sequence with 2 items)");
  EXPECT_EQ(Find(elements, 0x0020, 0x0012)->value, "");
  EXPECT_EQ(Find(elements, 0x0020, 0x9165)->value, "(0028,0010)");
  EXPECT_EQ(Find(elements, 0x7fe0, 0x0010)->value, "(bulk data)");
  EXPECT_EQ(Find(elements, 0x0028, 0x0106)->value, "(3 bytes)");
  for (const DicomElement& e : elements) EXPECT_TRUE(e.keyword.empty());
}

TEST(TagTableTest, ElementsFromDicomJsonRefusesOtherJson) {
  EXPECT_FALSE(ElementsFromDicomJson("not json").ok());
  EXPECT_FALSE(ElementsFromDicomJson("[1, 2]").ok());
  EXPECT_FALSE(ElementsFromDicomJson(R"({"PatientID": {"vr": "LO"}})").ok());
  auto empty = ElementsFromDicomJson("{}");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(TagTableTest, KeywordsFromAListingInTagOrderNameEqualValuesToo) {
  std::vector<DicomElement> elements = Elements();
  AssignKeywords(FilesInTagOrder(), &elements);
  EXPECT_EQ(Find(elements, 0x0008, 0x0020)->keyword, "StudyDate");
  EXPECT_EQ(Find(elements, 0x0008, 0x0021)->keyword, "SeriesDate");
  EXPECT_EQ(Find(elements, 0x0010, 0x0020)->keyword, "PatientID");
  EXPECT_EQ(Find(elements, 0x0010, 0x0010)->keyword, "PatientName");
  EXPECT_EQ(Find(elements, 0x0028, 0x0030)->keyword, "PixelSpacing");
  EXPECT_EQ(Find(elements, 0x0020, 0x0012)->keyword, "AcquisitionNumber");
  EXPECT_EQ(Find(elements, 0x0020, 0x9165)->keyword, "DimensionIndexPointer");
  EXPECT_EQ(Find(elements, 0x7fe0, 0x0010)->keyword, "PixelData");
  // A named element shows the text of its tags/ file (without the newline).
  EXPECT_EQ(Find(elements, 0x7fe0, 0x0010)->value, "(32768 bytes)");
  // Private elements never get a keyword, even with a value equal to one.
  EXPECT_TRUE(Find(elements, 0x0009, 0x1001)->keyword.empty());
}

TEST(TagTableTest, KeywordsFromAnotherOrderNameOnlyTheSurePairs) {
  std::vector<KeywordFile> files = FilesInTagOrder();
  std::sort(files.begin(), files.end(),
            [](const KeywordFile& a, const KeywordFile& b) { return a.keyword < b.keyword; });
  std::vector<DicomElement> elements = Elements();
  AssignKeywords(files, &elements);
  EXPECT_EQ(Find(elements, 0x0010, 0x0020)->keyword, "PatientID");
  EXPECT_EQ(Find(elements, 0x0010, 0x0010)->keyword, "PatientName");
  EXPECT_EQ(Find(elements, 0x0028, 0x0010)->keyword, "Rows");
  // Two equal dates cannot be told apart without the order.
  EXPECT_TRUE(Find(elements, 0x0008, 0x0020)->keyword.empty());
  EXPECT_TRUE(Find(elements, 0x0008, 0x0021)->keyword.empty());
}

TEST(TagTableTest, KeywordsFitNumbersByValue) {
  std::vector<DicomElement> elements = {{0x0018, 0x0050, "", "DS", "1.25"},
                                        {0x0018, 0x1041, "", "FL", "0.30000001192092896"}};
  AssignKeywords({{"SliceThickness", "1.250\n"}, {"ContrastBolusVolume", "0.3\n"}}, &elements);
  EXPECT_EQ(elements[0].keyword, "SliceThickness");
  EXPECT_EQ(elements[0].value, "1.250");
  EXPECT_EQ(elements[1].keyword, "ContrastBolusVolume");
}

TEST(TagTableTest, SpecificCharacterSetIsPairedByItsTag) {
  // The JSON model is UTF-8; tags/ keeps the file's character set.
  std::vector<DicomElement> elements = {{0x0008, 0x0005, "", "CS", "ISO_IR 192"},
                                        {0x0008, 0x0060, "", "CS", "CT"}};
  AssignKeywords({{"SpecificCharacterSet", "ISO_IR 100\n"}, {"Modality", "CT\n"}}, &elements);
  EXPECT_EQ(elements[0].keyword, "SpecificCharacterSet");
  EXPECT_EQ(elements[0].value, "ISO_IR 100");
}

TEST(TagTableTest, FormatTagTable) {
  std::vector<DicomElement> elements = {{0x0010, 0x0020, "PatientID", "LO", "1CT1"},
                                        {0x0009, 0x1001, "", "LO", "a\tb"},
                                        {0x0008, 0x0008, "ImageType", "CS", "ORIGINAL\\PRIMARY"},
                                        {0x7fe0, 0x0010, "PixelData", "OW", "(32768 bytes)"}};
  EXPECT_EQ(FormatTagTable(elements),
            "(0010,0020)  LO  PatientID  1CT1\n"
            "(0009,1001)  LO  -          a\\tb\n"
            "(0008,0008)  CS  ImageType  ORIGINAL\\PRIMARY\n"
            "(7fe0,0010)  OW  PixelData  (32768 bytes)\n");
}

}  // namespace
}  // namespace medvfs::tools
