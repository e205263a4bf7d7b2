// Archive: the versioned, encrypted store behind a medvfs mount.
//
// An archive is a directory holding a key slot file (`keyslot`) and a RocksDB database
// (`db/`). Every value RocksDB sees is sealed with AES-256-GCM under subkeys of the archive's
// data key; names appear in RocksDB keys only as keyed hashes. See man/medvfs-format.5.
//
// The Archive exposes an inode-level POSIX namespace (what the FUSE layer needs), per-file
// version chains, per-directory name histories and the views built on them (`@version`,
// `@<time>`). It is thread-safe: every method may be called from any thread.
//
// Identity model:
// - An inode (InodeId) is a live node of the tree, as POSIX sees it.
// - A history (HistoryId) is the identity of a file over time: its chain of versions. A live
//   regular file's inode points at its history. Saving through a temporary file and renaming
//   it over the target moves the target's history onto the renamed inode, so history follows
//   the name the user sees; creating a file under a name whose last file was deleted continues
//   that deleted file's history.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/audit.h"
#include "store/dicom/deid.h"
#include "store/dicom/dicom.h"
#include "store/keys.h"
#include "store/status.h"

namespace medvfs::store {

using InodeId = uint64_t;
using HistoryId = uint64_t;
inline constexpr InodeId kRootInode = 1;
using Sha256Digest = std::array<uint8_t, 32>;

// Who performs an operation; recorded with every version and change.
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
  std::string program;  // the process's command name (/proc/PID/comm), may be empty
  // The creating process's umask, for MakeNode and MakeDir: applied to the new node's mode
  // unless the directory has a default ACL (which then decides instead, as POSIX 1003.1e
  // says). The FUSE adapter asks the kernel to leave the umask to it (FUSE_CAP_DONT_MASK).
  uint32_t umask = 0;
};

struct Attr {
  InodeId ino = 0;
  uint32_t mode = 0;  // st_mode: file type bits and permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t rdev = 0;
  int64_t atime_ns = 0;  // nanoseconds since the Unix epoch, UTC
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  HistoryId history = 0;  // regular files only; 0 otherwise
  uint64_t version = 0;   // number of the current content version; 0 before the first commit
  // The access ACL (the system.posix_acl_access value, store/posix_acl.h); empty when the
  // permission bits say it all.
  std::string acl;
};

struct DirEntry {
  std::string name;
  InodeId ino = 0;
  uint32_t mode = 0;  // file type bits are what readdir needs; permission bits are filled too
};

// A change of attributes; unset fields stay as they are.
struct SetAttrRequest {
  std::optional<uint32_t> mode;  // permission bits only (07777)
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;  // truncate or extend
  std::optional<int64_t> atime_ns;
  std::optional<int64_t> mtime_ns;
};

enum class Operation : uint8_t {
  kWrite = 1,         // a written handle was closed or synced
  kRenameOver = 2,    // a file was renamed over this one (editor-style save)
  kTruncate = 3,      // truncate(2) on a file not open for writing
  kRestore = 4,       // `medvfs restore`: the content of an earlier version made current
  kDeleteMarker = 5,  // the last name of the file was unlinked; no content
};
std::string_view OperationName(Operation op);

// How a version's content left the archive while its record stayed.
enum class ContentRemoval : uint8_t {
  kNone = 0,
  kPruned = 1,  // medvfs prune: content gone, the record (with tags and SHA-256) stays
  kPurged = 2,  // medvfs purge: content, tags, notes, SHA-256 and SOPInstanceUID gone
};
// "pruned", "purged" ("" for kNone).
std::string_view ContentRemovalName(ContentRemoval removal);

// One entry of a history. Delete markers are versions too (size 0, no content), as in an
// object store; they keep their number so that numbers never change.
struct VersionInfo {
  uint64_t number = 0;  // 1, 2, 3 ... within the history
  int64_t time_ns = 0;  // UTC, nanoseconds since the epoch
  uint64_t size = 0;
  Sha256Digest sha256{};
  uint32_t writer_uid = 0;
  uint32_t writer_gid = 0;
  uint32_t writer_pid = 0;
  std::string program;
  Operation op = Operation::kWrite;
  std::string note;
  // The file's owner and permission bits when this version was made (for access checks on
  // old versions).
  uint32_t file_mode = 0;
  uint32_t file_uid = 0;
  uint32_t file_gid = 0;
  std::string file_acl;        // and its access ACL (store/posix_acl.h; empty for none)
  uint64_t restored_from = 0;  // for kRestore: the version whose content this is
  // DICOM content: the SOPInstanceUID, and whether the version before with content had the
  // same SOPInstanceUID but different bytes (one SOP instance UID must mean one content).
  std::string sop_instance_uid;
  bool sop_instance_uid_reused = false;
  bool has_dicom_tags = false;
  // The commit left the SHA-256 to be computed later (a content that is mostly hole: hashing
  // its zeros would cost time in proportion to a size the writer merely told). Until then
  // `sha256` is all zeros; Archive::VersionSha256 computes and records it on request.
  bool sha256_deferred = false;
  // Set once `medvfs prune` or `medvfs purge` removed the content (Archive::Prune, Purge): the
  // record stays (number, time, writer, operation, size) with who removed it and when; the
  // content goes, and with a purge also its SHA-256, DICOM tags, notes and SOPInstanceUID.
  ContentRemoval removed = ContentRemoval::kNone;
  int64_t removed_time_ns = 0;
  uint32_t removed_by_uid = 0;
  std::string removed_by_program;
  std::string removed_reason;  // a purge's reason
  // Filled by ListVersions and GetVersion, not stored with the version: the reason of the
  // legal hold that keeps this version (Archive::SetHold), empty when none does.
  std::string hold;

  bool is_delete_marker() const { return op == Operation::kDeleteMarker; }
  bool content_removed() const { return removed != ContentRemoval::kNone; }
};

