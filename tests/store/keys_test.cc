#include "store/keys.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/crypto/crypto.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::ReadFile;
using test_util::WriteFile;

namespace fs = std::filesystem;

// Cheap scrypt so that the tests run fast; the defaults get one test of their own.
constexpr KdfParams kFastKdf{1024, 8, 1};

std::string KeyHex(const SecretKey& key) { return HexEncode(key.bytes()); }

std::vector<std::string> DirNames(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

class KeysTest : public test_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    slot_ = dir() / "keyslot";
    archive_id_ = std::string("0123456789abcdef");
  }

  // A key slot under "correct horse" with data key *key.
  void CreatePassphraseSlot(SecretKey* key) {
    ASSERT_OK(
        CreateKeySlot(slot_, KeySource::Passphrase("correct horse"), kFastKdf, archive_id_, key));
  }

  fs::path slot_;
  std::string archive_id_;
};

TEST_F(KeysTest, PassphraseRoundTrip) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  SecretKey unlocked;
  std::string archive_id;
  ASSERT_OK(UnlockKeySlot(slot_, KeySource::Passphrase("correct horse"), &unlocked, &archive_id));
  EXPECT_EQ(KeyHex(unlocked), KeyHex(created));
  EXPECT_EQ(archive_id, archive_id_);
  EXPECT_NE(KeyHex(created), std::string(64, '0'));
}

TEST_F(KeysTest, FileFormat) {
  SecretKey key;
  CreatePassphraseSlot(&key);
  const std::string text = ReadFile(slot_);
  // The data key never appears in the clear.
  EXPECT_EQ(text.find(KeyHex(key)), std::string::npos);
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  ASSERT_FALSE(json.is_discarded()) << text;
  EXPECT_EQ(json["format"], 1);
  EXPECT_EQ(json["archive_id"],
            HexEncode({reinterpret_cast<const uint8_t*>(archive_id_.data()), archive_id_.size()}));
  EXPECT_EQ(json["kind"], "passphrase");
  EXPECT_EQ(json["kdf"]["name"], "scrypt");
  EXPECT_EQ(json["kdf"]["n"], 1024);
  EXPECT_EQ(json["kdf"]["r"], 8);
  EXPECT_EQ(json["kdf"]["p"], 1);
  EXPECT_EQ(json["kdf"]["salt"].get<std::string>().size(), 64u);
  EXPECT_EQ(json["wrapped_key"].get<std::string>().size(), 2 * (kSealOverhead + kKeySize));
}

