// medvfs mount ARCHIVE MOUNTPOINT [-f] [-o opt,...]: serves an archive through FUSE.
//
// Without -f the key is read here (so a terminal prompt works), then the process forks while
// it still has one thread (checked); the child starts a new session, opens the archive
// (RocksDB's threads do not survive a fork, so never before), mounts, writes ARCHIVE/medvfs.pid and
// reports "ok" or a one-line error over a pipe. The parent exits only then, so the mount is usable
// as soon as the command returns.
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fs/mount_options.h"
#include "fs/session.h"
#include "store/archive.h"
#include "store/audit.h"
#include "store/file_util.h"
#include "store/log.h"
#include "tools/cli_error.h"
#include "tools/commands.h"
#include "tools/control_socket.h"
#include "tools/key_input.h"
#include "tools/mount_commands.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace stdfs = std::filesystem;

namespace {

using store::Status;

// How long Open retries an archive still held by a daemon that is shutting down.
constexpr std::chrono::seconds kBusyRetry{10};
// How long the parent waits for the daemon's report.
constexpr int kReportTimeoutMs = 120'000;
constexpr const char* kReadyMessage = "ok";

struct MountArgs {
  std::string archive;
  std::string mountpoint;
  bool foreground = false;
  bool accept_rollback = false;
  bool accept_wal_damage = false;
  bool accept_record_damage = false;
  std::vector<std::string> options;
  KeyOptions key;
};

// Everything the daemon needs, resolved before any fork.
struct MountPlan {
  // absolute; for a remote mount, its cache directory (which holds the pid file, the control
  // socket and the mirror of the bucket's records)
  stdfs::path archive;
  std::string mountpoint;  // absolute
  fs::MountOptions options;
  std::optional<store::RemoteLocation> remote;  // medvfs mount s3://...
};

// The first of the environment variables that is set and not empty ("" if none).
std::string FirstEnv(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return value;
  }
  return {};
}

// ~/.cache/medvfs/BUCKET[-PREFIX] (XDG_CACHE_HOME when set).
stdfs::path DefaultRemoteCache(const std::string& url) {
  std::string name = url.substr(5);  // after "s3://"
  for (char& c : name) {
    if (c == '/') c = '-';
  }
  std::string base = FirstEnv({"XDG_CACHE_HOME"});
  if (base.empty()) base = FirstEnv({"HOME"}) + "/.cache";
  return stdfs::path(base) / "medvfs" / name;
}

// Replication to the archive's remotes while it is mounted (store::Archive::Replicate): a
// round every few seconds in a thread of its own, so the mount never waits for the network;
// a remote whose round fails is retried with a growing pause (2 s up to 2 min).
class ReplicationLoop {
 public:
  ReplicationLoop(store::Archive& archive, uint32_t snapshot_interval_s)
      : archive_(archive), snapshot_interval_s_(snapshot_interval_s), thread_([this] { Run(); }) {}
  ~ReplicationLoop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  ReplicationLoop(const ReplicationLoop&) = delete;
  ReplicationLoop& operator=(const ReplicationLoop&) = delete;

 private:
  bool Stopping() {
    std::lock_guard lock(mu_);
    return stop_;
  }

  void Run() {
    struct Backoff {
      std::chrono::steady_clock::time_point next_try{};
      std::chrono::seconds pause{0};
    };
    std::map<std::string, Backoff> backoff;
    while (!Stopping()) {
      auto remotes = archive_.ListRemotes();
      if (remotes.ok()) {
        for (const store::RemoteStatus& remote : *remotes) {
          if (Stopping()) break;
          Backoff& b = backoff[remote.config.name];
          if (std::chrono::steady_clock::now() < b.next_try) continue;
          store::ReplicateRequest request;
          request.snapshot_interval_s = snapshot_interval_s_;
          request.cancelled = [this] { return Stopping(); };
          auto round = archive_.Replicate(remote.config.name, request);
          if (round.ok()) {
            b.pause = std::chrono::seconds(0);
          } else if (round.status().code() != store::Code::kBusy || !Stopping()) {
            b.pause = std::min<std::chrono::seconds>(
                std::max<std::chrono::seconds>(std::chrono::seconds(2), b.pause * 2),
                std::chrono::seconds(120));
            b.next_try = std::chrono::steady_clock::now() + b.pause;
          }
        }
      }
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(2), [this] { return stop_; });
    }
  }

  store::Archive& archive_;
  const int64_t snapshot_interval_s_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::thread thread_;
};

