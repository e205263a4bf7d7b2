// File content: open handles, reads, writes, and the commit of a version.
#include <fcntl.h>
#include <sys/stat.h>

#include "store/archive/archive_impl.h"
#include "store/engine/chunk_settle.h"
#include "store/log.h"

namespace medvfs::store {

Status ArchiveImpl::LoadVersion(HistoryId history, uint64_t number, VersionRecord* record) {
  Status s = GetRecord(VersionKey(history, number), record);
  if (s.code() == Code::kNotFound) return Status::NotFound("no such version");
  return s;
}

Status ArchiveImpl::LoadExtents(HistoryId history, const VersionRecord& record, ExtentList* list) {
  list->Clear();
  for (uint32_t group = 0; group < record.group_offsets.size(); ++group) {
    std::vector<Extent> extents;
    Status s = GetRecord(ExtentKey(history, record.info.number, group), &extents);
    if (s.code() == Code::kNotFound) return Status::Corruption("an extent group is missing");
    MEDVFS_RETURN_IF_ERROR(s);
    for (const Extent& e : extents) list->Append(e);
  }
  if (list->size() != record.info.size || list->extents().size() != record.extent_count) {
    MEDVFS_LOG_ERROR("history %llu version %llu: extents do not add up to its size",
                     static_cast<unsigned long long>(history),
                     static_cast<unsigned long long>(record.info.number));
    return Status::Corruption("a version's chunk list does not match its size");
  }
  return Status::Ok();
}

void ArchiveImpl::PutVersion(KvBatch& batch, HistoryId history, const VersionRecord& record,
                             const ExtentList& extents) {
  VersionRecord stored = record;
  stored.info.size = extents.size();
  stored.extent_count = extents.extents().size();
  stored.group_offsets.clear();
  const auto& all = extents.extents();
  for (size_t begin = 0; begin < all.size(); begin += kExtentsPerGroup) {
    const size_t end = std::min(all.size(), begin + kExtentsPerGroup);
    stored.group_offsets.push_back(extents.StartOf(begin));
    std::vector<Extent> group(all.begin() + static_cast<std::ptrdiff_t>(begin),
                              all.begin() + static_cast<std::ptrdiff_t>(end));
    PutRecord(batch,
              ExtentKey(history, stored.info.number,
                        static_cast<uint32_t>(stored.group_offsets.size() - 1)),
              group);
  }
  PutRecord(batch, VersionKey(history, stored.info.number), stored);
}

namespace {

// A stored version, read only.
class VersionHandle final : public FileHandle {
 public:
  VersionHandle(ChunkStore* chunks, InodeId ino, ExtentList extents)
      : chunks_(chunks), ino_(ino), extents_(std::move(extents)) {}
  InodeId ino() const override { return ino_; }
  StatusOr<size_t> Read(uint64_t offset, std::span<char> out) override {
    return ReadExtents(*chunks_, extents_, offset, out);
  }
  StatusOr<size_t> Write(uint64_t, std::string_view) override {
    return Status::ReadOnly("versions are read-only");
  }
  Status Flush(const Caller&) override { return Status::Ok(); }
  Status Sync(const Caller&) override { return Status::Ok(); }

 private:
  ChunkStore* chunks_;
  InodeId ino_;
  ExtentList extents_;
};

}  // namespace

// Live content. A handle that may write shares its inode's WriteSession with every other
// writer; a read-only handle reads through a session when one exists (so it sees writes that
// are not committed yet, as POSIX requires) and from the current version otherwise.
class LiveHandle final : public FileHandle {
 public:
  LiveHandle(ArchiveImpl* archive, InodeId ino, std::shared_ptr<WriteSession> session,
             Caller opener)
      : archive_(archive), ino_(ino), session_(std::move(session)), opener_(std::move(opener)) {}
  ~LiveHandle() override {
    if (session_) archive_->ReleaseWriter(ino_, session_, opener_);
  }
  InodeId ino() const override { return ino_; }

