// Multi-user mounts (allow_other): POSIX permissions hold for every user and every node type
// (the kernel checks them, default_permissions), the daemon checks again on top, and each
// denial the daemon makes lands in the audit log with the caller. Needs root (to create two users
// and mount with allow_other) and useradd; skipped otherwise. The users are removed again even when
// a test fails.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fs/as_user.h"
#include "tests/fs/audit_reader.h"
#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;
using store::AuditOp;

struct TestUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

class MultiUserTest : public MountTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_FAIL() << "needs root: creates users and mounts with allow_other";
    if (system("command -v useradd >/dev/null 2>&1 && command -v userdel >/dev/null 2>&1 && "
               "command -v groupadd >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1") != 0) {
      GTEST_FAIL() << "needs useradd, userdel, groupadd and setpriv";
    }
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const std::string prefix = "medvfs-t-" + std::to_string(getpid()) + "-";
    group_ = prefix + "g";
    ASSERT_EQ(RunProgram({"groupadd", group_}).exit_code, 0) << "groupadd failed";
    group_made_ = true;
    const group* g = getgrnam(group_.c_str());
    ASSERT_NE(g, nullptr);
    group_gid_ = g->gr_gid;
    a_ = AddUser(prefix + "a", {});
    b_ = AddUser(prefix + "b", {"-G", group_});
    ASSERT_NE(a_.uid, 0u);
    ASSERT_NE(b_.uid, 0u);
    // The users must reach the mount point.
    stdfs::permissions(dir_, stdfs::perms(0755));
    stdfs::permissions(mnt_, stdfs::perms(0755));
    stdfs::permissions(plain_, stdfs::perms(0755));
  }

  void TearDown() override {
    MountTest::TearDown();
    for (const std::string& name : users_) RunProgram({"userdel", name});
    if (group_made_) RunProgram({"groupdel", group_});
  }

  TestUser AddUser(const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> argv = {"useradd", "--no-create-home", "--user-group", "--shell",
                                     "/usr/sbin/nologin"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(name);
    const ProcResult made = RunProgram(argv);
    if (made.exit_code != 0) {
      ADD_FAILURE() << "useradd " << name << " failed: " << made.err;
      return {};
    }
    users_.push_back(name);
    const passwd* pw = getpwnam(name.c_str());
    if (pw == nullptr) return {};
    return TestUser{name, pw->pw_uid, pw->pw_gid};
  }

  // Runs `fn` with `user`'s uid, gid and groups, on a thread of its own (tests/fs/as_user.h);
  // returns what fn returned (an errno, 0 for success), or -1 if the thread could not switch.
  static int AsUser(const TestUser& user, const std::function<int()>& fn) {
    return RunAs(Credentials{user.uid, user.gid, GroupsOf(user.name.c_str(), user.gid)}, fn);
  }

  // The errno of opening `path` with `flags` as `user` (0 if it opened).
  static int OpenAs(const TestUser& user, const stdfs::path& path, int flags) {
    return AsUser(user, [&] {
      const int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
      if (fd < 0) return errno;
      close(fd);
      return 0;
    });
  }

  // A shell command line run as `user` through setpriv (so programs are what they are: cat,
  // cp, mv...).
  ProcResult ShellAs(const TestUser& user, const std::string& command) {
    return RunProgram({"setpriv", "--reuid=" + user.name, "--regid=" + user.name, "--init-groups",
                       "--", "sh", "-c", command},
                      {{"HOME", "/"}});
  }

  // Mounts with allow_other and gives user A a 0755 directory /a.
  void MountShared() {
    ASSERT_NO_FATAL_FAILURE(MountOk("allow_other"));
    ASSERT_EQ(mkdir(P("a").c_str(), 0755), 0) << ErrnoName(errno);
    ASSERT_EQ(chown(P("a").c_str(), a_.uid, a_.gid), 0) << ErrnoName(errno);
  }

  std::vector<std::string> users_;
  std::string group_;
  bool group_made_ = false;
  gid_t group_gid_ = 0;
  TestUser a_;
  TestUser b_;
};

