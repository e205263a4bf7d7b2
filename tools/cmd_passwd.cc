// medvfs passwd ARCHIVE [--new-passphrase-file F | --new-key-file F]: changes the passphrase
// or key file that unlocks an archive. The data key is rewrapped under the new key-encryption
// key (store::RewrapKeySlot); no data is re-encrypted.
//
// While the archive is mounted: the key slot file is separate from the database and its lock,
// and the daemon holds the data key it unwrapped at mount time, so rewrapping is safe then
// too; the mount goes on working, and the next mount needs the new key. Only the audit entry
// cannot be written then (the daemon owns the database): passwd says so on stderr.
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/archive.h"
#include "store/keys.h"
#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/key_input.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

namespace fs = std::filesystem;

struct PasswdArgs {
  std::string archive;
  KeyOptions key;
  NewKeyOptions new_key;
  store::KdfParams kdf;
};

// The archive directory named by ARCHIVE (the directory itself, or its mountpoint), and the
// mountpoint when it is mounted here.
struct PasswdTarget {
  fs::path archive;
  std::optional<fs::path> mountpoint;
};

PasswdTarget ResolvePasswdTarget(const std::string& arg) {
  PasswdTarget target;
  target.archive = fs::path(arg);
  const std::vector<MountEntry> mounts = ReadMountInfo();
  if (auto mount = FindMedvfsMountOfArchive(mounts, target.archive)) {
    target.mountpoint = mount->mountpoint;
    return target;
  }
  std::error_code ec;
  const fs::path abs = fs::absolute(target.archive, ec).lexically_normal();
  if (!ec) {
    auto mount = FindMedvfsMountContaining(mounts, abs);
    if (mount && mount->mountpoint == abs) {
      target.archive = mount->source;
      target.mountpoint = mount->mountpoint;
    }
  }
  if (!store::Archive::Exists(target.archive)) {
    Fail(arg + " is not a medvfs archive",
         "give the archive directory that medvfs init created (or its mountpoint)");
  }
  return target;
}

const char* KindText(store::KeySourceKind kind) {
  return kind == store::KeySourceKind::kKeyFile ? "key file" : "passphrase";
}

[[noreturn]] void FailRewrap(const store::Status& status, const std::string& archive) {
  const std::string what = "cannot change the key of " + archive + ": ";
  switch (status.code()) {
    case store::Code::kWrongKey:
      Fail(what + status.message(),
           "give the current key with MEDVFS_PASSPHRASE, --passphrase-file or --key-file");
    case store::Code::kBusy:
      Fail(what + status.message(), "wait for the other medvfs passwd to finish");
    case store::Code::kInvalid:
      Fail(what + status.message(),
           "for a key file archive give --key-file, for a passphrase archive a passphrase");
    default:
      FailStatus(status, "cannot change the key of " + archive);
  }
}

// Records the change in the archive's audit log, which needs the database: not possible while
// a mount (or another process) holds it; then a note says so, and passwd still succeeds.
void RecordPasswd(const PasswdTarget& target, const store::KeySource& new_key,
                  const std::string& detail) {
  if (target.mountpoint) {
    std::cerr << "medvfs: note: " << target.archive.string() << " is mounted at "
              << target.mountpoint->string()
              << "; the change is not recorded in its audit log while it is mounted, and the "
                 "mount keeps working (the next mount needs the new key)"
              << std::endl;
    return;
  }
  store::ArchiveOptions options;
  options.read_only = true;  // still appends audit entries
  auto opened = store::Archive::Open(target.archive, new_key, options);
  if (!opened.ok()) {
    std::cerr << "medvfs: note: the change could not be recorded in the audit log ("
              << (opened.status().code() == store::Code::kBusy
                      ? std::string("the archive is in use by another process")
                      : opened.status().ToString())
              << ")" << std::endl;
    return;
  }
  store::AuditEvent event;
  event.op = store::AuditOp::kPasswd;
  event.detail = detail;
  RecordCommandLineAudit(**opened, std::move(event), "the change");
}

void RunPasswd(const PasswdArgs& args) {
  const PasswdTarget target = ResolvePasswdTarget(args.archive);
  const fs::path slot = target.archive / store::kKeySlotFileName;

  store::StatusOr<store::KeySource> old_key = ReadKey(args.key, /*confirm=*/false);
  if (!old_key.ok()) FailMessage(old_key.status().message());
  // Checked before asking for the new passphrase, so that a mistyped current one is said at
  // once. Writes nothing.
  {
    store::SecretKey data_key;
    store::Status unlocked = store::UnlockKeySlot(slot, *old_key, &data_key, nullptr);
    if (!unlocked.ok()) FailRewrap(unlocked, args.archive);
  }
  store::StatusOr<store::KeySource> new_key = ReadNewKey(args.new_key);
  if (!new_key.ok()) FailMessage(new_key.status().message());

  store::Status rewrapped = store::RewrapKeySlot(slot, *old_key, *new_key, args.kdf);
  if (!rewrapped.ok()) FailRewrap(rewrapped, args.archive);

  const std::string detail =
      std::string(KindText(old_key->kind())) + " -> " + KindText(new_key->kind());
  std::cout << "Changed the key of " << args.archive << " (" << detail
            << "). No data was re-encrypted." << std::endl;
  RecordPasswd(target, *new_key, detail);
}

}  // namespace

void RegisterPasswdCommand(CLI::App& app) {
  auto args = std::make_shared<PasswdArgs>();
  CLI::App* command = app.add_subcommand(
      "passwd", "Change the passphrase or key file of an archive (rewraps the key only)");
  command->add_option("ARCHIVE", args->archive, "The archive directory (or its mountpoint)")
      ->required();
  AddKeyOptions(command, &args->key);
  AddNewKeyOptions(command, &args->new_key);
  AddKdfCostOption(command, "Hashing cost of a new passphrase", &args->kdf);
  command->callback([args] { RunPasswd(*args); });
}

}  // namespace medvfs::tools
