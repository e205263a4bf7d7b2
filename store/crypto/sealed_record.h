// Sealed records: the one framing of every sealed meta record, for every reader and writer of
// the database (ArchiveImpl, medvfs verify). See man/medvfs-format.5, "Sealed values":
// [kSealedRecordFormat][AES-256-GCM seal of the plaintext, the record's key as additional data].
// Internal to store/.
#pragma once

#include <string>
#include <string_view>

#include "store/crypto/crypto.h"
#include "store/crypto/subkeys.h"
#include "store/status.h"

namespace medvfs::store {

// Why a sealed record did not open.
enum class RecordFault {
  kNone,
  kUnknownFormat,   // empty, or a format byte this medvfs does not write
  kAuthentication,  // the seal does not verify: altered, damaged, or moved to another key
  kDecode,          // authentic, but the plaintext does not decode as the record expected
};

// The sealed value of `plain` stored under `key`. Fails only when OpenSSL cannot allocate.
Status SealRecord(const SecretKey& seal, std::string_view key, std::string_view plain,
                  std::string* value);

// Opens the sealed `value` stored under `key` into *plain (wiped by the caller).
RecordFault UnsealRecord(const SecretKey& seal, std::string_view key, std::string_view value,
                         std::string* plain);

// Opens and decodes (Decode(plain, record), or `decode`) a sealed record; the plaintext is
// wiped before returning.
template <typename Record, typename DecodeFn>
RecordFault OpenSealedRecord(const SecretKey& seal, std::string_view key, std::string_view value,
                             Record* record, DecodeFn&& decode) {
  std::string plain;
  RecordFault fault = UnsealRecord(seal, key, value, &plain);
  if (fault == RecordFault::kNone && !decode(plain, record)) fault = RecordFault::kDecode;
  Wipe(plain.data(), plain.size());
  return fault;
}

template <typename Record>
RecordFault OpenSealedRecord(const SecretKey& seal, std::string_view key, std::string_view value,
                             Record* record) {
  return OpenSealedRecord(seal, key, value, record, [](std::string_view plain, Record* out) {
    return Decode(plain, out).ok();
  });
}

}  // namespace medvfs::store
