// Backups of an archive (Archive::Backup) and restoring them (RestoreBackup, ListBackups).
//
// A backup directory holds:
//   medvfs-backup        "medvfs-backup 1\narchive <hex id>\n": which archive it backs up
//   medvfs-backup.lock   flock'ed by whoever adds a backup (one at a time)
//   meta/ private/ shared_checksum/   RocksDB's BackupEngine (see kv_backup.cc)
// Each backup's metadata (in its meta file, written atomically with the backup) carries the
// archive's key slot as it was when the backup was made:
//   "medvfs-backup 1\narchive <hex id>\nkeyslot <length>\n<key slot file bytes>"
// so a backup restores with the passphrase of its day, whatever `medvfs passwd` did since.
// Nothing is decrypted: the key slot is wrapped and the database files hold sealed values.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <system_error>

#include "store/archive/archive_impl.h"
#include "store/archive/pack_backup.h"
#include "store/archive/remote.h"
#include "store/file_util.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

namespace stdfs = std::filesystem;

constexpr char kMarkerName[] = "medvfs-backup";
constexpr char kLockName[] = "medvfs-backup.lock";
constexpr char kMarkerMagic[] = "medvfs-backup 1\n";
constexpr size_t kMaxKeySlotBytes = 16u << 10;

stdfs::path NormalAbsolute(const stdfs::path& path) {
  std::error_code ec;
  stdfs::path abs = stdfs::absolute(path, ec);
  if (ec) abs = path;
  stdfs::path canonical = stdfs::weakly_canonical(abs, ec);
  abs = ec ? abs.lexically_normal() : canonical;
  if (!abs.has_filename() && abs.has_relative_path()) abs = abs.parent_path();
  return abs;
}

// True when `path` is `base` or lies below it.
bool IsWithin(const stdfs::path& path, const stdfs::path& base) {
  auto p = path.begin();
  for (auto b = base.begin(); b != base.end(); ++b, ++p) {
    if (p == path.end() || *p != *b) return false;
  }
  return true;
}

StatusOr<std::string> ReadSmallFile(const stdfs::path& file, size_t limit) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return StatusFromErrno(errno, "reading " + file.filename().string());
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return StatusFromErrno(errno, "reading " + file.filename().string());
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) return Status::Corruption(file.filename().string() + " is too large");
  }
  return out;
}

// Makes every directory below `root` 0700 and every file 0600 (RocksDB creates its files
// under the process umask). Symbolic links are not followed.
void MakePrivate(const stdfs::path& root) {
  std::error_code ec;
  for (auto it = stdfs::recursive_directory_iterator(root, ec);
       !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || (st.st_mode & 077) == 0) continue;
    if (S_ISDIR(st.st_mode)) ::chmod(it->path().c_str(), 0700);
    if (S_ISREG(st.st_mode)) ::chmod(it->path().c_str(), 0600);
  }
}

std::string HexId(const std::string& archive_id) {
  return HexEncode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(archive_id.data()),
                                            archive_id.size()));
}

// What a backup's metadata holds.
struct BackupMetadata {
  std::string archive_id;  // hex
  std::string key_slot;    // the key slot file's bytes
};

std::string EncodeMetadata(const BackupMetadata& m) {
  return std::string(kMarkerMagic) + "archive " + m.archive_id + "\nkeyslot " +
         std::to_string(m.key_slot.size()) + "\n" + m.key_slot;
}

// False for metadata that was not written by EncodeMetadata.
bool DecodeMetadata(std::string_view in, BackupMetadata* m) {
  auto line = [&in](std::string_view prefix, std::string* value) {
    const size_t end = in.find('\n');
    if (end == std::string_view::npos || !in.starts_with(prefix)) return false;
    *value = std::string(in.substr(prefix.size(), end - prefix.size()));
    in.remove_prefix(end + 1);
    return true;
  };
  std::string magic;
  std::string length_text;
  if (!line("medvfs-backup 1", &magic) || !magic.empty() || !line("archive ", &m->archive_id) ||
      !line("keyslot ", &length_text)) {
    return false;
  }
  size_t length = 0;
  const auto [end, error] =
      std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
  if (error != std::errc() || end != length_text.data() + length_text.size() ||
      length != in.size()) {
    return false;
  }
  m->key_slot = std::string(in);
  return true;
}

