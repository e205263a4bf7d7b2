// RemotePackCache (remote_pack_cache.h): a bounded directory of pack blocks in front of the
// bucket.
//
// Locking: Rep::mu is a leaf (nothing else is locked under it, and the fetch callbacks are
// never called under it). It guards the index (entries, lru, in_flight, packs, the read-ahead
// queue and the counters) and the names in the directory: a block file is opened, renamed
// into place and unlinked only under mu, so the index and the directory agree. The bytes of a
// block are written (under a temporary name) and read (through a descriptor opened under mu,
// which an eviction cannot take away) without it.
//
// Space: a block is given room (by eviction) before its temporary file is written, and
// cached + reserved bytes stay within max_bytes; only a descriptor that a reader still holds
// on an evicted block keeps its bytes on the disk a little longer.
#include "store/archive/remote_pack_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "store/file_util.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

struct BlockKey {
  uint64_t pack = 0;
  uint32_t index = 0;
  auto operator<=>(const BlockKey&) const = default;
};

constexpr size_t kNameLength = 25;  // 16 hex digits, '-', 8 hex digits
constexpr uint64_t kMaxBlockIndex = UINT32_MAX;
// Blocks are held in memory whole while fetched; this bounds them (and the block arithmetic).
constexpr uint64_t kMaxBlockBytes = uint64_t{1} << 30;
// Read-ahead requests waiting for a thread; more are dropped.
constexpr size_t kMaxQueuedReadAhead = 256;

std::string BlockName(const BlockKey& key) {
  char name[kNameLength + 1];
  std::snprintf(name, sizeof(name), "%016llx-%08x", static_cast<unsigned long long>(key.pack),
                static_cast<unsigned>(key.index));
  return std::string(name, kNameLength);
}

// Lowercase hex digits only, as BlockName writes them.
std::optional<uint64_t> ParseHex(std::string_view digits) {
  uint64_t value = 0;
  for (const char c : digits) {
    uint64_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a') + 10;
    } else {
      return std::nullopt;
    }
    value = value << 4 | digit;
  }
  return value;
}

std::optional<BlockKey> ParseBlockName(std::string_view name) {
  if (name.size() != kNameLength || name[16] != '-') return std::nullopt;
  const std::optional<uint64_t> pack = ParseHex(name.substr(0, 16));
  const std::optional<uint64_t> index = ParseHex(name.substr(17));
  if (!pack || !index) return std::nullopt;
  return BlockKey{*pack, static_cast<uint32_t>(*index)};
}

