// The decoded pixels behind diff_internal::DecodedPixels, shared by diff_pixels.cc (decoding,
// comparison) and diff_render.cc (the side-by-side picture). Internal to store/.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/dicom/diff_internal.h"

class DcmDataset;  // DCMTK; only diff_pixels.cc and diff_render.cc see its definition

namespace medvfs::store::diff_internal::detail {

// Pictures and decoded DICOM frames hold at most this many samples (int32 each: 2 GiB).
inline constexpr uint64_t kMaxDecodedSamples = uint64_t{1} << 29;

// What the stored values of one side are.
struct PixelLayout {
  uint32_t rows = 0;
  uint32_t columns = 0;
  uint32_t samples_per_pixel = 0;
  uint32_t bits_stored = 0;
  bool is_signed = false;
  // Of the decoded values, e.g. "RGB" for YBR_FULL_422 JPEG that dcmjpeg converted.
  std::string photometric;
  // A stored value is frame value + value_bias: 2^31 for unsigned values of 32 bits stored,
  // which int32 cannot hold otherwise; 0 for everything else.
  int64_t value_bias = 0;
};

// Frames of stored values, samples interleaved (R G B R G B ...), row by row.
class FramePixels : public DecodedPixels {
 public:
  PixelLayout layout;
  std::vector<std::vector<int32_t>> frames;

  int64_t Value(const std::vector<int32_t>& frame, size_t i) const {
    return int64_t{frame[i]} + layout.value_bias;
  }
};

struct VoiWindow {
  double center = 0;
  double width = 0;
};

// A DICOM file's frames, with the data set (Pixel Data removed) that DicomImage needs to render
// one of them.
class DicomPixels final : public FramePixels {
 public:
  DicomPixels();
  ~DicomPixels() override;

  // The data set as read (after decompression), without Pixel Data.
  std::unique_ptr<DcmDataset> dataset;
  bool has_rescale = false;
  double rescale_slope = 1;
  double rescale_intercept = 0;
  std::optional<VoiWindow> window;  // the first WindowCenter/WindowWidth of the file
  // The file's native values were YBR_FULL_422 (Y1 Y2 Cb Cr per pair of pixels), expanded to
  // YBR_FULL in `frames`; rendering packs them again, so that DCMTK converts them as it does
  // the file's.
  bool ybr_full_422 = false;
};

// Where things are in the side-by-side picture of an image of rows x columns pixels:
//   label band (4 lines per panel) | images A, B, heat map (enlarged) | legend under the heat map
// Small images are enlarged by an integer factor (nearest neighbour) so that a panel is at
// least kMinPanelWidth wide, unless that would make it taller than kMaxEnlargedHeight.
struct ComparisonGeometry {
  static constexpr uint32_t kMinPanelWidth = 512;
  static constexpr uint32_t kMaxEnlargedHeight = 2048;
  static constexpr uint32_t kPad = 8;  // margin around and between panels
  static constexpr uint32_t kLabelLines = 4;
  static constexpr uint32_t kLegendBarHeight = 16;
  static constexpr uint32_t kTickHeight = 4;

  uint32_t scale = 1;          // each image pixel is scale x scale picture pixels
  uint32_t text_scale = 2;     // each font pixel is text_scale x text_scale picture pixels
  uint32_t line_height = 0;    // from one label line to the next
  uint32_t image_width = 0;    // columns * scale
  uint32_t image_height = 0;   // rows * scale
  uint32_t panel_width = 0;    // max(image_width, kMinPanelWidth)
  uint32_t panel_x[3] = {};    // left edge of panels A, B and the heat map
  uint32_t label_y = 0;        // top of the first label line
  uint32_t image_y = 0;        // top of the images
  uint32_t legend_y = 0;       // top of the legend bar (under the heat map, panel_width wide)
  uint32_t legend_text_y = 0;  // top of the legend's numbers
  uint64_t width = 0;
  uint64_t height = 0;
};
ComparisonGeometry GeometryFor(uint32_t rows, uint32_t columns);

// The heat map's colour for an absolute difference d on a scale of 0 to full_scale: black for
// 0; any other difference at least dark red (so that it is never mistaken for equal), then
// linearly through red and yellow to white at full_scale and above.
std::array<uint8_t, 3> HeatColour(double d, double full_scale);

// A PNG or JPEG picture: one frame; gray (1), gray+alpha (2), RGB (3) or RGBA (4) samples of
// 8 or 16 bits.
class PicturePixels final : public FramePixels {
 public:
  std::string format;  // "PNG" or "JPEG"
};

}  // namespace medvfs::store::diff_internal::detail
