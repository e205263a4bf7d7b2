// medvfs export --deidentify PATH DEST: de-identified copies of the DICOM files under PATH, laid
// out by pseudonym as in the `@anon` view (store::AnonymousPath); medvfs deid-map ARCHIVE: the
// pseudonym of every PatientID, for re-identification by the archive's owner.
//
// Through a mount the key stays in the daemon: each live DICOM file names its de-identified
// copy in `user.medvfs.anon_path` (or why it has none in `user.medvfs.anon_withheld`), and the
// copy is read from the mount's @anon view (which the daemon audits). On an unmounted archive
// the command opens the same view (fs::AnonView) over the archive with the user's key and
// records each file it read in the audit log. Both ways thus export one file set under one set
// of names (duplicates numbered by inode, as in @anon), and withhold the same files.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "fs/anon_views.h"
#include "tools/cli_error.h"
#include "tools/commands.h"
#include "tools/control_socket.h"
#include "tools/key_input.h"
#include "tools/stream.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kAnonPathXattr = "user.medvfs.anon_path";
constexpr std::string_view kAnonDirName = "@anon";
// The unmounted archive does not change while it is exported: one layout for the whole run.
constexpr uint64_t kExportGeneration = 0;

struct ExportArgs {
  std::string path;
  std::string dest;
  std::string archive;
  std::string config;
  KeyOptions key;
  bool deidentify = false;
};

struct ExportCounts {
  uint64_t exported = 0;
  uint64_t not_dicom = 0;                    // left out: not DICOM
  std::map<std::string, uint64_t> withheld;  // DICOM left out, by reason (medvfs-deid(5))
  uint64_t failed = 0;                       // DICOM that could not be read or de-identified
};

// Writes the exported files under DEST: each through a temporary name, fsync()ed and renamed,
// so that a file in DEST is always whole. Two different sources with the same de-identified
// name (one SOP instance stored twice) are kept apart as NAME_2.dcm, NAME_3.dcm ...
class ExportWriter {
 public:
  explicit ExportWriter(fs::path dest) : dest_(std::move(dest)) {}

  // Writes `relative` (a store::AnonymousPath) with what `produce` writes to the fd (0 or an
  // errno); returns 0 or the errno.
  int Write(const std::string& relative, const std::function<int(int fd)>& produce) {
    fs::path target = dest_ / UniqueName(relative);
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec) return ec.value();
    const fs::path temp = target.parent_path() / ("." + target.filename().string() + ".part-" +
                                                  std::to_string(::getpid()));
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    int err = produce(fd);
    if (err == 0 && ::fsync(fd) != 0) err = errno;
    if (::close(fd) != 0 && err == 0) err = errno;
    if (err == 0 && ::rename(temp.c_str(), target.c_str()) != 0) err = errno;
    if (err != 0) ::unlink(temp.c_str());
    return err;
  }

 private:
  std::string UniqueName(const std::string& relative) {
    if (taken_.insert(relative).second) return relative;
    const std::string stem = relative.substr(0, relative.size() - 4);  // without ".dcm"
    for (int n = 2;; ++n) {
      std::string candidate = stem + "_" + std::to_string(n) + ".dcm";
      if (taken_.insert(candidate).second) return candidate;
    }
  }

  fs::path dest_;
  std::set<std::string> taken_;
};

// Progress on a terminal: "exported N files" rewritten in place.
void ShowProgress(const ExportCounts& counts, bool done) {
  static const bool terminal = ::isatty(STDERR_FILENO) == 1;
  if (!terminal) return;
  if (!done && counts.exported % 50 != 0) return;
  std::cerr << "\rexported " << counts.exported << " files" << (done ? "\n" : "") << std::flush;
}

void PrintSummary(const ExportCounts& counts, const std::string& dest) {
  ShowProgress(counts, /*done=*/true);
  std::cout << "exported " << counts.exported << " de-identified DICOM files to " << dest;
  if (counts.not_dicom > 0) std::cout << "; left out " << counts.not_dicom << " non-DICOM files";
  std::cout << std::endl;
  // Counts and reasons only: which files they are would name patients.
  for (const auto& [reason, count] : counts.withheld) {
    std::cout << "withheld " << count << " DICOM files: " << reason << std::endl;
  }
  if (counts.failed > 0) {
    Fail(std::to_string(counts.failed) + " DICOM files could not be exported (see above)",
         "check them with medvfs verify; the others are in " + dest);
  }
}

