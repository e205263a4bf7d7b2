#include "fs/node_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

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
// Find and HistoryDirsOf see exactly the nodes the kernel holds: a random sequence of
// acquires and forgets of history directories (and other views) against a plain count model.
TEST(NodeTableTest, FindAndHistoryDirsAgreeWithAModel) {
  NodeTable table;
  std::mt19937 rng(7);
  std::map<ViewDescriptor, uint64_t> held;  // descriptor -> lookups the kernel holds
  std::map<ViewDescriptor, uint64_t> ids;
  auto descriptor = [&](int i) {
    ViewDescriptor view;
    if (i % 4 == 3) return VersionRootOf(static_cast<store::InodeId>(i));
    view.kind = ViewKind::kHistory;
    view.owner_dir = static_cast<store::InodeId>(1 + i % 3);
    view.history = static_cast<store::HistoryId>(1 + i % 5);
    view.text = "name" + std::to_string(i);
    return view;
  };
  for (int step = 0; step < 2000; ++step) {
    const ViewDescriptor view = descriptor(static_cast<int>(rng() % 24));
    if (rng() % 3 != 0) {
      ids[view] = table.Acquire(view);
      ++held[view];
    } else if (held[view] > 0) {
      const uint64_t n = 1 + rng() % held[view];
      table.Forget(ids[view], n);
      held[view] -= n;
    }
    for (int i = 0; i < 24; ++i) {
      const ViewDescriptor probe = descriptor(i);
      const std::optional<uint64_t> found = table.Find(probe);
      ASSERT_EQ(found.has_value(), held[probe] > 0) << "step " << step << ", view " << i;
      if (found) {
        ASSERT_EQ(*found, ids[probe]);
      }
    }
    for (store::HistoryId history = 1; history <= 5; ++history) {
      std::set<uint64_t> want;
      for (const auto& [known, lookups] : held) {
        if (lookups > 0 && known.kind == ViewKind::kHistory && known.history == history) {
          want.insert(ids[known]);
        }
      }
      const std::vector<uint64_t> got = table.HistoryDirsOf(history);
      ASSERT_EQ(std::set<uint64_t>(got.begin(), got.end()), want) << "step " << step;
      ASSERT_EQ(got.size(), want.size());
    }
  }
}

}  // namespace medvfs::fs
