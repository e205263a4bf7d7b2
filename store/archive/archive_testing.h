// Test-only hooks into the archive, for the fault-injection tests of tests/store: never for
// fs/ or tools/ (tests/check_layers.py keeps them out of store/archive/).
#pragma once

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

}  // namespace medvfs::store
