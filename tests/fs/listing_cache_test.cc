#include "fs/listing_cache.h"

#include <gtest/gtest.h>

namespace medvfs::fs {
namespace {

ViewDescriptor Study(const std::string& name) {
  ViewDescriptor view;
  view.kind = ViewKind::kStudy;
  view.text = "P1";
  view.study = name;
  return view;
}

std::vector<ViewEntry> Entries(const std::string& name) {
  ViewEntry entry;
  entry.name = name;
  return {entry};
}

TEST(ListingCacheTest, ServesOnlyTheSameGeneration) {
  ListingCache cache;
  EXPECT_FALSE(cache.Get(Study("a"), 1).has_value());
  cache.Put(Study("a"), 1, Entries("x"));
  ASSERT_TRUE(cache.Get(Study("a"), 1).has_value());
  EXPECT_EQ(cache.Get(Study("a"), 1)->front().name, "x");
  EXPECT_FALSE(cache.Get(Study("a"), 2).has_value());
  EXPECT_FALSE(cache.Get(Study("b"), 1).has_value());
  cache.Put(Study("a"), 2, Entries("y"));
  EXPECT_EQ(cache.Get(Study("a"), 2)->front().name, "y");
}

TEST(ListingCacheTest, StaysBounded) {
  ListingCache cache;
  for (size_t i = 0; i < 3 * ListingCache::kMaxListings; ++i) {
    cache.Put(Study(std::to_string(i)), 7, Entries("x"));
  }
  size_t kept = 0;
  for (size_t i = 0; i < 3 * ListingCache::kMaxListings; ++i) {
    if (cache.Get(Study(std::to_string(i)), 7)) ++kept;
  }
  EXPECT_LE(kept, ListingCache::kMaxListings);
  EXPECT_TRUE(cache.Get(Study(std::to_string(3 * ListingCache::kMaxListings - 1)), 7));
}

}  // namespace
}  // namespace medvfs::fs
