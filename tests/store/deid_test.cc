#include "store/dicom/deid.h"

#include <gtest/gtest.h>

#include "store/dicom/deid_profile.h"
#include "store/dicom/dicom.h"
#include "tests/posix_regex.h"
#include "tests/store/test_util.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace medvfs::store {
namespace {

using deid_profile::Action;
using test_util::ReadFile;
using test_util::ShellQuote;
using test_util::WriteFile;

SecretKey TestKey(uint8_t fill) {
  std::vector<uint8_t> bytes(kKeySize);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(fill + i);
  return SecretKey::FromBytes(bytes);
}

// A ReadAtFunction over `bytes` that returns at most `chunk` bytes per call.
ReadAtFunction ReaderOf(const std::string& bytes, size_t chunk = SIZE_MAX) {
  return [&bytes, chunk](uint64_t offset, std::span<char> out) -> StatusOr<size_t> {
    if (offset >= bytes.size()) return size_t{0};
    const size_t n = std::min({out.size(), bytes.size() - static_cast<size_t>(offset), chunk});
    std::memcpy(out.data(), bytes.data() + offset, n);
    return n;
  };
}

std::string Assemble(const DeidentifiedFile& file, const std::string& source) {
  return file.header + source.substr(static_cast<size_t>(file.pixel_offset),
                                     static_cast<size_t>(file.pixel_length));
}

// The element's value; for one stored as UN (which DicomElement shows in hex), its text.
std::string ValueOf(const DicomTags& tags, std::string_view keyword) {
  const DicomElement* element = tags.Find(keyword);
  if (element == nullptr) return {};
  if (element->vr != "UN") return element->value;
  std::string text;
  for (size_t i = 0; i + 1 < element->value.size(); i += 3) {
    text.push_back(static_cast<char>(std::stoi(element->value.substr(i, 2), nullptr, 16)));
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

// ---- Config ------------------------------------------------------------------------------

TEST(DeidConfigTest, DefaultsWhenEmpty) {
  auto config = ParseDeidConfig("# nothing but a comment\n\n   \n");
  ASSERT_OK(config);
  EXPECT_EQ(config->temporal, TemporalRetention::kNone);
  EXPECT_TRUE(config->keep_study_date);
  EXPECT_EQ(config->birth_date, BirthDateRule::kDayOfMonth);
  EXPECT_EQ(config->birth_day, 15);
  EXPECT_EQ(config->pseudonym_prefix, "ANON");
  EXPECT_FALSE(config->retain_uids);
}

TEST(DeidConfigTest, EveryKeyParses) {
  auto config = ParseDeidConfig(
      "retain_longitudinal_temporal = modified   # shift\n"
      "retain_patient_characteristics=yes\n"
      "retain_device_identity = yes\r\n"
      "retain_uids = yes\n"
      "clean_descriptors = yes\n"
      "keep_study_date = no\n"
      "birth_date = day 31\n"
      "pseudonym_prefix = Study_7-A\n"
      "safe_private_tag = (0019,\"SIEMENS MR HEADER\",0C)\n"
      "safe_private_tag = (7fe1, \"A # B\", ff)\n");
  ASSERT_OK(config);
  EXPECT_EQ(config->temporal, TemporalRetention::kModifiedDates);
  EXPECT_TRUE(config->retain_patient_characteristics);
  EXPECT_TRUE(config->retain_device_identity);
  EXPECT_TRUE(config->retain_uids);
  EXPECT_TRUE(config->clean_descriptors);
  EXPECT_FALSE(config->keep_study_date);
  EXPECT_EQ(config->birth_day, 31);
  EXPECT_EQ(config->pseudonym_prefix, "Study_7-A");
  ASSERT_EQ(config->safe_private_tags.size(), 2u);
  EXPECT_EQ(config->safe_private_tags[0].group, 0x0019);
  EXPECT_EQ(config->safe_private_tags[0].creator, "SIEMENS MR HEADER");
  EXPECT_EQ(config->safe_private_tags[0].element, 0x0C);
  EXPECT_EQ(config->safe_private_tags[1].group, 0x7FE1);
  EXPECT_EQ(config->safe_private_tags[1].creator, "A # B");
  EXPECT_EQ(config->safe_private_tags[1].element, 0xFF);
  ASSERT_OK(ParseDeidConfig("birth_date = year"));
  EXPECT_EQ(ParseDeidConfig("birth_date = remove")->birth_date, BirthDateRule::kRemove);
  EXPECT_EQ(ParseDeidConfig("retain_longitudinal_temporal = full")->temporal,
            TemporalRetention::kFullDates);
}

TEST(DeidConfigTest, BadLinesAreInvalidAndNamed) {
  const std::map<std::string, std::string> bad = {
      {"retain_uids = yes\nfavourite_colour = SECRETVALUE", "line 2: 'favourite_colour'"},
      {"retain_uids = SECRETVALUE", "line 1: 'retain_uids'"},
      {"\n\nretain_longitudinal_temporal = sometimes", "line 3: "},
      {"birth_date = day 0", "line 1: "},
      {"birth_date = day 32", "line 1: "},
      {"birth_date = day", "line 1: "},
      {"birth_date = day 1x", "line 1: "},
      {"pseudonym_prefix = has space", "line 1: "},
      {"pseudonym_prefix = ABCDEFGHIJKLMNOPQ", "line 1: "},
      {"pseudonym_prefix =", "line 1: "},
      {"safe_private_tag = (0018,\"X\",01)", "line 1: "},
      {"safe_private_tag = (0019,\"\",01)", "line 1: "},
      {"safe_private_tag = (0019,X,01)", "line 1: "},
      {"safe_private_tag = (0019,\"X\",100)", "line 1: "},
      {"SECRETVALUE without equals", "line 1: "},
      {"= yes", "line 1: "},
      {"retain_uids = yes\nretain_uids = no", "line 2: 'retain_uids'"},
  };
  for (const auto& [text, expected] : bad) {
    auto config = ParseDeidConfig(text);
    ASSERT_FALSE(config.ok()) << text;
    EXPECT_EQ(config.status().code(), Code::kInvalid) << text;
    EXPECT_TRUE(config.status().message().starts_with(expected))
        << text << " -> " << config.status().message();
    EXPECT_EQ(config.status().message().find("SECRETVALUE"), std::string::npos);
  }
}

TEST(DeidConfigTest, LoadsFiles) {
  test_util::ScopedTempDir dir;
  ASSERT_FALSE(dir.path().empty());
  EXPECT_EQ(LoadDeidConfig(dir.path() / "missing.conf").status().code(), Code::kNotFound);
  WriteFile(dir.path() / "deid.conf", "retain_uids = yes\n");
  auto config = LoadDeidConfig(dir.path() / "deid.conf");
  ASSERT_OK(config);
  EXPECT_TRUE(config->retain_uids);
}

// ---- Keyed values --------------------------------------------------------------------------

TEST(DeidKeyedTest, PseudonymIsStableKeyedAndWellFormed) {
  Deidentifier deid(TestKey(1), DeidConfig{});
  const std::string p = deid.Pseudonym("12345");
  EXPECT_TRUE(medvfs::testing::RegexFullMatch(p, "ANON-[0-9a-f]{20}")) << p;
  EXPECT_EQ(p, deid.Pseudonym("  12345 "));
  EXPECT_NE(p, deid.Pseudonym("12346"));
  EXPECT_NE(p, Deidentifier(TestKey(2), DeidConfig{}).Pseudonym("12345"));
  // The documented derivation.
  const std::string message(
      "patient-id\0"
      "12345",
      16);
  EXPECT_EQ(p, "ANON-" + HexEncode(HmacSha256(TestKey(1), message)).substr(0, 20));
  DeidConfig config;
  config.pseudonym_prefix = "X_1";
  EXPECT_EQ(Deidentifier(TestKey(1), config).Pseudonym("12345"), "X_1" + p.substr(4));
}

TEST(DeidKeyedTest, RemappedUidsAreValidAndDeterministic) {
  Deidentifier deid(TestKey(1), DeidConfig{});
  const std::string uid = "1.2.840.113619.2.55.3.604688119.868.1249343483.504";
  const std::string remapped = deid.RemapUid(uid);
  EXPECT_TRUE(medvfs::testing::RegexFullMatch(remapped, "2\\.25\\.(0|[1-9][0-9]*)")) << remapped;
  EXPECT_LE(remapped.size(), 64u);
  EXPECT_EQ(remapped, deid.RemapUid(uid + std::string(1, '\0')));
  EXPECT_EQ(remapped, deid.RemapUid(uid + " "));
  EXPECT_NE(remapped, deid.RemapUid(uid + "1"));
  EXPECT_NE(remapped, Deidentifier(TestKey(2), DeidConfig{}).RemapUid(uid));
  // The documented derivation: the first 16 bytes of the HMAC as an unsigned 128-bit integer.
  __extension__ typedef unsigned __int128 U128;
  const auto mac = HmacSha256(TestKey(1), std::string("uid\0", 4) + uid);
  U128 value = 0;
  for (int i = 0; i < 16; ++i) value = (value << 8) | mac[static_cast<size_t>(i)];
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(value % 10)));
    value /= 10;
  } while (value != 0);
  EXPECT_EQ(remapped, "2.25." + digits);
  for (int i = 0; i < 200; ++i) {
    const std::string other = deid.RemapUid("1.2.3." + std::to_string(i));
    EXPECT_LE(other.size(), 64u);
    EXPECT_NE(other[5], '0');
  }
}

