// Where a PATH or ARCHIVE argument of the command line lives.
//
// A file is reached in one of two ways:
// - through a mount: PATH lies inside a mounted medvfs (the longest `fuse.medvfs` mountpoint of
//   /proc/self/mountinfo containing PATH's directory). The command then works on the mount's
//   files, views and extended attributes, without a key.
// - on an unmounted archive: `ARCHIVE::/dir/file`, or `--archive ARCHIVE` with PATH relative to
//   the archive's root. The command opens the archive with the user's key. When that archive
//   is mounted here, the command goes through its mount instead.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/archive.h"
#include "tools/key_input.h"

namespace medvfs::tools {

inline constexpr std::string_view kMedvfsFsType = "fuse.medvfs";

struct MountEntry {
  std::filesystem::path mountpoint;
  std::string fstype;  // e.g. "fuse.medvfs"
  std::string source;  // for medvfs: the archive directory (the mount's fsname)
};

// Parses the text of /proc/self/mountinfo (proc(5)); octal escapes such as \040 are decoded and
// malformed lines skipped.
std::vector<MountEntry> ParseMountInfo(std::string_view text);
// The mounts visible to this process; empty if /proc/self/mountinfo cannot be read.
std::vector<MountEntry> ReadMountInfo();
// The medvfs mount with the longest mountpoint that is `abs_path` or contains it.
// REQUIRES: abs_path is absolute and lexically normal.
std::optional<MountEntry> FindMedvfsMountContaining(const std::vector<MountEntry>& mounts,
                                                    const std::filesystem::path& abs_path);
// The medvfs mount whose source is `archive` (both compared as absolute, normal paths).
std::optional<MountEntry> FindMedvfsMountOfArchive(const std::vector<MountEntry>& mounts,
                                                   const std::filesystem::path& archive);

// "ARCHIVE::/dir/file" split at the first "::" whose left side `is_archive` accepts; nullopt if
// there is none.
struct ArchiveSpec {
  std::filesystem::path archive;
  std::string path;  // inside the archive, as typed
};
std::optional<ArchiveSpec> SplitArchiveSpec(
    std::string_view arg, const std::function<bool(const std::filesystem::path&)>& is_archive);

// Splits a path inside an archive into its directory ("/" or "/a/b") and its last name.
// nullopt when the path names no file (empty, "/", ending in "." or "..").
struct ArchivePath {
  std::string dir;
  std::string name;
};
std::optional<ArchivePath> SplitArchivePath(std::string_view path);

// A file named on the command line.
struct FileTarget {
  std::string display;  // PATH as typed, for messages
  bool through_mount = false;
  std::string name;               // the file's name in its directory
  std::filesystem::path dir;      // through a mount: the file's directory (a path in the mount)
  std::filesystem::path archive;  // unmounted: the archive directory
  std::string dir_in_archive;     // unmounted: "/" or "/a/b"
};

// Resolves a PATH argument as described at the top; `archive_option` is --archive (may be
// empty). Fails (prints the reason, throws CLI::RuntimeError) when PATH is in no archive.
FileTarget ResolveFileTarget(std::string_view path, const std::string& archive_option);

// An ARCHIVE argument: the archive directory, or its mount when it is mounted here (ARCHIVE may
// also be given as the mountpoint).
struct ArchiveTarget {
  bool through_mount = false;
  std::filesystem::path mountpoint;
  std::filesystem::path archive;
};
ArchiveTarget ResolveArchiveTarget(std::string_view archive);

// The archive directory named by ARCHIVE (the directory, or its mountpoint), and its
// mountpoint when it is mounted here; fails when ARCHIVE is neither. For the commands that
// ask a mount's daemon over the control socket (backup, gc).
struct ArchiveSource {
  std::filesystem::path archive;
  std::optional<std::filesystem::path> mountpoint;
};
ArchiveSource ResolveArchiveSource(const std::string& arg);

// Opens an unmounted archive with the user's key; fails with a clear reason (wrong key, archive
// mounted, not an archive...).
std::unique_ptr<store::Archive> OpenArchiveOrFail(const std::filesystem::path& archive,
                                                  const KeyOptions& key_options, bool read_only);

// The file's directory and its name record (also for deleted names) in an open archive.
struct ArchiveFile {
  store::InodeId dir = 0;
  store::NameRecord record;
};
ArchiveFile ResolveInArchiveOrFail(store::Archive& archive, const FileTarget& target);
// Like ResolveInArchiveOrFail, and fails unless the name is (or was) a regular file.
ArchiveFile ResolveFileInArchiveOrFail(store::Archive& archive, const FileTarget& target);

// Who the command line acts as, for the versions and audit entries it makes.
store::Caller CommandLineCaller();

// Records `event` in the audit log as done by the command line (CommandLineCaller fills uid,
// gid, pid and program). A failure to record is reported on stderr, naming `what`, and does not
// stop the command; returns whether it was recorded.
bool RecordCommandLineAudit(store::Archive& archive, store::AuditEvent event,
                            std::string_view what);

// Records in the audit log that `command` (e.g. "cat") read `version` of the target (0: no one
// version, as for log) on an unmounted archive; through a mount the daemon records the reads
// itself. A failure to record is reported on stderr and does not stop the command.
// The target's path inside its archive ("/dir/name").
std::string ArchivePathOf(const FileTarget& target);
void AuditCommandLineRead(store::Archive& archive, const FileTarget& target,
                          std::string_view command, uint64_t version);
// Records in the audit log that `command` met damaged stored bytes (kCorruption) reading
// `path` (its path in the archive), as a mount does for a read that gets EIO. Any other
// status records nothing.
void AuditCommandLineDamage(store::Archive& archive, const std::string& path,
                            std::string_view command, uint64_t version,
                            const store::Status& read_status);

}  // namespace medvfs::tools
