// The S3 tier's formats and local bookkeeping, shared by the replication rounds
// (archive_remote.cc) and by what reads a bucket without a local archive (remote_restore.cc):
// object names, the marker, snapshots, a remote's local state, and how the archive's retention
// rules and holds become Object Lock settings. Internal to store/archive/. The layout is
// described in remote.h and man/medvfs-format.5, "S3 remotes".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/archive.h"
#include "store/crypto/crypto.h"
#include "store/s3/s3_client.h"
#include "store/status.h"

namespace medvfs::store::remote_tier {

inline constexpr char kMarkerName[] = "medvfs-remote";
inline constexpr char kMarkerMagic[] = "medvfs-remote 1\n";
inline constexpr char kSnapshotsDir[] = "snapshots/";
inline constexpr char kRecordsDir[] = "records/";
inline constexpr char kMirrorPacksFile[] = "remote-packs.json";
inline constexpr int kStateFormat = 1;
inline constexpr int kSnapshotFormat = 1;
// Snapshots kept in the bucket (with every object they need); older ones get delete markers.
inline constexpr size_t kKeptSnapshots = 3;
// A retention "for ever" becomes this many years of Object Lock retention.
inline constexpr int64_t kForeverSeconds = int64_t{100} * 365 * 86400;
inline constexpr size_t kMaxSmallFile = 64u << 20;

int64_t NowSeconds();
std::string Hex(std::span<const uint8_t> bytes);
std::string Hex(const std::string& bytes);
// A small file whole; kCorruption beyond `limit` bytes.
StatusOr<std::string> ReadWholeFile(const std::filesystem::path& file, size_t limit);
// 1-32 of [A-Za-z0-9_-].
bool ValidRemoteName(std::string_view name);

// --- Object names ---
// PREFIX/name (name alone without a prefix).
std::string ObjectKey(const S3Url& url, std::string_view name);
std::string PackObjectName(uint64_t pack);     // packs/NNNNNNNNNNNNNNNN
std::string SnapshotObjectName(uint64_t seq);  // snapshots/NNNNNNNNNNNNNNNNNNNN

// --- The marker: the archive's id and key slot ---
std::string EncodeMarker(const std::string& archive_id_hex, const std::string& key_slot);
Status DecodeMarker(std::string_view in, std::string* archive_id_hex, std::string* key_slot);
// Reads the marker, writes the key slot into `dir` (0600) and unlocks it with `key`: the
// remote subkey, and the archive id the marker names.
Status UnlockFromMarker(S3Client& client, const S3Url& url, const std::filesystem::path& dir,
                        const KeySource& key, SecretKey* remote_key, std::string* archive_hex);

// --- Snapshots ---
struct SnapshotFile {
  std::string path;    // relative to the BackupEngine directory
  std::string object;  // records/...
  uint64_t size = 0;
  std::string sha256;  // hex, of the plain file
};

struct Snapshot {
  uint64_t seq = 0;
  int64_t time_s = 0;
  std::string archive_id;  // hex
  uint32_t backup_id = 0;
  std::vector<SnapshotFile> files;
  std::map<uint64_t, uint64_t> packs;  // pack -> size
};

std::string EncodeSnapshot(const Snapshot& s);
// kCorruption for anything EncodeSnapshot did not make, or a file path leaving its directory.
Status DecodeSnapshot(std::string_view text, Snapshot* s);
// The latest snapshot of the bucket, opened with `remote_key`; kNotFound when there is none.
Status FetchLatestSnapshot(S3Client& client, const S3Url& url, const SecretKey& remote_key,
                           Snapshot* snapshot);

// --- A remote's local state (ARCHIVE/remotes/NAME/) ---
struct ObjectState {
  uint64_t size = 0;
  std::string version;
  int64_t uploaded_s = 0;
  int64_t until_s = 0;  // Object Lock retention given (0: none)
  bool hold = false;
};

struct SnapshotState {
  uint64_t seq = 0;
  int64_t time_s = 0;
  ObjectState object;
  std::set<uint64_t> packs;
  std::set<std::string> records;
};

struct RemoteState {
  std::map<uint64_t, ObjectState> packs;       // uploaded packs
  std::map<std::string, ObjectState> records;  // uploaded record files, by object name
  std::vector<SnapshotState> snapshots;        // kept, oldest first
  uint64_t next_seq = 1;
  uint64_t kv_seq = 0;          // KvStore::LatestSequence when the last snapshot was made
  int object_lock = -1;         // -1 not asked yet, 0 no, 1 yes
  std::string policy;           // the lock policy last applied to every live object
  std::set<uint64_t> evicted;   // packs whose local copy was dropped (local_packs)
  std::string key_slot_sha256;  // of the key slot the bucket's marker carries
  std::string last_error;
  int64_t last_error_time_s = 0;
};

std::string EncodeState(const RemoteState& st);
Status DecodeState(std::string_view text, RemoteState* st);
std::filesystem::path RemotesDir(const std::filesystem::path& archive);
std::filesystem::path RemoteDir(const std::filesystem::path& archive, const std::string& name);
std::string EncodeConfig(const RemoteConfig& c);
StatusOr<RemoteConfig> LoadConfig(const std::filesystem::path& archive, const std::string& name);
// An empty state when the remote has none yet.
StatusOr<RemoteState> LoadState(const std::filesystem::path& archive, const std::string& name);
// Replaces state.json whole, durably (a reader sees one state or the next).
Status SaveState(const std::filesystem::path& archive, const std::string& name,
                 const RemoteState& st);
// The names of the archive's remotes, sorted.
std::vector<std::string> RemoteNames(const std::filesystem::path& archive);
// Every regular file below `root`, relative to it, sorted.
std::vector<std::string> FilesBelow(const std::filesystem::path& root);

// --- Object Lock ---
// What Object Lock the archive's rules and holds ask of every object: the strictest rule's
// mode and age (a pack mixes the versions of many files), and a legal hold while any hold is
// set. Conservative: an object may be kept longer than its own versions need.
struct LockPolicy {
  S3LockMode mode = S3LockMode::kNone;
  int64_t keep_s = 0;
  bool hold = false;
  std::string Describe() const {
    return std::string(mode == S3LockMode::kCompliance   ? "compliance"
                       : mode == S3LockMode::kGovernance ? "governance"
                                                         : "none") +
           " " + std::to_string(keep_s) + (hold ? " hold" : "");
  }
  S3ObjectLock For(int64_t uploaded_s) const {
    S3ObjectLock lock;
    lock.mode = mode;
    if (mode != S3LockMode::kNone) lock.retain_until_s = uploaded_s + keep_s;
    lock.legal_hold = hold;
    return lock;
  }
};

LockPolicy PolicyOf(const std::vector<RetentionRule>& rules, const std::vector<LegalHold>& holds);
// Brings one uploaded object to the policy: retention extended (never shortened), legal hold
// set or lifted. Counts the calls made in *changed.
Status ApplyPolicy(S3Client& client, const std::string& key, const LockPolicy& policy,
                   ObjectState* o, uint64_t* changed);

}  // namespace medvfs::store::remote_tier