// An attribute change recorded on a history's chain (chmod, chown), not a content version.
struct MetadataEvent {
  int64_t time_ns = 0;
  std::string what;  // e.g. "chmod 0640", "chown 1000:1000"
  uint32_t writer_uid = 0;
  uint32_t writer_pid = 0;
  std::string program;
};

// A name that has existed in a directory, with the history it was last bound to.
struct NameRecord {
  std::string name;
  uint32_t mode = 0;      // type and permission bits of the last node bound to the name
  InodeId ino = 0;        // the live inode bound to the name now, 0 if the name is gone
  HistoryId history = 0;  // regular files: the history last bound to the name; else 0
  InodeId last_ino = 0;   // the inode last bound to the name (a directory's inode, say)
  bool live() const { return ino != 0; }
};

// An entry of a directory as it was at some moment (the `@<time>` view).
struct DirEntryAt {
  std::string name;
  uint32_t mode = 0;
  InodeId ino = 0;        // the inode that held the name then (may be gone now)
  HistoryId history = 0;  // regular files
  uint64_t version = 0;   // regular files: the version current at that moment
  uint64_t size = 0;      // regular files: that version's size
  int64_t mtime_ns = 0;   // regular files: that version's time
  std::string symlink_target;
};

// A note written on a version. Every note is kept; VersionInfo::note is the latest.
struct NoteEvent {
  int64_t time_ns = 0;
  std::string text;
  uint32_t writer_uid = 0;
  uint32_t writer_pid = 0;
  std::string program;
};

// A live DICOM file in the patient index (`/@patients`).
struct IndexedFile {
  InodeId ino = 0;
  std::string path;  // from the root, without a leading slash, e.g. "ct/slice1.dcm"
};

// --- Garbage collection (see Archive::CollectGarbage) ---

struct GcRequest {
  // Finds and counts what a collection would drop and rewrite; changes nothing. Default: no.
  bool dry_run = false;
  // A sealed pack is rewritten once at least this percentage of its bytes is garbage (a pack
  // with no live chunk is deleted whatever this says). 0 rewrites every pack with any
  // garbage. Default: 20.
  uint32_t repack_garbage_percent = 20;
  // Also rewrites every pack that held a chunk this collection dropped, whatever its garbage
  // (the pack still taking appends included, sealed first): so that the dropped bytes leave
  // the disk now (what Purge asks for). Default: no.
  bool rewrite_packs_of_dropped = false;
  // Bytes per second the rewrite of packs reads and writes together, so that clients keep
  // the disk (0: no limit). Default: 64 MiB/s.
  uint64_t rate_bytes_per_s = uint64_t{64} << 20;
  // Called from the collecting thread as it goes: the phase ("mark", "sweep", "repack"),
  // and for "repack" the live bytes copied so far of `total`.
  std::function<void(std::string_view phase, uint64_t done, uint64_t total)> progress;
  // Polled between pieces of work; true stops the collection (what is done by then stays
  // done and consistent) and it returns with cancelled set.
  std::function<bool()> cancelled;
};

struct GcResult {
  int64_t time_ns = 0;  // when it started
  int64_t duration_ms = 0;
  bool dry_run = false;
  bool cancelled = false;
  uint64_t chunks_indexed = 0;         // chunk index records when it started
  uint64_t chunks_dropped = 0;         // unreferenced chunks dropped (dry run: found)
  uint64_t bytes_dropped = 0;          // their stored bytes
  uint64_t dropped_extent_groups = 0;  // extent groups of dropped scratch versions cleared
  uint64_t packs = 0;                  // pack files when it started
  uint64_t packs_removed = 0;          // pack files deleted (dry run: that would be)
  uint64_t packs_skipped = 0;          // chosen packs left as they were (see the log)
  uint64_t bytes_copied = 0;           // live bytes copied into new packs (dry run: would be)
  uint64_t bytes_freed = 0;  // bytes of deleted pack files minus the bytes copied (dry run:
                             // what would be)
};

// --- Lifecycle: retention, legal hold, prune, purge (store/archive/archive_lifecycle.cc) ---

enum class RetentionMode : uint8_t {
  // An admin with the key may shorten or remove the rule (audited).
  kGovernance = 1,
  // Nobody can shorten or remove it, nor remove a version before its time, through any
  // medvfs command; it can only be lengthened.
  kCompliance = 2,
};
std::string_view RetentionModeName(RetentionMode mode);  // "governance", "compliance"

// RetentionRule::min_age_s for a rule that keeps every version for ever.
inline constexpr int64_t kRetainForever = INT64_MAX;

// Every version under `dir` (the archive's root: the whole archive) must reach min_age_s
// before prune or purge may remove it. Where rules of several directories apply, each must be
// met.
struct RetentionRule {
  InodeId dir = kRootInode;
  RetentionMode mode = RetentionMode::kGovernance;
  int64_t min_age_s = 0;  // kRetainForever: for ever
  // Filled by the archive:
  int64_t set_time_ns = 0;
  uint32_t set_by_uid = 0;
  std::string path;  // ListRetention: where `dir` is now ("/" for the root)
};

// A legal hold: every version of one file (`history`), or of every file under a directory
// (`dir`), stays whatever the rules, until released.
struct LegalHold {
  HistoryId history = 0;
  InodeId dir = 0;
  std::string reason;
  // Filled by the archive:
  int64_t time_ns = 0;
  uint32_t uid = 0;
  std::string program;
  std::string path;  // ListHolds: where the file or directory is (or was last) linked
};

