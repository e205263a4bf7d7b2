// Comparing two versions of a file (`medvfs diff`, `@version/NAME/.meta/vN/diff`).
//
// DICOM content gets a tag diff (sequences walked item by item), the SOPInstanceUID check, and
// a pixel comparison per frame in stored values; PNG and JPEG pictures get the pixel comparison;
// every file gets a byte-level summary. A side-by-side PNG (A | B | difference heat map, with
// labels and a legend) can be rendered for one frame. No DCMTK, libpng or libjpeg type appears
// here.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/dicom/compare.h"
#include "store/status.h"

namespace medvfs::store {

// Random access to the bytes of one side of a comparison (an archive version, a file).
class DiffSource {
 public:
  virtual ~DiffSource() = default;
  virtual uint64_t size() const = 0;
  // Reads up to out.size() bytes at offset; returns the count (0 at or past the end).
  virtual StatusOr<size_t> ReadAt(uint64_t offset, std::span<char> out) = 0;
};

// DiffSource over bytes already in memory (tests, small views).
class MemoryDiffSource final : public DiffSource {
 public:
  explicit MemoryDiffSource(std::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  StatusOr<size_t> ReadAt(uint64_t offset, std::span<char> out) override;

 private:
  std::string_view bytes_;
};

// One side of a comparison: what is compared, and how to name it.
struct DiffSide {
  std::string label;    // e.g. "v3"; headings and the picture use it
  int64_t time_ns = 0;  // the version's time (0: unknown)
  DiffSource* source = nullptr;
};

struct ByteComparison {
  uint64_t size_a = 0;
  uint64_t size_b = 0;
  bool identical = false;
  std::optional<uint64_t> first_difference;  // offset of the first differing byte
  // Content-defined chunks (the archive's chunker): how many each side has, and how many of
  // each side's chunks the other side lacks.
  uint64_t chunks_a = 0;
  uint64_t chunks_b = 0;
  uint64_t chunks_only_in_a = 0;
  uint64_t chunks_only_in_b = 0;
};

enum class ContentKind { kBytes, kDicom, kPicture };

struct DiffSideSummary {
  std::string label;
  int64_t time_ns = 0;
  uint64_t size = 0;
  std::array<uint8_t, 32> sha256{};
  ContentKind kind = ContentKind::kBytes;
  std::string format;            // "DICOM", "PNG", "JPEG" or "bytes"
  std::string transfer_syntax;   // DICOM: the transfer syntax UID
  std::string sop_instance_uid;  // DICOM only
};

struct DiffResult {
  DiffSideSummary a;
  DiffSideSummary b;
  ByteComparison bytes;
  // DICOM on both sides: the tag diff (File Meta Information included; Pixel Data is left to
  // `pixels`). tags_compared is false, with a reason, when a side does not parse.
  bool tags_compared = false;
  std::string tags_not_compared_reason;
  std::vector<TagDifference> tags;
  // Both sides DICOM with the same SOPInstanceUID and different bytes: one SOP instance UID
  // no longer means one content (DICOM traceability broken).
  bool sop_instance_uid_reused = false;
  // DICOM or pictures on both sides.
  PixelComparison pixels;
  // The side-by-side picture, when asked for (DiffOptions::render_png) and possible.
  std::string png;
  std::string png_not_rendered_reason;
  uint32_t png_frame = 0;  // 1-based frame shown in png
};

struct DiffOptions {
  bool compare_pixels = true;
  // Files larger than this are not decoded (their tags and bytes are still compared): pixel
  // comparison holds both files and their pixels in memory.
  uint64_t max_decode_bytes = uint64_t{1} << 30;
  bool render_png = false;
  std::optional<uint32_t> png_frame;  // 1-based; default: the first differing frame, else 1
  // The heat map's full scale (white), in the units of its difference (rescaled values for
  // monochrome DICOM). Default: the window width, else 2^BitsStored - 1. REQUIRES: > 0.
  std::optional<double> png_heat_max;
};

// Compares a with b. Errors only for failures to read a side (its status is returned);
// content that cannot be parsed or decoded is described in the result instead.
StatusOr<DiffResult> DiffVersions(const DiffSide& a, const DiffSide& b,
                                  const DiffOptions& options = {});

// The result as text for people (ends with a newline), and as JSON for programs.
std::string FormatDiffText(const DiffResult& result);
std::string FormatDiffJson(const DiffResult& result);

}  // namespace medvfs::store
