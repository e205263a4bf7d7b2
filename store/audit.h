// The audit log: who did what to which file, kept inside the archive.
//
// Every entry is sealed like every other record (AES-256-GCM under the archive's keys) and
// chained: entry n carries HMAC-SHA-256(audit key, MAC of entry n-1 || entry n), and a head
// record holds the last sequence number and MAC. Removing, reordering, altering or truncating
// entries is therefore detected by VerifyAuditChain, without trusting anything stored in the
// clear. See man/medvfs-format.5 and medvfs-audit(1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace medvfs::store {

// What an entry records. Values are stored: never renumber, only append.
enum class AuditOp : uint8_t {
  kOpenRead = 1,   // a live file opened for reading (one entry per open)
  kOpenWrite = 2,  // a live file opened for writing
  kCommit = 3,     // a content version was committed (version = its number)
  kCreate = 4,     // a file, fifo, socket or device node made
  kMkdir = 5,
  kSymlink = 6,
  kLink = 7,    // a hard link made (target_path = the new name)
  kRename = 8,  // target_path = the new name
  kUnlink = 9,
  kRmdir = 10,
  kRestore = 11,   // version = the new version; detail names the one restored
  kNote = 12,      // a note written on `version`
  kChmod = 13,     // detail: "0640"
  kChown = 14,     // detail: "1000:1000"
  kTruncate = 15,  // detail: the new size
  kSetTimes = 16,
  kSetXattr = 17,     // detail: the attribute's name
  kRemoveXattr = 18,  // detail: the attribute's name
  kReadVersion = 19,  // a stored version opened through @version (version = its number)
  kReadMeta = 20,     // a .meta file read (tags, dicom.json, diff...); detail: which
  kCliRead = 21,      // the command line read a version on an unmounted archive; detail: command
  kMount = 22,        // detail: the mount options
  kUnmount = 23,
  kUnlockFailed = 24,      // a wrong passphrase or key file was given (recorded at the next unlock)
  kRollbackAccepted = 25,  // mounted although older than the last state this host saw
  kPasswd = 26,            // the key slot was rewrapped
  kVerify = 27,            // medvfs verify ran; result is 0 when it found no problem
  kAuditRead = 28,         // the audit log was read (medvfs audit)
  kListDir = 29,           // a directory was listed (opendir)
  kBackup = 30,            // medvfs backup, recorded before the copy (so the backup holds it);
                           // detail: "to DEST"; a failure is recorded again with its errno
  kRestoreBackup = 31,     // made by medvfs restore-backup; detail: "from DEST backup N"
  kDicomReceive = 32,      // medvfs receive stored an instance (version = the target's) or
                           // refused an instance or association (result: the errno-like
                           // reason); detail: peer AE title and host, SOP class, DIMSE status
  kWalDamageAccepted = 33,     // opened with a damaged write-ahead log replayed up to the damage
                               // (--accept-wal-damage); detail: the log file and what was lost
  kRecordDamageAccepted = 34,  // opened although its records did not add up to the state
                               // digest (--accept-record-damage); detail: what differed
  kDamageFound = 35,           // a read met stored bytes that failed authentication (it got
                               // EIO, never the bytes); once per open handle; detail: where
  kGc = 36,                    // medvfs gc (also a dry run); detail: what it dropped, rewrote
                               // and freed
  kPrune = 37,                 // medvfs prune removed a version's content; path, version
  kPurge = 38,                 // medvfs purge removed a version's content; detail: the reason
  kHold = 39,                  // a legal hold set; detail: the reason
  kHoldRelease = 40,           // a legal hold released
  kRetention = 41,             // a retention rule set, shortened or removed; detail: the rule
  kRemote = 42,                // an S3 remote added or removed; detail: "add NAME URL" or
                               // "remove NAME"
};

// "open-read", "commit", "rename", ... (as medvfs audit prints them).
std::string_view AuditOpName(AuditOp op);
std::optional<AuditOp> ParseAuditOpName(std::string_view name);

// One thing to record. Paths are as they were at that moment, from the archive root, with a
// leading '/'.
struct AuditEvent {
  int64_t time_ns = 0;  // UTC nanoseconds; 0: now
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
  std::string program;  // /proc/PID/comm of the caller
  AuditOp op = AuditOp::kOpenRead;
  std::string path;
  std::string target_path;  // rename and link: the new name
  uint64_t version = 0;     // 0: none
  int32_t result = 0;       // 0, or the errno the operation failed with (EACCES, EIO...)
  std::string detail;       // short, operation-specific text without patient data
};

// A stored entry.
struct AuditEntry : AuditEvent {
  uint64_t seq = 0;  // 1, 2, 3 ... in the order recorded
};

// What medvfs audit --since/--until/--path/--uid select. Unset fields select everything.
struct AuditFilter {
  std::optional<int64_t> since_ns;  // time_ns >= since
  std::optional<int64_t> until_ns;  // time_ns < until
  // The path or target path equals it, or lies below it ("/ct" selects "/ct/a.dcm").
  std::optional<std::string> path;
  std::optional<uint32_t> uid;
};

bool AuditFilterMatches(const AuditFilter& filter, const AuditEntry& entry);

// The result of checking the whole chain.
struct AuditChainReport {
  uint64_t entries = 0;   // entries that were read
  uint64_t head_seq = 0;  // the last sequence number the head record names
  bool intact = true;
  uint64_t first_bad_seq = 0;  // where it breaks (0 when intact)
  std::string problem;         // e.g. "entry 41 is missing", "entry 7 was altered"
};

}  // namespace medvfs::store
