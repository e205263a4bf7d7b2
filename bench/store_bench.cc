// Micro-benchmarks of the write path's building blocks: content-defined chunking, zstd,
// AES-256-GCM sealing and SHA-256. Throughput is reported as bytes/second of plaintext.
//
//   ./build/bench/store_bench [--benchmark_filter=Chunker]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "store/crypto/compress.h"
#include "store/crypto/crypto.h"
#include "store/engine/chunker.h"

namespace medvfs::store {
namespace {

constexpr size_t k64KiB = 64 * 1024;

std::string RandomData(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < size; ++j) {
      out[i + j] = static_cast<char>(v & 0xff);
      v >>= 8;
    }
  }
  return out;
}

// 16-bit little-endian samples of a slow random walk in 12 bits, like CT pixel data: compressible.
std::string SmoothPixels(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  int value = 2048;
  for (size_t i = 0; i + 1 < size; i += 2) {
    value = (value + static_cast<int>(rng() % 9) - 4) & 0xfff;
    out[i] = static_cast<char>(value & 0xff);
    out[i + 1] = static_cast<char>(value >> 8);
  }
  return out;
}

// Chunks 64 MiB of random data fed in pieces of state.range(0) bytes.
void BM_ChunkerRandom(benchmark::State& state) {
  const std::string data = RandomData(64 << 20, 1);
  const auto piece = static_cast<size_t>(state.range(0));
  Chunker chunker;
  size_t chunks = 0;
  auto emit = [&chunks](std::string_view c) {
    benchmark::DoNotOptimize(c.data());
    ++chunks;
  };
  for (auto _ : state) {
    for (size_t at = 0; at < data.size(); at += piece) {
      chunker.Update(std::string_view(data).substr(at, piece), emit);
    }
    chunker.Finish(emit);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
  state.counters["avg_chunk"] =
      static_cast<double>(state.iterations() * data.size()) / static_cast<double>(chunks);
}
BENCHMARK(BM_ChunkerRandom)
    ->Arg(4096)
    ->Arg(128 * 1024)
    ->Arg(1 << 20)
    ->Unit(benchmark::kMillisecond);

void BM_Sha256(benchmark::State& state) {
  const std::string data = RandomData(k64KiB, 2);
  for (auto _ : state) benchmark::DoNotOptimize(Sha256Of(data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Sha256);

void BM_Seal(benchmark::State& state) {
  const SecretKey key = SecretKey::Random();
  const std::string data = RandomData(k64KiB, 3);
  std::string sealed;
  for (auto _ : state) {
    sealed.clear();
    if (!Seal(key, "bench", data, &sealed).ok()) state.SkipWithError("Seal failed");
    benchmark::DoNotOptimize(sealed.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Seal);

void BM_Unseal(benchmark::State& state) {
  const SecretKey key = SecretKey::Random();
  const std::string data = RandomData(k64KiB, 4);
  std::string sealed;
  if (!Seal(key, "bench", data, &sealed).ok()) state.SkipWithError("Seal failed");
  std::string plain;
  for (auto _ : state) {
    if (!Unseal(key, "bench", sealed, &plain).ok()) state.SkipWithError("Unseal failed");
    benchmark::DoNotOptimize(plain.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Unseal);

// zstd level 3 on 64 KiB: range(0) == 0 random (incompressible), 1 smooth pixels.
std::string CompressInput(int64_t kind) {
  return kind == 0 ? RandomData(k64KiB, 5) : SmoothPixels(k64KiB, 5);
}

void BM_Compress(benchmark::State& state) {
  const std::string data = CompressInput(state.range(0));
  std::string out;
  for (auto _ : state) {
    if (!Compress(data, 3, &out).ok()) state.SkipWithError("Compress failed");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
  state.counters["ratio"] = static_cast<double>(data.size()) / static_cast<double>(out.size());
  state.SetLabel(state.range(0) == 0 ? "random" : "smooth pixels");
}
BENCHMARK(BM_Compress)->Arg(0)->Arg(1);

void BM_Decompress(benchmark::State& state) {
  const std::string data = CompressInput(state.range(0));
  std::string compressed;
  if (!Compress(data, 3, &compressed).ok()) state.SkipWithError("Compress failed");
  std::string out;
  for (auto _ : state) {
    if (!Decompress(compressed, data.size(), &out).ok()) state.SkipWithError("Decompress failed");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
  state.SetLabel(state.range(0) == 0 ? "random" : "smooth pixels");
}
BENCHMARK(BM_Decompress)->Arg(0)->Arg(1);

}  // namespace
}  // namespace medvfs::store
