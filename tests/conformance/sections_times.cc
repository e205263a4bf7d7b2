// atime, mtime and ctime: which operations change which, and utimensat.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "tests/conformance/sections.h"

namespace medvfs::conform {
namespace {

using Kind = Expect::Kind;

constexpr timespec kExplicitA = {1'100'000'000, 123'456'789};
constexpr timespec kExplicitM = {1'200'000'000, 987'654'321};

// A node whose times a check looks at (lstat), and what atime and mtime are expected to be.
struct Watch {
  std::string path;
  Expect a = {};
  Expect m = {};
  std::string moved_to = {};  // where the node is after the operation, if it moves
};

// Runs `op` between two snapshots of the times of the watched nodes, the first taken once the
// clock has moved past the times they show; records "name: <rc>; <node>: <time change>...".
template <typename Op>
void TimedMany(Transcript& t, const std::string& name, const std::vector<Watch>& watched, Op&& op) {
  std::vector<Times> before;
  for (const Watch& w : watched) before.push_back(TimesOf(w.path, false));
  for (const Times& b : before) AwaitClockPast(b);
  const timespec start = RealNow();
  errno = 0;
  const long rc = op();
  std::string result = rc < 0 ? ErrnoName(errno) : "ok";
  const timespec end = RealNow();
  for (size_t i = 0; i < watched.size(); ++i) {
    const Watch& w = watched[i];
    const std::string& now_at = w.moved_to.empty() ? w.path : w.moved_to;
    const std::string change = TimeChange(before[i], TimesOf(now_at, false), w.a, w.m, start, end);
    if (watched.size() == 1) {
      result += "; " + change;
    } else {
      result += "; " + w.path.substr(w.path.rfind('/') + 1) + ": " + change;
    }
  }
  t.Rec(name, result);
}

template <typename Op>
void Timed(Transcript& t, const std::string& name, const std::string& path, Op&& op,
           const Expect& a = {}, const Expect& m = {}) {
  TimedMany(t, name, {Watch{path, a, m}}, std::forward<Op>(op));
}

long Utimens(const std::string& path, const timespec* times, int flags = 0) {
  return utimensat(AT_FDCWD, path.c_str(), times, flags);
}

long ReadAll(const std::string& path) {
  int err = 0;
  Slurp(path, &err);
  errno = err;
  return err == 0 ? 0 : -1;
}

long ListAll(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return -1;
  while (readdir(d) != nullptr) {
  }
  closedir(d);
  return 0;
}

void ContentTimes(Transcript& t) {
  const std::string f = "times/f";
  PutFile(f, "0123456789");
  int fd = open(f.c_str(), O_WRONLY | O_CLOEXEC);
  Baseline(f);
  Timed(t, "write", f, [&] { return pwrite(fd, "ab", 2, 0); });
  Timed(t, "close after write", f, [&] { return close(fd); });
  fd = open(f.c_str(), O_WRONLY | O_CLOEXEC);
  Baseline(f);
  Timed(t, "write of 0 bytes", f, [&] { return write(fd, "", 0); });
  Timed(t, "close after writing nothing", f, [&] { return close(fd); });
  Baseline(f);
  Timed(t, "open O_RDWR and close without writing", f, [&] {
    const int rw = open(f.c_str(), O_RDWR | O_CLOEXEC);
    return rw < 0 ? -1 : close(rw);
  });
  // relatime: a read updates atime when atime <= mtime or ctime, or is a day old.
  Baseline(f);
  Timed(t, "read with atime <= mtime", f, [&] { return ReadAll(f); });
  Timed(t, "second read", f, [&] { return ReadAll(f); });
  Baseline("times");
  Timed(t, "readdir", "times", [&] { return ListAll("times"); });
}

void AttributeTimes(Transcript& t) {
  const std::string f = "times/f";
  Baseline(f);
  Timed(t, "chmod", f, [&] { return chmod(f.c_str(), 0600); });
  Timed(t, "chmod to the same mode", f, [&] { return chmod(f.c_str(), 0600); });
  Timed(t, "chown -1 -1", f,
        [&] { return chown(f.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)); });
  Timed(t, "chown to the owner", f,
        [&] { return chown(f.c_str(), t.id().uid, static_cast<gid_t>(-1)); });
  Baseline(f);
  Timed(t, "truncate down", f, [&] { return truncate(f.c_str(), 5); });
  Timed(t, "truncate to the same size", f, [&] { return truncate(f.c_str(), 5); });
  Timed(t, "truncate up", f, [&] { return truncate(f.c_str(), 9); });
  int fd = open(f.c_str(), O_WRONLY | O_CLOEXEC);
  Baseline(f);
  Timed(t, "ftruncate", f, [&] { return ftruncate(fd, 3); });
  Timed(t, "close after ftruncate", f, [&] { return close(fd); });
  Baseline(f);
  Timed(t, "open O_TRUNC of a non-empty file", f, [&] {
    fd = open(f.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    return fd;
  });
  Timed(t, "close after O_TRUNC", f, [&] { return close(fd); });
  Baseline(f);
  Timed(t, "open O_TRUNC of an empty file", f, [&] {
    fd = open(f.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    return fd < 0 ? -1 : close(fd);
  });
}

void UtimensatTimes(Transcript& t) {
  const std::string f = "times/u";
  PutFile(f, "u");
  const Expect set_a{Kind::kExplicit, kExplicitA};
  const Expect set_m{Kind::kExplicit, kExplicitM};
  const Expect now{Kind::kNow, {}};
  const timespec explicit_times[2] = {kExplicitA, kExplicitM};
  Timed(
      t, "utimensat explicit", f, [&] { return Utimens(f, explicit_times); }, set_a, set_m);
  const timespec both_now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  Timed(
      t, "utimensat UTIME_NOW", f, [&] { return Utimens(f, both_now); }, now, now);
  Utimens(f, explicit_times);
  Timed(
      t, "utimensat NULL", f, [&] { return Utimens(f, nullptr); }, now, now);
  const timespec omit_a[2] = {{0, UTIME_OMIT}, kExplicitM};
  Baseline(f);
  Timed(
      t, "utimensat UTIME_OMIT atime, explicit mtime", f, [&] { return Utimens(f, omit_a); }, {},
      set_m);
  const timespec now_a[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  Timed(t, "utimensat UTIME_NOW atime, UTIME_OMIT mtime", f, [&] { return Utimens(f, now_a); }, now,
        {});
  const timespec omit_both[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
  Timed(t, "utimensat UTIME_OMIT both", f, [&] { return Utimens(f, omit_both); });
  const timespec bad_nsec[2] = {{0, 1'000'000'000}, {0, 0}};
  Timed(t, "utimensat tv_nsec 1e9", f, [&] { return Utimens(f, bad_nsec); });
  const timespec negative_nsec[2] = {{0, -5}, {0, 0}};
  Timed(t, "utimensat tv_nsec -5", f, [&] { return Utimens(f, negative_nsec); });
  for (const time_t sec :
       {time_t{-1'000'000'000}, time_t{0}, time_t{4'102'444'800}, time_t{9'000'000'000}}) {
    const timespec when[2] = {{sec, 5}, {sec, 999'999'999}};
    Timed(t, "utimensat to " + std::to_string(sec) + " s", f, [&] { return Utimens(f, when); },
          {Kind::kExplicit, when[0]}, {Kind::kExplicit, when[1]});
  }
  const int fd = open(f.c_str(), O_RDONLY | O_CLOEXEC);
  Timed(
      t, "futimens explicit", f, [&] { return futimens(fd, explicit_times); }, set_a, set_m);
  Timed(
      t, "futimens UTIME_NOW", f, [&] { return futimens(fd, both_now); }, now, now);
  close(fd);
  Timed(t, "utimensat missing", "times/missing",
        [&] { return Utimens("times/missing", explicit_times); });
}

void UtimensatOnSymlinks(Transcript& t) {
  const std::string f = "times/u";
  const Expect set_a{Kind::kExplicit, kExplicitA};
  const Expect set_m{Kind::kExplicit, kExplicitM};
  const Expect now{Kind::kNow, {}};
  const timespec explicit_times[2] = {kExplicitA, kExplicitM};
  const timespec both_now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  symlink("u", "times/lnk");
  Baseline(f);
  Baseline("times/lnk", false);
  TimedMany(t, "utimensat AT_SYMLINK_NOFOLLOW explicit: link and target",
            {{"times/lnk", set_a, set_m}, {f}},
            [&] { return Utimens("times/lnk", explicit_times, AT_SYMLINK_NOFOLLOW); });
  TimedMany(t, "utimensat AT_SYMLINK_NOFOLLOW UTIME_NOW: link and target",
            {{"times/lnk", now, now}, {f}},
            [&] { return Utimens("times/lnk", both_now, AT_SYMLINK_NOFOLLOW); });
  Baseline(f);
  // The link's atime ahead of its other times: following it then leaves it alone under any
  // atime policy (relatime, noatime), so that only utimensat's own effect shows.
  const timespec ahead[2] = {{RealNow().tv_sec + 86'400, 0}, {1'000'000'000, 0}};
  Utimens("times/lnk", ahead, AT_SYMLINK_NOFOLLOW);
  TimedMany(t, "utimensat through a symlink: link and target", {{"times/lnk"}, {f, set_a, set_m}},
            [&] { return Utimens("times/lnk", explicit_times); });
  symlink("nowhere", "times/dangling");
  Timed(
      t, "utimensat AT_SYMLINK_NOFOLLOW on a dangling symlink", "times/dangling",
      [&] { return Utimens("times/dangling", explicit_times, AT_SYMLINK_NOFOLLOW); }, set_a, set_m);
  t.Rc("utimensat through a dangling symlink", Utimens("times/dangling", explicit_times));
  Timed(
      t, "utimensat AT_SYMLINK_NOFOLLOW on a directory", "times",
      [&] { return Utimens("times", explicit_times, AT_SYMLINK_NOFOLLOW); }, set_a, set_m);
}

void NamespaceTimes(Transcript& t) {
  mkdir("times/p", 0755);
  mkdir("times/q", 0755);
  PutFile("times/p/f", "f");
  const std::vector<Watch> p = {{"times/p"}};
  const std::vector<Watch> p_f = {{"times/p"}, {"times/p/f"}};
  Baseline("times/p");
  TimedMany(t, "create: parent", p, [] { return PutFile("times/p/new", "n") == 0 ? 0 : -1; });
  TimedMany(t, "write a child: parent", p, [] {
    const int fd = open("times/p/f", O_WRONLY | O_CLOEXEC);
    const long n = pwrite(fd, "w", 1, 0);
    close(fd);
    return n;
  });
  TimedMany(t, "chmod a child: parent", p, [] { return chmod("times/p/f", 0640); });
  TimedMany(t, "mkdir: parent", p, [] { return mkdir("times/p/sub", 0755); });
  TimedMany(t, "rmdir: parent", p, [] { return rmdir("times/p/sub"); });
  TimedMany(t, "symlink: parent", p, [] { return symlink("f", "times/p/lnk"); });
  TimedMany(t, "mkfifo: parent", p, [] { return mkfifo("times/p/fifo", 0644); });
  TimedMany(t, "link: parent and file", p_f, [] { return link("times/p/f", "times/p/f2"); });
  TimedMany(t, "unlink one link: parent and file", p_f, [] { return unlink("times/p/f2"); });
  TimedMany(t, "rename within the dir: parent and file",
            {{"times/p"}, {"times/p/f", {}, {}, "times/p/g"}},
            [] { return rename("times/p/f", "times/p/g"); });
  TimedMany(t, "rename to another dir: both parents and file",
            {{"times/p"}, {"times/q"}, {"times/p/g", {}, {}, "times/q/g"}},
            [] { return rename("times/p/g", "times/q/g"); });
  mkdir("times/p/moving", 0755);
  TimedMany(t, "rename a dir to another parent: both parents and the dir",
            {{"times/p"}, {"times/q"}, {"times/p/moving", {}, {}, "times/q/moving"}},
            [] { return rename("times/p/moving", "times/q/moving"); });
  PutFile("times/q/h", "h");
  TimedMany(t, "rename over a file: parent and source",
            {{"times/q"}, {"times/q/g", {}, {}, "times/q/h"}},
            [] { return rename("times/q/g", "times/q/h"); });
  TimedMany(t, "unlink: parent", p, [] { return unlink("times/p/new"); });
  TimedMany(t, "failed unlink: parent", p, [] { return unlink("times/p/new"); });
}

}  // namespace

void TimesSection(Transcript& t) {
  t.Section("times");
  umask(022);
  mkdir("times", 0755);
  ContentTimes(t);
  AttributeTimes(t);
  UtimensatTimes(t);
  UtimensatOnSymlinks(t);
  NamespaceTimes(t);
}

}  // namespace medvfs::conform
