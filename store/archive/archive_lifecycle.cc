// Lifecycle: retention rules, legal holds, prune and purge (DESIGN.md section 7).
//
// A version's content is removed by RemoveContentLocked: its extent groups move to
// kDroppedExtentPrefix (garbage collection drops their chunks and clears them) and its
// version record stays, marked with who removed it and when (ContentRemoval). A purge also
// deletes the version's tags, notes and digest record and clears its SHA-256 and
// SOPInstanceUID, then collects garbage so that the chunks leave the pack files, and compacts
// the database so that the deleted records leave its table files.
//
// Every decision (what a rule or hold keeps, whether a version is current) is taken under an
// exclusive mu_ together with the removal it allows, history by history: a hold set or a
// version committed meanwhile is always seen.
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "store/archive/archive_impl.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kSecondsPerDay = 86'400;

// now - age_s, in nanoseconds, saturating (ages may be kRetainForever).
int64_t TimeBefore(int64_t now_ns, int64_t age_s) {
  if (age_s > INT64_MAX / kNsPerSecond) return INT64_MIN;
  const int64_t age_ns = age_s * kNsPerSecond;
  if (now_ns < INT64_MIN + age_ns) return INT64_MIN;
  return now_ns - age_ns;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

int64_t DayOf(int64_t time_ns) { return FloorDiv(FloorDiv(time_ns, kNsPerSecond), kSecondsPerDay); }
// ISO weeks start on Monday; 1970-01-01 was a Thursday.
int64_t WeekOf(int64_t time_ns) { return FloorDiv(DayOf(time_ns) + 3, 7); }
int64_t MonthOf(int64_t time_ns) {
  const time_t seconds = static_cast<time_t>(FloorDiv(time_ns, kNsPerSecond));
  tm parts{};
  gmtime_r(&seconds, &parts);
  return int64_t{parts.tm_year} * 12 + parts.tm_mon;
}

// Keeps, going from the newest version back, the newest version of each of the last `count`
// buckets (days, weeks, months) that have versions, as restic and borg do.
template <typename BucketOf>
void KeepNewestPerBucket(const std::vector<const VersionInfo*>& newest_first, uint64_t count,
                         BucketOf bucket_of, std::set<uint64_t>* keep) {
  std::optional<int64_t> last;
  for (const VersionInfo* version : newest_first) {
    if (count == 0) return;
    const int64_t bucket = bucket_of(version->time_ns);
    if (last == bucket) continue;
    last = bucket;
    keep->insert(version->number);
    --count;
  }
}

std::string FormatAge(int64_t age_s) {
  if (age_s == kRetainForever) return "for ever";
  if (age_s % kSecondsPerDay == 0) return std::to_string(age_s / kSecondsPerDay) + " days";
  return std::to_string(age_s) + " seconds";
}

std::string DescribeRule(const RetentionRule& rule) {
  return std::string(RetentionModeName(rule.mode)) + ", " + FormatAge(rule.min_age_s);
}

}  // namespace

// --- what applies where ---------------------------------------------------------------------

Status ArchiveImpl::LoadLifecycle(Lifecycle* out) const {
  *out = Lifecycle{};
  MEDVFS_RETURN_IF_ERROR(ScanRecords<RetentionRule>(
      std::string(1, kRetentionPrefix), [&](std::string_view key, const RetentionRule& rule) {
        RetentionRule copy = rule;
        copy.dir = KeyU64(key, 1);
        out->rules[copy.dir] = std::move(copy);
        return true;
      }));
  return ScanRecords<LegalHold>(std::string(1, kHoldPrefix),
                                [&](std::string_view key, const LegalHold& hold) {
                                  if (key.size() != 10)
                                    return true;  // not a hold record (verify reports it)
                                  LegalHold copy = hold;
                                  const uint64_t id = KeyU64(key, 2);
                                  if (key[1] == kHoldOnFile) {
                                    copy.history = id;
                                    out->file_holds[id] = std::move(copy);
                                  } else {
                                    copy.dir = id;
                                    out->dir_holds[id] = std::move(copy);
                                  }
                                  return true;
                                });
}

