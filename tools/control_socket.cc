#include "tools/control_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <list>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/bytes.h"
#include "store/log.h"

namespace medvfs::tools {
namespace stdfs = std::filesystem;
using store::Code;
using store::Status;

namespace {

constexpr char kSocketName[] = "medvfs.sock";
// How long the daemon waits for a request line, and for a client to take a reply.
constexpr int kRequestTimeoutMs = 5000;
constexpr int kSendTimeoutS = 10;
constexpr size_t kMaxLine = 8192;
// Text that is not UTF-8 (a file name, say) goes out with U+FFFD instead of failing the dump.
constexpr auto kJsonReplace = nlohmann::json::error_handler_t::replace;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  // Gives up ownership.
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// The address of dir/medvfs.sock: the path itself when it fits in sun_path, else the same
// file reached through /proc/self/fd/N of `dir_fd` (an O_PATH descriptor of dir).
bool MakeAddress(const stdfs::path& dir, int dir_fd, sockaddr_un* addr, socklen_t* length) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  std::string path = (dir / kSocketName).string();
  if (path.size() >= sizeof(addr->sun_path)) {
    path = "/proc/self/fd/" + std::to_string(dir_fd) + "/" + kSocketName;
  }
  if (path.size() >= sizeof(addr->sun_path)) return false;
  std::memcpy(addr->sun_path, path.data(), path.size());
  *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

bool SendLine(int fd, const std::string& line) {
  std::string_view data = line;
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// No tab or line break may reach a field.
std::string Field(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

std::vector<std::string_view> SplitTabs(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
    if (tab == std::string_view::npos) return fields;
    start = tab + 1;
  }
}

template <typename T>
bool ParseNumber(std::string_view text, T* value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

// A GcResult as the tab-separated numbers of an "ok" line, and back.
std::string EncodeGcResult(const store::GcResult& r) {
  const uint64_t fields[] = {static_cast<uint64_t>(r.time_ns),
                             static_cast<uint64_t>(r.duration_ms),
                             r.dry_run ? 1u : 0u,
                             r.cancelled ? 1u : 0u,
                             r.chunks_indexed,
                             r.chunks_dropped,
                             r.bytes_dropped,
                             r.dropped_extent_groups,
                             r.packs,
                             r.packs_removed,
                             r.packs_skipped,
                             r.bytes_copied,
                             r.bytes_freed};
  std::string out;
  for (uint64_t field : fields) {
    if (!out.empty()) out += '\t';
    out += std::to_string(field);
  }
  return out;
}

bool DecodeGcResult(std::span<const std::string_view> f, store::GcResult* r) {
  uint64_t v[13];
  if (f.size() != std::size(v)) return false;
  for (size_t i = 0; i < std::size(v); ++i) {
    if (!ParseNumber(f[i], &v[i])) return false;
  }
  r->time_ns = static_cast<int64_t>(v[0]);
  r->duration_ms = static_cast<int64_t>(v[1]);
  r->dry_run = v[2] != 0;
  r->cancelled = v[3] != 0;
  r->chunks_indexed = v[4];
  r->chunks_dropped = v[5];
  r->bytes_dropped = v[6];
  r->dropped_extent_groups = v[7];
  r->packs = v[8];
  r->packs_removed = v[9];
  r->packs_skipped = v[10];
  r->bytes_copied = v[11];
  r->bytes_freed = v[12];
  return true;
}

std::string ProcessName(pid_t pid) {
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

}  // namespace

stdfs::path ControlSocketPath(const stdfs::path& archive) { return archive / kSocketName; }

// --- the server ----------------------------------------------------------------------------

struct ControlServer::State {
  store::Archive* archive = nullptr;
  ChangeNotifier notifier;
  stdfs::path archive_dir;
  Fd dir_fd;     // O_PATH descriptor of the archive directory
  Fd listen_fd;  // the listening socket
  Fd wake_fd;    // an eventfd, readable once Stop() was called
  ino_t socket_ino = 0;
  std::atomic<bool> stopping{false};
  std::thread acceptor;
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex mu;              // Lock order: a leaf.
  std::list<Worker> workers;  // GUARDED_BY(mu)
  bool stopped = false;       // GUARDED_BY(mu)

  void AcceptLoop();
  void Serve(int fd, const ucred& peer);
  void ServeBackup(int fd, const store::Caller& caller, const stdfs::path& dest, uint32_t keep);
  void ServeDeidMap(int fd, const store::Caller& caller, const std::string& prefix);
  void ServeGc(int fd, const store::Caller& caller, const store::GcRequest& request);
  void ServeLifecycle(int fd, const store::Caller& caller, std::string_view request);
  // Refuses (replies, records `refused` as failed) a peer that is neither root nor the
  // daemon's user; returns whether it did.
  bool RefuseForeignPeer(int fd, const store::Caller& caller, store::AuditEvent refused);
  // Reads one request line (without its '\n'); false on timeout, EOF, Stop or a long line.
  bool ReadRequest(int fd, std::string* line);
  void ReapWorkers();
};

void ControlServer::State::ReapWorkers() {
  std::lock_guard lock(mu);
  for (auto it = workers.begin(); it != workers.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = workers.erase(it);
    } else {
      ++it;
    }
  }
}

void ControlServer::State::AcceptLoop() {
  while (!stopping.load()) {
    pollfd fds[2] = {{listen_fd.get(), POLLIN, 0}, {wake_fd.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      MEDVFS_LOG_ERROR("control socket: poll failed (errno %d); online backups stop", errno);
      return;
    }
    if (fds[1].revents != 0 || stopping.load()) return;
    const int fd = ::accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) ::poll(nullptr, 0, 100);
      continue;
    }
    ucred peer{};
    socklen_t length = sizeof(peer);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) {
      ::close(fd);
      continue;
    }
    const timeval send_timeout{kSendTimeoutS, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
    ReapWorkers();
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard lock(mu);
    workers.push_back({std::thread([this, fd, peer, done] {
                         Serve(fd, peer);
                         ::close(fd);
                         done->store(true);
                       }),
                       done});
  }
}

bool ControlServer::State::ReadRequest(int fd, std::string* line) {
  char buf[512];
  int waited_ms = 0;
  while (line->find('\n') == std::string::npos) {
    if (line->size() > kMaxLine || waited_ms >= kRequestTimeoutMs) return false;
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd.get(), POLLIN, 0}};
    const int rc = ::poll(fds, 2, 250);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || fds[1].revents != 0) return false;
    if (rc == 0) {
      waited_ms += 250;
      continue;
    }
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    line->append(buf, static_cast<size_t>(n));
  }
  line->resize(line->find('\n'));
  return true;
}

