// DiffVersions: reads both sides, decides what kind of content they hold, and runs the byte,
// tag and pixel comparisons (diff_tags.cc, diff_pixels.cc, diff_render.cc); and the text and
// JSON forms of the result.
#include "store/diff.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "store/crypto/crypto.h"
#include "store/dicom/dicom.h"
#include "store/dicom/diff_internal.h"
#include "store/engine/chunker.h"
#include "store/views.h"

namespace medvfs::store {

StatusOr<size_t> MemoryDiffSource::ReadAt(uint64_t offset, std::span<char> out) {
  if (offset >= bytes_.size()) return size_t{0};
  const size_t n = std::min(out.size(), bytes_.size() - static_cast<size_t>(offset));
  std::memcpy(out.data(), bytes_.data() + offset, n);
  return n;
}

namespace {

using diff_internal::DecodedPixels;

constexpr size_t kReadBlock = 1 << 20;
// Enough to recognise DICOM (preamble + "DICM"), PNG and JPEG signatures.
constexpr size_t kHeadBytes = 132;
// The text form shows at most this much of one value (the JSON form shows all of it).
constexpr size_t kMaxTextValueBytes = 160;
// The text form lists at most this many differing frames one by one.
constexpr size_t kMaxTextFrames = 64;

StatusOr<std::string> ReadRange(DiffSource& source, uint64_t offset, uint64_t length) {
  std::string out;
  out.resize(static_cast<size_t>(length));
  size_t done = 0;
  while (done < out.size()) {
    MEDVFS_ASSIGN_OR_RETURN(
        size_t n,
        source.ReadAt(offset + done, std::span<char>(out.data() + done, out.size() - done)));
    if (n == 0) break;
    done += n;
  }
  out.resize(done);
  return out;
}

ContentKind KindOf(std::string_view head, std::string* format) {
  if (LooksLikeDicom(head)) {
    *format = "DICOM";
    return ContentKind::kDicom;
  }
  if (diff_internal::LooksLikePng(head)) {
    *format = "PNG";
    return ContentKind::kPicture;
  }
  if (diff_internal::LooksLikeJpeg(head)) {
    *format = "JPEG";
    return ContentKind::kPicture;
  }
  *format = "bytes";
  return ContentKind::kBytes;
}

// One side's digests: the whole content's SHA-256 and its chunks' SHA-256s.
class SideDigests {
 public:
  void Update(std::string_view data) {
    whole_.Update(data);
    chunker_.Update(data, [this](std::string_view chunk) { AddChunk(chunk); });
  }
  void Finish(std::array<uint8_t, 32>* sha256) {
    chunker_.Finish([this](std::string_view chunk) { AddChunk(chunk); });
    *sha256 = whole_.Finish();
  }
  uint64_t chunk_count() const { return chunk_count_; }
  const std::set<std::array<uint8_t, 32>>& chunks() const { return chunks_; }

