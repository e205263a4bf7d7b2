// Bytes: hex, and wiping secrets from memory. Base of store/: no third-party library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "store/status.h"

namespace medvfs::store {

// Wipes memory in a way the compiler cannot drop.
void Wipe(void* data, size_t size);
// Wipes every byte a string owns (its whole capacity, also the in-object buffer of a short
// string), then empties it. Use it on each copy of a secret held in a std::string.
void WipeString(std::string* s);

// Lowercase hex.
std::string HexEncode(std::span<const uint8_t> bytes);
// kInvalid on odd length or non-hex characters.
StatusOr<std::string> HexDecode(std::string_view hex);

}  // namespace medvfs::store
