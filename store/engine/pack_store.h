// PackStore: the files that hold content chunks, in the archive's packs/ directory.
// Internal to store/.
//
// Chunks are appended to pack files (byte layout: pack_format.h) and never changed in place.
// A pack takes appends until it reaches the seal size; then a trailer listing its entries is
// appended, the file is synced, and it is immutable from then on (the unit that backups copy,
// that garbage collection will rewrite and that an S3 tier uploads). Each writer (one file
// being written) appends to a pack of its own while it can, so the chunks of a file lie in
// file order and a cold sequential read is a sequential read of the disk.
//
// Durability: an appended entry is durable only after Sync. The chunk index (ChunkStore) refers
// to an entry only once it is durable, so after a crash the entries past the last durable
// point of a pack are either torn (cut off at the next open) or whole but unreferenced
// (orphans: counted, kept, and reclaimed by garbage collection).
//
// All file I/O goes through RocksDB's FileSystem of the archive's Env, so the power-loss tests
// that drop unsynced RocksDB writes drop unsynced pack bytes the same way.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/crypto/crypto.h"
#include "store/engine/pack_format.h"
#include "store/engine/remote_packs.h"
#include "store/status.h"

namespace rocksdb {
class Env;
class FileSystem;
}  // namespace rocksdb

namespace medvfs::store {

// Where a chunk's entry is: pack number (from 1) and the entry's offset and length.
struct PackLocation {
  uint64_t pack = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
  uint64_t end() const { return offset + length; }
};

// A pack is sealed once appends take it to this size: 64 MiB.
inline constexpr uint64_t kDefaultPackSealBytes = uint64_t{64} << 20;

struct PackStoreOptions {
  // Seal a pack once it holds this many bytes. Default: kDefaultPackSealBytes. Tests use less.
  uint64_t seal_bytes = kDefaultPackSealBytes;
  // Nothing is written: no recovery cut, no appends (verify, a read-only open).
  bool read_only = false;
  // The Env whose FileSystem does the I/O; null for the default.
  rocksdb::Env* env = nullptr;
  // At most this many packs take appends at once; writers beyond share them. Default: 4.
  size_t max_open_packs = 4;
  // Where a sealed pack whose file is not in the directory is read (the S3 tier: a remote
  // mount, or an archive that keeps only its newest packs locally). Null: such a pack is
  // missing (kNotFound). Default: null.
  std::shared_ptr<RemotePacks> remote;
};

// What the chunk index says about a pack, for the recovery at open (PackRecord).
struct KnownPack {
  uint64_t pack = 0;
  bool sealed = false;
  // Every entry the chunk index refers to ends at or before this offset.
  uint64_t indexed_end = 0;
  // Garbage collection removed the pack (PackRecord::removed): a file still there is deleted.
  bool removed = false;
};

// What the recovery at open found in a pack that was still taking appends.
struct RecoveredPack {
  uint64_t pack = 0;
  uint64_t end = 0;             // the pack's length after recovery
  uint32_t orphan_entries = 0;  // whole entries past indexed_end (the index has none of them)
  uint64_t orphan_bytes = 0;
  uint64_t cut_bytes = 0;       // torn bytes past the last whole entry, cut off (or, read-only,
                                // ignored)
  bool sealed_on_disk = false;  // a valid trailer was found (sealed, record not yet updated)
};

class PackStore {
 public:
  // Opens (creating if missing, unless read_only) `dir` (the archive's packs/ directory).
  // Packs the index knows as sealed are taken as they are; every other pack file (still taking
  // appends, or unknown to the index: created just before a crash) is read from its indexed
  // end: whole, authentic entries are kept (orphans), a torn tail is cut off, and the pack
  // takes appends again. *recovered lists what that found. The file of a pack the index knows
  // as removed (garbage collection was stopped between recording that and deleting it) is
  // deleted; no pack number the index knows is used again.
  static StatusOr<std::unique_ptr<PackStore>> Open(const std::filesystem::path& dir,
                                                   const SecretKey& seal_key,
                                                   const PackStoreOptions& options,
                                                   const std::vector<KnownPack>& known,
                                                   std::vector<RecoveredPack>* recovered);
  ~PackStore();
  PackStore(const PackStore&) = delete;
  PackStore& operator=(const PackStore&) = delete;

  // Appends one chunk's entry for `writer` (0: no writer in particular). Not durable until
  // Sync. A failed append leaves the pack as it was (the partial entry is cut off) or, when
  // even that fails, takes the pack out of use until the next open recovers it.
  Status Append(uint64_t writer, const ChunkId& id, uint32_t plain_length, uint8_t encoding,
                std::string_view payload, PackLocation* at);
  // The writer is done: its pack may go to another writer.
  void EndWriter(uint64_t writer);
  // Makes every entry appended before the call durable: one fdatasync per pack with new
  // bytes. Concurrent calls take turns (ChunkStore also groups concurrent commits into one).
  Status Sync();
  // Seals every pack that takes appends and holds an entry, whatever its size (a backup: see
  // store/archive/pack_backup.h); later appends go to new packs. Returns the first failure
  // (that pack is left unsealed and taken out of use).
  Status SealAll();
  // Seals pack `pack` if it takes appends and holds an entry (garbage collection, to rewrite
  // a pack whose garbage would otherwise wait until it fills up); nothing otherwise.
  Status Seal(uint64_t pack);
  // The offset up to which pack `pack` is durable (UINT64_MAX when all of it is).
  uint64_t DurableEnd(uint64_t pack) const;
  // Packs sealed since the last call, with their final sizes (for their PackRecords).
  std::vector<std::pair<uint64_t, uint64_t>> TakeSealed();

