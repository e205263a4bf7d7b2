// An exerciser in the style of fsx (the file system exerciser of Apple and XFS): random writes
// (holes beyond the end, sizes across the store's 16-256 KiB chunks and 64 KiB pages, writes
// over 1 MiB), truncates up and down, fallocate (extending, and punching, which is refused),
// reads, mmap reads and reads beyond the end, fsync, and close/reopen, on two files of the
// mount, each checked against an in-memory model. Every
// content version a close or fsync committed is read back through DIR/@version/NAME/ and
// compared with the model saved at that commit; the mount is remounted once half way.
//
// MEDVFS_FSX_SEED fixes the seed (printed with any failure), MEDVFS_FSX_OPS the number of
// operations (the long run, ctest -L slow, sets 20,000; see tests/fs/CMakeLists.txt).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "store/crypto/crypto.h"
#include "store/views.h"
#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

constexpr uint64_t kMaxFileSize = 4 << 20;
constexpr uint64_t kPage = 64 << 10;  // the store's overlay page (store/engine/content.h)
constexpr size_t kFullCopies = 4;     // versions per file kept byte for byte, for diagnostics

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::strtoull(value, nullptr, 10) : fallback;
}

store::Sha256Digest Sha(std::string_view data) {
  store::Sha256 sha;
  sha.Update(data);
  return sha.Finish();
}

struct SavedVersion {
  uint64_t size = 0;
  store::Sha256Digest sha{};
  std::string bytes;  // kept for the last kFullCopies versions only
};

struct FileModel {
  std::string name;
  std::string content;        // what the file holds now
  int fd = -1;                // open O_RDWR, or closed
  bool changed = false;       // changed since the last commit
  bool handle_wrote = false;  // written or ftruncated through fd since the last commit
  std::vector<SavedVersion> versions;
  size_t checked = 0;  // versions already read back through @version
};

class Exerciser {
 public:
  Exerciser(stdfs::path dir, uint64_t seed) : dir_(std::move(dir)), rng_(seed) {
    for (const char* name : {"scan.dcm", "notes.bin"}) {
      files_.emplace_back();
      files_.back().name = name;
    }
  }
  ~Exerciser() {
    for (FileModel& f : files_) {
      if (f.fd >= 0) close(f.fd);
    }
  }

