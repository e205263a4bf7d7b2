// ArchiveImpl: the Archive over KvStore and ChunkStore. Internal to store/.
//
// Locking (the whole order: store/engine/lock_order.h). mu_ is a shared mutex: every change of meta
// records (and the id counters in SuperRecord) takes it exclusively, so each change is one
// atomic KvBatch written under it; reads that only look take it shared and run in parallel.
// The log is synced after mu_ is released so that commits from several threads share fsyncs.
// Chunks are stored and read without mu_.
//
// Audit. audit_mu_ serialises appends to the audit chain (an entry and the head record in one
// unsynced KvBatch). RecordAudit may be called with mu_ held, but the store's own events are
// appended after mu_ is released: each audited public method (MakeNode, Unlink, Rename,
// SetAttr, ...) is a thin wrapper in archive_audit.cc around its Do* body, which computes the
// path (PathOf takes mu_) and records the outcome, success or failure.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "store/archive.h"
#include "store/archive/audit_chain.h"
#include "store/archive/records.h"
#include "store/archive/state_digest.h"
#include "store/crypto/sealed_record.h"
#include "store/engine/chunk_store.h"
#include "store/engine/content.h"
#include "store/engine/kv_store.h"
#include "store/engine/lock_order.h"
#include "store/s3/s3_client.h"

namespace medvfs::store {

class ArchiveImpl;

// The shared pending content of an inode that has handles open for writing.
struct WriteSession {
  WriteSession(ChunkStore* chunks, ExtentList base, uint64_t max_dirty_bytes,
               DirtyBudget* mount_budget)
      : content(chunks, std::move(base), max_dirty_bytes, mount_budget) {}
  std::mutex mu;
  PendingContent content;                    // GUARDED_BY(mu)
  bool dirty = false;                        // GUARDED_BY(mu): changed since the last commit
  Operation pending_op = Operation::kWrite;  // GUARDED_BY(mu)
  // Size and write time as getattr must show them; written under mu, read without it.
  std::atomic<uint64_t> size{0};
  std::atomic<int64_t> mtime_ns{0};  // 0 until the first write
  int writers = 0;                   // GUARDED_BY(ArchiveImpl::mu_)
};

class ArchiveImpl final : public Archive {
 public:
  ArchiveImpl(std::unique_ptr<KvStore> kv, std::unique_ptr<ChunkStore> chunks,
              const SecretKey& data_key, std::string archive_id, const ArchiveOptions& options,
              std::filesystem::path dir);
  ~ArchiveImpl() override;

  // Writes the root directory and super record of a new archive.
  Status Initialize(const Caller& creator);
  // Loads the super record and the audit head.
  Status Load();
  // After Load, for a writable open: imports the failed-unlocks side file into the audit log,
  // then checks and raises the high-water mark (kRolledBack when the archive is older).
  Status OpenAudit();

  bool read_only() const override { return options_.read_only || options_.no_writes; }

  StatusOr<Attr> GetAttr(InodeId ino) override;
  StatusOr<NodeRef> Lookup(InodeId parent, std::string_view name) override;
  StatusOr<std::vector<DirEntry>> ReadDir(InodeId dir) override;
  StatusOr<NodeRef> MakeNode(InodeId parent, std::string_view name, uint32_t mode, uint64_t rdev,
                             const Caller& caller) override;
  StatusOr<NodeRef> MakeDir(InodeId parent, std::string_view name, uint32_t mode,
                            const Caller& caller) override;
  StatusOr<NodeRef> MakeSymlink(InodeId parent, std::string_view name, std::string_view target,
                                const Caller& caller) override;
  StatusOr<NodeRef> Link(InodeId ino, InodeId new_parent, std::string_view new_name,
                         const Caller& caller) override;
  Status Unlink(InodeId parent, std::string_view name, const Caller& caller) override;
  Status RemoveDir(InodeId parent, std::string_view name, const Caller& caller) override;
  Status Rename(InodeId parent, std::string_view name, InodeId new_parent,
                std::string_view new_name, unsigned int flags, const Caller& caller) override;
  StatusOr<std::string> ReadLink(InodeId ino) override;
  StatusOr<Attr> SetAttr(InodeId ino, const SetAttrRequest& request, const Caller& caller) override;
  StatusOr<FsStats> StatFs() override;
  Status SyncAll() override;
  StatusOr<std::string> GetXattr(InodeId ino, std::string_view name) override;
  Status SetXattr(InodeId ino, std::string_view name, std::string_view value, int flags,
                  const Caller& caller) override;
  StatusOr<std::vector<std::string>> ListXattr(InodeId ino) override;
  Status RemoveXattr(InodeId ino, std::string_view name, const Caller& caller) override;
  StatusOr<std::unique_ptr<FileHandle>> Open(InodeId ino, int flags, const Caller& caller) override;
  void Forget(InodeId ino, uint64_t lookups) override;

