// medvfs cat PATH [--version N | --at TIME]: writes a version's bytes to stdout, in bounded
// pieces whatever the file's size.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <memory>
#include <optional>
#include <string>

#include "store/views.h"
#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/history.h"
#include "tools/stream.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

struct CatArgs {
  std::string path;
  std::string archive;
  KeyOptions key;
  uint64_t version = 0;  // 0: not given
  std::string at;        // empty: not given
};

// Stops quietly when the reader of stdout went away (`medvfs cat ... | head`); otherwise says
// what failed.
void FailCopy(const CopyResult& result, const store::Status& read_status,
              const std::string& display) {
  if (result.write_errno == EPIPE) throw CLI::RuntimeError(kExitFailure);
  if (result.write_errno != 0) FailErrno(result.write_errno, "cannot write to standard output");
  if (!read_status.ok()) FailStatus(read_status, "cannot read " + display);
  FailErrno(result.read_errno, "cannot read " + display);
}

std::filesystem::path SourceThroughMount(const CatArgs& args, const FileTarget& target,
                                         std::optional<int64_t> at_ns) {
  if (args.version != 0) {
    return target.dir / "@version" / target.name / ("v" + std::to_string(args.version));
  }
  if (at_ns) return target.dir / "@version" / ("@" + store::FormatTimeNs(*at_ns)) / target.name;
  return target.dir / target.name;
}

std::unique_ptr<store::FileHandle> OpenCurrent(store::Archive& archive, const ArchiveFile& file,
                                               const FileTarget& target, uint64_t* version) {
  if (!file.record.live()) {
    Fail(target.display + " has been deleted",
         "see its versions with medvfs log, and read one with --version N");
  }
  auto handle = archive.Open(file.record.ino, O_RDONLY, CommandLineCaller());
  if (!handle.ok()) FailStatus(handle.status(), "cannot open " + target.display);
  auto attr = archive.GetAttr(file.record.ino);
  if (attr.ok()) *version = attr->version;
  return std::move(handle).value();
}

std::unique_ptr<store::FileHandle> OpenNumbered(store::Archive& archive, const ArchiveFile& file,
                                                const FileTarget& target, uint64_t number) {
  auto handle = archive.OpenVersion(file.record.history, number);
  if (handle.ok()) return std::move(handle).value();
  if (handle.status().code() != store::Code::kNotFound) {
    FailStatus(handle.status(),
               "cannot open version " + std::to_string(number) + " of " + target.display);
  }
  auto info = archive.GetVersion(file.record.history, number);
  if (info.ok() && info->is_delete_marker()) {
    Fail("version " + std::to_string(number) + " of " + target.display +
             " is a delete marker and has no content",
         "pick a version with content (see medvfs log)");
  }
  if (info.ok() && info->content_removed()) FailRemovedVersion(*info, target);
  Fail(target.display + " has no version " + std::to_string(number),
       "list its versions with medvfs log");
}

std::unique_ptr<store::FileHandle> OpenAt(store::Archive& archive, const ArchiveFile& file,
                                          const CatArgs& args, const FileTarget& target,
                                          int64_t at_ns, uint64_t* version) {
  auto entry = archive.ResolveNameAt(file.dir, target.name, at_ns);
  if (!entry.ok()) {
    if (entry.status().code() == store::Code::kNotFound) {
      Fail(args.path + " did not exist at " + args.at, "pick another time (see medvfs log)");
    }
    FailStatus(entry.status(), "cannot read the history of " + args.path);
  }
  if (entry->history == 0 || entry->version == 0) {
    Fail(args.path + " was not a regular file with content at " + args.at,
         "pick another time (see medvfs log)");
  }
  auto handle = archive.OpenVersion(entry->history, entry->version);
  if (!handle.ok()) FailStatus(handle.status(), "cannot open " + args.path);
  *version = entry->version;
  return std::move(handle).value();
}

void CatThroughMount(const CatArgs& args, const FileTarget& target, std::optional<int64_t> at_ns) {
  CopyResult result = CopyFileTo(SourceThroughMount(args, target, at_ns), STDOUT_FILENO);
  if (result.read_errno == ENOENT) {
    if (args.version != 0) FailMissingVersion(HistoryThroughMount(target), target, args.version);
    if (at_ns)
      Fail(args.path + " did not exist at " + args.at, "pick another time (see medvfs log)");
    // A name with a history but no live file was deleted (HistoryThroughMount fails itself
    // when the name never existed).
    HistoryThroughMount(target);
    Fail(target.display + " has been deleted",
         "see its versions with medvfs log, and read one with --version N");
  }
  if (!result.ok()) FailCopy(result, store::Status::Ok(), args.path);
}

void CatInArchive(const CatArgs& args, const FileTarget& target, std::optional<int64_t> at_ns) {
  std::unique_ptr<store::Archive> archive =
      OpenArchiveOrFail(target.archive, args.key, /*read_only=*/true);
  ArchiveFile file = ResolveFileInArchiveOrFail(*archive, target);
  uint64_t version = args.version;
  std::unique_ptr<store::FileHandle> handle =
      args.version != 0 ? OpenNumbered(*archive, file, target, args.version)
      : at_ns           ? OpenAt(*archive, file, args, target, *at_ns, &version)
                        : OpenCurrent(*archive, file, target, &version);
  AuditCommandLineRead(*archive, target, "cat", version);
  store::Status read_status;
  CopyResult result = CopyHandleTo(*handle, STDOUT_FILENO, &read_status);
  if (!result.ok()) {
    AuditCommandLineDamage(*archive, ArchivePathOf(target), "cat", version, read_status);
    FailCopy(result, read_status, args.path);
  }
}

void RunCat(const CatArgs& args) {
  std::optional<int64_t> at_ns;
  if (!args.at.empty()) {
    store::StatusOr<int64_t> parsed = store::ParseTimeNs(args.at);
    if (!parsed.ok()) {
      Fail("cannot read the time " + args.at,
           "use ISO 8601 in UTC, e.g. 2026-11-21T10:00:00Z or 2026-11-21", kExitUsage);
    }
    at_ns = *parsed;
  }
  FileTarget target = ResolveFileTarget(args.path, args.archive);
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe shows as EPIPE, and ends the copy quietly
  if (target.through_mount) {
    CatThroughMount(args, target, at_ns);
  } else {
    CatInArchive(args, target, at_ns);
  }
}

}  // namespace

void RegisterCatCommand(CLI::App& app) {
  auto args = std::make_shared<CatArgs>();
  CLI::App* command =
      app.add_subcommand("cat", "Write a file's content (current or past version) to stdout");
  command
      ->add_option("PATH", args->path, "The file: a path in a medvfs mount, or ARCHIVE::/dir/file")
      ->required();
  CLI::Option* version =
      command->add_option("--version", args->version, "Version number (see medvfs log)")
          ->check(CLI::PositiveNumber)
          ->type_name("N");
  CLI::Option* at =
      command->add_option("--at", args->at, "The version that was current at TIME (ISO 8601)")
          ->type_name("TIME");
  version->excludes(at);
  command->add_option("--archive", args->archive, "Unmounted archive; PATH is inside it")
      ->type_name("ARCHIVE");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunCat(*args); });
}

}  // namespace medvfs::tools
