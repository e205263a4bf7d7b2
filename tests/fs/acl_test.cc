// POSIX ACLs on a real mount (store/posix_acl.h, man medvfs-views.7): setfacl and getfacl, the
// kernel's and the daemon's enforcement for other users, default ACL inheritance, chmod and the
// mask, the ACL of an old version under @version, tar --acls and rsync -aHAX; and a randomized
// differential test against a plain directory of the host (ext4 or tmpfs, which keep ACLs).
// Needs root (allow_other, other uids), setfacl/getfacl (package acl), tar and rsync: a test
// that cannot reach them fails.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "tests/fs/as_user.h"
#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

const Credentials kAlice{40001, 40001, {}};
const Credentials kBob{40002, 40002, {40010}};
const Credentials kCarol{40003, 40011, {}};

class AclTest : public MountTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_FAIL() << "needs root: mounts with allow_other, acts as other uids";
    if (system("command -v setfacl >/dev/null && command -v getfacl >/dev/null && "
               "command -v tar >/dev/null && command -v rsync >/dev/null") != 0) {
      GTEST_FAIL() << "needs setfacl, getfacl (package acl), tar and rsync "
                      "(tools/install-deps.sh)";
    }
    MountTest::SetUp();
    if (HasFatalFailure()) return;
    MountOk("allow_other");
    stdfs::create_directories(plain_);
    // The other users must reach both trees.
    stdfs::permissions(dir_, stdfs::perms(0755));
    stdfs::permissions(plain_, stdfs::perms(0755));
    ASSERT_EQ(chmod(mnt_.c_str(), 0755), 0);
  }

  // Runs a command as root; returns its result.
  static ProcResult Run(const std::vector<std::string>& argv) { return RunProgram(argv); }

  // getfacl's entries of `path` (numeric ids, no header), or the error.
  static std::string Facl(const stdfs::path& path) {
    const ProcResult r = Run({"getfacl", "-cn", "--", path.string()});
    if (r.exit_code != 0) return "getfacl failed: " + r.err;
    return r.out;
  }

  static void Setfacl(const std::vector<std::string>& args, const stdfs::path& path) {
    std::vector<std::string> argv = {"setfacl"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(path.string());
    const ProcResult r = Run(argv);
    ASSERT_EQ(r.exit_code, 0) << "setfacl on " << path << ": " << r.err;
  }

  // The errno of access(path, mask) as `who` (0 when allowed).
  static int AccessAs(const Credentials& who, const stdfs::path& path, int mask) {
    return RunAs(who, [&] { return access(path.c_str(), mask) == 0 ? 0 : errno; });
  }

  static int OpenAs(const Credentials& who, const stdfs::path& path, int flags) {
    return RunAs(who, [&] {
      const int fd = open(path.c_str(), flags | O_CLOEXEC);
      if (fd < 0) return errno;
      close(fd);
      return 0;
    });
  }

  // Creates a file with `mode` under `umask` (restored afterwards).
  static int CreateWithUmask(const stdfs::path& path, mode_t mode, mode_t mask, bool dir) {
    const mode_t old = umask(mask);
    int err = 0;
    if (dir) {
      if (mkdir(path.c_str(), mode) != 0) err = errno;
    } else {
      const int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
      if (fd < 0) {
        err = errno;
      } else {
        if (write(fd, "x", 1) != 1) err = errno;
        close(fd);
      }
    }
    umask(old);
    return err;
  }

  static mode_t ModeOf(const stdfs::path& path) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) return 0;
    return st.st_mode & 07777;
  }
};

