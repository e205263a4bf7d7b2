// How the engine names what went wrong with the database and its backups: by the condition the
// system is in (the database open elsewhere, a read-only file system, no permission), never by
// the words of RocksDB's message. Every case runs in directories whose names hold the words the
// message used to be searched for: a path is part of the message, and must not decide.
#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "store/archive.h"
#include "store/engine/kv_store.h"
#include "tests/fs/as_user.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::TempDirTest;
namespace stdfs = std::filesystem;

constexpr char kBusyMessage[] = "the archive is open in another process (mounted?)";

// Directory names made of the words the old classification searched RocksDB's text for.
const std::vector<std::string> kTrapNames = {
    "plain",        "blocked lock",      "No space left",
    "No such file", "Permission denied", "Read-only file system"};

// A bind mount of a directory (read-only if asked), unmounted (lazily, should a test leave a
// file open) on destruction.
class BindMount {
 public:
  BindMount(const stdfs::path& source, const stdfs::path& target, bool read_only = true)
      : target_(target) {
    stdfs::create_directories(target);
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) return;
    mounted_ = true;
    ok_ = !read_only ||
          ::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) == 0;
  }
  BindMount(const BindMount&) = delete;
  BindMount& operator=(const BindMount&) = delete;
  ~BindMount() {
    if (mounted_) ::umount2(target_.c_str(), MNT_DETACH);
  }
  bool ok() const { return ok_; }

 private:
  stdfs::path target_;
  bool mounted_ = false;
  bool ok_ = false;
};

class KvErrorsTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    // Another user must reach what lies below (the temporary directory is root's, 0700).
    ::chmod(dir().c_str(), 0711);
  }

  // Creates a database at `db` (and closes it).
  void CreateDb(const stdfs::path& db) {
    stdfs::create_directories(db.parent_path());
    KvOpenOptions options;
    options.create = true;
    ASSERT_OK_AND_ASSIGN(auto kv, KvStore::Open(db, options));
    ASSERT_OK(kv->Put(Family::kMeta, "k", "v", /*sync=*/true));
  }

  static StatusOr<std::unique_ptr<KvStore>> OpenDb(const stdfs::path& db, bool read_only = false) {
    KvOpenOptions options;
    options.read_only = read_only;
    return KvStore::Open(db, options);
  }

  ArchiveOptions ArchiveOpts() const {
    ArchiveOptions options;
    options.kdf.n = 1 << 10;
    return options;
  }
  static KeySource Key() { return KeySource::Passphrase("correct horse"); }
};

TEST_F(KvErrorsTest, SecondWritableOpenInThisProcessIsBusy) {
  for (const auto& name : kTrapNames) {
    SCOPED_TRACE(name);
    const stdfs::path db = dir() / name / "db";
    CreateDb(db);
    ASSERT_OK_AND_ASSIGN(auto first, OpenDb(db));
    auto second = OpenDb(db);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), Code::kBusy) << second.status().ToString();
    EXPECT_EQ(second.status().message(), kBusyMessage);
    // Also by another name of the same directory (RocksDB's own check compares the names: it
    // let this one through, and its close then dropped the first open's lock).
    const stdfs::path alias = dir() / (name + " alias");
    stdfs::create_directory_symlink(db, alias);
    auto by_alias = OpenDb(alias);
    EXPECT_EQ(by_alias.status().code(), Code::kBusy) << by_alias.status().ToString();
    {
      // And through a bind mount of its parent.
      const stdfs::path bound = dir() / (name + " bound");
      BindMount bind(dir() / name, bound, /*read_only=*/false);
      ASSERT_TRUE(bind.ok()) << "bind mount: " << std::strerror(errno);
      auto by_mount = OpenDb(bound / "db");
      EXPECT_EQ(by_mount.status().code(), Code::kBusy) << by_mount.status().ToString();
    }
    // Reading beside the writer is allowed.
    EXPECT_OK(OpenDb(alias, /*read_only=*/true));
    // Once the first is closed, the directory is free again.
    first.reset();
    EXPECT_OK(OpenDb(alias));
  }
}

TEST_F(KvErrorsTest, SecondArchiveOpenInThisProcessIsBusy) {
  const stdfs::path path = dir() / "blocked lock" / "archive";
  stdfs::create_directories(path.parent_path());
  ASSERT_OK_AND_ASSIGN(auto archive, Archive::Create(path, Key(), ArchiveOpts()));
  auto second = Archive::Open(path, Key(), ArchiveOpts());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy) << second.status().ToString();
  EXPECT_EQ(second.status().message(), kBusyMessage);
}

// Run in a child process by ArchiveOpenInAnotherProcessIsBusy: opens the archive named by
// MEDVFS_TEST_OPEN_ARCHIVE and writes the code and message of the result to descriptor 3.
TEST(KvErrorsHelper, DISABLED_OpenArchive) {
  const char* path = std::getenv("MEDVFS_TEST_OPEN_ARCHIVE");
  ASSERT_NE(path, nullptr) << "run by KvErrorsTest only";
  auto archive = Archive::Open(path, KeySource::Passphrase("correct horse"), {});
  const std::string report =
      std::to_string(static_cast<int>(archive.status().code())) + "\n" + archive.status().message();
  ASSERT_EQ(write(3, report.data(), report.size()), static_cast<ssize_t>(report.size()));
}

