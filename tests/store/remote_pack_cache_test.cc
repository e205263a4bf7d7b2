// RemotePackCache over a fake bucket of random in-memory packs: reads return exactly the
// packs' bytes while blocks are evicted all the time, a cached block costs no fetch, a run of
// missing blocks costs one, concurrent readers of a block share its fetch, a sequential reader
// gets its next blocks fetched ahead, a restarted cache adopts its blocks and cleans its
// directory, damaged blocks are refetched, and the bucket's errors pass through uncached.
#include "store/archive/remote_pack_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

// A bucket of packs in memory that counts what is fetched from it and can be made to fail.
class FakeBucket {
 public:
  struct Call {
    uint64_t pack = 0;
    uint64_t offset = 0;
    uint64_t length = 0;
    bool operator==(const Call&) const = default;
  };

  // Adds (or replaces) a pack of `size` random bytes.
  void AddPack(uint64_t pack, size_t size) {
    std::mt19937_64 rng(pack * 7919 + size);
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    std::lock_guard lock(mu_);
    packs_[pack] = std::move(bytes);
  }

  // What a read of [offset, offset + length) of the pack must return.
  std::string Expected(uint64_t pack, uint64_t offset, uint64_t length) const {
    std::lock_guard lock(mu_);
    const std::string& bytes = packs_.at(pack);
    return offset >= bytes.size() ? std::string() : bytes.substr(offset, length);
  }

  // Range fetches at or after `from_offset` fail with `status` until cleared.
  void FailRangeWith(Status status, uint64_t from_offset = 0) {
    std::lock_guard lock(mu_);
    fail_ = std::move(status);
    fail_from_ = from_offset;
  }
  void ClearFailure() {
    std::lock_guard lock(mu_);
    fail_.reset();
  }
  // Range fetches return `bytes` fewer bytes than they should.
  void ShortenReplies(uint64_t bytes) {
    std::lock_guard lock(mu_);
    shorten_ = bytes;
  }
  // Runs in every range fetch, before it answers.
  void SetBeforeFetch(std::function<void()> hook) {
    std::lock_guard lock(mu_);
    before_fetch_ = std::move(hook);
  }
  void ResetCounters() {
    std::lock_guard lock(mu_);
    calls_.clear();
    size_calls_ = 0;
  }

  uint64_t range_calls() const {
    std::lock_guard lock(mu_);
    return calls_.size();
  }
  uint64_t size_calls() const {
    std::lock_guard lock(mu_);
    return size_calls_;
  }
  std::vector<Call> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  // Waits (at most 30 s) until `n` range fetches have begun.
  bool WaitForRangeCalls(uint64_t n) {
    std::unique_lock lock(mu_);
    return called_.wait_for(lock, std::chrono::seconds(30), [&] { return calls_.size() >= n; });
  }

  PackRangeFetch RangeFetch() {
    return [this](uint64_t pack, uint64_t offset, uint64_t length, std::string* bytes) {
      return Fetch(pack, offset, length, bytes);
    };
  }
  PackSizeFetch SizeFetch() {
    return [this](uint64_t pack) -> StatusOr<uint64_t> {
      std::lock_guard lock(mu_);
      ++size_calls_;
      const auto it = packs_.find(pack);
      if (it == packs_.end()) return Status::NotFound("no such pack");
      return uint64_t{it->second.size()};
    };
  }

 private:
  Status Fetch(uint64_t pack, uint64_t offset, uint64_t length, std::string* bytes) {
    std::function<void()> hook;
    std::optional<Status> failure;  // decided when the call begins
    {
      std::lock_guard lock(mu_);
      calls_.push_back(Call{pack, offset, length});
      hook = before_fetch_;
      if (fail_ && offset >= fail_from_) failure = fail_;
    }
    called_.notify_all();
    if (hook) hook();
    if (failure) return *failure;
    std::lock_guard lock(mu_);
    const auto it = packs_.find(pack);
    if (it == packs_.end()) return Status::NotFound("no such pack");
    *bytes = offset >= it->second.size() ? std::string() : it->second.substr(offset, length);
    bytes->resize(bytes->size() > shorten_ ? bytes->size() - shorten_ : 0);
    return Status::Ok();
  }

