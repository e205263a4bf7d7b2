#include "tests/fs/mount_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include <zstd.h>

#include "store/archive.h"

extern char** environ;

namespace medvfs::fs_test {
namespace stdfs = std::filesystem;

namespace {

std::string Slurp(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> MakeEnv(const EnvChanges& changes) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [key, value] : changes) {
    if (value) {
      env[key] = *value;
    } else {
      env.erase(key);
    }
  }
  std::vector<std::string> out;
  for (const auto& [key, value] : env) out.push_back(key + "=" + value);
  return out;
}

// Starts argv (looked up in PATH) with stdout/stderr redirected to the given files, in its own
// session (no controlling terminal: nothing can prompt). posix_spawn, not fork: this process
// may have threads (RocksDB's, once a test opened an archive in-process), and a forked child
// that allocated before exec could deadlock on a lock one of them held.
pid_t StartProcess(const std::vector<std::string>& argv, const EnvChanges& env,
                   const stdfs::path& out_file, const stdfs::path& err_file) {
  std::vector<std::string> env_strings = MakeEnv(env);
  std::vector<char*> cargv, cenv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (std::string& e : env_strings) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid = -1;
  if (posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), cenv.data()) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return pid;
}

int WaitWithTimeout(pid_t pid, int timeout_s) {
  int status = 0;
  const bool done = PollUntil(
      [&] {
        const pid_t r = waitpid(pid, &status, WNOHANG);
        return r == pid || (r < 0 && errno != EINTR);
      },
      timeout_s * 1000);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string UnescapeOctal(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && field.size() - i >= 4 &&
        std::all_of(field.begin() + static_cast<long>(i) + 1,
                    field.begin() + static_cast<long>(i) + 4,
                    [](char c) { return c >= '0' && c <= '7'; })) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                               (field[i + 3] - '0'));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  const std::string stat = Slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

}  // namespace

ProcResult RunProgram(const std::vector<std::string>& argv, const EnvChanges& env, int timeout_s) {
  char out_template[] = "/tmp/medvfs-run-out-XXXXXX";
  char err_template[] = "/tmp/medvfs-run-err-XXXXXX";
  const int out_fd = mkstemp(out_template);
  const int err_fd = mkstemp(err_template);
  ProcResult result;
  if (out_fd < 0 || err_fd < 0) return result;
  close(out_fd);
  close(err_fd);
  const pid_t pid = StartProcess(argv, env, out_template, err_template);
  if (pid > 0) result.exit_code = WaitWithTimeout(pid, timeout_s);
  result.out = Slurp(out_template);
  result.err = Slurp(err_template);
  unlink(out_template);
  unlink(err_template);
  return result;
}

bool IsMedvfsMount(const stdfs::path& mountpoint) {
  std::istringstream in(Slurp("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    std::string field;
    while (fields >> field) f.push_back(field);
    const auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || dash + 1 == f.end()) continue;
    if (UnescapeOctal(f[4]) == mountpoint.string() && *(dash + 1) == "fuse.medvfs") return true;
  }
  return false;
}

void MountTest::SetUp() {
  // MEDVFS_TEST_FUSE_DEVICE names another device to check than /dev/fuse: pointed nowhere, it
  // shows that a mount test without FUSE fails, never skips.
  const char* device_env = std::getenv("MEDVFS_TEST_FUSE_DEVICE");
  const std::string device =
      device_env != nullptr && *device_env != '\0' ? device_env : std::string("/dev/fuse");
  if (access(device.c_str(), R_OK | W_OK) != 0) {
    GTEST_FAIL() << device << " is not usable: mount tests need FUSE (see the test "
                 << "prerequisites.mount, tests/ctest/check_prerequisites.sh)";
  }
  if (system("command -v fusermount3 >/dev/null 2>&1") != 0) {
    GTEST_FAIL() << "no fusermount3: mount tests need FUSE (package fuse3)";
  }
  ASSERT_FALSE(temp_.path().empty());
  dir_ = temp_.path();
  archive_ = dir_ / "archive";
  mnt_ = dir_ / "mnt";
  plain_ = dir_ / "plain";
  stdfs::create_directory(mnt_);
  stdfs::create_directory(plain_);
  store::ArchiveOptions options;
  options.kdf.n = uint64_t{1} << 10;  // cheap key derivation: tests only
  auto created =
      store::Archive::Create(archive_, store::KeySource::Passphrase(kPassphrase), options);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
}

