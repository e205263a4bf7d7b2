// Outside the encrypted log: the failed-unlocks side file (a wrong key cannot write to the
// log) and the host's high-water marks that detect an archive rolled back to an older copy.
// See man/medvfs-format.5.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>

#include "store/archive/archive_impl.h"
#include "store/crypto/subkeys.h"
#include "store/file_util.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

constexpr char kFailedUnlocksName[] = "failed-unlocks";

std::string ProgramName() {
  std::ifstream comm("/proc/self/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

// An entry about this process's own open (an accepted rollback or damage).
AuditEvent SelfEvent(AuditOp op, std::string detail) {
  AuditEvent event;
  event.uid = static_cast<uint32_t>(::getuid());
  event.gid = static_cast<uint32_t>(::getgid());
  event.pid = static_cast<uint32_t>(::getpid());
  event.program = ProgramName();
  event.op = op;
  event.detail = std::move(detail);
  return event;
}

// Creates dir and its missing parents with mode 0700.
Status MakePrivateDirs(const std::filesystem::path& dir) {
  std::filesystem::path partial;
  for (const auto& part : dir) {
    partial /= part;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
      return StatusFromErrno(errno, "creating the high-water directory");
    }
  }
  return Status::Ok();
}

StatusOr<std::string> ReadSmallFile(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return StatusFromErrno(errno, "reading " + file.string());
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      return StatusFromErrno(saved, "reading " + file.string());
    }
    if (n == 0 || out.size() > (1u << 20)) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace

std::filesystem::path DefaultHighWaterDir() {
  if (const char* state = std::getenv("MEDVFS_STATE_DIR"); state != nullptr && *state != '\0') {
    return std::filesystem::path(state);
  }
  if (::geteuid() == 0) return "/var/lib/medvfs/high-water";
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg == '/') {
    return std::filesystem::path(xdg) / "medvfs" / "high-water";
  }
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr && *home != '\0' ? home : "/") / ".local" / "state" /
         "medvfs" / "high-water";
}

void RecordFailedUnlock(const std::filesystem::path& archive_dir) {
  const std::string line = FormatFailedUnlock(NowNs(), static_cast<uint32_t>(::getuid()),
                                              static_cast<uint32_t>(::getgid()),
                                              static_cast<uint32_t>(::getpid()), ProgramName());
  const std::filesystem::path file = archive_dir / kFailedUnlocksName;
  const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    MEDVFS_LOG_ERROR("a failed unlock could not be noted in the archive directory (errno %d)",
                     errno);
    return;
  }
  if (!WriteAll(fd, line) || ::fsync(fd) != 0) {
    MEDVFS_LOG_ERROR("a failed unlock could not be noted in the archive directory (errno %d)",
                     errno);
  }
  ::close(fd);
  SyncDirectoryQuietly(archive_dir);
}

Status ArchiveImpl::ImportFailedUnlocks() {
  const std::filesystem::path file = dir_ / kFailedUnlocksName;
  auto text = ReadSmallFile(file);
  if (!text.ok()) {
    return text.status().code() == Code::kNotFound ? Status::Ok() : text.status();
  }
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    AuditEvent event;
    if (!ParseFailedUnlock(line, &event)) {
      event = AuditEvent{};
      event.op = AuditOp::kUnlockFailed;
      event.detail = "malformed line in failed-unlocks";
    }
    event.result = EACCES;
    MEDVFS_RETURN_IF_ERROR(RecordAudit(event));
  }
  // The entries are durable before the side file goes.
  MEDVFS_RETURN_IF_ERROR(kv_->SyncWal());
  if (::unlink(file.c_str()) != 0 && errno != ENOENT) {
    return StatusFromErrno(errno, "removing the failed-unlocks file");
  }
  SyncDirectoryQuietly(dir_);
  return Status::Ok();
}

std::filesystem::path ArchiveImpl::HighWaterFile() const {
  return options_.high_water_dir /
         HexEncode(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(archive_id_.data()),
                                            archive_id_.size()));
}

