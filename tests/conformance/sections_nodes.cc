// Types, modes, owners and names of new nodes.
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "tests/conformance/sections.h"

namespace medvfs::conform {
namespace {

const char* DirentType(unsigned char type) {
  switch (type) {
    case DT_REG:
      return "reg";
    case DT_DIR:
      return "dir";
    case DT_LNK:
      return "lnk";
    case DT_FIFO:
      return "fifo";
    case DT_CHR:
      return "chr";
    case DT_BLK:
      return "blk";
    case DT_SOCK:
      return "sock";
    default:
      return "unknown";
  }
}

// The entries of `dir` (without . and ..), sorted, as "name:type" with escaped names; or the
// errno name.
std::string Listing(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ErrnoName(errno);
  std::vector<std::string> entries;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string shown = name.size() > 40 ? "<" + std::to_string(name.size()) + " bytes>" : name;
    entries.push_back(Escape(shown) + ":" + DirentType(e->d_type));
  }
  closedir(d);
  std::sort(entries.begin(), entries.end());
  std::string out;
  for (const std::string& e : entries) out += (out.empty() ? "" : " ") + e;
  return out;
}

// Creates a regular file with open(O_CREAT | O_EXCL); returns open's result (closed again).
long Create(const std::string& path, mode_t mode) {
  const int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

long LstatRc(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st);
}

// Binds an AF_UNIX stream socket at `path`; returns the socket (listening) or -1.
int BindSocket(const std::string& path) {
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    close(s);
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (bind(s, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 || listen(s, 1) != 0) {
    const int err = errno;
    close(s);
    errno = err;
    return -1;
  }
  return s;
}

long ConnectSocket(const std::string& path) {
  const int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), std::min(path.size() + 1, sizeof(addr.sun_path) - 1));
  const int rc = connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  close(c);
  errno = err;
  return rc;
}

