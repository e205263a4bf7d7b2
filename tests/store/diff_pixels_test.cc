// Pixel decoding, comparison and the side-by-side picture of `medvfs diff` (diff_pixels.cc,
// diff_render.cc), checked against pydicom's sample files and DCMTK's own tools: dcmdump +W
// for the stored values, dcmdjpeg/dcmdrle for decompression, dcm2pnm for rendering.
#include "store/dicom/diff_internal.h"

#include <gtest/gtest.h>

#include "store/dicom/diff_font.h"
#include "store/dicom/diff_pixels_detail.h"
#include "tests/store/test_util.h"

#include <png.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace medvfs::store::diff_internal {
namespace {

using test_util::ReadFile;
using test_util::ShellQuote;
using test_util::WriteFile;

namespace fs = std::filesystem;
using detail::DicomPixels;
using detail::FramePixels;
using detail::PicturePixels;

const fs::path kSamples = test_util::kPydicomSamples;

// Stored values as pixel data words, little endian.
std::vector<int32_t> Words16(const std::string& raw, bool is_signed, uint32_t mask = 0xFFFF) {
  std::vector<int32_t> values(raw.size() / 2);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint32_t word = (static_cast<uint8_t>(raw[2 * i]) |
                           static_cast<uint32_t>(static_cast<uint8_t>(raw[2 * i + 1])) << 8) &
                          mask;
    values[i] = is_signed ? static_cast<int16_t>(word) : static_cast<int32_t>(word);
  }
  return values;
}

std::string LittleEndian16(const std::vector<int32_t>& values) {
  std::string raw(values.size() * 2, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    const auto word = static_cast<uint16_t>(values[i]);
    raw[2 * i] = static_cast<char>(word & 0xFF);
    raw[2 * i + 1] = static_cast<char>(word >> 8);
  }
  return raw;
}

// A PGM/PPM as dcm2pnm writes it: binary (P5/P6) or ASCII (P2/P3).
struct Pnm {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t channels = 0;
  std::vector<int32_t> values;
};

std::optional<Pnm> ReadPnm(const std::string& bytes) {
  std::istringstream in(bytes);
  std::string magic;
  in >> magic;
  const auto next_number = [&in]() -> long {
    in >> std::ws;
    while (in.peek() == '#') {
      std::string comment;
      std::getline(in, comment);
      in >> std::ws;
    }
    long n = -1;
    in >> n;
    return n;
  };
  Pnm pnm;
  pnm.channels = magic == "P3" || magic == "P6" ? 3 : 1;
  pnm.width = static_cast<uint32_t>(next_number());
  pnm.height = static_cast<uint32_t>(next_number());
  const long max = next_number();
  const size_t count = size_t{pnm.width} * pnm.height * pnm.channels;
  if (magic == "P5" || magic == "P6") {
    in.get();  // the single whitespace before the data
    for (size_t i = 0; i < count; ++i) {
      int value = in.get();
      if (max > 255) value = value << 8 | in.get();
      pnm.values.push_back(value);
    }
  } else {
    for (size_t i = 0; i < count; ++i) pnm.values.push_back(static_cast<int32_t>(next_number()));
  }
  if (!in || count == 0) return std::nullopt;
  return pnm;
}

// An 8-bit PNG through libpng's simplified API, as it is stored (gray or RGB).
struct Png {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t channels = 0;
  std::vector<uint8_t> data;
  uint8_t at(uint32_t x, uint32_t y, uint32_t c) const {
    return data[(size_t{y} * width + x) * channels + c];
  }
};

std::optional<Png> ReadPng(const std::string& bytes) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()) == 0) {
    return std::nullopt;
  }
  if (image.format != PNG_FORMAT_GRAY && image.format != PNG_FORMAT_RGB) {
    png_image_free(&image);
    return std::nullopt;
  }
  Png png;
  png.width = image.width;
  png.height = image.height;
  png.channels = image.format == PNG_FORMAT_GRAY ? 1 : 3;
  png.data.resize(PNG_IMAGE_SIZE(image));
  if (png_image_finish_read(&image, nullptr, png.data.data(), 0, nullptr) == 0) {
    return std::nullopt;
  }
  return png;
}

const FramePixels& Frames(const DecodedPixels& pixels) {
  return dynamic_cast<const FramePixels&>(pixels);
}

// What ComparePixels should find, from two sample arrays.
struct Expected {
  uint64_t differing = 0;
  int64_t max = 0;
  double mean = 0;
  double psnr = 0;
};

Expected Oracle(const std::vector<int32_t>& a, const std::vector<int32_t>& b, size_t samples,
                double peak) {
  Expected e;
  double abs_sum = 0, square_sum = 0;
  for (size_t p = 0; p < a.size() / samples; ++p) {
    bool differs = false;
    for (size_t i = p * samples; i < (p + 1) * samples; ++i) {
      const int64_t d = int64_t{a[i]} - b[i];
      differs = differs || d != 0;
      e.max = std::max(e.max, d < 0 ? -d : d);
      abs_sum += static_cast<double>(d < 0 ? -d : d);
      square_sum += static_cast<double>(d * d);
    }
    if (differs) ++e.differing;
  }
  e.mean = abs_sum / static_cast<double>(a.size());
  e.psnr = 10 * std::log10(peak * peak / (square_sum / static_cast<double>(a.size())));
  return e;
}

void ExpectMatches(const FrameDifference& frame, const Expected& e) {
  EXPECT_EQ(frame.differing_pixels, e.differing);
  EXPECT_EQ(frame.max_abs_difference, e.max);
  EXPECT_NEAR(frame.mean_abs_difference, e.mean, 1e-9);
  ASSERT_TRUE(frame.psnr_db.has_value());
  EXPECT_NEAR(*frame.psnr_db, e.psnr, 1e-9);
}

void ExpectIdentical(const PixelComparison& c) {
  EXPECT_TRUE(c.compared) << c.not_compared_reason;
  ASSERT_FALSE(c.frames.empty());
  for (const FrameDifference& frame : c.frames) {
    EXPECT_TRUE(frame.identical()) << "frame " << frame.frame;
    EXPECT_EQ(frame.max_abs_difference, 0);
    EXPECT_FALSE(frame.psnr_db.has_value());
  }
}

