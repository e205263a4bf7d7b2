// Deterministic, poorly compressible test content shared by the populate helper and the tests.
#pragma once

#include <cstdint>
#include <string>

namespace medvfs::testing {

// Byte i of the pattern is a hash of i, so any slice can be produced independently.
inline std::string PatternBytes(uint64_t offset, size_t count) {
  std::string out(count, '\0');
  for (size_t i = 0; i < count; ++i) {
    uint64_t x = (offset + i) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    out[i] = static_cast<char>(x & 0xff);
  }
  return out;
}

}  // namespace medvfs::testing
