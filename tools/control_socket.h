// The mount daemon's control socket: ARCHIVE/medvfs.sock, a Unix stream socket through which
// `medvfs backup` asks the daemon that holds the archive (and its RocksDB lock) to back it up
// while it stays mounted.
//
// Who may connect: the archive directory is 0700 and the socket 0600, so only the daemon's
// user and root reach it; the daemon also checks each peer's SO_PEERCRED (uid 0 or its own
// uid) and refuses (and audits) anyone else.
//
// Protocol, one request per connection, lines of tab-separated fields:
//   client: "backup\t<absolute DEST>\t<keep>\n"
//   daemon: "progress\t<bytes copied>\n" ... (optional), then one of
//           "ok\t<backup id>\t<bytes copied>\t<total bytes>\t<files>\t<unix time>\n"
//           "error\t<store::Code number>\t<message>\n"
//   client: "deid-map\t<pseudonym prefix>\n"            (medvfs deid-map on a mounted archive)
//   daemon: "entry\t<pseudonym>\t<PatientID in hex>\t<versions>\n" ..., then
//           "ok\t<entries>\n" or an "error" line; the request is audited (cli-read, "deid-map")
//           and synced before the first entry is sent.
//   client: "gc\t<dry run 0|1>\t<repack garbage percent>\t<rate bytes/s>\n"   (medvfs gc)
//   daemon: "progress\t<phase>\t<done>\t<total>\n" ..., then "ok\t<13 numbers of the
//           GcResult>\n" or an "error" line. A client that goes away stops the collection.
//   client: "lifecycle\t<JSON request>\n"    (medvfs hold, retention, prune, purge; see
//           tools/lifecycle.h)
//   daemon: "item\t<JSON>\n" ..., then "ok\t<JSON summary>\n" or an "error" line. The request
//           runs as the peer (uid, pid, program) and is audited by the archive.
// The backup runs on a thread of the daemon's own, beside the FUSE workers: reads and writes
// through the mount go on meanwhile. A client that goes away stops its backup.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store/archive.h"
#include "store/status.h"
#include "tools/lifecycle.h"

namespace medvfs::tools {

// ARCHIVE/medvfs.sock.
std::filesystem::path ControlSocketPath(const std::filesystem::path& archive);

// What the server tells the mount around a lifecycle request that may change the archive
// beside the FUSE requests, so that the mount drops what it caches: `begin` before, `end`
// after, with the path of a file the request unlinked (empty if none). Either may be empty.
struct ChangeNotifier {
  std::function<void()> begin;
  std::function<void(const std::string& unlinked_path)> end;
};

class ControlServer {
 public:
  // Listens on ARCHIVE/medvfs.sock, replacing a stale socket file (the caller holds the
  // archive open, so no other daemon can be serving it). `archive` must outlive the server.
  static store::StatusOr<std::unique_ptr<ControlServer>> Start(
      const std::filesystem::path& archive_dir, store::Archive& archive,
      ChangeNotifier notifier = {});
  // Stop().
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Stops accepting, stops running backups (they end with an error, and leave nothing
  // half-made), waits for every thread and removes the socket file. Idempotent.
  void Stop();

 private:
  struct State;
  explicit ControlServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// For the mount daemon: starts the server, or logs why it could not (the mount works without
// it; only online backups are unavailable) and returns null.
std::unique_ptr<ControlServer> StartControlServerOrLog(const std::filesystem::path& archive_dir,
                                                       store::Archive& archive,
                                                       ChangeNotifier notifier = {});

// What the daemon answered to a backup request.
struct RemoteBackup {
  uint32_t id = 0;
  uint64_t new_bytes = 0;
  uint64_t size = 0;
  uint32_t files = 0;
  int64_t time_s = 0;
};

// Asks the daemon serving `archive_dir` to back it up into `dest` (absolute), keeping `keep`
// backups there (0: all). `progress` gets the bytes copied so far. kNotFound when no daemon
// listens on the socket (no socket file, or a stale one); kPermission when this user may not
// use it; kIoError when the daemon went away before answering; else the daemon's own status.
store::StatusOr<RemoteBackup> RequestBackup(const std::filesystem::path& archive_dir,
                                            const std::filesystem::path& dest, uint32_t keep,
                                            const std::function<void(uint64_t)>& progress);

// Asks the daemon serving `archive_dir` to collect garbage (store::Archive::CollectGarbage
// with `request`'s options; its callbacks are not sent). `progress` gets the daemon's
// progress reports. Errors as RequestBackup.
store::StatusOr<store::GcResult> RequestGc(
    const std::filesystem::path& archive_dir, const store::GcRequest& request,
    const std::function<void(std::string_view phase, uint64_t done, uint64_t total)>& progress);

// Asks the daemon serving `archive_dir` to run a lifecycle request (tools/lifecycle.h).
// Errors as RequestBackup, and the daemon's ExecuteLifecycle status. The caller checks the
// user's key first for a request that changes the archive.
store::StatusOr<LifecycleAnswer> RequestLifecycle(const std::filesystem::path& archive_dir,
                                                  const nlohmann::json& request);

// Asks the daemon serving `archive_dir` for store::BuildDeidMap with pseudonyms of `prefix`.
// Errors as for RequestBackup. The caller checks the user's key first (store::Archive::CheckKey):
// the daemon only checks who the peer is.
store::StatusOr<std::vector<store::PseudonymEntry>> RequestDeidMap(
    const std::filesystem::path& archive_dir, const std::string& prefix);

}  // namespace medvfs::tools