class DiffPixelsTest : public test_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    ASSERT_TRUE(fs::exists(kSamples / "MR_small.dcm"))
        << "pydicom's test files are missing (package python3-pydicom)";
    const char* check =
        "for t in dcmdump dump2dcm dcmcjpeg dcmdjpeg dcmcjpls dcmdrle dcm2pnm dcmj2pnm; do "
        "command -v $t >/dev/null || exit 1; done";
    ASSERT_EQ(std::system(check), 0) << "DCMTK's command line tools are missing (package dcmtk)";
  }

  fs::path Sample(const std::string& name) const { return kSamples / name; }
  fs::path Path(const std::string& name) const { return dir() / name; }

  // Runs a shell command in dir(); its output goes to dir()/log.txt.
  void Run(const std::string& command) {
    const std::string line =
        "cd " + ShellQuote(dir().string()) + " && (" + command + ") >>log.txt 2>&1";
    ASSERT_EQ(std::system(line.c_str()), 0) << command << "\n" << ReadFile(Path("log.txt"));
  }

  std::unique_ptr<DecodedPixels> Dicom(const fs::path& path) {
    auto decoded = DecodeDicomPixels(ReadFile(path));
    EXPECT_OK(decoded) << path;
    return decoded.ok() ? std::move(decoded).value() : nullptr;
  }

  std::unique_ptr<DecodedPixels> Picture(const fs::path& path) {
    auto decoded = DecodePicture(ReadFile(path));
    EXPECT_OK(decoded) << path;
    return decoded.ok() ? std::move(decoded).value() : nullptr;
  }

  PixelComparison CompareFiles(const fs::path& a, const fs::path& b) {
    auto da = Dicom(a), db = Dicom(b);
    if (da == nullptr || db == nullptr) return {};
    return ComparePixels(*da, *db);
  }

  // `dcmdump +L +W` of dcm: the dump text; *pixel_file is where its Pixel Data went.
  std::string Dump(const fs::path& dcm, fs::path* pixel_file) {
    const fs::path out = Path("dump" + std::to_string(++dumps_));
    fs::create_directory(out);
    Run("dcmdump +L +W " + ShellQuote(out.string()) + " " + ShellQuote(dcm.string()) + " > " +
        ShellQuote((out / "dump.txt").string()));
    const std::string text = ReadFile(out / "dump.txt");
    const size_t line = text.find("\n(7fe0,0010) ");
    EXPECT_NE(line, std::string::npos) << "no Pixel Data in the dump of " << dcm;
    if (line == std::string::npos) return text;
    const size_t start = text.find('=', line) + 1;
    *pixel_file = text.substr(start, text.find_first_of(" \n", start) - start);
    return text;
  }

  // Pixel Data of dcm as dcmdump +W writes it (native data, little endian).
  std::string RawPixelData(const fs::path& dcm) {
    fs::path pixel_file;
    Dump(dcm, &pixel_file);
    return ReadFile(pixel_file);
  }

  // A copy of dcm, built by dump2dcm from its dump, with Pixel Data `raw` and the elements in
  // `lines` (keyed by "(gggg,eeee)") set to those dump lines.
  fs::path Rewrite(const fs::path& dcm, const std::string& raw,
                   std::map<std::string, std::string> lines, const std::string& name) {
    fs::path pixel_file;
    std::istringstream dump(Dump(dcm, &pixel_file));
    const fs::path raw_path = Path(name + ".raw");
    WriteFile(raw_path, raw);
    std::string text, line;
    while (std::getline(dump, line)) {
      const std::string tag = line.substr(0, 11);
      if (tag == "(7fe0,0010)") {
        for (const auto& [key, value] : lines) text += value + "\n";
        lines.clear();
        line = "(7fe0,0010) " + line.substr(12, 2) + " =" + raw_path.string();
      } else if (auto it = lines.find(tag); it != lines.end()) {
        line = it->second;
        lines.erase(it);
      }
      text += line + "\n";
    }
    WriteFile(Path(name + ".dump"), text);
    Run("dump2dcm +l 1000000 " + name + ".dump " + name + ".dcm");
    return Path(name + ".dcm");
  }

  // A CT image from scratch: rows x columns signed 16-bit words (BitsStored/HighBit as given).
  fs::path SyntheticCt(uint32_t rows, uint32_t columns, const std::string& raw,
                       const std::string& name, int bits_stored = 16, int high_bit = 15,
                       const std::string& intercept = "-1024") {
    const std::string uid = "1.2.826.0.1.3680043.2.1125.99." + std::to_string(++dumps_);
    std::ostringstream dump;
    dump << "(0002,0001) OB 00\\01\n(0002,0002) UI =CTImageStorage\n"
         << "(0002,0003) UI [" << uid << "]\n(0002,0010) UI =LittleEndianExplicit\n"
         << "(0008,0016) UI =CTImageStorage\n(0008,0018) UI [" << uid << "]\n"
         << "(0008,0060) CS [CT]\n(0028,0002) US 1\n(0028,0004) CS [MONOCHROME2]\n"
         << "(0028,0010) US " << rows << "\n(0028,0011) US " << columns << "\n"
         << "(0028,0100) US 16\n(0028,0101) US " << bits_stored << "\n"
         << "(0028,0102) US " << high_bit << "\n(0028,0103) US 1\n"
         << "(0028,1052) DS [" << intercept << "]\n(0028,1053) DS [1]\n"
         << "(7fe0,0010) OW =" << Path(name + ".raw").string() << "\n";
    WriteFile(Path(name + ".raw"), raw);
    WriteFile(Path(name + ".dump"), dump.str());
    Run("dump2dcm " + name + ".dump " + name + ".dcm");
    return Path(name + ".dcm");
  }

  // A monochrome image of the modality given, signed 16-bit stored values, with the dump lines
  // in `extra` (rescale, window) before Pixel Data.
  fs::path SyntheticImage(const std::string& modality, uint32_t rows, uint32_t columns,
                          const std::vector<int32_t>& values, const std::string& extra,
                          const std::string& name) {
    const std::string uid = "1.2.826.0.1.3680043.2.1125.98." + std::to_string(++dumps_);
    std::ostringstream dump;
    dump << "(0002,0001) OB 00\\01\n(0002,0002) UI =SecondaryCaptureImageStorage\n"
         << "(0002,0003) UI [" << uid << "]\n(0002,0010) UI =LittleEndianExplicit\n"
         << "(0008,0016) UI =SecondaryCaptureImageStorage\n(0008,0018) UI [" << uid << "]\n"
         << "(0008,0060) CS [" << modality << "]\n(0028,0002) US 1\n"
         << "(0028,0004) CS [MONOCHROME2]\n(0028,0010) US " << rows << "\n(0028,0011) US "
         << columns << "\n(0028,0100) US 16\n(0028,0101) US 16\n(0028,0102) US 15\n"
         << "(0028,0103) US 1\n"
         << extra << "(7fe0,0010) OW =" << Path(name + ".raw").string() << "\n";
    WriteFile(Path(name + ".raw"), LittleEndian16(values));
    WriteFile(Path(name + ".dump"), dump.str());
    Run("dump2dcm " + name + ".dump " + name + ".dcm");
    return Path(name + ".dcm");
  }

 private:
  int dumps_ = 0;
};

// Deterministic "CT" values in [lo, lo + 4095].
std::vector<int32_t> CtValues(size_t count, int32_t lo) {
  std::vector<int32_t> values(count);
  uint32_t state = 12345;
  for (int32_t& v : values) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<int32_t>((state >> 16) % 4096) + lo;
  }
  return values;
}

// ---- DICOM decoding and comparison -----------------------------------------------------------

TEST_F(DiffPixelsTest, LosslessEncodingsOfOneImageAreIdentical) {
  Run("dcmcjpeg " + ShellQuote(Sample("MR_small.dcm").string()) + " jpeg_lossless.dcm");
  Run("dcmcjpls " + ShellQuote(Sample("MR_small.dcm").string()) + " jpeg_ls.dcm");
  const fs::path original = Sample("MR_small.dcm");
  for (const fs::path& other : {Sample("MR_small_RLE.dcm"), Sample("MR_small_jpeg_ls_lossless.dcm"),
                                Sample("MR_small_bigendian.dcm"), Sample("MR_small_implicit.dcm"),
                                Path("jpeg_lossless.dcm"), Path("jpeg_ls.dcm")}) {
    SCOPED_TRACE(other.filename().string());
    const PixelComparison c = CompareFiles(original, other);
    ExpectIdentical(c);
    EXPECT_EQ(c.rows, 64u);
    EXPECT_EQ(c.columns, 64u);
    EXPECT_EQ(c.samples_per_pixel, 1u);
    EXPECT_EQ(c.bits_stored, 16u);
    EXPECT_TRUE(c.is_signed);
    EXPECT_EQ(c.frame_count, 1u);
    ASSERT_EQ(c.frames.size(), 1u);
    EXPECT_EQ(c.frames[0].pixels, 64u * 64u);
    EXPECT_TRUE(c.notes.empty());
  }
}

