#include "tools/target.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iostream>
#include <sstream>
#include <system_error>

#include "tools/cli_error.h"

namespace medvfs::tools {
namespace fs = std::filesystem;
namespace {

// Decodes the octal escapes (\040 space, \011 tab, \012 newline, \134 backslash) of mountinfo.
std::string UnescapeMountField(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      std::string_view digits = field.substr(i + 1, 3);
      if (digits.size() == 3 &&
          std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        int value = (digits[0] - '0') * 64 + (digits[1] - '0') * 8 + (digits[2] - '0');
        out += static_cast<char>(value);
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t end = line.find(' ', pos);
    if (end == std::string_view::npos) end = line.size();
    if (end > pos) fields.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  return fields;
}

// True when `path` is `base` or lies below it (component-wise).
bool IsWithin(const fs::path& path, const fs::path& base) {
  auto p = path.begin();
  for (auto b = base.begin(); b != base.end(); ++b, ++p) {
    if (b->empty()) continue;  // trailing separator of base
    if (p == path.end() || *p != *b) return false;
  }
  return true;
}

size_t ComponentCount(const fs::path& path) {
  return static_cast<size_t>(std::distance(path.begin(), path.end()));
}

// An absolute, normal path without a trailing separator; symlinks resolved if it exists.
fs::path NormalAbsolute(const fs::path& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  if (ec) abs = path;
  abs = abs.lexically_normal();
  if (!abs.has_filename() && abs.has_relative_path()) abs = abs.parent_path();
  fs::path canonical = fs::canonical(abs, ec);
  return ec ? abs : canonical;
}

// "a/b" for "/a/b": the directory relative to the archive's root, as LookupPath takes it.
std::string_view RelativeDir(const FileTarget& target) {
  std::string_view dir = target.dir_in_archive;
  while (!dir.empty() && dir.front() == '/') dir.remove_prefix(1);
  return dir;
}

bool IsMedvfs(const MountEntry& mount) { return mount.fstype == kMedvfsFsType; }

FileTarget ResolveInArchiveSpec(const ArchiveSpec& spec, FileTarget target) {
  if (!store::Archive::Exists(spec.archive)) {
    Fail(spec.archive.string() + " is not a medvfs archive",
         "check the archive path (medvfs init creates an archive)");
  }
  std::optional<ArchivePath> in_archive = SplitArchivePath(spec.path);
  if (!in_archive) {
    Fail(target.display + " names no file", "give the path of a file, e.g. ARCHIVE::/dir/file",
         kExitUsage);
  }
  target.name = in_archive->name;
  if (auto mount = FindMedvfsMountOfArchive(ReadMountInfo(), spec.archive)) {
    target.through_mount = true;
    target.dir = mount->mountpoint / fs::path(in_archive->dir).relative_path();
    return target;
  }
  target.archive = spec.archive;
  target.dir_in_archive = in_archive->dir;
  return target;
}

}  // namespace

std::vector<MountEntry> ParseMountInfo(std::string_view text) {
  std::vector<MountEntry> mounts;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    std::vector<std::string_view> fields = SplitFields(line);
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    auto dash = std::find(fields.begin(), fields.end(), std::string_view("-"));
    if (fields.size() < 6 || dash == fields.end() || dash - fields.begin() < 6 ||
        fields.end() - dash < 3) {
      continue;
    }
    MountEntry entry;
    entry.mountpoint = fs::path(UnescapeMountField(fields[4])).lexically_normal();
    entry.fstype = UnescapeMountField(dash[1]);
    entry.source = UnescapeMountField(dash[2]);
    mounts.push_back(std::move(entry));
  }
  return mounts;
}

std::vector<MountEntry> ReadMountInfo() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return {};
  std::ostringstream text;
  text << in.rdbuf();
  return ParseMountInfo(text.str());
}

std::optional<MountEntry> FindMedvfsMountContaining(const std::vector<MountEntry>& mounts,
                                                    const fs::path& abs_path) {
  std::optional<MountEntry> best;
  for (const MountEntry& mount : mounts) {
    if (!IsMedvfs(mount) || !IsWithin(abs_path, mount.mountpoint)) continue;
    if (!best || ComponentCount(mount.mountpoint) >= ComponentCount(best->mountpoint)) {
      best = mount;  // later lines are newer mounts: they win on equal length
    }
  }
  return best;
}

