// The audit log inside the archive: appending to the chain, scanning, verifying, paths, and
// the wrappers that record the store's own events (see archive_impl.h, "Audit").
#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "store/archive/archive_impl.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

// Every 256 entries the high-water mark follows the head, so that a crash leaves it close.
constexpr uint64_t kHighWaterInterval = 256;

AuditEvent EventFor(const Caller& caller, AuditOp op, const Status& result) {
  AuditEvent event;
  event.uid = caller.uid;
  event.gid = caller.gid;
  event.pid = caller.pid;
  event.program = caller.program;
  event.op = op;
  event.result = result.ok() ? 0 : result.ToErrno();
  return event;
}

std::string JoinPath(const std::string& dir, std::string_view name) {
  std::string path = dir;
  if (path.empty() || path.back() != '/') path.push_back('/');
  path.append(name);
  return path;
}

std::string UnknownPlace(InodeId ino) { return "(inode " + std::to_string(ino) + ")"; }

}  // namespace

// --- the chain ------------------------------------------------------------------------------

Status ArchiveImpl::LoadAuditHead() {
  AuditHeadRecord head;
  Status s = GetRecord(kAuditHeadKey, &head);
  std::lock_guard lock(audit_mu_);
  if (s.ok()) {
    audit_seq_ = head.seq;
    audit_mac_ = head.mac;
    return Status::Ok();
  }
  if (s.code() != Code::kNotFound && s.code() != Code::kCorruption) return s;
  // No usable head (an archive made before the audit log, or a damaged or deleted head):
  // appends continue after the last entry that opens, so nothing is ever overwritten;
  // VerifyAuditChain reports the head until the next append rewrites it.
  audit_seq_ = 0;
  audit_mac_ = kAuditGenesisMac;
  Status scan = ScanRecords<AuditRecord>(
      std::string(1, kAuditPrefix),
      [&](std::string_view key, const AuditRecord& record) {
        audit_seq_ = KeyU64(key, 1);
        audit_mac_ = record.mac;
        return false;
      },
      /*reverse=*/true);
  if (s.code() == Code::kCorruption || audit_seq_ != 0) {
    MEDVFS_LOG_ERROR("the audit head record is %s; the log continues after entry %llu",
                     s.code() == Code::kNotFound ? "missing" : "damaged",
                     static_cast<unsigned long long>(audit_seq_));
  }
  if (!scan.ok()) {
    // The last entry does not open either: continue after its number with a chain that
    // verification will report as broken there.
    std::string key;
    std::string value;
    if (kv_->SeekLast(Family::kMeta, std::string(1, kAuditPrefix), AuditKey(UINT64_MAX), &key,
                      &value)
            .ok()) {
      audit_seq_ = KeyU64(key, 1);
    }
  }
  return Status::Ok();
}

Status ArchiveImpl::RecordAudit(const AuditEvent& event) {
  if (options_.no_writes) return Status::ReadOnly("the archive is open without writes");
  AuditEntry entry;
  static_cast<AuditEvent&>(entry) = event;
  if (entry.time_ns == 0) entry.time_ns = NowNs();
  uint64_t seq = 0;
  {
    std::lock_guard lock(audit_mu_);
    entry.seq = audit_seq_ + 1;
    AuditRecord record;
    record.encoded_entry = EncodeAuditEntry(entry);
    record.mac = AuditChainMac(audit_chain_hmac_, audit_mac_, record.encoded_entry);
    KvBatch batch;
    PutRecord(batch, AuditKey(entry.seq), record);
    PutRecord(batch, kAuditHeadKey, AuditHeadRecord{entry.seq, record.mac});
    Wipe(record.encoded_entry.data(), record.encoded_entry.size());
    MEDVFS_RETURN_IF_ERROR(kv_->Write(batch, /*sync=*/false));
    audit_seq_ = seq = entry.seq;
    audit_mac_ = record.mac;
  }
  if (seq % kHighWaterInterval == 0) RaiseHighWater();
  return Status::Ok();
}

