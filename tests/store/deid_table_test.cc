// Table E.1-1 applied row by row: a file carrying every attribute of the table with a
// recognisable value (at the top level and again inside a kept sequence) goes through the
// Deidentifier, and every row's action is checked on the output; the whole output is scanned
// for every value that had to go. Then what cannot be made safe: encapsulated documents and
// burned-in annotation, withheld or masked.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
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
using deid_profile::ProfileRow;
using nlohmann::json;
using test_util::ReaderOf;
using test_util::ReadFile;
using test_util::ShellQuote;
using test_util::WriteFile;

constexpr uint32_t kPatientId = 0x00100020;
constexpr uint32_t kPatientName = 0x00100010;
constexpr uint32_t kBirthDate = 0x00100030;
constexpr uint32_t kStudyDate = 0x00080020;
constexpr uint32_t kEncapsulatedDocument = 0x00420011;
constexpr uint32_t kSourceImageSequence = 0x00082112;  // X/Z/U*: kept, cleaned inside

constexpr const char* kDate = "20010203";
constexpr const char* kStudyDateValue = "20020304";
constexpr const char* kDateTime = "20010203112233";
constexpr const char* kTime = "112233.445566";

SecretKey TestKey() {
  std::vector<uint8_t> bytes(kKeySize, 0x5A);
  return SecretKey::FromBytes(bytes);
}

std::string Hex8(uint32_t tag) {
  char text[16];
  std::snprintf(text, sizeof text, "%08X", tag);
  return text;
}

std::string TwoLetters(const char* vr) { return std::string(vr).substr(0, 2); }

bool IsTextVr(const std::string& vr) {
  for (const char* text : {"AE", "CS", "SH", "LO", "LT", "ST", "UT", "UC", "PN", "UR"}) {
    if (vr == text) return true;
  }
  return false;
}

// The recognisable value of a row: "Q<tag>" for text, a UID made of the tag, fixed dates and
// times; "" for numbers (not recognisable, checked by action only).
std::string OriginalValue(const ProfileRow& row, char mark = 'Q') {
  const std::string vr = TwoLetters(row.vr);
  if (row.tag == kStudyDate) return kStudyDateValue;
  if (IsTextVr(vr) || vr == "OB" || vr == "UN") return mark + Hex8(row.tag);
  if (vr == "UI") return "1.2.826.0.1.3680043.2.1143." + std::to_string(row.tag);
  if (vr == "DA") return kDate;
  if (vr == "DT") return kDateTime;
  if (vr == "TM") return kTime;
  if (vr == "AS") return "042Y";
  if (vr == "DS") return "7.5";
  return "7";  // IS, US, SS, UL...
}

std::string DumpLine(const ProfileRow& row, char mark) {
  const std::string vr = TwoLetters(row.vr);
  const std::string tag = "(" + Hex8(row.tag).substr(0, 4) + "," + Hex8(row.tag).substr(4) + ") ";
  if (vr == "SQ") {
    // One item with free text that must go, and a UID that must be remapped.
    return tag + "SQ (Sequence with undefined length)\n(fffe,e000) na (Item)\n" +
           "(0008,1155) UI [1.2.826.0.1.3680043.2.1143.9." + std::to_string(row.tag) + "]\n" +
           "(0010,4000) LT [N" + Hex8(row.tag) + "]\n" +
           "(fffe,e00d) na (ItemDelimitationItem)\n(fffe,e0dd) na (SequenceDelimitationItem)\n";
  }
  const std::string value = OriginalValue(row, mark);
  if (vr == "OB" || vr == "UN") {
    std::string bytes;
    std::string padded = value.size() % 2 ? value + " " : value;
    for (char c : padded) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "%s%02x", bytes.empty() ? "" : "\\", c);
      bytes += hex;
    }
    return tag + vr + " " + bytes + "\n";
  }
  if (IsTextVr(vr) || vr == "UI" || vr == "DA" || vr == "DT" || vr == "TM" || vr == "AS" ||
      vr == "DS" || vr == "IS") {
    return tag + vr + " [" + value + "]\n";
  }
  return tag + vr + " " + value + "\n";
}