std::vector<InodeId> ArchiveImpl::DirChain(InodeId dir, bool* broken) {
  std::vector<InodeId> chain;
  *broken = false;
  for (int depth = 0; dir != 0 && dir != kRootInode && depth < 4096; ++depth) {
    chain.push_back(dir);
    InodeRecord record;
    if (!LoadInode(dir, &record).ok()) {
      *broken = true;  // a removed directory: where it was is not known any more
      break;
    }
    dir = record.parent;
  }
  chain.push_back(kRootInode);
  return chain;
}

ArchiveImpl::HistoryLifecycle ArchiveImpl::LifecycleOf(const Lifecycle& lifecycle,
                                                       HistoryId history,
                                                       const HistoryRecord& record) {
  HistoryLifecycle applies;
  bool broken = false;
  applies.dirs = DirChain(record.last_parent, &broken);
  if (auto it = lifecycle.file_holds.find(history); it != lifecycle.file_holds.end()) {
    applies.hold = &it->second;
  }
  if (broken) {
    // The file was last linked in a directory since removed (rm -r): which directories were
    // above it is not known. Removing a directory must not take its files out of a hold or a
    // rule, so every directory hold and every rule applies to them.
    for (const auto& [dir, hold] : lifecycle.dir_holds) {
      if (applies.hold == nullptr) applies.hold = &hold;
    }
    for (const auto& [dir, rule] : lifecycle.rules) applies.rules.push_back(&rule);
    return applies;
  }
  for (InodeId dir : applies.dirs) {
    if (applies.hold == nullptr) {
      if (auto it = lifecycle.dir_holds.find(dir); it != lifecycle.dir_holds.end()) {
        applies.hold = &it->second;
      }
    }
    if (auto it = lifecycle.rules.find(dir); it != lifecycle.rules.end()) {
      applies.rules.push_back(&it->second);
    }
  }
  return applies;
}

// The rule that keeps a version made at time_ns (the strictest of those that do), or null.
const RetentionRule* ArchiveImpl::RetainingRule(const HistoryLifecycle& applies, int64_t time_ns,
                                                int64_t now, bool compliance_only) {
  const RetentionRule* retaining = nullptr;
  for (const RetentionRule* rule : applies.rules) {
    if (compliance_only && rule->mode != RetentionMode::kCompliance) continue;
    if (time_ns <= TimeBefore(now, rule->min_age_s)) continue;  // old enough for this one
    if (retaining == nullptr || rule->min_age_s > retaining->min_age_s) retaining = rule;
  }
  return retaining;
}

Status ArchiveImpl::FillHolds(HistoryId history, const std::vector<VersionInfo*>& versions) {
  // Holds are rare: one empty prefix scan when there is none.
  Lifecycle lifecycle;
  MEDVFS_RETURN_IF_ERROR(LoadLifecycle(&lifecycle));
  if (lifecycle.file_holds.empty() && lifecycle.dir_holds.empty()) return Status::Ok();
  HistoryRecord record;
  MEDVFS_RETURN_IF_ERROR(GetRecord(HistoryKey(history), &record));
  std::shared_lock lock(mu_);
  const HistoryLifecycle applies = LifecycleOf(lifecycle, history, record);
  if (applies.hold == nullptr) return Status::Ok();
  for (VersionInfo* version : versions) {
    if (!version->is_delete_marker() && !version->content_removed()) {
      version->hold = applies.hold->reason;
    }
  }
  return Status::Ok();
}

