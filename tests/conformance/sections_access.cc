// Permission checks: on the caller's own nodes (every caller), and on other users' nodes made
// beforehand by PrepareFixture (non-root callers).
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "tests/conformance/sections.h"

namespace medvfs::conform {
namespace {

long OpenClose(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

long Access(const std::string& path, int mode) { return access(path.c_str(), mode); }

// Runs `path` with execve in a child: "exit N", or the errno of execve. The child makes only
// async-signal-safe calls (open, dup2, execve, write, _exit) on what the parent prepared, so
// the fork is safe whatever threads this process has.
std::string ExecResult(const std::string& path) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return "pipe: " + ErrnoName(errno);
  // The transcript so far leaves the buffer first: ThreadSanitizer's _exit flushes stdio, and
  // a child whose execve failed would print it a second time.
  fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2);  // the shell's complaints are not part of the transcript
    char* argv[] = {const_cast<char*>(path.c_str()), nullptr};
    char* envp[] = {nullptr};
    execve(path.c_str(), argv, envp);
    const int err = errno;
    (void)!write(pipefd[1], &err, sizeof(err));
    _exit(127);
  }
  close(pipefd[1]);
  int err = 0;
  const ssize_t n = read(pipefd[0], &err, sizeof(err));
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (n == static_cast<ssize_t>(sizeof(err))) return ErrnoName(err);
  return WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status)) : "killed";
}

void FileModes(Transcript& t) {
  PutFile("perm/f", "secret");
  for (const mode_t mode : {0000, 0200, 0400, 0600, 0100, 0070, 0007}) {
    const std::string m = " (" + Octal(mode) + ")";
    chmod("perm/f", mode);
    t.Rc("open O_RDONLY" + m, OpenClose("perm/f", O_RDONLY));
    t.Rc("open O_WRONLY" + m, OpenClose("perm/f", O_WRONLY));
    t.Rc("open O_RDWR" + m, OpenClose("perm/f", O_RDWR));
    t.Rc("access R_OK" + m, Access("perm/f", R_OK));
    t.Rc("access W_OK" + m, Access("perm/f", W_OK));
    t.Rc("access X_OK" + m, Access("perm/f", X_OK));
    t.Rc("access F_OK" + m, Access("perm/f", F_OK));
  }
  chmod("perm/f", 0644);
  PutFile("perm/script", "#!/bin/sh\nexit 7\n");
  for (const mode_t mode : {0644, 0744, 0500, 0100, 0010, 0001, 0111}) {
    chmod("perm/script", mode);
    t.Rec("exec script (" + Octal(mode) + ")", ExecResult("perm/script"));
  }
  int err = 0;
  const std::string binary = Slurp("/bin/true", &err);
  PutFile("perm/true", binary);
  for (const mode_t mode : {0755, 0711, 0111, 0644}) {
    chmod("perm/true", mode);
    t.Rec("exec binary (" + Octal(mode) + ")", ExecResult("perm/true"));
  }
  chmod("perm/true", 0755);
  const int fd = open("perm/true", O_WRONLY | O_CLOEXEC);
  t.Rec("exec binary open for writing", ExecResult("perm/true"));
  close(fd);
}

// Puts perm/d back to its starting state (0755 with one file f).
void ResetDir() {
  chmod("perm/d", 0755);
  for (const char* name : {"perm/d/new", "perm/d/lnk", "perm/d/link", "perm/d/f2"}) {
    unlink(name);
  }
  rmdir("perm/d/newdir");
  rename("perm/moved-out", "perm/d/f");
  if (access("perm/d/f", F_OK) != 0) PutFile("perm/d/f", "x");
}

