// `medvfs passwd`, the modes of what medvfs writes (umask 077), and that a running medvfs is
// not dumpable, all through the built program run as a subprocess.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/archive.h"
#include "tests/tools/cli_fixture.h"
#include "tests/tools/pattern.h"

namespace medvfs::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

void WriteText(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

class CliPasswdTest : public CliTest {
 protected:
  // Files with distinct contents, written through the Archive API.
  void PopulateFiles() {
    Populate({"mkdir:/study", "write:/study/a.dcm=first", "write:/study/a.dcm=second version",
              "big:/study/big.bin=3000000", "write:/notes.txt=hello"});
  }

  // Every version reads back byte-identical with `key_args` (and MEDVFS_PASSPHRASE unset).
  void ExpectContentWith(const std::vector<std::string>& key_args, const RunOptions& options) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> expected = {
        {{"cat", InArchive("/study/a.dcm"), "--version", "1"}, "first"},
        {{"cat", InArchive("/study/a.dcm")}, "second version"},
        {{"cat", InArchive("/study/big.bin")}, PatternBytes(0, 3000000)},
        {{"cat", InArchive("/notes.txt")}, "hello"},
    };
    for (const auto& [args, content] : expected) {
      std::vector<std::string> full = args;
      full.insert(full.end(), key_args.begin(), key_args.end());
      RunResult cat = Medvfs(full, options);
      EXPECT_EQ(cat.exit_code, 0) << args[1] << ": " << cat.err;
      EXPECT_TRUE(cat.out == content) << args[1] << ": " << cat.out.size() << " bytes";
    }
  }

  RunOptions WithPassphrase(const std::string& passphrase) const {
    RunOptions options = Options();
    options.env["MEDVFS_PASSPHRASE"] = passphrase;
    return options;
  }

  RunOptions NoPassphrase() const {
    RunOptions options = Options();
    options.env["MEDVFS_PASSPHRASE"] = std::nullopt;
    options.env["MEDVFS_NEW_PASSPHRASE"] = std::nullopt;
    return options;
  }
};

TEST_F(CliPasswdTest, NewPassphraseFileReplacesTheOldOne) {
  InitArchive();
  PopulateFiles();
  WriteText(dir_ / "new-pass", "tr0ub4dor&3\n");
  RunResult passwd = Medvfs({"passwd", archive_.string(), "--new-passphrase-file",
                             (dir_ / "new-pass").string(), "--kdf-cost", "fast"});
  ASSERT_EQ(passwd.exit_code, 0) << passwd.err;
  EXPECT_THAT(passwd.out, HasSubstr("passphrase -> passphrase"));
  EXPECT_THAT(passwd.out, HasSubstr("No data was re-encrypted"));
  EXPECT_EQ(passwd.err, "");  // not mounted: the audit entry was written without a note

  // The database and the key slot are untouched by the refused old passphrase (the archive
  // may note the failed unlock beside them, for the audit log).
  const std::string db_before = SnapshotTree(archive_ / "db");
  const std::string slot_before = ReadAll(archive_ / "keyslot");
  RunResult old_key = Medvfs({"stats", archive_.string()});  // MEDVFS_PASSPHRASE: the old one
  EXPECT_EQ(old_key.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(old_key));
  EXPECT_THAT(old_key.err, HasSubstr("the passphrase does not unlock this archive"));
  EXPECT_TRUE(old_key.out.empty());
  EXPECT_EQ(SnapshotTree(archive_ / "db"), db_before);
  EXPECT_EQ(ReadAll(archive_ / "keyslot"), slot_before);

  {  // The change is in the audit log, with who made it.
    store::ArchiveOptions read_only;
    read_only.read_only = true;
    auto archive =
        store::Archive::Open(archive_, store::KeySource::Passphrase("tr0ub4dor&3"), read_only);
    ASSERT_TRUE(archive.ok()) << archive.status().ToString();
    std::vector<store::AuditEntry> entries;
    ASSERT_TRUE((*archive)
                    ->ScanAudit({},
                                [&entries](const store::AuditEntry& entry) {
                                  if (entry.op == store::AuditOp::kPasswd) entries.push_back(entry);
                                  return true;
                                })
                    .ok());
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].uid, getuid());
    EXPECT_EQ(entries[0].program, "medvfs");
    EXPECT_EQ(entries[0].detail, "passphrase -> passphrase");
    EXPECT_EQ(entries[0].result, 0);
  }
  RunResult stats = Medvfs({"stats", archive_.string(), "--json"}, WithPassphrase("tr0ub4dor&3"));
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_EQ(nlohmann::json::parse(stats.out)["files"], 3);
  ExpectContentWith({}, WithPassphrase("tr0ub4dor&3"));
}

