#include "fs/node_table.h"

namespace medvfs::fs {

uint64_t NodeTable::Acquire(const ViewDescriptor& view, std::string audit_path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_view_.find(view);
  if (it != by_view_.end()) {
    Node& node = by_id_[it->second];
    ++node.lookups;
    if (!audit_path.empty()) node.audit_path = std::move(audit_path);
    return it->second;
  }
  const uint64_t id = next_id_++;
  by_view_.emplace(view, id);
  if (view.kind == ViewKind::kHistory) history_dirs_.emplace(view.history, id);
  by_id_.emplace(id, Node{view, 1, std::move(audit_path)});
  return id;
}

std::optional<uint64_t> NodeTable::Find(const ViewDescriptor& view) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_view_.find(view);
  if (it == by_view_.end()) return std::nullopt;
  return it->second;
}

std::vector<uint64_t> NodeTable::HistoryDirsOf(store::HistoryId history) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> out;
  auto [first, last] = history_dirs_.equal_range(history);
  for (auto it = first; it != last; ++it) out.push_back(it->second);
  return out;
}

std::string NodeTable::AuditPath(uint64_t nodeid) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(nodeid);
  return it == by_id_.end() ? std::string() : it->second.audit_path;
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
  if (it->second.view.kind == ViewKind::kHistory) {
    auto [first, last] = history_dirs_.equal_range(it->second.view.history);
    for (auto dir = first; dir != last; ++dir) {
      if (dir->second == nodeid) {
        history_dirs_.erase(dir);
        break;
      }
    }
  }
  by_view_.erase(it->second.view);
  by_id_.erase(it);
}

size_t NodeTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_id_.size();
}

}  // namespace medvfs::fs