void DirectoryModes(Transcript& t) {
  mkdir("perm/d", 0755);
  PutFile("perm/d/f", "x");
  PutFile("perm/outside", "o");
  const int home = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (const mode_t mode : {0644, 0311, 0555, 0100, 0000}) {
    const std::string m = " (" + Octal(mode) + ")";
    chmod("perm/d", mode);
    t.Stat("stat d/f" + m, "perm/d/f");
    t.Rc("open d/f" + m, OpenClose("perm/d/f", O_RDONLY));
    t.Rc("readdir d" + m, OpenClose("perm/d", O_RDONLY | O_DIRECTORY));
    const long cd = chdir("perm/d");
    t.Rc("chdir d" + m, cd);
    if (cd == 0) fchdir(home);
    t.Rc("access d X_OK" + m, Access("perm/d", X_OK));
    t.Rc("access d W_OK" + m, Access("perm/d", W_OK));
    t.Rc("create d/new" + m, OpenClose("perm/d/new", O_CREAT | O_EXCL | O_WRONLY));
    t.Rc("open O_CREAT of existing d/f" + m, OpenClose("perm/d/f", O_CREAT | O_WRONLY));
    t.Rc("mkdir d/newdir" + m, mkdir("perm/d/newdir", 0755));
    t.Rc("symlink d/lnk" + m, symlink("f", "perm/d/lnk"));
    t.Rc("link into d" + m, link("perm/outside", "perm/d/link"));
    t.Rc("rename within d" + m, rename("perm/d/f", "perm/d/f2"));
    rename("perm/d/f2", "perm/d/f");
    t.Rc("rename out of d" + m, rename("perm/d/f", "perm/moved-out"));
    rename("perm/moved-out", "perm/d/f");
    t.Rc("unlink d/f" + m, unlink("perm/d/f"));
    ResetDir();
  }
  close(home);
  mkdir("perm/mv", 0755);
  mkdir("perm/dst", 0755);
  chmod("perm/mv", 0555);
  t.Rc("rename a 0555 dir to another parent", rename("perm/mv", "perm/dst/mv"));
  t.Rc("rename a 0555 dir within its parent", rename("perm/mv", "perm/mv2"));
  chmod("perm/mv2", 0755);
  chmod("perm/mv", 0755);
}

// "<rc>; atime .. mtime .. ctime .." of utimensat on `path`.
std::string UtimensResult(const std::string& path, const timespec* times, bool now) {
  const Times before = TimesOf(path, false);
  AwaitClockPast(before);
  const timespec start = RealNow();
  const int rc = utimensat(AT_FDCWD, path.c_str(), times, 0);
  const int err = errno;
  const timespec end = RealNow();
  if (rc != 0) return ErrnoName(err);
  const Expect e = now ? Expect{Expect::Kind::kNow, {}} : Expect{Expect::Kind::kExplicit, times[0]};
  const Expect m = now ? e : Expect{Expect::Kind::kExplicit, times[1]};
  return "ok; " + TimeChange(before, TimesOf(path, false), e, m, start, end);
}

long WriteOne(const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const long n = write(fd, "w", 1);
  const int err = errno;
  close(fd);
  errno = err;
  return n;
}

// Each case has nodes of its own, so that one wrong answer does not change the next ones.
void StickyCases(Transcript& t) {
  t.Rc("unlink another user's file in a sticky dir", unlink("fixture/sticky/peer-file"));
  t.Rc("rename another user's file in a sticky dir",
       rename("fixture/sticky/peer-file2", "fixture/sticky/taken"));
  t.Rc("rmdir another user's dir in a sticky dir", rmdir("fixture/sticky/peer-dir"));
  t.Rc("write another user's 0666 file in a sticky dir", WriteOne("fixture/sticky/peer-file3"));
  t.Rc("create in a sticky dir", PutFile("fixture/sticky/mine", "m") == 0 ? 0 : -1);
  t.Stat("own file in a sticky dir", "fixture/sticky/mine");
  t.Rc("rename own file over another user's in a sticky dir",
       rename("fixture/sticky/mine", "fixture/sticky/victim"));
  PutFile("fixture/sticky/mine-x", "x");
  t.Rc("RENAME_EXCHANGE with another user's file in a sticky dir",
       renameat2(AT_FDCWD, "fixture/sticky/mine-x", AT_FDCWD, "fixture/sticky/victim2",
                 RENAME_EXCHANGE));
  PutFile("fixture/sticky/mine2", "m");
  t.Rc("rename own file within a sticky dir",
       rename("fixture/sticky/mine2", "fixture/sticky/mine3"));
  t.Rc("unlink own file in a sticky dir", unlink("fixture/sticky/mine3"));
  t.Rc("unlink another user's file in a non-sticky dir", unlink("fixture/open/peer-file"));
}

