// libFuzzer target: the DICOM parsing path of store/. The input is the content of a file.
//  - ParseDicom as a commit runs it (ArchiveImpl::ParseContentTags in
//    store/archive/archive_dicom.cc):
//    the head up to the Pixel Data tag bytes and 256 more, told the whole file's size, then
//    everything if that fails; and ParseDicom on the whole input without a size;
//  - what a parse promises (store/dicom/dicom.h): UTF-8 keywords and values of at most 64 KiB, two
//    letter VRs, JSON that parses; and that the tags survive their record encoding;
//  - the comparison of medvfs diff (store/diff.h) against a copy with the last byte changed
//    and against a small reference file: tag walk, pixel decoding, the side-by-side PNG, and
//    the text and JSON forms;
//  - the de-identification of `@anon` and medvfs export (store/dicom/deid.h): what it accepts comes
//    out as a DICOM file that parses, its naming values agree with NamesFor, and reading it in
//    pieces gives the same bytes as reading it whole.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "store/archive/records.h"
#include "store/crypto/crypto.h"
#include "store/dicom/deid.h"
#include "store/dicom/dicom.h"
#include "store/diff.h"
#include "tests/fuzz/fuzz_util.h"

namespace medvfs::fuzz {
namespace {

using store::DicomTags;

constexpr size_t kPreambleBytes = 132;
constexpr size_t kMaxValueBytes = 64 * 1024;

void CheckTags(const DicomTags& tags) {
  for (const store::DicomElement& e : tags.elements) {
    Check(e.vr.size() == 2, "a VR is two letters");
    Check(e.value.size() <= kMaxValueBytes, "a value holds at most 64 KiB");
    Check(IsUtf8(e.value), "a value is UTF-8");
    Check(IsUtf8(e.keyword), "a keyword is UTF-8");
  }
  Check(IsUtf8(tags.json), "the JSON is UTF-8");
  Check(nlohmann::json::accept(tags.json), "the JSON parses");
  // What a commit stores under 'T' must read back the same.
  const std::string encoded = store::Encode(tags);
  DicomTags decoded;
  Check(store::Decode(encoded, &decoded).ok(), "encoded tags decode");
  Check(store::Encode(decoded) == encoded, "tags survive their record encoding");
}

// ArchiveImpl::ParseContentTags over memory instead of PendingContent.
void ParseAsCommitDoes(std::string_view file) {
  if (!store::LooksLikeDicom(file.substr(0, kPreambleBytes))) return;
  static constexpr std::string_view kPixelDataTag("\xE0\x7F\x10\x00", 4);
  const size_t limit = std::min(file.size(), store::kMaxDicomHeaderBytes);
  size_t head = limit;
  const size_t at = file.find(kPixelDataTag, kPreambleBytes);
  if (at != std::string_view::npos) head = std::min(at + 256, limit);
  auto tags = store::ParseDicom(ExactCopy(file.substr(0, head)).view(), file.size());
  if (!tags.ok() && head < limit) {
    tags = store::ParseDicom(ExactCopy(file.substr(0, limit)).view(), file.size());
  }
  if (tags.ok()) CheckTags(*tags);
}

void Compare(std::string_view a_bytes, std::string_view b_bytes, bool render) {
  store::MemoryDiffSource a(a_bytes);
  store::MemoryDiffSource b(b_bytes);
  store::DiffOptions options;
  options.render_png = render;
  auto result = store::DiffVersions({"v1", 0, &a}, {"v2", 1, &b}, options);
  Check(result.ok(), "DiffVersions fails only when a side cannot be read");
  (void)store::FormatDiffText(*result);
  const std::string json = store::FormatDiffJson(*result);
  Check(nlohmann::json::accept(json), "the diff's JSON parses");
}

// Reads `file` through the ReadAtFunction a view would use, in pieces of `piece` bytes.
std::string ReadInPieces(const store::DeidentifiedFile& file, std::string_view source,
                         size_t piece) {
  const store::ReadAtFunction read = [source](uint64_t offset, std::span<char> out) {
    if (offset >= source.size()) return store::StatusOr<size_t>(size_t{0});
    const size_t n = std::min(out.size(), static_cast<size_t>(source.size() - offset));
    source.substr(offset, n).copy(out.data(), n);
    return store::StatusOr<size_t>(n);
  };
  std::string out;
  std::string buffer(piece, '\0');
  for (uint64_t offset = 0;;) {
    auto n = store::Deidentifier::ReadDeidentified(file, read, offset, buffer);
    Check(n.ok(), "a de-identified file reads while its source does");
    if (*n == 0) return out;
    out.append(buffer.data(), *n);
    offset += *n;
  }
}

void Deidentify(std::string_view input) {
  static const store::Deidentifier deidentifier(store::SecretKey(), store::DeidConfig{});
  const ExactCopy source(input);
  const std::string_view bytes = source.view();
  const store::ReadAtFunction read = [bytes](uint64_t offset, std::span<char> out) {
    if (offset >= bytes.size()) return store::StatusOr<size_t>(size_t{0});
    // Short reads on purpose: callers must not expect whole buffers.
    const size_t n =
        std::min({out.size(), static_cast<size_t>(bytes.size() - offset), size_t{4093}});
    bytes.substr(offset, n).copy(out.data(), n);
    return store::StatusOr<size_t>(n);
  };
  auto file = deidentifier.Deidentify(read, bytes.size());
  if (!file.ok()) return;
  if (file->withheld != store::WithholdReason::kNone) {  // nothing may be read from it
    Check(file->size() == 0, "a withheld file is empty");
    return;
  }
  Check(file->pixel_offset + file->pixel_length <= bytes.size(), "the pixel range is in the file");
  const std::string whole = ReadInPieces(*file, bytes, 1 << 20);
  Check(whole.size() == file->size(), "the size is what reads give");
  Check(ReadInPieces(*file, bytes, 777) == whole, "reads in pieces give the same bytes");
  auto tags = store::ParseDicom(whole, whole.size());
  Check(tags.ok(), "a de-identified file parses");
  CheckTags(*tags);
  if (auto original = store::ParseDicom(input); original.ok()) {
    (void)store::AnonymousPath(deidentifier.NamesFor(*original));
  }
}

const std::string& Reference() {
  static const std::string reference = SmallDicom("Doe^Jane", "FUZZ-1", "1.2.3.4.5", 3);
  return reference;
}

}  // namespace
}  // namespace medvfs::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace medvfs;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  fuzz::ParseAsCommitDoes(input);
  auto tags = store::ParseDicom(input);
  if (tags.ok()) fuzz::CheckTags(*tags);
  fuzz::Deidentify(input);
  if (size == 0) return 0;
  std::string changed(input);
  changed.back() = static_cast<char>(changed.back() ^ 0x5a);
  fuzz::Compare(input, changed, /*render=*/true);
  fuzz::Compare(fuzz::Reference(), input, /*render=*/false);
  return 0;
}
