#include "store/dicom/dicom.h"

#include <gtest/gtest.h>

#include "tests/store/test_util.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace medvfs::store {
namespace {

using test_util::ReadFile;
using test_util::ShellQuote;

using nlohmann::json;

const std::string kSamples = test_util::kPydicomSamples.string() + "/";

// Runs a shell command; its standard output, or nullopt if it failed.
std::optional<std::string> RunCommand(const std::string& command) {
  FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string out;
  char buffer[65536];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  if (pclose(pipe) != 0) return std::nullopt;
  return out;
}

bool HaveTool(const char* tool) {
  return RunCommand(std::string("command -v ") + tool + " >/dev/null").has_value();
}

bool IsValidUtf8(std::string_view s) {
  try {
    (void)json(std::string(s)).dump();  // throws type_error 316 on invalid UTF-8
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

uint32_t TagOf(const DicomElement& element) {
  return (uint32_t{element.group} << 16) | element.element;
}

bool IsBulkOrSequence(const DicomElement& element) {
  const std::string& v = element.value;
  return element.vr == "SQ" || v == "(encapsulated)" ||
         (v.starts_with("(") && v.ends_with(" bytes)"));
}

// dcmdump +Qo prints control and non-ASCII characters as \ooo: do the same to our value.
std::string OctalQuoted(std::string_view value) {
  std::string out;
  for (char c : value) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b >= 0x7F) {
      char octal[5];
      std::snprintf(octal, sizeof octal, "\\%03o", b);
      out += octal;
    } else {
      out += c;
    }
  }
  return out;
}

// The top-level lines of `dcmdump +L -Un +Qo` (meta header and data set): tag -> value, with
// dcmdump's brackets removed. Lines inside sequences are indented and skipped.
std::map<uint32_t, std::string> ParseDcmdump(const std::string& dump) {
  std::map<uint32_t, std::string> values;
  std::istringstream lines(dump);
  std::string line;
  while (std::getline(lines, line)) {
    // "(gggg,eeee) VR value   # len, vm Keyword"
    if (line.size() < 16 || line[0] != '(' || line[10] != ')') continue;
    const uint32_t tag = static_cast<uint32_t>(std::stoul(line.substr(1, 4), nullptr, 16) << 16 |
                                               std::stoul(line.substr(6, 4), nullptr, 16));
    const size_t hash = line.rfind('#');
    if (hash == std::string::npos || hash < 15) continue;
    std::string value = line.substr(15, hash - 15);
    while (!value.empty() && value.back() == ' ') value.pop_back();
    if (value == "(no value available)") {
      value.clear();
    } else if (value.size() >= 2 && value.front() == '[' && value.back() == ']') {
      value = value.substr(1, value.size() - 2);
    }
    values[tag] = value;
  }
  return values;
}

// True when our JSON agrees with dcm2json's, bulk data (a BulkDataURI in ours) aside. Lists
// the differences in *why.
bool JsonAgrees(const json& ours, const json& theirs, const std::string& path, bool top,
                std::string* why) {
  if (ours.is_object() && ours.contains("BulkDataURI")) return true;
  if (ours.is_object() && theirs.is_object()) {
    bool agrees = true;
    std::vector<std::string> keys;
    for (const auto& [key, value] : ours.items()) keys.push_back(key);
    for (const auto& [key, value] : theirs.items()) {
      if (!ours.contains(key)) keys.push_back(key);
    }
    for (const std::string& key : keys) {
      if (top && key >= "7FE00010") continue;  // Pixel Data and what follows it
      if (!ours.contains(key) || !theirs.contains(key)) {
        *why += path + "/" + key + (ours.contains(key) ? " only in ours\n" : " only in theirs\n");
        agrees = false;
        continue;
      }
      agrees &= JsonAgrees(ours[key], theirs[key], path + "/" + key, false, why);
    }
    return agrees;
  }
  if (ours.is_array() && theirs.is_array() && ours.size() == theirs.size()) {
    bool agrees = true;
    for (size_t i = 0; i < ours.size(); ++i) {
      agrees &= JsonAgrees(ours[i], theirs[i], path + "/" + std::to_string(i), false, why);
    }
    return agrees;
  }
  if (ours == theirs) return true;
  *why += path + ": " + ours.dump().substr(0, 80) + " vs " + theirs.dump().substr(0, 80) + "\n";
  return false;
}

// The longest InlineBinary (base64) anywhere in a JSON document.
size_t LongestInlineBinary(const json& j) {
  size_t longest = 0;
  if (j.is_object() && j.contains("InlineBinary") && j["InlineBinary"].is_string()) {
    longest = j["InlineBinary"].get_ref<const std::string&>().size();
  }
  if (j.is_structured()) {
    for (const auto& child : j) longest = std::max(longest, LongestInlineBinary(child));
  }
  return longest;
}

class DicomSampleTest : public test_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!std::filesystem::is_directory(kSamples)) {
      GTEST_FAIL() << "python3-pydicom's sample files are not installed";
    }
  }
  static std::filesystem::path Sample(const char* name) {
    return std::filesystem::path(kSamples) / name;
  }
};

