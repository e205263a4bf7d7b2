// medvfs stats ARCHIVE: what an archive holds, and how much dedup and compression save.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/views.h"
#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/lifecycle.h"
#include "tools/output.h"
#include "tools/stream.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

struct StatsArgs {
  std::string archive;
  KeyOptions key;
  bool json = false;
};

// The mount's root carries the same numbers as JSON in the `user.medvfs.stats` attribute.
store::ArchiveStats StatsThroughMount(const StatsArgs& args, const ArchiveTarget& target) {
  std::string text;
  int err = GetXattr(target.mountpoint, "user.medvfs.stats", &text);
  if (err != 0) FailErrno(err, "cannot read the statistics of " + args.archive);
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    Fail("the mount returned statistics that cannot be read",
         "use the same medvfs version for the mount and the command line");
  }
  auto number = [&json](const char* key) { return json.value(key, uint64_t{0}); };
  store::ArchiveStats stats;
  stats.files = number("files");
  stats.live_files = number("live_files");
  stats.directories = number("directories");
  stats.versions = number("versions");
  stats.logical_bytes = number("logical_bytes");
  stats.stored_bytes = number("stored_bytes");
  stats.chunks = number("chunks");
  stats.disk_bytes = number("disk_bytes");
  stats.pack_bytes = number("pack_bytes");
  stats.reclaimable_bytes = number("reclaimable_bytes");
  if (number("gc_time_ns") != 0) {
    store::GcResult gc;
    gc.time_ns = static_cast<int64_t>(number("gc_time_ns"));
    gc.duration_ms = static_cast<int64_t>(number("gc_duration_ms"));
    gc.chunks_dropped = number("gc_chunks_dropped");
    gc.packs_removed = number("gc_packs_removed");
    gc.bytes_freed = number("gc_bytes_freed");
    stats.last_gc = gc;
  }
  stats.held_versions = number("held_versions");
  stats.removed_versions = number("removed_versions");
  // Counts only: medvfs hold --list and medvfs retention show the details.
  stats.holds.resize(number("holds"));
  stats.retention.resize(number("retention_rules"));
  stats.remotes = static_cast<uint32_t>(number("remotes"));
  stats.remote_lag_bytes = number("remote_lag_bytes");
  stats.remote_lag_seconds = static_cast<int64_t>(number("remote_lag_seconds"));
  stats.remote_errors = static_cast<uint32_t>(number("remote_errors"));
  return stats;
}

// "/ compliance 3650d; /ct governance 30d", or the count when only that is known (a mount).
std::string RetentionText(const store::ArchiveStats& s) {
  if (s.retention.empty()) return "none";
  std::string text;
  for (const store::RetentionRule& rule : s.retention) {
    if (rule.path.empty()) return std::to_string(s.retention.size()) + " rules (medvfs retention)";
    if (!text.empty()) text += "; ";
    text += rule.path + " " + std::string(store::RetentionModeName(rule.mode)) + " " +
            FormatDurationSeconds(rule.min_age_s);
  }
  return text;
}

store::ArchiveStats StatsInArchive(const StatsArgs& args, const ArchiveTarget& target) {
  std::unique_ptr<store::Archive> archive =
      OpenArchiveOrFail(target.archive, args.key, /*read_only=*/true);
  auto stats = archive->Stats();
  if (!stats.ok()) FailStatus(stats.status(), "cannot read the statistics of " + args.archive);
  return *stats;
}

// logical bytes / stored bytes: what dedup and compression (less encryption overhead) save.
double SavingRatio(const store::ArchiveStats& s) {
  return s.stored_bytes == 0
             ? 0.0
             : static_cast<double>(s.logical_bytes) / static_cast<double>(s.stored_bytes);
}

std::string Bytes(uint64_t bytes) {
  return HumanBytes(bytes) + " (" + std::to_string(bytes) + " bytes)";
}