Status ArchiveImpl::WriteHighWaterLocked(uint64_t seq) {
  HighWaterMark mark;
  mark.seq = seq;
  if (seq > 0) {
    AuditRecord record;
    MEDVFS_RETURN_IF_ERROR(GetRecord(AuditKey(seq), &record));
    mark.entry_mac = record.mac;
  }
  // The entries the mark names must survive a crash, or the mark would accuse the archive.
  MEDVFS_RETURN_IF_ERROR(kv_->SyncWal());
  MEDVFS_RETURN_IF_ERROR(MakePrivateDirs(options_.high_water_dir));
  const std::filesystem::path file = HighWaterFile();
  const std::filesystem::path temp = file.string() + ".tmp" + std::to_string(::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return StatusFromErrno(errno, "writing the high-water mark");
  const bool written =
      WriteAll(fd, EncodeHighWater(high_water_key_, archive_id_, mark)) && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!written || ::rename(temp.c_str(), file.c_str()) != 0) {
    const int error = written ? errno : saved;
    ::unlink(temp.c_str());
    return StatusFromErrno(error, "writing the high-water mark");
  }
  SyncDirectoryQuietly(options_.high_water_dir);
  high_water_ = seq;
  return Status::Ok();
}

void ArchiveImpl::RaiseHighWater() {
  if (options_.high_water_dir.empty() || options_.no_writes) return;
  uint64_t head = 0;
  {
    std::lock_guard lock(audit_mu_);
    head = audit_seq_;
  }
  std::lock_guard lock(high_water_mu_);
  if (!high_water_checked_ || head <= high_water_) return;
  Status s = WriteHighWaterLocked(head);
  if (!s.ok()) {
    MEDVFS_LOG_ERROR("the high-water mark could not be raised to %llu: %s",
                     static_cast<unsigned long long>(head), s.ToString().c_str());
  }
}

Status ArchiveImpl::CheckHighWater() {
  if (options_.high_water_dir.empty()) {
    if (!kv_->wal_damage_accepted()) return Status::Ok();
    // No mark to check, but the accepted loss is recorded all the same.
    return RecordAudit(SelfEvent(AuditOp::kWalDamageAccepted, kv_->wal_recovery_note()));
  }
  const std::filesystem::path file = HighWaterFile();
  uint64_t head = 0;
  {
    std::lock_guard lock(audit_mu_);
    head = audit_seq_;
  }
  HighWaterMark mark;
  std::string problem;
  auto text = ReadSmallFile(file);
  const bool exists = text.ok();
  if (text.ok()) {
    if (!DecodeHighWater(high_water_key_, archive_id_, *text, &mark).ok()) {
      problem = "the high-water mark " + file.string() +
                " fails its check (altered, or not written for this archive)";
    }
  } else if (text.status().code() != Code::kNotFound) {
    return text.status();
  }
  if (problem.empty() && mark.seq > 0) {
    AuditRecord record;
    if (head < mark.seq) {
      problem = "this archive is older than the state this host last saw (audit entry " +
                std::to_string(head) + ", mark " + std::to_string(mark.seq) +
                "): it may have been rolled back to an older copy";
    } else if (!GetRecord(AuditKey(mark.seq), &record).ok() || record.mac != mark.entry_mac) {
      problem = "this archive's audit log differs from the state this host last saw at entry " +
                std::to_string(mark.seq) + " (audit entry " + std::to_string(head) +
                "): it may be another or a rolled-back copy";
    }
  }
  // The database's own log tells a damaged log from a rollback: when the open had to cut the
  // log (a torn tail, or damage the admin accepted), an archive behind the mark lost the
  // commits it is missing there, and nobody put an older copy back.
  const std::string& wal_note = kv_->wal_recovery_note();
  const bool log_cut = !wal_note.empty();
  if (!problem.empty() && log_cut && !kv_->wal_damage_accepted()) {
    if (!options_.accept_wal_damage) {
      return Status::Corruption(
          "the end of the database's write-ahead log was damaged or lost: the archive is "
          "missing changes this host saw committed (it reaches audit entry " +
          std::to_string(head) + ", this host saw " + std::to_string(mark.seq) +
          "); the log as it was is kept in " + (dir_ / "db-log-before-recovery").string() +
          ". Restore the archive from a backup (medvfs restore-backup), or, to keep what is "
          "left and lose those changes for good, open it with --accept-wal-damage (recorded in "
          "the audit log)");
    }
  } else if (!problem.empty() && !log_cut && !options_.accept_rollback) {
    return Status::RolledBack(problem +
                              "; to mount a deliberately restored backup, use --accept-rollback");
  }
  const bool damage_accepted =
      kv_->wal_damage_accepted() || (!problem.empty() && log_cut && options_.accept_wal_damage);
  if (!problem.empty() || damage_accepted) {
    std::string detail = "head " + std::to_string(head) + ", mark " + std::to_string(mark.seq);
    if (damage_accepted) detail += "; " + wal_note;
    MEDVFS_RETURN_IF_ERROR(RecordAudit(SelfEvent(
        damage_accepted ? AuditOp::kWalDamageAccepted : AuditOp::kRollbackAccepted, detail)));
    std::lock_guard audit_lock(audit_mu_);
    head = audit_seq_;
  }
  std::lock_guard lock(high_water_mu_);
  high_water_ = mark.seq;
  high_water_checked_ = true;
  // Lowered (an accepted rollback) or raised to the head.
  if (!exists || !problem.empty() || head > high_water_) return WriteHighWaterLocked(head);
  return Status::Ok();
}