TEST_F(KeysTest, FileModeIs0600AndNoTempFilesRemain) {
  const mode_t old_umask = ::umask(0);  // a permissive umask must not widen the mode
  SecretKey key;
  CreatePassphraseSlot(&key);
  ::umask(old_umask);
  struct stat st {};
  ASSERT_EQ(::stat(slot_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(DirNames(dir()), std::vector<std::string>{"keyslot"});
}

TEST_F(KeysTest, CreateRefusesAnExistingFile) {
  WriteFile(slot_, "precious");
  SecretKey key;
  Status status = CreateKeySlot(slot_, KeySource::Passphrase("pw"), kFastKdf, archive_id_, &key);
  EXPECT_EQ(status.code(), Code::kExists) << status.ToString();
  EXPECT_EQ(ReadFile(slot_), "precious");
}

TEST_F(KeysTest, CreateChecksItsArguments) {
  SecretKey key;
  EXPECT_EQ(CreateKeySlot(slot_, KeySource::Passphrase("pw"), kFastKdf, "short", &key).code(),
            Code::kInvalid);
  EXPECT_EQ(CreateKeySlot(slot_, KeySource::Passphrase(""), kFastKdf, archive_id_, &key).code(),
            Code::kInvalid);
  EXPECT_EQ(CreateKeySlot(slot_, KeySource::KeyFileBytes(std::string(31, 'k')), kFastKdf,
                          archive_id_, &key)
                .code(),
            Code::kInvalid);
  EXPECT_EQ(
      CreateKeySlot(slot_, KeySource::Passphrase("pw"), KdfParams{1000, 8, 1}, archive_id_, &key)
          .code(),
      Code::kInvalid);
  EXPECT_FALSE(fs::exists(slot_));
  EXPECT_TRUE(DirNames(dir()).empty());
}

TEST_F(KeysTest, WrongPassphraseIsRefusedAndNothingIsWritten) {
  SecretKey key;
  CreatePassphraseSlot(&key);
  const std::string before = ReadFile(slot_);
  SecretKey unlocked;
  std::string archive_id;
  Status status =
      UnlockKeySlot(slot_, KeySource::Passphrase("correct horsf"), &unlocked, &archive_id);
  EXPECT_EQ(status.code(), Code::kWrongKey);
  EXPECT_EQ(status.message(), "the passphrase does not unlock this archive");
  EXPECT_EQ(ReadFile(slot_), before);
  EXPECT_EQ(KeyHex(unlocked), std::string(64, '0'));
  EXPECT_TRUE(archive_id.empty());
}

TEST_F(KeysTest, KeyFileArchive) {
  std::string key_file_bytes(64, '\0');
  RandomBytes({reinterpret_cast<uint8_t*>(key_file_bytes.data()), key_file_bytes.size()});
  const fs::path key_file = dir() / "archive.key";
  WriteFile(key_file, key_file_bytes);
  ASSERT_OK_AND_ASSIGN(KeySource source, KeySource::FromKeyFile(key_file));
  EXPECT_EQ(source.kind(), KeySourceKind::kKeyFile);
  EXPECT_EQ(source.secret(), key_file_bytes);

  SecretKey created;
  ASSERT_OK(CreateKeySlot(slot_, source, kFastKdf, archive_id_, &created));
  const nlohmann::json json = nlohmann::json::parse(ReadFile(slot_), nullptr, false);
  EXPECT_EQ(json["kind"], "keyfile");
  EXPECT_EQ(json["kdf"]["name"], "hkdf-sha256");

  SecretKey unlocked;
  std::string archive_id;
  ASSERT_OK(UnlockKeySlot(slot_, KeySource::KeyFileBytes(key_file_bytes), &unlocked, &archive_id));
  EXPECT_EQ(KeyHex(unlocked), KeyHex(created));
  EXPECT_EQ(archive_id, archive_id_);

  std::string other = key_file_bytes;
  other[63] = static_cast<char>(other[63] ^ 1);
  Status status = UnlockKeySlot(slot_, KeySource::KeyFileBytes(other), &unlocked, &archive_id);
  EXPECT_EQ(status.code(), Code::kWrongKey);
  EXPECT_EQ(status.message(), "the key file does not unlock this archive");

  status = UnlockKeySlot(slot_, KeySource::Passphrase("pw"), &unlocked, &archive_id);
  EXPECT_EQ(status.code(), Code::kInvalid);
  EXPECT_NE(status.message().find("key file"), std::string::npos) << status.message();
}

TEST_F(KeysTest, KeyFileGivenForPassphraseArchive) {
  SecretKey key;
  CreatePassphraseSlot(&key);
  SecretKey unlocked;
  std::string archive_id;
  Status status =
      UnlockKeySlot(slot_, KeySource::KeyFileBytes(std::string(32, 'k')), &unlocked, &archive_id);
  EXPECT_EQ(status.code(), Code::kInvalid);
  EXPECT_NE(status.message().find("passphrase"), std::string::npos) << status.message();
}

TEST_F(KeysTest, FromKeyFileChecksTheFile) {
  const fs::path short_file = dir() / "short.key";
  WriteFile(short_file, std::string(31, 'k'));
  StatusOr<KeySource> source = KeySource::FromKeyFile(short_file);
  EXPECT_EQ(source.status().code(), Code::kInvalid);
  EXPECT_NE(source.status().message().find("at least 32 bytes"), std::string::npos);

  const fs::path ok_file = dir() / "ok.key";
  WriteFile(ok_file, std::string(32, 'k'));
  EXPECT_OK(KeySource::FromKeyFile(ok_file));

  EXPECT_EQ(KeySource::FromKeyFile(dir() / "missing.key").status().code(), Code::kNotFound);
  EXPECT_FALSE(KeySource::FromKeyFile(dir()).ok());
}

TEST_F(KeysTest, RewrapChangesThePassphraseNotTheKey) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  ASSERT_OK(RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"),
                          KeySource::Passphrase("battery staple"), kFastKdf));
  SecretKey unlocked;
  std::string archive_id;
  Status old_status =
      UnlockKeySlot(slot_, KeySource::Passphrase("correct horse"), &unlocked, &archive_id);
  EXPECT_EQ(old_status.code(), Code::kWrongKey);
  ASSERT_OK(UnlockKeySlot(slot_, KeySource::Passphrase("battery staple"), &unlocked, &archive_id));
  EXPECT_EQ(KeyHex(unlocked), KeyHex(created));
  EXPECT_EQ(archive_id, archive_id_);

  struct stat st {};
  ASSERT_EQ(::stat(slot_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(DirNames(dir()), std::vector<std::string>{"keyslot"});
}

TEST_F(KeysTest, RewrapUsesAFreshSalt) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  const nlohmann::json before = nlohmann::json::parse(ReadFile(slot_), nullptr, false);
  ASSERT_OK(RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"),
                          KeySource::Passphrase("correct horse"), kFastKdf));
  const nlohmann::json after = nlohmann::json::parse(ReadFile(slot_), nullptr, false);
  EXPECT_NE(before["kdf"]["salt"], after["kdf"]["salt"]);
  EXPECT_NE(before["wrapped_key"], after["wrapped_key"]);
}