void NonOwnerCases(Transcript& t) {
  const Identity& id = t.id();
  const gid_t keep_gid = static_cast<gid_t>(-1);
  t.Rc("write another user's 0666 file", WriteOne("fixture/peer-rw"));
  t.Rc("chmod another user's file", chmod("fixture/peer-rw", 0644));
  t.Rc("chown another user's file to the caller", chown("fixture/peer-rw", id.uid, keep_gid));
  t.Rc("chgrp another user's file", chown("fixture/peer-rw", static_cast<uid_t>(-1), id.gid));
  const timespec explicit_times[2] = {{1'100'000'000, 0}, {1'200'000'000, 0}};
  const timespec both_now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  const timespec now_omit[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  t.Rec("utimensat explicit, another user's 0666 file",
        UtimensResult("fixture/peer-rw", explicit_times, false));
  t.Rec("utimensat UTIME_NOW, another user's 0666 file",
        UtimensResult("fixture/peer-rw", both_now, true));
  t.Rec("utimensat NULL, another user's 0666 file",
        UtimensResult("fixture/peer-rw", nullptr, true));
  t.Rec("utimensat UTIME_NOW/UTIME_OMIT, another user's 0666 file",
        UtimensResult("fixture/peer-rw", now_omit, true));
  t.Rec("utimensat UTIME_NOW, another user's 0644 file",
        UtimensResult("fixture/peer-ro", both_now, true));
  t.Rec("utimensat explicit, another user's 0644 file",
        UtimensResult("fixture/peer-ro", explicit_times, false));
  t.RcStat("truncate another user's 0666 file", truncate("fixture/peer-rw", 1), "fixture/peer-rw");
  t.Rc("truncate another user's 0644 file", truncate("fixture/peer-ro", 1));
  t.Rc("read another user's 0644 file", OpenClose("fixture/peer-ro", O_RDONLY));
  t.Rc("write another user's 0644 file", OpenClose("fixture/peer-ro", O_WRONLY));
  t.Rc("O_RDONLY|O_TRUNC another user's 0644 file",
       OpenClose("fixture/peer-ro", O_RDONLY | O_TRUNC));
  t.Rc("read another user's 0600 file", OpenClose("fixture/peer-none", O_RDONLY));
  t.RcStat("link another user's 0666 file", link("fixture/peer-rw", "fixture-rw-link"),
           "fixture-rw-link");
  t.Rc("link another user's 0644 file", link("fixture/peer-ro", "fixture-ro-link"));
  t.Rc("write another user's 04777 file", WriteOne("fixture/peer-suid"));
  t.Stat("04777 file after a non-owner's write", "fixture/peer-suid");
  t.Rc("write another user's 02777 file", WriteOne("fixture/peer-sgid"));
  t.Stat("02777 file after a non-owner's write", "fixture/peer-sgid");
  t.Rc("truncate another user's 04777 file", truncate("fixture/peer-suid2", 0));
  t.Stat("04777 file after a non-owner's truncate", "fixture/peer-suid2");
}

void ForeignGroupCases(Transcript& t) {
  const Identity& id = t.id();
  t.Stat("own file in another user's group", "fixture/mine-foreign");
  t.RcStat("chmod 02755 of own file in a group the caller is not in",
           chmod("fixture/mine-foreign", 02755), "fixture/mine-foreign");
  t.RcStat("chmod 04755 of own file in a group the caller is not in",
           chmod("fixture/mine-foreign", 04755), "fixture/mine-foreign");
  t.RcStat("chgrp own file back to the caller's group",
           chown("fixture/mine-foreign", static_cast<uid_t>(-1), id.gid), "fixture/mine-foreign");
  t.RcStat("chmod 02755 of own file in the caller's group", chmod("fixture/mine-foreign", 02755),
           "fixture/mine-foreign");
  t.Stat("search-only dir: stat inside", "fixture/peer-dir/f");
  t.Rc("search-only dir: readdir", OpenClose("fixture/peer-dir", O_RDONLY | O_DIRECTORY));
  t.Rc("search-only dir: create", OpenClose("fixture/peer-dir/new", O_CREAT | O_WRONLY));
  t.RcStat("another user's setgid dir: create",
           OpenClose("fixture/peer-sgdir/f", O_CREAT | O_EXCL | O_WRONLY), "fixture/peer-sgdir/f");
  const int fd = open("fixture/peer-sgdir/f2755", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 02755);
  t.RcStat("another user's setgid dir: create 02755", fd, "fixture/peer-sgdir/f2755");
  if (fd >= 0) close(fd);
  t.RcStat("another user's setgid dir: mkdir", mkdir("fixture/peer-sgdir/d", 0755),
           "fixture/peer-sgdir/d");
  t.RcStat("another user's setgid dir: mkdir 02755", mkdir("fixture/peer-sgdir/d2", 02755),
           "fixture/peer-sgdir/d2");
  t.Rc("root's 0755 dir: create", OpenClose("fixture/root-dir/f", O_CREAT | O_WRONLY));
  t.Rc("root's 0755 dir: mkdir", mkdir("fixture/root-dir/d", 0755));
  t.Rc("root's 0755 dir: rename into", rename("fixture-rw-link", "fixture/root-dir/x"));
}

}  // namespace

