// Small POSIX file helpers shared by the .cc files of store/ that write files beside the
// database (key slot, high-water marks, backup markers). Private to store/.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "store/status.h"

namespace medvfs::store {

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  // Closes now, reporting the error that close(2) may carry for a written file.
  Status Close(const char* context) {
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) return StatusFromErrno(errno, context);
    return Status::Ok();
  }

 private:
  int fd_;
};

// Writes all of `data` to fd (a file, pipe, socket or terminal), retrying short writes and
// EINTR. Returns 0, or the errno of the write that failed (EIO for a write that wrote nothing,
// which only a broken device does). The one write-all loop of store/ and tools/.
inline int WriteAllOrErrno(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

// WriteAllOrErrno as a bool: false on an error, with errno set to its cause.
inline bool WriteAll(int fd, std::string_view data) {
  const int err = WriteAllOrErrno(fd, data);
  if (err != 0) errno = err;
  return err == 0;
}

// fsyncs a directory so that the names created or renamed in it are durable. Best effort:
// callers that must know use their own check.
inline void SyncDirectoryQuietly(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() >= 0) ::fsync(fd.get());
}

// Writes `bytes` to `file` (mode 0600): a temporary file beside it, fsync'ed, renamed over it,
// and the directory fsync'ed.
inline Status WriteFileDurably(const std::filesystem::path& file, std::string_view bytes) {
  const std::filesystem::path temp = file.string() + ".tmp" + std::to_string(::getpid());
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return StatusFromErrno(errno, "writing " + file.filename().string());
  if (!WriteAll(fd.get(), bytes) || ::fsync(fd.get()) != 0 ||
      ::rename(temp.c_str(), file.c_str()) != 0) {
    Status failed = StatusFromErrno(errno, "writing " + file.filename().string());
    ::unlink(temp.c_str());
    return failed;
  }
  SyncDirectoryQuietly(file.parent_path());
  return Status::Ok();
}

}  // namespace medvfs::store
