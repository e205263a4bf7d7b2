// KvStore's state, shared by the .cc files that implement KvStore (kv_store.cc and the
// backup code); private to store/.
#pragma once

#include <rocksdb/db.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "store/engine/kv_store.h"

namespace medvfs::store {

struct KvStore::Rep {
  rocksdb::DB* db = nullptr;
  std::filesystem::path dir;
  uint64_t reserved_bytes = 0;  // KvOpenOptions::reserved_bytes
  // Set by the first failed write: RocksDB then refuses writes until reopened, and touching
  // its failed log writer again (SyncWAL) trips an assertion in Debian's build.
  std::atomic<bool> write_failed{false};
  std::mutex failure_mu;
  Status failure;                                     // guarded by failure_mu
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // [meta, chunks]
  std::string wal_note;                               // KvStore::wal_recovery_note
  bool wal_damage_accepted = false;                   // KvStore::wal_damage_accepted
  // The directory's key in the process's registry of writable opens (kv_store.cc's DirClaim),
  // released once the database is closed; empty for a read-only open.
  std::string claimed_dir;
  rocksdb::ColumnFamilyHandle* Handle(Family f) const { return handles[static_cast<size_t>(f)]; }
  ~Rep() {
    if (db == nullptr) return;
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->Close().PermitUncheckedError();
    delete db;
  }
};

}  // namespace medvfs::store