TEST(DeidKeyedTest, DateShiftIsInRangeAndPerPatient) {
  Deidentifier deid(TestKey(1), DeidConfig{});
  std::set<int> shifts;
  for (int i = 0; i < 100; ++i) {
    const int days = deid.DateShiftDays("patient" + std::to_string(i));
    EXPECT_GE(days, 1);
    EXPECT_LE(days, 3650);
    shifts.insert(days);
  }
  EXPECT_GT(shifts.size(), 90u);
  EXPECT_EQ(deid.DateShiftDays("abc"), deid.DateShiftDays(" abc "));
}

TEST(DeidKeyedTest, DatesShiftAndBirthDatesFollowTheRule) {
  EXPECT_EQ(deid_profile::ShiftDates("20040301", false, 1), "20040229");
  EXPECT_EQ(deid_profile::ShiftDates("20040301\\20000102", false, 366), "20030301\\19990101");
  EXPECT_EQ(deid_profile::ShiftDates("20040301101010.5+0100", true, 1), "20040229101010.5+0100");
  EXPECT_EQ(deid_profile::ShiftDates("", false, 5), "");
  EXPECT_FALSE(deid_profile::ShiftDates("2004", true, 5).has_value());
  EXPECT_FALSE(deid_profile::ShiftDates("20041301", false, 5).has_value());
  DeidConfig config;
  EXPECT_EQ(deid_profile::BirthDateByRule("19670312", config), "19670315");
  config.birth_day = 31;
  EXPECT_EQ(deid_profile::BirthDateByRule("19670212", config), "19670228");
  EXPECT_EQ(deid_profile::BirthDateByRule("19680212", config), "19680229");
  config.birth_date = BirthDateRule::kYear;
  EXPECT_EQ(deid_profile::BirthDateByRule("19670312", config), "19670101");
  config.birth_date = BirthDateRule::kRemove;
  EXPECT_EQ(deid_profile::BirthDateByRule("19670312", config), "");
}

