#include "tools/lifecycle.h"

#include <sys/stat.h>

#include <cctype>
#include <optional>

#include "store/views.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

using store::Code;
using store::Status;
using Json = nlohmann::json;

constexpr int64_t kSecondsPerDay = 86'400;

// What a path inside the archive names: a file's history (live or deleted), or a live
// directory.
struct Place {
  store::HistoryId history = 0;
  store::InodeId dir = 0;
  std::string path;
};

store::StatusOr<Place> ResolvePlace(store::Archive& archive, const std::string& path) {
  Place place;
  place.path = path.empty() ? "/" : path;
  if (place.path[0] != '/') place.path.insert(0, 1, '/');
  std::optional<ArchivePath> split = SplitArchivePath(place.path);
  if (!split) {
    if (place.path.find_first_not_of('/') == std::string::npos) {
      place.dir = store::kRootInode;
      place.path = "/";
      return place;
    }
    return Status::Invalid(place.path + " names no file or directory");
  }
  store::StatusOr<store::NodeRef> dir = store::LookupPath(archive, split->dir);
  if (!dir.ok()) {
    if (dir.status().code() == Code::kNotFound) {
      return Status::NotFound("the directory " + split->dir + " does not exist in the archive");
    }
    return dir.status();
  }
  if (!S_ISDIR(dir->mode)) return Status(Code::kNotDirectory, split->dir + " is not a directory");
  store::StatusOr<store::NameRecord> record = archive.ResolveName(dir->ino, split->name);
  if (!record.ok()) {
    if (record.status().code() == Code::kNotFound) {
      return Status::NotFound(place.path + ": no such file or directory, now or in the past");
    }
    return record.status();
  }
  if (record->history != 0) {
    place.history = record->history;
  } else if (S_ISDIR(record->mode) && record->live()) {
    place.dir = record->ino;
  } else if (S_ISDIR(record->mode)) {
    return Status::NotFound(place.path + ": the directory was removed");
  } else {
    return Status::Invalid(place.path + " is neither a regular file nor a directory");
  }
  return place;
}

std::string StringField(const Json& request, const char* name) {
  auto it = request.find(name);
  return it != request.end() && it->is_string() ? it->get<std::string>() : std::string();
}

