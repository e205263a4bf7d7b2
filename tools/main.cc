// medvfs: the command line of the medvfs archive (see man medvfs).
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/cli_error.h"
#include "tools/commands.h"
#include "tools/key_input.h"

#ifndef MEDVFS_VERSION
#define MEDVFS_VERSION "unknown"
#endif

namespace {

constexpr const char* kVersionText = "medvfs " MEDVFS_VERSION;

// Usage errors: one line naming the subcommand's help, exit 2.
int ReportParseError(const CLI::App& app, const CLI::ParseError& e) {
  const std::string name = e.get_name();
  if (name == "RuntimeError" || name == "CallForHelp" || name == "CallForAllHelp" ||
      name == "CallForVersion" || e.get_exit_code() == 0) {
    return app.exit(e);
  }
  std::string help = "medvfs --help";
  if (auto selected = app.get_subcommands(); !selected.empty()) {
    help = "medvfs " + selected.back()->get_name() + " --help";
  }
  std::cerr << "medvfs: " << e.what() << "; see " << help << std::endl;
  return medvfs::tools::kExitUsage;
}

int Run(int argc, char** argv) {
  // umask 077 and no core dumps, before any key or patient data is touched (see key_input.h).
  if (const std::string warning = medvfs::tools::HardenProcess(); !warning.empty()) {
    std::cerr << "medvfs: warning: " << warning << std::endl;
  }
  CLI::App app{"medvfs: a versioned, encrypted archive for medical images", "medvfs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", kVersionText, "Print the version and exit");
  app.footer("See man medvfs, and man medvfs-<subcommand> for each subcommand.");
  try {
    medvfs::tools::RegisterArchiveCommands(app);
    medvfs::tools::RegisterMountCommands(app);
    medvfs::tools::RegisterBackupCommand(app);
    medvfs::tools::RegisterRestoreBackupCommand(app);
    medvfs::tools::RegisterReceiveCommand(app);
    medvfs::tools::RegisterResearchCommands(app);
    medvfs::tools::RegisterGcCommand(app);
    medvfs::tools::RegisterLifecycleCommands(app);
    medvfs::tools::RegisterRemoteCommands(app);
    app.add_subcommand("version", "Print the version")->callback([] {
      std::cout << kVersionText << std::endl;
    });
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return ReportParseError(app, e);
  } catch (const std::exception& e) {
    std::cerr << "medvfs: internal error (" << e.what()
              << "); please report it with the command that caused it" << std::endl;
    return medvfs::tools::kExitFailure;
  } catch (...) {
    std::cerr << "medvfs: internal error; please report it with the command that caused it"
              << std::endl;
    return medvfs::tools::kExitFailure;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Run reports its own errors; this only catches what escapes them (setting up the command
  // line, or writing a report to a closed stderr), without anything that could throw again.
  try {
    return Run(argc, argv);
  } catch (...) {
    std::fputs("medvfs: internal error; please report it with the command that caused it\n",
               stderr);
    return medvfs::tools::kExitFailure;
  }
}