namespace {

void ReplyError(int fd, const Status& status) {
  SendLine(fd, "error\t" + std::to_string(static_cast<int>(status.code())) + "\t" +
                   Field(status.message()) + "\n");
}

store::Caller CallerOf(const ucred& peer) {
  store::Caller caller;
  caller.uid = peer.uid;
  caller.gid = peer.gid;
  caller.pid = static_cast<uint32_t>(peer.pid);
  caller.program = ProcessName(peer.pid);
  return caller;
}

store::AuditEvent EventOf(const store::Caller& caller, store::AuditOp op, std::string detail) {
  store::AuditEvent event;
  event.uid = caller.uid;
  event.gid = caller.gid;
  event.pid = caller.pid;
  event.program = caller.program;
  event.op = op;
  event.path = "/";
  event.detail = std::move(detail);
  return event;
}

}  // namespace

void ControlServer::State::Serve(int fd, const ucred& peer) {
  std::string line;
  if (!ReadRequest(fd, &line)) return;
  const std::vector<std::string_view> fields = SplitTabs(line);
  const store::Caller caller = CallerOf(peer);
  if (fields.size() == 3 && fields[0] == "backup" && !fields[1].empty() && fields[1][0] == '/') {
    uint32_t keep = 0;
    if (ParseNumber(fields[2], &keep)) return ServeBackup(fd, caller, stdfs::path(fields[1]), keep);
  }
  if (fields.size() == 2 && fields[0] == "deid-map") {
    return ServeDeidMap(fd, caller, std::string(fields[1]));
  }
  if (fields.size() == 4 && fields[0] == "gc") {
    store::GcRequest request;
    uint32_t dry_run = 0;
    if (ParseNumber(fields[1], &dry_run) && dry_run <= 1 &&
        ParseNumber(fields[2], &request.repack_garbage_percent) &&
        request.repack_garbage_percent <= 100 &&
        ParseNumber(fields[3], &request.rate_bytes_per_s)) {
      request.dry_run = dry_run == 1;
      return ServeGc(fd, caller, request);
    }
  }
  if (fields.size() == 2 && fields[0] == "lifecycle") return ServeLifecycle(fd, caller, fields[1]);
  ReplyError(fd, Status::Invalid("malformed request on the control socket"));
}