TEST_F(AclTest, SetfaclGetfaclRoundTripAndModeFollowsTheAcl) {
  ASSERT_EQ(WriteFile(P("scan.dcm"), "pixels"), 0);
  ASSERT_EQ(chmod(P("scan.dcm").c_str(), 0640), 0);
  Setfacl({"-m", "u:40001:rw-,g:40010:r--"}, P("scan.dcm"));
  EXPECT_EQ(Facl(P("scan.dcm")),
            "user::rw-\nuser:40001:rw-\ngroup::r--\ngroup:40010:r--\nmask::rw-\nother::---\n\n");
  // The group bits show the mask, as on any file system with ACLs.
  EXPECT_EQ(ModeOf(P("scan.dcm")), 0660u);
  // An ACL equivalent to the mode is not kept.
  Setfacl({"-b"}, P("scan.dcm"));
  EXPECT_EQ(Xattr(P("scan.dcm"), "system.posix_acl_access"), "errno:ENODATA");
  EXPECT_EQ(Facl(P("scan.dcm")), "user::rw-\ngroup::r--\nother::---\n\n");
  // Survives a remount.
  Setfacl({"-m", "u:40002:r"}, P("scan.dcm"));
  UmountOk();
  MountOk("allow_other");
  EXPECT_EQ(Facl(P("scan.dcm")),
            "user::rw-\nuser:40002:r--\ngroup::r--\nmask::r--\nother::---\n\n");
}

TEST_F(AclTest, AnAclEntryAllowsAndDeniesOtherUsers) {
  ASSERT_EQ(WriteFile(P("scan.dcm"), "pixels"), 0);
  ASSERT_EQ(chmod(P("scan.dcm").c_str(), 0604), 0);  // others may read by the mode bits
  Setfacl({"-m", "u:40001:r--,u:40002:---,g:40011:---"}, P("scan.dcm"));
  // Alice only through her entry (the group class is r-- after the mask).
  EXPECT_EQ(OpenAs(kAlice, P("scan.dcm"), O_RDONLY), 0);
  EXPECT_EQ(OpenAs(kAlice, P("scan.dcm"), O_WRONLY), EACCES);
  // Bob's entry denies what "other" would give him; Carol's group entry denies her.
  EXPECT_EQ(OpenAs(kBob, P("scan.dcm"), O_RDONLY), EACCES);
  EXPECT_EQ(OpenAs(kCarol, P("scan.dcm"), O_RDONLY), EACCES);
  // Someone without an entry gets "other".
  EXPECT_EQ(OpenAs(Credentials{40004, 40004, {}}, P("scan.dcm"), O_RDONLY), 0);
  // Write through an ACL entry alone (mode 0600: no w for anyone else by the bits).
  ASSERT_EQ(chmod(P("scan.dcm").c_str(), 0600), 0);
  Setfacl({"-m", "u:40001:rw-"}, P("scan.dcm"));
  EXPECT_EQ(OpenAs(kAlice, P("scan.dcm"), O_WRONLY), 0);
  EXPECT_EQ(OpenAs(kBob, P("scan.dcm"), O_WRONLY), EACCES);
  // Only the owner sets ACLs.
  EXPECT_EQ(RunAs(kAlice,
                  [&] {
                    return setxattr(P("scan.dcm").c_str(), "system.posix_acl_access", "", 0, 0) == 0
                               ? 0
                               : errno;
                  }),
            EPERM);
}

TEST_F(AclTest, DefaultAclsAreInheritedAndTheUmaskIgnoredUnderThem) {
  ASSERT_EQ(mkdir(P("study").c_str(), 0755), 0);
  Setfacl({"-d", "-m", "u:40001:rwx,g:40010:r-x,m::rwx,o::---"}, P("study"));
  ASSERT_EQ(CreateWithUmask(P("study/img.dcm"), 0644, 077, false), 0);
  ASSERT_EQ(CreateWithUmask(P("study/series"), 0777, 077, true), 0);
  // The file: the default ACL limited by the create mode 0644 (umask ignored).
  EXPECT_EQ(Facl(P("study/img.dcm")),
            "user::rw-\nuser:40001:rwx\t#effective:r--\ngroup::r-x\t#effective:r--\n"
            "group:40010:r-x\t#effective:r--\nmask::r--\nother::---\n\n");
  EXPECT_EQ(ModeOf(P("study/img.dcm")), 0640u);
  EXPECT_EQ(OpenAs(kAlice, P("study/img.dcm"), O_RDONLY), 0);
  EXPECT_EQ(OpenAs(kAlice, P("study/img.dcm"), O_WRONLY), EACCES);
  // The subdirectory: access and default ACL.
  const std::string dir_acl = Facl(P("study/series"));
  EXPECT_TRUE(Contains(dir_acl, "user:40001:rwx\n")) << dir_acl;
  EXPECT_TRUE(Contains(dir_acl, "default:user:40001:rwx\n")) << dir_acl;
  EXPECT_EQ(ModeOf(P("study/series")), 0770u);
  // Without a default ACL the umask applies.
  ASSERT_EQ(CreateWithUmask(P("plain.dcm"), 0666, 027, false), 0);
  EXPECT_EQ(ModeOf(P("plain.dcm")), 0640u);
  ASSERT_EQ(CreateWithUmask(P("plaindir"), 0777, 022, true), 0);
  EXPECT_EQ(ModeOf(P("plaindir")), 0755u);
}

