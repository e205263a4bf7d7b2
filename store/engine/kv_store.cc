#include "store/engine/kv_store.h"

#include "store/engine/kv_store_rep.h"
#include "store/engine/record_format.h"
#include "store/log.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_manager.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/table.h>
#include <rocksdb/wal_filter.h>
#include <rocksdb/write_batch.h>

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

namespace medvfs::store {
namespace {

constexpr const char* kChunksFamilyName = "chunks";

// Said when the database is open for writing elsewhere: in another process (a mount), or by
// another KvStore of this process.
constexpr const char* kBusyMessage = "the archive is open in another process (mounted?)";

// RocksDB's status in our codes, by its code and subcode (env/io_posix.h's IOError gives ENOSPC
// the subcode kNoSpace and ENOENT kPathNotFound; any other errno is a plain IO error with its
// strerror in the text). The text is never read: it holds paths, and "lock" or "No space" in a
// path would decide the outcome. What a code cannot tell (who holds the LOCK file, why a
// directory cannot be written) the callers ask the system (see KvStore::Open).
Status FromRocks(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return Status::Ok();
  std::string message = std::string(what) + ": " + s.ToString();
  if (s.IsNotFound()) return Status(Code::kNotFound, message);
  if (s.IsCorruption()) return Status::Corruption(message);
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kNoSpace) {
    return Status(Code::kNoSpace, message);
  }
  return Status::IoError(message);
}

// The process's registry of the database directories it has open for writing, by device and
// inode (so that no second name, symbolic link or bind mount, gets past it). RocksDB keeps such
// a set too, but by name, and tells of it only in an error's text; and a probe of a LOCK file
// this process holds would release its lock (an fcntl lock goes with the close of any
// descriptor of the file), so the registry is asked first and the probe only after.
std::mutex open_dirs_mu;                  // a leaf: nothing else is locked while it is held
std::set<std::string>* open_dirs_set() {  // guarded by open_dirs_mu
  static auto* dirs = new std::set<std::string>;
  return dirs;
}

// "dev:ino" of an existing directory; its absolute path while it does not exist (created by
// the open, after which DirClaim::Settle switches to the inode).
std::string DirKey(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  }
  return std::filesystem::absolute(dir).lexically_normal().string();
}

// Holds a directory's place in the registry until Keep() hands it to the store, or ends.
class DirClaim {
 public:
  DirClaim() = default;
  DirClaim(const DirClaim&) = delete;
  DirClaim& operator=(const DirClaim&) = delete;
  ~DirClaim() {
    if (!key_.empty()) Release(key_);
  }
  // False when the directory is claimed already (open for writing in this process).
  bool Take(const std::filesystem::path& dir) { return Insert(DirKey(dir)); }
  // Once the directory exists: claims it by inode. False when that is claimed already.
  bool Settle(const std::filesystem::path& dir) {
    std::string key = DirKey(dir);
    if (key == key_) return true;
    const std::string old = std::exchange(key_, std::string());
    const bool taken = Insert(std::move(key));
    Release(old);
    return taken;
  }
  std::string Keep() { return std::exchange(key_, std::string()); }
  static void Release(const std::string& key) {
    std::lock_guard lock(open_dirs_mu);
    open_dirs_set()->erase(key);
  }

 private:
  bool Insert(std::string key) {
    std::lock_guard lock(open_dirs_mu);
    if (!open_dirs_set()->insert(key).second) return false;
    key_ = std::move(key);
    return true;
  }

  std::string key_;
};

// True when another process holds the database's LOCK file (RocksDB takes it with fcntl
// F_SETLK for every writable open; F_GETLK never reports this process's own locks). Only called
// when the registry says this process does not hold it (see open_dirs_set).
bool LockHeldByOtherProcess(const std::filesystem::path& dir) {
  const int fd = ::open((dir / "LOCK").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  const bool held = ::fcntl(fd, F_GETLK, &lock) == 0 && lock.l_type != F_UNLCK;
  ::close(fd);
  return held;
}

}  // namespace

bool KvStore::LockedForWriting(const std::filesystem::path& dir) {
  {
    std::lock_guard lock(open_dirs_mu);
    if (open_dirs_set()->contains(DirKey(dir))) return true;
  }
  return LockHeldByOtherProcess(dir);
}

