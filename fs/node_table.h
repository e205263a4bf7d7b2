// FUSE node ids for view nodes. Real nodes use their store InodeId as node id (the root is
// 1 = FUSE_ROOT_ID); view nodes get ids from 2^63 up, one per distinct ViewDescriptor, kept
// while the kernel holds lookups on them and freed by forget.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "fs/views.h"

namespace medvfs::fs {

inline constexpr uint64_t kFirstViewNodeId = uint64_t{1} << 63;

inline bool IsViewNode(uint64_t nodeid) { return nodeid >= kFirstViewNodeId; }

class NodeTable {
 public:
  // The node id of `view`, allocated on first use; adds one lookup (one fuse_reply_entry).
  // `audit_path` (when not empty) replaces the path the audit log names the node by.
  uint64_t Acquire(const ViewDescriptor& view, std::string audit_path = {});
  // The node id of `view` if the kernel holds it (no lookup is added); nullopt otherwise.
  std::optional<uint64_t> Find(const ViewDescriptor& view) const;
  // The history directories (DIR/@version/NAME nodes) of `history` the kernel holds.
  std::vector<uint64_t> HistoryDirsOf(store::HistoryId history) const;
  // The descriptor behind a view node id; nullopt if the kernel forgot it (or never had it).
  std::optional<ViewDescriptor> Get(uint64_t nodeid) const;
  // The audit path given at the last Acquire ("" if none, or if the node is forgotten).
  std::string AuditPath(uint64_t nodeid) const;
  // Drops `lookups` lookups; the node id is freed when none remain.
  void Forget(uint64_t nodeid, uint64_t lookups);
  size_t size() const;

 private:
  struct Node {
    ViewDescriptor view;
    uint64_t lookups = 0;
    std::string audit_path;
  };
  // Lock order: a leaf; nothing else is locked while holding it.
  mutable std::mutex mu_;
  std::map<ViewDescriptor, uint64_t> by_view_;  // GUARDED_BY(mu_)
  std::unordered_map<uint64_t, Node> by_id_;    // GUARDED_BY(mu_)
  // kHistory nodes by their history. GUARDED_BY(mu_).
  std::unordered_multimap<store::HistoryId, uint64_t> history_dirs_;
  uint64_t next_id_ = kFirstViewNodeId;  // GUARDED_BY(mu_)
};

}  // namespace medvfs::fs
