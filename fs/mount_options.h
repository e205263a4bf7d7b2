// The `-o` options of `medvfs mount` and `mount.medvfs` (and of /etc/fstab lines).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace medvfs::fs {

// The default commit interval of a mount: 0.1 s.
inline constexpr uint32_t kDefaultCommitIntervalMs = 100;

struct MountOptions {
  // Mounts read-only: the archive is opened read-only and the kernel refuses writes with EROFS.
  // Default: false.
  bool read_only = false;
  // Lets other users than the one mounting use the mount. POSIX permissions apply: the kernel
  // checks them (default_permissions, always on), and the daemon checks them again on top
  // (fs/access.h), including its views' own rules, recording every denial it makes in the
  // audit log. Default: false.
  bool allow_other = false;
  // Opens the archive even though it is older than the last state this host saw (a backup put
  // back on purpose); the mount records that in the audit log. Default: false (refused).
  bool accept_rollback = false;
  // Opens the archive although its write-ahead log is damaged, keeping what precedes the damage
  // (store::ArchiveOptions::accept_wal_damage). Default: false (refused).
  bool accept_wal_damage = false;
  // Opens the archive although its records do not add up to its state digest (altered outside
  // medvfs; store::ArchiveOptions::accept_record_damage). Default: false (refused).
  bool accept_record_damage = false;
  // versions=visible: readdir lists @version in every directory (and .meta in history
  // directories). Default: hidden.
  bool versions_visible = false;
  // audit_failure=refuse|allow: a read of patient data (an open for reading of a live file,
  // a version or a .meta file) whose audit entry cannot be recorded (a full disk, an I/O
  // error) is refused with ENOSPC or EIO, or, with allow, goes on with the failure logged.
  // Default: refuse (the audit log never silently misses a read).
  bool audit_failure_allow = false;
  // anon_only: the mount serves /@anon alone (a research workstation): the root lists `@anon`
  // only and every other name is ENOENT. Implies ro. Default: false.
  bool anon_only = false;
  // deid_config=FILE: how /@anon de-identifies (store::LoadDeidConfig, man medvfs-deid.5),
  // made absolute against the working directory at parse time (the daemon runs in /). The
  // daemon reads it when it mounts; a file that does not parse fails the mount. Default: none
  // (the built-in store::DeidConfig{}).
  std::string deid_config;
  // scratch=PATTERN[:PATTERN...]: the names of scratch files (fnmatch(3) patterns; swap and
  // lock files), which keep only their current version and leave nothing once deleted;
  // `scratch=` alone: none. Default: unset, store::DefaultScratchPatterns().
  std::optional<std::vector<std::string>> scratch_patterns;
  // commit=SECONDS (ext4's commit=; a decimal such as 0.1, at most 300): close() returns once
  // its version is committed (visible, ordered, written to the archive: a killed daemon loses
  // nothing), and a background sync makes it survive a power loss within this many seconds;
  // fsync() is durable before it returns. commit=0: every close() is durable before it
  // returns. After a power loss the archive holds a prefix of its commits, in order.
  // Default: kDefaultCommitIntervalMs.
  uint32_t commit_interval_ms = kDefaultCommitIntervalMs;
  // --- The S3 tier (DESIGN.md section 8, medvfs-remote(1)) ---
  // endpoint=URL, region=R: the S3 service of a remote mount (medvfs mount s3://...).
  // Default: the environment's AWS_ENDPOINT_URL and AWS_REGION (or AWS_DEFAULT_REGION).
  std::string s3_endpoint;
  std::string s3_region;
  // cache=DIR: a remote mount's cache (its records and the pack blocks it read, still
  // sealed), made absolute at parse time. Default: ~/.cache/medvfs/BUCKET-PREFIX.
  std::string cache_dir;
  // cache_size=N (bytes; K, M, G, T suffixes): the bound on the cached pack blocks of a remote
  // mount or of local_packs. Default: 1 GiB.
  uint64_t cache_bytes = uint64_t{1} << 30;
  // local_packs=N: keep only the N newest sealed packs on the local disk once the archive's
  // remote holds them; older ones are read from the bucket. 0: keep all. Default: 0.
  uint32_t local_packs = 0;
  // snapshot_interval=SECONDS (1 to 86400): while the archive changes, a snapshot of its
  // records goes to each remote at most this often. Default: 60.
  uint32_t snapshot_interval_s = 60;
  // pack_size=N (bytes; K, M, G suffixes; 1M to 1G): a pack is sealed (and then replicated
  // to the remotes) once it holds this much. Smaller packs reach the bucket sooner; larger
  // ones mean fewer objects. Default: 64M.
  uint64_t pack_bytes = uint64_t{64} << 20;
  // replicate=off: no replication while mounted (medvfs remote sync does it by hand).
  // Default: on, for an archive with remotes.
  bool replicate = true;
  // Key sources for mounts without a terminal (fstab). Default: none.
  std::string passphrase_file;
  std::string key_file;
  // Further options handed to libfuse and the kernel (e.g. nosuid, nodev, noatime, debug).
  std::vector<std::string> fuse_options;
};

// Parses one comma-separated option list, as given to -o, into *options (later lists override
// earlier ones). A backslash escapes a comma. Options that only mean something to mount(8) or
// fstab (defaults, auto, noauto, user, users, nouser, _netdev, nofail, x-*, comment=*) are
// accepted and dropped; fsname= and subtype= are ignored because medvfs sets them itself, and
// default_permissions because it is always on.
// anon_only sets read_only whatever comes after it (rw included). kInvalid for an empty key
// file or deid_config name and bad values of versions=, audit_failure= and commit=.
store::Status ParseMountOptions(std::string_view list, MountOptions* options);

// A commit interval as commit= takes it: seconds, with the fraction only when there is one
// ("0.1", "5", "0", "0.025").
std::string FormatCommitInterval(uint32_t milliseconds);

// The option string given to libfuse: default_permissions always (the kernel's permission
// checks are the only ones that cover FIFOs, sockets and device nodes; with allow_other the
// daemon checks again, see fs/access.h), fsname=<archive path> and subtype=medvfs (so
// /proc/mounts shows "fuse.medvfs"), ro and allow_other as set, anon_only and
// deid_config=FILE when set (MountedSession::Mount takes them out again before libfuse sees
// them), then the pass-through options. Commas and backslashes inside values are escaped.
std::string FuseOptionString(const MountOptions& options, std::string_view archive_path);

}  // namespace medvfs::fs
