// A file's history read through a mount (the `@version/NAME/.meta/versions.tsv` view), and the
// choice of one version; shared by log, cat, restore, tags and note.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "store/archive.h"
#include "tools/target.h"

namespace medvfs::tools {

// The versions of target (oldest first, delete markers included); fails with a clear reason.
// REQUIRES: target.through_mount.
std::vector<store::VersionInfo> HistoryThroughMount(const FileTarget& target);

// Fails with the reason why version `number` of target cannot be read: no such version, or a
// delete marker.
[[noreturn]] void FailMissingVersion(const std::vector<store::VersionInfo>& versions,
                                     const FileTarget& target, uint64_t number);
// Fails naming who removed the content of version `v` (prune or purge) and when.
[[noreturn]] void FailRemovedVersion(const store::VersionInfo& v, const FileTarget& target);

// The version a command works on: `number`, or with 0 the current one (the last of the
// history, when the file is live). `versions` is the history, oldest first. Fails with a clear
// reason when there is no such version, when the file has been deleted (no current version),
// or when it has no saved version yet. A delete marker is returned like any version.
const store::VersionInfo& PickVersionOrFail(const std::vector<store::VersionInfo>& versions,
                                            const FileTarget& target, bool live, uint64_t number);

// Through a mount: whether the file is live (a regular file under its name now).
// REQUIRES: target.through_mount.
bool IsLiveThroughMount(const FileTarget& target);

// Through a mount: the metadata directory of a version, `DIR/.meta/NAME` for the current one
// (number 0) or `DIR/@version/NAME/.meta/v<N>`. REQUIRES: target.through_mount.
std::filesystem::path MetaDirThroughMount(const FileTarget& target, uint64_t number);

// Through a mount, when a file of MetaDirThroughMount(target, number) was not found: fails with
// the reason (the file never existed, has no such version, has been deleted, the version is a
// delete marker, or the mount has no `.meta` views); returns the version when its metadata
// directory is there (so the file itself is missing from it). REQUIRES: target.through_mount.
store::VersionInfo ExplainMissingMeta(const FileTarget& target, uint64_t number);

}  // namespace medvfs::tools