namespace {

// Why this process may not use `path` as `mode` asks (R_OK, W_OK, X_OK), by the effective
// credentials (AT_EACCESS: those RocksDB's system calls run with): kReadOnly on a read-only
// file system, kAccess without permission, ok when neither holds (or the path is missing).
Code AccessFault(const std::filesystem::path& path, int mode) {
  if (::faccessat(AT_FDCWD, path.c_str(), mode, AT_EACCESS) == 0) return Code::kOk;
  if (errno == EROFS) return Code::kReadOnly;
  if (errno == EACCES || errno == EPERM) return Code::kAccess;
  return Code::kOk;
}

// What a failed open of the database at `dir` means, asked of the system where RocksDB's code
// cannot tell (it reports a held lock, a read-only file system and a denied permission alike as
// an IO error).
Status FromOpenFailure(const rocksdb::Status& s, const std::filesystem::path& dir, bool read_only) {
  if (!s.IsIOError() || s.IsNoSpace() || s.IsPathNotFound()) {
    return FromRocks(s, "opening the database");
  }
  if (!read_only && LockHeldByOtherProcess(dir)) return Status(Code::kBusy, kBusyMessage);
  const std::string message = "opening the database: " + s.ToString();
  const int dir_mode = read_only ? R_OK | X_OK : R_OK | W_OK | X_OK;
  Code fault = AccessFault(dir, dir_mode);
  if (fault == Code::kOk && !read_only) fault = AccessFault(dir / "LOCK", R_OK | W_OK);
  if (fault == Code::kOk) fault = AccessFault(dir / "CURRENT", R_OK);
  if (fault == Code::kReadOnly) return Status::ReadOnly(message);
  if (fault == Code::kAccess) return Status(Code::kAccess, message);
  return Status::IoError(message);
}

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

}  // namespace

// A batch records its operations and is translated at Write, so that it needs no column
// family handle (and no RocksDB type shows in the header).
struct KvBatch::Rep {
  struct Op {
    Family family;
    bool is_delete;
    std::string key;
    std::string value;
  };
  std::vector<Op> ops;
  size_t bytes = 0;
  Status failure;
};

KvBatch::KvBatch() : rep_(std::make_unique<Rep>()) {}
KvBatch::~KvBatch() = default;
size_t KvBatch::count() const { return rep_->ops.size(); }
size_t KvBatch::byte_size() const { return rep_->bytes; }

void KvBatch::Fail(Status status) {
  if (rep_->failure.ok() && !status.ok()) rep_->failure = std::move(status);
}

const Status& KvBatch::status() const { return rep_->failure; }

void KvBatch::ForEach(const std::function<void(Family family, bool is_delete, std::string_view key,
                                               std::string_view value)>& visit) const {
  for (const auto& op : rep_->ops) visit(op.family, op.is_delete, op.key, op.value);
}

void KvBatch::Put(Family family, std::string_view key, std::string_view value) {
  rep_->ops.push_back({family, false, std::string(key), std::string(value)});
  rep_->bytes += key.size() + value.size();
}

void KvBatch::Delete(Family family, std::string_view key) {
  rep_->ops.push_back({family, true, std::string(key), {}});
  rep_->bytes += key.size();
}

namespace {

rocksdb::ColumnFamilyOptions MetaFamilyOptions(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions options;
  // Values are sealed (random-looking): compressing them only costs CPU.
  options.compression = rocksdb::kNoCompression;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  options.write_buffer_size = 32 << 20;
  return options;
}

rocksdb::ColumnFamilyOptions ChunkFamilyOptions(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions options = MetaFamilyOptions(cache);
  // Chunks are already compressed and sealed; keep them out of the LSM tree (integrated
  // BlobDB) so compactions move only small blob references.
  options.enable_blob_files = true;
  options.min_blob_size = 1024;
  options.blob_compression_type = rocksdb::kNoCompression;
  // Chunks are never deleted yet (no prune), so there is no garbage to collect; collection
  // would only rewrite the oldest blob files during compactions.
  options.enable_blob_garbage_collection = false;
  options.blob_file_size = 256 << 20;
  options.write_buffer_size = 32 << 20;
  return options;
}

}  // namespace