std::string StaleMountAdvice(const std::string& mountpoint) {
  return "run: medvfs umount " + mountpoint + " (or fusermount3 -u -z " + mountpoint +
         "), then mount again";
}

// A mount point whose daemon has died (killed, crashed, out of memory) answers every access
// with ENOTCONN until it is unmounted. When it is a medvfs mount whose daemon is really gone,
// it is detached here, so that mounting again after a crash needs no manual step; the archive
// itself recovers when it is opened (RocksDB replays its log). Returns true if it was cleared.
bool ClearStaleMount(const std::string& mountpoint) {
  std::optional<MountEntry> entry;
  for (const MountEntry& m : ReadMountInfo()) {
    if (m.mountpoint == stdfs::path(mountpoint)) entry = m;  // the last one is the top
  }
  if (!entry || entry->fstype != kMedvfsFsType) return false;
  // A daemon whose connection is gone is on its way out (just killed, still exiting): give it
  // a moment. One that stays alive without answering is left alone.
  if (const std::optional<pid_t> daemon = LiveDaemonPid(entry->source)) {
    if (!WaitForExit(*daemon, std::chrono::seconds(5))) return false;
  }
  if (!DetachMount(mountpoint)) return false;
  std::cerr << "medvfs: " << mountpoint
            << " was left mounted by a medvfs daemon that died; cleared it (the archive "
               "recovers its last committed state when it is opened)\n";
  return true;
}

// Checks the mount point before asking for a key.
void CheckMountpoint(const std::string& mountpoint, const stdfs::path& archive) {
  struct stat st {};
  if (stat(mountpoint.c_str(), &st) != 0 && errno == ENOTCONN && ClearStaleMount(mountpoint)) {
    errno = 0;
  }
  if (stat(mountpoint.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOTCONN) {
      Fail(mountpoint +
               " is a stale mount (transport endpoint is not connected): the daemon "
               "that served it has died",
           StaleMountAdvice(mountpoint));
    }
    if (err == ENOENT) Fail(mountpoint + " does not exist", "create it with mkdir first");
    Fail("cannot use " + mountpoint + ": " + std::strerror(err), "check the mount point");
  }
  if (!S_ISDIR(st.st_mode)) Fail(mountpoint + " is not a directory", "mount on a directory");
  for (const MountEntry& entry : ReadMountInfo()) {
    if (entry.fstype != kMedvfsFsType) continue;
    if (entry.mountpoint == stdfs::path(mountpoint)) {
      Fail(mountpoint + " already has a medvfs archive mounted",
           "unmount it first with: medvfs umount " + mountpoint);
    }
    if (stdfs::path(entry.source) == archive) {
      Fail(
          "the archive " + archive.string() + " is already mounted at " + entry.mountpoint.string(),
          "use that mount, or unmount it first with: medvfs umount " + entry.mountpoint.string());
    }
  }
}

