#include "tools/key_input.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "store/bytes.h"
#include "store/file_util.h"

namespace medvfs::tools {
namespace {

using store::KeySource;
using store::Status;
using store::StatusOr;

constexpr size_t kMaxPassphrase = 1024;
constexpr size_t kMaxPassphraseFile = size_t{64} * 1024;
constexpr std::array kPromptSignals = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};

volatile std::sig_atomic_t g_prompt_signal = 0;

extern "C" void OnPromptSignal(int sig) { g_prompt_signal = sig; }

// What one kind of key is called where: the current key, or passwd's new one.
struct KeyNames {
  const char* env;       // the environment variable
  const char* key_file;  // the options
  const char* passphrase_file;
  const char* prompt;      // the first prompt
  const char* new_prompt;  // the first prompt when the passphrase is being chosen
  const char* repeat;      // the confirming prompt
  const char* no_key;      // "no key given" or "no new key given"
};

constexpr KeyNames kCurrentKey = {
    "MEDVFS_PASSPHRASE", "--key-file",       "--passphrase-file",
    "Passphrase: ",      "New passphrase: ", "Repeat the passphrase: ",
    "no key given"};
constexpr KeyNames kNewKey = {
    "MEDVFS_NEW_PASSPHRASE", "--new-key-file",   "--new-passphrase-file",
    "New passphrase: ",      "New passphrase: ", "Repeat the new passphrase: ",
    "no new key given"};

Status NoKeyGiven(const KeyNames& names) {
  return Status::Invalid(std::string(names.no_key) + " and no terminal to ask on; set " +
                         names.env + ", or use " + names.passphrase_file + " F or " +
                         names.key_file + " F");
}

Status EmptyPassphrase() {
  return Status::Invalid("an empty passphrase is not allowed; choose a non-empty passphrase");
}

// A string that holds a secret for a moment and is wiped whatever way the scope is left.
struct SecretString {
  SecretString() = default;
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  ~SecretString() { store::WipeString(&value); }
  std::string value;
};

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

// Best effort: a prompt that cannot be shown does not stop the reading.
void WritePromptText(int fd, std::string_view text) { store::WriteAll(fd, text); }

// Reads one line from the terminal without echo into *line. The bytes pass through a fixed
// buffer that is wiped afterwards.
Status PromptHidden(int fd, std::string_view prompt, std::string* line) {
  std::array<char, kMaxPassphrase> buffer{};
  size_t length = 0;
  bool complete = false;
  bool interrupted = false;
  {
    WritePromptText(fd, prompt);
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
      store::Wipe(&c, sizeof(c));
    }
    WritePromptText(fd, "\n");
  }
  if (complete && !interrupted) line->assign(buffer.data(), length);
  store::Wipe(buffer.data(), buffer.size());
  if (interrupted) return Status::Invalid("interrupted; run the command again");
  if (!complete) {
    return Status::Invalid(length >= kMaxPassphrase
                               ? "the passphrase is too long; use at most 1023 characters"
                               : "no passphrase was entered; run the command again");
  }
  return Status::Ok();
}

