// The binary record format of an archive (see man/medvfs-format.5): the key layout of the
// meta family, the field coding every record uses, and the records the engine itself reads
// (chunk index, extent groups). The archive's own records are in store/archive/records.h.
// Internal to store/.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace medvfs::store {

using ChunkId = std::array<uint8_t, 32>;
using Sha256Digest = std::array<uint8_t, 32>;

// Key prefixes of the meta family.
inline constexpr char kSuperKey[] = "S";        // S -> SuperRecord
inline constexpr char kInodePrefix = 'I';       // I ino -> InodeRecord
inline constexpr char kDirentPrefix = 'D';      // D parent namehash -> DirentRecord
inline constexpr char kNameEventPrefix = 'H';   // H parent namehash seq -> NameEventRecord
inline constexpr char kHistoryPrefix = 'Y';     // Y history -> HistoryRecord
inline constexpr char kVersionPrefix = 'V';     // V history number -> VersionRecord
inline constexpr char kExtentPrefix = 'X';      // X history number group -> ExtentGroup
inline constexpr char kChunkIndexPrefix = 'K';  // K chunkid -> ChunkIndexRecord
inline constexpr char kPackPrefix = 'F';        // F pack -> PackRecord
inline constexpr char kMetaEventPrefix = 'M';   // M history seq -> MetadataEvent
inline constexpr char kTagsPrefix = 'T';        // T history number -> DicomTags
inline constexpr char kNotePrefix = 'N';        // N history number seq -> NoteEvent
inline constexpr char kPatientPrefix = 'P';     // P patienthash studyhash ino -> PatientIndexRecord
inline constexpr char kIndexedPrefix = 'Q';     // Q ino -> the PatientIndexRecord P holds for ino
// G history number group -> ExtentGroup of a version dropped from a scratch file's history:
// its chunks wait for garbage collection (nothing else may reference them any more).
inline constexpr char kDroppedExtentPrefix = 'G';
// W history number -> VersionDigestRecord: the SHA-256 of a version whose commit left it to be
// computed later (VersionInfo::sha256_deferred).
inline constexpr char kVersionDigestPrefix = 'W';
// R dir -> RetentionRule of a directory subtree (the root's: the whole archive).
inline constexpr char kRetentionPrefix = 'R';
// O kind history-or-dir -> LegalHold (kind 'f': a file's history, 'd': a directory subtree).
inline constexpr char kHoldPrefix = 'O';
inline constexpr char kAuditPrefix = 'A';     // A seq -> AuditRecord (store/archive/audit_chain.h)
inline constexpr char kAuditHeadKey[] = "L";  // L -> AuditHeadRecord (last seq and chain MAC)

inline constexpr size_t kNameHashSize = 16;
inline constexpr size_t kExtentsPerGroup = 1024;

struct Extent {
  ChunkId id{};
  uint32_t length = 0;
};

struct ChunkIndexRecord {
  uint32_t plain_length = 0;
  uint32_t stored_length = 0;  // the pack entry's length (schema 1: the RocksDB value's)
  uint64_t pack = 0;           // 0: schema 1, the chunk is in the "chunks" family
  uint64_t offset = 0;         // of the entry in the pack
};

// One pack file, as the chunk index sees it. Kept up to date by every index write, so that
// garbage collection can choose packs by their live bytes without reading them.
struct PackRecord {
  uint64_t pack = 0;
  bool sealed = false;
  uint64_t size = 0;         // the file's length as far as the index knows it
  uint64_t indexed_end = 0;  // every indexed entry ends at or before this offset
  uint64_t live_bytes = 0;   // bytes of the entries the index refers to
  uint64_t live_chunks = 0;
  // Garbage collection rewrote the pack's live entries elsewhere and deleted (or is about to
  // delete) its file. The record stays, so that the pack's number is never used again.
  bool removed = false;
};

std::string ChunkIndexKey(const ChunkId& id);
std::string PackKey(uint64_t pack);
std::string AuditKey(uint64_t seq);
// A key: the prefix byte, then v as a big-endian fixed 64-bit integer.
std::string PrefixWithU64(char prefix, uint64_t v);
void AppendU64BigEndian(std::string* out, uint64_t v);
void AppendU32BigEndian(std::string* out, uint32_t v);
// Big-endian fixed 64-bit integer at `pos` of a key.
uint64_t KeyU64(std::string_view key, size_t pos);

std::string Encode(const std::vector<Extent>& group);
std::string Encode(const ChunkIndexRecord& r);
std::string Encode(const PackRecord& r);
Status Decode(std::string_view in, std::vector<Extent>* group);
Status Decode(std::string_view in, ChunkIndexRecord* r);
Status Decode(std::string_view in, PackRecord* r);

// The field coding of every record. Every encoded record starts with this byte; a reader refuses
// formats it does not know.
inline constexpr uint8_t kRecordFormat = 1;

class RecordWriter {
 public:
  RecordWriter() { out_.push_back(static_cast<char>(kRecordFormat)); }
  RecordWriter& U8(uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  RecordWriter& Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  // Zig-zag, so that negative times stay short.
  RecordWriter& Signed(int64_t v) {
    return Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  RecordWriter& Bytes(std::string_view s) {
    Varint(s.size());
    out_.append(s);
    return *this;
  }
  RecordWriter& Raw(const void* data, size_t n) {
    out_.append(static_cast<const char*>(data), n);
    return *this;
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class RecordReader {
 public:
  explicit RecordReader(std::string_view in) : in_(in) {
    if (in_.empty() || static_cast<uint8_t>(in_[0]) != kRecordFormat) {
      ok_ = false;
    } else {
      in_.remove_prefix(1);
    }
  }
  uint8_t U8() {
    if (!Need(1)) return 0;
    uint8_t v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return v;
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!Need(1)) return 0;
      uint8_t b = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok_ = false;
    return 0;
  }
  uint32_t U32() {
    uint64_t v = Varint();
    if (v > UINT32_MAX) ok_ = false;
    return static_cast<uint32_t>(v);
  }
  int64_t Signed() {
    uint64_t v = Varint();
    return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
  }
  std::string Bytes() {
    uint64_t n = Varint();
    if (!Need(n)) return {};
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  void Raw(void* out, size_t n) {
    if (!Need(n)) return;
    std::memcpy(out, in_.data(), n);
    in_.remove_prefix(n);
  }
  // True when fields remain: fields added to a record later are read only when present, so
  // records written before them still open.
  bool HasMore() const { return ok_ && !in_.empty(); }
  Status Finish(const char* what) const {
    if (!ok_) return Status::Corruption(std::string("malformed ") + what + " record");
    return Status::Ok();
  }

 private:
  bool Need(uint64_t n) {
    if (!ok_ || in_.size() < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace medvfs::store
