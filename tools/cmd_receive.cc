// medvfs receive ARCHIVE|MOUNTPOINT --aet AET --port N: a DICOM C-STORE SCP that stores every
// received instance, bit-preserving, as a new version of a file whose path comes from a
// template over its tags (tools/dicom_receiver.h; man/medvfs-receive.1).
//
// Two sinks: an unmounted archive is opened with the user's key and written through the
// store::Archive API (the versions and audit entries name the peer's AE title as the program);
// a mounted one (also when ARCHIVE is given but mounted here) is written with ordinary POSIX
// calls through the mount, whose daemon records the versions and the audit entries itself.
// Either way each instance is saved as a temporary file beside its target, then renamed over
// it: one new version of the target (none when the bytes are the same), no history for the
// temporary name.
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "store/archive.h"
#include "tools/cli_error.h"
#include "tools/commands.h"
#include "tools/dicom_receiver.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

namespace fs = std::filesystem;
using store::Status;
using store::StatusOr;

struct ReceiveArgs {
  std::string target;
  std::string aet;
  int port = -1;
  std::string bind = "127.0.0.1";
  std::vector<std::string> allow_aets;
  std::vector<std::string> allow_hosts;
  std::string path_template = std::string(store::kDefaultPathTemplate);
  uint32_t max_associations = 8;
  uint32_t idle_timeout = 60;
  KeyOptions key;
};

// A temporary name in the target directory; it starts with '.', which no templated name can.
std::string TemporaryName() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  char text[40];
  std::snprintf(text, sizeof(text), ".medvfs-receive-%016llx.tmp",
                static_cast<unsigned long long>(random()));
  return text;
}

// --- The archive sink ---------------------------------------------------------------------------

// Who writes, as the archive records it: this process, named after the peer's AE title.
store::Caller CallerFor(const PeerInfo& peer) {
  store::Caller caller = CommandLineCaller();
  caller.program = "dicom:" + peer.calling_aet;
  return caller;
}

class ArchivePending final : public PendingInstance {
 public:
  ArchivePending(store::Archive& archive, store::InodeId dir, std::string name, std::string temp,
                 store::NodeRef node, std::unique_ptr<store::FileHandle> handle,
                 store::Caller caller)
      : archive_(archive),
        dir_(dir),
        name_(std::move(name)),
        temp_(std::move(temp)),
        node_(std::move(node)),
        handle_(std::move(handle)),
        caller_(std::move(caller)) {}

  // Unlinking the never-committed temporary file first leaves no trace of it; the handle's
  // release then finds the file deleted and commits nothing; node_ goes last.
  ~ArchivePending() override {
    if (!committed_) (void)archive_.Unlink(dir_, temp_, caller_);
    handle_.reset();
  }
  ArchivePending(const ArchivePending&) = delete;
  ArchivePending& operator=(const ArchivePending&) = delete;

  Status Append(std::string_view bytes) override {
    MEDVFS_ASSIGN_OR_RETURN(size_t written, handle_->Write(offset_, bytes));
    offset_ += written;
    return Status::Ok();
  }

  StatusOr<StoredInstance> Commit() override {
    const uint64_t before = CurrentVersion();
    MEDVFS_RETURN_IF_ERROR(handle_->Flush(caller_));
    handle_.reset();
    MEDVFS_RETURN_IF_ERROR(archive_.Rename(dir_, temp_, dir_, name_, 0, caller_));
    committed_ = true;
    // C-STORE success promises the instance is stored: the rename survives a power loss too
    // (whatever commit interval the archive was opened with).
    MEDVFS_RETURN_IF_ERROR(archive_.SyncAll());
    StoredInstance stored;
    stored.version = CurrentVersion();
    stored.unchanged = before != 0 && stored.version == before;
    return stored;
  }

 private:
  uint64_t CurrentVersion() {
    auto node = archive_.Lookup(dir_, name_);
    return node.ok() ? node->version : 0;
  }

  store::Archive& archive_;
  const store::InodeId dir_;
  const std::string name_;
  const std::string temp_;
  store::NodeRef node_;  // the temporary file, held until its handle is gone
  std::unique_ptr<store::FileHandle> handle_;
  const store::Caller caller_;
  uint64_t offset_ = 0;
  bool committed_ = false;
};

