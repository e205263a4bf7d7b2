// PATH resolution helpers of the command line.
#include "tools/target.h"

#include <gtest/gtest.h>

namespace medvfs::tools {
namespace {

constexpr const char* kMountInfo =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "40 22 0:35 / /srv/pacs rw,nosuid,nodev,relatime shared:20 - fuse.medvfs /srv/archive "
    "rw,user_id=0,group_id=0\n"
    "41 40 0:36 / /srv/pacs/inner rw,relatime - fuse.medvfs /srv/other rw\n"
    "42 22 0:37 / /mnt/with\\040space rw - fuse.medvfs /data/arch\\040ive rw\n"
    "43 22 0:38 / /mnt/sshfs rw - fuse.sshfs host:/x rw\n"
    "garbage line\n";

TEST(MountInfoTest, ParsesFieldsAndEscapes) {
  std::vector<MountEntry> mounts = ParseMountInfo(kMountInfo);
  ASSERT_EQ(mounts.size(), 5u);
  EXPECT_EQ(mounts[1].mountpoint, "/srv/pacs");
  EXPECT_EQ(mounts[1].fstype, "fuse.medvfs");
  EXPECT_EQ(mounts[1].source, "/srv/archive");
  EXPECT_EQ(mounts[3].mountpoint, "/mnt/with space");
  EXPECT_EQ(mounts[3].source, "/data/arch ive");
}

TEST(MountInfoTest, OptionalFieldsMayBeAbsentOrMany) {
  std::vector<MountEntry> mounts = ParseMountInfo(
      "1 2 3:4 / /m rw a:1 b:2 c:3 - fuse.medvfs /a rw\n"
      "1 2 3:4 / /n rw - fuse.medvfs /b rw\n");
  ASSERT_EQ(mounts.size(), 2u);
  EXPECT_EQ(mounts[0].source, "/a");
  EXPECT_EQ(mounts[1].mountpoint, "/n");
}

TEST(MountInfoTest, LongestMedvfsMountpointWins) {
  std::vector<MountEntry> mounts = ParseMountInfo(kMountInfo);
  auto outer = FindMedvfsMountContaining(mounts, "/srv/pacs/study/x");
  ASSERT_TRUE(outer);
  EXPECT_EQ(outer->source, "/srv/archive");
  auto inner = FindMedvfsMountContaining(mounts, "/srv/pacs/inner/a");
  ASSERT_TRUE(inner);
  EXPECT_EQ(inner->source, "/srv/other");
  EXPECT_TRUE(FindMedvfsMountContaining(mounts, "/srv/pacs"));
  EXPECT_FALSE(FindMedvfsMountContaining(mounts, "/srv/pacsx/a"));
  EXPECT_FALSE(FindMedvfsMountContaining(mounts, "/mnt/sshfs/a"));
  EXPECT_FALSE(FindMedvfsMountContaining(mounts, "/home"));
}

TEST(MountInfoTest, FindsTheMountOfAnArchive) {
  std::vector<MountEntry> mounts = ParseMountInfo(kMountInfo);
  auto mount = FindMedvfsMountOfArchive(mounts, "/srv/archive/");
  ASSERT_TRUE(mount);
  EXPECT_EQ(mount->mountpoint, "/srv/pacs");
  EXPECT_FALSE(FindMedvfsMountOfArchive(mounts, "/srv/archive2"));
}

TEST(ArchiveSpecTest, SplitsAtTheFirstArchivePrefix) {
  auto is_archive = [](const std::filesystem::path& p) { return p == "a::b"; };
  auto spec = SplitArchiveSpec("a::b::/dir/x::y", is_archive);
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->archive, "a::b");
  EXPECT_EQ(spec->path, "/dir/x::y");
  EXPECT_FALSE(SplitArchiveSpec("/no/spec", is_archive));
  EXPECT_FALSE(SplitArchiveSpec("::/x", [](const std::filesystem::path&) { return true; }));
}

TEST(ArchivePathTest, SplitsDirectoryAndName) {
  auto p = SplitArchivePath("/study/2026/scan.dcm");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->dir, "/study/2026");
  EXPECT_EQ(p->name, "scan.dcm");
  p = SplitArchivePath("scan.dcm");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->dir, "/");
  EXPECT_EQ(p->name, "scan.dcm");
  p = SplitArchivePath("/a/./b/../c/");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->dir, "/a");
  EXPECT_EQ(p->name, "c");
  EXPECT_FALSE(SplitArchivePath(""));
  EXPECT_FALSE(SplitArchivePath("/"));
  EXPECT_FALSE(SplitArchivePath("/.."));
}

}  // namespace
}  // namespace medvfs::tools
