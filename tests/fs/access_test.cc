// The daemon's permission checks (fs/access.h) against what the kernel would decide.
#include "fs/access.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "store/posix_acl.h"
#include "tests/store/test_util.h"

namespace medvfs::fs {
namespace {

using store::Code;

constexpr uint32_t kAlice = 1001;
constexpr uint32_t kBob = 1002;
constexpr uint32_t kStaff = 2000;  // Alice's file's group
constexpr uint32_t kOther = 3000;

store::Attr Node(uint32_t mode, uint32_t uid = kAlice, uint32_t gid = kStaff) {
  store::Attr attr;
  attr.mode = mode;
  attr.uid = uid;
  attr.gid = gid;
  return attr;
}

Credentials As(uint32_t uid, uint32_t gid, std::vector<uint32_t> groups = {}) {
  return Credentials(uid, gid, std::move(groups));
}

Code AccessCode(const Credentials& creds, const store::Attr& attr, int mask) {
  return CheckAccess(creds, attr, mask).code();
}

TEST(AccessTest, OwnerBitsApplyToTheOwnerOnly) {
  // 0077: the owner is denied even though group and others may.
  const store::Attr file = Node(S_IFREG | 0077);
  EXPECT_EQ(AccessCode(As(kAlice, kStaff), file, kMayRead), Code::kAccess);
  EXPECT_EQ(AccessCode(As(kBob, kStaff), file, kMayRead | kMayWrite), Code::kOk);
  const store::Attr mine = Node(S_IFREG | 0600);
  EXPECT_EQ(AccessCode(As(kAlice, kOther), mine, kMayRead | kMayWrite), Code::kOk);
  EXPECT_EQ(AccessCode(As(kAlice, kOther), mine, kMayExec), Code::kAccess);
}

TEST(AccessTest, GroupAndOtherBits) {
  const store::Attr file = Node(S_IFREG | 0640);
  EXPECT_EQ(AccessCode(As(kBob, kStaff), file, kMayRead), Code::kOk);
  EXPECT_EQ(AccessCode(As(kBob, kStaff), file, kMayWrite), Code::kAccess);
  EXPECT_EQ(AccessCode(As(kBob, kOther), file, kMayRead), Code::kAccess);
  const store::Attr shared = Node(S_IFREG | 0604);
  // A group member gets the group's bits (none here), not the others'.
  EXPECT_EQ(AccessCode(As(kBob, kStaff), shared, kMayRead), Code::kAccess);
  EXPECT_EQ(AccessCode(As(kBob, kOther), shared, kMayRead), Code::kOk);
}

TEST(AccessTest, SupplementaryGroupsCount) {
  const store::Attr file = Node(S_IFREG | 0640);
  EXPECT_EQ(AccessCode(As(kBob, kOther, {17, kStaff}), file, kMayRead), Code::kOk);
  EXPECT_EQ(AccessCode(As(kBob, kOther, {17, 18}), file, kMayRead), Code::kAccess);
}

TEST(AccessTest, GroupsAreLoadedOnlyWhenNeeded) {
  int loads = 0;
  const Credentials alice(kAlice, kOther, [&loads] {
    ++loads;
    return std::vector<uint32_t>{kStaff};
  });
  EXPECT_TRUE(CheckAccess(alice, Node(S_IFREG | 0600), kMayRead).ok());
  EXPECT_EQ(loads, 0);  // the owner's bits decided
  EXPECT_TRUE(alice.InGroup(kStaff));
  EXPECT_TRUE(alice.InGroup(kStaff));
  EXPECT_EQ(loads, 1);
}

TEST(AccessTest, RootPassesReadWriteAndSearchButNeedsSomeExecBit) {
  const Credentials root = As(0, 0);
  EXPECT_EQ(AccessCode(root, Node(S_IFREG | 0000), kMayRead | kMayWrite), Code::kOk);
  EXPECT_EQ(AccessCode(root, Node(S_IFDIR | 0000), kMayRead | kMayExec), Code::kOk);
  EXPECT_EQ(AccessCode(root, Node(S_IFREG | 0600), kMayExec), Code::kAccess);
  EXPECT_EQ(AccessCode(root, Node(S_IFREG | 0001), kMayExec), Code::kOk);
}

TEST(AccessTest, DirectoryOperations) {
  const store::Attr dir = Node(S_IFDIR | 0755);
  // lookup: x; readdir: r; create, unlink, rename: w and x.
  EXPECT_EQ(AccessCode(As(kBob, kOther), dir, kMayExec), Code::kOk);
  EXPECT_EQ(AccessCode(As(kBob, kOther), dir, kMayRead), Code::kOk);
  EXPECT_EQ(AccessCode(As(kBob, kOther), dir, kMayWrite | kMayExec), Code::kAccess);
  EXPECT_EQ(AccessCode(As(kAlice, kOther), dir, kMayWrite | kMayExec), Code::kOk);
  // Sticky directories: w and x suffice here; the VFS checks ownership itself.
  const store::Attr tmp = Node(S_IFDIR | 01777, 0, 0);
  EXPECT_EQ(AccessCode(As(kBob, kOther), tmp, kMayWrite | kMayExec), Code::kOk);
  const store::Attr no_search = Node(S_IFDIR | 0766);
  EXPECT_EQ(AccessCode(As(kBob, kOther), no_search, kMayWrite | kMayExec), Code::kAccess);
}

TEST(AccessTest, StickyDirectoryKeepsOthersEntries) {
  const store::Attr sticky_dir = Node(S_IFDIR | 01777, /*uid=*/0, /*gid=*/0);
  const store::Attr plain_dir = Node(S_IFDIR | 0777, 0, 0);
  const store::Attr alices = Node(S_IFREG | 0666);
  EXPECT_EQ(CheckSticky(As(kBob, kOther), sticky_dir, alices).code(), Code::kPermission);
  EXPECT_TRUE(CheckSticky(As(kAlice, kStaff), sticky_dir, alices).ok());  // the entry's owner
  EXPECT_TRUE(CheckSticky(As(0, 0), sticky_dir, alices).ok());
  EXPECT_TRUE(CheckSticky(As(kBob, kOther), plain_dir, alices).ok());
  const store::Attr bobs_sticky_dir = Node(S_IFDIR | 01777, kBob, kOther);
  EXPECT_TRUE(CheckSticky(As(kBob, kOther), bobs_sticky_dir, alices).ok());  // the dir's owner
}

TEST(AccessTest, OpenMask) {
  EXPECT_EQ(OpenMask(O_RDONLY), kMayRead);
  EXPECT_EQ(OpenMask(O_WRONLY), kMayWrite);
  EXPECT_EQ(OpenMask(O_RDWR), kMayRead | kMayWrite);
  EXPECT_EQ(OpenMask(O_RDONLY | O_TRUNC), kMayRead | kMayWrite);
  EXPECT_EQ(OpenMask(O_WRONLY | O_APPEND), kMayWrite);
}

Code SetAttrCode(const Credentials& creds, const store::Attr& current, AttrChange change) {
  return CheckSetAttr(creds, current, &change).code();
}

TEST(AccessTest, ChmodByOwnerOrRootOnly) {
  const store::Attr file = Node(S_IFREG | 0644);
  AttrChange chmod;
  chmod.mode = 0600;
  EXPECT_EQ(SetAttrCode(As(kAlice, kStaff), file, chmod), Code::kOk);
  EXPECT_EQ(SetAttrCode(As(0, 0), file, chmod), Code::kOk);
  EXPECT_EQ(SetAttrCode(As(kBob, kStaff), file, chmod), Code::kPermission);
}

TEST(AccessTest, ChmodDropsSetgidOutsideTheGroup) {
  const store::Attr file = Node(S_IFREG | 0644);
  AttrChange change;
  change.mode = 02755;
  ASSERT_TRUE(CheckSetAttr(As(kAlice, kOther), file, &change).ok());
  EXPECT_EQ(*change.mode, 0755u);  // Alice is not in the file's group
  change.mode = 02755;
  ASSERT_TRUE(CheckSetAttr(As(kAlice, kOther, {kStaff}), file, &change).ok());
  EXPECT_EQ(*change.mode, 02755u);
  change.mode = 02755;
  ASSERT_TRUE(CheckSetAttr(As(0, 0), file, &change).ok());
  EXPECT_EQ(*change.mode, 02755u);
  // The group being set is the one that counts.
  change.mode = 02755;
  change.gid = kOther;
  ASSERT_TRUE(CheckSetAttr(As(kAlice, kOther), file, &change).ok());
  EXPECT_EQ(*change.mode, 02755u);
}

TEST(AccessTest, NonOwnerMayOnlyClearSetIdBitsItCanWrite) {
  // What the kernel sends itself when a non-owner writes to a set-id file.
  const store::Attr file = Node(S_IFREG | 06666);
  AttrChange kill;
  kill.mode = 0666;
  EXPECT_EQ(SetAttrCode(As(kBob, kOther), file, kill), Code::kOk);
  AttrChange widen;
  widen.mode = 06667;
  EXPECT_EQ(SetAttrCode(As(kBob, kOther), file, widen), Code::kPermission);
  const store::Attr read_only = Node(S_IFREG | 06644);
  kill.mode = 0644;
  EXPECT_EQ(SetAttrCode(As(kBob, kOther), read_only, kill), Code::kAccess);
}

TEST(AccessTest, ChownRules) {
  const store::Attr file = Node(S_IFREG | 0644);
  AttrChange give;
  give.uid = kBob;
  EXPECT_EQ(SetAttrCode(As(kAlice, kStaff), file, give), Code::kPermission);
  EXPECT_EQ(SetAttrCode(As(0, 0), file, give), Code::kOk);
  AttrChange same;
  same.uid = kAlice;
  EXPECT_EQ(SetAttrCode(As(kAlice, kStaff), file, same), Code::kOk);
  AttrChange chgrp;
  chgrp.gid = kOther;
  EXPECT_EQ(SetAttrCode(As(kAlice, kStaff), file, chgrp), Code::kPermission);
  EXPECT_EQ(SetAttrCode(As(kAlice, kStaff, {kOther}), file, chgrp), Code::kOk);
  EXPECT_EQ(SetAttrCode(As(kBob, kOther, {kOther}), file, chgrp), Code::kPermission);
  AttrChange keep_group;
  keep_group.gid = kStaff;
  EXPECT_EQ(SetAttrCode(As(kAlice, kOther), file, keep_group), Code::kOk);
}

TEST(AccessTest, TruncateNeedsWriteUnlessThroughAHandle) {
  const store::Attr file = Node(S_IFREG | 0644);
  AttrChange truncate;
  truncate.size = true;
  truncate.times = true;  // the truncate's own mtime
  EXPECT_EQ(SetAttrCode(As(kBob, kOther), file, truncate), Code::kAccess);
  EXPECT_EQ(SetAttrCode(As(kAlice, kOther), file, truncate), Code::kOk);
  truncate.size_through_handle = true;
  EXPECT_EQ(SetAttrCode(As(kBob, kOther), file, truncate), Code::kOk);
}

TEST(AccessTest, TimesRules) {
  const store::Attr writable = Node(S_IFREG | 0666);
  const store::Attr read_only = Node(S_IFREG | 0644);
  AttrChange touch;
  touch.times = true;
  touch.times_now = true;
  EXPECT_EQ(SetAttrCode(As(kBob, kOther), writable, touch), Code::kOk);
  EXPECT_EQ(SetAttrCode(As(kBob, kOther), read_only, touch), Code::kAccess);
  EXPECT_EQ(SetAttrCode(As(kAlice, kOther), read_only, touch), Code::kOk);
  AttrChange explicit_times;
  explicit_times.times = true;
  EXPECT_EQ(SetAttrCode(As(kBob, kOther), writable, explicit_times), Code::kPermission);
  EXPECT_EQ(SetAttrCode(As(kAlice, kOther), read_only, explicit_times), Code::kOk);
  EXPECT_EQ(SetAttrCode(As(0, 0), read_only, explicit_times), Code::kOk);
}

TEST(AccessTest, XattrNamespaces) {
  const store::Attr file = Node(S_IFREG | 0644);
  const Credentials bob = As(kBob, kOther);
  EXPECT_EQ(CheckXattr(bob, file, "user.x", XattrAccess::kRead).code(), Code::kOk);
  EXPECT_EQ(CheckXattr(bob, file, "user.x", XattrAccess::kWrite).code(), Code::kAccess);
  EXPECT_EQ(CheckXattr(As(kAlice, kStaff), file, "user.x", XattrAccess::kWrite).code(), Code::kOk);
  EXPECT_EQ(
      CheckXattr(bob, Node(S_IFREG | 0600), "user.dicom.PatientName", XattrAccess::kRead).code(),
      Code::kAccess);
  EXPECT_EQ(CheckXattr(bob, file, "trusted.x", XattrAccess::kRead).code(), Code::kNoData);
  EXPECT_EQ(CheckXattr(As(kAlice, kStaff), file, "trusted.x", XattrAccess::kWrite).code(),
            Code::kPermission);
  EXPECT_EQ(CheckXattr(As(0, 0), file, "trusted.x", XattrAccess::kWrite).code(), Code::kOk);
  EXPECT_EQ(CheckXattr(bob, file, "security.selinux", XattrAccess::kRead).code(), Code::kOk);
  EXPECT_EQ(CheckXattr(As(kAlice, kStaff), file, "security.x", XattrAccess::kWrite).code(),
            Code::kPermission);
}

TEST(AccessTest, HardLinkSources) {
  const Credentials bob = As(kBob, kOther);
  EXPECT_TRUE(CheckLinkSource(As(kAlice, kStaff), Node(S_IFREG | 0600)).ok());
  EXPECT_EQ(CheckLinkSource(bob, Node(S_IFREG | 0644)).code(), Code::kPermission);
  EXPECT_TRUE(CheckLinkSource(bob, Node(S_IFREG | 0666)).ok());
  EXPECT_EQ(CheckLinkSource(bob, Node(S_IFREG | 04666)).code(), Code::kPermission);
  EXPECT_EQ(CheckLinkSource(bob, Node(S_IFREG | 02676)).code(), Code::kPermission);
  EXPECT_EQ(CheckLinkSource(bob, Node(S_IFLNK | 0777)).code(), Code::kPermission);
  EXPECT_TRUE(CheckLinkSource(As(0, 0), Node(S_IFREG | 04000)).ok());
}

TEST(AccessTest, RenamingADirectoryAcrossParentsNeedsWriteOnIt) {
  const Credentials bob = As(kBob, kOther);
  const store::Attr dir = Node(S_IFDIR | 0755);
  const store::Attr file = Node(S_IFREG | 0444);
  EXPECT_TRUE(CheckRenameNodes(bob, dir, std::nullopt, /*same_parent=*/true, false).ok());
  EXPECT_EQ(CheckRenameNodes(bob, dir, std::nullopt, false, false).code(), Code::kAccess);
  EXPECT_TRUE(CheckRenameNodes(bob, file, std::nullopt, false, false).ok());
  EXPECT_TRUE(CheckRenameNodes(As(kAlice, kStaff), dir, std::nullopt, false, false).ok());
  // An exchange moves the other side too.
  EXPECT_EQ(CheckRenameNodes(bob, file, dir, false, /*exchange=*/true).code(), Code::kAccess);
  EXPECT_TRUE(CheckRenameNodes(bob, file, dir, false, /*exchange=*/false).ok());
}

// The daemon's own check decides by the access ACL when there is one (posix_acl_permission).
TEST(AccessTest, AnAccessAclDecides) {
  using store::AclTag;
  store::Attr file = Node(S_IFREG | 0604);
  file.acl = store::SerializeAcl({{AclTag::kUserObj, 6, 0},
                                  {AclTag::kUser, 6, kBob},
                                  {AclTag::kGroupObj, 0, 0},
                                  {AclTag::kGroup, 4, kOther},
                                  {AclTag::kMask, 4, 0},
                                  {AclTag::kOther, 4, 0}});
  // Bob: his entry, limited by the mask.
  EXPECT_EQ(AccessCode(As(kBob, kBob), file, kMayRead), Code::kOk);
  EXPECT_EQ(AccessCode(As(kBob, kBob), file, kMayWrite), Code::kAccess);
  // The owning group's entry grants nothing, and a matching group entry denies "other".
  EXPECT_EQ(AccessCode(As(4000, kStaff), file, kMayRead), Code::kAccess);
  EXPECT_EQ(AccessCode(As(4000, 4000, {kOther}), file, kMayRead), Code::kOk);
  EXPECT_EQ(AccessCode(As(4000, 4000), file, kMayRead), Code::kOk);
  EXPECT_EQ(AccessCode(As(kAlice, kStaff), file, kMayWrite), Code::kOk);
}

TEST(PosixAclTest, ParseRejectsWhatTheKernelRejects) {
  using store::AclTag;
  const std::string good = store::SerializeAcl(store::AclFromMode(0640));
  ASSERT_TRUE(store::ParseAcl(good).ok());
  EXPECT_EQ(store::ParseAcl(good.substr(0, good.size() - 1)).status().code(), Code::kInvalid);
  // Named entry without a mask; entries out of order; a repeated user.
  EXPECT_FALSE(store::ParseAcl(store::SerializeAcl({{AclTag::kUserObj, 6, 0},
                                                    {AclTag::kUser, 4, 7},
                                                    {AclTag::kGroupObj, 4, 0},
                                                    {AclTag::kOther, 0, 0}}))
                   .ok());
  EXPECT_FALSE(store::ParseAcl(store::SerializeAcl({{AclTag::kGroupObj, 4, 0},
                                                    {AclTag::kUserObj, 6, 0},
                                                    {AclTag::kOther, 0, 0}}))
                   .ok());
  EXPECT_FALSE(store::ParseAcl(store::SerializeAcl({{AclTag::kUserObj, 6, 0},
                                                    {AclTag::kUser, 4, 7},
                                                    {AclTag::kUser, 4, 7},
                                                    {AclTag::kGroupObj, 4, 0},
                                                    {AclTag::kMask, 4, 0},
                                                    {AclTag::kOther, 0, 0}}))
                   .ok());
}

TEST(PosixAclTest, InheritLimitsTheDefaultAclByTheCreateMode) {
  using store::AclTag;
  const std::string default_acl = store::SerializeAcl({{AclTag::kUserObj, 7, 0},
                                                       {AclTag::kUser, 7, kBob},
                                                       {AclTag::kGroupObj, 5, 0},
                                                       {AclTag::kMask, 7, 0},
                                                       {AclTag::kOther, 0, 0}});
  auto file = store::InheritAcl(default_acl, S_IFREG | 0644, 077);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->mode, S_IFREG | 0640u);  // the umask is ignored under a default ACL
  EXPECT_TRUE(file->default_acl.empty());
  auto access = store::ParseAcl(file->access);
  ASSERT_TRUE(access.ok());
  EXPECT_EQ((*access)[3].tag, AclTag::kMask);
  EXPECT_EQ((*access)[3].perm, 4);
  auto dir = store::InheritAcl(default_acl, S_IFDIR | 0777, 077);
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(dir->mode, S_IFDIR | 0770u);
  EXPECT_EQ(dir->default_acl, default_acl);
  auto bare = store::InheritAcl("", S_IFREG | 0666, 022);
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->mode, S_IFREG | 0644u);
  EXPECT_TRUE(bare->access.empty());
}

}  // namespace
}  // namespace medvfs::fs
