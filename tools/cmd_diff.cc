// medvfs diff PATH A B [--png OUT] [--frame N] [--heat-max V] [--json]: what changed between
// two versions of a file: DICOM tags, the SOPInstanceUID, pixels frame by frame, bytes; and a
// side-by-side picture. A and B are version numbers ("3" or "v3"), "current", or times (the
// version that was current then).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/diff.h"
#include "store/views.h"
#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/history.h"
#include "tools/stream.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

struct DiffArgs {
  std::string path;
  std::string a;
  std::string b;
  std::string archive;
  KeyOptions key;
  std::string png;
  uint32_t frame = 0;   // 0: not given
  double heat_max = 0;  // 0: not given
  bool json = false;
};

// What the user typed for A or B.
struct VersionSpec {
  std::string text;
  uint64_t number = 0;           // a version number
  bool current = false;          // "current"
  std::optional<int64_t> at_ns;  // a time
};

VersionSpec ParseVersionSpec(const std::string& text) {
  VersionSpec spec;
  spec.text = text;
  if (text == "current") {
    spec.current = true;
    return spec;
  }
  std::string digits = text;
  if (!digits.empty() && (digits[0] == 'v' || digits[0] == 'V')) digits.erase(0, 1);
  if (!digits.empty() && digits.size() <= 19 &&
      digits.find_first_not_of("0123456789") == std::string::npos) {
    spec.number = std::stoull(digits);
    if (spec.number == 0) {
      Fail("there is no version 0", "versions are numbered from 1 (see medvfs log)", kExitUsage);
    }
    return spec;
  }
  store::StatusOr<int64_t> at = store::ParseTimeNs(text);
  if (!at.ok()) {
    Fail("cannot read the version " + text + " (" + at.status().message() + ")",
         "give a version number (3 or v3), current, or a time in ISO 8601 such as "
         "2026-11-21T10:00:00Z",
         kExitUsage);
  }
  spec.at_ns = *at;
  return spec;
}

// The version a spec names in a history (oldest first); fails with the reason.
const store::VersionInfo& ChooseVersion(const std::vector<store::VersionInfo>& versions,
                                        const VersionSpec& spec, const FileTarget& target,
                                        bool live) {
  if (spec.at_ns) {
    const store::VersionInfo* found = nullptr;
    for (const store::VersionInfo& v : versions) {
      if (v.time_ns <= *spec.at_ns) found = &v;
    }
    if (found == nullptr) {
      Fail(target.display + " did not exist yet at " + spec.text,
           "pick a later time (see medvfs log)");
    }
    if (found->is_delete_marker()) {
      Fail(target.display + " was deleted at " + spec.text, "pick another time (see medvfs log)");
    }
    return *found;
  }
  const store::VersionInfo& version =
      PickVersionOrFail(versions, target, live, spec.current ? 0 : spec.number);
  if (version.is_delete_marker()) FailMissingVersion(versions, target, version.number);
  return version;
}

// A version read through the mount's `@version/NAME/vN` file.
class FileDiffSource final : public store::DiffSource {
 public:
  FileDiffSource(int fd, uint64_t size) : fd_(fd), size_(size) {}
  ~FileDiffSource() override { ::close(fd_); }
  FileDiffSource(const FileDiffSource&) = delete;
  FileDiffSource& operator=(const FileDiffSource&) = delete;

  uint64_t size() const override { return size_; }
  store::StatusOr<size_t> ReadAt(uint64_t offset, std::span<char> out) override {
    for (;;) {
      const ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return store::StatusFromErrno(errno, "cannot read a version");
    }
  }

 private:
  const int fd_;
  const uint64_t size_;
};

// A version read from an unmounted archive.
class HandleDiffSource final : public store::DiffSource {
 public:
  HandleDiffSource(std::unique_ptr<store::FileHandle> handle, uint64_t size)
      : handle_(std::move(handle)), size_(size) {}
  uint64_t size() const override { return size_; }
  store::StatusOr<size_t> ReadAt(uint64_t offset, std::span<char> out) override {
    return handle_->Read(offset, out);
  }

 private:
  std::unique_ptr<store::FileHandle> handle_;
  const uint64_t size_;
};

struct ChosenSide {
  store::VersionInfo version;
  std::unique_ptr<store::DiffSource> source;
};

std::unique_ptr<store::DiffSource> OpenThroughMount(const FileTarget& target,
                                                    const store::VersionInfo& version) {
  const std::filesystem::path path =
      target.dir / "@version" / target.name / ("v" + std::to_string(version.number));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    FailErrno(errno,
              "cannot open version " + std::to_string(version.number) + " of " + target.display);
  }
  return std::make_unique<FileDiffSource>(fd, version.size);
}

