// RemotePackCache: reads of sealed packs that live in an S3 bucket, through a bounded local
// cache of pack blocks (the RemotePacks of a remote read-only mount and of an archive that
// keeps only its newest packs locally). Internal to store/.
//
// The cache holds the pack files' bytes as they are: sealed entries, each authenticated when
// PackStore reads it, so the cache is encrypted at rest without a key of its own and a damaged
// block costs a kCorruption (and the block is dropped), never wrong content. Blocks are
// block_bytes long and aligned (the last of a pack shorter); a read fetches the blocks it
// misses, one request per run of missing blocks, and a run of sequential reads of one pack
// fetches the next read_ahead_blocks blocks in the background. Concurrent reads of the same
// block wait for one fetch. The least recently used blocks are evicted to keep the cache
// within max_bytes; blocks found in the directory at start are used (a restarted mount keeps
// its warm cache).
//
// Files: DIR/NNNNNNNNNNNNNNNN-BBBBBBBB (pack number, block index, hex), mode 0600; written to a
// temporary name and renamed, so a crash leaves no half block under a block's name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "store/engine/remote_packs.h"
#include "store/status.h"

namespace medvfs::store {

struct RemotePackCacheOptions {
  std::filesystem::path dir;  // created (0700) if missing
  // The cache's files never take more than this. Default: 1 GiB.
  uint64_t max_bytes = uint64_t{1} << 30;
  // Default: 4 MiB.
  uint64_t block_bytes = uint64_t{4} << 20;
  // Blocks fetched ahead of a sequential reader. Default: 4.
  uint32_t read_ahead_blocks = 4;
  // Background fetches at once (read-ahead). Default: 4.
  uint32_t fetch_threads = 4;
};

// How the cache reaches the bucket: bytes [offset, offset + length) of pack `pack` (fewer at
// its end), and a pack's size. kNotFound when the bucket lacks the pack.
using PackRangeFetch =
    std::function<Status(uint64_t pack, uint64_t offset, uint64_t length, std::string* bytes)>;
using PackSizeFetch = std::function<StatusOr<uint64_t>(uint64_t pack)>;

struct RemotePackCacheStats {
  uint64_t hits = 0;           // blocks read from the cache
  uint64_t misses = 0;         // blocks fetched for a reader
  uint64_t read_ahead = 0;     // blocks fetched ahead
  uint64_t fetched_bytes = 0;  // bytes fetched from the bucket
  uint64_t cached_bytes = 0;   // bytes in the cache now
  uint64_t evicted_blocks = 0;
};

class RemotePackCache : public RemotePacks {
 public:
  static StatusOr<std::unique_ptr<RemotePackCache>> Open(const RemotePackCacheOptions& options,
                                                         PackRangeFetch fetch_range,
                                                         PackSizeFetch fetch_size);
  ~RemotePackCache() override;  // waits for background fetches

  Status Read(uint64_t pack, uint64_t offset, uint64_t length, std::string* bytes) override;
  StatusOr<uint64_t> Size(uint64_t pack) override;
  // Drops every cached block of `pack` (a pack found damaged, or gone from the bucket).
  void Forget(uint64_t pack);
  RemotePackCacheStats stats() const;

 private:
  struct Rep;
  explicit RemotePackCache(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace medvfs::store