// Rows a data set can carry (not the command group, the File Meta Information, nor trailing
// padding), and not EncapsulatedDocument (which withholds the file: tested below).
bool InDataSet(const ProfileRow& row) {
  const uint32_t group = row.tag >> 16;
  return group != 0x0000 && group != 0x0002 && row.tag != 0xFFFCFFFC &&
         row.tag != kEncapsulatedDocument;
}

// A DICOM file (CT Image Storage, no pixels) with every row at the top level, and every
// non-sequence row again inside SourceImageSequence's item, made by dump2dcm.
std::string EveryAttributeFile(const std::filesystem::path& dir, const std::string& extra = "") {
  std::string dump = "(0008,0016) UI [1.2.840.10008.5.1.4.1.1.2]\n" + extra;
  std::string nested;
  for (const ProfileRow& row : deid_profile::ProfileRows()) {
    if (!InDataSet(row)) continue;
    if (row.tag != kSourceImageSequence) dump += DumpLine(row, 'Q');
    if (TwoLetters(row.vr) != "SQ") nested += DumpLine(row, 'Q');
  }
  dump += "(0008,2112) SQ (Sequence with undefined length)\n(fffe,e000) na (Item)\n" + nested +
          "(fffe,e00d) na (ItemDelimitationItem)\n(fffe,e0dd) na (SequenceDelimitationItem)\n";
  const std::filesystem::path text = dir / "every.dump", out = dir / "every.dcm";
  WriteFile(text, dump);
  const std::string command = "dump2dcm -q +te " + ShellQuote(text.string()) + " " +
                              ShellQuote(out.string()) + " 2>" + ShellQuote((dir / "err").string());
  EXPECT_EQ(std::system(command.c_str()), 0) << "dump2dcm failed: " << ReadFile(dir / "err");
  return ReadFile(out);
}

const json* Element(const json& dataset, uint32_t tag) {
  auto it = dataset.find(Hex8(tag));
  return it == dataset.end() ? nullptr : &*it;
}

// The first value as text ("" when the element is empty).
std::string FirstValue(const json& element) {
  if (element.contains("InlineBinary")) return element["InlineBinary"].get<std::string>();
  if (!element.contains("Value") || element["Value"].empty()) return {};
  const json& v = element["Value"][0];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("Alphabetic")) return v["Alphabetic"].get<std::string>();
  if (v.is_object()) return v.dump();  // a sequence item
  return v.dump();
}

bool IsEmpty(const json& element) { return FirstValue(element).empty(); }

// DCMTK's data dictionary file: tag -> keyword ("RETIRED_" dropped, as the tag views do).
std::map<uint32_t, std::string> DcmtkDictionary() {
  std::map<uint32_t, std::string> words;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/share")) {
    if (!entry.path().filename().string().starts_with("libdcmtk")) continue;
    std::istringstream in(ReadFile(entry.path() / "dicom.dic"));
    std::string line;
    while (std::getline(in, line)) {
      unsigned group = 0, element = 0;
      char keyword[128];
      if (std::sscanf(line.c_str(), "(%4x,%4x)\t%*s\t%127s", &group, &element, keyword) != 3) {
        continue;
      }
      std::string word = keyword;
      if (word.starts_with("RETIRED_")) word.erase(0, 8);
      words[(group << 16) | element] = word;
    }
  }
  return words;
}

