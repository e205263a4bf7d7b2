// Deferred version digests: a commit of content that is mostly hole leaves its SHA-256 to be
// computed on request (VersionInfo::sha256_deferred), and equality of such contents is
// decided by comparing their stored bytes, never by hashing zeros nobody wrote.
#include "store/archive/archive_impl.h"
#include "store/log.h"

namespace medvfs::store {

namespace {
void AppendU64(std::string* key, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) key->push_back(static_cast<char>(v >> shift));
}
}  // namespace

std::string VersionDigestHistoryPrefix(HistoryId history) {
  std::string key(1, kVersionDigestPrefix);
  AppendU64(&key, history);
  return key;
}

std::string VersionDigestKey(HistoryId history, uint64_t number) {
  std::string key = VersionDigestHistoryPrefix(history);
  AppendU64(&key, number);
  return key;
}

Status ArchiveImpl::ResolveDeferredDigest(HistoryId history, VersionInfo* info) {
  if (!info->sha256_deferred) return Status::Ok();
  VersionDigestRecord digest;
  Status s = GetRecord(VersionDigestKey(history, info->number), &digest);
  if (s.code() == Code::kNotFound) return Status::Ok();  // not computed yet
  MEDVFS_RETURN_IF_ERROR(s);
  info->sha256 = digest.sha256;
  info->sha256_deferred = false;
  return Status::Ok();
}

StatusOr<bool> ArchiveImpl::SameContentAs(HistoryId history, const VersionRecord& current,
                                          const VersionInfo& other,
                                          const ExtentList& other_extents) {
  if (current.info.is_delete_marker() || current.info.size != other.size) return false;
  VersionInfo info = current.info;
  MEDVFS_RETURN_IF_ERROR(ResolveDeferredDigest(history, &info));
  if (!info.sha256_deferred && !other.sha256_deferred) return info.sha256 == other.sha256;
  ExtentList extents;
  MEDVFS_RETURN_IF_ERROR(LoadExtents(history, current, &extents));
  return SameContent(*chunks_, extents, other_extents);
}

StatusOr<Sha256Digest> ArchiveImpl::VersionSha256(HistoryId history, uint64_t number,
                                                  const std::function<bool()>& cancelled) {
  ExtentList extents;
  {
    std::lock_guard lock(mu_);
    VersionRecord record;
    MEDVFS_RETURN_IF_ERROR(LoadVersion(history, number, &record));
    if (record.info.is_delete_marker()) return Status::NotFound("a delete marker has no content");
    if (record.info.removed == ContentRemoval::kPurged) {
      return Status::NotFound("the version was purged: its SHA-256 went with it");
    }
    MEDVFS_RETURN_IF_ERROR(ResolveDeferredDigest(history, &record.info));
    if (!record.info.sha256_deferred) return record.info.sha256;
    if (record.info.content_removed()) {
      return Status::NotFound("the version was pruned before its SHA-256 was computed");
    }
    MEDVFS_RETURN_IF_ERROR(LoadExtents(history, record, &extents));
  }
  // The read pass runs without mu_: it takes time in proportion to the content's size.
  Sha256Digest sha256;
  MEDVFS_RETURN_IF_ERROR(HashExtents(*chunks_, extents, cancelled, &sha256));
  if (read_only()) return sha256;
  std::lock_guard lock(mu_);
  VersionRecord record;
  Status s = LoadVersion(history, number, &record);
  if (s.code() == Code::kNotFound) return sha256;  // dropped meanwhile: nothing to record on
  MEDVFS_RETURN_IF_ERROR(s);
  if (record.info.content_removed()) return sha256;  // removed meanwhile: nor here
  KvBatch batch;
  PutRecord(batch, VersionDigestKey(history, number), VersionDigestRecord{sha256});
  s = WriteBatchLocked(batch);
  if (!s.ok()) {
    // The digest is right; only remembering it failed (a full disk): the next request
    // computes it again.
    MEDVFS_LOG_ERROR("history %llu version %llu: the computed digest could not be recorded: %s",
                     static_cast<unsigned long long>(history),
                     static_cast<unsigned long long>(number), s.ToString().c_str());
  }
  return sha256;
}

}  // namespace medvfs::store