 private:
  void AddChunk(std::string_view chunk) {
    ++chunk_count_;
    chunks_.insert(Sha256Of(chunk));
  }
  Sha256 whole_;
  Chunker chunker_;
  uint64_t chunk_count_ = 0;
  std::set<std::array<uint8_t, 32>> chunks_;
};

uint64_t CountMissing(const std::set<std::array<uint8_t, 32>>& from,
                      const std::set<std::array<uint8_t, 32>>& in) {
  uint64_t missing = 0;
  for (const auto& digest : from) missing += in.count(digest) == 0 ? 1 : 0;
  return missing;
}

// Streams both sides once: sizes, first differing offset, SHA-256s and chunk counts.
Status CompareBytes(DiffSource& a, DiffSource& b, DiffResult* result) {
  ByteComparison& bytes = result->bytes;
  bytes.size_a = a.size();
  bytes.size_b = b.size();
  SideDigests digests_a;
  SideDigests digests_b;
  std::string block_a;
  std::string block_b;
  const uint64_t longest = std::max(bytes.size_a, bytes.size_b);
  for (uint64_t offset = 0; offset < longest; offset += kReadBlock) {
    MEDVFS_ASSIGN_OR_RETURN(block_a,
                            ReadRange(a, offset, std::min<uint64_t>(kReadBlock, longest - offset)));
    MEDVFS_ASSIGN_OR_RETURN(block_b,
                            ReadRange(b, offset, std::min<uint64_t>(kReadBlock, longest - offset)));
    if (!bytes.first_difference) {
      const size_t common = std::min(block_a.size(), block_b.size());
      const auto end_a = block_a.begin() + static_cast<std::ptrdiff_t>(common);
      const auto mismatch = std::mismatch(block_a.begin(), end_a, block_b.begin());
      if (mismatch.first != end_a) {
        bytes.first_difference = offset + static_cast<uint64_t>(mismatch.first - block_a.begin());
      } else if (block_a.size() != block_b.size()) {
        bytes.first_difference = offset + common;
      }
    }
    digests_a.Update(block_a);
    digests_b.Update(block_b);
  }
  digests_a.Finish(&result->a.sha256);
  digests_b.Finish(&result->b.sha256);
  bytes.identical = !bytes.first_difference && bytes.size_a == bytes.size_b;
  bytes.chunks_a = digests_a.chunk_count();
  bytes.chunks_b = digests_b.chunk_count();
  bytes.chunks_only_in_a = CountMissing(digests_a.chunks(), digests_b.chunks());
  bytes.chunks_only_in_b = CountMissing(digests_b.chunks(), digests_a.chunks());
  return Status::Ok();
}

void SummarizeDicom(std::string_view file, DiffSideSummary* side) {
  auto tags = ParseDicom(file, file.size());
  if (!tags.ok()) return;
  if (const DicomElement* uid = tags->Find("SOPInstanceUID")) side->sop_instance_uid = uid->value;
  if (const DicomElement* syntax = tags->Find("TransferSyntaxUID")) {
    side->transfer_syntax = syntax->value;
  }
}

using Decoder = StatusOr<std::unique_ptr<DecodedPixels>> (*)(std::string_view);

// Decodes both sides and compares their pixels; renders the picture when asked.
void ComparePixelsOf(std::string_view file_a, std::string_view file_b, Decoder decode,
                     const DiffOptions& options, DiffResult* result) {
  auto pixels_a = decode(file_a);
  auto pixels_b = decode(file_b);
  if (!pixels_a.ok() || !pixels_b.ok()) {
    std::string reason;
    if (!pixels_a.ok()) reason = "A: " + pixels_a.status().message();
    if (!pixels_b.ok()) {
      if (!reason.empty()) reason += "; ";
      reason += "B: " + pixels_b.status().message();
    }
    result->pixels.not_compared_reason = std::move(reason);
    result->png_not_rendered_reason = "the pixels could not be compared";
    return;
  }
  result->pixels = diff_internal::ComparePixels(**pixels_a, **pixels_b);
  if (!options.render_png) return;
  if (!result->pixels.compared) {
    result->png_not_rendered_reason = "the pixels could not be compared";
    return;
  }
  uint32_t frame = 1;
  if (options.png_frame) {
    frame = *options.png_frame;
    if (frame < 1 || frame > result->pixels.frame_count) {
      result->png_not_rendered_reason = "there is no frame " + std::to_string(frame) +
                                        " (the image has " +
                                        std::to_string(result->pixels.frame_count) + ")";
      return;
    }
  } else {
    for (const FrameDifference& f : result->pixels.frames) {
      if (!f.identical()) {
        frame = f.frame;
        break;
      }
    }
  }
  auto png = diff_internal::RenderComparisonPng(
      **pixels_a, **pixels_b,
      {frame, result->a.label, result->b.label, result->a.time_ns, result->b.time_ns,
       options.png_heat_max});
  if (!png.ok()) {
    result->png_not_rendered_reason = png.status().message();
    return;
  }
  result->png = std::move(png).value();
  result->png_frame = frame;
}

}  // namespace

StatusOr<DiffResult> DiffVersions(const DiffSide& a, const DiffSide& b,
                                  const DiffOptions& options) {
  DiffResult result;
  result.a.label = a.label;
  result.b.label = b.label;
  result.a.time_ns = a.time_ns;
  result.b.time_ns = b.time_ns;
  result.a.size = a.source->size();
  result.b.size = b.source->size();
  MEDVFS_RETURN_IF_ERROR(CompareBytes(*a.source, *b.source, &result));

  MEDVFS_ASSIGN_OR_RETURN(std::string head_a, ReadRange(*a.source, 0, kHeadBytes));
  MEDVFS_ASSIGN_OR_RETURN(std::string head_b, ReadRange(*b.source, 0, kHeadBytes));
  result.a.kind = KindOf(head_a, &result.a.format);
  result.b.kind = KindOf(head_b, &result.b.format);
  const bool both_dicom =
      result.a.kind == ContentKind::kDicom && result.b.kind == ContentKind::kDicom;
  const bool both_pictures =
      result.a.kind == ContentKind::kPicture && result.b.kind == ContentKind::kPicture;
  if (!both_dicom && !both_pictures) {
    if (result.a.kind != ContentKind::kBytes || result.b.kind != ContentKind::kBytes) {
      result.pixels.not_compared_reason = "A is " + result.a.format + ", B is " + result.b.format;
      result.png_not_rendered_reason = result.pixels.not_compared_reason;
    }
    if (result.a.kind == ContentKind::kDicom || result.b.kind == ContentKind::kDicom) {
      result.tags_not_compared_reason = result.pixels.not_compared_reason;
    }
    return result;
  }
  if (result.a.size > options.max_decode_bytes || result.b.size > options.max_decode_bytes) {
    const std::string reason = "files over " + std::to_string(options.max_decode_bytes >> 20) +
                               " MiB are compared byte by byte only";
    result.pixels.not_compared_reason = reason;
    result.png_not_rendered_reason = reason;
    if (both_dicom) result.tags_not_compared_reason = reason;
    return result;
  }
  MEDVFS_ASSIGN_OR_RETURN(std::string file_a, ReadRange(*a.source, 0, result.a.size));
  MEDVFS_ASSIGN_OR_RETURN(std::string file_b, ReadRange(*b.source, 0, result.b.size));

  if (both_dicom) {
    SummarizeDicom(file_a, &result.a);
    SummarizeDicom(file_b, &result.b);
    result.sop_instance_uid_reused = !result.a.sop_instance_uid.empty() &&
                                     result.a.sop_instance_uid == result.b.sop_instance_uid &&
                                     !result.bytes.identical;
    auto tags = diff_internal::DiffDicomTags(file_a, file_b);
    if (tags.ok()) {
      result.tags_compared = true;
      result.tags = std::move(tags).value();
    } else {
      result.tags_not_compared_reason = tags.status().message();
    }
  }
  if (!options.compare_pixels) {
    result.pixels.not_compared_reason = "pixel comparison was not asked for";
    result.png_not_rendered_reason = result.pixels.not_compared_reason;
    return result;
  }
  ComparePixelsOf(file_a, file_b,
                  both_dicom ? &diff_internal::DecodeDicomPixels : &diff_internal::DecodePicture,
                  options, &result);
  return result;
}

// ---- Text ----

namespace {

// A value on one line of a terminal: control characters escaped, long values cut.
std::string TextValue(std::string_view value) {
  std::string out = "\"";
  size_t shown = 0;
  for (char c : value) {
    if (shown >= kMaxTextValueBytes && (static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      out += "...";
      break;
    }
    ++shown;
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02X", u);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string FormatNumber(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string SideLine(std::string_view marker, const DiffSideSummary& side) {
  std::string line = std::string(marker) + " " + side.label;
  if (side.time_ns != 0) line += "  " + FormatTimeNs(side.time_ns);
  line += "  " + std::to_string(side.size) + " bytes  " + side.format;
  if (!side.transfer_syntax.empty()) line += " (transfer syntax " + side.transfer_syntax + ")";
  return line + "\n";
}

std::string ShortSha(const std::array<uint8_t, 32>& digest) {
  return FormatSha256Hex(digest).substr(0, 12);
}

void AppendBytes(const DiffResult& r, std::string* out) {
  const ByteComparison& bytes = r.bytes;
  if (bytes.identical) {
    *out += "Content: identical (" + std::to_string(bytes.size_a) + " bytes, SHA-256 " +
            ShortSha(r.a.sha256) + "...)\n";
    return;
  }
  *out += "Content: different (SHA-256 " + ShortSha(r.a.sha256) + "... -> " + ShortSha(r.b.sha256) +
          "...)\n";
  const int64_t growth = static_cast<int64_t>(bytes.size_b) - static_cast<int64_t>(bytes.size_a);
  *out += "Bytes: " + std::to_string(bytes.size_a) + " -> " + std::to_string(bytes.size_b) + " (" +
          (growth >= 0 ? "+" : "") + std::to_string(growth) + ")";
  if (bytes.first_difference) {
    *out += "; first difference at offset " + std::to_string(*bytes.first_difference);
  }
  *out += "; chunks: " + std::to_string(bytes.chunks_only_in_b) + " of " +
          std::to_string(bytes.chunks_b) + " in B are not in A, " +
          std::to_string(bytes.chunks_only_in_a) + " of " + std::to_string(bytes.chunks_a) +
          " in A are not in B\n";
}

void AppendSopInstanceUid(const DiffResult& r, std::string* out) {
  if (r.a.sop_instance_uid.empty() && r.b.sop_instance_uid.empty()) return;
  if (r.a.sop_instance_uid == r.b.sop_instance_uid) {
    *out += "SOPInstanceUID: unchanged (" + r.a.sop_instance_uid + ")";
    if (r.sop_instance_uid_reused) {
      *out +=
          " although the content changed: one SOP Instance UID now names two different "
          "contents (DICOM traceability broken)";
    }
    *out += "\n";
    return;
  }
  *out +=
      "SOPInstanceUID: changed (" + r.a.sop_instance_uid + " -> " + r.b.sop_instance_uid + ")\n";
}

void AppendTags(const DiffResult& r, std::string* out) {
  if (!r.tags_compared) {
    if (!r.tags_not_compared_reason.empty()) {
      *out += "Tags: not compared: " + r.tags_not_compared_reason + "\n";
    }
    return;
  }
  size_t counts[3] = {0, 0, 0};
  for (const TagDifference& d : r.tags) ++counts[static_cast<int>(d.change)];
  if (r.tags.empty()) {
    *out += "Tags: no differences\n";
    return;
  }
  *out += "Tags: " + std::to_string(counts[static_cast<int>(TagChange::kChanged)]) + " changed, " +
          std::to_string(counts[static_cast<int>(TagChange::kAdded)]) + " added, " +
          std::to_string(counts[static_cast<int>(TagChange::kRemoved)]) + " removed\n";
  for (const TagDifference& d : r.tags) {
    std::string line =
        "  " + TagChangeName(d.change) + std::string(8 - TagChangeName(d.change).size(), ' ');
    line += d.keyword_path;
    if (d.keyword_path != d.tag_path) line += " " + d.tag_path;
    line += " " + d.vr + ": ";
    switch (d.change) {
      case TagChange::kAdded:
        line += TextValue(d.new_value);
        break;
      case TagChange::kRemoved:
        line += TextValue(d.old_value);
        break;
      case TagChange::kChanged:
        line += TextValue(d.old_value) + " -> " + TextValue(d.new_value);
        break;
    }
    *out += line + "\n";
  }
}

std::string FrameLine(const FrameDifference& f) {
  if (f.identical()) return "  frame " + std::to_string(f.frame) + ": identical\n";
  std::string line = "  frame " + std::to_string(f.frame) + ": " +
                     std::to_string(f.differing_pixels) + " of " + std::to_string(f.pixels) +
                     " pixels differ; max |A-B| " + std::to_string(f.max_abs_difference) +
                     ", mean |A-B| " + FormatNumber(f.mean_abs_difference, 4);
  if (f.psnr_db) line += ", PSNR " + FormatNumber(*f.psnr_db, 2) + " dB";
  return line + "\n";
}

void AppendPixels(const DiffResult& r, std::string* out) {
  const PixelComparison& p = r.pixels;
  if (!p.compared) {
    if (!p.not_compared_reason.empty()) {
      *out += "Pixels: not compared: " + p.not_compared_reason + "\n";
    }
    return;
  }
  size_t identical = 0;
  for (const FrameDifference& f : p.frames) identical += f.identical() ? 1 : 0;
  *out += "Pixels: " + std::to_string(p.columns) + " x " + std::to_string(p.rows) + ", " +
          std::to_string(p.samples_per_pixel) +
          (p.samples_per_pixel == 1 ? " sample" : " samples") + " per pixel, " +
          std::to_string(p.bits_stored) + " bits stored" + (p.is_signed ? " (signed)" : "") + ", " +
          std::to_string(p.frame_count) + (p.frame_count == 1 ? " frame" : " frames") +
          "; stored values compared\n";
  for (const std::string& note : p.notes) *out += "  note: " + note + "\n";
  if (p.frames.size() == 1) {
    *out += FrameLine(p.frames.front());
    return;
  }
  *out += "  " + std::to_string(identical) + " of " + std::to_string(p.frames.size()) +
          " frames identical\n";
  size_t listed = 0;
  for (const FrameDifference& f : p.frames) {
    if (f.identical()) continue;
    if (listed == kMaxTextFrames) {
      *out += "  ... " + std::to_string(p.frames.size() - identical - listed) +
              " more differing frames (see --json)\n";
      break;
    }
    *out += FrameLine(f);
    ++listed;
  }
}

}  // namespace

std::string FormatDiffText(const DiffResult& r) {
  std::string out = SideLine("A:", r.a) + SideLine("B:", r.b);
  AppendBytes(r, &out);
  AppendSopInstanceUid(r, &out);
  AppendTags(r, &out);
  AppendPixels(r, &out);
  return out;
}

// ---- JSON ----

namespace {

nlohmann::json SideJson(const DiffSideSummary& side) {
  nlohmann::json json = {{"label", side.label},
                         {"size", side.size},
                         {"sha256", FormatSha256Hex(side.sha256)},
                         {"format", side.format}};
  json["time"] = side.time_ns != 0 ? nlohmann::json(FormatTimeNs(side.time_ns)) : nullptr;
  if (side.kind == ContentKind::kDicom) {
    json["transfer_syntax"] = side.transfer_syntax;
    json["sop_instance_uid"] = side.sop_instance_uid;
  }
  return json;
}

nlohmann::json OptionalReason(const std::string& reason) {
  return reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(reason);
}

}  // namespace

std::string FormatDiffJson(const DiffResult& r) {
  nlohmann::json json;
  json["a"] = SideJson(r.a);
  json["b"] = SideJson(r.b);
  json["identical"] = r.bytes.identical;
  nlohmann::json bytes = {{"size_a", r.bytes.size_a},
                          {"size_b", r.bytes.size_b},
                          {"identical", r.bytes.identical},
                          {"chunks_a", r.bytes.chunks_a},
                          {"chunks_b", r.bytes.chunks_b},
                          {"chunks_only_in_a", r.bytes.chunks_only_in_a},
                          {"chunks_only_in_b", r.bytes.chunks_only_in_b}};
  bytes["first_difference"] =
      r.bytes.first_difference ? nlohmann::json(*r.bytes.first_difference) : nullptr;
  json["bytes"] = std::move(bytes);

  if (r.a.kind == ContentKind::kDicom && r.b.kind == ContentKind::kDicom) {
    json["sop_instance_uid"] = {{"same", r.a.sop_instance_uid == r.b.sop_instance_uid},
                                {"reused_for_different_content", r.sop_instance_uid_reused}};
  }
  nlohmann::json tags = {{"compared", r.tags_compared},
                         {"reason", OptionalReason(r.tags_not_compared_reason)}};
  nlohmann::json differences = nlohmann::json::array();
  for (const TagDifference& d : r.tags) {
    nlohmann::json entry = {{"change", TagChangeName(d.change)},
                            {"keyword_path", d.keyword_path},
                            {"tag_path", d.tag_path},
                            {"vr", d.vr}};
    entry["old"] =
        d.change == TagChange::kAdded ? nlohmann::json(nullptr) : nlohmann::json(d.old_value);
    entry["new"] =
        d.change == TagChange::kRemoved ? nlohmann::json(nullptr) : nlohmann::json(d.new_value);
    differences.push_back(std::move(entry));
  }
  tags["differences"] = std::move(differences);
  json["tags"] = std::move(tags);

  const PixelComparison& p = r.pixels;
  nlohmann::json pixels = {{"compared", p.compared},
                           {"reason", OptionalReason(p.not_compared_reason)}};
  if (p.compared) {
    pixels["rows"] = p.rows;
    pixels["columns"] = p.columns;
    pixels["samples_per_pixel"] = p.samples_per_pixel;
    pixels["bits_stored"] = p.bits_stored;
    pixels["signed"] = p.is_signed;
    pixels["frame_count"] = p.frame_count;
    nlohmann::json frames = nlohmann::json::array();
    for (const FrameDifference& f : p.frames) {
      nlohmann::json frame = {{"frame", f.frame},
                              {"identical", f.identical()},
                              {"pixels", f.pixels},
                              {"differing_pixels", f.differing_pixels},
                              {"max_abs_difference", f.max_abs_difference},
                              {"mean_abs_difference", f.mean_abs_difference}};
      frame["psnr_db"] = f.psnr_db ? nlohmann::json(*f.psnr_db) : nullptr;
      frames.push_back(std::move(frame));
    }
    pixels["frames"] = std::move(frames);
    pixels["notes"] = p.notes;
  }
  json["pixels"] = std::move(pixels);
  // The frame drawn into the --png picture; null when no picture was drawn.
  json["png_frame"] = r.png.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.png_frame);
  // Invalid UTF-8 cannot reach here (values are made valid when parsed), but never throw.
  return json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace medvfs::store
