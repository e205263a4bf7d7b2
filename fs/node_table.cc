#include "fs/node_table.h"

namespace medvfs::fs {

uint64_t NodeTable::Acquire(const ViewDescriptor& view) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_view_.find(view);
  if (it != by_view_.end()) {
    ++by_id_[it->second].lookups;
    return it->second;
  }
  const uint64_t id = next_id_++;
  by_view_.emplace(view, id);
  by_id_.emplace(id, Node{view, 1});
  return id;
}

std::optional<ViewDescriptor> NodeTable::Get(uint64_t nodeid) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(nodeid);
  if (it == by_id_.end()) return std::nullopt;
  return it->second.view;
}

void NodeTable::Forget(uint64_t nodeid, uint64_t lookups) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(nodeid);
  if (it == by_id_.end()) return;
  if (it->second.lookups > lookups) {
    it->second.lookups -= lookups;
    return;
  }
  by_view_.erase(it->second.view);
  by_id_.erase(it);
}

size_t NodeTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_id_.size();
}

}  // namespace medvfs::fs
