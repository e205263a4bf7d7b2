// The table of `medvfs tags`, and how it is rebuilt from a mount's dicom.json and tags/ views.
#include "tools/tag_table.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <gtest/gtest.h>

#include "store/dicom.h"

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

TEST(TagTableTest, KeywordsDoNotDependOnTheListingOrder) {
  std::vector<KeywordFile> files = FilesInTagOrder();
  std::sort(files.begin(), files.end(),
            [](const KeywordFile& a, const KeywordFile& b) { return a.keyword < b.keyword; });
  std::vector<DicomElement> elements = Elements();
  AssignKeywords(files, &elements);
  std::vector<DicomElement> in_order = Elements();
  AssignKeywords(FilesInTagOrder(), &in_order);
  ASSERT_EQ(elements.size(), in_order.size());
  for (size_t i = 0; i < elements.size(); ++i) {
    EXPECT_EQ(elements[i].keyword, in_order[i].keyword) << i;
    EXPECT_EQ(elements[i].value, in_order[i].value) << i;
  }
  // Two equal dates are told apart by their tags.
  EXPECT_EQ(Find(elements, 0x0008, 0x0020)->keyword, "StudyDate");
  EXPECT_EQ(Find(elements, 0x0008, 0x0021)->keyword, "SeriesDate");
}

// Issue 17: the meta header's MediaStorageSOPClassUID and MediaStorageSOPInstanceUID hold the
// values of SOPClassUID and SOPInstanceUID; matching by value named the data set's elements
// after them. They are rows of their own, in group 0002, as on an unmounted archive.
TEST(TagTableTest, MetaHeaderKeywordsNeverNameDataSetElements) {
  std::vector<DicomElement> elements = {{0x0008, 0x0016, "", "UI", "1.2.840.10008.5.1.4.1.1.7"},
                                        {0x0008, 0x0018, "", "UI", "1.2.3.4"},
                                        {0x0008, 0x0060, "", "CS", "OT"}};
  AssignKeywords({{"FileMetaInformationVersion", "00\\01\n"},
                  {"MediaStorageSOPClassUID", "1.2.840.10008.5.1.4.1.1.7\n"},
                  {"MediaStorageSOPInstanceUID", "1.2.3.4\n"},
                  {"TransferSyntaxUID", "1.2.840.10008.1.2.4.90\n"},
                  {"SOPClassUID", "1.2.840.10008.5.1.4.1.1.7\n"},
                  {"SOPInstanceUID", "1.2.3.4\n"},
                  {"Modality", "OT\n"}},
                 &elements);
  ASSERT_EQ(elements.size(), 7u);
  EXPECT_EQ(FormatTagTable(elements),
            "(0002,0001)  OB  FileMetaInformationVersion  00\\01\n"
            "(0002,0002)  UI  MediaStorageSOPClassUID     1.2.840.10008.5.1.4.1.1.7\n"
            "(0002,0003)  UI  MediaStorageSOPInstanceUID  1.2.3.4\n"
            "(0002,0010)  UI  TransferSyntaxUID           1.2.840.10008.1.2.4.90\n"
            "(0008,0016)  UI  SOPClassUID                 1.2.840.10008.5.1.4.1.1.7\n"
            "(0008,0018)  UI  SOPInstanceUID              1.2.3.4\n"
            "(0008,0060)  CS  Modality                    OT\n");
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

// What a mount shows of a version: `dicom.json`, and one `tags/` file per keyword holding the
// value of the first element with it (fs/meta_views.cc).
std::vector<KeywordFile> KeywordFilesOf(const store::DicomTags& tags) {
  std::vector<KeywordFile> files;
  std::set<std::string> seen;
  for (const DicomElement& e : tags.elements) {
    if (e.keyword.empty() || !seen.insert(e.keyword).second) continue;
    files.push_back({e.keyword, tags.Find(e.keyword)->value + "\n"});
  }
  return files;
}

// Issue 17, differential: over every file of python3-pydicom the store parses, the table
// rebuilt from the mount's views is the store's own table: every row with its tag, VR and
// keyword, and with the same value wherever the element has a keyword (private and unknown
// elements show their JSON value), the File Meta Information included.
TEST(TagTableTest, RebuiltTablesEqualTheStoresForEveryPydicomFile) {
  const std::filesystem::path samples = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
  ASSERT_TRUE(std::filesystem::is_directory(samples))
      << "python3-pydicom's sample files are not installed (tools/install-deps.sh)";
  int compared = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(samples)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto tags = store::ParseDicom(bytes, bytes.size());
    if (!tags.ok()) continue;
    SCOPED_TRACE(entry.path().filename().string());
    ++compared;
    auto rebuilt = ElementsFromDicomJson(tags->json);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
    std::vector<KeywordFile> files = KeywordFilesOf(*tags);
    std::reverse(files.begin(), files.end());  // the listing order does not matter
    AssignKeywords(files, &*rebuilt);
    // The JSON model leaves out values it cannot hold (an FD of NaN): so does the comparison.
    std::set<std::pair<uint16_t, uint16_t>> in_json;
    for (const DicomElement& e : *rebuilt) in_json.insert({e.group, e.element});
    std::vector<DicomElement> expected;
    for (const DicomElement& e : tags->elements) {
      if (e.group == 0x0002 || in_json.contains({e.group, e.element})) expected.push_back(e);
    }
    ASSERT_EQ(rebuilt->size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      const DicomElement& ours = (*rebuilt)[i];
      const DicomElement& store = expected[i];
      const std::string where = FormatTag(store.group, store.element);
      EXPECT_EQ(FormatTag(ours.group, ours.element), where);
      EXPECT_EQ(ours.vr, store.vr) << where;
      EXPECT_EQ(ours.keyword, store.keyword) << where;
      const bool first_of_keyword = !store.keyword.empty() && tags->Find(store.keyword) == &store;
      if (first_of_keyword) {
        EXPECT_EQ(ours.value, store.value) << where;
      }
    }
  }
  EXPECT_GT(compared, 140);
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
