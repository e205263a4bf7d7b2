// Bounded-memory copies to stdout, and reads of views and extended attributes through a mount.
// Everything goes through POSIX calls so that the errno a mount returns reaches the user.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "store/archive.h"
#include "store/status.h"

namespace medvfs::tools {

// The size of one piece of a copy: memory stays bounded whatever the file size.
inline constexpr size_t kCopyPieceBytes = size_t{1} << 20;

// The outcome of a copy: 0 or the errno of the failing side.
struct CopyResult {
  int read_errno = 0;
  int write_errno = 0;
  bool ok() const { return read_errno == 0 && write_errno == 0; }
};

// Writes all of `data` to fd (retrying on EINTR and short writes); 0 or the errno.
int WriteAll(int fd, std::string_view data);

// Copies the file at `path` to `out_fd` in pieces of kCopyPieceBytes.
CopyResult CopyFileTo(const std::filesystem::path& path, int out_fd);

// Copies a store file handle to `out_fd` in pieces of kCopyPieceBytes. *read_status is set when
// reading failed.
CopyResult CopyHandleTo(store::FileHandle& handle, int out_fd, store::Status* read_status);

// Reads a small file (a view such as versions.tsv) whole; 0 or the errno.
int ReadSmallFile(const std::filesystem::path& path, std::string* out);

// getxattr(2)/setxattr(2) without following a final symlink; 0 or the errno.
int GetXattr(const std::filesystem::path& path, const std::string& name, std::string* value);
int SetXattr(const std::filesystem::path& path, const std::string& name, const std::string& value);

}  // namespace medvfs::tools
