// mknod, create, open, read, write, flush, release, fsync.
//
// A version commits when a handle that wrote is closed (flush), on fsync, and on release.
// close() of every duplicate of a descriptor sends a flush, and shells open a redirect target
// with O_TRUNC, dup2 it and close the original before writing: so a flush commits only when
// data went through the handle since its last commit, and release commits whatever is left
// (a create or O_TRUNC without writes, writes from a shared mapping after the last close).
#include <fcntl.h>

#include "fs/file_commit.h"
#include "fs/op_util.h"
#include "store/log.h"

namespace medvfs::fs::internal {
namespace {

using store::Status;

bool OpensForWriting(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC); }
bool OpensForReading(int flags) { return (flags & O_ACCMODE) != O_WRONLY; }

// What opening live file `attr` with `flags` records.
store::AuditEvent LiveOpenEvent(Filesystem& fs, const store::Attr& attr, int flags) {
  store::AuditEvent event;
  event.op = OpensForWriting(flags) ? store::AuditOp::kOpenWrite : store::AuditOp::kOpenRead;
  event.path = AuditPathOf(fs, attr.ino);
  event.version = attr.version;
  return event;
}

// Records the open of a file: a read of patient data when it opens for reading. A read whose
// entry cannot be recorded (a full disk, an I/O error) is refused, ENOSPC or EIO, so that the
// audit log never silently misses one, unless the mount says audit_failure=allow (then the
// failure is logged and the read goes on). An open that only writes, or truncates (nothing
// stored before can be read through it), has had its effect already: its failure is logged.
Status AuditOpen(fuse_req_t req, Filesystem& fs, store::AuditEvent event, int flags) {
  if (!OpensForReading(flags) || (flags & O_TRUNC) || fs.config().audit_failure_allow) {
    RecordAudit(req, fs, std::move(event));
    return Status::Ok();
  }
  const store::Caller caller = CallerOf(req);
  event.uid = caller.uid;
  event.gid = caller.gid;
  event.pid = caller.pid;
  event.program = caller.program;
  Status status = fs.archive().RecordAudit(event);
  if (status.ok()) return status;
  MEDVFS_LOG_ERROR(
      "a read by uid %u, pid %u was refused: its audit entry could not be "
      "recorded (%s)",
      event.uid, event.pid, status.ToString().c_str());
  if (status.code() == store::Code::kNoSpace) return status;
  return Status::IoError("the read could not be recorded in the audit log");
}

// With Enforcing: may the requester open live file `attr` with `flags`? A denial is recorded.
Status CheckLiveOpen(fuse_req_t req, Filesystem& fs, const store::Attr& attr, int flags) {
  if (!Enforcing(fs)) return Status::Ok();
  Status check = CheckAccess(CredentialsOf(req), attr, OpenMask(flags));
  if (check.ok()) return check;
  return AuditDenial(req, fs, check, LiveOpenEvent(fs, attr, flags));
}

void MakeNode(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  RunOp(req, "mknod", parent, [&]() -> Status {
    Filesystem& fs = Fs(req);
    MEDVFS_RETURN_IF_ERROR(CheckNewRealName(fs, parent, name));
    MEDVFS_RETURN_IF_ERROR(
        RequireAccess(req, fs, parent, kMayWrite | kMayExec, store::AuditOp::kCreate, name));
    MEDVFS_ASSIGN_OR_RETURN(store::NodeRef node,
                            fs.archive().MakeNode(parent, name, mode, rdev, CreatorOf(req)));
    fs.InvalidateHistoryEntry(parent, name);
    ReplyRealEntry(req, fs, std::move(node));
    return Status::Ok();
  });
}

void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  RunOp(req, "create", parent, [&]() -> Status {
    Filesystem& fs = Fs(req);
    MEDVFS_RETURN_IF_ERROR(CheckNewRealName(fs, parent, name));
    MEDVFS_RETURN_IF_ERROR(
        RequireAccess(req, fs, parent, kMayWrite | kMayExec, store::AuditOp::kCreate, name));
    store::Archive& archive = fs.archive();
    const store::Caller caller = CreatorOf(req);
    auto made = archive.MakeNode(parent, name, S_IFREG | (mode & 07777), 0, caller);
    bool existed = false;
    if (!made.ok() && made.status().code() == store::Code::kExists && !(fi->flags & O_EXCL)) {
      made = archive.Lookup(parent, name);  // created meanwhile by someone else: open it
      existed = made.ok();
    }
    if (!made.ok()) return made.status();
    if (!existed) fs.InvalidateHistoryEntry(parent, name);
    // Released on every early return; handed to the kernel with the reply.
    store::NodeRef node = std::move(*made);
    const store::Attr& attr = node.attr();
    if (existed) {
      // An open of an existing file: its permissions apply, and it is recorded like an open
      // (a new file's creation is the store's own entry).
      const int open_flags = fi->flags & ~(O_CREAT | O_EXCL);
      MEDVFS_RETURN_IF_ERROR(CheckLiveOpen(req, fs, attr, open_flags));
      MEDVFS_RETURN_IF_ERROR(AuditOpen(req, fs, LiveOpenEvent(fs, attr, open_flags), open_flags));
    }
    auto handle = archive.Open(attr.ino, fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY), caller);
    if (!handle.ok()) return handle.status();
    auto file = std::make_unique<OpenFile>();
    file->handle = std::move(*handle);
    file->writable = true;
    file->opener = caller;
    fi->fh = reinterpret_cast<uint64_t>(file.get());
    const fuse_entry_param e = RealEntry(fs, attr);
    fs.TrackFile(file.get());
    if (fuse_reply_create(req, &e, fi) == 0) {
      static_cast<void>(file.release());  // fi->fh owns it
      node.Release();
    } else {
      fs.UntrackFile(file.get());
    }
    return Status::Ok();
  });
}

