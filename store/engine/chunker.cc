// FastCDC (Xia et al., USENIX ATC 2016) with normalized chunking, level 2.
//
// ON-DISK FORMAT PROPERTY: chunk boundaries decide which chunks an archive stores and shares
// between versions, so everything that influences them (the gear table and its seed, the masks,
// the cut rules, the DICOM rule and its 64 MiB window) must never change for a given set of
// ChunkerParams. A change would not corrupt anything, but it would stop deduplication against
// every version written before it. tests/store/chunker_test.cc pins the boundaries of a fixed
// stream to catch an accidental change.
//
// The cut rule, for a chunk that starts at offset 0 (chunk-relative offsets throughout):
//   hash  = (hash << 1) + kGear[byte]          (64-bit gear hash, reset to 0 at every chunk)
//   after the byte that makes the chunk `len` bytes long, cut when
//     min_size <= len <  avg_size  and (hash & mask_small) == 0   (avg_bits + 2 top bits), or
//     avg_size <= len <  max_size  and (hash & mask_large) == 0   (avg_bits - 2 top bits), or
//     len == max_size.
// A gear hash only depends on the last 64 bytes hashed (older bytes are shifted out), so hashing
// starts 64 bytes before min_size: the value tested is the same as if every byte were hashed.
//
// DICOM rule: if stream bytes 128..131 are "DICM", the first occurrence of the Pixel Data tag
// bytes E0 7F 10 00 (little endian, explicit or implicit VR) that starts at stream offset >= 132
// and lies entirely within the first 64 MiB forces a boundary right before it; the chunking
// state restarts there, so pixel chunks do not depend on the header's length. A false match
// (e.g. inside a private tag) only adds one boundary.
#include "store/engine/chunker.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstring>