TEST(DeidKeyedTest, ProfileTableIsComplete) {
  EXPECT_GE(deid_profile::ProfileRows().size(), 400u);
  const auto* name = deid_profile::FindProfileRow(0x00100010);
  ASSERT_NE(name, nullptr);
  EXPECT_STREQ(name->keyword, "PatientName");
  const auto* station = deid_profile::FindProfileRow(0x00081010);
  ASSERT_NE(station, nullptr);
  DeidConfig config;
  EXPECT_EQ(deid_profile::EffectiveAction(*station, config), Action::kXZD);
  config.retain_device_identity = true;
  EXPECT_EQ(deid_profile::EffectiveAction(*station, config), Action::kK);
  EXPECT_NE(deid_profile::FindProfileRow(0x00081155), nullptr);  // ReferencedSOPInstanceUID
  EXPECT_NE(deid_profile::FindProfileRow(0x00200052), nullptr);  // FrameOfReferenceUID
  EXPECT_EQ(deid_profile::FindProfileRow(0x00280010), nullptr);  // Rows
}

// ---- Real files ----------------------------------------------------------------------------

bool HaveTool(const char* tool) {
  return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// Every value of `tag` ("00081155") anywhere in a DICOM JSON document.
void CollectValues(const nlohmann::json& node, const std::string& tag,
                   std::vector<std::string>* out) {
  if (node.is_array()) {
    for (const auto& child : node) CollectValues(child, tag, out);
    return;
  }
  if (!node.is_object()) return;
  for (const auto& [key, value] : node.items()) {
    if (key == tag && value.contains("Value")) {
      for (const auto& v : value["Value"]) {
        if (v.is_string()) out->push_back(v.get<std::string>());
      }
    }
    CollectValues(value, tag, out);
  }
}

std::vector<std::string> AllValues(const DicomTags& tags, const std::string& tag) {
  std::vector<std::string> values;
  CollectValues(nlohmann::json::parse(tags.json), tag, &values);
  return values;
}

bool IsDummy(const std::string& value) {
  return value == "ANONYMIZED" || value == "19000101" || value == "19000101000000" ||
         value == "000000" || value == "0";
}

class DeidFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::is_directory(test_util::kPydicomSamples))
        << "python3-pydicom's sample files are needed";
  }

  // De-identifies `bytes`; the output file's bytes.
  std::string Run(const Deidentifier& deid, const std::string& bytes, DeidentifiedFile* out,
                  size_t chunk = SIZE_MAX) {
    auto file = deid.Deidentify(ReaderOf(bytes, chunk), bytes.size());
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    if (!file.ok()) return {};
    *out = *file;
    return Assemble(*file, bytes);
  }

  std::vector<std::filesystem::path> Samples() {
    std::vector<std::filesystem::path> paths;
    for (const auto& entry : std::filesystem::directory_iterator(test_util::kPydicomSamples)) {
      if (entry.path().extension() == ".dcm") paths.push_back(entry.path());
    }
    std::sort(paths.begin(), paths.end());
    return paths;
  }

  // The profile's checks on one file; what it processed is counted in the members below.
  void CheckSample(const std::filesystem::path& path, const Deidentifier& deid) {
    SCOPED_TRACE(path.filename().string());
    const std::string bytes = ReadFile(path);
    auto original = ParseDicom(bytes, bytes.size());
    if (!original.ok()) return;  // not a file the archive parses either
    DeidentifiedFile file;
    const std::string output = Run(deid, bytes, &file);
    if (file.withheld != WithholdReason::kNone) {  // nothing to publish, nothing to read
      EXPECT_TRUE(output.empty());
      EXPECT_EQ(file.size(), 0u);
      ++withheld_;
      return;
    }
    ASSERT_FALSE(output.empty());
    ++processed_;
    auto parsed = ParseDicom(output, output.size());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    parsed_ = *parsed;
    CheckProfile(*original, *parsed, deid.config());
    CheckIdentity(*original, *parsed, deid);
    CheckNames(*original, file, deid);
    CheckPixels(*original, file, output, bytes);
    CheckStreaming(file, bytes, output);
    CheckWithDcmdump(*original, file, output);
  }

  // No X/Z/D attribute keeps its original non-empty value.
  void CheckProfile(const DicomTags& original, const DicomTags& parsed, const DeidConfig& config) {
    for (const DicomElement& element : original.elements) {
      const uint32_t tag = (uint32_t{element.group} << 16) | element.element;
      if ((element.group & 1) != 0) {
        EXPECT_EQ(parsed.Find(element.keyword), nullptr);
        continue;
      }
      const auto* row = deid_profile::FindProfileRow(tag);
      if (row == nullptr || element.value.empty() || element.keyword == "StudyDate") continue;
      const Action action = deid_profile::EffectiveAction(*row, config);
      if (action == Action::kK || action == Action::kC || action == Action::kU ||
          action == Action::kXZU) {
        continue;
      }
      const std::string after = ValueOf(parsed, element.keyword);
      EXPECT_TRUE(after != element.value || IsDummy(after)) << element.keyword << " kept its value";
    }
    for (const DicomElement& element : parsed.elements) {
      EXPECT_EQ(element.group & 1, 0) << "private element left";
      EXPECT_NE(element.keyword, "SourceApplicationEntityTitle");
    }
    EXPECT_EQ(ValueOf(parsed, "PatientIdentityRemoved"), "YES");
    EXPECT_NE(ValueOf(parsed, "DeidentificationMethod"), "");
    EXPECT_EQ(ValueOf(parsed, "DeidentificationMethodCodeSequence").substr(0, 15),
              "(Sequence with ");
  }

  void CheckIdentity(const DicomTags& original, const DicomTags& parsed, const Deidentifier& deid) {
    const std::string id = ValueOf(original, "PatientID");
    if (!id.empty()) {
      EXPECT_EQ(ValueOf(parsed, "PatientID"), deid.Pseudonym(id));
      EXPECT_EQ(ValueOf(parsed, "PatientName"), deid.Pseudonym(id));
    }
    EXPECT_EQ(ValueOf(parsed, "StudyDate"), ValueOf(original, "StudyDate"));
    const std::string birth = ValueOf(original, "PatientBirthDate");
    if (birth.size() == 8) {
      const std::string expected = deid.config().birth_date == BirthDateRule::kYear
                                       ? birth.substr(0, 4) + "0101"
                                       : birth.substr(0, 6) + "15";
      EXPECT_EQ(ValueOf(parsed, "PatientBirthDate"), expected);
    }
    for (const char* uid :
         {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"}) {
      const std::string before = ValueOf(original, uid);
      if (!before.empty()) {
        EXPECT_EQ(ValueOf(parsed, uid), deid.RemapUid(before)) << uid;
      }
    }
    EXPECT_EQ(ValueOf(parsed, "SOPClassUID"), ValueOf(original, "SOPClassUID"));
    if (!ValueOf(original, "SOPInstanceUID").empty() &&
        ValueOf(original, "MediaStorageSOPInstanceUID") == ValueOf(original, "SOPInstanceUID")) {
      EXPECT_EQ(ValueOf(parsed, "MediaStorageSOPInstanceUID"), ValueOf(parsed, "SOPInstanceUID"));
    }
    // Referenced SOP Instance UIDs anywhere are remapped like the SOP Instance UIDs they name.
    std::set<std::string> expected;
    for (const std::string& uid : AllValues(original, "00081155")) {
      expected.insert(deid.RemapUid(uid));
    }
    for (const std::string& uid : AllValues(parsed, "00081155")) {
      EXPECT_TRUE(expected.contains(uid)) << "ReferencedSOPInstanceUID not remapped";
    }
  }

  // NamesFor (paths of @anon and exports, from stored tags) agrees with the file's content.
  void CheckNames(const DicomTags& original, const DeidentifiedFile& file,
                  const Deidentifier& deid) {
    const DeidentifiedFile names = deid.NamesFor(original);
    EXPECT_EQ(names.patient_pseudonym, file.patient_pseudonym);
    EXPECT_EQ(names.study_instance_uid, file.study_instance_uid);
    EXPECT_EQ(names.series_instance_uid, file.series_instance_uid);
    EXPECT_EQ(names.sop_instance_uid, file.sop_instance_uid);
    EXPECT_EQ(names.study_date, file.study_date);
    EXPECT_EQ(names.series_number, file.series_number);
    const std::string path = AnonymousPath(names);
    EXPECT_EQ(std::count(path.begin(), path.end(), '/'), 3) << path;
    for (const char* keyword : {"PatientID", "PatientName", "StudyInstanceUID", "SOPInstanceUID"}) {
      const std::string value = ValueOf(original, keyword);
      if (value.size() >= 3) {
        EXPECT_EQ(path.find(value), std::string::npos) << keyword << " in path";
      }
    }
  }

  void CheckPixels(const DicomTags& original, const DeidentifiedFile& file,
                   const std::string& output, const std::string& bytes) {
    const DicomElement* pixels = original.Find("PixelData");
    if (pixels == nullptr) {
      EXPECT_EQ(file.pixel_length, 0u);
      return;
    }
    ++with_pixels_;
    if (file.pixel_length == 0) {  // deflated: rewritten whole, pixels included
      EXPECT_EQ(ValueOf(parsed_, "PixelData"), pixels->value);
      return;
    }
    ASSERT_GE(file.pixel_length, 8u);
    const std::string element = bytes.substr(file.pixel_offset, file.pixel_length);
    EXPECT_TRUE(element.starts_with(std::string("\xE0\x7F\x10\x00", 4)) ||
                element.starts_with(std::string("\x7F\xE0\x00\x10", 4)));
    EXPECT_TRUE(output.ends_with(element));
    if (pixels->value.starts_with("(") && !file.header.empty() &&
        !element.ends_with(std::string("\xFE\xFF\xDD\xE0\0\0\0\0", 8))) {
      const uint64_t value_bytes = std::stoull(pixels->value.substr(1));
      EXPECT_TRUE(file.pixel_length == value_bytes + 12 || file.pixel_length == value_bytes + 8);
    } else {
      ++encapsulated_;
    }
    if (element.starts_with(std::string("\x7F\xE0\x00\x10", 4))) ++big_endian_;
  }

  void CheckStreaming(const DeidentifiedFile& file, const std::string& bytes,
                      const std::string& output) {
    ASSERT_EQ(file.size(), output.size());
    std::string streamed;
    std::vector<char> buffer(4093);
    for (uint64_t offset = 0;;) {
      auto n = Deidentifier::ReadDeidentified(file, ReaderOf(bytes, 1000), offset, buffer);
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      if (*n == 0) break;
      streamed.append(buffer.data(), *n);
      offset += *n;
    }
    EXPECT_TRUE(streamed == output);
  }

  void CheckWithDcmdump(const DicomTags& original, const DeidentifiedFile& file,
                        const std::string& output) {
    for (const char* keyword : {"PatientName", "PatientID"}) {
      const std::string value = ValueOf(original, keyword);
      if (value.size() >= 3) {
        EXPECT_EQ(file.header.find(value), std::string::npos) << keyword << " left in output";
      }
    }
    if (!HaveTool("dcmdump")) return;
    const std::filesystem::path out = dir_.path() / "out.dcm";
    WriteFile(out, output);
    // What dcmdump shows of the whole file holds no original name or ID.
    const std::filesystem::path dump = dir_.path() / "out.txt";
    EXPECT_EQ(std::system(("dcmdump -q " + ShellQuote(out.string()) + " >" +
                           ShellQuote(dump.string()) + " 2>&1")
                              .c_str()),
              0);
    const std::string text = ReadFile(dump);
    for (const char* keyword : {"PatientName", "PatientID"}) {
      const std::string value = ValueOf(original, keyword);
      if (value.size() >= 3) {
        EXPECT_EQ(text.find(value), std::string::npos) << keyword << " shown by dcmdump";
      }
    }
  }

  test_util::ScopedTempDir dir_;
  DicomTags parsed_;  // the last output
  int processed_ = 0;
  int withheld_ = 0;
  int with_pixels_ = 0;
  int encapsulated_ = 0;
  int big_endian_ = 0;
};

