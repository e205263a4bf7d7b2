// medvfs tags PATH [--version N] [--json]: the DICOM tags of a version, as a table (one line per
// top-level element) or in the DICOM JSON model. Through a mount, the table comes from the
// version's `tags.tsv` view and the JSON from its `dicom.json`: what the archive knows, as on an
// unmounted archive.
#include <cerrno>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/history.h"
#include "tools/stream.h"
#include "tools/tag_table.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

struct TagsArgs {
  std::string path;
  std::string archive;
  KeyOptions key;
  uint64_t version = 0;  // 0: the current version
  bool json = false;
};

[[noreturn]] void FailNoTags(const FileTarget& target, uint64_t number) {
  Fail(target.display + " version " + std::to_string(number) + " has no DICOM tags",
       "only DICOM content has tags (see the file's versions with medvfs log)");
}

// Pretty-prints the DICOM JSON model (the same text both ways).
void PrintJson(const std::string& json) {
  nlohmann::json parsed = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) {
    Fail("the DICOM JSON of these tags cannot be read",
         "use the same medvfs version for the mount and the command line, and run medvfs verify");
  }
  std::cout << parsed.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

void TagsThroughMount(const TagsArgs& args, const FileTarget& target) {
  const std::filesystem::path meta = MetaDirThroughMount(target, args.version);
  std::string text;
  int err = ReadSmallFile(meta / (args.json ? "dicom.json" : "tags.tsv"), &text);
  if (err == ENOENT) FailNoTags(target, ExplainMissingMeta(target, args.version).number);
  if (err != 0) FailErrno(err, "cannot read the tags of " + target.display);
  if (args.json) {
    PrintJson(text);
    return;
  }
  store::StatusOr<std::vector<store::DicomElement>> elements = store::ParseTagsTsv(text);
  if (!elements.ok()) {
    Fail("the mount returned tags that cannot be read (" + elements.status().message() + ")",
         "use the same medvfs version for the mount and the command line");
  }
  std::cout << FormatTagTable(*elements) << std::flush;
}

void TagsInArchive(const TagsArgs& args, const FileTarget& target) {
  std::unique_ptr<store::Archive> archive =
      OpenArchiveOrFail(target.archive, args.key, /*read_only=*/true);
  ArchiveFile file = ResolveFileInArchiveOrFail(*archive, target);
  auto versions = archive->ListVersions(file.record.history);
  if (!versions.ok()) FailStatus(versions.status(), "cannot read the history of " + target.display);
  const store::VersionInfo& version =
      PickVersionOrFail(*versions, target, file.record.live(), args.version);
  if (version.is_delete_marker()) FailMissingVersion(*versions, target, version.number);
  AuditCommandLineRead(*archive, target, "tags", version.number);
  store::StatusOr<store::DicomTags> tags = archive->GetTags(file.record.history, version.number);
  if (!tags.ok()) {
    if (tags.status().code() == store::Code::kNotFound) FailNoTags(target, version.number);
    FailStatus(tags.status(), "cannot read the tags of " + target.display);
  }
  if (args.json) {
    PrintJson(tags->json);
  } else {
    std::cout << FormatTagTable(tags->elements) << std::flush;
  }
}

void RunTags(const TagsArgs& args) {
  FileTarget target = ResolveFileTarget(args.path, args.archive);
  if (target.through_mount) {
    TagsThroughMount(args, target);
  } else {
    TagsInArchive(args, target);
  }
}

}  // namespace

void RegisterTagsCommand(CLI::App& app) {
  auto args = std::make_shared<TagsArgs>();
  CLI::App* command = app.add_subcommand("tags", "Show the DICOM tags of a file's version");
  command
      ->add_option("PATH", args->path, "The file: a path in a medvfs mount, or ARCHIVE::/dir/file")
      ->required();
  command->add_option("--version", args->version, "Version number (default: the current one)")
      ->check(CLI::PositiveNumber)
      ->type_name("N");
  command->add_flag("--json", args->json, "Print the DICOM JSON model (PS3.18 Annex F)");
  command->add_option("--archive", args->archive, "Unmounted archive; PATH is inside it")
      ->type_name("ARCHIVE");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunTags(*args); });
}

}  // namespace medvfs::tools
