// A scan of every byte of every de-identified python3-pydicom sample for every identifying
// string of its source: names, IDs, instance UIDs, dates and times that are not kept,
// institutions, AE titles, free text: the value of every attribute whose Table E.1-1 action
// does not keep it, at any depth, and every instance UID and every date and time anywhere.
// A string may only appear where the output legitimately keeps an equal value (StudyDate, a
// kept attribute outside the table).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/dicom/deid.h"
#include "store/dicom/deid_profile.h"
#include "store/dicom/dicom.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using deid_profile::Action;
using nlohmann::json;
using test_util::ReaderOf;
using test_util::ReadFile;

// Each string value of an element (PN: each component group's text).
std::vector<std::string> Strings(const json& element) {
  std::vector<std::string> out;
  if (!element.contains("Value")) return out;
  for (const json& v : element["Value"]) {
    if (v.is_string()) out.push_back(v.get<std::string>());
    if (v.is_object()) {
      for (const char* group : {"Alphabetic", "Ideographic", "Phonetic"}) {
        if (v.contains(group)) out.push_back(v[group].get<std::string>());
      }
    }
  }
  return out;
}

// UIDs that name no instance: DICOM's own (classes, transfer syntaxes...), and the values of
// elements that name classes and coding resources (CodingSchemeUID, ContextUID...).
bool NamesNoInstance(uint32_t tag, const std::string& uid) {
  for (uint32_t t : {0x00080016u, 0x0008001Au, 0x0008001Bu, 0x0008010Cu, 0x0008010Du, 0x00080117u,
                     0x00080118u, 0x00081150u, 0x00041510u}) {
    if (tag == t) return true;
  }
  return uid.starts_with("1.2.840.10008.");
}

// Walks a DICOM JSON data set: `must_go` collects what may not stay, `kept` what the output
// keeps legitimately (called on the output).
void Collect(const json& dataset, const DeidConfig& config, std::set<std::string>* must_go,
             std::set<std::string>* kept) {
  for (const auto& [key, element] : dataset.items()) {
    if (!element.is_object() || !element.contains("vr")) continue;
    const uint32_t tag = static_cast<uint32_t>(std::stoul(key, nullptr, 16));
    const std::string vr = element["vr"].get<std::string>();
    if (vr == "SQ") {
      if (element.contains("Value")) {
        for (const json& item : element["Value"]) Collect(item, config, must_go, kept);
      }
      continue;
    }
    const auto* row = deid_profile::FindProfileRow(tag);
    const bool private_tag = ((tag >> 16) & 1) != 0;
    bool identifying = private_tag || (row != nullptr && tag != 0x00080020 &&  // StudyDate kept
                                       deid_profile::EffectiveAction(*row, config) != Action::kK);
    if (vr == "UI") identifying = true;
    // Dates and times are the patient's, but for StudyDate (kept) and the versions of coding
    // resources (ContextGroupVersion, ContextGroupLocalVersion).
    if (vr == "DA" || vr == "DT" || vr == "TM") {
      identifying = tag != 0x00080020 && tag != 0x00080106 && tag != 0x00080107;
    }
    for (const std::string& value : Strings(element)) {
      if (vr == "UI" && NamesNoInstance(tag, value)) continue;
      if (must_go != nullptr && identifying) must_go->insert(value);
      if (kept != nullptr && !identifying) kept->insert(value);
    }
  }
}

class DeidLeakTest : public ::testing::TestWithParam<BurnedInPolicy> {};

TEST_P(DeidLeakTest, NoIdentifyingStringOfItsSourceInAnyOutput) {
  ASSERT_TRUE(std::filesystem::is_directory(test_util::kPydicomSamples))
      << "python3-pydicom's sample files are needed";
  DeidConfig config;
  config.burned_in = GetParam();
  std::vector<uint8_t> key_bytes(kKeySize, 0x33);
  Deidentifier deid(SecretKey::FromBytes(key_bytes), config);
  int scanned = 0, strings = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test_util::kPydicomSamples)) {
    if (entry.path().extension() != ".dcm") continue;
    SCOPED_TRACE(entry.path().filename().string());
    const std::string bytes = ReadFile(entry.path());
    auto original = ParseDicom(bytes, bytes.size());
    if (!original.ok()) continue;  // not DICOM to the archive either: never de-identified
    auto file = deid.Deidentify(ReaderOf(bytes), bytes.size());
    ASSERT_TRUE(file.ok()) << file.status().ToString();  // DICOM to the archive: de-identified
    std::string output = file->header;
    output += bytes.substr(static_cast<size_t>(file->pixel_offset),
                           static_cast<size_t>(file->pixel_length));
    if (file->withheld != WithholdReason::kNone) {
      EXPECT_TRUE(output.empty());
      continue;
    }
    ++scanned;
    std::set<std::string> must_go, kept;
    Collect(json::parse(original->json), config, &must_go, nullptr);
    auto parsed = ParseDicom(output, output.size());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    Collect(json::parse(parsed->json), config, nullptr, &kept);
    std::string kept_text;
    for (const std::string& value : kept) kept_text += value + '\n';
    // What medvfs writes itself: the pseudonym, the dummy text (a source value "ANON" is there
    // by chance, not leaked).
    kept_text += file->patient_pseudonym + "\nANONYMIZED\n";
    for (const DicomElement& element : original->elements) {  // the meta group's AE titles too
      if (element.vr == "AE" && element.value.size() >= 4) must_go.insert(element.value);
    }
    for (const std::string& value : must_go) {
      std::string trimmed = value;
      while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\0')) {
        trimmed.pop_back();
      }
      // Short values ("1", "M", "Y") identify no one and occur by chance.
      // ... nor where a kept value holds it (InstitutionName TOSHIBA in Manufacturer
      // TOSHIBA_MEC).
      if (trimmed.size() < 4 || kept_text.find(trimmed) != std::string::npos) continue;
      ++strings;
      EXPECT_EQ(output.find(trimmed), std::string::npos)
          << "an identifying value of the source is in the output (" << trimmed.size()
          << " characters, at " << output.find(trimmed) << ")";
    }
  }
  EXPECT_GE(scanned, GetParam() == BurnedInPolicy::kInclude ? 50 : 30);
  EXPECT_GE(strings, 300);
}

INSTANTIATE_TEST_SUITE_P(Policies, DeidLeakTest,
                         ::testing::Values(BurnedInPolicy::kWithhold, BurnedInPolicy::kInclude));

}  // namespace
}  // namespace medvfs::store