TEST_F(AclTest, ChmodUpdatesTheMask) {
  ASSERT_EQ(WriteFile(P("scan.dcm"), "pixels"), 0);
  Setfacl({"-m", "u:40001:rwx"}, P("scan.dcm"));
  ASSERT_EQ(chmod(P("scan.dcm").c_str(), 0640), 0);
  EXPECT_EQ(Facl(P("scan.dcm")),
            "user::rw-\nuser:40001:rwx\t#effective:r--\ngroup::r--\nmask::r--\nother::---\n\n");
  EXPECT_EQ(OpenAs(kAlice, P("scan.dcm"), O_WRONLY), EACCES);
  ASSERT_EQ(chmod(P("scan.dcm").c_str(), 0670), 0);
  EXPECT_EQ(OpenAs(kAlice, P("scan.dcm"), O_WRONLY), 0);
}

TEST_F(AclTest, AnOldVersionShowsTheAclItHad) {
  ASSERT_EQ(WriteFile(P("scan.dcm"), ""), 0);
  ASSERT_EQ(chmod(P("scan.dcm").c_str(), 0600), 0);
  ASSERT_EQ(WriteFile(P("scan.dcm"), "version one"), 0);
  Setfacl({"-m", "u:40001:rw-"}, P("scan.dcm"));
  ASSERT_EQ(WriteFile(P("scan.dcm"), "version two"), 0);
  const std::vector<std::string> versions = ListDir(P("@version/scan.dcm"));
  ASSERT_GE(versions.size(), 2u);
  // The two last versions (the create may have committed an empty one first).
  const size_t n = versions.size();
  const stdfs::path v1 = P("@version/scan.dcm/v" + std::to_string(n - 1));
  const stdfs::path v2 = P("@version/scan.dcm/v" + std::to_string(n));
  ASSERT_EQ(ReadFile(v1), "version one");
  ASSERT_EQ(ReadFile(v2), "version two");
  // Read-only as the version's mode is: the entry keeps r, loses w.
  EXPECT_EQ(Facl(v1), "user::r--\ngroup::---\nother::---\n\n");
  EXPECT_EQ(Facl(v2), "user::r--\nuser:40001:r--\ngroup::---\nmask::r--\nother::---\n\n");
  // Alice may list the history (the live file's ACL lets her read it) and read the version
  // whose ACL let her, not the one before.
  EXPECT_EQ(OpenAs(kAlice, P("@version/scan.dcm"), O_RDONLY | O_DIRECTORY), 0);
  EXPECT_EQ(OpenAs(kAlice, v2, O_RDONLY), 0);
  EXPECT_EQ(OpenAs(kAlice, v1, O_RDONLY), EACCES);
  EXPECT_EQ(OpenAs(kBob, v2, O_RDONLY), EACCES);
  // setfacl on a version is refused (history is read-only).
  EXPECT_NE(Run({"setfacl", "-m", "u:40002:r", v1.string()}).exit_code, 0);
}