  StatusOr<std::vector<NameRecord>> ListNames(InodeId dir) override;
  StatusOr<NameRecord> ResolveName(InodeId dir, std::string_view name) override;
  StatusOr<std::vector<VersionInfo>> ListVersions(HistoryId history) override;
  StatusOr<VersionInfo> GetVersion(HistoryId history, uint64_t number) override;
  StatusOr<Sha256Digest> VersionSha256(HistoryId history, uint64_t number,
                                       const std::function<bool()>& cancelled) override;
  StatusOr<std::vector<MetadataEvent>> ListMetadataEvents(HistoryId history) override;
  StatusOr<std::unique_ptr<FileHandle>> OpenVersion(HistoryId history, uint64_t number) override;
  StatusOr<std::vector<DirEntryAt>> ListDirAt(InodeId dir, int64_t time_ns) override;
  StatusOr<DirEntryAt> ResolveNameAt(InodeId dir, std::string_view name,
                                     int64_t time_ns) override;  // archive_history.cc
  StatusOr<Attr> Restore(HistoryId history, uint64_t number, const Caller& caller) override;
  StatusOr<ArchiveStats> Stats() override;
  StatusOr<DicomTags> GetTags(HistoryId history, uint64_t number) override;
  Status SetNote(HistoryId history, uint64_t number, std::string_view text,
                 const Caller& caller) override;
  StatusOr<std::vector<NoteEvent>> ListNotes(HistoryId history, uint64_t number) override;
  StatusOr<std::vector<std::string>> ListPatients() override;
  std::unique_ptr<Deidentifier> NewDeidentifier(const DeidConfig& config) override;
  StatusOr<std::vector<std::string>> ListStudies(std::string_view patient_id) override;
  StatusOr<std::vector<IndexedFile>> ListStudyFiles(std::string_view patient_id,
                                                    std::string_view study) override;
  Status RecordAudit(const AuditEvent& event) override;
  Status ScanAudit(const AuditFilter& filter,
                   const std::function<bool(const AuditEntry&)>& visit) override;
  StatusOr<AuditChainReport> VerifyAuditChain() override;
  StatusOr<std::string> PathOf(InodeId ino) override;
  StatusOr<BackupResult> Backup(const std::filesystem::path& dest, const BackupRequest& request,
                                const Caller& caller) override;  // archive_backup.cc
  Status AddRemote(const RemoteConfig& remote, const Caller& caller) override;
  Status RemoveRemote(const std::string& name, const Caller& caller) override;
  StatusOr<std::vector<RemoteStatus>> ListRemotes() override;
  StatusOr<ReplicateResult> Replicate(const std::string& name,
                                      const ReplicateRequest& request) override;
  StatusOr<GcResult> CollectGarbage(const GcRequest& request,
                                    const Caller& caller) override;  // archive_gc.cc
  // archive_lifecycle.cc
  StatusOr<std::vector<RetentionRule>> ListRetention() override;
  Status SetRetention(const RetentionRule& rule, const Caller& caller) override;
  StatusOr<std::vector<LegalHold>> ListHolds() override;
  Status SetHold(const LegalHold& hold, const Caller& caller) override;
  Status ReleaseHold(HistoryId history, InodeId dir, const Caller& caller) override;
  StatusOr<PruneResult> Prune(const PruneRequest& request, const Caller& caller) override;
  StatusOr<PurgeResult> Purge(const PurgeRequest& request, const Caller& caller) override;

