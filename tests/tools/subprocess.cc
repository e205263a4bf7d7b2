#include "tests/tools/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

extern char** environ;

namespace medvfs::testing {
namespace {

std::vector<std::string> BuildEnvironment(const RunOptions& options) {
  std::map<std::string, std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string text(*entry);
    size_t eq = text.find('=');
    if (eq != std::string::npos) env[text.substr(0, eq)] = text.substr(eq + 1);
  }
  for (const auto& [name, value] : options.env) {
    if (value) {
      env[name] = *value;
    } else {
      env.erase(name);
    }
  }
  std::vector<std::string> out;
  for (const auto& [name, value] : env) out.push_back(name + "=" + value);
  return out;
}

// Everything the child needs, built in the parent. The test process has RocksDB's threads
// running (archives opened in-process), so nothing may allocate or take a lock between fork
// and exec: posix_spawn does the redirections, the new session and the chdir itself.
class Spawn {
 public:
  Spawn(const std::vector<std::string>& argv, const RunOptions& options)
      : args_(argv), env_(BuildEnvironment(options)) {
    for (std::string& a : args_) arg_ptrs_.push_back(a.data());
    arg_ptrs_.push_back(nullptr);
    for (std::string& e : env_) env_ptrs_.push_back(e.data());
    env_ptrs_.push_back(nullptr);
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
    // Its own session: no controlling terminal, so nothing can prompt.
    posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETSID);
    posix_spawn_file_actions_addopen(&actions_, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (!options.working_dir.empty()) {
      working_dir_ = options.working_dir;
      posix_spawn_file_actions_addchdir_np(&actions_, working_dir_.c_str());
    }
  }
  Spawn(const Spawn&) = delete;
  Spawn& operator=(const Spawn&) = delete;
  ~Spawn() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }

  posix_spawn_file_actions_t* actions() { return &actions_; }

  // The child's pid, or -1.
  pid_t Start() {
    pid_t pid = -1;
    if (posix_spawn(&pid, arg_ptrs_[0], &actions_, &attr_, arg_ptrs_.data(), env_ptrs_.data()) !=
        0) {
      return -1;
    }
    return pid;
  }

 private:
  std::vector<std::string> args_;
  std::vector<std::string> env_;
  std::vector<char*> arg_ptrs_;
  std::vector<char*> env_ptrs_;
  std::string working_dir_;
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

// Reads both pipes until they close or the deadline passes; false on timeout.
bool Drain(int out_fd, int err_fd, RunResult* result,
           std::chrono::steady_clock::time_point deadline) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&result->out, &result->err};
  int open_count = 2;
  char buffer[65536];
  while (open_count > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    int ready = poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  return true;
}

}  // namespace

RunResult RunProgram(const std::vector<std::string>& argv, const RunOptions& options) {
  RunResult result;
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return result;
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return result;
  }
  Spawn spawn(argv, options);
  // dup2 clears close-on-exec on the copies; the originals close at exec.
  posix_spawn_file_actions_adddup2(spawn.actions(), out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(spawn.actions(), err_pipe[1], STDERR_FILENO);
  const pid_t pid = spawn.Start();
  close(out_pipe[1]);
  close(err_pipe[1]);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(options.timeout_seconds);
  bool finished = pid > 0 && Drain(out_pipe[0], err_pipe[0], &result, deadline);
  if (pid > 0 && !finished) kill(pid, SIGKILL);
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid && finished && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

pid_t SpawnProgram(const std::vector<std::string>& argv, const RunOptions& options,
                   const std::filesystem::path& log) {
  Spawn spawn(argv, options);
  const std::string log_name = std::filesystem::absolute(log).string();  // before any chdir
  posix_spawn_file_actions_addopen(spawn.actions(), STDOUT_FILENO, log_name.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(spawn.actions(), STDOUT_FILENO, STDERR_FILENO);
  return spawn.Start();
}

int WaitExit(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace medvfs::testing