// ---- Through a mount ---------------------------------------------------------------------

// Counts one file's outcome (0 or an errno), naming `file` on stderr when it failed.
void CountCopy(const fs::path& file, int err, ExportCounts* counts) {
  if (err != 0) {
    ++counts->failed;
    std::cerr << "medvfs: cannot export " << file.string() << ": " << std::strerror(err)
              << std::endl;
    return;
  }
  ++counts->exported;
  ShowProgress(*counts, false);
}

// Copies a de-identified file of the mount's @anon view to `relative` under DEST.
void CopyAnonCopy(const fs::path& source, const std::string& relative, const fs::path& file,
                  ExportWriter& writer, ExportCounts* counts) {
  const int err = writer.Write(relative, [&](int fd) {
    CopyResult copy = CopyFileTo(source, fd);
    return copy.read_errno != 0 ? copy.read_errno : copy.write_errno;
  });
  CountCopy(file, err, counts);
}

void ExportOneThroughMount(const fs::path& file, const fs::path& mountpoint, ExportWriter& writer,
                           ExportCounts* counts) {
  std::string anon_path;
  int err = GetXattr(file, std::string(kAnonPathXattr), &anon_path);
  if (err == ENODATA) {
    std::string reason;
    err = GetXattr(file, std::string(medvfs::fs::kAnonWithheldXattr), &reason);
    if (err == ENODATA) {
      ++counts->not_dicom;
      return;
    }
    if (err == 0 && reason == medvfs::fs::kDamagedReason) err = EINVAL;
    if (err != 0) return CountCopy(file, err, counts);
    ++counts->withheld[reason];
    return;
  }
  if (err == 0 && !anon_path.starts_with(std::string(kAnonDirName) + "/")) err = EIO;
  if (err != 0) return CountCopy(file, err, counts);
  CopyAnonCopy(mountpoint / anon_path, anon_path.substr(kAnonDirName.size() + 1), file, writer,
               counts);
}

// Files inside MOUNT/@anon are de-identified already: they are copied as they are.
void ExportAnonFile(const fs::path& file, const fs::path& anon_root, ExportWriter& writer,
                    ExportCounts* counts) {
  const std::string relative = file.lexically_relative(anon_root).string();
  if (relative == medvfs::fs::kWithheldReportName) return;  // the report, not a DICOM file
  CopyAnonCopy(file, relative, file, writer, counts);
}

void ExportThroughMount(const ExportArgs& args, const fs::path& path, const fs::path& mountpoint) {
  if (!args.config.empty()) {
    Fail("--config cannot be used through a mount: the daemon de-identifies with its own config",
         "mount with -o deid_config=FILE, or export from the unmounted archive");
  }
  const fs::path anon_root = mountpoint / kAnonDirName;
  const bool in_anon = path == anon_root || path.string().starts_with(anon_root.string() + "/");
  ExportWriter writer{fs::path(args.dest)};
  ExportCounts counts;
  const auto visit = [&](const fs::path& file) {
    if (in_anon) {
      ExportAnonFile(file, anon_root, writer, &counts);
    } else {
      ExportOneThroughMount(file, mountpoint, writer, &counts);
    }
  };
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(path, ec);
  if (ec) FailErrno(ec.value(), "cannot read " + args.path);
  if (fs::is_regular_file(status)) {
    visit(path);
  } else if (fs::is_directory(status)) {
    fs::recursive_directory_iterator it(path, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file(ec) && !it->is_symlink(ec)) visit(it->path());
    }
    if (ec) FailErrno(ec.value(), "cannot list " + args.path);
  } else {
    Fail(args.path + " is neither a file nor a directory", "name DICOM files or their folder");
  }
  PrintSummary(counts, args.dest);
}

// ---- On an unmounted archive -------------------------------------------------------------