  // --- used by the file handles (archive_content.cc) ---
  StatusOr<size_t> ReadLive(InodeId ino, uint64_t offset, std::span<char> out, ExtentList* cache,
                            uint64_t* cache_key);
  Status Commit(InodeId ino, const std::shared_ptr<WriteSession>& session, const Caller& caller);
  // REQUIRES: session->mu held.
  Status CommitLocked(InodeId ino, const std::shared_ptr<WriteSession>& session,
                      const Caller& caller);
  // `caller`: who opened the handle being released (a commit at release is theirs).
  void ReleaseWriter(InodeId ino, const std::shared_ptr<WriteSession>& session,
                     const Caller& caller);
  ChunkStore& chunks() { return *chunks_; }
  // The commit interval's background sync (ArchiveOptions::commit_interval_ms; none when 0 or
  // read-only). Started once the archive is open; stopped first thing at close.
  void StartBackgroundSync();
  void StopBackgroundSync();
  bool commits_deferred() const { return options_.commit_interval_ms != 0; }

 private:
  friend class LiveHandle;
  // Sealed record access. The additional data of a record is its key.
  template <typename Record>
  Status GetRecord(std::string_view key, Record* record) const;
  template <typename Record>
  void PutRecord(KvBatch& batch, std::string_view key, const Record& record) const;
  // kCorruption for a record that did not open (logged by kind, never by content).
  Status RecordFaultStatus(std::string_view key, RecordFault fault) const;
  // Opens and decodes one sealed record read from `key`.
  template <typename Record>
  Status OpenRecord(std::string_view key, std::string_view value, Record* record) const {
    return RecordFaultStatus(key, OpenSealedRecord(meta_key_, key, value, record));
  }
  // Calls visit(key, record) for every record whose key starts with prefix (in key order, or
  // backwards with `reverse`) until visit returns false. Fails on the first record that does
  // not open.
  template <typename Record, typename Visit>
  Status ScanRecords(std::string_view prefix, Visit&& visit, bool reverse = false) const {
    Status failed;
    auto each = [&](std::string_view key, std::string_view value) {
      Record record;
      failed = OpenRecord(key, value, &record);
      return failed.ok() && visit(key, record);
    };
    MEDVFS_RETURN_IF_ERROR(reverse ? kv_->ScanReverse(Family::kMeta, prefix, each)
                                   : kv_->Scan(Family::kMeta, prefix, each));
    return failed;
  }

  // The unaudited bodies of the audited public methods (see "Audit" above).
  StatusOr<Attr> DoMakeNode(InodeId parent, std::string_view name, uint32_t mode, uint64_t rdev,
                            const Caller& caller);
  StatusOr<Attr> DoMakeDir(InodeId parent, std::string_view name, uint32_t mode,
                           const Caller& caller);
  StatusOr<Attr> DoMakeSymlink(InodeId parent, std::string_view name, std::string_view target,
                               const Caller& caller);
  StatusOr<Attr> DoLink(InodeId ino, InodeId new_parent, std::string_view new_name);
  Status DoUnlink(InodeId parent, std::string_view name, const Caller& caller);
  Status DoRemoveDir(InodeId parent, std::string_view name);
  Status DoRename(InodeId parent, std::string_view name, InodeId new_parent,
                  std::string_view new_name, unsigned int flags, const Caller& caller);
  StatusOr<Attr> DoSetAttr(InodeId ino, const SetAttrRequest& request, const Caller& caller);
  Status DoSetXattr(InodeId ino, std::string_view name, std::string_view value, int flags,
                    const Caller& caller);
  Status DoRemoveXattr(InodeId ino, std::string_view name, const Caller& caller);
  StatusOr<Attr> DoRestore(HistoryId history, uint64_t number, const Caller& caller);
  Status DoSetNote(HistoryId history, uint64_t number, std::string_view text, const Caller& caller);
  // REQUIRES: session->mu held. Sets *committed to the version made (0: none).
  Status CommitVersion(InodeId ino, const std::shared_ptr<WriteSession>& session,
                       const Caller& caller, uint64_t* committed);

  // --- garbage collection (archive_gc.cc) ---
  // CollectGarbage without the lock and the audit entry; *partial holds what was done when
  // it fails.
  StatusOr<GcResult> DoCollectGarbage(const GcRequest& request, GcResult* partial);
  // CollectGarbage with gc_mu_ already held (Purge waits for it instead of kBusy).
  StatusOr<GcResult> CollectGarbageLocked(const GcRequest& request, const Caller& caller);
  // The last collection that changed the archive (kLastGcKey); nullopt if none did.
  StatusOr<std::optional<GcResult>> LastCollection() const;