TEST_F(KvErrorsTest, ArchiveOpenInAnotherProcessIsBusy) {
  for (const std::string name : {"plain", "No space left"}) {
    SCOPED_TRACE(name);
    const stdfs::path path = dir() / name / "archive";
    stdfs::create_directories(path.parent_path());
    ASSERT_OK_AND_ASSIGN(auto archive, Archive::Create(path, Key(), ArchiveOpts()));
    // The child is this test program again (posix_spawn: a forked child of a process with
    // RocksDB's threads could deadlock in its first allocation).
    int report[2];
    ASSERT_EQ(pipe2(report, O_CLOEXEC), 0);
    std::string self = "/proc/self/exe";
    std::string filter = "--gtest_filter=KvErrorsHelper.DISABLED_OpenArchive";
    std::string also_disabled = "--gtest_also_run_disabled_tests";
    char* argv[] = {self.data(), filter.data(), also_disabled.data(), nullptr};
    std::string env = "MEDVFS_TEST_OPEN_ARCHIVE=" + path.string();
    char* envp[] = {env.data(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, report[1], 3);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t child = -1;
    const int spawned = posix_spawn(&child, argv[0], &actions, nullptr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    ::close(report[1]);
    std::string text;
    char buffer[512];
    for (ssize_t n; spawned == 0 && (n = ::read(report[0], buffer, sizeof buffer)) > 0;) {
      text.append(buffer, static_cast<size_t>(n));
    }
    ::close(report[0]);
    ASSERT_EQ(spawned, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(text, std::to_string(static_cast<int>(Code::kBusy)) + "\n" + kBusyMessage);
  }
}

TEST_F(KvErrorsTest, WritableOpenOnReadOnlyFileSystemIsReadOnly) {
  for (const auto& name : kTrapNames) {
    SCOPED_TRACE(name);
    const stdfs::path source = dir() / name;
    CreateDb(source / "db");
    BindMount bind(source, dir() / (name + " ro"));
    ASSERT_TRUE(bind.ok()) << "read-only bind mount: " << std::strerror(errno);
    auto opened = OpenDb(dir() / (name + " ro") / "db");
    EXPECT_EQ(opened.status().code(), Code::kReadOnly) << opened.status().ToString();
    EXPECT_OK(OpenDb(dir() / (name + " ro") / "db", /*read_only=*/true));
  }
}

TEST_F(KvErrorsTest, OpenWithoutPermissionIsAccess) {
  for (const auto& name : kTrapNames) {
    SCOPED_TRACE(name);
    const stdfs::path db = dir() / name / "db";
    CreateDb(db);  // root's, 0700 (RocksDB's default), below directories others may cross
    ::chmod((dir() / name).c_str(), 0711);
    int code = -1;
    ASSERT_EQ(fs_test::RunAsNobody([&] {
                code = static_cast<int>(OpenDb(db).status().code());
                return 0;
              }),
              0);
    EXPECT_EQ(code, static_cast<int>(Code::kAccess));
  }
}

TEST_F(KvErrorsTest, BackupIntoReadOnlyDirectoryIsReadOnly) {
  const stdfs::path db = dir() / "db";
  CreateDb(db);
  ASSERT_OK_AND_ASSIGN(auto kv, OpenDb(db));
  for (const auto& name : kTrapNames) {
    SCOPED_TRACE(name);
    stdfs::create_directories(dir() / name);
    BindMount bind(dir() / name, dir() / (name + " ro"));
    ASSERT_TRUE(bind.ok()) << "read-only bind mount: " << std::strerror(errno);
    const Status made = kv->CreateBackup(dir() / (name + " ro"), {}, nullptr);
    EXPECT_EQ(made.code(), Code::kReadOnly) << made.ToString();
  }
  // The same through the archive.
  const stdfs::path path = dir() / "archive";
  ASSERT_OK_AND_ASSIGN(auto archive, Archive::Create(path, Key(), ArchiveOpts()));
  stdfs::create_directories(dir() / "backups");
  BindMount bind(dir() / "backups", dir() / "backups ro");
  ASSERT_TRUE(bind.ok());
  Caller caller;
  caller.program = "test";
  auto made = archive->Backup(dir() / "backups ro", {}, caller);
  EXPECT_EQ(made.status().code(), Code::kReadOnly) << made.status().ToString();
}

TEST_F(KvErrorsTest, BackupWithoutPermissionIsAccess) {
  const stdfs::path db = dir() / "db";
  CreateDb(db);
  ASSERT_OK_AND_ASSIGN(auto kv, OpenDb(db));
  for (const auto& name : kTrapNames) {
    SCOPED_TRACE(name);
    const stdfs::path dest = dir() / name;
    stdfs::create_directories(dest);  // root's, 0755: others may enter, not write
    ::chmod(dest.c_str(), 0755);
    Status made;
    ASSERT_EQ(fs_test::RunAsNobody([&] {
                made = kv->CreateBackup(dest, {}, nullptr);
                return 0;
              }),
              0);
    EXPECT_EQ(made.code(), Code::kAccess) << made.ToString();
  }
}

}  // namespace
}  // namespace medvfs::store