class DicomFileTest : public DicomSampleTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(DicomFileTest, ElementsMatchDcmdump) {
  if (!HaveTool("dcmdump")) GTEST_FAIL() << "dcmdump (package dcmtk) is not installed";
  const std::filesystem::path path = Sample(GetParam());
  ASSERT_OK_AND_ASSIGN(DicomTags tags, ParseDicom(ReadFile(path)));
  auto dump = RunCommand("dcmdump +L -q -Un +Qo " + ShellQuote(path));
  ASSERT_TRUE(dump.has_value());
  const std::map<uint32_t, std::string> expected = ParseDcmdump(*dump);
  ASSERT_FALSE(expected.empty());

  uint32_t previous = 0;
  std::map<uint32_t, const DicomElement*> ours;
  for (const DicomElement& element : tags.elements) {
    const uint32_t tag = TagOf(element);
    EXPECT_LT(previous, tag) << "elements out of tag order";
    previous = tag;
    ours[tag] = &element;
    EXPECT_EQ(element.vr.size(), 2u);
    EXPECT_TRUE(IsValidUtf8(element.value));
    if (element.group & 1) {
      EXPECT_EQ(element.keyword, "");
    }
    if (IsBulkOrSequence(element)) continue;
    auto it = expected.find(tag);
    ASSERT_NE(it, expected.end()) << element.keyword << " is not in dcmdump's output";
    EXPECT_EQ(OctalQuoted(element.value), it->second) << element.keyword << " " << std::hex << tag;
  }
  for (const auto& [tag, value] : expected) {
    if (tag >= 0x7FE00010 || (tag >> 16) == 0xFFFE) continue;
    EXPECT_TRUE(ours.contains(tag)) << std::hex << tag << " missing";
  }
  EXPECT_NE(tags.Find("SOPInstanceUID"), nullptr);
  EXPECT_NE(tags.Find("TransferSyntaxUID"), nullptr);
  const DicomElement* pixel = tags.Find("PixelData");
  EXPECT_EQ(pixel != nullptr, expected.contains(0x7FE00010));
  if (pixel != nullptr) {
    EXPECT_TRUE(IsBulkOrSequence(*pixel));
  }
}

TEST_P(DicomFileTest, JsonMatchesDcm2json) {
  if (!HaveTool("dcm2json") || !HaveTool("dcmodify")) {
    GTEST_FAIL() << "dcm2json and dcmodify (package dcmtk) are not installed";
  }
  const std::filesystem::path path = Sample(GetParam());
  ASSERT_OK_AND_ASSIGN(DicomTags tags, ParseDicom(ReadFile(path)));
  const json ours = json::parse(tags.json);  // throws, failing the test, if it is not JSON
  ASSERT_TRUE(ours.is_object());
  if (tags.Find("PixelData") != nullptr) {
    ASSERT_TRUE(ours.contains("7FE00010"));
    EXPECT_EQ(ours["7FE00010"]["BulkDataURI"], "bulkdata/7FE00010");
  }
  EXPECT_FALSE(ours.contains("00020010")) << "the meta header is not part of the data set";
  EXPECT_LE(LongestInlineBinary(ours), 1368u) << "bulk data must not be inlined";

  // dcm2json refuses encapsulated pixel data: give it a copy without Pixel Data.
  const std::filesystem::path copy = dir() / "copy.dcm";
  std::filesystem::copy_file(path, copy);
  if (tags.Find("PixelData") != nullptr) {
    ASSERT_TRUE(RunCommand("dcmodify -nb -q -ea '(7fe0,0010)' " + ShellQuote(copy)).has_value());
  }
  auto theirs_text = RunCommand("dcm2json " + ShellQuote(copy));
  ASSERT_TRUE(theirs_text.has_value());
  const json theirs = json::parse(*theirs_text);
  std::string why;
  EXPECT_TRUE(JsonAgrees(ours, theirs, "", true, &why)) << why;
}