Status ArchiveImpl::CountHeldVersions(uint64_t* held) {
  *held = 0;
  Lifecycle lifecycle;
  MEDVFS_RETURN_IF_ERROR(LoadLifecycle(&lifecycle));
  if (lifecycle.file_holds.empty() && lifecycle.dir_holds.empty()) return Status::Ok();
  std::vector<std::pair<HistoryId, HistoryRecord>> histories;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<HistoryRecord>(
      std::string(1, kHistoryPrefix), [&](std::string_view key, const HistoryRecord& record) {
        histories.emplace_back(KeyU64(key, 1), record);
        return true;
      }));
  for (const auto& [history, record] : histories) {
    {
      std::shared_lock lock(mu_);
      if (LifecycleOf(lifecycle, history, record).hold == nullptr) continue;
    }
    MEDVFS_RETURN_IF_ERROR(ScanRecords<VersionRecord>(
        VersionPrefix(history), [&](std::string_view, const VersionRecord& version) {
          if (!version.info.is_delete_marker() && !version.info.content_removed()) ++*held;
          return true;
        }));
  }
  return Status::Ok();
}

// --- removing content -----------------------------------------------------------------------

Status ArchiveImpl::RemoveContentLocked(KvBatch& batch, HistoryId history, VersionRecord* version,
                                        ContentRemoval how, const Caller& caller,
                                        std::string_view reason, int64_t now) {
  VersionInfo& info = version->info;
  const uint64_t number = info.number;
  for (uint32_t group = 0; group < version->group_offsets.size(); ++group) {
    std::vector<Extent> extents;
    Status got = GetRecord(ExtentKey(history, number, group), &extents);
    if (got.code() == Code::kNotFound) continue;
    MEDVFS_RETURN_IF_ERROR(got);
    PutRecord(batch, DroppedExtentKey(history, number, group), extents);
    batch.Delete(Family::kMeta, ExtentKey(history, number, group));
  }
  version->extent_count = 0;
  version->group_offsets.clear();
  // A digest computed after a deferred commit stays with the record (prune keeps it).
  MEDVFS_RETURN_IF_ERROR(ResolveDeferredDigest(history, &info));
  batch.Delete(Family::kMeta, VersionDigestKey(history, number));
  if (how == ContentRemoval::kPurged) {
    batch.Delete(Family::kMeta, TagsKey(history, number));
    MEDVFS_RETURN_IF_ERROR(kv_->Scan(Family::kMeta, NotePrefix(history, number),
                                     [&](std::string_view key, std::string_view) {
                                       batch.Delete(Family::kMeta, key);
                                       return true;
                                     }));
    info.sha256 = {};
    info.sha256_deferred = false;
    info.sop_instance_uid.clear();
    info.sop_instance_uid_reused = false;
    info.has_dicom_tags = false;
    info.note.clear();
    info.removed_reason = std::string(reason);
  }
  info.removed = how;
  info.removed_time_ns = now;
  info.removed_by_uid = caller.uid;
  info.removed_by_program = caller.program;
  PutRecord(batch, VersionKey(history, number), *version);
  return Status::Ok();
}

// --- prune ----------------------------------------------------------------------------------

StatusOr<PruneResult> ArchiveImpl::Prune(const PruneRequest& request, const Caller& caller) {
  const bool keeps = request.keep_last != 0 || request.keep_within_s.has_value() ||
                     request.keep_daily != 0 || request.keep_weekly != 0 ||
                     request.keep_monthly != 0;
  Status s;
  if (!keeps && !request.deleted_older_than_s) {
    s = Status::Invalid("give at least one --keep option or --deleted-older-than");
  } else if ((request.keep_within_s && *request.keep_within_s < 0) ||
             (request.deleted_older_than_s && *request.deleted_older_than_s < 0)) {
    s = Status::Invalid("a duration cannot be negative");
  } else if (!request.dry_run) {
    s = CheckWritable();
  }
  if (!s.ok()) {
    Audit(caller, AuditOp::kPrune, s, "/", 0, request.dry_run ? "dry run" : "");
    return s;
  }
  PruneResult result;
  result.dry_run = request.dry_run;
  StatusOr<PruneResult> pruned = DoPrune(request, caller, &result);
  std::string detail = std::string(request.dry_run ? "dry run: would remove " : "removed ") +
                       std::to_string(result.removed.size()) + " versions of " +
                       std::to_string(result.files) + " files; kept " +
                       std::to_string(result.kept) + ", held " + std::to_string(result.held) +
                       ", retained " + std::to_string(result.retained);
  std::string scope = "/";
  if (request.history != 0) {
    scope = AuditPathOfHistory(request.history);
  } else if (request.dir != kRootInode) {
    scope = AuditPathOf(request.dir);
  }
  Audit(caller, AuditOp::kPrune, pruned.status(), std::move(scope), 0, std::move(detail));
  return pruned;
}