KvStore::KvStore(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
KvStore::~KvStore() {
  // The directory is free for another writable open once the database is closed.
  const std::string claimed = std::move(rep_->claimed_dir);
  rep_.reset();
  if (!claimed.empty()) DirClaim::Release(claimed);
}

namespace {

struct OpenedDb {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  void Close() {
    if (db == nullptr) return;
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    handles.clear();
    db->Close().PermitUncheckedError();
    delete db;
    db = nullptr;
  }
};

rocksdb::Status OpenDb(const std::filesystem::path& dir, rocksdb::DBOptions db_options,
                       rocksdb::WALRecoveryMode mode, bool read_only,
                       const std::vector<rocksdb::ColumnFamilyDescriptor>& families,
                       OpenedDb* out) {
  db_options.wal_recovery_mode = mode;
  if (read_only) {
    return rocksdb::DB::OpenForReadOnly(db_options, dir.string(), families, &out->handles,
                                        &out->db);
  }
  return rocksdb::DB::Open(db_options, dir.string(), families, &out->handles, &out->db);
}

// The write-ahead log files of a database directory, in order ("000012.log").
std::string WalFileNames(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.ends_with(".log") && name != "LOG") names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  std::string joined;
  for (const auto& name : names) joined += (joined.empty() ? "" : ", ") + name;
  return joined.empty() ? std::string("(none left)") : joined;
}

// What a failed strict replay means. RocksDB's strict mode (kAbsoluteConsistency) refuses any
// flaw in the log, also the torn last record a crash or power cut leaves, which is normal.
// The log is therefore replayed twice more, read-only (nothing on disk changes): up to the
// first flaw (kPointInTimeRecovery, what a lenient open keeps) and past every flaw
// (kSkipAnyCorruptedRecords). If skipping reaches further, valid records follow the flaw:
// damage, and a lenient open would drop committed changes with it. If not, only the tail
// is torn.
struct WalCheck {
  rocksdb::Status status;  // not ok: the database does not open even leniently
  bool damaged = false;
  uint64_t kept_seq = 0;  // last sequence number a lenient replay keeps
  uint64_t all_seq = 0;   // last sequence number of any valid record
};

WalCheck CheckWal(const std::filesystem::path& dir, const rocksdb::DBOptions& db_options,
                  const std::vector<rocksdb::ColumnFamilyDescriptor>& families) {
  WalCheck check;
  // Skipping first: on a database in use (verify beside a mount) the log only grows between
  // the two replays, which can make the lenient one reach further, never the other way.
  OpenedDb skipping;
  rocksdb::Status s = OpenDb(dir, db_options, rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords,
                             /*read_only=*/true, families, &skipping);
  if (s.ok()) check.all_seq = skipping.db->GetLatestSequenceNumber();
  skipping.Close();
  OpenedDb lenient;
  check.status = OpenDb(dir, db_options, rocksdb::WALRecoveryMode::kPointInTimeRecovery,
                        /*read_only=*/true, families, &lenient);
  if (check.status.ok()) check.kept_seq = lenient.db->GetLatestSequenceNumber();
  lenient.Close();
  if (!check.status.ok()) {
    // Lenient replay fails (e.g. "SST file is ahead of WALs"): damage if skipping opens.
    if (s.ok()) {
      check.status = rocksdb::Status::OK();
      check.damaged = true;
    }
    return check;
  }
  check.damaged = !s.ok() || check.all_seq > check.kept_seq;
  return check;
}

// Beside the database directory DB, "DB-log-before-recovery" holds a copy of the write-ahead
// logs as they were before the last writable open cut a torn tail (named in
// archive_high_water.cc's message and in medvfs-format(5)).
constexpr char kLogCopySuffix[] = "-log-before-recovery";

std::filesystem::path LogCopyDir(const std::filesystem::path& dir) {
  return dir.parent_path() / (dir.filename().string() + kLogCopySuffix);
}

void KeepLogsBeforeCut(const std::filesystem::path& dir) {
  const std::filesystem::path keep = LogCopyDir(dir);
  std::error_code ec;
  std::filesystem::remove_all(keep, ec);
  if (::mkdir(keep.c_str(), 0700) != 0) {
    MEDVFS_LOG_ERROR(
        "the write-ahead log could not be copied before its torn end is cut "
        "(errno %d)",
        errno);
    return;
  }
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (it->path().extension() != ".log") continue;
    std::error_code copy_ec;
    std::filesystem::copy_file(it->path(), keep / it->path().filename(), copy_ec);
    if (copy_ec) {
      MEDVFS_LOG_ERROR("the write-ahead log could not be copied before its torn end is cut: %s",
                       copy_ec.message().c_str());
      std::filesystem::remove_all(keep, copy_ec);
      return;
    }
  }
}

