// Which bytes are DICOM (LooksLikeDicom, ParseDicom): Part 10 files, and data sets without the
// Part 10 header (issue 17: pydicom's rtstruct.dcm, which DCMTK, pydicom and Orthanc read, was
// kept as plain bytes). Checked against DCMTK's dcmdump over every file of python3-pydicom,
// against the Part 10 form of random data sets in every syntax, and against random bytes and
// other formats, which must never be taken for DICOM.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/dicom/dicom.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::ReadFile;
using test_util::ShellQuote;

// Runs a shell command; its standard output, and whether it exited with 0.
bool RunCommand(const std::string& command, std::string* out) {
  FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  if (pipe == nullptr) return false;
  char buffer[65536];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out->append(buffer, n);
  return pclose(pipe) == 0;
}

bool HasDicm(std::string_view bytes) {
  return bytes.size() >= 132 && bytes.substr(128, 4) == "DICM";
}

// What LooksLikeDicom sees of a file in the archive (store/archive/archive_dicom.cc reads 4 KiB).
std::string_view Head(std::string_view bytes) { return bytes.substr(0, 4096); }

// Every regular file of the samples, the dicomdir folder's included: DICOM or not, by DCMTK's
// dcmdump (which reads a file without a Part 10 header as a data set, E_FileReadMode_Auto); and
// for those, every top-level keyword the store gives is dcmdump's.
TEST(DicomDetectTest, EveryPydicomFileDcmtkReadsIsRecognisedAndNothingElse) {
  ASSERT_TRUE(std::filesystem::is_directory(test_util::kPydicomSamples))
      << "python3-pydicom's sample files are not installed (tools/install-deps.sh)";
  std::string found;
  ASSERT_TRUE(RunCommand("command -v dcmdump", &found)) << "dcmdump (package dcmtk) is missing";
  std::vector<std::filesystem::path> files;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(test_util::kPydicomSamples)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GT(files.size(), 100u);
  // One shell for all of them: "=1 path" when dcmdump reads the file, then the top-level lines
  // of its dump ("(gggg,eeee) VR value  # length, VM Keyword"); "=0 path" when it does not.
  std::string script = "t=$(mktemp); for f in";
  for (const auto& file : files) script += " " + ShellQuote(file.string());
  script +=
      "; do if dcmdump -q +Qo \"$f\" >\"$t\" 2>/dev/null; then echo \"=1 $f\"; grep '^(' \"$t\";"
      " else echo \"=0 $f\"; fi; done; rm -f \"$t\"";
  std::string verdicts;
  ASSERT_TRUE(RunCommand(script, &verdicts));
  std::map<std::string, bool> dcmtk_reads;
  // dcmdump's keyword of each top-level tag, e.g. "(0008,0016)" -> "SOPClassUID".
  std::map<std::string, std::map<std::string, std::string>> dcmdump_keywords;
  std::string current;
  size_t start = 0;
  for (size_t end; (end = verdicts.find('\n', start)) != std::string::npos; start = end + 1) {
    const std::string line = verdicts.substr(start, end - start);
    if (line.size() > 3 && line[0] == '=') {
      current = line.substr(3);
      dcmtk_reads[current] = line[1] == '1';
    } else if (line.size() > 11 && line[0] == '(') {
      std::string keyword = line.substr(line.find_last_of(' ') + 1);
      if (keyword.starts_with("RETIRED_")) keyword = keyword.substr(8);
      dcmdump_keywords[current][line.substr(0, 11)] = keyword;
    }
  }
  ASSERT_EQ(dcmtk_reads.size(), files.size());

  int bare_read = 0;
  int keywords_compared = 0;
  std::set<std::string> overrun;
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    const std::string bytes = ReadFile(file);
    const bool dcmtk = dcmtk_reads[file.string()];
    const bool looks = LooksLikeDicom(Head(bytes));
    const auto parsed = ParseDicom(bytes, bytes.size());
    if (dcmtk) {
      EXPECT_TRUE(looks) << "DCMTK reads it";
      // ParseDicom refuses on purpose a value that runs past the end of the file (before DCMTK
      // would allocate it), which DCMTK forgives: DICOMDIR-nooffset's sequence claims 24 bytes
      // more than the file has. Nothing else may fail.
      if (!parsed.ok()) {
        EXPECT_NE(parsed.status().message().find("a value runs past the end"), std::string::npos)
            << "DCMTK reads it: " << parsed.status().ToString();
        overrun.insert(file.filename().string());
      }
    }
    if (dcmtk && parsed.ok()) {
      // The store's keywords (those `medvfs tags` shows) are dcmdump's, meta header included.
      const std::map<std::string, std::string>& theirs = dcmdump_keywords[file.string()];
      for (const DicomElement& e : parsed->elements) {
        char tag[16];
        std::snprintf(tag, sizeof tag, "(%04x,%04x)", e.group, e.element);
        auto it = theirs.find(tag);
        if (e.keyword.empty() || it == theirs.end()) continue;
        EXPECT_EQ(e.keyword, it->second) << tag;
        ++keywords_compared;
      }
    }
    if (!HasDicm(bytes)) {
      // The structural check: every file it accepts parses, and it accepts no file DCMTK
      // refuses (text, JSON, gzip, a data set shifted by one byte).
      EXPECT_EQ(looks, dcmtk);
      if (looks) {
        EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
      }
      if (dcmtk && parsed.ok()) {
        ++bare_read;
        EXPECT_EQ(parsed->Find("TransferSyntaxUID"), nullptr) << "no meta header to show";
        EXPECT_NE(parsed->Find("SOPInstanceUID"), nullptr);
        EXPECT_NE(parsed->json.find("\"00080018\""), std::string::npos);
      }
    }
  }
  // rtstruct.dcm (implicit VR), ExplVR_LitEndNoMeta.dcm, ExplVR_BigEndNoMeta.dcm.
  EXPECT_GE(bare_read, 3);
  EXPECT_EQ(overrun, std::set<std::string>{"DICOMDIR-nooffset"});
  EXPECT_GT(keywords_compared, 5000);
}