  // --- lifecycle (archive_lifecycle.cc) ---
  // The retention rules and legal holds (few: read whole for each decision).
  struct Lifecycle {
    std::map<InodeId, RetentionRule> rules;  // by directory
    std::map<HistoryId, LegalHold> file_holds;
    std::map<InodeId, LegalHold> dir_holds;
  };
  // What applies to one history, from the directory it is (or was last) linked in.
  struct HistoryLifecycle {
    std::vector<InodeId> dirs;  // that directory, its parent, ... the root
    const LegalHold* hold = nullptr;
    std::vector<const RetentionRule*> rules;
  };
  Status LoadLifecycle(Lifecycle* out) const;
  // REQUIRES: mu_ held (these three).
  // `dir` and the directories above it; always ends with the root. *broken: a directory of
  // the chain was removed (its parent is not known).
  std::vector<InodeId> DirChain(InodeId dir, bool* broken);
  HistoryLifecycle LifecycleOf(const Lifecycle& lifecycle, HistoryId history,
                               const HistoryRecord& record);
  // Writes into batch the removal of version's content (see archive_lifecycle.cc).
  Status RemoveContentLocked(KvBatch& batch, HistoryId history, VersionRecord* version,
                             ContentRemoval how, const Caller& caller, std::string_view reason,
                             int64_t now);
  // The strictest rule of `applies` a version made at time_ns has not met yet, or null.
  static const RetentionRule* RetainingRule(const HistoryLifecycle& applies, int64_t time_ns,
                                            int64_t now, bool compliance_only);
  // Sets VersionInfo::hold of the content versions of `history` when a hold keeps them.
  Status FillHolds(HistoryId history, const std::vector<VersionInfo*>& versions);
  // Content versions under a legal hold (ArchiveStats::held_versions).
  Status CountHeldVersions(uint64_t* held);
  StatusOr<PruneResult> DoPrune(const PruneRequest& request, const Caller& caller,
                                PruneResult* result);
  // REQUIRES: mu_ held exclusively. Decides and (unless a dry run) removes; appends what goes
  // to *removed.
  Status PruneHistoryLocked(HistoryId history, const PruneRequest& request, int64_t now,
                            const Caller& caller, PruneResult* result,
                            std::vector<RemovedVersion>* removed);
  // REQUIRES: mu_ held. The versions a purge removes, or why it may not.
  Status PurgeTargetsLocked(const PurgeRequest& request, int64_t now, HistoryRecord* history,
                            std::vector<VersionRecord>* targets, bool* live_current_included);
  StatusOr<PurgeResult> DoPurge(const PurgeRequest& request, const Caller& caller,
                                PurgeResult* result);
  Status DoSetRetention(const RetentionRule& rule, const Caller& caller, std::string* detail);
  Status DoSetHold(const LegalHold& hold, const Caller& caller);
  Status DoReleaseHold(HistoryId history, InodeId dir);

  // --- audit (archive_audit.cc, archive_high_water.cc) ---
  // Records one of the store's own events; failures to record are logged, never returned.
  void Audit(const Caller& caller, AuditOp op, const Status& result, std::string path,
             uint64_t version = 0, std::string detail = {}, std::string target_path = {});
  // Paths for audit entries; never fail (an unknown place is named by its inode number).
  std::string AuditPathOf(InodeId ino);
  std::string AuditPathIn(InodeId parent, std::string_view name);
  std::string AuditPathOfHistory(HistoryId history);
  // REQUIRES: mu_ held.
  StatusOr<std::string> DirPathLocked(InodeId dir);
  StatusOr<std::string> HistoryPathLocked(HistoryId history);
  // Reads the head record (or, when it is missing or damaged, the last entry) into audit_seq_
  // and audit_mac_.
  Status LoadAuditHead();
  // Part of Load: the records present against the state digest record (kCorruption when they
  // differ, unless accept_record_damage).
  Status CheckStateDigestLocked();
  Status ImportFailedUnlocks();
  Status CheckHighWater();
  // Part of OpenAudit: when Load accepted records that do not add up to the state digest
  // (ArchiveOptions::accept_record_damage), records that in the audit log and rebases the
  // digest on the records present.
  Status RecordAcceptedRecordDamage();
  // Writes the mark `seq` (temp file, fsync, rename). REQUIRES: high_water_mu_ held.
  Status WriteHighWaterLocked(uint64_t seq);
  // Raises the mark to the audit head if it is behind (at close, and every 256 entries).
  void RaiseHighWater();
  std::filesystem::path HighWaterFile() const;