// What Archive::Prune keeps, in the style of restic and borg `forget`: a content version is
// removed unless one of the keep options keeps it (the options add up), it is the current
// version of a live file, held, or younger than a retention rule allows. Delete markers and
// versions already removed are left as they are.
struct PruneRequest {
  uint64_t keep_last = 0;                // the N newest content versions of each file
  std::optional<int64_t> keep_within_s;  // every version younger than this (from now)
  uint64_t keep_daily = 0;               // the newest version of each of the last N
  uint64_t keep_weekly = 0;              // days (weeks: ISO, from Monday; months)
  uint64_t keep_monthly = 0;             // that have versions (UTC calendar)
  // Deleted files whose delete marker is older than this lose every content version (the
  // keep options do not apply to them); without keep options only such files are pruned.
  std::optional<int64_t> deleted_older_than_s;
  // Scope: the files (live or deleted) last linked under this directory, or this one file's
  // history when `history` is set.
  InodeId dir = kRootInode;
  HistoryId history = 0;
  bool dry_run = false;  // decide and report, change nothing
};

// One version Prune or Purge removed (dry run: would remove).
struct RemovedVersion {
  HistoryId history = 0;
  uint64_t number = 0;
  int64_t time_ns = 0;
  uint64_t size = 0;
  std::string path;  // where the file is, or was last, linked
};

struct PruneResult {
  bool dry_run = false;
  uint64_t files = 0;     // histories in scope
  uint64_t kept = 0;      // content versions kept by the keep options or as current
  uint64_t held = 0;      // content versions a legal hold kept that would have gone
  uint64_t retained = 0;  // content versions a retention rule kept that would have gone
  std::vector<RemovedVersion> removed;
  uint64_t removed_bytes = 0;  // sum of their sizes (before dedup: what GC frees may be less)
};

struct PurgeRequest {
  HistoryId history = 0;
  std::optional<uint64_t> number;  // one version; default: every version of the file
  std::string reason;              // required; audited
  bool dry_run = false;
};

struct PurgeResult {
  bool dry_run = false;
  bool unlinked = false;  // the file was live, and was unlinked first (whole-file purge)
  std::vector<RemovedVersion> removed;
  GcResult gc;  // the collection that took the bytes out of the pack files
};

struct ArchiveStats {
  uint64_t files = 0;  // histories (live or deleted regular files)
  uint64_t live_files = 0;
  uint64_t directories = 0;    // live directories
  uint64_t versions = 0;       // content versions, delete markers excluded
  uint64_t logical_bytes = 0;  // sum of the sizes of all content versions
  uint64_t stored_bytes = 0;   // bytes of sealed chunks (after dedup, compression, encryption)
  uint64_t chunks = 0;
  uint64_t disk_bytes = 0;  // size of the archive directory on disk
  uint64_t pack_bytes = 0;  // bytes of the pack files, as the pack records count them
  // Bytes of pack files no index record refers to (dropped chunks, orphans of crashes,
  // headers and trailers): what garbage collection can give back by rewriting packs.
  // Chunks that no version references any more count here only after a collection dropped
  // them from the index.
  uint64_t reclaimable_bytes = 0;
  std::optional<GcResult> last_gc;  // the last collection that changed the archive
  uint64_t held_versions = 0;       // content versions under a legal hold
  uint64_t removed_versions = 0;    // versions whose content prune or purge removed
  std::vector<RetentionRule> retention;
  std::vector<LegalHold> holds;
  // The S3 tier (ListRemotes): how many remotes, and how far the furthest behind lags.
  uint32_t remotes = 0;
  uint64_t remote_lag_bytes = 0;   // the largest lag_bytes of a remote
  int64_t remote_lag_seconds = 0;  // the largest lag_seconds of a remote
  uint32_t remote_errors = 0;      // remotes whose last round failed
};

struct FsStats {
  uint64_t block_size = 4096;
  uint64_t blocks = 0;
  uint64_t blocks_free = 0;
  uint64_t blocks_available = 0;
  uint64_t files = 0;
  uint64_t files_free = 0;
  uint64_t name_max = 255;
};

// The default scratch patterns: vim's swap files (.NAME.swp ... .swa) and its write probe
// 4913, emacs's auto-save files (#NAME#), Microsoft Office's owner files (~$NAME) and
// LibreOffice's lock files (.~lock.NAME#).
inline std::vector<std::string> DefaultScratchPatterns() {
  return {".*.sw[a-p]", "4913", "#*#", "~$*", ".~lock.*#"};
}

// --- S3 remotes (store/archive/archive_remote.cc; DESIGN.md section 8, medvfs-remote(1)) ---
// Where a remote is: a bucket and prefix of an S3 service.
struct RemoteLocation {
  std::string url;       // s3://BUCKET[/PREFIX]
  std::string endpoint;  // http(s)://HOST[:PORT]
  std::string region = "us-east-1";
};

// An archive's remote: the bucket its sealed packs and record snapshots are replicated to.
struct RemoteConfig {
  std::string name;  // 1-32 of [A-Za-z0-9_-]
  RemoteLocation location;
};

// Where replication to one remote stands (Archive::ListRemotes, medvfs stats).
struct RemoteStatus {
  RemoteConfig config;
  uint64_t packs_local = 0;     // live sealed packs of the archive
  uint64_t packs_uploaded = 0;  // of them, in the bucket
  uint64_t packs_evicted = 0;   // in the bucket only (ArchiveOptions::local_packs)
  // Pack bytes of the archive not yet in the bucket (sealed packs waiting, and the packs
  // still taking appends).
  uint64_t lag_bytes = 0;
  // Seconds since the oldest change that no snapshot in the bucket holds yet; 0 when the
  // bucket's latest snapshot holds every change.
  int64_t lag_seconds = 0;
  uint64_t snapshot_seq = 0;  // the bucket's latest snapshot (0: none yet)
  int64_t snapshot_time_s = 0;
  bool object_lock = false;  // the bucket has Object Lock (WORM copies)
  std::string last_error;    // of the last attempt that failed, if the last attempt failed
  int64_t last_error_time_s = 0;
};

struct ReplicateRequest {
  // Upload a snapshot of the records even when snapshot_interval_s has not passed since the
  // last one (medvfs remote sync). Default: false.
  bool force_snapshot = false;
  // The shortest time between two snapshots while the archive changes. Default: 60 s.
  int64_t snapshot_interval_s = 60;
  // Polled between uploads: true stops the round (kBusy). Default: none.
  std::function<bool()> cancelled;
};