StatusOr<PruneResult> ArchiveImpl::DoPrune(const PruneRequest& request, const Caller& caller,
                                           PruneResult* result) {
  std::vector<HistoryId> histories;
  if (request.history != 0) {
    histories.push_back(request.history);
  } else {
    MEDVFS_RETURN_IF_ERROR(ScanRecords<HistoryRecord>(
        std::string(1, kHistoryPrefix), [&](std::string_view key, const HistoryRecord&) {
          histories.push_back(KeyU64(key, 1));
          return true;
        }));
  }
  const int64_t now = NowNs();
  for (HistoryId history : histories) {
    std::vector<RemovedVersion> removed_now;
    {
      std::unique_lock lock(mu_);
      if (!request.dry_run) MEDVFS_RETURN_IF_ERROR(CheckWritable());
      MEDVFS_RETURN_IF_ERROR(
          PruneHistoryLocked(history, request, now, caller, result, &removed_now));
    }
    if (!request.dry_run) {
      for (const RemovedVersion& removed : removed_now) {
        Audit(caller, AuditOp::kPrune, Status::Ok(), removed.path, removed.number);
      }
    }
    for (RemovedVersion& removed : removed_now) {
      result->removed_bytes += removed.size;
      result->removed.push_back(std::move(removed));
    }
  }
  if (!request.dry_run) MEDVFS_RETURN_IF_ERROR(kv_->SyncWal());
  return *result;
}

