#include "store/archive/pack_backup.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "store/bytes.h"
#include "store/crypto/crypto.h"
#include "store/file_util.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

namespace stdfs = std::filesystem;

constexpr std::string_view kManifestHeader = "medvfs-pack-manifest 1";
constexpr size_t kCopyPiece = size_t{1} << 20;

struct ManifestLine {
  std::string name;
  uint64_t size = 0;
  std::string sha256;  // hex
  bool shared = false;
};

stdfs::path PacksOf(const stdfs::path& dest) { return dest / "packs"; }
stdfs::path ManifestPath(const stdfs::path& dest, uint32_t id) {
  return PacksOf(dest) / ("manifest-" + std::to_string(id));
}
stdfs::path OwnDir(const stdfs::path& dest, uint32_t id) {
  return PacksOf(dest) / ("backup-" + std::to_string(id));
}
stdfs::path CopyPath(const stdfs::path& dest, uint32_t id, const ManifestLine& line) {
  return line.shared ? PacksOf(dest) / line.name : OwnDir(dest, id) / line.name;
}

// Copies the first `length` bytes of `from` to `to` (through a temporary name, synced, then
// renamed), hashing them; checks the hash against `expected_sha256` when it is given.
Status CopyPrefix(const stdfs::path& from, const stdfs::path& to, uint64_t length,
                  const std::function<bool()>& cancelled, const std::string& expected_sha256,
                  std::string* sha256_hex) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return StatusFromErrno(errno, "reading " + from.filename().string());
  const stdfs::path temp = to.string() + ".tmp";
  UniqueFd out(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (out.get() < 0) return StatusFromErrno(errno, "writing " + to.filename().string());
  Sha256 hash;
  std::string piece(kCopyPiece, '\0');
  uint64_t done = 0;
  auto fail = [&](Status status) {
    ::unlink(temp.c_str());
    return status;
  };
  while (done < length) {
    if (cancelled && cancelled()) return fail(Status(Code::kBusy, "the backup was cancelled"));
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kCopyPiece, length - done));
    const ssize_t n = ::pread(in.get(), piece.data(), want, static_cast<off_t>(done));
    if (n < 0) return fail(StatusFromErrno(errno, "reading " + from.filename().string()));
    if (n == 0)
      return fail(Status::Corruption(from.filename().string() + " is shorter than expected"));
    const std::string_view bytes(piece.data(), static_cast<size_t>(n));
    hash.Update(bytes);
    if (!WriteAll(out.get(), bytes)) {
      return fail(StatusFromErrno(errno, "writing " + to.filename().string()));
    }
    done += static_cast<uint64_t>(n);
  }
  *sha256_hex = HexEncode(hash.Finish());
  if (!expected_sha256.empty() && *sha256_hex != expected_sha256) {
    return fail(Status::Corruption(from.filename().string() + " does not match its checksum"));
  }
  if (::fsync(out.get()) != 0)
    return fail(StatusFromErrno(errno, "syncing " + to.filename().string()));
  if (::rename(temp.c_str(), to.c_str()) != 0) {
    return fail(StatusFromErrno(errno, "writing " + to.filename().string()));
  }
  return Status::Ok();
}

std::string ReadText(const stdfs::path& file) {
  UniqueFd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return {};
  std::string text;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = ::read(in.get(), buffer, sizeof(buffer))) > 0)
    text.append(buffer, static_cast<size_t>(n));
  return text;
}

// kNotFound when the backup has no manifest (made before packs).
Status ReadManifest(const stdfs::path& dest, uint32_t id, std::vector<ManifestLine>* lines) {
  std::error_code ec;
  const stdfs::path path = ManifestPath(dest, id);
  if (!stdfs::exists(path, ec)) return Status::NotFound("the backup lists no pack files");
  std::istringstream in(ReadText(path));
  std::string header;
  if (!std::getline(in, header) || header != kManifestHeader) {
    return Status::Corruption(path.filename().string() + " is not a pack manifest");
  }
  lines->clear();
  std::string text;
  while (std::getline(in, text)) {
    std::istringstream fields(text);
    ManifestLine line;
    std::string kind;
    if (!(fields >> line.name >> line.size >> line.sha256 >> kind) ||
        PackNumberOfFileName(line.name) == 0 || line.sha256.size() != 64 ||
        (kind != "shared" && kind != "own")) {
      return Status::Corruption(path.filename().string() + " has a malformed line");
    }
    line.shared = kind == "shared";
    lines->push_back(line);
  }
  return Status::Ok();
}

}  // namespace

