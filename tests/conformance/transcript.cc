#include "tests/conformance/transcript.h"

#include <fcntl.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iostream>

namespace medvfs::conform {
namespace {

int64_t Ns(const timespec& ts) { return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec; }

const char* TypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "reg";
    case S_IFDIR:
      return "dir";
    case S_IFLNK:
      return "lnk";
    case S_IFIFO:
      return "fifo";
    case S_IFCHR:
      return "chr";
    case S_IFBLK:
      return "blk";
    case S_IFSOCK:
      return "sock";
    default:
      return "unknown";
  }
}

std::string Relation(const timespec& before, const timespec& after) {
  const int64_t b = Ns(before);
  const int64_t a = Ns(after);
  return a > b ? "advanced" : a == b ? "unchanged" : "went back";
}

Times FromStat(int rc, const struct stat& st) {
  Times t;
  if (rc != 0) {
    t.err = errno;
    return t;
  }
  t.atime = st.st_atim;
  t.mtime = st.st_mtim;
  t.ctime = st.st_ctim;
  return t;
}

}  // namespace

bool Identity::InGroup(gid_t g) const {
  return g == gid || std::find(groups.begin(), groups.end(), g) != groups.end();
}

std::optional<gid_t> Identity::SecondGroup() const {
  for (gid_t g : groups) {
    if (g != gid) return g;
  }
  return std::nullopt;
}

Identity Identity::OfThisProcess() {
  Identity id;
  id.uid = geteuid();
  id.gid = getegid();
  const int n = getgroups(0, nullptr);
  if (n > 0) {
    std::vector<gid_t> all(static_cast<size_t>(n));
    const int got = getgroups(n, all.data());
    for (int i = 0; i < got; ++i) {
      const gid_t g = all[static_cast<size_t>(i)];
      if (g != id.gid && std::find(id.groups.begin(), id.groups.end(), g) == id.groups.end()) {
        id.groups.push_back(g);
      }
    }
  }
  std::sort(id.groups.begin(), id.groups.end());
  return id;
}

void Transcript::Rec(std::string_view op, std::string_view result) {
  std::cout << section_ << "/" << op << ": " << result << "\n";
}

void Transcript::Rc(std::string_view op, long rc) {
  Rec(op, rc < 0 ? ErrnoName(errno) : std::string("ok"));
}

void Transcript::RcStat(std::string_view op, long rc, const std::string& path) {
  if (rc < 0) {
    Rec(op, ErrnoName(errno));
    return;
  }
  Rec(op, "ok; " + StatOf(path, false));
}

void Transcript::Stat(std::string_view op, const std::string& path, bool follow) {
  Rec(op, StatOf(path, follow));
}

void Transcript::FStat(std::string_view op, int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    Rec(op, ErrnoName(errno));
    return;
  }
  Rec(op, Describe(st));
}

void Transcript::Content(std::string_view op, const std::string& path) {
  int err = 0;
  const std::string data = Slurp(path, &err);
  if (err != 0) {
    Rec(op, ErrnoName(err));
    return;
  }
  if (data.size() <= 48) {
    Rec(op, "\"" + Escape(data) + "\"");
  } else {
    Rec(op, "size=" + std::to_string(data.size()) + " fnv=" + Fingerprint(data));
  }
}

std::string Transcript::Describe(const struct stat& st) const {
  std::string out = TypeName(st.st_mode);
  out += " mode=" + Octal(st.st_mode & 07777);
  out += " uid=" + UidName(st.st_uid) + " gid=" + GidName(st.st_gid);
  // A directory's st_size is left to the file system by POSIX (ext4 shows its block use).
  if (!S_ISDIR(st.st_mode)) out += " size=" + std::to_string(st.st_size);
  out += " nlink=" + std::to_string(st.st_nlink);
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    out += " rdev=" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
  }
  return out;
}

