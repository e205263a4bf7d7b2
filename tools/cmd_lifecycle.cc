// medvfs hold, retention, prune and purge: the lifecycle of versions (DESIGN.md section 7).
// One file for the four, since they share how a request reaches the archive: each builds a
// JSON request (tools/lifecycle.h) and runs it on the archive opened here, or, while the
// archive is mounted, asks its daemon to run it over ARCHIVE/medvfs.sock. A request that
// changes the archive needs the key in both cases (checked against the key slot before the
// daemon is asked).
#include <unistd.h>

#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "store/archive.h"
#include "tools/cli_error.h"
#include "tools/commands.h"
#include "tools/control_socket.h"
#include "tools/lifecycle.h"
#include "tools/mount_commands.h"
#include "tools/output.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// A PATH argument: the archive it lies in and its path inside it.
struct Located {
  fs::path archive;
  std::string path;  // "/dir/file"
};

Located LocatePath(const std::string& arg) {
  if (std::optional<ArchiveSpec> spec =
          SplitArchiveSpec(arg, [](const fs::path& p) { return store::Archive::Exists(p); })) {
    std::string path = spec->path.empty() ? "/" : spec->path;
    if (path[0] != '/') path.insert(0, 1, '/');
    return {fs::absolute(spec->archive).lexically_normal(), path};
  }
  std::error_code ec;
  const fs::path absolute = fs::weakly_canonical(fs::absolute(arg), ec);
  if (!ec) {
    if (std::optional<MountEntry> mount =
            FindMedvfsMountContaining(ReadMountInfo(), absolute.lexically_normal())) {
      const fs::path relative = absolute.lexically_normal().lexically_relative(mount->mountpoint);
      std::string path = "/";
      if (relative != ".") path += relative.string();
      return {fs::path(mount->source), path};
    }
  }
  Fail(arg + " is in no mounted medvfs archive",
       "give a path in a medvfs mount, or ARCHIVE::/dir/file for an unmounted archive", 2);
}

[[noreturn]] void FailLifecycle(const store::Status& status, const std::string& what) {
  switch (status.code()) {
    case store::Code::kPermission:
      if (status.message().find("legal hold") != std::string::npos) {
        Fail(what + " refused: " + status.message(),
             "see the holds with medvfs hold --list ARCHIVE");
      }
      if (status.message().find("rule is a compliance one") != std::string::npos) {
        Fail(what + " refused: " + status.message(),
             "a compliance rule can only be lengthened (see medvfs-retention(1))");
      }
      if (status.message().find("compliance") != std::string::npos) {
        Fail(what + " refused: " + status.message(), "wait until the versions are old enough");
      }
      Fail(what + " refused: " + status.message(), "run it as root or as the mount's user");
    case store::Code::kBusy:
      Fail(what + ": " + status.message(), "see medvfs-purge(1)");
    case store::Code::kReadOnly:
      Fail(what + ": the archive is mounted read-only", "mount it read-write first");
    case store::Code::kInvalid:
      FailMessage(what + ": " + status.message(), 2);
    case store::Code::kExists:
      Fail(what + " refused: " + status.message(), "choose another name (or bucket prefix)");
    case store::Code::kNotFound:
      Fail(what + ": " + status.message(), "check the name, path or bucket");
    case store::Code::kAccess:
      if (what.starts_with("remote") || what.starts_with("verify")) {
        Fail(what + ": the bucket refused: " + status.message(),
             "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) of whoever runs "
             "it: the mount daemon, for a mounted archive");
      }
      FailStatus(status, what + " failed");
    case store::Code::kIoError:
      if (what.starts_with("remote")) {
        Fail(what + ": " + status.message(),
             "check the endpoint and the network; a mounted archive retries by itself");
      }
      FailStatus(status, what + " failed");
    default:
      FailStatus(status, what + " failed");
  }
}

// Runs requests on one archive: through its mount daemon when it is mounted, else on the
// archive opened here (once, whatever the number of requests: one key prompt).
class Runner {
 public:
  Runner(fs::path archive_dir, const KeyOptions& key_options, bool writes)
      : archive_dir_(std::move(archive_dir)), key_options_(key_options), writes_(writes) {
    const std::optional<pid_t> daemon = LiveDaemonPid(archive_dir_);
    std::error_code ec;
    daemon_ = daemon;
    remote_ = daemon.has_value() || fs::exists(ControlSocketPath(archive_dir_), ec);
    if (remote_ && writes_) {
      store::StatusOr<store::KeySource> key = ReadKey(key_options_, /*confirm=*/false);
      if (!key.ok()) FailMessage(key.status().message());
      if (store::Status checked = store::Archive::CheckKey(archive_dir_, *key); !checked.ok()) {
        FailStatus(checked, "cannot unlock the archive " + archive_dir_.string());
      }
    }
  }