TEST_F(KeysTest, RewrapFromPassphraseToKeyFile) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  const std::string key_file_bytes(48, 'z');
  ASSERT_OK(RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"),
                          KeySource::KeyFileBytes(key_file_bytes), kFastKdf));
  SecretKey unlocked;
  std::string archive_id;
  ASSERT_OK(UnlockKeySlot(slot_, KeySource::KeyFileBytes(key_file_bytes), &unlocked, &archive_id));
  EXPECT_EQ(KeyHex(unlocked), KeyHex(created));
}

TEST_F(KeysTest, RewrapWithTheWrongPassphraseWritesNothing) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  const std::string before = ReadFile(slot_);
  Status status =
      RewrapKeySlot(slot_, KeySource::Passphrase("guess"), KeySource::Passphrase("new"), kFastKdf);
  EXPECT_EQ(status.code(), Code::kWrongKey);
  EXPECT_EQ(ReadFile(slot_), before);
  EXPECT_EQ(DirNames(dir()), std::vector<std::string>{"keyslot"});
}

TEST_F(KeysTest, EveryFlippedByteIsRefused) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  const std::string original = ReadFile(slot_);
  for (size_t i = 0; i < original.size(); ++i) {
    std::string tampered = original;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    WriteFile(slot_, tampered);
    SecretKey unlocked;
    std::string archive_id;
    Status status =
        UnlockKeySlot(slot_, KeySource::Passphrase("correct horse"), &unlocked, &archive_id);
    // The format number 1 flips to 0, which is a (refused) different format.
    EXPECT_TRUE(status.code() == Code::kWrongKey || status.code() == Code::kCorruption ||
                status.code() == Code::kNotSupported)
        << "byte " << i << ": " << status.ToString();
    EXPECT_EQ(KeyHex(unlocked), std::string(64, '0')) << "byte " << i;
  }
}

TEST_F(KeysTest, MissingOrMalformedFiles) {
  SecretKey key;
  std::string archive_id;
  const KeySource pw = KeySource::Passphrase("pw");
  EXPECT_EQ(UnlockKeySlot(slot_, pw, &key, &archive_id).code(), Code::kNotFound);

  for (const char* text : {"", "not json", "[]", "{}", "{\"format\":1}", "{\"format\":\"1\"}"}) {
    WriteFile(slot_, text);
    Status status = UnlockKeySlot(slot_, pw, &key, &archive_id);
    EXPECT_EQ(status.code(), Code::kCorruption) << text << " -> " << status.ToString();
  }

  fs::remove(slot_);
  CreatePassphraseSlot(&key);
  const nlohmann::json good = nlohmann::json::parse(ReadFile(slot_), nullptr, false);
  for (const char* field : {"archive_id", "kind", "kdf", "wrapped_key"}) {
    nlohmann::json bad = good;
    bad.erase(field);
    WriteFile(slot_, bad.dump());
    EXPECT_EQ(UnlockKeySlot(slot_, pw, &key, &archive_id).code(), Code::kCorruption) << field;
  }
  nlohmann::json huge_n = good;
  huge_n["kdf"]["n"] = uint64_t{1} << 40;
  WriteFile(slot_, huge_n.dump());
  EXPECT_EQ(UnlockKeySlot(slot_, pw, &key, &archive_id).code(), Code::kCorruption);
  nlohmann::json short_salt = good;
  short_salt["kdf"]["salt"] = "00";
  WriteFile(slot_, short_salt.dump());
  EXPECT_EQ(UnlockKeySlot(slot_, pw, &key, &archive_id).code(), Code::kCorruption);
  nlohmann::json future = good;
  future["format"] = 2;
  WriteFile(slot_, future.dump());
  EXPECT_EQ(UnlockKeySlot(slot_, pw, &key, &archive_id).code(), Code::kNotSupported);
}