class TerminalFd {
 public:
  TerminalFd() : fd_(open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) {}
  TerminalFd(const TerminalFd&) = delete;
  TerminalFd& operator=(const TerminalFd&) = delete;
  ~TerminalFd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

StatusOr<KeySource> PromptForPassphrase(const KeyNames& names, bool confirm) {
  TerminalFd tty;
  if (tty.get() < 0) return NoKeyGiven(names);
  SecretString first;
  MEDVFS_RETURN_IF_ERROR(
      PromptHidden(tty.get(), confirm ? names.new_prompt : names.prompt, &first.value));
  if (first.value.empty()) return EmptyPassphrase();
  if (confirm) {
    SecretString second;
    MEDVFS_RETURN_IF_ERROR(PromptHidden(tty.get(), names.repeat, &second.value));
    if (second.value != first.value) {
      return Status::Invalid("the two passphrases differ; run the command again");
    }
  }
  return KeySource::Passphrase(first.value);
}

// The first line of a passphrase file, without its newline (and a CR before it). Read with
// read(2) into buffers that are wiped, not through a stream whose buffer would not be.
StatusOr<KeySource> ReadPassphraseFile(const std::string& file, const KeyNames& names) {
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::Invalid("cannot read the passphrase file " + file + "; check the " +
                           names.passphrase_file + " path and its permissions");
  }
  SecretString contents;
  contents.value.reserve(kMaxPassphraseFile);  // no reallocation, so no stray copy
  std::array<char, 4096> piece{};
  bool failed = false;
  while (contents.value.size() < kMaxPassphraseFile &&
         contents.value.find('\n') == std::string::npos) {
    const size_t want = std::min(piece.size(), kMaxPassphraseFile - contents.value.size());
    const ssize_t n = read(fd, piece.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) failed = true;
    if (n <= 0) break;
    contents.value.append(piece.data(), static_cast<size_t>(n));
  }
  store::Wipe(piece.data(), piece.size());
  close(fd);
  if (failed) {
    return Status::Invalid("cannot read the passphrase file " + file + "; check the " +
                           names.passphrase_file + " path and its permissions");
  }
  size_t end = contents.value.find('\n');
  if (end == std::string::npos) end = contents.value.size();
  if (end > 0 && contents.value[end - 1] == '\r') --end;
  if (end == 0) return EmptyPassphrase();
  contents.value.resize(end);  // shrinking keeps the buffer, which SecretString wipes
  return KeySource::Passphrase(contents.value);
}

StatusOr<KeySource> ReadAnyKey(const std::string& key_file, const std::string& passphrase_file,
                               const KeyNames& names, bool confirm) {
  if (!key_file.empty()) {
    StatusOr<KeySource> key = KeySource::FromKeyFile(key_file);
    if (!key.ok()) {
      return Status::Invalid("cannot use the key file " + key_file + " (" + key.status().message() +
                             "); give a readable file of at least 32 random bytes");
    }
    return key;
  }
  if (!passphrase_file.empty()) return ReadPassphraseFile(passphrase_file, names);
  // The variable itself stays in the environment: it is the caller's, and mount.medvfs
  // passes it on to medvfs.
  if (const char* env = std::getenv(names.env); env != nullptr) {
    if (*env == '\0') return EmptyPassphrase();
    SecretString passphrase;
    passphrase.value = env;
    return KeySource::Passphrase(passphrase.value);
  }
  return PromptForPassphrase(names, confirm);
}

}  // namespace

std::string HardenProcess() {
  ::umask(077);
  const char* allow = std::getenv("MEDVFS_ALLOW_CORE_DUMPS");
  if (allow != nullptr && std::string_view(allow) == "1") return "";
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return "cannot disable core dumps (prctl: " + std::string(std::strerror(errno)) +
           "); a crash could leave keys and patient data in a core file";
  }
  return "";
}

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

void AddKdfCostOption(CLI::App* command, std::string_view what, store::KdfParams* params) {
  constexpr uint64_t kFastKdfN = uint64_t{1} << 14;
  command
      ->add_option_function<std::string>(
          "--kdf-cost",
          [params](const std::string& cost) {
            *params = store::KdfParams{};
            if (cost == "fast") params->n = kFastKdfN;
          },
          std::string(what) +
              ": default (scrypt N=2^17), or fast (N=2^14; cheaper to guess, for tests and "
              "demos only)")
      ->check(CLI::IsMember({"fast", "default"}))
      ->type_name("fast|default");
}

void AddNewKeyOptions(CLI::App* command, NewKeyOptions* options) {
  CLI::Option* key_file =
      command
          ->add_option("--new-key-file", options->key_file,
                       "File whose bytes (at least 32) become the archive's key")
          ->type_name("FILE");
  CLI::Option* passphrase_file = command
                                     ->add_option("--new-passphrase-file", options->passphrase_file,
                                                  "File whose first line is the new passphrase")
                                     ->type_name("FILE");
  key_file->excludes(passphrase_file);
}

StatusOr<KeySource> ReadKey(const KeyOptions& options, bool confirm) {
  return ReadAnyKey(options.key_file, options.passphrase_file, kCurrentKey, confirm);
}

StatusOr<KeySource> ReadNewKey(const NewKeyOptions& options) {
  return ReadAnyKey(options.key_file, options.passphrase_file, kNewKey, /*confirm=*/true);
}

}  // namespace medvfs::tools