struct ReplicateResult {
  uint64_t packs_uploaded = 0;
  uint64_t bytes_uploaded = 0;  // packs and snapshot files
  uint64_t snapshot_seq = 0;    // the snapshot uploaded by this round (0: none)
  uint64_t locks_changed = 0;   // Object Lock retentions extended and legal holds set or lifted
  uint64_t delete_markers = 0;  // objects no kept snapshot needs any more
  uint64_t packs_evicted = 0;   // local copies dropped (ArchiveOptions::local_packs)
};

// What `medvfs verify --remote` found in a bucket.
struct RemoteVerifyReport {
  uint64_t snapshot_seq = 0;
  uint64_t packs_checked = 0;
  uint64_t bytes_checked = 0;
  uint64_t record_files_checked = 0;
  std::vector<std::string> problems;  // empty: the bucket holds a complete, authentic snapshot
};

// Reading packs from a bucket instead of the local disk (a remote read-only mount, or
// ArchiveOptions::local_packs), through a bounded cache of pack blocks (still sealed: the
// cache holds nothing readable without the key).
struct RemotePackReading {
  RemoteLocation location;
  std::filesystem::path cache_dir;           // created 0700
  uint64_t cache_bytes = uint64_t{1} << 30;  // Default: 1 GiB.
};

struct ArchiveOptions {
  // Refuses every change of the namespace, history and notes with kReadOnly; the audit log is
  // still appended (a read-only mount records its reads). Default: false.
  bool read_only = false;
  // Opens the database itself read-only: nothing at all is written, not even audit entries
  // (for inspecting a copy on read-only media). Implies read_only. Default: false.
  bool no_writes = false;
  // Scrypt cost for a new archive's key slot. Default: see KdfParams.
  KdfParams kdf;
  // Cap on not-yet-committed written bytes held in memory per open file, beyond which they
  // are chunked and stored ahead of the commit. Default: 32 MiB.
  uint64_t max_dirty_bytes_per_file = 32ull << 20;
  // Cap on the same bytes over every open file together (the overlay pages of files written
  // in place and the queued pipelined appends; see DirtyBudget in store/engine/content.h):
  // beyond it, a writer stores its bytes at once instead of holding them. Default: 128 MiB.
  uint64_t max_dirty_bytes = 128ull << 20;
  // Rollback detection (what medvfs mount uses; see DefaultHighWaterDir). When set, Open keeps
  // a small MAC-protected high-water mark of the archive's audit sequence in this directory,
  // one file per archive id, and refuses with kRolledBack an archive older than the mark (a
  // copy put back over a newer state). Default: empty, no check.
  std::filesystem::path high_water_dir;
  // Opens an archive older than its high-water mark anyway (a deliberate restore from a
  // backup), records kRollbackAccepted in the audit log and lowers the mark. Default: false.
  bool accept_rollback = false;
  // Opens an archive whose write-ahead log is damaged (records that follow the damage are
  // lost: committed changes may be among them) by replaying the log up to the damage, and
  // records kWalDamageAccepted in the audit log. Without it, Open refuses such an archive with
  // kCorruption naming the log file. Default: false.
  bool accept_wal_damage = false;
  // Every open adds up the archive's records against the state digest its last change stored
  // (store/archive/state_digest.h) and refuses with kCorruption when they differ: a record put back
  // from an older copy, deleted, or mixed from another point in time, by someone with write
  // access to the archive directory. This opens such an archive anyway (after a `medvfs
  // verify` and a decision to keep what is there), records kRecordDamageAccepted in the audit
  // log and makes the present records the new reference. Default: false.
  bool accept_record_damage = false;
  // Names (fnmatch(3) patterns, matched against the last path component) of scratch files:
  // editor swap and lock files, probes. A regular file created under such a name keeps only
  // its current version, and nothing at all once it is deleted (see medvfs-views(7)).
  // Default: DefaultScratchPatterns().
  std::vector<std::string> scratch_patterns = DefaultScratchPatterns();
  // Content chunks are appended to pack files in the archive's packs/ directory; a pack is
  // sealed (made immutable) once it reaches this size. Default: 64 MiB. Tests use less, to
  // seal packs without writing that much.
  uint64_t pack_bytes = uint64_t{64} << 20;
  // The commit interval, in milliseconds (ext4's commit=). 0: every commit (close, flush) is
  // durable before it returns (a power loss keeps it). Otherwise a commit returns once it is
  // written (visible, ordered, in the write-ahead log and the pack files: a killed process
  // loses nothing it acknowledged), and a background sync makes the commits durable within
  // this interval; fsync (FileHandle::Sync, SyncAll) is always durable before it returns.
  // After a power loss the archive holds a prefix of its commits, in order: never a later
  // change without an earlier one. Default: 0 (what medvfs mount sets: see its commit=).
  uint32_t commit_interval_ms = 0;
  // Sealed packs missing from the packs/ directory are read from this bucket (a remote
  // read-only mount: see OpenRemoteMirror; or packs evicted by local_packs). Default: none.
  std::optional<RemotePackReading> remote_packs;
  // With remote_packs: after each replication round, local copies of sealed packs already in
  // the bucket are dropped, oldest first, until at most this many remain. 0: all stay.
  // Default: 0.
  uint32_t local_packs = 0;
  // The bound on the cache of pack blocks read from the bucket for local_packs (in
  // ARCHIVE/remotes/NAME/cache). Default: 1 GiB.
  uint64_t remote_cache_bytes = uint64_t{1} << 30;
};

class Archive;

