// VerifyArchive: decrypts and checks every stored byte of an archive without mounting it
// (what `medvfs verify` runs).
//
// It opens the database read-only and writes nothing, so it also runs on a mounted archive
// (RocksDB takes no lock for a read-only open); it then checks the state the database had when
// the check began, and files the mount compacts away meanwhile may show up as read errors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "store/audit.h"
#include "store/keys.h"
#include "store/status.h"

namespace medvfs::store {

struct VerifyProblem {
  // kError: stored bytes are damaged, altered or missing. kWarning: something unexpected that
  // loses no data (an unreferenced chunk, a record of a kind this medvfs does not know).
  enum class Severity : uint8_t { kError, kWarning };
  Severity severity = Severity::kError;
  // What is affected: "/ct/scan.dcm v3" (a file's version; the path is where the file is or
  // was last linked), "/ct/scan.dcm" (its history), "database file 000012.sst",
  // "inode 12 record", "chunk 3fa2c1d0e4b5a697" (a prefix of its id), "audit log".
  std::string where;
  // What is wrong, e.g. "chunk 5 of 9 failed authentication (altered or damaged)".
  std::string what;

  // "where: what".
  std::string ToString() const;
};

struct VerifyProgress {
  std::string_view phase;  // "database files", "records", "content", "chunk index", "audit log"
  uint64_t done = 0;
  uint64_t total = 0;  // 0 when unknown
  bool bytes = false;  // done and total count bytes (else items)
};

struct VerifyOptions {
  // Called as the check advances (often: once per chunk). Default: none.
  std::function<void(const VerifyProgress&)> progress;
  // Problems beyond this many are counted in VerifyReport::problems_dropped but not kept.
  // Default: 10000.
  size_t max_problems = 10000;
};

struct VerifyReport {
  bool archive_in_use = false;  // another process (a mount) held the database open
  uint64_t database_files = 0;  // table and blob files
  uint64_t database_bytes = 0;  // their size
  uint64_t records = 0;         // meta records opened and decoded
  uint64_t files = 0;           // histories
  uint64_t versions = 0;        // versions, delete markers included
  uint64_t chunks = 0;          // distinct chunks (chunk index records)
  uint64_t chunk_reads = 0;     // chunks read for the content of every version
  uint64_t content_bytes = 0;   // plaintext bytes reassembled and hashed
  // Versions whose commit deferred the SHA-256 (mostly hole) and that have none computed yet:
  // their chunks are checked, their digest is not (Archive::VersionSha256 computes it).
  uint64_t digests_pending = 0;
  uint64_t unreferenced_chunks = 0;
  // unreferenced, of versions a scratch file dropped or whose content prune or purge removed
  uint64_t chunks_awaiting_gc = 0;
  uint64_t removed_versions = 0;  // versions whose content prune or purge removed
  uint64_t packs = 0;             // pack files read
  uint64_t pack_bytes = 0;        // their size
  // Packs an S3 remote holds and the local disk no longer does (local_packs): not read here;
  // medvfs verify --remote checks them in the bucket.
  uint64_t remote_only_packs = 0;
  // Whole, authentic entries in packs that the chunk index does not refer to: written for a
  // commit that did not happen (a crash between the pack sync and the index write), or
  // dropped by a later commit. Garbage, counted, never an error.
  uint64_t orphan_chunks = 0;
  uint64_t orphan_bytes = 0;
  AuditChainReport audit;  // from Archive::VerifyAuditChain
  bool audit_checked = false;
  std::vector<VerifyProblem> problems;  // in the order found
  uint64_t problems_dropped = 0;        // beyond VerifyOptions::max_problems
  uint64_t errors = 0;                  // kError problems, dropped ones included
  uint64_t warnings = 0;

  bool clean() const { return errors == 0; }
};

// Checks the archive in `dir`:
// - the key slot unlocks with `key` (kWrongKey otherwise, as Archive::Open);
// - RocksDB's block checksums of every table file; the write-ahead log replays without a
//   damaged record;
// - every meta record opens (AES-GCM with its key as additional data) and decodes;
// - every version of every history: its versions are numbered 1..last without gaps, its
//   extent groups are present and add up to its size and chunk count, every chunk exists,
//   opens, decompresses, has its indexed length and hashes to its id, and the reassembled
//   content has the version's size and SHA-256 (streamed chunk by chunk);
// - every indexed chunk is referenced by some version (a warning otherwise) and opens;
// - the audit chain (Archive::VerifyAuditChain).
// Returns the report, whatever it found. A non-ok Status means the check could not run: wrong
// key, no archive there, or a database RocksDB refuses to open (kCorruption with its reason).
// Memory: one chunk at a time, plus 32 bytes per chunk reference and a few bytes per history
// and directory.
StatusOr<VerifyReport> VerifyArchive(const std::filesystem::path& dir, const KeySource& key,
                                     const VerifyOptions& options = {});

}  // namespace medvfs::store