TEST_F(MultiUserTest, OthersCannotReadAnOwnerOnlyFileNorItsHistoryAndDenialsAreAudited) {
  ASSERT_NO_FATAL_FAILURE(MountShared());
  const stdfs::path secret = P("a/secret.txt");
  ASSERT_EQ(ShellAs(a_, "umask 077 && printf one > " + secret.string() + " && printf two > " +
                            secret.string())
                .exit_code,
            0);
  struct stat st {};
  ASSERT_EQ(stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, a_.uid);

  // A reads; B gets EACCES, from the file, its versions and its metadata alike.
  EXPECT_EQ(OpenAs(a_, secret, O_RDONLY), 0);
  EXPECT_EQ(ShellAs(a_, "cat " + secret.string()).out, "two");
  EXPECT_EQ(ErrnoName(OpenAs(b_, secret, O_RDONLY)), "EACCES");
  EXPECT_EQ(ErrnoName(OpenAs(b_, secret, O_WRONLY)), "EACCES");
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/@version/secret.txt/v1"), O_RDONLY)), "EACCES");
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/@version/secret.txt/v2"), O_RDONLY)), "EACCES");
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/@version/secret.txt"), O_RDONLY | O_DIRECTORY)), "EACCES");
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/.meta/secret.txt/sha256"), O_RDONLY)), "EACCES");
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/.meta/secret.txt/versions.tsv"), O_RDONLY)), "EACCES");
  EXPECT_EQ(OpenAs(a_, P("a/@version/secret.txt/v1"), O_RDONLY), 0);
  EXPECT_EQ(ShellAs(a_, "cat " + P("a/@version/secret.txt/v1").string()).out, "one");
  EXPECT_EQ(AsUser(b_, [&] { return access(secret.c_str(), R_OK) == 0 ? 0 : errno; }), EACCES);
  EXPECT_EQ(AsUser(a_, [&] { return access(secret.c_str(), R_OK | W_OK) == 0 ? 0 : errno; }), 0);
  // The virtual attributes carry patient data: they need r too.
  EXPECT_EQ(AsUser(b_,
                   [&] {
                     char buf[128];
                     return getxattr(secret.c_str(), "user.medvfs.sha256", buf, sizeof(buf)) >= 0
                                ? 0
                                : errno;
                   }),
            EACCES);

  // A 0644 file is B's to read (and its versions too), not to write.
  ASSERT_EQ(ShellAs(a_, "umask 022 && printf pub > " + P("a/public.txt").string()).exit_code, 0);
  EXPECT_EQ(ShellAs(b_, "cat " + P("a/public.txt").string()).out, "pub");
  EXPECT_EQ(ShellAs(b_, "cat " + P("a/@version/public.txt/v1").string()).out, "pub");
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/public.txt"), O_WRONLY)), "EACCES");
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/public.txt"), O_RDONLY | O_TRUNC)), "EACCES");

  // B cannot create, remove or rename in A's 0755 directory, nor chmod or chown A's files.
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/intruder.txt"), O_WRONLY | O_CREAT)), "EACCES");
  EXPECT_EQ(ErrnoName(AsUser(b_, [&] { return mkdir(P("a/d").c_str(), 0755) ? errno : 0; })),
            "EACCES");
  EXPECT_EQ(ErrnoName(AsUser(b_, [&] { return unlink(P("a/public.txt").c_str()) ? errno : 0; })),
            "EACCES");
  EXPECT_EQ(
      ErrnoName(AsUser(
          b_,
          [&] { return rename(P("a/public.txt").c_str(), P("a/p2.txt").c_str()) ? errno : 0; })),
      "EACCES");
  EXPECT_EQ(
      ErrnoName(AsUser(b_, [&] { return chmod(P("a/public.txt").c_str(), 0666) ? errno : 0; })),
      "EPERM");
  EXPECT_EQ(ErrnoName(AsUser(
                a_, [&] { return chown(P("a/public.txt").c_str(), b_.uid, -1) ? errno : 0; })),
            "EPERM");
  EXPECT_EQ(AsUser(a_, [&] { return chmod(P("a/public.txt").c_str(), 0640) ? errno : 0; }), 0);
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/public.txt"), O_RDONLY)), "EACCES");  // at once
  // Its history follows at once too, although B's reads above had the kernel cache it.
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/@version/public.txt/v1"), O_RDONLY)), "EACCES");

  // A supplementary group grants its bits (B is in group_, A's file is 0640 in group_).
  ASSERT_EQ(chown(P("a/public.txt").c_str(), -1, group_gid_), 0);
  EXPECT_EQ(ShellAs(b_, "cat " + P("a/public.txt").string()).out, "pub");

  // A directory without x for B: nothing below it resolves for B.
  ASSERT_EQ(AsUser(a_, [&] { return chmod(P("a").c_str(), 0700) ? errno : 0; }), 0);
  EXPECT_EQ(ErrnoName(OpenAs(b_, P("a/public.txt"), O_RDONLY)), "EACCES");
  EXPECT_EQ(ErrnoName(AsUser(b_, [&] { return chdir(P("a").c_str()) ? errno : 0; })), "EACCES");
  EXPECT_EQ(OpenAs(a_, P("a/public.txt"), O_RDONLY), 0);

  // A program of A's that B may execute (0711) but not read: the kernel lets the exec through,
  // medvfs refuses the read it needs (stricter than the kernel, see fs/access.h).
  ASSERT_EQ(AsUser(a_, [&] { return chmod(P("a").c_str(), 0755) ? errno : 0; }), 0);
  const std::string prog = P("a/prog").string();
  ASSERT_EQ(ShellAs(a_, "cp /bin/true " + prog + " && chmod 0711 " + prog).exit_code, 0);
  EXPECT_EQ(ShellAs(a_, prog).exit_code, 0);
  EXPECT_EQ(ShellAs(b_, prog).exit_code, 126);

  ASSERT_NO_FATAL_FAILURE(UmountOk());
  const std::vector<store::AuditEntry> audit = ReadAudit(archive_);
  const std::string log = DescribeAudit(audit);
  // Every refusal above except the program's came from the kernel (default_permissions: the
  // kernel's check is the only one that covers FIFOs and sockets, see fs/mount_options.h); those
  // never reached medvfs and are not in the log. What medvfs refuses itself is.
  EXPECT_TRUE(FindAudit(
      audit, AuditMatch().Op(AuditOp::kOpenRead).Uid(b_.uid).Path("/a/prog").Result(EACCES)))
      << log;
  EXPECT_TRUE(
      FindAudit(audit, AuditMatch().Op(AuditOp::kOpenRead).Uid(a_.uid).Path("/a/prog").Result(0)))
      << log;
  EXPECT_TRUE(FindAudit(audit, AuditMatch()
                                   .Op(AuditOp::kOpenRead)
                                   .Uid(a_.uid)
                                   .Path("/a/secret.txt")
                                   .Result(0)
                                   .Program("cat")))
      << log;
  EXPECT_TRUE(FindAudit(audit, AuditMatch()
                                   .Op(AuditOp::kReadVersion)
                                   .Uid(a_.uid)
                                   .Path("/a/secret.txt")
                                   .Result(0)
                                   .Version(1)))
      << log;
  EXPECT_TRUE(FindAudit(audit, AuditMatch()
                                   .Op(AuditOp::kOpenRead)
                                   .Uid(b_.uid)
                                   .Path("/a/public.txt")
                                   .Result(0)
                                   .Program("cat")))
      << log;
  // Nothing of the secret file's content or metadata was given to B.
  for (const store::AuditEntry& entry : audit) {
    if (entry.uid == b_.uid && entry.path == "/a/secret.txt") {
      EXPECT_NE(entry.result, 0) << "B got at the secret file:\n" << log;
    }
  }
}