namespace medvfs::store {
namespace {

// Gear table: 256 values of splitmix64 (Steele, Lea, Flood 2014) seeded with
// 0x6d65647666732d31 ("medvfs-1" in ASCII). Part of the on-disk format: never change.
constexpr uint64_t kGearSeed = 0x6d65647666732d31ULL;

constexpr std::array<uint64_t, 256> MakeGearTable() {
  std::array<uint64_t, 256> table{};
  uint64_t state = kGearSeed;
  for (uint64_t& value : table) {
    state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    value = z ^ (z >> 31);
  }
  return table;
}
constexpr std::array<uint64_t, 256> kGear = MakeGearTable();
// Pins the generator (values checked against an independent splitmix64 implementation).
static_assert(kGear[0] == 0xd9cf55129035d266ULL && kGear[2] == 0xa1d0b092c7b16835ULL,
              "the gear table is part of the on-disk format");

constexpr uint64_t kDicmOffset = 128;         // "DICM" follows the 128-byte preamble
constexpr uint64_t kSearchStart = 132;        // the Pixel Data tag search starts here
constexpr uint64_t kSearchEnd = 64ULL << 20;  // and the whole tag lies before 64 MiB
constexpr std::string_view kDicm = "DICM";
constexpr std::array<uint8_t, 4> kPixelDataTag = {0xE0, 0x7F, 0x10, 0x00};
constexpr size_t kLookAhead = kPixelDataTag.size() - 1;
constexpr size_t kGearWindow = 64;  // bits in the hash: bytes that influence it

// A mask of the `bits` most significant bits (those that depend on the most bytes).
constexpr uint64_t TopBits(unsigned bits) { return bits == 0 ? 0 : ~0ULL << (64 - bits); }

// Makes the parameters consistent: avg a power of two in [8, 2^30], min in [1, avg],
// max >= avg.
ChunkerParams Sanitize(ChunkerParams p) {
  p.avg_size = std::clamp<uint32_t>(std::bit_floor(std::max<uint32_t>(p.avg_size, 8)), 8, 1U << 30);
  p.min_size = std::clamp<uint32_t>(p.min_size, 1, p.avg_size);
  p.max_size = std::max(p.max_size, p.avg_size);
  return p;
}

// Hashes p[i, end) and returns the chunk length at the first byte after which the hash has
// none of `mask`'s bits set, or 0 if none does; `i` and `h` follow the bytes hashed. The mask
// is a run of top bits, so "no mask bit set" is "h < below" with below = ~mask + 1: four bytes
// are tested with one comparison of their smallest hash, and only a block that holds a cut is
// hashed again byte by byte (a third less time than testing every byte).
size_t ScanForCut(const uint8_t* bytes, size_t first, size_t& i_inout, size_t end,
                  uint64_t& h_inout, uint64_t mask) {
  // Locals, not the references: the bytes may alias them (uint8_t), which would force every
  // hash through memory.
  size_t i = i_inout;
  uint64_t h = h_inout;
  size_t cut = 0;
  const uint64_t below = ~mask + 1;
  const uint8_t* p = bytes + (i - first);  // the byte at chunk offset i
  while (i + 4 <= end) {
    const uint64_t h1 = (h << 1) + kGear[p[0]];
    const uint64_t h2 = (h1 << 1) + kGear[p[1]];
    const uint64_t h3 = (h2 << 1) + kGear[p[2]];
    const uint64_t h4 = (h3 << 1) + kGear[p[3]];
    if (std::min(std::min(h1, h2), std::min(h3, h4)) < below) break;
    h = h4;
    i += 4;
    p += 4;
  }
  for (; i < end; ++i, ++p) {
    h = (h << 1) + kGear[*p];
    if ((h & mask) == 0) {
      cut = ++i;
      break;
    }
  }
  i_inout = i;
  h_inout = h;
  return cut;
}

}  // namespace

Chunker::Chunker(ChunkerParams params)
    : params_(Sanitize(params)),
      mask_small_(TopBits(static_cast<unsigned>(std::countr_zero(params_.avg_size)) + 2)),
      mask_large_(TopBits(static_cast<unsigned>(std::countr_zero(params_.avg_size)) - 2)),
      capacity_(size_t{params_.max_size} + kLookAhead) {}

void Chunker::Update(std::string_view data, const Emit& emit) {
  while (!data.empty()) {
    // Past the DICOM rule (or without one), chunks are cut from the caller's bytes in place.
    if (dicom_ == DicomState::kDone && !has_forced_cut_) {
      UpdateInPlace(data, emit);
      return;
    }
    if (begin_ > 0) {
      buffer_.erase(0, begin_);
      begin_ = 0;
    }
    if (buffer_.capacity() < capacity_) buffer_.reserve(capacity_);
    const std::string_view piece = data.substr(0, capacity_ - buffer_.size());
    ScanDicom(piece, position_);
    buffer_.append(piece);
    position_ += piece.size();
    data.remove_prefix(piece.size());
    Drain(/*at_end=*/false, emit);
  }
}

void Chunker::Finish(const Emit& emit) {
  Drain(/*at_end=*/true, emit);
  Reset();
}

void Chunker::Reset() {
  buffer_.clear();
  begin_ = 0;
  base_ = 0;
  position_ = 0;
  scanned_ = 0;
  hash_ = 0;
  dicom_ = DicomState::kUndecided;
  tag_match_ = 0;
  forced_cut_ = 0;
  has_forced_cut_ = false;
}

void Chunker::ScanDicom(std::string_view data, uint64_t offset) {
  if (dicom_ == DicomState::kUndecided) {
    size_t i = 0;
    for (; i < data.size() && offset + i < kSearchStart; ++i) {
      const uint64_t at = offset + i;
      if (at >= kDicmOffset && data[i] != kDicm[at - kDicmOffset]) {
        dicom_ = DicomState::kDone;
        return;
      }
    }
    if (offset + i < kSearchStart) return;  // still undecided
    dicom_ = DicomState::kSearching;
    data.remove_prefix(i);
    offset += i;
  }
  if (dicom_ == DicomState::kSearching) SearchTag(data, offset);
}

void Chunker::SearchTag(std::string_view data, uint64_t offset) {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(data.size(), kSearchEnd - offset));
  const char* p = data.data();
  size_t i = 0;
  while (i < n) {
    if (tag_match_ == 0) {
      const void* hit = std::memchr(p + i, kPixelDataTag[0], n - i);
      if (hit == nullptr) break;
      i = static_cast<size_t>(static_cast<const char*>(hit) - p) + 1;
      tag_match_ = 1;
    } else if (static_cast<uint8_t>(p[i]) == kPixelDataTag[tag_match_]) {
      ++i;
      if (++tag_match_ == kPixelDataTag.size()) {
        forced_cut_ = offset + i - kPixelDataTag.size();
        has_forced_cut_ = true;
        dicom_ = DicomState::kDone;
        tag_match_ = 0;
        return;
      }
    } else {
      tag_match_ = 0;  // p[i] is looked at again: it may start a match
    }
  }
  if (offset + n >= kSearchEnd) {
    dicom_ = DicomState::kDone;
    tag_match_ = 0;
  }
}