store::DeidConfig LoadConfigOrFail(const std::string& file) {
  if (file.empty()) return store::DeidConfig{};
  store::StatusOr<store::DeidConfig> config = store::LoadDeidConfig(file);
  if (!config.ok()) FailStatus(config.status(), "cannot use the config " + file);
  return *config;
}

// De-identifies the current version of a file into the writer, through the @anon view over the
// archive, and records the read in the audit log. Returns the reason when it could not.
store::Status ExportVersion(store::Archive& archive, medvfs::fs::AnonView& anon,
                            const medvfs::fs::ViewDescriptor& view, const store::Attr& attr,
                            const std::string& path, ExportWriter& writer) {
  auto handle = anon.Open(view);
  if (!handle.ok()) return handle.status();
  store::AuditEvent event;
  event.op = store::AuditOp::kCliRead;
  event.path = path;
  event.version = attr.version;
  event.detail = "export --deidentify";
  RecordCommandLineAudit(archive, std::move(event), "the read");
  store::Status read_status;
  const int err = writer.Write(view.text, [&](int fd) {
    std::vector<char> piece(kCopyPieceBytes);
    for (uint64_t offset = 0;;) {
      auto n = (*handle)->Read(offset, piece);
      if (!n.ok()) {
        read_status = n.status();
        return EIO;
      }
      if (*n == 0) return 0;
      if (int e = WriteAll(fd, std::string_view(piece.data(), *n)); e != 0) return e;
      offset += *n;
    }
  });
  if (!read_status.ok()) {
    AuditCommandLineDamage(archive, path, "export --deidentify", attr.version, read_status);
    return read_status;
  }
  if (err != 0) {
    return store::Status::IoError(std::string("cannot write the copy: ") + std::strerror(err));
  }
  return store::Status::Ok();
}

void CountFailure(const store::Attr& attr, const store::Status& status, ExportCounts* counts) {
  ++counts->failed;
  // The inode number names the file without its path (paths may hold patient names).
  std::cerr << "medvfs: cannot export file #" << attr.ino << " version " << attr.version << ": "
            << status.message() << std::endl;
}

void ExportFile(store::Archive& archive, medvfs::fs::AnonView& anon, const store::Attr& attr,
                const std::string& path, ExportWriter& writer, ExportCounts* counts) {
  auto view = anon.DescriptorOfLiveFile(attr.ino, kExportGeneration);
  if (!view.ok()) {
    if (view.status().code() != store::Code::kNoData) {
      FailStatus(view.status(), "cannot read file #" + std::to_string(attr.ino));
    }
    auto reason = anon.WithheldReasonOfLiveFile(attr.ino, kExportGeneration);
    if (!reason.ok() && reason.status().code() == store::Code::kNoData) {
      ++counts->not_dicom;
    } else if (!reason.ok()) {
      FailStatus(reason.status(), "cannot read file #" + std::to_string(attr.ino));
    } else if (*reason == medvfs::fs::kDamagedReason) {
      CountFailure(attr, store::Status::Invalid("it cannot be de-identified (damaged)"), counts);
    } else {
      ++counts->withheld[*reason];
    }
    return;
  }
  store::Status status = ExportVersion(archive, anon, *view, attr, path, writer);
  if (!status.ok()) return CountFailure(attr, status, counts);
  ++counts->exported;
  ShowProgress(*counts, false);
}

void ExportTree(store::Archive& archive, medvfs::fs::AnonView& anon, const store::Attr& attr,
                const std::string& path, ExportWriter& writer, ExportCounts* counts) {
  if (S_ISDIR(attr.mode)) {
    auto entries = archive.ReadDir(attr.ino);
    if (!entries.ok()) FailStatus(entries.status(), "cannot list a directory");
    for (const store::DirEntry& entry : *entries) {
      if (entry.name == "." || entry.name == "..") continue;
      auto child = archive.GetAttr(entry.ino);
      if (!child.ok()) FailStatus(child.status(), "cannot read a directory entry");
      ExportTree(archive, anon, *child, path == "/" ? "/" + entry.name : path + "/" + entry.name,
                 writer, counts);
    }
    return;
  }
  if (!S_ISREG(attr.mode) || attr.version == 0) return;
  ExportFile(archive, anon, attr, path, writer, counts);
}

