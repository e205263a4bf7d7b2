// medvfs backup ARCHIVE DEST [--keep N]: adds an incremental, still encrypted backup of an
// archive to the backup directory DEST (store::Archive::Backup).
// medvfs backup --list DEST: the backups DEST holds.
// medvfs restore-backup DEST ARCHIVE [--backup-id N] [--list]: makes a new archive directory
// from a backup (store::RestoreBackup); it never writes over an existing archive.
//
// While the archive is mounted its daemon holds the database, so the backup is asked of the
// daemon over ARCHIVE/medvfs.sock (tools/control_socket.h) and made by it, with the mount in
// use; no key is needed then (the socket admits only root and the daemon's user). Otherwise
// the archive is opened here, with its key, for the audit entry the backup records.
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/archive.h"
#include "tools/cli_error.h"
#include "tools/commands.h"
#include "tools/control_socket.h"
#include "tools/mount_commands.h"
#include "tools/output.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

namespace fs = std::filesystem;

struct BackupArgs {
  std::string archive;
  std::string dest;
  uint32_t keep = 0;
  bool list = false;
  KeyOptions key;
};

[[noreturn]] void FailBackup(const store::Status& status, const BackupArgs& args, bool remote) {
  const std::string& m = status.message();
  const std::string who =
      remote ? "the user the mount runs as (the mount daemon writes the backup)" : "you";
  switch (status.code()) {
    case store::Code::kAccess:
    case store::Code::kPermission:
      Fail("cannot back up into " + args.dest + ": " + m,
           "make it writable for " + who + ", or choose another directory");
    case store::Code::kReadOnly:
      Fail("cannot back up into " + args.dest + ": " + m, "choose a writable backup disk");
    case store::Code::kNotFound:
      Fail("cannot back up into " + args.dest + ": " + m,
           "create its parent directory first, or check the path");
    case store::Code::kNotEmpty:
    case store::Code::kNotDirectory:
      Fail("cannot back up into " + args.dest + ": " + m,
           "give a new or empty directory, or one that already holds this archive's backups");
    case store::Code::kExists:
      Fail("cannot back up into " + args.dest + ": " + m, "keep one backup directory per archive");
    case store::Code::kInvalid:
      Fail("cannot back up into " + args.dest + ": " + m, "choose another backup directory");
    case store::Code::kBusy:
      Fail("the backup of " + args.archive + " did not run: " + m,
           "wait until the other backup or unmount is over, then run medvfs backup again");
    case store::Code::kNoSpace:
      Fail("no space left for the backup in " + args.dest,
           "free space there or choose another backup disk (the incomplete backup was "
           "discarded)");
    case store::Code::kNotSupported:
      Fail("cannot back up " + args.archive + ": " + m,
           "check the S3 remote instead: medvfs verify --remote NAME " + args.archive);
    case store::Code::kWrongKey:
      Fail("the passphrase does not unlock " + args.archive,
           "check MEDVFS_PASSPHRASE, --passphrase-file or --key-file");
    default:
      Fail("the backup of " + args.archive + " failed: " + status.ToString(),
           "check the backup disk and the system log, then run medvfs backup again");
  }
}

void PrintResult(const BackupArgs& args, uint32_t id, uint64_t size, uint32_t files,
                 uint64_t new_bytes, bool remote) {
  std::cout << "Backup " << id << " of " << args.archive << " is in " << args.dest << ": "
            << HumanBytes(size) << " in " << files << " database files, " << HumanBytes(new_bytes)
            << " copied now" << (id > 1 ? " (the rest is shared with the earlier backups)" : "")
            << ".\n";
  if (remote) std::cout << "It was made by the mount daemon; the mount stayed in use.\n";
  std::cout << "Still encrypted: restoring it needs the passphrase (or key file) of today.\n"
            << "Restore with: medvfs restore-backup " << args.dest << " NEW_ARCHIVE_DIR"
            << std::endl;
}

void ListBackupsOrFail(const std::string& dest) {
  auto backups = store::ListBackups(dest);
  if (!backups.ok()) {
    if (backups.status().code() == store::Code::kNotFound) {
      Fail(dest + " holds no medvfs backups", "check the path (medvfs backup makes them)");
    }
    FailStatus(backups.status(), "cannot list the backups in " + dest);
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "MADE", "SIZE", "FILES", "ARCHIVE ID"}};
  for (const store::BackupEntry& b : *backups) {
    rows.push_back({std::to_string(b.id), UtcTime(b.time_s), HumanBytes(b.size),
                    std::to_string(b.files), b.archive_id.empty() ? "-" : b.archive_id});
  }
  std::cout << FormatTable(rows) << std::flush;
}

