// medvfs gc ARCHIVE [--dry-run] [--threshold PERCENT] [--rate MIB]: gives back the space of
// content nothing references any more (store::Archive::CollectGarbage).
//
// While the archive is mounted its daemon holds the database, so the collection is asked of
// the daemon over ARCHIVE/medvfs.sock (tools/control_socket.h) and runs there, with the mount
// in use. Otherwise the archive is opened here, with its key.
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

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

struct GcArgs {
  std::string archive;
  bool dry_run = false;
  uint32_t threshold_percent = 20;
  uint64_t rate_mib = 64;
  bool json = false;
  KeyOptions key;
};

[[noreturn]] void FailGc(const store::Status& status, const GcArgs& args) {
  switch (status.code()) {
    case store::Code::kBusy:
      Fail("the garbage collection of " + args.archive + " did not run: " + status.message(),
           "wait until the other collection (or the unmount) is over, then run medvfs gc again");
    case store::Code::kNoSpace:
      Fail("not enough free space to rewrite packs of " + args.archive,
           "free some space on its disk (or run medvfs gc --threshold 100, which only deletes "
           "packs that hold nothing live), then run medvfs gc again");
    case store::Code::kPermission:
      Fail("cannot ask the mount daemon of " + args.archive + ": " + status.message(),
           "run medvfs gc as root or as the user who mounted the archive");
    case store::Code::kReadOnly:
      Fail("the archive " + args.archive + " is mounted read-only",
           "run medvfs gc --dry-run, or mount it read-write first");
    default:
      FailStatus(status, "the garbage collection of " + args.archive + " failed");
  }
}

std::string Phase(std::string_view phase, uint64_t done, uint64_t total) {
  std::string text = "gc: " + std::string(phase);
  if (total != 0) text += " " + HumanBytes(done) + " of " + HumanBytes(total);
  return text;
}

void PrintResult(const GcArgs& args, const store::GcResult& r, bool remote) {
  if (args.json) {
    nlohmann::json out = {
        {"dry_run", r.dry_run},
        {"cancelled", r.cancelled},
        {"duration_ms", r.duration_ms},
        {"chunks_indexed", r.chunks_indexed},
        {"chunks_dropped", r.chunks_dropped},
        {"bytes_dropped", r.bytes_dropped},
        {"dropped_extent_groups", r.dropped_extent_groups},
        {"packs", r.packs},
        {"packs_removed", r.packs_removed},
        {"packs_skipped", r.packs_skipped},
        {"bytes_copied", r.bytes_copied},
        {"bytes_freed", r.bytes_freed},
    };
    std::cout << out.dump(2) << std::endl;
    return;
  }
  const bool dry = r.dry_run;
  std::cout << (dry ? "Dry run of the garbage collection of " : "Garbage collection of ")
            << args.archive << (remote ? " (by its mount daemon)" : "") << ", " << r.duration_ms
            << " ms:\n";
  std::vector<std::vector<std::string>> rows = {
      {dry ? "unreferenced chunks to drop:" : "unreferenced chunks dropped:",
       std::to_string(r.chunks_dropped) + " of " + std::to_string(r.chunks_indexed) + " (" +
           HumanBytes(r.bytes_dropped) + ")"},
      {dry ? "dropped scratch versions to clear:" : "dropped scratch versions cleared:",
       std::to_string(r.dropped_extent_groups) + " extent groups"},
      {dry ? "packs to rewrite:" : "packs rewritten:",
       std::to_string(r.packs_removed) + " of " + std::to_string(r.packs) + " (" +
           HumanBytes(r.bytes_copied) + " of live chunks copied)"},
      {dry ? "space to free:" : "space freed:", HumanBytes(r.bytes_freed)},
  };
  std::cout << FormatTable(rows);
  if (r.packs_skipped != 0) {
    std::cout << r.packs_skipped
              << " packs were left as they were (damaged, or changed meanwhile): run medvfs "
                 "verify\n";
  }
  if (r.cancelled) std::cout << "Stopped before the end; what was done stays done.\n";
  std::cout << std::flush;
}

void RunGc(const GcArgs& args) {
  if (args.threshold_percent > 100) Fail("--threshold is a percentage", "give 0 to 100", 2);
  const ArchiveSource source = ResolveArchiveSource(args.archive);
  store::GcRequest request;
  request.dry_run = args.dry_run;
  request.repack_garbage_percent = args.threshold_percent;
  request.rate_bytes_per_s = args.rate_mib << 20;
  ProgressLine progress;
  auto on_progress = [&progress](std::string_view phase, uint64_t done, uint64_t total) {
    progress.Update(Phase(phase, done, total));
  };

  const std::optional<pid_t> daemon = LiveDaemonPid(source.archive);
  std::error_code ec;
  if (daemon || source.mountpoint || fs::exists(ControlSocketPath(source.archive), ec)) {
    auto remote = RequestGc(source.archive, request, on_progress);
    progress.Clear();
    if (remote.ok()) return PrintResult(args, *remote, /*remote=*/true);
    if (remote.status().code() != store::Code::kNotFound) FailGc(remote.status(), args);
    if (daemon) {
      Fail("the mount daemon of " + args.archive + " (pid " + std::to_string(*daemon) +
               ") does not answer on its control socket",
           "it was probably started by an older medvfs: unmount the archive, mount it again, "
           "and run medvfs gc again");
    }
    // A socket file left by a daemon that died: collect directly.
  }
  std::unique_ptr<store::Archive> archive =
      OpenArchiveOrFail(source.archive, args.key, /*read_only=*/args.dry_run);
  request.progress = on_progress;
  auto result = archive->CollectGarbage(request, CommandLineCaller());
  progress.Clear();
  if (!result.ok()) FailGc(result.status(), args);
  PrintResult(args, *result, /*remote=*/false);
}

}  // namespace

void RegisterGcCommand(CLI::App& app) {
  auto args = std::make_shared<GcArgs>();
  CLI::App* command = app.add_subcommand(
      "gc", "Give back the space of content nothing references (also while mounted)");
  command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)")
      ->required();
  command->add_flag("--dry-run", args->dry_run,
                    "Show what would be dropped and freed; change nothing");
  command->add_option("--threshold", args->threshold_percent,
                      "Rewrite a sealed pack once at least this percentage of it is garbage "
                      "(default 20; 0: any garbage)");
  command->add_option(
      "--rate", args->rate_mib,
      "MiB per second the rewrite of packs reads and writes together (default 64; 0: "
      "no limit)");
  command->add_flag("--json", args->json, "Print JSON with exact numbers");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunGc(*args); });
}

}  // namespace medvfs::tools
