#include "tests/tools/cli_fixture.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "store/crypto/crypto.h"

namespace medvfs::testing {

void CliTest::SetUp() {
  std::string templ = (std::filesystem::temp_directory_path() / "medvfs_cli_XXXXXX").string();
  ASSERT_NE(mkdtemp(templ.data()), nullptr);
  dir_ = templ;
  archive_ = dir_ / "archive";
}

void CliTest::TearDown() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

RunOptions CliTest::Options() const {
  RunOptions options;
  options.env["MEDVFS_PASSPHRASE"] = kPassphrase;
  // Mounts keep their rollback high-water marks inside the test's directory, not in the host's
  // /var/lib/medvfs.
  options.env["MEDVFS_STATE_DIR"] = (dir_ / "state").string();
  options.working_dir = dir_.string();
  return options;
}

RunResult CliTest::Medvfs(const std::vector<std::string>& args) const {
  return Medvfs(args, Options());
}

RunResult CliTest::Medvfs(const std::vector<std::string>& args, const RunOptions& options) const {
  std::vector<std::string> argv = {MEDVFS_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, options);
}

void CliTest::InitArchive(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"init", archive_.string(), "--kdf-cost", "fast"};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult result = Medvfs(args);
  ASSERT_EQ(result.exit_code, 0) << result.err;
}

void CliTest::Populate(const std::vector<std::string>& ops, const std::vector<std::string>& key) {
  std::vector<std::string> argv = {MEDVFS_POPULATE_BIN, archive_.string()};
  argv.insert(argv.end(), key.begin(), key.end());
  argv.insert(argv.end(), ops.begin(), ops.end());
  RunResult result = RunProgram(argv, Options());
  ASSERT_EQ(result.exit_code, 0) << result.err;
}

nlohmann::json CliTest::LogJson(const std::string& path) const {
  RunResult result = Medvfs({"log", path, "--json"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  nlohmann::json json = nlohmann::json::parse(result.out, nullptr, false);
  EXPECT_TRUE(json.is_object()) << result.out;
  return json;
}

void CliMountTest::SetUp() {
  CliTest::SetUp();
  if (!FuseAvailable()) {
    GTEST_FAIL() << "FUSE is not available here: mount tests need a usable /dev/fuse and "
                 << "fusermount3 (see the test prerequisites.mount)";
  }
  InitArchive();
  mnt_ = dir_ / "mnt";
  std::filesystem::create_directory(mnt_);
  RunResult mount = Medvfs({"mount", archive_.string(), mnt_.string()});
  ASSERT_EQ(mount.exit_code, 0) << mount.err;
  mounted_ = true;
}

void CliMountTest::TearDown() {
  if (mounted_) {
    RunResult umount = Medvfs({"umount", mnt_.string()});
    EXPECT_EQ(umount.exit_code, 0) << umount.err;
    if (umount.exit_code != 0) RunProgram({"/usr/bin/fusermount3", "-u", "-z", mnt_.string()});
  }
  CliTest::TearDown();
}

RunOptions CliMountTest::NoKey() const {
  RunOptions options = Options();
  options.env["MEDVFS_PASSPHRASE"] = std::nullopt;
  return options;
}

void CliMountTest::Unmount() {
  RunResult umount = Medvfs({"umount", mnt_.string()});
  ASSERT_EQ(umount.exit_code, 0) << umount.err;
  mounted_ = false;
}

bool FuseAvailable() {
  // MEDVFS_TEST_FUSE_DEVICE names another device to try than /dev/fuse: pointed nowhere, it
  // shows that a mount test without FUSE fails, never skips.
  const char* device = std::getenv("MEDVFS_TEST_FUSE_DEVICE");
  if (device == nullptr || *device == '\0') device = "/dev/fuse";
  int fd = open(device, O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  close(fd);
  return access("/usr/bin/fusermount3", X_OK) == 0 || access("/bin/fusermount3", X_OK) == 0;
}

void Save(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  ASSERT_TRUE(out) << path;
}

std::string FindProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string DcmdumpValue(const std::filesystem::path& file, const std::string& keyword) {
  // +p prefixes elements inside sequences with their path, so the top-level line is the one
  // that starts with the tag itself.
  RunResult dump = RunProgram({FindProgram("dcmdump"), "-q", "+p", "+P", keyword, file.string()});
  std::istringstream lines(dump.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() < 12 || line[0] != '(' || line[11] != ' ') continue;
    size_t open = line.find('[');
    size_t close = line.rfind(']');
    if (open == std::string::npos || close == std::string::npos || close < open) return "";
    return line.substr(open + 1, close - open - 1);
  }
  return "";
}

void DcmodifyCopy(const std::filesystem::path& source, const std::filesystem::path& copy,
                  const std::string& assignment) {
  std::filesystem::copy_file(source, copy, std::filesystem::copy_options::overwrite_existing);
  RunResult modify = RunProgram({FindProgram("dcmodify"), "-nb", "-m", assignment, copy.string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;
}

::testing::AssertionResult IsOneLineError(const RunResult& result) {
  const std::string& err = result.err;
  if (err.rfind("medvfs: ", 0) != 0) return ::testing::AssertionFailure() << "stderr: " << err;
  if (std::count(err.begin(), err.end(), '\n') != 1 || err.back() != '\n') {
    return ::testing::AssertionFailure() << "not one line: " << err;
  }
  if (err.find("; ") == std::string::npos) {
    return ::testing::AssertionFailure() << "no '; what to do' part: " << err;
  }
  return ::testing::AssertionSuccess();
}

std::string SnapshotTree(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> paths = {root};
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    paths.push_back(entry.path());
  }
  std::vector<std::string> lines;
  for (const std::filesystem::path& path : paths) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) continue;
    std::ostringstream line;
    line << std::filesystem::relative(path, root).string() << " mode=" << std::oct << st.st_mode
         << std::dec << " size=" << st.st_size << " mtime=" << st.st_mtim.tv_sec << "."
         << st.st_mtim.tv_nsec;
    if (S_ISREG(st.st_mode)) {
      std::ifstream in(path, std::ios::binary);
      std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      line << " sha256=" << store::HexEncode(store::Sha256Of(content));
    }
    lines.push_back(line.str());
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace medvfs::testing
