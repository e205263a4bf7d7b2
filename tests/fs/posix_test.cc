// Every POSIX operation of DESIGN.md section 1, performed on the mount and on a plain
// directory: the results (return values, errno, data, attributes) must be the same.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "tests/fs/mount_fixture.h"

#include "store/archive.h"
#include "store/crypto/crypto.h"
#include "store/verify.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

// Runs operations under `base` and records one line per step.
class Script {
 public:
  explicit Script(stdfs::path base) : base_(std::move(base)) {}

  std::string P(const std::string& rel) const { return (base_ / rel).string(); }
  const char* C(const std::string& rel) {
    paths_.push_back(P(rel));
    return paths_.back().c_str();
  }
  void Rec(const std::string& step, const std::string& what) {
    lines_.push_back(step + ": " + what);
  }
  // rc < 0 (or -1) means failure with errno.
  void RecRc(const std::string& step, long rc) { Rec(step, rc < 0 ? ErrnoName(errno) : "ok"); }

  void RecStat(const std::string& step, const std::string& rel, bool follow = false) {
    struct stat st {};
    const int rc = follow ? stat(P(rel).c_str(), &st) : lstat(P(rel).c_str(), &st);
    if (rc != 0) {
      Rec(step, ErrnoName(errno));
      return;
    }
    char buf[200];
    if (S_ISDIR(st.st_mode)) {
      std::snprintf(buf, sizeof(buf), "dir mode=%04o uid=%u gid=%u", st.st_mode & 07777, st.st_uid,
                    st.st_gid);
    } else {
      const char* type = S_ISREG(st.st_mode)    ? "reg"
                         : S_ISLNK(st.st_mode)  ? "lnk"
                         : S_ISFIFO(st.st_mode) ? "fifo"
                                                : "other";
      std::snprintf(buf, sizeof(buf), "%s mode=%04o uid=%u gid=%u size=%lld nlink=%lu", type,
                    st.st_mode & 07777, st.st_uid, st.st_gid, static_cast<long long>(st.st_size),
                    static_cast<unsigned long>(st.st_nlink));
    }
    Rec(step, buf);
  }

  void RecTimes(const std::string& step, const std::string& rel) {
    struct stat st {};
    if (stat(P(rel).c_str(), &st) != 0) {
      Rec(step, ErrnoName(errno));
      return;
    }
    Rec(step, "atime=" + std::to_string(st.st_atim.tv_sec) + "." +
                  std::to_string(st.st_atim.tv_nsec) + " mtime=" +
                  std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec));
  }

  void RecContent(const std::string& step, const std::string& rel) {
    const int fd = open(P(rel).c_str(), O_RDONLY);
    if (fd < 0) {
      Rec(step, ErrnoName(errno));
      return;
    }
    std::string data;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) data.append(buf, static_cast<size_t>(n));
    close(fd);
    if (data.size() > 200) {
      Rec(step, "size=" + std::to_string(data.size()) +
                    " hash=" + std::to_string(std::hash<std::string>()(data)));
    } else {
      std::string shown;
      for (char c : data) shown += (c == '\0') ? std::string("\\0") : std::string(1, c);
      Rec(step, "\"" + shown + "\"");
    }
  }

  void RecList(const std::string& step, const std::string& rel) {
    std::string joined;
    for (const std::string& name : ListDir(P(rel))) joined += name + " ";
    Rec(step, joined);
  }

  const std::vector<std::string>& lines() const { return lines_; }

 private:
  stdfs::path base_;
  std::vector<std::string> paths_;  // keeps C() strings alive
  std::vector<std::string> lines_;
};

long WriteAt(const std::string& path, int flags, off_t off, const std::string& data) {
  const int fd = open(path.c_str(), flags);
  if (fd < 0) return -1;
  const ssize_t n =
      off < 0 ? write(fd, data.data(), data.size()) : pwrite(fd, data.data(), data.size(), off);
  const int err = errno;
  close(fd);
  errno = err;
  return n;
}