TEST_F(DiffPixelsTest, StoredValuesEqualDcmdumpsPixelData) {
  for (const char* name : {"MR_small.dcm", "CT_small.dcm"}) {
    SCOPED_TRACE(name);
    auto pixels = Dicom(Sample(name));
    ASSERT_NE(pixels, nullptr);
    const FramePixels& frames = Frames(*pixels);
    ASSERT_EQ(frames.frames.size(), 1u);
    EXPECT_EQ(frames.frames[0], Words16(RawPixelData(Sample(name)), true));
    EXPECT_EQ(frames.layout.photometric, "MONOCHROME2");
  }
  auto ct = Dicom(Sample("CT_small.dcm"));
  ASSERT_NE(ct, nullptr);
  const auto& dicom = dynamic_cast<const DicomPixels&>(*ct);
  EXPECT_TRUE(dicom.has_rescale);
  EXPECT_EQ(dicom.rescale_intercept, -1024);
  EXPECT_FALSE(dicom.window.has_value());
  auto mr = Dicom(Sample("MR_small.dcm"));
  ASSERT_NE(mr, nullptr);
  const auto& mr_dicom = dynamic_cast<const DicomPixels&>(*mr);
  ASSERT_TRUE(mr_dicom.window.has_value());
  EXPECT_EQ(mr_dicom.window->center, 600);
  EXPECT_EQ(mr_dicom.window->width, 1600);
}

TEST_F(DiffPixelsTest, LossyJpegAgreesWithDcmdjpegAndDcmdump) {
  const fs::path original = Sample("MR_small.dcm");
  Run("dcmcjpeg +ee " + ShellQuote(original.string()) + " lossy.dcm");
  Run("dcmdjpeg lossy.dcm lossy_native.dcm");
  // The oracle: A's words as signed 16 bits; dcmcjpeg +ee stored B in 12 unsigned bits.
  const std::vector<int32_t> a = Words16(RawPixelData(original), true);
  const std::vector<int32_t> b = Words16(RawPixelData(Path("lossy_native.dcm")), false, 0x0FFF);
  ASSERT_EQ(a.size(), 64u * 64u);
  ASSERT_EQ(b.size(), a.size());

  auto lossy = Dicom(Path("lossy.dcm"));
  ASSERT_NE(lossy, nullptr);
  EXPECT_EQ(Frames(*lossy).frames[0], b);  // our decoding is dcmdjpeg's
  EXPECT_EQ(Frames(*lossy).layout.bits_stored, 12u);

  const PixelComparison c = CompareFiles(original, Path("lossy.dcm"));
  ASSERT_TRUE(c.compared) << c.not_compared_reason;
  ASSERT_EQ(c.frames.size(), 1u);
  EXPECT_GT(c.frames[0].differing_pixels, 0u);
  ExpectMatches(c.frames[0], Oracle(a, b, 1, 65535));
  EXPECT_EQ(c.bits_stored, 16u);
  const auto has_note = [&](const std::string& word) {
    return std::any_of(c.notes.begin(), c.notes.end(), [&](const std::string& note) {
      return note.find(word) != std::string::npos &&
             note.find("not on the same scale") != std::string::npos;
    });
  };
  EXPECT_TRUE(has_note("BitsStored changed from 16 to 12"));
  EXPECT_TRUE(has_note("PixelRepresentation changed from signed to unsigned"));
}

TEST_F(DiffPixelsTest, Jpeg2000IsNotSupported) {
  for (const auto& [name, uid] :
       std::map<std::string, std::string>{{"MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90"},
                                          {"JPEG2000.dcm", "1.2.840.10008.1.2.4.91"}}) {
    SCOPED_TRACE(name);
    auto decoded = DecodeDicomPixels(ReadFile(Sample(name)));
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), Code::kNotSupported);
    EXPECT_NE(decoded.status().message().find("JPEG 2000"), std::string::npos);
    EXPECT_NE(decoded.status().message().find(uid), std::string::npos);
  }
}

