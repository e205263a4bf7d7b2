// The pack files of a backup (archive_backup.cc). Internal to store/.
//
// A backup directory holds RocksDB's backups (the records: KvStore::CreateBackup) and, in
// packs/, the pack files they refer to:
//   packs/NNNNNNNNNNNNNNNN.pack         a sealed pack, copied once and shared by every backup
//   packs/NNNNNNNNNNNNNNNN.pack.sha256  its SHA-256 (hex), written when it was copied
//   packs/backup-ID/NNNNNNNNNNNNNNNN.pack  the durable prefix of a pack that was still taking
//                                       appends, as backup ID took it
//   packs/manifest-ID                   what backup ID needs: one line per pack,
//                                       "name size sha256 shared|own", after a first line
//                                       "medvfs-pack-manifest 1"; written last, durably
// The bytes are copied as they are (sealed; never decrypted). The records of backup ID refer
// only to pack bytes that were durable before the copy started, so every byte they need is in
// the copy (a later append is just an orphan there).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <vector>

#include "store/engine/pack_store.h"
#include "store/status.h"

namespace medvfs::store {

// Copies what backup `id` needs of `packs` into dest/packs/. The packs taking appends are
// sealed first (whatever their size), so every pack the records refer to is immutable and a
// later backup copies only the packs sealed since: incremental by construction. A pack that
// could not be sealed has its durable prefix copied for this backup alone. *new_bytes counts
// the bytes copied (shared packs already there are not), *total_bytes what the backup needs.
// kBusy if `cancelled` (may be empty) returned true: then nothing of backup `id` is left.
Status BackupPacks(PackStore& packs, const std::filesystem::path& dest, uint32_t id,
                   const std::function<bool()>& cancelled, uint64_t* new_bytes,
                   uint64_t* total_bytes);

// Re-reads every pack backup `id` needs and checks its size and SHA-256; kCorruption naming
// the file on a mismatch or a missing file. Ok for a backup without a manifest (made before
// packs: its records hold its chunks).
Status VerifyBackupPacks(const std::filesystem::path& dest, uint32_t id);

// Copies the packs of backup `id` into archive_dir/packs/ (created), checking them as they are
// copied.
Status RestoreBackupPacks(const std::filesystem::path& dest, uint32_t id,
                          const std::filesystem::path& archive_dir);

// Removes the pack copies no backup of `kept` needs any more (after old backups were purged).
void PruneBackupPacks(const std::filesystem::path& dest, const std::vector<uint32_t>& kept);

}  // namespace medvfs::store
