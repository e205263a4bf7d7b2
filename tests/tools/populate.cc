// Test helper: fills an unmounted archive through the Archive API, the way the FUSE layer
// would, so that the command line can be tested without a mount.
//
//   medvfs_test_populate ARCHIVE [--key-file F] OP...
//     mkdir:/a/b           make a directory (the parent must exist)
//     write:/a/f=TEXT      create /a/f if needed and save TEXT as its new content (a version)
//     big:/a/f=BYTES       the same with BYTES bytes of PatternBytes, written in 1 MiB pieces
//     file:/a/f=LOCAL      the same with the bytes of the local file LOCAL (e.g. a DICOM sample)
//     rm:/a/f              unlink (leaves a delete marker)
//     mv:/a/f=/b/g         rename
//     chmod:/a/f=0640      change the permission bits (octal)
// The key is MEDVFS_PASSPHRASE unless --key-file is given. Exits 0, or 1 with a reason.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "store/archive.h"
#include "tests/tools/pattern.h"

namespace {

using medvfs::store::Archive;
using medvfs::store::Status;

constexpr size_t kPiece = size_t{1} << 20;

struct Parent {
  medvfs::store::InodeId ino = 0;
  std::string name;
};

medvfs::store::Caller TestCaller() {
  return {static_cast<uint32_t>(getuid()), static_cast<uint32_t>(getgid()),
          static_cast<uint32_t>(getpid()), "populate"};
}

medvfs::store::StatusOr<Parent> ResolveParent(Archive& archive, std::string_view path) {
  size_t slash = path.rfind('/');
  std::string_view dir = slash == std::string_view::npos ? "" : path.substr(0, slash);
  std::string name(slash == std::string_view::npos ? path : path.substr(slash + 1));
  while (!dir.empty() && dir.front() == '/') dir.remove_prefix(1);
  auto attr = medvfs::store::LookupPath(archive, dir);  // "": the root
  if (!attr.ok()) return attr.status();
  return Parent{attr->ino, name};
}

// Creates the file if needed and writes `size` bytes produced by `piece(offset, count)`.
template <typename PieceFn>
Status WriteFile(Archive& archive, std::string_view path, uint64_t size, PieceFn piece) {
  auto parent = ResolveParent(archive, path);
  if (!parent.ok()) return parent.status();
  auto attr = archive.Lookup(parent->ino, parent->name);
  if (!attr.ok())
    attr = archive.MakeNode(parent->ino, parent->name, S_IFREG | 0644, 0, TestCaller());
  if (!attr.ok()) return attr.status();
  auto handle = archive.Open(attr->ino, O_WRONLY | O_TRUNC, TestCaller());
  if (!handle.ok()) return handle.status();
  for (uint64_t offset = 0; offset < size; offset += kPiece) {
    size_t count = static_cast<size_t>(std::min<uint64_t>(kPiece, size - offset));
    auto written = (*handle)->Write(offset, piece(offset, count));
    if (!written.ok()) return written.status();
  }
  return (*handle)->Flush(TestCaller());
}

Status Apply(Archive& archive, std::string_view op) {
  size_t colon = op.find(':');
  if (colon == std::string_view::npos) return Status::Invalid("no ':' in op");
  std::string_view kind = op.substr(0, colon);
  std::string_view arg = op.substr(colon + 1);
  size_t eq = arg.find('=');
  std::string_view path = arg.substr(0, eq);
  std::string_view value = eq == std::string_view::npos ? "" : arg.substr(eq + 1);
  if (kind == "write") {
    return WriteFile(archive, path, value.size(), [value](uint64_t offset, size_t count) {
      return std::string(value.substr(static_cast<size_t>(offset), count));
    });
  }
  if (kind == "file") {
    std::string local(value);
    std::error_code ec;
    uint64_t size = std::filesystem::file_size(local, ec);
    if (ec) return Status::Invalid("cannot read " + local);
    auto in = std::make_shared<std::ifstream>(local, std::ios::binary);
    return WriteFile(archive, path, size, [in](uint64_t offset, size_t count) {
      std::string piece(count, '\0');
      in->seekg(static_cast<std::streamoff>(offset));
      in->read(piece.data(), static_cast<std::streamsize>(count));
      return piece;
    });
  }
  if (kind == "big") {
    uint64_t size = std::strtoull(std::string(value).c_str(), nullptr, 10);
    return WriteFile(archive, path, size, medvfs::testing::PatternBytes);
  }
  auto parent = ResolveParent(archive, path);
  if (!parent.ok()) return parent.status();
  if (kind == "mkdir") {
    return archive.MakeDir(parent->ino, parent->name, 0755, TestCaller()).status();
  }
  if (kind == "rm") return archive.Unlink(parent->ino, parent->name, TestCaller());
  if (kind == "mv") {
    auto to = ResolveParent(archive, value);
    if (!to.ok()) return to.status();
    return archive.Rename(parent->ino, parent->name, to->ino, to->name, 0, TestCaller());
  }
  if (kind == "chmod") {
    auto attr = archive.Lookup(parent->ino, parent->name);
    if (!attr.ok()) return attr.status();
    medvfs::store::SetAttrRequest request;
    request.mode = static_cast<uint32_t>(std::strtoul(std::string(value).c_str(), nullptr, 8));
    return archive.SetAttr(attr->ino, request, TestCaller()).status();
  }
  return Status::Invalid("unknown op");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: medvfs_test_populate ARCHIVE [--key-file F] OP...\n";
    return 2;
  }
  int first_op = 2;
  auto key = medvfs::store::KeySource::Passphrase(
      std::getenv("MEDVFS_PASSPHRASE") ? std::getenv("MEDVFS_PASSPHRASE") : "");
  if (argc > 3 && std::string_view(argv[2]) == "--key-file") {
    auto from_file = medvfs::store::KeySource::FromKeyFile(argv[3]);
    if (!from_file.ok()) {
      std::cerr << "populate: " << from_file.status().ToString() << "\n";
      return 1;
    }
    key = *from_file;
    first_op = 4;
  }
  auto archive = Archive::Open(argv[1], key);
  if (!archive.ok()) {
    std::cerr << "populate: open: " << archive.status().ToString() << "\n";
    return 1;
  }
  for (int i = first_op; i < argc; ++i) {
    Status status = Apply(**archive, argv[i]);
    if (!status.ok()) {
      std::cerr << "populate: " << argv[i] << ": " << status.ToString() << "\n";
      return 1;
    }
  }
  return 0;
}
