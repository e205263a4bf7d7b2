// The archive's state digest: a keyed multiset hash of every record that makes up the file
// system's state, kept in one sealed record ("Z") that every change rewrites in the same
// atomic batch as the records it changes (ArchiveImpl::WriteBatchLocked). `medvfs verify`
// recomputes it from the records present: a record put back from an older copy, a deleted
// record, or records mixed from two points in time no longer add up to it. Without the key
// nobody can compute the digest of a state, nor make the record that holds it.
//
// digest = sum over covered records of HMAC-SHA256(k, u32le(len key) || key || value) mod
// 2^256, k = DeriveSubkey(data key, kStateDigestLabel). Covered: the super record and the
// namespace, history, version, version digest, extent, event, tag, note, patient index,
// retention and legal hold records (the
// kinds in kStateDigestKinds). Not covered: the chunk index and the pack records (written by
// the chunk store, outside the batches; content-addressed and checked against every version
// that uses it, and against the packs, by verify), the audit
// log (its own MAC chain, checked by `medvfs audit --verify` and verify) and the digest
// record itself. See man/medvfs-format.5.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "store/crypto/crypto.h"

namespace medvfs::store {

inline constexpr char kStateDigestKey[] = "Z";
inline constexpr std::string_view kStateDigestLabel = "medvfs state digest v1";
inline constexpr std::string_view kStateDigestKinds = "SIDHYVXGMTNPQWRO";
inline constexpr uint8_t kStateDigestFormat = 1;

using StateDigest = std::array<uint8_t, 32>;

inline bool CoveredByStateDigest(std::string_view key) {
  if (key.empty()) return false;
  if (key[0] == kStateDigestKey[0]) return false;
  // The super record is the one-byte key "S"; longer keys starting with S are not records.
  if (key[0] == 'S') return key.size() == 1;
  return kStateDigestKinds.find(key[0]) != std::string_view::npos;
}

// digest_hmac is keyed with k (above).
inline StateDigest StateDigestTerm(const KeyedHmacSha256& digest_hmac, std::string_view key,
                                   std::string_view value) {
  std::string data;
  data.reserve(4 + key.size() + value.size());
  const auto length = static_cast<uint32_t>(key.size());
  for (int i = 0; i < 4; ++i) data.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  data.append(key);
  data.append(value);
  return digest_hmac.Mac(data);
}

// The two records every batch of ArchiveImpl::WriteBatchLocked rewrites, as a batch left
// them: the digest, and the super record's stored (sealed) value, whose term the next batch
// subtracts.
struct StateDigestSnapshot {
  StateDigest digest{};
  std::string super_value;
};

// digest += term (little-endian, mod 2^256).
inline void StateDigestAdd(StateDigest* digest, const StateDigest& term) {
  unsigned carry = 0;
  for (size_t i = 0; i < digest->size(); ++i) {
    const unsigned sum = (*digest)[i] + term[i] + carry;
    (*digest)[i] = static_cast<uint8_t>(sum & 0xff);
    carry = sum >> 8;
  }
}

// digest -= term (mod 2^256).
inline void StateDigestSubtract(StateDigest* digest, const StateDigest& term) {
  int borrow = 0;
  for (size_t i = 0; i < digest->size(); ++i) {
    int diff = static_cast<int>((*digest)[i]) - static_cast<int>(term[i]) - borrow;
    borrow = diff < 0 ? 1 : 0;
    if (diff < 0) diff += 256;
    (*digest)[i] = static_cast<uint8_t>(diff);
  }
}

// The digest record's plaintext: format byte, then the 32 bytes.
inline std::string EncodeStateDigest(const StateDigest& digest) {
  std::string out(1, static_cast<char>(kStateDigestFormat));
  out.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  return out;
}

inline bool DecodeStateDigest(std::string_view plain, StateDigest* digest) {
  if (plain.size() != 1 + digest->size() || static_cast<uint8_t>(plain[0]) != kStateDigestFormat) {
    return false;
  }
  for (size_t i = 0; i < digest->size(); ++i) (*digest)[i] = static_cast<uint8_t>(plain[1 + i]);
  return true;
}

}  // namespace medvfs::store