  mutable std::mutex mu_;
  std::condition_variable called_;
  std::map<uint64_t, std::string> packs_;
  std::optional<Status> fail_;
  uint64_t fail_from_ = 0;
  uint64_t shorten_ = 0;
  std::function<void()> before_fetch_;
  std::vector<Call> calls_;
  uint64_t size_calls_ = 0;
};

std::string BlockName(uint64_t pack, uint32_t index) {
  char name[32];
  std::snprintf(name, sizeof(name), "%016llx-%08x", static_cast<unsigned long long>(pack),
                static_cast<unsigned>(index));
  return name;
}

class RemotePackCacheTest : public test_util::TempDirTest {
 protected:
  std::filesystem::path cache_dir() const { return dir() / "cache" / "blocks"; }

  RemotePackCacheOptions Options(uint64_t block_bytes, uint64_t max_bytes,
                                 uint32_t read_ahead_blocks = 0, uint32_t fetch_threads = 0) {
    RemotePackCacheOptions options;
    options.dir = cache_dir();
    options.block_bytes = block_bytes;
    options.max_bytes = max_bytes;
    options.read_ahead_blocks = read_ahead_blocks;
    options.fetch_threads = fetch_threads;
    return options;
  }

  std::unique_ptr<RemotePackCache> OpenCache(const RemotePackCacheOptions& options) {
    auto cache = RemotePackCache::Open(options, bucket_.RangeFetch(), bucket_.SizeFetch());
    EXPECT_TRUE(cache.ok()) << cache.status().ToString();
    return cache.ok() ? std::move(cache).value() : nullptr;
  }

  // Reads through the cache and checks the bytes against the bucket's pack.
  void ExpectRead(RemotePackCache& cache, uint64_t pack, uint64_t offset, uint64_t length) {
    std::string bytes;
    ASSERT_OK(cache.Read(pack, offset, length, &bytes));
    EXPECT_EQ(bytes, bucket_.Expected(pack, offset, length))
        << "pack " << pack << " offset " << offset << " length " << length;
  }

  // The sizes of the regular files in the cache directory, by name.
  std::map<std::string, uint64_t> Files() const {
    std::map<std::string, uint64_t> files;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(cache_dir(), ec)) {
      if (entry.is_regular_file()) {
        files[entry.path().filename().string()] = entry.file_size();
      }
    }
    return files;
  }
  uint64_t FileBytes() const {
    uint64_t total = 0;
    for (const auto& [name, size] : Files()) total += size;
    return total;
  }

  FakeBucket bucket_;  // outlives every cache of a test
};

TEST_F(RemotePackCacheTest, RandomReadsMatchThePacksWhileEvicting) {
  const std::vector<size_t> sizes = {0, 1, 999, 1000, 1001, 7777, 25000};
  for (size_t i = 0; i < sizes.size(); ++i) bucket_.AddPack(i + 1, sizes[i]);
  const uint64_t kMissingPack = 100;
  const RemotePackCacheOptions options = Options(1000, 5500);
  auto cache = OpenCache(options);
  ASSERT_NE(cache, nullptr);
  std::mt19937_64 rng(20240611);
  for (int step = 0; step < 4000; ++step) {
    const uint64_t pick = rng() % (sizes.size() + 1);
    const uint64_t pack = pick == sizes.size() ? kMissingPack : pick + 1;
    const uint64_t size = pick == sizes.size() ? 0 : sizes[pick];
    uint64_t offset = rng() % (size + 1500);
    if (rng() % 4 == 0) offset -= offset % 1000;  // block-aligned
    uint64_t length = 0;
    switch (rng() % 6) {
      case 0:
        length = 0;
        break;
      case 1:
        length = UINT64_MAX;
        break;
      case 2:
        length = 1 + rng() % 100;
        break;
      default:
        length = 1 + rng() % 4000;
        break;
    }
    std::string bytes;
    const Status status = cache->Read(pack, offset, length, &bytes);
    if (pack == kMissingPack) {
      ASSERT_EQ(status.code(), Code::kNotFound) << status.ToString();
    } else {
      ASSERT_OK(status);
      ASSERT_EQ(bytes, bucket_.Expected(pack, offset, length))
          << "step " << step << ": pack " << pack << " offset " << offset << " length " << length;
    }
    const uint64_t on_disk = FileBytes();
    ASSERT_LE(on_disk, options.max_bytes) << "step " << step;
    ASSERT_EQ(cache->stats().cached_bytes, on_disk) << "step " << step;
    if (rng() % 200 == 0) cache->Forget(pack);
    if (rng() % 500 == 0) {
      cache.reset();
      cache = OpenCache(options);
      ASSERT_NE(cache, nullptr);
    }
  }
  const RemotePackCacheStats stats = cache->stats();
  EXPECT_GT(stats.hits, 0u);
  EXPECT_GT(stats.misses, 0u);
  EXPECT_GT(stats.evicted_blocks, 0u);
}

