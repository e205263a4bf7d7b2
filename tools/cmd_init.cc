// medvfs init ARCHIVE: creates an encrypted archive.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <system_error>

#include "store/archive.h"
#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/key_input.h"

namespace medvfs::tools {
namespace {

namespace fs = std::filesystem;

struct InitArgs {
  std::string archive;
  KeyOptions key;
  store::KdfParams kdf;
};

// Refuses, before asking for a passphrase, a path that Archive::Create would refuse.
void CheckNewArchivePath(const fs::path& archive) {
  std::error_code ec;
  fs::file_status status = fs::symlink_status(archive, ec);
  if (ec || !fs::exists(status)) return;
  if (!fs::is_directory(status)) {
    Fail(archive.string() + " already exists and is not a directory",
         "choose a new path for the archive");
  }
  if (store::Archive::Exists(archive)) {
    Fail(archive.string() + " is already a medvfs archive",
         "choose a new path, or use the existing archive");
  }
  if (!fs::is_empty(archive, ec) || ec) {
    Fail(archive.string() + " exists and is not empty",
         "choose a new or empty directory for the archive");
  }
}

void RunInit(const InitArgs& args) {
  fs::path archive(args.archive);
  CheckNewArchivePath(archive);
  store::StatusOr<store::KeySource> key = ReadKey(args.key, /*confirm=*/true);
  if (!key.ok()) FailMessage(key.status().message());
  store::ArchiveOptions options;
  options.kdf = args.kdf;
  auto created = store::Archive::Create(archive, *key, options);
  if (!created.ok()) FailStatus(created.status(), "cannot create the archive " + args.archive);
  created->reset();  // closes the archive before we report success
  std::cout << "Created the encrypted archive " << args.archive << " ("
            << (key->kind() == store::KeySourceKind::kKeyFile ? "key file" : "passphrase")
            << ").\nMount it with: medvfs mount " << args.archive << " MOUNTPOINT" << std::endl;
}

}  // namespace

void RegisterInitCommand(CLI::App& app) {
  auto args = std::make_shared<InitArgs>();
  CLI::App* command = app.add_subcommand("init", "Create an encrypted archive");
  command->add_option("ARCHIVE", args->archive, "Directory to create (new or empty)")->required();
  AddKeyOptions(command, &args->key);
  AddKdfCostOption(command, "Passphrase hashing cost", &args->kdf);
  command->callback([args] { RunInit(*args); });
}

}  // namespace medvfs::tools