class EveryAttributeTest : public ::testing::Test {
 protected:
  // Checks the default profile's action of every row on `dataset` (the output's top level, or
  // the item of SourceImageSequence when `nested`).
  void CheckActions(const json& dataset, const Deidentifier& deid, bool nested) {
    const std::string patient_id = OriginalValue(*deid_profile::FindProfileRow(kPatientId));
    for (const ProfileRow& row : deid_profile::ProfileRows()) {
      if (!InDataSet(row) || (nested && TwoLetters(row.vr) == "SQ")) continue;
      if (!nested && row.tag == kSourceImageSequence) continue;
      SCOPED_TRACE(std::string(row.keyword) + (nested ? " (in a sequence)" : ""));
      ++checked_;
      const json* out = Element(dataset, row.tag);
      const std::string original = OriginalValue(row);
      const bool sequence = TwoLetters(row.vr) == "SQ";
      if (row.tag == kPatientId || row.tag == kPatientName) {
        ASSERT_NE(out, nullptr);
        EXPECT_EQ(FirstValue(*out), deid.Pseudonym(patient_id));
        continue;
      }
      if (row.tag == kBirthDate) {
        ASSERT_NE(out, nullptr);
        EXPECT_EQ(FirstValue(*out), "20010215");
        continue;
      }
      if (row.tag == kStudyDate) {  // the clinic's extension: kept
        ASSERT_NE(out, nullptr);
        EXPECT_EQ(FirstValue(*out), kStudyDateValue);
        continue;
      }
      const Action action = deid_profile::EffectiveAction(row, deid.config());
      const bool replaced = out != nullptr && !IsEmpty(*out) && FirstValue(*out) != original;
      switch (action) {
        case Action::kX:
          EXPECT_EQ(out, nullptr) << "not removed";
          break;
        case Action::kZ:
          ASSERT_NE(out, nullptr) << "Z: removed";
          EXPECT_TRUE(IsEmpty(*out)) << "Z: not emptied";
          break;
        case Action::kD:
          ASSERT_NE(out, nullptr) << "D: removed";
          if (sequence) {
            EXPECT_TRUE(IsEmpty(*out));
          } else {
            EXPECT_TRUE(replaced) << "D: no dummy";
          }
          break;
        case Action::kZD:
          ASSERT_NE(out, nullptr) << "Z/D: removed";
          EXPECT_TRUE(IsEmpty(*out) || replaced);
          break;
        case Action::kXZ:
          EXPECT_TRUE(out == nullptr || IsEmpty(*out));
          break;
        case Action::kXD:
        case Action::kXZD:
          EXPECT_TRUE(out == nullptr || IsEmpty(*out) || (!sequence && replaced));
          break;
        case Action::kU:
          ASSERT_NE(out, nullptr) << "U: removed";
          EXPECT_EQ(FirstValue(*out), deid.RemapUid(original));
          break;
        case Action::kXZU:
          ASSERT_NE(out, nullptr);
          break;
        case Action::kK:
        case Action::kC:
        case Action::kNone:
          ADD_FAILURE() << "the Basic Profile has no K, C or empty action";
          break;
      }
    }
  }

  test_util::ScopedTempDir dir_;
  int checked_ = 0;
};

TEST_F(EveryAttributeTest, EveryRowHasAnActionAndAKeyword) {
  const std::map<uint32_t, std::string> dictionary = DcmtkDictionary();
  ASSERT_GE(dictionary.size(), 4000u) << "DCMTK's dicom.dic is needed";
  const auto rows = deid_profile::ProfileRows();
  EXPECT_GE(rows.size(), 600u);  // the 2024b table has 617 rows with plain tags
  for (const ProfileRow& row : rows) {
    EXPECT_NE(row.basic, Action::kNone) << row.keyword << " has no Basic Profile action";
    EXPECT_NE(std::string(row.keyword), "") << std::hex << row.tag;
    EXPECT_EQ(std::string(row.vr).size() >= 2, true) << row.keyword;
    // Where DCMTK knows the tag, the keyword is DCMTK's (the tag views show the same).
    const auto known = dictionary.find(row.tag);
    EXPECT_EQ(row.dcmtk_knows, known != dictionary.end()) << row.keyword;
    if (known != dictionary.end()) {
      EXPECT_EQ(known->second, row.keyword);
    }
  }
  // Rows added since the 2021 edition the issue names.
  for (uint32_t tag :
       {0x00080013u /* InstanceCreationTime */, 0x00400241u, 0x04000115u /* CertificateOfSigner */,
        0x30100077u /* TreatmentSite */, 0x00720071u /* SelectorURValue */}) {
    EXPECT_NE(deid_profile::FindProfileRow(tag), nullptr) << std::hex << tag;
  }
  EXPECT_STREQ(deid_profile::kProfileEdition, "DICOM PS3.15 2024b Table E.1-1");
}

