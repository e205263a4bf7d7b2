// The decoded pixels behind diff_internal::DecodedPixels, shared by diff_pixels.cc (decoding,
// comparison) and diff_render.cc (the side-by-side picture). Internal to store/.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/diff_internal.h"

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

// A PNG or JPEG picture: one frame; gray (1), gray+alpha (2), RGB (3) or RGBA (4) samples of
// 8 or 16 bits.
class PicturePixels final : public FramePixels {
 public:
  std::string format;  // "PNG" or "JPEG"
};

}  // namespace medvfs::store::diff_internal::detail