  std::string NameHash(std::string_view name) const;
  Status CheckWritable() const;
  static Status CheckName(std::string_view name);

  // REQUIRES: mu_ held.
  Status LoadInode(InodeId ino, InodeRecord* record);
  Status LoadDir(InodeId ino, InodeRecord* record);
  StatusOr<DirentRecord> FindEntry(InodeId parent, std::string_view name);
  Attr ToAttr(InodeId ino, const InodeRecord& record);
  InodeId AllocateInode() { return super_.next_inode++; }
  HistoryId AllocateHistory() { return super_.next_history++; }
  uint64_t AllocateSeq() { return super_.next_seq++; }
  // Adds the entry, its name event and the counters to batch.
  void AddEntry(KvBatch& batch, InodeId parent, std::string_view name, InodeId ino,
                const InodeRecord& node, int64_t now);
  // Removes the entry; with record_event, a name event keeps the removal in the history.
  void RemoveEntry(KvBatch& batch, InodeId parent, std::string_view name, int64_t now,
                   bool record_event = true);
  // Drops one link of a non-directory; writes a delete marker when it was the last.
  // `parent`/`name`: the link being dropped (where a deleted file was last seen).
  Status DropLink(KvBatch& batch, InodeId ino, InodeRecord& node, InodeId parent,
                  std::string_view name, const Caller& caller, int64_t now);
  // Writes batch with the super record and the state digest record (AddStateDigest).
  Status WriteBatchLocked(KvBatch& batch);
  // --- history identity (archive_identity.cc) ---
  // The history a new regular file created as `name` in `parent` carries, written to batch:
  // the name's last file when it was deleted there, a copy of the name's versions when its
  // file was just moved to a backup name (x.dcm -> x.dcm.bak, then a new x.dcm), else a new
  // history. Never a history that a live inode carries.
  StatusOr<HistoryId> HistoryForNewFile(KvBatch& batch, InodeId parent, std::string_view name,
                                        InodeId ino);
  // A new history holding copies of versions 1..up_to of `from` (records only: the chunks are
  // shared), with their extents, tags and notes.
  Status CopyHistoryPrefix(KvBatch& batch, HistoryId from, uint64_t up_to, HistoryId to);
  // Deletes the events that bound `name` in `parent` to `history` (the name leaves no trace).
  Status EraseNameEvents(KvBatch& batch, InodeId parent, std::string_view name, HistoryId history);
  // The last event of a name; kNotFound if it never existed.
  Status LastNameEvent(InodeId parent, std::string_view name, NameEventRecord* event);
  // --- history at a moment (archive_history.cc) ---
  // The entry an event current at time_ns makes (nullopt: the name showed nothing then).
  StatusOr<std::optional<DirEntryAt>> EntryAt(const NameEventRecord& event, int64_t time_ns);
  // The version of `history` current at time_ns: the highest number made at or before it
  // (kNotFound if none).
  Status VersionAt(HistoryId history, int64_t time_ns, VersionInfo* found);
  // A history whose only name was a temporary one: born for its inode under its current
  // name, never renamed, linked or continued, with at most one content version; or a scratch
  // file's.
  static bool IsTemporary(const HistoryRecord& history) {
    return history.scratch || (history.fresh && history.last_version <= 1);
  }
  // Whether `name` matches options_.scratch_patterns.
  bool IsScratchName(std::string_view name) const;
  // Removes version `number` of a scratch file's history (its records; its extent groups move
  // to kDroppedExtentPrefix for garbage collection). A missing version is no error.
  Status DropVersion(KvBatch& batch, HistoryId history, uint64_t number);
  // Drops every version of a deleted scratch file and erases its history and name events.
  Status EraseScratchHistory(KvBatch& batch, HistoryId history, const HistoryRecord& record);
  void TouchDir(KvBatch& batch, InodeId dir, InodeRecord& record, int64_t now, int nlink_delta);
  Status LoadVersion(HistoryId history, uint64_t number, VersionRecord* record);
  Status LoadExtents(HistoryId history, const VersionRecord& record, ExtentList* list);
  void PutVersion(KvBatch& batch, HistoryId history, const VersionRecord& record,
                  const ExtentList& extents);
  // --- deferred digests (archive_digest.cc) ---
  // For a deferred version whose digest was computed since (its W record), sets
  // info->sha256 from it and clears sha256_deferred; otherwise leaves it. Reads only (like
  // ListVersions, needs no lock).
  Status ResolveDeferredDigest(HistoryId history, VersionInfo* info);
  // REQUIRES: mu_ held. Whether version `current` of `history` holds the same bytes as
  // `other` (a version's info, its digest resolved) whose content is `other_extents`: by size,
  // then by digest when both are known, else by SameContent (reads the stored bytes of both,
  // never their holes).
  StatusOr<bool> SameContentAs(HistoryId history, const VersionRecord& current,
                               const VersionInfo& other, const ExtentList& other_extents);
  void RecordMetadataEvent(KvBatch& batch, HistoryId history, std::string what,
                           const Caller& caller, int64_t now);
  // Deletes every record of a history (a rename-over's temporary file).
  Status EraseHistory(KvBatch& batch, HistoryId history, InodeId parent, std::string_view name);
  // Sets *src_name_kept: the source name keeps its history (false: it was a temporary name
  // and its history is gone, its one version now the target's newest).
  Status RenameOver(KvBatch& batch, InodeId src_ino, InodeRecord& src, InodeId dst_ino,
                    InodeRecord& dst, InodeId src_parent, std::string_view src_name,
                    InodeId new_parent, std::string_view new_name, const Caller& caller,
                    int64_t now, bool* src_name_kept);
  // A plain rename of a regular file: updates its history's names; returns whether the source
  // name keeps its events (false for a temporary name, whose events are erased).
  StatusOr<bool> MoveHistory(KvBatch& batch, const InodeRecord& src, InodeId src_ino,
                             InodeId parent, std::string_view name, InodeId new_parent,
                             std::string_view new_name);
  StatusOr<std::shared_ptr<WriteSession>> SessionFor(InodeId ino, bool create);
  // DICOM (archive_dicom.cc). ParseContentTags reads the content's header (never the whole
  // pixel data) and parses it; nullopt for anything that is not DICOM or does not parse.
  static std::optional<DicomTags> ParseContentTags(PendingContent& content);
  // REQUIRES: mu_ held (the rest of this block too).
  // Sets info->sop_instance_uid_reused: the newest earlier content version had the same
  // SOPInstanceUID and other bytes. REQUIRES: history_record.last_version not yet advanced.
  void MarkSopReuse(HistoryId history, const HistoryRecord& history_record, VersionInfo* info);
  // The one way a version record is made (commit, rename over, restore, delete marker): the
  // version `content` describes (size, digest, SOP instance UID; its restore source as set),
  // numbered after the history's last (history->last_version advances), with the SOP reuse
  // mark, the time, who made it, how (`op`), and the mode and owner `file` had then.
  VersionRecord NewVersion(HistoryId history_id, HistoryRecord* history, VersionInfo content,
                           Operation op, int64_t now, const Caller& caller,
                           const InodeRecord& file);
  void UpdatePatientIndex(KvBatch& batch, InodeId ino, const DicomTags* tags);
  void CopyTags(KvBatch& batch, HistoryId from, uint64_t from_number, HistoryId to,
                uint64_t to_number);
  // A file's path for the patient index: from the root, without a leading slash.
  StatusOr<std::string> IndexPathOf(InodeId ino);
  Status TruncateClosed(InodeId ino, uint64_t size, const Caller& caller);
  void CountLookup(InodeId ino);

