#include "store/status.h"

#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

TEST(StatusTest, OkByDefault) {
  Status status;
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.code(), Code::kOk);
  EXPECT_EQ(status.ToErrno(), 0);
  EXPECT_EQ(status.ToString(), "OK");
  EXPECT_OK(Status::Ok());
}

TEST(StatusTest, ToStringNamesCodeAndMessage) {
  EXPECT_EQ(Status::NotFound("inode 12").ToString(), "NotFound: inode 12");
  EXPECT_EQ(Status::Corruption("authentication failed").ToString(),
            "Corruption: authentication failed");
  EXPECT_EQ(Status(Code::kBusy, "").ToString(), "Busy");
}

TEST(StatusTest, ToErrnoFollowsTheCodeComments) {
  const std::pair<Code, int> cases[] = {
      {Code::kNotFound, ENOENT},
      {Code::kExists, EEXIST},
      {Code::kNotDirectory, ENOTDIR},
      {Code::kIsDirectory, EISDIR},
      {Code::kNotEmpty, ENOTEMPTY},
      {Code::kInvalid, EINVAL},
      {Code::kPermission, EPERM},
      {Code::kAccess, EACCES},
      {Code::kIoError, EIO},
      {Code::kCorruption, EIO},
      {Code::kWrongKey, EACCES},
      {Code::kNoSpace, ENOSPC},
      {Code::kReadOnly, EROFS},
      {Code::kBusy, EBUSY},
      {Code::kNameTooLong, ENAMETOOLONG},
      {Code::kTooBig, EFBIG},
      {Code::kRange, ERANGE},
      {Code::kNoData, ENODATA},
      {Code::kNotSupported, EOPNOTSUPP},
      {Code::kCrossDevice, EXDEV},
      {Code::kTooManyLinks, EMLINK},
      {Code::kLoop, ELOOP},
  };
  for (const auto& [code, err] : cases) {
    Status status(code, "x");
    EXPECT_EQ(status.ToErrno(), err) << status.ToString();
    EXPECT_FALSE(status.ok());
  }
}

TEST(StatusTest, FromErrnoMapsCodes) {
  const std::pair<int, Code> cases[] = {
      {ENOENT, Code::kNotFound},
      {EEXIST, Code::kExists},
      {ENOSPC, Code::kNoSpace},
      {EDQUOT, Code::kNoSpace},
      {EACCES, Code::kAccess},
      {EPERM, Code::kPermission},
      {EROFS, Code::kReadOnly},
      {ENOTDIR, Code::kNotDirectory},
      {EISDIR, Code::kIsDirectory},
      {ENOTEMPTY, Code::kNotEmpty},
      {ENAMETOOLONG, Code::kNameTooLong},
      {EINVAL, Code::kInvalid},
      {EBUSY, Code::kBusy},
      {EWOULDBLOCK, Code::kBusy},
      {EFBIG, Code::kTooBig},
      {E2BIG, Code::kTooBig},
      {ERANGE, Code::kRange},
      {ENODATA, Code::kNoData},
      {EOPNOTSUPP, Code::kNotSupported},
      {ENOTSUP, Code::kNotSupported},
      {EXDEV, Code::kCrossDevice},
      {EMLINK, Code::kTooManyLinks},
      {ELOOP, Code::kLoop},
      {EIO, Code::kIoError},
      {EBADF, Code::kIoError},
      {0, Code::kIoError},
  };
  for (const auto& [err, code] : cases) {
    Status status = StatusFromErrno(err, "context");
    EXPECT_EQ(status.code(), code) << "errno " << err << ": " << status.ToString();
  }
}

TEST(StatusTest, FromErrnoRoundTripsThroughToErrno) {
  for (int err : {ENOENT, EEXIST,  ENOTDIR,    EISDIR, ENOTEMPTY, EINVAL,       EPERM,
                  EACCES, EIO,     ENOSPC,     EROFS,  EBUSY,     ENAMETOOLONG, EFBIG,
                  ERANGE, ENODATA, EOPNOTSUPP, EXDEV,  EMLINK,    ELOOP}) {
    EXPECT_EQ(StatusFromErrno(err, "").ToErrno(), err) << err;
  }
}

TEST(StatusTest, FromErrnoMessageIsContextAndStrerror) {
  Status status = StatusFromErrno(ENOENT, "cannot open the key slot file");
  EXPECT_EQ(status.message(),
            std::string("cannot open the key slot file: ") + std::strerror(ENOENT));
  EXPECT_EQ(StatusFromErrno(EIO, "").message(), std::strerror(EIO));
}

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return Status::Invalid("odd");
  return x / 2;
}

Status QuarterInto(int x, int* out) {
  MEDVFS_ASSIGN_OR_RETURN(int half, Half(x));
  MEDVFS_ASSIGN_OR_RETURN(*out, Half(half));
  return Status::Ok();
}

Status Chain(Status first) {
  MEDVFS_RETURN_IF_ERROR(first);
  return Status::NotFound("reached");
}

TEST(StatusTest, Macros) {
  int out = 0;
  ASSERT_OK(QuarterInto(8, &out));
  EXPECT_EQ(out, 2);
  EXPECT_EQ(QuarterInto(6, &out).code(), Code::kInvalid);
  EXPECT_EQ(Chain(Status::ReadOnly("ro")).code(), Code::kReadOnly);
  EXPECT_EQ(Chain(Status::Ok()).code(), Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(int half, Half(10));
  EXPECT_EQ(half, 5);
  EXPECT_OK(Half(4));
}

// value() on an error used to read an empty std::optional (undefined behaviour: usually a
// garbage value, sometimes a crash far away). It now stops at once and says why.
TEST(StatusOrDeathTest, ValueOnAnErrorAbortsWithTheStatus) {
  // Re-executes the test program for each death test instead of forking this one, which may
  // have threads.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const StatusOr<int> error = Status::NotFound("inode 12");
  EXPECT_DEATH((void)error.value(), "StatusOr::value\\(\\) on an error \\(NotFound: inode 12\\)");
  StatusOr<std::string> text = Status::Corruption("block 3");
  EXPECT_DEATH((void)text->size(), "Corruption: block 3");
  EXPECT_DEATH((void)std::move(text).value(), "Corruption: block 3");
  const StatusOr<int> no_value = Status::Ok();
  EXPECT_DEATH((void)*no_value, "an ok status without a value");
  // A value is still just returned.
  StatusOr<std::string> fine = std::string("v");
  EXPECT_EQ(fine.value(), "v");
  EXPECT_EQ(fine->size(), 1u);
}

TEST(StatusTest, AssertOkPrintsTheStatus) {
  ::testing::AssertionResult result =
      test_util::IsOk("Open()", Status::Corruption("authentication failed"));
  EXPECT_FALSE(result);
  EXPECT_NE(std::string(result.message()).find("Corruption: authentication failed"),
            std::string::npos);
}

}  // namespace
}  // namespace medvfs::store