TEST_F(CliPasswdTest, NewPassphraseFromTheEnvironment) {
  InitArchive();
  PopulateFiles();
  RunOptions options = Options();
  options.env["MEDVFS_NEW_PASSPHRASE"] = "from the environment";
  RunResult passwd = Medvfs({"passwd", archive_.string(), "--kdf-cost", "fast"}, options);
  ASSERT_EQ(passwd.exit_code, 0) << passwd.err;
  ExpectContentWith({}, WithPassphrase("from the environment"));
}

TEST_F(CliPasswdTest, WrongCurrentPassphraseIsRefusedAndChangesNothing) {
  InitArchive();
  PopulateFiles();
  WriteText(dir_ / "new-pass", "new one\n");
  const std::string before = SnapshotTree(archive_);
  RunResult passwd =
      Medvfs({"passwd", archive_.string(), "--new-passphrase-file", (dir_ / "new-pass").string()},
             WithPassphrase("not it"));
  EXPECT_EQ(passwd.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(passwd));
  EXPECT_THAT(passwd.err, HasSubstr("the passphrase does not unlock this archive"));
  EXPECT_EQ(SnapshotTree(archive_), before);
  ExpectContentWith({}, Options());
}

TEST_F(CliPasswdTest, EmptyNewPassphraseIsRefused) {
  InitArchive();
  const std::string before = SnapshotTree(archive_);
  WriteText(dir_ / "empty", "\n");
  RunResult from_file =
      Medvfs({"passwd", archive_.string(), "--new-passphrase-file", (dir_ / "empty").string()});
  EXPECT_EQ(from_file.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(from_file));
  EXPECT_THAT(from_file.err, HasSubstr("empty passphrase is not allowed"));

  RunOptions empty_env = Options();
  empty_env.env["MEDVFS_NEW_PASSPHRASE"] = "";
  RunResult from_env = Medvfs({"passwd", archive_.string()}, empty_env);
  EXPECT_EQ(from_env.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(from_env));
  EXPECT_THAT(from_env.err, HasSubstr("empty passphrase is not allowed"));
  EXPECT_EQ(SnapshotTree(archive_), before);
}

TEST_F(CliPasswdTest, NoNewKeyAndNoTerminalNamesTheWays) {
  InitArchive();
  const std::string before = SnapshotTree(archive_);
  RunOptions options = Options();
  options.env["MEDVFS_NEW_PASSPHRASE"] = std::nullopt;
  RunResult passwd = Medvfs({"passwd", archive_.string()}, options);
  EXPECT_EQ(passwd.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(passwd));
  EXPECT_THAT(passwd.err, HasSubstr("MEDVFS_NEW_PASSPHRASE"));
  EXPECT_THAT(passwd.err, HasSubstr("--new-passphrase-file"));
  EXPECT_THAT(passwd.err, HasSubstr("--new-key-file"));
  EXPECT_EQ(SnapshotTree(archive_), before);
}

TEST_F(CliPasswdTest, SwitchesToAKeyFileAndBack) {
  InitArchive();
  PopulateFiles();
  const fs::path key = dir_ / "archive.key";
  WriteText(key, PatternBytes(11, 64));
  RunResult to_key = Medvfs({"passwd", archive_.string(), "--new-key-file", key.string()});
  ASSERT_EQ(to_key.exit_code, 0) << to_key.err;
  EXPECT_THAT(to_key.out, HasSubstr("passphrase -> key file"));

  RunResult with_passphrase = Medvfs({"cat", InArchive("/notes.txt")});
  EXPECT_EQ(with_passphrase.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(with_passphrase));
  EXPECT_THAT(with_passphrase.err, HasSubstr("key file"));
  ExpectContentWith({"--key-file", key.string()}, NoPassphrase());

  // Key file -> another key file: the first one no longer opens it.
  const fs::path key2 = dir_ / "archive2.key";
  WriteText(key2, PatternBytes(99, 48));
  RunResult to_key2 = Medvfs(
      {"passwd", archive_.string(), "--key-file", key.string(), "--new-key-file", key2.string()},
      NoPassphrase());
  ASSERT_EQ(to_key2.exit_code, 0) << to_key2.err;
  RunResult old_file = Medvfs({"stats", archive_.string(), "--key-file", key.string()});
  EXPECT_EQ(old_file.exit_code, 1);
  EXPECT_THAT(old_file.err, HasSubstr("does not unlock"));

  // And back to a passphrase.
  WriteText(dir_ / "pass", "back to words\n");
  RunResult back = Medvfs({"passwd", archive_.string(), "--key-file", key2.string(),
                           "--new-passphrase-file", (dir_ / "pass").string(), "--kdf-cost", "fast"},
                          NoPassphrase());
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_THAT(back.out, HasSubstr("key file -> passphrase"));
  ExpectContentWith({"--passphrase-file", (dir_ / "pass").string()}, NoPassphrase());
  RunResult keyfile_again = Medvfs({"stats", archive_.string(), "--key-file", key2.string()});
  EXPECT_EQ(keyfile_again.exit_code, 1);
}

