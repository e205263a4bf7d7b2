#include "tools/stream.h"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <span>

#include "store/file_util.h"

namespace medvfs::tools {
namespace {

constexpr size_t kMaxSmallFile = size_t{64} << 20;
constexpr size_t kMaxXattr = size_t{64} << 10;

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

int WriteAll(int fd, std::string_view data) { return store::WriteAllOrErrno(fd, data); }

CopyResult CopyFileTo(const std::filesystem::path& path, int out_fd) {
  CopyResult result;
  Fd in(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) {
    result.read_errno = errno;
    return result;
  }
  auto buffer = std::make_unique<char[]>(kCopyPieceBytes);
  while (true) {
    ssize_t n = read(in.get(), buffer.get(), kCopyPieceBytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      result.read_errno = errno;
      return result;
    }
    if (n == 0) return result;
    result.write_errno = WriteAll(out_fd, std::string_view(buffer.get(), static_cast<size_t>(n)));
    if (result.write_errno != 0) return result;
  }
}

CopyResult CopyHandleTo(store::FileHandle& handle, int out_fd, store::Status* read_status) {
  CopyResult result;
  auto buffer = std::make_unique<char[]>(kCopyPieceBytes);
  uint64_t offset = 0;
  while (true) {
    store::StatusOr<size_t> n = handle.Read(offset, std::span<char>(buffer.get(), kCopyPieceBytes));
    if (!n.ok()) {
      *read_status = n.status();
      result.read_errno = n.status().ToErrno() != 0 ? n.status().ToErrno() : EIO;
      return result;
    }
    if (*n == 0) return result;
    result.write_errno = WriteAll(out_fd, std::string_view(buffer.get(), *n));
    if (result.write_errno != 0) return result;
    offset += *n;
  }
}

int ReadSmallFile(const std::filesystem::path& path, std::string* out) {
  out->clear();
  Fd in(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return errno;
  char buffer[64 * 1024];
  while (out->size() < kMaxSmallFile) {
    ssize_t n = read(in.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return 0;
    out->append(buffer, static_cast<size_t>(n));
  }
  return EFBIG;
}

int GetXattr(const std::filesystem::path& path, const std::string& name, std::string* value) {
  value->assign(4096, '\0');
  while (true) {
    ssize_t n = lgetxattr(path.c_str(), name.c_str(), value->data(), value->size());
    if (n >= 0) {
      value->resize(static_cast<size_t>(n));
      return 0;
    }
    if (errno != ERANGE || value->size() >= kMaxXattr) return errno;
    value->assign(value->size() * 4, '\0');
  }
}

int SetXattr(const std::filesystem::path& path, const std::string& name, const std::string& value) {
  if (lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) return errno;
  return 0;
}

}  // namespace medvfs::tools