std::string Transcript::StatOf(const std::string& path, bool follow) const {
  struct stat st {};
  const int rc = follow ? stat(path.c_str(), &st) : lstat(path.c_str(), &st);
  if (rc != 0) return ErrnoName(errno);
  return Describe(st);
}

std::string Transcript::UidName(uid_t uid) const {
  if (uid == id_.uid) return "caller";
  if (uid == 0) return "root";
  if (uid == kStrangerUid) return "stranger";
  return "other";
}

std::string Transcript::GidName(gid_t gid) const {
  if (gid == id_.gid) return "caller-group";
  if (id_.SecondGroup() && gid == *id_.SecondGroup()) return "second-group";
  if (gid == 0) return "root";
  if (gid == kStrangerGid) return "stranger";
  return "other";
}

std::string ErrnoName(int err) {
  if (err == 0) return "ok";
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "errno" + std::to_string(err);
}

std::string Octal(unsigned mode) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04o", mode);
  return buf;
}

std::string Escape(std::string_view data) {
  std::string out;
  for (const char c : data) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\' && c != '"') {
      out += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    }
  }
  return out;
}

std::string Fingerprint(std::string_view data) {
  uint64_t h = 14695981039346656037ull;
  for (const char c : data) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string Slurp(const std::string& path, int* err) {
  *err = 0;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return {};
  }
  std::string data;
  char buf[65536];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      *err = errno;
      break;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return data;
}

int PutFile(const std::string& path, std::string_view data) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      const int err = errno;
      close(fd);
      return err;
    }
    done += static_cast<size_t>(n);
  }
  return close(fd) == 0 ? 0 : errno;
}

Times TimesOf(const std::string& path, bool follow) {
  struct stat st {};
  const int rc = follow ? stat(path.c_str(), &st) : lstat(path.c_str(), &st);
  return FromStat(rc, st);
}

timespec RealNow() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return now;
}

void AwaitClockPast(const Times& t) {
  if (t.err != 0) return;
  const int64_t now = Ns(RealNow());
  int64_t latest = 0;
  for (const timespec& ts : {t.atime, t.mtime, t.ctime}) {
    const int64_t v = Ns(ts);
    if (v <= now + 1'000'000'000 && v > latest) latest = v;  // ignore times set in the future
  }
  for (int i = 0; i < 1000; ++i) {
    timespec coarse{};
    clock_gettime(CLOCK_REALTIME_COARSE, &coarse);
    if (Ns(coarse) > latest) return;
    const timespec tick = {0, 1'000'000};
    nanosleep(&tick, nullptr);
  }
}

Times Baseline(const std::string& path, bool follow) {
  const timespec past[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
  utimensat(AT_FDCWD, path.c_str(), past, follow ? 0 : AT_SYMLINK_NOFOLLOW);
  const Times t = TimesOf(path, follow);
  AwaitClockPast(t);
  return t;
}

std::string TimeChange(const Times& before, const Times& after, const Expect& a, const Expect& m,
                       timespec start, timespec end) {
  if (before.err != 0) return "before: " + ErrnoName(before.err);
  if (after.err != 0) return "after: " + ErrnoName(after.err);
  // File systems stamp with a clock that may lag the one read here by a tick.
  constexpr int64_t kSlack = 50'000'000;
  const auto describe = [&](const timespec& b, const timespec& v, const Expect& e) {
    switch (e.kind) {
      case Expect::Kind::kExplicit:
        return std::string(Ns(v) == Ns(e.value) ? "=set" : "!=set");
      case Expect::Kind::kNow:
        if (Ns(v) >= Ns(start) - kSlack && Ns(v) <= Ns(end) + kSlack) return std::string("=now");
        return "not now (" + Relation(b, v) + ")";
      case Expect::Kind::kRelative:
        break;
    }
    return Relation(b, v);
  };
  return "atime " + describe(before.atime, after.atime, a) + " mtime " +
         describe(before.mtime, after.mtime, m) + " ctime " + Relation(before.ctime, after.ctime);
}

}  // namespace medvfs::conform
