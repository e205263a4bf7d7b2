// setxattr, getxattr, listxattr, removexattr.
//
// Some attributes are served here rather than by the store: user.medvfs.restore (settable on
// DIR/@version/NAME: restores a version), user.medvfs.stats (readable on the mount root: the
// archive's statistics as JSON), and the virtual attributes of live files (fs/file_xattrs.h:
// user.medvfs.version, .sha256, .note and user.dicom.<Keyword>). None of them is listed: the
// namespaces user.medvfs. and user.dicom. are medvfs's, and listxattr shows stored
// attributes only, so that cp -a, rsync -X and getfattr -d copy nothing virtual.
#include "fs/file_xattrs.h"
#include "fs/op_util.h"
#include "store/log.h"

namespace medvfs::fs::internal {
namespace {

using store::Status;

// The size-0 query protocol: with size 0 reply the length; ERANGE when the buffer is short.
Status ReplyXattrValue(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (value.size() > size) {
    return Status(store::Code::kRange, "xattr buffer too small");
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
  return Status::Ok();
}

// Tells the kernel to drop what it caches about a live inode whose content changed behind
// its back (a restore).
void InvalidateInode(Filesystem& fs, store::InodeId ino) {
  fuse_session* session = fs.session();
  if (session == nullptr) return;
  const int rc = fuse_lowlevel_notify_inval_inode(session, ino, 0, 0);
  if (rc != 0 && rc != -ENOENT) {
    MEDVFS_LOG_WARNING("could not invalidate node %llu: error %d",
                       static_cast<unsigned long long>(ino), -rc);
  }
}

void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) {
  RunOp(req, "setxattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(ino)) {
      if (name != kRestoreXattr) return ViewIsReadOnly();
      if (fs.config().read_only) return Status::ReadOnly("mounted read-only");
      MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
      MEDVFS_ASSIGN_OR_RETURN(
          store::Attr live,
          RestoreFromView(fs.archive(), view, std::string_view(value, size), CallerOf(req)));
      fuse_reply_err(req, 0);
      InvalidateInode(fs, live.ino);
      InvalidateInode(fs, view.ino);  // the directory that holds the name (relinked if deleted)
      return Status::Ok();
    }
    if (fs.config().read_only) return Status::ReadOnly("mounted read-only");
    if (IsVirtualXattr(name)) {
      MEDVFS_RETURN_IF_ERROR(SetVirtualXattr(fs.archive(), ino, name, std::string_view(value, size),
                                             flags, CallerOf(req)));
      fuse_reply_err(req, 0);
      return Status::Ok();
    }
    MEDVFS_RETURN_IF_ERROR(
        fs.archive().SetXattr(ino, name, std::string_view(value, size), flags, CallerOf(req)));
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  RunOp(req, "getxattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(ino)) return Status(store::Code::kNoData, "views have no xattrs");
    std::string value;
    if (ino == FUSE_ROOT_ID && name == kStatsXattr) {
      MEDVFS_ASSIGN_OR_RETURN(store::ArchiveStats stats, fs.archive().Stats());
      value = FormatStatsJson(stats);
    } else if (IsVirtualXattr(name)) {
      MEDVFS_ASSIGN_OR_RETURN(value, GetVirtualXattr(fs.archive(), ino, name));
    } else {
      MEDVFS_ASSIGN_OR_RETURN(value, fs.archive().GetXattr(ino, name));
    }
    return ReplyXattrValue(req, value, size);
  });
}

void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  RunOp(req, "listxattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    std::string names;
    if (!IsViewNode(ino)) {
      MEDVFS_ASSIGN_OR_RETURN(auto list, fs.archive().ListXattr(ino));
      for (const std::string& name : list) {
        if (IsVirtualXattr(name)) continue;  // never stored since medvfs owns the namespace
        names += name;
        names += '\0';
      }
    }
    return ReplyXattrValue(req, names, size);
  });
}

void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  RunOp(req, "removexattr", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(ino)) return ViewIsReadOnly();
    if (fs.config().read_only) return Status::ReadOnly("mounted read-only");
    if (IsVirtualXattr(name)) {
      MEDVFS_RETURN_IF_ERROR(RemoveVirtualXattr(fs.archive(), ino, name, CallerOf(req)));
    } else {
      MEDVFS_RETURN_IF_ERROR(fs.archive().RemoveXattr(ino, name, CallerOf(req)));
    }
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

}  // namespace

void AddXattrOps(fuse_lowlevel_ops& ops) {
  ops.setxattr = SetXattr;
  ops.getxattr = GetXattr;
  ops.listxattr = ListXattr;
  ops.removexattr = RemoveXattr;
}

}  // namespace medvfs::fs::internal