// KvOpenOptions::replay_check as RocksDB's WAL filter: the first logged write with a record
// the check refuses stops the replay (that write and all after it are dropped). Before the
// first stop of a writable open the logs are copied aside (KeepLogsBeforeCut), as for a cut
// tail, since the recovery then deletes them.
class ReplayCheckFilter final : public rocksdb::WalFilter {
 public:
  ReplayCheckFilter(std::function<bool(std::string_view, std::string_view)> check,
                    std::filesystem::path dir, bool read_only)
      : check_(std::move(check)), dir_(std::move(dir)), read_only_(read_only) {}

  WalProcessingOption LogRecordFound(unsigned long long /*log_number*/,
                                     const std::string& log_file_name,
                                     const rocksdb::WriteBatch& batch,
                                     rocksdb::WriteBatch* /*new_batch*/,
                                     bool* /*batch_changed*/) override {
    Visitor visitor(check_);
    if (!batch.Iterate(&visitor).ok() || !visitor.refused) {
      return WalProcessingOption::kContinueProcessing;
    }
    if (stopped_log_.empty()) {
      stopped_log_ = std::filesystem::path(log_file_name).filename().string();
      if (!read_only_ && !logs_kept_) {
        KeepLogsBeforeCut(dir_);
        logs_kept_ = true;
      }
    }
    return WalProcessingOption::kStopReplay;
  }
  const char* Name() const override { return "medvfs-replay-check"; }
  // The log whose replay the check stopped; empty if it never did.
  const std::string& stopped_log() const { return stopped_log_; }

 private:
  struct Visitor final : public rocksdb::WriteBatch::Handler {
    explicit Visitor(const std::function<bool(std::string_view, std::string_view)>& record_check)
        : check(record_check) {}
    rocksdb::Status PutCF(uint32_t family, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
      if (family == static_cast<uint32_t>(Family::kMeta) &&
          !check(std::string_view(key.data(), key.size()),
                 std::string_view(value.data(), value.size()))) {
        refused = true;
      }
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status PutBlobIndexCF(uint32_t, const rocksdb::Slice&,
                                   const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    void LogData(const rocksdb::Slice&) override {}
    bool Continue() override { return !refused; }
    const std::function<bool(std::string_view, std::string_view)>& check;
    bool refused = false;
  };

  std::function<bool(std::string_view, std::string_view)> check_;
  std::filesystem::path dir_;
  bool read_only_;
  bool logs_kept_ = false;
  std::string stopped_log_;
};

// Runs KvStore::SetBeforeDurable's hook before every flush of memory tables: a flushed table
// file is durable, so the pack bytes its index records name must be first.
class BeforeFlushListener final : public rocksdb::EventListener {
 public:
  explicit BeforeFlushListener(std::function<Status()> before_flush)
      : before_flush_(std::move(before_flush)) {}
  void OnFlushBegin(rocksdb::DB* /*db*/, const rocksdb::FlushJobInfo& /*info*/) override {
    Status s = before_flush_();
    if (!s.ok()) {
      MEDVFS_LOG_ERROR("before a flush of the database: %s", s.ToString().c_str());
    }
  }

