#include "store/status.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace medvfs::store {
namespace {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kNotFound:
      return "NotFound";
    case Code::kExists:
      return "Exists";
    case Code::kNotDirectory:
      return "NotDirectory";
    case Code::kIsDirectory:
      return "IsDirectory";
    case Code::kNotEmpty:
      return "NotEmpty";
    case Code::kInvalid:
      return "Invalid";
    case Code::kPermission:
      return "Permission";
    case Code::kAccess:
      return "Access";
    case Code::kIoError:
      return "IoError";
    case Code::kCorruption:
      return "Corruption";
    case Code::kWrongKey:
      return "WrongKey";
    case Code::kNoSpace:
      return "NoSpace";
    case Code::kReadOnly:
      return "ReadOnly";
    case Code::kBusy:
      return "Busy";
    case Code::kNameTooLong:
      return "NameTooLong";
    case Code::kTooBig:
      return "TooBig";
    case Code::kRange:
      return "Range";
    case Code::kNoData:
      return "NoData";
    case Code::kNotSupported:
      return "NotSupported";
    case Code::kCrossDevice:
      return "CrossDevice";
    case Code::kTooManyLinks:
      return "TooManyLinks";
    case Code::kLoop:
      return "Loop";
    case Code::kRolledBack:
      return "RolledBack";
  }
  return "Unknown";
}

// strerror_r comes in two flavours (XSI returns int, GNU returns char*); accept either.
[[maybe_unused]] const char* StrerrorResult(int result, const char* buffer) {
  return result == 0 ? buffer : "unknown error";
}
[[maybe_unused]] const char* StrerrorResult(const char* result, const char* /*buffer*/) {
  return result;
}

std::string ErrnoText(int err) {
  char buffer[256] = {};
  return StrerrorResult(strerror_r(err, buffer, sizeof(buffer)), buffer);
}

Code CodeFromErrno(int err) {
  // EOPNOTSUPP and ENOTSUP, EAGAIN and EWOULDBLOCK may share a value: test them outside the
  // switch so that it has no duplicate labels.
  if (err == EOPNOTSUPP || err == ENOTSUP) return Code::kNotSupported;
  // flock(LOCK_NB) on a lock held elsewhere.
  if (err == EWOULDBLOCK || err == EAGAIN) return Code::kBusy;
  switch (err) {
    case ENOENT:
      return Code::kNotFound;
    case EEXIST:
      return Code::kExists;
    case ENOTDIR:
      return Code::kNotDirectory;
    case EISDIR:
      return Code::kIsDirectory;
    case ENOTEMPTY:
      return Code::kNotEmpty;
    case EINVAL:
      return Code::kInvalid;
    case EPERM:
      return Code::kPermission;
    case EACCES:
      return Code::kAccess;
    case ENOSPC:
    case EDQUOT:
      return Code::kNoSpace;
    case EROFS:
      return Code::kReadOnly;
    case EBUSY:
      return Code::kBusy;
    case ENAMETOOLONG:
      return Code::kNameTooLong;
    case EFBIG:
    case E2BIG:
      return Code::kTooBig;
    case ERANGE:
      return Code::kRange;
    case ENODATA:
      return Code::kNoData;
    case EXDEV:
      return Code::kCrossDevice;
    case EMLINK:
      return Code::kTooManyLinks;
    case ELOOP:
      return Code::kLoop;
    default:
      return Code::kIoError;
  }
}

}  // namespace

int Status::ToErrno() const {
  switch (code_) {
    case Code::kOk:
      return 0;
    case Code::kNotFound:
      return ENOENT;
    case Code::kExists:
      return EEXIST;
    case Code::kNotDirectory:
      return ENOTDIR;
    case Code::kIsDirectory:
      return EISDIR;
    case Code::kNotEmpty:
      return ENOTEMPTY;
    case Code::kInvalid:
      return EINVAL;
    case Code::kPermission:
      return EPERM;
    case Code::kAccess:
      return EACCES;
    case Code::kIoError:
    case Code::kCorruption:
      return EIO;
    case Code::kWrongKey:
      // Nothing POSIX names this; a refused key is a refused access.
      return EACCES;
    case Code::kNoSpace:
      return ENOSPC;
    case Code::kReadOnly:
      return EROFS;
    case Code::kBusy:
      return EBUSY;
    case Code::kNameTooLong:
      return ENAMETOOLONG;
    case Code::kTooBig:
      return EFBIG;
    case Code::kRange:
      return ERANGE;
    case Code::kNoData:
      return ENODATA;
    case Code::kNotSupported:
      return EOPNOTSUPP;
    case Code::kCrossDevice:
      return EXDEV;
    case Code::kTooManyLinks:
      return EMLINK;
    case Code::kLoop:
      return ELOOP;
    case Code::kRolledBack:
      // An archive older than it should be is refused like a damaged one.
      return EIO;
  }
  return EIO;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string text = CodeName(code_);
  if (!message_.empty()) {
    text += ": ";
    text += message_;
  }
  return text;
}

Status StatusFromErrno(int err, std::string context) {
  std::string message = std::move(context);
  if (!message.empty()) message += ": ";
  message += ErrnoText(err);
  // errno 0 (the caller lost the real error) falls to kIoError: never report success here.
  return Status(CodeFromErrno(err), std::move(message));
}

namespace internal {

void StatusOrNoValue(const Status& status) {
  const std::string line = "medvfs: internal error: StatusOr::value() on " +
                           (status.ok() ? std::string("an ok status without a value")
                                        : "an error (" + status.ToString() + ")") +
                           "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
  std::abort();
}

}  // namespace internal

}  // namespace medvfs::store
