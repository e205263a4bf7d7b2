// RemotePacks: where PackStore reads a sealed pack whose file is not on the local disk (a
// remote read-only mount, or an archive that keeps only its newest packs locally: the S3
// tier, store/archive/remote*.cc). Internal to store/.
//
// The bytes are the pack file's bytes as they are (sealed entries): PackStore authenticates
// every entry it reads from them, so a remote or a cache that returns wrong bytes costs a
// kCorruption, never wrong content.
#pragma once

#include <cstdint>
#include <string>

#include "store/status.h"

namespace medvfs::store {

class RemotePacks {
 public:
  virtual ~RemotePacks() = default;
  // Bytes [offset, offset + length) of sealed pack `pack` (fewer only at the pack's end).
  // kNotFound when the remote does not hold the pack; kIoError when it cannot be reached.
  // Called from several threads at once.
  virtual Status Read(uint64_t pack, uint64_t offset, uint64_t length, std::string* bytes) = 0;
  // The pack's size; kNotFound when the remote does not hold it.
  virtual StatusOr<uint64_t> Size(uint64_t pack) = 0;
};

}  // namespace medvfs::store