  LifecycleAnswer Run(const Json& request, const std::string& what) {
    if (remote_) {
      store::StatusOr<LifecycleAnswer> answer = RequestLifecycle(archive_dir_, request);
      if (answer.ok()) return std::move(answer).value();
      // Without a live daemon, kNotFound means nobody listens (a stale socket file).
      if (daemon_ || answer.status().code() != store::Code::kNotFound) {
        if (daemon_ && answer.status().message().find("control socket") != std::string::npos) {
          Fail("the mount daemon of " + archive_dir_.string() + " (pid " +
                   std::to_string(*daemon_) + ") does not answer on its control socket",
               "it was probably started by an older medvfs: unmount the archive, mount it "
               "again");
        }
        FailLifecycle(answer.status(), what);
      }
      remote_ = false;
    }
    if (!archive_) archive_ = OpenArchiveOrFail(archive_dir_, key_options_, !writes_);
    store::StatusOr<LifecycleAnswer> answer =
        ExecuteLifecycle(*archive_, request, CommandLineCaller());
    if (!answer.ok()) FailLifecycle(answer.status(), what);
    return std::move(answer).value();
  }

 private:
  fs::path archive_dir_;
  KeyOptions key_options_;
  bool writes_;
  std::optional<pid_t> daemon_;
  bool remote_ = false;
  std::unique_ptr<store::Archive> archive_;
};

}  // namespace

LifecycleAnswer RunLifecycleRequest(const fs::path& archive_dir, const Json& request,
                                    const KeyOptions& key_options, const std::string& what) {
  return Runner(archive_dir, key_options, LifecycleRequestWrites(request)).Run(request, what);
}

