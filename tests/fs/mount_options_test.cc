#include "fs/mount_options.h"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/store/test_util.h"

namespace medvfs::fs {
namespace {

TEST(MountOptionsTest, MedvfsOptions) {
  MountOptions options;
  ASSERT_OK(ParseMountOptions("ro,allow_other,versions=visible", &options));
  EXPECT_TRUE(options.read_only);
  EXPECT_TRUE(options.allow_other);
  EXPECT_TRUE(options.versions_visible);
  EXPECT_TRUE(options.fuse_options.empty());
  ASSERT_OK(ParseMountOptions("rw,versions=hidden", &options));
  EXPECT_FALSE(options.read_only);
  EXPECT_FALSE(options.versions_visible);
  EXPECT_FALSE(options.accept_rollback);
  ASSERT_OK(ParseMountOptions("accept_rollback", &options));
  EXPECT_TRUE(options.accept_rollback);
  EXPECT_TRUE(options.fuse_options.empty());  // ours: never handed to libfuse
}

// The S3 tier's options (medvfs-mount(1)): sizes with suffixes, bounds refused with a reason.
TEST(MountOptionsTest, S3TierOptions) {
  MountOptions options;
  ASSERT_TRUE(ParseMountOptions("endpoint=http://127.0.0.1:7480,region=default,cache=/var/c,"
                                "cache_size=2G,local_packs=8,snapshot_interval=30,pack_size=4M,"
                                "replicate=off",
                                &options)
                  .ok());
  EXPECT_EQ(options.s3_endpoint, "http://127.0.0.1:7480");
  EXPECT_EQ(options.s3_region, "default");
  EXPECT_EQ(options.cache_dir, "/var/c");
  EXPECT_EQ(options.cache_bytes, uint64_t{2} << 30);
  EXPECT_EQ(options.local_packs, 8u);
  EXPECT_EQ(options.snapshot_interval_s, 30u);
  EXPECT_EQ(options.pack_bytes, uint64_t{4} << 20);
  EXPECT_FALSE(options.replicate);
  EXPECT_TRUE(options.fuse_options.empty()) << "none of them may reach the kernel";
  MountOptions defaults;
  EXPECT_EQ(defaults.cache_bytes, uint64_t{1} << 30);
  EXPECT_EQ(defaults.pack_bytes, uint64_t{64} << 20);
  EXPECT_EQ(defaults.snapshot_interval_s, 60u);
  EXPECT_TRUE(defaults.replicate);
  for (const char* bad :
       {"cache_size=1M", "cache_size=12X", "cache_size=", "pack_size=512K", "pack_size=2G",
        "snapshot_interval=0", "snapshot_interval=90000", "replicate=maybe",
        "endpoint=", "region=", "cache=", "local_packs=x", "cache_size=99999999999999999999"}) {
    MountOptions o;
    EXPECT_EQ(ParseMountOptions(bad, &o).code(), store::Code::kInvalid) << bad;
  }
  MountOptions relative;
  ASSERT_TRUE(ParseMountOptions("cache=rel/dir", &relative).ok());
  EXPECT_TRUE(std::filesystem::path(relative.cache_dir).is_absolute()) << relative.cache_dir;
}

TEST(MountOptionsTest, ScratchPatterns) {
  MountOptions options;
  ASSERT_OK(ParseMountOptions("rw", &options));
  EXPECT_FALSE(options.scratch_patterns.has_value());  // the store's default list
  ASSERT_OK(ParseMountOptions("scratch=*.swp:~$*", &options));
  ASSERT_TRUE(options.scratch_patterns.has_value());
  EXPECT_EQ(*options.scratch_patterns, (std::vector<std::string>{"*.swp", "~$*"}));
  ASSERT_OK(ParseMountOptions("scratch=", &options));
  EXPECT_TRUE(options.scratch_patterns->empty());  // none: every file keeps its history
  EXPECT_EQ(FuseOptionString(options, "/a").find("scratch"), std::string::npos);
}

TEST(MountOptionsTest, KeyFiles) {
  MountOptions options;
  ASSERT_OK(ParseMountOptions("passphrase_file=/etc/medvfs/pass,key_file=/k", &options));
  EXPECT_EQ(options.passphrase_file, "/etc/medvfs/pass");
  EXPECT_EQ(options.key_file, "/k");
  EXPECT_FALSE(ParseMountOptions("key_file=", &options).ok());
  EXPECT_FALSE(ParseMountOptions("versions=sometimes", &options).ok());
}

TEST(MountOptionsTest, FstabOnlyOptionsAreDropped) {
  MountOptions options;
  ASSERT_OK(ParseMountOptions(
      "defaults,noauto,user,_netdev,nofail,x-systemd.automount,comment=x,fsname=evil,"
      "subtype=evil,default_permissions,,",
      &options));
  EXPECT_TRUE(options.fuse_options.empty());
}

TEST(MountOptionsTest, OtherOptionsPassThrough) {
  MountOptions options;
  ASSERT_OK(ParseMountOptions("nosuid,nodev,noatime,max_read=65536", &options));
  EXPECT_EQ(options.fuse_options,
            (std::vector<std::string>{"nosuid", "nodev", "noatime", "max_read=65536"}));
}

TEST(MountOptionsTest, EscapedCommas) {
  MountOptions options;
  ASSERT_OK(ParseMountOptions("passphrase_file=/a\\,b,ro", &options));
  EXPECT_EQ(options.passphrase_file, "/a,b");
  EXPECT_TRUE(options.read_only);
}

TEST(MountOptionsTest, FuseOptionString) {
  MountOptions options;
  EXPECT_EQ(FuseOptionString(options, "/srv/archive"),
            "default_permissions,fsname=/srv/archive,subtype=medvfs");
  options.read_only = true;
  options.allow_other = true;
  options.versions_visible = true;  // ours, not libfuse's
  options.passphrase_file = "/p";   // ditto
  options.accept_rollback = true;   // ditto
  options.fuse_options = {"nosuid"};
  // allow_other: the kernel checks too (the daemon checks again on top).
  EXPECT_EQ(FuseOptionString(options, "/srv/a,b\\c"),
            "default_permissions,fsname=/srv/a\\,b\\\\c,subtype=medvfs,ro,allow_other,nosuid");
  options.allow_other = false;
  EXPECT_EQ(FuseOptionString(options, "/srv/a,b\\c"),
            "default_permissions,fsname=/srv/a\\,b\\\\c,subtype=medvfs,ro,nosuid");
}

// default_permissions used to be accepted and dropped, so that on an allow_other mount nothing
// checked FIFOs, sockets and device nodes (their opens never reach the daemon). Given or not,
// the kernel gets it, once.
TEST(MountOptionsTest, DefaultPermissionsReachesTheKernelWithOrWithoutAllowOther) {
  for (const char* list : {"allow_other,default_permissions", "allow_other", "default_permissions",
                           "default_permissions,allow_other,ro"}) {
    SCOPED_TRACE(list);
    MountOptions options;
    ASSERT_OK(ParseMountOptions(list, &options));
    EXPECT_TRUE(options.fuse_options.empty());
    const std::string fuse = FuseOptionString(options, "/srv/archive");
    EXPECT_EQ(fuse.rfind("default_permissions,", 0), 0u) << fuse;
    EXPECT_EQ(fuse.find("default_permissions", 1), std::string::npos) << fuse;
  }
}

TEST(MountOptionsTest, AnonOnlyImpliesReadOnlyEvenAfterRw) {
  MountOptions options;
  ASSERT_OK(ParseMountOptions("anon_only", &options));
  EXPECT_TRUE(options.anon_only);
  EXPECT_TRUE(options.read_only);
  ASSERT_OK(ParseMountOptions("rw", &options));
  EXPECT_TRUE(options.read_only);  // anon_only still holds from the earlier list
  MountOptions fresh;
  ASSERT_OK(ParseMountOptions("anon_only,rw", &fresh));
  EXPECT_TRUE(fresh.read_only);
  EXPECT_TRUE(fresh.fuse_options.empty());  // ours, passed on by FuseOptionString
}

TEST(MountOptionsTest, DeidConfigIsMadeAbsolute) {
  MountOptions options;
  ASSERT_OK(ParseMountOptions("deid_config=/etc/medvfs/deid.conf", &options));
  EXPECT_EQ(options.deid_config, "/etc/medvfs/deid.conf");
  ASSERT_OK(ParseMountOptions("deid_config=conf/./deid.conf", &options));
  EXPECT_EQ(options.deid_config,
            (std::filesystem::current_path() / "conf/deid.conf").lexically_normal().string());
  EXPECT_TRUE(options.fuse_options.empty());
  const store::Status empty = ParseMountOptions("deid_config=", &options);
  EXPECT_EQ(empty.code(), store::Code::kInvalid);
  EXPECT_NE(empty.message().find("deid_config"), std::string::npos) << empty.message();
}

TEST(MountOptionsTest, FuseOptionStringCarriesAnonOptionsForTheSession) {
  MountOptions options;
  ASSERT_OK(ParseMountOptions("anon_only,deid_config=/a\\,b.conf", &options));
  EXPECT_EQ(FuseOptionString(options, "/srv/archive"),
            "default_permissions,fsname=/srv/archive,subtype=medvfs,ro,anon_only,"
            "deid_config=/a\\,b.conf");
}

}  // namespace
TEST(MountOptionsTest, CommitTakesSecondsAndRoundTripsThroughItsFormat) {
  MountOptions options;
  EXPECT_EQ(options.commit_interval_ms, kDefaultCommitIntervalMs);
  const std::vector<std::pair<std::string, uint32_t>> accepted = {
      {"0", 0},      {"0.1", 100},  {"5", 5000},  {"0.025", 25},    {"300", 300'000},
      {"0.0001", 1}, {"1.5", 1500}, {"0.000", 0}, {"12.34", 12'340}};
  for (const auto& [text, millis] : accepted) {
    ASSERT_OK(ParseMountOptions("commit=" + text, &options)) << text;
    EXPECT_EQ(options.commit_interval_ms, millis) << text;
    MountOptions again;
    ASSERT_OK(ParseMountOptions("commit=" + FormatCommitInterval(millis), &again)) << text;
    EXPECT_EQ(again.commit_interval_ms, millis) << text;
    EXPECT_TRUE(options.fuse_options.empty()) << text;
  }
  for (const std::string text : {"", "-1", "301", "300.5", "1.", ".5", "1e3", "0x10", "fast"}) {
    const store::Status refused = ParseMountOptions("commit=" + text, &options);
    EXPECT_EQ(refused.code(), store::Code::kInvalid) << text;
    EXPECT_NE(refused.message().find("commit="), std::string::npos) << refused.message();
  }
  EXPECT_EQ(FormatCommitInterval(100), "0.1");
  EXPECT_EQ(FormatCommitInterval(0), "0");
  EXPECT_EQ(FormatCommitInterval(5000), "5");
}

}  // namespace medvfs::fs