void Chunker::Drain(bool at_end, const Emit& emit) {
  for (;;) {
    const size_t held = buffer_.size() - begin_;
    // The last tag_match_ bytes may be the start of the Pixel Data tag: not hashed yet.
    size_t limit = at_end ? held : held - tag_match_;
    bool forced_here = false;
    if (has_forced_cut_) {
      assert(forced_cut_ >= base_);
      if (forced_cut_ - base_ <= limit) {
        limit = static_cast<size_t>(forced_cut_ - base_);
        forced_here = true;
      }
    }
    if (const size_t cut = FindBoundary(limit); cut > 0) {
      EmitChunk(cut, emit);
      continue;
    }
    if (forced_here) {  // the chunk is cut short right before the Pixel Data tag
      has_forced_cut_ = false;
      if (limit > 0) EmitChunk(limit, emit);
      continue;
    }
    if (at_end && held > 0) EmitChunk(held, emit);
    return;
  }
}

void Chunker::UpdateInPlace(std::string_view data, const Emit& emit) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  size_t consumed = 0;
  // The chunk begun by earlier calls (held, and hashed to its end by their Drain) ends in
  // `data` or takes all of it: only its rest is copied, to emit it whole.
  if (const size_t held = buffer_.size() - begin_; held > 0) {
    assert(scanned_ == held && tag_match_ == 0);
    const size_t cut = FindBoundary(bytes, held, held + data.size());
    const size_t taken = cut == 0 ? data.size() : cut - held;
    if (begin_ > 0) {
      buffer_.erase(0, begin_);
      begin_ = 0;
    }
    buffer_.append(data.substr(0, taken));
    position_ += taken;
    if (cut == 0) return;
    EmitChunk(cut, emit);
    consumed = taken;
  }
  // Whole chunks inside `data`: emitted without a copy.
  buffer_.clear();
  begin_ = 0;
  while (consumed < data.size()) {
    const size_t cut = FindBoundary(bytes + consumed, 0, data.size() - consumed);
    if (cut == 0) break;
    emit(data.substr(consumed, cut));
    consumed += cut;
    base_ += cut;
    position_ += cut;
    scanned_ = 0;
    hash_ = 0;
  }
  // The unfinished tail, hashed already (scanned_, hash_), is held for the next call.
  if (buffer_.capacity() < capacity_) buffer_.reserve(capacity_);
  buffer_.append(data.substr(consumed));
  position_ += data.size() - consumed;
}

size_t Chunker::FindBoundary(size_t limit) {
  return FindBoundary(reinterpret_cast<const uint8_t*>(buffer_.data() + begin_), 0, limit);
}

size_t Chunker::FindBoundary(const uint8_t* bytes, size_t first, size_t limit) {
  assert(scanned_ >= first);
  const size_t min_size = params_.min_size;
  const size_t normal_size = params_.avg_size;
  const size_t max_size = params_.max_size;
  size_t i = scanned_;
  uint64_t h = hash_;
  // Bytes more than 64 before the first tested one cannot influence the hash: skip them.
  const size_t warm_up = min_size > kGearWindow ? min_size - kGearWindow : 0;
  if (i < warm_up) i = std::min(limit, warm_up);
  // Byte i makes the chunk i + 1 bytes long.
  for (size_t end = std::min(limit, min_size - 1); i < end; ++i) {
    h = (h << 1) + kGear[bytes[i - first]];
  }
  if (const size_t cut =
          ScanForCut(bytes, first, i, std::min(limit, normal_size - 1), h, mask_small_)) {
    return cut;
  }
  if (const size_t cut = ScanForCut(bytes, first, i, std::min(limit, max_size), h, mask_large_)) {
    return cut;
  }
  if (i == max_size) return max_size;
  scanned_ = i;
  hash_ = h;
  return 0;
}

void Chunker::EmitChunk(size_t length, const Emit& emit) {
  emit(std::string_view(buffer_).substr(begin_, length));
  begin_ += length;
  base_ += length;
  scanned_ = 0;
  hash_ = 0;
}

}  // namespace medvfs::store