template <typename T>
std::optional<T> NumberField(const Json& request, const char* name) {
  auto it = request.find(name);
  if (it == request.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<T>();
}

bool BoolField(const Json& request, const char* name) {
  auto it = request.find(name);
  return it != request.end() && it->is_boolean() && it->get<bool>();
}

Json GcJson(const store::GcResult& r) {
  return {{"chunks_dropped", r.chunks_dropped}, {"bytes_dropped", r.bytes_dropped},
          {"packs_removed", r.packs_removed},   {"bytes_copied", r.bytes_copied},
          {"bytes_freed", r.bytes_freed},       {"duration_ms", r.duration_ms}};
}

Json RemovedJson(const store::RemovedVersion& v) {
  return {{"path", v.path},
          {"version", v.number},
          {"time", store::FormatTimeNs(v.time_ns)},
          {"size", v.size}};
}

store::StatusOr<LifecycleAnswer> ListHolds(store::Archive& archive) {
  LifecycleAnswer answer;
  MEDVFS_ASSIGN_OR_RETURN(std::vector<store::LegalHold> holds, archive.ListHolds());
  for (const store::LegalHold& hold : holds) {
    answer.items.push_back({{"path", hold.path},
                            {"kind", hold.history != 0 ? "file" : "directory"},
                            {"reason", hold.reason},
                            {"time", store::FormatTimeNs(hold.time_ns)},
                            {"uid", hold.uid},
                            {"program", hold.program}});
  }
  answer.summary = {{"holds", holds.size()}};
  return answer;
}

store::StatusOr<LifecycleAnswer> ListRetention(store::Archive& archive) {
  LifecycleAnswer answer;
  MEDVFS_ASSIGN_OR_RETURN(std::vector<store::RetentionRule> rules, archive.ListRetention());
  for (const store::RetentionRule& rule : rules) {
    answer.items.push_back({{"path", rule.path},
                            {"mode", store::RetentionModeName(rule.mode)},
                            {"min_age_s", rule.min_age_s},
                            {"min_age", FormatDurationSeconds(rule.min_age_s)},
                            {"set_time", store::FormatTimeNs(rule.set_time_ns)},
                            {"set_by_uid", rule.set_by_uid}});
  }
  answer.summary = {{"rules", rules.size()}};
  return answer;
}

store::StatusOr<LifecycleAnswer> Prune(store::Archive& archive, const Json& request,
                                       const store::Caller& caller) {
  store::PruneRequest prune;
  const std::string path = StringField(request, "path");
  if (!path.empty() && path != "/") {
    MEDVFS_ASSIGN_OR_RETURN(Place place, ResolvePlace(archive, path));
    prune.history = place.history;
    prune.dir = place.dir != 0 ? place.dir : store::kRootInode;
  }
  prune.keep_last = NumberField<uint64_t>(request, "keep_last").value_or(0);
  prune.keep_within_s = NumberField<int64_t>(request, "keep_within_s");
  prune.keep_daily = NumberField<uint64_t>(request, "keep_daily").value_or(0);
  prune.keep_weekly = NumberField<uint64_t>(request, "keep_weekly").value_or(0);
  prune.keep_monthly = NumberField<uint64_t>(request, "keep_monthly").value_or(0);
  prune.deleted_older_than_s = NumberField<int64_t>(request, "deleted_older_than_s");
  prune.dry_run = BoolField(request, "dry_run");
  MEDVFS_ASSIGN_OR_RETURN(store::PruneResult result, archive.Prune(prune, caller));
  LifecycleAnswer answer;
  for (const store::RemovedVersion& v : result.removed) answer.items.push_back(RemovedJson(v));
  answer.summary = {{"dry_run", result.dry_run},
                    {"files", result.files},
                    {"kept", result.kept},
                    {"held", result.held},
                    {"retained", result.retained},
                    {"removed", result.removed.size()},
                    {"removed_bytes", result.removed_bytes}};
  if (!prune.dry_run && !result.removed.empty()) {
    // The space comes back now: what prune removed is garbage for the collection.
    store::StatusOr<store::GcResult> collected = archive.CollectGarbage({}, caller);
    if (collected.ok()) {
      answer.summary["gc"] = GcJson(*collected);
    } else {
      answer.summary["gc_error"] = collected.status().ToString();
    }
  }
  return answer;
}

store::StatusOr<LifecycleAnswer> Purge(store::Archive& archive, const Json& request,
                                       const store::Caller& caller) {
  MEDVFS_ASSIGN_OR_RETURN(Place place, ResolvePlace(archive, StringField(request, "path")));
  if (place.history == 0) {
    return Status::Invalid(place.path + " is a directory: purge names one file");
  }
  store::PurgeRequest purge;
  purge.history = place.history;
  if (auto version = NumberField<uint64_t>(request, "version")) purge.number = *version;
  purge.reason = StringField(request, "reason");
  purge.dry_run = BoolField(request, "dry_run");
  MEDVFS_ASSIGN_OR_RETURN(store::PurgeResult result, archive.Purge(purge, caller));
  LifecycleAnswer answer;
  for (const store::RemovedVersion& v : result.removed) answer.items.push_back(RemovedJson(v));
  answer.summary = {{"dry_run", result.dry_run},
                    {"path", place.path},
                    {"unlinked", result.unlinked},
                    {"removed", result.removed.size()}};
  if (!result.dry_run) answer.summary["gc"] = GcJson(result.gc);
  return answer;
}

}  // namespace

bool LifecycleRequestWrites(const Json& request) {
  const std::string op = StringField(request, "op");
  if (op == "holds" || op == "retention" || op == "remotes") return false;
  return !BoolField(request, "dry_run");
}

