#include "fs/listing_cache.h"

namespace medvfs::fs {

std::optional<std::vector<ViewEntry>> ListingCache::Get(const ViewDescriptor& dir,
                                                        uint64_t generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = listings_.find(dir);
  if (it == listings_.end() || it->second.generation != generation) return std::nullopt;
  return it->second.entries;
}

void ListingCache::Put(const ViewDescriptor& dir, uint64_t generation,
                       std::vector<ViewEntry> entries) {
  std::lock_guard<std::mutex> lock(mu_);
  // Stale listings are worthless: drop them all before making room.
  if (listings_.size() >= kMaxListings && listings_.find(dir) == listings_.end()) {
    std::erase_if(listings_,
                  [&](const auto& item) { return item.second.generation != generation; });
    if (listings_.size() >= kMaxListings) listings_.erase(listings_.begin());
  }
  listings_[dir] = Listing{generation, std::move(entries)};
}

}  // namespace medvfs::fs