TEST_F(CliPasswdTest, ShortNewKeyFileIsRefused) {
  InitArchive();
  const std::string before = SnapshotTree(archive_);
  WriteText(dir_ / "short.key", "too short");
  RunResult passwd =
      Medvfs({"passwd", archive_.string(), "--new-key-file", (dir_ / "short.key").string()});
  EXPECT_EQ(passwd.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(passwd));
  EXPECT_THAT(passwd.err, HasSubstr("at least 32 bytes"));
  EXPECT_EQ(SnapshotTree(archive_), before);
}

TEST_F(CliPasswdTest, NotAnArchiveIsRefused) {
  fs::create_directory(dir_ / "empty");
  RunResult passwd = Medvfs({"passwd", (dir_ / "empty").string()});
  EXPECT_EQ(passwd.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(passwd));
  EXPECT_THAT(passwd.err, HasSubstr("is not a medvfs archive"));
}

TEST_F(CliPasswdTest, UsageErrors) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"passwd"},
        {"passwd", "a", "--new-key-file", "k", "--new-passphrase-file", "p"},
        {"passwd", "a", "--kdf-cost", "cheap"}}) {
    RunResult result = Medvfs(args);
    EXPECT_EQ(result.exit_code, 2) << ::testing::PrintToString(args) << result.err;
    EXPECT_TRUE(IsOneLineError(result)) << ::testing::PrintToString(args);
  }
}

// --- Modes: umask 077 in medvfs ------------------------------------------------------------

// Every path under `root` (root included) whose mode is not 0700 (directories) or 0600 (files),
// as "path mode" lines; and the names seen, for the caller to check something was there.
std::vector<std::string> WrongModes(const fs::path& root, std::set<std::string>* names) {
  std::vector<std::string> wrong;
  std::vector<fs::path> paths = {root};
  for (const auto& entry : fs::recursive_directory_iterator(root)) paths.push_back(entry.path());
  for (const fs::path& path : paths) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) continue;
    const std::string rel = fs::relative(path, root).string();
    if (names != nullptr) names->insert(rel);
    const mode_t want = S_ISDIR(st.st_mode) ? 0700 : 0600;
    if ((st.st_mode & 07777) != want || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
      char mode[16];
      std::snprintf(mode, sizeof(mode), "%o", static_cast<unsigned>(st.st_mode));
      wrong.push_back(rel + " " + mode);
    }
  }
  return wrong;
}