 private:
  std::function<Status()> before_flush_;
};

}  // namespace

StatusOr<std::unique_ptr<KvStore>> KvStore::Open(const std::filesystem::path& dir,
                                                 const KvOpenOptions& options) {
  auto cache = rocksdb::NewLRUCache(32 << 20);
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create;
  db_options.error_if_exists = options.create;
  db_options.create_missing_column_families = options.create;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 3;
  db_options.max_total_wal_size = 256 << 20;
  // Default: true; stated because it matters: a flaw RocksDB finds in its own files (a table
  // file that fails its checks when opened, a failed write) stops it instead of going on.
  db_options.paranoid_checks = true;
  if (options.env != nullptr) db_options.env = options.env;
  // Lets RocksDB put off a compaction it has no room for, and recover by itself from running
  // out of space in a flush or compaction once room is made.
  db_options.sst_file_manager.reset(rocksdb::NewSstFileManager(db_options.env));
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, MetaFamilyOptions(cache)},
      {kChunksFamilyName, ChunkFamilyOptions(cache)},
  };
  // A second writable open in this process is refused before RocksDB is asked (see DirClaim).
  DirClaim claim;
  if (!options.read_only && !claim.Take(dir)) return Status(Code::kBusy, kBusyMessage);
  auto rep = std::make_unique<Rep>();
  rep->dir = dir;
  rep->reserved_bytes = options.reserved_bytes;
  db_options.listeners.push_back(
      std::make_shared<BeforeFlushListener>([raw = rep.get()] { return raw->RunBeforeDurable(); }));
  ReplayCheckFilter* replay_filter = nullptr;
  if (options.replay_check) {
    auto filter = std::make_unique<ReplayCheckFilter>(options.replay_check, dir, options.read_only);
    replay_filter = filter.get();
    db_options.wal_filter = replay_filter;
    rep->replay_filter = std::move(filter);
  }
  OpenedDb opened;
  // A failed strict replay changes nothing on disk: RocksDB deletes logs only after their
  // records are flushed into table files, which happens only once recovery has succeeded.
  rocksdb::Status s = OpenDb(dir, db_options, rocksdb::WALRecoveryMode::kAbsoluteConsistency,
                             options.read_only, families, &opened);
  if (!s.ok() && s.IsCorruption() && !options.create) {
    const std::string strict_error = s.ToString();
    WalCheck check = CheckWal(dir, db_options, families);
    if (!check.status.ok()) return FromRocks(check.status, "opening the database");
    const std::string logs = WalFileNames(dir);
    if (check.damaged) {
      rep->wal_note = "the write-ahead log (" + logs + ") is damaged: " +
                      (check.all_seq > check.kept_seq
                           ? std::to_string(check.all_seq - check.kept_seq) +
                                 " recorded changes follow the damage and would be lost"
                           : std::string("the records after the damage do not replay")) +
                      " (" + strict_error + ")";
      if (!options.accept_wal_damage) {
        return Status::Corruption(
            rep->wal_note +
            ". Committed versions may be in it; nothing has been changed. Restore the archive "
            "from a backup (medvfs restore-backup), or, to keep what precedes the damage and "
            "lose the rest for good, open it with --accept-wal-damage (recorded in the audit "
            "log)");
      }
      rep->wal_damage_accepted = true;
    } else {
      rep->wal_note = "tail cut: the end of the write-ahead log (" + logs +
                      ") was torn by a crash or power loss and is dropped";
      // A writable recovery flushes the logs and deletes them. Should the archive turn out
      // to have lost synced changes with the tail (its high-water mark tells), the logs as
      // they were are the evidence: one copy is kept, replaced by the next cut.
      if (!options.read_only) KeepLogsBeforeCut(dir);
    }
    opened = OpenedDb{};
    s = OpenDb(dir, db_options, rocksdb::WALRecoveryMode::kPointInTimeRecovery, options.read_only,
               families, &opened);
    if (!s.ok() && rep->wal_damage_accepted) {
      opened = OpenedDb{};
      s = OpenDb(dir, db_options, rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords,
                 options.read_only, families, &opened);
    }
  }
  if (!s.ok()) return FromOpenFailure(s, dir, options.read_only);
  if (replay_filter != nullptr && !replay_filter->stopped_log().empty()) {
    rep->replay_stopped = true;
    if (!rep->wal_note.empty()) rep->wal_note += "; ";
    rep->wal_note += "commits lost their pack bytes in a power loss: the write-ahead log (" +
                     replay_filter->stopped_log() +
                     ") is replayed up to the first of them, and it and every later change are "
                     "dropped";
  }
  rep->db = opened.db;
  rep->handles = std::move(opened.handles);
  // What the open replayed is on disk already (a writable recovery flushes it).
  rep->synced_seq = rep->db->GetLatestSequenceNumber();
  if (!options.read_only) {
    if (!claim.Settle(dir)) return Status(Code::kBusy, kBusyMessage);
    rep->claimed_dir = claim.Keep();
  }
  return std::unique_ptr<KvStore>(new KvStore(std::move(rep)));
}

const std::string& KvStore::wal_recovery_note() const { return rep_->wal_note; }
bool KvStore::replay_stopped() const { return rep_->replay_stopped; }
bool KvStore::wal_damage_accepted() const { return rep_->wal_damage_accepted; }

Status KvStore::Get(Family family, std::string_view key, std::string* value) const {
  // Chunk values are sealed with AES-256-GCM too, but skipping RocksDB's checksums there also
  // skipped them for the table blocks that lead to the value: a damaged block was then parsed
  // unchecked, and RocksDB aborted the process on it. The checksum of the blob itself is
  // checked with them (the option covers both).
  return GetValue(family, key, /*verify_checksums=*/true, value);
}

