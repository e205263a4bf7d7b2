// KvStore's backups: RocksDB's BackupEngine over the live database (see kv_store.h, "Backup").
//
// The engine first flushes the memory tables, then copies the files RocksDB reports live at
// one moment (GetLiveFilesStorageInfo: table and blob files, the manifest, and the write-ahead
// log trimmed to its size at that moment, which holds whatever was written after the flush),
// with file deletions held off until the copy is done. A restored database therefore replays
// to exactly the writes acknowledged by that moment (a write still being appended then is a
// torn last record, which recovery drops). The flush is what keeps backups incremental: without
// it each backup would carry its own copy of every live log (up to max_total_wal_size) instead
// of table and blob files the next backup shares. Table and blob files are shared between
// backups under names that include their checksum or session id (share_files_with_checksum),
// so a file is copied once and two databases' files cannot be mistaken for each other. Every
// file's crc32c is kept in the backup's meta file; VerifyBackup and RestoreBackup check it.
//
// Blob file names carry their crc32c (RocksDB 7.8 has no session id for them), so every backup
// reads each live blob file once to name it, even when it is already in the backup directory;
// only new files are copied.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/env.h>
#include <rocksdb/utilities/backup_engine.h>

#include <cerrno>
#include <memory>
#include <set>
#include <string>
#include <system_error>

#include "store/engine/kv_store.h"
#include "store/engine/kv_store_rep.h"

namespace medvfs::store {
namespace {

// Progress is reported about this often (bytes copied).
constexpr uint64_t kProgressInterval = 4ull << 20;
constexpr size_t kMaxMetadata = 64u << 10;
// What a backup, or a restore into a database directory, needs of a directory.
constexpr int kWrite = R_OK | W_OK | X_OK;

// Why this process may not use `dir` or a directory in it as `mode` asks (see FromBackupStatus):
// kReadOnly on a read-only file system, kAccess without permission, kOk otherwise. Asked with the
// effective credentials (AT_EACCESS), those the engine's system calls run with.
Code DirectoryFault(const std::filesystem::path& dir, int mode) {
  auto fault = [mode](const std::filesystem::path& path) {
    if (::faccessat(AT_FDCWD, path.c_str(), mode, AT_EACCESS) == 0) return Code::kOk;
    if (errno == EROFS) return Code::kReadOnly;
    if (errno == EACCES || errno == EPERM) return Code::kAccess;
    return Code::kOk;
  };
  if (Code code = fault(dir); code != Code::kOk) return code;
  // The engine writes in meta/, private/ and shared_checksum/ below the backup directory.
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec)) continue;
    if (Code code = fault(it->path()); code != Code::kOk) return code;
  }
  return Code::kOk;
}

// The engine's status in our codes, by code and subcode (ENOSPC is kNoSpace, ENOENT
// kPathNotFound; see kv_store.cc's FromRocks), never by its text, which holds paths. A plain IO
// error carries its errno only in the text: then the system says whether `dir`, the directory
// the operation writes (or reads: `mode`), is on a read-only file system or not permitted.
Status FromBackupStatus(const rocksdb::Status& s, const std::string& what,
                        const std::filesystem::path& dir, int mode) {
  if (s.ok()) return Status::Ok();
  const std::string message = what + ": " + s.ToString();
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kNoSpace) {
    return Status(Code::kNoSpace, message);
  }
  if (s.IsCorruption()) return Status::Corruption(message);
  if (s.IsNotFound() || s.IsPathNotFound()) return Status::NotFound(message);
  if (s.IsIncomplete()) return Status(Code::kBusy, what + ": stopped before it was complete");
  if (s.IsIOError()) {
    const Code fault = DirectoryFault(dir, mode);
    if (fault == Code::kAccess) return Status(Code::kAccess, message);
    if (fault == Code::kReadOnly) return Status::ReadOnly(message);
  }
  if (s.IsInvalidArgument()) return Status::Invalid(message);
  return Status::IoError(message);
}

rocksdb::BackupEngineOptions EngineOptions(const std::filesystem::path& backup_dir) {
  rocksdb::BackupEngineOptions options(backup_dir.string());
  options.share_table_files = true;          // table and blob files
  options.share_files_with_checksum = true;  // distinct files never share a name
  options.sync = true;                       // a finished backup survives a crash
  options.backup_log_files = true;           // the live log holds the unflushed writes
  options.max_background_operations = 1;     // leave the other core to the mount
  options.callback_trigger_interval_size = kProgressInterval;
  return options;
}

// The files of every backup in the engine, relative to the backup directory ("shared_checksum/
// 000017_<crc>_<size>.blob", "private/3/MANIFEST-000019").
std::set<std::string> BackedUpFiles(const rocksdb::BackupEngineReadOnlyBase& engine) {
  std::vector<rocksdb::BackupInfo> infos;
  engine.GetBackupInfo(&infos, /*include_file_details=*/true);
  std::set<std::string> files;
  for (const auto& info : infos) {
    for (const auto& file : info.file_details) {
      files.insert(file.relative_filename);
    }
  }
  return files;
}

KvStore::BackupInfo ToInfo(const rocksdb::BackupInfo& info) {
  KvStore::BackupInfo out;
  out.id = info.backup_id;
  out.time_s = info.timestamp;
  out.size = info.size;
  out.files = info.number_files;
  out.metadata = info.app_metadata;
  return out;
}

bool HasBackups(const std::filesystem::path& backup_dir) {
  std::error_code ec;
  return std::filesystem::is_directory(backup_dir / "meta", ec);
}