TEST_F(DeidFileTest, EverySampleFollowsTheProfile) {
  // Burned-in annotation included, so that the secondary captures' headers are checked too.
  DeidConfig config;
  config.burned_in = BurnedInPolicy::kInclude;
  Deidentifier deid(TestKey(7), config);
  for (const auto& path : Samples()) CheckSample(path, deid);
  EXPECT_GE(processed_, 50);
  EXPECT_EQ(withheld_, 0);
  EXPECT_GE(with_pixels_, 40);
  EXPECT_GE(encapsulated_, 20);
  EXPECT_GE(big_endian_, 3);
}

TEST_F(DeidFileTest, SecondaryCapturesAreWithheldByDefault) {
  Deidentifier deid(TestKey(7), DeidConfig{});
  for (const auto& path : Samples()) CheckSample(path, deid);
  // The SC_* samples (Secondary Capture, BurnedInAnnotation absent) and no others.
  EXPECT_GE(withheld_, 20);
  EXPECT_GE(processed_, 30);
}

TEST_F(DeidFileTest, YearRuleAndShortReads) {
  DeidConfig config;
  config.birth_date = BirthDateRule::kYear;
  config.burned_in = BurnedInPolicy::kInclude;  // JPEG2000.dcm is a secondary capture
  Deidentifier deid(TestKey(7), config);
  for (const char* name : {"CT_small.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm"}) {
    CheckSample(test_util::kPydicomSamples / name, deid);
    const std::string bytes = ReadFile(test_util::kPydicomSamples / name);
    DeidentifiedFile whole, trickle;
    const std::string a = Run(deid, bytes, &whole);
    const std::string b = Run(deid, bytes, &trickle, /*chunk=*/7);
    EXPECT_FALSE(a.empty());
    EXPECT_TRUE(a == b) << name;
  }
  EXPECT_EQ(processed_, 3);
}

