#include "store/posix_acl.h"

#include <algorithm>
#include <tuple>

namespace medvfs::store {
namespace {

constexpr uint32_t kXattrVersion = 2;
constexpr size_t kHeaderSize = 4;
constexpr size_t kEntrySize = 8;
constexpr uint32_t kUndefinedId = 0xffffffff;

uint32_t LoadLe(std::string_view bytes, size_t at, size_t width) {
  uint32_t value = 0;
  for (size_t i = 0; i < width; ++i) {
    value |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  }
  return value;
}

void StoreLe(std::string* out, uint32_t value, size_t width) {
  for (size_t i = 0; i < width; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

bool IsNamed(AclTag tag) { return tag == AclTag::kUser || tag == AclTag::kGroup; }

bool KnownTag(uint16_t tag) {
  switch (static_cast<AclTag>(tag)) {
    case AclTag::kUserObj:
    case AclTag::kUser:
    case AclTag::kGroupObj:
    case AclTag::kGroup:
    case AclTag::kMask:
    case AclTag::kOther:
      return true;
  }
  return false;
}

AclEntry* Find(Acl* acl, AclTag tag) {
  auto it =
      std::find_if(acl->begin(), acl->end(), [tag](const AclEntry& e) { return e.tag == tag; });
  return it == acl->end() ? nullptr : &*it;
}

const AclEntry* Find(const Acl& acl, AclTag tag) {
  auto it = std::find_if(acl.begin(), acl.end(), [tag](const AclEntry& e) { return e.tag == tag; });
  return it == acl.end() ? nullptr : &*it;
}

Status Invalid(const char* why) { return Status::Invalid(std::string("invalid ACL: ") + why); }

}  // namespace

StatusOr<Acl> ParseAcl(std::string_view xattr) {
  if (xattr.size() < kHeaderSize || (xattr.size() - kHeaderSize) % kEntrySize != 0) {
    return Invalid("bad size");
  }
  if (LoadLe(xattr, 0, 4) != kXattrVersion) return Invalid("unknown version");
  Acl acl;
  int owners = 0;
  int groups = 0;
  int others = 0;
  int masks = 0;
  bool named = false;
  for (size_t at = kHeaderSize; at < xattr.size(); at += kEntrySize) {
    const auto tag = static_cast<uint16_t>(LoadLe(xattr, at, 2));
    const auto perm = static_cast<uint16_t>(LoadLe(xattr, at + 2, 2));
    if (!KnownTag(tag)) return Invalid("unknown tag");
    if ((perm & ~7u) != 0) return Invalid("bad permissions");
    AclEntry entry{static_cast<AclTag>(tag), perm, 0};
    if (IsNamed(entry.tag)) {
      entry.id = LoadLe(xattr, at + 4, 4);
      named = true;
    }
    if (!acl.empty()) {
      const AclEntry& last = acl.back();
      if (std::tie(last.tag, last.id) >= std::tie(entry.tag, entry.id)) {
        return Invalid("entries out of order or repeated");
      }
    }
    owners += entry.tag == AclTag::kUserObj;
    groups += entry.tag == AclTag::kGroupObj;
    others += entry.tag == AclTag::kOther;
    masks += entry.tag == AclTag::kMask;
    acl.push_back(entry);
  }
  if (acl.empty()) return acl;
  if (owners != 1 || groups != 1 || others != 1) return Invalid("missing a required entry");
  if (named && masks == 0) return Invalid("named entries without a mask");
  return acl;
}

std::string SerializeAcl(const Acl& acl) {
  std::string out;
  out.reserve(kHeaderSize + acl.size() * kEntrySize);
  StoreLe(&out, kXattrVersion, 4);
  for (const AclEntry& entry : acl) {
    StoreLe(&out, static_cast<uint32_t>(entry.tag), 2);
    StoreLe(&out, entry.perm, 2);
    StoreLe(&out, IsNamed(entry.tag) ? entry.id : kUndefinedId, 4);
  }
  return out;
}

Acl AclFromMode(uint32_t mode) {
  return {{AclTag::kUserObj, static_cast<uint16_t>((mode >> 6) & 7), 0},
          {AclTag::kGroupObj, static_cast<uint16_t>((mode >> 3) & 7), 0},
          {AclTag::kOther, static_cast<uint16_t>(mode & 7), 0}};
}

AclMode ModeOfAcl(const Acl& acl) {
  AclMode result;
  uint32_t mask = 0;
  bool has_mask = false;
  for (const AclEntry& entry : acl) {
    switch (entry.tag) {
      case AclTag::kUserObj:
        result.perms |= uint32_t{entry.perm} << 6;
        break;
      case AclTag::kGroupObj:
        result.perms |= uint32_t{entry.perm} << 3;
        break;
      case AclTag::kOther:
        result.perms |= entry.perm;
        break;
      case AclTag::kMask:
        mask = uint32_t{entry.perm} << 3;
        has_mask = true;
        result.equivalent = false;
        break;
      case AclTag::kUser:
      case AclTag::kGroup:
        result.equivalent = false;
        break;
    }
  }
  if (has_mask) result.perms = (result.perms & ~uint32_t{070}) | mask;
  return result;
}

void ChmodAcl(Acl* acl, uint32_t mode) {
  if (AclEntry* owner = Find(acl, AclTag::kUserObj)) {
    owner->perm = static_cast<uint16_t>((mode >> 6) & 7);
  }
  if (AclEntry* other = Find(acl, AclTag::kOther)) other->perm = static_cast<uint16_t>(mode & 7);
  AclEntry* group = Find(acl, AclTag::kMask);
  if (group == nullptr) group = Find(acl, AclTag::kGroupObj);
  if (group != nullptr) group->perm = static_cast<uint16_t>((mode >> 3) & 7);
}

StatusOr<InheritedAcl> InheritAcl(std::string_view parent_default, uint32_t mode, uint32_t umask) {
  InheritedAcl result;
  const bool is_dir = (mode & 0170000) == 0040000;
  const bool is_symlink = (mode & 0170000) == 0120000;
  Acl acl;
  if (!parent_default.empty() && !is_symlink) {
    MEDVFS_ASSIGN_OR_RETURN(acl, ParseAcl(parent_default));
  }
  if (acl.empty()) {
    result.mode = is_symlink ? mode : mode & ~(umask & 0777);
    return result;
  }
  if (is_dir) result.default_acl = std::string(parent_default);
  // posix_acl_create_masq(): each class entry and the matching mode bits keep only what both
  // grant.
  AclEntry* owner = Find(&acl, AclTag::kUserObj);
  AclEntry* other = Find(&acl, AclTag::kOther);
  AclEntry* group = Find(&acl, AclTag::kMask);
  if (group == nullptr) group = Find(&acl, AclTag::kGroupObj);
  owner->perm = static_cast<uint16_t>(owner->perm & ((mode >> 6) & 7));
  group->perm = static_cast<uint16_t>(group->perm & ((mode >> 3) & 7));
  other->perm = static_cast<uint16_t>(other->perm & (mode & 7));
  result.mode = (mode & ~uint32_t{0777}) | (uint32_t{owner->perm} << 6) |
                (uint32_t{group->perm} << 3) | other->perm;
  if (!ModeOfAcl(acl).equivalent) result.access = SerializeAcl(acl);
  return result;
}

bool AclPermits(const Acl& acl, uint32_t owner, uint32_t uid,
                const std::function<bool(uint32_t)>& in_group, uint32_t owning_gid, int mask) {
  const auto want = static_cast<uint16_t>(mask & 7);
  const AclEntry* mask_entry = Find(acl, AclTag::kMask);
  const uint16_t limit = mask_entry != nullptr ? mask_entry->perm : 7;
  auto grants = [&](uint16_t perm) { return (perm & want) == want; };
  if (uid == owner) {
    const AclEntry* entry = Find(acl, AclTag::kUserObj);
    return entry != nullptr && grants(entry->perm);
  }
  for (const AclEntry& entry : acl) {
    if (entry.tag == AclTag::kUser && entry.id == uid) return grants(entry.perm & limit);
  }
  bool matched_group = false;
  for (const AclEntry& entry : acl) {
    const bool match = (entry.tag == AclTag::kGroupObj && in_group(owning_gid)) ||
                       (entry.tag == AclTag::kGroup && in_group(entry.id));
    if (!match) continue;
    matched_group = true;
    if (grants(entry.perm & limit)) return true;
  }
  if (matched_group) return false;
  const AclEntry* other = Find(acl, AclTag::kOther);
  return other != nullptr && grants(other->perm);
}

std::string WithoutWrite(std::string_view xattr) {
  auto acl = ParseAcl(xattr);
  if (!acl.ok()) return {};
  for (AclEntry& entry : *acl) entry.perm = static_cast<uint16_t>(entry.perm & ~2u);
  return SerializeAcl(*acl);
}

}  // namespace medvfs::store