Status KvStore::GetWithChecksums(Family family, std::string_view key, std::string* value) const {
  return GetValue(family, key, /*verify_checksums=*/true, value);
}

Status KvStore::GetValue(Family family, std::string_view key, bool verify_checksums,
                         std::string* value) const {
  rocksdb::ReadOptions options;
  options.verify_checksums = verify_checksums;
  rocksdb::PinnableSlice pinned;
  auto s = rep_->db->Get(options, rep_->Handle(family), ToSlice(key), &pinned);
  if (s.IsNotFound()) return Status::NotFound("no such record");
  if (!s.ok()) return FromRocks(s, "reading a record");
  value->assign(pinned.data(), pinned.size());
  return Status::Ok();
}

StatusOr<bool> KvStore::Contains(Family family, std::string_view key) const {
  rocksdb::PinnableSlice pinned;
  auto s = rep_->db->Get(rocksdb::ReadOptions(), rep_->Handle(family), ToSlice(key), &pinned);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return FromRocks(s, "looking up a record");
  return true;
}

namespace {

constexpr size_t kDataBatchBytes = 64 << 10;

// CheckWritable reuses a look at the free space younger than this while it showed more
// than this slack above the reserve: medvfs stores well under 1 GB/s (its CPU per byte),
// so it cannot have used up 64 MiB in 20 ms. (Another process filling the disk that fast is
// caught 20 ms later; the reserve is the margin for exactly such surprises.)
constexpr int64_t kFreeSpaceRecheckNs = 20'000'000;
constexpr uint64_t kFreeSpaceSlack = 64ull << 20;

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Reserve tiers (KvOpenOptions::reserved_bytes is divided by these).
constexpr unsigned kDataTier = 1;
constexpr unsigned kChangeTier = 2;
constexpr unsigned kReleaseTier = 4;

bool IsAuditKey(std::string_view key) {
  return !key.empty() && (key[0] == kAuditPrefix || key == kAuditHeadKey);
}

// Content chunks are data; a batch that deletes a record is a deletion or rename (unlink,
// rmdir, rename, releasing the chunks of a write nothing references, however large; also a
// commit that moves a DICOM file's patient index entry, whose chunks passed the data tier
// already); a batch of audit records only is an audit entry; other large batches are data,
// and everything else is a change.
template <typename Ops>
unsigned TierOf(size_t bytes, const Ops& ops) {
  bool deletes = false;
  bool audit_only = !ops.empty();
  for (const auto& op : ops) {
    if (op.family == Family::kChunks && !op.is_delete) return kDataTier;
    deletes = deletes || op.is_delete;
    audit_only = audit_only && IsAuditKey(op.key);
  }
  if (deletes) return kReleaseTier;
  if (bytes >= kDataBatchBytes) return kDataTier;
  return audit_only ? kReleaseTier : kChangeTier;
}

unsigned TierOf(Family family, std::string_view key, size_t bytes) {
  if (family == Family::kChunks || bytes >= kDataBatchBytes) return kDataTier;
  return IsAuditKey(key) ? kReleaseTier : kChangeTier;
}

}  // namespace

Status KvStore::CheckWritable(size_t bytes, unsigned tier) const {
  MEDVFS_RETURN_IF_ERROR(rep_->EarlierFailure());
  if (rep_->reserved_bytes == 0) return Status::Ok();
  const int64_t now = SteadyNowNs();
  const int64_t seen_at = rep_->free_seen_at_ns.load(std::memory_order_relaxed);
  if (seen_at != 0 && now - seen_at < kFreeSpaceRecheckNs &&
      rep_->free_seen.load(std::memory_order_relaxed) >=
          rep_->reserved_bytes + bytes + kFreeSpaceSlack) {
    return Status::Ok();  // far from full a moment ago: cannot be full yet
  }
  struct statvfs fs {};
  if (::statvfs(rep_->dir.c_str(), &fs) != 0) return Status::Ok();  // RocksDB will tell
  uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  // What the memory tables hold is in the log already and takes the same room again when
  // they are flushed: count it as used.
  uint64_t unflushed = 0;
  if (rep_->db->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables,
                                         &unflushed)) {
    free_bytes -= std::min(free_bytes, unflushed);
  }
  rep_->free_seen.store(free_bytes, std::memory_order_relaxed);
  rep_->free_seen_at_ns.store(now, std::memory_order_relaxed);
  const uint64_t reserve = rep_->reserved_bytes / std::max(tier, 1u);
  if (free_bytes >= reserve + bytes) return Status::Ok();
  return Status(Code::kNoSpace, "the disk holding the archive is full (" +
                                    std::to_string(free_bytes >> 20) + " MiB free, " +
                                    std::to_string(reserve >> 20) +
                                    " MiB kept for the database's own work); free some space");
}

