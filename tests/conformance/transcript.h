// The transcript of medvfs_conform: one line per check, "section/operation: result", with
// nothing in it that differs between two correct file systems (no paths, inode numbers, raw
// times or numeric ids), so that a run in a plain directory and a run on a mount compare line
// by line.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace medvfs::conform {

// Who runs the script: owners are printed relative to it.
struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, without gid

  bool root() const { return uid == 0; }
  bool InGroup(gid_t g) const;
  // The first supplementary group that is not the primary one (the setgid and chgrp cases
  // need a second group of the caller's).
  std::optional<gid_t> SecondGroup() const;
  static Identity OfThisProcess();
};

// A uid and a gid no test user has: what root gives away with chown, and what non-root callers
// are refused.
inline constexpr uid_t kStrangerUid = 4242;
inline constexpr gid_t kStrangerGid = 4242;

// The three times of a node (err != 0: stat failed with that errno).
struct Times {
  int err = 0;
  timespec atime{};
  timespec mtime{};
  timespec ctime{};
};

// A time chosen by a check, and how a later value of it is described.
struct Expect {
  enum class Kind { kRelative, kExplicit, kNow };
  Kind kind = Kind::kRelative;
  timespec value{};  // kExplicit: the time set
};

class Transcript {
 public:
  explicit Transcript(Identity id) : id_(std::move(id)) {}

  const Identity& id() const { return id_; }
  // Operation names that follow are "section/operation".
  void Section(std::string name) { section_ = std::move(name); }

  // Prints "section/op: result".
  void Rec(std::string_view op, std::string_view result);
  // "ok", or the errno name when rc < 0 (errno is read at once).
  void Rc(std::string_view op, long rc);
  // Rc, followed by the attributes of `path` (lstat) when rc >= 0.
  void RcStat(std::string_view op, long rc, const std::string& path);
  // The attributes of `path` (stat when follow, else lstat), or the errno name.
  void Stat(std::string_view op, const std::string& path, bool follow = false);
  void FStat(std::string_view op, int fd);
  // The content of `path`: short contents quoted (escaped), long ones by size and hash.
  void Content(std::string_view op, const std::string& path);

  std::string Describe(const struct stat& st) const;
  std::string StatOf(const std::string& path, bool follow) const;
  std::string UidName(uid_t uid) const;
  std::string GidName(gid_t gid) const;

 private:
  Identity id_;
  std::string section_;
};

// Errno names ("ENOENT"), "ok" for 0.
std::string ErrnoName(int err);
std::string Octal(unsigned mode);
// Shown bytes: printable ASCII as is, others as \xNN.
std::string Escape(std::string_view data);
// FNV-1a 64-bit, hex: enough to tell contents apart in a transcript.
std::string Fingerprint(std::string_view data);
std::string Slurp(const std::string& path, int* err);
// Writes all of data to a new or truncated file (mode 0644 before umask); 0 or an errno.
int PutFile(const std::string& path, std::string_view data);

// Times of `path` (stat, or lstat without follow).
Times TimesOf(const std::string& path, bool follow = true);
// Waits until the coarse clock (the one file systems stamp with) has passed every time in
// `t`, so that any change after this returns is stamped later. Not a synchronisation: a
// timestamp granularity wait, at most one clock tick.
void AwaitClockPast(const Times& t);
// Sets atime and mtime of `path` to a fixed time long past (so that "advanced" shows), waits
// for the clock, and returns the times then.
Times Baseline(const std::string& path, bool follow = true);
// "atime advanced mtime unchanged ctime advanced", with atime and mtime compared to `a` and
// `m` (explicit: "=set" or "!=set"; now: "=now" when within [start, end] of the call).
std::string TimeChange(const Times& before, const Times& after, const Expect& a = {},
                       const Expect& m = {}, timespec start = {}, timespec end = {});
timespec RealNow();

}  // namespace medvfs::conform
