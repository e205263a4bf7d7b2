// KvStore's state, shared by the .cc files that implement KvStore (kv_store.cc and the
// backup code); private to store/.
#pragma once

#include <rocksdb/db.h>

#include <vector>

#include "store/kv_store.h"

namespace medvfs::store {

struct KvStore::Rep {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // [meta, chunks]
  rocksdb::ColumnFamilyHandle* Handle(Family f) const { return handles[static_cast<size_t>(f)]; }
  ~Rep() {
    if (db == nullptr) return;
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->Close().PermitUncheckedError();
    delete db;
  }
};

}  // namespace medvfs::store
