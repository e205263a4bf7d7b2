// POSIX permission checks the daemon makes itself on multi-user mounts.
//
// Every mount has the kernel check permissions (default_permissions, see fs/mount_options.h):
// only the kernel can, for FIFOs, sockets and device nodes, whose opens and connects never
// reach the daemon. On allow_other mounts the daemon checks every request that does reach it
// again, with the caller's credentials, and writes each denial to the audit log: that is what
// catches the views, whose rules are not the modes they show (a version, a .meta file, a
// virtual xattr), and it keeps the checks whole should the kernel's be missing. What the
// kernel refuses first never reaches the daemon and is not audited. These functions do what
// the kernel's generic_permission() and the VFS around it (may_create, may_delete, vfs_rename,
// setattr_prepare, may_setattr, xattr_permission, may_linkat, check_sticky) do. The VFS alone
// enforces trusted.* xattrs, user.* xattrs on special files, and immutable/append-only flags
// (which medvfs has none of).
//
// Differences from the kernel (see man/medvfs-mount.1):
// - "root" is uid 0: capabilities are not seen over FUSE, so a uid-0 process without
//   CAP_DAC_OVERRIDE still passes, and a non-zero uid with capabilities does not.
// - Executing a file arrives as an open for reading: the kernel itself only checks that some x
//   bit is set, and the daemon checks r for the caller.
// - Hard links follow fs.protected_hardlinks=1 (Debian's default) whatever the sysctl says.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "store/archive.h"
#include "store/status.h"

namespace medvfs::fs {

// Access mask bits, as MAY_EXEC, MAY_WRITE, MAY_READ (and X_OK, W_OK, R_OK).
inline constexpr int kMayExec = 1;
inline constexpr int kMayWrite = 2;
inline constexpr int kMayRead = 4;

// Who asks: the file-system uid and gid of the request and its supplementary groups. The
// groups may be loaded on first need (reading /proc costs a little; most checks are decided
// by the owner alone).
class Credentials {
 public:
  using GroupLoader = std::function<std::vector<uint32_t>()>;
  Credentials(uint32_t uid, uint32_t gid, std::vector<uint32_t> groups)
      : uid_(uid), gid_(gid), groups_(std::move(groups)) {}
  Credentials(uint32_t uid, uint32_t gid, GroupLoader load_groups)
      : uid_(uid), gid_(gid), load_groups_(std::move(load_groups)) {}

  uint32_t uid() const { return uid_; }
  uint32_t gid() const { return gid_; }
  bool is_root() const { return uid_ == 0; }
  // True for the primary gid and the supplementary groups (in_group_p).
  bool InGroup(uint32_t gid) const;

 private:
  uint32_t uid_;
  uint32_t gid_;
  GroupLoader load_groups_;
  mutable std::optional<std::vector<uint32_t>> groups_;
};

// generic_permission(): Ok when `creds` may do `mask` (kMay* bits) on a node with `attr`'s
// owner and mode, else kAccess (EACCES). A node with an access ACL (attr.acl) is decided by
// it (store::AclPermits); otherwise the owner's bits apply to the owner, the group's to
// members of the file's group, the others' to everyone else; root passes every r and w check,
// x on directories, and x on other files that have at least one x bit.
store::Status CheckAccess(const Credentials& creds, const store::Attr& attr, int mask);

// What open(2) with `flags` needs: r for O_RDONLY and O_RDWR, w for O_WRONLY, O_RDWR and
// O_TRUNC.
int OpenMask(int flags);

// What a setattr changes (fuse's to_set, decoded).
struct AttrChange {
  std::optional<uint32_t> mode;  // permission bits (07777)
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  bool size = false;                 // truncate or extend
  bool size_through_handle = false;  // ftruncate: the kernel checked the fd is writable
  bool times = false;                // atime or mtime changes
  bool times_now = false;            // both set to now and nothing explicit (utimes(NULL), touch)
};

// setattr_prepare() and may_setattr(): chown only by root (the owner may "change" the owner
// to itself); chgrp by root, or by the owner to a group it belongs to; chmod by the owner or
// root, and S_ISGID is dropped from *change->mode when a non-root caller is not in the file's
// (new) group; a non-owner may only clear S_ISUID/S_ISGID and only with w (what the kernel
// sends itself when a non-owner writes to a set-id file); truncate needs w unless through a
// handle; times set to now need the owner, root, or w; explicit times need the owner or root.
// Returns kPermission (EPERM) or kAccess (EACCES) on denial.
store::Status CheckSetAttr(const Credentials& creds, const store::Attr& current,
                           AttrChange* change);

enum class XattrAccess : uint8_t { kRead, kWrite };

// xattr_permission() and the capability checks: user.* need r to read and w to write;
// trusted.* are root's (kNoData for others' reads, as the kernel hides them; kPermission for
// writes); security.* may be read by anyone and written by root only; the POSIX ACLs
// (system.posix_acl_access, system.posix_acl_default) may be read by anyone and set or
// removed by the owner and root; other namespaces are left to the store.
store::Status CheckXattr(const Credentials& creds, const store::Attr& attr, std::string_view name,
                         XattrAccess access);

// may_linkat() with fs.protected_hardlinks=1: root and the owner may link anything; others
// only a regular file that is not set-uid, not set-gid-and-group-executable, and that they
// may read and write. kPermission (EPERM) otherwise.
store::Status CheckLinkSource(const Credentials& creds, const store::Attr& source);

// check_sticky(): in a directory with the sticky bit (S_ISVTX, /tmp-style), only the owner of
// an entry, the owner of the directory and root may unlink, rmdir or rename it away, rename
// over it or exchange it. kPermission (EPERM) otherwise.
store::Status CheckSticky(const Credentials& creds, const store::Attr& dir,
                          const store::Attr& entry);

// The checks of rename(2) beyond the directories' w and x: moving a directory to another
// parent needs w on it (to rewrite its ".."), and so does the other side of an exchange when
// it is a directory. `target` is the node replaced or exchanged, if any.
store::Status CheckRenameNodes(const Credentials& creds, const store::Attr& source,
                               const std::optional<store::Attr>& target, bool same_parent,
                               bool exchange);

}  // namespace medvfs::fs