StatusOr<std::unique_ptr<rocksdb::BackupEngineReadOnly>> OpenReadOnly(
    const std::filesystem::path& backup_dir) {
  if (!HasBackups(backup_dir)) return Status::NotFound("the directory holds no backups");
  rocksdb::BackupEngineReadOnly* engine = nullptr;
  const rocksdb::IOStatus s = rocksdb::BackupEngineReadOnly::Open(EngineOptions(backup_dir),
                                                                  rocksdb::Env::Default(), &engine);
  if (!s.ok()) return FromBackupStatus(s, "opening the backups", backup_dir, R_OK | X_OK);
  return std::unique_ptr<rocksdb::BackupEngineReadOnly>(engine);
}

}  // namespace

Status KvStore::CreateBackup(const std::filesystem::path& backup_dir, const BackupOptions& options,
                             BackupInfo* created) {
  if (options.metadata.size() > kMaxMetadata) return Status::Invalid("backup metadata too large");
  if (::mkdir(backup_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return StatusFromErrno(errno, "creating the backup directory");
  }
  rocksdb::BackupEngine* raw = nullptr;
  rocksdb::IOStatus s =
      rocksdb::BackupEngine::Open(EngineOptions(backup_dir), rep_->db->GetEnv(), &raw);
  if (!s.ok()) return FromBackupStatus(s, "opening the backup directory", backup_dir, kWrite);
  std::unique_ptr<rocksdb::BackupEngine> engine(raw);
  const std::set<std::string> before = BackedUpFiles(*engine);

  rocksdb::CreateBackupOptions create;
  create.flush_before_backup = true;  // see the top of this file
  uint64_t copied = 0;
  create.progress_callback = [&] {
    // Runs on the engine's copying thread; RocksDB callbacks must not throw.
    copied += kProgressInterval;
    if (options.progress) options.progress(copied);
    if (options.cancelled && options.cancelled()) engine->StopBackup();
  };
  rocksdb::BackupID id = 0;
  s = engine->CreateNewBackupWithMetadata(create, rep_->db, options.metadata, &id);
  if (!s.ok()) {
    // What a stopped or failed backup left behind goes now (it would at the next backup).
    engine->GarbageCollect().PermitUncheckedError();
    return FromBackupStatus(s, "backing up the database", backup_dir, kWrite);
  }
  rocksdb::BackupInfo info;
  const rocksdb::Status read = engine->GetBackupInfo(id, &info, /*include_file_details=*/true);
  if (!read.ok()) return FromBackupStatus(read, "reading the new backup", backup_dir, kWrite);
  if (created != nullptr) {
    *created = ToInfo(info);
    for (const auto& file : info.file_details) {
      if (!before.contains(file.relative_filename)) {
        created->new_bytes += file.size;
      }
    }
  }
  if (options.keep != 0) {
    s = engine->PurgeOldBackups(options.keep);
    if (!s.ok()) return FromBackupStatus(s, "deleting old backups", backup_dir, kWrite);
  }
  return Status::Ok();
}

StatusOr<std::vector<KvStore::BackupInfo>> KvStore::ListBackups(
    const std::filesystem::path& backup_dir) {
  MEDVFS_ASSIGN_OR_RETURN(auto engine, OpenReadOnly(backup_dir));
  std::vector<rocksdb::BackupInfo> infos;
  engine->GetBackupInfo(&infos);
  if (infos.empty()) return Status::NotFound("the directory holds no complete backup");
  std::vector<BackupInfo> out;
  out.reserve(infos.size());
  for (const auto& info : infos) out.push_back(ToInfo(info));
  return out;
}

Status KvStore::VerifyBackup(const std::filesystem::path& backup_dir, uint32_t id) {
  MEDVFS_ASSIGN_OR_RETURN(auto engine, OpenReadOnly(backup_dir));
  return FromBackupStatus(engine->VerifyBackup(id, /*verify_with_checksum=*/true),
                          "checking backup " + std::to_string(id), backup_dir, R_OK | X_OK);
}

Status KvStore::RestoreBackup(const std::filesystem::path& backup_dir, uint32_t id,
                              const std::filesystem::path& db_dir) {
  MEDVFS_ASSIGN_OR_RETURN(auto engine, OpenReadOnly(backup_dir));
  std::error_code ec;
  if (std::filesystem::exists(db_dir, ec) && !std::filesystem::is_empty(db_dir, ec)) {
    return Status(Code::kNotEmpty, "the database directory to restore into is not empty");
  }
  if (::mkdir(db_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return StatusFromErrno(errno, "creating the database directory");
  }
  return FromBackupStatus(
      engine->RestoreDBFromBackup(rocksdb::RestoreOptions(), id, db_dir.string(), db_dir.string()),
      "restoring backup " + std::to_string(id), db_dir, kWrite);
}

Status KvStore::DeleteBackup(const std::filesystem::path& backup_dir, uint32_t id) {
  rocksdb::BackupEngine* raw = nullptr;
  rocksdb::IOStatus s =
      rocksdb::BackupEngine::Open(EngineOptions(backup_dir), rocksdb::Env::Default(), &raw);
  if (!s.ok()) return FromBackupStatus(s, "opening the backup directory", backup_dir, kWrite);
  std::unique_ptr<rocksdb::BackupEngine> engine(raw);
  s = engine->DeleteBackup(id);
  if (s.IsNotFound()) return Status::NotFound("no backup " + std::to_string(id));
  if (!s.ok()) return FromBackupStatus(s, "deleting a backup", backup_dir, kWrite);
  return Status::Ok();
}

}  // namespace medvfs::store
