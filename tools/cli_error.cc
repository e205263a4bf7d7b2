#include "tools/cli_error.h"

#include <cstring>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

namespace medvfs::tools {
namespace {

struct Reason {
  std::string what;
  std::string todo;
};

Reason ReasonFor(const store::Status& status) {
  using store::Code;
  switch (status.code()) {
    case Code::kWrongKey:
      return {"the passphrase does not unlock this archive",
              "check MEDVFS_PASSPHRASE, --passphrase-file or --key-file"};
    case Code::kNotFound:
      return {"no such file or version", "check the path, and the version numbers with medvfs log"};
    case Code::kBusy:
      return {"the archive is in use by another process (it is probably mounted)",
              "run the command on the path through the mount, or unmount the archive first"};
    case Code::kCorruption:
      return {"stored data failed its integrity check", "run medvfs verify on the archive"};
    case Code::kExists:
      return {"the name is already taken", "rename or remove the file that holds it"};
    case Code::kReadOnly:
      return {"the archive is read-only", "use a writable archive or mount"};
    case Code::kPermission:
    case Code::kAccess:
      return {"permission denied", "run the command as a user allowed to do this"};
    case Code::kNoSpace:
      return {"no space left on the archive's disk", "free some space and try again"};
    case Code::kIsDirectory:
      return {"it is a directory", "name a file"};
    case Code::kNotDirectory:
      return {"a component of the path is not a directory", "check the path"};
    case Code::kIoError:
      return {"I/O error (" + status.message() + ")", "check the disk and the system log"};
    case Code::kInvalid:
      return {status.message(), "check the command's arguments (see man medvfs)"};
    default:
      return {status.ToString(), "check the command's arguments (see man medvfs)"};
  }
}

}  // namespace

void Fail(std::string_view what, std::string_view todo, int exit_code) {
  std::cerr << "medvfs: " << what << "; " << todo << std::endl;
  throw CLI::RuntimeError(exit_code);
}

void FailMessage(std::string_view message, int exit_code) {
  std::cerr << "medvfs: " << message << std::endl;
  throw CLI::RuntimeError(exit_code);
}

void FailStatus(const store::Status& status, std::string_view context) {
  Reason reason = ReasonFor(status);
  Fail(std::string(context) + ": " + reason.what, reason.todo);
}

void FailErrno(int err, std::string_view context) {
  std::string what = std::string(context) + ": ";
  switch (err) {
    case ENOENT:
      Fail(what + "no such file or version",
           "check the path, and the version numbers with medvfs log");
    case EIO:
      Fail(what + "input/output error (stored data may have failed its integrity check)",
           "run medvfs verify on the archive, and see the system log");
    case EACCES:
    case EPERM:
      Fail(what + "permission denied", "run the command as a user allowed to do this");
    case EROFS:
      Fail(what + "the archive is mounted read-only", "mount it read-write to change it");
    case EEXIST:
      Fail(what + "the name is already taken by another file",
           "rename or remove the file that holds the name, then try again");
    case EISDIR:
      Fail(what + "it is a directory", "name a file");
    case ENOTCONN:
      Fail(what + "the mount is not connected (its daemon has stopped)",
           "unmount it with medvfs umount and mount it again");
    case ENOTSUP:
    case ENODATA:
      Fail(what + "the mount does not support this request",
           "use a matching medvfs version, or run the command on the unmounted archive");
    default:
      Fail(what + std::strerror(err), "check the path and the mount");
  }
}

}  // namespace medvfs::tools