// The archive id a backup directory's marker names; kNotFound without a marker.
StatusOr<std::string> MarkerArchiveId(const stdfs::path& dest) {
  MEDVFS_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(dest / kMarkerName, 4096));
  const std::string prefix = std::string(kMarkerMagic) + "archive ";
  if (!text.starts_with(prefix) || text.back() != '\n') {
    return Status::Corruption("the backup directory's " + std::string(kMarkerName) +
                              " file is damaged");
  }
  return text.substr(prefix.size(), text.size() - prefix.size() - 1);
}

// True when `dir` has no entries but the lock file.
bool OnlyLockFile(const stdfs::path& dir) {
  std::error_code ec;
  for (auto it = stdfs::directory_iterator(dir, ec); !ec && it != stdfs::directory_iterator();
       it.increment(ec)) {
    if (it->path().filename() != kLockName) return false;
  }
  return !ec;
}

// Creates `dest` (0700) if needed, takes its lock (held while `lock` lives) and checks that it
// is, or becomes, the backup directory of `archive_id`.
Status PrepareDestination(const stdfs::path& dest, const std::string& archive_id,
                          std::unique_ptr<UniqueFd>* lock) {
  struct stat st {};
  if (::lstat(dest.c_str(), &st) != 0) {
    if (errno != ENOENT) return StatusFromErrno(errno, "the backup directory");
    if (::mkdir(dest.c_str(), 0700) != 0) {
      if (errno == ENOENT) {
        return Status::NotFound("the backup directory's parent directory does not exist");
      }
      return StatusFromErrno(errno, "creating the backup directory");
    }
    SyncDirectoryQuietly(dest.parent_path());
    st.st_uid = ::geteuid();
  } else if (!S_ISDIR(st.st_mode)) {
    return Status(Code::kNotDirectory, "the backup destination exists and is not a directory");
  }
  if (st.st_uid == ::geteuid() || ::geteuid() == 0) ::chmod(dest.c_str(), 0700);
  auto fd = std::make_unique<UniqueFd>(
      ::open((dest / kLockName).c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd->get() < 0) {
    if (errno == EACCES || errno == EPERM) {
      return Status(Code::kAccess, "the backup directory is not writable (permission denied)");
    }
    if (errno == EROFS) {
      return Status::ReadOnly("the backup directory is on a read-only file system");
    }
    return StatusFromErrno(errno, "the backup directory");
  }
  if (::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status(Code::kBusy, "another backup into this directory is under way");
    }
    return StatusFromErrno(errno, "locking the backup directory");
  }
  *lock = std::move(fd);
  auto marked = MarkerArchiveId(dest);
  if (marked.ok()) {
    if (*marked != archive_id) {
      return Status::Exists("the backup directory holds the backups of another archive (id " +
                            *marked + ")");
    }
    return Status::Ok();
  }
  if (marked.status().code() != Code::kNotFound) return marked.status();
  if (!OnlyLockFile(dest)) {
    return Status(Code::kNotEmpty, "the backup directory is not empty and holds no medvfs backups");
  }
  return WriteFileDurably(dest / kMarkerName,
                          std::string(kMarkerMagic) + "archive " + archive_id + "\n");
}

}  // namespace