Status ArchiveImpl::PruneHistoryLocked(HistoryId history_id, const PruneRequest& request,
                                       int64_t now, const Caller& caller, PruneResult* result,
                                       std::vector<RemovedVersion>* removed) {
  HistoryRecord history;
  Status s = GetRecord(HistoryKey(history_id), &history);
  if (s.code() == Code::kNotFound && request.history == 0) return Status::Ok();  // erased since
  if (s.code() == Code::kNotFound) return Status::NotFound("no such file history");
  MEDVFS_RETURN_IF_ERROR(s);
  Lifecycle lifecycle;
  MEDVFS_RETURN_IF_ERROR(LoadLifecycle(&lifecycle));
  const HistoryLifecycle applies = LifecycleOf(lifecycle, history_id, history);
  if (request.history == 0 && request.dir != kRootInode &&
      std::find(applies.dirs.begin(), applies.dirs.end(), request.dir) == applies.dirs.end()) {
    return Status::Ok();  // outside the scope
  }
  std::vector<VersionRecord> versions;
  MEDVFS_RETURN_IF_ERROR(ScanRecords<VersionRecord>(
      VersionPrefix(history_id), [&](std::string_view, const VersionRecord& version) {
        versions.push_back(version);
        return true;
      }));
  if (versions.empty()) return Status::Ok();
  ++result->files;
  uint64_t current = 0;
  if (history.live_ino != 0) {
    InodeRecord node;
    MEDVFS_RETURN_IF_ERROR(LoadInode(history.live_ino, &node));
    current = node.version;
  }
  std::vector<const VersionInfo*> newest_first;
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
    if (!it->info.is_delete_marker() && !it->info.content_removed()) {
      newest_first.push_back(&it->info);
    }
  }
  const VersionInfo& last = versions.back().info;
  const bool deleted_long_ago = request.deleted_older_than_s && history.live_ino == 0 &&
                                last.is_delete_marker() &&
                                last.time_ns <= TimeBefore(now, *request.deleted_older_than_s);
  const bool keeps = request.keep_last != 0 || request.keep_within_s.has_value() ||
                     request.keep_daily != 0 || request.keep_weekly != 0 ||
                     request.keep_monthly != 0;
  std::set<uint64_t> keep;
  if (!deleted_long_ago) {
    if (!keeps) {
      result->kept += newest_first.size();
      return Status::Ok();
    }
    for (size_t i = 0; i < newest_first.size() && i < request.keep_last; ++i) {
      keep.insert(newest_first[i]->number);
    }
    if (request.keep_within_s) {
      const int64_t since = TimeBefore(now, *request.keep_within_s);
      for (const VersionInfo* version : newest_first) {
        if (version->time_ns > since) keep.insert(version->number);
      }
    }
    KeepNewestPerBucket(newest_first, request.keep_daily, DayOf, &keep);
    KeepNewestPerBucket(newest_first, request.keep_weekly, WeekOf, &keep);
    KeepNewestPerBucket(newest_first, request.keep_monthly, MonthOf, &keep);
  }
  if (current != 0) keep.insert(current);  // never the current version of a live file

  KvBatch batch;
  std::string path;
  for (VersionRecord& version : versions) {
    const VersionInfo& info = version.info;
    if (info.is_delete_marker() || info.content_removed()) continue;
    if (keep.contains(info.number)) {
      ++result->kept;
      continue;
    }
    if (applies.hold != nullptr) {
      ++result->held;
      continue;
    }
    if (RetainingRule(applies, info.time_ns, now, /*compliance_only=*/false) != nullptr) {
      ++result->retained;
      continue;
    }
    if (path.empty()) {
      auto found = HistoryPathLocked(history_id);
      path = found.ok() ? *found : "(history " + std::to_string(history_id) + ")";
    }
    removed->push_back({history_id, info.number, info.time_ns, info.size, path});
    if (!request.dry_run) {
      MEDVFS_RETURN_IF_ERROR(RemoveContentLocked(batch, history_id, &version,
                                                 ContentRemoval::kPruned, caller, "", now));
    }
  }
  if (request.dry_run || batch.count() == 0) return Status::Ok();
  return WriteBatchLocked(batch);
}

// --- purge ----------------------------------------------------------------------------------

Status ArchiveImpl::PurgeTargetsLocked(const PurgeRequest& request, int64_t now,
                                       HistoryRecord* history, std::vector<VersionRecord>* targets,
                                       bool* live_current_included) {
  targets->clear();
  *live_current_included = false;
  Status s = GetRecord(HistoryKey(request.history), history);
  if (s.code() == Code::kNotFound) return Status::NotFound("no such file history");
  MEDVFS_RETURN_IF_ERROR(s);
  uint64_t current = 0;
  if (history->live_ino != 0) {
    InodeRecord node;
    MEDVFS_RETURN_IF_ERROR(LoadInode(history->live_ino, &node));
    current = node.version;
    if (!request.number && node.nlink > 1) {
      return Status(Code::kBusy,
                    "the file has other names (hard links): unlink them first, then purge");
    }
  }
  if (request.number) {
    VersionRecord version;
    s = LoadVersion(request.history, *request.number, &version);
    if (s.code() == Code::kNotFound) return Status::NotFound("no such version");
    MEDVFS_RETURN_IF_ERROR(s);
    if (version.info.is_delete_marker()) {
      return Status::NotFound("that version is a delete marker; it has no content");
    }
    if (version.info.number == current) {
      return Status(Code::kBusy,
                    "that is the current version of a live file: save a new version first, or "
                    "purge the whole file");
    }
    if (version.info.removed != ContentRemoval::kPurged) targets->push_back(std::move(version));
  } else {
    MEDVFS_RETURN_IF_ERROR(ScanRecords<VersionRecord>(
        VersionPrefix(request.history), [&](std::string_view, const VersionRecord& version) {
          if (!version.info.is_delete_marker() && version.info.removed != ContentRemoval::kPurged) {
            targets->push_back(version);
          }
          return true;
        }));
    *live_current_included = current != 0;
  }
  Lifecycle lifecycle;
  MEDVFS_RETURN_IF_ERROR(LoadLifecycle(&lifecycle));
  const HistoryLifecycle applies = LifecycleOf(lifecycle, request.history, *history);
  if (applies.hold != nullptr && !targets->empty()) {
    return Status(Code::kPermission, "the file is under a legal hold (" + applies.hold->reason +
                                         "): release the hold first");
  }
  for (const VersionRecord& version : *targets) {
    if (const RetentionRule* rule =
            RetainingRule(applies, version.info.time_ns, now, /*compliance_only=*/true)) {
      return Status(Code::kPermission, "version " + std::to_string(version.info.number) +
                                           " is under a compliance retention rule (" +
                                           DescribeRule(*rule) + ") that nobody can shorten");
    }
  }
  return Status::Ok();
}

