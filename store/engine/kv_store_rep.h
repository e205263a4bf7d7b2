// KvStore's state, shared by the .cc files that implement KvStore (kv_store.cc and the
// backup code); private to store/.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/wal_filter.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "store/engine/kv_store.h"

namespace medvfs::store {

struct KvStore::Rep {
  rocksdb::DB* db = nullptr;
  std::filesystem::path dir;
  uint64_t reserved_bytes = 0;  // KvOpenOptions::reserved_bytes
  // CheckWritable's last look at the disk (statvfs, less the unflushed memory tables): the
  // bytes free then, and when (steady clock, ns). Reused for a short while when far above
  // the reserve: a statvfs per write was 2% of the daemon's CPU when creating small files.
  std::atomic<uint64_t> free_seen{0};
  std::atomic<int64_t> free_seen_at_ns{0};
  // Set by the first failed write: RocksDB then refuses writes until reopened, and touching
  // its failed log writer again (SyncWAL) trips an assertion in Debian's build.
  std::atomic<bool> write_failed{false};
  // Writes take it shared, a sync of the log exclusively: a write never runs beside a log
  // sync, so a sync that fails (and marks the log writer failed) is seen by every later write
  // (write_failed) before it touches the writer (which, in Debian's build, asserts).
  std::shared_mutex io_mu;
  std::mutex failure_mu;
  Status failure;  // guarded by failure_mu
  // The failure of an earlier write (see write_failed), or Ok.
  Status EarlierFailure() {
    if (!write_failed.load(std::memory_order_acquire)) return Status::Ok();
    std::lock_guard lock(failure_mu);
    return failure;
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // [meta, chunks]
  std::string wal_note;                               // KvStore::wal_recovery_note
  bool wal_damage_accepted = false;                   // KvStore::wal_damage_accepted
  bool replay_stopped = false;                        // KvStore::replay_stopped
  // The directory's key in the process's registry of writable opens (kv_store.cc's DirClaim),
  // released once the database is closed; empty for a read-only open.
  std::string claimed_dir;
  // KvOpenOptions::replay_check as RocksDB's WAL filter (RocksDB keeps a raw pointer).
  std::unique_ptr<rocksdb::WalFilter> replay_filter;
  // Group sync of the log (SyncWal): one sync at a time; the callers that wait for it return
  // when it covered their writes (the sequence number it started at is at least theirs).
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  bool syncing = false;     // guarded by sync_mu
  uint64_t synced_seq = 0;  // guarded by sync_mu: every write up to this sequence is durable
  // KvStore::SetBeforeDurable's hook; set once after open, read by syncs and flushes.
  std::mutex before_durable_mu;
  std::function<Status()> before_durable;  // guarded by before_durable_mu
  // Held while the hook runs, so that clearing it waits for a run in progress.
  Status RunBeforeDurable() {
    std::lock_guard lock(before_durable_mu);
    return before_durable ? before_durable() : Status::Ok();
  }
  rocksdb::ColumnFamilyHandle* Handle(Family f) const { return handles[static_cast<size_t>(f)]; }
  ~Rep() {
    if (db == nullptr) return;
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->Close().PermitUncheckedError();
    delete db;
  }
};

}  // namespace medvfs::store
