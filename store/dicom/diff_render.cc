// The side-by-side picture of DiffVersions (see diff_internal.h): labels, A | B | heat map and
// the heat map's legend, one RGB 8-bit PNG. DICOM frames are rendered by DCMTK's DicomImage (as
// dcm2pnm renders them) from a one-frame data set rebuilt from the decoded stored values, with
// the window chosen here; pictures are scaled to 8 bits. Small images are enlarged (nearest
// neighbour); labels are drawn with the built-in font of diff_font.h.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "dcmtk/config/osconfig.h"  // first, as DCMTK requires

#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmimage/diregist.h"  // colour images (RGB, YBR, PALETTE COLOR)
#include "dcmtk/dcmimgle/dcmimage.h"

#include <png.h>

#include "store/dicom/diff_font.h"
#include "store/dicom/diff_internal.h"
#include "store/dicom/diff_pixels_detail.h"

namespace medvfs::store::diff_internal {
namespace {

using detail::DicomPixels;
using detail::FramePixels;
using detail::PixelLayout;
using detail::VoiWindow;

// The picture holds at most this many pixels (3 bytes each: 1.5 GiB), as many as three panels
// of the largest image ComparePixels compares.
constexpr uint64_t kMaxPicturePixels = uint64_t{1} << 29;

// Native pixel data for one frame: stored values back in words of 8, 16 or 32 bits, little
// endian, samples interleaved (YBR_FULL_422: packed again), HighBit = BitsStored - 1.
template <typename Word>
std::vector<Word> NativeWords(const DicomPixels& side, size_t k) {
  const std::vector<int32_t>& frame = side.frames[k];
  // Two's complement truncation keeps the stored bits; DCMTK masks and sign-extends them.
  const auto word = [&](size_t i) {
    return static_cast<Word>(static_cast<uint64_t>(side.Value(frame, i)));
  };
  if (side.ybr_full_422) {  // pixels 2j, 2j+1: Y Cb Cr, Y Cb Cr -> Y Y Cb Cr
    std::vector<Word> words(frame.size() / 3 * 2);
    for (size_t j = 0; j < frame.size() / 6; ++j) {
      const size_t pixel = 6 * j;
      words[4 * j] = word(pixel);
      words[4 * j + 1] = word(pixel + 3);
      words[4 * j + 2] = word(pixel + 1);
      words[4 * j + 3] = word(pixel + 2);
    }
    return words;
  }
  std::vector<Word> words(frame.size());
  for (size_t i = 0; i < frame.size(); ++i) words[i] = word(i);
  return words;
}

// The data set DicomImage renders: the side's data set with frame k as its only frame.
StatusOr<std::unique_ptr<DcmDataset>> FrameDataset(const DicomPixels& side, size_t k) {
  auto dataset = std::make_unique<DcmDataset>(*side.dataset);
  const PixelLayout& layout = side.layout;
  const uint32_t bits = layout.bits_stored <= 8 ? 8 : layout.bits_stored <= 16 ? 16 : 32;
  const auto u16 = [](uint32_t value) { return static_cast<Uint16>(value); };
  OFCondition cond = dataset->putAndInsertUint16(DCM_BitsAllocated, u16(bits));
  if (cond.good()) cond = dataset->putAndInsertUint16(DCM_BitsStored, u16(layout.bits_stored));
  if (cond.good()) cond = dataset->putAndInsertUint16(DCM_HighBit, u16(layout.bits_stored - 1));
  if (cond.good()) {
    cond = dataset->putAndInsertUint16(DCM_PixelRepresentation, layout.is_signed ? 1 : 0);
  }
  if (cond.good()) {
    cond = dataset->putAndInsertUint16(DCM_SamplesPerPixel, u16(layout.samples_per_pixel));
  }
  if (cond.good()) {
    const char* photometric = side.ybr_full_422 ? "YBR_FULL_422" : layout.photometric.c_str();
    cond = dataset->putAndInsertString(DCM_PhotometricInterpretation, photometric);
  }
  if (cond.good() && layout.samples_per_pixel > 1) {
    cond = dataset->putAndInsertUint16(DCM_PlanarConfiguration, 0);
  }
  if (cond.good()) cond = dataset->putAndInsertString(DCM_NumberOfFrames, "1");
  if (cond.good()) {
    if (bits == 8) {
      const std::vector<Uint8> words = NativeWords<Uint8>(side, k);
      cond = dataset->putAndInsertUint8Array(DCM_PixelData, words.data(), words.size());
    } else if (bits == 16) {
      const std::vector<Uint16> words = NativeWords<Uint16>(side, k);
      cond = dataset->putAndInsertUint16Array(DCM_PixelData, words.data(), words.size());
    } else {
      // 32-bit words as pairs of 16-bit words (OW), low word first on this little-endian host.
      const std::vector<Uint32> words = NativeWords<Uint32>(side, k);
      std::vector<Uint16> halves(words.size() * 2);
      std::memcpy(halves.data(), words.data(), words.size() * sizeof(Uint32));
      cond = dataset->putAndInsertUint16Array(DCM_PixelData, halves.data(), halves.size());
    }
  }
  if (cond.bad()) {
    return Status::Invalid(std::string("DICOM frame cannot be prepared for rendering: ") +
                           cond.text());
  }
  return dataset;
}

// One side being rendered: a DICOM frame's DicomImage, or nothing for a picture.
struct SideImage {
  std::unique_ptr<DcmDataset> dataset;  // outlives image
  std::unique_ptr<DicomImage> image;
  const DicomPixels* dicom = nullptr;