namespace {

LifecycleAnswer RunRequest(const fs::path& archive_dir, const Json& request,
                           const KeyOptions& key_options, const std::string& what) {
  return RunLifecycleRequest(archive_dir, request, key_options, what);
}

// A PATH inside ARCHIVE given to prune or retention: a path in the archive ("/ct"), or a path
// in its mount ("/mnt/pacs/ct").
std::string PathInArchive(const ArchiveSource& source, const std::string& arg) {
  std::error_code ec;
  if (source.mountpoint && fs::path(arg).is_absolute() && fs::exists(arg, ec)) {
    const fs::path absolute = fs::weakly_canonical(arg, ec);
    const fs::path relative = absolute.lexically_relative(*source.mountpoint);
    if (!ec && !relative.empty() && *relative.begin() != "..") {
      return relative == "." ? "/" : "/" + relative.string();
    }
  }
  return arg.empty() || arg[0] != '/' ? "/" + arg : arg;
}

void PrintJson(const LifecycleAnswer& answer) {
  Json out = {{"summary", answer.summary}, {"items", answer.items}};
  std::cout << out.dump(2, ' ', false, Json::error_handler_t::replace) << std::endl;
}

std::string Text(const Json& value, const char* key) {
  auto it = value.find(key);
  if (it == value.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

uint64_t Count(const Json& value, const char* key) {
  auto it = value.find(key);
  return it != value.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

void PrintRemoved(const LifecycleAnswer& answer, bool dry_run) {
  std::vector<std::vector<std::string>> rows = {{"PATH", "VERSION", "TIME (UTC)", "SIZE"}};
  for (const Json& item : answer.items) {
    rows.push_back({EscapeCell(Text(item, "path")), Text(item, "version"), Text(item, "time"),
                    HumanBytes(Count(item, "size"))});
  }
  if (rows.size() > 1) {
    std::cout << (dry_run ? "Would remove the content of:\n" : "Removed the content of:\n")
              << FormatTable(rows);
  }
}

void PrintGc(const Json& summary) {
  if (auto gc = summary.find("gc"); gc != summary.end()) {
    std::cout << "Garbage collection: " << Count(*gc, "chunks_dropped") << " chunks dropped, "
              << Count(*gc, "packs_removed") << " packs rewritten, "
              << HumanBytes(Count(*gc, "bytes_freed")) << " freed\n";
  }
  if (auto error = summary.find("gc_error"); error != summary.end()) {
    std::cout << "The garbage collection did not run (" << Text(summary, "gc_error")
              << "): run medvfs gc to give the space back\n";
  }
}

// --- hold -----------------------------------------------------------------------------------

struct HoldArgs {
  std::string target;
  std::string reason;
  bool release = false;
  bool list = false;
  bool json = false;
  KeyOptions key;
};

void RunHold(const HoldArgs& args) {
  if (args.list) {
    const ArchiveSource source = ResolveArchiveSource(args.target);
    LifecycleAnswer answer = RunRequest(source.archive, {{"op", "holds"}}, args.key, "hold --list");
    if (args.json) return PrintJson(answer);
    if (answer.items.empty()) {
      std::cout << "No legal hold on " << args.target << "\n";
      return;
    }
    std::vector<std::vector<std::string>> rows = {{"PATH", "KIND", "SINCE (UTC)", "UID", "REASON"}};
    for (const Json& item : answer.items) {
      rows.push_back({EscapeCell(Text(item, "path")), Text(item, "kind"),
                      Text(item, "time").substr(0, 19) + "Z", Text(item, "uid"),
                      EscapeCell(Text(item, "reason"))});
    }
    std::cout << FormatTable(rows) << std::flush;
    return;
  }
  if (args.release && !args.reason.empty()) {
    FailMessage("--release takes no --reason", 2);
  }
  if (!args.release && args.reason.empty()) {
    Fail("a legal hold needs a reason", "give --reason TEXT (a case or ticket number)", 2);
  }
  const Located where = LocatePath(args.target);
  Json request = {{"op", args.release ? "release" : "hold"}, {"path", where.path}};
  if (!args.release) request["reason"] = args.reason;
  LifecycleAnswer answer = RunRequest(where.archive, request, args.key,
                                      args.release ? "releasing the hold" : "the legal hold");
  if (args.json) return PrintJson(answer);
  std::cout << (args.release ? "Released the legal hold on " : "Legal hold on ")
            << Text(answer.summary, "path") << " (" << Text(answer.summary, "kind")
            << (Text(answer.summary, "kind") == "directory" ? ", every file below it" : "")
            << ")\n";
}

// --- retention ------------------------------------------------------------------------------

struct RetentionArgs {
  std::string archive;
  std::string action = "show";
  std::string path = "/";
  std::string mode = "governance";
  std::string min_age;
  bool json = false;
  KeyOptions key;
};

void RunRetention(const RetentionArgs& args) {
  const ArchiveSource source = ResolveArchiveSource(args.archive);
  if (args.action == "show") {
    LifecycleAnswer answer =
        RunRequest(source.archive, {{"op", "retention"}}, args.key, "retention show");
    if (args.json) return PrintJson(answer);
    if (answer.items.empty()) {
      std::cout << "No retention rule: prune and purge may remove versions of any age.\n";
      return;
    }
    std::vector<std::vector<std::string>> rows = {
        {"PATH", "MODE", "MINIMUM AGE", "SET (UTC)", "BY UID"}};
    for (const Json& item : answer.items) {
      rows.push_back({EscapeCell(Text(item, "path")), Text(item, "mode"), Text(item, "min_age"),
                      Text(item, "set_time").substr(0, 19) + "Z", Text(item, "set_by_uid")});
    }
    std::cout << FormatTable(rows) << std::flush;
    return;
  }
  int64_t age = 0;
  if (args.action == "set") {
    if (args.min_age.empty()) Fail("retention set needs --min-age", "e.g. --min-age 10y", 2);
    store::StatusOr<int64_t> parsed = ParseDurationSeconds(args.min_age);
    if (!parsed.ok()) FailMessage("--min-age: " + parsed.status().message(), 2);
    age = *parsed;
    if (age <= 0) Fail("--min-age must be positive", "use medvfs retention remove instead", 2);
  } else if (args.action != "remove") {
    FailMessage("retention: the action is show, set or remove", 2);
  }
  const std::string path = PathInArchive(source, args.path);
  Json request = {{"op", "set-retention"}, {"path", path}, {"mode", args.mode}, {"min_age_s", age}};
  LifecycleAnswer answer = RunRequest(source.archive, request, args.key, "the retention rule");
  if (args.json) return PrintJson(answer);
  if (age == 0) {
    std::cout << "Removed the retention rule of " << Text(answer.summary, "path") << "\n";
  } else {
    std::cout << "Retention of " << Text(answer.summary, "path") << ": " << args.mode
              << ", every version kept " << FormatDurationSeconds(age) << " at least\n";
  }
}

// --- prune ----------------------------------------------------------------------------------

struct PruneArgs {
  std::string archive;
  std::string path;
  uint64_t keep_last = 0;
  std::string keep_within;
  uint64_t keep_daily = 0;
  uint64_t keep_weekly = 0;
  uint64_t keep_monthly = 0;
  std::string deleted_older_than;
  bool dry_run = false;
  bool json = false;
  KeyOptions key;
};

void RunPrune(const PruneArgs& args) {
  const ArchiveSource source = ResolveArchiveSource(args.archive);
  Json request = {{"op", "prune"}, {"dry_run", args.dry_run}};
  if (!args.path.empty()) request["path"] = PathInArchive(source, args.path);
  if (args.keep_last != 0) request["keep_last"] = args.keep_last;
  if (args.keep_daily != 0) request["keep_daily"] = args.keep_daily;
  if (args.keep_weekly != 0) request["keep_weekly"] = args.keep_weekly;
  if (args.keep_monthly != 0) request["keep_monthly"] = args.keep_monthly;
  auto duration = [](const std::string& text, const char* option) {
    store::StatusOr<int64_t> parsed = ParseDurationSeconds(text);
    if (!parsed.ok()) FailMessage(std::string(option) + ": " + parsed.status().message(), 2);
    return *parsed;
  };
  if (!args.keep_within.empty())
    request["keep_within_s"] = duration(args.keep_within, "--keep-within");
  if (!args.deleted_older_than.empty()) {
    request["deleted_older_than_s"] = duration(args.deleted_older_than, "--deleted-older-than");
  }
  if (request.size() == 2 + (request.contains("path") ? 1 : 0)) {
    Fail("prune needs a policy",
         "give --keep-last, --keep-within, --keep-daily, --keep-weekly, --keep-monthly or "
         "--deleted-older-than (see medvfs-prune(1))",
         2);
  }
  LifecycleAnswer answer = RunRequest(source.archive, request, args.key, "the prune");
  if (args.json) return PrintJson(answer);
  const Json& s = answer.summary;
  PrintRemoved(answer, args.dry_run);
  std::cout << (args.dry_run ? "Dry run: would remove " : "Removed ") << Count(s, "removed")
            << " versions (" << HumanBytes(Count(s, "removed_bytes")) << ") of "
            << Count(s, "files") << " files; kept " << Count(s, "kept") << ", held by a legal hold "
            << Count(s, "held") << ", kept by retention " << Count(s, "retained") << "\n";
  PrintGc(s);
  std::cout << std::flush;
}

// --- purge ----------------------------------------------------------------------------------

struct PurgeArgs {
  std::string target;
  std::optional<uint64_t> version;
  std::string reason;
  bool yes = false;
  bool dry_run = false;
  bool json = false;
  KeyOptions key;
};

void RunPurge(const PurgeArgs& args) {
  if (args.reason.empty()) {
    Fail("a purge needs a reason", "give --reason TEXT (it is kept in the audit log)", 2);
  }
  const Located where = LocatePath(args.target);
  Json request = {{"op", "purge"}, {"path", where.path}, {"reason", args.reason}};
  if (args.version) request["version"] = *args.version;
  request["dry_run"] = true;
  Runner runner(where.archive, args.key, /*writes=*/!args.dry_run);
  LifecycleAnswer preview = runner.Run(request, "the purge");
  if (args.dry_run) {
    if (args.json) return PrintJson(preview);
    PrintRemoved(preview, /*dry_run=*/true);
    std::cout << "Dry run: would purge " << Count(preview.summary, "removed") << " versions"
              << (preview.summary.value("unlinked", false) ? ", unlinking the file first" : "")
              << "\n";
    return;
  }
  // With nothing left to purge (run again after a failed collection), the purge still runs:
  // its collection and compaction finish what the first one left.
  if (!args.yes && !preview.items.empty()) {
    if (::isatty(STDIN_FILENO) == 0) {
      Fail("a purge cannot be undone and needs a confirmation",
           "run it in a terminal to confirm, or give --yes", 2);
    }
    PrintRemoved(preview, /*dry_run=*/true);
    std::cerr << "Purge " << preview.items.size() << " versions of " << where.path
              << (preview.summary.value("unlinked", false) ? " (the file is unlinked first)" : "")
              << "? Nothing brings them back. Type yes to go on: " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "yes") FailMessage("not purged", 1);
  }
  request["dry_run"] = false;
  LifecycleAnswer answer = runner.Run(request, "the purge");
  if (args.json) return PrintJson(answer);
  PrintRemoved(answer, /*dry_run=*/false);
  std::cout << "Purged " << Count(answer.summary, "removed") << " versions of " << where.path
            << (answer.summary.value("unlinked", false) ? " (the file was unlinked first)" : "")
            << "\n";
  PrintGc(answer.summary);
  std::cout << std::flush;
}

}  // namespace

void RegisterLifecycleCommands(CLI::App& app) {
  {
    auto args = std::make_shared<HoldArgs>();
    CLI::App* command = app.add_subcommand(
        "hold", "Put a file or directory under legal hold, release it, or list the holds");
    command
        ->add_option("PATH", args->target,
                     "The file or directory (a path in a mount, or ARCHIVE::/dir/file); with "
                     "--list, the archive")
        ->required();
    command->add_option("--reason", args->reason, "Why (a case or ticket number); required");
    command->add_flag("--release", args->release, "Release the hold on PATH");
    command->add_flag("--list", args->list, "List the holds of the archive PATH");
    command->add_flag("--json", args->json, "Print JSON");
    AddKeyOptions(command, &args->key);
    command->callback([args] { RunHold(*args); });
  }
  {
    auto args = std::make_shared<RetentionArgs>();
    CLI::App* command = app.add_subcommand("retention", "Show or set the minimum age of versions");
    command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)")
        ->required();
    command->add_option("ACTION", args->action, "show (default), set or remove")
        ->check(CLI::IsMember({"show", "set", "remove"}));
    command->add_option("--path", args->path, "The directory the rule covers (default: /, all)");
    command->add_option("--mode", args->mode, "governance (default) or compliance")
        ->check(CLI::IsMember({"governance", "compliance"}));
    command->add_option("--min-age", args->min_age, "e.g. 10y, 6m, 30d, or forever");
    command->add_flag("--json", args->json, "Print JSON");
    AddKeyOptions(command, &args->key);
    command->callback([args] { RunRetention(*args); });
  }
  {
    auto args = std::make_shared<PruneArgs>();
    CLI::App* command = app.add_subcommand(
        "prune", "Remove the content of old versions as a keep policy says, then collect garbage");
    command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)")
        ->required();
    command->add_option("PATH", args->path, "Only the file or directory PATH inside the archive");
    command->add_option("--keep-last", args->keep_last, "Keep the N newest versions of each file");
    command->add_option("--keep-within", args->keep_within,
                        "Keep the versions younger than DURATION (e.g. 30d)");
    command->add_option("--keep-daily", args->keep_daily,
                        "Keep the newest version of each of the last N days with versions");
    command->add_option("--keep-weekly", args->keep_weekly, "The same for weeks");
    command->add_option("--keep-monthly", args->keep_monthly, "The same for months");
    command->add_option("--deleted-older-than", args->deleted_older_than,
                        "Remove every version of files deleted more than DURATION ago");
    command->add_flag("--dry-run", args->dry_run, "List what would go; change nothing");
    command->add_flag("--json", args->json, "Print JSON");
    AddKeyOptions(command, &args->key);
    command->callback([args] { RunPrune(*args); });
  }
  {
    auto args = std::make_shared<PurgeArgs>();
    CLI::App* command = app.add_subcommand(
        "purge", "Remove the content and tags of a file's versions now, with a reason");
    command
        ->add_option("PATH", args->target,
                     "The file (a path in a mount, or ARCHIVE::/dir/file; also a deleted one)")
        ->required();
    command->add_option("--version", args->version, "Only version N (default: every version)");
    command->add_option("--reason", args->reason, "Why (kept in the audit log); required");
    command->add_flag("--yes,-y", args->yes, "Do not ask for a confirmation");
    command->add_flag("--dry-run", args->dry_run, "List what would go; change nothing");
    command->add_flag("--json", args->json, "Print JSON");
    AddKeyOptions(command, &args->key);
    command->callback([args] { RunPurge(*args); });
  }
}

}  // namespace medvfs::tools