  // Creates both files (each commits an empty first version when closed).
  bool Start() {
    for (FileModel& f : files_) {
      f.fd = open(Path(f).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (f.fd < 0) return Fail("create " + f.name + ": " + ErrnoName(errno));
      f.changed = true;
    }
    return true;
  }

  // Runs operations number `from` .. `to` - 1; checks new versions every 250 operations.
  bool Run(uint64_t from, uint64_t to) {
    for (op_ = from; op_ < to; ++op_) {
      FileModel& f = files_[Below(files_.size())];
      if (!(f.fd < 0 ? ClosedStep(f) : OpenStep(f))) return false;
      if ((op_ + 1) % 250 == 0 && !CheckVersions(false)) return false;
    }
    return true;
  }

  // Closes every file (committing what is pending).
  bool CloseAll() {
    for (FileModel& f : files_) {
      if (f.fd >= 0 && !Close(f)) return false;
    }
    return true;
  }

  // The live content of every file, and its versions: the new ones, or all of them.
  bool CheckVersions(bool all) {
    for (FileModel& f : files_) {
      if (!CheckVersionsOf(f, all)) return false;
    }
    return true;
  }
  bool CheckLive() {
    for (FileModel& f : files_) {
      int err = 0;
      const std::string data = ReadWhole(Path(f), &err);
      if (err != 0) return Fail("read " + f.name + ": " + ErrnoName(err));
      if (!Same(data, f.content, f.name + " live content")) return false;
    }
    return true;
  }

  size_t VersionCount() const { return files_[0].versions.size() + files_[1].versions.size(); }
  const std::string& failure() const { return failure_; }
  // The last operations, oldest first.
  std::string LogTail() const {
    std::string out;
    for (const std::string& line : log_) out += "  " + line + "\n";
    return out;
  }

 private:
  stdfs::path Path(const FileModel& f) const { return dir_ / f.name; }
  stdfs::path VersionDir(const FileModel& f) const { return dir_ / "@version" / f.name; }

  uint64_t Below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  uint64_t Between(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }

  void Log(const FileModel& f, const std::string& what) {
    log_.push_back("#" + std::to_string(op_) + " " + f.name + " " + what + " (size before " +
                   std::to_string(f.content.size()) + ")");
    if (log_.size() > 20) log_.pop_front();
  }

  bool Fail(const std::string& message) {
    failure_ = "operation #" + std::to_string(op_) + ": " + message;
    return false;
  }

  bool Same(const std::string& got, const std::string& want, const std::string& what) {
    if (got == want) return true;
    size_t at = 0;
    while (at < got.size() && at < want.size() && got[at] == want[at]) ++at;
    return Fail(what + ": " + std::to_string(got.size()) + " bytes, expected " +
                std::to_string(want.size()) + "; first difference at offset " + std::to_string(at));
  }

  std::string Data(size_t len) {
    std::string data(len, '\0');
    if (rng_() % 4 == 0) {
      // Compressible: a short pattern repeated.
      const std::string pattern = "op" + std::to_string(op_) + "-";
      for (size_t i = 0; i < len; ++i) data[i] = pattern[i % pattern.size()];
    } else {
      for (size_t i = 0; i < len; i += 8) {
        const uint64_t word = rng_();
        std::memcpy(&data[i], &word, std::min<size_t>(8, len - i));
      }
    }
    return data;
  }

  // Writes: small, around the store's chunk sizes, or over 1 MiB; anywhere, on page
  // boundaries, or beyond the end (leaving a hole).
  bool Write(FileModel& f) {
    const uint64_t size = f.content.size();
    const uint64_t kind = Below(100);
    uint64_t len = kind < 45   ? Between(1, 4096)
                   : kind < 75 ? Between(4097, 256 << 10)
                   : kind < 92 ? Between(256 << 10, 1 << 20)
                               : Between((1 << 20) + 1, 3 << 19);
    const uint64_t where = Below(100);
    uint64_t off = where < 45 ? Below(size + 1)
                   : where < 65
                       ? Below(size / kPage + 2) * kPage + Below(64)  // within 32 of a page edge
                   : where < 85 ? size + Below(512 << 10)
                                : Below(kMaxFileSize);
    if (where >= 45 && where < 65) off = off >= 32 ? off - 32 : 0;
    if (off >= kMaxFileSize) off = Below(kMaxFileSize);
    len = std::min(len, kMaxFileSize - off);
    const std::string data = Data(len);
    Log(f, "write off=" + std::to_string(off) + " len=" + std::to_string(len));
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n =
          pwrite(f.fd, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
      if (n <= 0) return Fail("pwrite: " + ErrnoName(errno));
      done += static_cast<size_t>(n);
    }
    if (f.content.size() < off + len) f.content.resize(off + len, '\0');
    f.content.replace(off, len, data);
    f.changed = f.handle_wrote = true;
    return true;
  }

  bool Read(FileModel& f, int fd, uint64_t off, uint64_t len) {
    Log(f, "read off=" + std::to_string(off) + " len=" + std::to_string(len));
    std::string got(len, '\0');
    size_t done = 0;
    while (done < len) {
      const ssize_t n = pread(fd, got.data() + done, len - done, static_cast<off_t>(off + done));
      if (n < 0) return Fail("pread: " + ErrnoName(errno));
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    got.resize(done);
    const std::string want = off >= f.content.size() ? std::string() : f.content.substr(off, len);
    return Same(got, want, "pread at " + std::to_string(off));
  }

  bool MmapRead(FileModel& f) {
    if (f.content.empty()) return true;
    const uint64_t off = Below(f.content.size()) & ~uint64_t{4095};
    const uint64_t len = std::min<uint64_t>(f.content.size() - off, Between(1, 1 << 20));
    Log(f, "mmap read off=" + std::to_string(off) + " len=" + std::to_string(len));
    void* map = mmap(nullptr, len, PROT_READ, MAP_SHARED, f.fd, static_cast<off_t>(off));
    if (map == MAP_FAILED) return Fail("mmap: " + ErrnoName(errno));
    const std::string got(static_cast<const char*>(map), len);
    munmap(map, len);
    return Same(got, f.content.substr(off, len), "mmap at " + std::to_string(off));
  }

  uint64_t NewSize(const FileModel& f) {
    const uint64_t kind = Below(4);
    if (kind == 0) return 0;
    if (kind == 1) return Below(kMaxFileSize + 1);
    const uint64_t size = f.content.size();
    const uint64_t delta = Below(kPage * 3);
    return kind == 2 ? size - std::min(size, delta) : std::min(kMaxFileSize, size + delta);
  }

  bool Truncate(FileModel& f, bool by_path) {
    const uint64_t size = NewSize(f);
    Log(f, std::string(by_path ? "truncate" : "ftruncate") + " to " + std::to_string(size));
    const int rc = by_path ? truncate(Path(f).c_str(), static_cast<off_t>(size))
                           : ftruncate(f.fd, static_cast<off_t>(size));
    if (rc != 0) return Fail("truncate: " + ErrnoName(errno));
    f.content.resize(size, '\0');
    if (f.fd >= 0) {
      f.changed = true;  // joins the pending version of the open handle
      if (!by_path) f.handle_wrote = true;
    } else {
      Commit(f);  // truncate(2) of a closed file is a version of its own
    }
    return true;
  }

  // fallocate: mode 0 extends the file to the end of the range (a hole, joining the handle's
  // pending version like ftruncate) and changes nothing inside it; punching holes is not
  // offered (EOPNOTSUPP).
  bool Fallocate(FileModel& f) {
    const uint64_t off = Below(kMaxFileSize);
    const uint64_t len = Between(1, kMaxFileSize - off);
    const bool punch = Below(4) == 0;
    Log(f, std::string(punch ? "punch hole" : "fallocate") + " off=" + std::to_string(off) +
               " len=" + std::to_string(len));
    if (punch) {
      const int rc = fallocate(f.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               static_cast<off_t>(off), static_cast<off_t>(len));
      if (rc == 0 || errno != EOPNOTSUPP)
        return Fail("punch hole: " + ErrnoName(rc == 0 ? 0 : errno));
      return true;
    }
    if (fallocate(f.fd, 0, static_cast<off_t>(off), static_cast<off_t>(len)) != 0) {
      return Fail("fallocate: " + ErrnoName(errno));
    }
    if (f.content.size() < off + len) {
      f.content.resize(off + len, '\0');
      f.changed = f.handle_wrote = true;
    }
    return true;
  }

  // A version is committed: a new one unless the content equals the current version's.
  void Commit(FileModel& f) {
    f.changed = f.handle_wrote = false;
    const store::Sha256Digest sha = Sha(f.content);
    if (!f.versions.empty() && f.versions.back().sha == sha &&
        f.versions.back().size == f.content.size()) {
      return;
    }
    f.versions.push_back(SavedVersion{f.content.size(), sha, f.content});
    if (f.versions.size() > kFullCopies) {
      std::string().swap(f.versions[f.versions.size() - kFullCopies - 1].bytes);
    }
  }

  bool Close(FileModel& f) {
    // Changes that did not go through this handle (an O_TRUNC at open, a truncate(2) by
    // path) are committed by the release the kernel sends after close(2) returns; a reopen
    // before that would join them. fsync commits them first, so that versions stay where
    // the model expects them.
    if (f.changed && !f.handle_wrote && !Fsync(f)) return false;
    Log(f, "close");
    if (close(f.fd) != 0) return Fail("close: " + ErrnoName(errno));
    f.fd = -1;
    if (f.changed) Commit(f);
    return true;
  }

  bool Fsync(FileModel& f) {
    Log(f, "fsync");
    if (fsync(f.fd) != 0) return Fail("fsync: " + ErrnoName(errno));
    if (f.changed) Commit(f);
    return true;
  }

  bool Reopen(FileModel& f) {
    const bool trunc = Below(8) == 0;
    Log(f, trunc ? "open O_TRUNC" : "open");
    f.fd = open(Path(f).c_str(), O_RDWR | O_CLOEXEC | (trunc ? O_TRUNC : 0));
    if (f.fd < 0) return Fail("open: " + ErrnoName(errno));
    if (trunc && !f.content.empty()) {
      f.content.clear();
      f.changed = true;
    }
    return true;
  }

  bool ClosedStep(FileModel& f) {
    const uint64_t r = Below(10);
    if (r < 2) return Truncate(f, true);
    if (r < 4) {
      const int fd = open(Path(f).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Fail("open O_RDONLY: " + ErrnoName(errno));
      const bool ok = Read(f, fd, Below(f.content.size() + 1), Between(1, 1 << 20));
      close(fd);
      return ok;
    }
    return Reopen(f);
  }

  bool OpenStep(FileModel& f) {
    const uint64_t r = Below(100);
    if (r < 40) return Write(f);
    if (r < 58) return Read(f, f.fd, Below(f.content.size() + 1), Between(1, 1 << 20));
    if (r < 68) return Truncate(f, Below(3) == 0);
    if (r < 74) return Close(f);
    if (r < 78) return Fsync(f);
    if (r < 86) return MmapRead(f);
    if (r < 90) return Fallocate(f);
    return Read(f, f.fd, f.content.size() + Below(1 << 20), Between(1, 4096));  // beyond the end
  }

  // The entries of @version/NAME/ by version number.
  std::map<uint64_t, std::string> VersionEntries(const FileModel& f) {
    std::map<uint64_t, std::string> entries;
    for (const std::string& entry : ListDir(VersionDir(f))) {
      if (auto number = store::ParseVersionFileName(entry)) entries[*number] = entry;
    }
    return entries;
  }

  bool CheckVersionsOf(FileModel& f, bool all) {
    const std::map<uint64_t, std::string> entries = VersionEntries(f);
    if (entries.size() != f.versions.size() ||
        (!entries.empty() && entries.rbegin()->first != f.versions.size())) {
      std::string names;
      for (const auto& [number, entry] : entries) names += " " + entry;
      return Fail(f.name + ": @version lists " + std::to_string(entries.size()) +
                  " versions, expected " + std::to_string(f.versions.size()) + ":" + names);
    }
    for (size_t i = all ? 0 : f.checked; i < f.versions.size(); ++i) {
      const SavedVersion& saved = f.versions[i];
      const std::string& entry = entries.at(i + 1);
      if (!entry.ends_with(std::string(store::NameExtension(f.name)))) {
        return Fail(f.name + ": version entry " + entry + " lacks the extension");
      }
      int err = 0;
      const std::string data = ReadWhole(VersionDir(f) / entry, &err);
      if (err != 0) return Fail(f.name + " " + entry + ": " + ErrnoName(err));
      const std::string what = f.name + " version " + std::to_string(i + 1);
      if (!saved.bytes.empty() && !Same(data, saved.bytes, what)) return false;
      if (data.size() != saved.size || Sha(data) != saved.sha) {
        return Fail(what + ": " + std::to_string(data.size()) + " bytes, expected " +
                    std::to_string(saved.size) + " with another SHA-256");
      }
    }
    f.checked = f.versions.size();
    return true;
  }

  static std::string ReadWhole(const stdfs::path& path, int* err) {
    *err = 0;
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      *err = errno;
      return {};
    }
    std::string data;
    std::string buf(1 << 20, '\0');
    for (;;) {
      const ssize_t n = read(fd, buf.data(), buf.size());
      if (n < 0) *err = errno;
      if (n <= 0) break;
      data.append(buf.data(), static_cast<size_t>(n));
    }
    close(fd);
    return data;
  }

  stdfs::path dir_;
  std::mt19937_64 rng_;
  std::vector<FileModel> files_;
  uint64_t op_ = 0;
  std::deque<std::string> log_;
  std::string failure_;
};

class FsxTest : public MountTest {
 protected:
  // Runs `ops` operations (MEDVFS_FSX_OPS overrides), remounting half way.
  void Exercise(uint64_t ops) {
    ops = EnvNumber("MEDVFS_FSX_OPS", ops);
    const uint64_t seed = EnvNumber("MEDVFS_FSX_SEED", std::random_device{}());
    SCOPED_TRACE("MEDVFS_FSX_SEED=" + std::to_string(seed) +
                 " MEDVFS_FSX_OPS=" + std::to_string(ops));
    ASSERT_NO_FATAL_FAILURE(MountOk());
    ASSERT_EQ(mkdir(P("fsx").c_str(), 0755), 0);
    Exerciser ex(P("fsx"), seed);
    const auto report = [&] { return ex.failure() + "\nlast operations:\n" + ex.LogTail(); };
    ASSERT_TRUE(ex.Start()) << report();
    ASSERT_TRUE(ex.Run(0, ops / 2)) << report();
    ASSERT_TRUE(ex.CloseAll()) << report();
    ASSERT_TRUE(ex.CheckLive() && ex.CheckVersions(true)) << report();
    ASSERT_NO_FATAL_FAILURE(UmountOk());
    ASSERT_NO_FATAL_FAILURE(MountOk());
    ASSERT_TRUE(ex.CheckLive() && ex.CheckVersions(true)) << "after the remount: " << report();
    ASSERT_TRUE(ex.Run(ops / 2, ops)) << report();
    ASSERT_TRUE(ex.CloseAll()) << report();
    ASSERT_TRUE(ex.CheckLive() && ex.CheckVersions(true)) << report();
    RecordProperty("versions", static_cast<int>(ex.VersionCount()));
    ASSERT_NO_FATAL_FAILURE(UmountOk());
  }
};

TEST_F(FsxTest, RandomOperationsMatchTheModelAndEveryVersion) { Exercise(800); }

}  // namespace
}  // namespace medvfs::fs_test