TEST_F(RemotePackCacheTest, RandomReadsWithReadAheadMatchThePacks) {
  const std::vector<size_t> sizes = {1, 2500, 9999, 30000};
  for (size_t i = 0; i < sizes.size(); ++i) bucket_.AddPack(i + 1, sizes[i]);
  const RemotePackCacheOptions options = Options(1000, 5500, 2, 2);
  auto cache = OpenCache(options);
  ASSERT_NE(cache, nullptr);
  std::mt19937_64 rng(77);
  uint64_t pack = 1, offset = 0, length = 0;
  for (int step = 0; step < 3000; ++step) {
    if (rng() % 3 == 0) {  // a random read; otherwise the next one of a sequential reader
      const uint64_t pick = rng() % sizes.size();
      pack = pick + 1;
      offset = rng() % (sizes[pick] + 500);
    } else {
      offset += length;
    }
    length = 1 + rng() % 1500;
    ExpectRead(*cache, pack, offset, length);
    ASSERT_LE(cache->stats().cached_bytes, options.max_bytes) << "step " << step;
    if (rng() % 300 == 0) cache->Forget(pack);
  }
  EXPECT_GT(cache->stats().read_ahead, 0u);
  cache.reset();  // waits for the background fetches
  EXPECT_LE(FileBytes(), options.max_bytes);
  for (const auto& [name, size] : Files()) EXPECT_NE(name.rfind(".tmp", 0), 0u) << name;
}