StatusOr<BackupResult> ArchiveImpl::Backup(const stdfs::path& dest_arg,
                                           const BackupRequest& request, const Caller& caller) {
  if (options_.no_writes) {
    return Status::ReadOnly("a backup records itself in the audit log; open with writes");
  }
  const stdfs::path dest = NormalAbsolute(dest_arg);
  const stdfs::path archive = NormalAbsolute(dir_);
  const std::string detail = "to " + dest.string();
  auto failed = [&](const Status& status) {
    Audit(caller, AuditOp::kBackup, status, "/", 0, detail + ": failed");
    kv_->SyncWal().IgnoreError();
    return status;
  };
  if (IsWithin(dest, archive) || IsWithin(archive, dest)) {
    return failed(Status::Invalid(
        "the backup directory must lie outside the archive directory, and not contain it"));
  }
  // Packs kept in an S3 remote only (local_packs) are not on this disk: a backup without them
  // would look complete and restore into an archive that cannot read them.
  if (CapacityTierReading(dir_, 0, 0)) {
    return failed(Status(Code::kNotSupported,
                         "the archive keeps some packs in its S3 remote only (local_packs), so "
                         "a backup directory cannot hold all of it; the bucket is its backup "
                         "(medvfs restore-remote)"));
  }
  const std::string archive_id = HexId(archive_id_);
  std::unique_ptr<UniqueFd> lock;
  if (Status s = PrepareDestination(dest, archive_id, &lock); !s.ok()) return failed(s);
  // No garbage collection meanwhile: the backup's records must find every pack they name, so
  // none may be rewritten and deleted between the records' copy and the packs'.
  std::lock_guard gc_lock(gc_mu_);
  BackupMetadata metadata;
  metadata.archive_id = archive_id;
  auto slot = ReadSmallFile(dir_ / kKeySlotFileName, kMaxKeySlotBytes);
  if (!slot.ok()) return failed(slot.status());
  metadata.key_slot = std::move(slot).value();

  // The entry goes into the log, durably, before the copy: the backup holds its own record.
  AuditEvent event;
  event.uid = caller.uid;
  event.gid = caller.gid;
  event.pid = caller.pid;
  event.program = caller.program;
  event.op = AuditOp::kBackup;
  event.path = "/";
  event.detail = detail;
  MEDVFS_RETURN_IF_ERROR(RecordAudit(event));
  MEDVFS_RETURN_IF_ERROR(kv_->SyncWal());

  KvStore::BackupOptions options;
  options.metadata = EncodeMetadata(metadata);
  options.progress = request.progress;
  options.cancelled = request.cancelled;
  options.keep = request.keep;
  KvStore::BackupInfo info;
  if (Status s = kv_->CreateBackup(dest, options, &info); !s.ok()) return failed(s);
  // Then the packs its records refer to (pack_backup.h); without them the records are of no
  // use, so a failed or cancelled copy takes the records' backup away again.
  uint64_t pack_bytes = 0;
  uint64_t pack_total = 0;
  if (Status s =
          BackupPacks(chunks_->packs(), dest, info.id, request.cancelled, &pack_bytes, &pack_total);
      !s.ok()) {
    KvStore::DeleteBackup(dest, info.id).IgnoreError();
    return failed(s);
  }
  info.new_bytes += pack_bytes;
  info.size += pack_total;
  if (request.keep > 0) {
    // RocksDB purged the oldest backups: their pack copies go too, where no kept one needs them.
    auto kept = KvStore::ListBackups(dest);
    if (kept.ok()) {
      std::vector<uint32_t> ids;
      for (const auto& backup : *kept) ids.push_back(backup.id);
      PruneBackupPacks(dest, ids);
    }
  }
  MakePrivate(dest);
  SyncDirectoryQuietly(dest);
  MEDVFS_LOG_INFO("backup %u made (%llu bytes copied)", info.id,
                  static_cast<unsigned long long>(info.new_bytes));
  BackupResult result;
  result.id = info.id;
  result.time_s = info.time_s;
  result.size = info.size;
  result.new_bytes = info.new_bytes;
  result.files = info.files;
  return result;
}

StatusOr<std::vector<BackupEntry>> ListBackups(const stdfs::path& dest) {
  MEDVFS_ASSIGN_OR_RETURN(auto infos, KvStore::ListBackups(dest));
  std::vector<BackupEntry> out;
  for (const auto& info : infos) {
    BackupEntry entry;
    entry.id = info.id;
    entry.time_s = info.time_s;
    entry.size = info.size;
    entry.files = info.files;
    BackupMetadata metadata;
    if (DecodeMetadata(info.metadata, &metadata)) entry.archive_id = metadata.archive_id;
    out.push_back(std::move(entry));
  }
  return out;
}

namespace {

// Picks the backup to restore and its metadata.
Status ChooseBackup(const stdfs::path& dest, const RestoreBackupOptions& options,
                    KvStore::BackupInfo* chosen, BackupMetadata* metadata) {
  MEDVFS_ASSIGN_OR_RETURN(auto infos, KvStore::ListBackups(dest));
  if (!options.backup_id) {
    *chosen = infos.back();
  } else {
    auto it = std::find_if(infos.begin(), infos.end(), [&](const KvStore::BackupInfo& info) {
      return info.id == *options.backup_id;
    });
    if (it == infos.end()) {
      return Status::NotFound("there is no complete backup " + std::to_string(*options.backup_id) +
                              " in the backup directory");
    }
    *chosen = *it;
  }
  if (!DecodeMetadata(chosen->metadata, metadata)) {
    return Status::Corruption("backup " + std::to_string(chosen->id) +
                              " carries no key slot (it was not made by medvfs backup)");
  }
  return Status::Ok();
}

// Creates the new archive directory, or checks that an existing one is empty. *created tells
// whether it was made here.
Status PrepareRestoreTarget(const stdfs::path& dir, bool* created) {
  *created = false;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return Status(Code::kNotDirectory, "the archive path exists and is not a directory");
    }
    if (Archive::Exists(dir)) {
      return Status::Exists("an archive already exists there; restore into a new directory");
    }
    std::error_code ec;
    if (!stdfs::is_empty(dir, ec) || ec) {
      return Status(Code::kNotEmpty, "the archive directory exists and is not empty");
    }
    ::chmod(dir.c_str(), 0700);
    return Status::Ok();
  }
  if (errno != ENOENT) return StatusFromErrno(errno, "the archive directory");
  if (::mkdir(dir.c_str(), 0700) != 0) {
    if (errno == ENOENT) return Status::NotFound("the archive's parent directory does not exist");
    return StatusFromErrno(errno, "creating the archive directory");
  }
  *created = true;
  return Status::Ok();
}

