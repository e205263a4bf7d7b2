// The subkeys of an archive's data key and the framing of sealed records, in one place for
// every reader of the database (ArchiveImpl, ChunkStore, medvfs verify). Internal to store/.
// See man/medvfs-format.5, "Keys derived from the data key" and "Sealed values".
#pragma once

#include <cstdint>
#include <string_view>

namespace medvfs::store {

// HKDF labels (DeriveSubkey) of the subkeys.
inline constexpr std::string_view kMetaSealLabel = "medvfs meta seal";      // meta records
inline constexpr std::string_view kNameHashLabel = "medvfs name hash";      // HMAC of names
inline constexpr std::string_view kChunkIdLabel = "medvfs chunk id";        // HMAC of chunk content
inline constexpr std::string_view kChunkSealLabel = "medvfs chunk seal";    // chunks, chunk index
inline constexpr std::string_view kAuditChainLabel = "medvfs audit chain";  // audit entry MACs
inline constexpr std::string_view kHighWaterLabel = "medvfs high water";    // rollback marks
inline constexpr std::string_view kDeidLabel = "medvfs deid";               // pseudonyms, UIDs
inline constexpr std::string_view kRemoteLabel = "medvfs remote";  // S3 snapshots (remote.h)

// The format byte in front of every sealed meta record (and chunk index record); the seal
// follows, with the record's key as additional data.
inline constexpr uint8_t kSealedRecordFormat = 1;

}  // namespace medvfs::store
