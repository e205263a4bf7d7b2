// KvStore: the only door to RocksDB. Two column families:
//   meta   — small sealed records (inodes, directory entries, histories, versions, extents)
//   chunks — sealed, compressed content chunks, kept in RocksDB blob files
// Values arrive here already encrypted; RocksDB never sees plaintext or keys.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace medvfs::store {

enum class Family : uint8_t { kMeta = 0, kChunks = 1 };

// A set of changes applied atomically by KvStore::Write.
class KvBatch {
 public:
  KvBatch();
  ~KvBatch();
  KvBatch(const KvBatch&) = delete;
  KvBatch& operator=(const KvBatch&) = delete;
  void Put(Family family, std::string_view key, std::string_view value);
  void Delete(Family family, std::string_view key);
  // Marks the batch as failed (e.g. a value could not be sealed): KvStore::Write then refuses
  // it with this status and writes nothing. The first failure is kept.
  void Fail(Status status);
  // Ok unless Fail was called.
  const Status& status() const;
  size_t count() const;
  size_t byte_size() const;
  // Calls visit for every operation in order (value is empty for a delete).
  void ForEach(const std::function<void(Family family, bool is_delete, std::string_view key,
                                        std::string_view value)>& visit) const;

 private:
  friend class KvStore;
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

// Two full memory tables (32 MiB each) to flush, plus room for the log, manifest and compaction.
inline constexpr uint64_t kDefaultReservedBytes = 96ull << 20;

struct KvOpenOptions {
  bool create = false;     // create the database (fails if it exists)
  bool read_only = false;  // open without writing anything
  // The write-ahead log is always replayed strictly first. If that fails, the log is read
  // again twice, read-only, to tell a torn tail (the end of the last log, cut by a crash or
  // power loss: nothing valid follows the cut; it is dropped, as it always was) from damage
  // (valid records follow a damaged one: committed changes would be lost). Damage fails the
  // open with kCorruption naming the log file, and nothing is changed on disk, unless this is
  // set: then the log is replayed up to the damage and the rest is dropped (for a writable
  // open, for good). Default: false.
  bool accept_wal_damage = false;
  // Free space kept, in three tiers: data writes (content chunks, batches of 64 KiB or more)
  // are refused with kNoSpace while the file system holding the database would have less than
  // this much free space left after them; other changes (creates, mkdir, chmod, metadata)
  // while it would have less than half; deletions, renames and audit entries (a few hundred
  // bytes each) while it would have less than a quarter. Free space counts the memory tables
  // not yet flushed as used (a flush writes them out again). RocksDB itself then never runs
  // out of space (it needs room to flush and compact), a full disk costs the writer ENOSPC
  // rather than the database its ability to write, and a user can still delete to make room
  // and every read can still be audited. Default: kDefaultReservedBytes.
  uint64_t reserved_bytes = kDefaultReservedBytes;
  // The environment RocksDB does its file I/O through; null for the default. Only tests set
  // it (fault injection: dropping writes not yet synced, failing chosen writes).
  rocksdb::Env* env = nullptr;
  // Called while the write-ahead log is replayed at open, for every record a logged write put
  // in the meta family; false stops the replay at that write: it and every later write are
  // dropped, as a torn tail is. The chunk store uses it to keep a prefix of the commits when
  // a power loss took pack bytes that logged index records refer to (see
  // ChunkStore::ReplayCheck). Null: every record is kept.
  std::function<bool(std::string_view key, std::string_view value)> replay_check;
};

// A table (.sst) or blob (.blob) file of the database.
struct KvFile {
  std::string name;  // e.g. "000012.sst", relative to the database directory
  uint64_t size = 0;
  bool blob = false;
};

class KvStore {
 public:
  // kBusy if another process holds the database open for writing.
  // True when the database at `dir` is open for writing, in this process or another (its
  // LOCK file is held). Safe to ask beside this process's own writable open, which probing the
  // LOCK file directly is not: closing any descriptor of it drops the process's fcntl lock.
  static bool LockedForWriting(const std::filesystem::path& dir);
  static StatusOr<std::unique_ptr<KvStore>> Open(const std::filesystem::path& dir,
                                                 const KvOpenOptions& options);
  ~KvStore();

