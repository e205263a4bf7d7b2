// A file's history read through a mount (the `@version/NAME/.meta/versions.tsv` view), shared
// by log, cat and restore.
#pragma once

#include <cstdint>
#include <vector>

#include "store/archive.h"
#include "tools/target.h"

namespace medvfs::tools {

// The versions of target (oldest first, delete markers included); fails with a clear reason.
// REQUIRES: target.through_mount.
std::vector<store::VersionInfo> HistoryThroughMount(const FileTarget& target);

// Fails with the reason why version `number` of target cannot be read: no such version, or a
// delete marker. REQUIRES: target.through_mount.
[[noreturn]] void FailMissingVersion(const std::vector<store::VersionInfo>& versions,
                                     const FileTarget& target, uint64_t number);

}  // namespace medvfs::tools