TEST(DicomDetectTest, RtstructWithoutAHeaderHasItsTags) {
  const std::string bytes = ReadFile(test_util::kPydicomSamples / "rtstruct.dcm");
  ASSERT_FALSE(bytes.empty()) << "python3-pydicom's sample files are not installed";
  ASSERT_FALSE(HasDicm(bytes));
  EXPECT_TRUE(LooksLikeDicom(bytes.substr(0, 132)));
  ASSERT_OK_AND_ASSIGN(DicomTags tags, ParseDicom(bytes, bytes.size()));
  ASSERT_NE(tags.Find("Modality"), nullptr);
  EXPECT_EQ(tags.Find("Modality")->value, "RTSTRUCT");
  ASSERT_NE(tags.Find("PatientID"), nullptr);
  EXPECT_FALSE(tags.Find("PatientID")->value.empty());
  EXPECT_NE(tags.Find("StudyInstanceUID"), nullptr);
  EXPECT_EQ(tags.elements.front().group, 0x0008) << "no group 0002 without a header";
}

// ---- Random data sets, bare and in a Part 10 file ----------------------------------------

struct Syntax {
  const char* uid;
  bool explicit_vr;
  bool big_endian;
};
constexpr Syntax kSyntaxes[] = {{"1.2.840.10008.1.2", false, false},
                                {"1.2.840.10008.1.2.1", true, false},
                                {"1.2.840.10008.1.2.2", true, true}};

struct Attribute {
  uint16_t group;
  uint16_t element;
  const char* vr;
};
// In tag order; the data sets are drawn from these.
constexpr Attribute kAttributes[] = {
    {0x0008, 0x0008, "CS"}, {0x0008, 0x0016, "UI"}, {0x0008, 0x0018, "UI"}, {0x0008, 0x0020, "DA"},
    {0x0008, 0x0060, "CS"}, {0x0008, 0x103E, "LO"}, {0x0010, 0x0010, "PN"}, {0x0010, 0x0020, "LO"},
    {0x0010, 0x0030, "DA"}, {0x0018, 0x0050, "DS"}, {0x0020, 0x000D, "UI"}, {0x0020, 0x0013, "IS"},
    {0x0028, 0x0010, "US"}, {0x0028, 0x0011, "US"}, {0x0028, 0x0030, "DS"}};

void Put16(std::string* out, uint16_t v, bool big) {
  const char hi = static_cast<char>(v >> 8), lo = static_cast<char>(v & 0xFF);
  out->push_back(big ? hi : lo);
  out->push_back(big ? lo : hi);
}
void Put32(std::string* out, uint32_t v, bool big) {
  Put16(out, static_cast<uint16_t>(big ? v >> 16 : v & 0xFFFF), big);
  Put16(out, static_cast<uint16_t>(big ? v & 0xFFFF : v >> 16), big);
}

void PutElement(std::string* out, const Attribute& a, std::string value, const Syntax& syntax) {
  const bool big = syntax.big_endian;
  if (value.size() % 2) value += std::string_view(a.vr) == "UI" ? '\0' : ' ';
  Put16(out, a.group, big);
  Put16(out, a.element, big);
  if (syntax.explicit_vr) {
    *out += a.vr;
    Put16(out, static_cast<uint16_t>(value.size()), big);
  } else {
    Put32(out, static_cast<uint32_t>(value.size()), big);
  }
  *out += value;
}

std::string RandomValue(const Attribute& a, std::mt19937_64& rng, const Syntax& syntax) {
  const std::string vr = a.vr;
  const auto digits = [&](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += static_cast<char>('0' + rng() % 10);
    return s;
  };
  if (vr == "US") {
    std::string bytes;
    Put16(&bytes, static_cast<uint16_t>(rng() % 4096), syntax.big_endian);
    return bytes;
  }
  if (vr == "UI") return "1.2." + digits(1 + static_cast<int>(rng() % 20));
  if (vr == "DA") return "20" + digits(2) + "0" + std::to_string(1 + rng() % 9) + "1" + digits(1);
  if (vr == "DS" || vr == "IS") return std::to_string(rng() % 1000);
  std::string text;
  for (size_t i = rng() % 12 + 1; i > 0; --i) text += static_cast<char>('A' + rng() % 26);
  return vr == "PN" ? text + "^" + text : text;
}