  StatusOr<size_t> Read(uint64_t offset, std::span<char> out) override {
    if (session_) {
      std::lock_guard lock(session_->mu);
      return session_->content.Read(offset, out);
    }
    std::lock_guard lock(cache_mu_);
    return archive_->ReadLive(ino_, offset, out, &cached_extents_, &cached_key_);
  }

  StatusOr<size_t> Write(uint64_t offset, std::string_view data) override {
    if (!session_) return Status(Code::kAccess, "handle not open for writing");
    std::lock_guard lock(session_->mu);
    MEDVFS_RETURN_IF_ERROR(session_->content.Write(offset, data));
    session_->dirty = true;
    session_->size = session_->content.size();
    session_->mtime_ns = NowNs();
    return data.size();
  }

  Status Flush(const Caller& caller) override {
    if (!session_) return Status::Ok();
    return archive_->Commit(ino_, session_, caller);
  }
  // fsync(): the commit, durable before it returns also within a commit interval (and for a
  // read-only handle: what an earlier close committed).
  Status Sync(const Caller& caller) override {
    MEDVFS_RETURN_IF_ERROR(Flush(caller));
    return archive_->commits_deferred() ? archive_->SyncAll() : Status::Ok();
  }

 private:
  ArchiveImpl* archive_;
  InodeId ino_;
  std::shared_ptr<WriteSession> session_;
  const Caller opener_;  // who opened the handle: a commit at release is theirs
  std::mutex cache_mu_;
  ExtentList cached_extents_;  // GUARDED_BY(cache_mu_): content of cached_key_
  uint64_t cached_key_ = 0;    // GUARDED_BY(cache_mu_): (history << 32) ^ version loaded
};

StatusOr<std::unique_ptr<FileHandle>> ArchiveImpl::Open(InodeId ino, int flags,
                                                        const Caller& caller) {
  const int access = flags & O_ACCMODE;
  const bool writes = access == O_WRONLY || access == O_RDWR || (flags & O_TRUNC);
  if (writes) MEDVFS_RETURN_IF_ERROR(CheckWritable());
  std::shared_ptr<WriteSession> session;
  {
    std::lock_guard lock(mu_);
    InodeRecord node;
    MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
    if (S_ISDIR(node.mode)) return Status(Code::kIsDirectory, "is a directory");
    if (!S_ISREG(node.mode)) return Status::Invalid("not a regular file");
    if (!writes) return std::unique_ptr<FileHandle>(new LiveHandle(this, ino, nullptr, caller));
    auto it = sessions_.find(ino);
    if (it != sessions_.end()) {
      session = it->second;
    } else {
      ExtentList base;
      if (node.version > 0) {
        VersionRecord current;
        MEDVFS_RETURN_IF_ERROR(LoadVersion(node.history, node.version, &current));
        MEDVFS_RETURN_IF_ERROR(LoadExtents(node.history, current, &base));
      }
      session = std::make_shared<WriteSession>(chunks_.get(), std::move(base),
                                               options_.max_dirty_bytes_per_file, &dirty_budget_);
      session->size = session->content.size();
      // A new file (or a deleted name brought back) gets its first version at close even
      // when nothing is written to it.
      session->dirty = node.version == 0;
      sessions_[ino] = session;
    }
    ++session->writers;
  }
  auto handle = std::unique_ptr<FileHandle>(new LiveHandle(this, ino, session, caller));
  if (flags & O_TRUNC) {
    // Marks mtime and ctime for update even when the file is empty already (POSIX); an
    // unchanged content makes no new version at the commit.
    std::lock_guard session_lock(session->mu);
    if (session->content.size() != 0) MEDVFS_RETURN_IF_ERROR(session->content.Truncate(0));
    session->dirty = true;
    session->size = 0;
    session->mtime_ns = NowNs();
  }
  return handle;
}

StatusOr<size_t> ArchiveImpl::ReadLive(InodeId ino, uint64_t offset, std::span<char> out,
                                       ExtentList* cache, uint64_t* cache_key) {
  std::shared_ptr<WriteSession> session;
  HistoryId history = 0;
  uint64_t version = 0;
  {
    std::shared_lock lock(mu_);
    auto it = sessions_.find(ino);
    if (it != sessions_.end()) {
      session = it->second;
    } else {
      InodeRecord node;
      MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
      history = node.history;
      version = node.version;
      const uint64_t key = (history << 32) ^ version;
      if (version > 0 && key != *cache_key) {
        VersionRecord record;
        MEDVFS_RETURN_IF_ERROR(LoadVersion(history, version, &record));
        // The current version of the history's live inode is the history's last: a later
        // one means older records were put back over newer. (An inode replaced by a rename
        // or unlinked while open is no longer the history's live one, and keeps its version.)
        VersionRecord later;
        Status next = GetRecord(VersionKey(history, version + 1), &later);
        HistoryRecord owner;
        if (next.code() != Code::kNotFound && !(next.ok() && later.info.is_delete_marker()) &&
            (!GetRecord(HistoryKey(history), &owner).ok() || owner.live_ino == ino)) {
          MEDVFS_LOG_ERROR(
              "inode %llu: version %llu is current but its history goes on (records put back "
              "from an older copy?)",
              static_cast<unsigned long long>(ino), static_cast<unsigned long long>(version));
          return Status::Corruption("the file's records are older than its history");
        }
        MEDVFS_RETURN_IF_ERROR(LoadExtents(history, record, cache));
        *cache_key = key;
      }
    }
  }
  if (session) {
    std::lock_guard session_lock(session->mu);
    return session->content.Read(offset, out);
  }
  if (version == 0) return size_t{0};
  return ReadExtents(*chunks_, *cache, offset, out);
}

Status ArchiveImpl::Commit(InodeId ino, const std::shared_ptr<WriteSession>& session,
                           const Caller& caller) {
  std::lock_guard session_lock(session->mu);
  return CommitLocked(ino, session, caller);
}

Status ArchiveImpl::CommitLocked(InodeId ino, const std::shared_ptr<WriteSession>& session,
                                 const Caller& caller) {
  if (!session->dirty) return Status::Ok();
  // A truncate's version is recorded by SetAttr (kTruncate, with the version).
  const bool audited = session->pending_op != Operation::kTruncate;
  uint64_t committed = 0;
  Status s = CommitVersion(ino, session, caller, &committed);
  if (audited && (!s.ok() || committed != 0)) {
    Audit(caller, AuditOp::kCommit, s, AuditPathOf(ino), committed);
  }
  return s;
}

Status ArchiveImpl::CommitVersion(InodeId ino, const std::shared_ptr<WriteSession>& session,
                                  const Caller& caller, uint64_t* committed) {
  *committed = 0;
  ExtentList content;
  VersionInfo made;
  Status s = session->content.Finalize(&content, &made.sha256, &made.sha256_deferred);
  if (!s.ok()) {
    MEDVFS_LOG_ERROR("inode %llu: storing content failed: %s", static_cast<unsigned long long>(ino),
                     s.ToString().c_str());
    return s;
  }
  made.size = content.size();
  // The chunks the content references are durable and indexed before the batch that refers
  // to them is written (commits that arrive together share the pack sync). Within a commit
  // interval they are indexed now and made durable by the next sync (ChunkStore::IndexWritten).
  s = commits_deferred() ? chunks_->IndexWritten() : chunks_->MakeDurable();
  if (!s.ok()) {
    MEDVFS_LOG_ERROR("inode %llu: making its chunks durable failed: %s",
                     static_cast<unsigned long long>(ino), s.ToString().c_str());
    return s;
  }
  // Tags are parsed from memory, before the archive lock; a file that does not parse just
  // has none (a save never fails because of parsing).
  const std::optional<DicomTags> tags = ParseContentTags(session->content);
  // Whether the content equals the current version's ("a save whose content equals the
  // current version adds no version"). When either digest is deferred, the contents are
  // compared instead (their stored bytes, never their holes), without mu_.
  HistoryId compared_history = 0;
  uint64_t compared_version = 0;
  bool same = false;
  {
    ExtentList current_extents;
    bool compare_bytes = false;
    {
      std::lock_guard lock(mu_);
      InodeRecord node;
      VersionRecord current;
      if (LoadInode(ino, &node).ok() && node.version > 0 &&
          LoadVersion(node.history, node.version, &current).ok() &&
          !current.info.is_delete_marker() && current.info.size == made.size &&
          ResolveDeferredDigest(node.history, &current.info).ok()) {
        compared_history = node.history;
        compared_version = node.version;
        if (!current.info.sha256_deferred && !made.sha256_deferred) {
          same = current.info.sha256 == made.sha256;
        } else {
          compare_bytes = LoadExtents(node.history, current, &current_extents).ok();
        }
      }
    }
    if (compare_bytes) {
      auto equal = SameContent(*chunks_, current_extents, content);
      if (!equal.ok()) {
        // Unreadable old bytes: the save becomes a new version (nothing is lost by that).
        MEDVFS_LOG_ERROR("inode %llu: comparing with the current version failed: %s",
                         static_cast<unsigned long long>(ino), equal.status().ToString().c_str());
      }
      same = equal.ok() && *equal;
    }
  }
  {
    std::lock_guard lock(mu_);
    InodeRecord node;
    MEDVFS_RETURN_IF_ERROR(LoadInode(ino, &node));
    if (node.nlink == 0 || node.history == 0) {
      session->dirty = false;  // the file was deleted: nothing to keep
      return Status::Ok();
    }
    const int64_t now = NowNs();
    KvBatch batch;
    // Decided against the current version of then; another commit since makes this one new.
    const bool unchanged = same && node.version > 0 && node.history == compared_history &&
                           node.version == compared_version;
    if (!unchanged) {
      HistoryRecord history;
      MEDVFS_RETURN_IF_ERROR(GetRecord(HistoryKey(node.history), &history));
      VersionInfo made_content;
      made_content.sha256 = made.sha256;
      made_content.sha256_deferred = made.sha256_deferred;
      made_content.size = made.size;
      made_content.has_dicom_tags = tags.has_value();
      if (tags && tags->Find("SOPInstanceUID") != nullptr) {
        made_content.sop_instance_uid = tags->Find("SOPInstanceUID")->value;
      }
      const VersionRecord version = NewVersion(node.history, &history, std::move(made_content),
                                               session->pending_op, now, caller, node);
      PutVersion(batch, node.history, version, content);
      PutRecord(batch, HistoryKey(node.history), history);
      // A scratch file keeps only its current version.
      if (history.scratch && node.version > 0) {
        MEDVFS_RETURN_IF_ERROR(DropVersion(batch, node.history, node.version));
      }
      if (tags) PutRecord(batch, TagsKey(node.history, version.info.number), *tags);
      UpdatePatientIndex(batch, ino, tags ? &*tags : nullptr);
      node.version = version.info.number;
      *committed = node.version;
    }
    const int64_t written = session->mtime_ns.load();
    if (written != 0) node.mtime_ns = node.ctime_ns = written;
    node.size = content.size();
    PutRecord(batch, InodeKey(ino), node);
    MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
    session->mtime_ns = 0;
  }
  // The chunks stored so far that the content references are the version's now (or an equal
  // version's); the ones overwritten or truncated away before this commit go (chunk_settle.h).
  auto released =
      SettleCommitted(*chunks_, session->content.owner(), session->content.TakeInserted(), content);
  if (!released.ok()) {
    MEDVFS_LOG_ERROR("inode %llu: the chunks of an overwritten write could not be released: %s",
                     static_cast<unsigned long long>(ino), released.status().ToString().c_str());
  }
  // Durable before close() returns (without a commit interval); outside mu_ so commits share
  // the fsync. Within an interval the background sync does it (and fsync(): LiveHandle::Sync).
  if (!commits_deferred()) MEDVFS_RETURN_IF_ERROR(kv_->SyncWal());
  session->dirty = false;
  session->pending_op = Operation::kWrite;
  return Status::Ok();
}

void ArchiveImpl::ReleaseWriter(InodeId ino, const std::shared_ptr<WriteSession>& session,
                                const Caller& caller) {
  {
    // The session lock is taken first and held across the decision: a new writer may join
    // (under mu_) meanwhile, but its O_TRUNC waits for this lock, so what is committed here is
    // never the next save's truncation.
    std::lock_guard session_lock(session->mu);
    {
      // While other writers remain, their own flush or release commits the shared content.
      std::lock_guard lock(mu_);
      if (session->writers > 1) {
        --session->writers;
        return;
      }
    }
    // Normally flush committed already; this catches a created-but-never-written file and
    // writes after the last flush.
    Status s = CommitLocked(ino, session, caller);
    if (!s.ok()) {
      MEDVFS_LOG_ERROR("inode %llu: commit at release failed: %s",
                       static_cast<unsigned long long>(ino), s.ToString().c_str());
    }
  }
  {
    std::lock_guard lock(mu_);
    if (--session->writers > 0) return;
    auto it = sessions_.find(ino);
    if (it != sessions_.end() && it->second == session) sessions_.erase(it);
    if (!lookups_.contains(ino)) orphans_.erase(ino);
  }
  // What the session stored since its last commit is referenced by nothing now: the file was
  // unlinked while open, or its last commit failed (a full disk). The chunks no other writer
  // was handed go; the shared ones stay with their other users.
  std::vector<ChunkId> written;
  uint64_t owner = 0;
  {
    std::lock_guard session_lock(session->mu);
    owner = session->content.owner();
    written = session->content.TakeInserted();
  }
  chunks_->EndWriter(owner);  // its pack may take another writer's chunks
  if (written.empty()) return;
  auto released = chunks_->ReleaseFresh(owner, written);
  if (!released.ok()) {
    MEDVFS_LOG_ERROR("inode %llu: the chunks of an uncommitted write could not be released: %s",
                     static_cast<unsigned long long>(ino), released.status().ToString().c_str());
  }
}

Status ArchiveImpl::TruncateClosed(InodeId ino, uint64_t size, const Caller& caller) {
  auto handle_or = Open(ino, O_WRONLY, caller);
  MEDVFS_RETURN_IF_ERROR(handle_or.status());
  std::shared_ptr<WriteSession> session;
  {
    std::lock_guard lock(mu_);
    session = sessions_[ino];
  }
  {
    std::lock_guard session_lock(session->mu);
    if (session->content.size() == size && !session->dirty) return Status::Ok();
    MEDVFS_RETURN_IF_ERROR(session->content.Truncate(size));
    session->dirty = true;
    session->pending_op = Operation::kTruncate;
    session->size = size;
    session->mtime_ns = NowNs();
  }
  return (*handle_or)->Flush(caller);
}

StatusOr<std::unique_ptr<FileHandle>> ArchiveImpl::OpenVersion(HistoryId history, uint64_t number) {
  std::shared_lock lock(mu_);
  VersionRecord record;
  MEDVFS_RETURN_IF_ERROR(LoadVersion(history, number, &record));
  if (record.info.is_delete_marker()) return Status::NotFound("a delete marker has no content");
  if (record.info.content_removed()) {
    return Status::NotFound("the content of this version was " +
                            std::string(ContentRemovalName(record.info.removed)));
  }
  ExtentList extents;
  MEDVFS_RETURN_IF_ERROR(LoadExtents(history, record, &extents));
  return std::unique_ptr<FileHandle>(new VersionHandle(chunks_.get(), 0, std::move(extents)));
}

}  // namespace medvfs::store