  // Reads the entry at `at` and returns its payload once it authenticates and its header
  // matches `id`; kCorruption naming nothing of the content otherwise, kNotFound when the pack
  // file does not exist (garbage collection may have moved the entry since the caller looked
  // it up: the caller looks again).
  Status Read(const PackLocation& at, const ChunkId& id, PackEntryInfo* info, std::string* payload);
  // Reads [offset, offset + length) of a pack as raw bytes (read-ahead of several entries).
  Status ReadRaw(uint64_t pack, uint64_t offset, size_t length, std::string* bytes);
  // Authenticates one entry found inside bytes ReadRaw returned.
  Status OpenEntry(uint64_t pack, const PackEntryInfo& info, std::string_view bytes,
                   std::string* payload) const;

  // Deletes the file of a pack garbage collection emptied (its record already says removed,
  // and no log still to be replayed names it: see KvStore::FlushAll), and syncs the
  // directory. Readers that have the file open finish their reads.
  Status RemovePack(uint64_t pack);

  // Deletes the local file of sealed pack `pack`, which options.remote holds (an archive that
  // keeps only its newest packs locally): later reads go to the remote. The caller checks
  // that the remote holds the pack.
  Status DropLocalCopy(uint64_t pack);
  // The number the next new pack will get: every pack below it existed before the call.
  uint64_t NextPackNumber() const;
  // True when the pack's file is in the directory.
  bool HasLocalFile(uint64_t pack) const;
  const std::shared_ptr<RemotePacks>& remote() const { return options_.remote; }

  // --- Integrity and backup ---
  // The pack files in the directory, by number, with their sizes.
  StatusOr<std::map<uint64_t, uint64_t>> ListFiles() const;
  // Reads a whole pack and calls visit for every entry in order, with its authenticated
  // payload (or the status of a damaged one: then the walk stops after it). For a sealed
  // pack the trailer is checked against the entries too. kCorruption for damage to the
  // header, trailer or footer.
  struct ScanResult {
    bool sealed = false;
    uint64_t entries_end = 0;  // where the entries end (the trailer, or the file's end)
    uint64_t tail_bytes = 0;   // bytes past the last whole entry of an unsealed pack
  };
  Status ScanPack(uint64_t pack,
                  const std::function<void(const PackEntryInfo& info, const Status& status,
                                           std::string_view payload)>& visit,
                  ScanResult* result);
  std::filesystem::path dir() const { return dir_; }
  // The size at which a pack is sealed.
  uint64_t seal_bytes() const { return options_.seal_bytes; }

 private:
  struct OpenPack;
  PackStore(std::filesystem::path dir, const SecretKey& seal_key, const PackStoreOptions& options);
  std::string PathOf(uint64_t pack) const;
  Status Recover(const KnownPack& known, RecoveredPack* out);
  StatusOr<std::shared_ptr<OpenPack>> PackFor(uint64_t writer);
  Status NewPack(std::shared_ptr<OpenPack>* made);
  Status SealLocked(OpenPack& pack);
  // Seals `pack` if it takes appends and holds an entry; takes it out of use if that fails.
  Status SealIfTakingAppends(const std::shared_ptr<OpenPack>& pack);
  void Retire(const std::shared_ptr<OpenPack>& pack);
  Status ReaderFor(uint64_t pack, std::shared_ptr<class PackReader>* reader);
  Status SyncDirectory(const std::string& what);

  std::filesystem::path dir_;
  SecretKey seal_key_;
  PackStoreOptions options_;
  std::shared_ptr<rocksdb::FileSystem> fs_;

  // Held across a whole Sync, so that a Sync returns only once every append before it is
  // durable, also those a concurrent Sync took from unsynced_. Lock order: before any
  // OpenPack's mu; nothing that calls RocksDB is done under it (a flush's hook takes it).
  std::mutex sync_mu_;
  // Lock order: an OpenPack's mu before mu_ (never mu_ and then a pack's mu).
  mutable std::mutex mu_;
  uint64_t next_pack_ = 1;                                          // GUARDED_BY(mu_)
  std::vector<std::shared_ptr<OpenPack>> open_;                     // GUARDED_BY(mu_)
  std::unordered_map<uint64_t, std::shared_ptr<OpenPack>> leases_;  // writer -> pack; mu_
  std::vector<std::pair<uint64_t, uint64_t>> sealed_;               // GUARDED_BY(mu_)
  // Packs whose appends are not all durable yet (open ones, and ones sealed or retired
  // since the last Sync). GUARDED_BY(mu_).
  std::vector<std::shared_ptr<OpenPack>> unsynced_;
  // Pack -> the offset up to which it is durable, for the unsealed packs this process
  // created or recovered. GUARDED_BY(mu_).
  std::map<uint64_t, uint64_t> durable_end_;

  mutable std::mutex readers_mu_;
  std::map<uint64_t, std::shared_ptr<class PackReader>> readers_;  // GUARDED_BY(readers_mu_)
};

}  // namespace medvfs::store