Status BackupPacks(PackStore& packs, const stdfs::path& dest, uint32_t id,
                   const std::function<bool()>& cancelled, uint64_t* new_bytes,
                   uint64_t* total_bytes) {
  *new_bytes = 0;
  *total_bytes = 0;
  // The records of the backup (taken before this call) refer only to durable bytes of packs
  // that exist now. Sealing makes those packs immutable; a pack that fails to seal is synced
  // and its durable prefix copied. Packs made after this hold nothing the records refer to.
  Status sealing = packs.SealAll();
  if (!sealing.ok()) {
    MEDVFS_LOG_ERROR("backup: a pack could not be sealed, its prefix is copied: %s",
                     sealing.ToString().c_str());
  }
  MEDVFS_RETURN_IF_ERROR(packs.Sync());
  MEDVFS_ASSIGN_OR_RETURN(auto files, packs.ListFiles());
  std::error_code ec;
  stdfs::create_directories(OwnDir(dest, id), ec);
  if (ec) return StatusFromErrno(ec.value(), "creating the backup's pack directory");
  auto undo = [&](Status status) {
    stdfs::remove_all(OwnDir(dest, id), ec);
    return status;
  };
  std::string manifest(kManifestHeader);
  manifest += "\n";
  for (const auto& [number, size] : files) {
    const uint64_t durable = packs.DurableEnd(number);
    const bool sealed = durable == UINT64_MAX;
    ManifestLine line;
    line.name = PackFileName(number);
    line.shared = sealed;
    line.size = sealed ? size : std::min(size, durable);
    const stdfs::path from = packs.dir() / line.name;
    const stdfs::path to = CopyPath(dest, id, line);
    const stdfs::path sum = PacksOf(dest) / (line.name + ".sha256");
    if (sealed && stdfs::exists(to, ec) && stdfs::file_size(to, ec) == line.size &&
        ReadText(sum).size() == 64) {
      line.sha256 = ReadText(sum);  // copied by an earlier backup: sealed packs never change
    } else {
      Status s = CopyPrefix(from, to, line.size, cancelled, "", &line.sha256);
      if (!s.ok()) return undo(s);
      *new_bytes += line.size;
      if (sealed) {
        s = WriteFileDurably(sum, line.sha256);
        if (!s.ok()) return undo(s);
      }
    }
    *total_bytes += line.size;
    manifest += line.name + " " + std::to_string(line.size) + " " + line.sha256 + " " +
                (line.shared ? "shared" : "own") + "\n";
  }
  SyncDirectoryQuietly(OwnDir(dest, id));
  SyncDirectoryQuietly(PacksOf(dest));
  Status s = WriteFileDurably(ManifestPath(dest, id), manifest);
  if (!s.ok()) return undo(s);
  return Status::Ok();
}

Status VerifyBackupPacks(const stdfs::path& dest, uint32_t id) {
  std::vector<ManifestLine> lines;
  Status s = ReadManifest(dest, id, &lines);
  if (s.code() == Code::kNotFound) return Status::Ok();
  MEDVFS_RETURN_IF_ERROR(s);
  for (const ManifestLine& line : lines) {
    const stdfs::path file = CopyPath(dest, id, line);
    UniqueFd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) return Status::Corruption("the backup's pack " + line.name + " is missing");
    Sha256 hash;
    std::string piece(kCopyPiece, '\0');
    uint64_t total = 0;
    ssize_t n = 0;
    while ((n = ::read(in.get(), piece.data(), piece.size())) > 0) {
      hash.Update(std::string_view(piece.data(), static_cast<size_t>(n)));
      total += static_cast<uint64_t>(n);
    }
    if (n < 0) return StatusFromErrno(errno, "reading the backup's pack " + line.name);
    if (total != line.size || HexEncode(hash.Finish()) != line.sha256) {
      return Status::Corruption("the backup's pack " + line.name +
                                " does not match its size and checksum (damaged)");
    }
  }
  return Status::Ok();
}

Status RestoreBackupPacks(const stdfs::path& dest, uint32_t id, const stdfs::path& archive_dir) {
  std::vector<ManifestLine> lines;
  Status s = ReadManifest(dest, id, &lines);
  if (s.code() == Code::kNotFound) return Status::Ok();
  MEDVFS_RETURN_IF_ERROR(s);
  const stdfs::path packs = archive_dir / "packs";
  std::error_code ec;
  stdfs::create_directories(packs, ec);
  if (ec) return StatusFromErrno(ec.value(), "creating the restored archive's packs directory");
  for (const ManifestLine& line : lines) {
    std::string sha256;
    MEDVFS_RETURN_IF_ERROR(CopyPrefix(CopyPath(dest, id, line), packs / line.name, line.size, {},
                                      line.sha256, &sha256));
  }
  SyncDirectoryQuietly(packs);
  return Status::Ok();
}

void PruneBackupPacks(const stdfs::path& dest, const std::vector<uint32_t>& kept) {
  const std::set<uint32_t> kept_ids(kept.begin(), kept.end());
  std::set<std::string> needed;
  std::error_code ec;
  for (uint32_t id : kept_ids) {
    std::vector<ManifestLine> lines;
    if (!ReadManifest(dest, id, &lines).ok()) continue;
    for (const ManifestLine& line : lines) {
      if (line.shared) needed.insert(line.name);
    }
  }
  for (const auto& entry : stdfs::directory_iterator(PacksOf(dest), ec)) {
    const std::string name = entry.path().filename().string();
    uint32_t id = 0;
    if (name.starts_with("manifest-") || name.starts_with("backup-")) {
      const std::string digits = name.substr(name.find('-') + 1);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      id = static_cast<uint32_t>(std::stoul(digits));
      if (!kept_ids.contains(id)) stdfs::remove_all(entry.path(), ec);
      continue;
    }
    const std::string pack = name.ends_with(".sha256") ? name.substr(0, name.size() - 7) : name;
    if (PackNumberOfFileName(pack) != 0 && !needed.contains(pack)) stdfs::remove(entry.path(), ec);
  }
}

}  // namespace medvfs::store