// Reads exactly `length` bytes at `offset`; false on an error or at the file's end.
bool PreadAll(int fd, char* out, uint64_t length, uint64_t offset) {
  while (length > 0) {
    const ssize_t n = ::pread(fd, out, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

// Creates `dir` (0700) if missing, with its parents.
Status MakeDirectory(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0) {
    int err = errno;
    if (err == ENOENT && dir.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(dir.parent_path(), ec);
      err = ::mkdir(dir.c_str(), 0700) == 0 ? 0 : errno;
    }
    if (err != 0 && err != EEXIST) {
      return StatusFromErrno(err, "creating the remote pack cache directory");
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return StatusFromErrno(errno, "opening the remote pack cache directory");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status(Code::kNotDirectory, "the remote pack cache is not a directory");
  }
  return Status::Ok();
}

}  // namespace

struct RemotePackCache::Rep {
  struct Entry {
    uint64_t bytes = 0;
    ino_t inode = 0;  // of the file, so a reader drops only the file it found damaged
    std::list<BlockKey>::iterator lru;
  };
  struct PackState {
    std::optional<uint64_t> size;
    bool size_pending = false;  // a thread fetches the size; others wait on `changed`
    // Counts Forget: what a fetch started before it brings back is not kept.
    uint64_t generation = 0;
    uint64_t last_end = 0;  // end of the last read; 0 before the first
  };
  // The bytes a read returns: [offset, end) of the pack, into out (already that long).
  struct ReadRange {
    uint64_t pack = 0;
    uint64_t pack_size = 0;
    uint64_t offset = 0;
    uint64_t end = 0;
    std::string* out = nullptr;
  };

  Rep(const RemotePackCacheOptions& opts, const std::filesystem::path& directory,
      PackRangeFetch range, PackSizeFetch size)
      : options(opts),
        dir_prefix(directory.string() + "/"),
        fetch_range(std::move(range)),
        fetch_size(std::move(size)) {}

  Status Adopt();
  void Stop();
  StatusOr<uint64_t> PackSize(uint64_t pack);
  Status Read(uint64_t pack, uint64_t offset, uint64_t length, std::string* bytes);
  Status ReadBlocks(const ReadRange& range);
  bool ReadCached(const ReadRange& range, uint64_t index, int fd);
  Status FetchClaimed(const ReadRange& range, uint64_t generation,
                      const std::vector<uint64_t>& claimed, std::vector<bool>* done);
  Status FetchRun(uint64_t pack, uint64_t pack_size, uint64_t first, uint64_t count,
                  std::string* run);
  void StoreBlock(const BlockKey& key, uint64_t generation, std::string_view block);
  bool WriteTemp(std::string_view block, std::string* temp, ino_t* inode);
  void ReleaseClaims(uint64_t pack, uint64_t first, uint64_t count);
  void NoteRead(const ReadRange& range);
  void ReadAheadLoop();
  void Forget(uint64_t pack);

  // The length of block `index` of a pack of `pack_size` bytes; 0 past its end.
  uint64_t BlockLength(uint64_t pack_size, uint64_t index) const {
    const uint64_t start = index * options.block_bytes;
    return start >= pack_size ? 0 : std::min(options.block_bytes, pack_size - start);
  }
  std::string PathOf(const BlockKey& key) const { return dir_prefix + BlockName(key); }

  // REQUIRES: mu held.
  void Drop(std::map<BlockKey, Entry>::iterator it);
  void EvictTo(uint64_t limit);
  void ValidatePack(uint64_t pack, uint64_t pack_size);
  void StartThreads();

  const RemotePackCacheOptions options;
  const std::string dir_prefix;
  const PackRangeFetch fetch_range;
  const PackSizeFetch fetch_size;

  mutable std::mutex mu;
  std::condition_variable changed;      // in_flight or a size_pending changed
  std::condition_variable work;         // read_ahead_queue or stopping changed
  std::map<BlockKey, Entry> entries;    // GUARDED_BY(mu)
  std::list<BlockKey> lru;              // GUARDED_BY(mu), most recently used first
  std::set<BlockKey> in_flight;         // GUARDED_BY(mu): blocks a thread is fetching
  std::map<uint64_t, PackState> packs;  // GUARDED_BY(mu), never erased
  uint64_t reserved_bytes = 0;          // GUARDED_BY(mu): room given to blocks being written
  RemotePackCacheStats counters;        // GUARDED_BY(mu)
  bool write_failure_logged = false;    // GUARDED_BY(mu)
  std::deque<std::pair<BlockKey, uint64_t>> read_ahead_queue;  // GUARDED_BY(mu), + generation
  std::set<BlockKey> read_ahead_queued;                        // GUARDED_BY(mu)
  bool threads_started = false;                                // GUARDED_BY(mu)
  bool stopping = false;                                       // GUARDED_BY(mu)
  std::vector<std::thread> threads;                            // started under mu, joined by Stop
};

void RemotePackCache::Rep::Drop(std::map<BlockKey, Entry>::iterator it) {
  if (::unlink(PathOf(it->first).c_str()) != 0 && errno != ENOENT) {
    LogMessage(LogLevel::kDebug, "remote pack cache: cannot delete block %u of pack %llu",
               static_cast<unsigned>(it->first.index),
               static_cast<unsigned long long>(it->first.pack));
  }
  counters.cached_bytes -= it->second.bytes;
  lru.erase(it->second.lru);
  entries.erase(it);
}

void RemotePackCache::Rep::EvictTo(uint64_t limit) {
  while (counters.cached_bytes + reserved_bytes > limit && !lru.empty()) {
    const auto it = entries.find(lru.back());
    LogMessage(LogLevel::kDebug, "remote pack cache: evicting block %u of pack %llu",
               static_cast<unsigned>(it->first.index),
               static_cast<unsigned long long>(it->first.pack));
    Drop(it);
    ++counters.evicted_blocks;
  }
}

void RemotePackCache::Rep::ValidatePack(uint64_t pack, uint64_t pack_size) {
  for (auto it = entries.lower_bound(BlockKey{pack, 0});
       it != entries.end() && it->first.pack == pack;) {
    const auto next = std::next(it);
    if (it->second.bytes != BlockLength(pack_size, it->first.index)) {
      LogMessage(LogLevel::kDebug, "remote pack cache: block %u of pack %llu has a wrong length",
                 static_cast<unsigned>(it->first.index), static_cast<unsigned long long>(pack));
      Drop(it);
    }
    it = next;
  }
}

Status RemotePackCache::Rep::Adopt() {
  struct Found {
    struct timespec mtime;
    BlockKey key;
    uint64_t bytes;
    ino_t inode;
  };
  std::vector<Found> found;
  std::error_code ec;
  const std::filesystem::path dir(dir_prefix);
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::string path = dir_prefix + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;  // gone meanwhile
    if (S_ISDIR(st.st_mode)) {
      LogMessage(LogLevel::kWarning, "remote pack cache: leaving a directory in the cache alone");
      continue;
    }
    const std::optional<BlockKey> key = ParseBlockName(name);
    const uint64_t bytes = static_cast<uint64_t>(st.st_size);
    if (!key || !S_ISREG(st.st_mode) || bytes == 0 || bytes > options.block_bytes) {
      // A temporary file of a crashed write, a torn block, or a name that is not ours.
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return StatusFromErrno(errno, "cleaning the remote pack cache directory");
      }
      continue;
    }
    found.push_back(Found{st.st_mtim, *key, bytes, st.st_ino});
  }
  if (ec) return StatusFromErrno(ec.value(), "listing the remote pack cache directory");
  // Oldest first, so that the newest ends at the front of the LRU list.
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return std::tie(a.mtime.tv_sec, a.mtime.tv_nsec, a.key) <
           std::tie(b.mtime.tv_sec, b.mtime.tv_nsec, b.key);
  });
  std::lock_guard lock(mu);
  for (const Found& f : found) {
    lru.push_front(f.key);
    entries.emplace(f.key, Entry{f.bytes, f.inode, lru.begin()});
    counters.cached_bytes += f.bytes;
  }
  EvictTo(options.max_bytes);
  return Status::Ok();
}

