// Several processes (fork(): distinct pids, distinct open file descriptions that the kernel
// sends to FUSE separately) save and read the same files through one mount at once, with
// seeded random sizes and contents:
//  - rename writers save a.bin the way most programs do: a temporary file in the same
//    directory (a fixed or a fresh name), written in pieces, sometimes fsync'ed, closed, then
//    renamed over the target;
//  - in-place writers save b.bin by open(O_TRUNC), writes in pieces, close. Their saves take
//    turns under a flock on a file outside the mount (two interleaved in-place saves would
//    legitimately mix their bytes in one version), and the lock holds a counter that numbers
//    the saves in the order they ran;
//  - readers loop open / read-all / close. A read of a.bin must always be exactly one save's
//    whole content, and a reader never sees a writer's saves go backwards; a read of b.bin may
//    be torn (it races an in-place save), so it only must not fail.
// Every content is self-identifying: a header with writer, sequence number, length and a
// checksum of the body, and a body that the seed regenerates, so any mix of bytes is caught.
// Each writer reports every save whose close() (and fsync(), and rename()) returned 0 through
// a pipe. Afterwards, and again after a remount, the history under @version must be:
//  - for b.bin, exactly the initial content and then every acknowledged save, in lock order;
//  - for a.bin, the initial content and then every acknowledged save once (each rename-over is
//    one version: medvfs(1) "When is a version made?"; no rule of medvfs merges saves, and
//    every content here is distinct, so "a save equal to the current version adds no version"
//    never applies), each writer's saves in the order it made them;
//  - and no temporary name leaves a history of its own.
//
// MEDVFS_MULTIPROCESS_SECONDS sets how long the processes run (default 4);
// MEDVFS_MULTIPROCESS_SEED replays a seed (the seed is printed on failure).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

// Roles and counts of the processes.
constexpr uint32_t kRenameWriters = 3;
constexpr uint32_t kInPlaceWriters = 2;
constexpr uint32_t kReadersOfA = 3;
constexpr uint32_t kReadersOfB = 1;
// Writer ids: 0 is the initial content the test writes itself, 1.. the rename writers, then
// the in-place writers.
constexpr uint32_t kWriters = 1 + kRenameWriters + kInPlaceWriters;

constexpr size_t kHeaderSize = 32;
constexpr size_t kMaxSize = 192 * 1024;
constexpr char kMagic[4] = {'M', 'P', 'V', '1'};

// ---- Contents: a function of (seed, writer, seq) only. Nothing here allocates: the forked
// children call it (the parent may have threads, so a child must not touch malloc).

uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t StateFor(uint64_t seed, uint32_t writer, uint32_t seq, uint64_t purpose) {
  uint64_t state = seed ^ (uint64_t{writer} << 40) ^ (uint64_t{seq} << 8) ^ purpose;
  SplitMix(state);
  return state;
}

size_t SizeOf(uint64_t seed, uint32_t writer, uint32_t seq) {
  uint64_t state = StateFor(seed, writer, seq, 1);
  const uint64_t r = SplitMix(state);
  // A quarter small (under a page), the rest up to kMaxSize (several FUSE writes each).
  if (r % 4 == 0) return kHeaderSize + static_cast<size_t>((r >> 8) % 4000);
  return 4096 + static_cast<size_t>((r >> 8) % (kMaxSize - 4096 + 1));
}

// Body bytes: a stream from the seed.
struct BodyStream {
  uint64_t state;
  uint64_t word = 0;
  int left = 0;
  uint8_t Next() {
    if (left == 0) {
      word = SplitMix(state);
      left = 8;
    }
    const auto byte = static_cast<uint8_t>(word);
    word >>= 8;
    --left;
    return byte;
  }
};

uint64_t Fnv1a(const uint8_t* data, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; ++i) h = (h ^ data[i]) * 0x100000001b3ULL;
  return h;
}

void Put32(uint8_t* at, uint32_t v) { std::memcpy(at, &v, 4); }
void Put64(uint8_t* at, uint64_t v) { std::memcpy(at, &v, 8); }
uint32_t Get32(const uint8_t* at) {
  uint32_t v;
  std::memcpy(&v, at, 4);
  return v;
}
uint64_t Get64(const uint8_t* at) {
  uint64_t v;
  std::memcpy(&v, at, 8);
  return v;
}