TEST_F(EveryAttributeTest, EveryActionIsAppliedAndNoValueThatMustGoIsLeft) {
  const std::string bytes = EveryAttributeFile(dir_.path());
  ASSERT_FALSE(bytes.empty());
  Deidentifier deid(TestKey(), DeidConfig{});
  auto file = deid.Deidentify(ReaderOf(bytes), bytes.size());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ(file->withheld, WithholdReason::kNone);
  const std::string output = file->header;  // no pixels
  auto parsed = ParseDicom(output, output.size());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const json dataset = json::parse(parsed->json);
  CheckActions(dataset, deid, /*nested=*/false);
  const json* sequence = Element(dataset, kSourceImageSequence);
  ASSERT_NE(sequence, nullptr);
  ASSERT_TRUE(sequence->contains("Value") && (*sequence)["Value"].size() == 1u);
  CheckActions((*sequence)["Value"][0], deid, /*nested=*/true);
  EXPECT_GE(checked_, 1000);

  // Every byte of the output: no recognisable value of a row whose action removes it.
  for (const ProfileRow& row : deid_profile::ProfileRows()) {
    if (!InDataSet(row) || row.tag == kStudyDate) continue;
    const std::string vr = TwoLetters(row.vr);
    std::string value = OriginalValue(row);
    if (vr == "DA" || vr == "DT") value = kDate;
    if (vr == "TM") value = "112233.4455";
    if (vr == "SQ") value = "N" + Hex8(row.tag);
    if (value.size() < 6) continue;  // numbers: checked by action above
    EXPECT_EQ(output.find(value), std::string::npos) << row.keyword << ": its value is left";
  }
  const std::string method = parsed->Find("DeidentificationMethod")->value;
  EXPECT_NE(method.find("PS3.15 2024b"), std::string::npos) << method;
}

TEST_F(EveryAttributeTest, OptionsKeepWhatTheirColumnsSay) {
  const std::string bytes = EveryAttributeFile(dir_.path());
  ASSERT_FALSE(bytes.empty());
  DeidConfig config;
  config.temporal = TemporalRetention::kFullDates;
  config.retain_device_identity = true;
  config.retain_institution_identity = true;
  config.retain_patient_characteristics = true;
  config.retain_uids = true;
  config.clean_descriptors = true;
  Deidentifier deid(TestKey(), config);
  auto file = deid.Deidentify(ReaderOf(bytes), bytes.size());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto parsed = ParseDicom(file->header, file->header.size());
  ASSERT_TRUE(parsed.ok());
  const json dataset = json::parse(parsed->json);
  int kept = 0;
  for (const ProfileRow& row : deid_profile::ProfileRows()) {
    if (!InDataSet(row) || row.tag == kSourceImageSequence || row.tag == kPatientId ||
        row.tag == kPatientName || row.tag == kBirthDate) {
      continue;
    }
    const Action action = deid_profile::EffectiveAction(row, config);
    if (action != Action::kK && action != Action::kC) continue;
    SCOPED_TRACE(row.keyword);
    const json* out = Element(dataset, row.tag);
    ASSERT_NE(out, nullptr) << "kept by an option, but removed";
    const std::string vr = TwoLetters(row.vr);
    if (vr != "SQ" && vr != "OB" && vr != "UN") {
      EXPECT_EQ(FirstValue(*out), OriginalValue(row));
    }
    ++kept;
  }
  EXPECT_GE(kept, 300);
  const std::string method = parsed->Find("DeidentificationMethod")->value;
  EXPECT_NE(method.find("Retain Institution Identity"), std::string::npos);
}

// ---- Withholding -----------------------------------------------------------------------------

bool Shell(const std::string& command) { return std::system(command.c_str()) == 0; }