Status ArchiveImpl::ScanAudit(const AuditFilter& filter,
                              const std::function<bool(const AuditEntry&)>& visit) {
  Status failed;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<AuditRecord>(
      std::string(1, kAuditPrefix), [&](std::string_view key, const AuditRecord& record) {
        AuditEntry entry;
        failed = DecodeAuditEntry(record.encoded_entry, &entry);
        if (failed.ok() && entry.seq != KeyU64(key, 1)) {
          failed = Status::Corruption("an audit entry is out of place");
        }
        if (!failed.ok()) return false;
        return !AuditFilterMatches(filter, entry) || visit(entry);
      }));
  if (!failed.ok()) {
    return Status::Corruption("an audit entry does not open (medvfs audit --verify says which)");
  }
  return Status::Ok();
}

StatusOr<AuditChainReport> ArchiveImpl::VerifyAuditChain() {
  // Appends wait while the chain is walked, so that the head and the entries agree.
  std::lock_guard lock(audit_mu_);
  AuditChainReport report;
  AuditHeadRecord head;
  const Status head_status = GetRecord(kAuditHeadKey, &head);
  if (!head_status.ok() && head_status.code() != Code::kNotFound &&
      head_status.code() != Code::kCorruption) {
    return head_status;
  }
  const bool have_head = head_status.ok();
  if (have_head) report.head_seq = head.seq;
  auto broken = [&](uint64_t seq, std::string problem) {
    report.intact = false;
    report.first_bad_seq = seq;
    report.problem = std::move(problem);
  };
  uint64_t expected = 1;
  AuditMac previous = kAuditGenesisMac;
  MEDVFS_RETURN_IF_ERROR(kv_->Scan(
      Family::kMeta, std::string(1, kAuditPrefix),
      [&](std::string_view key, std::string_view value) {
        const uint64_t seq = KeyU64(key, 1);
        const std::string n = std::to_string(seq);
        if (key.size() != 9) {
          broken(expected, "a record with a malformed audit key follows entry " +
                               std::to_string(expected - 1));
        } else if (have_head && seq > head.seq) {
          broken(seq, "entry " + n + " lies beyond the head record (entry " +
                          std::to_string(head.seq) + ")");
        } else if (seq != expected) {
          broken(expected, "entry " + std::to_string(expected) + " is missing");
        }
        if (!report.intact) return false;
        AuditRecord record;
        AuditEntry entry;
        if (!OpenRecord(key, value, &record).ok() ||
            !DecodeAuditEntry(record.encoded_entry, &entry).ok()) {
          broken(seq, "entry " + n + " was altered (it does not authenticate)");
          return false;
        }
        if (entry.seq != seq) {
          broken(seq, "entry " + n + " holds entry " + std::to_string(entry.seq) + " (reordered)");
          return false;
        }
        if (AuditChainMac(audit_chain_hmac_, previous, record.encoded_entry) != record.mac) {
          broken(seq, "entry " + n + " does not follow entry " + std::to_string(seq - 1) +
                          " in the chain (altered or reordered)");
          return false;
        }
        previous = record.mac;
        ++report.entries;
        ++expected;
        return true;
      }));
  if (!report.intact) return report;
  const uint64_t last = expected - 1;
  if (head_status.code() == Code::kCorruption) {
    broken(last + 1, "the head record was altered (it does not authenticate)");
  } else if (!have_head) {
    if (last > 0)
      broken(last + 1,
             "the head record is missing (the log has " + std::to_string(last) + " entries)");
  } else if (last < head.seq) {
    broken(last + 1, "entry " + std::to_string(last + 1) + " is missing (the head names entry " +
                         std::to_string(head.seq) + ")");
  } else if (head.mac != previous) {
    broken(last, "the head record does not match entry " + std::to_string(last));
  }
  return report;
}

// --- paths ----------------------------------------------------------------------------------