std::optional<MountEntry> FindMedvfsMountOfArchive(const std::vector<MountEntry>& mounts,
                                                   const fs::path& archive) {
  fs::path wanted = NormalAbsolute(archive);
  std::optional<MountEntry> found;
  for (const MountEntry& mount : mounts) {
    if (!IsMedvfs(mount) || mount.source.empty() || mount.source[0] != '/') continue;
    if (NormalAbsolute(mount.source) == wanted) found = mount;
  }
  return found;
}

std::optional<ArchiveSpec> SplitArchiveSpec(
    std::string_view arg, const std::function<bool(const fs::path&)>& is_archive) {
  for (size_t pos = arg.find("::"); pos != std::string_view::npos; pos = arg.find("::", pos + 1)) {
    if (pos == 0) continue;
    fs::path archive(arg.substr(0, pos));
    if (is_archive(archive)) return ArchiveSpec{archive, std::string(arg.substr(pos + 2))};
  }
  return std::nullopt;
}

std::optional<ArchivePath> SplitArchivePath(std::string_view path) {
  std::string rooted = path.empty() || path[0] != '/' ? "/" + std::string(path) : std::string(path);
  fs::path normal = fs::path(rooted).lexically_normal();
  if (!normal.has_filename()) normal = normal.parent_path();
  std::string name = normal.filename().string();
  if (name.empty() || name == "." || name == ".." || name == "/") return std::nullopt;
  return ArchivePath{normal.parent_path().generic_string(), name};
}

FileTarget ResolveFileTarget(std::string_view path, const std::string& archive_option) {
  FileTarget target;
  target.display = std::string(path);
  if (path.empty()) Fail("the PATH is empty", "name a file", kExitUsage);
  if (!archive_option.empty()) {
    return ResolveInArchiveSpec(ArchiveSpec{archive_option, std::string(path)}, target);
  }
  auto is_archive = [](const fs::path& dir) { return store::Archive::Exists(dir); };
  if (auto spec = SplitArchiveSpec(path, is_archive)) return ResolveInArchiveSpec(*spec, target);

  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(path), ec).lexically_normal();
  if (!abs.has_filename() && abs.has_relative_path()) abs = abs.parent_path();
  target.name = abs.filename().string();
  fs::path dir = NormalAbsolute(abs.parent_path());
  if (!target.name.empty() && FindMedvfsMountContaining(ReadMountInfo(), dir)) {
    target.through_mount = true;
    target.dir = dir;
    return target;
  }
  if (size_t pos = path.find("::"); pos != std::string_view::npos && pos > 0) {
    Fail(std::string(path.substr(0, pos)) + " is not a medvfs archive",
         "check the archive path in ARCHIVE::/dir/file");
  }
  Fail(target.display + " is not inside a mounted medvfs archive",
       "give a path through a medvfs mount, ARCHIVE::/dir/file, or --archive ARCHIVE with the "
       "path inside the archive");
}

ArchiveTarget ResolveArchiveTarget(std::string_view archive) {
  ArchiveTarget target;
  target.archive = fs::path(archive);
  std::vector<MountEntry> mounts = ReadMountInfo();
  if (auto mount = FindMedvfsMountOfArchive(mounts, target.archive)) {
    target.through_mount = true;
    target.mountpoint = mount->mountpoint;
    return target;
  }
  fs::path abs = NormalAbsolute(target.archive);
  for (const MountEntry& mount : mounts) {
    if (IsMedvfs(mount) && mount.mountpoint == abs) {
      target.through_mount = true;
      target.mountpoint = mount.mountpoint;
    }
  }
  if (target.through_mount) return target;
  if (!store::Archive::Exists(target.archive)) {
    Fail(std::string(archive) + " is neither a medvfs archive nor a medvfs mount",
         "check the path (medvfs init creates an archive)");
  }
  return target;
}

ArchiveSource ResolveArchiveSource(const std::string& arg) {
  ArchiveSource source;
  source.archive = fs::absolute(fs::path(arg)).lexically_normal();
  const std::vector<MountEntry> mounts = ReadMountInfo();
  if (auto mount = FindMedvfsMountOfArchive(mounts, source.archive)) {
    source.mountpoint = mount->mountpoint;
  } else if (auto top = FindMedvfsMountContaining(mounts, source.archive);
             top && top->mountpoint == source.archive) {
    source.archive = top->source;
    source.mountpoint = top->mountpoint;
  }
  if (!store::Archive::Exists(source.archive)) {
    Fail(arg + " is neither a medvfs archive nor a medvfs mount",
         "give the archive directory that medvfs init created (or its mountpoint)");
  }
  return source;
}

