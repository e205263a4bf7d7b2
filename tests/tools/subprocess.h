// Runs a program as a child process in its own session (so it has no controlling terminal and
// cannot prompt), with a chosen environment, and captures its output.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace medvfs::testing {

struct RunResult {
  int exit_code = -1;  // -1: killed by a signal or by the timeout
  std::string out;
  std::string err;
};

struct RunOptions {
  // Changes to the environment: a value sets the variable, nullopt removes it.
  std::map<std::string, std::optional<std::string>> env;
  std::string working_dir;  // empty: unchanged
  int timeout_seconds = 60;
};

RunResult RunProgram(const std::vector<std::string>& argv, const RunOptions& options = {});

// Starts argv (in its own session, stdin from /dev/null) with stdout and stderr appended to
// `log`, and returns at once with its pid (-1 if fork failed). The caller waits for it.
pid_t SpawnProgram(const std::vector<std::string>& argv, const RunOptions& options,
                   const std::filesystem::path& log);

// The exit code of `pid` (a child of this process), waited for up to `timeout`; -1 when it was
// killed by a signal, or did not end in time (it is then killed with SIGKILL and reaped).
int WaitExit(pid_t pid, std::chrono::seconds timeout = std::chrono::seconds(60));

}  // namespace medvfs::testing