TEST_F(DeidFileTest, SamePatientAndStudyMapTheSameAcrossFiles) {
  Deidentifier deid(TestKey(7), DeidConfig{});
  DeidentifiedFile little, big, jpeg;
  Run(deid, ReadFile(test_util::kPydicomSamples / "MR_small.dcm"), &little);
  Run(deid, ReadFile(test_util::kPydicomSamples / "MR_small_bigendian.dcm"), &big);
  Run(deid, ReadFile(test_util::kPydicomSamples / "MR_small_jpeg_ls_lossless.dcm"), &jpeg);
  EXPECT_EQ(little.patient_pseudonym, deid.Pseudonym("4MR1"));
  EXPECT_EQ(little.patient_pseudonym, big.patient_pseudonym);
  EXPECT_EQ(little.study_instance_uid, big.study_instance_uid);
  EXPECT_EQ(little.study_instance_uid, jpeg.study_instance_uid);
  EXPECT_EQ(little.study_instance_uid, deid.RemapUid("1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"));
  EXPECT_EQ(little.series_instance_uid, big.series_instance_uid);
  EXPECT_FALSE(little.study_date.empty());
  EXPECT_GT(jpeg.pixel_length, 0u);
  DeidentifiedFile other;
  Run(deid, ReadFile(test_util::kPydicomSamples / "CT_small.dcm"), &other);
  EXPECT_NE(other.patient_pseudonym, little.patient_pseudonym);
  EXPECT_NE(other.study_instance_uid, little.study_instance_uid);
}