MountPlan PlanMount(MountArgs& args) {
  MountPlan plan;
  for (const std::string& list : args.options) {
    const Status status = fs::ParseMountOptions(list, &plan.options);
    if (!status.ok()) Fail("bad mount option: " + status.message(), "see man medvfs-mount", 2);
  }
  if (args.accept_rollback) plan.options.accept_rollback = true;
  if (args.accept_wal_damage) plan.options.accept_wal_damage = true;
  if (args.accept_record_damage) plan.options.accept_record_damage = true;
  // -o key_file= / passphrase_file= (fstab) stand in for the command-line flags.
  if (args.key.key_file.empty()) args.key.key_file = plan.options.key_file;
  if (args.key.passphrase_file.empty()) args.key.passphrase_file = plan.options.passphrase_file;
  std::error_code ec;
  if (args.archive.starts_with("s3://")) {
    // A remote mount: read-only, from the bucket's latest snapshot, through a local cache.
    store::RemoteLocation location;
    location.url = args.archive;
    location.endpoint = plan.options.s3_endpoint.empty()
                            ? FirstEnv({"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"})
                            : plan.options.s3_endpoint;
    location.region = plan.options.s3_region.empty()
                          ? FirstEnv({"AWS_REGION", "AWS_DEFAULT_REGION"})
                          : plan.options.s3_region;
    if (location.region.empty()) location.region = "us-east-1";
    if (location.endpoint.empty()) {
      Fail("no S3 endpoint for " + args.archive, "give -o endpoint=URL or set AWS_ENDPOINT_URL", 2);
    }
    plan.options.read_only = true;
    plan.archive = plan.options.cache_dir.empty() ? DefaultRemoteCache(args.archive)
                                                  : stdfs::path(plan.options.cache_dir);
    stdfs::create_directories(plan.archive, ec);
    if (ec) Fail("cannot create the cache directory " + plan.archive.string(), ec.message());
    plan.remote = location;
  } else {
    plan.archive = stdfs::weakly_canonical(stdfs::absolute(args.archive), ec);
    if (ec) plan.archive = stdfs::absolute(args.archive).lexically_normal();
    if (!store::Archive::Exists(plan.archive)) {
      Fail(args.archive + " is not a medvfs archive",
           "create one with: medvfs init " + args.archive);
    }
  }
  stdfs::path mountpoint = stdfs::weakly_canonical(stdfs::absolute(args.mountpoint), ec);
  if (ec) mountpoint = stdfs::absolute(args.mountpoint).lexically_normal();
  plan.mountpoint = mountpoint.string();
  while (plan.mountpoint.size() > 1 && plan.mountpoint.back() == '/') plan.mountpoint.pop_back();
  CheckMountpoint(plan.mountpoint, plan.archive);
  return plan;
}

std::string OpenErrorLine(const Status& status, const MountPlan& plan) {
  if (plan.remote) {
    // The bucket's errors name the bucket, never the cache directory.
    if (status.code() == store::Code::kWrongKey) {
      return "the passphrase does not unlock the archive in " + plan.remote->url +
             "; give the passphrase the archive had when its remote was added or last synced";
    }
    return "cannot mount " + plan.remote->url + ": " + status.ToString();
  }
  switch (status.code()) {
    case store::Code::kWrongKey:
      return "the passphrase does not unlock this archive; check MEDVFS_PASSPHRASE, "
             "--passphrase-file or --key-file";
    case store::Code::kBusy: {
      const std::optional<pid_t> pid = LiveDaemonPid(plan.archive);
      return "the archive " + plan.archive.string() + " is in use by another process" +
             (pid ? " (pid " + std::to_string(*pid) + ")" : std::string()) +
             "; unmount it or stop that process first";
    }
    case store::Code::kRolledBack:
      return "the archive " + plan.archive.string() +
             " is older than the last state this host saw (a copy was put back over it); if "
             "that restore is deliberate, mount with --accept-rollback (-o accept_rollback)";
    case store::Code::kCorruption:
      if (status.message().find("write-ahead log") != std::string::npos) {
        return "cannot open the archive " + plan.archive.string() + ": " + status.message();
      }
      return "the archive " + plan.archive.string() +
             " failed its integrity check; run medvfs verify on it";
    default:
      return "cannot open the archive " + plan.archive.string() + ": " + status.ToString();
  }
}

