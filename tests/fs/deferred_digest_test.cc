// Issue 16, item 5, through a mount: growing a file to a huge size commits at once (its
// digest is deferred, shown as pending), and user.medvfs.sha256 and .meta/NAME/sha256 compute
// a deferred digest on request.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "store/crypto/crypto.h"
#include "store/views.h"
#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

TEST_F(MountTest, AHugeTruncateCommitsAtOnceAndDigestsAreComputedOnRequest) {
  MountOk();
  // truncate -s 100G: before deferred digests, the close hashed 100 GiB of zeros (minutes).
  const std::string big = P("big.dat").string();
  // (Through a handle: its close commits before returning, where a path truncate racing the
  // creating handle's release would join that handle's pending version.)
  const int big_fd = open(big.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  ASSERT_GE(big_fd, 0) << ErrnoName(errno);
  ASSERT_EQ(ErrnoName(ErrnoOf(ftruncate(big_fd, off_t{100} << 30))), "ok");
  ASSERT_EQ(close(big_fd), 0);
  const std::string pending = "\t" + std::string(store::kSha256PendingText) + "\t";
  const std::string big_tsv = ReadFile(P(".meta/big.dat/versions.tsv"));
  EXPECT_TRUE(Contains(big_tsv, pending)) << big_tsv;
  // A stat of the sha256 file does not compute it (its size is known).
  struct stat st {};
  ASSERT_EQ(stat(P(".meta/big.dat/sha256").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 65);
  EXPECT_TRUE(Contains(ReadFile(P(".meta/big.dat/versions.tsv")), pending));

  // A small file with a hole just big enough to defer: computed on request, then recorded.
  const std::string small = P("small.dat").string();
  const off_t tail_at = off_t{80} << 20;
  const int fd = open(small.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  ASSERT_GE(fd, 0) << ErrnoName(errno);
  ASSERT_EQ(pwrite(fd, "head", 4, 0), 4);
  ASSERT_EQ(pwrite(fd, "tail", 4, tail_at), 4);
  ASSERT_EQ(close(fd), 0);
  EXPECT_TRUE(Contains(ReadFile(P(".meta/small.dat/versions.tsv")), pending));
  store::Sha256 sha;
  sha.Update("head");
  sha.Update(std::string(static_cast<size_t>(tail_at) - 4, '\0'));
  sha.Update("tail");
  const std::string hex = store::HexEncode(sha.Finish());
  EXPECT_EQ(Xattr(small, "user.medvfs.sha256"), hex);
  EXPECT_EQ(ReadFile(P(".meta/small.dat/sha256")), hex + "\n");
  const std::string small_tsv = ReadFile(P(".meta/small.dat/versions.tsv"));
  EXPECT_TRUE(Contains(small_tsv, "\t" + hex + "\t")) << small_tsv;
  EXPECT_FALSE(Contains(small_tsv, pending)) << small_tsv;
  UmountOk();
}

}  // namespace
}  // namespace medvfs::fs_test