// Writes the content of (writer, seq) into buf (at least kMaxSize bytes); returns its size.
size_t Fill(uint64_t seed, uint32_t writer, uint32_t seq, uint8_t* buf) {
  const size_t size = SizeOf(seed, writer, seq);
  BodyStream body{StateFor(seed, writer, seq, 2)};
  for (size_t i = kHeaderSize; i < size; ++i) buf[i] = body.Next();
  std::memcpy(buf, kMagic, 4);
  Put32(buf + 4, writer);
  Put32(buf + 8, seq);
  Put32(buf + 12, 0);
  Put64(buf + 16, size);
  Put64(buf + 24, Fnv1a(buf + kHeaderSize, size - kHeaderSize));
  return size;
}

// Why some bytes are not exactly one save's whole content (0: they are).
enum Verdict : uint32_t {
  kWhole = 0,
  kTooShort,
  kBadMagic,
  kBadWriter,
  kBadLength,
  kBadChecksum,
  kNotTheSave,  // header and checksum fine, but not the bytes the seed gives that save
};

uint32_t Judge(uint64_t seed, const uint8_t* data, size_t n, uint32_t* writer, uint32_t* seq) {
  *writer = *seq = UINT32_MAX;
  if (n < kHeaderSize) return kTooShort;
  if (std::memcmp(data, kMagic, 4) != 0) return kBadMagic;
  *writer = Get32(data + 4);
  *seq = Get32(data + 8);
  if (*writer >= kWriters) return kBadWriter;
  if (Get64(data + 16) != n || SizeOf(seed, *writer, *seq) != n) return kBadLength;
  if (Get64(data + 24) != Fnv1a(data + kHeaderSize, n - kHeaderSize)) return kBadChecksum;
  BodyStream body{StateFor(seed, *writer, *seq, 2)};
  for (size_t i = kHeaderSize; i < n; ++i) {
    if (data[i] != body.Next()) return kNotTheSave;
  }
  return kWhole;
}

// ---- What the children report, one fixed-size record per write(2) on a shared pipe (under
// PIPE_BUF, so records from different children never interleave).

enum class Kind : uint32_t {
  kAckRename,   // writer, seq: close, fsync and rename returned 0
  kAckInPlace,  // writer, seq, order: close (and fsync) returned 0, order = lock counter
  kFailed,      // a call failed: op names it, err its errno
  kBadRead,     // a read of a.bin was not one whole save: detail = Verdict, len = bytes read
  kWentBack,    // a read of a.bin showed an older save of a writer than an earlier read
  kReaderDone,  // order = reads done, len = torn reads (b.bin only)
};

enum Op : uint32_t {
  kOpNone,
  kOpOpenTmp,
  kOpWrite,
  kOpFsync,
  kOpClose,
  kOpRename,
  kOpOpenLock,
  kOpLock,
  kOpCounter,
  kOpOpenTarget,
  kOpRead,
};

const char* OpName(uint32_t op) {
  static const char* const kNames[] = {"-",      "open tmp",       "write", "fsync",      "close",
                                       "rename", "open lock file", "flock", "lock count", "open",
                                       "read"};
  return op < std::size(kNames) ? kNames[op] : "?";
}

struct Report {
  Kind kind;
  uint32_t role;  // process index
  uint32_t writer;
  uint32_t seq;
  uint64_t order;
  uint64_t len;
  uint32_t op;
  int32_t err;
  uint32_t detail;
  uint32_t pad;
};
static_assert(sizeof(Report) <= PIPE_BUF);

// Everything a child needs, prepared by the parent before fork (children never allocate).
struct Shared {
  uint64_t seed = 0;
  timespec deadline{};
  int report_fd = -1;
  std::string a, b, dir, lock_file;
  std::array<std::string, kWriters> fixed_tmp;  // per rename writer
  std::vector<uint8_t> buffer;                  // copy-on-write: one private copy per child
};

bool PastDeadline(const Shared& s) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > s.deadline.tv_sec ||
         (now.tv_sec == s.deadline.tv_sec && now.tv_nsec >= s.deadline.tv_nsec);
}

void Send(const Shared& s, Report r) {
  for (;;) {
    const ssize_t n = write(s.report_fd, &r, sizeof(r));
    if (n >= 0 || errno != EINTR) return;
  }
}

void SendFailure(const Shared& s, uint32_t role, uint32_t writer, uint32_t seq, uint32_t op,
                 int err) {
  Send(s, Report{Kind::kFailed, role, writer, seq, 0, 0, op, err, 0, 0});
}

