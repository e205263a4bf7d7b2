// medvfs verify ARCHIVE [--quiet] [--json]: decrypts and checks every stored byte of an archive
// and its audit chain, without a mount (store/verify.h). Exit 0 when nothing is damaged, 1 when
// anything is. The report names the file and version a damaged chunk belongs to: it goes to the
// admin who holds the key, at the terminal, and never to a log.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "store/archive.h"
#include "store/verify.h"
#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/lifecycle.h"
#include "tools/output.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

namespace fs = std::filesystem;
using store::VerifyProblem;
using store::VerifyReport;

struct VerifyArgs {
  std::string archive;
  KeyOptions key;
  bool quiet = false;
  bool json = false;
  std::string remote;  // --remote NAME: check that remote's bucket instead
};

// The archive directory named by ARCHIVE, which may also be the mountpoint of a medvfs mount.
fs::path ArchiveDirectory(const std::string& archive) {
  if (store::Archive::Exists(archive)) return archive;
  std::error_code ec;
  const fs::path abs = fs::absolute(archive, ec).lexically_normal();
  for (const MountEntry& mount : ReadMountInfo()) {
    if (mount.fstype == kMedvfsFsType && mount.mountpoint == abs &&
        store::Archive::Exists(mount.source)) {
      return mount.source;
    }
  }
  Fail(archive + " is neither a medvfs archive nor a medvfs mount",
       "check the path (medvfs init creates an archive)");
}