// A counted reference to a live node, with the node's attributes, as Lookup, MakeNode, MakeDir,
// MakeSymlink, Link and LookupPath return it. While a reference is held, the node stays (even
// once unlinked, with its content). The NodeRef releases its reference when it dies, so that a
// caller cannot leak one; Release() hands it over instead: fs/ gives it to the kernel, which
// returns it through Archive::Forget. Not copyable; it cannot be converted to an Attr by
// accident (that would drop the reference at once): attr() copies the attributes out.
class [[nodiscard]] NodeRef : private Attr {
 public:
  NodeRef() = default;  // holds no reference
  NodeRef(Archive* archive, const Attr& attr) : Attr(attr), archive_(archive) {}
  NodeRef(NodeRef&& other) noexcept;
  NodeRef& operator=(NodeRef&& other) noexcept;
  NodeRef(const NodeRef&) = delete;
  NodeRef& operator=(const NodeRef&) = delete;
  ~NodeRef();

  using Attr::atime_ns;
  using Attr::ctime_ns;
  using Attr::gid;
  using Attr::history;
  using Attr::ino;
  using Attr::mode;
  using Attr::mtime_ns;
  using Attr::nlink;
  using Attr::rdev;
  using Attr::size;
  using Attr::uid;
  using Attr::version;

  const Attr& attr() const { return *this; }
  // True while the NodeRef holds a reference.
  bool holds_reference() const { return archive_ != nullptr; }
  // Gives up the reference without releasing it: the caller now owes Archive::Forget(ino, 1).
  Attr Release();

 private:
  Archive* archive_ = nullptr;
};

// --- Backups (see Archive::Backup and RestoreBackup) ---

struct BackupRequest {
  // After the backup, delete the oldest backups of the directory so that this many remain
  // (0: keep them all). Default: 0.
  uint32_t keep = 0;
  // Called as files are copied, with the bytes copied so far (about every 4 MiB), from the
  // copying thread. Default: none.
  std::function<void(uint64_t bytes_copied)> progress;
  // Polled while files are copied; returning true stops the backup (kBusy). Default: none.
  std::function<bool()> cancelled;
};

struct BackupResult {
  uint32_t id = 0;         // the backup's number in its directory: 1, 2, 3 ...
  int64_t time_s = 0;      // Unix seconds
  uint64_t size = 0;       // bytes of all its database files, shared ones included
  uint64_t new_bytes = 0;  // bytes this backup copied (files no earlier backup had)
  uint32_t files = 0;
};

struct BackupEntry {
  uint32_t id = 0;
  int64_t time_s = 0;
  uint64_t size = 0;
  uint32_t files = 0;
  std::string archive_id;  // hex, from the backup's key slot; empty if it carries none
};

struct RestoreBackupOptions {
  std::optional<uint32_t> backup_id;  // Default: the latest backup.
  // High-water marks to bring in line (see ArchiveOptions::high_water_dir and RestoreBackup).
  // Default: empty, none touched.
  std::filesystem::path high_water_dir;
};

struct RestoredBackup {
  uint32_t id = 0;
  int64_t time_s = 0;
  uint64_t size = 0;
  bool rollback_accepted = false;  // the host had seen a newer state of this archive
};

// Where medvfs mount keeps high-water marks: $MEDVFS_STATE_DIR if set, else
// /var/lib/medvfs/high-water for root, else $XDG_STATE_HOME/medvfs/high-water (default
// ~/.local/state/medvfs/high-water).
std::filesystem::path DefaultHighWaterDir();

// An open file: live content (read/write) or one stored version (read only).
// Reads and writes may come from many threads at once.
class FileHandle {
 public:
  virtual ~FileHandle() = default;
  virtual InodeId ino() const = 0;
  // Reads up to out.size() bytes at offset; returns the count (0 at or past the end).
  virtual StatusOr<size_t> Read(uint64_t offset, std::span<char> out) = 0;
  // REQUIRES: opened for writing. Returns data.size() on success.
  virtual StatusOr<size_t> Write(uint64_t offset, std::string_view data) = 0;
  // Commits a new version if this handle (or another on the same inode) changed the content
  // since the last commit; durable when it returns ok. Called on every close().
  virtual Status Flush(const Caller& caller) = 0;
  // Same as Flush, for fsync(2).
  virtual Status Sync(const Caller& caller) = 0;
};

class Archive {
 public:
  // Creates a new archive directory (which must not exist or be empty) protected by `key`.
  static StatusOr<std::unique_ptr<Archive>> Create(const std::filesystem::path& dir,
                                                   const KeySource& key,
                                                   const ArchiveOptions& options = {});
  // Opens an existing archive. A wrong key gives kWrongKey and writes nothing; an archive
  // already opened for writing by another process gives kBusy.
  static StatusOr<std::unique_ptr<Archive>> Open(const std::filesystem::path& dir,
                                                 const KeySource& key,
                                                 const ArchiveOptions& options = {});
  // Checks `key` against the key slot of the archive at `dir` without opening its database
  // (which a mount may hold): kWrongKey, recorded like a failed Open, when it does not unlock.
  static Status CheckKey(const std::filesystem::path& dir, const KeySource& key);
  // True when dir looks like an archive (has a key slot file).
  static bool Exists(const std::filesystem::path& dir);

  virtual ~Archive() = default;
  virtual bool read_only() const = 0;