TEST_F(EveryAttributeTest, EncapsulatedDocumentsAreWithheld) {
  // An Encapsulated PDF made by pdf2dcm from a PDF that names the patient.
  const std::filesystem::path pdf = dir_.path() / "report.pdf", dcm = dir_.path() / "report.dcm";
  WriteFile(pdf,
            "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 "
            "R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]/Contents "
            "4 0 R>>endobj\n4 0 obj<</Length 60>>stream\nBT /F1 12 Tf 10 100 Td (Doe^Jane "
            "19670312 MRN4711) Tj ET\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n");
  ASSERT_TRUE(Shell("pdf2dcm -q +pn Doe^Jane +pi MRN4711 +pb 19670312 " + ShellQuote(pdf.string()) +
                    " " + ShellQuote(dcm.string())))
      << "pdf2dcm (dcmtk) is needed";
  const std::string bytes = ReadFile(dcm);
  ASSERT_NE(bytes.find("MRN4711) Tj"), std::string::npos);
  Deidentifier deid(TestKey(), DeidConfig{});
  auto file = deid.Deidentify(ReaderOf(bytes), bytes.size());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->withheld, WithholdReason::kEncapsulatedDocument);
  EXPECT_TRUE(file->header.empty());
  EXPECT_EQ(file->size(), 0u);
  std::vector<char> buffer(64);
  EXPECT_FALSE(Deidentifier::ReadDeidentified(*file, ReaderOf(bytes), 0, buffer).ok());
  // Even an include policy for burned-in text does not publish a document.
  DeidConfig include;
  include.burned_in = BurnedInPolicy::kInclude;
  auto again = Deidentifier(TestKey(), include).Deidentify(ReaderOf(bytes), bytes.size());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->withheld, WithholdReason::kEncapsulatedDocument);

  // The attribute alone, in any class, withholds too.
  const std::string with_document =
      EveryAttributeFile(dir_.path(), "(0042,0011) OB 25\\50\\44\\46\n");
  auto other = deid.Deidentify(ReaderOf(with_document), with_document.size());
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->withheld, WithholdReason::kEncapsulatedDocument);
  EXPECT_EQ(WithholdReasonName(WithholdReason::kEncapsulatedDocument), "encapsulated-document");
}

// An ultrasound image with burned-in annotation, made from pydicom's CT_small.dcm (128 x 128,
// 16 bits, uncompressed) by dcmodify.
std::string BurnedInUltrasound(const std::filesystem::path& dir, const char* burned_in) {
  const std::filesystem::path out = dir / "us.dcm";
  std::filesystem::copy_file(test_util::kPydicomSamples / "CT_small.dcm", out,
                             std::filesystem::copy_options::overwrite_existing);
  // (dcmodify updates MediaStorageSOPClassUID itself; CT_small has no BurnedInAnnotation.)
  std::string command =
      "dcmodify -q -nb -m SOPClassUID=1.2.840.10008.5.1.4.1.1.6.1 -m Modality=US -i "
      "'Manufacturer=ACME Imaging' -i 'ManufacturerModelName=Sono 5' ";
  if (burned_in != nullptr) command += std::string("-i BurnedInAnnotation=") + burned_in + " ";
  EXPECT_TRUE(Shell(command + ShellQuote(out.string()))) << "dcmodify (dcmtk) is needed";
  return ReadFile(out);
}

