#include "fs/entry_invalidator.h"

#include <cerrno>
#include <utility>

#include "store/log.h"

namespace medvfs::fs {

EntryInvalidator::EntryInvalidator(Send send) : send_(std::move(send)) {
  thread_ = std::thread([this] { Loop(); });
}

EntryInvalidator::~EntryInvalidator() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  queued_.notify_all();
  thread_.join();
}

bool EntryInvalidator::InvalidateAndWait(Notice notice, std::chrono::milliseconds bound) {
  std::unique_lock lock(mu_);
  queue_.push_back(std::move(notice));
  const uint64_t mine = ++queued_count_;
  queued_.notify_one();
  return sent_.wait_for(lock, bound, [&] { return sent_count_ >= mine; });
}

void EntryInvalidator::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    queued_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything sent
    Notice notice = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    const int rc = send_(notice);
    if (rc != 0 && rc != -ENOENT) {
      // The name is not logged: it may be a patient's.
      MEDVFS_LOG_WARNING("could not invalidate %s view node %llu: error %d",
                         notice.name.empty() ? "the attributes of" : "an entry of",
                         static_cast<unsigned long long>(notice.node), -rc);
    }
    lock.lock();
    ++sent_count_;  // notices are sent in queue order
    sent_.notify_all();
  }
}

}  // namespace medvfs::fs
