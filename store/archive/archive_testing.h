// Test-only hooks into the archive, for the fault-injection tests of tests/store: never for
// fs/ or tools/ (tests/check_layers.py keeps them out of store/archive/).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

#include "store/archive.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace medvfs::store {

// Archive::Create and Archive::Open, with RocksDB's file I/O going through `storage_env` (see
// KvOpenOptions::env). Null: the real file system, as Create and Open do.
StatusOr<std::unique_ptr<Archive>> CreateArchiveWithEnv(const std::filesystem::path& dir,
                                                        const KeySource& key,
                                                        const ArchiveOptions& options,
                                                        rocksdb::Env* storage_env);
StatusOr<std::unique_ptr<Archive>> OpenArchiveWithEnv(const std::filesystem::path& dir,
                                                      const KeySource& key,
                                                      const ArchiveOptions& options,
                                                      rocksdb::Env* storage_env);

// Replaces the wall clock of every archive in this process (version times, prune's and
// retention's "now") with `clock`, so that tests can make histories of known times; null
// restores the real clock.
void SetClockForTesting(int64_t (*clock)());

}  // namespace medvfs::store
