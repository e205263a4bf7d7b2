// How the command line obtains an archive's key: --key-file, --passphrase-file,
// MEDVFS_PASSPHRASE, or a prompt on the terminal (without echo).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "store/keys.h"
#include "store/status.h"

namespace medvfs::tools {

struct KeyOptions {
  std::string key_file;
  std::string passphrase_file;
};

// Adds --key-file and --passphrase-file to a subcommand.
void AddKeyOptions(CLI::App* command, KeyOptions* options);

// Returns the key the user gave. Order: --key-file, --passphrase-file (first line, without
// the newline), MEDVFS_PASSPHRASE, then a terminal prompt. With `confirm` (new archives), the
// prompt asks twice and refuses a mismatch; an empty passphrase is refused. Without any
// source and no terminal: kInvalid with a message naming the three ways.
store::StatusOr<store::KeySource> ReadKey(const KeyOptions& options, bool confirm);

}  // namespace medvfs::tools
