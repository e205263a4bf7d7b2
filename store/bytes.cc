#include "store/bytes.h"

#include <string.h>  // explicit_bzero

namespace medvfs::store {

void Wipe(void* data, size_t size) {
  if (data != nullptr && size > 0) explicit_bzero(data, size);
}

void WipeString(std::string* s) {
  s->resize(s->capacity());  // within capacity: no reallocation, so no copy is left behind
  Wipe(s->data(), s->size());
  s->clear();
}

std::string HexEncode(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    hex[2 * i] = kDigits[bytes[i] >> 4];
    hex[2 * i + 1] = kDigits[bytes[i] & 0x0f];
  }
  return hex;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

StatusOr<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return Status::Invalid("hex string has an odd length");
  std::string bytes(hex.size() / 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Status::Invalid("hex string has a non-hex character");
    bytes[i] = static_cast<char>((hi << 4) | lo);
  }
  return bytes;
}

}  // namespace medvfs::store
