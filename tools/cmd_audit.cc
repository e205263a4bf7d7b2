// medvfs audit ARCHIVE: the archive's audit log (who did what to which file, and when), as an
// aligned listing or JSON lines for a SIEM; --verify checks the hash chain. Reading the log is
// itself recorded.
#include <cstring>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "store/archive.h"
#include "store/views.h"
#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/output.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

struct AuditArgs {
  std::string archive;
  KeyOptions key;
  std::string since;
  std::string until;
  std::string path;
  std::optional<uint32_t> uid;
  bool json = false;
  bool verify = false;
};

int64_t ParseTimeOrFail(const std::string& text, std::string_view option) {
  auto time = store::ParseTimeNs(text);
  if (!time.ok()) {
    Fail(std::string(option) + " " + text + " is not a time",
         "give an ISO-8601 time such as 2026-11-21T10:00:00Z or a date such as 2026-11-21",
         kExitUsage);
  }
  return *time;
}

store::AuditFilter FilterFrom(const AuditArgs& args) {
  store::AuditFilter filter;
  if (!args.since.empty()) filter.since_ns = ParseTimeOrFail(args.since, "--since");
  if (!args.until.empty()) filter.until_ns = ParseTimeOrFail(args.until, "--until");
  if (!args.path.empty()) {
    filter.path = args.path.front() == '/' ? args.path : "/" + args.path;
  }
  filter.uid = args.uid;
  return filter;
}

// "ok", or the errno's name ("EACCES"); the number when it has no name.
std::string ResultText(int32_t result) {
  if (result == 0) return "ok";
  const char* name = strerrorname_np(result);
  return name != nullptr ? std::string(name) : "errno " + std::to_string(result);
}

std::string Cell(std::string_view text) { return text.empty() ? "-" : EscapeCell(text); }

void PrintHeader() {
  std::cout << std::left << std::setw(31) << "TIME (UTC)" << std::setw(9) << "SEQ" << std::setw(7)
            << "UID" << std::setw(7) << "GID" << std::setw(8) << "PID" << std::setw(16) << "PROGRAM"
            << std::setw(18) << "OPERATION" << std::setw(10) << "RESULT" << std::setw(8)
            << "VERSION"
            << "PATH  DETAIL\n";
}

// One aligned line per entry, written as it is read (a long log is never held in memory).
void PrintLine(const store::AuditEntry& e) {
  std::string where = Cell(e.path);
  if (!e.target_path.empty()) where += " -> " + EscapeCell(e.target_path);
  std::ostringstream line;
  line << std::left << std::setw(31) << store::FormatTimeNs(e.time_ns) << std::setw(9) << e.seq
       << std::setw(7) << e.uid << std::setw(7) << e.gid << std::setw(8) << e.pid << std::setw(16)
       << Cell(e.program) << std::setw(18) << store::AuditOpName(e.op) << std::setw(10)
       << ResultText(e.result) << std::setw(8)
       << (e.version == 0 ? std::string("-") : "v" + std::to_string(e.version)) << where;
  if (!e.detail.empty()) line << "  " << EscapeCell(e.detail);
  std::cout << line.str() << '\n';
}

void PrintJsonLine(const store::AuditEntry& e) {
  nlohmann::json out = {
      {"seq", e.seq},
      {"time", store::FormatTimeNs(e.time_ns)},
      {"time_ns", e.time_ns},
      {"uid", e.uid},
      {"gid", e.gid},
      {"pid", e.pid},
      {"program", e.program},
      {"op", store::AuditOpName(e.op)},
      {"result", ResultText(e.result)},
      {"errno", e.result},
      {"version", e.version == 0 ? nlohmann::json(nullptr) : nlohmann::json(e.version)},
      {"path", e.path},
      {"target_path",
       e.target_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.target_path)},
      {"detail", e.detail},
  };
  // Invalid UTF-8 in a program name is replaced rather than failing the listing.
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

// Records that the log was read (after reading, so a listing does not show its own read).
void RecordRead(store::Archive& archive, const AuditArgs& args, int32_t result) {
  store::AuditEvent event;
  event.op = store::AuditOp::kAuditRead;
  event.result = result;
  event.detail = args.verify ? "verify" : (args.json ? "list json" : "list");
  if (!args.path.empty()) event.path = args.path.front() == '/' ? args.path : "/" + args.path;
  RecordCommandLineAudit(archive, std::move(event), "reading the audit log");
}

// Returns false when the chain is broken.
bool Verify(store::Archive& archive, const AuditArgs& args) {
  auto report = archive.VerifyAuditChain();
  if (!report.ok()) FailStatus(report.status(), "cannot check the audit log of " + args.archive);
  if (report->intact) {
    std::cout << "audit chain: " << report->entries << " entries, intact" << std::endl;
    return true;
  }
  std::cout << "audit chain broken at entry " << report->first_bad_seq << ": " << report->problem
            << std::endl;
  return false;
}

void RunAudit(const AuditArgs& args) {
  const store::AuditFilter filter = FilterFrom(args);
  ArchiveTarget target = ResolveArchiveTarget(args.archive);
  if (target.through_mount) {
    Fail("the archive " + args.archive + " is mounted at " + target.mountpoint.string() +
             ", and the mount holds its database",
         "unmount it first (medvfs umount " + target.mountpoint.string() +
             "), then run medvfs audit on the archive directory");
  }
  std::unique_ptr<store::Archive> archive =
      OpenArchiveOrFail(target.archive, args.key, /*read_only=*/true);
  if (args.verify) {
    const bool intact = Verify(*archive, args);
    RecordRead(*archive, args, intact ? 0 : EIO);
    if (!intact) throw CLI::RuntimeError(kExitFailure);
    return;
  }
  if (!args.json) PrintHeader();
  store::Status status = archive->ScanAudit(filter, [&](const store::AuditEntry& entry) {
    if (args.json) {
      PrintJsonLine(entry);
    } else {
      PrintLine(entry);
    }
    return static_cast<bool>(std::cout);
  });
  std::cout << std::flush;
  RecordRead(*archive, args, status.ok() ? 0 : status.ToErrno());
  if (!status.ok()) {
    Fail("the audit log of " + args.archive + " could not be read to the end (" + status.message() +
             ")",
         "run medvfs audit --verify " + args.archive + " to see where it breaks");
  }
}

}  // namespace

void RegisterAuditCommand(CLI::App& app) {
  auto args = std::make_shared<AuditArgs>();
  CLI::App* command = app.add_subcommand(
      "audit", "The archive's audit log: who did what to which file; --verify checks its chain");
  command->add_option("ARCHIVE", args->archive, "The archive directory (not mounted)")->required();
  command->add_option("--since", args->since, "Only entries at or after this time (ISO-8601)");
  command->add_option("--until", args->until, "Only entries before this time (ISO-8601)");
  command->add_option("--path", args->path,
                      "Only entries on this path or below it (from the archive root)");
  command->add_option("--uid", args->uid, "Only entries of this user id");
  command->add_flag("--json", args->json, "Print one JSON object per line (for a SIEM)");
  command->add_flag("--verify", args->verify,
                    "Check the hash chain; exit 1 when an entry is missing or altered");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunAudit(*args); });
}

}  // namespace medvfs::tools
