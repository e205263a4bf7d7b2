// The lifecycle operations of the command line (medvfs hold, retention, prune, purge) as
// small JSON requests, run on an open archive: by the command itself on an unmounted archive,
// or by the mount daemon, which holds the archive, over its control socket
// (tools/control_socket.h). One code path for both, so that a mounted and an unmounted archive
// answer alike.
//
// Requests ({"op": ...}; paths are inside the archive, "/" its root):
//   holds                                   items: one per legal hold
//   hold     path reason                    a hold on a file (all its versions) or directory
//   release  path
//   retention                               items: one per retention rule
//   set-retention path mode min_age_s       mode "governance" | "compliance"; 0 removes
//   prune    path keep_last keep_within_s keep_daily keep_weekly keep_monthly
//            deleted_older_than_s dry_run   items: the versions removed; then collects garbage
//   purge    path version reason dry_run    items: the versions purged
//   remotes                                 items: one per S3 remote (RemoteStatusJson)
//   remote-add name url endpoint region     (credentials: the environment of whoever runs it)
//   remote-remove name
//   remote-sync name                        one replication round with a snapshot
// Answers: a summary object and a list of items (streamed one per line over the socket).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/archive.h"
#include "store/status.h"
#include "tools/key_input.h"

namespace medvfs::tools {

struct LifecycleAnswer {
  nlohmann::json summary = nlohmann::json::object();
  std::vector<nlohmann::json> items;
};

// Runs one request on `archive` as `caller`. kInvalid for a malformed request; otherwise the
// archive's own errors (kPermission for what a rule or hold forbids, kNotFound for a path that
// names nothing, ...).
store::StatusOr<LifecycleAnswer> ExecuteLifecycle(store::Archive& archive,
                                                  const nlohmann::json& request,
                                                  const store::Caller& caller);

// An S3 remote's status as the "remotes" request lists it (medvfs remote list, stats).
nlohmann::json RemoteStatusJson(const store::RemoteStatus& remote);

// Runs one request on the archive `archive_dir`: through its mount daemon's control socket
// when it is mounted (a request that writes needs the key, checked first), else on the
// archive opened here. Fails the command (tools/cli_error.h) with `what` in the message.
LifecycleAnswer RunLifecycleRequest(const std::filesystem::path& archive_dir,
                                    const nlohmann::json& request, const KeyOptions& key_options,
                                    const std::string& what);

// Whether the request changes the archive (and so needs the key and a writable archive).
bool LifecycleRequestWrites(const nlohmann::json& request);

// "10y", "6m" (30-day months), "2w", "30d", "12h", "90min", "15s", and sums of them ("1y6m");
// "forever" gives store::kRetainForever. kInvalid otherwise.
store::StatusOr<int64_t> ParseDurationSeconds(std::string_view text);
// The reverse, for people: "3650d", "12h", "for ever".
std::string FormatDurationSeconds(int64_t seconds);

}  // namespace medvfs::tools