  // What the open found in the write-ahead log: empty when it replayed strictly; otherwise
  // "tail cut: ..." for a torn tail, or the damage that accept_wal_damage let through.
  const std::string& wal_recovery_note() const;
  // True when the open had to drop records that follow damage (accept_wal_damage).
  bool wal_damage_accepted() const;
  // True when replay_check stopped the replay (the note says from which log).
  bool replay_stopped() const;

  // kNotFound when absent.
  // Every read checks RocksDB's block (and blob) checksums: a damaged table block becomes
  // kCorruption instead of being parsed (an unchecked damaged block can abort the process).
  // GetWithChecksums is the same; it stays for the callers that name the check.
  Status Get(Family family, std::string_view key, std::string* value) const;
  Status GetWithChecksums(Family family, std::string_view key, std::string* value) const;
  // True if the key exists.
  StatusOr<bool> Contains(Family family, std::string_view key) const;
  // sync: the write-ahead log is fsync'ed before returning (a durable commit).
  // kNoSpace when the disk is too full (see KvOpenOptions::reserved_bytes). After a write
  // RocksDB failed (an I/O error), every later write and SyncWal fails with that error until
  // the store is reopened; reads go on working.
  Status Write(KvBatch& batch, bool sync);
  Status Put(Family family, std::string_view key, std::string_view value, bool sync);
  // Calls visit(key, value) for every key starting with prefix, in key order, until it
  // returns false.
  Status Scan(Family family, std::string_view prefix,
              const std::function<bool(std::string_view key, std::string_view value)>& visit) const;
  // Like Scan, backwards (largest key first).
  Status ScanReverse(
      Family family, std::string_view prefix,
      const std::function<bool(std::string_view key, std::string_view value)>& visit) const;
  // The last key <= `key` that starts with `prefix`; kNotFound if none.
  Status SeekLast(Family family, std::string_view prefix, std::string_view key,
                  std::string* found_key, std::string* value) const;
  // Makes every write so far durable. Concurrent callers share one sync: a caller returns
  // as soon as a sync that started after its writes has finished.
  Status SyncWal();
  // Writes the memory tables of both families into table files and waits for it: afterwards
  // no write-ahead log still to be replayed holds a write made before the call. Garbage
  // collection does this before it deletes a pack file, so that the replay after a crash
  // never meets an old chunk index record naming a pack that is gone (see
  // ChunkStore::ReplayCheck).
  Status FlushAll();
  // FlushAll, then rewrites every table file of both families: what deleted records held
  // leaves the disk (purge), instead of waiting for RocksDB's own compactions to reach it.
  Status CompactAll();
  // `hook` runs before anything logged becomes durable: before each sync of the log (SyncWal,
  // a Write with sync), and before each flush of memory tables into table files. A failed
  // hook fails that sync (a flush goes on: RocksDB cannot be stopped there; the failure is
  // logged). The chunk store syncs the packs that logged index records refer to, so that a
  // durable record never points at pack bytes a power loss can take. Set once, after Open.
  void SetBeforeDurable(std::function<Status()> hook);
  // True while a write is in the log that no sync has covered yet.
  bool HasUnsyncedWrites() const;
  // RocksDB's sequence number of the last write: it grows with every write (the S3 tier
  // tells from it whether the archive changed since its last snapshot).
  uint64_t LatestSequence() const;
  // Ok if `bytes` of data may be written beside the database (pack files, on the same file
  // system) without taking it below the reserve of KvOpenOptions::reserved_bytes; kNoSpace
  // otherwise, or the error of an earlier failed write (see Write).
  Status CheckDataWrite(size_t bytes) const { return CheckWritable(bytes, 1); }
  // Approximate live bytes of a family on disk.
  uint64_t ApproximateSize(Family family) const;