std::unique_ptr<store::DiffSource> OpenInArchive(store::Archive& archive, const ArchiveFile& file,
                                                 const FileTarget& target,
                                                 const store::VersionInfo& version) {
  auto handle = archive.OpenVersion(file.record.history, version.number);
  if (!handle.ok()) {
    FailStatus(handle.status(),
               "cannot open version " + std::to_string(version.number) + " of " + target.display);
  }
  return std::make_unique<HandleDiffSource>(std::move(handle).value(), version.size);
}

store::DiffSide SideOf(const ChosenSide& chosen) {
  store::DiffSide side;
  side.label = "v" + std::to_string(chosen.version.number);
  side.time_ns = chosen.version.time_ns;
  side.source = chosen.source.get();
  return side;
}

void WritePng(const DiffArgs& args, const store::DiffResult& result) {
  if (result.png.empty()) {
    Fail("cannot draw " + args.png + ": " + result.png_not_rendered_reason,
         "compare two versions whose pixels can be decoded (DICOM or PNG/JPEG pictures)");
  }
  const int fd = ::open(args.png.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) FailErrno(errno, "cannot write " + args.png);
  const int err = WriteAll(fd, result.png);
  if (::close(fd) != 0 && err == 0) FailErrno(errno, "cannot write " + args.png);
  if (err != 0) FailErrno(err, "cannot write " + args.png);
}

void RunDiff(const DiffArgs& args) {
  const VersionSpec spec_a = ParseVersionSpec(args.a);
  const VersionSpec spec_b = ParseVersionSpec(args.b);
  FileTarget target = ResolveFileTarget(args.path, args.archive);
  ChosenSide a;
  ChosenSide b;
  std::unique_ptr<store::Archive> archive;  // outlives the sources that read from it
  if (target.through_mount) {
    std::vector<store::VersionInfo> versions = HistoryThroughMount(target);
    const bool live = IsLiveThroughMount(target);
    a.version = ChooseVersion(versions, spec_a, target, live);
    b.version = ChooseVersion(versions, spec_b, target, live);
    a.source = OpenThroughMount(target, a.version);
    b.source = OpenThroughMount(target, b.version);
  } else {
    archive = OpenArchiveOrFail(target.archive, args.key, /*read_only=*/true);
    ArchiveFile file = ResolveFileInArchiveOrFail(*archive, target);
    auto versions = archive->ListVersions(file.record.history);
    if (!versions.ok()) FailStatus(versions.status(), "cannot read the history of " + args.path);
    a.version = ChooseVersion(*versions, spec_a, target, file.record.live());
    b.version = ChooseVersion(*versions, spec_b, target, file.record.live());
    a.source = OpenInArchive(*archive, file, target, a.version);
    b.source = OpenInArchive(*archive, file, target, b.version);
    AuditCommandLineRead(*archive, target, "diff", a.version.number);
    AuditCommandLineRead(*archive, target, "diff", b.version.number);
  }

  store::DiffOptions options;
  options.render_png = !args.png.empty();
  if (args.frame != 0) options.png_frame = args.frame;
  if (args.heat_max > 0) options.png_heat_max = args.heat_max;
  store::StatusOr<store::DiffResult> result = store::DiffVersions(SideOf(a), SideOf(b), options);
  if (!result.ok()) FailStatus(result.status(), "cannot compare the versions of " + args.path);
  std::cout << (args.json ? store::FormatDiffJson(*result) : store::FormatDiffText(*result))
            << std::flush;
  if (!args.png.empty()) {
    WritePng(args, *result);
    if (!args.json) {
      std::cout << "Picture: " << args.png << " (frame " << result->png_frame << ": "
                << result->a.label << " | " << result->b.label << " | difference)" << std::endl;
    }
  }
}

}  // namespace

void RegisterDiffCommand(CLI::App& app) {
  auto args = std::make_shared<DiffArgs>();
  CLI::App* command = app.add_subcommand(
      "diff", "Compare two versions of a file: DICOM tags, pixels frame by frame, bytes");
  command
      ->add_option("PATH", args->path, "The file: a path in a medvfs mount, or ARCHIVE::/dir/file")
      ->required();
  command->add_option("A", args->a, "The older side: N, vN, current, or a time (ISO 8601)")
      ->required();
  command->add_option("B", args->b, "The newer side: N, vN, current, or a time (ISO 8601)")
      ->required();
  command->add_option("--png", args->png, "Also write A | B | difference as a PNG picture")
      ->type_name("OUT.png");
  command
      ->add_option("--frame", args->frame,
                   "The frame the picture shows (from 1; default: the first that differs)")
      ->check(CLI::PositiveNumber)
      ->type_name("N");
  command
      ->add_option("--heat-max", args->heat_max,
                   "The difference drawn white in the picture's heat map (default: the window "
                   "width, else the largest stored value)")
      ->check(CLI::PositiveNumber)
      ->type_name("V");
  command->add_flag("--json", args->json, "Print the comparison as JSON");
  command->add_option("--archive", args->archive, "Unmounted archive; PATH is inside it")
      ->type_name("ARCHIVE");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunDiff(*args); });
}

}  // namespace medvfs::tools
