// getattr, setattr, statfs.
#include <sys/statvfs.h>

#include <cstdio>
#include <string>

#include "fs/op_util.h"

namespace medvfs::fs::internal {
namespace {

using store::Status;

void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  RunOp(req, "getattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(ino)) {
      MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
      MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, ViewAttrOf(fs, view));
      const struct stat st = ToStat(attr);
      fuse_reply_attr(req, &st, ViewTimeout(fs, view));
      return Status::Ok();
    }
    MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, fs.archive().GetAttr(ino));
    const struct stat st = ToStat(attr);
    fuse_reply_attr(req, &st, fs.config().timeout_s);
    return Status::Ok();
  });
}

// Views refuse every change except a size change of a `note` file (truncate(1), or an
// ftruncate through a handle open for writing); the times the kernel sends along are ignored.
Status SetViewAttr(fuse_req_t req, Filesystem& fs, fuse_ino_t ino, const struct stat& attr,
                   int to_set, fuse_file_info* fi) {
  constexpr int kOwnership = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID;
  if (!(to_set & FUSE_SET_ATTR_SIZE) || (to_set & kOwnership) || attr.st_size < 0) {
    return ViewIsReadOnly();
  }
  MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
  if (view.kind != ViewKind::kNoteFile) return ViewIsReadOnly();
  if (fs.config().read_only) return Status::ReadOnly("mounted read-only");
  if (Enforcing(fs) && fi == nullptr) {
    MEDVFS_ASSIGN_OR_RETURN(store::Attr current, ViewAttrOf(fs, view));
    store::AuditEvent denied = ViewReadEvent(fs, ino, view);
    denied.op = store::AuditOp::kTruncate;
    MEDVFS_RETURN_IF_ERROR(AuditDenial(req, fs, CheckAccess(CredentialsOf(req), current, kMayWrite),
                                       std::move(denied)));
  }
  OpenFile* file = fi != nullptr ? FileOf(fi) : nullptr;
  MEDVFS_RETURN_IF_ERROR(TruncateNote(fs.archive(), view,
                                      file != nullptr ? file->handle.get() : nullptr,
                                      static_cast<uint64_t>(attr.st_size), CallerOf(req)));
  if (file != nullptr) file->wrote = true;
  MEDVFS_ASSIGN_OR_RETURN(store::Attr fresh, ViewAttrOf(fs, view));
  const struct stat st = ToStat(fresh);
  fuse_reply_attr(req, &st, ViewTimeout(fs, view));
  return Status::Ok();
}

int64_t TimeNs(const timespec& ts) { return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec; }

store::SetAttrRequest ToRequest(const struct stat& attr, int to_set) {
  store::SetAttrRequest request;
  if (to_set & FUSE_SET_ATTR_MODE) request.mode = attr.st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) request.uid = attr.st_uid;
  if (to_set & FUSE_SET_ATTR_GID) request.gid = attr.st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) request.size = static_cast<uint64_t>(attr.st_size);
  // UTIME_NOW arrives as *_NOW; UTIME_OMIT leaves the flag unset.
  const int64_t now = (to_set & (FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)) ? NowNs() : 0;
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    request.atime_ns = now;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    request.atime_ns = TimeNs(attr.st_atim);
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    request.mtime_ns = now;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    request.mtime_ns = TimeNs(attr.st_mtim);
  }
  return request;
}

// With Enforcing: chmod, chown, truncate and utimens rules (fs/access.h), which may also drop
// S_ISGID from request->mode. A denial is recorded as the change it refused.
Status CheckSetAttrRequest(fuse_req_t req, Filesystem& fs, fuse_ino_t ino, int to_set,
                           bool through_handle, store::SetAttrRequest* request) {
  if (!Enforcing(fs)) return Status::Ok();
  MEDVFS_ASSIGN_OR_RETURN(store::Attr current, fs.archive().GetAttr(ino));
  AttrChange change;
  change.mode = request->mode;
  change.uid = request->uid;
  change.gid = request->gid;
  change.size = request->size.has_value();
  change.size_through_handle = change.size && through_handle;
  change.times = request->atime_ns.has_value() || request->mtime_ns.has_value();
  change.times_now =
      (to_set & FUSE_SET_ATTR_ATIME_NOW) != 0 && (to_set & FUSE_SET_ATTR_MTIME_NOW) != 0;
  Status check = CheckSetAttr(CredentialsOf(req), current, &change);
  if (check.ok()) {
    request->mode = change.mode;
    return check;
  }
  store::AuditEvent denied;
  denied.path = AuditPathOf(fs, ino);
  if (request->uid || request->gid) {
    denied.op = store::AuditOp::kChown;
    denied.detail = std::to_string(request->uid.value_or(current.uid)) + ":" +
                    std::to_string(request->gid.value_or(current.gid));
  } else if (request->mode) {
    char octal[16];
    std::snprintf(octal, sizeof(octal), "%04o", *request->mode & 07777);
    denied.op = store::AuditOp::kChmod;
    denied.detail = octal;
  } else if (request->size) {
    denied.op = store::AuditOp::kTruncate;
    denied.detail = std::to_string(*request->size);
  } else {
    denied.op = store::AuditOp::kSetTimes;
  }
  return AuditDenial(req, fs, check, std::move(denied));
}

void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  RunOp(req, "setattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(ino)) return SetViewAttr(req, fs, ino, *attr, to_set, fi);
    if (fs.config().read_only) return Status::ReadOnly("mounted read-only");
    store::SetAttrRequest request = ToRequest(*attr, to_set);
    MEDVFS_RETURN_IF_ERROR(CheckSetAttrRequest(req, fs, ino, to_set, fi != nullptr, &request));
    MEDVFS_ASSIGN_OR_RETURN(store::Attr fresh, fs.archive().SetAttr(ino, request, CallerOf(req)));
    if (request.mode || request.uid || request.gid) fs.InvalidateHistoryAttrs(fresh.history);
    // ftruncate on a handle joins that handle's pending version: its close commits it.
    if (fi != nullptr && (to_set & FUSE_SET_ATTR_SIZE)) FileOf(fi)->wrote = true;
    const struct stat st = ToStat(fresh);
    fuse_reply_attr(req, &st, fs.config().timeout_s);
    return Status::Ok();
  });
}

void StatFs(fuse_req_t req, fuse_ino_t ino) {
  RunOp(req, "statfs", ino, [&]() -> Status {
    MEDVFS_ASSIGN_OR_RETURN(store::FsStats stats, Fs(req).archive().StatFs());
    struct statvfs st {};
    st.f_bsize = stats.block_size;
    st.f_frsize = stats.block_size;
    st.f_blocks = stats.blocks;
    st.f_bfree = stats.blocks_free;
    st.f_bavail = stats.blocks_available;
    st.f_files = stats.files;
    st.f_ffree = stats.files_free;
    st.f_favail = stats.files_free;
    st.f_namemax = stats.name_max;
    fuse_reply_statfs(req, &st);
    return Status::Ok();
  });
}

}  // namespace

void AddAttrOps(fuse_lowlevel_ops& ops) {
  ops.getattr = GetAttr;
  ops.setattr = SetAttr;
  ops.statfs = StatFs;
}

}  // namespace medvfs::fs::internal