// Views are read-only, except the `note` files of metadata views: what is written to one
// becomes the version's note when the handle is closed.
Status OpenView(Filesystem& fs, fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi,
                OpenFile* file) {
  MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
  store::AuditEvent event = ViewReadEvent(fs, ino, view);
  if (Enforcing(fs)) {
    // Each version carries the owner and mode the file had when it was made.
    MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, ViewAttrOf(fs, view));
    store::AuditEvent denied = event;
    if (!OpensForReading(fi->flags)) denied.op = store::AuditOp::kOpenWrite;
    MEDVFS_RETURN_IF_ERROR(AuditDenial(
        req, fs, CheckAccess(CredentialsOf(req), attr, OpenMask(fi->flags)), std::move(denied)));
  }
  if (OpensForWriting(fi->flags)) {
    if (view.kind != ViewKind::kNoteFile) return ViewIsReadOnly();
    if (fs.config().read_only) return Status::ReadOnly("mounted read-only");
    file->writable = true;
    file->opener = CallerOf(req);
    MEDVFS_ASSIGN_OR_RETURN(file->handle,
                            OpenNoteForWriting(fs.archive(), view, (fi->flags & O_TRUNC) != 0,
                                               (fi->flags & O_APPEND) != 0));
    file->wrote = (fi->flags & O_TRUNC) != 0;  // emptied: the close records that
  } else {
    // A deferred digest may be computed here: an interrupted open stops it.
    MEDVFS_ASSIGN_OR_RETURN(
        file->handle, OpenViewFileOf(fs, view, [req] { return fuse_req_interrupted(req) != 0; }));
  }
  if (IsGeneratedViewFile(view)) {
    fi->direct_io = 1;  // generated: its size may differ from the cached attribute
  } else {
    fi->keep_cache = 1;  // a stored version never changes
  }
  // A note opened only for writing is recorded by the store when its text is committed.
  if (OpensForReading(fi->flags)) {
    MEDVFS_RETURN_IF_ERROR(AuditOpen(req, fs, std::move(event), fi->flags));
  }
  return Status::Ok();
}

void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  RunOpThatMayChange(req, "open", ino, OpensForWriting(fi->flags), [&]() -> Status {
    Filesystem& fs = Fs(req);
    auto file = std::make_unique<OpenFile>();
    if (IsViewNode(ino)) {
      MEDVFS_RETURN_IF_ERROR(OpenView(fs, req, ino, fi, file.get()));
    } else {
      file->writable = OpensForWriting(fi->flags);
      MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, fs.archive().GetAttr(ino));
      MEDVFS_RETURN_IF_ERROR(CheckLiveOpen(req, fs, attr, fi->flags));
      if (file->writable && fs.config().read_only) return Status::ReadOnly("mounted read-only");
      file->opener = CallerOf(req);
      MEDVFS_ASSIGN_OR_RETURN(file->handle, fs.archive().Open(ino, fi->flags, file->opener));
      // Every change to a live file's bytes passes through this mount's kernel page cache
      // (write, truncate, O_TRUNC) or invalidates it (restore: ops_xattr.cc), and the kernel
      // drops the cache itself when it sees a new mtime or size (auto_inval_data), so a
      // reopen can keep what earlier reads cached.
      fi->keep_cache = 1;
      // One entry per open(2), never per read.
      MEDVFS_RETURN_IF_ERROR(AuditOpen(req, fs, LiveOpenEvent(fs, attr, fi->flags), fi->flags));
    }
    fi->fh = reinterpret_cast<uint64_t>(file.get());
    fs.TrackFile(file.get());
    if (fuse_reply_open(req, fi) == 0) {
      static_cast<void>(file.release());  // fi->fh owns it
    } else {
      fs.UntrackFile(file.get());
    }
    return Status::Ok();
  });
}

