// Test helpers that find and damage chunk entries in an archive's pack files the way someone
// with write access to the disk (and no key) could: through the plaintext entry headers
// (store/engine/pack_format.h), never through the store's code.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "store/engine/pack_format.h"

namespace medvfs::store::test_util {

struct PackEntryOnDisk {
  std::filesystem::path file;
  store::PackEntryInfo info;  // id, offset, length, plain length, encoding
};

inline std::string ReadWholeFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every entry of every pack file of the archive at `archive_dir`, in pack and offset order.
// The walk of a pack stops at the first thing that is not an entry (its trailer).
inline std::vector<PackEntryOnDisk> PackEntriesOnDisk(const std::filesystem::path& archive_dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(archive_dir / "packs")) {
    if (store::PackNumberOfFileName(entry.path().filename().string()) != 0) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<PackEntryOnDisk> entries;
  for (const auto& file : files) {
    const std::string bytes = ReadWholeFile(file);
    uint64_t pos = store::kPackHeaderSize;
    while (pos + store::kPackEntryHeaderSize <= bytes.size()) {
      store::PackEntryInfo info;
      if (!store::ParsePackEntryHeader(std::string_view(bytes).substr(pos), pos, &info).ok() ||
          info.end() > bytes.size()) {
        break;
      }
      entries.push_back(PackEntryOnDisk{file, info});
      pos = info.end();
    }
  }
  return entries;
}

// Overwrites `length` bytes of `file` at `offset`.
inline void OverwriteInFile(const std::filesystem::path& file, uint64_t offset,
                            const std::string& bytes) {
  std::fstream io(file, std::ios::binary | std::ios::in | std::ios::out);
  ASSERT_TRUE(io) << file;
  io.seekp(static_cast<std::streamoff>(offset));
  io.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(io) << file;
}

// Flips one bit in the middle of an entry's sealed payload (past its plaintext header).
inline void FlipBitInPackEntry(const PackEntryOnDisk& entry) {
  const uint64_t at = entry.info.offset + store::kPackEntryHeaderSize +
                      (entry.info.length - store::kPackEntryHeaderSize) / 2;
  const std::string bytes = ReadWholeFile(entry.file);
  ASSERT_LT(at, bytes.size());
  OverwriteInFile(entry.file, at, std::string(1, static_cast<char>(bytes[at] ^ 0x01)));
}

// The entry that holds chunk `id` (the first, if a crash left copies); fails the test if none.
inline PackEntryOnDisk PackEntryOf(const std::filesystem::path& archive_dir,
                                   const store::ChunkId& id) {
  for (const PackEntryOnDisk& entry : PackEntriesOnDisk(archive_dir)) {
    if (entry.info.id == id) return entry;
  }
  ADD_FAILURE() << "no pack entry holds the chunk";
  return {};
}

}  // namespace medvfs::store::test_util