store::StatusOr<LifecycleAnswer> ExecuteLifecycle(store::Archive& archive, const Json& request,
                                                  const store::Caller& caller) {
  if (!request.is_object()) return Status::Invalid("a lifecycle request is a JSON object");
  const std::string op = StringField(request, "op");
  if (op == "holds") return ListHolds(archive);
  if (op == "retention") return ListRetention(archive);
  if (op == "prune") return Prune(archive, request, caller);
  if (op == "purge") return Purge(archive, request, caller);
  if (op == "hold" || op == "release") {
    MEDVFS_ASSIGN_OR_RETURN(Place place, ResolvePlace(archive, StringField(request, "path")));
    if (op == "hold") {
      store::LegalHold hold;
      hold.history = place.history;
      hold.dir = place.dir;
      hold.reason = StringField(request, "reason");
      MEDVFS_RETURN_IF_ERROR(archive.SetHold(hold, caller));
    } else {
      MEDVFS_RETURN_IF_ERROR(archive.ReleaseHold(place.history, place.dir, caller));
    }
    LifecycleAnswer answer;
    answer.summary = {{"path", place.path}, {"kind", place.history != 0 ? "file" : "directory"}};
    return answer;
  }
  if (op == "set-retention") {
    MEDVFS_ASSIGN_OR_RETURN(Place place, ResolvePlace(archive, StringField(request, "path")));
    if (place.dir == 0) return Status::Invalid("a retention rule is set on a directory");
    store::RetentionRule rule;
    rule.dir = place.dir;
    const std::string mode = StringField(request, "mode");
    if (mode == "compliance") {
      rule.mode = store::RetentionMode::kCompliance;
    } else if (mode == "governance" || mode.empty()) {
      rule.mode = store::RetentionMode::kGovernance;
    } else {
      return Status::Invalid("the mode is governance or compliance");
    }
    std::optional<int64_t> age = NumberField<int64_t>(request, "min_age_s");
    if (!age) return Status::Invalid("a retention rule needs a minimum age");
    rule.min_age_s = *age;
    MEDVFS_RETURN_IF_ERROR(archive.SetRetention(rule, caller));
    LifecycleAnswer answer;
    answer.summary = {{"path", place.path}, {"mode", mode}, {"min_age_s", rule.min_age_s}};
    return answer;
  }
  if (op == "remotes") {
    MEDVFS_ASSIGN_OR_RETURN(auto remotes, archive.ListRemotes());
    LifecycleAnswer answer;
    for (const store::RemoteStatus& r : remotes) answer.items.push_back(RemoteStatusJson(r));
    return answer;
  }
  if (op == "remote-add") {
    store::RemoteConfig remote;
    remote.name = StringField(request, "name");
    remote.location.url = StringField(request, "url");
    remote.location.endpoint = StringField(request, "endpoint");
    remote.location.region = StringField(request, "region");
    if (remote.location.region.empty()) remote.location.region = "us-east-1";
    MEDVFS_RETURN_IF_ERROR(archive.AddRemote(remote, caller));
    LifecycleAnswer answer;
    answer.summary = {{"name", remote.name}, {"url", remote.location.url}};
    return answer;
  }
  if (op == "remote-remove") {
    MEDVFS_RETURN_IF_ERROR(archive.RemoveRemote(StringField(request, "name"), caller));
    LifecycleAnswer answer;
    answer.summary = {{"name", StringField(request, "name")}};
    return answer;
  }
  if (op == "remote-sync") {
    store::ReplicateRequest replicate;
    replicate.force_snapshot = true;
    MEDVFS_ASSIGN_OR_RETURN(store::ReplicateResult r,
                            archive.Replicate(StringField(request, "name"), replicate));
    LifecycleAnswer answer;
    answer.summary = {{"name", StringField(request, "name")}, {"packs_uploaded", r.packs_uploaded},
                      {"bytes_uploaded", r.bytes_uploaded},   {"snapshot_seq", r.snapshot_seq},
                      {"locks_changed", r.locks_changed},     {"delete_markers", r.delete_markers},
                      {"packs_evicted", r.packs_evicted}};
    return answer;
  }
  return Status::Invalid("unknown lifecycle request \"" + op + "\"");
}

Json RemoteStatusJson(const store::RemoteStatus& r) {
  return {{"name", r.config.name},
          {"url", r.config.location.url},
          {"endpoint", r.config.location.endpoint},
          {"region", r.config.location.region},
          {"packs_local", r.packs_local},
          {"packs_uploaded", r.packs_uploaded},
          {"packs_evicted", r.packs_evicted},
          {"lag_bytes", r.lag_bytes},
          {"lag_seconds", r.lag_seconds},
          {"snapshot_seq", r.snapshot_seq},
          {"snapshot_time_s", r.snapshot_time_s},
          {"object_lock", r.object_lock},
          {"last_error", r.last_error},
          {"last_error_time_s", r.last_error_time_s}};
}

store::StatusOr<int64_t> ParseDurationSeconds(std::string_view text) {
  if (text == "forever" || text == "for ever") return store::kRetainForever;
  if (text.empty()) return Status::Invalid("an empty duration");
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t digits = i;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) {
      ++digits;
    }
    if (digits == i || digits - i > 9) {
      return Status::Invalid("a duration is numbers with units, e.g. 10y, 30d, 12h");
    }
    const int64_t number = std::stoll(std::string(text.substr(i, digits - i)));
    size_t unit_end = digits;
    while (unit_end < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_end]))) {
      ++unit_end;
    }
    const std::string_view unit = text.substr(digits, unit_end - digits);
    int64_t seconds = 0;
    if (unit == "y") {
      seconds = 365 * kSecondsPerDay;
    } else if (unit == "m") {
      seconds = 30 * kSecondsPerDay;
    } else if (unit == "w") {
      seconds = 7 * kSecondsPerDay;
    } else if (unit == "d") {
      seconds = kSecondsPerDay;
    } else if (unit == "h") {
      seconds = 3600;
    } else if (unit == "min") {
      seconds = 60;
    } else if (unit == "s") {
      seconds = 1;
    } else {
      return Status::Invalid("unknown duration unit \"" + std::string(unit) +
                             "\" (y, m for 30 days, w, d, h, min, s)");
    }
    total += number * seconds;  // < 2^55 a term
    if (total > (int64_t{1} << 56)) return Status::Invalid("a duration beyond a billion years");
    i = unit_end;
  }
  return total;
}

std::string FormatDurationSeconds(int64_t seconds) {
  if (seconds == store::kRetainForever) return "for ever";
  if (seconds % kSecondsPerDay == 0) return std::to_string(seconds / kSecondsPerDay) + "d";
  if (seconds % 3600 == 0) return std::to_string(seconds / 3600) + "h";
  return std::to_string(seconds) + "s";
}

}  // namespace medvfs::tools
