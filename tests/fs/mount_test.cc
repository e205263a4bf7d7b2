// Scenarios of DESIGN.md sections 1-4 on a real mount of the built `medvfs`.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/views.h"
#include "tests/fs/as_user.h"
#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

std::string SelfComm() {
  std::string comm = ReadFile("/proc/self/comm");
  while (!comm.empty() && comm.back() == '\n') comm.pop_back();
  return comm;
}

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

class MountScenarioTest : public MountTest {
 protected:
  std::vector<store::VersionInfo> VersionsTsv(const std::string& history_dir) {
    const std::string text = ReadFile(P(history_dir + "/.meta/versions.tsv"));
    auto parsed = store::ParseVersionsTsv(text);
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << text;
    return parsed.ok() ? *parsed : std::vector<store::VersionInfo>{};
  }
};

TEST_F(MountScenarioTest, WriteCloseWriteCloseGivesTwoVersions) {
  MountOk();
  ASSERT_EQ(WriteFile(P("scan.dcm"), "first version"), 0);
  ASSERT_EQ(WriteFile(P("scan.dcm"), "second"), 0);
  const std::vector<std::string> versions = ListDir(P("@version/scan.dcm"));
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_TRUE(versions[0].starts_with("v1_") && versions[0].ends_with("Z.dcm")) << versions[0];
  EXPECT_TRUE(versions[1].starts_with("v2_") && versions[1].ends_with("Z.dcm")) << versions[1];
  EXPECT_EQ(ReadFile(P("@version/scan.dcm/" + versions[0])), "first version");
  EXPECT_EQ(ReadFile(P("@version/scan.dcm/" + versions[1])), "second");
  EXPECT_EQ(ReadFile(P("@version/scan.dcm/v1")), "first version");
  EXPECT_EQ(ReadFile(P("@version/scan.dcm/v2_any-suffix")), "second");
  EXPECT_EQ(ReadFile(P("scan.dcm")), "second");

  struct stat st {};
  ASSERT_EQ(stat(P("@version/scan.dcm/v1").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_EQ(st.st_size, 13);
  ASSERT_EQ(stat(P("@version/scan.dcm").c_str(), &st), 0);
  // The file's read and write bits, x beside each r: whoever may write it may restore it.
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFDIR | 0755));
  // The kernel caches the history directory like any directory, and a chmod, chown or
  // setfacl of the file drops that at once: the history shows the new permissions right away.
  ASSERT_EQ(chmod(P("scan.dcm").c_str(), 0640), 0);
  ASSERT_EQ(stat(P("@version/scan.dcm").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFDIR | 0750));
  ASSERT_EQ(chown(P("scan.dcm").c_str(), 4242, 4343), 0);
  ASSERT_EQ(stat(P("@version/scan.dcm").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4242u);
  EXPECT_EQ(st.st_gid, 4343u);
  ASSERT_EQ(chown(P("scan.dcm").c_str(), getuid(), getgid()), 0);
  ASSERT_EQ(RunProgram({"setfacl", "-m", "u:4242:r", P("scan.dcm").string()}).exit_code, 0);
  const ProcResult facl = RunProgram({"getfacl", "-cn", P("@version/scan.dcm").string()});
  EXPECT_NE(facl.out.find("user:4242:r-x\n"), std::string::npos) << facl.out << facl.err;
  ASSERT_EQ(chmod(P("scan.dcm").c_str(), 0644), 0);

  const auto tsv = VersionsTsv("@version/scan.dcm");
  ASSERT_EQ(tsv.size(), 2u);
  EXPECT_EQ(tsv[0].size, 13u);
  EXPECT_EQ(tsv[0].op, store::Operation::kWrite);
  EXPECT_EQ(tsv[1].program, SelfComm());
  EXPECT_EQ(tsv[1].writer_uid, getuid());
  EXPECT_EQ(tsv[1].writer_pid, static_cast<uint32_t>(getpid()));
}

TEST_F(MountScenarioTest, EditorStyleSaveIsOneNewVersion) {
  MountOk();
  ASSERT_EQ(WriteFile(P("report.txt"), "draft"), 0);
  ASSERT_EQ(WriteFile(P(".report.txt.swp"), "final"), 0);
  ASSERT_EQ(rename(P(".report.txt.swp").c_str(), P("report.txt").c_str()), 0);
  EXPECT_EQ(ReadFile(P("report.txt")), "final");
  const std::vector<std::string> versions = ListDir(P("@version/report.txt"));
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(ReadFile(P("@version/report.txt/v1")), "draft");
  EXPECT_EQ(ReadFile(P("@version/report.txt/v2")), "final");
  EXPECT_EQ(VersionsTsv("@version/report.txt")[1].op, store::Operation::kRenameOver);
  EXPECT_EQ(ListDir(P("@version")), std::vector<std::string>{"report.txt"});
}

TEST_F(MountScenarioTest, RemoveThenRestoreBringsTheWholeHistoryBack) {
  MountOk();
  ASSERT_EQ(WriteFile(P("img.dcm"), "one"), 0);
  ASSERT_EQ(WriteFile(P("img.dcm"), "two"), 0);
  ASSERT_EQ(unlink(P("img.dcm").c_str()), 0);
  struct stat st {};
  EXPECT_EQ(ErrnoOf(stat(P("img.dcm").c_str(), &st)), ENOENT);
  EXPECT_EQ(ListDir(P("@version/img.dcm")).size(), 2u);

  ASSERT_EQ(setxattr(P("@version/img.dcm").c_str(), "user.medvfs.restore", "1", 1, 0), 0)
      << strerror(errno);
  EXPECT_EQ(ReadFile(P("img.dcm")), "one");
  EXPECT_EQ(ListDir(P("")), std::vector<std::string>{"img.dcm"});
  const auto versions = ListDir(P("@version/img.dcm"));
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(ReadFile(P("@version/img.dcm/v1")), "one");
  EXPECT_EQ(ReadFile(P("@version/img.dcm/v2")), "two");
  const auto tsv = VersionsTsv("@version/img.dcm");
  ASSERT_EQ(tsv.size(), 4u);
  EXPECT_EQ(tsv[2].op, store::Operation::kDeleteMarker);
  EXPECT_EQ(tsv[3].op, store::Operation::kRestore);
  EXPECT_EQ(ReadFile(P("@version/img.dcm/v4")), "one");

  // Restoring a live file: the kernel must not serve the old content.
  ASSERT_EQ(ReadFile(P("img.dcm")), "one");
  ASSERT_EQ(setxattr(P("@version/img.dcm").c_str(), "user.medvfs.restore", "v2\n", 3, 0), 0);
  EXPECT_EQ(ReadFile(P("img.dcm")), "two");
  ASSERT_EQ(stat(P("img.dcm").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 3);

  EXPECT_EQ(ErrnoOf(setxattr(P("@version/img.dcm").c_str(), "user.medvfs.restore", "x", 1, 0)),
            EINVAL);
  EXPECT_EQ(ErrnoOf(setxattr(P("@version/img.dcm").c_str(), "user.medvfs.restore", "99", 2, 0)),
            ENOENT);
}

TEST_F(MountScenarioTest, RecursiveToolsNeverSeeVersionViews) {
  MountOk();
  ASSERT_EQ(mkdir(P("study").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("study/series").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(P("study/series/a.dcm"), "a"), 0);
  ASSERT_EQ(WriteFile(P("study/series/a.dcm"), "b"), 0);
  ASSERT_EQ(WriteFile(P("top.txt"), "t"), 0);
  for (const auto& argv :
       std::vector<std::vector<std::string>>{{"/usr/bin/find", mnt_.string()},
                                             {"/bin/ls", "-aR", mnt_.string()},
                                             {"/bin/ls", "-la", (mnt_ / "study").string()}}) {
    const ProcResult result = RunProgram(argv);
    ASSERT_EQ(result.exit_code, 0) << argv[0] << ": " << result.err;
    EXPECT_TRUE(Contains(result.out, "series")) << result.out;
    EXPECT_FALSE(Contains(result.out, "@version")) << argv[0] << " shows:\n" << result.out;
    EXPECT_FALSE(Contains(result.out, "v1_")) << result.out;
  }
  // Still reachable by name from every directory.
  struct stat st {};
  EXPECT_EQ(stat(P("@version").c_str(), &st), 0);
  EXPECT_EQ(stat(P("study/series/@version/a.dcm/v2").c_str(), &st), 0);
  EXPECT_EQ(ListDir(P("study/@version")), std::vector<std::string>{"series"});
  // .meta is hidden in history directories too.
  EXPECT_EQ(ListDir(P("study/series/@version/a.dcm")).size(), 2u);

  UmountOk();
  MountOk("versions=visible");
  const ProcResult find = RunProgram({"/usr/bin/find", mnt_.string()});
  ASSERT_EQ(find.exit_code, 0) << find.err;
  EXPECT_TRUE(Contains(find.out, (mnt_ / "@version").string() + "\n")) << find.out;
  EXPECT_TRUE(Contains(find.out, "study/series/@version/a.dcm/v2_")) << find.out;
  EXPECT_TRUE(Contains(find.out, "study/series/@version/a.dcm/.meta/versions.tsv")) << find.out;
  const std::vector<std::string> root = ListDir(P(""));
  EXPECT_NE(std::find(root.begin(), root.end(), "@version"), root.end());
}

TEST_F(MountScenarioTest, ViewsAreReadOnly) {
  MountOk();
  ASSERT_EQ(WriteFile(P("f"), "one"), 0);
  const std::string v1 = P("@version/f/v1").string();
  EXPECT_EQ(open(v1.c_str(), O_WRONLY), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(open(v1.c_str(), O_RDWR), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(ErrnoOf(truncate(v1.c_str(), 0)), EROFS);
  EXPECT_EQ(ErrnoOf(chmod(v1.c_str(), 0644)), EROFS);
  EXPECT_EQ(ErrnoOf(unlink(v1.c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(rename(v1.c_str(), P("@version/f/v9").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(link(v1.c_str(), P("copy").c_str())), EXDEV);
  EXPECT_EQ(ErrnoOf(mkdir(P("@version/x").c_str(), 0755)), EROFS);
  EXPECT_EQ(WriteFile(P("@version/f/new"), "x"), EROFS);
  EXPECT_EQ(ErrnoOf(symlink("x", P("@version/l").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(rmdir(P("@version/f").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(rmdir(P("@version").c_str())), EROFS);
  EXPECT_EQ(ErrnoOf(setxattr(P("@version/f").c_str(), "user.other", "1", 1, 0)), EROFS);
  EXPECT_EQ(ErrnoOf(removexattr(v1.c_str(), "user.other")), EROFS);
  EXPECT_EQ(ReadFile(v1), "one");
}

TEST_F(MountScenarioTest, ReservedNamesCannotBeCreated) {
  MountOk();
  ASSERT_EQ(WriteFile(P("f"), "x"), 0);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  // The views exist (found by lookup), so the kernel refuses before medvfs is asked; medvfs
  // itself would refuse with EPERM.
  const std::vector<std::string> views = {".meta", "@version", "@patients", "d/.meta",
                                          "d/@version"};
  for (const std::string& view : views) {
    const std::string path = P(view).string();
    EXPECT_NE(ErrnoOf(mkdir(path.c_str(), 0755)), 0) << view;
    EXPECT_NE(WriteFile(path, "x", O_EXCL), 0) << view;
    EXPECT_NE(WriteFile(path, "x"), 0) << view;
    EXPECT_NE(ErrnoOf(rename(P("f").c_str(), path.c_str())), 0) << view;
    EXPECT_NE(ErrnoOf(symlink("f", path.c_str())), 0) << view;
    EXPECT_NE(ErrnoOf(link(P("f").c_str(), path.c_str())), 0) << view;
    EXPECT_NE(ErrnoOf(mknod(path.c_str(), S_IFIFO | 0644, 0)), 0) << view;
  }
  // @patients is a view of the root only: elsewhere it is an ordinary name.
  ASSERT_EQ(mkdir(P("d/@patients").c_str(), 0755), 0);
  ASSERT_EQ(rmdir(P("d/@patients").c_str()), 0);
  EXPECT_EQ(ListDir(P("")), (std::vector<std::string>{"d", "f"}));
  EXPECT_TRUE(ListDir(P("d")).empty());
  EXPECT_EQ(ReadFile(P("f")), "x");
}

TEST_F(MountScenarioTest, TimeViewShowsTheTreeAsItWas) {
  MountOk();
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(WriteFile(P("d/g.dcm"), "old g"), 0);
  ASSERT_EQ(WriteFile(P("f"), "old f"), 0);
  ASSERT_EQ(symlink("f", P("link").c_str()), 0);
  const int64_t then = NowNs();
  ASSERT_EQ(WriteFile(P("f"), "new f"), 0);
  ASSERT_EQ(WriteFile(P("d/g.dcm"), "new g"), 0);
  ASSERT_EQ(WriteFile(P("later"), "later"), 0);
  ASSERT_EQ(unlink(P("link").c_str()), 0);

  const std::string at = "@version/@" + store::FormatTimeNs(then);
  EXPECT_EQ(ListDir(P(at)), (std::vector<std::string>{"d", "f", "link"}));
  EXPECT_EQ(ReadFile(P(at + "/f")), "old f");
  EXPECT_EQ(ReadFile(P(at + "/d/g.dcm")), "old g");
  char target[64] = {};
  ASSERT_EQ(readlink(P(at + "/link").c_str(), target, sizeof(target)), 1);
  EXPECT_EQ(std::string(target), "f");
  struct stat st {};
  EXPECT_EQ(ErrnoOf(stat(P(at + "/later").c_str(), &st)), ENOENT);
  EXPECT_EQ(ErrnoOf(stat(P("@version/@not-a-time").c_str(), &st)), ENOENT);
  // Not listed: only reachable by name.
  EXPECT_EQ(ListDir(P("@version")), (std::vector<std::string>{"d", "f", "later", "link"}));
}

TEST_F(MountScenarioTest, StatsAttributeOnTheRoot) {
  MountOk();
  ASSERT_EQ(WriteFile(P("a"), "aaaa"), 0);
  ASSERT_EQ(WriteFile(P("a"), "bbbbbb"), 0);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  const ssize_t size = getxattr(mnt_.c_str(), "user.medvfs.stats", nullptr, 0);
  ASSERT_GT(size, 0) << strerror(errno);
  char small[2];
  EXPECT_EQ(getxattr(mnt_.c_str(), "user.medvfs.stats", small, sizeof(small)), -1);
  EXPECT_EQ(errno, ERANGE);
  std::string value(static_cast<size_t>(size) + 64, '\0');
  const ssize_t n = getxattr(mnt_.c_str(), "user.medvfs.stats", value.data(), value.size());
  ASSERT_GT(n, 0);
  value.resize(static_cast<size_t>(n));
  const nlohmann::json stats = nlohmann::json::parse(value);
  for (const char* key : {"files", "live_files", "directories", "versions", "logical_bytes",
                          "stored_bytes", "chunks", "disk_bytes"}) {
    EXPECT_TRUE(stats.contains(key)) << key << " in " << value;
  }
  EXPECT_EQ(stats["files"], 1);
  EXPECT_EQ(stats["versions"], 2);
  EXPECT_EQ(stats["logical_bytes"], 10);
  char names[1024];
  const ssize_t listed = listxattr(mnt_.c_str(), names, sizeof(names));
  EXPECT_FALSE(Contains(std::string(names, static_cast<size_t>(std::max<ssize_t>(listed, 0))),
                        "user.medvfs.stats"));
  EXPECT_EQ(getxattr(P("a").c_str(), "user.medvfs.stats", nullptr, 0), -1);
}

TEST_F(MountScenarioTest, ConcurrentWritersEachGetTheirVersions) {
  MountOk();
  constexpr int kThreads = 4;
  constexpr int kRounds = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        const std::string name = "w" + std::to_string(t);
        const std::string content(1000 + 97 * r, static_cast<char>('a' + t));
        if (WriteFile(P(name), content) != 0 || ReadFile(P(name)) != content) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    const std::string history = "@version/w" + std::to_string(t);
    EXPECT_EQ(ListDir(P(history)).size(), size_t{kRounds})
        << ReadFile(P(history + "/.meta/versions.tsv"));
  }
}

TEST_F(MountScenarioTest, LargeDirectoryListsEveryEntryOnce) {
  MountOk();
  ASSERT_EQ(mkdir(P("many").c_str(), 0755), 0);
  std::vector<std::string> want;
  for (int i = 0; i < 600; ++i) {
    const std::string name = "file-with-a-longish-name-" + std::to_string(i);
    const int fd = open(P("many/" + name).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
    want.push_back(name);
  }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ListDir(P("many")), want);
}

// Runs `body` as user and group 65534 (nobody), on a thread of its own (tests/fs/as_user.h).
template <typename Body>
int AsNobody(Body&& body) {
  return RunAsNobody(std::forward<Body>(body));
}

// What user nobody can do under `base`: one errno per step, packed into a string.
std::string NobodyAccess(const stdfs::path& base) {
  std::string out;
  const auto errno_of = [&](const std::function<int()>& step) {
    return AsNobody([&] {
      errno = 0;
      return step() < 0 ? errno : 0;
    });
  };
  const std::string secret = (base / "secret").string();
  const std::string open_file = (base / "public").string();
  const std::string private_dir = (base / "private").string();
  out += ErrnoName(errno_of([&] { return open(secret.c_str(), O_RDONLY); })) + " ";
  out += ErrnoName(errno_of([&] { return open(open_file.c_str(), O_RDONLY); })) + " ";
  out += ErrnoName(errno_of([&] { return open(open_file.c_str(), O_WRONLY); })) + " ";
  out +=
      ErrnoName(errno_of([&] { return open((base / "new").c_str(), O_CREAT | O_WRONLY, 0644); })) +
      " ";
  out += ErrnoName(errno_of([&] { return open(private_dir.c_str(), O_RDONLY); })) + " ";
  out += ErrnoName(errno_of([&] { return unlink(open_file.c_str()); })) + " ";
  out += ErrnoName(errno_of([&] { return chmod(open_file.c_str(), 0777); }));
  return out;
}

TEST_F(MountScenarioTest, PermissionsAreEnforcedForOtherUsers) {
  MountOk("allow_other");
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  for (const stdfs::path& base : {mnt_, plain_}) {
    ASSERT_EQ(chmod(base.c_str(), 0755), 0);
    ASSERT_EQ(WriteFile(base / "secret", "s"), 0);
    ASSERT_EQ(chmod((base / "secret").c_str(), 0600), 0);
    ASSERT_EQ(WriteFile(base / "public", "p"), 0);
    ASSERT_EQ(mkdir((base / "private").c_str(), 0700), 0);
  }
  const std::string plain = NobodyAccess(plain_);
  EXPECT_EQ(plain, "EACCES ok EACCES EACCES EACCES EACCES EPERM");
  EXPECT_EQ(NobodyAccess(mnt_), plain);
  // The history of a file is guarded by the file's permissions, now and after a chmod.
  const auto nobody_reads = [&](const std::string& rel) {
    return AsNobody([&] { return open(P(rel).c_str(), O_RDONLY) < 0 ? errno : 0; });
  };
  EXPECT_EQ(nobody_reads("@version/secret/v1"), EACCES);
  EXPECT_EQ(nobody_reads("@version/public/v1"), 0);
  ASSERT_EQ(chmod(P("public").c_str(), 0600), 0);
  EXPECT_EQ(nobody_reads("@version/public/v1"), EACCES);
  EXPECT_EQ(nobody_reads("@version/@2100-01-01/public"), EACCES);
}

}  // namespace
}  // namespace medvfs::fs_test