void MountTest::TearDown() {
  // Unmount whatever this test left mounted: normally, else detached (a stale mount or a busy
  // one must not outlive the test).
  const auto unmount = [this](bool lazy) {
    if (mnt_.empty() || !IsMedvfsMount(mnt_)) return;
    if (geteuid() == 0) {
      umount2(mnt_.c_str(), lazy ? MNT_DETACH : 0);
    } else {
      std::vector<std::string> argv = {"fusermount3", "-u", mnt_.string()};
      if (lazy) argv.insert(argv.begin() + 2, "-z");
      RunProgram(argv);
    }
  };
  unmount(false);
  unmount(true);
  // Only the processes this test started.
  if (daemon_pid_ > 0 && !PollUntil([&] { return ProcessGone(daemon_pid_); }, 15'000)) {
    ADD_FAILURE() << "daemon " << daemon_pid_ << " did not exit after unmount; killing it";
    kill(daemon_pid_, SIGKILL);
  }
  for (pid_t pid : spawned_) {
    if (WaitWithTimeout(pid, 15) == -1) ADD_FAILURE() << "foreground mount " << pid << " killed";
  }
  unmount(true);
}

ProcResult MountTest::Mount(const std::string& options, const EnvChanges& env) {
  std::vector<std::string> argv = {MEDVFS_BIN, "mount", archive_.string(), mnt_.string()};
  if (!options.empty()) {
    argv.push_back("-o");
    argv.push_back(options);
  }
  EnvChanges full = {{"MEDVFS_PASSPHRASE", kPassphrase}, {"MEDVFS_STATE_DIR", StateDir()}};
  for (const auto& [key, value] : env) full[key] = value;
  return RunProgram(argv, full);
}

void MountTest::MountOk(const std::string& options) {
  const ProcResult result = Mount(options);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  ASSERT_TRUE(IsMedvfsMount(mnt_));
  const std::string pid_text = Slurp(archive_ / "medvfs.pid");
  ASSERT_FALSE(pid_text.empty()) << "no medvfs.pid";
  daemon_pid_ = static_cast<pid_t>(std::stol(pid_text));
  struct stat st {};
  ASSERT_EQ(stat((archive_ / "medvfs.pid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

void MountTest::UmountOk() {
  const ProcResult result = RunProgram({MEDVFS_BIN, "umount", mnt_.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_FALSE(IsMedvfsMount(mnt_));
  if (daemon_pid_ > 0) {
    // umount returns only once the daemon is gone.
    EXPECT_TRUE(ProcessGone(daemon_pid_));
    EXPECT_FALSE(stdfs::exists(archive_ / "medvfs.pid"));
    daemon_pid_ = 0;
  }
}

pid_t MountTest::SpawnForeground(const std::string& options) {
  std::vector<std::string> argv = {MEDVFS_BIN, "mount", "-f", archive_.string(), mnt_.string()};
  if (!options.empty()) {
    argv.push_back("-o");
    argv.push_back(options);
  }
  const pid_t pid =
      StartProcess(argv, {{"MEDVFS_PASSPHRASE", kPassphrase}, {"MEDVFS_STATE_DIR", StateDir()}},
                   dir_ / "fg.out", dir_ / "fg.err");
  if (pid > 0) spawned_.push_back(pid);
  return pid;
}

int WriteFile(const stdfs::path& path, const std::string& content, int flags) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | flags, 0644);
  if (fd < 0) return errno;
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      const int err = errno;
      close(fd);
      return err;
    }
    done += static_cast<size_t>(n);
  }
  return close(fd) == 0 ? 0 : errno;
}

std::string ReadFile(const stdfs::path& path) { return Slurp(path); }

int ErrnoOf(int rc) { return rc == 0 ? 0 : errno; }

std::vector<std::string> ListDir(const stdfs::path& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool InZstdFrames(const std::string& data, const std::string& needle) {
  static const std::string kMagic("\x28\xb5\x2f\xfd", 4);
  for (size_t pos = data.find(kMagic); pos != std::string::npos; pos = data.find(kMagic, pos + 1)) {
    ZSTD_DStream* stream = ZSTD_createDStream();
    ZSTD_initDStream(stream);
    ZSTD_inBuffer in{data.data() + pos, data.size() - pos, 0};
    std::string out;
    std::string buf(1 << 16, '\0');
    while (in.pos < in.size && out.size() < (64u << 20)) {
      ZSTD_outBuffer o{buf.data(), buf.size(), 0};
      const size_t rc = ZSTD_decompressStream(stream, &o, &in);
      out.append(buf.data(), o.pos);
      if (ZSTD_isError(rc) || rc == 0) break;
    }
    ZSTD_freeDStream(stream);
    if (out.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string ErrnoName(int err) {
  if (err == 0) return "ok";
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : std::to_string(err);
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string Xattr(const stdfs::path& path, const std::string& name) {
  std::string value(4096, '\0');
  const ssize_t n = getxattr(path.c_str(), name.c_str(), value.data(), value.size());
  if (n < 0) return "errno:" + ErrnoName(errno);
  value.resize(static_cast<size_t>(n));
  return value;
}

std::string Dcmdump(const std::string& tag, const stdfs::path& file) {
  const ProcResult result = RunProgram({"dcmdump", "-s", "+P", tag, file.string()});
  const std::string& out = result.out;
  const size_t open = out.find('[');
  const size_t hash = out.find('#', open);
  if (open == std::string::npos || hash == std::string::npos) return "";
  const size_t close = out.rfind(']', hash);
  if (close == std::string::npos || close < open) return "";
  return out.substr(open + 1, close - open - 1);
}

}  // namespace medvfs::fs_test
