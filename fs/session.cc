#include "fs/session.h"

#include <fuse_lowlevel.h>

#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "store/log.h"

namespace medvfs::fs {
namespace {

using store::Status;

// libfuse's own messages (bad options, mount failures) go to our log, and the last error is
// kept so that a failed mount can say why in one line.
std::mutex g_fuse_log_mu;
std::string g_partial_line;     // GUARDED_BY(g_fuse_log_mu): libfuse builds lines in pieces
std::string g_last_fuse_error;  // GUARDED_BY(g_fuse_log_mu)

void FuseLog(enum fuse_log_level level, const char* format, va_list args) {
  char piece[512];
  std::vsnprintf(piece, sizeof(piece), format, args);
  std::vector<std::string> lines;
  {
    std::lock_guard<std::mutex> lock(g_fuse_log_mu);
    g_partial_line += piece;
    size_t newline = 0;
    while ((newline = g_partial_line.find('\n')) != std::string::npos) {
      std::string line = g_partial_line.substr(0, newline);
      g_partial_line.erase(0, newline + 1);
      if (line.empty()) continue;
      if (level <= FUSE_LOG_ERR) g_last_fuse_error = line;
      lines.push_back(std::move(line));
    }
  }
  for (const std::string& line : lines) {
    if (level <= FUSE_LOG_WARNING) {
      MEDVFS_LOG_WARNING("libfuse: %s", line.c_str());
    } else {
      // Request traces of `-o debug`: for the terminal of a foreground mount only (they name
      // files, so they never go to the system log).
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }
}

std::string TakeLastFuseError(const char* fallback) {
  std::lock_guard<std::mutex> lock(g_fuse_log_mu);
  std::string out = g_last_fuse_error.empty() ? fallback : g_last_fuse_error;
  g_last_fuse_error.clear();
  return out;
}

// The options FuseOptionString adds for medvfs itself (fs/mount_options.h), which libfuse must
// not see.
struct MedvfsOptions {
  int anon_only = 0;
  char* deid_config = nullptr;  // malloc'd by fuse_opt_parse
};

const fuse_opt kMedvfsOptions[] = {
    {"anon_only", offsetof(MedvfsOptions, anon_only), 1},
    {"deid_config=%s", offsetof(MedvfsOptions, deid_config), 0},
    FUSE_OPT_END,
};

// Takes medvfs's own options out of `args` into *config: anon_only (which implies read-only)
// and deid_config=FILE (read and parsed now, so that a bad file fails the mount).
Status TakeMedvfsOptions(fuse_args* args, FsConfig* config) {
  MedvfsOptions parsed;
  if (fuse_opt_parse(args, &parsed, kMedvfsOptions, nullptr) != 0) {
    std::free(parsed.deid_config);
    return Status::Invalid(TakeLastFuseError("libfuse could not parse the mount options"));
  }
  const std::string file = parsed.deid_config != nullptr ? parsed.deid_config : "";
  std::free(parsed.deid_config);
  if (parsed.anon_only != 0) {
    config->anon_only = true;
    config->read_only = true;
  }
  if (file.empty()) return Status::Ok();
  auto deid = store::LoadDeidConfig(file);
  if (!deid.ok()) {
    return Status::Invalid("deid_config=" + file + ": " + deid.status().message());
  }
  config->deid = std::move(deid).value();
  return Status::Ok();
}

}  // namespace

store::StatusOr<std::unique_ptr<MountedSession>> MountedSession::Mount(
    store::Archive& archive, const FsConfig& config, const std::string& fuse_options,
    const std::string& mountpoint) {
  fuse_set_log_func(FuseLog);
  std::unique_ptr<MountedSession> out(new MountedSession());
  fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  if (fuse_opt_add_arg(&args, "medvfs") != 0 || fuse_opt_add_arg(&args, "-o") != 0 ||
      fuse_opt_add_arg(&args, fuse_options.c_str()) != 0) {
    fuse_opt_free_args(&args);
    return Status::IoError("out of memory");
  }
  FsConfig effective = config;
  const Status taken = TakeMedvfsOptions(&args, &effective);
  if (!taken.ok()) {
    fuse_opt_free_args(&args);
    return taken;
  }
  out->fs_ = std::make_unique<Filesystem>(archive, std::move(effective));
  out->session_ =
      fuse_session_new(&args, &LowLevelOps(), sizeof(fuse_lowlevel_ops), out->fs_.get());
  fuse_opt_free_args(&args);
  if (out->session_ == nullptr) {
    return Status::Invalid(TakeLastFuseError("libfuse refused the mount options"));
  }
  out->fs_->set_session(out->session_);
  if (fuse_session_mount(out->session_, mountpoint.c_str()) != 0) {
    return Status::IoError(TakeLastFuseError("the kernel refused the mount"));
  }
  out->mounted_ = true;
  return out;
}

MountedSession::~MountedSession() {
  if (fs_) fs_->ClearSession();
  if (session_ != nullptr) {
    if (mounted_) fuse_session_unmount(session_);
    fuse_session_destroy(session_);
  }
  fs_.reset();  // closes files the kernel never released, before the archive goes
}

Status MountedSession::Run(unsigned max_threads) {
  if (fuse_set_signal_handlers(session_) != 0) {
    return Status::IoError("cannot install signal handlers");
  }
  fuse_loop_config* loop = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(loop, max_threads);
  fuse_loop_cfg_set_clone_fd(loop, 0);
  const int rc = fuse_session_loop_mt(session_, loop);
  fuse_loop_cfg_destroy(loop);
  fuse_remove_signal_handlers(session_);
  fuse_session_unmount(session_);
  mounted_ = false;
  if (rc < 0) return store::StatusFromErrno(-rc, "fuse session loop");
  return Status::Ok();
}

}  // namespace medvfs::fs
