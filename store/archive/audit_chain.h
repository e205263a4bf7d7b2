// The audit log's encoding and hash chain (see store/audit.h, man/medvfs-format.5). Internal
// to store/: ArchiveImpl seals the records defined here like every other meta record.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "store/audit.h"
#include "store/crypto/crypto.h"
#include "store/status.h"

namespace medvfs::store {

using AuditMac = std::array<uint8_t, 32>;

// The MAC that precedes entry 1.
inline constexpr AuditMac kAuditGenesisMac{};

// The canonical bytes of an entry (seq included): what the chain MAC covers.
std::string EncodeAuditEntry(const AuditEntry& entry);
Status DecodeAuditEntry(std::string_view in, AuditEntry* entry);

// mac_n = HMAC-SHA-256(chain key, mac_{n-1} || encoded entry n); chain_hmac is keyed with
// the chain key.
AuditMac AuditChainMac(const KeyedHmacSha256& chain_hmac, const AuditMac& previous,
                       std::string_view encoded_entry);

// The plaintext of the record stored under 'A' seq: the encoded entry and its chain MAC.
struct AuditRecord {
  std::string encoded_entry;
  AuditMac mac{};
};

// The plaintext of the head record: the last sequence number and its chain MAC.
struct AuditHeadRecord {
  uint64_t seq = 0;
  AuditMac mac{};
};

std::string Encode(const AuditRecord& r);
std::string Encode(const AuditHeadRecord& r);
Status Decode(std::string_view in, AuditRecord* r);
Status Decode(std::string_view in, AuditHeadRecord* r);

// The high-water mark of one archive: the highest audit sequence number this host saw and
// that entry's chain MAC (so that a different copy grown past the mark is still told apart).
struct HighWaterMark {
  uint64_t seq = 0;
  AuditMac entry_mac{};
};
// The mark file's text, with HMAC-SHA-256(high-water key, archive id, seq, entry MAC).
std::string EncodeHighWater(const SecretKey& key, std::string_view archive_id,
                            const HighWaterMark& mark);
// kCorruption when the file is malformed or its MAC does not match.
Status DecodeHighWater(const SecretKey& key, std::string_view archive_id, std::string_view in,
                       HighWaterMark* mark);

// One line of the plaintext `failed-unlocks` side file, and its parse.
std::string FormatFailedUnlock(int64_t time_ns, uint32_t uid, uint32_t gid, uint32_t pid,
                               std::string_view program);
bool ParseFailedUnlock(std::string_view line, AuditEvent* event);

}  // namespace medvfs::store