// Opens the archive, retrying while a previous daemon still holds it.
store::StatusOr<std::unique_ptr<store::Archive>> OpenWithRetry(const MountPlan& plan,
                                                               const store::KeySource& key) {
  store::ArchiveOptions options;
  options.read_only = plan.options.read_only;  // the audit log is still appended
  options.high_water_dir = store::DefaultHighWaterDir();
  options.accept_rollback = plan.options.accept_rollback;
  options.accept_wal_damage = plan.options.accept_wal_damage;
  options.accept_record_damage = plan.options.accept_record_damage;
  if (plan.options.scratch_patterns) options.scratch_patterns = *plan.options.scratch_patterns;
  options.commit_interval_ms = plan.options.commit_interval_ms;
  options.local_packs = plan.options.local_packs;
  options.pack_bytes = plan.options.pack_bytes;
  if (plan.remote) {
    // The mirror of the bucket's latest snapshot, in the cache; its packs come from the bucket.
    // No high-water mark: the mirror is older than the archive it copies, by design.
    auto mirror = store::OpenRemoteMirror(*plan.remote, plan.archive, key);
    if (!mirror.ok()) return mirror.status();
    options.read_only = true;
    options.high_water_dir.clear();
    options.remote_packs = store::RemotePackReading{*plan.remote, plan.archive / "packs-cache",
                                                    plan.options.cache_bytes};
    MEDVFS_LOG_INFO("serving snapshot %llu of the remote",
                    static_cast<unsigned long long>(mirror->second));
    return store::Archive::Open(mirror->first, key, options);
  }
  options.remote_cache_bytes = plan.options.cache_bytes;
  const auto deadline = std::chrono::steady_clock::now() + kBusyRetry;
  while (true) {
    auto opened = store::Archive::Open(plan.archive, key, options);
    if (opened.ok() || opened.status().code() != store::Code::kBusy ||
        std::chrono::steady_clock::now() >= deadline) {
      return opened;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void WritePidFile(const stdfs::path& archive) {
  const stdfs::path path = PidFilePath(archive);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    MEDVFS_LOG_WARNING("cannot write the pid file: %s", std::strerror(errno));
    return;
  }
  fchmod(fd, 0600);
  const std::string text = std::to_string(getpid()) + "\n";
  if (!store::WriteAll(fd, text)) {
    MEDVFS_LOG_WARNING("cannot write the pid file: %s", std::strerror(errno));
  }
  close(fd);
}

void RemovePidFile(const stdfs::path& archive) {
  const stdfs::path path = PidFilePath(archive);
  const std::optional<pid_t> pid = LiveDaemonPid(archive);
  if (pid && *pid == getpid()) unlink(path.c_str());
}

// Records a mount or unmount with the daemon as caller. An audit failure is logged, never fatal.
void RecordSessionEvent(store::Archive& archive, store::AuditOp op, std::string detail) {
  store::AuditEvent event;
  event.op = op;
  event.uid = getuid();
  event.gid = getgid();
  event.pid = static_cast<uint32_t>(getpid());
  event.program = "medvfs";
  event.path = "/";
  event.detail = std::move(detail);
  const Status status = archive.RecordAudit(event);
  if (!status.ok()) {
    MEDVFS_LOG_ERROR("could not record the %s in the audit log: %s",
                     std::string(store::AuditOpName(op)).c_str(), status.ToString().c_str());
  }
}

// The options a mount records: what libfuse got, minus the archive path (fsname=), plus ours.
std::string MountDetail(const MountPlan& plan) {
  std::string detail = plan.options.read_only ? "ro" : "rw";
  if (plan.remote) detail += ",remote=" + plan.remote->url;
  if (plan.options.local_packs > 0) {
    detail += ",local_packs=" + std::to_string(plan.options.local_packs);
  }
  if (plan.options.allow_other) detail += ",allow_other";
  if (plan.options.versions_visible) detail += ",versions=visible";
  if (plan.options.accept_rollback) detail += ",accept_rollback";
  if (plan.options.accept_wal_damage) detail += ",accept_wal_damage";
  if (plan.options.accept_record_damage) detail += ",accept_record_damage";
  if (!plan.options.read_only) {
    detail += ",commit=" + fs::FormatCommitInterval(plan.options.commit_interval_ms);
  }
  for (const std::string& option : plan.options.fuse_options) detail += "," + option;
  return detail;
}

// RocksDB allocates its memtables in 4 MiB blocks and frees them after each flush; glibc would
// return them to the kernel (mmap'd or trimmed) and fault every page in again for the next
// memtable, which costs more than the copy itself in a virtual machine (~12% of the write
// throughput measured by bench/run). So blocks come from the heap and up to 32 MiB of free heap
// is kept (one memtable's worth). Two arenas at most: glibc gives each thread that allocates
// its own arena (FUSE workers, read-ahead, RocksDB), and every arena keeps its own free memory,
// which took the daemon past its 256 MiB budget after a few GiB of mixed work.
void TuneMallocForTheDaemon() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
  mallopt(M_ARENA_MAX, 2);
}

// Opens, mounts and serves. `report` is called once, with "" when the mount is ready or with a
// one-line error. Returns the exit code.
template <typename Report>
int Serve(const MountPlan& plan, const store::KeySource& key, Report&& report) {
  TuneMallocForTheDaemon();
  auto archive = OpenWithRetry(plan, key);
  if (!archive.ok()) {
    report(OpenErrorLine(archive.status(), plan));
    return kExitFailure;
  }
  fs::FsConfig config;
  config.read_only = plan.options.read_only;
  config.versions_visible = plan.options.versions_visible;
  config.audit_failure_allow = plan.options.audit_failure_allow;
  // allow_other: the daemon checks permissions again after the kernel, and audits what it
  // refuses (fs/access.h).
  config.check_permissions = plan.options.allow_other;
  const std::string fuse_options = fs::FuseOptionString(plan.options, plan.archive.string());
  auto session = fs::MountedSession::Mount(**archive, config, fuse_options, plan.mountpoint);
  if (!session.ok()) {
    if (session.status().code() == store::Code::kInvalid) {
      report("bad mount option (" + session.status().message() + "); see man medvfs-mount");
    } else {
      report("cannot mount at " + plan.mountpoint + ": " + session.status().message());
    }
    return kExitFailure;
  }
  WritePidFile(plan.archive);
  // ARCHIVE/medvfs.sock: medvfs backup while mounted (tools/control_socket.h).
  // Lifecycle requests (prune, purge) change the archive beside the FUSE requests: the mount
  // drops what it caches of them.
  fs::Filesystem& filesystem = (*session)->filesystem();
  ChangeNotifier notifier;
  notifier.begin = [&filesystem] { filesystem.BeginChange(); };
  notifier.end = [&filesystem](const std::string& unlinked_path) {
    filesystem.EndChange();
    if (!unlinked_path.empty()) filesystem.InvalidateUnlinkedOutside(unlinked_path);
  };
  std::unique_ptr<ControlServer> control =
      StartControlServerOrLog(plan.archive, **archive, std::move(notifier));
  std::unique_ptr<ReplicationLoop> replication;
  if (!plan.options.read_only && plan.options.replicate) {
    replication = std::make_unique<ReplicationLoop>(**archive, plan.options.snapshot_interval_s);
  }
  RecordSessionEvent(**archive, store::AuditOp::kMount, MountDetail(plan));
  report("");
  const Status served = (*session)->Run();
  replication.reset();  // stops between two uploads; the queue resumes at the next mount
  // The control server first: its change notifier refers to the session's file system.
  control.reset();   // stops a running backup and removes the socket
  session->reset();  // unmounts (if still mounted) before the archive closes
  RecordSessionEvent(**archive, store::AuditOp::kUnmount, std::string());
  archive->reset();  // closes RocksDB cleanly
  RemovePidFile(plan.archive);
  if (!served.ok()) {
    MEDVFS_LOG_ERROR("the FUSE session ended with an error: %s", served.ToString().c_str());
    return kExitFailure;
  }
  return 0;
}

[[noreturn]] void RunDaemon(const MountPlan& plan, const store::KeySource& key, int report_fd) {
  setsid();
  store::SetLogSink(store::LogSink::kSyslog);
  if (chdir("/") != 0) {
    // Not fatal: every path in the plan is absolute.
  }
  const int code = Serve(plan, key, [report_fd](const std::string& error) {
    const std::string line = (error.empty() ? std::string(kReadyMessage) : error) + "\n";
    if (!store::WriteAll(report_fd, line)) {
      // The parent is gone; nothing to tell.
    }
    close(report_fd);
    // From now on, nothing may write to the terminal we were started from.
    const int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0) {
      dup2(null_fd, STDIN_FILENO);
      dup2(null_fd, STDOUT_FILENO);
      dup2(null_fd, STDERR_FILENO);
      close(null_fd);
    }
  });
  _exit(code);
}