// Opening a FIFO or a device node and connecting to a UNIX socket never reach the daemon (the
// kernel's fuse_permission() lets them through unasked without default_permissions): only the
// kernel can refuse them, so an allow_other mount must have it check (pjdfstest open/06).
TEST_F(MultiUserTest, OthersCannotOpenAnOwnerOnlyFifoNorConnectToAnOwnerOnlySocket) {
  ASSERT_NO_FATAL_FAILURE(MountShared());
  const std::string fifo = P("fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << ErrnoName(errno);
  ASSERT_EQ(chmod(fifo.c_str(), 0600), 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string socket_path = P("sock").string();
  ASSERT_LT(socket_path.size(), sizeof(address.sun_path));
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  ASSERT_EQ(bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0)
      << ErrnoName(errno);
  ASSERT_EQ(listen(listener, 4), 0);
  ASSERT_EQ(chmod(socket_path.c_str(), 0600), 0);

  const Credentials nobody{65534, 65534, {}};
  const auto open_fifo = [&](int flags) {
    return RunAs(nobody, [&] {
      const int fd = open(fifo.c_str(), flags | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) return errno;
      close(fd);
      return 0;
    });
  };
  const auto connect_socket = [&] {
    return RunAs(nobody, [&] {
      const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return errno;
      const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
      const int err = rc == 0 ? 0 : errno;
      close(fd);
      return err;
    });
  };
  EXPECT_EQ(ErrnoName(open_fifo(O_RDONLY)), "EACCES");
  EXPECT_EQ(ErrnoName(open_fifo(O_WRONLY)), "EACCES");  // ENXIO (no reader) if it got through
  EXPECT_EQ(ErrnoName(open_fifo(O_RDWR)), "EACCES");
  EXPECT_EQ(ErrnoName(connect_socket()), "EACCES");
  // The owner's chmod opens them: the refusals above were the permissions, nothing else.
  ASSERT_EQ(chmod(fifo.c_str(), 0606), 0);
  ASSERT_EQ(chmod(socket_path.c_str(), 0606), 0);
  EXPECT_EQ(open_fifo(O_RDONLY), 0);
  EXPECT_EQ(connect_socket(), 0);
  close(listener);
}

TEST_F(MultiUserTest, EveryActionOfAScriptedSessionIsAuditedWithItsCallerAndProgram) {
  ASSERT_NO_FATAL_FAILURE(MountShared());
  const stdfs::path source = Plain("source.txt");
  ASSERT_EQ(WriteFile(source, "copied"), 0);
  stdfs::permissions(source, stdfs::perms(0644));
  const std::string dir = P("a").string();
  ASSERT_EQ(ShellAs(a_, "printf first > " + dir + "/s.txt").exit_code, 0);
  ASSERT_EQ(ShellAs(a_, "cp " + source.string() + " " + dir + "/s.txt").exit_code, 0);
  ASSERT_EQ(ShellAs(a_, "cat " + dir + "/s.txt").out, "copied");
  ASSERT_EQ(ShellAs(a_, "mv " + dir + "/s.txt " + dir + "/t.txt").exit_code, 0);
  ASSERT_EQ(ShellAs(a_, "rm " + dir + "/t.txt").exit_code, 0);
  const ProcResult restored =
      ShellAs(a_, std::string(MEDVFS_BIN) + " restore " + dir + "/t.txt --version 1");
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  EXPECT_EQ(ReadFile(P("a/t.txt")), "first");
  const ProcResult noted =
      ShellAs(a_, std::string(MEDVFS_BIN) + " note " + dir + "/t.txt 'checked'");
  ASSERT_EQ(noted.exit_code, 0) << noted.err;
  ASSERT_NO_FATAL_FAILURE(UmountOk());

  const std::vector<store::AuditEntry> audit = ReadAudit(archive_);
  const std::string log = DescribeAudit(audit);
  const uint32_t a = a_.uid;
  EXPECT_TRUE(FindAudit(audit, AuditMatch().Op(AuditOp::kMount).Uid(0u))) << log;
  EXPECT_TRUE(FindAudit(audit, AuditMatch().Op(AuditOp::kUnmount))) << log;
  EXPECT_TRUE(FindAudit(audit, AuditMatch().Op(AuditOp::kMkdir).Uid(0u).Path("/a"))) << log;
  EXPECT_TRUE(FindAudit(
      audit, AuditMatch().Op(AuditOp::kCommit).Uid(a).Path("/a/s.txt").Program("sh").Version(1)))
      << log;
  EXPECT_TRUE(FindAudit(
      audit, AuditMatch().Op(AuditOp::kOpenWrite).Uid(a).Path("/a/s.txt").Result(0).Program("cp")))
      << log;
  EXPECT_TRUE(FindAudit(
      audit, AuditMatch().Op(AuditOp::kCommit).Uid(a).Path("/a/s.txt").Program("cp").Version(2)))
      << log;
  EXPECT_TRUE(FindAudit(audit, AuditMatch()
                                   .Op(AuditOp::kOpenRead)
                                   .Uid(a)
                                   .Path("/a/s.txt")
                                   .Result(0)
                                   .Program("cat")
                                   .Version(2)))
      << log;
  EXPECT_TRUE(FindAudit(
      audit, AuditMatch().Op(AuditOp::kRename).Uid(a).Path("/a/s.txt").Result(0).Program("mv")))
      << log;
  EXPECT_TRUE(FindAudit(
      audit, AuditMatch().Op(AuditOp::kUnlink).Uid(a).Path("/a/t.txt").Result(0).Program("rm")))
      << log;
  EXPECT_TRUE(
      FindAudit(audit, AuditMatch().Op(AuditOp::kRestore).Uid(a).Result(0).Program("medvfs")))
      << log;
  EXPECT_TRUE(FindAudit(audit, AuditMatch().Op(AuditOp::kNote).Uid(a).Result(0).Program("medvfs")))
      << log;
  // One entry per open, not per read: cat opened s.txt once.
  int cat_opens = 0;
  for (const store::AuditEntry& entry : audit) {
    if (entry.op == AuditOp::kOpenRead && entry.program == "cat") ++cat_opens;
  }
  EXPECT_EQ(cat_opens, 1) << log;

  // What the administrator sees: medvfs audit names the same actions, and the chain holds.
  const EnvChanges key = {{"MEDVFS_PASSPHRASE", kPassphrase}};
  const ProcResult listed = RunProgram(
      {MEDVFS_BIN, "audit", archive_.string(), "--path", "/a", "--uid", std::to_string(a)}, key);
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  for (const char* line : {" cp ", " cat ", " mv ", " rm ", " medvfs "}) {
    EXPECT_NE(listed.out.find(line), std::string::npos) << line << "\n" << listed.out;
  }
  for (const char* op : {"commit", "open-read", "rename", "unlink", "restore", "note"}) {
    EXPECT_NE(listed.out.find(op), std::string::npos) << op << "\n" << listed.out;
  }
  const ProcResult verified = RunProgram({MEDVFS_BIN, "audit", archive_.string(), "--verify"}, key);
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_NE(verified.out.find("intact"), std::string::npos) << verified.out;
}

}  // namespace
}  // namespace medvfs::fs_test