void ExportFromArchive(const ExportArgs& args, const fs::path& archive_dir,
                       const std::string& inner_path) {
  const store::DeidConfig config = LoadConfigOrFail(args.config);
  std::unique_ptr<store::Archive> archive =
      OpenArchiveOrFail(archive_dir, args.key, /*read_only=*/true);
  auto attr = store::LookupPath(*archive, inner_path);
  if (!attr.ok()) FailStatus(attr.status(), "cannot find " + args.path);
  medvfs::fs::AnonView anon(*archive, archive->NewDeidentifier(config));
  ExportWriter writer{fs::path(args.dest)};
  ExportCounts counts;
  std::string path = "/" + inner_path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  ExportTree(*archive, anon, attr->attr(), path.starts_with("//") ? path.substr(1) : path, writer,
             &counts);
  PrintSummary(counts, args.dest);
}

void RunExport(const ExportArgs& args) {
  if (!args.deidentify) {
    Fail("export writes de-identified copies only", "add --deidentify", kExitUsage);
  }
  std::error_code ec;
  const fs::path dest = fs::absolute(args.dest, ec).lexically_normal();
  const std::vector<MountEntry> mounts = ReadMountInfo();
  if (FindMedvfsMountContaining(mounts, dest)) {
    Fail("DEST " + args.dest + " is inside a medvfs mount",
         "export to a directory outside the archive (the copies are for research use)", kExitUsage);
  }
  std::optional<ArchiveSpec> spec;
  if (!args.archive.empty()) {
    spec = ArchiveSpec{args.archive, args.path};
  } else {
    spec = SplitArchiveSpec(args.path,
                            [](const fs::path& dir) { return store::Archive::Exists(dir); });
  }
  if (spec) {
    if (auto mount = FindMedvfsMountOfArchive(mounts, spec->archive)) {
      std::string inner = spec->path;
      while (inner.starts_with("/")) inner.erase(0, 1);
      ExportThroughMount(args, mount->mountpoint / inner, mount->mountpoint);
    } else {
      ExportFromArchive(args, spec->archive, spec->path);
    }
    return;
  }
  const fs::path abs = fs::absolute(args.path, ec).lexically_normal();
  std::optional<MountEntry> mount = FindMedvfsMountContaining(mounts, abs);
  if (!mount) {
    Fail(args.path + " is not inside a mounted medvfs archive",
         "give a path through a medvfs mount, ARCHIVE::/dir, or --archive ARCHIVE", kExitUsage);
  }
  fs::path path = abs;
  if (!path.has_filename() && path.has_relative_path()) path = path.parent_path();
  ExportThroughMount(args, path, mount->mountpoint);
}

// ---- deid-map ----------------------------------------------------------------------------

struct DeidMapArgs {
  std::string archive;
  std::string config;
  std::string pseudonym;
  KeyOptions key;
};

// The archive directory of a mount (its fsname), for a mounted ARCHIVE given as either path.
fs::path ArchiveDirOfMount(const ArchiveTarget& target) {
  for (const MountEntry& mount : ReadMountInfo()) {
    if (mount.mountpoint == target.mountpoint && mount.fstype == kMedvfsFsType) {
      return fs::path(mount.source);
    }
  }
  Fail("cannot tell which archive is mounted at " + target.mountpoint.string(),
       "give the archive directory");
}

// Mounted: the key is checked against the key slot, then the daemon (which holds the archive)
// builds the map and audits the request.
std::vector<store::PseudonymEntry> DeidMapThroughMount(const DeidMapArgs& args,
                                                       const ArchiveTarget& target,
                                                       const std::string& prefix) {
  const fs::path archive_dir = ArchiveDirOfMount(target);
  store::StatusOr<store::KeySource> key = ReadKey(args.key, /*confirm=*/false);
  if (!key.ok()) FailMessage(key.status().message());
  if (store::Status checked = store::Archive::CheckKey(archive_dir, *key); !checked.ok()) {
    FailStatus(checked, "cannot unlock the archive " + archive_dir.string());
  }
  auto entries = RequestDeidMap(archive_dir, prefix);
  if (!entries.ok()) {
    if (entries.status().code() == store::Code::kNotFound) {
      Fail("the mount daemon of " + archive_dir.string() + " does not answer on its socket",
           "unmount the archive and run medvfs deid-map on it");
    }
    FailStatus(entries.status(), "the mount daemon could not build the map");
  }
  return std::move(entries).value();
}

