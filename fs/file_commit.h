// When an open file's writes become a version, as plain functions over OpenFile (the FUSE
// handlers flush and fsync in fs/ops_file.cc call them; tests call them without a mount).
//
// OpenFile::wrote marks writes made through the handle since its last commit. Writes run
// concurrently with flush and fsync (FUSE serves requests on several threads), so the mark is
// always taken (exchanged for false) BEFORE the commit that covers the writes it stands for,
// and put back if that commit fails. Clearing it after the commit instead would erase the mark
// of a write that landed while the commit ran and that the commit did not include: the close
// would then commit nothing and return 0, and that write would be missing from the version.
#pragma once

#include "fs/op_util.h"
#include "store/archive.h"
#include "store/status.h"

namespace medvfs::fs::internal {

// close(2) (FUSE flush): commits the handle's writes since its last commit, if any.
inline store::Status CommitOnClose(OpenFile& file, const store::Caller& caller) {
  if (!file.writable || !file.wrote.exchange(false)) return store::Status::Ok();
  store::Status status = file.handle->Flush(caller);
  if (!status.ok()) file.wrote = true;  // still pending: release retries
  return status;
}

// fsync(2): commits whatever is pending and makes it durable. Through a read-only descriptor
// too: what an earlier close committed within the commit interval becomes durable.
inline store::Status SyncOpenFile(OpenFile& file, const store::Caller& caller) {
  if (!file.writable) return file.handle ? file.handle->Sync(caller) : store::Status::Ok();
  const bool wrote = file.wrote.exchange(false);
  store::Status status = file.handle->Sync(caller);
  if (!status.ok() && wrote) file.wrote = true;
  return status;
}

}  // namespace medvfs::fs::internal