  std::unique_ptr<KvStore> kv_;
  SecretKey meta_key_;
  // Keyed once at open: a one-shot HMAC looks the algorithm up and sets the key per call, a
  // tenth of the daemon's CPU when creating small files.
  KeyedHmacSha256 name_hmac_;          // NameHash
  KeyedHmacSha256 audit_chain_hmac_;   // AuditChainMac
  KeyedHmacSha256 state_digest_hmac_;  // StateDigestTerm
  SecretKey high_water_key_;           // the high-water mark's HMAC key
  SecretKey deid_key_;                 // pseudonyms and remapped UIDs (store/dicom/deid.h)
  SecretKey remote_key_;               // S3 snapshots and their object names (remote.h)
  std::string archive_id_;             // 16 bytes, from the key slot
  std::unique_ptr<ChunkStore> chunks_;
  ArchiveOptions options_;
  std::filesystem::path dir_;

  // Written bytes held in memory over every open file (ArchiveOptions::max_dirty_bytes).
  DirtyBudget dirty_budget_;

  // Held for a whole garbage collection, so that one runs at a time, and for a whole backup
  // (none meanwhile: see Backup). Lock order: store/engine/lock_order.h.
  std::mutex gc_mu_;
  // Held for a whole replication round (one at a time: rounds share the S3 tier's state
  // files). Lock order: before gc_mu_, which a round takes while it makes a snapshot.
  std::mutex remote_mu_;
  // The S3 clients of the remotes, by name, made at their first round. GUARDED_BY(remote_mu_).
  std::map<std::string, std::shared_ptr<S3Client>> remote_clients_;
  // Per remote: when the replication first saw a change no snapshot holds (0: none).
  // GUARDED_BY(remote_status_mu_), a leaf: ListRemotes (medvfs stats) must not wait for a
  // round that talks to the network.
  std::mutex remote_status_mu_;
  std::map<std::string, int64_t> remote_dirty_since_s_;
  // Exclusive for changes, shared for reads (store/engine/lock_order.h).
  std::shared_mutex mu_;
  SuperRecord super_;                                                    // GUARDED_BY(mu_)
  std::unordered_map<InodeId, std::shared_ptr<WriteSession>> sessions_;  // GUARDED_BY(mu_)
  // GUARDED_BY(mu_): changed under an exclusive mu_, or under a shared mu_ with lookups_mu_.
  std::unordered_map<InodeId, uint64_t> lookups_;
  std::mutex lookups_mu_;  // a leaf, taken under a shared mu_ (CountLookup)
  // Unlinked inodes the kernel still references (open files): served from memory until
  // forgotten, and never written back.
  std::unordered_map<InodeId, InodeRecord> orphans_;  // GUARDED_BY(mu_)