std::unique_ptr<store::Archive> OpenArchiveOrFail(const fs::path& archive,
                                                  const KeyOptions& key_options, bool read_only) {
  store::StatusOr<store::KeySource> key = ReadKey(key_options, /*confirm=*/false);
  if (!key.ok()) FailMessage(key.status().message());
  store::ArchiveOptions options;
  options.read_only = read_only;
  auto opened = store::Archive::Open(archive, *key, options);
  if (!opened.ok()) {
    if (opened.status().code() == store::Code::kBusy) {
      Fail("the archive " + archive.string() + " is mounted or in use by another process",
           "run the command on the file's path through the mount, or unmount the archive first");
    }
    FailStatus(opened.status(), "cannot open the archive " + archive.string());
  }
  return std::move(opened).value();
}

ArchiveFile ResolveInArchiveOrFail(store::Archive& archive, const FileTarget& target) {
  store::StatusOr<store::NodeRef> dir =
      store::LookupPath(archive, target.dir_in_archive == "/" ? "" : RelativeDir(target));
  if (!dir.ok()) {
    if (dir.status().code() == store::Code::kNotFound) {
      Fail(target.display + ": the directory " + target.dir_in_archive +
               " does not exist in the archive",
           "check the path (a deleted directory's files are reached through its parent's "
           "@version view on a mount)");
    }
    FailStatus(dir.status(), "cannot look up " + target.display);
  }
  if (!S_ISDIR(dir->mode)) {
    Fail(target.display + ": " + target.dir_in_archive + " is not a directory", "check the path");
  }
  store::StatusOr<store::NameRecord> record = archive.ResolveName(dir->ino, target.name);
  if (!record.ok()) {
    if (record.status().code() == store::Code::kNotFound) {
      Fail(target.display + ": no such file, now or in the past",
           "check the path (names are case-sensitive)");
    }
    FailStatus(record.status(), "cannot look up " + target.display);
  }
  return ArchiveFile{dir->ino, std::move(record).value()};
}

ArchiveFile ResolveFileInArchiveOrFail(store::Archive& archive, const FileTarget& target) {
  ArchiveFile file = ResolveInArchiveOrFail(archive, target);
  if (file.record.history == 0) {
    if (S_ISDIR(file.record.mode)) {
      Fail(target.display + " is a directory", "name a file inside it");
    }
    Fail(target.display + " is not a regular file", "only regular files have versions");
  }
  return file;
}

store::Caller CommandLineCaller() {
  store::Caller caller;
  caller.uid = static_cast<uint32_t>(getuid());
  caller.gid = static_cast<uint32_t>(getgid());
  caller.pid = static_cast<uint32_t>(getpid());
  caller.program = "medvfs";
  return caller;
}

bool RecordCommandLineAudit(store::Archive& archive, store::AuditEvent event,
                            std::string_view what) {
  const store::Caller caller = CommandLineCaller();
  event.uid = caller.uid;
  event.gid = caller.gid;
  event.pid = caller.pid;
  event.program = caller.program;
  store::Status status = archive.RecordAudit(event);
  if (status.ok()) return true;
  std::cerr << "medvfs: warning: " << what << " could not be recorded in the audit log ("
            << status.ToString() << ")" << std::endl;
  return false;
}

std::string ArchivePathOf(const FileTarget& target) {
  return target.dir_in_archive == "/" ? "/" + target.name
                                      : target.dir_in_archive + "/" + target.name;
}

void AuditCommandLineRead(store::Archive& archive, const FileTarget& target,
                          std::string_view command, uint64_t version) {
  store::AuditEvent event;
  event.op = store::AuditOp::kCliRead;
  event.path = ArchivePathOf(target);
  event.version = version;
  event.detail = std::string(command);
  RecordCommandLineAudit(archive, std::move(event), "the read");
}

void AuditCommandLineDamage(store::Archive& archive, const std::string& path,
                            std::string_view command, uint64_t version,
                            const store::Status& read_status) {
  if (read_status.code() != store::Code::kCorruption) return;
  store::AuditEvent event;
  event.op = store::AuditOp::kDamageFound;
  event.path = path;
  event.version = version;
  event.result = EIO;
  event.detail = std::string(command) + ": " + read_status.message();
  RecordCommandLineAudit(archive, std::move(event), "the damage found");
}

}  // namespace medvfs::tools
