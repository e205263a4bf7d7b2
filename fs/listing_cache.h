// Listings of view directories that are costly to compute (a study of /@patients resolves the
// path of every file in it), kept until the archive changes. Every request that may change the
// archive bumps Filesystem's generation when it is done; a listing computed under an older
// generation is never served, so the cache is exact, not time-based. Without it, `ls -l` of a
// study (one lookup per link, each needing the whole listing) costs O(files^2).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "fs/views.h"

namespace medvfs::fs {

class ListingCache {
 public:
  // The listing of `dir` if it was stored under `generation`.
  std::optional<std::vector<ViewEntry>> Get(const ViewDescriptor& dir, uint64_t generation) const;
  // Stores the listing of `dir` computed under `generation` (read before computing it).
  void Put(const ViewDescriptor& dir, uint64_t generation, std::vector<ViewEntry> entries);

  // How many listings are kept at most. Default: 16.
  static constexpr size_t kMaxListings = 16;

 private:
  struct Listing {
    uint64_t generation = 0;
    std::vector<ViewEntry> entries;
  };
  mutable std::mutex mu_;                       // a leaf lock
  std::map<ViewDescriptor, Listing> listings_;  // GUARDED_BY(mu_)
};

}  // namespace medvfs::fs