// One line on stderr, rewritten in place ("\r"), at most every 200 ms.
class ProgressLine {
 public:
  void Update(const store::VerifyProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (p.phase == last_phase_ && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    last_phase_ = std::string(p.phase);
    std::string text = "verify: " + last_phase_;
    auto amount = [&p](uint64_t n) { return p.bytes ? HumanBytes(n) : std::to_string(n); };
    if (p.total != 0) {
      const uint64_t percent = p.done >= p.total ? 100 : p.done * 100 / p.total;
      text +=
          " " + std::to_string(percent) + "% (" + amount(p.done) + " of " + amount(p.total) + ")";
    } else if (p.done != 0) {
      text += " " + amount(p.done);
    }
    std::cerr << "\r\033[K" << text << std::flush;
    shown_ = true;
  }
  void Clear() {
    if (shown_) std::cerr << "\r\033[K" << std::flush;
    shown_ = false;
  }

 private:
  std::chrono::steady_clock::time_point last_{};
  std::string last_phase_;
  bool shown_ = false;
};

const char* SeverityName(VerifyProblem::Severity severity) {
  return severity == VerifyProblem::Severity::kError ? "error" : "warning";
}

void PrintText(const VerifyArgs& args, const VerifyReport& r) {
  for (const VerifyProblem& problem : r.problems) {
    std::cout << SeverityName(problem.severity) << ": " << problem.ToString() << "\n";
  }
  if (r.problems_dropped != 0) {
    std::cout << "... and " << r.problems_dropped << " more problems\n";
  }
  if (args.quiet) {
    std::cout << std::flush;
    return;
  }
  std::cout << "checked: " << r.database_files << " database files ("
            << HumanBytes(r.database_bytes) << "), " << r.records << " records, " << r.files
            << " files with " << r.versions << " versions, " << r.chunks << " chunks ("
            << HumanBytes(r.content_bytes) << " of content), " << r.packs << " pack files ("
            << HumanBytes(r.pack_bytes) << ")\n";
  if (r.remote_only_packs != 0) {
    std::cout << "note: " << r.remote_only_packs
              << " packs are in the S3 remote only (local_packs); check them with medvfs verify "
                 "--remote NAME\n";
  }
  if (r.orphan_chunks != 0) {
    std::cout << "note: " << r.orphan_chunks << " chunk entries (" << HumanBytes(r.orphan_bytes)
              << ") in the packs are garbage (no index refers to them: overwritten before a "
                 "commit, or written for one a crash stopped; not damage)\n";
  }
  if (r.removed_versions != 0) {
    std::cout << "note: " << r.removed_versions
              << " versions had their content removed by medvfs prune or purge (their records "
                 "stay; not damage)\n";
  }
  if (r.digests_pending != 0) {
    std::cout << "note: " << r.digests_pending
              << " mostly sparse versions have no SHA-256 computed yet (not damage; their chunks "
                 "were checked)\n";
  }
  std::cout << "audit log: ";
  if (!r.audit_checked) {
    std::cout << "not checked\n";
  } else {
    std::cout << r.audit.entries << " entries, " << (r.audit.intact ? "intact" : "BROKEN") << "\n";
  }
  if (r.archive_in_use) {
    std::cout << "note: the archive is mounted; this is the state it had when verify began\n";
  }
  if (r.clean()) {
    std::cout << "no damage found";
    if (r.warnings != 0) std::cout << " (" << r.warnings << " warnings)";
    std::cout << "\n";
  } else {
    std::cout << r.errors << " errors, " << r.warnings << " warnings: the archive is damaged; "
              << "read what you can through a mount and restore the rest from a backup\n";
  }
  std::cout << std::flush;
}

void PrintJson(const VerifyReport& r) {
  nlohmann::json problems = nlohmann::json::array();
  for (const VerifyProblem& problem : r.problems) {
    problems.push_back({{"severity", SeverityName(problem.severity)},
                        {"where", problem.where},
                        {"what", problem.what}});
  }
  nlohmann::json out = {
      {"clean", r.clean()},
      {"errors", r.errors},
      {"warnings", r.warnings},
      {"problems", problems},
      {"problems_dropped", r.problems_dropped},
      {"archive_in_use", r.archive_in_use},
      {"database_files", r.database_files},
      {"database_bytes", r.database_bytes},
      {"records", r.records},
      {"files", r.files},
      {"versions", r.versions},
      {"chunks", r.chunks},
      {"chunk_reads", r.chunk_reads},
      {"content_bytes", r.content_bytes},
      {"digests_pending", r.digests_pending},
      {"unreferenced_chunks", r.unreferenced_chunks},
      {"chunks_awaiting_gc", r.chunks_awaiting_gc},
      {"removed_versions", r.removed_versions},
      {"packs", r.packs},
      {"pack_bytes", r.pack_bytes},
      {"remote_only_packs", r.remote_only_packs},
      {"orphan_chunks", r.orphan_chunks},
      {"orphan_bytes", r.orphan_bytes},
      {"audit",
       {{"checked", r.audit_checked},
        {"entries", r.audit.entries},
        {"intact", r.audit.intact},
        {"problem", r.audit.problem}}},
  };
  std::cout << out.dump(2) << std::endl;
}

// Records the check in the audit log. A mounted archive's log belongs to its daemon, so the
// entry is left out then.
void AuditVerify(const fs::path& dir, const store::KeySource& key, const VerifyReport& report,
                 bool tell) {
  auto note = [tell](const std::string& why) {
    if (tell)
      std::cerr << "medvfs: note: the check is not recorded in the audit log (" << why << ")"
                << std::endl;
  };
  if (report.archive_in_use) return note("the archive is mounted");
  store::ArchiveOptions options;
  options.read_only = true;
  auto archive = store::Archive::Open(dir, key, options);
  if (!archive.ok()) return note(archive.status().ToString());
  store::AuditEvent event;
  event.op = store::AuditOp::kVerify;
  event.path = "/";
  event.result = report.clean() ? 0 : EIO;
  event.detail = std::to_string(report.errors) + " errors";
  RecordCommandLineAudit(**archive, std::move(event), "the check");
}

// medvfs verify --remote NAME ARCHIVE: the bucket's latest snapshot, every record file and
// every pack it names, read back and authenticated (store::VerifyRemote).
void RunVerifyRemote(const VerifyArgs& args, const fs::path& dir) {
  LifecycleAnswer listed = RunLifecycleRequest(dir, {{"op", "remotes"}}, args.key, "verify");
  store::RemoteLocation location;
  for (const nlohmann::json& r : listed.items) {
    if (r.value("name", "") != args.remote) continue;
    location.url = r.value("url", "");
    location.endpoint = r.value("endpoint", "");
    location.region = r.value("region", "");
  }
  if (location.url.empty()) {
    Fail(args.archive + " has no remote named " + args.remote, "see medvfs remote list", 2);
  }
  store::StatusOr<store::KeySource> key = ReadKey(args.key, /*confirm=*/false);
  if (!key.ok()) FailMessage(key.status().message());
  auto report = store::VerifyRemote(location, *key);
  if (!report.ok()) FailStatus(report.status(), "cannot verify the remote " + args.remote);
  if (args.json) {
    std::cout << nlohmann::json{{"remote", args.remote},
                                {"url", location.url},
                                {"snapshot", report->snapshot_seq},
                                {"record_files", report->record_files_checked},
                                {"packs", report->packs_checked},
                                {"pack_bytes", report->bytes_checked},
                                {"problems", report->problems}}
                     .dump(2)
              << std::endl;
  } else {
    for (const std::string& problem : report->problems) {
      std::cout << "ERROR " << location.url << ": " << problem << "\n";
    }
    if (!args.quiet) {
      std::cout << "checked " << location.url << ": snapshot " << report->snapshot_seq << ", "
                << report->record_files_checked << " record files, " << report->packs_checked
                << " packs (" << HumanBytes(report->bytes_checked) << ")"
                << (report->problems.empty() ? "; no problem found" : "") << std::endl;
    }
  }
  if (!report->problems.empty()) throw CLI::RuntimeError(kExitFailure);
}

void RunVerify(const VerifyArgs& args) {
  const fs::path dir = ArchiveDirectory(args.archive);
  if (!args.remote.empty()) return RunVerifyRemote(args, dir);
  store::StatusOr<store::KeySource> key = ReadKey(args.key, /*confirm=*/false);
  if (!key.ok()) FailMessage(key.status().message());
  ProgressLine line;
  store::VerifyOptions options;
  if (!args.quiet && !args.json && ::isatty(STDERR_FILENO)) {
    options.progress = [&line](const store::VerifyProgress& p) { line.Update(p); };
  }
  auto report = store::VerifyArchive(dir, *key, options);
  line.Clear();
  if (!report.ok()) {
    if (report.status().code() == store::Code::kCorruption) {
      Fail("the database of " + args.archive + " does not open: " + report.status().message(),
           "restore the archive from a backup");
    }
    FailStatus(report.status(), "cannot verify " + args.archive);
  }
  if (args.json) {
    PrintJson(*report);
  } else {
    PrintText(args, *report);
  }
  AuditVerify(dir, *key, *report, /*tell=*/!args.quiet && !args.json);
  if (!report->clean()) throw CLI::RuntimeError(kExitFailure);
}

}  // namespace

void RegisterVerifyCommand(CLI::App& app) {
  auto args = std::make_shared<VerifyArgs>();
  CLI::App* command = app.add_subcommand(
      "verify", "Decrypt and check every stored byte of an archive and its audit chain");
  command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)")
      ->required();
  command->add_flag("--quiet,-q", args->quiet, "Print only the problems found, no summary");
  command->add_flag("--json", args->json, "Print the report as JSON");
  command->add_option("--remote", args->remote,
                      "Check the bucket of this S3 remote instead (its latest snapshot, every "
                      "record file and pack it names)");
  AddKeyOptions(command, &args->key);
  command->callback([args] { RunVerify(*args); });
}

}  // namespace medvfs::tools