void RunBackup(BackupArgs& args) {
  if (args.list) {
    // `medvfs backup --list DEST`: the one positional argument is DEST.
    if (!args.dest.empty()) Fail("--list takes only DEST", "run: medvfs backup --list DEST", 2);
    if (args.archive.empty()) Fail("--list needs DEST", "run: medvfs backup --list DEST", 2);
    ListBackupsOrFail(args.archive);
    return;
  }
  if (args.archive.empty() || args.dest.empty()) {
    Fail("ARCHIVE and DEST are required", "run: medvfs backup ARCHIVE DEST", 2);
  }
  const ArchiveSource source = ResolveArchiveSource(args.archive);
  const fs::path dest = fs::absolute(fs::path(args.dest)).lexically_normal();
  if (auto mount = FindMedvfsMountContaining(ReadMountInfo(), dest)) {
    Fail(args.dest + " lies inside the medvfs mount " + mount->mountpoint.string(),
         "back up into a plain directory, on another disk");
  }
  ProgressLine progress;
  auto on_progress = [&progress](uint64_t bytes) {
    progress.Update("backup: " + HumanBytes(bytes) + " copied");
  };

  const std::optional<pid_t> daemon = LiveDaemonPid(source.archive);
  std::error_code ec;
  if (daemon || source.mountpoint || fs::exists(ControlSocketPath(source.archive), ec)) {
    auto remote = RequestBackup(source.archive, dest, args.keep, on_progress);
    progress.Clear();
    if (remote.ok()) {
      return PrintResult(args, remote->id, remote->size, remote->files, remote->new_bytes,
                         /*remote=*/true);
    }
    if (remote.status().code() != store::Code::kNotFound) {
      if (remote.status().code() == store::Code::kPermission) {
        Fail("cannot ask the mount daemon of " + args.archive +
                 " for a backup: " + remote.status().message(),
             "run medvfs backup as root or as the user who mounted the archive");
      }
      FailBackup(remote.status(), args, /*remote=*/true);
    }
    if (daemon) {
      Fail("the mount daemon of " + args.archive + " (pid " + std::to_string(*daemon) +
               ") does not answer on its control socket",
           "it was probably started by an older medvfs: unmount the archive, mount it again, "
           "and run medvfs backup again");
    }
    // A socket file left by a daemon that died: back up directly.
  }

  store::StatusOr<store::KeySource> key = ReadKey(args.key, /*confirm=*/false);
  if (!key.ok()) FailMessage(key.status().message());
  store::ArchiveOptions options;
  options.read_only = true;  // the audit log is still appended
  auto archive = store::Archive::Open(source.archive, *key, options);
  if (!archive.ok()) {
    if (archive.status().code() == store::Code::kBusy) {
      Fail("the archive " + args.archive + " is in use by another process",
           "wait until that command has finished, then run medvfs backup again");
    }
    if (archive.status().code() == store::Code::kWrongKey) {
      FailBackup(archive.status(), args, /*remote=*/false);
    }
    FailStatus(archive.status(), "cannot open the archive " + args.archive);
  }
  store::BackupRequest request;
  request.keep = args.keep;
  request.progress = on_progress;
  auto made = (*archive)->Backup(dest, request, CommandLineCaller());
  progress.Clear();
  if (!made.ok()) FailBackup(made.status(), args, /*remote=*/false);
  PrintResult(args, made->id, made->size, made->files, made->new_bytes, /*remote=*/false);
}

struct RestoreArgs {
  std::string dest;
  std::string archive;
  uint32_t backup_id = 0;  // 0: the latest
  bool list = false;
  KeyOptions key;
};

// Refuses a target that is mounted, is an archive, or is a non-empty directory, before the key
// is asked for.
void CheckRestoreTarget(const std::string& arg) {
  const fs::path target = fs::absolute(fs::path(arg)).lexically_normal();
  const std::vector<MountEntry> mounts = ReadMountInfo();
  auto mounted = FindMedvfsMountOfArchive(mounts, target);
  if (!mounted) {
    for (const MountEntry& mount : mounts) {
      if (mount.fstype == kMedvfsFsType && mount.mountpoint == target) mounted = mount;
    }
  }
  const std::string todo =
      "restore into a new directory (restore-backup never writes over an archive)";
  if (mounted) Fail(arg + " is mounted at " + mounted->mountpoint.string(), todo);
  if (store::Archive::Exists(target)) Fail(arg + " is an existing archive", todo);
  std::error_code ec;
  if (fs::exists(target, ec)) {
    if (!fs::is_directory(target, ec)) Fail(arg + " exists and is not a directory", todo);
    if (!fs::is_empty(target, ec)) Fail(arg + " exists and is not empty", todo);
  }
}