// Removes what a failed restore made.
void UndoRestore(const stdfs::path& dir, bool created) {
  std::error_code ec;
  if (created) {
    stdfs::remove_all(dir, ec);
    return;
  }
  for (auto it = stdfs::directory_iterator(dir, ec); !ec && it != stdfs::directory_iterator();
       it.increment(ec)) {
    std::error_code ignored;
    stdfs::remove_all(it->path(), ignored);
  }
}

// Writes the key slot (mode 0600, must not exist), fsync'ed, and checks that `key` unlocks it.
Status WriteAndUnlockKeySlot(const stdfs::path& dir, const std::string& bytes,
                             const KeySource& key) {
  const stdfs::path file = dir / kKeySlotFileName;
  {
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) return StatusFromErrno(errno, "writing the key slot");
    if (!WriteAll(fd.get(), bytes) || ::fsync(fd.get()) != 0) {
      return StatusFromErrno(errno, "writing the key slot");
    }
  }
  SyncDirectoryQuietly(dir);
  SecretKey data_key;
  return UnlockKeySlot(file, key, &data_key, nullptr);
}

// Opens the restored archive (accepting the rollback), records the restore, closes it.
Status RecordRestore(const stdfs::path& dir, const KeySource& key, const stdfs::path& dest,
                     const RestoreBackupOptions& options, const Caller& caller,
                     RestoredBackup* restored) {
  ArchiveOptions archive_options;
  archive_options.read_only = true;  // audit entries are still appended
  archive_options.high_water_dir = options.high_water_dir;
  archive_options.accept_rollback = true;
  const int64_t opened_at = NowNs();
  MEDVFS_ASSIGN_OR_RETURN(auto archive, Archive::Open(dir, key, archive_options));
  AuditFilter since;
  since.since_ns = opened_at;
  MEDVFS_RETURN_IF_ERROR(archive->ScanAudit(since, [&](const AuditEntry& entry) {
    if (entry.op == AuditOp::kRollbackAccepted) restored->rollback_accepted = true;
    return true;
  }));
  AuditEvent event;
  event.uid = caller.uid;
  event.gid = caller.gid;
  event.pid = caller.pid;
  event.program = caller.program;
  event.op = AuditOp::kRestoreBackup;
  event.path = "/";
  event.detail =
      "from " + NormalAbsolute(dest).string() + " backup " + std::to_string(restored->id);
  MEDVFS_RETURN_IF_ERROR(archive->RecordAudit(event));
  return archive->SyncAll();
}

}  // namespace

StatusOr<RestoredBackup> RestoreBackup(const stdfs::path& dest, const stdfs::path& archive_dir,
                                       const KeySource& key, const RestoreBackupOptions& options,
                                       const Caller& caller) {
  KvStore::BackupInfo chosen;
  BackupMetadata metadata;
  MEDVFS_RETURN_IF_ERROR(ChooseBackup(dest, options, &chosen, &metadata));
  RestoredBackup restored;
  restored.id = chosen.id;
  restored.time_s = chosen.time_s;
  restored.size = chosen.size;
  bool created = false;
  MEDVFS_RETURN_IF_ERROR(PrepareRestoreTarget(archive_dir, &created));
  Status s = WriteAndUnlockKeySlot(archive_dir, metadata.key_slot, key);
  // Every file is checked before anything is copied, then again as it is copied.
  if (s.ok()) s = KvStore::VerifyBackup(dest, chosen.id);
  if (s.ok()) s = VerifyBackupPacks(dest, chosen.id);
  if (s.ok()) s = KvStore::RestoreBackup(dest, chosen.id, archive_dir / "db");
  if (s.ok()) s = RestoreBackupPacks(dest, chosen.id, archive_dir);
  if (s.ok()) {
    MakePrivate(archive_dir);
    SyncDirectoryQuietly(archive_dir);
    s = RecordRestore(archive_dir, key, dest, options, caller, &restored);
  }
  if (!s.ok()) {
    UndoRestore(archive_dir, created);
    return s;
  }
  return restored;
}

}  // namespace medvfs::store