Status ArchiveImpl::RecordAcceptedRecordDamage() {
  if (!accepted_record_damage_ || options_.no_writes) return Status::Ok();
  MEDVFS_RETURN_IF_ERROR(
      RecordAudit(SelfEvent(AuditOp::kRecordDamageAccepted, *accepted_record_damage_)));
  // The records present become the reference the next changes build on.
  std::lock_guard lock(mu_);
  super_.keeps_state_digest = true;
  KvBatch batch;
  PutRecord(batch, kSuperKey, super_);
  MEDVFS_RETURN_IF_ERROR(batch.status());
  // The super record's term moves from the old value to the new one.
  StateDigest digest = *accepted_state_digest_;
  std::string old_super;
  MEDVFS_RETURN_IF_ERROR(kv_->Get(Family::kMeta, kSuperKey, &old_super));
  StateDigestSubtract(&digest, StateDigestTerm(state_digest_hmac_, kSuperKey, old_super));
  bool added = false;
  batch.ForEach([&](Family family, bool is_delete, std::string_view key, std::string_view put) {
    if (family == Family::kMeta && !is_delete && key == kSuperKey && !added) {
      StateDigestAdd(&digest, StateDigestTerm(state_digest_hmac_, key, put));
      added = true;
    }
  });
  std::string sealed;
  MEDVFS_RETURN_IF_ERROR(
      SealRecord(meta_key_, kStateDigestKey, EncodeStateDigest(digest), &sealed));
  batch.Put(Family::kMeta, kStateDigestKey, sealed);
  accepted_record_damage_.reset();
  state_digest_cache_.reset();
  return kv_->Write(batch, /*sync=*/true);
}

Status ArchiveImpl::OpenAudit() {
  if (options_.no_writes) return Status::Ok();
  // The mark is checked before anything is appended, so that entries added to an old copy
  // cannot lift it past the mark.
  MEDVFS_RETURN_IF_ERROR(CheckHighWater());
  MEDVFS_RETURN_IF_ERROR(RecordAcceptedRecordDamage());
  MEDVFS_RETURN_IF_ERROR(ImportFailedUnlocks());
  RaiseHighWater();
  return Status::Ok();
}

}  // namespace medvfs::store