// The number of threads of this process (entries of /proc/self/task), 0 if unknown.
int ThreadCount() {
  std::error_code ec;
  int count = 0;
  for (stdfs::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++count;
  }
  return ec ? 0 : count;
}

// Waits for the daemon's one-line report; returns it ("" on EOF without a report).
std::string ReadReport(int fd) {
  std::string text;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kReportTimeoutMs);
  while (text.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "timeout";
    pollfd pfd{fd, POLLIN, 0};
    const int rc = poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return "timeout";
    char buf[512];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text.substr(0, text.find('\n'));
}

void RunMount(MountArgs& args) {
  const MountPlan plan = PlanMount(args);
  store::StatusOr<store::KeySource> key = ReadKey(args.key, /*confirm=*/false);
  if (!key.ok()) FailMessage(key.status().message());

  if (args.foreground) {
    store::SetLogSink(store::LogSink::kStderr);
    std::string error;
    const int code = Serve(plan, *key, [&error](const std::string& e) { error = e; });
    if (!error.empty()) FailMessage(error);
    if (code != 0) throw CLI::RuntimeError(code);
    return;
  }

  // The daemon is this process forked, and the child goes on without exec: it opens the
  // archive, mounts and serves. That is safe only because no thread exists yet: everything
  // above (option parsing, the mount point checks, a possible fusermount3 run through
  // posix_spawn, reading the key) runs on the main thread, and RocksDB, libfuse and the control
  // socket start theirs in the child, after the fork. A thread started here would leave its
  // locks (malloc's, RocksDB's) held forever in the child, so this is checked, not assumed.
  if (const int threads = ThreadCount(); threads > 1) {
    Fail("internal error: " + std::to_string(threads) + " threads before the daemon fork",
         "mount with -f and report this");
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) Fail("cannot create a pipe", std::strerror(errno));
  std::cout.flush();
  std::cerr.flush();
  const pid_t child = fork();
  if (child < 0) Fail("cannot fork the daemon", std::strerror(errno));
  if (child == 0) {
    close(fds[0]);
    RunDaemon(plan, *key, fds[1]);
  }
  close(fds[1]);
  const std::string report = ReadReport(fds[0]);
  close(fds[0]);
  if (report == kReadyMessage) return;
  if (report == "timeout") {
    Fail("the daemon (pid " + std::to_string(child) + ") did not report within 120 s",
         "see the system log (journalctl -t medvfs)");
  }
  if (report.empty()) {
    Fail("the daemon exited without reporting", "see the system log (journalctl -t medvfs)");
  }
  FailMessage(report);
}

}  // namespace