TEST_F(AclTest, TarAclsRoundTripsWithoutWarnings) {
  ASSERT_EQ(mkdir(P("src").c_str(), 0750), 0);
  Setfacl({"-d", "-m", "u:40001:rx"}, P("src"));
  ASSERT_EQ(WriteFile(P("src/a.dcm"), "a"), 0);
  ASSERT_EQ(WriteFile(P("src/b.dcm"), "b"), 0);
  Setfacl({"-m", "g:40010:rw"}, P("src/b.dcm"));
  const std::string tarball = (dir_ / "src.tar").string();
  ProcResult made = Run({"tar", "--acls", "-cpf", tarball, "-C", mnt_.string(), "src"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_EQ(made.err, "");
  ASSERT_EQ(mkdir(P("dst").c_str(), 0755), 0);
  ProcResult unpacked = Run({"tar", "--acls", "-xpf", tarball, "-C", P("dst").string()});
  ASSERT_EQ(unpacked.exit_code, 0) << unpacked.err;
  EXPECT_EQ(unpacked.err, "");
  for (const char* name : {"src", "src/a.dcm", "src/b.dcm"}) {
    EXPECT_EQ(Facl(P(std::string("dst/") + name)), Facl(P(name))) << name;
  }
  EXPECT_TRUE(Contains(Facl(P("dst/src/b.dcm")), "group:40010:rw-")) << Facl(P("dst/src/b.dcm"));
}

TEST_F(AclTest, RsyncAHAXExitsZeroBothWays) {
  stdfs::create_directories(Plain("src/sub"));
  ASSERT_EQ(WriteFile(Plain("src/sub/a.dcm"), "a"), 0);
  ASSERT_EQ(WriteFile(Plain("src/b.dcm"), "b"), 0);
  ASSERT_EQ(link(Plain("src/b.dcm").c_str(), Plain("src/c.dcm").c_str()), 0);
  Setfacl({"-m", "u:40001:rw,g:40010:r"}, Plain("src/b.dcm"));
  Setfacl({"-d", "-m", "u:40002:rwx"}, Plain("src/sub"));
  ASSERT_EQ(setxattr(Plain("src/sub/a.dcm").c_str(), "user.comment", "x", 1, 0), 0);
  ProcResult in = Run({"rsync", "-aHAX", Plain("src").string() + "/", P("dst").string() + "/"});
  EXPECT_EQ(in.exit_code, 0) << in.err;
  ProcResult out = Run({"rsync", "-aHAX", P("dst").string() + "/", Plain("back").string() + "/"});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  for (const char* name : {"b.dcm", "c.dcm", "sub", "sub/a.dcm"}) {
    EXPECT_EQ(Facl(P(std::string("dst/") + name)), Facl(Plain(std::string("src/") + name))) << name;
    EXPECT_EQ(Facl(Plain(std::string("back/") + name)), Facl(Plain(std::string("src/") + name)))
        << name;
  }
}

// Random creates, setfacl, chmod and chown applied to the mount and to a plain directory of the
// host; getfacl output and the access decisions for three other users must agree.
// MEDVFS_ACL_SEED replays a run; MEDVFS_ACL_OPS sets its length.
TEST_F(AclTest, RandomOperationsMatchAPlainDirectory) {
  const char* seed_env = std::getenv("MEDVFS_ACL_SEED");
  const unsigned seed = seed_env != nullptr
                            ? static_cast<unsigned>(std::strtoul(seed_env, nullptr, 10))
                            : std::random_device{}();
  const char* ops_env = std::getenv("MEDVFS_ACL_OPS");
  const int ops = ops_env != nullptr ? std::atoi(ops_env) : 120;
  SCOPED_TRACE("MEDVFS_ACL_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const stdfs::path roots[2] = {P("t"), Plain("t")};
  for (const stdfs::path& root : roots) ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
  std::vector<std::string> dirs = {""};
  std::vector<std::string> nodes = {""};
  const mode_t modes[] = {0600, 0640, 0644, 0666, 0700, 0750, 0755, 0777, 0660, 0604, 0070, 0};
  const mode_t umasks[] = {022, 077, 002, 0, 027};
  const char* perms[] = {"---", "r--", "rw-", "r-x", "rwx", "-w-", "--x"};
  auto entry = [&] {
    static const char* kWho[] = {"u:40001", "u:40002", "u:40003", "g:40010", "g:40011",
                                 "g:40001", "u::",     "g::",     "o::",     "m::"};
    const std::string who = kWho[pick(std::size(kWho))];
    return who + (who.back() == ':' ? "" : ":") + perms[pick(std::size(perms))];
  };
  for (size_t i = 0; i < static_cast<size_t>(ops); ++i) {
    const int op = static_cast<int>(pick(8));
    const std::string& node = nodes[pick(nodes.size())];
    const std::string& dir = dirs[pick(dirs.size())];
    std::string what;
    int results[2] = {0, 0};
    std::string touched = node;
    // Chosen once, applied to both sides.
    std::string spec = entry();
    if (i % 2 == 0) spec += "," + entry();
    for (int side = 0; side < 2; ++side) {
      const stdfs::path at = roots[side] / node;
      switch (op) {
        case 0:
        case 1: {
          const std::string name = dir + (dir.empty() ? "" : "/") + "n" + std::to_string(i);
          const mode_t mode = modes[i % std::size(modes)];
          const mode_t mask = umasks[(i / 3) % std::size(umasks)];
          what = std::string(op == 0 ? "create " : "mkdir ") + name;
          results[side] = CreateWithUmask(roots[side] / name, mode, mask, op == 1);
          touched = name;
          break;
        }
        case 2:
        case 3: {
          what = op == 3 ? "setfacl -d -m " : "setfacl -m ";
          what += spec;
          what += " ";
          what += node;
          std::vector<std::string> argv = {"setfacl"};
          if (op == 3) argv.push_back("-d");
          argv.insert(argv.end(), {"-m", spec, at.string()});
          results[side] = Run(argv).exit_code;
          break;
        }
        case 4: {
          const std::string gone = (i % 2 == 0) ? "u:40001" : "g:40010";
          what = "setfacl -x ";
          what += gone;
          what += " ";
          what += node;
          results[side] = Run({"setfacl", "-x", gone, at.string()}).exit_code;
          break;
        }
        case 5:
          what = std::string(i % 2 == 0 ? "setfacl -b " : "setfacl -k ") + node;
          results[side] = Run({"setfacl", i % 2 == 0 ? "-b" : "-k", at.string()}).exit_code;
          break;
        case 6: {
          const mode_t mode = modes[(i * 7) % std::size(modes)] | ((i % 5 == 0) ? 01000u : 0u);
          what = "chmod " + std::to_string(mode) + " " + node;
          results[side] = chmod(at.c_str(), mode) == 0 ? 0 : errno;
          break;
        }
        default: {
          const uid_t uid = (i % 2 == 0) ? 40001 : 0;
          const gid_t gid = (i % 3 == 0) ? 40010 : 0;
          what = "chown " + std::to_string(uid) + ":" + std::to_string(gid) + " " + node;
          results[side] = lchown(at.c_str(), uid, gid) == 0 ? 0 : errno;
          break;
        }
      }
    }
    SCOPED_TRACE("op " + std::to_string(i) + ": " + what);
    ASSERT_EQ(results[0], results[1]);
    if ((op == 0 || op == 1) && results[0] == 0) {
      nodes.push_back(touched);
      if (op == 1) dirs.push_back(touched);
    }
    ASSERT_EQ(Facl(roots[0] / touched), Facl(roots[1] / touched));
    ASSERT_EQ(ModeOf(roots[0] / touched), ModeOf(roots[1] / touched));
  }
  const Credentials users[] = {kAlice, kBob, kCarol};
  for (const std::string& node : nodes) {
    SCOPED_TRACE("node /" + node);
    EXPECT_EQ(Facl(roots[0] / node), Facl(roots[1] / node));
    for (const Credentials& who : users) {
      for (int mask : {R_OK, W_OK, X_OK, R_OK | X_OK, R_OK | W_OK}) {
        EXPECT_EQ(AccessAs(who, roots[0] / node, mask), AccessAs(who, roots[1] / node, mask))
            << "uid " << who.uid << " mask " << mask;
      }
    }
  }
}

}  // namespace
}  // namespace medvfs::fs_test