void FifoChecks(Transcript& t) {
  t.Rc("open fifo O_WRONLY|O_NONBLOCK without reader",
       open("types/fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  const int r = open("types/fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  t.Rc("open fifo O_RDONLY|O_NONBLOCK", r);
  const int w = open("types/fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  t.Rc("open fifo O_WRONLY|O_NONBLOCK with reader", w);
  if (r >= 0 && w >= 0) {
    t.Rc("write fifo", write(w, "x", 1));
    char c = 0;
    const ssize_t n = read(r, &c, 1);
    t.Rec("read fifo", n == 1 ? std::string(1, c) : ErrnoName(errno));
    t.Rc("lseek fifo", lseek(r, 0, SEEK_SET));
  }
  if (r >= 0) close(r);
  if (w >= 0) close(w);
}

}  // namespace

void TypesSection(Transcript& t) {
  t.Section("types");
  umask(022);
  mkdir("types", 0755);
  int fd = open("types/reg", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  t.RcStat("create regular", fd, "types/reg");
  if (fd >= 0) {
    t.Rc("write regular", write(fd, "hello", 5));
    t.Rc("close regular", close(fd));
  }
  t.Stat("regular after write", "types/reg");
  t.RcStat("mkdir", mkdir("types/dir", 0755), "types/dir");
  t.RcStat("symlink", symlink("reg", "types/lnk"), "types/lnk");
  t.Stat("stat through symlink", "types/lnk", true);
  t.RcStat("mkfifo", mkfifo("types/fifo", 0644), "types/fifo");
  t.RcStat("mknod S_IFREG", mknod("types/mknod-reg", S_IFREG | 0640, 0), "types/mknod-reg");
  t.RcStat("mknod without type", mknod("types/mknod-default", 0640, 0), "types/mknod-default");
  t.RcStat("mknod S_IFIFO", mknod("types/mknod-fifo", S_IFIFO | 0600, 0), "types/mknod-fifo");
  t.RcStat("mknod S_IFCHR 1:3", mknod("types/chr", S_IFCHR | 0666, makedev(1, 3)), "types/chr");
  t.RcStat("mknod S_IFBLK 7:0", mknod("types/blk", S_IFBLK | 0600, makedev(7, 0)), "types/blk");
  t.RcStat("mknod S_IFSOCK", mknod("types/mknod-sock", S_IFSOCK | 0644, 0), "types/mknod-sock");
  t.Rc("mknod S_IFDIR", mknod("types/mknod-dir", S_IFDIR | 0755, 0));
  t.Rc("mknod invalid type", mknod("types/mknod-bad", 0160000 | 0644, 0));
  fd = open("types/chr", O_RDONLY | O_CLOEXEC);
  t.Rc("open char device", fd);
  if (fd >= 0) {
    char c;
    t.Rec("read char device", std::to_string(read(fd, &c, 1)));
    close(fd);
  }

  const int s = BindSocket("types/sock");
  t.RcStat("bind unix socket", s, "types/sock");
  t.Rc("connect unix socket", ConnectSocket("types/sock"));
  if (s >= 0) close(s);
  t.Rc("connect closed socket", ConnectSocket("types/sock"));
  t.Rc("bind over existing node", BindSocket("types/sock"));
  FifoChecks(t);
  t.Rec("readdir d_type", Listing("types"));
  t.Rc("unlink socket", unlink("types/sock"));
  t.Rc("unlink fifo", unlink("types/fifo"));
  t.Rc("unlink char device", unlink("types/chr"));
}

namespace {

void ModesUnderUmask(Transcript& t, mode_t mask) {
  const std::string dir = "modes-" + Octal(mask);
  const std::string p = dir + "/";
  t.Section("modes[umask " + Octal(mask) + "]");
  umask(0);
  mkdir(dir.c_str(), 0755);
  umask(mask);
  for (const mode_t mode : {0777, 0666, 0644, 0600, 0755, 04755, 02755, 01755, 06777, 0}) {
    const std::string path = p + "f" + Octal(mode);
    t.RcStat("open O_CREAT " + Octal(mode), Create(path, mode), path);
  }
  for (const mode_t mode : {0777, 0755, 0700, 01777, 02775, 03777, 0}) {
    const std::string path = p + "d" + Octal(mode);
    t.RcStat("mkdir " + Octal(mode), mkdir(path.c_str(), mode), path);
  }
  for (const mode_t mode : {0666, 0640, 04666}) {
    const std::string path = p + "p" + Octal(mode);
    t.RcStat("mkfifo " + Octal(mode), mkfifo(path.c_str(), mode), path);
  }
  for (const mode_t mode : {0666, 0751}) {
    const std::string path = p + "n" + Octal(mode);
    t.RcStat("mknod S_IFREG " + Octal(mode), mknod(path.c_str(), S_IFREG | mode, 0), path);
  }
  t.RcStat("symlink", symlink("f0644", (p + "lnk").c_str()), p + "lnk");
  const int s = BindSocket(p + "sock");
  t.RcStat("bind unix socket", s, p + "sock");
  if (s >= 0) close(s);
  const int fd = open((p + "f0644").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  t.RcStat("open O_CREAT of an existing file keeps its mode", fd, p + "f0644");
  if (fd >= 0) close(fd);
}

void ChmodModes(Transcript& t) {
  t.Section("modes");
  umask(022);
  mkdir("modes-chmod", 0755);
  Create("modes-chmod/f", 0644);
  for (const mode_t mode : {07777, 0, 04711, 02710, 01604, 0644}) {
    t.RcStat("chmod " + Octal(mode), chmod("modes-chmod/f", mode), "modes-chmod/f");
  }
  mkdir("modes-chmod/d", 0755);
  for (const mode_t mode : {07777, 01777, 02755, 0}) {
    t.RcStat("chmod dir " + Octal(mode), chmod("modes-chmod/d", mode), "modes-chmod/d");
  }
  chmod("modes-chmod/d", 0755);
  const int fd = open("modes-chmod/f", O_RDONLY | O_CLOEXEC);
  t.Rc("fchmod 0640 on a read-only descriptor", fchmod(fd, 0640));
  t.FStat("fstat after fchmod", fd);
  close(fd);
  symlink("f", "modes-chmod/lnk");
  t.Rc("chmod through symlink 0600", chmod("modes-chmod/lnk", 0600));
  t.Stat("symlink after chmod through it", "modes-chmod/lnk");
  t.Stat("target after chmod through symlink", "modes-chmod/f");
  t.Rc("fchmodat AT_SYMLINK_NOFOLLOW on a symlink",
       fchmodat(AT_FDCWD, "modes-chmod/lnk", 0600, AT_SYMLINK_NOFOLLOW));
}

// New nodes belong to the caller and the caller's group.
void NewNodeOwners(Transcript& t) {
  t.Stat("new directory", "owner");
  t.RcStat("new file", Create("owner/file", 0644), "owner/file");
  t.RcStat("new symlink", symlink("file", "owner/lnk"), "owner/lnk");
  t.RcStat("new fifo", mkfifo("owner/fifo", 0644), "owner/fifo");
  t.RcStat("new mknod file", mknod("owner/node", S_IFREG | 0644, 0), "owner/node");
  const int s = BindSocket("owner/sock");
  t.RcStat("new socket", s, "owner/sock");
  if (s >= 0) close(s);
}

// A setgid directory hands its group down (and its setgid bit to subdirectories).
void SetgidDirectories(Transcript& t, gid_t group) {
  t.Rec("group for setgid directories", t.GidName(group));
  mkdir("owner/sg", 0775);
  t.Rc("chgrp directory", chown("owner/sg", static_cast<uid_t>(-1), group));
  t.RcStat("chmod directory 02775", chmod("owner/sg", 02775), "owner/sg");
  t.RcStat("file in setgid dir", Create("owner/sg/file", 0644), "owner/sg/file");
  t.RcStat("file 02755 in setgid dir", Create("owner/sg/f2755", 02755), "owner/sg/f2755");
  t.RcStat("mkdir 0755 in setgid dir", mkdir("owner/sg/sub", 0755), "owner/sg/sub");
  t.RcStat("mkdir 0700 two levels down", mkdir("owner/sg/sub/deeper", 0700), "owner/sg/sub/deeper");
  t.RcStat("file two levels down", Create("owner/sg/sub/deeper/f", 0600), "owner/sg/sub/deeper/f");
  t.RcStat("symlink in setgid dir", symlink("file", "owner/sg/lnk"), "owner/sg/lnk");
  t.RcStat("mkfifo in setgid dir", mkfifo("owner/sg/fifo", 0644), "owner/sg/fifo");
  t.RcStat("mknod in setgid dir", mknod("owner/sg/node", S_IFREG | 0644, 0), "owner/sg/node");
  Create("owner/moved", 0644);
  t.RcStat("rename into setgid dir keeps the group", rename("owner/moved", "owner/sg/moved"),
           "owner/sg/moved");
  Create("owner/linked", 0644);
  t.RcStat("link into setgid dir keeps the group", link("owner/linked", "owner/sg/linked"),
           "owner/sg/linked");
  t.RcStat("chmod directory 0775 clears setgid", chmod("owner/sg", 0775), "owner/sg");
  t.RcStat("file after setgid cleared", Create("owner/sg/after", 0644), "owner/sg/after");
  t.RcStat("mkdir after setgid cleared", mkdir("owner/sg/dafter", 0755), "owner/sg/dafter");
}

void ChownRules(Transcript& t, gid_t group) {
  const Identity& id = t.id();
  const uid_t keep_uid = static_cast<uid_t>(-1);
  const gid_t keep_gid = static_cast<gid_t>(-1);
  Create("owner/c1", 0644);
  t.RcStat("chown -1 -1", chown("owner/c1", keep_uid, keep_gid), "owner/c1");
  t.RcStat("chown to the caller's own uid", chown("owner/c1", id.uid, keep_gid), "owner/c1");
  t.RcStat("chown to a stranger uid", chown("owner/c1", kStrangerUid, keep_gid), "owner/c1");
  Create("owner/c2", 0644);
  t.RcStat("chgrp to a stranger gid", chown("owner/c2", keep_uid, kStrangerGid), "owner/c2");
  Create("owner/c3", 0644);
  t.RcStat("chgrp to gid 0", chown("owner/c3", keep_uid, 0), "owner/c3");
  Create("owner/c4", 0644);
  t.RcStat("chgrp to the setgid group", chown("owner/c4", keep_uid, group), "owner/c4");
  t.RcStat("chgrp back to the caller's group", chown("owner/c4", keep_uid, id.gid), "owner/c4");
  symlink("c4", "owner/sl");
  t.RcStat("lchown symlink group", lchown("owner/sl", keep_uid, group), "owner/sl");
  t.Stat("target after lchown", "owner/c4");
  t.RcStat("lchown symlink to a stranger uid", lchown("owner/sl", kStrangerUid, keep_gid),
           "owner/sl");
  t.RcStat("chown through symlink", chown("owner/sl", keep_uid, group), "owner/c4");

  // chown clears set-user-id, and set-group-id when group-executable, even chown -1 -1.
  Create("owner/su", 0755);
  t.RcStat("chmod 06755", chmod("owner/su", 06755), "owner/su");
  t.RcStat("chown -1 -1 of 06755", chown("owner/su", keep_uid, keep_gid), "owner/su");
  Create("owner/sg2", 0755);
  t.RcStat("chmod 02745", chmod("owner/sg2", 02745), "owner/sg2");
  t.RcStat("chgrp of 02745", chown("owner/sg2", keep_uid, group), "owner/sg2");
  mkdir("owner/sd", 0755);
  chmod("owner/sd", 06775);
  t.RcStat("chgrp of a 06775 directory", chown("owner/sd", keep_uid, group), "owner/sd");
}

}  // namespace

void ModesSection(Transcript& t) {
  for (const mode_t mask : {mode_t{022}, mode_t{027}, mode_t{077}, mode_t{002}}) {
    ModesUnderUmask(t, mask);
  }
  ChmodModes(t);
}

void OwnershipSection(Transcript& t) {
  t.Section("owner");
  umask(022);
  const Identity& id = t.id();
  mkdir("owner", 0755);
  NewNodeOwners(t);
  // The group a setgid directory hands down: one that is not the caller's primary group.
  gid_t group = id.gid;
  if (id.root()) {
    group = kStrangerGid;
  } else if (id.SecondGroup()) {
    group = *id.SecondGroup();
  }
  SetgidDirectories(t, group);
  ChownRules(t, group);
}

namespace {

std::string ReadLinkResult(const std::string& path, const std::string& expected) {
  std::string buf(8192, '\0');
  const ssize_t n = readlink(path.c_str(), buf.data(), buf.size());
  if (n < 0) return ErrnoName(errno);
  buf.resize(static_cast<size_t>(n));
  return "len=" + std::to_string(n) + (buf == expected ? " same" : " differs");
}

void NameLengths(Transcript& t) {
  const std::string n255(255, 'n');
  const std::string n256(256, 'n');
  const std::string p255 = "names/" + n255;
  const std::string p256 = "names/" + n256;
  t.RcStat("create 255-byte name", Create(p255, 0644), p255);
  t.Rc("lstat 255-byte name", LstatRc(p255));
  t.Rc("create 256-byte name", Create(p256, 0644));
  t.Rc("mkdir 256-byte name", mkdir(p256.c_str(), 0755));
  t.Rc("symlink 256-byte name", symlink("reg", p256.c_str()));
  t.Rc("mknod 256-byte name", mknod(p256.c_str(), S_IFIFO | 0644, 0));
  t.Rc("link to 256-byte name", link("names/reg", p256.c_str()));
  t.Rc("rename to 256-byte name", rename("names/reg", p256.c_str()));
  t.Rc("lstat 256-byte name", LstatRc(p256));
  t.Rc("unlink 256-byte name", unlink(p256.c_str()));
  const std::string d255 = "names/" + std::string(255, 'd');
  t.RcStat("mkdir 255-byte name", mkdir(d255.c_str(), 0755), d255);
  t.RcStat("file in 255-byte directory", Create(d255 + "/" + n255, 0644), d255 + "/" + n255);
  const std::string r255 = "names/" + std::string(255, 'r');
  t.RcStat("rename to 255-byte name", rename("names/reg", r255.c_str()), r255);
  t.Rc("rename back from 255-byte name", rename(r255.c_str(), "names/reg"));
  std::string utf8;
  for (int i = 0; i < 127; ++i) utf8 += "\xc3\xa9";
  utf8 += "x";
  t.RcStat("create 255-byte UTF-8 name", Create("names/" + utf8, 0644), "names/" + utf8);
  t.Rc("create 256-byte UTF-8 name", Create("names/" + utf8 + "y", 0644));
}

void OddNames(Transcript& t) {
  mkdir("names/odd", 0755);
  for (const char* name : {"with space", "tab\tname", "new\nline", "back\\slash", "-dash",
                           ".hidden", "...", "x:y", "\x01\x7f", "trailing."}) {
    t.Rc("create odd name " + Escape(name), Create(std::string("names/odd/") + name, 0644));
  }
  t.Rec("odd names listed", Listing("names/odd"));
}

void SymlinkTargets(Transcript& t) {
  t.RcStat("symlink target of 1 byte", symlink("x", "names/t1"), "names/t1");
  t.Rec("readlink 1 byte", ReadLinkResult("names/t1", "x"));
  std::string long_target;
  while (long_target.size() < 4092) long_target += "./";
  long_target += "reg";  // 4095 bytes, PATH_MAX - 1, resolving to names/reg
  t.RcStat("symlink target of 4095 bytes", symlink(long_target.c_str(), "names/t4095"),
           "names/t4095");
  t.Rec("readlink 4095 bytes", ReadLinkResult("names/t4095", long_target));
  t.Stat("stat through 4095-byte target", "names/t4095", true);
  char small[4];
  const ssize_t n = readlink("names/t4095", small, sizeof(small));
  t.Rec("readlink into 4 bytes",
        n < 0 ? ErrnoName(errno) : std::to_string(n) + " " + Escape(std::string(small, 4)));
  const std::string too_long(4096, 'a');
  t.Rc("symlink target of 4096 bytes", symlink(too_long.c_str(), "names/t4096"));
  t.Rc("symlink with empty target", symlink("", "names/t0"));
  t.Rc("readlink on a regular file", readlink("names/reg", small, sizeof(small)));
  t.Rc("readlink missing", readlink("names/missing", small, sizeof(small)));
  t.RcStat("symlink to a 255-byte component", symlink(std::string(255, 'n').c_str(), "names/tn"),
           "names/tn");
  t.Stat("stat through it", "names/tn", true);
}

void Loops(Transcript& t) {
  symlink("loop2", "names/loop1");
  symlink("loop1", "names/loop2");
  symlink("self", "names/self");
  t.Stat("stat symlink loop", "names/loop1", true);
  t.Rc("open symlink loop", open("names/loop1", O_RDONLY | O_CLOEXEC));
  t.Rc("open self-referencing symlink", open("names/self", O_RDONLY | O_CLOEXEC));
  t.Rc("open O_CREAT through a loop", open("names/self", O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  t.Rc("open symlink O_NOFOLLOW", open("names/t1", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  const int fd = open("names/t1", O_PATH | O_NOFOLLOW | O_CLOEXEC);
  t.Rc("open symlink O_PATH|O_NOFOLLOW", fd);
  if (fd >= 0) {
    t.FStat("fstat O_PATH symlink", fd);
    close(fd);
  }
  mkdir("names/chain", 0755);
  symlink("../reg", "names/chain/c0");
  for (int i = 1; i <= 40; ++i) {
    symlink(("c" + std::to_string(i - 1)).c_str(), ("names/chain/c" + std::to_string(i)).c_str());
  }
  t.Stat("stat through 40 symlinks", "names/chain/c39", true);
  t.Stat("stat through 41 symlinks", "names/chain/c40", true);
  mkdir("names/dir", 0755);
  symlink("dir", "names/sd");
  t.RcStat("create through symlink to dir", Create("names/sd/x", 0644), "names/dir/x");
  t.Stat("lstat symlink to dir with trailing slash", "names/sd/");
  t.Rc("rmdir symlink to dir", rmdir("names/sd"));
  t.Rc("rmdir symlink to dir with trailing slash", rmdir("names/sd/"));
  t.Rc("unlink symlink to dir with trailing slash", unlink("names/sd/"));
  t.Rc("unlink symlink to dir", unlink("names/sd"));
}

}  // namespace

void NamesSection(Transcript& t) {
  t.Section("names");
  umask(022);
  mkdir("names", 0755);
  PutFile("names/reg", "target");
  NameLengths(t);
  OddNames(t);
  SymlinkTargets(t);
  Loops(t);
  // "names/reg" behind "./" prefixes: 4095 bytes (PATH_MAX - 1) and 4097 bytes.
  std::string prefix;
  while (prefix.size() < 4086) prefix += "./";
  t.Stat("stat path of 4095 bytes", prefix + "names/reg");
  t.Stat("stat path of 4097 bytes", prefix + "./names/reg");
}

}  // namespace medvfs::conform