void RegisterMountCommand(CLI::App& app) {
  auto args = std::make_shared<MountArgs>();
  CLI::App* command = app.add_subcommand("mount", "Mount an archive as a file system");
  command
      ->add_option("ARCHIVE", args->archive,
                   "The archive directory, or s3://BUCKET[/PREFIX] for a read-only mount of an "
                   "S3 remote's latest snapshot")
      ->required();
  command->add_option("MOUNTPOINT", args->mountpoint, "An existing directory")->required();
  command->add_flag("-f,--foreground", args->foreground,
                    "Stay in the foreground and log to stderr (until unmounted or Ctrl-C)");
  command
      ->add_option("-o", args->options,
                   "Mount options, comma-separated: ro, allow_other, versions=visible, "
                   "accept_rollback, accept_wal_damage, accept_record_damage, commit=SECONDS, "
                   "passphrase_file=F, key_file=F, pack_size=N, local_packs=N, "
                   "snapshot_interval=SECONDS, replicate=on|off, endpoint=URL, region=R, "
                   "cache=DIR, cache_size=N, and FUSE options")
      ->allow_extra_args(false)
      ->type_name("OPT[,OPT...]");
  command->add_flag("--accept-rollback", args->accept_rollback,
                    "Mount an archive older than the last state this host saw (a deliberate "
                    "restore from a backup); recorded in the audit log");
  command->add_flag("--accept-wal-damage", args->accept_wal_damage,
                    "Mount an archive whose write-ahead log is damaged, keeping what precedes "
                    "the damage and losing the rest for good; recorded in the audit log");
  command->add_flag("--accept-record-damage", args->accept_record_damage,
                    "Mount an archive whose records were altered outside medvfs (they do not "
                    "add up to its state digest), serving them as they are; recorded in the "
                    "audit log");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunMount(*args); });
}

void RegisterMountCommands(CLI::App& app) {
  RegisterMountCommand(app);
  RegisterUmountCommand(app);  // tools/cmd_umount.cc
}

}  // namespace medvfs::tools