  // --- The live namespace ---------------------------------------------------------------
  // Errors of every method here, besides those listed with it: kIoError or kCorruption when
  // the database cannot be read or a record fails authentication; the methods that change
  // something also kReadOnly (a read-only archive), kNoSpace (the disk is full; nothing is
  // changed) and kRolledBack (see ArchiveOptions).
  //
  // kNotFound: no such inode.
  virtual StatusOr<Attr> GetAttr(InodeId ino) = 0;
  // A reference to the node `name` of `parent`. kNotFound: no such name; kNotDirectory:
  // `parent` is not a directory; kNameTooLong.
  virtual StatusOr<NodeRef> Lookup(InodeId parent, std::string_view name) = 0;
  // kNotDirectory: `dir` is not a directory.
  virtual StatusOr<std::vector<DirEntry>> ReadDir(InodeId dir) = 0;
  // Creates a regular file (or fifo/socket/device from `mode`'s type bits) and returns a
  // reference to it. kExists: the name is taken; kNotFound / kNotDirectory: no such parent
  // directory; kNameTooLong; kInvalid: an invalid name (".", "..", with a slash) or a
  // directory or symlink mode.
  virtual StatusOr<NodeRef> MakeNode(InodeId parent, std::string_view name, uint32_t mode,
                                     uint64_t rdev, const Caller& caller) = 0;
  // As MakeNode.
  virtual StatusOr<NodeRef> MakeDir(InodeId parent, std::string_view name, uint32_t mode,
                                    const Caller& caller) = 0;
  // As MakeNode; kNotFound also for an empty target, kNameTooLong for one too long.
  virtual StatusOr<NodeRef> MakeSymlink(InodeId parent, std::string_view name,
                                        std::string_view target, const Caller& caller) = 0;
  // A new name for `ino`. kExists: the name is taken; kPermission: `ino` is a directory;
  // kNotFound: `ino` was removed, or as MakeNode; kNotDirectory, kNameTooLong, kInvalid as
  // MakeNode.
  virtual StatusOr<NodeRef> Link(InodeId ino, InodeId new_parent, std::string_view new_name,
                                 const Caller& caller) = 0;
  virtual Status Unlink(InodeId parent, std::string_view name, const Caller& caller) = 0;
  virtual Status RemoveDir(InodeId parent, std::string_view name, const Caller& caller) = 0;
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE (linux/fs.h values).
  virtual Status Rename(InodeId parent, std::string_view name, InodeId new_parent,
                        std::string_view new_name, unsigned int flags, const Caller& caller) = 0;
  virtual StatusOr<std::string> ReadLink(InodeId ino) = 0;
  // A size change on a file that no handle has open for writing commits a kTruncate version;
  // with a written handle open, it joins that handle's pending version.
  virtual StatusOr<Attr> SetAttr(InodeId ino, const SetAttrRequest& request,
                                 const Caller& caller) = 0;
  virtual StatusOr<FsStats> StatFs() = 0;
  // Makes every change so far durable (used for fsync on directories).
  virtual Status SyncAll() = 0;

  // Extended attributes. flags: 0, XATTR_CREATE or XATTR_REPLACE.
  virtual StatusOr<std::string> GetXattr(InodeId ino, std::string_view name) = 0;
  virtual Status SetXattr(InodeId ino, std::string_view name, std::string_view value, int flags,
                          const Caller& caller) = 0;
  virtual StatusOr<std::vector<std::string>> ListXattr(InodeId ino) = 0;
  virtual Status RemoveXattr(InodeId ino, std::string_view name, const Caller& caller) = 0;

  // Opens live content. flags: open(2) flags (O_ACCMODE, O_TRUNC, O_APPEND are honoured).
  virtual StatusOr<std::unique_ptr<FileHandle>> Open(InodeId ino, int flags,
                                                     const Caller& caller) = 0;
  // Releases `lookups` references that NodeRef::Release handed over (FUSE forget); frees an
  // unlinked inode once nothing holds it. Never fails.
  virtual void Forget(InodeId ino, uint64_t lookups) = 0;

  // --- History --------------------------------------------------------------------------
  // Every name that ever existed in `dir` (live or not), with its last binding.
  virtual StatusOr<std::vector<NameRecord>> ListNames(InodeId dir) = 0;
  // The record for one name of `dir`, live or not; kNotFound if the name never existed.
  virtual StatusOr<NameRecord> ResolveName(InodeId dir, std::string_view name) = 0;
  // Every version of a history, oldest first (delete markers included).
  virtual StatusOr<std::vector<VersionInfo>> ListVersions(HistoryId history) = 0;
  virtual StatusOr<VersionInfo> GetVersion(HistoryId history, uint64_t number) = 0;
  // (ListVersions and GetVersion fill in the SHA-256 of a deferred version once it has been
  // computed, clearing sha256_deferred; they never compute it: a listing stays cheap.)
  // The SHA-256 of a version's content. For a version whose commit deferred it
  // (VersionInfo::sha256_deferred) and that has none recorded yet, computes it: one read pass
  // over the stored bytes, holes hashed as zeros (nothing read for them), `cancelled` (may be
  // empty) polled between pieces: when it returns true, stops with kBusy and records nothing.
  // The result is recorded (not on a read-only archive), so later calls only read it.
  // kNotFound for unknown numbers and delete markers.
  virtual StatusOr<Sha256Digest> VersionSha256(HistoryId history, uint64_t number,
                                               const std::function<bool()>& cancelled) = 0;
  // Attribute changes recorded on a history, oldest first.
  virtual StatusOr<std::vector<MetadataEvent>> ListMetadataEvents(HistoryId history) = 0;
  // Opens one stored version for reading (kNotFound for unknown numbers and for delete
  // markers).
  virtual StatusOr<std::unique_ptr<FileHandle>> OpenVersion(HistoryId history, uint64_t number) = 0;
  // `dir` as it was at `time_ns`: the names bound then, with the version current then.
  virtual StatusOr<std::vector<DirEntryAt>> ListDirAt(InodeId dir, int64_t time_ns) = 0;
  // The entry `name` of ListDirAt(dir, time_ns), found without listing the directory: the
  // name's own events and a search of its history's versions (a few point reads, whatever
  // the size of the directory or the history). kNotFound if ListDirAt would not show it.
  virtual StatusOr<DirEntryAt> ResolveNameAt(InodeId dir, std::string_view name,
                                             int64_t time_ns) = 0;
  // Makes version `number` current again as a new kRestore version. A deleted file is linked
  // back under the name and directory it was last seen in (kNotFound if that directory is
  // gone, kExists if the name is now taken by another file). Returns the live attributes.
  virtual StatusOr<Attr> Restore(HistoryId history, uint64_t number, const Caller& caller) = 0;

  virtual StatusOr<ArchiveStats> Stats() = 0;

