// medvfs restore PATH --version N: makes version N current again, as a new version (and brings
// a deleted file back).
#include <cerrno>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/history.h"
#include "tools/stream.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

struct RestoreArgs {
  std::string path;
  std::string archive;
  KeyOptions key;
  uint64_t version = 0;
};

void RestoreThroughMount(const RestoreArgs& args, const FileTarget& target) {
  std::string number = std::to_string(args.version);
  int err = SetXattr(target.dir / "@version" / target.name, "user.medvfs.restore", number);
  if (err == ENOENT || err == EINVAL) {
    FailMissingVersion(HistoryThroughMount(target), target, args.version);
  }
  if (err != 0) FailErrno(err, "cannot restore version " + number + " of " + args.path);
  std::vector<store::VersionInfo> versions = HistoryThroughMount(target);
  std::cout << "Restored " << args.path << ": version " << number << " is now current as version "
            << (versions.empty() ? 0 : versions.back().number) << "." << std::endl;
}

// Explains why Restore failed.
[[noreturn]] void FailRestore(store::Archive& archive, const ArchiveFile& file,
                              const RestoreArgs& args, const store::Status& status) {
  std::string number = std::to_string(args.version);
  if (status.code() == store::Code::kNotFound) {
    auto info = archive.GetVersion(file.record.history, args.version);
    if (!info.ok()) Fail(args.path + " has no version " + number, "list them with medvfs log");
    if (info->is_delete_marker()) {
      Fail("version " + number + " of " + args.path + " is a delete marker",
           "restore a version with content (see medvfs log)");
    }
    Fail("the directory that held " + args.path + " no longer exists",
         "create the directory again, then restore");
  }
  if (status.code() == store::Code::kExists) {
    Fail("another file now holds the name of " + args.path,
         "rename or remove that file, then restore");
  }
  FailStatus(status, "cannot restore version " + number + " of " + args.path);
}

void RestoreInArchive(const RestoreArgs& args, const FileTarget& target) {
  std::unique_ptr<store::Archive> archive =
      OpenArchiveOrFail(target.archive, args.key, /*read_only=*/false);
  ArchiveFile file = ResolveFileInArchiveOrFail(*archive, target);
  auto restored = archive->Restore(file.record.history, args.version, CommandLineCaller());
  if (!restored.ok()) FailRestore(*archive, file, args, restored.status());
  std::cout << "Restored " << args.path << ": version " << args.version
            << " is now current as version " << restored->version << "." << std::endl;
}

void RunRestore(const RestoreArgs& args) {
  FileTarget target = ResolveFileTarget(args.path, args.archive);
  if (target.through_mount) {
    RestoreThroughMount(args, target);
  } else {
    RestoreInArchive(args, target);
  }
}

}  // namespace

void RegisterRestoreCommand(CLI::App& app) {
  auto args = std::make_shared<RestoreArgs>();
  CLI::App* command = app.add_subcommand(
      "restore", "Make an earlier version current again (as a new version); undeletes files");
  command
      ->add_option("PATH", args->path, "The file: a path in a medvfs mount, or ARCHIVE::/dir/file")
      ->required();
  command->add_option("--version", args->version, "The version to bring back (see medvfs log)")
      ->required()
      ->check(CLI::PositiveNumber)
      ->type_name("N");
  command->add_option("--archive", args->archive, "Unmounted archive; PATH is inside it")
      ->type_name("ARCHIVE");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunRestore(*args); });
}

}  // namespace medvfs::tools