// The elements as a comparable text: tag, keyword, VR and value, one per line.
std::string Describe(const DicomTags& tags, bool with_meta) {
  std::string text;
  for (const DicomElement& e : tags.elements) {
    if (e.group == 0x0002 && !with_meta) continue;
    text += std::to_string(e.group) + "," + std::to_string(e.element) + " " + e.keyword + " " +
            e.vr + " " + e.value + "\n";
  }
  return text;
}

TEST(DicomDetectTest, BareDataSetsParseAsTheirPart10FormInEverySyntax) {
  std::mt19937_64 rng(20261206);
  for (int round = 0; round < 60; ++round) {
    const Syntax& syntax = kSyntaxes[round % 3];
    SCOPED_TRACE("round " + std::to_string(round) + ", transfer syntax " + syntax.uid);
    // A group-0008 element first, then any others, in tag order.
    std::vector<const Attribute*> chosen = {&kAttributes[rng() % 6]};
    for (const Attribute& a : kAttributes) {
      if (&a > chosen.front() && rng() % 2) chosen.push_back(&a);
    }
    if (chosen.size() < 2) chosen.push_back(&kAttributes[std::size(kAttributes) - 1]);
    std::string data_set;
    for (const Attribute* a : chosen)
      PutElement(&data_set, *a, RandomValue(*a, rng, syntax), syntax);

    std::string part10(128, '\0');
    part10 += "DICM";
    std::string meta;
    PutElement(&meta, {0x0002, 0x0010, "UI"}, syntax.uid, {"", true, false});
    part10 += meta + data_set;

    EXPECT_TRUE(LooksLikeDicom(data_set));
    ASSERT_OK_AND_ASSIGN(DicomTags bare, ParseDicom(data_set, data_set.size()));
    ASSERT_OK_AND_ASSIGN(DicomTags wrapped, ParseDicom(part10, part10.size()));
    EXPECT_EQ(Describe(bare, true), Describe(wrapped, false));
    EXPECT_EQ(bare.json, wrapped.json);
    EXPECT_EQ(bare.elements.size(), chosen.size());
  }
}

// ---- What is not DICOM ---------------------------------------------------------------------

// Random bytes of many sizes, and random bytes behind the signatures of other formats: the
// check accepts none of them (and ParseDicom agrees).
TEST(DicomDetectTest, RandomBytesAndOtherFormatsAreNotDicom) {
  const std::vector<std::string> signatures = {
      "",
      "\xFF\xD8\xFF\xE0\x00\x10JFIF\x00",       // JPEG
      "\x89PNG\r\n\x1A\n\x00\x00\x00\x0DIHDR",  // PNG
      "II*\x00",                                // TIFF
      "%PDF-1.7\n",                             // PDF
      "\x1F\x8B\x08\x00",                       // gzip
      "PK\x03\x04",                             // zip
      std::string("\x08\x00\x05\x00", 4),       // a first tag, then noise
      std::string("\x08\x00\x16\x00UI", 6),     // a first tag and VR, then noise
      std::string("\x00\x08\x00\x05", 4)};      // the same, big endian
  std::mt19937_64 rng(17);
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string bytes = signatures[static_cast<size_t>(round) % signatures.size()];
    const size_t size = 16 + rng() % 600;
    while (bytes.size() < size) bytes += static_cast<char>(rng());
    if (LooksLikeDicom(bytes)) {
      ++accepted;
      EXPECT_TRUE(ParseDicom(bytes, bytes.size()).ok()) << "accepted, but does not parse";
    }
  }
  EXPECT_EQ(accepted, 0);
  // Text: printable lines, and a text that starts with a backspace-free look-alike.
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    for (size_t i = 16 + rng() % 400; i > 0; --i) {
      text += rng() % 20 == 0 ? '\n' : static_cast<char>(' ' + rng() % 95);
    }
    EXPECT_FALSE(LooksLikeDicom(text)) << text;
  }
  EXPECT_FALSE(LooksLikeDicom("hello, world\n"));
  EXPECT_FALSE(LooksLikeDicom(std::string(4096, '\0')));
}

// Damaged bare data sets never crash the check or the parser, and whatever parses is valid.
TEST(DicomDetectTest, DamagedBareDataSetsNeverCrash) {
  const std::string original = ReadFile(test_util::kPydicomSamples / "rtstruct.dcm");
  ASSERT_FALSE(original.empty()) << "python3-pydicom's sample files are not installed";
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string bytes = original;
    for (int i = 1 + static_cast<int>(rng() % 6); i > 0; --i) {
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    if (round % 3 == 0) bytes.resize(rng() % bytes.size());
    (void)LooksLikeDicom(Head(bytes));
    auto parsed = ParseDicom(bytes, bytes.size());
    if (parsed.ok()) {
      EXPECT_FALSE(parsed->json.empty());
    }
  }
}

}  // namespace
}  // namespace medvfs::store
