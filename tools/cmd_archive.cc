// init, log, cat, restore, stats, tags, note, diff: the subcommands over an archive's content and
// history.
#include "tools/archive_commands.h"
#include "tools/commands.h"

namespace medvfs::tools {

void RegisterArchiveCommands(CLI::App& app) {
  RegisterInitCommand(app);
  RegisterLogCommand(app);
  RegisterCatCommand(app);
  RegisterRestoreCommand(app);
  RegisterStatsCommand(app);
  RegisterTagsCommand(app);
  RegisterNoteCommand(app);
  RegisterDiffCommand(app);
  RegisterAuditCommand(app);
  RegisterPasswdCommand(app);
  RegisterVerifyCommand(app);
}

}  // namespace medvfs::tools