void FileOperations(Script& s) {
  int fd = open(s.C("f"), O_CREAT | O_EXCL | O_WRONLY, 0644);
  s.RecRc("create f", fd);
  s.RecRc("write f", write(fd, "hello world", 11));
  s.RecRc("close f", close(fd));
  s.RecRc("create f again with O_EXCL", open(s.C("f"), O_CREAT | O_EXCL | O_WRONLY, 0644));
  s.RecStat("stat f", "f");
  s.RecRc("pwrite past the end", WriteAt(s.P("f"), O_WRONLY, 100, "tail"));
  s.RecStat("stat after hole", "f");
  s.RecContent("content with hole", "f");
  s.RecRc("overwrite in the middle", WriteAt(s.P("f"), O_WRONLY, 6, "WORLD"));
  s.RecContent("content after overwrite", "f");
  fd = open(s.C("f"), O_RDONLY);
  char buf[16];
  s.Rec("pread past the end", std::to_string(pread(fd, buf, sizeof(buf), 1000)));
  const ssize_t got = pread(fd, buf, 5, 6);
  s.Rec("pread inside", std::to_string(got) + " " + std::string(buf, 5));
  close(fd);
  s.RecRc("truncate shorter", truncate(s.C("f"), 3));
  s.RecContent("content after truncate", "f");
  s.RecRc("truncate longer", truncate(s.C("f"), 8));
  s.RecContent("content after extend", "f");
  fd = open(s.C("f"), O_RDWR);
  s.RecRc("ftruncate", ftruncate(fd, 5));
  s.RecRc("pwrite after ftruncate", pwrite(fd, "++", 2, 5));
  s.RecRc("close", close(fd));
  s.RecContent("content after ftruncate", "f");
  fd = open(s.C("f"), O_WRONLY | O_APPEND);
  s.RecRc("append 1", write(fd, "app", 3));
  s.RecRc("append 2", write(fd, "end", 3));
  close(fd);
  s.RecContent("content after appends", "f");
  s.RecRc("open O_TRUNC", fd = open(s.C("t"), O_CREAT | O_WRONLY, 0640));
  s.RecRc("write t", write(fd, "to be truncated", 15));
  close(fd);
  s.RecRc("reopen O_TRUNC", fd = open(s.C("t"), O_WRONLY | O_TRUNC));
  close(fd);
  s.RecStat("stat after O_TRUNC", "t");

  // Several MiB across chunk and request boundaries, at an odd offset.
  std::string big(3 * 1024 * 1024 + 333, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 5);
  fd = open(s.C("big"), O_CREAT | O_WRONLY, 0644);
  size_t done = 0;
  bool ok = true;
  while (done < big.size()) {
    const size_t n = std::min<size_t>(200'000, big.size() - done);
    ok = ok && pwrite(fd, big.data() + done, n, static_cast<off_t>(4097 + done)) ==
                   static_cast<ssize_t>(n);
    done += n;
  }
  s.Rec("big writes", ok ? "ok" : ErrnoName(errno));
  s.RecRc("close big", close(fd));
  s.RecContent("big content", "big");
  fd = open(s.C("big"), O_RDONLY);
  std::string part(100, '\0');
  const ssize_t part_read = pread(fd, part.data(), 100, 1024 * 1024 + 7);
  s.Rec("big partial read",
        std::to_string(part_read) + " " + std::to_string(std::hash<std::string>()(part)));
  close(fd);

  s.RecRc("open missing", open(s.C("missing"), O_RDONLY));
  s.RecRc("create in missing dir", open(s.C("nodir/x"), O_CREAT | O_WRONLY, 0644));
  s.RecRc("mkfifo", mkfifo(s.C("fifo"), 0644));
  s.RecStat("stat fifo", "fifo");
}

void DirectoryOperations(Script& s) {
  s.RecRc("mkdir d", mkdir(s.C("d"), 0755));
  s.RecRc("mkdir d again", mkdir(s.C("d"), 0755));
  s.RecRc("mkdir in missing", mkdir(s.C("x/y"), 0755));
  s.RecRc("mkdir d/sub", mkdir(s.C("d/sub"), 0750));
  s.RecStat("stat d/sub", "d/sub");
  s.RecRc("write d/sub/g", WriteFile(s.P("d/sub/g"), "g") == 0 ? 0 : -1);
  s.RecList("list d", "d");
  s.RecRc("rmdir non-empty", rmdir(s.C("d")));
  s.RecRc("rmdir a file", rmdir(s.C("f")));
  s.RecRc("unlink a directory", unlink(s.C("d")));
  s.RecRc("open a directory for writing", open(s.C("d"), O_WRONLY));
  s.RecRc("mkdir gone", mkdir(s.C("gone"), 0755));
  s.RecRc("rmdir gone", rmdir(s.C("gone")));
  s.RecStat("stat gone", "gone");
}

void RenameOperations(Script& s) {
  s.RecRc("rename f to f2", rename(s.C("f"), s.C("f2")));
  s.RecStat("stat old name", "f");
  s.RecContent("content under new name", "f2");
  WriteFile(s.P("a"), "A");
  WriteFile(s.P("b"), "B");
  s.RecRc("rename over existing", rename(s.C("a"), s.C("b")));
  s.RecContent("content of target", "b");
  s.RecStat("source gone", "a");
  s.RecRc("rename across dirs", rename(s.C("b"), s.C("d/b")));
  s.RecContent("content moved", "d/b");
  mkdir(s.C("e"), 0755);
  WriteFile(s.P("e/x"), "x");
  mkdir(s.C("e2"), 0755);
  s.RecRc("rename dir over non-empty dir", rename(s.C("e2"), s.C("e")));
  s.RecRc("rename dir over file", rename(s.C("e"), s.C("f2")));
  s.RecRc("rename file over dir", rename(s.C("f2"), s.C("e")));
  mkdir(s.C("empty"), 0755);
  s.RecRc("rename dir over empty dir", rename(s.C("e2"), s.C("empty")));
  s.RecRc("rename dir into itself", rename(s.C("d"), s.C("d/sub/inside")));
  s.RecRc("rename missing", rename(s.C("nothing"), s.C("n")));
  s.RecRc("rename to itself", rename(s.C("f2"), s.C("f2")));
  WriteFile(s.P("n1"), "one");
  WriteFile(s.P("n2"), "two");
  s.RecRc("noreplace onto existing",
          renameat2(AT_FDCWD, s.C("n1"), AT_FDCWD, s.C("n2"), RENAME_NOREPLACE));
  s.RecRc("noreplace onto new",
          renameat2(AT_FDCWD, s.C("n1"), AT_FDCWD, s.C("n3"), RENAME_NOREPLACE));
  s.RecRc("exchange", renameat2(AT_FDCWD, s.C("n3"), AT_FDCWD, s.C("n2"), RENAME_EXCHANGE));
  s.RecContent("n2 after exchange", "n2");
  s.RecContent("n3 after exchange", "n3");
  s.RecRc("exchange dir and file",
          renameat2(AT_FDCWD, s.C("e"), AT_FDCWD, s.C("n3"), RENAME_EXCHANGE));
  s.RecStat("e after exchange", "e");
  s.RecStat("n3 after exchange", "n3");
  s.RecRc("unlink", unlink(s.C("n2")));
  s.RecRc("unlink again", unlink(s.C("n2")));
}

void LinkOperations(Script& s) {
  s.RecRc("symlink", symlink("f2", s.C("s")));
  char target[256] = {};
  ssize_t n = readlink(s.C("s"), target, sizeof(target));
  s.Rec("readlink", n < 0 ? ErrnoName(errno) : std::string(target, static_cast<size_t>(n)));
  s.RecStat("lstat symlink", "s");
  s.RecStat("stat through symlink", "s", true);
  s.RecContent("read through symlink", "s");
  s.RecRc("dangling symlink", symlink("missing/target", s.C("dangling")));
  s.RecStat("stat dangling", "dangling", true);
  s.RecRc("symlink onto existing", symlink("x", s.C("s")));
  s.RecRc("readlink on a file", readlink(s.C("f2"), target, sizeof(target)));
  s.RecRc("hard link", link(s.C("f2"), s.C("h")));
  s.RecStat("stat original", "f2");
  s.RecStat("stat link", "h");
  s.RecRc("write through link", WriteAt(s.P("h"), O_WRONLY | O_APPEND, -1, "X"));
  s.RecContent("content via original", "f2");
  s.RecRc("unlink original", unlink(s.C("f2")));
  s.RecStat("stat link after unlink", "h");
  s.RecContent("content via link", "h");
  s.RecRc("link a directory", link(s.C("d"), s.C("dlink")));
  s.RecRc("link onto existing", link(s.C("h"), s.C("d/b")));
  s.RecRc("link into subdir", link(s.C("h"), s.C("d/sub/h2")));
  s.RecStat("stat link in subdir", "d/sub/h2");
}

void AttributeOperations(Script& s) {
  s.RecRc("chmod 0600", chmod(s.C("h"), 0600));
  s.RecStat("after chmod", "h");
  s.RecRc("chmod 04755", chmod(s.C("h"), 04755));
  s.RecStat("after chmod setuid", "h");
  s.RecRc("chown", chown(s.C("h"), 1234, 5678));
  s.RecStat("after chown", "h");
  s.RecRc("chmod dir", chmod(s.C("d"), 0700));
  s.RecStat("dir after chmod", "d");
  s.RecRc("lchown symlink", lchown(s.C("s"), 42, 43));
  s.RecStat("symlink after lchown", "s");
  const timespec both[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
  s.RecRc("utimens", utimensat(AT_FDCWD, s.C("h"), both, 0));
  s.RecTimes("times", "h");
  const timespec omit_atime[2] = {{0, UTIME_OMIT}, {2000000000, 5}};
  s.RecRc("utimens omit atime", utimensat(AT_FDCWD, s.C("h"), omit_atime, 0));
  s.RecTimes("times after omit", "h");
  const time_t before = time(nullptr);
  const timespec now_atime[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  s.RecRc("utimens now", utimensat(AT_FDCWD, s.C("h"), now_atime, 0));
  struct stat st {};
  stat(s.C("h"), &st);
  const bool recent = st.st_atim.tv_sec >= before - 1 && st.st_atim.tv_sec <= time(nullptr) + 1;
  s.Rec("atime is now", recent ? "yes" : "no");
  s.Rec("mtime kept", st.st_mtim.tv_sec == 2000000000 ? "yes" : "no");
  s.RecRc("utimens on dir", utimensat(AT_FDCWD, s.C("d"), both, 0));
  s.RecTimes("dir times", "d");
  s.RecRc("utimens missing", utimensat(AT_FDCWD, s.C("missing"), both, 0));

  struct statvfs vfs {};
  s.RecRc("statvfs", statvfs(s.C(""), &vfs));
  s.Rec("namemax", vfs.f_namemax >= 255 ? ">=255" : std::to_string(vfs.f_namemax));
  s.Rec("block size", vfs.f_bsize > 0 ? ">0" : "0");

  const int fd = open(s.C("h"), O_RDWR);
  s.RecRc("write before fsync", pwrite(fd, "sync", 4, 0));
  s.RecRc("fsync", fsync(fd));
  s.RecRc("fdatasync", fdatasync(fd));
  close(fd);
  s.RecContent("after fsync", "h");
  const int dfd = open(s.C("d"), O_RDONLY | O_DIRECTORY);
  s.RecRc("fsync dir", fsync(dfd));
  close(dfd);
}

std::string UserXattrs(const std::string& path) {
  char names[4096];
  const ssize_t n = listxattr(path.c_str(), names, sizeof(names));
  if (n < 0) return ErrnoName(errno);
  std::vector<std::string> list;
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
    const std::string name(names + i);
    // medvfs adds user.medvfs.* of its own; compare what the test set.
    if (name.starts_with("user.") && !name.starts_with("user.medvfs.")) list.push_back(name);
  }
  std::sort(list.begin(), list.end());
  std::string joined;
  for (const std::string& name : list) joined += name + " ";
  return joined;
}

void XattrOperations(Script& s) {
  s.RecRc("setxattr", setxattr(s.C("h"), "user.k", "v1", 2, 0));
  char value[64];
  ssize_t n = getxattr(s.C("h"), "user.k", value, sizeof(value));
  s.Rec("getxattr", n < 0 ? ErrnoName(errno) : std::string(value, static_cast<size_t>(n)));
  s.Rec("getxattr size query", std::to_string(getxattr(s.C("h"), "user.k", nullptr, 0)));
  s.RecRc("getxattr small buffer", getxattr(s.C("h"), "user.k", value, 1));
  s.RecRc("create existing", setxattr(s.C("h"), "user.k", "v2", 2, XATTR_CREATE));
  s.RecRc("replace missing", setxattr(s.C("h"), "user.none", "v", 1, XATTR_REPLACE));
  s.RecRc("replace existing", setxattr(s.C("h"), "user.k", "v22", 3, XATTR_REPLACE));
  n = getxattr(s.C("h"), "user.k", value, sizeof(value));
  s.Rec("getxattr replaced", n < 0 ? ErrnoName(errno) : std::string(value, static_cast<size_t>(n)));
  s.RecRc("set empty value", setxattr(s.C("h"), "user.empty", "", 0, 0));
  s.Rec("get empty value", std::to_string(getxattr(s.C("h"), "user.empty", value, sizeof(value))));
  s.Rec("listxattr", UserXattrs(s.P("h")));
  s.RecRc("listxattr small buffer", listxattr(s.C("h"), value, 1));
  s.RecRc("removexattr", removexattr(s.C("h"), "user.k"));
  s.RecRc("get removed", getxattr(s.C("h"), "user.k", value, sizeof(value)));
  s.RecRc("remove missing", removexattr(s.C("h"), "user.k"));
  s.RecRc("get missing", getxattr(s.C("h"), "user.nothing", value, sizeof(value)));
  s.RecRc("setxattr on dir", setxattr(s.C("d"), "user.dir", "dv", 2, 0));
  n = getxattr(s.C("d"), "user.dir", value, sizeof(value));
  s.Rec("getxattr on dir", n < 0 ? ErrnoName(errno) : std::string(value, static_cast<size_t>(n)));
  s.Rec("listxattr after", UserXattrs(s.P("h")));
}

void FinalTree(Script& s, const stdfs::path& base) {
  std::vector<std::string> entries;
  for (auto it = stdfs::recursive_directory_iterator(base);
       it != stdfs::recursive_directory_iterator(); ++it) {
    entries.push_back(stdfs::relative(it->path(), base).string());
  }
  std::sort(entries.begin(), entries.end());
  std::string joined;
  for (const std::string& e : entries) joined += e + " ";
  s.Rec("final tree", joined);
}

std::vector<std::string> RunPosixScript(const stdfs::path& base) {
  Script s(base);
  FileOperations(s);
  DirectoryOperations(s);
  RenameOperations(s);
  LinkOperations(s);
  AttributeOperations(s);
  XattrOperations(s);
  FinalTree(s, base);
  return s.lines();
}

TEST_F(MountTest, PosixOperationsMatchAPlainDirectory) {
  MountOk();
  const std::vector<std::string> plain = RunPosixScript(plain_);
  const std::vector<std::string> mounted = RunPosixScript(mnt_);
  ASSERT_EQ(plain.size(), mounted.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_EQ(mounted[i], plain[i]) << "step " << i;
  }
}

TEST_F(MountTest, PosixResultsSurviveARemount) {
  MountOk();
  RunPosixScript(mnt_);
  RunPosixScript(plain_);
  UmountOk();
  MountOk();
  Script on_mount(mnt_), on_plain(plain_);
  FinalTree(on_mount, mnt_);
  FinalTree(on_plain, plain_);
  for (const char* name : {"h", "d/b", "n3", "big", "t", "d/sub/h2"}) {
    on_mount.RecStat(name, name);
    on_plain.RecStat(name, name);
    on_mount.RecContent(name, name);
    on_plain.RecContent(name, name);
  }
  EXPECT_EQ(on_mount.lines(), on_plain.lines());
}

// Issue 16, item 5 (pjdfstest ftruncate/12): a size beyond the archive's limit (256 GiB) is
// EFBIG at once, through every way of asking; growing a file (truncate, fallocate, a write
// past the end) makes holes that read as zeros, hash right, and store no chunk.
TEST_F(MountTest, HugeSizesAreEfbigAndGrowingAFileMakesFreeHoles) {
  MountOk();
  const std::string f = P("sparse.dat").string();
  ASSERT_EQ(WriteFile(f, "head"), 0);
  EXPECT_EQ(ErrnoName(ErrnoOf(truncate(f.c_str(), 999'999'999'999'999))), "EFBIG");
  EXPECT_EQ(ErrnoName(ErrnoOf(truncate(f.c_str(), off_t{1} << 40))), "EFBIG");  // 1 TiB
  const int fd = open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << ErrnoName(errno);
  EXPECT_EQ(ErrnoName(ErrnoOf(ftruncate(fd, 999'999'999'999'999))), "EFBIG");
  EXPECT_EQ(ErrnoName(ErrnoOf(static_cast<int>(pwrite(fd, "x", 1, 999'999'999'999'999)))), "EFBIG");
  EXPECT_EQ(ErrnoName(posix_fallocate(fd, 0, 999'999'999'999'999)), "EFBIG");

  constexpr off_t kGiB = off_t{1} << 30;
  EXPECT_EQ(ErrnoName(ErrnoOf(ftruncate(fd, kGiB))), "ok");
  EXPECT_EQ(ErrnoName(ErrnoOf(fallocate(fd, 0, kGiB, 1 << 20))), "ok");
  EXPECT_EQ(ErrnoName(ErrnoOf(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, kGiB * 4))), "ok");
  EXPECT_EQ(ErrnoName(ErrnoOf(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096))),
            "EOPNOTSUPP");
  const off_t tail_at = kGiB + (1 << 20) + 100;
  EXPECT_EQ(pwrite(fd, "tail", 4, tail_at), 4);
  EXPECT_EQ(close(fd), 0);

  struct stat st {};
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, tail_at + 4);
  const int rd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(rd, 0);
  std::string middle(1 << 16, 'x');
  EXPECT_EQ(pread(rd, middle.data(), middle.size(), kGiB / 2), static_cast<ssize_t>(middle.size()));
  EXPECT_EQ(middle, std::string(1 << 16, '\0'));
  char tail[8] = {};
  EXPECT_EQ(pread(rd, tail, sizeof(tail), tail_at - 4), 8);
  EXPECT_EQ(std::string(tail, 8), std::string(4, '\0') + "tail");
  close(rd);

  // The version's SHA-256 is the one of the same bytes written in full.
  store::Sha256 sha;
  sha.Update("head");
  const std::string zeros(1 << 20, '\0');
  for (uint64_t left = static_cast<uint64_t>(tail_at) - 4; left > 0;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
    sha.Update(std::string_view(zeros.data(), n));
    left -= n;
  }
  sha.Update("tail");
  const store::Sha256Digest digest = sha.Finish();
  EXPECT_EQ(Xattr(f, "user.medvfs.sha256"), store::HexEncode(digest));

  // And back to the small file.
  EXPECT_EQ(ErrnoName(ErrnoOf(truncate(f.c_str(), 4))), "ok");
  EXPECT_EQ(ReadFile(f), "head");
  UmountOk();

  // Nothing of the gigabyte of zeros was stored.
  auto archive = store::Archive::Open(archive_, store::KeySource::Passphrase(kPassphrase), {});
  ASSERT_TRUE(archive.ok()) << archive.status().ToString();
  auto stats = (*archive)->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_LT(stats->stored_bytes, 64u << 10);
  archive->reset();
  // Every version reads back whole with a handful of chunks (zeros written as data would be
  // 4096 chunks of 256 KiB per version).
  auto report = store::VerifyArchive(archive_, store::KeySource::Passphrase(kPassphrase));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean());
  EXPECT_LT(report->chunk_reads, 20u);
}

