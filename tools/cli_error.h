// How `medvfs` subcommands fail: one line on stderr, "medvfs: <what went wrong>; <what to do>",
// then CLI::RuntimeError so that main() exits with the code. Messages never carry patient data
// beyond what the user typed (the paths given on the command line).
#pragma once

#include <string_view>

#include "store/status.h"

namespace medvfs::tools {

// Exit codes of the command line.
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Prints "medvfs: <what>; <todo>" and throws CLI::RuntimeError(exit_code).
[[noreturn]] void Fail(std::string_view what, std::string_view todo, int exit_code = kExitFailure);

// Prints "medvfs: <message>" (a message already in the "what; todo" form, such as ReadKey's)
// and throws CLI::RuntimeError(exit_code).
[[noreturn]] void FailMessage(std::string_view message, int exit_code = kExitFailure);

// Fails with a clear reason for a store status. `context` names what was being done, e.g.
// "cannot open archive /srv/a" (only user-typed text).
[[noreturn]] void FailStatus(const store::Status& status, std::string_view context);

// Fails with the reason for an errno value from a call on a path (through a mount).
[[noreturn]] void FailErrno(int err, std::string_view context);

}  // namespace medvfs::tools
