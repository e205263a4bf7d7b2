// medvfs remote add|list|remove|sync: an archive's S3 remotes (DESIGN.md section 8), and
// medvfs restore-remote: a local archive rebuilt from a bucket.
//
// add, remove and sync change the archive: while it is mounted they go to its daemon over
// ARCHIVE/medvfs.sock (as the lifecycle commands do: tools/lifecycle.h), which then talks to
// the bucket with the credentials of its own environment; otherwise the archive is opened
// here. The mount replicates by itself (medvfs-mount(1), snapshot_interval=); sync makes one
// round now, with a snapshot, for an archive that is not mounted or before a migration.
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/archive.h"
#include "tools/cli_error.h"
#include "tools/commands.h"
#include "tools/key_input.h"
#include "tools/lifecycle.h"
#include "tools/output.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string FirstEnv(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return value;
  }
  return {};
}

struct RemoteArgs {
  std::string archive;
  std::string name;
  std::string url;
  std::string endpoint;
  std::string region;
  bool json = false;
  KeyOptions key;
};

// The endpoint and region of a command: the options, else the environment.
store::RemoteLocation LocationOf(const RemoteArgs& args) {
  store::RemoteLocation location;
  location.url = args.url;
  location.endpoint =
      args.endpoint.empty() ? FirstEnv({"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) : args.endpoint;
  location.region =
      args.region.empty() ? FirstEnv({"AWS_REGION", "AWS_DEFAULT_REGION"}) : args.region;
  if (location.region.empty()) location.region = "us-east-1";
  if (location.endpoint.empty()) {
    Fail("no S3 endpoint given", "give --endpoint URL (or set AWS_ENDPOINT_URL)", 2);
  }
  return location;
}

void RunAdd(const RemoteArgs& args) {
  const ArchiveSource source = ResolveArchiveSource(args.archive);
  const store::RemoteLocation location = LocationOf(args);
  Json request = {{"op", "remote-add"},
                  {"name", args.name},
                  {"url", location.url},
                  {"endpoint", location.endpoint},
                  {"region", location.region}};
  LifecycleAnswer answer = RunLifecycleRequest(source.archive, request, args.key, "remote add");
  std::cout << "Remote " << args.name << " of " << args.archive << " is "
            << answer.summary.value("url", location.url) << " at " << location.endpoint << ".\n"
            << "A mount replicates to it by itself; or run: medvfs remote sync " << args.archive
            << " " << args.name << std::endl;
}

void RunRemove(const RemoteArgs& args) {
  const ArchiveSource source = ResolveArchiveSource(args.archive);
  RunLifecycleRequest(source.archive, {{"op", "remote-remove"}, {"name", args.name}}, args.key,
                      "remote remove");
  std::cout << "Remote " << args.name << " removed (nothing in the bucket was deleted)."
            << std::endl;
}

void RunList(const RemoteArgs& args) {
  const ArchiveSource source = ResolveArchiveSource(args.archive);
  LifecycleAnswer answer =
      RunLifecycleRequest(source.archive, {{"op", "remotes"}}, args.key, "remote list");
  if (args.json) {
    std::cout << Json(answer.items).dump(2) << std::endl;
    return;
  }
  if (answer.items.empty()) {
    std::cout << "No remote. Add one with: medvfs remote add " << args.archive
              << " NAME s3://BUCKET/PREFIX --endpoint URL\n";
    return;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "URL", "PACKS", "LAG", "SNAPSHOT", "WORM", "LAST ERROR"}};
  for (const Json& r : answer.items) {
    const uint64_t lag_bytes = r.value("lag_bytes", uint64_t{0});
    const int64_t lag_s = r.value("lag_seconds", int64_t{0});
    rows.push_back({r.value("name", ""), r.value("url", ""),
                    std::to_string(r.value("packs_uploaded", uint64_t{0})) + "/" +
                        std::to_string(r.value("packs_local", uint64_t{0})),
                    HumanBytes(lag_bytes) + ", " + std::to_string(lag_s) + " s",
                    r.value("snapshot_seq", uint64_t{0}) == 0
                        ? "none yet"
                        : std::to_string(r.value("snapshot_seq", uint64_t{0})) + " at " +
                              UtcTime(r.value("snapshot_time_s", int64_t{0})),
                    r.value("object_lock", false) ? "object lock" : "no",
                    r.value("last_error", "").empty() ? "-" : r.value("last_error", "")});
  }
  std::cout << FormatTable(rows) << std::flush;
}

void RunSync(const RemoteArgs& args) {
  const ArchiveSource source = ResolveArchiveSource(args.archive);
  std::vector<std::string> names;
  if (!args.name.empty()) {
    names.push_back(args.name);
  } else {
    LifecycleAnswer listed =
        RunLifecycleRequest(source.archive, {{"op", "remotes"}}, args.key, "remote sync");
    for (const Json& r : listed.items) names.push_back(r.value("name", ""));
    if (names.empty()) Fail(args.archive + " has no remote", "add one with medvfs remote add", 2);
  }
  for (const std::string& name : names) {
    LifecycleAnswer answer = RunLifecycleRequest(
        source.archive, {{"op", "remote-sync"}, {"name", name}}, args.key, "remote sync " + name);
    const Json& s = answer.summary;
    std::cout << name << ": " << s.value("packs_uploaded", uint64_t{0}) << " packs uploaded, "
              << HumanBytes(s.value("bytes_uploaded", uint64_t{0})) << " in all; snapshot "
              << s.value("snapshot_seq", uint64_t{0});
    if (s.value("locks_changed", uint64_t{0}) > 0) {
      std::cout << "; " << s.value("locks_changed", uint64_t{0}) << " Object Lock changes";
    }
    if (s.value("delete_markers", uint64_t{0}) > 0) {
      std::cout << "; " << s.value("delete_markers", uint64_t{0}) << " delete markers";
    }
    if (s.value("packs_evicted", uint64_t{0}) > 0) {
      std::cout << "; " << s.value("packs_evicted", uint64_t{0}) << " local packs dropped";
    }
    std::cout << std::endl;
  }
}

void RunRestoreRemote(const RemoteArgs& args) {
  const store::RemoteLocation location = LocationOf(args);
  store::StatusOr<store::KeySource> key = ReadKey(args.key, /*confirm=*/false);
  if (!key.ok()) FailMessage(key.status().message());
  store::RestoreBackupOptions options;
  options.high_water_dir = store::DefaultHighWaterDir();
  uint64_t seq = 0;
  const store::Status s =
      store::RestoreRemote(location, args.archive, *key, options, CommandLineCaller(), &seq);
  if (!s.ok()) {
    switch (s.code()) {
      case store::Code::kWrongKey:
        Fail("the passphrase does not unlock the archive in " + location.url,
             "give the passphrase (or key file) the archive had when the snapshot was made");
      case store::Code::kNotEmpty:
      case store::Code::kNotDirectory:
        Fail("cannot restore into " + args.archive + ": " + s.message(),
             "give a new or empty directory");
      case store::Code::kNotFound:
        Fail("cannot restore from " + location.url + ": " + s.message(),
             "check the URL and the endpoint");
      case store::Code::kAccess:
        Fail("the bucket refused access: " + s.message(),
             "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE");
      default:
        FailStatus(s, "the restore from " + location.url + " failed");
    }
  }
  std::cout << "Restored snapshot " << seq << " of " << location.url << " into " << args.archive
            << ".\nCheck it with: medvfs verify " << args.archive << std::endl;
}

}  // namespace

