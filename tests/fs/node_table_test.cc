#include "fs/node_table.h"

#include <gtest/gtest.h>

namespace medvfs::fs {
namespace {

TEST(NodeTableTest, SameDescriptorSameNodeId) {
  NodeTable table;
  const uint64_t a = table.Acquire(VersionRootOf(1));
  const uint64_t b = table.Acquire(VersionRootOf(1));
  const uint64_t c = table.Acquire(VersionRootOf(2));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_TRUE(IsViewNode(a));
  EXPECT_TRUE(IsViewNode(c));
  EXPECT_FALSE(IsViewNode(1));
  EXPECT_EQ(table.size(), 2u);
  ASSERT_TRUE(table.Get(a));
  EXPECT_EQ(*table.Get(a), VersionRootOf(1));
}

TEST(NodeTableTest, ForgetFreesAfterTheLastLookup) {
  NodeTable table;
  const uint64_t a = table.Acquire(VersionRootOf(1));
  table.Acquire(VersionRootOf(1));
  table.Acquire(VersionRootOf(1));
  table.Forget(a, 2);
  EXPECT_TRUE(table.Get(a));
  table.Forget(a, 1);
  EXPECT_FALSE(table.Get(a));
  EXPECT_EQ(table.size(), 0u);
  // A forgotten descriptor gets a fresh id; an unknown id is ignored.
  const uint64_t again = table.Acquire(VersionRootOf(1));
  EXPECT_NE(again, a);
  table.Forget(12345, 1);
  EXPECT_EQ(table.size(), 1u);
}

TEST(NodeTableTest, ForgetMoreThanHeldFrees) {
  NodeTable table;
  const uint64_t a = table.Acquire(VersionRootOf(3));
  table.Forget(a, 10);
  EXPECT_FALSE(table.Get(a));
}

}  // namespace
}  // namespace medvfs::fs
