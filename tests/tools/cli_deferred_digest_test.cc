// Issue 16, item 5: `medvfs log` and `medvfs verify` on a version whose commit deferred its
// SHA-256 (a mostly sparse file): "pending" until something computes it, never computed by a
// listing; the digest afterwards, through the mount and on the unmounted archive.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/views.h"
#include "tests/tools/cli_fixture.h"

namespace medvfs::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(CliMountTest, LogShowsAPendingDigestUntilItIsComputed) {
  const std::filesystem::path big = mnt_ / "big.dat";
  Save(big, "head");
  // 1 GiB: enough to defer the digest, and little for verify to hash (it hashes every hole).
  // (Through a handle: its close commits before returning; a path truncate racing the
  // previous save's release would join that save's pending version instead.)
  const int fd = open(big.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, off_t{1} << 30), 0);
  ASSERT_EQ(close(fd), 0);
  RunResult log = Medvfs({"log", big.string(), "--json"}, NoKey());
  ASSERT_EQ(log.exit_code, 0) << log.err;
  nlohmann::json versions = nlohmann::json::parse(log.out)["versions"];
  ASSERT_EQ(versions.size(), 2u) << log.out;
  EXPECT_EQ(versions[1]["sha256"], std::string(store::kSha256PendingText));
  RunResult table = Medvfs({"log", big.string()}, NoKey());
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr(std::string(store::kSha256PendingText)));
  Unmount();

  // On the archive: still pending; verify counts it, and it is no damage.
  log = Medvfs({"log", InArchive("/big.dat"), "--json"});
  ASSERT_EQ(log.exit_code, 0) << log.err;
  versions = nlohmann::json::parse(log.out)["versions"];
  ASSERT_EQ(versions.size(), 2u) << log.out;
  EXPECT_EQ(versions[1]["sha256"], std::string(store::kSha256PendingText));
  RunResult verify = Medvfs({"verify", "--json", archive_.string()});
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(nlohmann::json::parse(verify.out)["digests_pending"], 1) << verify.out;
}

}  // namespace
}  // namespace medvfs::testing
