// POSIX access control lists (POSIX 1003.1e draft 17, as Linux implements them), in the form
// the kernel passes them through FUSE: the values of the extended attributes
// system.posix_acl_access and system.posix_acl_default (a little-endian header, version 2,
// then {u16 tag, u16 perm, u32 id} per entry; linux/posix_acl_xattr.h).
//
// The kernel validates an ACL before it sends it (posix_acl_valid) and evaluates the ACLs it
// caches under default_permissions; these functions do for the daemon what the kernel does
// for disk file systems: keep the mode and the access ACL in step (posix_acl_update_mode,
// posix_acl_chmod), derive a new node's ACLs from its directory's default ACL
// (posix_acl_create), and decide access (posix_acl_permission) for the daemon's own checks.
// libacl offers none of this for the xattr form (its acl_t is a user-space handle over a
// file), so the format, 8 bytes per entry, is read here.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace medvfs::store {

inline constexpr std::string_view kAclAccessXattr = "system.posix_acl_access";
inline constexpr std::string_view kAclDefaultXattr = "system.posix_acl_default";

inline bool IsAclXattr(std::string_view name) {
  return name == kAclAccessXattr || name == kAclDefaultXattr;
}

enum class AclTag : uint16_t {
  kUserObj = 0x01,
  kUser = 0x02,
  kGroupObj = 0x04,
  kGroup = 0x08,
  kMask = 0x10,
  kOther = 0x20,
};

struct AclEntry {
  AclTag tag = AclTag::kOther;
  uint16_t perm = 0;  // r=4, w=2, x=1
  uint32_t id = 0;    // uid or gid for kUser and kGroup; unused otherwise
};

// Entries in the kernel's order: by tag, then by id.
using Acl = std::vector<AclEntry>;

// Parses and validates an xattr value: version 2; exactly one owner, owning-group and other
// entry; a mask when there are named entries, at most one; no duplicate ids; perms within rwx;
// entries sorted. An ACL of no entries (a header alone) parses to an empty Acl. kInvalid
// (EINVAL) otherwise.
StatusOr<Acl> ParseAcl(std::string_view xattr);

// The xattr value of `acl` (ids of the non-named entries are written as -1, as the kernel
// writes them).
std::string SerializeAcl(const Acl& acl);

// The three entries that mirror permission bits `mode`.
Acl AclFromMode(uint32_t mode);

// posix_acl_equiv_mode(): the permission bits (0777) that `acl` implies (the group bits are
// the mask's when there is one), and whether the ACL says no more than those bits.
struct AclMode {
  uint32_t perms = 0;
  bool equivalent = true;
};
AclMode ModeOfAcl(const Acl& acl);

// posix_acl_chmod(): the owner, other, and mask (or, without a mask, owning-group) entries take
// the new permission bits of `mode`; named entries stay.
void ChmodAcl(Acl* acl, uint32_t mode);

// posix_acl_create(): what a node created with `mode` (type and permission bits, before any
// umask) in a directory gets. With the directory's default ACL `parent_default` (an xattr
// value; empty for none), the access ACL is the default ACL with its owner, other and mask (or
// owning-group) entries limited by `mode`, the mode limited by those entries, and the umask
// ignored; directories also inherit the default ACL itself. Without one, the mode loses
// `umask`'s bits and no ACL is set. Symlinks get neither. Empty strings for no attribute.
struct InheritedAcl {
  uint32_t mode = 0;
  std::string access;
  std::string default_acl;
};
StatusOr<InheritedAcl> InheritAcl(std::string_view parent_default, uint32_t mode, uint32_t umask);

// posix_acl_permission(): whether a non-root caller with `uid` (and group membership
// `in_group`) may do `mask` (r=4, w=2, x=1) on a node owned by `owner` whose access ACL is
// `acl`: the owner entry for the owner; else a named-user entry, limited by the mask; else the
// owning-group and named-group entries that match, any one of which granting all of `mask` (as
// limited by the mask) is enough, and a match that grants nothing denies; else the other entry.
bool AclPermits(const Acl& acl, uint32_t owner, uint32_t uid,
                const std::function<bool(uint32_t)>& in_group, uint32_t owning_gid, int mask);

// The ACL as a node of a read-only view shows it: every entry without w.
std::string WithoutWrite(std::string_view xattr);

}  // namespace medvfs::store