  // --- DICOM tags, notes, patient index ----------------------------------------------------
  // The tags parsed from a version's content when it was committed; kNotFound for content
  // that is not DICOM (or did not parse) and for delete markers.
  virtual StatusOr<DicomTags> GetTags(HistoryId history, uint64_t number) = 0;
  // Records a note on a version (metadata only: no content version is made). An empty text
  // clears the current note; every earlier note stays in ListNotes.
  virtual Status SetNote(HistoryId history, uint64_t number, std::string_view text,
                         const Caller& caller) = 0;
  virtual StatusOr<std::vector<NoteEvent>> ListNotes(HistoryId history, uint64_t number) = 0;
  // The patient index of live DICOM files: PatientIDs, then studies of one patient (named
  // "<StudyDate>_<StudyDescription, else StudyInstanceUID>"), then the files of one study.
  virtual StatusOr<std::vector<std::string>> ListPatients() = 0;
  virtual StatusOr<std::vector<std::string>> ListStudies(std::string_view patient_id) = 0;
  virtual StatusOr<std::vector<IndexedFile>> ListStudyFiles(std::string_view patient_id,
                                                            std::string_view study) = 0;

  // --- Audit (store/audit.h) ---------------------------------------------------------------
  // The store records its own changes (commits, renames, unlinks, restores, notes, chmod,
  // chown, truncate, times, xattrs, creations), successful or failed, with the caller. The
  // layers above record what only they see (opens, view reads, mounts, denials) here.
  // Appends one entry; thread-safe; does not wait for an fsync (the next commit or SyncAll
  // makes it durable). kReadOnly only with ArchiveOptions::no_writes.
  virtual Status RecordAudit(const AuditEvent& event) = 0;
  // Calls visit for every entry that matches, oldest first, until it returns false. kCorruption
  // when an entry does not open (VerifyAuditChain says more).
  virtual Status ScanAudit(const AuditFilter& filter,
                           const std::function<bool(const AuditEntry&)>& visit) = 0;
  // Checks every entry and the chain from the first to the head record.
  virtual StatusOr<AuditChainReport> VerifyAuditChain() = 0;
  // The path of a live node from the root, with a leading '/' ("/" for the root); for an
  // unlinked file, where it was last linked. kNotFound for unknown inodes.
  virtual StatusOr<std::string> PathOf(InodeId ino) = 0;

  // --- Backup (store/archive/archive_backup.cc) --------------------------------------------------
  // Adds a backup of the archive to the backup directory `dest` while the archive stays in
  // use: a consistent point-in-time copy of the database holding every change acknowledged
  // before the call, still encrypted (nothing is decrypted), plus the key slot as it is now.
  // Incremental: database files already in `dest` are not copied again. `dest` is created
  // (mode 0700; its parent must exist) or must be empty or a backup directory of this archive
  // (kExists for another archive's, kInvalid inside the archive or around it); kBusy while
  // another backup into it runs. A kBackup audit entry (caller, "to DEST") is recorded and
  // synced first, so the backup holds its own record; a failure is recorded too.
  // kReadOnly with ArchiveOptions::no_writes.
  virtual StatusOr<BackupResult> Backup(const std::filesystem::path& dest,
                                        const BackupRequest& request, const Caller& caller) = 0;
  // --- Garbage collection (store/archive/archive_gc.cc) ---------------------------------------
  // Gives back the space of content nothing references any more: chunks of pruned, purged
  // or dropped versions and orphans a crash left are dropped from the chunk index, then
  // sealed packs with enough garbage (GcRequest::repack_garbage_percent) are rewritten: their
  // live chunks are copied to new packs and the old files deleted. Online: reads and writes
  // go on meanwhile (a chunk a writer takes up while the collection runs is never dropped),
  // the rewrite keeps to GcRequest::rate_bytes_per_s, and a crash at any step loses nothing
  // (the next open finishes or forgets what was half done). One collection at a time (kBusy
  // otherwise). Audited (kGc), and the result is kept for Stats (not for a dry run).
  // kReadOnly on a read-only archive unless dry_run.
  virtual StatusOr<GcResult> CollectGarbage(const GcRequest& request, const Caller& caller) = 0;

  // --- Lifecycle (store/archive/archive_lifecycle.cc) -----------------------------------------
  // Retention rules, by path.
  virtual StatusOr<std::vector<RetentionRule>> ListRetention() = 0;
  // Sets the rule of rule.dir (a directory). Lengthening, or a first rule, is always allowed.
  // Shortening or turning compliance into governance: allowed for a governance rule (audited),
  // kPermission for a compliance one. min_age_s 0 removes a governance rule. kNotDirectory,
  // kNotFound for a dir that is no live directory; kInvalid for a negative age.
  virtual Status SetRetention(const RetentionRule& rule, const Caller& caller) = 0;
  virtual StatusOr<std::vector<LegalHold>> ListHolds() = 0;
  // Sets (or replaces the reason of) a legal hold on hold.history or hold.dir (exactly one
  // set; kInvalid otherwise or without a reason). Audited with the reason.
  virtual Status SetHold(const LegalHold& hold, const Caller& caller) = 0;
  // kNotFound: no hold on that file or directory.
  virtual Status ReleaseHold(HistoryId history, InodeId dir, const Caller& caller) = 0;
  // Removes content versions as PruneRequest says; each removal is audited (kPrune). Their
  // records stay with ContentRemoval::kPruned. The space comes back with CollectGarbage.
  // kInvalid without any keep option or deleted_older_than_s.
  virtual StatusOr<PruneResult> Prune(const PruneRequest& request, const Caller& caller) = 0;
  // Removes the content, tags, notes, SHA-256 and SOPInstanceUID of one version or of every
  // version of a file, then collects garbage so that their chunks leave the pack files (those
  // no other version shares) and compacts the database. A live file purged whole is unlinked
  // first. kPermission under a legal hold or a compliance rule the versions have not yet met
  // (a governance rule does not stop a purge); kBusy for the current version of a live file
  // (purge the whole file, or save a new version first); kInvalid without a reason; kNotFound
  // for an unknown version or a delete marker.
  virtual StatusOr<PurgeResult> Purge(const PurgeRequest& request, const Caller& caller) = 0;