void RemotePackCache::Rep::Stop() {
  {
    std::lock_guard lock(mu);
    stopping = true;
  }
  work.notify_all();
  for (std::thread& thread : threads) thread.join();
}

StatusOr<uint64_t> RemotePackCache::Rep::PackSize(uint64_t pack) {
  std::unique_lock lock(mu);
  PackState& state = packs[pack];  // std::map: stays valid while unlocked
  while (!state.size && state.size_pending) changed.wait(lock);
  if (state.size) return *state.size;
  state.size_pending = true;
  const uint64_t generation = state.generation;
  lock.unlock();
  StatusOr<uint64_t> size = fetch_size(pack);
  lock.lock();
  state.size_pending = false;
  if (size.ok() && state.generation == generation) {
    state.size = *size;
    ValidatePack(pack, *size);
  }
  lock.unlock();
  changed.notify_all();
  return size;
}

Status RemotePackCache::Rep::Read(uint64_t pack, uint64_t offset, uint64_t length,
                                  std::string* bytes) {
  bytes->clear();
  MEDVFS_ASSIGN_OR_RETURN(const uint64_t pack_size, PackSize(pack));
  if (length == 0 || offset >= pack_size) return Status::Ok();
  const uint64_t end = length >= pack_size - offset ? pack_size : offset + length;
  if ((end - 1) / options.block_bytes > kMaxBlockIndex) {
    return Status::Invalid("remote pack cache: pack " + std::to_string(pack) +
                           " has more blocks than the cache can name");
  }
  bytes->resize(end - offset);
  const ReadRange range{pack, pack_size, offset, end, bytes};
  Status status = ReadBlocks(range);
  if (!status.ok()) {
    bytes->clear();
    return status;
  }
  NoteRead(range);
  return Status::Ok();
}