INSTANTIATE_TEST_SUITE_P(PydicomSamples, DicomFileTest,
                         ::testing::Values("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm",
                                           "JPGExtended.dcm", "SC_rgb_rle_2frame.dcm", "rtdose.dcm",
                                           "ExplVR_BigEnd.dcm", "JPEG2000.dcm",
                                           "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                           "MR_small_jpeg_ls_lossless.dcm", "image_dfl.dcm",
                                           "waveform_ecg.dcm", "test-SR.dcm"),
                         [](const ::testing::TestParamInfo<const char*>& param_info) {
                           std::string name = param_info.param;
                           name = name.substr(0, name.find('.'));
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST_F(DicomSampleTest, CtSmallTagsAndBulkData) {
  ASSERT_OK_AND_ASSIGN(DicomTags tags, ParseDicom(ReadFile(Sample("CT_small.dcm"))));
  ASSERT_NE(tags.Find("PatientName"), nullptr);
  EXPECT_EQ(tags.Find("PatientName")->value, "CompressedSamples^CT1");
  EXPECT_EQ(tags.Find("PatientName")->vr, "PN");
  EXPECT_EQ(tags.Find("ImageType")->value, "ORIGINAL\\PRIMARY\\AXIAL");
  EXPECT_EQ(tags.Find("FileMetaInformationVersion")->value, "00\\01");
  EXPECT_EQ(tags.Find("OtherPatientIDsSequence")->value, "(Sequence with 2 items)");
  EXPECT_EQ(tags.Find("PixelData")->value, "(32768 bytes)");
  EXPECT_EQ(tags.Find("SpecificCharacterSet")->value, "ISO_IR 100");  // as in the file
  EXPECT_EQ(tags.Find("NoSuchKeyword"), nullptr);
  // A private OB value of 2068 bytes is bulk data; one of 81 bytes is not.
  const json j = json::parse(tags.json);
  EXPECT_EQ(j["00431029"]["BulkDataURI"], "bulkdata/00431029");
  EXPECT_TRUE(j["00431028"].contains("InlineBinary"));
  EXPECT_EQ(j["00080005"]["Value"][0], "ISO_IR 192");
  EXPECT_EQ(j["00100010"]["Value"][0]["Alphabetic"], "CompressedSamples^CT1");
  for (const DicomElement& element : tags.elements) {
    if (element.group == 0x0043 && element.element == 0x1029) {
      EXPECT_EQ(element.value, "(2068 bytes)");
      EXPECT_EQ(element.keyword, "");
    }
  }
}

TEST_F(DicomSampleTest, TruncatedFilesAreInvalid) {
  const std::string ct = ReadFile(Sample("CT_small.dcm"));
  auto cut = ParseDicom(std::string_view(ct).substr(0, 2000));
  EXPECT_EQ(cut.status().code(), Code::kInvalid) << cut.status().ToString();
  cut = ParseDicom(std::string_view(ct).substr(0, 2000), ct.size());
  EXPECT_EQ(cut.status().code(), Code::kInvalid);

  // Ends inside its Pixel Data: refused when the file's size is known.
  const std::string mr = ReadFile(Sample("MR_truncated.dcm"));
  auto truncated = ParseDicom(mr, mr.size());
  EXPECT_EQ(truncated.status().code(), Code::kInvalid) << truncated.status().ToString();
  // Given only the header of a larger file, the same bytes give their tags.
  EXPECT_OK(ParseDicom(mr));
  EXPECT_OK(ParseDicom(ct, ct.size()));
  // Deflated: the truncated stream is noticed when the file's size is known.
  const std::string deflated = ReadFile(Sample("image_dfl.dcm"));
  EXPECT_OK(ParseDicom(deflated, deflated.size()));
  EXPECT_EQ(ParseDicom(std::string_view(deflated).substr(0, 1000), 1000).status().code(),
            Code::kInvalid);
  // A header cut right after the Pixel Data element's header, as the archive reads it.
  const size_t pixel_at = ct.find(std::string("\xE0\x7F\x10\x00", 4), 132);
  ASSERT_NE(pixel_at, std::string::npos);
  EXPECT_OK(ParseDicom(std::string_view(ct).substr(0, pixel_at + 12), ct.size()));
  EXPECT_EQ(
      ParseDicom(std::string_view(ct).substr(0, pixel_at + 12), pixel_at + 100).status().code(),
      Code::kInvalid);
}

TEST_F(DicomSampleTest, RandomBytesAfterAPreambleAreInvalid) {
  std::mt19937 random(20261121);
  std::string bytes(100 * 1024, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  bytes.replace(128, 4, "DICM");
  auto parsed = ParseDicom(bytes, bytes.size());
  EXPECT_FALSE(parsed.ok());
  EXPECT_FALSE(ParseDicom("not dicom at all").ok());
  EXPECT_FALSE(ParseDicom("").ok());
}

TEST_F(DicomSampleTest, DamagedCopiesNeverCrash) {
  // Every outcome is acceptable except a crash, a hang or invalid UTF-8.
  const std::string original = ReadFile(Sample("CT_small.dcm"));
  std::mt19937 random(42);
  for (int round = 0; round < 300; ++round) {
    std::string bytes = original;
    const int flips = 1 + static_cast<int>(random() % 8);
    for (int i = 0; i < flips; ++i) {
      const size_t at = 132 + random() % (bytes.size() - 132);
      bytes[at] = static_cast<char>(random());
    }
    if (round % 3 == 0) bytes.resize(132 + random() % (bytes.size() - 132));
    auto parsed = ParseDicom(bytes, bytes.size());
    if (parsed.ok()) {
      for (const DicomElement& element : parsed->elements) {
        ASSERT_TRUE(IsValidUtf8(element.value));
      }
      ASSERT_TRUE(IsValidUtf8(parsed->json));
    }
  }
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
// An explicit VR little endian element with a 2-byte length.
void AppendShort(std::string* out, uint16_t group, uint16_t element, const char* vr,
                 std::string value) {
  if (value.size() % 2) value += (std::string_view(vr) == "UI" ? '\0' : ' ');
  AppendU16(out, group);
  AppendU16(out, element);
  out->append(vr, 2);
  AppendU16(out, static_cast<uint16_t>(value.size()));
  *out += value;
}
// A Part 10 file: preamble, meta header with the transfer syntax, then `dataset`.
std::string Part10(const std::string& transfer_syntax, const std::string& dataset) {
  std::string file(128, '\0');
  file += "DICM";
  AppendShort(&file, 0x0002, 0x0010, "UI", transfer_syntax);
  return file + dataset;
}
constexpr char kExplicitLittle[] = "1.2.840.10008.1.2.1";
constexpr char kImplicitLittle[] = "1.2.840.10008.1.2";

std::string DeepSequences(int depth) {
  std::string dataset;
  AppendShort(&dataset, 0x0010, 0x0020, "LO", "DEEP");
  for (int i = 0; i < depth; ++i) {
    AppendU16(&dataset, 0x0040);
    AppendU16(&dataset, 0xA730);  // ContentSequence
    dataset += "SQ";
    AppendU16(&dataset, 0);
    AppendU32(&dataset, 0xFFFFFFFF);
    AppendU16(&dataset, 0xFFFE);
    AppendU16(&dataset, 0xE000);
    AppendU32(&dataset, 0xFFFFFFFF);
  }
  for (int i = 0; i < depth; ++i) {
    AppendU16(&dataset, 0xFFFE);
    AppendU16(&dataset, 0xE00D);
    AppendU32(&dataset, 0);
    AppendU16(&dataset, 0xFFFE);
    AppendU16(&dataset, 0xE0DD);
    AppendU32(&dataset, 0);
  }
  return Part10(kExplicitLittle, dataset);
}

TEST(DicomParseTest, LooksLikeDicom) {
  std::string head(128, '\0');
  EXPECT_FALSE(LooksLikeDicom(head + "DIC"));
  EXPECT_TRUE(LooksLikeDicom(head + "DICM"));
  EXPECT_FALSE(LooksLikeDicom(head + "DICN"));
}

TEST(DicomParseTest, ModestNestingParses) {
  const std::string file = DeepSequences(20);
  ASSERT_OK_AND_ASSIGN(DicomTags tags, ParseDicom(file, file.size()));
  EXPECT_EQ(tags.Find("PatientID")->value, "DEEP");
  EXPECT_EQ(tags.Find("ContentSequence")->value, "(Sequence with 1 items)");
  json parsed;
  EXPECT_NO_THROW(parsed = json::parse(tags.json));
  EXPECT_TRUE(parsed.contains("0040A730"));
}

TEST(DicomParseTest, DeepNestingIsRefusedQuickly) {
  const std::string file = DeepSequences(200000);  // would overflow DCMTK's recursive parser
  auto parsed = ParseDicom(file, file.size());
  EXPECT_EQ(parsed.status().code(), Code::kInvalid) << parsed.status().ToString();

  // The same in implicit VR with defined lengths: each level is a ContentSequence element
  // holding one item, the innermost item a PatientID.
  constexpr uint32_t kLevels = 100000;
  std::string value;
  for (uint32_t level = 0; level < kLevels; ++level) {
    const uint32_t item_bytes = 12 + 16 * (kLevels - 1 - level);
    AppendU16(&value, 0x0040);
    AppendU16(&value, 0xA730);
    AppendU32(&value, 8 + item_bytes);
    AppendU16(&value, 0xFFFE);
    AppendU16(&value, 0xE000);
    AppendU32(&value, item_bytes);
  }
  AppendU16(&value, 0x0010);
  AppendU16(&value, 0x0020);
  AppendU32(&value, 4);
  value += "DEEP";
  const std::string implicit = Part10(kImplicitLittle, value);
  parsed = ParseDicom(implicit, implicit.size());
  EXPECT_EQ(parsed.status().code(), Code::kInvalid) << parsed.status().ToString();
}

TEST(DicomParseTest, HugeLengthsAreInvalid) {
  std::string dataset;
  AppendShort(&dataset, 0x0010, 0x0020, "LO", "HUGE");
  AppendU16(&dataset, 0x0011);
  AppendU16(&dataset, 0x1001);
  dataset += "OB";
  AppendU16(&dataset, 0);
  AppendU32(&dataset, 0xFFFFFFF0);
  dataset += std::string(64, 'x');
  const std::string file = Part10(kExplicitLittle, dataset);
  auto parsed = ParseDicom(file, file.size());
  EXPECT_EQ(parsed.status().code(), Code::kInvalid);

  // A meta header element claiming 4 GB.
  std::string meta(128, '\0');
  meta += "DICM";
  AppendU16(&meta, 0x0002);
  AppendU16(&meta, 0x0001);
  meta += "OB";
  AppendU16(&meta, 0);
  AppendU32(&meta, 0xFFFFFFF0);
  meta += "xx";
  EXPECT_FALSE(ParseDicom(meta, meta.size()).ok());
}

TEST(DicomParseTest, LongValuesAreCapped) {
  std::string dataset;
  AppendShort(&dataset, 0x0010, 0x0020, "LO", "LONG");
  AppendU16(&dataset, 0x0010);
  AppendU16(&dataset, 0x4000);  // PatientComments, LT
  dataset += "UT";              // UT: a 4-byte length
  AppendU16(&dataset, 0);
  const std::string text(200 * 1024, 'a');
  AppendU32(&dataset, static_cast<uint32_t>(text.size()));
  dataset += text;
  const std::string file = Part10(kExplicitLittle, dataset);
  ASSERT_OK_AND_ASSIGN(DicomTags tags, ParseDicom(file, file.size()));
  const DicomElement* comments = tags.Find("PatientComments");
  ASSERT_NE(comments, nullptr);
  EXPECT_LE(comments->value.size(), 64u * 1024);
  EXPECT_TRUE(comments->value.ends_with("...(truncated)"));
  EXPECT_EQ(tags.Find("PatientID")->value, "LONG");
}

// ---- Character sets -------------------------------------------------------------------------

TEST_F(DicomSampleTest, Latin1IsConvertedToUtf8) {
  if (!HaveTool("dcmodify")) GTEST_FAIL() << "dcmodify (package dcmtk) is not installed";
  // CT_small declares ISO_IR 100 (Latin-1); give it a Latin-1 patient name.
  const std::filesystem::path copy = dir() / "latin1.dcm";
  std::filesystem::copy_file(Sample("CT_small.dcm"), copy);
  ASSERT_TRUE(RunCommand("dcmodify -nb -q -m '(0010,0010)=M\xFCller^J\xFCrgen' " + ShellQuote(copy))
                  .has_value());
  const std::string bytes = ReadFile(copy);
  ASSERT_NE(bytes.find("M\xFCller"), std::string::npos) << "dcmodify did not write Latin-1";

  ASSERT_OK_AND_ASSIGN(DicomTags tags, ParseDicom(bytes, bytes.size()));
  EXPECT_EQ(tags.Find("PatientName")->value, "M\xC3\xBCller^J\xC3\xBCrgen");
  EXPECT_EQ(tags.Find("SpecificCharacterSet")->value, "ISO_IR 100");
  const json j = json::parse(tags.json);
  EXPECT_EQ(j["00100010"]["Value"][0]["Alphabetic"], "M\xC3\xBCller^J\xC3\xBCrgen");
  EXPECT_EQ(j["00080005"]["Value"][0], "ISO_IR 192");
}

TEST_F(DicomSampleTest, UnconvertibleBytesBecomeReplacementCharacters) {
  if (!HaveTool("dcmodify")) GTEST_FAIL() << "dcmodify (package dcmtk) is not installed";
  // No character set conversion possible: an unknown one, and none declared (ASCII).
  for (const char* charset : {"ISO_IR 999", ""}) {
    const std::filesystem::path copy = dir() / (std::string("cs") + charset + ".dcm");
    std::filesystem::copy_file(Sample("CT_small.dcm"), copy);
    const std::string set = *charset ? std::string("-m '(0008,0005)=") + charset + "'"
                                     : std::string("-ea '(0008,0005)'");
    ASSERT_TRUE(
        RunCommand("dcmodify -nb -q -m '(0010,0010)=M\xFCller' " + set + " " + ShellQuote(copy))
            .has_value());
    const std::string bytes = ReadFile(copy);
    ASSERT_OK_AND_ASSIGN(DicomTags tags, ParseDicom(bytes, bytes.size()));
    EXPECT_EQ(tags.Find("PatientName")->value, "M\xEF\xBF\xBDller") << charset;
    const json j = json::parse(tags.json);  // valid UTF-8, or this throws
    EXPECT_EQ(j["00100010"]["Value"][0]["Alphabetic"], "M\xEF\xBF\xBDller") << charset;
  }
}

TEST_F(DicomSampleTest, ValuesJsonCannotHoldAreLeftOut) {
  if (!HaveTool("dcmodify")) GTEST_FAIL() << "dcmodify (package dcmtk) is not installed";
  // DCMTK writes an FD of NaN as `nan`, which is not JSON; a malformed DS stays a string.
  const std::filesystem::path copy = dir() / "nan.dcm";
  std::filesystem::copy_file(Sample("MR_small.dcm"), copy);
  ASSERT_TRUE(RunCommand("dcmodify -nb -q -i '(0018,9087)=nan' -m '(0018,0050)=1.2.3abc' " +
                         ShellQuote(copy))
                  .has_value());
  const std::string bytes = ReadFile(copy);
  ASSERT_OK_AND_ASSIGN(DicomTags tags, ParseDicom(bytes, bytes.size()));
  EXPECT_EQ(tags.Find("DiffusionBValue")->value, "nan");
  json j;
  ASSERT_NO_THROW(j = json::parse(tags.json));
  EXPECT_FALSE(j.contains("00189087"));
  EXPECT_EQ(j["00180050"]["Value"][0], "1.2.3abc");
  EXPECT_EQ(j["00100010"]["Value"][0]["Alphabetic"], tags.Find("PatientName")->value);
  EXPECT_TRUE(j.contains("7FE00010"));
}

// ---- Threads --------------------------------------------------------------------------------

TEST_F(DicomSampleTest, ParsesFromManyThreadsAtOnce) {
  const std::string bytes = ReadFile(Sample("CT_small.dcm"));
  ASSERT_OK_AND_ASSIGN(DicomTags reference, ParseDicom(bytes));
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto tags = ParseDicom(bytes, bytes.size());
        if (!tags.ok() || tags->json != reference.json ||
            tags->elements.size() != reference.elements.size()) {
          ++failures[static_cast<size_t>(t)];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

}  // namespace
}  // namespace medvfs::store
