// Status and StatusOr: how every fallible store/ call reports its result.
// No exceptions cross the store/ boundary; a Status carries a code that maps onto an
// errno for the FUSE layer, and a message that never contains patient data (no paths,
// names or tag values; inode and version numbers only).
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace medvfs::store {

enum class Code {
  kOk = 0,
  kNotFound,      // ENOENT
  kExists,        // EEXIST
  kNotDirectory,  // ENOTDIR
  kIsDirectory,   // EISDIR
  kNotEmpty,      // ENOTEMPTY
  kInvalid,       // EINVAL
  kPermission,    // EPERM
  kAccess,        // EACCES
  kIoError,       // EIO
  kCorruption,    // EIO: stored bytes failed authentication or decoding
  kWrongKey,      // the passphrase or key file does not unlock the archive
  kNoSpace,       // ENOSPC
  kReadOnly,      // EROFS
  kBusy,          // EBUSY (archive locked by another process)
  kNameTooLong,   // ENAMETOOLONG
  kTooBig,        // EFBIG / E2BIG
  kRange,         // ERANGE (xattr buffer)
  kNoData,        // ENODATA (xattr missing)
  kNotSupported,  // EOPNOTSUPP
  kCrossDevice,   // EXDEV
  kTooManyLinks,  // EMLINK
  kLoop,          // ELOOP
  kRolledBack,    // the archive is older than the last state this host saw (see ArchiveOptions)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Exists(std::string m) { return {Code::kExists, std::move(m)}; }
  static Status Invalid(std::string m) { return {Code::kInvalid, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status WrongKey(std::string m) { return {Code::kWrongKey, std::move(m)}; }
  static Status ReadOnly(std::string m) { return {Code::kReadOnly, std::move(m)}; }
  static Status NotSupported(std::string m) { return {Code::kNotSupported, std::move(m)}; }
  static Status RolledBack(std::string m) { return {Code::kRolledBack, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // The errno a POSIX caller should see for this status (0 when ok).
  int ToErrno() const;
  // "<code name>: <message>", for logs and test failures.
  std::string ToString() const;
  // Marks a deliberately ignored status (RocksDB's PermitUncheckedError idiom).
  void IgnoreError() const {}

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Builds a Status from an errno value, e.g. after a failed open(2).
Status StatusFromErrno(int err, std::string context);

namespace internal {
// Writes "StatusOr::value() on an error: <status>" to stderr and aborts. A Status message
// carries no patient data (see the top of this file), so it is safe to print.
[[noreturn]] void StatusOrNoValue(const Status& status);
}  // namespace internal

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  StatusOr(Code code, std::string message) : status_(code, std::move(message)) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok(). Otherwise (or when built from an ok Status without a value) the value
  // accessors print the status and abort the process: a caller that did not check is a bug,
  // and going on with a value that is not there would be worse.
  T& value() & { return Checked(); }
  const T& value() const& { return Checked(); }
  T&& value() && { return std::move(Checked()); }
  T& operator*() & { return Checked(); }
  const T& operator*() const& { return Checked(); }
  T* operator->() { return &Checked(); }
  const T* operator->() const { return &Checked(); }

 private:
  T& Checked() {
    if (!value_.has_value()) internal::StatusOrNoValue(status_);
    return *value_;
  }
  const T& Checked() const {
    if (!value_.has_value()) internal::StatusOrNoValue(status_);
    return *value_;
  }

  Status status_;
  std::optional<T> value_;
};

}  // namespace medvfs::store

// Returns early from the enclosing function when `expr` is not ok.
#define MEDVFS_RETURN_IF_ERROR(expr)      \
  do {                                    \
    ::medvfs::store::Status _st = (expr); \
    if (!_st.ok()) return _st;            \
  } while (0)

#define MEDVFS_CONCAT_INNER(a, b) a##b
#define MEDVFS_CONCAT(a, b) MEDVFS_CONCAT_INNER(a, b)
// `MEDVFS_ASSIGN_OR_RETURN(auto x, Call());` declares x from a StatusOr or returns its status.
#define MEDVFS_ASSIGN_OR_RETURN(lhs, expr) \
  MEDVFS_ASSIGN_OR_RETURN_IMPL(MEDVFS_CONCAT(_status_or_, __LINE__), lhs, expr)
#define MEDVFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
