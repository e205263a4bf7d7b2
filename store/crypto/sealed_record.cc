#include "store/crypto/sealed_record.h"

#include <cstdint>

namespace medvfs::store {

Status SealRecord(const SecretKey& seal, std::string_view key, std::string_view plain,
                  std::string* value) {
  value->assign(1, static_cast<char>(kSealedRecordFormat));
  return Seal(seal, key, plain, value);
}

RecordFault UnsealRecord(const SecretKey& seal, std::string_view key, std::string_view value,
                         std::string* plain) {
  if (value.empty() || static_cast<uint8_t>(value[0]) != kSealedRecordFormat) {
    return RecordFault::kUnknownFormat;
  }
  if (!Unseal(seal, key, value.substr(1), plain).ok()) return RecordFault::kAuthentication;
  return RecordFault::kNone;
}

}  // namespace medvfs::store
