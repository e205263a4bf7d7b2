// The byte layout of a pack file (man 5 medvfs-format, "Pack files"): what PackStore writes,
// and what verify and re-indexing read. Pure functions over bytes; no I/O.
// Internal to store/.
//
//   header   32 bytes   "MEDVFSPK" | format u32 (1) | 0 u32 | pack number u64 | 0 u64
//   entry    48 bytes   "MVCK" | sealed length u32 | plain length u32 | encoding u8 | 0 0 0 |
//                       chunk id (32)
//            then       Seal(chunk seal key, aad, chunk payload): nonce | ciphertext | tag
//                       aad = "medvfs pack entry" | pack number u64 | entry offset u64 |
//                             the 48 header bytes
//   ...      more entries, appended
//   trailer  (sealed packs only) "MVTR" | entry count u32 |
//                       Seal(chunk seal key, "medvfs pack trailer" | pack u64 | trailer offset
//                            u64 | count u32, count x [chunk id (32) | offset u64 |
//                            entry length u32 | plain length u32 | encoding u8])
//   footer   32 bytes   trailer offset u64 | trailer length u64 | entry count u32 | 0 u32 |
//                       "MVPKEND1"
// Integers are little-endian. The GCM tag is each entry's only checksum: it authenticates the
// payload and, through the additional data, the header fields, the pack and the offset, so an
// entry copied to another place fails like a flipped bit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/crypto/crypto.h"
#include "store/engine/record_format.h"
#include "store/status.h"

namespace medvfs::store {

inline constexpr uint32_t kPackFormat = 1;
inline constexpr size_t kPackHeaderSize = 32;
inline constexpr size_t kPackEntryHeaderSize = 48;
inline constexpr size_t kPackFooterSize = 32;
// A trailer's entry record: id, offset, entry length, plain length, encoding.
inline constexpr size_t kPackTrailerRecordSize = 32 + 8 + 4 + 4 + 1;
// "MVTR" and the entry count, before the trailer's sealed records.
inline constexpr size_t kPackTrailerHeaderSize = 8;
// Chunk payload encodings.
inline constexpr uint8_t kEncodingRaw = 0;
inline constexpr uint8_t kEncodingZstd = 1;

// One chunk's entry, as the header says (and, once opened, as authenticated).
struct PackEntryInfo {
  ChunkId id{};
  uint64_t offset = 0;        // of the entry header in the pack
  uint32_t length = 0;        // the whole entry: header and sealed payload
  uint32_t plain_length = 0;  // the chunk's length
  uint8_t encoding = 0;       // kEncodingRaw or kEncodingZstd
  uint64_t end() const { return offset + length; }
};

std::string EncodePackHeader(uint64_t pack);
// kCorruption unless `bytes` (at least kPackHeaderSize) is the header of pack `pack`.
Status CheckPackHeader(std::string_view bytes, uint64_t pack);

// Appends a complete entry for `payload` (the chunk's bytes, compressed or not) to *out.
Status AppendPackEntry(const SecretKey& seal_key, uint64_t pack, uint64_t offset, const ChunkId& id,
                       uint32_t plain_length, uint8_t encoding, std::string_view payload,
                       std::string* out);
// The entry length AppendPackEntry writes for a payload of `payload_size` bytes.
inline uint32_t PackEntryLength(size_t payload_size) {
  return static_cast<uint32_t>(kPackEntryHeaderSize + kSealOverhead + payload_size);
}
// Parses an entry header (the first kPackEntryHeaderSize bytes of `bytes`) found at `offset`:
// kCorruption when it is not one (wrong magic, impossible lengths).
Status ParsePackEntryHeader(std::string_view bytes, uint64_t offset, PackEntryInfo* info);
// Authenticates a whole entry (`bytes` holds exactly info.length bytes of it) and returns its
// payload; kCorruption when it fails.
Status OpenPackEntry(const SecretKey& seal_key, uint64_t pack, const PackEntryInfo& info,
                     std::string_view bytes, std::string* payload);

// The trailer and footer that seal a pack whose entries end at `trailer_offset`.
Status AppendPackTrailer(const SecretKey& seal_key, uint64_t pack, uint64_t trailer_offset,
                         const std::vector<PackEntryInfo>& entries, std::string* out);
struct PackFooter {
  uint64_t trailer_offset = 0;
  uint64_t trailer_length = 0;
  uint32_t count = 0;
};
// kCorruption unless `bytes` (kPackFooterSize) is a footer that fits a file of `file_size`.
Status ParsePackFooter(std::string_view bytes, uint64_t file_size, PackFooter* footer);
// Authenticates a trailer (`bytes` = footer.trailer_length bytes at footer.trailer_offset) and
// returns its entries.
Status OpenPackTrailer(const SecretKey& seal_key, uint64_t pack, const PackFooter& footer,
                       std::string_view bytes, std::vector<PackEntryInfo>* entries);

// Bytes of a pack that a rewrite down to its live entries would give back: for a sealed pack,
// its size less what a sealed pack of just its live entries takes (their bytes, the header,
// their trailer records and the footer); for one still taking appends, its size less the
// header and the live entries. Never counts the structure every pack needs, so that a pack
// without dropped entries has none.
inline uint64_t PackGarbageBytes(const PackRecord& record) {
  uint64_t needed = kPackHeaderSize + record.live_bytes;
  if (record.sealed) {
    needed += kPackTrailerHeaderSize + kSealOverhead + record.live_chunks * kPackTrailerRecordSize +
              kPackFooterSize;
  }
  return record.size > needed ? record.size - needed : 0;
}

// "0000000000000001.pack": the file name of pack `pack` in the archive's packs/ directory.
std::string PackFileName(uint64_t pack);
// The pack number of a file name PackFileName made; 0 for any other name.
uint64_t PackNumberOfFileName(std::string_view name);

}  // namespace medvfs::store