StatusOr<std::string> ArchiveImpl::DirPathLocked(InodeId dir) {
  std::string path;
  for (int depth = 0; dir != kRootInode; ++depth) {
    InodeRecord record;
    MEDVFS_RETURN_IF_ERROR(LoadInode(dir, &record));
    if (record.parent == 0 || depth > 4096) return Status::NotFound("a node outside the tree");
    path.insert(0, record.name);
    path.insert(0, 1, '/');
    dir = record.parent;
  }
  return path.empty() ? std::string("/") : path;
}

StatusOr<std::string> ArchiveImpl::HistoryPathLocked(HistoryId history_id) {
  HistoryRecord history;
  MEDVFS_RETURN_IF_ERROR(GetRecord(HistoryKey(history_id), &history));
  if (history.last_parent == 0) return Status::NotFound("the history has no name");
  MEDVFS_ASSIGN_OR_RETURN(std::string dir, DirPathLocked(history.last_parent));
  return JoinPath(dir, history.last_name);
}

StatusOr<std::string> ArchiveImpl::PathOf(InodeId ino) {
  std::shared_lock lock(mu_);
  InodeRecord node;
  MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
  if (ino == kRootInode || S_ISDIR(node.mode)) return DirPathLocked(ino);
  if (node.history != 0) return HistoryPathLocked(node.history);
  if (node.parent == 0) return Status::NotFound("the node's name is not known");
  MEDVFS_ASSIGN_OR_RETURN(std::string dir, DirPathLocked(node.parent));
  return JoinPath(dir, node.name);
}

std::string ArchiveImpl::AuditPathOf(InodeId ino) {
  auto path = PathOf(ino);
  return path.ok() ? std::move(path).value() : UnknownPlace(ino);
}

std::string ArchiveImpl::AuditPathIn(InodeId parent, std::string_view name) {
  std::shared_lock lock(mu_);
  auto dir = DirPathLocked(parent);
  return JoinPath(dir.ok() ? *dir : UnknownPlace(parent), name);
}

std::string ArchiveImpl::AuditPathOfHistory(HistoryId history) {
  std::shared_lock lock(mu_);
  auto path = HistoryPathLocked(history);
  return path.ok() ? std::move(path).value() : "(history " + std::to_string(history) + ")";
}

void ArchiveImpl::Audit(const Caller& caller, AuditOp op, const Status& result, std::string path,
                        uint64_t version, std::string detail, std::string target_path) {
  AuditEvent event = EventFor(caller, op, result);
  event.path = std::move(path);
  event.target_path = std::move(target_path);
  event.version = version;
  event.detail = std::move(detail);
  Status s = RecordAudit(event);
  if (!s.ok() && s.code() != Code::kReadOnly) {
    MEDVFS_LOG_ERROR("an audit entry (%s) could not be appended: %s",
                     std::string(AuditOpName(op)).c_str(), s.ToString().c_str());
  }
}

// --- the audited operations ----------------------------------------------------------------

// The Do* bodies count the new node's reference; the NodeRef owns it from here.
StatusOr<NodeRef> ArchiveImpl::MakeNode(InodeId parent, std::string_view name, uint32_t mode,
                                        uint64_t rdev, const Caller& caller) {
  auto result = DoMakeNode(parent, name, mode, rdev, caller);
  Audit(caller, AuditOp::kCreate, result.status(), AuditPathIn(parent, name));
  if (!result.ok()) return result.status();
  return NodeRef(this, *result);
}

StatusOr<NodeRef> ArchiveImpl::MakeDir(InodeId parent, std::string_view name, uint32_t mode,
                                       const Caller& caller) {
  auto result = DoMakeDir(parent, name, mode, caller);
  Audit(caller, AuditOp::kMkdir, result.status(), AuditPathIn(parent, name));
  if (!result.ok()) return result.status();
  return NodeRef(this, *result);
}

StatusOr<NodeRef> ArchiveImpl::MakeSymlink(InodeId parent, std::string_view name,
                                           std::string_view target, const Caller& caller) {
  auto result = DoMakeSymlink(parent, name, target, caller);
  Audit(caller, AuditOp::kSymlink, result.status(), AuditPathIn(parent, name));
  if (!result.ok()) return result.status();
  return NodeRef(this, *result);
}

