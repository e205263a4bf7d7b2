// zstd compression of chunk payloads.
#pragma once

#include <string>
#include <string_view>

#include "store/status.h"

namespace medvfs::store {

// Compresses `input` at `level` (zstd levels, 1..19). Replaces *out.
Status Compress(std::string_view input, int level, std::string* out);
// Decompresses one zstd frame. kCorruption if the frame is damaged or would exceed
// `max_size` bytes. Replaces *out.
Status Decompress(std::string_view input, size_t max_size, std::string* out);

}  // namespace medvfs::store