void PrintTable(const store::ArchiveStats& s) {
  char ratio[32] = "-";
  if (s.stored_bytes != 0) std::snprintf(ratio, sizeof(ratio), "%.2fx", SavingRatio(s));
  std::vector<std::vector<std::string>> rows = {
      {"files:", std::to_string(s.files) + " (" + std::to_string(s.live_files) + " live)"},
      {"directories:", std::to_string(s.directories)},
      {"versions:", std::to_string(s.versions)},
      {"logical bytes:", Bytes(s.logical_bytes)},
      {"stored bytes:", Bytes(s.stored_bytes)},
      {"chunks:", std::to_string(s.chunks)},
      {"disk bytes:", Bytes(s.disk_bytes)},
      {"dedup+compression ratio:", ratio},
      {"pack bytes:", Bytes(s.pack_bytes)},
      {"reclaimable by gc:", Bytes(s.reclaimable_bytes)},
      {"last gc:", s.last_gc ? store::FormatTimeNs(s.last_gc->time_ns) + ", freed " +
                                   HumanBytes(s.last_gc->bytes_freed) + ", dropped " +
                                   std::to_string(s.last_gc->chunks_dropped) + " chunks, " +
                                   std::to_string(s.last_gc->packs_removed) + " packs rewritten"
                             : std::string("never")},
      {"retention:", RetentionText(s)},
      {"legal holds:",
       std::to_string(s.holds.size()) + " (" + std::to_string(s.held_versions) + " versions held)"},
      {"pruned or purged:", std::to_string(s.removed_versions) + " versions (records kept)"},
      {"remotes:", s.remotes == 0
                       ? std::string("none")
                       : std::to_string(s.remotes) + ", lag " + HumanBytes(s.remote_lag_bytes) +
                             " and " + std::to_string(s.remote_lag_seconds) + " s" +
                             (s.remote_errors > 0 ? ", " + std::to_string(s.remote_errors) +
                                                        " failing (see medvfs remote list)"
                                                  : std::string())},
  };
  std::cout << FormatTable(rows) << std::flush;
}

void PrintJson(const store::ArchiveStats& s) {
  nlohmann::json out = {
      {"files", s.files},
      {"live_files", s.live_files},
      {"directories", s.directories},
      {"versions", s.versions},
      {"logical_bytes", s.logical_bytes},
      {"stored_bytes", s.stored_bytes},
      {"chunks", s.chunks},
      {"disk_bytes", s.disk_bytes},
      {"ratio", s.stored_bytes == 0 ? nlohmann::json(nullptr) : nlohmann::json(SavingRatio(s))},
      {"pack_bytes", s.pack_bytes},
      {"reclaimable_bytes", s.reclaimable_bytes},
      {"last_gc", s.last_gc ? nlohmann::json{{"time", store::FormatTimeNs(s.last_gc->time_ns)},
                                             {"duration_ms", s.last_gc->duration_ms},
                                             {"chunks_dropped", s.last_gc->chunks_dropped},
                                             {"packs_removed", s.last_gc->packs_removed},
                                             {"bytes_freed", s.last_gc->bytes_freed}}
                            : nlohmann::json(nullptr)},
      {"held_versions", s.held_versions},
      {"removed_versions", s.removed_versions},
      {"holds", s.holds.size()},
      {"retention_rules", s.retention.size()},
      {"remotes", s.remotes},
      {"remote_lag_bytes", s.remote_lag_bytes},
      {"remote_lag_seconds", s.remote_lag_seconds},
      {"remote_errors", s.remote_errors},
  };
  nlohmann::json rules = nlohmann::json::array();
  for (const store::RetentionRule& rule : s.retention) {
    if (rule.path.empty()) continue;
    rules.push_back({{"path", rule.path},
                     {"mode", store::RetentionModeName(rule.mode)},
                     {"min_age_s", rule.min_age_s}});
  }
  out["retention"] = std::move(rules);
  std::cout << out.dump(2) << std::endl;
}

void RunStats(const StatsArgs& args) {
  ArchiveTarget target = ResolveArchiveTarget(args.archive);
  store::ArchiveStats stats =
      target.through_mount ? StatsThroughMount(args, target) : StatsInArchive(args, target);
  if (args.json) {
    PrintJson(stats);
  } else {
    PrintTable(stats);
  }
}

}  // namespace

void RegisterStatsCommand(CLI::App& app) {
  auto args = std::make_shared<StatsArgs>();
  CLI::App* command =
      app.add_subcommand("stats", "Files, versions, and logical vs stored bytes of an archive");
  command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)")
      ->required();
  command->add_flag("--json", args->json, "Print JSON with exact numbers");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunStats(*args); });
}

}  // namespace medvfs::tools
