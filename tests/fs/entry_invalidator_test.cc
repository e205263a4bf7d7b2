#include "fs/entry_invalidator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace medvfs::fs {
namespace {

using std::chrono::milliseconds;

TEST(EntryInvalidatorTest, SendsEachNoticeInOrderBeforeTheWaitReturns) {
  std::mutex mu;
  std::vector<std::string> sent;
  {
    EntryInvalidator invalidator([&](const EntryInvalidator::Notice& notice) {
      std::lock_guard lock(mu);
      sent.push_back(std::to_string(notice.node) + "/" + notice.name);
      return 0;
    });
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(invalidator.InvalidateAndWait({static_cast<uint64_t>(i), "n" + std::to_string(i)},
                                                milliseconds(5000)));
      std::lock_guard lock(mu);
      ASSERT_EQ(sent.size(), static_cast<size_t>(i + 1));  // sent before the wait returned
      EXPECT_EQ(sent.back(), std::to_string(i) + "/n" + std::to_string(i));
    }
  }
  EXPECT_EQ(sent.size(), 50u);
}

// A notice the kernel does not take at once (its directory lock is held by a request that
// waits for a daemon thread) must not hold the handler past the bound; it is still sent, and
// the destructor waits for it.
TEST(EntryInvalidatorTest, AStuckNoticeReleasesTheWaiterAfterTheBound) {
  std::atomic<bool> release{false};
  std::atomic<int> sent{0};
  {
    EntryInvalidator invalidator([&](const EntryInvalidator::Notice&) {
      while (!release.load()) std::this_thread::sleep_for(milliseconds(1));
      sent.fetch_add(1);
      return 0;
    });
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(invalidator.InvalidateAndWait({1, "stuck"}, milliseconds(50)));
    EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(50));
    EXPECT_EQ(sent.load(), 0);
    release = true;
    // A later notice waits for the earlier one and then goes out.
    EXPECT_TRUE(invalidator.InvalidateAndWait({2, ""}, milliseconds(5000)));
    EXPECT_EQ(sent.load(), 2);
  }
}

}  // namespace
}  // namespace medvfs::fs
