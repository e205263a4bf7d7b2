// getattr, setattr, statfs.
#include <sys/statvfs.h>

#include "fs/op_util.h"

namespace medvfs::fs::internal {
namespace {

using store::Status;

void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  RunOp(req, "getattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(ino)) {
      MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
      MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, ViewAttr(fs.archive(), view));
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
  OpenFile* file = fi != nullptr ? FileOf(fi) : nullptr;
  MEDVFS_RETURN_IF_ERROR(TruncateNote(fs.archive(), view,
                                      file != nullptr ? file->handle.get() : nullptr,
                                      static_cast<uint64_t>(attr.st_size), CallerOf(req)));
  if (file != nullptr) file->wrote = true;
  MEDVFS_ASSIGN_OR_RETURN(store::Attr fresh, ViewAttr(fs.archive(), view));
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

void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  RunOp(req, "setattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(ino)) return SetViewAttr(req, fs, ino, *attr, to_set, fi);
    if (fs.config().read_only) return Status::ReadOnly("mounted read-only");
    MEDVFS_ASSIGN_OR_RETURN(store::Attr fresh,
                            fs.archive().SetAttr(ino, ToRequest(*attr, to_set), CallerOf(req)));
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