  // --- Integrity (medvfs verify) ---
  // The live table and blob files of both families.
  std::vector<KvFile> LiveFiles() const;
  // Checks every block checksum of one table file; kCorruption naming the file on a mismatch.
  // (A blob file has no block checksums: the checksum of each blob record is checked when it
  // is read, and a mismatch makes the read fail with kCorruption.)
  Status VerifyTableFile(const KvFile& file) const;

  // --- Backup (kv_backup.cc) ---
  // Backups of the database in a backup directory, by RocksDB's BackupEngine: table and blob
  // files are shared between the backups of one directory (each is copied once, so a backup
  // after the first copies only what is new), and every backed-up file carries a checksum.
  // The files are copied as they are: sealed values, never decrypted.
  struct BackupOptions {
    // Stored with the backup, returned by ListBackups (at most 64 KiB). Default: empty.
    std::string metadata;
    // Called as files are copied, with the bytes copied so far (about every 4 MiB), from the
    // copying thread. Default: none.
    std::function<void(uint64_t bytes_copied)> progress;
    // Polled as files are copied; when it returns true the backup stops and CreateBackup
    // returns kBusy (nothing half-made is left visible: the next backup or list cleans it up).
    // Default: none.
    std::function<bool()> cancelled;
    // After a successful backup, delete the oldest backups of the directory so that this many
    // remain (0: keep them all). Default: 0.
    uint32_t keep = 0;
  };
  struct BackupInfo {
    uint32_t id = 0;         // 1, 2, 3 ... in the order made
    int64_t time_s = 0;      // when it was made (Unix seconds)
    uint64_t size = 0;       // bytes of all its files (shared ones included)
    uint64_t new_bytes = 0;  // CreateBackup only: bytes this backup copied (not shared)
    uint32_t files = 0;
    std::string metadata;
  };
  // Takes a consistent backup of the open database, while it is in use: the state of every
  // write acknowledged before the call (the memory tables are flushed first; then table and
  // blob files, the manifest, and the write-ahead log up to that point). Creates backup_dir
  // (0700) if needed.
  // REQUIRES: backup_dir lies outside the database directory; writable open.
  Status CreateBackup(const std::filesystem::path& backup_dir, const BackupOptions& options,
                      BackupInfo* created);
  // The good backups of a directory, oldest first (kNotFound when it holds none).
  static StatusOr<std::vector<BackupInfo>> ListBackups(const std::filesystem::path& backup_dir);
  // Re-reads every file of a backup and checks its size and checksum; kCorruption naming the
  // file on a mismatch, kNotFound for an unknown id.
  static Status VerifyBackup(const std::filesystem::path& backup_dir, uint32_t id);
  // Restores backup `id` into db_dir (which must not exist or be empty), checking checksums
  // as it copies; a database KvStore::Open opens. On failure db_dir may hold part of the
  // files: the caller removes it.
  static Status RestoreBackup(const std::filesystem::path& backup_dir, uint32_t id,
                              const std::filesystem::path& db_dir);
  // Deletes backup `id` (the files only it uses go); for a backup whose pack files could not
  // be copied. kNotFound for an unknown id.
  static Status DeleteBackup(const std::filesystem::path& backup_dir, uint32_t id);

 private:
  struct Rep;
  explicit KvStore(std::unique_ptr<Rep> rep);
  // Ok if a write of `bytes` may go ahead (no earlier failure, enough free space above the
  // reserve divided by `tier`: 1 data, 2 other changes, 4 deletions, renames and audit
  // entries; see KvOpenOptions::reserved_bytes).
  Status CheckWritable(size_t bytes, unsigned tier) const;
  Status GetValue(Family family, std::string_view key, bool verify_checksums,
                  std::string* value) const;
  // Passes `status` through; the first failure stops all later writes (see Write).
  Status NoteWriteResult(Status status);
  std::unique_ptr<Rep> rep_;
};

}  // namespace medvfs::store