TEST_F(EveryAttributeTest, BurnedInUltrasoundIsWithheldByDefault) {
  for (const char* burned_in : {"YES", static_cast<const char*>(nullptr)}) {
    SCOPED_TRACE(burned_in == nullptr ? "absent" : burned_in);
    const std::string bytes = BurnedInUltrasound(dir_.path(), burned_in);
    ASSERT_FALSE(bytes.empty());
    auto file = Deidentifier(TestKey(), DeidConfig{}).Deidentify(ReaderOf(bytes), bytes.size());
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_EQ(file->withheld, WithholdReason::kBurnedInAnnotation);
    EXPECT_EQ(file->size(), 0u);
    // Masking asked, but no rule matches this device: still withheld.
    DeidConfig mask = *ParseDeidConfig(
        "burned_in_annotation = mask\n"
        "pixel_mask = modality=US manufacturer=\"OTHER\" : (0,0,10,10)\n");
    auto unmatched = Deidentifier(TestKey(), mask).Deidentify(ReaderOf(bytes), bytes.size());
    ASSERT_TRUE(unmatched.ok());
    EXPECT_EQ(unmatched->withheld, WithholdReason::kNoMaskRule);
  }
  // BurnedInAnnotation NO on an ultrasound: published.
  const std::string no = BurnedInUltrasound(dir_.path(), "NO");
  auto file = Deidentifier(TestKey(), DeidConfig{}).Deidentify(ReaderOf(no), no.size());
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->withheld, WithholdReason::kNone);
  // Included when the config says so.
  const std::string yes = BurnedInUltrasound(dir_.path(), "YES");
  DeidConfig include = *ParseDeidConfig("burned_in_annotation = include\n");
  auto included = Deidentifier(TestKey(), include).Deidentify(ReaderOf(yes), yes.size());
  ASSERT_TRUE(included.ok());
  EXPECT_EQ(included->withheld, WithholdReason::kNone);
  EXPECT_GT(included->size(), 0u);
}

TEST_F(EveryAttributeTest, BurnedInUltrasoundIsMaskedWhenConfigured) {
  const std::string bytes = BurnedInUltrasound(dir_.path(), "YES");
  ASSERT_FALSE(bytes.empty());
  auto config = ParseDeidConfig(
      "burned_in_annotation = mask\n"
      "pixel_mask = modality=CT : (0,0,1,1)   # does not match: CT\n"
      "pixel_mask = modality=US manufacturer=\"acme\" model=\"Sono\" size=128x128 : "
      "(0,0,128,10) (100,100,20,5)\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_EQ(config->pixel_masks.size(), 2u);
  Deidentifier deid(TestKey(), *config);
  auto file = deid.Deidentify(ReaderOf(bytes), bytes.size());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ(file->withheld, WithholdReason::kNone);
  ASSERT_TRUE(file->mask.active());
  std::string output;
  std::vector<char> buffer(777);  // odd pieces: the mask must hold across reads
  for (uint64_t offset = 0;;) {
    auto n = Deidentifier::ReadDeidentified(*file, ReaderOf(bytes), offset, buffer);
    ASSERT_TRUE(n.ok());
    if (*n == 0) break;
    output.append(buffer.data(), *n);
    offset += *n;
  }
  ASSERT_EQ(output.size(), file->size());
  // The pixel values: 128 x 128 x 2 bytes at the end of both files.
  constexpr size_t kPixels = 128 * 128 * 2;
  ASSERT_GE(output.size(), kPixels);
  const std::string before = bytes.substr(bytes.size() - kPixels);
  const std::string after = output.substr(output.size() - kPixels);
  size_t zeroed = 0, unchanged = 0;
  for (size_t row = 0; row < 128; ++row) {
    for (size_t column = 0; column < 128; ++column) {
      const bool masked = row < 10 || (row >= 100 && row < 105 && column >= 100 && column < 120);
      const size_t at = (row * 128 + column) * 2;
      if (masked) {
        EXPECT_EQ(after[at], 0);
        EXPECT_EQ(after[at + 1], 0);
        zeroed += after[at] == 0 && after[at + 1] == 0;
      } else {
        EXPECT_EQ(after.substr(at, 2), before.substr(at, 2));
        unchanged += after.substr(at, 2) == before.substr(at, 2);
      }
    }
  }
  EXPECT_EQ(zeroed, 128u * 10 + 20 * 5);
  EXPECT_EQ(unchanged, 128u * 128 - zeroed);
  auto parsed = ParseDicom(output, output.size());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->Find("BurnedInAnnotation")->value, "NO");
  EXPECT_NE(parsed->Find("DeidentificationMethod")->value.find("masked"), std::string::npos);
}