[[noreturn]] void FailRestore(const store::Status& status, const RestoreArgs& args, uint32_t id) {
  const std::string backup = "backup " + std::to_string(id) + " in " + args.dest;
  const std::string nothing = "nothing was restored; ";
  switch (status.code()) {
    case store::Code::kWrongKey:
      Fail("the passphrase does not unlock " + backup,
           nothing +
               "give the passphrase (or key file) the archive had when the backup was "
               "made, with MEDVFS_PASSPHRASE, --passphrase-file or --key-file");
    case store::Code::kCorruption:
      Fail(backup + " is damaged (" + status.message() + ")",
           nothing +
               "restore an earlier backup with --backup-id N (medvfs restore-backup "
               "--list " +
               args.dest + " lists them)");
    case store::Code::kNotFound:
      Fail("cannot restore into " + args.archive + ": " + status.message(),
           "check the paths (medvfs restore-backup --list " + args.dest + ")");
    case store::Code::kNoSpace:
      Fail("no space left to restore " + backup + " into " + args.archive,
           nothing + "free space or restore onto another disk");
    case store::Code::kAccess:
    case store::Code::kPermission:
      Fail("cannot restore into " + args.archive + ": " + status.message(),
           "choose a directory you may write to");
    case store::Code::kNotEmpty:
    case store::Code::kExists:
    case store::Code::kNotDirectory:
      Fail("cannot restore into " + args.archive + ": " + status.message(),
           "restore into a new directory (restore-backup never writes over an archive)");
    default:
      Fail("restoring " + backup + " failed: " + status.ToString(),
           nothing + "check the disks and the system log, then try again");
  }
}

void RunRestoreBackup(RestoreArgs& args) {
  if (args.list) {
    if (!args.archive.empty())
      Fail("--list takes only DEST", "run: medvfs restore-backup --list DEST", 2);
    ListBackupsOrFail(args.dest);
    return;
  }
  if (args.archive.empty()) {
    Fail("ARCHIVE is required", "run: medvfs restore-backup DEST NEW_ARCHIVE_DIR", 2);
  }
  auto backups = store::ListBackups(args.dest);
  if (!backups.ok()) {
    if (backups.status().code() == store::Code::kNotFound) {
      Fail(args.dest + " holds no medvfs backups", "check the path (medvfs backup makes them)");
    }
    FailStatus(backups.status(), "cannot read the backups in " + args.dest);
  }
  const uint32_t id = args.backup_id != 0 ? args.backup_id : backups->back().id;
  CheckRestoreTarget(args.archive);
  store::StatusOr<store::KeySource> key = ReadKey(args.key, /*confirm=*/false);
  if (!key.ok()) FailMessage(key.status().message());

  store::RestoreBackupOptions options;
  if (args.backup_id != 0) options.backup_id = args.backup_id;
  options.high_water_dir = store::DefaultHighWaterDir();
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  if (tty) std::cerr << "restore-backup: checking and copying backup " << id << "..." << std::flush;
  auto restored = store::RestoreBackup(args.dest, args.archive, *key, options, CommandLineCaller());
  if (tty) std::cerr << "\r\033[K" << std::flush;
  if (!restored.ok()) FailRestore(restored.status(), args, id);
  std::cout << "Restored backup " << restored->id << " of " << args.dest << " (made "
            << UtcTime(restored->time_s) << ", " << HumanBytes(restored->size) << ") into "
            << args.archive << ".\n";
  if (restored->rollback_accepted) {
    std::cout << "This host had seen a newer state of this archive: the restore is recorded in "
                 "its audit log as an accepted rollback, and it mounts without "
                 "--accept-rollback.\n";
  }
  std::cout << "Check it with: medvfs verify " << args.archive << std::endl;
}

}  // namespace

void RegisterRestoreBackupCommand(CLI::App& app) {
  auto args = std::make_shared<RestoreArgs>();
  CLI::App* command = app.add_subcommand(
      "restore-backup", "Restore a backup made by medvfs backup into a new archive directory");
  command->add_option("DEST", args->dest, "The backup directory")->required();
  command->add_option("ARCHIVE", args->archive,
                      "The new archive directory (must not exist, or be empty)");
  command->add_option("--backup-id", args->backup_id, "The backup to restore (default: the latest)")
      ->check(CLI::PositiveNumber);
  command->add_flag("--list", args->list, "List the backups in DEST instead");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunRestoreBackup(*args); });
}

void RegisterBackupCommand(CLI::App& app) {
  auto args = std::make_shared<BackupArgs>();
  CLI::App* command = app.add_subcommand(
      "backup", "Add an incremental, still encrypted backup of an archive to a directory");
  command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)");
  command->add_option("DEST", args->dest, "The backup directory (created if missing)");
  command->add_option("--keep", args->keep,
                      "Afterwards keep only the newest N backups in DEST (default: all)");
  command->add_flag("--list", args->list, "List the backups in DEST (medvfs backup --list DEST)");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunBackup(*args); });
}

}  // namespace medvfs::tools
