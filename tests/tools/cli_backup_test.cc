// `medvfs backup` and `medvfs restore-backup`: on an unmounted archive; while mounted with a
// writer saving files through the mount (every version committed before a backup began is in
// it, identical, and the restored archive verifies); the control socket's access check; and
// the refusals (wrong passphrase, used or unwritable directories).
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/crypto/crypto.h"
#include "store/status.h"
#include "tests/tools/cli_fixture.h"

namespace medvfs::testing {
namespace {

using ::testing::HasSubstr;
namespace stdfs = std::filesystem;

// The JSON lines of `medvfs audit --json` output.
std::vector<nlohmann::json> AuditLines(const RunResult& run) {
  std::vector<nlohmann::json> lines;
  size_t start = 0;
  while (start < run.out.size()) {
    size_t end = run.out.find('\n', start);
    if (end == std::string::npos) end = run.out.size();
    auto parsed = nlohmann::json::parse(run.out.substr(start, end - start), nullptr, false);
    if (parsed.is_object()) lines.push_back(parsed);
    start = end + 1;
  }
  return lines;
}

std::string RandomText(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>('a' + rng() % 26);
  return out;
}

class CliBackupTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    InitArchive();
    dest_ = dir_ / "backups";
  }

  std::vector<nlohmann::json> Audit(const stdfs::path& archive) {
    RunResult run = Medvfs({"audit", archive.string(), "--json"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    return AuditLines(run);
  }

  static size_t CountOp(const std::vector<nlohmann::json>& lines, const std::string& op) {
    size_t n = 0;
    for (const auto& line : lines) n += line.value("op", "") == op ? 1 : 0;
    return n;
  }

  stdfs::path dest_;
};

TEST_F(CliBackupTest, BackupRestoreAndVerifyUnmounted) {
  Populate({"mkdir:/ct", "big:/ct/scan.dcm=3000000", "write:/report.txt=a short report",
            "write:/report.txt=a second report", "write:/gone.txt=x", "rm:/gone.txt"});
  RunResult first = Medvfs({"backup", archive_.string(), dest_.string()});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_THAT(first.out, HasSubstr("Backup 1 of " + archive_.string()));
  Populate({"write:/later.txt=after the first backup"});
  RunResult second = Medvfs({"backup", archive_.string(), dest_.string()});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_THAT(second.out, HasSubstr("Backup 2"));
  EXPECT_THAT(second.out, HasSubstr("shared with the earlier backups"));

  RunResult list = Medvfs({"backup", "--list", dest_.string()});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("ID"));
  EXPECT_EQ(list.out, Medvfs({"restore-backup", "--list", dest_.string()}).out);
  EXPECT_EQ(std::count(list.out.begin(), list.out.end(), '\n'), 3) << list.out;

  const stdfs::path restored = dir_ / "restored";
  RunResult restore = Medvfs({"restore-backup", dest_.string(), restored.string()});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  EXPECT_THAT(restore.out, HasSubstr("Restored backup 2"));
  EXPECT_THAT(restore.out, HasSubstr("medvfs verify " + restored.string()));
  RunResult verify = Medvfs({"verify", restored.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_THAT(verify.out, HasSubstr("no damage found"));
  EXPECT_EQ(Medvfs({"cat", restored.string() + "::/report.txt", "--version", "1"}).out,
            "a short report");
  EXPECT_EQ(Medvfs({"cat", restored.string() + "::/later.txt"}).out, "after the first backup");
  EXPECT_EQ(Medvfs({"cat", restored.string() + "::/ct/scan.dcm"}).out,
            Medvfs({"cat", archive_.string() + "::/ct/scan.dcm"}).out);

  // An older backup, on request: no later.txt there.
  const stdfs::path older = dir_ / "older";
  ASSERT_EQ(
      Medvfs({"restore-backup", dest_.string(), older.string(), "--backup-id", "1"}).exit_code, 0);
  EXPECT_EQ(Medvfs({"cat", older.string() + "::/later.txt"}).exit_code, 1);

  // Both backups recorded themselves (before copying), the restore too.
  const auto lines = Audit(restored);
  EXPECT_EQ(CountOp(lines, "backup"), 2u);
  EXPECT_EQ(CountOp(lines, "restore-backup"), 1u);
  EXPECT_EQ(Medvfs({"audit", restored.string(), "--verify"}).exit_code, 0);
  // The backup directory and the restored archive hold no plaintext.
  const std::string report = "a second report";
  for (const auto& root : {dest_, restored}) {
    for (const auto& entry : stdfs::recursive_directory_iterator(root)) {
      if (!entry.is_regular_file()) continue;
      EXPECT_EQ(ReadAll(entry.path()).find(report), std::string::npos) << entry.path();
      EXPECT_EQ(ReadAll(entry.path()).find("report.txt"), std::string::npos) << entry.path();
    }
  }
}

TEST_F(CliBackupTest, Refusals) {
  Populate({"write:/a.txt=hello"});
  RunOptions wrong = Options();
  wrong.env["MEDVFS_PASSPHRASE"] = "not the passphrase";
  RunResult bad_key = Medvfs({"backup", archive_.string(), dest_.string()}, wrong);
  EXPECT_EQ(bad_key.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(bad_key));
  EXPECT_THAT(bad_key.err, HasSubstr("passphrase"));
  EXPECT_FALSE(stdfs::exists(dest_));

  // A directory that holds other things is not taken over.
  stdfs::create_directory(dir_ / "home");
  Save(dir_ / "home" / "private.txt", "mine");
  RunResult other = Medvfs({"backup", archive_.string(), (dir_ / "home").string()});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(other));
  EXPECT_THAT(other.err, HasSubstr("not empty"));
  RunResult inside = Medvfs({"backup", archive_.string(), (archive_ / "b").string()});
  EXPECT_EQ(inside.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(inside));
  EXPECT_EQ(Medvfs({"backup", archive_.string()}).exit_code, 2);

  ASSERT_EQ(Medvfs({"backup", archive_.string(), dest_.string()}).exit_code, 0);
  RunResult no_backups = Medvfs({"restore-backup", (dir_ / "home").string(), "x"});
  EXPECT_EQ(no_backups.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(no_backups));
  EXPECT_THAT(no_backups.err, HasSubstr("holds no medvfs backups"));
  RunResult over_archive = Medvfs({"restore-backup", dest_.string(), archive_.string()});
  EXPECT_EQ(over_archive.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(over_archive));
  EXPECT_THAT(over_archive.err, HasSubstr("existing archive"));
  RunResult non_empty = Medvfs({"restore-backup", dest_.string(), (dir_ / "home").string()});
  EXPECT_EQ(non_empty.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(non_empty));
  EXPECT_THAT(non_empty.err, HasSubstr("not empty"));
  EXPECT_EQ(ReadAll(dir_ / "home" / "private.txt"), "mine");
  RunResult bad_restore_key = Medvfs({"restore-backup", dest_.string(), "new"}, wrong);
  EXPECT_EQ(bad_restore_key.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(bad_restore_key));
  EXPECT_THAT(bad_restore_key.err, HasSubstr("passphrase"));
  EXPECT_FALSE(stdfs::exists(dir_ / "new"));
  RunResult unknown = Medvfs({"restore-backup", dest_.string(), "new", "--backup-id", "9"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(unknown));
  EXPECT_FALSE(stdfs::exists(dir_ / "new"));

  // A damaged backup file is found before anything is restored.
  bool damaged_one = false;
  for (const auto& entry : stdfs::recursive_directory_iterator(dest_ / "shared_checksum")) {
    if (entry.path().extension() != ".sst") continue;
    std::string bytes = ReadAll(entry.path());
    bytes[bytes.size() / 3] = static_cast<char>(bytes[bytes.size() / 3] ^ 0x10);
    Save(entry.path(), bytes);
    damaged_one = true;
    break;
  }
  ASSERT_TRUE(damaged_one);
  RunResult damaged = Medvfs({"restore-backup", dest_.string(), "new"});
  EXPECT_EQ(damaged.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(damaged));
  EXPECT_THAT(damaged.err, HasSubstr("damaged"));
  EXPECT_FALSE(stdfs::exists(dir_ / "new"));
}

// DEST not writable: as a user other than root (root writes anywhere), with an archive of
// that user's own.
TEST_F(CliBackupTest, UnwritableDestination) {
  std::vector<std::string> as_user;
  stdfs::path home = dir_;
  if (geteuid() == 0) {
    if (FindProgram("setpriv").empty()) GTEST_FAIL() << "needs setpriv";
    as_user = {FindProgram("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
    home = dir_ / "user";
    stdfs::create_directory(home);
    ASSERT_EQ(chown(home.c_str(), 65534, 65534), 0);
    stdfs::permissions(dir_, stdfs::perms(0755));
  }
  const stdfs::path readonly = dir_ / "readonly";
  stdfs::create_directory(readonly);
  stdfs::permissions(readonly, stdfs::perms(0555));
  auto run = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = as_user;
    argv.push_back(MEDVFS_BIN);
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, Options());
  };
  const stdfs::path archive = home / "mine";
  RunResult init = run({"init", archive.string(), "--kdf-cost", "fast"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  RunResult into = run({"backup", archive.string(), (readonly / "b").string()});
  EXPECT_EQ(into.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(into));
  EXPECT_THAT(into.err, HasSubstr("ermission denied"));
  EXPECT_THAT(into.err, HasSubstr("make it writable"));
  EXPECT_FALSE(stdfs::exists(readonly / "b"));
  const stdfs::path ok = home / "backups";
  RunResult backup = run({"backup", archive.string(), ok.string()});
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  RunResult restore = run({"restore-backup", ok.string(), (readonly / "r").string()});
  EXPECT_EQ(restore.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(restore));
  EXPECT_THAT(restore.err, HasSubstr("ermission denied"));
  EXPECT_FALSE(stdfs::exists(readonly / "r"));
}

class CliBackupMountTest : public CliMountTest {
 protected:
  void SetUp() override {
    CliMountTest::SetUp();
    dest_ = dir_ / "backups";
  }
  stdfs::path dest_;
};

// The acceptance test: backups of a mounted archive while a writer saves files through the
// mount; every version the writer saw committed (close returned 0) before a backup command
// began is in that backup, byte for byte, and the restored archive verifies.
TEST_F(CliBackupMountTest, OnlineBackupWhileWriting) {
  std::mutex mu;
  std::condition_variable progressed;
  std::vector<std::pair<std::string, std::string>> committed;  // GUARDED_BY(mu)
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      const std::string name = "w" + std::to_string(i % 5) + ".dat";
      const std::string content =
          "version " + std::to_string(i) + "\n" + RandomText(20000 + (i % 7) * 9000, i);
      const int fd = open((mnt_ / name).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) {
        ++failures;
        continue;
      }
      const bool written =
          write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
      if (close(fd) != 0 || !written) {
        ++failures;
        continue;
      }
      std::lock_guard lock(mu);
      committed.emplace_back(name, content);
      progressed.notify_all();
    }
  });
  auto committed_at_least = [&](size_t n) {
    std::unique_lock lock(mu);
    EXPECT_TRUE(
        progressed.wait_for(lock, std::chrono::seconds(30), [&] { return committed.size() >= n; }));
    return committed;
  };

  // No key: the daemon makes the backup.
  const auto before_first = committed_at_least(10);
  RunResult first = Medvfs({"backup", archive_.string(), dest_.string()}, NoKey());
  const auto before_second = committed_at_least(before_first.size() + 10);
  // The mount point names the archive too.
  RunResult second = Medvfs({"backup", mnt_.string(), dest_.string()}, NoKey());
  committed_at_least(before_second.size() + 3);
  stop = true;
  writer.join();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_THAT(first.out, HasSubstr("Backup 1"));
  EXPECT_THAT(first.out, HasSubstr("mount stayed in use"));
  EXPECT_THAT(second.out, HasSubstr("Backup 2"));
  EXPECT_TRUE(stdfs::exists(archive_ / "medvfs.sock"));

  const stdfs::path restored = dir_ / "restored";
  RunResult restore = Medvfs({"restore-backup", dest_.string(), restored.string()});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  RunResult verify = Medvfs({"verify", restored.string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  // Every version committed before the second backup began, identical. Versions are matched
  // by content (a save of equal content adds none).
  std::map<std::string, std::map<std::string, uint64_t>> versions;  // name -> sha -> number
  for (int n = 0; n < 5; ++n) {
    const std::string name = "w" + std::to_string(n) + ".dat";
    nlohmann::json log = LogJson(restored.string() + "::/" + name);
    if (!log.is_object() || !log.contains("versions")) continue;
    for (const auto& v : log["versions"]) {
      versions[name][v["sha256"].get<std::string>()] = v["number"].get<uint64_t>();
    }
  }
  size_t checked = 0;
  for (const auto& [name, content] : before_second) {
    const std::string sha = store::HexEncode(store::Sha256Of(content));
    auto it = versions[name].find(sha);
    ASSERT_NE(it, versions[name].end()) << name << " " << content.substr(0, 12);
    // Read back a sample byte for byte.
    if (checked++ % 4 == 0) {
      RunResult cat = Medvfs(
          {"cat", restored.string() + "::/" + name, "--version", std::to_string(it->second)});
      EXPECT_EQ(cat.out, content) << name;
    }
  }
  // The backup holds both backups' own audit entries.
  RunResult audit = Medvfs({"audit", restored.string(), "--json"});
  EXPECT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("\"op\":\"backup\""));

  Unmount();
  EXPECT_FALSE(stdfs::exists(archive_ / "medvfs.sock"));  // removed at unmount
}

// Unmounted again, a socket file left behind (as by a daemon that was killed) does not stop a
// backup.
TEST_F(CliBackupMountTest, StaleSocketAfterUnmount) {
  Save(mnt_ / "a.txt", "hello");
  Unmount();
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = (archive_ / "medvfs.sock").string();
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);  // never listened on: connecting is refused
  RunResult backup = Medvfs({"backup", archive_.string(), dest_.string()});
  EXPECT_EQ(backup.exit_code, 0) << backup.err;
  // And a mount replaces it.
  RunResult mount = Medvfs({"mount", archive_.string(), mnt_.string()});
  ASSERT_EQ(mount.exit_code, 0) << mount.err;
  mounted_ = true;
  RunResult online = Medvfs({"backup", archive_.string(), dest_.string()}, NoKey());
  EXPECT_EQ(online.exit_code, 0) << online.err;
  EXPECT_THAT(online.out, HasSubstr("Backup 2"));
  // Never into a mount (the daemon would write through itself).
  RunResult into_mount = Medvfs({"backup", archive_.string(), (mnt_ / "b").string()}, NoKey());
  EXPECT_EQ(into_mount.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(into_mount));
  EXPECT_THAT(into_mount.err, HasSubstr("inside the medvfs mount"));
}

// The daemon checks who is on the other end of its socket: only root and its own user.
TEST_F(CliBackupMountTest, OtherUsersAreRefusedOnTheSocket) {
  if (geteuid() != 0) GTEST_FAIL() << "needs root to act as another user";
  // Open the way to the socket (normally the 0700 archive directory bars it).
  stdfs::permissions(dir_, stdfs::perms(0755));
  stdfs::permissions(archive_, stdfs::perms(0755));
  stdfs::permissions(archive_ / "medvfs.sock", stdfs::perms(0666));
  // Everything the child needs is made before the fork: this process has RocksDB's threads
  // running, so the child may only make raw system calls (no allocation, no locks). Raw
  // setgid/setuid change the only thread there is; glibc's wrappers would signal the others.
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string socket_path = (archive_ / "medvfs.sock").string();
  ASSERT_LT(socket_path.size(), sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  const std::string request = "backup\t" + (dir_ / "theft").string() + "\t0\n";
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipe_fds[0]);
    if (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setgid, 65534) != 0 ||
        syscall(SYS_setuid, 65534) != 0) {
      _exit(2);
    }
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(3);
    if (write(fd, request.data(), request.size()) < 0) _exit(4);
    char buf[512];
    ssize_t n = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
      if (write(pipe_fds[1], buf, static_cast<size_t>(n)) != n) _exit(5);
    }
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string reply;
  char buf[512];
  ssize_t n = 0;
  while ((n = read(pipe_fds[0], buf, sizeof(buf))) > 0) reply.append(buf, static_cast<size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_THAT(reply, HasSubstr("error\t" +
                               std::to_string(static_cast<int>(store::Code::kPermission)) + "\t"));
  EXPECT_FALSE(stdfs::exists(dir_ / "theft"));
  // The refusal is in the audit log.
  Unmount();
  RunResult audit = Medvfs({"audit", archive_.string(), "--json"});
  EXPECT_THAT(audit.out, HasSubstr("refused on the control socket"));
  EXPECT_THAT(audit.out, HasSubstr("\"uid\":65534"));
}

}  // namespace
}  // namespace medvfs::testing
