#include "tools/key_input.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string_view>
#include <utility>

#include "store/crypto.h"

namespace medvfs::tools {
namespace {

using store::KeySource;
using store::Status;
using store::StatusOr;

constexpr size_t kMaxPassphrase = 1024;
constexpr size_t kMaxPassphraseFile = 64 * 1024;
constexpr std::array kPromptSignals = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};

volatile std::sig_atomic_t g_prompt_signal = 0;

extern "C" void OnPromptSignal(int sig) { g_prompt_signal = sig; }

Status NoKeyGiven() {
  return Status::Invalid(
      "no key given and no terminal to ask on; set MEDVFS_PASSPHRASE, or use --passphrase-file F "
      "or --key-file F");
}

Status EmptyPassphrase() {
  return Status::Invalid("an empty passphrase is not allowed; choose a non-empty passphrase");
}

// The terminal with echo off for as long as the object lives; signals that would kill the
// process in between are caught so that echo is always switched back on first.
class HiddenTerminal {
 public:
  explicit HiddenTerminal(int fd) : fd_(fd) {
    g_prompt_signal = 0;
    struct sigaction action {};
    action.sa_handler = OnPromptSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: read() returns EINTR
    for (size_t i = 0; i < kPromptSignals.size(); ++i) {
      sigaction(kPromptSignals[i], &action, &old_actions_[i]);
    }
    if (tcgetattr(fd_, &saved_) == 0) {
      struct termios quiet = saved_;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL);
      quiet.c_lflag |= ICANON;
      restore_ = tcsetattr(fd_, TCSAFLUSH, &quiet) == 0;
    }
  }
  HiddenTerminal(const HiddenTerminal&) = delete;
  HiddenTerminal& operator=(const HiddenTerminal&) = delete;
  ~HiddenTerminal() {
    if (restore_) tcsetattr(fd_, TCSAFLUSH, &saved_);
    for (size_t i = 0; i < kPromptSignals.size(); ++i) {
      sigaction(kPromptSignals[i], &old_actions_[i], nullptr);
    }
    // Re-deliver a signal that arrived during the prompt, now that the terminal is sane.
    if (g_prompt_signal != 0) raise(g_prompt_signal);
  }

 private:
  int fd_;
  struct termios saved_ {};
  bool restore_ = false;
  std::array<struct sigaction, kPromptSignals.size()> old_actions_{};
};

void WriteAll(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads one line from the terminal without echo. The bytes pass through a fixed buffer that
// is wiped afterwards.
StatusOr<std::string> PromptHidden(int fd, std::string_view prompt) {
  std::array<char, kMaxPassphrase> buffer;
  size_t length = 0;
  bool complete = false;
  bool interrupted = false;
  {
    WriteAll(fd, prompt);
    HiddenTerminal hidden(fd);
    while (length < buffer.size()) {
      char c = 0;
      ssize_t n = read(fd, &c, 1);
      if (n < 0 && errno == EINTR) {
        if (g_prompt_signal != 0) {
          interrupted = true;
          break;
        }
        continue;
      }
      if (n <= 0 || c == '\n' || c == '\r') {
        complete = n > 0;
        break;
      }
      buffer[length++] = c;
    }
    WriteAll(fd, "\n");
  }
  std::string line(buffer.data(), length);
  store::Wipe(buffer.data(), buffer.size());
  if (interrupted) return Status::Invalid("interrupted; run the command again");
  if (!complete) {
    store::Wipe(line.data(), line.size());
    return Status::Invalid(length >= kMaxPassphrase
                               ? "the passphrase is too long; use at most 1023 characters"
                               : "no passphrase was entered; run the command again");
  }
  return line;
}

StatusOr<KeySource> PromptForPassphrase(bool confirm) {
  int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return NoKeyGiven();
  StatusOr<std::string> first = PromptHidden(fd, confirm ? "New passphrase: " : "Passphrase: ");
  if (!first.ok()) {
    close(fd);
    return first.status();
  }
  KeySource key = KeySource::Passphrase(std::move(first).value());
  if (key.secret().empty()) {
    close(fd);
    return EmptyPassphrase();
  }
  if (confirm) {
    StatusOr<std::string> second = PromptHidden(fd, "Repeat the passphrase: ");
    if (!second.ok()) {
      close(fd);
      return second.status();
    }
    KeySource again = KeySource::Passphrase(std::move(second).value());
    if (again.secret() != key.secret()) {
      close(fd);
      return Status::Invalid("the two passphrases differ; run the command again");
    }
  }
  close(fd);
  return key;
}

StatusOr<KeySource> ReadPassphraseFile(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return Status::Invalid("cannot read the passphrase file " + file +
                           "; check the --passphrase-file path and its permissions");
  }
  std::string contents;
  contents.reserve(kMaxPassphraseFile);
  std::array<char, 4096> piece;
  while (in && contents.size() < kMaxPassphraseFile) {
    in.read(piece.data(), piece.size());
    contents.append(piece.data(), static_cast<size_t>(in.gcount()));
  }
  store::Wipe(piece.data(), piece.size());
  size_t end = contents.find('\n');
  if (end == std::string::npos) end = contents.size();
  if (end > 0 && contents[end - 1] == '\r') --end;
  std::string line(contents.data(), end);
  store::Wipe(contents.data(), contents.size());
  if (line.empty()) return EmptyPassphrase();
  return KeySource::Passphrase(std::move(line));
}

}  // namespace

void AddKeyOptions(CLI::App* command, KeyOptions* options) {
  CLI::Option* key_file = command
                              ->add_option("--key-file", options->key_file,
                                           "File whose bytes (at least 32) are the archive's key")
                              ->type_name("FILE");
  CLI::Option* passphrase_file = command
                                     ->add_option("--passphrase-file", options->passphrase_file,
                                                  "File whose first line is the passphrase")
                                     ->type_name("FILE");
  key_file->excludes(passphrase_file);
}

StatusOr<KeySource> ReadKey(const KeyOptions& options, bool confirm) {
  if (!options.key_file.empty()) {
    StatusOr<KeySource> key = KeySource::FromKeyFile(options.key_file);
    if (!key.ok()) {
      return Status::Invalid("cannot use the key file " + options.key_file + " (" +
                             key.status().message() +
                             "); give a readable file of at least 32 random bytes");
    }
    return key;
  }
  if (!options.passphrase_file.empty()) return ReadPassphraseFile(options.passphrase_file);
  if (const char* env = std::getenv("MEDVFS_PASSPHRASE"); env != nullptr) {
    std::string passphrase(env);
    if (passphrase.empty()) return EmptyPassphrase();
    return KeySource::Passphrase(std::move(passphrase));
  }
  return PromptForPassphrase(confirm);
}

}  // namespace medvfs::tools