Status KvStore::NoteWriteResult(Status status) {
  if (status.ok() || rep_->write_failed.load(std::memory_order_acquire)) return status;
  std::lock_guard lock(rep_->failure_mu);
  rep_->failure = Status(status.code(), status.message() +
                                            " (the archive takes no more changes until it is "
                                            "opened again: unmount and mount it)");
  rep_->write_failed.store(true, std::memory_order_release);
  return status;
}

Status KvStore::Write(KvBatch& batch, bool sync) {
  if (!batch.status().ok()) return batch.status();
  MEDVFS_RETURN_IF_ERROR(
      CheckWritable(batch.byte_size(), TierOf(batch.byte_size(), batch.rep_->ops)));
  rocksdb::WriteBatch wb;
  for (const auto& op : batch.rep_->ops) {
    auto s = op.is_delete ? wb.Delete(rep_->Handle(op.family), op.key)
                          : wb.Put(rep_->Handle(op.family), op.key, op.value);
    if (!s.ok()) return FromRocks(s, "preparing a write");
  }
  if (sync) MEDVFS_RETURN_IF_ERROR(rep_->RunBeforeDurable());
  rocksdb::WriteOptions write_options;
  write_options.sync = sync;
  std::shared_lock io_lock(rep_->io_mu);
  MEDVFS_RETURN_IF_ERROR(rep_->EarlierFailure());
  return NoteWriteResult(FromRocks(rep_->db->Write(write_options, &wb), "writing to the database"));
}

Status KvStore::Put(Family family, std::string_view key, std::string_view value, bool sync) {
  MEDVFS_RETURN_IF_ERROR(
      CheckWritable(key.size() + value.size(), TierOf(family, key, key.size() + value.size())));
  if (sync) MEDVFS_RETURN_IF_ERROR(rep_->RunBeforeDurable());
  rocksdb::WriteOptions write_options;
  write_options.sync = sync;
  std::shared_lock io_lock(rep_->io_mu);
  MEDVFS_RETURN_IF_ERROR(rep_->EarlierFailure());
  return NoteWriteResult(
      FromRocks(rep_->db->Put(write_options, rep_->Handle(family), ToSlice(key), ToSlice(value)),
                "writing to the database"));
}

Status KvStore::Scan(
    Family family, std::string_view prefix,
    const std::function<bool(std::string_view key, std::string_view value)>& visit) const {
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(rocksdb::ReadOptions(), rep_->Handle(family)));
  for (it->Seek(ToSlice(prefix)); it->Valid(); it->Next()) {
    std::string_view key = ToView(it->key());
    if (!key.starts_with(prefix)) break;
    if (!visit(key, ToView(it->value()))) break;
  }
  return FromRocks(it->status(), "scanning records");
}

Status KvStore::ScanReverse(
    Family family, std::string_view prefix,
    const std::function<bool(std::string_view key, std::string_view value)>& visit) const {
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(rocksdb::ReadOptions(), rep_->Handle(family)));
  // The first key after every key with this prefix: the prefix with its last non-0xff byte
  // incremented.
  std::string upper(prefix);
  while (!upper.empty() && static_cast<uint8_t>(upper.back()) == 0xff) upper.pop_back();
  if (upper.empty()) {
    it->SeekToLast();
  } else {
    upper.back() = static_cast<char>(static_cast<uint8_t>(upper.back()) + 1);
    it->SeekForPrev(ToSlice(upper));
    if (it->Valid() && ToView(it->key()) == upper) it->Prev();
  }
  for (; it->Valid(); it->Prev()) {
    std::string_view key = ToView(it->key());
    if (!key.starts_with(prefix)) break;
    if (!visit(key, ToView(it->value()))) break;
  }
  return FromRocks(it->status(), "scanning records");
}