  // The background sync thread. background_sync_mu_ is a leaf, never held while syncing.
  std::thread background_sync_;
  std::mutex background_sync_mu_;
  std::condition_variable background_sync_cv_;
  bool background_sync_stopping_ = false;  // GUARDED_BY(background_sync_mu_)

  std::mutex audit_mu_;       // Lock order: a leaf; may be taken with mu_ held.
  uint64_t audit_seq_ = 0;    // GUARDED_BY(audit_mu_): the last entry's sequence number
  AuditMac audit_mac_{};      // GUARDED_BY(audit_mu_): the last entry's chain MAC
  std::mutex high_water_mu_;  // Lock order: a leaf; never held with audit_mu_.
  uint64_t high_water_ = 0;   // GUARDED_BY(high_water_mu_): the mark last written
  // GUARDED_BY(high_water_mu_): the mark was read and accepted at open (only then is it
  // raised; a refused archive never touches it).
  bool high_water_checked_ = false;
  // Set by CheckStateDigestLocked when the open accepted altered records: what differed, and
  // the digest of the records present.
  std::optional<std::string> accepted_record_damage_;
  std::optional<StateDigest> accepted_state_digest_;
  // GUARDED_BY(mu_): the state digest and the sealed super record as the last batch of
  // WriteBatchLocked left them, so that the next batch reads neither back; reset whenever
  // either is written another way or a write fails.
  std::optional<StateDigestSnapshot> state_digest_cache_;
};

// Appends one line (time, uid, gid, pid, program; no key, no patient data) to the archive's
// plaintext `failed-unlocks` file (mode 0600) and fsyncs it. Called by Archive::Open on
// kWrongKey; the next writable open imports the lines into the audit log.
void RecordFailedUnlock(const std::filesystem::path& archive_dir);

int64_t NowNs();

// W history number: the SHA-256 computed later for a deferred version (archive_digest.cc).
std::string VersionDigestKey(HistoryId history, uint64_t number);
std::string VersionDigestHistoryPrefix(HistoryId history);

// Whether `candidate` is a backup name of `name` (archive_identity.cc): `name` plus any suffix
// (x.dcm.bak, x.dcm~, x.dcm.~1~), or `name` with its extension replaced by .bak, .old, .orig.
bool IsBackupName(std::string_view candidate, std::string_view name);

}  // namespace medvfs::store
