// How the command line reads keys (the non-interactive sources).
#include "tools/key_input.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace medvfs::tools {
namespace {

class KeyInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "medvfs_key_XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    unsetenv("MEDVFS_PASSPHRASE");
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    unsetenv("MEDVFS_PASSPHRASE");
  }
  std::string Write(const std::string& name, const std::string& content) {
    std::filesystem::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }
  std::filesystem::path dir_;
};

TEST_F(KeyInputTest, PassphraseFileGivesItsFirstLine) {
  KeyOptions options;
  options.passphrase_file = Write("p", "secret words\r\nnext\n");
  auto key = ReadKey(options, false);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->kind(), store::KeySourceKind::kPassphrase);
  EXPECT_EQ(key->secret(), "secret words");
}

TEST_F(KeyInputTest, EmptyPassphraseIsRefused) {
  KeyOptions options;
  options.passphrase_file = Write("p", "\nsecond");
  EXPECT_FALSE(ReadKey(options, false).ok());
  setenv("MEDVFS_PASSPHRASE", "", 1);
  EXPECT_FALSE(ReadKey(KeyOptions{}, true).ok());
}

TEST_F(KeyInputTest, MissingPassphraseFileIsRefused) {
  KeyOptions options;
  options.passphrase_file = (dir_ / "missing").string();
  auto key = ReadKey(options, false);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("; "), std::string::npos);
}

TEST_F(KeyInputTest, EnvironmentVariable) {
  setenv("MEDVFS_PASSPHRASE", "from env", 1);
  auto key = ReadKey(KeyOptions{}, false);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->secret(), "from env");
}

TEST_F(KeyInputTest, KeyFileComesFirst) {
  setenv("MEDVFS_PASSPHRASE", "from env", 1);
  KeyOptions options;
  options.key_file = Write("k", std::string(40, 'k'));
  auto key = ReadKey(options, false);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->kind(), store::KeySourceKind::kKeyFile);
}

TEST_F(KeyInputTest, ShortKeyFileIsRefused) {
  KeyOptions options;
  options.key_file = Write("k", "short");
  EXPECT_FALSE(ReadKey(options, false).ok());
}

}  // namespace
}  // namespace medvfs::tools
