// lookup, forget, mkdir, rmdir, opendir, readdir, releasedir, fsyncdir.
#include <algorithm>

#include "fs/op_util.h"

namespace medvfs::fs::internal {
namespace {

using store::Status;

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  RunOp(req, "lookup", parent, [&]() -> Status {
    Filesystem& fs = Fs(req);
    // Search permission on the directory, as every step of a path walk needs.
    MEDVFS_RETURN_IF_ERROR(
        RequireAccess(req, fs, parent, kMayExec, store::AuditOp::kListDir, name, "lookup"));
    if (IsViewNode(parent)) {
      MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, parent));
      MEDVFS_ASSIGN_OR_RETURN(ViewEntry child, ResolveViewChildCached(fs, view, name));
      return ReplyViewEntry(req, fs, child.view,
                            ChildAuditPath(view, fs.nodes().AuditPath(parent), child));
    }
    if (name == kVersionDirName) {
      return ReplyViewEntry(req, fs, VersionRootOf(parent), AuditPathOf(fs, parent));
    }
    if (name == kMetaDirName) {
      return ReplyViewEntry(req, fs, LiveMetaRootOf(parent), AuditPathOf(fs, parent));
    }
    if (parent == FUSE_ROOT_ID && name == kPatientsDirName) {
      return ReplyViewEntry(req, fs, PatientsRoot(), "/" + std::string(kPatientsDirName));
    }
    MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, fs.archive().Lookup(parent, name));
    ReplyRealEntry(req, fs, attr);
    return Status::Ok();
  });
}

void ForgetOne(Filesystem& fs, fuse_ino_t ino, uint64_t nlookup) {
  if (IsViewNode(ino)) {
    fs.nodes().Forget(ino, nlookup);
  } else {
    fs.archive().Forget(ino, nlookup);
  }
}

void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  ForgetOne(Fs(req), ino, nlookup);
  fuse_reply_none(req);
}

void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Filesystem& fs = Fs(req);
  for (size_t i = 0; i < count; ++i) ForgetOne(fs, forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void MakeDir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  RunOp(req, "mkdir", parent, [&]() -> Status {
    Filesystem& fs = Fs(req);
    MEDVFS_RETURN_IF_ERROR(CheckNewRealName(fs, parent, name));
    MEDVFS_RETURN_IF_ERROR(
        RequireAccess(req, fs, parent, kMayWrite | kMayExec, store::AuditOp::kMkdir, name));
    MEDVFS_ASSIGN_OR_RETURN(store::Attr attr,
                            fs.archive().MakeDir(parent, name, mode & 07777, CallerOf(req)));
    ReplyRealEntry(req, fs, attr);
    return Status::Ok();
  });
}