  bool monochrome() const { return image != nullptr && image->isMonochrome(); }
};

Status PrepareSide(const FramePixels& side, size_t k, SideImage* out) {
  out->dicom = dynamic_cast<const DicomPixels*>(&side);
  if (out->dicom == nullptr) return Status::Ok();
  if (out->dicom->dataset == nullptr) return Status::Invalid("DICOM data set missing");
  MEDVFS_ASSIGN_OR_RETURN(out->dataset, FrameDataset(*out->dicom, k));
  out->image = std::make_unique<DicomImage>(out->dataset.get(), EXS_LittleEndianExplicit);
  const EI_Status status = out->image->getStatus();
  if (status != EIS_Normal) {
    return Status::Invalid(std::string("DICOM frame does not render: ") +
                           DicomImage::getString(status));
  }
  return Status::Ok();
}

// ---- Windows --------------------------------------------------------------------------------

// The modality value (after RescaleSlope/Intercept) of sample i of a DICOM frame.
double ModalityValue(const DicomPixels& side, const std::vector<int32_t>& frame, size_t i) {
  return static_cast<double>(side.Value(frame, i)) * side.rescale_slope + side.rescale_intercept;
}

std::string ModalityOf(const DicomPixels& side) {
  OFString modality;
  if (side.dataset == nullptr || side.dataset->findAndGetOFString(DCM_Modality, modality).bad()) {
    return {};
  }
  std::string text(modality.c_str());
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

struct WindowChoice {
  std::optional<VoiWindow> window;  // none: no monochrome DICOM side
  std::string source;               // "from the file", "CT default", "1st-99th percentile"
};

// The window of the 1st to 99th percentile of the modality values of the monochrome sides'
// frames k: the 1st percentile maps to black, the 99th to white (DICOM's linear function).
// Percentiles by nearest rank, of every value up to kMaxPercentileSamples, else of evenly spaced
// samples (memory stays bounded for large frames).
VoiWindow PercentileWindow(const std::vector<const SideImage*>& sides, size_t k) {
  constexpr size_t kMaxPercentileSamples = size_t{1} << 20;
  size_t total = 0;
  for (const SideImage* side : sides) total += side->dicom->frames[k].size();
  const size_t stride = (total + kMaxPercentileSamples - 1) / kMaxPercentileSamples;
  std::vector<double> values;
  values.reserve(total / stride + sides.size());
  for (const SideImage* side : sides) {
    const std::vector<int32_t>& frame = side->dicom->frames[k];
    for (size_t i = 0; i < frame.size(); i += stride) {
      values.push_back(ModalityValue(*side->dicom, frame, i));
    }
  }
  const auto at = [&values](double fraction) {
    const auto index =
        static_cast<size_t>(std::llround(fraction * static_cast<double>(values.size() - 1)));
    std::nth_element(values.begin(), values.begin() + static_cast<ptrdiff_t>(index), values.end());
    return values[index];
  };
  const double lo = at(0.01);
  const double hi = at(0.99);
  return VoiWindow{(lo + hi + 1) / 2, hi - lo + 1};
}

// The same VOI window for both monochrome DICOM sides (see RenderComparisonPng).
WindowChoice ChooseWindow(const SideImage& a, const SideImage& b, size_t k) {
  std::vector<const SideImage*> sides;
  for (const SideImage* side : {&a, &b}) {
    if (side->monochrome()) sides.push_back(side);
  }
  if (sides.empty()) return {};
  for (const SideImage* side : sides) {
    if (side->dicom->window) return {side->dicom->window, "from the file"};
  }
  if (ModalityOf(*sides.front()->dicom) == "CT") return {VoiWindow{40, 400}, "CT default"};
  return {PercentileWindow(sides, k), "1st-99th percentile"};
}

// ---- Panels ---------------------------------------------------------------------------------

// An RGB image of rows x columns, before enlargement.
struct Panel {
  uint32_t rows = 0;
  uint32_t columns = 0;
  std::vector<uint8_t> rgb;
  Panel(uint32_t r, uint32_t c) : rows(r), columns(c), rgb(size_t{r} * c * 3) {}
  uint8_t* At(size_t pixel) { return &rgb[pixel * 3]; }
  size_t pixels() const { return size_t{rows} * columns; }
};

Status RenderDicom(const SideImage& side, Panel* panel) {
  const bool mono = side.image->isMonochrome();
  const auto* data = static_cast<const uint8_t*>(side.image->getOutputData(8, 0, 0));
  if (data == nullptr) return Status::Invalid("DICOM frame does not render");
  for (size_t p = 0; p < panel->pixels(); ++p) {
    uint8_t* out = panel->At(p);
    for (size_t c = 0; c < 3; ++c) out[c] = mono ? data[p] : data[3 * p + c];
  }
  return Status::Ok();
}

void RenderPicture(const FramePixels& side, size_t k, Panel* panel) {
  const std::vector<int32_t>& frame = side.frames[k];
  const size_t samples = side.layout.samples_per_pixel;
  const int shift = side.layout.bits_stored > 8 ? static_cast<int>(side.layout.bits_stored) - 8 : 0;
  for (size_t p = 0; p < panel->pixels(); ++p) {
    uint8_t* out = panel->At(p);
    for (size_t c = 0; c < 3; ++c) {
      const size_t sample = samples >= 3 ? c : 0;  // gray (and gray + alpha) replicated
      const int64_t value = side.Value(frame, p * samples + sample) >> shift;
      out[c] = static_cast<uint8_t>(std::clamp<int64_t>(value, 0, 255));
    }
  }
}

// The heat map of |A - B|: per pixel the largest over its samples, of modality values for
// monochrome DICOM, of stored values otherwise.
void RenderHeatMap(const FramePixels& a, const FramePixels& b, size_t k, double full_scale,
                   Panel* panel) {
  const auto* da = dynamic_cast<const DicomPixels*>(&a);
  const auto* db = dynamic_cast<const DicomPixels*>(&b);
  const bool modality = da != nullptr && db != nullptr && a.layout.samples_per_pixel == 1;
  const std::vector<int32_t>& fa = a.frames[k];
  const std::vector<int32_t>& fb = b.frames[k];
  const size_t samples = a.layout.samples_per_pixel;
  for (size_t p = 0; p < panel->pixels(); ++p) {
    double largest = 0;
    for (size_t i = p * samples; i < (p + 1) * samples; ++i) {
      const double d = modality ? ModalityValue(*da, fa, i) - ModalityValue(*db, fb, i)
                                : static_cast<double>(a.Value(fa, i) - b.Value(fb, i));
      largest = std::max(largest, std::abs(d));
    }
    const std::array<uint8_t, 3> colour = detail::HeatColour(largest, full_scale);
    std::copy(colour.begin(), colour.end(), panel->At(p));
  }
}

// ---- The picture ----------------------------------------------------------------------------

using Rgb = std::array<uint8_t, 3>;
constexpr Rgb kBackground = {40, 40, 40};
constexpr Rgb kText = {255, 255, 255};

class Canvas {
 public:
  Canvas(uint64_t width, uint64_t height)
      : width_(width), height_(height), rgb_(width * height * 3) {
    for (size_t i = 0; i < rgb_.size(); i += 3)
      std::copy(kBackground.begin(), kBackground.end(), &rgb_[i]);
  }

  void Set(uint64_t x, uint64_t y, const Rgb& colour) {
    if (x >= width_ || y >= height_) return;
    std::copy(colour.begin(), colour.end(), &rgb_[(y * width_ + x) * 3]);
  }
  void Fill(uint64_t x, uint64_t y, uint64_t w, uint64_t h, const Rgb& colour) {
    for (uint64_t dy = 0; dy < h; ++dy) {
      for (uint64_t dx = 0; dx < w; ++dx) Set(x + dx, y + dy, colour);
    }
  }
  // Draws text with its top left at (x, y), cut after max_width pixels.
  void Text(uint64_t x, uint64_t y, std::string_view text, uint32_t scale, uint32_t max_width) {
    const size_t fits = (max_width / scale + 1) / font::kAdvance;
    const font::TextBitmap bitmap = font::RenderText(text.substr(0, fits), scale);
    for (uint32_t ty = 0; ty < bitmap.height; ++ty) {
      for (uint32_t tx = 0; tx < bitmap.width; ++tx) {
        if (bitmap.at(tx, ty)) Set(x + tx, y + ty, kText);
      }
    }
  }
  // Copies panel at (x, y), each pixel as a scale x scale square.
  void Blit(const Panel& panel, uint64_t x, uint64_t y, uint32_t scale) {
    for (uint64_t py = 0; py < uint64_t{panel.rows} * scale; ++py) {
      const uint8_t* row = &panel.rgb[(py / scale) * panel.columns * 3];
      uint8_t* out = &rgb_[((y + py) * width_ + x) * 3];
      for (uint64_t px = 0; px < uint64_t{panel.columns} * scale; ++px) {
        std::memcpy(out + px * 3, row + (px / scale) * 3, 3);
      }
    }
  }
  uint64_t width() const { return width_; }
  uint64_t height() const { return height_; }
  const std::vector<uint8_t>& rgb() const { return rgb_; }

 private:
  uint64_t width_;
  uint64_t height_;
  std::vector<uint8_t> rgb_;
};

// "40", "0.5", "1.5e+06": at most six significant digits.
std::string Number(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  return buf;
}

// "2026-11-21T10:22:03Z" (UTC, to the second).
std::string UtcTime(int64_t time_ns) {
  int64_t seconds = time_ns / 1'000'000'000;
  if (time_ns % 1'000'000'000 < 0) --seconds;
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "time unknown";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::vector<std::string> SideLabel(char name, const std::string& label, int64_t time_ns,
                                   const RenderRequest& request, size_t frames,
                                   const FramePixels& pixels, const SideImage& side,
                                   const WindowChoice& window) {
  std::string line = std::string(1, name) + ": " + label;
  if (time_ns != 0) line += "  " + UtcTime(time_ns);
  std::string shown, source;
  if (side.monochrome() && window.window) {
    shown = "window C " + Number(window.window->center) + " W " + Number(window.window->width);
    source = window.source;
  } else if (side.image != nullptr || pixels.layout.samples_per_pixel >= 3) {
    shown = "colour, no window";
  } else {
    shown = "picture, no window";
  }
  return {line, "frame " + std::to_string(request.frame) + " of " + std::to_string(frames), shown,
          source};
}

struct HeatScale {
  double full = 1;
  std::string source;  // "set", "window width", "full range"
};

HeatScale ChooseHeatScale(const RenderRequest& request, const WindowChoice& window,
                          const FramePixels& a, const FramePixels& b) {
  HeatScale scale;
  if (request.heat_max) {
    scale = {*request.heat_max, "set"};
  } else if (window.window) {
    scale = {window.window->width, "window width"};
  } else {
    const int bits = static_cast<int>(std::max(a.layout.bits_stored, b.layout.bits_stored));
    scale = {std::ldexp(1.0, bits) - 1, "full range"};
  }
  scale.full = std::max(1.0, scale.full);
  return scale;
}

void DrawLabels(const detail::ComparisonGeometry& g, size_t panel,
                const std::vector<std::string>& lines, Canvas* canvas) {
  for (size_t i = 0; i < lines.size(); ++i) {
    canvas->Text(g.panel_x[panel], g.label_y + i * g.line_height, lines[i], g.text_scale,
                 g.panel_width);
  }
}

// The heat map's legend: a bar from 0 to the full scale, with ticks and numbers at 0, 1/4, 1/2,
// 3/4 and 1 of it (at 0, 1/2 and 1, or 0 and 1, when the numbers are too wide for that).
void DrawLegend(const detail::ComparisonGeometry& g, double full_scale, Canvas* canvas) {
  const uint64_t x0 = g.panel_x[2];
  const uint32_t w = g.panel_width;
  for (uint32_t x = 0; x < w; ++x) {
    const double value = full_scale * x / (w - 1);
    canvas->Fill(x0 + x, g.legend_y, 1, detail::ComparisonGeometry::kLegendBarHeight,
                 detail::HeatColour(value, full_scale));
  }
  uint32_t widest = 0;
  for (int quarter = 0; quarter <= 4; ++quarter) {
    widest = std::max(widest, font::TextWidth(Number(full_scale * quarter / 4), g.text_scale));
  }
  // The last number is right-aligned to the end of the bar: room for two numbers per part.
  const uint32_t gap = font::kAdvance * g.text_scale;
  int parts = 4;
  while (parts > 1 && w / static_cast<uint32_t>(parts) < 2 * widest + gap) parts /= 2;
  for (int part = 0; part <= parts; ++part) {
    const uint64_t x =
        x0 + static_cast<uint64_t>(std::lround(static_cast<double>(part) * (w - 1) / parts));
    const uint64_t tick_x = std::min(x, x0 + w - g.text_scale);
    canvas->Fill(tick_x, g.legend_y + detail::ComparisonGeometry::kLegendBarHeight, g.text_scale,
                 detail::ComparisonGeometry::kTickHeight, kText);
    const std::string number = Number(full_scale * part / parts);
    const uint32_t text_w = font::TextWidth(number, g.text_scale);
    const uint64_t left = std::clamp<uint64_t>(x >= text_w / 2 ? x - text_w / 2 : 0, x0,
                                               x0 + w - std::min(w, text_w));
    canvas->Text(left, g.legend_text_y, number, g.text_scale, w);
  }
}

StatusOr<std::string> EncodePng(const Canvas& canvas) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(canvas.width());
  image.height = static_cast<png_uint_32>(canvas.height());
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = PNG_IMAGE_PNG_SIZE_MAX(image);
  std::string png(size, '\0');
  if (png_image_write_to_memory(&image, png.data(), &size, 0, canvas.rgb().data(), 0, nullptr) ==
      0) {
    const std::string message = image.message;
    png_image_free(&image);
    return Status::IoError("PNG cannot be written: " + message);
  }
  png.resize(size);
  return png;
}

}  // namespace

namespace detail {

ComparisonGeometry GeometryFor(uint32_t rows, uint32_t columns) {
  ComparisonGeometry g;
  using G = ComparisonGeometry;
  const uint32_t by_width = (G::kMinPanelWidth + columns - 1) / std::max(columns, 1u);
  const uint32_t by_height = G::kMaxEnlargedHeight / std::max(rows, 1u);
  g.scale = std::max(1u, std::min(by_width, by_height));
  g.line_height = (font::kGlyphHeight + 3) * g.text_scale;
  g.image_width = columns * g.scale;
  g.image_height = rows * g.scale;
  g.panel_width = std::max(g.image_width, G::kMinPanelWidth);
  for (uint32_t i = 0; i < 3; ++i) g.panel_x[i] = G::kPad + i * (g.panel_width + G::kPad);
  g.label_y = G::kPad;
  g.image_y = g.label_y + G::kLabelLines * g.line_height + G::kPad;
  g.legend_y = g.image_y + g.image_height + G::kPad;
  g.legend_text_y = g.legend_y + G::kLegendBarHeight + G::kTickHeight + 2 * g.text_scale;
  g.width = uint64_t{g.panel_width} * 3 + uint64_t{4} * G::kPad;
  g.height = uint64_t{g.legend_text_y} + uint64_t{font::kGlyphHeight} * g.text_scale + G::kPad;
  return g;
}

std::array<uint8_t, 3> HeatColour(double d, double full_scale) {
  if (!(d > 0)) return {0, 0, 0};
  constexpr double kFloor = 0.1;  // the darkest red a difference gets
  const double t = kFloor + (1 - kFloor) * std::min(1.0, d / full_scale);
  const auto channel = [](double v) {
    return static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255));
  };
  return {channel(3 * t), channel(3 * t - 1), channel(3 * t - 2)};
}

}  // namespace detail

StatusOr<std::string> RenderComparisonPng(const DecodedPixels& a, const DecodedPixels& b,
                                          const RenderRequest& request) {
  const auto* pa = dynamic_cast<const FramePixels*>(&a);
  const auto* pb = dynamic_cast<const FramePixels*>(&b);
  if (pa == nullptr || pb == nullptr) return Status::Invalid("pixels were not decoded");
  const PixelLayout& la = pa->layout;
  const PixelLayout& lb = pb->layout;
  if (la.rows != lb.rows || la.columns != lb.columns ||
      la.samples_per_pixel != lb.samples_per_pixel || pa->frames.size() != pb->frames.size()) {
    return Status::Invalid("pixels of A and B are not comparable");
  }
  if (request.frame == 0 || request.frame > pa->frames.size()) {
    return Status::Invalid("no such frame");
  }
  if (request.heat_max && !(*request.heat_max > 0 && std::isfinite(*request.heat_max))) {
    return Status::Invalid("the heat map's full scale must be a positive number");
  }
  const detail::ComparisonGeometry g = detail::GeometryFor(la.rows, la.columns);
  if (g.width > PNG_UINT_31_MAX || g.height > PNG_UINT_31_MAX ||
      g.width * g.height > kMaxPicturePixels) {
    return Status::NotSupported("the picture would be too large");
  }
  const size_t k = request.frame - 1;

  SideImage side_a, side_b;
  MEDVFS_RETURN_IF_ERROR(PrepareSide(*pa, k, &side_a));
  MEDVFS_RETURN_IF_ERROR(PrepareSide(*pb, k, &side_b));
  const WindowChoice window = ChooseWindow(side_a, side_b, k);
  for (SideImage* side : {&side_a, &side_b}) {
    if (side->monochrome() && window.window) {
      side->image->setWindow(window.window->center, window.window->width);
    }
  }
  const HeatScale heat = ChooseHeatScale(request, window, *pa, *pb);

  Canvas canvas(g.width, g.height);
  const std::tuple<const FramePixels*, const SideImage*, char, const std::string*, int64_t>
      sides[] = {{pa, &side_a, 'A', &request.label_a, request.time_a_ns},
                 {pb, &side_b, 'B', &request.label_b, request.time_b_ns}};
  for (size_t i = 0; i < 2; ++i) {
    const auto& [pixels, side, name, label, time_ns] = sides[i];
    Panel panel(la.rows, la.columns);
    if (side->image != nullptr) {
      MEDVFS_RETURN_IF_ERROR(RenderDicom(*side, &panel));
    } else {
      RenderPicture(*pixels, k, &panel);
    }
    canvas.Blit(panel, g.panel_x[i], g.image_y, g.scale);
    DrawLabels(g, i,
               SideLabel(name, *label, time_ns, request, pa->frames.size(), *pixels, *side, window),
               &canvas);
  }
  Panel heat_map(la.rows, la.columns);
  RenderHeatMap(*pa, *pb, k, heat.full, &heat_map);
  canvas.Blit(heat_map, g.panel_x[2], g.image_y, g.scale);
  DrawLabels(g, 2,
             {"|A - B| per pixel", "0 to " + Number(heat.full) + " (" + heat.source + ")",
              "equal: black, >= " + Number(heat.full) + ": white"},
             &canvas);
  DrawLegend(g, heat.full, &canvas);
  return EncodePng(canvas);
}

}  // namespace medvfs::store::diff_internal
