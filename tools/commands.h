// Registration of the `medvfs` subcommands. Each Register* adds its subcommands to the app
// and sets their callbacks; a callback that fails throws CLI::RuntimeError(exit code) after
// printing a one-line reason on stderr.
#pragma once

#include <CLI/CLI.hpp>

namespace medvfs::tools {

// init, log, cat, restore, stats, tags, note, diff, verify, passwd, audit (tools/cmd_*.cc)
void RegisterArchiveCommands(CLI::App& app);
void RegisterMountCommands(CLI::App& app);  // mount, umount                 (tools/cmd_mount.cc)
void RegisterBackupCommand(CLI::App& app);  // backup         (tools/cmd_backup.cc)
void RegisterRestoreBackupCommand(CLI::App& app);  // restore-backup (tools/cmd_backup.cc)
void RegisterReceiveCommand(CLI::App& app);        // receive        (tools/cmd_receive.cc)
void RegisterResearchCommands(CLI::App& app);      // export, deid-map   (tools/cmd_export.cc)
void RegisterGcCommand(CLI::App& app);             // gc             (tools/cmd_gc.cc)
// hold, retention, prune, purge                            (tools/cmd_lifecycle.cc)
void RegisterLifecycleCommands(CLI::App& app);
// remote add|list|remove|sync, restore-remote                   (tools/cmd_remote.cc)
void RegisterRemoteCommands(CLI::App& app);

}  // namespace medvfs::tools