StatusOr<PurgeResult> ArchiveImpl::Purge(const PurgeRequest& request, const Caller& caller) {
  PurgeResult result;
  result.dry_run = request.dry_run;
  StatusOr<PurgeResult> purged = DoPurge(request, caller, &result);
  const std::string path = AuditPathOfHistory(request.history);
  if (!purged.ok() || request.dry_run) {
    Audit(caller, AuditOp::kPurge, purged.status(), path, request.number.value_or(0),
          (request.dry_run ? "dry run; reason: " : "reason: ") + request.reason);
  }
  return purged;
}

StatusOr<PurgeResult> ArchiveImpl::DoPurge(const PurgeRequest& request, const Caller& caller,
                                           PurgeResult* result) {
  if (request.reason.empty()) return Status::Invalid("a purge needs a reason");
  if (!request.dry_run) MEDVFS_RETURN_IF_ERROR(CheckWritable());
  // A purge waits for a running collection or backup (rather than kBusy), then runs its own.
  std::unique_lock gc_lock(gc_mu_, std::defer_lock);
  if (!request.dry_run) gc_lock.lock();
  const int64_t now = NowNs();
  HistoryRecord history;
  std::vector<VersionRecord> targets;
  bool unlink_first = false;
  {
    std::shared_lock lock(mu_);
    MEDVFS_RETURN_IF_ERROR(PurgeTargetsLocked(request, now, &history, &targets, &unlink_first));
    auto path = HistoryPathLocked(request.history);
    for (const VersionRecord& version : targets) {
      result->removed.push_back({request.history, version.info.number, version.info.time_ns,
                                 version.info.size, path.ok() ? *path : ""});
    }
  }
  result->unlinked = unlink_first;
  if (request.dry_run) return *result;
  if (unlink_first) {
    MEDVFS_RETURN_IF_ERROR(Unlink(history.last_parent, history.last_name, caller));
  }
  std::vector<RemovedVersion> removed;
  {
    std::unique_lock lock(mu_);
    MEDVFS_RETURN_IF_ERROR(CheckWritable());
    bool still_live = false;
    MEDVFS_RETURN_IF_ERROR(PurgeTargetsLocked(request, now, &history, &targets, &still_live));
    if (still_live) {
      return Status(Code::kBusy,
                    "the file has other names (hard links) that keep it live: unlink them first");
    }
    auto path = HistoryPathLocked(request.history);
    KvBatch batch;
    for (VersionRecord& version : targets) {
      removed.push_back({request.history, version.info.number, version.info.time_ns,
                         version.info.size, path.ok() ? *path : ""});
      MEDVFS_RETURN_IF_ERROR(RemoveContentLocked(
          batch, request.history, &version, ContentRemoval::kPurged, caller, request.reason, now));
    }
    if (batch.count() != 0) MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  }
  for (const RemovedVersion& version : removed) {
    Audit(caller, AuditOp::kPurge, Status::Ok(), version.path, version.number,
          "reason: " + request.reason);
  }
  const bool nothing_left = removed.empty();
  result->removed = std::move(removed);
  MEDVFS_RETURN_IF_ERROR(kv_->SyncWal());
  // The bytes leave the pack files (those no other version shares), then the records' old
  // values leave the database's table files.
  GcRequest gc;
  gc.rewrite_packs_of_dropped = true;
  // Nothing left to purge: a purge run again after its collection failed. The chunks may be
  // out of the index already, their packs not yet rewritten: every pack with garbage is.
  if (nothing_left) gc.repack_garbage_percent = 0;
  MEDVFS_ASSIGN_OR_RETURN(result->gc, CollectGarbageLocked(gc, caller));
  Status compacted = kv_->CompactAll();
  if (!compacted.ok()) {
    return Status(compacted.code(), "the content is purged, but compacting the database failed (" +
                                        compacted.message() + "): run medvfs purge again");
  }
  return *result;
}

