// Link counts, rename, truncate, and the errno of the remaining failure cases.
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "tests/conformance/sections.h"

namespace medvfs::conform {
namespace {

std::string Nlink(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return ErrnoName(errno);
  return "nlink=" + std::to_string(st.st_nlink);
}

long Renameat2(const std::string& from, const std::string& to, unsigned flags) {
  return renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags);
}

// Reads up to 64 bytes from fd at offset 0.
std::string ReadFd(int fd) {
  char buf[64];
  const ssize_t n = pread(fd, buf, sizeof(buf), 0);
  if (n < 0) return ErrnoName(errno);
  return "\"" + Escape(std::string(buf, static_cast<size_t>(n))) + "\"";
}

void FileLinks(Transcript& t) {
  PutFile("links/f", "data");
  t.Stat("new file", "links/f");
  t.RcStat("link f g", link("links/f", "links/g"), "links/g");
  t.Stat("f after link", "links/f");
  t.Rc("link onto an existing name", link("links/f", "links/g"));
  t.Rc("link a missing file", link("links/missing", "links/x"));
  t.Rc("link a directory", link("links", "links/dl"));
  t.Rc("link into a missing directory", link("links/f", "links/nodir/x"));
  t.Rc("link below a file", link("links/f", "links/f/x"));
  symlink("f", "links/s");
  t.RcStat("linkat a symlink (no follow)", linkat(AT_FDCWD, "links/s", AT_FDCWD, "links/s2", 0),
           "links/s2");
  t.RcStat("linkat AT_SYMLINK_FOLLOW",
           linkat(AT_FDCWD, "links/s", AT_FDCWD, "links/s3", AT_SYMLINK_FOLLOW), "links/s3");
  t.Stat("f after three links", "links/f");
  mkfifo("links/p", 0644);
  t.RcStat("link a fifo", link("links/p", "links/p2"), "links/p2");
  t.RcStat("unlink g", unlink("links/g"), "links/f");
  const int fd = open("links/f", O_RDONLY | O_CLOEXEC);
  t.Rc("unlink f while open", unlink("links/f"));
  t.Stat("s3 after unlink of f", "links/s3");
  t.Rc("unlink s3 while f is open", unlink("links/s3"));
  t.FStat("fstat of the unlinked open file", fd);
  t.Rec("read the unlinked open file", ReadFd(fd));
  close(fd);
  t.Rc("unlink missing", unlink("links/f"));
  t.Rc("unlink below a file", unlink("links/p/x"));
}

void DirectoryLinks(Transcript& t) {
  t.RcStat("mkdir d", mkdir("links/d", 0755), "links/d");
  t.Rec("links after mkdir d", Nlink("links"));
  t.RcStat("mkdir d/a", mkdir("links/d/a", 0755), "links/d");
  t.RcStat("mkdir d/b", mkdir("links/d/b", 0755), "links/d");
  PutFile("links/d/file", "x");
  t.Stat("d after a file", "links/d");
  t.Stat("d/a/.. is d", "links/d/a/..");
  t.Stat("d/. is d", "links/d/.");
  t.RcStat("rmdir d/a", rmdir("links/d/a"), "links/d");
  mkdir("links/e", 0755);
  t.Rc("rename d/b to e/b", rename("links/d/b", "links/e/b"));
  t.Stat("d after moving b out", "links/d");
  t.Stat("e after moving b in", "links/e");
  t.Stat("e/b/.. is e", "links/e/b/..");
  t.Rc("rmdir non-empty", rmdir("links/e"));
  t.Rc("rmdir a file", rmdir("links/d/file"));
  t.Rc("unlink a directory", unlink("links/e/b"));
  t.Rc("rmdir e/b/.", rmdir("links/e/b/."));
  t.Rc("rmdir e/b/..", rmdir("links/e/b/.."));
  t.Rc("rmdir missing", rmdir("links/missing"));
  t.Rc("rmdir below a file", rmdir("links/d/file/x"));
  t.Rc("mkdir existing", mkdir("links/d", 0755));
  symlink("d", "links/sd");
  t.Rc("mkdir over a symlink", mkdir("links/sd", 0755));
  t.Rc("mkdir with trailing slash", mkdir("links/slash/", 0755));
  t.Stat("made with trailing slash", "links/slash");
  t.RcStat("rmdir e/b", rmdir("links/e/b"), "links/e");
  t.Rec("links at the end", Nlink("links"));
}

void RenameFiles(Transcript& t) {
  PutFile("ren/a", "A");
  PutFile("ren/b", "B");
  t.Rc("rename over an existing file", rename("ren/a", "ren/b"));
  t.Content("target content", "ren/b");
  t.Stat("source gone", "ren/a");
  t.RcStat("rename onto itself", rename("ren/b", "ren/b"), "ren/b");
  link("ren/b", "ren/b2");
  t.Rc("rename onto another link of the same file", rename("ren/b", "ren/b2"));
  t.Stat("first link still there", "ren/b");
  t.Stat("second link", "ren/b2");
  t.Rc("rename missing", rename("ren/missing", "ren/x"));
  t.Rc("rename into a missing directory", rename("ren/b", "ren/nodir/x"));
  t.Rc("rename below a file", rename("ren/b", "ren/b2/x"));
  t.Rc("rename a file with trailing slash", rename("ren/b/", "ren/c"));
  t.Rc("rename to a 256-byte name", rename("ren/b", ("ren/" + std::string(256, 'x')).c_str()));
  PutFile("ren/victim", "old");
  const int fd = open("ren/victim", O_RDONLY | O_CLOEXEC);
  PutFile("ren/new", "new");
  t.Rc("rename over an open file", rename("ren/new", "ren/victim"));
  t.FStat("fstat of the replaced open file", fd);
  t.Rec("read the replaced open file", ReadFd(fd));
  close(fd);
  t.Content("new content", "ren/victim");
}

void RenameDirectories(Transcript& t) {
  mkdir("ren/D", 0755);
  PutFile("ren/D/x", "x");
  mkdir("ren/E", 0755);
  mkdir("ren/F", 0755);
  PutFile("ren/F/y", "y");
  t.Rc("rename dir over an empty dir", rename("ren/D", "ren/E"));
  t.Stat("old dir name gone", "ren/D");
  t.Content("content moved along", "ren/E/x");
  t.Rc("rename dir over a non-empty dir", rename("ren/E", "ren/F"));
  t.Rc("rename file over a dir", rename("ren/b2", "ren/F"));
  t.Rc("rename dir over a file", rename("ren/F", "ren/b2"));
  mkdir("ren/F/sub", 0755);
  t.Rc("rename dir into its own subdir", rename("ren/F", "ren/F/sub/inside"));
  t.Rc("rename dir onto its own subdir", rename("ren/F", "ren/F/sub"));
  t.Rc("rename dir onto itself", rename("ren/F", "ren/F"));
  t.Rc("rename dir/. away", rename("ren/F/.", "ren/G"));
  t.Rc("rename onto dir/..", rename("ren/E", "ren/F/sub/.."));
  t.Rc("rename dir with trailing slash", rename("ren/E/", "ren/G/"));
  t.Stat("renamed with trailing slash", "ren/G");
  mkdir("ren/R", 0755);
  mkdir("ren/R/S", 0755);
  mkdir("ren/T", 0755);
  t.Rc("rename dir to another parent", rename("ren/R/S", "ren/T/S"));
  t.Stat("old parent", "ren/R");
  t.Stat("new parent", "ren/T");
  t.Stat("moved dir's ..", "ren/T/S/..");
  mkdir("ren/R/S2", 0755);
  mkdir("ren/T/S3", 0755);
  t.Rc("rename dir over an empty dir of another parent", rename("ren/R/S2", "ren/T/S3"));
  t.Stat("old parent after", "ren/R");
  t.Stat("new parent after", "ren/T");
}

void RenameFlags(Transcript& t) {
  PutFile("ren/n1", "one");
  PutFile("ren/n2", "two");
  t.Rc("RENAME_NOREPLACE onto an existing name", Renameat2("ren/n1", "ren/n2", RENAME_NOREPLACE));
  t.Rc("RENAME_NOREPLACE onto a new name", Renameat2("ren/n1", "ren/n3", RENAME_NOREPLACE));
  t.Rc("RENAME_EXCHANGE of two files", Renameat2("ren/n3", "ren/n2", RENAME_EXCHANGE));
  t.Content("n2 after exchange", "ren/n2");
  t.Content("n3 after exchange", "ren/n3");
  t.Rc("RENAME_EXCHANGE with a missing name", Renameat2("ren/n3", "ren/n4", RENAME_EXCHANGE));
  t.Rc("RENAME_EXCHANGE with itself", Renameat2("ren/n3", "ren/n3", RENAME_EXCHANGE));
  t.Rc("RENAME_NOREPLACE|RENAME_EXCHANGE",
       Renameat2("ren/n3", "ren/n2", RENAME_NOREPLACE | RENAME_EXCHANGE));
  t.Rc("rename with unknown flag", Renameat2("ren/n3", "ren/n5", 1u << 10));
  mkdir("ren/P", 0755);
  mkdir("ren/P/sub", 0755);
  mkdir("ren/Q", 0755);
  PutFile("ren/Q/file", "q");
  t.Rc("RENAME_EXCHANGE of a dir and a file in other parents",
       Renameat2("ren/P/sub", "ren/Q/file", RENAME_EXCHANGE));
  t.Stat("P/sub is the file", "ren/P/sub");
  t.Stat("Q/file is the dir", "ren/Q/file");
  t.Stat("P after exchange", "ren/P");
  t.Stat("Q after exchange", "ren/Q");
  t.Rc("RENAME_EXCHANGE of a dir into its own subtree",
       Renameat2("ren/Q", "ren/Q/file", RENAME_EXCHANGE));
  t.Rc("RENAME_NOREPLACE of a dir onto an empty dir",
       Renameat2("ren/P", "ren/Q/file", RENAME_NOREPLACE));
}

void TruncateByPath(Transcript& t) {
  PutFile("trunc/f", "0123456789");
  t.RcStat("truncate up to 20", truncate("trunc/f", 20), "trunc/f");
  t.Content("grown with zeros", "trunc/f");
  t.RcStat("truncate down to 4", truncate("trunc/f", 4), "trunc/f");
  t.Content("shrunk", "trunc/f");
  t.RcStat("truncate to the same size", truncate("trunc/f", 4), "trunc/f");
  t.RcStat("truncate to 0", truncate("trunc/f", 0), "trunc/f");
  t.Rc("truncate to -1", truncate("trunc/f", -1));
  t.Rc("truncate a directory", truncate("trunc", 0));
  t.Rc("truncate missing", truncate("trunc/missing", 0));
  symlink("f", "trunc/lnk");
  t.RcStat("truncate through a symlink", truncate("trunc/lnk", 7), "trunc/f");
  mkfifo("trunc/fifo", 0644);
  t.Rc("truncate a fifo", truncate("trunc/fifo", 0));
}

void TruncateByDescriptor(Transcript& t) {
  int fd = open("trunc/f", O_RDONLY | O_CLOEXEC);
  t.Rc("ftruncate on O_RDONLY", ftruncate(fd, 1));
  close(fd);
  t.Rc("ftruncate on a closed descriptor", ftruncate(fd, 1));
  fd = open("trunc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  t.Rc("ftruncate on a directory", ftruncate(fd, 0));
  close(fd);
  fd = open("trunc/f", O_WRONLY | O_CLOEXEC);
  t.Rc("ftruncate up to 1 MiB + 3", ftruncate(fd, (1 << 20) + 3));
  t.FStat("fstat after ftruncate", fd);
  t.Rc("ftruncate to -5", ftruncate(fd, -5));
  t.Rc("ftruncate down to 3", ftruncate(fd, 3));
  t.Rc("pwrite at 10 after the end", pwrite(fd, "X", 1, 10));
  t.Rc("close", close(fd));
  t.Content("hole after pwrite", "trunc/f");
  fd = open("trunc/f", O_RDWR | O_CLOEXEC);
  t.Rc("ftruncate 5 MiB on O_RDWR", ftruncate(fd, 5 << 20));
  t.Rc("pwrite in the middle", pwrite(fd, "Y", 1, 3 << 20));
  char buf[16];
  t.Rec("pread beyond the end", std::to_string(pread(fd, buf, sizeof(buf), 6 << 20)));
  t.Rec("pread across the end", std::to_string(pread(fd, buf, sizeof(buf), (5 << 20) - 4)));
  close(fd);
  t.Content("5 MiB content", "trunc/f");
  t.Rc("open O_TRUNC", fd = open("trunc/f", O_WRONLY | O_TRUNC | O_CLOEXEC));
  close(fd);
  t.Stat("after O_TRUNC", "trunc/f");
  PutFile("trunc/r", "readonly-trunc");
  fd = open("trunc/r", O_RDONLY | O_TRUNC | O_CLOEXEC);
  t.RcStat("open O_RDONLY|O_TRUNC", fd, "trunc/r");
  if (fd >= 0) close(fd);
  PutFile("trunc/ro", "protected");
  chmod("trunc/ro", 0444);
  t.RcStat("truncate a 0444 file of the caller's", truncate("trunc/ro", 2), "trunc/ro");
  t.Rc("open O_WRONLY|O_TRUNC a 0444 file", fd = open("trunc/ro", O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (fd >= 0) close(fd);
}

void PathErrors(Transcript& t) {
  struct stat st {};
  t.Rc("stat missing", stat("err/missing", &st));
  t.Rc("stat empty path", stat("", &st));
  t.Rc("stat below a missing dir", stat("err/missing/x", &st));
  t.Rc("stat below a file", stat("err/f/x", &st));
  t.Rc("stat a file with trailing slash", stat("err/f/", &st));
  t.Rc("stat dangling symlink", stat("err/dangling", &st));
  t.Rc("chmod missing", chmod("err/missing", 0644));
  t.Rc("open O_DIRECTORY on a file", open("err/f", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  t.Rc("mkdir below a file", mkdir("err/f/x", 0755));
  t.Rc("open a dir O_WRONLY", open("err/d", O_WRONLY | O_CLOEXEC));
  t.Rc("open a dir O_RDWR", open("err/d", O_RDWR | O_CLOEXEC));
  t.Rc("open a dir O_CREAT", open("err/d", O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  t.Rc("open O_CREAT|O_DIRECTORY", open("err/new", O_CREAT | O_DIRECTORY | O_CLOEXEC, 0644));
  t.Rc("open O_CREAT with trailing slash", open("err/new/", O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  int fd = open("err/d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char buf[8];
  t.Rc("read a directory", read(fd, buf, sizeof(buf)));
  close(fd);
}

void CreateErrors(Transcript& t) {
  t.Rc("O_CREAT|O_EXCL on an existing file",
       open("err/f", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
  t.Rc("O_CREAT|O_EXCL on a dangling symlink",
       open("err/dangling", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
  const int fd = open("err/dangling", O_CREAT | O_WRONLY | O_CLOEXEC, 0640);
  t.RcStat("O_CREAT through a dangling symlink", fd, "err/missing-target");
  if (fd >= 0) close(fd);
  t.Rc("mkfifo on an existing name", mkfifo("err/f", 0644));
  t.Rc("symlink on an existing name", symlink("x", "err/d"));
  t.Rc("mknod on an existing name", mknod("err/f", S_IFREG | 0644, 0));
}

void DescriptorErrors(Transcript& t) {
  char buf[8];
  int fd = open("err/f", O_RDONLY | O_CLOEXEC);
  t.Rc("write on O_RDONLY", write(fd, "x", 1));
  t.Rc("lseek to -1", lseek(fd, -1, SEEK_SET));
  t.Rc("lseek whence 99", lseek(fd, 0, 99));
  t.Rec("lseek SEEK_END", std::to_string(lseek(fd, 0, SEEK_END)));
  t.Rc("pread at -1", pread(fd, buf, 1, -1));
  t.Rc("close", close(fd));
  t.Rc("close again", close(fd));
  t.Rc("read on a closed descriptor", read(fd, buf, 1));
  t.Rc("fchmod on a closed descriptor", fchmod(fd, 0644));
  fd = open("err/f", O_WRONLY | O_CLOEXEC);
  t.Rc("read on O_WRONLY", read(fd, buf, 1));
  t.Rc("pwrite at -1", pwrite(fd, "x", 1, -1));
  close(fd);
  fd = open("err/f", O_WRONLY | O_APPEND | O_CLOEXEC);
  t.Rc("append 1", write(fd, "+1", 2));
  t.Rc("pwrite at 0 with O_APPEND", pwrite(fd, "+2", 2, 0));
  close(fd);
  t.Content("content after appends", "err/f");
  t.Rc("unlink .", unlink("err/d/."));
  t.Rc("mkdir .", mkdir("err/d/.", 0755));
  t.Rc("mkdir ..", mkdir("err/d/..", 0755));
  t.Rc("rmdir the current directory entry", rmdir("."));
}

}  // namespace

void LinksSection(Transcript& t) {
  t.Section("links");
  umask(022);
  mkdir("links", 0755);
  FileLinks(t);
  DirectoryLinks(t);
}

void RenameSection(Transcript& t) {
  t.Section("rename");
  umask(022);
  mkdir("ren", 0755);
  RenameFiles(t);
  RenameDirectories(t);
  RenameFlags(t);
}

void TruncateSection(Transcript& t) {
  t.Section("truncate");
  umask(022);
  mkdir("trunc", 0755);
  TruncateByPath(t);
  TruncateByDescriptor(t);
}

void ErrnoSection(Transcript& t) {
  t.Section("errno");
  umask(022);
  mkdir("err", 0755);
  PutFile("err/f", "content");
  mkdir("err/d", 0755);
  symlink("missing-target", "err/dangling");
  PathErrors(t);
  CreateErrors(t);
  DescriptorErrors(t);
}

}  // namespace medvfs::conform