TEST_F(DeidFileTest, ReferencedInstancesMapToTheirTargets) {
  ASSERT_TRUE(HaveTool("dcmodify")) << "dcmodify (package dcmtk) is needed";
  Deidentifier deid(TestKey(7), DeidConfig{});
  const std::string target_bytes = ReadFile(test_util::kPydicomSamples / "MR_small.dcm");
  DeidentifiedFile target;
  Run(deid, target_bytes, &target);
  const std::filesystem::path copy = dir_.path() / "ref.dcm";
  std::filesystem::copy_file(test_util::kPydicomSamples / "CT_small.dcm", copy);
  const std::string uid = ParseDicom(target_bytes)->Find("SOPInstanceUID")->value;
  ASSERT_EQ(std::system(("dcmodify -nb -i '(0008,1140)[0].(0008,1150)=1.2.840.10008.5.1.4.1.1.4'"
                         " -i '(0008,1140)[0].(0008,1155)=" +
                         uid + "' " + ShellQuote(copy.string()) + " >/dev/null 2>&1")
                            .c_str()),
            0);
  const std::string bytes = ReadFile(copy);
  DeidentifiedFile file;
  const std::string output = Run(deid, bytes, &file);
  auto parsed = ParseDicom(output);
  ASSERT_OK(parsed);
  const std::vector<std::string> refs = AllValues(*parsed, "00081155");
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0], target.sop_instance_uid);
  EXPECT_EQ(AllValues(*parsed, "00081150"), std::vector<std::string>{"1.2.840.10008.5.1.4.1.1.4"});
}