class ArchiveSink final : public InstanceSink {
 public:
  explicit ArchiveSink(store::Archive& archive) : archive_(archive) {}

  StatusOr<std::unique_ptr<PendingInstance>> Begin(const std::vector<std::string>& components,
                                                   const PeerInfo& peer) override {
    const store::Caller caller = CallerFor(peer);
    store::InodeId dir = store::kRootInode;
    for (size_t i = 0; i + 1 < components.size(); ++i) {
      MEDVFS_ASSIGN_OR_RETURN(dir, Subdirectory(dir, components[i], caller));
    }
    const std::string temp = TemporaryName();
    MEDVFS_ASSIGN_OR_RETURN(store::NodeRef node,
                            archive_.MakeNode(dir, temp, S_IFREG | 0640, 0, caller));
    auto handle = archive_.Open(node.ino, O_WRONLY, caller);
    if (!handle.ok()) {
      (void)archive_.Unlink(dir, temp, caller);
      return handle.status();
    }
    return std::unique_ptr<PendingInstance>(new ArchivePending(archive_, dir, components.back(),
                                                               temp, std::move(node),
                                                               std::move(handle).value(), caller));
  }

  void RecordStored(const PeerInfo& peer, const std::string& path, const StoredInstance& stored,
                    std::string_view detail) override {
    store::AuditEvent event = EventFor(peer);
    event.path = path;
    event.version = stored.version;
    event.detail = Origin(peer) + ": " + std::string(detail) +
                   (stored.unchanged ? " (unchanged, no new version)" : "");
    Record(event);
  }

  void RecordRefusal(const Refusal& refusal) override {
    store::AuditEvent event = EventFor(refusal.peer);
    event.path = refusal.path;
    char status[16];
    std::snprintf(status, sizeof(status), "0x%04X", refusal.status);
    event.result = refusal.status == 0 ? EACCES : (refusal.status == 0xA700 ? EIO : EINVAL);
    event.detail =
        Origin(refusal.peer) + ": " +
        (refusal.status == 0 ? "" : std::string("refused with status ") + status + ", ") +
        refusal.reason;
    Record(event);
  }

 private:
  // The directory `name` in `parent`, made if missing (another association may make it at the
  // same moment: then it is looked up again).
  StatusOr<store::InodeId> Subdirectory(store::InodeId parent, const std::string& name,
                                        const store::Caller& caller) {
    auto attr = archive_.Lookup(parent, name);
    if (!attr.ok() && attr.status().code() == store::Code::kNotFound) {
      attr = archive_.MakeDir(parent, name, 0750, caller);
      if (!attr.ok() && attr.status().code() == store::Code::kExists) {
        attr = archive_.Lookup(parent, name);
      }
    }
    if (!attr.ok()) return attr.status();
    if (!S_ISDIR(attr->mode)) return Status(store::Code::kNotDirectory, "not a directory");
    return attr->ino;
  }

  static std::string Origin(const PeerInfo& peer) {
    return "association " + std::to_string(peer.association) + " from AE " + peer.calling_aet +
           " at " + peer.host;
  }

  static store::AuditEvent EventFor(const PeerInfo& peer) {
    const store::Caller caller = CallerFor(peer);
    store::AuditEvent event;
    event.uid = caller.uid;
    event.gid = caller.gid;
    event.pid = caller.pid;
    event.program = caller.program;
    event.op = store::AuditOp::kDicomReceive;
    return event;
  }

  void Record(const store::AuditEvent& event) {
    Status s = archive_.RecordAudit(event);
    if (!s.ok()) {
      std::cerr << "medvfs receive: warning: an audit entry could not be recorded (" << s.ToString()
                << ")" << std::endl;
    }
  }

  store::Archive& archive_;
};

// --- The mount sink ---------------------------------------------------------------------------

Status ErrnoStatus(int err, const std::string& what) {
  store::Code code = store::Code::kIoError;
  if (err == ENOSPC || err == EDQUOT) code = store::Code::kNoSpace;
  if (err == EACCES || err == EPERM) code = store::Code::kAccess;
  if (err == EROFS) code = store::Code::kReadOnly;
  return Status(code, what + ": " + std::strerror(err));
}

