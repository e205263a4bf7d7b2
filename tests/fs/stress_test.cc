// Stress: fio (from Debian) runs several parallel jobs on a mount for a bounded time — random
// and sequential writes checked by fio's own verification, mixed reads and writes, and file
// churn over many small files — then the mount must still be there and `medvfs verify` pass.
//
// MEDVFS_STRESS_SECONDS sets each job's run time (default 12; the `slow` label runs 300).
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

int StressSeconds() {
  const char* value = std::getenv("MEDVFS_STRESS_SECONDS");
  return value != nullptr && *value != '\0' ? std::atoi(value) : 12;
}

// A fio job file: every job runs at the same time (no stonewall), each in its own directory.
std::string JobFile(const stdfs::path& mnt, int seconds) {
  const std::string runtime = std::to_string(seconds);
  return "[global]\n"
         "ioengine=psync\n"
         "fallocate=none\n"
         // fio would otherwise leave verify state files in the working directory.
         "verify_state_save=0\n"
         "group_reporting=0\n"
         "time_based=1\n"
         "runtime=" +
         runtime +
         "\n"
         // Random writes in blocks of 4 KiB to 1 MiB, each block checked by fio on read-back.
         "[random-verified]\n"
         "directory=" +
         (mnt / "random").string() +
         "\n"
         "rw=randwrite\nbsrange=4k-1m\nsize=24m\nnumjobs=2\n"
         "verify=crc32c\nverify_fatal=1\nverify_backlog=64\n"
         // Sequential rewrites with fsync every 8 writes (each fsync commits a version).
         "[sequential-fsync]\n"
         "directory=" +
         (mnt / "sequential").string() +
         "\n"
         "rw=write\nbs=256k\nsize=16m\nfsync=8\nverify=md5\nverify_fatal=1\n"
         // Reads and writes mixed on the same files.
         "[mixed]\n"
         "directory=" +
         (mnt / "mixed").string() +
         "\n"
         "rw=randrw\nrwmixread=60\nbs=64k\nsize=16m\n"
         // Many small files opened, written and closed in turn (a version per close).
         "[churn]\n"
         "directory=" +
         (mnt / "churn").string() +
         "\n"
         "rw=write\nbs=4k\nfilesize=16k\nnrfiles=200\nfile_service_type=random\n"
         "openfiles=8\ncreate_on_open=1\n";
}

TEST_F(MountTest, FioStressThenVerify) {
  if (system("command -v fio >/dev/null 2>&1") != 0) GTEST_FAIL() << "no fio (apt install fio)";
  MountOk();
  for (const char* sub : {"random", "sequential", "mixed", "churn"}) {
    ASSERT_TRUE(stdfs::create_directory(P(sub)));
  }
  const int seconds = StressSeconds();
  const stdfs::path job = dir_ / "stress.fio";
  store::test_util::WriteFile(job, JobFile(mnt_, seconds));
  const ProcResult fio = RunProgram(
      {"fio", "--output-format=terse", "--terse-version=3", job.string()}, {}, seconds * 3 + 120);
  ASSERT_EQ(fio.exit_code, 0) << fio.out << fio.err;
  EXPECT_EQ(fio.err.find("verify"), std::string::npos) << fio.err;
  // Each terse line is one job; its 5th field is its error number.
  int jobs = 0;
  for (size_t start = 0; start < fio.out.size();) {
    size_t end = fio.out.find('\n', start);
    if (end == std::string::npos) end = fio.out.size();
    const std::string line = fio.out.substr(start, end - start);
    start = end + 1;
    if (line.rfind("3;", 0) != 0) continue;
    ++jobs;
    std::vector<std::string> fields;
    for (size_t a = 0, b; a <= line.size(); a = b + 1) {
      b = line.find(';', a);
      if (b == std::string::npos) b = line.size();
      fields.push_back(line.substr(a, b - a));
    }
    ASSERT_GT(fields.size(), 5u);
    EXPECT_EQ(fields[4], "0") << "fio job " << fields[2] << " failed: " << line;
  }
  EXPECT_EQ(jobs, 5) << fio.out;
  // The mount is alive and tidy after the storm.
  EXPECT_TRUE(IsMedvfsMount(mnt_));
  EXPECT_EQ(ListDir(P("churn")).size(), 200u);
  UmountOk();
  const ProcResult verify = RunProgram({MEDVFS_BIN, "verify", archive_.string()},
                                       {{"MEDVFS_PASSPHRASE", kPassphrase}}, 300);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace medvfs::fs_test