bool ControlServer::State::RefuseForeignPeer(int fd, const store::Caller& caller,
                                             store::AuditEvent refused) {
  if (caller.uid == 0 || caller.uid == ::geteuid()) return false;
  // Only reachable if someone opened up the archive directory; refused and recorded.
  refused.result = EACCES;
  refused.detail += ": refused on the control socket";
  archive->RecordAudit(refused).IgnoreError();
  archive->SyncAll().IgnoreError();
  ReplyError(fd, Status(Code::kPermission,
                        "only root and the user who mounted the archive may use its control "
                        "socket"));
  return true;
}

void ControlServer::State::ServeBackup(int fd, const store::Caller& caller, const stdfs::path& dest,
                                       uint32_t keep) {
  if (RefuseForeignPeer(fd, caller,
                        EventOf(caller, store::AuditOp::kBackup, "to " + dest.string()))) {
    return;
  }
  std::atomic<bool> client_gone{false};
  store::BackupRequest request;
  request.keep = keep;
  request.progress = [fd, &client_gone](uint64_t bytes) {
    if (!SendLine(fd, "progress\t" + std::to_string(bytes) + "\n")) client_gone = true;
  };
  request.cancelled = [this, &client_gone] { return stopping.load() || client_gone.load(); };
  MEDVFS_LOG_INFO("backup requested on the control socket by uid %u pid %u", caller.uid,
                  caller.pid);
  auto result = archive->Backup(dest, request, caller);
  if (!result.ok()) {
    MEDVFS_LOG_WARNING("backup failed: %s", result.status().ToString().c_str());
    Status status = result.status();
    if (status.code() == Code::kBusy && stopping.load()) {
      status = Status(Code::kBusy, "the archive is being unmounted; the backup was stopped");
    }
    return ReplyError(fd, status);
  }
  SendLine(fd, "ok\t" + std::to_string(result->id) + "\t" + std::to_string(result->new_bytes) +
                   "\t" + std::to_string(result->size) + "\t" + std::to_string(result->files) +
                   "\t" + std::to_string(result->time_s) + "\n");
}

void ControlServer::State::ServeDeidMap(int fd, const store::Caller& caller,
                                        const std::string& prefix) {
  store::AuditEvent event = EventOf(caller, store::AuditOp::kCliRead, "deid-map");
  if (RefuseForeignPeer(fd, caller, event)) return;
  store::DeidConfig config;
  config.pseudonym_prefix = prefix;
  // Recorded and synced before any identity leaves the daemon.
  Status recorded = archive->RecordAudit(event);
  if (recorded.ok()) recorded = archive->SyncAll();
  if (!recorded.ok()) return ReplyError(fd, recorded);
  MEDVFS_LOG_INFO("deid-map requested on the control socket by uid %u pid %u", caller.uid,
                  caller.pid);
  auto entries = store::BuildDeidMap(*archive, *archive->NewDeidentifier(config));
  if (!entries.ok()) return ReplyError(fd, entries.status());
  for (const store::PseudonymEntry& entry : *entries) {
    const std::span<const uint8_t> id(reinterpret_cast<const uint8_t*>(entry.patient_id.data()),
                                      entry.patient_id.size());
    if (!SendLine(fd, "entry\t" + entry.pseudonym + "\t" + store::HexEncode(id) + "\t" +
                          std::to_string(entry.versions) + "\n")) {
      return;
    }
  }
  SendLine(fd, "ok\t" + std::to_string(entries->size()) + "\n");
}

void ControlServer::State::ServeGc(int fd, const store::Caller& caller,
                                   const store::GcRequest& gc_request) {
  if (RefuseForeignPeer(fd, caller, EventOf(caller, store::AuditOp::kGc, "gc"))) return;
  std::atomic<bool> client_gone{false};
  store::GcRequest request = gc_request;
  request.progress = [fd, &client_gone](std::string_view phase, uint64_t done, uint64_t total) {
    if (!SendLine(fd, "progress\t" + std::string(phase) + "\t" + std::to_string(done) + "\t" +
                          std::to_string(total) + "\n")) {
      client_gone = true;
    }
  };
  request.cancelled = [this, &client_gone] { return stopping.load() || client_gone.load(); };
  MEDVFS_LOG_INFO("garbage collection requested on the control socket by uid %u pid %u", caller.uid,
                  caller.pid);
  auto result = archive->CollectGarbage(request, caller);
  if (!result.ok()) {
    MEDVFS_LOG_WARNING("garbage collection failed: %s", result.status().ToString().c_str());
    return ReplyError(fd, result.status());
  }
  SendLine(fd, "ok\t" + EncodeGcResult(*result) + "\n");
}