class MountPending final : public PendingInstance {
 public:
  MountPending(int dir_fd, fs::path target, std::string temp, int fd)
      : dir_fd_(dir_fd), target_(std::move(target)), temp_(std::move(temp)), fd_(fd) {}
  // Unlinking before the close leaves no version: the daemon commits nothing for a file that
  // is gone.
  ~MountPending() override {
    if (fd_ >= 0) {
      (void)unlinkat(dir_fd_, temp_.c_str(), 0);
      close(fd_);
    }
    close(dir_fd_);
  }
  MountPending(const MountPending&) = delete;
  MountPending& operator=(const MountPending&) = delete;

  Status Append(std::string_view bytes) override {
    while (!bytes.empty()) {
      const ssize_t n = write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "write");
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  }

  StatusOr<StoredInstance> Commit() override {
    const uint64_t before = Version();
    if (fsync(fd_) != 0) return ErrnoStatus(errno, "fsync");
    const int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0) {
      const int err = errno;
      (void)unlinkat(dir_fd_, temp_.c_str(), 0);
      return ErrnoStatus(err, "close");
    }
    if (renameat(dir_fd_, temp_.c_str(), dir_fd_, target_.filename().c_str()) != 0) {
      const int err = errno;
      (void)unlinkat(dir_fd_, temp_.c_str(), 0);
      return ErrnoStatus(err, "rename");
    }
    // The rename is durable before C-STORE success, whatever the mount's commit interval.
    if (fsync(dir_fd_) != 0) return ErrnoStatus(errno, "fsync of the directory");
    StoredInstance stored;
    stored.version = Version();
    stored.unchanged = before != 0 && stored.version == before;
    return stored;
  }

 private:
  // The target's user.medvfs.version (0 when it does not exist yet).
  uint64_t Version() const {
    char value[32] = {};
    const ssize_t n = getxattr(target_.c_str(), "user.medvfs.version", value, sizeof(value) - 1);
    return n > 0 ? std::strtoull(value, nullptr, 10) : 0;
  }

  const int dir_fd_;
  const fs::path target_;
  const std::string temp_;
  int fd_;
};

class MountSink final : public InstanceSink {
 public:
  explicit MountSink(fs::path mountpoint) : mountpoint_(std::move(mountpoint)) {}

  StatusOr<std::unique_ptr<PendingInstance>> Begin(const std::vector<std::string>& components,
                                                   const PeerInfo&) override {
    int dir_fd = open(mountpoint_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return ErrnoStatus(errno, "open the mountpoint");
    fs::path target = mountpoint_;
    for (size_t i = 0; i + 1 < components.size(); ++i) {
      const char* name = components[i].c_str();
      if (mkdirat(dir_fd, name, 0750) != 0 && errno != EEXIST) {
        const int err = errno;
        close(dir_fd);
        return ErrnoStatus(err, "mkdir");
      }
      const int child = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      const int err = errno;
      close(dir_fd);
      if (child < 0) return ErrnoStatus(err, "open a directory");
      dir_fd = child;
      target /= components[i];
    }
    target /= components.back();
    const std::string temp = TemporaryName();
    const int fd =
        openat(dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) {
      const int err = errno;
      close(dir_fd);
      return ErrnoStatus(err, "create the temporary file");
    }
    return std::unique_ptr<PendingInstance>(new MountPending(dir_fd, target, temp, fd));
  }

  // The mount's daemon records the writes and the rename in the audit log itself.
  void RecordStored(const PeerInfo&, const std::string&, const StoredInstance&,
                    std::string_view) override {}
  // Nothing reaches the daemon's audit log from here; the refusal is on stderr only.
  void RecordRefusal(const Refusal&) override {}

 private:
  const fs::path mountpoint_;
};

// --- The command --------------------------------------------------------------------------------

// SIGINT and SIGTERM, blocked in every thread (set before any thread starts, the archive's
// included), become readable on the returned signalfd: the receiver's stop signal.
int BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0) {
    Fail("cannot block SIGINT and SIGTERM", "report this as a bug");
  }
  const int fd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (fd < 0) FailErrno(errno, "cannot create a signalfd");
  return fd;
}