Status KvStore::SeekLast(Family family, std::string_view prefix, std::string_view key,
                         std::string* found_key, std::string* value) const {
  // Bounded below by the prefix: RocksDB then skips the files and blocks that end before it,
  // and a prefix with no record ends the seek instead of stepping back into other records.
  const rocksdb::Slice lower = ToSlice(prefix);
  rocksdb::ReadOptions options;
  options.iterate_lower_bound = &lower;
  std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(options, rep_->Handle(family)));
  it->SeekForPrev(ToSlice(key));
  if (!it->status().ok()) return FromRocks(it->status(), "seeking a record");
  if (!it->Valid() || !ToView(it->key()).starts_with(prefix)) {
    return Status::NotFound("no such record");
  }
  found_key->assign(it->key().data(), it->key().size());
  value->assign(it->value().data(), it->value().size());
  return Status::Ok();
}

Status KvStore::SyncWal() {
  MEDVFS_RETURN_IF_ERROR(rep_->EarlierFailure());
  const uint64_t wanted = rep_->db->GetLatestSequenceNumber();
  std::unique_lock lock(rep_->sync_mu);
  while (true) {
    if (rep_->synced_seq >= wanted) return Status::Ok();
    if (!rep_->syncing) break;
    rep_->sync_cv.wait(lock);
  }
  rep_->syncing = true;
  lock.unlock();
  const uint64_t target = rep_->db->GetLatestSequenceNumber();
  Status s = rep_->RunBeforeDurable();
  if (s.ok()) {
    std::unique_lock io_lock(rep_->io_mu);
    s = rep_->EarlierFailure();
    if (s.ok()) s = NoteWriteResult(FromRocks(rep_->db->SyncWAL(), "syncing the log"));
  }
  lock.lock();
  rep_->syncing = false;
  if (s.ok()) rep_->synced_seq = std::max(rep_->synced_seq, target);
  lock.unlock();
  rep_->sync_cv.notify_all();
  return s;
}

Status KvStore::FlushAll() {
  MEDVFS_RETURN_IF_ERROR(rep_->EarlierFailure());
  rocksdb::FlushOptions options;
  options.wait = true;
  options.allow_write_stall = true;
  return NoteWriteResult(
      FromRocks(rep_->db->Flush(options, rep_->handles), "writing memory tables to disk"));
}

Status KvStore::CompactAll() {
  MEDVFS_RETURN_IF_ERROR(FlushAll());
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  options.allow_write_stall = true;
  for (rocksdb::ColumnFamilyHandle* handle : rep_->handles) {
    MEDVFS_RETURN_IF_ERROR(NoteWriteResult(FromRocks(
        rep_->db->CompactRange(options, handle, nullptr, nullptr), "compacting table files")));
  }
  return Status::Ok();
}

void KvStore::SetBeforeDurable(std::function<Status()> hook) {
  std::lock_guard lock(rep_->before_durable_mu);
  rep_->before_durable = std::move(hook);
}

uint64_t KvStore::LatestSequence() const { return rep_->db->GetLatestSequenceNumber(); }

bool KvStore::HasUnsyncedWrites() const {
  const uint64_t latest = rep_->db->GetLatestSequenceNumber();
  std::lock_guard lock(rep_->sync_mu);
  return latest > rep_->synced_seq;
}

uint64_t KvStore::ApproximateSize(Family family) const {
  uint64_t live = 0;
  uint64_t blobs = 0;
  rep_->db->GetIntProperty(rep_->Handle(family), rocksdb::DB::Properties::kLiveSstFilesSize, &live);
  rep_->db->GetIntProperty(rep_->Handle(family), rocksdb::DB::Properties::kTotalBlobFileSize,
                           &blobs);
  return live + blobs;
}

std::vector<KvFile> KvStore::LiveFiles() const {
  std::vector<KvFile> files;
  for (auto* handle : rep_->handles) {
    rocksdb::ColumnFamilyMetaData meta;
    rep_->db->GetColumnFamilyMetaData(handle, &meta);
    for (const auto& level : meta.levels) {
      for (const auto& file : level.files) {
        files.push_back({file.relative_filename, file.size, /*blob=*/false});
      }
    }
    for (const auto& blob : meta.blob_files) {
      files.push_back({blob.blob_file_name, blob.blob_file_size, /*blob=*/true});
    }
  }
  return files;
}

Status KvStore::VerifyTableFile(const KvFile& file) const {
  rocksdb::SstFileReader reader{rocksdb::Options()};
  const std::string path = rep_->db->GetName() + "/" + file.name;
  rocksdb::Status s = reader.Open(path);
  if (s.ok()) s = reader.VerifyChecksum(rocksdb::ReadOptions());
  return FromRocks(s, ("checking " + file.name).c_str());
}

}  // namespace medvfs::store