void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  RunOp(req, "read", ino, [&]() -> Status {
    if (off < 0) return Status::Invalid("negative offset");
    auto buf = std::make_unique_for_overwrite<char[]>(size);
    OpenFile* file = FileOf(fi);
    auto n = file->handle->Read(static_cast<uint64_t>(off), std::span<char>(buf.get(), size));
    if (!n.ok()) {
      // Damaged stored bytes: the reader gets EIO, and the audit log says who met it where,
      // once per open (a reader retries, the kernel reads ahead).
      if (n.status().code() == store::Code::kCorruption && !file->damage_recorded.exchange(true)) {
        Filesystem& fs = Fs(req);
        store::AuditEvent event;
        event.op = store::AuditOp::kDamageFound;
        event.path = AuditPathOf(fs, ino);
        event.result = EIO;
        event.detail = "read at offset " + std::to_string(off) + ": " + n.status().message();
        RecordAudit(req, fs, std::move(event));
      }
      return n.status();
    }
    fuse_reply_buf(req, buf.get(), *n);
    return Status::Ok();
  });
}

void Write(fuse_req_t req, fuse_ino_t ino, const char* data, size_t size, off_t off,
           fuse_file_info* fi) {
  RunOp(req, "write", ino, [&]() -> Status {
    OpenFile* file = FileOf(fi);
    if (IsViewNode(ino) && !file->writable) return ViewIsReadOnly();
    if (!file->writable) return Status(store::Code::kAccess, "handle not open for writing");
    if (off < 0) return Status::Invalid("negative offset");
    MEDVFS_ASSIGN_OR_RETURN(
        size_t n, file->handle->Write(static_cast<uint64_t>(off), std::string_view(data, size)));
    file->wrote = true;
    fuse_reply_write(req, n);
    return Status::Ok();
  });
}

// close(2): a handle that wrote commits its version here, so close() returning 0 means the
// version is durable.
void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  RunOp(req, "flush", ino, [&]() -> Status {
    OpenFile& file = *FileOf(fi);
    // Usually the process that opened the file closes it: it was identified then (reading
    // /proc/PID/comm again was 2% of the daemon's CPU when creating small files).
    const fuse_ctx* ctx = fuse_req_ctx(req);
    const bool opener_closes = ctx->pid > 0 && static_cast<uint32_t>(ctx->pid) == file.opener.pid &&
                               ctx->uid == file.opener.uid && ctx->gid == file.opener.gid;
    MEDVFS_RETURN_IF_ERROR(CommitOnClose(file, opener_closes ? file.opener : CallerOf(req)));
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Filesystem& fs = Fs(req);
  std::unique_ptr<OpenFile> file(FileOf(fi));
  fs.UntrackFile(file.get());
  // Only this handle's own unflushed writes are committed here; anything else pending on the
  // file (a new file never written, or the O_TRUNC of another save already under way) is the
  // store's to decide when the last writer goes (Archive's handle release).
  if (file->writable && file->wrote) {
    fs.BeginChange();
    const Status status = file->handle->Flush(file->opener);
    fs.EndChange();
    if (!status.ok()) {
      MEDVFS_LOG_ERROR("release of node %llu could not commit: %s",
                       static_cast<unsigned long long>(ino), status.ToString().c_str());
    }
  }
  file.reset();
  fuse_reply_err(req, 0);
}

void Fsync(fuse_req_t req, fuse_ino_t ino, int /*datasync*/, fuse_file_info* fi) {
  RunOp(req, "fsync", ino, [&]() -> Status {
    // The mark of writes is taken before the sync, not cleared after it (fs/file_commit.h).
    MEDVFS_RETURN_IF_ERROR(SyncOpenFile(*FileOf(fi), CallerOf(req)));
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

// fallocate(2). The archive preallocates nothing (space is taken when bytes are stored), so
// mode 0 only extends the file to offset + length, with a hole that costs nothing to store;
// FALLOC_FL_KEEP_SIZE alone changes nothing. Other modes (punching or zeroing ranges,
// collapsing, inserting) get EOPNOTSUPP. Never EOPNOTSUPP for mode 0: the C library's
// posix_fallocate would then write a byte into every block of the range itself.
void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
               fuse_file_info* fi) {
  RunOp(req, "fallocate", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    OpenFile* file = FileOf(fi);
    if (IsViewNode(ino)) return ViewIsReadOnly();
    if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE) {
      return Status::NotSupported("fallocate mode not supported");
    }
    if (!file->writable) return Status(store::Code::kAccess, "handle not open for writing");
    if (offset < 0 || length <= 0) return Status::Invalid("bad fallocate range");
    const uint64_t end = static_cast<uint64_t>(offset) + static_cast<uint64_t>(length);
    if (mode == 0) {
      MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, fs.archive().GetAttr(ino));
      if (end > attr.size) {
        store::SetAttrRequest request;
        request.size = end;
        MEDVFS_RETURN_IF_ERROR(fs.archive().SetAttr(ino, request, CallerOf(req)).status());
        file->wrote = true;  // joins the handle's pending version, like ftruncate
      }
    }
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

}  // namespace

void AddFileOps(fuse_lowlevel_ops& ops) {
  ops.mknod = MakeNode;
  ops.create = Create;
  ops.open = Open;
  ops.read = Read;
  ops.write = Write;
  ops.flush = Flush;
  ops.release = Release;
  ops.fsync = Fsync;
  ops.fallocate = Fallocate;
}

}  // namespace medvfs::fs::internal
