// The parts of DiffVersions (store/diff.h), internal to store/: the DICOM tag diff
// (diff_tags.cc), pixel decoding and comparison (diff_pixels.cc), and the side-by-side picture
// (diff_render.cc). No DCMTK, libpng or libjpeg type appears here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/diff.h"
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

// A PNG of width 3 x columns and height rows: A | B | heat map of |A - B| for frame `frame`
// (1-based). A and B are rendered with the same VOI window: the first window in A's file (else
// B's), else the min-max of both frames' values; MONOCHROME1 is inverted; colour pictures are
// shown as they are. The heat map runs black (equal) -> red -> yellow -> white (the largest
// difference in the frame). REQUIRES: ComparePixels(a, b).compared.
StatusOr<std::string> RenderComparisonPng(const DecodedPixels& a, const DecodedPixels& b,
                                          uint32_t frame);

}  // namespace medvfs::store::diff_internal
