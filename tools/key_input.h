// How the command line obtains an archive's key: --key-file, --passphrase-file,
// MEDVFS_PASSPHRASE, or a prompt on the terminal (without echo); and, for `medvfs passwd`, the
// new key: --new-key-file, --new-passphrase-file, MEDVFS_NEW_PASSPHRASE, or a prompt asked
// twice. Every temporary copy of a passphrase is wiped; only the returned KeySource holds it.
#pragma once

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "store/keys.h"
#include "store/status.h"

namespace medvfs::tools {

// Process hygiene for the programs that hold keys and decrypted data (medvfs, mount.medvfs),
// called first thing in main():
// - umask(077): every file and directory medvfs creates (the archive, RocksDB's files, a
//   `medvfs diff --png` picture) is private to its owner: 0600 files, 0700 directories.
// - prctl(PR_SET_DUMPABLE, 0): no core dump (it would hold keys and decrypted patient data),
//   and processes of the same user can neither ptrace it nor read its memory, environment or
//   file descriptors through /proc. Its own /proc/self still works. Skipped when the
//   environment has MEDVFS_ALLOW_CORE_DUMPS=1 (for debugging).
// Returns a warning to print, or "" (the one thing that can fail is prctl).
std::string HardenProcess();

struct KeyOptions {
  std::string key_file;
  std::string passphrase_file;
};

struct NewKeyOptions {
  std::string key_file;
  std::string passphrase_file;
};

// Adds --key-file and --passphrase-file to a subcommand.
void AddKeyOptions(CLI::App* command, KeyOptions* options);
// Adds --new-key-file and --new-passphrase-file to a subcommand.
void AddNewKeyOptions(CLI::App* command, NewKeyOptions* options);

// Adds `--kdf-cost fast|default` (the scrypt cost of a passphrase the command wraps a key
// under), described as `what`, to a subcommand; *params gets the chosen cost. `fast` is cheap
// to guess: for tests and demos only.
void AddKdfCostOption(CLI::App* command, std::string_view what, store::KdfParams* params);

// Returns the key the user gave. Order: --key-file, --passphrase-file (first line, without
// the newline), MEDVFS_PASSPHRASE, then a terminal prompt. With `confirm` (new archives), the
// prompt asks twice and refuses a mismatch; an empty passphrase is refused. Without any
// source and no terminal: kInvalid with a message naming the three ways.
store::StatusOr<store::KeySource> ReadKey(const KeyOptions& options, bool confirm);

// Returns the new key for `medvfs passwd`. Order: --new-key-file, --new-passphrase-file (first
// line), MEDVFS_NEW_PASSPHRASE, then a terminal prompt asked twice (a mismatch is refused). An
// empty passphrase is refused. Without any source and no terminal: kInvalid naming the three.
store::StatusOr<store::KeySource> ReadNewKey(const NewKeyOptions& options);

}  // namespace medvfs::tools
