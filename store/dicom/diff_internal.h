// The parts of DiffVersions (store/diff.h), internal to store/: the DICOM tag diff
// (diff_tags.cc), pixel decoding and comparison (diff_pixels.cc), and the side-by-side picture
// (diff_render.cc). No DCMTK, libpng or libjpeg type appears here.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/dicom/compare.h"
#include "store/status.h"

namespace medvfs::store::diff_internal {

// ---- Tags (diff_tags.cc) ----

// The differences between the data elements of two DICOM Part 10 files (whole files in
// memory), File Meta Information included, Pixel Data (7FE0,0010) left out. Sequences are
// compared item by item (item i of A with item i of B; extra items are added or removed with
// all their elements). Ordered by tag path. kInvalid when a side does not parse (the message
// says which side: "A" or "B"; it never contains a value from the file).
StatusOr<std::vector<TagDifference>> DiffDicomTags(std::string_view a, std::string_view b);

// ---- Pixels (diff_pixels.cc) ----

// The decoded pixels of one side: a DICOM file's frames in stored values, or a PNG/JPEG
// picture as one frame. Holds what rendering needs too.
class DecodedPixels {
 public:
  virtual ~DecodedPixels() = default;
};

// Decodes the pixel data of a DICOM Part 10 file (whole file in memory), every frame, in
// stored values. Native and encapsulated data that DCMTK decodes (RLE, JPEG baseline/extended/
// lossless, JPEG-LS) are supported. kNotSupported with a clear message for JPEG 2000 (and any
// other transfer syntax DCMTK cannot decode), naming the transfer syntax; kInvalid when there is
// no pixel data or it is damaged. Messages never contain values from the file.
StatusOr<std::unique_ptr<DecodedPixels>> DecodeDicomPixels(std::string_view file);

// Decodes a PNG or JPEG picture (whole file in memory). kInvalid when it does not decode.
StatusOr<std::unique_ptr<DecodedPixels>> DecodePicture(std::string_view file);
bool LooksLikePng(std::string_view head);
bool LooksLikeJpeg(std::string_view head);

// Compares two decoded sides frame by frame. When the dimensions, samples per pixel or frame
// counts differ, compared is false and not_compared_reason says how they differ. Notes tell
// when the stored values are not on the same scale (BitsStored, PixelRepresentation,
// PhotometricInterpretation, rescale differ).
PixelComparison ComparePixels(const DecodedPixels& a, const DecodedPixels& b);

// ---- The side-by-side picture (diff_render.cc) ----

// What the picture shows besides the pixels. Labels carry no patient data: version labels,
// UTC times, the frame number and window values only.
struct RenderRequest {
  uint32_t frame = 1;         // 1-based
  std::string label_a = "A";  // e.g. "v3"
  std::string label_b = "B";
  int64_t time_a_ns = 0;  // 0: not shown
  int64_t time_b_ns = 0;
  std::optional<double> heat_max;  // the heat map's full scale (DiffOptions::png_heat_max)
};

// An RGB 8-bit PNG for frame request.frame: a label band over three panels A | B | heat map of
// |A - B|, with the heat map's legend under it (layout: detail::GeometryFor). Small images are
// enlarged by an integer factor. Each panel is labelled with its version, UTC time, frame and
// window. A and B are rendered with the same VOI window, applied after RescaleSlope/Intercept:
// the first WindowCenter/WindowWidth of A's file (else B's), else for CT 40/400 (soft tissue),
// else the 1st to 99th percentile of both frames' values (never min-max, which one outlier
// spoils); MONOCHROME1 is inverted; colour pictures are shown as they are. The heat map is on
// an absolute scale: 0 to request.heat_max, else the window width, else 2^BitsStored - 1 (of
// rescaled values for monochrome DICOM, stored values otherwise), with numbers on its legend.
// REQUIRES: ComparePixels(a, b).compared.
StatusOr<std::string> RenderComparisonPng(const DecodedPixels& a, const DecodedPixels& b,
                                          const RenderRequest& request);

}  // namespace medvfs::store::diff_internal