// Sets a permissive umask for the test (the subprocesses inherit it), restores it after.
class PermissiveUmask {
 public:
  PermissiveUmask() : old_(::umask(022)) {}
  PermissiveUmask(const PermissiveUmask&) = delete;
  PermissiveUmask& operator=(const PermissiveUmask&) = delete;
  ~PermissiveUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST_F(CliPasswdTest, ArchiveFilesAre0600AndDirectories0700) {
  PermissiveUmask umask_022;
  InitArchive();
  std::set<std::string> after_init;
  EXPECT_THAT(WrongModes(archive_, &after_init), ::testing::IsEmpty());
  EXPECT_TRUE(after_init.count("keyslot") == 1 && after_init.count("db") == 1)
      << ::testing::PrintToString(after_init);
  EXPECT_TRUE(after_init.count("db/CURRENT") == 1) << ::testing::PrintToString(after_init);

  // The populate helper stands in for the mount daemon, which runs under medvfs's umask.
  std::vector<std::string> populate = {"/bin/sh",
                                       "-c",
                                       "umask 077; exec \"$0\" \"$@\"",
                                       MEDVFS_POPULATE_BIN,
                                       archive_.string(),
                                       "write:/scan.dcm=first",
                                       "write:/scan.dcm=second"};
  RunResult filled = RunProgram(populate, Options());
  ASSERT_EQ(filled.exit_code, 0) << filled.err;

  // Writes by the command line itself, under the permissive umask it inherits.
  RunResult note = Medvfs({"note", InArchive("/scan.dcm"), "checked"});
  ASSERT_EQ(note.exit_code, 0) << note.err;
  RunResult restore = Medvfs({"restore", InArchive("/scan.dcm"), "--version", "1"});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  WriteText(dir_ / "new-pass", "another\n");
  RunResult passwd = Medvfs({"passwd", archive_.string(), "--new-passphrase-file",
                             (dir_ / "new-pass").string(), "--kdf-cost", "fast"});
  ASSERT_EQ(passwd.exit_code, 0) << passwd.err;

  std::set<std::string> after_writes;
  EXPECT_THAT(WrongModes(archive_, &after_writes), ::testing::IsEmpty());
  // medvfs made files of its own since init (a new log, OPTIONS, MANIFEST...): they count.
  std::vector<std::string> added;
  for (const std::string& name : after_writes) {
    if (after_init.count(name) == 0) added.push_back(name);
  }
  EXPECT_FALSE(added.empty());
  std::cout << "archive after init and writes: " << ::testing::PrintToString(after_writes)
            << std::endl;
}

// --- Not dumpable ---------------------------------------------------------------------------

// Starts `medvfs init ARCHIVE --passphrase-file FIFO`, which blocks opening the FIFO until a
// writer comes (after main() has hardened the process), as user `uid` (unchanged when it is
// ours). Returns its pid, or -1.
pid_t StartBlockedMedvfs(const fs::path& fifo, const fs::path& archive, uid_t uid, bool allow) {
  std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
  if (allow) env.emplace_back("MEDVFS_ALLOW_CORE_DUMPS=1");
  std::vector<std::string> args = {MEDVFS_BIN, "init", archive.string(), "--passphrase-file",
                                   fifo.string()};
  std::vector<char*> env_ptrs;
  for (std::string& e : env) env_ptrs.push_back(e.data());
  env_ptrs.push_back(nullptr);
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  arg_ptrs.push_back(nullptr);
  const bool switch_user = uid != getuid();
  // Between fork and exec only raw system calls: this process may have threads running (an
  // archive opened in-process starts RocksDB's), and one of them may hold a lock the child
  // would need. Raw setgid/setuid change the child's only thread; glibc's wrappers would try
  // to signal threads that do not exist in the child.
  const pid_t pid = fork();
  if (pid != 0) return pid;
  const int null_fd = open("/dev/null", O_RDWR);
  dup2(null_fd, STDIN_FILENO);
  dup2(null_fd, STDOUT_FILENO);
  dup2(null_fd, STDERR_FILENO);
  if (switch_user && (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setgid, uid) != 0 ||
                      syscall(SYS_setuid, uid) != 0)) {
    _exit(126);
  }
  execve(arg_ptrs[0], arg_ptrs.data(), env_ptrs.data());
  _exit(127);
}

// The owner of /proc/PID/status once the process has opened the FIFO for reading. The kernel
// gives a non-dumpable process's /proc/PID files to root, a dumpable one's to its own user
// (the /proc/PID directory itself always shows the process's user).
std::optional<uid_t> ProcOwnerWhileBlocked(const fs::path& fifo, pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int writer = -1;
  while (writer < 0 && std::chrono::steady_clock::now() < deadline) {
    writer = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // ENXIO: no reader yet
    if (writer < 0) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) return std::nullopt;  // it exited early
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::optional<uid_t> owner;
  struct stat st {};
  if (writer >= 0 && stat(("/proc/" + std::to_string(pid) + "/status").c_str(), &st) == 0)
    owner = st.st_uid;
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  if (writer >= 0) close(writer);
  return owner;
}

TEST_F(CliPasswdTest, RunningMedvfsIsNotDumpable) {
  // Another user than root is needed to tell the two apart: as root, the test runs medvfs as
  // nobody (65534).
  const uid_t uid = getuid() == 0 ? 65534 : getuid();
  ASSERT_EQ(chmod(dir_.c_str(), 0777), 0);
  const fs::path fifo = dir_ / "pass.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0666), 0);
  ASSERT_EQ(chmod(fifo.c_str(), 0666), 0);

  const pid_t hardened = StartBlockedMedvfs(fifo, dir_ / "a1", uid, /*allow=*/false);
  ASSERT_GT(hardened, 0);
  std::optional<uid_t> owner = ProcOwnerWhileBlocked(fifo, hardened);
  ASSERT_TRUE(owner.has_value()) << "medvfs did not reach the passphrase file";
  EXPECT_EQ(*owner, 0u) << "medvfs is dumpable";

  // MEDVFS_ALLOW_CORE_DUMPS=1 leaves it dumpable (this also shows the check above can fail).
  const pid_t allowed = StartBlockedMedvfs(fifo, dir_ / "a2", uid, /*allow=*/true);
  ASSERT_GT(allowed, 0);
  owner = ProcOwnerWhileBlocked(fifo, allowed);
  ASSERT_TRUE(owner.has_value()) << "medvfs did not reach the passphrase file";
  EXPECT_EQ(*owner, uid);
}

}  // namespace
}  // namespace medvfs::testing
