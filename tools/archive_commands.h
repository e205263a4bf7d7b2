// The archive subcommands, one file each (tools/cmd_<name>.cc); RegisterArchiveCommands
// (tools/cmd_archive.cc) adds them all.
#pragma once

#include <CLI/CLI.hpp>

namespace medvfs::tools {

void RegisterInitCommand(CLI::App& app);     // tools/cmd_init.cc
void RegisterLogCommand(CLI::App& app);      // tools/cmd_log.cc
void RegisterCatCommand(CLI::App& app);      // tools/cmd_cat.cc
void RegisterRestoreCommand(CLI::App& app);  // tools/cmd_restore.cc
void RegisterStatsCommand(CLI::App& app);    // tools/cmd_stats.cc
void RegisterTagsCommand(CLI::App& app);     // tools/cmd_tags.cc
void RegisterNoteCommand(CLI::App& app);     // tools/cmd_note.cc
void RegisterDiffCommand(CLI::App& app);     // tools/cmd_diff.cc
void RegisterAuditCommand(CLI::App& app);    // tools/cmd_audit.cc
void RegisterPasswdCommand(CLI::App& app);   // tools/cmd_passwd.cc
void RegisterVerifyCommand(CLI::App& app);   // tools/cmd_verify.cc

}  // namespace medvfs::tools