std::vector<store::PseudonymEntry> DeidMapOfArchive(const DeidMapArgs& args,
                                                    const fs::path& archive_dir,
                                                    const store::DeidConfig& config) {
  std::unique_ptr<store::Archive> archive =
      OpenArchiveOrFail(archive_dir, args.key, /*read_only=*/true);
  store::AuditEvent event;
  event.op = store::AuditOp::kCliRead;
  event.path = "/";
  event.detail = "deid-map";
  if (!RecordCommandLineAudit(*archive, std::move(event), "the re-identification") ||
      !archive->SyncAll().ok()) {
    Fail("the re-identification could not be recorded in the audit log",
         "check the archive's disk; nothing was printed");
  }
  auto entries = store::BuildDeidMap(*archive, *archive->NewDeidentifier(config));
  if (!entries.ok()) FailStatus(entries.status(), "cannot read the archive's DICOM tags");
  return std::move(entries).value();
}

void RunDeidMap(const DeidMapArgs& args) {
  const store::DeidConfig config = LoadConfigOrFail(args.config);
  ArchiveTarget target = ResolveArchiveTarget(args.archive);
  const std::vector<store::PseudonymEntry> entries =
      target.through_mount ? DeidMapThroughMount(args, target, config.pseudonym_prefix)
                           : DeidMapOfArchive(args, target.archive, config);
  std::cout << "pseudonym\tpatient_id\tversions\n";
  bool found = false;
  for (const store::PseudonymEntry& entry : entries) {
    if (!args.pseudonym.empty() && entry.pseudonym != args.pseudonym) continue;
    found = true;
    std::cout << entry.pseudonym << '\t' << entry.patient_id << '\t' << entry.versions << '\n';
  }
  std::cout << std::flush;
  if (!args.pseudonym.empty() && !found) {
    Fail("no patient of this archive has the pseudonym " + args.pseudonym,
         "check the pseudonym, and give the same --config (pseudonym_prefix) as the export");
  }
}

}  // namespace

void RegisterResearchCommands(CLI::App& app) {
  auto export_args = std::make_shared<ExportArgs>();
  CLI::App* export_command =
      app.add_subcommand("export", "Write de-identified copies of DICOM files for research");
  export_command
      ->add_flag("--deidentify", export_args->deidentify,
                 "De-identify the copies (PS3.15 Annex E; required)")
      ->required();
  export_command
      ->add_option("PATH", export_args->path,
                   "A file or directory: a path in a medvfs mount, or ARCHIVE::/dir")
      ->required();
  export_command->add_option("DEST", export_args->dest, "Directory for the copies (created)")
      ->required();
  export_command
      ->add_option("--archive", export_args->archive, "Unmounted archive; PATH is inside it")
      ->type_name("ARCHIVE");
  export_command
      ->add_option("--config", export_args->config,
                   "De-identification options (medvfs-deid(5)); unmounted archives only")
      ->type_name("FILE");
  AddKeyOptions(export_command, &export_args->key);
  export_command->callback([export_args] { RunExport(*export_args); });

  auto map_args = std::make_shared<DeidMapArgs>();
  CLI::App* map_command =
      app.add_subcommand("deid-map", "Print pseudonym and real PatientID pairs (needs the key)");
  map_command->add_option("ARCHIVE", map_args->archive, "The archive directory")->required();
  map_command->add_option("--config", map_args->config, "The de-identification config used")
      ->type_name("FILE");
  map_command->add_option("--pseudonym", map_args->pseudonym, "Print only this pseudonym's patient")
      ->type_name("PSEUDONYM");
  AddKeyOptions(map_command, &map_args->key);
  map_command->callback([map_args] { RunDeidMap(*map_args); });
}

}  // namespace medvfs::tools