// Issue 16, item 8, through a mount: a file written, unlinked while open and then closed
// leaves no chunk behind that nothing references ("left by an interrupted write").
TEST_F(MountTest, AFileUnlinkedWhileOpenLeavesNoChunkBehind) {
  MountOk();
  ASSERT_EQ(WriteFile(P("kept.dat"), std::string(100'000, 'k')), 0);
  const std::string f = P("scratch.dat").string();
  const int fd = open(f.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  ASSERT_GE(fd, 0) << ErrnoName(errno);
  std::string block(1 << 20, '\0');
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>((i * 7919) >> 3);
  EXPECT_EQ(write(fd, block.data(), block.size()), static_cast<ssize_t>(block.size()));
  EXPECT_EQ(unlink(f.c_str()), 0);
  block[0] = 'x';  // a chunk of its own after the unlink
  EXPECT_EQ(write(fd, block.data(), block.size()), static_cast<ssize_t>(block.size()));
  EXPECT_EQ(close(fd), 0);
  UmountOk();
  auto report = store::VerifyArchive(archive_, store::KeySource::Passphrase(kPassphrase));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean());
  EXPECT_EQ(report->unreferenced_chunks, 0u);
  EXPECT_EQ(report->warnings, 0u);
}

}  // namespace
}  // namespace medvfs::fs_test