TEST_F(KeysTest, DefaultKdfParamsWork) {
  // N = 2^17, r = 8 needs 128 MiB: more than OpenSSL's default scrypt memory cap.
  SecretKey created;
  ASSERT_OK(CreateKeySlot(slot_, KeySource::Passphrase("pw"), KdfParams{}, archive_id_, &created));
  SecretKey unlocked;
  std::string archive_id;
  ASSERT_OK(UnlockKeySlot(slot_, KeySource::Passphrase("pw"), &unlocked, &archive_id));
  EXPECT_EQ(KeyHex(unlocked), KeyHex(created));
}

TEST_F(KeysTest, RewrapSwitchesPassphraseToKeyFileAndBack) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  const KeySource key_file = KeySource::KeyFileBytes(std::string(40, 'q'));
  ASSERT_OK(RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"), key_file, kFastKdf));
  SecretKey unlocked;
  EXPECT_EQ(UnlockKeySlot(slot_, KeySource::Passphrase("correct horse"), &unlocked, nullptr).code(),
            Code::kInvalid);  // a key file archive now
  EXPECT_EQ(nlohmann::json::parse(ReadFile(slot_), nullptr, false)["kind"], "keyfile");

  // The old passphrase cannot start the next change either.
  const std::string before = ReadFile(slot_);
  EXPECT_EQ(RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"), KeySource::Passphrase("x"),
                          kFastKdf)
                .code(),
            Code::kInvalid);
  EXPECT_EQ(ReadFile(slot_), before);

  const KeySource other_file = KeySource::KeyFileBytes(std::string(40, 'r'));
  EXPECT_EQ(RewrapKeySlot(slot_, other_file, KeySource::Passphrase("x"), kFastKdf).code(),
            Code::kWrongKey);
  ASSERT_OK(RewrapKeySlot(slot_, key_file, other_file, kFastKdf));  // key file -> key file
  EXPECT_EQ(UnlockKeySlot(slot_, key_file, &unlocked, nullptr).code(), Code::kWrongKey);
  ASSERT_OK(RewrapKeySlot(slot_, other_file, KeySource::Passphrase("battery staple"), kFastKdf));
  EXPECT_EQ(nlohmann::json::parse(ReadFile(slot_), nullptr, false)["kind"], "passphrase");
  EXPECT_EQ(UnlockKeySlot(slot_, other_file, &unlocked, nullptr).code(), Code::kInvalid);
  ASSERT_OK(UnlockKeySlot(slot_, KeySource::Passphrase("battery staple"), &unlocked, nullptr));
  EXPECT_EQ(KeyHex(unlocked), KeyHex(created));  // the data key never changed
  EXPECT_EQ(DirNames(dir()), std::vector<std::string>{"keyslot"});
}

TEST_F(KeysTest, RewrapRefusesAnEmptyOrShortNewSecret) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  const std::string before = ReadFile(slot_);
  EXPECT_EQ(RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"), KeySource::Passphrase(""),
                          kFastKdf)
                .code(),
            Code::kInvalid);
  EXPECT_EQ(RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"),
                          KeySource::KeyFileBytes(std::string(31, 'k')), kFastKdf)
                .code(),
            Code::kInvalid);
  EXPECT_EQ(ReadFile(slot_), before);
  EXPECT_EQ(DirNames(dir()), std::vector<std::string>{"keyslot"});
}

