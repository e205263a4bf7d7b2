// Tells the kernel to forget cached directory entries and inode attributes
// (fuse_lowlevel_notify_inval_entry, fuse_lowlevel_notify_inval_inode) from a thread of its own.
//
// Why a thread: the kernel takes the directory's lock exclusively to drop the entry. A request
// inside that directory (a lookup, a readdir) holds the lock shared while it waits for a daemon
// thread to answer it; were every daemon thread blocked in a notification, nobody would. A
// handler therefore hands the notice over and waits for it only up to a bound: normally it is
// sent within microseconds and the handler replies afterwards, so that when the caller's
// system call returns the kernel no longer holds the old entry.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace medvfs::fs {

class EntryInvalidator {
 public:
  // An entry `name` of directory node `node`, or (name empty) the attributes of node `node`.
  struct Notice {
    uint64_t node = 0;
    std::string name;
  };
  // `send` sends one notice and returns 0 or a negative errno (-ENOENT: the kernel holds no
  // such entry or node, which is fine).
  using Send = std::function<int(const Notice& notice)>;
  explicit EntryInvalidator(Send send);
  // Sends what is queued, then stops the thread.
  ~EntryInvalidator();
  EntryInvalidator(const EntryInvalidator&) = delete;
  EntryInvalidator& operator=(const EntryInvalidator&) = delete;

  // Queues the notice and waits until it is sent, or for `bound` at most (see above).
  // Returns whether it was sent within the bound.
  bool InvalidateAndWait(Notice notice, std::chrono::milliseconds bound);

 private:
  void Loop();

  Send send_;
  std::mutex mu_;  // a leaf lock
  std::condition_variable queued_;
  std::condition_variable sent_;
  std::deque<Notice> queue_;   // GUARDED_BY(mu_)
  uint64_t queued_count_ = 0;  // GUARDED_BY(mu_): notices ever queued
  uint64_t sent_count_ = 0;    // GUARDED_BY(mu_): notices sent
  bool stopping_ = false;      // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace medvfs::fs
