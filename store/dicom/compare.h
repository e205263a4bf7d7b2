// What comparing two DICOM files or pictures finds: tag and pixel differences. Filled by
// store/dicom (diff_tags.cc, diff_pixels.cc) from bytes; store/diff.h, the comparison of two
// versions, reports them. No DCMTK type appears here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace medvfs::store {

enum class TagChange { kAdded, kRemoved, kChanged };
// "added", "removed", "changed": as the text and JSON forms name them.
std::string TagChangeName(TagChange change);

// One DICOM data element that differs. Elements inside sequences are named by their path from
// the top level; items are numbered from 0, as dcmodify's paths do.
struct TagDifference {
  TagChange change = TagChange::kChanged;
  std::string keyword_path;  // "ReferencedImageSequence[0].ReferencedSOPInstanceUID"; a
                             // private or unknown element shows its tag, e.g. "(0009,1001)"
  std::string tag_path;      // "(0008,1140)[0].(0008,1155)"
  std::string vr;            // of the new element (the old one when removed)
  std::string old_value;     // as DicomElement::value shows it; empty when added
  std::string new_value;     // empty when removed
};

struct FrameDifference {
  uint32_t frame = 0;  // 1-based
  uint64_t pixels = 0;
  uint64_t differing_pixels = 0;  // a pixel differs when any of its samples does
  int64_t max_abs_difference = 0;
  double mean_abs_difference = 0;  // over every sample of the frame
  std::optional<double> psnr_db;   // none when identical (infinite); peak = 2^BitsStored - 1
  bool identical() const { return differing_pixels == 0; }
};

struct PixelComparison {
  bool compared = false;
  // Why the pixels were not compared (compared == false): e.g. JPEG 2000 pixel data, which
  // DCMTK cannot decode; different dimensions; no pixel data.
  std::string not_compared_reason;
  uint32_t rows = 0;
  uint32_t columns = 0;
  uint32_t samples_per_pixel = 0;
  uint32_t bits_stored = 0;
  bool is_signed = false;
  uint32_t frame_count = 0;
  std::vector<FrameDifference> frames;  // when compared: one per frame
  // Warnings that qualify the numbers: e.g. "BitsStored changed from 16 to 12: stored values
  // are not on the same scale".
  std::vector<std::string> notes;
};

}  // namespace medvfs::store