Status RemotePackCache::Rep::ReadBlocks(const ReadRange& range) {
  const uint64_t first = range.offset / options.block_bytes;
  const uint64_t last = (range.end - 1) / options.block_bytes;
  std::vector<bool> done(last - first + 1, false);
  for (;;) {
    std::vector<std::pair<uint64_t, int>> cached;  // block, descriptor opened under mu
    std::vector<uint64_t> claimed;                 // blocks this thread fetches
    std::vector<uint64_t> waiting;                 // blocks another thread fetches
    uint64_t generation = 0;
    {
      std::lock_guard lock(mu);
      generation = packs[range.pack].generation;
      for (uint64_t index = first; index <= last; ++index) {
        if (done[index - first]) continue;
        const BlockKey key{range.pack, static_cast<uint32_t>(index)};
        if (in_flight.contains(key)) {
          waiting.push_back(index);
          continue;
        }
        if (const auto it = entries.find(key); it != entries.end()) {
          const int fd = ::open(PathOf(key).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
          if (fd >= 0) {
            lru.splice(lru.begin(), lru, it->second.lru);
            cached.emplace_back(index, fd);
            continue;
          }
          Drop(it);  // its file is gone
        }
        in_flight.insert(key);
        claimed.push_back(index);
      }
    }
    for (const auto& [index, fd] : cached) {
      const UniqueFd owned(fd);
      if (ReadCached(range, index, owned.get())) done[index - first] = true;
    }
    MEDVFS_RETURN_IF_ERROR(FetchClaimed(range, generation, claimed, &done));
    if (std::find(done.begin(), done.end(), false) == done.end()) return Status::Ok();
    if (waiting.empty()) continue;  // a damaged block was dropped: fetch it now
    std::unique_lock lock(mu);
    changed.wait(lock, [&] {
      return std::none_of(waiting.begin(), waiting.end(), [&](uint64_t index) {
        return in_flight.contains(BlockKey{range.pack, static_cast<uint32_t>(index)});
      });
    });
  }
}

bool RemotePackCache::Rep::ReadCached(const ReadRange& range, uint64_t index, int fd) {
  const uint64_t start = index * options.block_bytes;
  const uint64_t from = std::max(range.offset, start);
  const uint64_t to = std::min(range.end, start + BlockLength(range.pack_size, index));
  struct stat st {};
  const bool stat_ok = ::fstat(fd, &st) == 0;
  const bool ok = stat_ok &&
                  static_cast<uint64_t>(st.st_size) == BlockLength(range.pack_size, index) &&
                  PreadAll(fd, range.out->data() + (from - range.offset), to - from, from - start);
  std::lock_guard lock(mu);
  if (ok) {
    ++counters.hits;
    return true;
  }
  LogMessage(LogLevel::kDebug, "remote pack cache: block %u of pack %llu is damaged; refetching",
             static_cast<unsigned>(index), static_cast<unsigned long long>(range.pack));
  const auto it = entries.find(BlockKey{range.pack, static_cast<uint32_t>(index)});
  if (it != entries.end() && (!stat_ok || it->second.inode == st.st_ino)) Drop(it);
  return false;
}

Status RemotePackCache::Rep::FetchClaimed(const ReadRange& range, uint64_t generation,
                                          const std::vector<uint64_t>& claimed,
                                          std::vector<bool>* done) {
  const uint64_t first_of_read = range.offset / options.block_bytes;
  Status failure;
  for (size_t i = 0; i < claimed.size();) {
    size_t j = i + 1;
    while (j < claimed.size() && claimed[j] == claimed[j - 1] + 1) ++j;
    const uint64_t first = claimed[i];
    const uint64_t count = j - i;
    i = j;
    std::string run;
    if (failure.ok()) failure = FetchRun(range.pack, range.pack_size, first, count, &run);
    if (!failure.ok()) {
      ReleaseClaims(range.pack, first, count);
      continue;
    }
    {
      std::lock_guard lock(mu);
      counters.misses += count;
    }
    for (uint64_t index = first; index < first + count; ++index) {
      const uint64_t start = index * options.block_bytes;
      const std::string_view block = std::string_view(run).substr(
          (index - first) * options.block_bytes, BlockLength(range.pack_size, index));
      const uint64_t from = std::max(range.offset, start);
      const uint64_t to = std::min(range.end, start + block.size());
      std::memcpy(range.out->data() + (from - range.offset), block.data() + (from - start),
                  to - from);
      (*done)[index - first_of_read] = true;
      StoreBlock(BlockKey{range.pack, static_cast<uint32_t>(index)}, generation, block);
    }
  }
  return failure;
}

Status RemotePackCache::Rep::FetchRun(uint64_t pack, uint64_t pack_size, uint64_t first,
                                      uint64_t count, std::string* run) {
  const uint64_t offset = first * options.block_bytes;
  const uint64_t want = std::min((first + count) * options.block_bytes, pack_size) - offset;
  run->clear();
  Status status = fetch_range(pack, offset, want, run);
  if (!status.ok()) {
    LogMessage(LogLevel::kDebug, "remote pack cache: fetching pack %llu failed: %s",
               static_cast<unsigned long long>(pack), status.ToString().c_str());
    return status;
  }
  {
    std::lock_guard lock(mu);
    counters.fetched_bytes += run->size();
  }
  if (run->size() != want) {
    LogMessage(LogLevel::kWarning,
               "remote pack cache: pack %llu: %llu bytes from the bucket, not %llu",
               static_cast<unsigned long long>(pack), static_cast<unsigned long long>(run->size()),
               static_cast<unsigned long long>(want));
    return Status::IoError("pack " + std::to_string(pack) +
                           (run->size() < want ? ": short read from the bucket"
                                               : ": the bucket returned more than asked"));
  }
  return Status::Ok();
}

void RemotePackCache::Rep::StoreBlock(const BlockKey& key, uint64_t generation,
                                      std::string_view block) {
  bool reserved = false;
  {
    std::lock_guard lock(mu);
    if (packs[key.pack].generation == generation && block.size() <= options.max_bytes) {
      EvictTo(options.max_bytes - block.size());
      reserved_bytes += block.size();
      reserved = true;
    }
  }
  std::string temp;
  ino_t inode = 0;
  const bool written = reserved && WriteTemp(block, &temp, &inode);
  {
    std::lock_guard lock(mu);
    if (reserved) reserved_bytes -= block.size();
    if (written && packs[key.pack].generation == generation) {
      if (const auto it = entries.find(key); it != entries.end()) Drop(it);
      const std::string path = PathOf(key);
      if (::rename(temp.c_str(), path.c_str()) == 0) {
        temp.clear();
        lru.push_front(key);
        entries.emplace(key, Entry{block.size(), inode, lru.begin()});
        counters.cached_bytes += block.size();
        EvictTo(options.max_bytes);
      }
    }
    in_flight.erase(key);
  }
  changed.notify_all();
  if (!temp.empty()) ::unlink(temp.c_str());
}

bool RemotePackCache::Rep::WriteTemp(std::string_view block, std::string* temp, ino_t* inode) {
  std::string name = dir_prefix + ".tmp-XXXXXX";
  UniqueFd fd(::mkostemp(name.data(), O_CLOEXEC));
  int err = errno;
  if (fd.get() >= 0) {
    struct stat st {};
    err = WriteAllOrErrno(fd.get(), block);
    if (err == 0 && ::fstat(fd.get(), &st) != 0) err = errno;
    *inode = st.st_ino;
    const Status closed = fd.Close("writing a remote pack cache block");
    if (err == 0 && !closed.ok()) err = EIO;
    if (err == 0) {
      *temp = std::move(name);
      return true;
    }
    ::unlink(name.c_str());
  }
  std::lock_guard lock(mu);
  LogMessage(write_failure_logged ? LogLevel::kDebug : LogLevel::kWarning,
             "remote pack cache: cannot write a block: %s", std::strerror(err));
  write_failure_logged = true;
  return false;
}

void RemotePackCache::Rep::ReleaseClaims(uint64_t pack, uint64_t first, uint64_t count) {
  {
    std::lock_guard lock(mu);
    for (uint64_t index = first; index < first + count; ++index) {
      in_flight.erase(BlockKey{pack, static_cast<uint32_t>(index)});
    }
  }
  changed.notify_all();
}

void RemotePackCache::Rep::NoteRead(const ReadRange& range) {
  const uint64_t bytes = options.block_bytes;
  const uint64_t first = range.offset / bytes;
  const uint64_t last = (range.end - 1) / bytes;
  const uint64_t blocks = (range.pack_size - 1) / bytes + 1;
  std::lock_guard lock(mu);
  PackState& state = packs[range.pack];
  const bool sequential = state.last_end != 0 && (first == (state.last_end - 1) / bytes ||
                                                  first == state.last_end / bytes);
  state.last_end = range.end;
  if (!sequential || options.fetch_threads == 0 || stopping) return;
  bool queued = false;
  const uint64_t stop = std::min({last + options.read_ahead_blocks, blocks - 1, kMaxBlockIndex});
  for (uint64_t index = last + 1; index <= stop; ++index) {
    if (read_ahead_queue.size() >= kMaxQueuedReadAhead) break;
    const BlockKey key{range.pack, static_cast<uint32_t>(index)};
    if (entries.contains(key) || in_flight.contains(key) || read_ahead_queued.contains(key)) {
      continue;
    }
    read_ahead_queue.emplace_back(key, state.generation);
    read_ahead_queued.insert(key);
    queued = true;
  }
  if (!queued) return;
  StartThreads();
  work.notify_all();
}

void RemotePackCache::Rep::StartThreads() {
  if (threads_started) return;
  threads_started = true;
  try {
    for (uint32_t i = 0; i < options.fetch_threads; ++i) {
      threads.emplace_back([this] { ReadAheadLoop(); });
    }
  } catch (const std::system_error& e) {
    LogMessage(LogLevel::kWarning, "remote pack cache: %zu read-ahead threads of %u: %s",
               threads.size(), static_cast<unsigned>(options.fetch_threads), e.what());
  }
}

void RemotePackCache::Rep::ReadAheadLoop() {
  std::unique_lock lock(mu);
  for (;;) {
    work.wait(lock, [this] { return stopping || !read_ahead_queue.empty(); });
    if (stopping) return;
    const auto [key, generation] = read_ahead_queue.front();
    read_ahead_queue.pop_front();
    read_ahead_queued.erase(key);
    const PackState& state = packs[key.pack];
    if (state.generation != generation || !state.size || entries.contains(key) ||
        in_flight.contains(key)) {
      continue;
    }
    const uint64_t pack_size = *state.size;
    in_flight.insert(key);
    lock.unlock();
    std::string block;
    if (FetchRun(key.pack, pack_size, key.index, 1, &block).ok()) {
      {
        std::lock_guard count_lock(mu);
        ++counters.read_ahead;
      }
      StoreBlock(key, generation, block);
    } else {
      ReleaseClaims(key.pack, key.index, 1);  // dropped: a reader fetches it itself
    }
    lock.lock();
  }
}

void RemotePackCache::Rep::Forget(uint64_t pack) {
  std::lock_guard lock(mu);
  PackState& state = packs[pack];
  state.size.reset();
  state.last_end = 0;
  ++state.generation;
  for (auto it = entries.lower_bound(BlockKey{pack, 0});
       it != entries.end() && it->first.pack == pack;) {
    const auto next = std::next(it);
    Drop(it);
    it = next;
  }
}

StatusOr<std::unique_ptr<RemotePackCache>> RemotePackCache::Open(
    const RemotePackCacheOptions& options, PackRangeFetch fetch_range, PackSizeFetch fetch_size) {
  if (options.dir.empty()) return Status::Invalid("remote pack cache: no directory");
  if (options.block_bytes == 0 || options.block_bytes > kMaxBlockBytes) {
    return Status::Invalid("remote pack cache: block_bytes must be 1 byte to 1 GiB");
  }
  if (!fetch_range || !fetch_size) return Status::Invalid("remote pack cache: no fetch");
  std::filesystem::path dir = options.dir;
  if (!dir.has_filename()) dir = dir.parent_path();  // "cache/" is "cache"
  MEDVFS_RETURN_IF_ERROR(MakeDirectory(dir));
  auto rep = std::make_unique<Rep>(options, dir, std::move(fetch_range), std::move(fetch_size));
  MEDVFS_RETURN_IF_ERROR(rep->Adopt());
  return std::unique_ptr<RemotePackCache>(new RemotePackCache(std::move(rep)));
}

RemotePackCache::RemotePackCache(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

RemotePackCache::~RemotePackCache() { rep_->Stop(); }

Status RemotePackCache::Read(uint64_t pack, uint64_t offset, uint64_t length, std::string* bytes) {
  return rep_->Read(pack, offset, length, bytes);
}

StatusOr<uint64_t> RemotePackCache::Size(uint64_t pack) { return rep_->PackSize(pack); }

void RemotePackCache::Forget(uint64_t pack) { rep_->Forget(pack); }

RemotePackCacheStats RemotePackCache::stats() const {
  std::lock_guard lock(rep_->mu);
  return rep_->counters;
}

}  // namespace medvfs::store
