// The mount daemon killed with SIGKILL at random moments while a program saves files through
// it: every save whose close() returned 0 must be there after the next mount, byte for byte
// and in order; nothing else may half-exist; `medvfs verify` must pass.
//
// MEDVFS_KILL_ROUNDS sets the number of rounds (default 20; the `slow` label runs 200).
// MEDVFS_KILL_SEED replays a run (the seed is printed on failure).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

constexpr int kFileNames = 4;

std::string FileName(int save) { return "scan" + std::to_string(save % kFileNames) + ".dat"; }

// Save number `i`: a header naming it, then bytes only it has; sizes from empty to 1.5 MiB so
// that saves cross chunk boundaries and the daemon's per-file memory cap.
std::string SaveContent(int i) {
  static constexpr size_t kSizes[] = {0, 300, 9000, 150'000, 600'000, 1'500'000};
  std::string content = "save " + std::to_string(i) + "\n";
  std::mt19937 rng(static_cast<uint32_t>(i) * 7919u);
  const size_t size = kSizes[static_cast<size_t>(i) % std::size(kSizes)];
  content.reserve(size);
  while (content.size() < size) content += static_cast<char>('A' + rng() % 26);
  return content;
}

// The save a content is, or -1 if it is not exactly one of them.
int SaveNumberOf(const std::string& content) {
  if (content.rfind("save ", 0) != 0) return -1;
  const size_t newline = content.find('\n');
  if (newline == std::string::npos || newline > 20) return -1;
  const int i = std::atoi(content.substr(5, newline - 5).c_str());
  return SaveContent(i) == content ? i : -1;
}

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