// A compressed (RLE, RGB, 2 frames) secondary capture: decompressed by DCMTK's decoder, masked
// in both frames, written uncompressed; the rest of the pixels equal dcmdrle's decoding.
TEST_F(EveryAttributeTest, CompressedPixelsAreDecompressedThenMasked) {
  const std::filesystem::path source = test_util::kPydicomSamples / "SC_rgb_rle_2frame.dcm";
  const std::filesystem::path plain = dir_.path() / "plain.dcm";
  ASSERT_TRUE(Shell("dcmdrle -q " + ShellQuote(source.string()) + " " + ShellQuote(plain.string())))
      << "dcmdrle (dcmtk) is needed";
  const std::string bytes = ReadFile(source);
  auto config = ParseDeidConfig(
      "burned_in_annotation = mask\npixel_mask = modality=OT size=100x100 : (10,20,30,5)\n");
  ASSERT_TRUE(config.ok());
  auto file = Deidentifier(TestKey(), *config).Deidentify(ReaderOf(bytes), bytes.size());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ(file->withheld, WithholdReason::kNone);
  EXPECT_EQ(file->pixel_length, 0u);  // the pixels are in the rewritten data set
  const std::string output = file->header;
  auto parsed = ParseDicom(output, output.size());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->Find("BurnedInAnnotation")->value, "NO");
  const bool planar = parsed->Find("PlanarConfiguration")->value == "1";
  constexpr size_t kFrame = 100 * 100 * 3;
  const std::string decoded = ReadFile(plain);
  ASSERT_GT(output.size(), 2 * kFrame);
  ASSERT_GT(decoded.size(), 2 * kFrame);
  const std::string after = output.substr(output.size() - 2 * kFrame);
  const std::string before = decoded.substr(decoded.size() - 2 * kFrame);
  size_t zeroed = 0, same = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    const size_t in_frame = i % kFrame;
    const size_t pixel = planar ? in_frame % (100 * 100) : in_frame / 3;
    const size_t row = pixel / 100, column = pixel % 100;
    if (row >= 20 && row < 25 && column >= 10 && column < 40) {
      zeroed += after[i] == 0;
    } else {
      same += after[i] == before[i];
    }
  }
  EXPECT_EQ(zeroed, 2u * 3 * 30 * 5);
  EXPECT_EQ(same, 2 * kFrame - zeroed);
}

TEST(DeidMaskConfigTest, TheManPageExampleParses) {
  auto config = ParseDeidConfig(
      "burned_in_annotation = mask               # ultrasound header bars zeroed\n"
      "pixel_mask = modality=US manufacturer=\"ACME\" size=480x640 : (0,0,640,48)\n"
      "pixel_mask = modality=US : (0,0,1024,64)  # any other ultrasound\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->burned_in, BurnedInPolicy::kMask);
  ASSERT_EQ(config->pixel_masks.size(), 2u);
  EXPECT_EQ(config->pixel_masks[0].manufacturer, "ACME");
  EXPECT_EQ(config->pixel_masks[0].rows, 480u);
  EXPECT_EQ(config->pixel_masks[0].columns, 640u);
  EXPECT_EQ(config->pixel_masks[1].rectangles[0].width, 1024u);
}

TEST(DeidMaskConfigTest, BadRulesAreRefused) {
  for (const char* bad : {"pixel_mask = modality=US", "pixel_mask = modality=US : (0,0,0,5)",
                          "pixel_mask = colour=red : (0,0,1,1)", "pixel_mask = : (1,2,3)",
                          "pixel_mask = size=12 : (0,0,1,1)", "burned_in_annotation = maybe"}) {
    EXPECT_FALSE(ParseDeidConfig(bad).ok()) << bad;
  }
  auto rule = ParseDeidConfig("pixel_mask = : (1,2,3,4)\nretain_institution_identity = yes\n");
  ASSERT_TRUE(rule.ok());
  ASSERT_EQ(rule->pixel_masks.size(), 1u);
  EXPECT_EQ(rule->pixel_masks[0].rectangles[0].height, 4u);
  EXPECT_TRUE(rule->retain_institution_identity);
}

}  // namespace
}  // namespace medvfs::store