// Writes content in random pieces (1 byte to 64 KiB, sequentially); 0 or the errno.
int WriteInPieces(int fd, const uint8_t* data, size_t size, uint64_t& rng) {
  size_t done = 0;
  while (done < size) {
    const uint64_t r = SplitMix(rng);
    size_t piece = r % 8 == 0 ? 1 + (r >> 8) % 16 : 1 + (r >> 8) % 65536;
    piece = std::min(piece, size - done);
    const ssize_t n = write(fd, data + done, piece);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

// "NAME.SEQ" into out (no allocation).
void AppendNumber(const char* base, uint32_t number, char* out, size_t cap) {
  size_t i = 0;
  for (; base[i] != '\0' && i + 12 < cap; ++i) out[i] = base[i];
  out[i++] = '.';
  char digits[12];
  int d = 0;
  do {
    digits[d++] = static_cast<char>('0' + number % 10);
    number /= 10;
  } while (number != 0);
  while (d > 0) out[i++] = digits[--d];
  out[i] = '\0';
}

void RenameWriter(Shared& s, uint32_t role, uint32_t writer) {
  uint8_t* buf = s.buffer.data();
  for (uint32_t seq = 1; !PastDeadline(s); ++seq) {
    uint64_t rng = StateFor(s.seed, writer, seq, 3);
    const size_t size = Fill(s.seed, writer, seq, buf);
    // Half the saves through the writer's fixed temporary name, half through a fresh one.
    char fresh[512];
    const char* tmp = s.fixed_tmp[writer].c_str();
    if (SplitMix(rng) % 2 == 0) {
      AppendNumber(tmp, seq, fresh, sizeof(fresh));
      tmp = fresh;
    }
    const int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return SendFailure(s, role, writer, seq, kOpOpenTmp, errno);
    if (const int err = WriteInPieces(fd, buf, size, rng); err != 0) {
      close(fd);
      return SendFailure(s, role, writer, seq, kOpWrite, err);
    }
    if (SplitMix(rng) % 2 == 0 && fsync(fd) != 0) {
      const int err = errno;
      close(fd);
      return SendFailure(s, role, writer, seq, kOpFsync, err);
    }
    if (close(fd) != 0) return SendFailure(s, role, writer, seq, kOpClose, errno);
    if (rename(tmp, s.a.c_str()) != 0) return SendFailure(s, role, writer, seq, kOpRename, errno);
    Send(s, Report{Kind::kAckRename, role, writer, seq, 0, size, 0, 0, 0, 0});
  }
}

void InPlaceWriter(Shared& s, uint32_t role, uint32_t writer) {
  uint8_t* buf = s.buffer.data();
  // Its own open file description: flock excludes between descriptions, not within one.
  const int lock = open(s.lock_file.c_str(), O_RDWR);
  if (lock < 0) return SendFailure(s, role, writer, 0, kOpOpenLock, errno);
  for (uint32_t seq = 1; !PastDeadline(s); ++seq) {
    uint64_t rng = StateFor(s.seed, writer, seq, 3);
    const size_t size = Fill(s.seed, writer, seq, buf);
    if (flock(lock, LOCK_EX) != 0) return SendFailure(s, role, writer, seq, kOpLock, errno);
    uint64_t order = 0;
    if (pread(lock, &order, sizeof(order), 0) != sizeof(order)) {
      return SendFailure(s, role, writer, seq, kOpCounter, errno);
    }
    ++order;
    if (pwrite(lock, &order, sizeof(order), 0) != sizeof(order)) {
      return SendFailure(s, role, writer, seq, kOpCounter, errno);
    }
    const int fd = open(s.b.c_str(), O_WRONLY | O_TRUNC | (seq % 2 == 0 ? O_CREAT : 0), 0644);
    if (fd < 0) return SendFailure(s, role, writer, seq, kOpOpenTarget, errno);
    if (const int err = WriteInPieces(fd, buf, size, rng); err != 0) {
      close(fd);
      return SendFailure(s, role, writer, seq, kOpWrite, err);
    }
    if (SplitMix(rng) % 4 == 0 && fsync(fd) != 0) {
      const int err = errno;
      close(fd);
      return SendFailure(s, role, writer, seq, kOpFsync, err);
    }
    if (close(fd) != 0) return SendFailure(s, role, writer, seq, kOpClose, errno);
    Send(s, Report{Kind::kAckInPlace, role, writer, seq, order, size, 0, 0, 0, 0});
    if (flock(lock, LOCK_UN) != 0) return SendFailure(s, role, writer, seq, kOpLock, errno);
  }
  close(lock);
}

// Reads all of `path` into the buffer (at most kMaxSize + 1 bytes); bytes read or -errno.
ssize_t ReadAll(Shared& s, const char* path, uint64_t& rng, uint32_t* failed_op) {
  const int fd = open(path, O_RDONLY);
  if (fd < 0) {
    *failed_op = kOpOpenTarget;
    return -errno;
  }
  size_t done = 0;
  const size_t cap = kMaxSize + 1;
  while (done < cap) {
    const size_t want = std::min<size_t>(cap - done, 1 + SplitMix(rng) % (128 * 1024));
    const ssize_t n = read(fd, s.buffer.data() + done, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      *failed_op = kOpRead;
      return -err;
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    *failed_op = kOpClose;
    return -errno;
  }
  return static_cast<ssize_t>(done);
}

void Reader(Shared& s, uint32_t role, bool of_a) {
  uint64_t rng = StateFor(s.seed, 1000 + role, 0, 4);
  std::array<uint32_t, kWriters> last_seq{};  // per writer: the newest save seen so far
  uint64_t reads = 0, torn = 0, bad = 0;
  while (!PastDeadline(s)) {
    uint32_t op = kOpNone;
    const ssize_t n = ReadAll(s, of_a ? s.a.c_str() : s.b.c_str(), rng, &op);
    if (n < 0) return SendFailure(s, role, 0, 0, op, static_cast<int>(-n));
    ++reads;
    uint32_t writer = 0, seq = 0;
    const uint32_t verdict = Judge(s.seed, s.buffer.data(), static_cast<size_t>(n), &writer, &seq);
    if (!of_a) {
      torn += verdict != kWhole;
      continue;
    }
    if (verdict != kWhole) {
      // A few are enough to show what happened.
      if (++bad <= 5) {
        Send(s, Report{Kind::kBadRead, role, writer, seq, reads, static_cast<uint64_t>(n), 0, 0,
                       verdict, 0});
      }
      continue;
    }
    if (seq < last_seq[writer]) {
      Send(s, Report{Kind::kWentBack, role, writer, seq, last_seq[writer], 0, 0, 0, 0, 0});
    }
    last_seq[writer] = std::max(last_seq[writer], seq);
  }
  Send(s, Report{Kind::kReaderDone, role, 0, 0, reads, torn, 0, 0, of_a ? 1u : 0u, 0});
}

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

struct Save {
  uint32_t writer;
  uint32_t seq;
  auto operator<=>(const Save&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Save& save) {
  return out << "{writer " << save.writer << ", save " << save.seq << "}";
}

std::string Describe(const Save& save) {
  return "writer " + std::to_string(save.writer) + " save " + std::to_string(save.seq);
}

class MultiProcessTest : public MountTest {
 protected:
  // The versions of `name` under d/@version, oldest first, each identified as one whole save
  // (a version that is not one fails the test).
  std::vector<Save> History(const std::string& name) {
    const stdfs::path dir = P("d/@version/" + name);
    std::map<uint64_t, std::string> by_number;
    for (const std::string& entry : ListDir(dir)) {
      if (entry == ".meta") continue;
      // v<N>_<time><ext>
      const size_t underscore = entry.find('_');
      EXPECT_TRUE(entry.size() > 1 && entry[0] == 'v' && underscore != std::string::npos) << entry;
      if (entry.size() < 2 || underscore == std::string::npos) continue;
      by_number[std::stoull(entry.substr(1, underscore - 1))] = entry;
    }
    std::vector<Save> out;
    uint64_t expected_number = 1;
    for (const auto& [number, entry] : by_number) {
      EXPECT_EQ(number, expected_number++) << name << ": versions are numbered without gaps";
      const std::string bytes = ReadFile(dir / entry);
      Save save{};
      const uint32_t verdict = Judge(seed_, reinterpret_cast<const uint8_t*>(bytes.data()),
                                     bytes.size(), &save.writer, &save.seq);
      EXPECT_EQ(verdict, kWhole) << name << " version " << number << " (" << bytes.size()
                                 << " bytes, header says writer " << save.writer << " save "
                                 << save.seq << ") is not one save's whole content";
      out.push_back(save);
    }
    return out;
  }

  void CheckHistories(const std::vector<Save>& acked_a, const std::vector<Save>& acked_b) {
    // b.bin: the in-place saves took turns, so its history is exactly their order.
    std::vector<Save> expected_b = {Save{0, 0}};
    expected_b.insert(expected_b.end(), acked_b.begin(), acked_b.end());
    const std::vector<Save> history_b = History("b.bin");
    EXPECT_EQ(history_b.size(), expected_b.size()) << "b.bin: versions vs acknowledged saves";
    for (size_t i = 0; i < std::min(history_b.size(), expected_b.size()); ++i) {
      if (history_b[i] != expected_b[i]) {
        ADD_FAILURE() << "b.bin version " << i + 1 << " is " << Describe(history_b[i])
                      << ", expected " << Describe(expected_b[i]) << " (lock order)";
        break;
      }
    }
    // a.bin: every acknowledged save once, each writer's in its own order.
    const std::vector<Save> history_a = History("a.bin");
    ASSERT_FALSE(history_a.empty());
    EXPECT_EQ(history_a.front(), (Save{0, 0}));
    std::set<Save> seen;
    std::array<uint32_t, kWriters> last_seq{};
    for (size_t i = 1; i < history_a.size(); ++i) {
      const Save& save = history_a[i];
      EXPECT_TRUE(seen.insert(save).second) << "a.bin holds " << Describe(save) << " twice";
      EXPECT_GT(save.seq, last_seq[save.writer])
          << "a.bin version " << i + 1 << ": " << Describe(save) << " after save "
          << last_seq[save.writer] << " of the same writer";
      last_seq[save.writer] = std::max(last_seq[save.writer], save.seq);
    }
    const std::set<Save> acked(acked_a.begin(), acked_a.end());
    for (const Save& save : acked) {
      EXPECT_TRUE(seen.contains(save))
          << Describe(save) << ": close and rename returned 0, but a.bin has no such version";
    }
    for (const Save& save : seen) {
      EXPECT_TRUE(acked.contains(save)) << "a.bin has " << Describe(save) << ", never acknowledged";
    }
    // No temporary name leaves a history, or a file.
    EXPECT_EQ(ListDir(P("d/@version")), (std::vector<std::string>{"a.bin", "b.bin"}));
    EXPECT_EQ(ListDir(P("d")), (std::vector<std::string>{"a.bin", "b.bin"}));
  }

  uint64_t seed_ = 0;
};

TEST_F(MultiProcessTest, ConcurrentSavesAndReadsOfOneFile) {
  const char* seed_env = std::getenv("MEDVFS_MULTIPROCESS_SEED");
  seed_ = seed_env != nullptr && *seed_env != '\0' ? std::strtoull(seed_env, nullptr, 10)
                                                   : std::random_device{}();
  SCOPED_TRACE("MEDVFS_MULTIPROCESS_SEED=" + std::to_string(seed_));
  const int seconds = std::max(1, EnvInt("MEDVFS_MULTIPROCESS_SECONDS", 4));
  MountOk();
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);

  Shared s;
  s.seed = seed_;
  s.dir = P("d").string();
  s.a = P("d/a.bin").string();
  s.b = P("d/b.bin").string();
  s.lock_file = (dir_ / "inplace.lock").string();
  for (uint32_t w = 0; w < kWriters; ++w) s.fixed_tmp[w] = P("d/.a.bin.w" + std::to_string(w));
  s.buffer.assign(kMaxSize + 1, 0);
  // The initial content of both targets, writer 0.
  {
    const size_t size = Fill(seed_, 0, 0, s.buffer.data());
    const std::string initial(reinterpret_cast<const char*>(s.buffer.data()), size);
    ASSERT_EQ(WriteFile(s.a, initial), 0);
    ASSERT_EQ(WriteFile(s.b, initial), 0);
    const uint64_t zero = 0;
    ASSERT_EQ(WriteFile(s.lock_file, std::string(reinterpret_cast<const char*>(&zero), 8)), 0);
  }

  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  s.report_fd = fds[1];
  clock_gettime(CLOCK_MONOTONIC, &s.deadline);
  s.deadline.tv_sec += seconds;

  std::vector<pid_t> children;
  uint32_t role = 0;
  const auto start = [&](auto&& body) {
    const pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      body(role);
      _exit(0);
    }
    if (pid > 0) children.push_back(pid);
    ++role;
    return pid > 0;
  };
  bool started = true;
  for (uint32_t w = 1; w <= kRenameWriters; ++w) {
    started &= start([&](uint32_t r) { RenameWriter(s, r, w); });
  }
  for (uint32_t w = 1 + kRenameWriters; w < kWriters; ++w) {
    started &= start([&](uint32_t r) { InPlaceWriter(s, r, w); });
  }
  for (uint32_t i = 0; i < kReadersOfA; ++i)
    started &= start([&](uint32_t r) { Reader(s, r, true); });
  for (uint32_t i = 0; i < kReadersOfB; ++i) {
    started &= start([&](uint32_t r) { Reader(s, r, false); });
  }
  close(fds[1]);

  // Collect reports until every child has closed the pipe (or a generous timeout: a child
  // stuck in the mount is killed, by pid, and the test fails).
  std::vector<Report> reports;
  bool timed_out = false;
  const time_t give_up = time(nullptr) + seconds + 90;
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, 1000);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      if (time(nullptr) > give_up) {
        timed_out = true;
        break;
      }
      continue;
    }
    Report r{};
    const ssize_t n = read(fds[0], &r, sizeof(r));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ASSERT_EQ(n, static_cast<ssize_t>(sizeof(r)));
    reports.push_back(r);
  }
  close(fds[0]);
  for (pid_t pid : children) {
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << pid;
  }
  ASSERT_TRUE(started) << "fork failed";
  ASSERT_FALSE(timed_out) << "the processes did not finish in time";

  std::vector<Save> acked_a;
  std::map<uint64_t, Save> acked_b;  // by lock order
  std::map<uint32_t, uint64_t> saves_by_writer;
  uint64_t reads_a = 0, reads_b = 0, torn_b = 0;
  uint32_t readers_done = 0;
  for (const Report& r : reports) {
    switch (r.kind) {
      case Kind::kAckRename:
        acked_a.push_back({r.writer, r.seq});
        ++saves_by_writer[r.writer];
        break;
      case Kind::kAckInPlace:
        EXPECT_TRUE(acked_b.emplace(r.order, Save{r.writer, r.seq}).second);
        ++saves_by_writer[r.writer];
        break;
      case Kind::kFailed:
        ADD_FAILURE() << "process " << r.role << " (writer " << r.writer << ", save " << r.seq
                      << "): " << OpName(r.op) << " failed: " << ErrnoName(r.err);
        break;
      case Kind::kBadRead:
        ADD_FAILURE() << "reader " << r.role << ", read " << r.order << " of a.bin: " << r.len
                      << " bytes that are not one save's whole content (verdict " << r.detail
                      << ", header: writer " << r.writer << " save " << r.seq << ")";
        break;
      case Kind::kWentBack:
        ADD_FAILURE() << "reader " << r.role << " read save " << r.seq << " of writer " << r.writer
                      << " after its save " << r.order;
        break;
      case Kind::kReaderDone:
        ++readers_done;
        (r.detail != 0 ? reads_a : reads_b) += r.order;
        if (r.detail == 0) torn_b += r.len;
        break;
    }
  }
  // Not vacuous: everybody ran and overlapped.
  EXPECT_EQ(readers_done, kReadersOfA + kReadersOfB);
  for (uint32_t w = 1; w < kWriters; ++w) EXPECT_GT(saves_by_writer[w], 0u) << "writer " << w;
  EXPECT_GT(reads_a, 0u);
  EXPECT_GT(reads_b, 0u);
  RecordProperty("saves_a", static_cast<int>(acked_a.size()));
  RecordProperty("saves_b", static_cast<int>(acked_b.size()));
  RecordProperty("reads_a", static_cast<int>(reads_a));
  RecordProperty("reads_b", static_cast<int>(reads_b));
  RecordProperty("torn_reads_b", static_cast<int>(torn_b));

  std::vector<Save> in_lock_order;
  for (const auto& [order, save] : acked_b) in_lock_order.push_back(save);
  EXPECT_EQ(acked_b.empty() ? 0u : acked_b.rbegin()->first, acked_b.size())
      << "every in-place save that took the lock was acknowledged";
  ASSERT_NO_FATAL_FAILURE(CheckHistories(acked_a, in_lock_order));
  // The same history from the archive alone.
  UmountOk();
  MountOk();
  SCOPED_TRACE("after a remount");
  ASSERT_NO_FATAL_FAILURE(CheckHistories(acked_a, in_lock_order));
}

}  // namespace
}  // namespace medvfs::fs_test
