// The side-by-side picture of DiffVersions (see diff_internal.h): A | B | heat map, one RGB
// 8-bit PNG. DICOM frames are rendered by DCMTK's DicomImage (as dcm2pnm renders them) from a
// one-frame data set rebuilt from the decoded stored values; pictures are scaled to 8 bits.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>

#include "dcmtk/config/osconfig.h"  // first, as DCMTK requires

#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmimage/diregist.h"  // colour images (RGB, YBR, PALETTE COLOR)
#include "dcmtk/dcmimgle/dcmimage.h"

#include <png.h>

#include "store/diff_internal.h"
#include "store/diff_pixels_detail.h"

namespace medvfs::store::diff_internal {
namespace {

using detail::DicomPixels;
using detail::FramePixels;
using detail::PixelLayout;
using detail::VoiWindow;

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

// The same VOI window on both monochrome DICOM sides: the first window in A's file, else in
// B's, else the min-max of both frames (as DicomImage::setMinMaxWindow computes it for one).
void ApplyWindow(SideImage* a, SideImage* b) {
  SideImage* sides[] = {a, b};
  std::optional<VoiWindow> window;
  for (SideImage* side : sides) {
    if (!window && side->monochrome()) window = side->dicom->window;
  }
  if (!window) {
    std::optional<std::pair<double, double>> range;
    for (SideImage* side : sides) {
      double min = 0, max = 0;
      if (!side->monochrome() || !side->image->getMinMaxValues(min, max)) continue;
      if (range) {
        range->first = std::min(range->first, min);
        range->second = std::max(range->second, max);
      } else {
        range.emplace(min, max);
      }
    }
    if (!range) return;
    window = VoiWindow{(range->first + range->second + 1) / 2, range->second - range->first + 1};
  }
  for (SideImage* side : sides) {
    if (side->monochrome()) side->image->setWindow(window->center, window->width);
  }
}

// Panels are rows x columns RGB, written into the picture at column offset `panel`.
class Picture {
 public:
  Picture(uint32_t rows, uint32_t columns)
      : rows_(rows), columns_(columns), rgb_(size_t{rows} * columns * 9) {}

  uint8_t* At(uint32_t panel, size_t pixel) {
    const size_t y = pixel / columns_, x = pixel % columns_;
    return &rgb_[(y * 3 * columns_ + size_t{panel} * columns_ + x) * 3];
  }
  size_t pixels() const { return size_t{rows_} * columns_; }
  const std::vector<uint8_t>& rgb() const { return rgb_; }

 private:
  uint32_t rows_;
  uint32_t columns_;
  std::vector<uint8_t> rgb_;
};

Status RenderDicom(const SideImage& side, uint32_t panel, Picture* picture) {
  const bool mono = side.image->isMonochrome();
  const auto* data = static_cast<const uint8_t*>(side.image->getOutputData(8, 0, 0));
  if (data == nullptr) return Status::Invalid("DICOM frame does not render");
  for (size_t p = 0; p < picture->pixels(); ++p) {
    uint8_t* out = picture->At(panel, p);
    for (size_t c = 0; c < 3; ++c) out[c] = mono ? data[p] : data[3 * p + c];
  }
  return Status::Ok();
}

void RenderPicture(const FramePixels& side, size_t k, uint32_t panel, Picture* picture) {
  const std::vector<int32_t>& frame = side.frames[k];
  const size_t samples = side.layout.samples_per_pixel;
  const int shift = side.layout.bits_stored > 8 ? static_cast<int>(side.layout.bits_stored) - 8 : 0;
  for (size_t p = 0; p < picture->pixels(); ++p) {
    uint8_t* out = picture->At(panel, p);
    for (size_t c = 0; c < 3; ++c) {
      const size_t sample = samples >= 3 ? c : 0;  // gray (and gray + alpha) replicated
      const int64_t value = side.Value(frame, p * samples + sample) >> shift;
      out[c] = static_cast<uint8_t>(std::clamp<int64_t>(value, 0, 255));
    }
  }
}

// black (0) -> red -> yellow -> white (1)
std::array<uint8_t, 3> HeatColour(double t) {
  const auto channel = [](double v) {
    return static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255));
  };
  return {channel(3 * t), channel(3 * t - 1), channel(3 * t - 2)};
}

