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

ViewDescriptor History(const std::string& name) {
  ViewDescriptor view;
  view.kind = ViewKind::kHistory;
  view.ino = 5;
  view.history = 9;
  view.text = name;
  return view;
}

// A history directory's resolution and attributes follow the same generation rule.
TEST(ListingCacheTest, ChildrenAndAttributesServeOnlyTheSameGeneration) {
  ListingCache cache;
  const ViewDescriptor root = VersionRootOf(5);
  EXPECT_FALSE(cache.GetChild(root, "a.dcm", 1).has_value());
  cache.PutChild(root, "a.dcm", 1, ViewEntry{"a.dcm", History("a.dcm"), 0});
  ASSERT_TRUE(cache.GetChild(root, "a.dcm", 1).has_value());
  EXPECT_EQ(cache.GetChild(root, "a.dcm", 1)->view, History("a.dcm"));
  EXPECT_FALSE(cache.GetChild(root, "a.dcm", 2).has_value());
  EXPECT_FALSE(cache.GetChild(root, "b.dcm", 1).has_value());
  EXPECT_FALSE(cache.GetChild(VersionRootOf(6), "a.dcm", 1).has_value());

  store::Attr attr;
  attr.mode = 040750;
  cache.PutAttr(History("a.dcm"), 3, attr);
  ASSERT_TRUE(cache.GetAttr(History("a.dcm"), 3).has_value());
  EXPECT_EQ(cache.GetAttr(History("a.dcm"), 3)->mode, 040750u);
  EXPECT_FALSE(cache.GetAttr(History("a.dcm"), 4).has_value());
  EXPECT_FALSE(cache.GetAttr(History("b.dcm"), 3).has_value());
}

TEST(ListingCacheTest, ChildrenAndAttributesStayBounded) {
  ListingCache cache;
  const size_t count = ListingCache::kMaxSmallItems + 10;
  for (size_t i = 0; i < count; ++i) {
    cache.PutChild(VersionRootOf(5), std::to_string(i), 7, ViewEntry{});
    cache.PutAttr(History(std::to_string(i)), 7, store::Attr{});
  }
  size_t children = 0;
  size_t attributes = 0;
  for (size_t i = 0; i < count; ++i) {
    if (cache.GetChild(VersionRootOf(5), std::to_string(i), 7)) ++children;
    if (cache.GetAttr(History(std::to_string(i)), 7)) ++attributes;
  }
  EXPECT_LE(children, ListingCache::kMaxSmallItems);
  EXPECT_LE(attributes, ListingCache::kMaxSmallItems);
  EXPECT_TRUE(cache.GetChild(VersionRootOf(5), std::to_string(count - 1), 7));
  EXPECT_TRUE(cache.GetAttr(History(std::to_string(count - 1)), 7));
}

}  // namespace
}  // namespace medvfs::fs