void PermissionSection(Transcript& t) {
  t.Section("perm");
  umask(022);
  mkdir("perm", 0755);
  FileModes(t);
  DirectoryModes(t);
}

void FixtureSection(Transcript& t) {
  t.Section("fixture");
  umask(022);
  struct stat st {};
  if (t.id().root()) {
    t.Rec("non-owner cases", "not run as root");
    return;
  }
  if (lstat(kFixtureDir, &st) != 0) {
    t.Rec("non-owner cases", "no fixture");
    return;
  }
  StickyCases(t);
  NonOwnerCases(t);
  ForeignGroupCases(t);
}

namespace {

int Made(const std::string& path, int rc) {
  if (rc == 0) return 0;
  const int err = errno;
  std::fprintf(stderr, "medvfs_conform: preparing %s: %s\n", path.c_str(), ErrnoName(err).c_str());
  return err;
}

int MakeDir(const std::string& path, mode_t mode, uid_t uid, gid_t gid) {
  if (int err = Made(path, mkdir(path.c_str(), 0700)); err != 0) return err;
  if (int err = Made(path, chown(path.c_str(), uid, gid)); err != 0) return err;
  return Made(path, chmod(path.c_str(), mode));
}

int MakeFile(const std::string& path, mode_t mode, uid_t uid, gid_t gid) {
  if (int err = PutFile(path, "fixture data"); err != 0) {
    errno = err;
    return Made(path, -1);
  }
  if (int err = Made(path, chown(path.c_str(), uid, gid)); err != 0) return err;
  return Made(path, chmod(path.c_str(), mode));
}

}  // namespace

int PrepareFixture(const std::string& dir, uid_t peer_uid, gid_t peer_gid) {
  struct stat owner {};
  if (stat(dir.c_str(), &owner) != 0) return Made(dir, -1);
  const uid_t uid = owner.st_uid;
  const std::string f = dir + "/" + kFixtureDir + "/";
  struct Step {
    std::string path;
    bool dir;
    mode_t mode;
    uid_t uid;
    gid_t gid;
  };
  const std::vector<Step> steps = {
      {dir + "/" + kFixtureDir, true, 0755, 0, 0},
      {f + "sticky", true, 01777, 0, 0},
      {f + "sticky/peer-file", false, 0666, peer_uid, peer_gid},
      {f + "sticky/peer-file2", false, 0666, peer_uid, peer_gid},
      {f + "sticky/peer-file3", false, 0666, peer_uid, peer_gid},
      {f + "sticky/victim", false, 0666, peer_uid, peer_gid},
      {f + "sticky/victim2", false, 0666, peer_uid, peer_gid},
      {f + "sticky/peer-dir", true, 0777, peer_uid, peer_gid},
      {f + "open", true, 0777, 0, 0},
      {f + "open/peer-file", false, 0644, peer_uid, peer_gid},
      {f + "peer-rw", false, 0666, peer_uid, peer_gid},
      {f + "peer-ro", false, 0644, peer_uid, peer_gid},
      {f + "peer-none", false, 0600, peer_uid, peer_gid},
      {f + "peer-suid", false, 04777, peer_uid, peer_gid},
      {f + "peer-suid2", false, 04777, peer_uid, peer_gid},
      {f + "peer-sgid", false, 02777, peer_uid, peer_gid},
      {f + "mine-foreign", false, 0644, uid, peer_gid},
      {f + "peer-dir", true, 0711, peer_uid, peer_gid},
      {f + "peer-dir/f", false, 0644, peer_uid, peer_gid},
      {f + "peer-sgdir", true, 02777, peer_uid, peer_gid},
      {f + "root-dir", true, 0755, 0, 0},
  };
  for (const Step& s : steps) {
    const int err =
        s.dir ? MakeDir(s.path, s.mode, s.uid, s.gid) : MakeFile(s.path, s.mode, s.uid, s.gid);
    if (err != 0) return err;
  }
  return 0;
}

}  // namespace medvfs::conform