void RemoveDir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  RunOp(req, "rmdir", parent, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (IsViewNode(parent) || IsViewName(parent, name)) return ViewIsReadOnly();
    MEDVFS_RETURN_IF_ERROR(
        RequireAccess(req, fs, parent, kMayWrite | kMayExec, store::AuditOp::kRmdir, name));
    MEDVFS_RETURN_IF_ERROR(RequireStickyAllows(req, fs, parent, name, store::AuditOp::kRmdir));
    MEDVFS_RETURN_IF_ERROR(fs.archive().RemoveDir(parent, name, CallerOf(req)));
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

// The listing of a real directory, with "@version" and ".meta" (and "@patients" in the root)
// when versions=visible.
Status ListRealDir(Filesystem& fs, fuse_ino_t ino, std::vector<DirItem>* items) {
  MEDVFS_ASSIGN_OR_RETURN(auto entries, fs.archive().ReadDir(ino));
  for (store::DirEntry& entry : entries) {
    if (entry.name == "." || entry.name == "..") continue;
    items->push_back(DirItem{std::move(entry.name), entry.ino, entry.mode & S_IFMT});
  }
  if (fs.config().versions_visible) {
    items->push_back(
        DirItem{std::string(kVersionDirName), StableViewIno(VersionRootOf(ino)), S_IFDIR});
    items->push_back(
        DirItem{std::string(kMetaDirName), StableViewIno(LiveMetaRootOf(ino)), S_IFDIR});
    if (ino == FUSE_ROOT_ID) {
      items->push_back(
          DirItem{std::string(kPatientsDirName), StableViewIno(PatientsRoot()), S_IFDIR});
    }
  }
  return Status::Ok();
}

Status ListViewDir(Filesystem& fs, fuse_ino_t ino, std::vector<DirItem>* items) {
  MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
  MEDVFS_ASSIGN_OR_RETURN(auto entries, ListViewCached(fs, view));
  for (ViewEntry& entry : entries) {
    items->push_back(DirItem{std::move(entry.name), StableViewIno(entry.view), entry.mode});
  }
  return Status::Ok();
}

void OpenDirectory(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  RunOp(req, "opendir", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    auto dir = std::make_unique<OpenDir>();
    // "." and "..": d_ino of ".." is not used by the kernel; the directory's own is harmless.
    uint64_t self = ino;
    store::AuditEvent listed;
    if (IsViewNode(ino)) {
      MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
      self = StableViewIno(view);
      listed = ViewReadEvent(fs, ino, view);
    } else {
      listed.op = store::AuditOp::kListDir;
      listed.path = AuditPathOf(fs, ino);
    }
    if (Enforcing(fs)) {
      MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, NodeAttr(fs, ino));
      MEDVFS_RETURN_IF_ERROR(
          AuditDenial(req, fs, CheckAccess(CredentialsOf(req), attr, kMayRead), listed));
    }
    dir->items.push_back(DirItem{".", self, S_IFDIR});
    dir->items.push_back(DirItem{"..", self, S_IFDIR});
    MEDVFS_RETURN_IF_ERROR(IsViewNode(ino) ? ListViewDir(fs, ino, &dir->items)
                                           : ListRealDir(fs, ino, &dir->items));
    fi->fh = reinterpret_cast<uint64_t>(dir.get());
    // Names are patient data: every listing is recorded (before the reply, so that an entry
    // exists once the caller has the names).
    RecordAudit(req, fs, std::move(listed));
    if (fuse_reply_open(req, fi) == 0) dir.release();
    return Status::Ok();
  });
}

void ReadDirectory(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  RunOp(req, "readdir", ino, [&]() -> Status {
    const OpenDir* dir = DirOf(fi);
    std::string buf(size, '\0');
    size_t used = 0;
    for (size_t i = static_cast<size_t>(std::max<off_t>(off, 0)); i < dir->items.size(); ++i) {
      const DirItem& item = dir->items[i];
      struct stat st {};
      st.st_ino = item.ino;
      st.st_mode = item.mode;
      const size_t need = fuse_add_direntry(req, buf.data() + used, size - used, item.name.c_str(),
                                            &st, static_cast<off_t>(i + 1));
      if (need > size - used) break;
      used += need;
    }
    fuse_reply_buf(req, buf.data(), used);
    return Status::Ok();
  });
}

void ReleaseDirectory(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  delete DirOf(fi);
  fuse_reply_err(req, 0);
}

void SyncDirectory(fuse_req_t req, fuse_ino_t ino, int /*datasync*/, fuse_file_info* /*fi*/) {
  RunOp(req, "fsyncdir", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    if (!IsViewNode(ino) && !fs.config().read_only) {
      MEDVFS_RETURN_IF_ERROR(fs.archive().SyncAll());
    }
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

}  // namespace

void AddDirOps(fuse_lowlevel_ops& ops) {
  ops.lookup = Lookup;
  ops.forget = Forget;
  ops.forget_multi = ForgetMulti;
  ops.mkdir = MakeDir;
  ops.rmdir = RemoveDir;
  ops.opendir = OpenDirectory;
  ops.readdir = ReadDirectory;
  ops.releasedir = ReleaseDirectory;
  ops.fsyncdir = SyncDirectory;
}

}  // namespace medvfs::fs::internal