// --- retention rules ------------------------------------------------------------------------

StatusOr<std::vector<RetentionRule>> ArchiveImpl::ListRetention() {
  Lifecycle lifecycle;
  MEDVFS_RETURN_IF_ERROR(LoadLifecycle(&lifecycle));
  std::vector<RetentionRule> rules;
  std::shared_lock lock(mu_);
  for (auto& [dir, rule] : lifecycle.rules) {
    auto path = DirPathLocked(dir);
    rule.path = path.ok() ? *path : "(removed directory " + std::to_string(dir) + ")";
    rules.push_back(std::move(rule));
  }
  return rules;
}

Status ArchiveImpl::SetRetention(const RetentionRule& rule, const Caller& caller) {
  std::string detail;
  Status s = DoSetRetention(rule, caller, &detail);
  Audit(caller, AuditOp::kRetention, s, AuditPathOf(rule.dir), 0, std::move(detail));
  return s;
}

Status ArchiveImpl::DoSetRetention(const RetentionRule& rule, const Caller& caller,
                                   std::string* detail) {
  *detail = rule.min_age_s == 0 ? std::string("remove") : "set " + DescribeRule(rule);
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  if (rule.min_age_s < 0) return Status::Invalid("a retention age cannot be negative");
  if (rule.mode != RetentionMode::kGovernance && rule.mode != RetentionMode::kCompliance) {
    return Status::Invalid("unknown retention mode");
  }
  std::unique_lock lock(mu_);
  InodeRecord dir;
  MEDVFS_RETURN_IF_ERROR(LoadDir(rule.dir, &dir));
  RetentionRule existing;
  Status s = GetRecord(RetentionKey(rule.dir), &existing);
  if (!s.ok() && s.code() != Code::kNotFound) return s;
  const bool had = s.ok();
  if (had) {
    *detail += " (was " + DescribeRule(existing) + ")";
    const bool shorter =
        rule.min_age_s < existing.min_age_s ||
        (existing.mode == RetentionMode::kCompliance && rule.mode != RetentionMode::kCompliance);
    if (shorter && existing.mode == RetentionMode::kCompliance) {
      return Status(Code::kPermission,
                    "the rule is a compliance one (" + DescribeRule(existing) +
                        "): it can be lengthened, but nobody can shorten or remove it");
    }
  }
  if (rule.min_age_s == 0 && rule.mode == RetentionMode::kCompliance) {
    return Status::Invalid("a compliance rule needs an age");
  }
  KvBatch batch;
  if (rule.min_age_s == 0) {
    if (!had) return Status::NotFound("there is no retention rule on that directory");
    batch.Delete(Family::kMeta, RetentionKey(rule.dir));
  } else {
    RetentionRule stored = rule;
    stored.set_time_ns = NowNs();
    stored.set_by_uid = caller.uid;
    PutRecord(batch, RetentionKey(rule.dir), stored);
  }
  MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  lock.unlock();
  return kv_->SyncWal();
}