void RegisterRemoteCommands(CLI::App& app) {
  CLI::App* remote =
      app.add_subcommand("remote", "The archive's S3 remotes: add, list, remove, sync");
  remote->require_subcommand(1);
  {
    auto args = std::make_shared<RemoteArgs>();
    CLI::App* command = remote->add_subcommand("add", "Add an S3 remote and start replicating");
    command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)")
        ->required();
    command->add_option("NAME", args->name, "A name for the remote (letters, digits, - or _)")
        ->required();
    command->add_option("URL", args->url, "s3://BUCKET[/PREFIX]")->required();
    command->add_option("--endpoint", args->endpoint,
                        "The S3 service, http(s)://HOST[:PORT] (default: $AWS_ENDPOINT_URL)");
    command->add_option("--region", args->region, "The region (default: $AWS_REGION, us-east-1)");
    AddKeyOptions(command, &args->key);
    command->callback([args] { RunAdd(*args); });
  }
  {
    auto args = std::make_shared<RemoteArgs>();
    CLI::App* command = remote->add_subcommand("list", "The remotes and how far behind they are");
    command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)")
        ->required();
    command->add_flag("--json", args->json, "Print JSON");
    AddKeyOptions(command, &args->key);
    command->callback([args] { RunList(*args); });
  }
  {
    auto args = std::make_shared<RemoteArgs>();
    CLI::App* command =
        remote->add_subcommand("remove", "Forget a remote (the bucket keeps what it holds)");
    command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)")
        ->required();
    command->add_option("NAME", args->name, "The remote")->required();
    AddKeyOptions(command, &args->key);
    command->callback([args] { RunRemove(*args); });
  }
  {
    auto args = std::make_shared<RemoteArgs>();
    CLI::App* command = remote->add_subcommand(
        "sync", "Replicate now: upload what is missing and a snapshot of the records");
    command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)")
        ->required();
    command->add_option("NAME", args->name, "Only this remote (default: all)");
    AddKeyOptions(command, &args->key);
    command->callback([args] { RunSync(*args); });
  }
  {
    auto args = std::make_shared<RemoteArgs>();
    CLI::App* command = app.add_subcommand(
        "restore-remote", "Rebuild a local archive from the latest snapshot in an S3 bucket");
    command->add_option("URL", args->url, "s3://BUCKET[/PREFIX]")->required();
    command->add_option("ARCHIVE", args->archive, "A new (or empty) archive directory")->required();
    command->add_option("--endpoint", args->endpoint,
                        "The S3 service, http(s)://HOST[:PORT] (default: $AWS_ENDPOINT_URL)");
    command->add_option("--region", args->region, "The region (default: $AWS_REGION, us-east-1)");
    AddKeyOptions(command, &args->key);
    command->callback([args] { RunRestoreRemote(*args); });
  }
}

}  // namespace medvfs::tools
