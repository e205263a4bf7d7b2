// Plain functions that name and format what the history views show. Shared by the FUSE layer
// (which draws `@version`) and the command line (which prints the same on an unmounted
// archive), so both always agree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/archive.h"
#include "store/status.h"

namespace medvfs::store {

// "2026-11-21T10:22:03.123456789Z" (RFC 3339, UTC, nanoseconds).
std::string FormatTimeNs(int64_t time_ns);
// "2026-11-21T10-22-03Z": UTC to the second, with '-' instead of ':' (safe in file names).
std::string FormatTimeForFileName(int64_t time_ns);
// Parses ISO-8601 / RFC 3339 times: "2026-11-21T10:00:00Z", "2026-11-21T10:00:00.5Z",
// "2026-11-21T10:00:00+01:00", "2026-11-21" (midnight UTC), and the file-name form
// "2026-11-21T10-22-03Z". A time without zone is UTC. kInvalid otherwise.
StatusOr<int64_t> ParseTimeNs(std::string_view text);

// The extension of a name including the dot ("scan.dcm" -> ".dcm"; "a.tar.gz" -> ".gz";
// "README" and ".bashrc" -> "").
std::string_view NameExtension(std::string_view name);
// "v3_2026-11-21T10-22-03Z.dcm" for version 3 of "scan.dcm".
std::string VersionFileName(const VersionInfo& version, std::string_view name);
// The version number a `@version/NAME/` entry name refers to: "v3", "v3_<anything>"; nullopt
// for anything else (including "v0", overflow, and signs).
std::optional<uint64_t> ParseVersionFileName(std::string_view entry);
// The time a `@version/@<time>` entry refers to; nullopt if entry does not start with '@' or
// the time does not parse.
std::optional<int64_t> ParseTimeDirName(std::string_view entry);

// The SHA-256 as 64 lower-case hex digits.
std::string FormatSha256Hex(const Sha256Digest& digest);

// The `traceability` column of versions.tsv for a version with
// VersionInfo::sop_instance_uid_reused (DICOM: one SOP Instance UID must mean one content).
inline constexpr std::string_view kSopInstanceUidReusedText =
    "SOPInstanceUID reused with different content";

// What listings show for a version whose commit deferred its SHA-256 and that has none
// computed yet (VersionInfo::sha256_deferred): listings never compute it, they stay cheap.
inline constexpr std::string_view kSha256PendingText = "pending";
// The version's SHA-256 in hex, or kSha256PendingText.
std::string FormatVersionSha256(const VersionInfo& version);

// The `versions.tsv` view: a header line, then one line per version (delete markers
// included), tab-separated:
//   number time size sha256 uid gid pid program operation note sop_instance_uid traceability
//   content removed_time removed_uid removed_program removed_reason hold
// content is empty, "pruned" or "purged" (ContentRemoval), the next four who removed it, when
// and why (a purge's reason); sha256 is empty for a purged version; hold is the reason of the
// legal hold that keeps the version, empty when none.
// sha256 is kSha256PendingText for a deferred digest not computed yet (then
// VersionInfo::sha256_deferred is set when parsed back). sop_instance_uid is empty for
// content that is not DICOM; traceability is
// kSopInstanceUidReusedText or empty. Tabs, newlines and backslashes inside text fields are
// escaped as \t \n \\.
std::string FormatVersionsTsv(const std::vector<VersionInfo>& versions);
// Parses what FormatVersionsTsv wrote (the command line reads it through a mount). Also reads
// the earlier forms of the file, without the last six columns, or the last eight (their fields
// stay empty/false).
StatusOr<std::vector<VersionInfo>> ParseVersionsTsv(std::string_view tsv);

}  // namespace medvfs::store