TEST_F(DeidFileTest, ModifiedDatesShiftEveryDate) {
  DeidConfig config;
  config.temporal = TemporalRetention::kModifiedDates;
  config.keep_study_date = false;
  Deidentifier deid(TestKey(7), config);
  const std::string bytes = ReadFile(test_util::kPydicomSamples / "CT_small.dcm");
  auto original = ParseDicom(bytes);
  ASSERT_OK(original);
  DeidentifiedFile file;
  auto parsed = ParseDicom(Run(deid, bytes, &file));
  ASSERT_OK(parsed);
  const int days = deid.DateShiftDays("1CT1");
  for (const char* keyword : {"StudyDate", "AcquisitionDate", "ContentDate", "SeriesDate"}) {
    const std::string before = ValueOf(*original, keyword);
    if (before.empty()) continue;
    EXPECT_EQ(ValueOf(*parsed, keyword), deid_profile::ShiftDates(before, false, days)) << keyword;
  }
  EXPECT_EQ(ValueOf(*parsed, "AcquisitionTime"), ValueOf(*original, "AcquisitionTime"));
  EXPECT_EQ(ValueOf(*parsed, "LongitudinalTemporalInformationModified"), "MODIFIED");
  EXPECT_EQ(file.study_date, ValueOf(*parsed, "StudyDate"));
}