// The writer, on a thread of its own (a forked child of this threaded process could deadlock
// in malloc before it wrote anything): saves until the mount fails under it or `stop` is set,
// appending "NAME NUMBER" to `acknowledged` after each close() that returned 0. Every fourth
// save is fsync'ed before close, every fifth goes through a temporary name renamed over the
// target (what editors and PACS tools do). 0 when it stopped that way, else what went wrong.
int RunWriter(const stdfs::path& mnt, const stdfs::path& acknowledged, int first,
              const std::atomic<bool>& stop) {
  const int log = open(acknowledged.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) return 2;
  int result = 0;
  for (int i = first; !stop; ++i) {
    const std::string content = SaveContent(i);
    const bool via_rename = i % 5 == 4;
    const stdfs::path target = mnt / FileName(i);
    const stdfs::path written = via_rename ? mnt / (".tmp-" + FileName(i)) : target;
    const int fd = open(written.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) break;
    bool failed = false;
    for (size_t done = 0; done < content.size() && !failed;) {
      const ssize_t n =
          write(fd, content.data() + done, std::min<size_t>(content.size() - done, 128 << 10));
      failed = n <= 0;
      if (!failed) done += static_cast<size_t>(n);
    }
    if (failed || (i % 4 == 3 && fsync(fd) != 0)) {
      close(fd);
      break;
    }
    if (close(fd) != 0) break;
    if (via_rename && rename(written.c_str(), target.c_str()) != 0) break;
    const std::string line = FileName(i) + " " + std::to_string(i) + "\n";
    if (write(log, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      result = 3;
      break;
    }
  }
  close(log);
  return result;
}

class DaemonKillTest : public MountTest {
 protected:
  // Mounts again after a kill: `medvfs mount` clears the dead mount by itself and says so.
  void Remount() {
    const ProcResult result = Mount();
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_NE(result.err.find("left mounted by a medvfs daemon that died"), std::string::npos)
        << result.err;
    ASSERT_TRUE(IsMedvfsMount(mnt_));
    daemon_pid_ = static_cast<pid_t>(std::stol(ReadFile(archive_ / "medvfs.pid")));
  }

  // Every acknowledged save of each name is a version of it, in order; every version is
  // exactly one save (a save in flight at a kill may have committed whole, never in part).
  void CheckSaves(const std::map<std::string, std::vector<int>>& acknowledged,
                  const std::string& where, bool full_check) {
    for (int n = 0; n < kFileNames; ++n) {
      const std::string name = FileName(n);
      const stdfs::path history = P("@version/" + name);
      std::vector<std::pair<int, std::string>> entries;  // by version number, not by name
      for (const std::string& entry : ListDir(history)) {
        if (entry.size() > 1 && entry[0] == 'v') entries.emplace_back(std::atoi(&entry[1]), entry);
      }
      std::sort(entries.begin(), entries.end());
      std::vector<int> found;
      for (const auto& [number, entry] : entries) {
        // Versions are immutable: each is read once per run, and all again at the end.
        auto known = checked_.find({name, number});
        if (known == checked_.end() || full_check) {
          const int i = SaveNumberOf(ReadFile(history / entry));
          EXPECT_GE(i, 0) << where << ": " << name << " " << entry << " is not a whole save";
          if (known != checked_.end()) {
            EXPECT_EQ(i, known->second) << where << ": " << name << " " << entry << " changed";
          }
          known = checked_.insert_or_assign({name, number}, i).first;
        }
        found.push_back(known->second);
      }

      const auto it = acknowledged.find(name);
      const std::vector<int> want = it == acknowledged.end() ? std::vector<int>{} : it->second;
      // Saves not acknowledged (in flight at the kill) may appear, but only whole and only
      // after the acknowledged ones of the same round; check the acknowledged subsequence.
      std::vector<int> acknowledged_found;
      for (int save : found) {
        if (std::find(want.begin(), want.end(), save) != want.end()) {
          acknowledged_found.push_back(save);
        }
      }
      EXPECT_EQ(acknowledged_found, want) << where << ": versions of " << name;
      // The live file is the last version, or empty/absent if nothing was ever committed.
      const std::string live = ReadFile(P(name));
      if (!found.empty()) {
        EXPECT_EQ(SaveNumberOf(live), found.back()) << where << ": live " << name;
      }
    }
    // No temporary file of a rename-save may be left holding a partial content.
    for (const std::string& entry : ListDir(mnt_)) {
      if (entry.rfind(".tmp-", 0) != 0) continue;
      const std::string content = ReadFile(P(entry));
      EXPECT_TRUE(content.empty() || SaveNumberOf(content) >= 0)
          << where << ": " << entry << " holds part of a save";
    }
  }

  std::map<std::pair<std::string, int>, int> checked_;  // (name, version) -> save number

  void KillRounds(int rounds) {
    const uint32_t seed = static_cast<uint32_t>(EnvInt("MEDVFS_KILL_SEED", std::random_device{}()));
    SCOPED_TRACE("MEDVFS_KILL_SEED=" + std::to_string(seed));
    std::mt19937 rng(seed);
    MountOk();
    const stdfs::path log = dir_ / "acknowledged";
    int next_save = 0;
    for (int round = 0; round < rounds; ++round) {
      const std::string where = "round " + std::to_string(round);
      std::atomic<bool> stop{false};
      int writer_result = -1;
      std::thread writer([&] { writer_result = RunWriter(mnt_, log, next_save, stop); });
      // Long enough for several saves in most rounds, sometimes in the middle of the first.
      const int delay_ms = std::uniform_int_distribution<int>(20, 700)(rng);
      usleep(static_cast<useconds_t>(delay_ms) * 1000);
      const int killed = kill(daemon_pid_, SIGKILL);
      if (killed != 0) stop = true;
      writer.join();
      ASSERT_EQ(killed, 0);
      ASSERT_EQ(writer_result, 0) << where << ": writer failed";
      waitpid(daemon_pid_, nullptr, WNOHANG);  // not our child; the kill is enough
      ASSERT_TRUE(PollUntil([&] { return kill(daemon_pid_, 0) != 0; }, 10'000));
      daemon_pid_ = 0;
      Remount();
      if (HasFatalFailure()) return;

      std::map<std::string, std::vector<int>> acknowledged;
      std::istringstream lines(ReadFile(log));
      std::string name;
      int save = 0;
      while (lines >> name >> save) {
        acknowledged[name].push_back(save);
        next_save = std::max(next_save, save + 1);
      }
      // Saves in flight are never reused: the next round starts after anything attempted.
      next_save += 2;
      CheckSaves(acknowledged, where, /*full_check=*/round + 1 == rounds);
      if (HasFailure()) return;
    }
    UmountOk();
    const ProcResult verify = RunProgram({MEDVFS_BIN, "verify", archive_.string()},
                                         {{"MEDVFS_PASSPHRASE", kPassphrase}}, 120);
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  }
};

TEST_F(DaemonKillTest, AcknowledgedSavesSurviveSigkill) {
  KillRounds(EnvInt("MEDVFS_KILL_ROUNDS", 20));
}

}  // namespace
}  // namespace medvfs::fs_test
