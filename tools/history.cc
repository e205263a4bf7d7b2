#include "tools/history.h"

#include <sys/stat.h>

#include <cerrno>
#include <string>

#include "store/views.h"
#include "tools/cli_error.h"
#include "tools/stream.h"

namespace medvfs::tools {

std::vector<store::VersionInfo> HistoryThroughMount(const FileTarget& target) {
  std::string tsv;
  int err = ReadSmallFile(target.dir / "@version" / target.name / ".meta" / "versions.tsv", &tsv);
  if (err == ENOENT) {
    // A directory's @version entry is its own listing: no history of its own.
    struct stat st {};
    if (lstat((target.dir / target.name).c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    }
  }
  if (err == EINVAL) Fail(target.display + " is not a regular file", "only files have versions");
  if (err != 0) FailErrno(err, "cannot read the history of " + target.display);
  store::StatusOr<std::vector<store::VersionInfo>> versions = store::ParseVersionsTsv(tsv);
  if (!versions.ok()) {
    Fail("the mount returned a history that cannot be read (" + versions.status().message() + ")",
         "use the same medvfs version for the mount and the command line");
  }
  return std::move(versions).value();
}

void FailMissingVersion(const std::vector<store::VersionInfo>& versions, const FileTarget& target,
                        uint64_t number) {
  for (const store::VersionInfo& v : versions) {
    if (v.number == number && v.is_delete_marker()) {
      Fail("version " + std::to_string(number) + " of " + target.display +
               " is a delete marker and has no content",
           "pick a version with content (see medvfs log)");
    }
    if (v.number == number && v.content_removed()) FailRemovedVersion(v, target);
  }
  Fail(target.display + " has no version " + std::to_string(number),
       "list its versions with medvfs log");
}

void FailRemovedVersion(const store::VersionInfo& v, const FileTarget& target) {
  Fail("the content of version " + std::to_string(v.number) + " of " + target.display + " was " +
           std::string(store::ContentRemovalName(v.removed)) + " on " +
           store::FormatTimeNs(v.removed_time_ns).substr(0, 19) + "Z by uid " +
           std::to_string(v.removed_by_uid),
       "only its record is left (see medvfs log); pick another version");
}

const store::VersionInfo& PickVersionOrFail(const std::vector<store::VersionInfo>& versions,
                                            const FileTarget& target, bool live, uint64_t number) {
  if (number != 0) {
    for (const store::VersionInfo& v : versions) {
      if (v.number == number) return v;
    }
    Fail(target.display + " has no version " + std::to_string(number),
         "list its versions with medvfs log");
  }
  if (!live) {
    Fail(target.display + " has been deleted",
         "see its versions with medvfs log, and pick one with --version N");
  }
  if (versions.empty() || versions.back().is_delete_marker()) {
    Fail(target.display + " has no saved version yet", "save it first (close the file)");
  }
  return versions.back();
}

bool IsLiveThroughMount(const FileTarget& target) {
  struct stat st {};
  return lstat((target.dir / target.name).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::filesystem::path MetaDirThroughMount(const FileTarget& target, uint64_t number) {
  if (number == 0) return target.dir / ".meta" / target.name;
  return target.dir / "@version" / target.name / ".meta" / ("v" + std::to_string(number));
}

store::VersionInfo ExplainMissingMeta(const FileTarget& target, uint64_t number) {
  std::vector<store::VersionInfo> versions = HistoryThroughMount(target);
  store::VersionInfo version =
      PickVersionOrFail(versions, target, IsLiveThroughMount(target), number);
  if (version.is_delete_marker()) FailMissingVersion(versions, target, version.number);
  struct stat st {};
  if (lstat(MetaDirThroughMount(target, number).c_str(), &st) != 0) {
    Fail("the mount holding " + target.display +
             " has no .meta views (its medvfs is older than this command)",
         "mount the archive again with this medvfs, or run the command on the unmounted archive");
  }
  return version;
}

}  // namespace medvfs::tools