StatusOr<NodeRef> ArchiveImpl::Link(InodeId ino, InodeId new_parent, std::string_view new_name,
                                    const Caller& caller) {
  auto result = DoLink(ino, new_parent, new_name);
  Audit(caller, AuditOp::kLink, result.status(), AuditPathOf(ino), 0, {},
        AuditPathIn(new_parent, new_name));
  if (!result.ok()) return result.status();
  return NodeRef(this, *result);
}

Status ArchiveImpl::Unlink(InodeId parent, std::string_view name, const Caller& caller) {
  Status s = DoUnlink(parent, name, caller);
  Audit(caller, AuditOp::kUnlink, s, AuditPathIn(parent, name));
  return s;
}

Status ArchiveImpl::RemoveDir(InodeId parent, std::string_view name, const Caller& caller) {
  Status s = DoRemoveDir(parent, name);
  Audit(caller, AuditOp::kRmdir, s, AuditPathIn(parent, name));
  return s;
}

Status ArchiveImpl::Rename(InodeId parent, std::string_view name, InodeId new_parent,
                           std::string_view new_name, unsigned int flags, const Caller& caller) {
  Status s = DoRename(parent, name, new_parent, new_name, flags, caller);
  Audit(caller, AuditOp::kRename, s, AuditPathIn(parent, name), 0, {},
        AuditPathIn(new_parent, new_name));
  return s;
}

StatusOr<Attr> ArchiveImpl::SetAttr(InodeId ino, const SetAttrRequest& request,
                                    const Caller& caller) {
  auto result = DoSetAttr(ino, request, caller);
  const std::string path = AuditPathOf(ino);
  if (request.size) {
    Audit(caller, AuditOp::kTruncate, result.status(), path, result.ok() ? result->version : 0,
          std::to_string(*request.size));
  }
  if (request.mode) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", *request.mode & 07777);
    Audit(caller, AuditOp::kChmod, result.status(), path, 0, mode);
  }
  if (request.uid || request.gid) {
    auto id = [](const std::optional<uint32_t>& v) { return v ? std::to_string(*v) : "-"; };
    Audit(caller, AuditOp::kChown, result.status(), path, 0,
          id(request.uid) + ":" + id(request.gid));
  }
  if (request.atime_ns || request.mtime_ns) {
    Audit(caller, AuditOp::kSetTimes, result.status(), path);
  }
  return result;
}

Status ArchiveImpl::SetXattr(InodeId ino, std::string_view name, std::string_view value, int flags,
                             const Caller& caller) {
  Status s = DoSetXattr(ino, name, value, flags, caller);
  // Attribute names are not patient data (user.*, security.*); values may be, and are not kept.
  Audit(caller, AuditOp::kSetXattr, s, AuditPathOf(ino), 0, std::string(name));
  return s;
}

Status ArchiveImpl::RemoveXattr(InodeId ino, std::string_view name, const Caller& caller) {
  Status s = DoRemoveXattr(ino, name, caller);
  Audit(caller, AuditOp::kRemoveXattr, s, AuditPathOf(ino), 0, std::string(name));
  return s;
}

StatusOr<Attr> ArchiveImpl::Restore(HistoryId history, uint64_t number, const Caller& caller) {
  auto result = DoRestore(history, number, caller);
  Audit(caller, AuditOp::kRestore, result.status(), AuditPathOfHistory(history),
        result.ok() ? result->version : 0, "from version " + std::to_string(number));
  return result;
}

Status ArchiveImpl::SetNote(HistoryId history, uint64_t number, std::string_view text,
                            const Caller& caller) {
  // The note's text may name a patient: only that a note was written is recorded.
  Status s = DoSetNote(history, number, text, caller);
  Audit(caller, AuditOp::kNote, s, AuditPathOfHistory(history), number,
        text.empty() ? "cleared" : "");
  return s;
}

}  // namespace medvfs::store
