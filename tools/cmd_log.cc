// medvfs log PATH: a file's history, oldest first, delete markers included; DICOM versions
// that break traceability (same SOPInstanceUID, other content) are marked, and so are versions
// whose content prune or purge removed and versions a legal hold keeps.
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/views.h"
#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/history.h"
#include "tools/output.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

constexpr size_t kShortShaChars = 12;
// Marks, after the version number, a version that keeps the SOPInstanceUID of the version
// before it but not its content (DICOM says one SOP Instance UID means one content).
constexpr std::string_view kSopReusedMark = "!";

struct LogArgs {
  std::string path;
  std::string archive;
  KeyOptions key;
  bool json = false;
};

std::vector<store::VersionInfo> VersionsInArchive(const LogArgs& args, const FileTarget& target) {
  std::unique_ptr<store::Archive> archive =
      OpenArchiveOrFail(target.archive, args.key, /*read_only=*/true);
  ArchiveFile file = ResolveFileInArchiveOrFail(*archive, target);
  auto versions = archive->ListVersions(file.record.history);
  if (!versions.ok()) FailStatus(versions.status(), "cannot read the history of " + target.display);
  AuditCommandLineRead(*archive, target, "log", 0);
  return std::move(versions).value();
}

std::string OperationText(const store::VersionInfo& v) {
  std::string text(store::OperationName(v.op));
  if (v.op == store::Operation::kRestore && v.restored_from != 0) {
    text += " of v" + std::to_string(v.restored_from);
  }
  return text;
}

// "pruned 2026-12-07T10:00:00Z by uid 0 (medvfs)", "held: <reason>", or "".
std::string LifecycleText(const store::VersionInfo& v) {
  std::string text;
  if (v.content_removed()) {
    text = std::string(store::ContentRemovalName(v.removed)) + " " +
           store::FormatTimeNs(v.removed_time_ns).substr(0, 19) + "Z by uid " +
           std::to_string(v.removed_by_uid);
    if (!v.removed_by_program.empty()) text += " (" + v.removed_by_program + ")";
    if (!v.removed_reason.empty()) text += ": " + v.removed_reason;
  }
  if (!v.hold.empty()) text = "held: " + v.hold;
  return EscapeCell(text);
}

void PrintTable(const std::vector<store::VersionInfo>& versions) {
  std::vector<std::vector<std::string>> rows;
  bool any_lifecycle = false;
  for (const store::VersionInfo& v : versions) {
    any_lifecycle = any_lifecycle || v.content_removed() || !v.hold.empty();
  }
  rows.push_back(
      {"VERSION", "TIME (UTC)", "SIZE", "SHA256", "UID", "PROGRAM", "OPERATION", "NOTE"});
  if (any_lifecycle) rows.back().push_back("LIFECYCLE");
  bool any_reused = false;
  for (const store::VersionInfo& v : versions) {
    bool marker = v.is_delete_marker();
    std::string number = std::to_string(v.number);
    if (v.sop_instance_uid_reused) {
      number += kSopReusedMark;
      any_reused = true;
    }
    rows.push_back({number, store::FormatTimeNs(v.time_ns), marker ? "-" : std::to_string(v.size),
                    marker || v.removed == store::ContentRemoval::kPurged
                        ? "-"
                        : store::FormatVersionSha256(v).substr(0, kShortShaChars),
                    std::to_string(v.writer_uid), EscapeCell(v.program), OperationText(v),
                    EscapeCell(v.note)});
    if (any_lifecycle) rows.back().push_back(LifecycleText(v));
  }
  std::cout << FormatTable(rows);
  if (any_reused) {
    std::cout << kSopReusedMark << " " << store::kSopInstanceUidReusedText
              << " (DICOM traceability: one SOP Instance UID must mean one content)\n";
  }
  std::cout << std::flush;
}

void PrintJson(const std::string& path, const std::vector<store::VersionInfo>& versions) {
  nlohmann::json list = nlohmann::json::array();
  for (const store::VersionInfo& v : versions) {
    nlohmann::json entry = {
        {"number", v.number},
        {"time", store::FormatTimeNs(v.time_ns)},
        {"time_ns", v.time_ns},
        {"size", v.size},
        {"sha256", v.is_delete_marker() || v.removed == store::ContentRemoval::kPurged
                       ? nlohmann::json(nullptr)
                       : nlohmann::json(store::FormatVersionSha256(v))},
        {"uid", v.writer_uid},
        {"gid", v.writer_gid},
        {"pid", v.writer_pid},
        {"program", v.program},
        {"operation", store::OperationName(v.op)},
        {"note", v.note},
        {"sop_instance_uid",
         v.sop_instance_uid.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.sop_instance_uid)},
        {"sop_instance_uid_reused", v.sop_instance_uid_reused},
    };
    if (v.restored_from != 0) entry["restored_from"] = v.restored_from;
    if (v.content_removed()) {
      entry["content"] = store::ContentRemovalName(v.removed);
      entry["removed_time"] = store::FormatTimeNs(v.removed_time_ns);
      entry["removed_uid"] = v.removed_by_uid;
      entry["removed_program"] = v.removed_by_program;
      if (!v.removed_reason.empty()) entry["removed_reason"] = v.removed_reason;
    }
    if (!v.hold.empty()) entry["hold"] = v.hold;
    list.push_back(std::move(entry));
  }
  nlohmann::json out = {{"path", path}, {"versions", std::move(list)}};
  std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

void RunLog(const LogArgs& args) {
  FileTarget target = ResolveFileTarget(args.path, args.archive);
  std::vector<store::VersionInfo> versions =
      target.through_mount ? HistoryThroughMount(target) : VersionsInArchive(args, target);
  if (args.json) {
    PrintJson(args.path, versions);
  } else {
    PrintTable(versions);
  }
}

}  // namespace

void RegisterLogCommand(CLI::App& app) {
  auto args = std::make_shared<LogArgs>();
  CLI::App* command =
      app.add_subcommand("log", "Show a file's history, oldest first (also for deleted files)");
  command
      ->add_option("PATH", args->path, "The file: a path in a medvfs mount, or ARCHIVE::/dir/file")
      ->required();
  command->add_option("--archive", args->archive, "Unmounted archive; PATH is inside it")
      ->type_name("ARCHIVE");
  command->add_flag("--json", args->json, "Print JSON (full SHA-256, all fields)");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunLog(*args); });
}

}  // namespace medvfs::tools
