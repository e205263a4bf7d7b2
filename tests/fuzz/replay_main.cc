// A main() for the fuzz targets where there is no libFuzzer (GCC builds): runs
// LLVMFuzzerTestOneInput once on every file given, and on every file of every directory given
// (not recursively, in name order), so that the committed corpus replays as a regression test
// under the build's sanitizers. Exits 0 when every input ran; a finding aborts, as it would
// under libFuzzer. Like libFuzzer's -malloc_limit_mb (2048 by default), a single allocation
// above 2 GiB is a finding: under AddressSanitizer one would otherwise succeed quietly.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer reads these before main(); ASAN_OPTIONS from the environment still win.
extern "C" const char* __asan_default_options() { return "max_allocation_size_mb=2048"; }
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool Run(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", file.c_str());
    return false;
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  // A block of exactly the input's size, as libFuzzer passes it, so that AddressSanitizer
  // reports a read one byte past the end.
  std::vector<uint8_t> data(bytes.begin(), bytes.end());
  data.shrink_to_fit();
  std::fprintf(stderr, "running %s (%zu bytes)\n", file.c_str(), data.size());
  LLVMFuzzerTestOneInput(data.empty() ? nullptr : data.data(), data.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  size_t inputs = 0;
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg = argv[i];
    std::error_code ec;
    if (!std::filesystem::is_directory(arg, ec)) {
      ok = Run(arg) && ok;
      ++inputs;
      continue;
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(arg, ec)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    if (ec) {
      std::fprintf(stderr, "cannot list %s: %s\n", arg.c_str(), ec.message().c_str());
      ok = false;
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      ok = Run(file) && ok;
      ++inputs;
    }
  }
  std::fprintf(stderr, "%zu inputs replayed\n", inputs);
  if (inputs == 0) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIRECTORY...\n", argv[0]);
    return 2;
  }
  return ok ? 0 : 1;
}
