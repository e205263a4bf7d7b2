#include "fs/listing_cache.h"

namespace medvfs::fs {

namespace {

// Stores value under key in a map of at most `limit` items: stale items are worthless, so
// they are all dropped before making room.
template <typename Map, typename Key, typename Value>
void PutBounded(Map& map, size_t limit, const Key& key, uint64_t generation, Value value) {
  if (map.size() >= limit && map.find(key) == map.end()) {
    std::erase_if(map, [&](const auto& item) { return item.second.generation != generation; });
    if (map.size() >= limit) map.erase(map.begin());
  }
  auto& item = map[key];
  item.generation = generation;
  item.value = std::move(value);
}

template <typename Map, typename Key>
auto GetFresh(const Map& map, const Key& key, uint64_t generation)
    -> std::optional<decltype(map.begin()->second.value)> {
  auto it = map.find(key);
  if (it == map.end() || it->second.generation != generation) return std::nullopt;
  return it->second.value;
}

}  // namespace

std::optional<std::vector<ViewEntry>> ListingCache::Get(const ViewDescriptor& dir,
                                                        uint64_t generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  return GetFresh(listings_, dir, generation);
}

void ListingCache::Put(const ViewDescriptor& dir, uint64_t generation,
                       std::vector<ViewEntry> entries) {
  std::lock_guard<std::mutex> lock(mu_);
  PutBounded(listings_, kMaxListings, dir, generation, std::move(entries));
}

std::optional<ViewEntry> ListingCache::GetChild(const ViewDescriptor& dir, std::string_view name,
                                                uint64_t generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  return GetFresh(children_, ChildKey(dir, std::string(name)), generation);
}

void ListingCache::PutChild(const ViewDescriptor& dir, std::string_view name, uint64_t generation,
                            ViewEntry child) {
  std::lock_guard<std::mutex> lock(mu_);
  PutBounded(children_, kMaxSmallItems, ChildKey(dir, std::string(name)), generation,
             std::move(child));
}

std::optional<store::Attr> ListingCache::GetAttr(const ViewDescriptor& view,
                                                 uint64_t generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  return GetFresh(attributes_, view, generation);
}

void ListingCache::PutAttr(const ViewDescriptor& view, uint64_t generation,
                           const store::Attr& attr) {
  std::lock_guard<std::mutex> lock(mu_);
  PutBounded(attributes_, kMaxSmallItems, view, generation, attr);
}

}  // namespace medvfs::fs