TEST_F(RemotePackCacheTest, SecondReadOfARangeFetchesNothing) {
  bucket_.AddPack(7, 1000);
  auto cache = OpenCache(Options(100, 1 << 20));
  ASSERT_NE(cache, nullptr);
  ExpectRead(*cache, 7, 150, 270);
  EXPECT_EQ(bucket_.calls(), (std::vector<FakeBucket::Call>{{7, 100, 400}}));
  ExpectRead(*cache, 7, 150, 270);
  ExpectRead(*cache, 7, 420, 80);
  EXPECT_EQ(bucket_.range_calls(), 1u);
  EXPECT_EQ(bucket_.size_calls(), 1u);
  const RemotePackCacheStats stats = cache->stats();
  EXPECT_EQ(stats.misses, 4u);
  EXPECT_EQ(stats.hits, 5u);
  EXPECT_EQ(stats.fetched_bytes, 400u);
  EXPECT_EQ(stats.cached_bytes, 400u);

  const std::map<std::string, uint64_t> expected_files = {{BlockName(7, 1), 100},
                                                          {BlockName(7, 2), 100},
                                                          {BlockName(7, 3), 100},
                                                          {BlockName(7, 4), 100}};
  EXPECT_EQ(Files(), expected_files);
  struct stat st {};
  ASSERT_EQ(::stat((cache_dir() / BlockName(7, 1)).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(cache_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(RemotePackCacheTest, ARunOfMissingBlocksIsOneFetch) {
  bucket_.AddPack(3, 1000);
  auto cache = OpenCache(Options(100, 1 << 20));
  ASSERT_NE(cache, nullptr);
  ExpectRead(*cache, 3, 200, 100);
  ExpectRead(*cache, 3, 650, 10);
  bucket_.ResetCounters();
  ExpectRead(*cache, 3, 0, 1000);
  EXPECT_EQ(bucket_.calls(),
            (std::vector<FakeBucket::Call>{{3, 0, 200}, {3, 300, 300}, {3, 700, 300}}));
  EXPECT_EQ(cache->stats().cached_bytes, 1000u);
}

TEST_F(RemotePackCacheTest, ConcurrentReadersOfABlockShareOneFetch) {
  bucket_.AddPack(1, 5000);
  auto cache = OpenCache(Options(1000, 1 << 20));
  ASSERT_NE(cache, nullptr);
  constexpr int kReaders = 8;
  std::latch started(kReaders);
  // The fetch answers only once every reader has begun its read.
  bucket_.SetBeforeFetch([&started] { started.wait(); });
  std::vector<std::string> results(kReaders);
  std::vector<Status> statuses(kReaders);
  std::vector<std::thread> readers;
  for (int i = 0; i < kReaders; ++i) {
    readers.emplace_back([&, i] {
      started.count_down();
      const auto slot = static_cast<size_t>(i);
      statuses[slot] = cache->Read(1, 1200 + 10 * slot, 300, &results[slot]);
    });
  }
  for (std::thread& reader : readers) reader.join();
  for (size_t i = 0; i < kReaders; ++i) {
    ASSERT_OK(statuses[i]);
    EXPECT_EQ(results[i], bucket_.Expected(1, 1200 + 10 * i, 300));
  }
  EXPECT_EQ(bucket_.calls(), (std::vector<FakeBucket::Call>{{1, 1000, 1000}}));
  EXPECT_EQ(bucket_.size_calls(), 1u);
  EXPECT_EQ(cache->stats().misses, 1u);
  EXPECT_EQ(cache->stats().hits, uint64_t{kReaders - 1});
}

TEST_F(RemotePackCacheTest, SequentialReaderGetsItsNextBlocksAhead) {
  bucket_.AddPack(2, 500);
  auto cache = OpenCache(Options(100, 1 << 20, 3, 2));
  ASSERT_NE(cache, nullptr);
  ExpectRead(*cache, 2, 0, 100);    // the first read: nothing ahead
  ExpectRead(*cache, 2, 100, 100);  // sequential: blocks 2, 3 and 4 ahead
  ASSERT_TRUE(bucket_.WaitForRangeCalls(5));
  ExpectRead(*cache, 2, 200, 300);
  EXPECT_EQ(bucket_.range_calls(), 5u);
  const std::vector<FakeBucket::Call> calls = bucket_.calls();
  for (uint64_t block = 2; block <= 4; ++block) {
    EXPECT_NE(std::find(calls.begin(), calls.end(), FakeBucket::Call{2, block * 100, 100}),
              calls.end())
        << "block " << block;
  }
  EXPECT_EQ(cache->stats().read_ahead, 3u);
  EXPECT_EQ(cache->stats().hits, 3u);
  EXPECT_EQ(cache->stats().misses, 2u);
}

TEST_F(RemotePackCacheTest, RandomReadsGetNoReadAhead) {
  bucket_.AddPack(2, 1000);
  auto cache = OpenCache(Options(100, 1 << 20, 3, 2));
  ASSERT_NE(cache, nullptr);
  ExpectRead(*cache, 2, 0, 100);
  ExpectRead(*cache, 2, 500, 100);
  ExpectRead(*cache, 2, 250, 10);
  cache.reset();  // waits for any background fetch
  EXPECT_EQ(bucket_.range_calls(), 3u);
}

TEST_F(RemotePackCacheTest, FailedReadAheadIsDroppedAndTheReaderFetches) {
  bucket_.AddPack(2, 500);
  auto cache = OpenCache(Options(100, 1 << 20, 3, 2));
  ASSERT_NE(cache, nullptr);
  bucket_.FailRangeWith(Status::IoError("unreachable"), 200);
  ExpectRead(*cache, 2, 0, 100);
  ExpectRead(*cache, 2, 100, 100);
  ASSERT_TRUE(bucket_.WaitForRangeCalls(5));  // the three fetches ahead, failing
  bucket_.ClearFailure();
  ExpectRead(*cache, 2, 200, 300);
  EXPECT_EQ(cache->stats().read_ahead, 0u);
  cache.reset();
  // The reader fetched blocks 2 to 4 itself, each once (in one run, or in pieces if it found
  // some of them still in flight).
  std::vector<FakeBucket::Call> calls = bucket_.calls();
  ASSERT_GT(calls.size(), 5u);
  calls.erase(calls.begin(), calls.begin() + 5);
  std::sort(calls.begin(), calls.end(), [](const FakeBucket::Call& a, const FakeBucket::Call& b) {
    return a.offset < b.offset;
  });
  uint64_t next = 200;
  for (const FakeBucket::Call& call : calls) {
    EXPECT_EQ(call.offset, next);
    next = call.offset + call.length;
  }
  EXPECT_EQ(next, 500u);
}

TEST_F(RemotePackCacheTest, ReopenAdoptsCachedBlocksAndCleansTheDirectory) {
  bucket_.AddPack(3, 1000);
  {
    auto cache = OpenCache(Options(100, 1 << 20));
    ASSERT_NE(cache, nullptr);
    ExpectRead(*cache, 3, 0, 1000);
  }
  test_util::WriteFile(cache_dir() / ".tmp-abcdef", std::string(100, 'x'));
  test_util::WriteFile(cache_dir() / "foreign.txt", "hello");
  test_util::WriteFile(cache_dir() / "0000000000000003-0000000", std::string(100, 'x'));
  test_util::WriteFile(cache_dir() / "0000000000000003-0000000A", std::string(100, 'x'));
  test_util::WriteFile(cache_dir() / BlockName(4, 0), "");                     // empty: torn
  test_util::WriteFile(cache_dir() / BlockName(4, 1), std::string(101, 'x'));  // too long
  // A valid name past the pack's end: adopted, then dropped once the pack's size is known.
  test_util::WriteFile(cache_dir() / BlockName(3, 10), std::string(100, 'x'));
  ASSERT_TRUE(std::filesystem::create_directory(cache_dir() / "subdirectory"));
  bucket_.ResetCounters();

  auto cache = OpenCache(Options(100, 1 << 20));
  ASSERT_NE(cache, nullptr);
  std::map<std::string, uint64_t> expected_files;
  for (uint32_t i = 0; i <= 10; ++i) expected_files[BlockName(3, i)] = 100;
  EXPECT_EQ(Files(), expected_files);
  EXPECT_EQ(cache->stats().cached_bytes, 1100u);
  EXPECT_TRUE(std::filesystem::is_directory(cache_dir() / "subdirectory"));

  ExpectRead(*cache, 3, 0, 1000);
  EXPECT_EQ(bucket_.range_calls(), 0u);
  EXPECT_EQ(bucket_.size_calls(), 1u);
  EXPECT_EQ(cache->stats().hits, 10u);
  expected_files.erase(BlockName(3, 10));
  EXPECT_EQ(Files(), expected_files);
  EXPECT_EQ(cache->stats().cached_bytes, 1000u);
}

TEST_F(RemotePackCacheTest, ReopenWithASmallerLimitKeepsTheNewestBlocks) {
  bucket_.AddPack(5, 1000);
  {
    auto cache = OpenCache(Options(100, 1 << 20));
    ASSERT_NE(cache, nullptr);
    ExpectRead(*cache, 5, 0, 1000);
  }
  for (uint32_t i = 0; i < 10; ++i) {  // block i written at second 1000 + i
    const struct timespec times[2] = {{1000 + i, 0}, {1000 + i, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (cache_dir() / BlockName(5, i)).c_str(), times, 0), 0);
  }
  auto cache = OpenCache(Options(100, 450));
  ASSERT_NE(cache, nullptr);
  std::map<std::string, uint64_t> expected_files;
  for (uint32_t i = 6; i < 10; ++i) expected_files[BlockName(5, i)] = 100;
  EXPECT_EQ(Files(), expected_files);
  EXPECT_EQ(cache->stats().evicted_blocks, 6u);
  bucket_.ResetCounters();
  ExpectRead(*cache, 5, 600, 400);
  EXPECT_EQ(bucket_.range_calls(), 0u);
}

TEST_F(RemotePackCacheTest, LeastRecentlyUsedBlockIsEvicted) {
  bucket_.AddPack(1, 1000);
  auto cache = OpenCache(Options(100, 300));
  ASSERT_NE(cache, nullptr);
  ExpectRead(*cache, 1, 0, 100);
  ExpectRead(*cache, 1, 100, 100);
  ExpectRead(*cache, 1, 200, 100);
  ExpectRead(*cache, 1, 50, 10);   // block 0 used again: block 1 is now the oldest
  ExpectRead(*cache, 1, 300, 10);  // block 3 takes block 1's place
  const std::map<std::string, uint64_t> expected_files = {
      {BlockName(1, 0), 100}, {BlockName(1, 2), 100}, {BlockName(1, 3), 100}};
  EXPECT_EQ(Files(), expected_files);
  EXPECT_EQ(cache->stats().evicted_blocks, 1u);
  bucket_.ResetCounters();
  ExpectRead(*cache, 1, 0, 100);
  EXPECT_EQ(bucket_.range_calls(), 0u);
}

TEST_F(RemotePackCacheTest, BlockLargerThanTheCacheIsReadButNotKept) {
  bucket_.AddPack(1, 1000);
  auto cache = OpenCache(Options(100, 50));
  ASSERT_NE(cache, nullptr);
  ExpectRead(*cache, 1, 0, 1000);
  ExpectRead(*cache, 1, 0, 1000);
  EXPECT_TRUE(Files().empty());
  EXPECT_EQ(bucket_.range_calls(), 2u);
}

TEST_F(RemotePackCacheTest, DamagedBlockFilesAreRefetched) {
  bucket_.AddPack(6, 1000);
  {
    auto cache = OpenCache(Options(100, 1 << 20));
    ASSERT_NE(cache, nullptr);
    ExpectRead(*cache, 6, 0, 1000);
    bucket_.ResetCounters();
    // Truncated while the cache runs: the length is wrong.
    ASSERT_EQ(::truncate((cache_dir() / BlockName(6, 4)).c_str(), 50), 0);
    // Deleted behind its back: the file is missing.
    ASSERT_EQ(::unlink((cache_dir() / BlockName(6, 2)).c_str()), 0);
    ExpectRead(*cache, 6, 0, 1000);
    EXPECT_EQ(bucket_.calls(), (std::vector<FakeBucket::Call>{{6, 200, 100}, {6, 400, 100}}));
    EXPECT_EQ(Files().at(BlockName(6, 4)), 100u);
    EXPECT_EQ(cache->stats().cached_bytes, 1000u);
  }
  // Truncated while the cache is closed: found when the pack's size is known.
  ASSERT_EQ(::truncate((cache_dir() / BlockName(6, 7)).c_str(), 30), 0);
  bucket_.ResetCounters();
  auto cache = OpenCache(Options(100, 1 << 20));
  ASSERT_NE(cache, nullptr);
  ExpectRead(*cache, 6, 0, 1000);
  EXPECT_EQ(bucket_.calls(), (std::vector<FakeBucket::Call>{{6, 700, 100}}));
  EXPECT_EQ(FileBytes(), 1000u);
  EXPECT_EQ(cache->stats().cached_bytes, 1000u);
}

TEST_F(RemotePackCacheTest, FetchErrorsPassThroughAndAreNotCached) {
  bucket_.AddPack(1, 1000);
  auto cache = OpenCache(Options(100, 1 << 20));
  ASSERT_NE(cache, nullptr);
  std::string bytes = "stale";
  bucket_.FailRangeWith(Status::NotFound("pack gone"));
  Status status = cache->Read(1, 0, 300, &bytes);
  EXPECT_EQ(status.code(), Code::kNotFound);
  EXPECT_EQ(status.message(), "pack gone");
  EXPECT_TRUE(bytes.empty());
  bucket_.FailRangeWith(Status::IoError("unreachable"));
  status = cache->Read(1, 0, 300, &bytes);
  EXPECT_EQ(status.code(), Code::kIoError);
  EXPECT_EQ(status.message(), "unreachable");
  EXPECT_TRUE(Files().empty());
  EXPECT_EQ(cache->stats().cached_bytes, 0u);
  bucket_.ClearFailure();
  ExpectRead(*cache, 1, 0, 300);
  EXPECT_EQ(bucket_.range_calls(), 3u);

  // A pack the bucket lacks: kNotFound, and its size is asked again later.
  EXPECT_EQ(cache->Size(9).status().code(), Code::kNotFound);
  EXPECT_EQ(cache->Read(9, 0, 10, &bytes).code(), Code::kNotFound);
  bucket_.AddPack(9, 10);
  ASSERT_OK_AND_ASSIGN(const uint64_t size, cache->Size(9));
  EXPECT_EQ(size, 10u);
  EXPECT_EQ(bucket_.size_calls(), 4u);
}

TEST_F(RemotePackCacheTest, ShortReadFromTheBucketIsAnIoError) {
  bucket_.AddPack(1, 1000);
  auto cache = OpenCache(Options(100, 1 << 20));
  ASSERT_NE(cache, nullptr);
  bucket_.ShortenReplies(1);
  std::string bytes;
  const Status status = cache->Read(1, 950, 50, &bytes);
  EXPECT_EQ(status.code(), Code::kIoError);
  EXPECT_NE(status.message().find("short read from the bucket"), std::string::npos)
      << status.ToString();
  EXPECT_TRUE(Files().empty());
  bucket_.ShortenReplies(0);
  ExpectRead(*cache, 1, 950, 50);
}

TEST_F(RemotePackCacheTest, ReadsAtAndAfterTheEnd) {
  bucket_.AddPack(1, 250);
  auto cache = OpenCache(Options(100, 1 << 20));
  ASSERT_NE(cache, nullptr);
  std::string bytes = "stale";
  ASSERT_OK(cache->Read(1, 250, 10, &bytes));
  EXPECT_TRUE(bytes.empty());
  ASSERT_OK(cache->Read(1, 10000, 10, &bytes));
  EXPECT_TRUE(bytes.empty());
  ASSERT_OK(cache->Read(1, 10, 0, &bytes));
  EXPECT_TRUE(bytes.empty());
  EXPECT_EQ(bucket_.range_calls(), 0u);
  ASSERT_OK(cache->Read(1, 200, 100, &bytes));
  EXPECT_EQ(bytes, bucket_.Expected(1, 200, 50));
  EXPECT_EQ(bucket_.calls(), (std::vector<FakeBucket::Call>{{1, 200, 50}}));
  ExpectRead(*cache, 1, 0, UINT64_MAX);
  ExpectRead(*cache, 1, 249, UINT64_MAX);
  EXPECT_EQ(Files().at(BlockName(1, 2)), 50u);
  ASSERT_OK_AND_ASSIGN(const uint64_t size, cache->Size(1));
  EXPECT_EQ(size, 250u);
  EXPECT_EQ(bucket_.size_calls(), 1u);
}

TEST_F(RemotePackCacheTest, ForgetDropsThePacksBlocksAndSize) {
  bucket_.AddPack(1, 500);
  bucket_.AddPack(2, 300);
  auto cache = OpenCache(Options(100, 1 << 20));
  ASSERT_NE(cache, nullptr);
  ExpectRead(*cache, 1, 0, 500);
  ExpectRead(*cache, 2, 0, 300);
  cache->Forget(1);
  const std::map<std::string, uint64_t> expected_files = {
      {BlockName(2, 0), 100}, {BlockName(2, 1), 100}, {BlockName(2, 2), 100}};
  EXPECT_EQ(Files(), expected_files);
  EXPECT_EQ(cache->stats().cached_bytes, 300u);
  bucket_.ResetCounters();
  bucket_.AddPack(1, 1000);  // the bucket's pack 1 is now another
  ExpectRead(*cache, 1, 0, 1000);
  EXPECT_EQ(bucket_.size_calls(), 1u);
  EXPECT_EQ(bucket_.calls(), (std::vector<FakeBucket::Call>{{1, 0, 1000}}));
}

TEST_F(RemotePackCacheTest, OpenChecksItsOptions) {
  EXPECT_EQ(RemotePackCache::Open(Options(0, 100), bucket_.RangeFetch(), bucket_.SizeFetch())
                .status()
                .code(),
            Code::kInvalid);
  EXPECT_EQ(RemotePackCache::Open(Options(100, 100), nullptr, bucket_.SizeFetch()).status().code(),
            Code::kInvalid);
  RemotePackCacheOptions no_dir = Options(100, 100);
  no_dir.dir.clear();
  EXPECT_EQ(
      RemotePackCache::Open(no_dir, bucket_.RangeFetch(), bucket_.SizeFetch()).status().code(),
      Code::kInvalid);
  test_util::WriteFile(dir() / "file", "x");
  RemotePackCacheOptions on_a_file = Options(100, 100);
  on_a_file.dir = dir() / "file";
  EXPECT_EQ(
      RemotePackCache::Open(on_a_file, bucket_.RangeFetch(), bucket_.SizeFetch()).status().code(),
      Code::kNotDirectory);
}

}  // namespace
}  // namespace medvfs::store