  // --- S3 remotes (store/archive/archive_remote.cc) -------------------------------------------
  // Adds a remote: checks that the bucket is reachable with the credentials (LoadS3Credentials
  // of the environment) and writes its marker object (the archive id and the key slot, which
  // the passphrase unwraps as the archive's own). kExists for a name in use or a bucket prefix
  // that holds another archive; kInvalid for a bad name or URL; kIoError, kAccess from the
  // bucket. Audited. Replication starts with the next Replicate.
  virtual Status AddRemote(const RemoteConfig& remote, const Caller& caller) = 0;
  // Forgets a remote (nothing in the bucket is deleted). kNotFound for an unknown name.
  virtual Status RemoveRemote(const std::string& name, const Caller& caller) = 0;
  // Every remote, with where its replication stands (from the local state: no network).
  virtual StatusOr<std::vector<RemoteStatus>> ListRemotes() = 0;
  // One round of replication to remote `name`: uploads the sealed packs not yet in the bucket
  // (resuming where a crash stopped), then, when snapshot_interval_s has passed and the
  // archive changed (or force_snapshot), a consistent snapshot of the records (the packs
  // they refer to first, the encrypted snapshot last); with Object Lock, gives each object
  // the archive's retention and legal holds; marks the objects no kept snapshot needs with
  // delete markers (never deleting an object version). Never holds the archive's locks while
  // it talks to the network. A failure is kept for ListRemotes and returned (the next round
  // retries). kReadOnly on a read-only archive.
  virtual StatusOr<ReplicateResult> Replicate(const std::string& name,
                                              const ReplicateRequest& request) = 0;

  // --- De-identification (store/dicom/deid.h) ----------------------------------------------------
  // A de-identifier keyed by this archive (a subkey of its data key), so that pseudonyms and
  // remapped UIDs are the same in every view and export of the archive and nowhere else.
  virtual std::unique_ptr<Deidentifier> NewDeidentifier(const DeidConfig& config) = 0;
};

// One patient of BuildDeidMap.
struct PseudonymEntry {
  std::string pseudonym;
  std::string patient_id;  // as the files have it (surrounding spaces removed)
  uint64_t versions = 0;   // DICOM versions (live, old and deleted files) with this PatientID
};
// Every PatientID of every DICOM version the archive holds (old versions and deleted files
// included, as long as their directory lives), with its pseudonym under `deidentifier`, sorted
// by pseudonym: what `medvfs deid-map` prints for re-identification.
StatusOr<std::vector<PseudonymEntry>> BuildDeidMap(Archive& archive,
                                                   const Deidentifier& deidentifier);

// Resolves a slash-separated path relative to the root to the live inode (no symlinks
// followed), for the command line on an unmounted archive. Errors as Archive::Lookup.
StatusOr<NodeRef> LookupPath(Archive& archive, std::string_view path);

// --- S3 remotes without a local archive (store/archive/archive_remote.cc) ----------------------
// Rebuilds a complete local archive in `archive_dir` (as RestoreBackup: must not exist or be
// empty) from the latest snapshot in the bucket, downloading its records and every pack they
// refer to and checking each against the snapshot. Audited as kRestoreBackup ("from
// s3://..."). *snapshot_seq is the snapshot restored.
Status RestoreRemote(const RemoteLocation& location, const std::filesystem::path& archive_dir,
                     const KeySource& key, const RestoreBackupOptions& options,
                     const Caller& caller, uint64_t* snapshot_seq);
// Makes (or brings up to the bucket's latest snapshot) a local copy of the remote's records in
// cache_dir/archive, for Archive::Open with remote_packs (a remote read-only mount). Returns
// the archive directory and the snapshot's number.
StatusOr<std::pair<std::filesystem::path, uint64_t>> OpenRemoteMirror(
    const RemoteLocation& location, const std::filesystem::path& cache_dir, const KeySource& key);
// The number of the bucket's latest snapshot (0: none), without the key.
StatusOr<uint64_t> LatestRemoteSnapshot(const RemoteLocation& location);
// Checks the bucket: its latest snapshot opens with the key, every record file and pack it
// names is there with its size, every pack's entries authenticate (each pack is read whole).
StatusOr<RemoteVerifyReport> VerifyRemote(const RemoteLocation& location, const KeySource& key);

// --- Backup directories (store/archive/archive_backup.cc) ----------------------------------------
// The complete backups in `dest`, oldest first; kNotFound when it is no backup directory or
// holds none. Needs no key.
StatusOr<std::vector<BackupEntry>> ListBackups(const std::filesystem::path& dest);

// Restores backup `options.backup_id` (default: the latest) of `dest` into a new archive
// directory `archive_dir`, which must not exist (its parent must) or be an empty directory
// (kNotEmpty otherwise; an existing archive is never overwritten). In order: the backup's key
// slot is written and unlocked with `key` (kWrongKey, the passphrase of when the backup was
// made), every file of the backup is checked against its checksum (kCorruption naming the file),
// the database is restored, and the archive is opened, which records kRestoreBackup ("from DEST
// backup N"). On failure nothing is left in `archive_dir`.
//
// A restored archive is older than the state the host may have seen of the same archive id;
// the restore is the deliberate act --accept-rollback exists for, so with
// options.high_water_dir set (what mounts use) the open accepts the rollback, which records
// kRollbackAccepted and lowers the mark: the restored archive then mounts without
// --accept-rollback, and a newer copy of the same archive on this host would need it.
StatusOr<RestoredBackup> RestoreBackup(const std::filesystem::path& dest,
                                       const std::filesystem::path& archive_dir,
                                       const KeySource& key, const RestoreBackupOptions& options,
                                       const Caller& caller);

}  // namespace medvfs::store