void CheckAeTitle(const std::string& aet, const std::string& option) {
  const bool blank = aet.find_first_not_of(' ') == std::string::npos;
  bool printable = true;
  for (char c : aet) printable = printable && c >= 0x20 && c < 0x7f && c != '\\';
  if (aet.size() > 16 || blank || !printable) {
    Fail(option + " '" + aet + "' is no valid AE title",
         "give 1 to 16 printable ASCII characters, without backslash", kExitUsage);
  }
}

ReceiverOptions ReceiverOptionsOf(const ReceiveArgs& args) {
  ReceiverOptions options;
  CheckAeTitle(args.aet, "--aet");
  for (const std::string& aet : args.allow_aets) CheckAeTitle(aet, "--allow-aet");
  if (args.port < 0 || args.port > 65535) {
    Fail("--port " + std::to_string(args.port) + " is no TCP port",
         "give a port from 1 to 65535 (0: any free port)", kExitUsage);
  }
  auto parsed = store::PathTemplate::Parse(args.path_template);
  if (!parsed.ok()) {
    Fail(parsed.status().message(), "fix --path-template (see man medvfs-receive)", kExitUsage);
  }
  options.aet = args.aet;
  options.bind_address = args.bind;
  options.port = static_cast<uint16_t>(args.port);
  options.allowed_aets = args.allow_aets;
  options.allowed_hosts = args.allow_hosts;
  options.path_template = std::move(parsed).value();
  options.max_associations = args.max_associations;
  options.idle_timeout_s = args.idle_timeout;
  return options;
}

void Serve(const ReceiveArgs& args, const ReceiverOptions& options, InstanceSink& sink, int stop_fd,
           const std::string& where) {
  Status s = RunReceiver(options, sink, stop_fd, [&](uint16_t port) {
    std::cerr << "medvfs receive: listening on " << options.bind_address << ":" << port << " as AE "
              << options.aet << ", storing into " << where << std::endl;
  });
  if (!s.ok()) {
    Fail("cannot receive on " + args.bind + ":" + std::to_string(args.port) + ": " + s.message(),
         s.code() == store::Code::kBusy ? "choose another --port, or stop what listens there"
                                        : "check --bind, --port and --allow-host");
  }
  std::cerr << "medvfs receive: stopped" << std::endl;
}

void RunReceive(const ReceiveArgs& args) {
  const ReceiverOptions options = ReceiverOptionsOf(args);
  const int stop_fd = BlockStopSignals();
  const ArchiveTarget target = ResolveArchiveTarget(args.target);
  if (target.through_mount) {
    MountSink sink(target.mountpoint);
    Serve(args, options, sink, stop_fd, "the mount " + target.mountpoint.string());
  } else {
    std::unique_ptr<store::Archive> archive =
        OpenArchiveOrFail(target.archive, args.key, /*read_only=*/false);
    ArchiveSink sink(*archive);
    Serve(args, options, sink, stop_fd, "the archive " + target.archive.string());
    archive.reset();  // closed (and synced) before the exit
  }
  close(stop_fd);
}

}  // namespace

void RegisterReceiveCommand(CLI::App& app) {
  auto args = std::make_shared<ReceiveArgs>();
  CLI::App* command =
      app.add_subcommand("receive", "Receive DICOM instances (C-STORE SCP) into an archive");
  command
      ->add_option("TARGET", args->target,
                   "The archive directory, or its mountpoint (a mounted archive is written "
                   "through its mount)")
      ->required();
  command->add_option("--aet", args->aet, "Our AE title; the called AE title must equal it")
      ->required();
  command->add_option("--port", args->port, "TCP port to listen on (0: any free port)")->required();
  command->add_option("--bind", args->bind, "IPv4 address or host name to listen on")
      ->capture_default_str();
  command->add_option("--allow-aet", args->allow_aets,
                      "Accept only this calling AE title (repeatable; default: any)");
  command->add_option("--allow-host", args->allow_hosts,
                      "Accept only this peer host name or IPv4 address (repeatable; default: "
                      "any)");
  command
      ->add_option("--path-template", args->path_template,
                   "Where an instance goes: '/'-separated, with {Keyword} fields")
      ->capture_default_str();
  command
      ->add_option("--max-associations", args->max_associations,
                   "Associations served at once; more are rejected (transient)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  command
      ->add_option("--idle-timeout", args->idle_timeout,
                   "Seconds of silence after which an association is aborted")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunReceive(*args); });
}

}  // namespace medvfs::tools