// --- legal holds ----------------------------------------------------------------------------

StatusOr<std::vector<LegalHold>> ArchiveImpl::ListHolds() {
  Lifecycle lifecycle;
  MEDVFS_RETURN_IF_ERROR(LoadLifecycle(&lifecycle));
  std::vector<LegalHold> holds;
  std::shared_lock lock(mu_);
  for (auto& [dir, hold] : lifecycle.dir_holds) {
    auto path = DirPathLocked(dir);
    hold.path = path.ok() ? *path : "(removed directory " + std::to_string(dir) + ")";
    holds.push_back(std::move(hold));
  }
  for (auto& [history, hold] : lifecycle.file_holds) {
    auto path = HistoryPathLocked(history);
    hold.path = path.ok() ? *path : "(history " + std::to_string(history) + ")";
    holds.push_back(std::move(hold));
  }
  std::sort(holds.begin(), holds.end(),
            [](const LegalHold& a, const LegalHold& b) { return a.path < b.path; });
  return holds;
}

Status ArchiveImpl::SetHold(const LegalHold& hold, const Caller& caller) {
  Status s = DoSetHold(hold, caller);
  const std::string path =
      hold.history != 0 ? AuditPathOfHistory(hold.history) : AuditPathOf(hold.dir);
  Audit(caller, AuditOp::kHold, s, path, 0, "reason: " + hold.reason);
  return s;
}

Status ArchiveImpl::DoSetHold(const LegalHold& hold, const Caller& caller) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  if ((hold.history == 0) == (hold.dir == 0)) {
    return Status::Invalid("a hold is on one file or one directory");
  }
  if (hold.reason.empty()) return Status::Invalid("a legal hold needs a reason");
  std::unique_lock lock(mu_);
  if (hold.history != 0) {
    HistoryRecord history;
    Status s = GetRecord(HistoryKey(hold.history), &history);
    if (s.code() == Code::kNotFound) return Status::NotFound("no such file history");
    MEDVFS_RETURN_IF_ERROR(s);
  } else {
    InodeRecord dir;
    MEDVFS_RETURN_IF_ERROR(LoadDir(hold.dir, &dir));
  }
  LegalHold stored;
  stored.reason = hold.reason;
  stored.time_ns = NowNs();
  stored.uid = caller.uid;
  stored.program = caller.program;
  stored.history = hold.history;
  stored.dir = hold.dir;
  KvBatch batch;
  PutRecord(batch, HoldKey(stored), stored);
  MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  lock.unlock();
  return kv_->SyncWal();
}

Status ArchiveImpl::ReleaseHold(HistoryId history, InodeId dir, const Caller& caller) {
  Status s = DoReleaseHold(history, dir);
  Audit(caller, AuditOp::kHoldRelease, s,
        history != 0 ? AuditPathOfHistory(history) : AuditPathOf(dir));
  return s;
}

Status ArchiveImpl::DoReleaseHold(HistoryId history, InodeId dir) {
  MEDVFS_RETURN_IF_ERROR(CheckWritable());
  if ((history == 0) == (dir == 0)) return Status::Invalid("a hold is on one file or directory");
  LegalHold key_of;
  key_of.history = history;
  key_of.dir = dir;
  const std::string key = HoldKey(key_of);
  std::unique_lock lock(mu_);
  LegalHold existing;
  Status s = GetRecord(key, &existing);
  if (s.code() == Code::kNotFound) return Status::NotFound("no legal hold on it");
  MEDVFS_RETURN_IF_ERROR(s);
  KvBatch batch;
  batch.Delete(Family::kMeta, key);
  MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
  lock.unlock();
  return kv_->SyncWal();
}

}  // namespace medvfs::store