void RenderHeatMap(const FramePixels& a, const FramePixels& b, size_t k, Picture* picture) {
  const std::vector<int32_t>& fa = a.frames[k];
  const std::vector<int32_t>& fb = b.frames[k];
  const size_t samples = a.layout.samples_per_pixel;
  std::vector<int64_t> largest(picture->pixels());  // per pixel, over its samples
  int64_t max_d = 0;
  for (size_t p = 0; p < largest.size(); ++p) {
    for (size_t i = p * samples; i < (p + 1) * samples; ++i) {
      const int64_t d = a.Value(fa, i) - b.Value(fb, i);
      largest[p] = std::max(largest[p], d < 0 ? -d : d);
    }
    max_d = std::max(max_d, largest[p]);
  }
  for (size_t p = 0; p < largest.size(); ++p) {
    const double t = max_d == 0 ? 0 : static_cast<double>(largest[p]) / static_cast<double>(max_d);
    const std::array<uint8_t, 3> colour = HeatColour(t);
    std::copy(colour.begin(), colour.end(), picture->At(2, p));
  }
}

StatusOr<std::string> EncodePng(uint32_t width, uint32_t height, const std::vector<uint8_t>& rgb) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = width;
  image.height = height;
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = PNG_IMAGE_PNG_SIZE_MAX(image);
  std::string png(size, '\0');
  if (png_image_write_to_memory(&image, png.data(), &size, 0, rgb.data(), 0, nullptr) == 0) {
    const std::string message = image.message;
    png_image_free(&image);
    return Status::IoError("PNG cannot be written: " + message);
  }
  png.resize(size);
  return png;
}

}  // namespace

StatusOr<std::string> RenderComparisonPng(const DecodedPixels& a, const DecodedPixels& b,
                                          uint32_t frame) {
  const auto* pa = dynamic_cast<const FramePixels*>(&a);
  const auto* pb = dynamic_cast<const FramePixels*>(&b);
  if (pa == nullptr || pb == nullptr) return Status::Invalid("pixels were not decoded");
  const PixelLayout& la = pa->layout;
  const PixelLayout& lb = pb->layout;
  if (la.rows != lb.rows || la.columns != lb.columns ||
      la.samples_per_pixel != lb.samples_per_pixel || pa->frames.size() != pb->frames.size()) {
    return Status::Invalid("pixels of A and B are not comparable");
  }
  if (frame == 0 || frame > pa->frames.size()) return Status::Invalid("no such frame");
  if (uint64_t{la.columns} * 3 > PNG_UINT_31_MAX) return Status::NotSupported("too wide");
  const size_t k = frame - 1;

  SideImage side_a, side_b;
  MEDVFS_RETURN_IF_ERROR(PrepareSide(*pa, k, &side_a));
  MEDVFS_RETURN_IF_ERROR(PrepareSide(*pb, k, &side_b));
  ApplyWindow(&side_a, &side_b);

  Picture picture(la.rows, la.columns);
  const std::pair<const FramePixels*, const SideImage*> sides[] = {{pa, &side_a}, {pb, &side_b}};
  for (uint32_t panel = 0; panel < 2; ++panel) {
    const auto& [pixels, side] = sides[panel];
    if (side->image != nullptr) {
      MEDVFS_RETURN_IF_ERROR(RenderDicom(*side, panel, &picture));
    } else {
      RenderPicture(*pixels, k, panel, &picture);
    }
  }
  RenderHeatMap(*pa, *pb, k, &picture);
  return EncodePng(la.columns * 3, la.rows, picture.rgb());
}

}  // namespace medvfs::store::diff_internal
