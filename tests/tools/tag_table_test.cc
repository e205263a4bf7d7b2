// The table of `medvfs tags`, and the same table through a mount (from the `tags.tsv` view).
#include "tools/tag_table.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "store/dicom_files.h"

namespace medvfs::tools {
namespace {

using store::DicomElement;

// What `medvfs tags` prints through a mount: the table of the parsed `tags.tsv` view.
std::string TableThroughMount(const std::vector<DicomElement>& elements) {
  auto parsed = store::ParseTagsTsv(store::FormatTagsTsv(elements));
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? FormatTagTable(*parsed) : "";
}

// Issue 17: the meta header's MediaStorageSOPClassUID and MediaStorageSOPInstanceUID hold the
// values of SOPClassUID and SOPInstanceUID; matching by value named the data set's elements
// after them. Issue 18: private elements and the second element of a keyword showed the
// JSON model's text, not the store's. Through a mount every row is now the store's.
TEST(TagTableTest, ThroughAMountEveryRowIsTheStores) {
  const std::vector<DicomElement> elements = {
      {0x0002, 0x0002, "MediaStorageSOPClassUID", "UI", "1.2.840.10008.5.1.4.1.1.7"},
      {0x0002, 0x0003, "MediaStorageSOPInstanceUID", "UI", "1.2.3.4"},
      {0x0008, 0x0016, "SOPClassUID", "UI", "1.2.840.10008.5.1.4.1.1.7"},
      {0x0008, 0x0018, "SOPInstanceUID", "UI", "1.2.3.4"},
      {0x0009, 0x1001, "", "LO", "private\tvalue"},
      {0x6000, 0x3000, "OverlayData", "OW", "(4096 bytes)"},
      {0x6002, 0x3000, "OverlayData", "OW", "(512 bytes)"}};
  const std::string table =
      "(0002,0002)  UI  MediaStorageSOPClassUID     1.2.840.10008.5.1.4.1.1.7\n"
      "(0002,0003)  UI  MediaStorageSOPInstanceUID  1.2.3.4\n"
      "(0008,0016)  UI  SOPClassUID                 1.2.840.10008.5.1.4.1.1.7\n"
      "(0008,0018)  UI  SOPInstanceUID              1.2.3.4\n"
      "(0009,1001)  LO  -                           private\\tvalue\n"
      "(6000,3000)  OW  OverlayData                 (4096 bytes)\n"
      "(6002,3000)  OW  OverlayData                 (512 bytes)\n";
  EXPECT_EQ(FormatTagTable(elements), table);
  EXPECT_EQ(TableThroughMount(elements), table);
}

// Differential over every file of python3-pydicom the store parses: through a mount the table
// is the unmounted archive's, character for character.
TEST(TagTableTest, TablesThroughAMountEqualTheStoresForEveryPydicomFile) {
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
    EXPECT_EQ(TableThroughMount(tags->elements), FormatTagTable(tags->elements));
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
