// lookup, forget, mkdir, rmdir, opendir, readdir, releasedir, fsyncdir.
#include <algorithm>

#include "fs/op_util.h"

namespace medvfs::fs::internal {
namespace {

using store::Status;
using store::StatusOr;

// The root's /@anon, with the path the audit log names it by.
Status ReplyAnonRoot(fuse_req_t req, Filesystem& fs) {
  return ReplyViewEntry(req, fs, AnonRoot(), "/" + std::string(kAnonDirName));
}

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
    if (fs.config().anon_only) {
      // Nothing of the live tree is reachable: /@anon is the only way in.
      if (parent == FUSE_ROOT_ID && name == kAnonDirName) return ReplyAnonRoot(req, fs);
      return Status::NotFound("this mount serves @anon only");
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
    if (parent == FUSE_ROOT_ID && name == kAnonDirName) return ReplyAnonRoot(req, fs);
    MEDVFS_ASSIGN_OR_RETURN(store::NodeRef node, fs.archive().Lookup(parent, name));
    ReplyRealEntry(req, fs, std::move(node));
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
    MEDVFS_ASSIGN_OR_RETURN(store::NodeRef node,
                            fs.archive().MakeDir(parent, name, mode & 07777, CreatorOf(req)));
    fs.InvalidateHistoryEntry(parent, name);
    ReplyRealEntry(req, fs, std::move(node));
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
    fs.InvalidateHistoryEntry(parent, name);
    fuse_reply_err(req, 0);
    return Status::Ok();
  });
}

// The listing of a real directory, with "@version" and ".meta" (and "@patients" and "@anon" in
// the root) when versions=visible; with anon_only, the root holds "@anon" alone.
Status ListRealDir(Filesystem& fs, fuse_ino_t ino, std::vector<DirItem>* items) {
  const DirItem anon{std::string(kAnonDirName), StableViewIno(AnonRoot()), S_IFDIR, std::nullopt,
                     false};
  if (fs.config().anon_only) {
    if (ino != FUSE_ROOT_ID) return Status::NotFound("this mount serves @anon only");
    items->push_back(anon);
    return Status::Ok();
  }
  MEDVFS_ASSIGN_OR_RETURN(auto entries, fs.archive().ReadDir(ino));
  for (store::DirEntry& entry : entries) {
    if (entry.name == "." || entry.name == "..") continue;
    items->push_back(
        DirItem{std::move(entry.name), entry.ino, entry.mode & S_IFMT, std::nullopt, true});
  }
  if (fs.config().versions_visible) {
    items->push_back(DirItem{std::string(kVersionDirName), StableViewIno(VersionRootOf(ino)),
                             S_IFDIR, std::nullopt, false});
    items->push_back(DirItem{std::string(kMetaDirName), StableViewIno(LiveMetaRootOf(ino)), S_IFDIR,
                             std::nullopt, false});
    if (ino == FUSE_ROOT_ID) {
      items->push_back(DirItem{std::string(kPatientsDirName), StableViewIno(PatientsRoot()),
                               S_IFDIR, std::nullopt, false});
      items->push_back(anon);
    }
  }
  return Status::Ok();
}

Status ListViewDir(Filesystem& fs, fuse_ino_t ino, std::vector<DirItem>* items) {
  MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
  MEDVFS_ASSIGN_OR_RETURN(auto entries, ListViewCached(fs, view));
  for (ViewEntry& entry : entries) {
    const uint64_t child_ino = StableViewIno(entry.view);
    items->push_back(DirItem{std::move(entry.name), child_ino, entry.mode, std::move(entry.view)});
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
    dir->items.push_back(DirItem{".", self, S_IFDIR, std::nullopt, false});
    dir->items.push_back(DirItem{"..", self, S_IFDIR, std::nullopt, false});
    MEDVFS_RETURN_IF_ERROR(IsViewNode(ino) ? ListViewDir(fs, ino, &dir->items)
                                           : ListRealDir(fs, ino, &dir->items));
    fi->fh = reinterpret_cast<uint64_t>(dir.get());
    // Names are patient data: every listing is recorded (before the reply, so that an entry
    // exists once the caller has the names).
    RecordAudit(req, fs, std::move(listed));
    if (fuse_reply_open(req, fi) == 0) static_cast<void>(dir.release());  // fi->fh owns it
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

// One readdirplus entry that carries attributes: looks the child up (one lookup reference the
// kernel will forget), or returns ino 0 when it is gone or has no attributes to give.
StatusOr<fuse_entry_param> LookUpForListing(Filesystem& fs, fuse_ino_t dir_ino,
                                            const std::optional<ViewDescriptor>& dir_view,
                                            const DirItem& item) {
  if (!item.with_attributes) return fuse_entry_param{};
  if (item.view) {
    const ViewEntry child{item.name, *item.view, item.mode};
    return AcquireViewEntry(fs, *item.view,
                            ChildAuditPath(*dir_view, fs.nodes().AuditPath(dir_ino), child));
  }
  MEDVFS_ASSIGN_OR_RETURN(store::NodeRef node, fs.archive().Lookup(dir_ino, item.name));
  // Handed over: ReadDirectoryPlus gives it to the kernel with the reply, or forgets it.
  return RealEntry(fs, node.Release());
}

// readdir with each entry's attributes, so that `ls -l` and `ls -lR` need no LOOKUP per name
// (a FUSE round trip each). Entries are looked up only once they are known to fit the reply.
void ReadDirectoryPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  RunOp(req, "readdirplus", ino, [&]() -> Status {
    Filesystem& fs = Fs(req);
    const OpenDir* dir = DirOf(fi);
    std::optional<ViewDescriptor> dir_view;
    if (IsViewNode(ino)) {
      MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, ViewOf(fs, ino));
      dir_view = std::move(view);
    }
    // Attributes are what a lookup would give, which needs search permission on the directory
    // (read permission, checked at opendir, gives only the names).
    bool may_search = true;
    if (Enforcing(fs)) {
      MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, NodeAttr(fs, ino));
      may_search = CheckAccess(CredentialsOf(req), attr, kMayExec).ok();
    }
    std::string buf(size, '\0');
    size_t used = 0;
    std::vector<fuse_ino_t> looked_up;
    for (size_t i = static_cast<size_t>(std::max<off_t>(off, 0)); i < dir->items.size(); ++i) {
      const DirItem& item = dir->items[i];
      const size_t need = fuse_add_direntry_plus(req, nullptr, 0, item.name.c_str(), nullptr, 0);
      if (need > size - used) break;
      fuse_entry_param e{};
      if (may_search) {
        StatusOr<fuse_entry_param> found = LookUpForListing(fs, ino, dir_view, item);
        if (found.ok()) e = *found;  // gone meanwhile: the name without attributes
      }
      if (e.ino == 0) {
        e.attr.st_ino = static_cast<ino_t>(item.ino);
        e.attr.st_mode = item.mode;
      } else {
        looked_up.push_back(e.ino);
      }
      used += fuse_add_direntry_plus(req, buf.data() + used, size - used, item.name.c_str(), &e,
                                     static_cast<off_t>(i + 1));
    }
    // A reply the kernel did not take (interrupted) added no lookups.
    if (fuse_reply_buf(req, buf.data(), used) != 0) {
      for (fuse_ino_t node : looked_up) ForgetOne(fs, node, 1);
    }
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
  ops.readdirplus = ReadDirectoryPlus;
  ops.releasedir = ReleaseDirectory;
  ops.fsyncdir = SyncDirectory;
}

}  // namespace medvfs::fs::internal
