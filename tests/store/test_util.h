// Shared helpers for store/ tests: status assertions that print the Status, a temporary
// directory that cleans up after itself, and whole-file reads and writes.
#pragma once

#include <fcntl.h>
#include <stdlib.h>  // mkdtemp
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include <gtest/gtest.h>

#include "store/archive.h"
#include "store/status.h"

namespace medvfs::store::test_util {

inline const Status& GetStatus(const Status& status) { return status; }
template <typename T>
const Status& GetStatus(const StatusOr<T>& status_or) {
  return status_or.status();
}

// gtest predicate: success when ok, otherwise a failure that shows the Status.
template <typename T>
::testing::AssertionResult IsOk(const char* expr_text, const T& value) {
  const Status& status = GetStatus(value);
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr_text << " returned " << status.ToString();
}

// Where Debian's python3-pydicom installs its sample DICOM files.
inline const std::filesystem::path kPydicomSamples =
    "/usr/lib/python3/dist-packages/pydicom/data/test_files";

// The whole file; empty when it cannot be read.
inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Replaces the file with `bytes`.
inline void WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// `text` as one word for /bin/sh: in single quotes, its own single quotes escaped.
inline std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class ScopedTempDir {
 public:
  ScopedTempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/medvfs-test-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  ~ScopedTempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  // Empty if the directory could not be created.
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A fixture with a temporary directory: `dir()` inside each test.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(temp_.path().empty()) << "mkdtemp failed"; }
  const std::filesystem::path& dir() const { return temp_.path(); }

 private:
  ScopedTempDir temp_;
};

// Reads `bytes` by offset, as the de-identifier reads a file (store::ReadAtFunction). The
// string must outlive the function.
inline std::function<StatusOr<size_t>(uint64_t, std::span<char>)> ReaderOf(
    const std::string& bytes) {
  return [&bytes](uint64_t offset, std::span<char> out) -> StatusOr<size_t> {
    if (offset >= bytes.size()) return size_t{0};
    const size_t n = std::min(out.size(), bytes.size() - static_cast<size_t>(offset));
    std::memcpy(out.data(), bytes.data() + offset, n);
    return n;
  };
}

}  // namespace medvfs::store::test_util

namespace medvfs::store {

// The attributes of the node a call returned a reference to (Lookup, MakeNode, ...), the
// reference released at once: for tests that keep only inode numbers, also across reopenings
// of the archive, which a NodeRef must not outlive.
inline StatusOr<Attr> ReleasedAttr(StatusOr<NodeRef> node) {
  if (!node.ok()) return node.status();
  return node->attr();
}

// Saves `content` as the new content of `name` in the root directory (created if missing) the
// way a program does: open with O_TRUNC, write in pieces of `piece` bytes, close (Flush). Ok
// only if every step was.
inline Status SaveInRoot(Archive& archive, const Caller& caller, const std::string& name,
                         std::string_view content, size_t piece = size_t{64} << 10) {
  InodeId ino = 0;
  auto existing = archive.Lookup(kRootInode, name);
  if (existing.ok()) {
    ino = existing->ino;
  } else {
    auto made = archive.MakeNode(kRootInode, name, S_IFREG | 0644, 0, caller);
    if (!made.ok()) return made.status();
    ino = made->ino;
  }
  auto handle = archive.Open(ino, O_WRONLY | O_TRUNC, caller);
  if (!handle.ok()) return handle.status();
  for (size_t offset = 0; offset < content.size(); offset += piece) {
    auto written = (*handle)->Write(offset, content.substr(offset, piece));
    if (!written.ok()) return written.status();
  }
  return (*handle)->Flush(caller);
}

// The whole content of a version, or "<the error>" when it cannot be read (a comparison with
// the expected bytes then fails and shows why).
inline std::string ReadWholeVersion(Archive& archive, HistoryId history, uint64_t number) {
  auto handle = archive.OpenVersion(history, number);
  if (!handle.ok()) return "<" + handle.status().ToString() + ">";
  std::string out, buffer(size_t{1} << 18, '\0');
  for (uint64_t offset = 0;;) {
    auto n = (*handle)->Read(offset, std::span<char>(buffer.data(), buffer.size()));
    if (!n.ok()) return "<" + n.status().ToString() + ">";
    if (*n == 0) break;
    out.append(buffer.data(), *n);
    offset += *n;
  }
  return out;
}

}  // namespace medvfs::store

// ASSERT_OK(expr) / EXPECT_OK(expr): expr is a Status or a StatusOr<T>; on failure the
// message shows expr and its Status::ToString().
#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::medvfs::store::test_util::IsOk, expr)
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::medvfs::store::test_util::IsOk, expr)

// `ASSERT_OK_AND_ASSIGN(auto x, Call());` declares x from a StatusOr or fails the test.
#define MEDVFS_TEST_CONCAT_INNER(a, b) a##b
#define MEDVFS_TEST_CONCAT(a, b) MEDVFS_TEST_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(MEDVFS_TEST_CONCAT(_status_or_test_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  ASSERT_OK(tmp);                                 \
  lhs = std::move(tmp).value()