void ControlServer::State::ServeLifecycle(int fd, const store::Caller& caller,
                                          std::string_view request_text) {
  const nlohmann::json request = nlohmann::json::parse(request_text, nullptr, false);
  const std::string op = request.is_object() && request.contains("op") && request["op"].is_string()
                             ? request["op"].get<std::string>()
                             : std::string("lifecycle");
  if (RefuseForeignPeer(fd, caller, EventOf(caller, store::AuditOp::kCliRead, op))) return;
  if (request.is_discarded()) return ReplyError(fd, Status::Invalid("malformed lifecycle request"));
  MEDVFS_LOG_INFO("%s requested on the control socket by uid %u pid %u", op.c_str(), caller.uid,
                  caller.pid);
  // The S3 remote requests change no file, version or name: the mount's caches stay valid
  // (and a replication round, which talks to the network, keeps no change pending meanwhile).
  const bool writes = LifecycleRequestWrites(request) && !op.starts_with("remote");
  if (writes && notifier.begin) notifier.begin();
  auto answer = ExecuteLifecycle(*archive, request, caller);
  if (writes && notifier.end) {
    const bool unlinked = answer.ok() && answer->summary.value("unlinked", false);
    notifier.end(unlinked ? answer->summary.value("path", std::string()) : std::string());
  }
  if (!answer.ok()) return ReplyError(fd, answer.status());
  // dump() escapes line breaks and tabs inside strings: one JSON value per line.
  for (const nlohmann::json& item : answer->items) {
    if (!SendLine(fd, "item\t" + item.dump(-1, ' ', false, kJsonReplace) + "\n")) return;
  }
  SendLine(fd, "ok\t" + answer->summary.dump(-1, ' ', false, kJsonReplace) + "\n");
}

ControlServer::ControlServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

ControlServer::~ControlServer() { Stop(); }