TEST_F(DiffPixelsTest, DecodersWorkFromManyThreadsAtOnce) {
  const std::string rle = ReadFile(Sample("MR_small_RLE.dcm"));
  const std::string jpeg_ls = ReadFile(Sample("MR_small_jpeg_ls_lossless.dcm"));
  std::vector<int> identical(8, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < identical.size(); ++t) {
    threads.emplace_back([&, t] {
      auto a = DecodeDicomPixels(t % 2 == 0 ? rle : jpeg_ls);
      auto b = DecodeDicomPixels(t % 2 == 0 ? jpeg_ls : rle);
      if (a.ok() && b.ok()) {
        const PixelComparison c = ComparePixels(**a, **b);
        identical[t] = c.compared && c.frames.size() == 1 && c.frames[0].identical() &&
                       RenderComparisonPng(**a, **b, {}).ok();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(identical, std::vector<int>(identical.size(), 1));
}

TEST_F(DiffPixelsTest, NoOrDamagedPixelDataIsInvalid) {
  for (const std::string& bytes :
       {ReadFile(Sample("rtplan.dcm")), ReadFile(Sample("MR_truncated.dcm")),
        std::string("not a DICOM file at all"), std::string()}) {
    auto decoded = DecodeDicomPixels(bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), Code::kInvalid) << decoded.status().ToString();
  }
}

TEST_F(DiffPixelsTest, SyntheticCtWithAKnownChangedRegion) {
  constexpr uint32_t kRows = 96, kColumns = 128;
  const std::vector<int32_t> a = CtValues(size_t{kRows} * kColumns, -1024);
  std::vector<int32_t> b = a;
  for (uint32_t r = 10; r < 30; ++r) {
    for (uint32_t c = 20; c < 60; ++c) {
      const int32_t delta = static_cast<int32_t>((r * 7 + c * 3) % 10 + 1);
      b[r * kColumns + c] += (r + c) % 2 == 0 ? delta : -delta;
    }
  }
  const fs::path file_a = SyntheticCt(kRows, kColumns, LittleEndian16(a), "ct_a");
  const fs::path file_b = SyntheticCt(kRows, kColumns, LittleEndian16(b), "ct_b");

  auto pixels = Dicom(file_a);
  ASSERT_NE(pixels, nullptr);
  EXPECT_EQ(Frames(*pixels).frames[0], a);

  const PixelComparison c = CompareFiles(file_a, file_b);
  ASSERT_TRUE(c.compared) << c.not_compared_reason;
  EXPECT_EQ(c.rows, kRows);
  EXPECT_EQ(c.columns, kColumns);
  EXPECT_TRUE(c.is_signed);
  EXPECT_TRUE(c.notes.empty());
  ASSERT_EQ(c.frames.size(), 1u);
  EXPECT_EQ(c.frames[0].differing_pixels, 20u * 40u);
  EXPECT_EQ(c.frames[0].max_abs_difference, 10);
  ExpectMatches(c.frames[0], Oracle(a, b, 1, 65535));

  // Other dimensions are not compared; another rescale is noted.
  const fs::path small = SyntheticCt(64, 64, LittleEndian16(CtValues(64 * 64, 0)), "ct_small");
  const PixelComparison other_size = CompareFiles(file_a, small);
  EXPECT_FALSE(other_size.compared);
  EXPECT_EQ(other_size.not_compared_reason, "A is 128 x 96 pixels, B is 64 x 64");
  const fs::path shifted = SyntheticCt(kRows, kColumns, LittleEndian16(a), "ct_c", 16, 15, "-1000");
  const PixelComparison rescaled = CompareFiles(file_a, shifted);
  ExpectIdentical(rescaled);
  ASSERT_EQ(rescaled.notes.size(), 1u);
  EXPECT_EQ(rescaled.notes[0],
            "RescaleSlope/RescaleIntercept changed from 1/-1024 to 1/-1000: stored values are "
            "not on the same scale");
}

TEST_F(DiffPixelsTest, BitsStoredHighBitAndSignAreHonoured) {
  constexpr uint32_t kRows = 32, kColumns = 48;
  const std::vector<int32_t> values = CtValues(size_t{kRows} * kColumns, -2048);  // 12 bits
  std::vector<int32_t> low(values.size()), high(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    low[i] = (values[i] & 0x0FFF) | 0xA000;     // junk above HighBit 11
    high[i] = (values[i] & 0x0FFF) << 4 | 0x5;  // HighBit 15, junk below
  }
  const fs::path file_low = SyntheticCt(kRows, kColumns, LittleEndian16(low), "low", 12, 11);
  const fs::path file_high = SyntheticCt(kRows, kColumns, LittleEndian16(high), "high", 12, 15);
  for (const fs::path& file : {file_low, file_high}) {
    auto pixels = Dicom(file);
    ASSERT_NE(pixels, nullptr);
    EXPECT_EQ(Frames(*pixels).frames[0], values) << file.filename();
    EXPECT_EQ(Frames(*pixels).layout.bits_stored, 12u);
  }
  ExpectIdentical(CompareFiles(file_low, file_high));
}

TEST_F(DiffPixelsTest, MultiFrameColourPlanarAnd32Bit) {
  // RLE, 2 frames of 8-bit RGB, against dcmdrle's output and a planar copy of it.
  Run("dcmdrle " + ShellQuote(Sample("SC_rgb_rle_2frame.dcm").string()) + " rgb2.dcm");
  const std::string interleaved = RawPixelData(Path("rgb2.dcm"));
  const size_t pixels = 100 * 100;
  ASSERT_EQ(interleaved.size(), 2 * pixels * 3);
  std::string planar(interleaved.size(), '\0');
  for (size_t k = 0; k < 2; ++k) {
    for (size_t p = 0; p < pixels; ++p) {
      for (size_t s = 0; s < 3; ++s) {
        planar[k * pixels * 3 + s * pixels + p] = interleaved[k * pixels * 3 + p * 3 + s];
      }
    }
  }
  const fs::path planar_file =
      Rewrite(Path("rgb2.dcm"), planar, {{"(0028,0006)", "(0028,0006) US 1"}}, "planar");
  for (const fs::path& other : {Path("rgb2.dcm"), planar_file}) {
    const PixelComparison c = CompareFiles(Sample("SC_rgb_rle_2frame.dcm"), other);
    ExpectIdentical(c);
    EXPECT_EQ(c.frame_count, 2u);
    EXPECT_EQ(c.frames.size(), 2u);
    EXPECT_EQ(c.samples_per_pixel, 3u);
  }
  const PixelComparison frames_differ =
      CompareFiles(Sample("SC_rgb_rle_2frame.dcm"), Sample("SC_rgb_rle.dcm"));
  EXPECT_FALSE(frames_differ.compared);
  EXPECT_EQ(frames_differ.not_compared_reason, "A has 2 frames, B has 1");
  auto decoded = Dicom(planar_file);
  ASSERT_NE(decoded, nullptr);
  const FramePixels& frames = Frames(*decoded);
  ASSERT_EQ(frames.frames.size(), 2u);
  for (size_t i = 0; i < pixels * 3; ++i) {
    ASSERT_EQ(frames.frames[1][i], static_cast<uint8_t>(interleaved[pixels * 3 + i])) << i;
  }

  // 16 and 32 bits per sample; unsigned 32-bit values keep their full range.
  for (const char* name : {"SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle_32bit_2frame.dcm"}) {
    SCOPED_TRACE(name);
    Run("dcmdrle " + ShellQuote(Sample(name).string()) + " native_" + name);
    ExpectIdentical(CompareFiles(Sample(name), Path(std::string("native_") + name)));
  }
  auto wide = Dicom(Sample("SC_rgb_rle_32bit.dcm"));
  ASSERT_NE(wide, nullptr);
  Run("dcmdrle " + ShellQuote(Sample("SC_rgb_rle_32bit.dcm").string()) + " native32.dcm");
  const std::string raw = RawPixelData(Path("native32.dcm"));
  const FramePixels& wide_frames = Frames(*wide);
  ASSERT_EQ(raw.size(), wide_frames.frames[0].size() * 4);
  bool above_int32 = false;
  for (size_t i = 0; i < wide_frames.frames[0].size(); ++i) {
    uint32_t word;
    std::memcpy(&word, raw.data() + 4 * i, 4);
    ASSERT_EQ(wide_frames.Value(wide_frames.frames[0], i), int64_t{word}) << i;
    above_int32 = above_int32 || word > 0x7FFFFFFFu;
  }
  EXPECT_TRUE(above_int32);
}

TEST_F(DiffPixelsTest, YbrPixelDataDecodesToItsPhotometricInterpretation) {
  // dcmjpeg converts YBR_FULL_422 JPEG to RGB, as dcmdjpeg does.
  const fs::path ybr_jpeg = Sample("SC_rgb_dcmtk_+eb+cy+s2.dcm");
  Run("dcmdjpeg " + ShellQuote(ybr_jpeg.string()) + " ybr_native.dcm");
  ExpectIdentical(CompareFiles(ybr_jpeg, Path("ybr_native.dcm")));
  auto jpeg = Dicom(ybr_jpeg);
  ASSERT_NE(jpeg, nullptr);
  EXPECT_EQ(Frames(*jpeg).layout.photometric, "RGB");

  // Native YBR_FULL_422: Y1 Y2 Cb Cr per pair of pixels, expanded to YBR_FULL.
  const fs::path native = Sample("SC_ybr_full_422_uncompressed.dcm");
  auto ybr = Dicom(native);
  ASSERT_NE(ybr, nullptr);
  const FramePixels& frames = Frames(*ybr);
  EXPECT_EQ(frames.layout.photometric, "YBR_FULL");
  const std::string raw = RawPixelData(native);
  ASSERT_EQ(raw.size(), 100u * 100u * 2u);
  const auto byte = [&](size_t i) { return static_cast<int32_t>(static_cast<uint8_t>(raw[i])); };
  const std::vector<int32_t> first_pair(frames.frames[0].begin(), frames.frames[0].begin() + 6);
  EXPECT_EQ(first_pair,
            (std::vector<int32_t>{byte(0), byte(2), byte(3), byte(1), byte(2), byte(3)}));
}

// ---- Pictures --------------------------------------------------------------------------------

TEST_F(DiffPixelsTest, PngPicturesDecodeToTheirSamples) {
  const std::string ct = ShellQuote(Sample("CT_small.dcm").string());
  Run("dcm2pnm +Wm +on " + ct + " mm.png && dcm2pnm +Wm +op " + ct + " mm.pgm");
  Run("dcm2pnm +Ww 40 400 +on " + ct + " w.png && dcm2pnm +Ww 40 400 +op " + ct + " w.pgm");
  Run("dcm2pnm +Wm +on2 " + ct + " mm16.png && dcm2pnm +Wm +opw " + ct + " mm16.pgm");
  const std::string rgb = ShellQuote(Sample("SC_rgb_rle.dcm").string());
  Run("dcm2pnm +on " + rgb + " rgb.png && dcm2pnm +op " + rgb + " rgb.ppm");

  for (const auto& [png, pnm, bits] :
       {std::tuple{"mm.png", "mm.pgm", 8u}, std::tuple{"mm16.png", "mm16.pgm", 16u},
        std::tuple{"rgb.png", "rgb.ppm", 8u}}) {
    SCOPED_TRACE(png);
    auto picture = Picture(Path(png));
    ASSERT_NE(picture, nullptr);
    const std::optional<Pnm> expected = ReadPnm(ReadFile(Path(pnm)));
    ASSERT_TRUE(expected.has_value());
    const FramePixels& frames = Frames(*picture);
    EXPECT_EQ(dynamic_cast<const PicturePixels&>(*picture).format, "PNG");
    EXPECT_EQ(frames.layout.columns, expected->width);
    EXPECT_EQ(frames.layout.rows, expected->height);
    EXPECT_EQ(frames.layout.samples_per_pixel, expected->channels);
    EXPECT_EQ(frames.layout.bits_stored, bits);
    ASSERT_EQ(frames.frames.size(), 1u);
    EXPECT_EQ(frames.frames[0], expected->values);
  }

  auto mm = Picture(Path("mm.png")), w = Picture(Path("w.png"));
  ASSERT_NE(mm, nullptr);
  ASSERT_NE(w, nullptr);
  const PixelComparison c = ComparePixels(*mm, *w);
  ASSERT_TRUE(c.compared) << c.not_compared_reason;
  ASSERT_EQ(c.frames.size(), 1u);
  EXPECT_GT(c.frames[0].differing_pixels, 0u);
  ExpectMatches(c.frames[0], Oracle(ReadPnm(ReadFile(Path("mm.pgm")))->values,
                                    ReadPnm(ReadFile(Path("w.pgm")))->values, 1, 255));
  auto rgb_png = Picture(Path("rgb.png"));
  ASSERT_NE(rgb_png, nullptr);
  EXPECT_EQ(ComparePixels(*mm, *rgb_png).compared, false);
}

TEST_F(DiffPixelsTest, JpegPicturesDecode) {
  const std::string ct = ShellQuote(Sample("CT_small.dcm").string());
  Run("dcm2pnm +Wm +on " + ct + " mm.png && dcmj2pnm +Wm +oj " + ct + " mm.jpg");
  const std::string rgb = ShellQuote(Sample("SC_rgb_rle.dcm").string());
  Run("dcm2pnm +on " + rgb + " rgb.png && dcmj2pnm +oj +Jq 100 " + rgb + " rgb.jpg");
  for (const auto& [jpg, png, samples] :
       {std::tuple{"mm.jpg", "mm.png", 1u}, std::tuple{"rgb.jpg", "rgb.png", 3u}}) {
    SCOPED_TRACE(jpg);
    auto jpeg = Picture(Path(jpg)), reference = Picture(Path(png));
    ASSERT_NE(jpeg, nullptr);
    ASSERT_NE(reference, nullptr);
    EXPECT_EQ(dynamic_cast<const PicturePixels&>(*jpeg).format, "JPEG");
    EXPECT_EQ(Frames(*jpeg).layout.samples_per_pixel, samples);
    ExpectIdentical(ComparePixels(*jpeg, *jpeg));
    const PixelComparison c = ComparePixels(*reference, *jpeg);  // lossy, but close
    ASSERT_TRUE(c.compared) << c.not_compared_reason;
    EXPECT_EQ(c.bits_stored, 8u);
    EXPECT_LT(c.frames[0].mean_abs_difference, 4.0);
    EXPECT_GT(*c.frames[0].psnr_db, 30.0);
  }
}

TEST_F(DiffPixelsTest, DamagedPicturesAreInvalidAndNothingExits) {
  Run("dcm2pnm +Wm +on " + ShellQuote(Sample("CT_small.dcm").string()) + " mm.png");
  Run("dcmj2pnm +Wm +oj " + ShellQuote(Sample("CT_small.dcm").string()) + " mm.jpg");
  const std::string png = ReadFile(Path("mm.png"));
  const std::string jpeg = ReadFile(Path("mm.jpg"));
  EXPECT_TRUE(LooksLikePng(png));
  EXPECT_FALSE(LooksLikeJpeg(png));
  EXPECT_TRUE(LooksLikeJpeg(jpeg));
  EXPECT_FALSE(LooksLikePng(jpeg));
  EXPECT_FALSE(LooksLikePng(std::string_view(png).substr(0, 4)));

  std::string flipped = png;
  const size_t idat = flipped.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  flipped[idat + 20] = static_cast<char>(flipped[idat + 20] ^ 0x40);
  std::string bad_jpeg = jpeg.substr(0, 3) + std::string(64, 'x');
  for (const std::string& bytes :
       {flipped, png.substr(0, png.size() / 2), png.substr(0, 20), bad_jpeg, jpeg.substr(0, 200),
        std::string("GIF89a"), std::string()}) {
    SCOPED_TRACE(bytes.size());
    auto decoded = DecodePicture(bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), Code::kInvalid) << decoded.status().ToString();
  }
}

// ---- The side-by-side picture ----------------------------------------------------------------

using detail::ComparisonGeometry;
using detail::GeometryFor;
using detail::HeatColour;

constexpr std::array<uint8_t, 3> kBackground = {40, 40, 40};
constexpr std::array<uint8_t, 3> kWhite = {255, 255, 255};
// 2026-11-21T10:22:03Z and 2026-11-21T10:40:17Z, with nanoseconds that the labels leave out.
constexpr int64_t kTimeA = 1795256523'120044512;
constexpr int64_t kTimeB = 1795257617'500012035;

std::array<uint8_t, 3> PixelAt(const Png& png, uint64_t x, uint64_t y) {
  if (x >= png.width || y >= png.height || png.channels != 3) {
    ADD_FAILURE() << "(" << x << ", " << y << ") is outside the picture";
    return {1, 2, 3};
  }
  return {png.at(static_cast<uint32_t>(x), static_cast<uint32_t>(y), 0),
          png.at(static_cast<uint32_t>(x), static_cast<uint32_t>(y), 1),
          png.at(static_cast<uint32_t>(x), static_cast<uint32_t>(y), 2)};
}

// DICOM's linear VOI function (PS3.3 C.11.2.1.2.1) to 0..255, computed here independently.
double LinearWindow(double x, double center, double width) {
  const double y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255;
  return std::clamp(y, 0.0, 255.0);
}

// The value of rank round(fraction * (n - 1)) of values, in ascending order (nearest rank).
double Percentile(std::vector<double> values, double fraction) {
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(
      std::llround(fraction * static_cast<double>(values.size() - 1)))];
}

// "%.6g", as the labels write numbers.
std::string Num(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  return buf;
}

class DiffRenderTest : public DiffPixelsTest {
 protected:
  // Renders a | b and checks its shape: GeometryFor the image, three channels.
  std::optional<Png> Render(const DecodedPixels& a, const DecodedPixels& b,
                            const RenderRequest& request = {}) {
    auto png = RenderComparisonPng(a, b, request);
    EXPECT_OK(png);
    if (!png.ok()) return std::nullopt;
    std::optional<Png> decoded = ReadPng(*png);
    EXPECT_TRUE(decoded.has_value());
    if (!decoded) return std::nullopt;
    const FramePixels& frames = Frames(a);
    const ComparisonGeometry g = GeometryFor(frames.layout.rows, frames.layout.columns);
    EXPECT_EQ(decoded->channels, 3u);
    EXPECT_EQ(decoded->width, g.width);
    EXPECT_EQ(decoded->height, g.height);
    if (decoded->channels != 3 || decoded->width != g.width || decoded->height != g.height) {
      return std::nullopt;
    }
    return decoded;
  }

  // The image in panel `panel` of `picture` is `expected` enlarged (gray: R = G = B).
  static void ExpectPanel(const Png& picture, uint32_t panel, const Png& expected) {
    const ComparisonGeometry g = GeometryFor(expected.height, expected.width);
    ASSERT_EQ(g.width, picture.width);
    ASSERT_EQ(g.height, picture.height);
    int mismatches = 0;
    for (uint32_t y = 0; y < g.image_height; ++y) {
      for (uint32_t x = 0; x < g.image_width; ++x) {
        for (uint32_t c = 0; c < 3; ++c) {
          const uint8_t want =
              expected.at(x / g.scale, y / g.scale, expected.channels == 1 ? 0 : c);
          const uint8_t got = picture.at(g.panel_x[panel] + x, g.image_y + y, c);
          if (got != want && ++mismatches < 5) {
            ADD_FAILURE() << "panel " << panel << " (" << x << ", " << y << ") channel " << c
                          << ": " << int{got} << " != " << int{want};
          }
        }
      }
    }
    EXPECT_EQ(mismatches, 0);
  }

  // Line `line` of panel `panel`'s label band shows `text`, drawn again here with the font, and
  // nothing else.
  static void ExpectLabel(const Png& picture, const ComparisonGeometry& g, uint32_t panel,
                          uint32_t line, const std::string& text) {
    SCOPED_TRACE(text);
    const font::TextBitmap bitmap = font::RenderText(text, g.text_scale);
    ASSERT_LE(bitmap.width, g.panel_width);
    int mismatches = 0;
    const uint64_t top = g.label_y + uint64_t{line} * g.line_height;
    for (uint32_t y = 0; y < g.line_height; ++y) {
      for (uint32_t x = 0; x < g.panel_width; ++x) {
        const bool on = x < bitmap.width && y < bitmap.height && bitmap.at(x, y);
        if (PixelAt(picture, g.panel_x[panel] + x, top + y) != (on ? kWhite : kBackground) &&
            ++mismatches < 5) {
          ADD_FAILURE() << "label pixel (" << x << ", " << y << ") of panel " << panel << " line "
                        << line << " should be " << (on ? "text" : "background");
        }
      }
    }
    EXPECT_EQ(mismatches, 0);
  }

  // The heat map's colour at image pixel (x, y).
  static std::array<uint8_t, 3> HeatAt(const Png& picture, uint32_t x, uint32_t y) {
    const ComparisonGeometry g = GeometryFor(64, 64);
    return PixelAt(picture, g.panel_x[2] + uint64_t{x} * g.scale + g.scale / 2,
                   g.image_y + uint64_t{y} * g.scale + g.scale / 2);
  }

  // The gray of image pixel (x, y) in panel `panel` of a 64 x 64 comparison.
  static int GrayAt(const Png& picture, uint32_t panel, uint32_t x, uint32_t y) {
    const ComparisonGeometry g = GeometryFor(64, 64);
    const std::array<uint8_t, 3> rgb = PixelAt(picture, g.panel_x[panel] + uint64_t{x} * g.scale,
                                               g.image_y + uint64_t{y} * g.scale);
    EXPECT_TRUE(rgb[0] == rgb[1] && rgb[1] == rgb[2]);
    return rgb[0];
  }
};

TEST(DiffFontTest, EveryPrintableCharacterHasItsOwnGlyph) {
  std::map<std::vector<uint8_t>, char> seen;
  for (char c = ' '; c <= '~'; ++c) {
    const font::TextBitmap bitmap = font::RenderText(std::string(1, c), 1);
    ASSERT_EQ(bitmap.width, font::kGlyphWidth);
    ASSERT_EQ(bitmap.height, font::kGlyphHeight);
    const bool blank = std::count(bitmap.on.begin(), bitmap.on.end(), 1) == 0;
    EXPECT_EQ(blank, c == ' ') << c;
    const auto [it, inserted] = seen.emplace(bitmap.on, c);
    EXPECT_TRUE(inserted) << "'" << c << "' looks like '" << it->second << "'";
  }
  // Other bytes are drawn as '?'; scale enlarges every font pixel; one blank column between.
  EXPECT_EQ(font::RenderText("\x01", 1).on, font::RenderText("?", 1).on);
  const font::TextBitmap two = font::RenderText("v1", 3);
  EXPECT_EQ(two.width, (2 * font::kAdvance - 1) * 3);
  EXPECT_EQ(two.height, font::kGlyphHeight * 3);
  for (uint32_t y = 0; y < two.height; ++y) {
    for (uint32_t x = 0; x < two.width; ++x) {
      const uint32_t glyph = x / 3 / font::kAdvance, gx = x / 3 % font::kAdvance;
      EXPECT_EQ(two.at(x, y), gx < font::kGlyphWidth && font::GlyphPixel("v1"[glyph], gx, y / 3));
    }
  }
  EXPECT_EQ(font::RenderText("", 2).width, 0u);
}

TEST(DiffHeatColourTest, AbsoluteMonotoneAndNeverBlackForADifference) {
  EXPECT_EQ(HeatColour(0, 400), (std::array<uint8_t, 3>{0, 0, 0}));
  EXPECT_EQ(HeatColour(400, 400), kWhite);
  EXPECT_EQ(HeatColour(4000, 400), kWhite);
  int previous = 0;
  for (int d = 1; d <= 400; ++d) {
    const std::array<uint8_t, 3> c = HeatColour(d, 400);
    const int sum = c[0] + c[1] + c[2];
    EXPECT_GE(sum, previous) << d;
    EXPECT_GE(c[0], 25) << d;  // never taken for black
    previous = sum;
  }
  // The same change looks the same whatever else changed in the frame: the scale is absolute.
  EXPECT_NE(HeatColour(5, 400), HeatColour(500, 400));
  EXPECT_NE(HeatColour(5, 400), HeatColour(40, 400));
}

TEST_F(DiffRenderTest, PanelsAreEnlargedLabelledAndWhatDcm2pnmRenders) {
  const fs::path original = Sample("MR_small.dcm");
  std::vector<int32_t> values = Words16(RawPixelData(original), true);
  for (uint32_t y = 20; y < 30; ++y) {
    for (uint32_t x = 30; x < 40; ++x) values[y * 64 + x] += 300;
  }
  const fs::path changed = Rewrite(original, LittleEndian16(values), {}, "changed");
  Run("dcm2pnm +Wi 1 +on " + ShellQuote(original.string()) + " a.png");
  Run("dcm2pnm +Wi 1 +on " + ShellQuote(changed.string()) + " b.png");

  auto a = Dicom(original), b = Dicom(changed);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::optional<Png> picture =
      Render(*a, *b, RenderRequest{1, "v1", "v12", kTimeA, kTimeB, std::nullopt});
  ASSERT_TRUE(picture.has_value());
  // 64 x 64 pixels, each drawn 8 x 8: three panels of 512 x 512, side by side.
  const ComparisonGeometry g = GeometryFor(64, 64);
  EXPECT_EQ(g.scale, 8u);
  EXPECT_EQ(g.image_width, 512u);
  EXPECT_EQ(g.image_height, 512u);
  EXPECT_GE(picture->width, 3 * 512u);
  EXPECT_GT(g.image_y, g.label_y + 2 * g.line_height);
  for (uint32_t i = 1; i < 3; ++i) EXPECT_GE(g.panel_x[i], g.panel_x[i - 1] + g.image_width);
  const std::optional<Png> png_a = ReadPng(ReadFile(Path("a.png")));
  const std::optional<Png> png_b = ReadPng(ReadFile(Path("b.png")));
  ASSERT_TRUE(png_a.has_value());
  ASSERT_TRUE(png_b.has_value());
  EXPECT_EQ(png_b->channels, 1u);
  ExpectPanel(*picture, 0, *png_a);
  ExpectPanel(*picture, 1, *png_b);

  // Labels: version, time to the second in UTC, frame, window (MR_small's own: 600/1600) and
  // where the window came from; the heat map's scale.
  ExpectLabel(*picture, g, 0, 0, "A: v1  2026-11-21T10:22:03Z");
  ExpectLabel(*picture, g, 1, 0, "B: v12  2026-11-21T10:40:17Z");
  for (uint32_t panel = 0; panel < 2; ++panel) {
    ExpectLabel(*picture, g, panel, 1, "frame 1 of 1");
    ExpectLabel(*picture, g, panel, 2, "window C 600 W 1600");
    ExpectLabel(*picture, g, panel, 3, "from the file");
  }
  ExpectLabel(*picture, g, 2, 0, "|A - B| per pixel");
  ExpectLabel(*picture, g, 2, 1, "0 to 1600 (window width)");
  ExpectLabel(*picture, g, 2, 2, "equal: black, >= 1600: white");
  ExpectLabel(*picture, g, 2, 3, "");

  // The heat map: 300 on a scale of the window width, black elsewhere.
  for (uint32_t y = 0; y < 64; ++y) {
    for (uint32_t x = 0; x < 64; ++x) {
      const bool in_region = y >= 20 && y < 30 && x >= 30 && x < 40;
      ASSERT_EQ(HeatAt(*picture, x, y),
                in_region ? HeatColour(300, 1600) : (std::array<uint8_t, 3>{0, 0, 0}))
          << x << ", " << y;
    }
  }

  for (const auto& [frame, heat_max] : {std::pair<uint32_t, double>{2, 1}, {0, 1}, {1, -1}}) {
    RenderRequest bad;
    bad.frame = frame;
    bad.heat_max = heat_max;
    EXPECT_EQ(RenderComparisonPng(*a, *b, bad).status().code(), Code::kInvalid) << frame;
  }
}

// The legend: a bar from black (0) to white (the full scale), its numbers under it.
TEST_F(DiffRenderTest, TheLegendShowsTheScale) {
  auto pixels = Dicom(Sample("MR_small.dcm"));
  ASSERT_NE(pixels, nullptr);
  using Scale = std::pair<std::optional<double>, double>;  // --heat-max, the full scale
  for (const auto& [heat_max, full] : std::vector<Scale>{{std::nullopt, 1600}, {250, 250}}) {
    SCOPED_TRACE(full);
    RenderRequest request;
    request.heat_max = heat_max;
    const std::optional<Png> picture = Render(*pixels, *pixels, request);
    ASSERT_TRUE(picture.has_value());
    const ComparisonGeometry g = GeometryFor(64, 64);
    const uint64_t x0 = g.panel_x[2], y = g.legend_y + ComparisonGeometry::kLegendBarHeight / 2;
    EXPECT_EQ(PixelAt(*picture, x0, y), (std::array<uint8_t, 3>{0, 0, 0}));
    EXPECT_EQ(PixelAt(*picture, x0 + g.panel_width - 1, y), kWhite);
    int previous = 0;
    for (uint32_t x = 0; x < g.panel_width; ++x) {
      const std::array<uint8_t, 3> c = PixelAt(*picture, x0 + x, y);
      EXPECT_EQ(c, HeatColour(full * x / (g.panel_width - 1), full)) << x;
      EXPECT_GE(c[0] + c[1] + c[2], previous);
      previous = c[0] + c[1] + c[2];
    }
    // "0" under the left end, the full scale under the right end.
    for (const auto& [text, left] :
         {std::pair<std::string, uint64_t>{"0", x0},
          {Num(full), x0 + g.panel_width - font::TextWidth(Num(full), g.text_scale)}}) {
      SCOPED_TRACE(text);
      const font::TextBitmap bitmap = font::RenderText(text, g.text_scale);
      int mismatches = 0;
      for (uint32_t ty = 0; ty < bitmap.height; ++ty) {
        for (uint32_t tx = 0; tx < bitmap.width; ++tx) {
          const bool on = PixelAt(*picture, left + tx, g.legend_text_y + ty) == kWhite;
          mismatches += on != bitmap.at(tx, ty);
        }
      }
      EXPECT_EQ(mismatches, 0);
    }
    ExpectLabel(*picture, g, 2, 1, "0 to " + Num(full) + (heat_max ? " (set)" : " (window width)"));
  }
}

// A window in the file applies to rescaled values; else CT gets 40/400 and other modalities the
// 1st to 99th percentile; a value at the window's centre is mid-gray.
TEST_F(DiffRenderTest, WindowsFromTheFileOrTheModalityNeverMinMax) {
  std::vector<int32_t> ramp(64 * 64);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<int32_t>(i % 1000);
  ramp[0] = 30000;  // one outlier, which a min-max window would let rule the picture

  // File window 100/200 with slope 2, intercept -1024: stored s shows 2s - 1024.
  const fs::path file_window =
      SyntheticImage("CT", 64, 64, ramp,
                     "(0028,1050) DS [100]\n(0028,1051) DS [200]\n(0028,1052) DS [-1024]\n"
                     "(0028,1053) DS [2]\n",
                     "file_window");
  const fs::path ct = SyntheticImage("CT", 64, 64, ramp,
                                     "(0028,1052) DS [-500]\n(0028,1053) DS [1]\n", "ct_default");
  const fs::path mr = SyntheticImage("MR", 64, 64, ramp, "", "mr_default");
  // The percentile window, computed here: the 1st and 99th percentile by nearest rank.
  const std::vector<double> sorted(ramp.begin(), ramp.end());
  const double lo = Percentile(sorted, 0.01);
  const double hi = Percentile(sorted, 0.99);
  struct Case {
    fs::path file;
    double slope, intercept, center, width;
    std::string label, source;
  };
  for (const Case& c :
       {Case{file_window, 2, -1024, 100, 200, "window C 100 W 200", "from the file"},
        Case{ct, 1, -500, 40, 400, "window C 40 W 400", "CT default"},
        Case{mr, 1, 0, (lo + hi + 1) / 2, hi - lo + 1,
             "window C " + Num((lo + hi + 1) / 2) + " W " + Num(hi - lo + 1),
             "1st-99th percentile"}}) {
    SCOPED_TRACE(c.label);
    auto pixels = Dicom(c.file);
    ASSERT_NE(pixels, nullptr);
    const std::optional<Png> picture = Render(*pixels, *pixels);
    ASSERT_TRUE(picture.has_value());
    const ComparisonGeometry g = GeometryFor(64, 64);
    ExpectLabel(*picture, g, 0, 2, c.label);
    ExpectLabel(*picture, g, 0, 3, c.source);
    ExpectLabel(*picture, g, 2, 1, "0 to " + Num(c.width) + " (window width)");
    int mid_grays = 0, mismatches = 0;
    for (size_t i = 0; i < ramp.size(); ++i) {
      const double value = ramp[i] * c.slope + c.intercept;
      const double want = LinearWindow(value, c.center, c.width);
      const int got =
          GrayAt(*picture, 0, static_cast<uint32_t>(i % 64), static_cast<uint32_t>(i / 64));
      if (std::abs(got - want) > 1 && ++mismatches < 5) {
        ADD_FAILURE() << "value " << value << ": gray " << got << ", want " << want;
      }
      if (std::abs(value - c.center) < 0.5) {
        ++mid_grays;
        EXPECT_NEAR(got, 127.5, 1) << "the window's centre is mid-gray";
      }
    }
    EXPECT_EQ(mismatches, 0);
    EXPECT_GT(mid_grays, 0) << "the ramp has a value at the centre";
    // The outlier does not darken the picture: the 99th percentile value is white.
    EXPECT_GE(GrayAt(*picture, 0, 989 % 64, 989 / 64), 250);
  }
}

// A change of 5 and a change of 500 at the same place look different, whatever else changed.
TEST_F(DiffRenderTest, HeatMapIsOnAnAbsoluteScale) {
  const std::vector<int32_t> base(64 * 64, 1024);  // 0 HU
  const std::string rescale = "(0028,1052) DS [-1024]\n(0028,1053) DS [1]\n";
  const fs::path file_a = SyntheticImage("CT", 64, 64, base, rescale, "base");
  std::map<int, std::optional<Png>> pictures;
  for (int change : {5, 500}) {
    std::vector<int32_t> values = base;
    for (uint32_t y = 10; y < 20; ++y) {
      for (uint32_t x = 10; x < 20; ++x) values[y * 64 + x] += change;
    }
    const fs::path file_b =
        SyntheticImage("CT", 64, 64, values, rescale, "change" + std::to_string(change));
    auto a = Dicom(file_a), b = Dicom(file_b);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    pictures[change] = Render(*a, *b);
    ASSERT_TRUE(pictures[change].has_value());
  }
  const std::array<uint8_t, 3> small = HeatAt(*pictures[5], 15, 15);
  const std::array<uint8_t, 3> large = HeatAt(*pictures[500], 15, 15);
  EXPECT_EQ(small, HeatColour(5, 400));  // CT default window: 400 wide
  EXPECT_EQ(large, kWhite);
  EXPECT_NE(small, large);
  EXPECT_LT(small[0] + small[1] + small[2], 128) << "a change of 5 HU is dark";
  EXPECT_GT(small[0], 0) << "but not black";
  for (int change : {5, 500}) {
    EXPECT_EQ(HeatAt(*pictures[change], 40, 40), (std::array<uint8_t, 3>{0, 0, 0}));
  }
}

TEST_F(DiffRenderTest, DefaultWindowsMonochrome1AndColour) {
  // CT without a window in the file: the soft tissue window.
  Run("dcm2pnm +Ww 40 400 +on " + ShellQuote(Sample("CT_small.dcm").string()) + " ct.png");
  // MONOCHROME1: DicomImage inverts it, with MR_small's window.
  const fs::path mono1 = Rewrite(Sample("MR_small.dcm"), RawPixelData(Sample("MR_small.dcm")),
                                 {{"(0028,0004)", "(0028,0004) CS [MONOCHROME1]"}}, "mono1");
  Run("dcm2pnm +Wi 1 +on " + ShellQuote(mono1.string()) + " mono1.png");
  // Colour: RGB, and YBR_FULL_422 rendered from its expanded YBR_FULL values.
  Run("dcm2pnm +on " + ShellQuote(Sample("SC_rgb_rle_2frame.dcm").string()) + " rgb.png");
  Run("dcm2pnm +on " + ShellQuote(Sample("SC_ybr_full_422_uncompressed.dcm").string()) +
      " ybr.png");
  Run("dcm2pnm +on " + ShellQuote(Sample("SC_rgb_rle_32bit.dcm").string()) + " rgb32.png");
  // Unsigned 32 bits stored (rescaled), and 1 bit allocated, neither CT nor with a window: the
  // 1st to 99th percentile of the rescaled values, computed here and given to dcm2pnm.
  for (const auto& [sample, out] :
       {std::pair{"rtdose.dcm", "dose.png"}, std::pair{"liver_1frame.dcm", "liver.png"}}) {
    auto pixels = Dicom(Sample(sample));
    ASSERT_NE(pixels, nullptr);
    const auto& dicom = dynamic_cast<const DicomPixels&>(*pixels);
    std::vector<double> values;
    for (size_t i = 0; i < dicom.frames[0].size(); ++i) {
      values.push_back(static_cast<double>(dicom.Value(dicom.frames[0], i)) * dicom.rescale_slope +
                       dicom.rescale_intercept);
    }
    const double lo = Percentile(values, 0.01);
    const double hi = Percentile(values, 0.99);
    char window[96];
    std::snprintf(window, sizeof window, "+Ww %.17g %.17g", (lo + hi + 1) / 2, hi - lo + 1);
    Run("dcm2pnm " + std::string(window) + " +on " + ShellQuote(Sample(sample).string()) + " " +
        out);
  }
  for (const auto& [dcm, png] :
       {std::pair{Sample("CT_small.dcm"), "ct.png"}, std::pair{mono1, "mono1.png"},
        std::pair{Sample("SC_rgb_rle_2frame.dcm"), "rgb.png"},
        std::pair{Sample("SC_ybr_full_422_uncompressed.dcm"), "ybr.png"},
        std::pair{Sample("SC_rgb_rle_32bit.dcm"), "rgb32.png"},
        std::pair{Sample("rtdose.dcm"), "dose.png"},
        std::pair{Sample("liver_1frame.dcm"), "liver.png"}}) {
    SCOPED_TRACE(png);
    auto pixels = Dicom(dcm);
    ASSERT_NE(pixels, nullptr);
    const std::optional<Png> picture = Render(*pixels, *pixels);
    const std::optional<Png> expected = ReadPng(ReadFile(Path(png)));
    ASSERT_TRUE(picture.has_value());
    ASSERT_TRUE(expected.has_value());
    ExpectPanel(*picture, 0, *expected);
    ExpectPanel(*picture, 1, *expected);
  }
}

TEST_F(DiffRenderTest, PicturesAreScaledToEightBits) {
  const std::string ct = ShellQuote(Sample("CT_small.dcm").string());
  Run("dcm2pnm +Wm +on2 " + ct + " mm16.png && dcm2pnm +Wm +opw " + ct + " mm16.pgm");
  Run("dcm2pnm +Ww 40 400 +on2 " + ct + " w16.png");
  auto a = Picture(Path("mm16.png")), b = Picture(Path("w16.png"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::optional<Png> picture = Render(*a, *b);
  ASSERT_TRUE(picture.has_value());
  const std::optional<Pnm> pgm = ReadPnm(ReadFile(Path("mm16.pgm")));
  ASSERT_TRUE(pgm.has_value());
  Png expected{pgm->width, pgm->height, 1, {}};
  for (int32_t v : pgm->values) expected.data.push_back(static_cast<uint8_t>(v >> 8));
  ExpectPanel(*picture, 0, expected);
  // Pictures have no window: their heat map runs to the largest 16-bit value.
  ExpectLabel(*picture, GeometryFor(pgm->height, pgm->width), 0, 2, "picture, no window");
  ExpectLabel(*picture, GeometryFor(pgm->height, pgm->width), 2, 1, "0 to 65535 (full range)");
}

}  // namespace
}  // namespace medvfs::store::diff_internal