TEST_F(KeysTest, RewrapWritesA0600FileWhateverTheUmask) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  ASSERT_EQ(::chmod(slot_.c_str(), 0644), 0);  // widened by hand: the new file is 0600 again
  const mode_t old_umask = ::umask(0);
  Status status = RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"),
                                KeySource::Passphrase("battery staple"), kFastKdf);
  ::umask(old_umask);
  ASSERT_OK(status);
  struct stat st {};
  ASSERT_EQ(::stat(slot_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(KeysTest, RewrapReplacesTheFileRatherThanRewritingIt) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  const std::string before = ReadFile(slot_);
  struct stat old_st {};
  ASSERT_EQ(::stat(slot_.c_str(), &old_st), 0);
  // A reader that opened the old file keeps reading the whole old slot: the new one was
  // written elsewhere and renamed over it, so no one ever sees half a slot.
  const int reader = ::open(slot_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  ASSERT_OK(RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"),
                          KeySource::Passphrase("battery staple"), kFastKdf));
  std::string old_text(before.size() + 16, '\0');
  const ssize_t n = ::pread(reader, old_text.data(), old_text.size(), 0);
  ::close(reader);
  ASSERT_GE(n, 0);
  old_text.resize(static_cast<size_t>(n));
  EXPECT_EQ(old_text, before);
  struct stat new_st {};
  ASSERT_EQ(::stat(slot_.c_str(), &new_st), 0);
  EXPECT_NE(new_st.st_ino, old_st.st_ino);
  EXPECT_NE(ReadFile(slot_), before);
}

TEST_F(KeysTest, ALeftoverTempFileFromACrashIsIgnored) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  // What a crash between writing the temporary file and renaming it leaves: a complete new
  // slot under the temporary name, and the old slot in place.
  const fs::path stray = dir() / ".keyslot.tmp-0123456789abcdef";
  fs::copy_file(slot_, stray);
  ASSERT_OK(RewrapKeySlot(stray, KeySource::Passphrase("correct horse"),
                          KeySource::Passphrase("battery staple"), kFastKdf));
  // And a truncated one, as a crash during the write would leave.
  const fs::path torn = dir() / ".keyslot.tmp-fedcba9876543210";
  WriteFile(torn, ReadFile(slot_).substr(0, 40));
  SecretKey unlocked;
  ASSERT_OK(UnlockKeySlot(slot_, KeySource::Passphrase("correct horse"), &unlocked, nullptr));
  EXPECT_EQ(KeyHex(unlocked), KeyHex(created));
  EXPECT_EQ(
      UnlockKeySlot(slot_, KeySource::Passphrase("battery staple"), &unlocked, nullptr).code(),
      Code::kWrongKey);
  ASSERT_OK(RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"),
                          KeySource::Passphrase("staple"), kFastKdf));
  ASSERT_OK(UnlockKeySlot(slot_, KeySource::Passphrase("staple"), &unlocked, nullptr));
  EXPECT_EQ(KeyHex(unlocked), KeyHex(created));
}

TEST_F(KeysTest, ConcurrentRewrapIsRefusedAndWritesNothing) {
  SecretKey created;
  CreatePassphraseSlot(&created);
  const std::string before = ReadFile(slot_);
  const int held = ::open(dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX | LOCK_NB), 0);  // another passwd in progress
  Status status = RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"),
                                KeySource::Passphrase("battery staple"), kFastKdf);
  EXPECT_EQ(status.code(), Code::kBusy) << status.ToString();
  EXPECT_EQ(ReadFile(slot_), before);
  ::close(held);
  ASSERT_OK(RewrapKeySlot(slot_, KeySource::Passphrase("correct horse"),
                          KeySource::Passphrase("battery staple"), kFastKdf));
}

TEST(KeySourceTest, MovesLeaveNoSecretBehind) {
  KeySource a = KeySource::Passphrase("a passphrase long enough to live on the heap");
  KeySource b = std::move(a);
  EXPECT_EQ(b.secret(), "a passphrase long enough to live on the heap");
  EXPECT_TRUE(a.secret().empty());  // NOLINT(bugprone-use-after-move): checking the wipe
  KeySource c = KeySource::KeyFileBytes("short");
  c = std::move(b);
  EXPECT_EQ(c.kind(), KeySourceKind::kPassphrase);
  EXPECT_EQ(c.secret(), "a passphrase long enough to live on the heap");
  KeySource d = c;
  EXPECT_EQ(d.secret(), c.secret());
}

}  // namespace
}  // namespace medvfs::store