store::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(const stdfs::path& archive_dir,
                                                                     store::Archive& archive,
                                                                     ChangeNotifier notifier) {
  auto state = std::make_unique<State>();
  state->archive = &archive;
  state->notifier = std::move(notifier);
  state->archive_dir = archive_dir;
  state->dir_fd.Reset(::open(archive_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (state->dir_fd.get() < 0) return store::StatusFromErrno(errno, "the archive directory");
  sockaddr_un addr{};
  socklen_t length = 0;
  if (!MakeAddress(archive_dir, state->dir_fd.get(), &addr, &length)) {
    return Status(Code::kNameTooLong, "the control socket's path is too long");
  }
  state->wake_fd.Reset(::eventfd(0, EFD_CLOEXEC));
  state->listen_fd.Reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (state->wake_fd.get() < 0 || state->listen_fd.get() < 0) {
    return store::StatusFromErrno(errno, "creating the control socket");
  }
  // The archive is open here, with its database lock: a socket file left behind is stale.
  if (::unlinkat(state->dir_fd.get(), kSocketName, 0) != 0 && errno != ENOENT) {
    return store::StatusFromErrno(errno, "removing a stale control socket");
  }
  if (::bind(state->listen_fd.get(), reinterpret_cast<const sockaddr*>(&addr), length) != 0) {
    return store::StatusFromErrno(errno, "binding the control socket");
  }
  struct stat st {};
  if (::fchmodat(state->dir_fd.get(), kSocketName, 0600, 0) != 0 ||
      ::fstatat(state->dir_fd.get(), kSocketName, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    const Status failed = store::StatusFromErrno(errno, "securing the control socket");
    ::unlinkat(state->dir_fd.get(), kSocketName, 0);
    return failed;
  }
  state->socket_ino = st.st_ino;
  if (::listen(state->listen_fd.get(), 8) != 0) {
    const Status failed = store::StatusFromErrno(errno, "listening on the control socket");
    ::unlinkat(state->dir_fd.get(), kSocketName, 0);
    return failed;
  }
  State* raw = state.get();
  state->acceptor = std::thread([raw] { raw->AcceptLoop(); });
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(state)));
}

void ControlServer::Stop() {
  State& s = *state_;
  {
    std::lock_guard lock(s.mu);
    if (s.stopped) return;
    s.stopped = true;
  }
  s.stopping = true;
  const uint64_t one = 1;
  if (::write(s.wake_fd.get(), &one, sizeof(one)) < 0) {
    // An eventfd write fails only on overflow; the flag alone stops the threads then.
  }
  if (s.acceptor.joinable()) s.acceptor.join();
  std::list<State::Worker> workers;
  {
    std::lock_guard lock(s.mu);
    workers.swap(s.workers);
  }
  for (auto& worker : workers) worker.thread.join();
  s.listen_fd.Reset();
  struct stat st {};
  if (::fstatat(s.dir_fd.get(), kSocketName, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      st.st_ino == s.socket_ino) {
    ::unlinkat(s.dir_fd.get(), kSocketName, 0);
  }
}

std::unique_ptr<ControlServer> StartControlServerOrLog(const stdfs::path& archive_dir,
                                                       store::Archive& archive,
                                                       ChangeNotifier notifier) {
  auto server = ControlServer::Start(archive_dir, archive, std::move(notifier));
  if (!server.ok()) {
    MEDVFS_LOG_WARNING("no control socket (%s): medvfs backup cannot back up while mounted",
                       server.status().ToString().c_str());
    return nullptr;
  }
  return std::move(server).value();
}

// --- the client ----------------------------------------------------------------------------

namespace {

// Connects to the daemon's control socket of `archive_dir`.
store::StatusOr<int> ConnectControlSocket(const stdfs::path& archive_dir) {
  Fd dir_fd(::open(archive_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return store::StatusFromErrno(errno, "the archive directory");
  sockaddr_un addr{};
  socklen_t length = 0;
  if (!MakeAddress(archive_dir, dir_fd.get(), &addr, &length)) {
    return Status(Code::kNameTooLong, "the control socket's path is too long");
  }
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return store::StatusFromErrno(errno, "creating a socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), length) != 0) {
    if (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTSOCK) {
      return Status::NotFound("no mount daemon listens on the archive's control socket");
    }
    if (errno == EACCES || errno == EPERM) {
      return Status(Code::kPermission, "the archive's control socket may not be used by this user");
    }
    return store::StatusFromErrno(errno, "connecting to the archive's control socket");
  }
  return fd.Release();
}

// Sends `request` and gives each reply line's fields to `on_line` until it returns a status
// (the answer) or the daemon's "error" line ends the exchange.
Status Exchange(
    const stdfs::path& archive_dir, const std::string& request,
    const std::function<std::optional<Status>(const std::vector<std::string_view>&)>& on_line) {
  store::StatusOr<int> connected = ConnectControlSocket(archive_dir);
  if (!connected.ok()) return connected.status();
  Fd fd(*connected);
  if (!SendLine(fd.get(), request)) {
    return store::StatusFromErrno(errno, "sending the request to the mount daemon");
  }
  std::string buffer;
  char chunk[4096];
  while (true) {
    for (size_t newline = buffer.find('\n'); newline != std::string::npos;
         newline = buffer.find('\n')) {
      const std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      const std::vector<std::string_view> f = SplitTabs(line);
      if (f.size() == 3 && f[0] == "error") {
        int code = 0;
        if (!ParseNumber(f[1], &code) || code <= 0 || code > static_cast<int>(Code::kRolledBack)) {
          code = static_cast<int>(Code::kIoError);
        }
        return Status(static_cast<Code>(code), std::string(f[2]));
      }
      if (std::optional<Status> answer = on_line(f)) return *answer;
    }
    const ssize_t n = ::read(fd.get(), chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || buffer.size() > kMaxLine) {
      return Status::IoError(
          "the mount daemon closed the connection before answering (see the system log)");
    }
    buffer.append(chunk, static_cast<size_t>(n));
  }
}

const Status kMalformedAnswer = Status::IoError("the mount daemon's answer is malformed");

}  // namespace

store::StatusOr<RemoteBackup> RequestBackup(const stdfs::path& archive_dir, const stdfs::path& dest,
                                            uint32_t keep,
                                            const std::function<void(uint64_t)>& progress) {
  const std::string dest_text = dest.string();
  if (dest_text.find_first_of("\t\n\r") != std::string::npos || !dest.is_absolute()) {
    return Status::Invalid(
        "the backup directory's path must be absolute, without tabs or "
        "line breaks");
  }
  RemoteBackup out;
  Status status =
      Exchange(archive_dir, "backup\t" + dest_text + "\t" + std::to_string(keep) + "\n",
               [&](const std::vector<std::string_view>& f) -> std::optional<Status> {
                 uint64_t bytes = 0;
                 if (f.size() == 2 && f[0] == "progress" && ParseNumber(f[1], &bytes)) {
                   if (progress) progress(bytes);
                   return std::nullopt;
                 }
                 if (f.size() == 6 && f[0] == "ok" && ParseNumber(f[1], &out.id) &&
                     ParseNumber(f[2], &out.new_bytes) && ParseNumber(f[3], &out.size) &&
                     ParseNumber(f[4], &out.files) && ParseNumber(f[5], &out.time_s)) {
                   return Status::Ok();
                 }
                 return kMalformedAnswer;
               });
  if (!status.ok()) return status;
  return out;
}

store::StatusOr<store::GcResult> RequestGc(
    const stdfs::path& archive_dir, const store::GcRequest& request,
    const std::function<void(std::string_view phase, uint64_t done, uint64_t total)>& progress) {
  store::GcResult out;
  Status status =
      Exchange(archive_dir,
               "gc\t" + std::string(request.dry_run ? "1" : "0") + "\t" +
                   std::to_string(request.repack_garbage_percent) + "\t" +
                   std::to_string(request.rate_bytes_per_s) + "\n",
               [&](const std::vector<std::string_view>& f) -> std::optional<Status> {
                 uint64_t done = 0;
                 uint64_t total = 0;
                 if (f.size() == 4 && f[0] == "progress" && ParseNumber(f[2], &done) &&
                     ParseNumber(f[3], &total)) {
                   if (progress) progress(f[1], done, total);
                   return std::nullopt;
                 }
                 if (f.size() >= 2 && f[0] == "ok" &&
                     DecodeGcResult(std::span<const std::string_view>(f).subspan(1), &out)) {
                   return Status::Ok();
                 }
                 return kMalformedAnswer;
               });
  if (!status.ok()) return status;
  return out;
}

store::StatusOr<LifecycleAnswer> RequestLifecycle(const stdfs::path& archive_dir,
                                                  const nlohmann::json& request) {
  LifecycleAnswer answer;
  Status status =
      Exchange(archive_dir, "lifecycle\t" + request.dump(-1, ' ', false, kJsonReplace) + "\n",
               [&](const std::vector<std::string_view>& f) -> std::optional<Status> {
                 if (f.size() != 2 || (f[0] != "item" && f[0] != "ok")) return kMalformedAnswer;
                 nlohmann::json value = nlohmann::json::parse(f[1], nullptr, false);
                 if (value.is_discarded()) return kMalformedAnswer;
                 if (f[0] == "item") {
                   answer.items.push_back(std::move(value));
                   return std::nullopt;
                 }
                 answer.summary = std::move(value);
                 return Status::Ok();
               });
  if (!status.ok()) return status;
  return answer;
}

store::StatusOr<std::vector<store::PseudonymEntry>> RequestDeidMap(const stdfs::path& archive_dir,
                                                                   const std::string& prefix) {
  if (prefix.find_first_of("\t\n\r") != std::string::npos) {
    return Status::Invalid("the pseudonym prefix may not hold tabs or line breaks");
  }
  std::vector<store::PseudonymEntry> entries;
  Status status =
      Exchange(archive_dir, "deid-map\t" + prefix + "\n",
               [&](const std::vector<std::string_view>& f) -> std::optional<Status> {
                 if (f.size() == 2 && f[0] == "ok") return Status::Ok();
                 store::PseudonymEntry entry;
                 if (f.size() != 4 || f[0] != "entry" || !ParseNumber(f[3], &entry.versions)) {
                   return kMalformedAnswer;
                 }
                 store::StatusOr<std::string> id = store::HexDecode(f[2]);
                 if (!id.ok()) return kMalformedAnswer;
                 entry.pseudonym = std::string(f[1]);
                 entry.patient_id = std::move(id).value();
                 entries.push_back(std::move(entry));
                 return std::nullopt;
               });
  if (!status.ok()) return status;
  return entries;
}

}  // namespace medvfs::tools