TEST_F(DeidFileTest, SafePrivateTagsStay) {
  const std::string bytes = ReadFile(test_util::kPydicomSamples / "CT_small.dcm");
  auto original = ParseDicom(bytes);
  ASSERT_OK(original);
  auto config = ParseDeidConfig("safe_private_tag = (0009,\"GEMS_IDEN_01\",04)\n");
  ASSERT_OK(config);
  Deidentifier deid(TestKey(7), *config);
  DeidentifiedFile file;
  auto parsed = ParseDicom(Run(deid, bytes, &file));
  ASSERT_OK(parsed);
  std::set<uint32_t> kept;
  for (const DicomElement& e : parsed->elements) {
    if (e.group & 1) kept.insert((uint32_t{e.group} << 16) | e.element);
  }
  EXPECT_EQ(kept, (std::set<uint32_t>{0x00090010, 0x00091004}));
}

TEST_F(DeidFileTest, DamagedFilesAreInvalidWithoutPatientData) {
  Deidentifier deid(TestKey(7), DeidConfig{});
  const std::string garbage(4096, 'x');
  EXPECT_EQ(deid.Deidentify(ReaderOf(garbage), garbage.size()).status().code(), Code::kInvalid);
  const std::string bytes = ReadFile(test_util::kPydicomSamples / "CT_small.dcm");
  for (size_t cut : {size_t{200}, bytes.size() / 2, bytes.size() - 200}) {
    const std::string truncated = bytes.substr(0, cut);
    auto file = deid.Deidentify(ReaderOf(truncated), truncated.size());
    ASSERT_FALSE(file.ok()) << cut;
    EXPECT_EQ(file.status().code(), Code::kInvalid);
    EXPECT_EQ(file.status().message().find("CompressedSamples"), std::string::npos);
  }
  const ReadAtFunction failing = [](uint64_t, std::span<char>) -> StatusOr<size_t> {
    return Status::IoError("disk on fire");
  };
  EXPECT_EQ(deid.Deidentify(failing, 1000).status().code(), Code::kIoError);
}

}  // namespace
}  // namespace medvfs::store
