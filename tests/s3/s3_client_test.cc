// S3Client (store/s3/s3_client.h) against the real RADOS Gateway of the test Ceph cluster
// (tests/s3/s3_test_env.h), and its configuration parsing (ParseS3Url, LoadS3Credentials).
#include "store/s3/s3_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/s3/s3_test_env.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::LoadS3TestEnv;
using test_util::S3TestConfig;
using test_util::S3TestEnv;
using test_util::ScopedTempDir;
using test_util::UniqueBucketName;

// Random bytes (all 256 values), from a seed gtest prints with a failure.
std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t word = engine();
    for (size_t j = 0; j < 8 && i + j < n; ++j) out[i + j] = static_cast<char>(word >> (8 * j));
  }
  return out;
}

uint64_t FreshSeed() { return (uint64_t{std::random_device()()} << 32) | std::random_device()(); }

std::string Md5Hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE] = {};
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_md5(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

// Sets and unsets environment variables for one test; restores them on destruction.
class ScopedEnv {
 public:
  ScopedEnv() = default;
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }
  void Set(const std::string& name, const std::string& value) {
    Save(name);
    setenv(name.c_str(), value.c_str(), 1);
  }
  void Unset(const std::string& name) {
    Save(name);
    unsetenv(name.c_str());
  }

 private:
  void Save(const std::string& name) {
    if (saved_.count(name) != 0) return;
    const char* value = std::getenv(name.c_str());
    saved_[name] = value != nullptr ? std::optional<std::string>(value) : std::nullopt;
  }
  std::map<std::string, std::optional<std::string>> saved_;
};

// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(address.sin_port);
}

class S3ClientTest : public ::testing::Test {
 protected:
  void SetUp() override { LoadS3TestEnv(&env_); }

  // A client of a new bucket (versioned; with Object Lock when asked), or null after a failure.
  std::unique_ptr<S3Client> NewBucket(std::string_view stem, bool object_lock,
                                      int max_connections = 4) {
    S3Config config = S3TestConfig(env_, UniqueBucketName(stem));
    config.max_connections = max_connections;
    auto client = S3Client::Create(config);
    EXPECT_OK(client);
    if (!client.ok()) return nullptr;
    const Status created = (*client)->CreateBucket(object_lock);
    EXPECT_OK(created);
    if (!created.ok()) return nullptr;
    return std::move(client).value();
  }

  S3TestEnv env_;
  const uint64_t seed_ = FreshSeed();
};

TEST_F(S3ClientTest, PutGetRangeHeadDelete) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  auto client = NewBucket("basic", false);
  ASSERT_NE(client, nullptr);
  const std::string body = RandomBytes(100000, seed_);
  ASSERT_OK_AND_ASSIGN(const std::string version, client->Put("dir/object", body));
  EXPECT_FALSE(version.empty()) << "the bucket is versioned: a PUT gets a version id";

  std::string read;
  ASSERT_OK(client->Get("dir/object", &read));
  EXPECT_TRUE(read == body) << "the object does not read back as written";
  ASSERT_OK(client->GetRange("dir/object", 1000, 5000, &read));
  EXPECT_TRUE(read == body.substr(1000, 5000));
  ASSERT_OK(client->GetRange("dir/object", body.size() - 10, 100, &read));
  EXPECT_TRUE(read == body.substr(body.size() - 10)) << "a range past the end gives the tail";
  ASSERT_OK(client->GetRange("dir/object", body.size(), 10, &read));
  EXPECT_TRUE(read.empty()) << "a range at the end gives nothing";
  ASSERT_OK(client->GetRange("dir/object", 0, 0, &read));
  EXPECT_TRUE(read.empty());

  ASSERT_OK_AND_ASSIGN(const S3ObjectInfo info, client->Head("dir/object"));
  EXPECT_EQ(info.key, "dir/object");
  EXPECT_EQ(info.size, body.size());
  EXPECT_EQ(info.etag, Md5Hex(body));
  EXPECT_EQ(info.version_id, version);
  EXPECT_LE(std::abs(info.last_modified_s - Now()), 300);

  ASSERT_OK_AND_ASSIGN(const std::string empty_version, client->Put("empty", ""));
  ASSERT_OK(client->Get("empty", &read));
  EXPECT_TRUE(read.empty());
  ASSERT_OK_AND_ASSIGN(const S3ObjectInfo empty_info, client->Head("empty"));
  EXPECT_EQ(empty_info.size, 0u);

  EXPECT_EQ(client->Get("missing", &read).code(), Code::kNotFound);
  EXPECT_EQ(client->GetRange("missing", 0, 10, &read).code(), Code::kNotFound);
  EXPECT_EQ(client->GetRange("missing", 0, 0, &read).code(), Code::kNotFound);
  EXPECT_EQ(client->Head("missing").status().code(), Code::kNotFound);

  ASSERT_OK(client->Delete("dir/object"));
  EXPECT_EQ(client->Get("dir/object", &read).code(), Code::kNotFound);
  EXPECT_OK(client->Delete("never-there"));
}

TEST_F(S3ClientTest, KeysWithAnyCharacterRoundTrip) {
  auto client = NewBucket("keys", false);
  ASSERT_NE(client, nullptr);
  const std::vector<std::string> keys = {"a b+c",
                                         "100%",
                                         "q?x=1&y",
                                         "hash#tag",
                                         "a/./b",
                                         "a/../b",
                                         "a//b",
                                         "~tilde",
                                         "unicode-\xc3\xa9\xe2\x82\xac",
                                         "semi;colon,comma",
                                         "star*paren()",
                                         "quote'\"",
                                         "=",
                                         "/leading-slash"};
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_OK(client->Put(keys[i], "body " + std::to_string(i))) << "key " << keys[i];
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string read;
    ASSERT_OK(client->Get(keys[i], &read)) << "key " << keys[i];
    EXPECT_EQ(read, "body " + std::to_string(i)) << "key " << keys[i];
  }
  std::vector<S3ObjectInfo> listed;
  ASSERT_OK(client->List("", &listed));
  std::vector<std::string> listed_keys, expected = keys;
  for (const S3ObjectInfo& info : listed) listed_keys.push_back(info.key);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(listed_keys, expected);
}

TEST_F(S3ClientTest, ListAndListVersionsReadEveryPage) {
  auto client = NewBucket("pages", false, 8);
  ASSERT_NE(client, nullptr);
  // More than the 1000 keys of one page, put by 8 threads.
  constexpr int kObjects = 1100;
  std::atomic<int> next{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < kObjects; i = next++) {
        char key[32];
        std::snprintf(key, sizeof(key), "p/%05d", i);
        if (!client->Put(key, std::to_string(i)).ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_OK(client->Put("other", "x"));
  ASSERT_OK(client->Put("p/00007", "second version"));
  ASSERT_OK(client->Delete("p/00008"));

  std::vector<S3ObjectInfo> objects;
  ASSERT_OK(client->List("p/", &objects));
  ASSERT_EQ(objects.size(), static_cast<size_t>(kObjects - 1));  // p/00008 deleted
  for (size_t i = 1; i < objects.size(); ++i) {
    ASSERT_LT(objects[i - 1].key, objects[i].key) << "List is in key order";
  }
  EXPECT_EQ(objects[0].key, "p/00000");
  EXPECT_EQ(objects[0].size, 1u);
  EXPECT_EQ(objects[0].etag, Md5Hex("0"));
  EXPECT_LE(std::abs(objects[0].last_modified_s - Now()), 300);

  std::vector<S3ObjectInfo> versions;
  ASSERT_OK(client->ListVersions("p/", &versions));
  // Every object, the second version of p/00007 and the delete marker of p/00008.
  ASSERT_EQ(versions.size(), static_cast<size_t>(kObjects + 2));
  std::map<std::string, std::vector<S3ObjectInfo>> by_key;
  for (const S3ObjectInfo& v : versions) by_key[v.key].push_back(v);
  EXPECT_EQ(by_key.size(), static_cast<size_t>(kObjects));
  ASSERT_EQ(by_key["p/00007"].size(), 2u);
  int latest = 0;
  for (const S3ObjectInfo& v : by_key["p/00007"]) {
    EXPECT_FALSE(v.delete_marker);
    EXPECT_FALSE(v.version_id.empty());
    latest += v.is_latest ? 1 : 0;
    if (v.is_latest) {
      EXPECT_EQ(v.size, std::string("second version").size());
    }
  }
  EXPECT_EQ(latest, 1);
  ASSERT_EQ(by_key["p/00008"].size(), 2u);
  int markers = 0;
  for (const S3ObjectInfo& v : by_key["p/00008"]) {
    if (v.delete_marker) {
      ++markers;
      EXPECT_TRUE(v.is_latest) << "the delete marker is the current version";
    }
  }
  EXPECT_EQ(markers, 1);
}

TEST_F(S3ClientTest, MultipartPutFileIsByteIdentical) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  auto client = NewBucket("multipart", false);
  ASSERT_NE(client, nullptr);
  ScopedTempDir dir;
  const std::string body = RandomBytes((40u << 20) + 12345, seed_);  // 9 parts, the last short
  test_util::WriteFile(dir.path() / "pack", body);
  std::vector<uint64_t> reported;
  ASSERT_OK_AND_ASSIGN(const std::string version,
                       client->PutFile("packs/big", dir.path() / "pack", {}, 5u << 20,
                                       [&](uint64_t sent) { reported.push_back(sent); }));
  EXPECT_FALSE(version.empty());
  ASSERT_FALSE(reported.empty());
  EXPECT_TRUE(std::is_sorted(reported.begin(), reported.end()));
  EXPECT_EQ(reported.back(), body.size());

  std::string read;
  ASSERT_OK(client->Get("packs/big", &read));
  ASSERT_EQ(read.size(), body.size());
  EXPECT_TRUE(read == body) << "the multipart object differs from the file";
  ASSERT_OK_AND_ASSIGN(const S3ObjectInfo info, client->Head("packs/big"));
  EXPECT_EQ(info.size, body.size());
  EXPECT_TRUE(info.etag.ends_with("-9")) << info.etag << ": the ETag of a 9-part upload";
  ASSERT_OK(client->GetRange("packs/big", (5u << 20) - 100, 200, &read));
  EXPECT_TRUE(read == body.substr((5u << 20) - 100, 200)) << "a range across two parts";
}

TEST_F(S3ClientTest, SmallPutFileIsOnePut) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  auto client = NewBucket("smallfile", false);
  ASSERT_NE(client, nullptr);
  ScopedTempDir dir;
  const std::string body = RandomBytes(1u << 20, seed_);
  test_util::WriteFile(dir.path() / "small", body);
  test_util::WriteFile(dir.path() / "empty", "");
  uint64_t last = 0;
  ASSERT_OK(client->PutFile("small", dir.path() / "small", {}, 16u << 20,
                            [&](uint64_t sent) { last = sent; }));
  EXPECT_EQ(last, body.size());
  ASSERT_OK_AND_ASSIGN(const S3ObjectInfo info, client->Head("small"));
  EXPECT_EQ(info.etag, Md5Hex(body)) << "one PUT, not a multipart upload";
  std::string read;
  ASSERT_OK(client->Get("small", &read));
  EXPECT_TRUE(read == body);
  ASSERT_OK(client->PutFile("empty", dir.path() / "empty"));
  ASSERT_OK(client->Get("empty", &read));
  EXPECT_TRUE(read.empty());

  EXPECT_EQ(client->PutFile("x", dir.path() / "no-such-file").status().code(), Code::kNotFound);
  // Parts under S3's 5 MiB minimum are refused before anything is sent.
  EXPECT_EQ(client->PutFile("x", dir.path() / "small", {}, 300000).status().code(), Code::kInvalid);
}

TEST_F(S3ClientTest, FailedMultipartUploadIsAbortedAndLeavesNoObject) {
  auto client = NewBucket("abort", false, 2);
  ASSERT_NE(client, nullptr);
  ScopedTempDir dir;
  const std::filesystem::path file = dir.path() / "shrinks";
  test_util::WriteFile(file, RandomBytes(20u << 20, seed_));
  // The file shrinks while its first parts are sent: the parts read later come up short.
  bool truncated = false;
  const auto result = client->PutFile("shrinks", file, {}, 5u << 20, [&](uint64_t) {
    if (!truncated) std::filesystem::resize_file(file, 1000);
    truncated = true;
  });
  EXPECT_EQ(result.status().code(), Code::kIoError) << result.status().ToString();
  EXPECT_EQ(client->Head("shrinks").status().code(), Code::kNotFound);
}

TEST_F(S3ClientTest, ComplianceVersionCannotBeDeletedButHidden) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  auto client = NewBucket("compliance", true);
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(const bool enabled, client->ObjectLockEnabled());
  EXPECT_TRUE(enabled);

  const std::string body = RandomBytes(4096, seed_);
  S3ObjectLock lock;
  lock.mode = S3LockMode::kCompliance;
  lock.retain_until_s = Now() + 86400;
  ASSERT_OK_AND_ASSIGN(const std::string version, client->Put("pack-1", body, lock));
  ASSERT_FALSE(version.empty());
  ASSERT_OK_AND_ASSIGN(const S3ObjectLock read_lock, client->GetObjectLock("pack-1", version));
  EXPECT_EQ(read_lock.mode, S3LockMode::kCompliance);
  EXPECT_EQ(read_lock.retain_until_s, lock.retain_until_s);
  EXPECT_FALSE(read_lock.legal_hold);

  const Status refused = client->DeleteVersion("pack-1", version);
  EXPECT_EQ(refused.code(), Code::kAccess) << refused.ToString();
  EXPECT_OK(client->Delete("pack-1"));  // a delete marker: always allowed
  std::string read;
  EXPECT_EQ(client->Get("pack-1", &read).code(), Code::kNotFound);

  std::vector<S3ObjectInfo> versions;
  ASSERT_OK(client->ListVersions("pack-1", &versions));
  ASSERT_EQ(versions.size(), 2u);
  bool kept = false, marker = false;
  for (const S3ObjectInfo& v : versions) {
    if (v.delete_marker) {
      marker = v.is_latest;
    } else {
      kept = v.version_id == version && v.size == body.size() && !v.is_latest;
    }
  }
  EXPECT_TRUE(kept) << "the locked version is still there";
  EXPECT_TRUE(marker) << "under a current delete marker";
  ASSERT_OK_AND_ASSIGN(const S3ObjectLock still, client->GetObjectLock("pack-1", version));
  EXPECT_EQ(still.mode, S3LockMode::kCompliance);
}

TEST_F(S3ClientTest, RetentionCanBeExtendedNotShortened) {
  auto client = NewBucket("retention", true);
  ASSERT_NE(client, nullptr);
  S3ObjectLock lock;
  lock.mode = S3LockMode::kCompliance;
  lock.retain_until_s = Now() + 3600;
  ASSERT_OK_AND_ASSIGN(const std::string version, client->Put("pack-2", "sealed", lock));
  const int64_t later = lock.retain_until_s + 86400;
  ASSERT_OK(client->PutRetention("pack-2", version, S3LockMode::kCompliance, later));
  ASSERT_OK_AND_ASSIGN(const S3ObjectLock extended, client->GetObjectLock("pack-2", version));
  EXPECT_EQ(extended.mode, S3LockMode::kCompliance);
  EXPECT_EQ(extended.retain_until_s, later);
  const Status shortened =
      client->PutRetention("pack-2", version, S3LockMode::kCompliance, later - 7200);
  EXPECT_EQ(shortened.code(), Code::kAccess) << shortened.ToString();
  EXPECT_EQ(client->PutRetention("pack-2", version, S3LockMode::kNone, later).code(),
            Code::kInvalid);

  // A version without retention has mode kNone; one put without a mode in a bucket without
  // a default retention too.
  ASSERT_OK_AND_ASSIGN(const std::string plain, client->Put("plain", "x"));
  ASSERT_OK_AND_ASSIGN(const S3ObjectLock none, client->GetObjectLock("plain", plain));
  EXPECT_EQ(none.mode, S3LockMode::kNone);
  EXPECT_FALSE(none.legal_hold);
  ASSERT_OK(client->PutRetention("plain", plain, S3LockMode::kGovernance, Now() + 600));
  ASSERT_OK_AND_ASSIGN(const S3ObjectLock governed, client->GetObjectLock("plain", plain));
  EXPECT_EQ(governed.mode, S3LockMode::kGovernance);
}

TEST_F(S3ClientTest, LegalHoldOnAndOff) {
  auto client = NewBucket("legalhold", true);
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(const std::string version, client->Put("held", "evidence"));
  ASSERT_OK(client->PutLegalHold("held", version, true));
  ASSERT_OK_AND_ASSIGN(const S3ObjectLock on, client->GetObjectLock("held", version));
  EXPECT_TRUE(on.legal_hold);
  EXPECT_EQ(on.mode, S3LockMode::kNone);
  EXPECT_EQ(client->DeleteVersion("held", version).code(), Code::kAccess);
  ASSERT_OK(client->PutLegalHold("held", version, false));
  ASSERT_OK_AND_ASSIGN(const S3ObjectLock off, client->GetObjectLock("held", version));
  EXPECT_FALSE(off.legal_hold);
  EXPECT_OK(client->DeleteVersion("held", version));
  std::vector<S3ObjectInfo> versions;
  ASSERT_OK(client->ListVersions("held", &versions));
  EXPECT_TRUE(versions.empty()) << "the version is gone for good";

  // The hold set by the PUT itself (x-amz-object-lock-legal-hold).
  S3ObjectLock hold;
  hold.legal_hold = true;
  ASSERT_OK_AND_ASSIGN(const std::string held, client->Put("held-at-put", "x", hold));
  ASSERT_OK_AND_ASSIGN(const S3ObjectLock read, client->GetObjectLock("held-at-put", held));
  EXPECT_TRUE(read.legal_hold);
  ASSERT_OK(client->PutLegalHold("held-at-put", held, false));
}

TEST_F(S3ClientTest, MultipartUploadCarriesTheLock) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  auto client = NewBucket("multipartlock", true);
  ASSERT_NE(client, nullptr);
  ScopedTempDir dir;
  const std::string body = RandomBytes(11u << 20, seed_);
  test_util::WriteFile(dir.path() / "pack", body);
  S3ObjectLock lock;
  lock.mode = S3LockMode::kCompliance;
  lock.retain_until_s = Now() + 86400;
  lock.legal_hold = true;
  ASSERT_OK_AND_ASSIGN(const std::string version,
                       client->PutFile("pack-3", dir.path() / "pack", lock, 5u << 20));
  ASSERT_OK_AND_ASSIGN(const S3ObjectLock read, client->GetObjectLock("pack-3", version));
  EXPECT_EQ(read.mode, S3LockMode::kCompliance);
  EXPECT_EQ(read.retain_until_s, lock.retain_until_s);
  EXPECT_TRUE(read.legal_hold);
  EXPECT_EQ(client->DeleteVersion("pack-3", version).code(), Code::kAccess);
  std::string bytes;
  ASSERT_OK(client->Get("pack-3", &bytes));
  EXPECT_TRUE(bytes == body);
  ASSERT_OK(client->PutLegalHold("pack-3", version, false));
}

TEST_F(S3ClientTest, BucketsWithoutLockAndTwice) {
  auto client = NewBucket("plainbucket", false);
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(const bool enabled, client->ObjectLockEnabled());
  EXPECT_FALSE(enabled);
  EXPECT_EQ(client->CreateBucket(false).code(), Code::kExists);
  // Versioned all the same.
  ASSERT_OK_AND_ASSIGN(const std::string version, client->Put("k", "v"));
  EXPECT_FALSE(version.empty());

  S3Config missing = client->config();
  missing.bucket = UniqueBucketName("never-created");
  ASSERT_OK_AND_ASSIGN(auto nowhere, S3Client::Create(missing));
  const Status put = nowhere->Put("k", "secret body bytes").status();
  EXPECT_EQ(put.code(), Code::kNotFound) << put.ToString();
  EXPECT_EQ(put.message().find("secret body bytes"), std::string::npos);
  EXPECT_NE(put.message().find("NoSuchBucket"), std::string::npos) << put.ToString();
  EXPECT_EQ(nowhere->ObjectLockEnabled().status().code(), Code::kNotFound);
}

TEST_F(S3ClientTest, WrongSecretIsRefusedWithoutShowingIt) {
  auto client = NewBucket("wrongsecret", false);
  ASSERT_NE(client, nullptr);
  S3Config config = client->config();
  config.credentials.secret_access_key = "WRONGSECRETwrongsecret0123456789";
  ASSERT_OK_AND_ASSIGN(auto wrong, S3Client::Create(config));
  const std::string body = "patient pixel bytes " + RandomBytes(16, seed_);
  const Status put = wrong->Put("k", body).status();
  EXPECT_EQ(put.code(), Code::kAccess) << put.ToString();
  EXPECT_NE(put.message().find("SignatureDoesNotMatch"), std::string::npos) << put.ToString();
  EXPECT_EQ(put.message().find(config.credentials.secret_access_key), std::string::npos);
  EXPECT_EQ(put.message().find(env_.secret_access_key), std::string::npos);
  EXPECT_EQ(put.message().find("patient pixel"), std::string::npos);
  std::string read;
  EXPECT_EQ(wrong->Get("k", &read).code(), Code::kAccess);

  config.credentials.access_key_id = "NOSUCHKEY0000000";
  ASSERT_OK_AND_ASSIGN(auto unknown, S3Client::Create(config));
  std::vector<S3ObjectInfo> objects;
  const Status list = unknown->List("", &objects);
  EXPECT_EQ(list.code(), Code::kAccess) << list.ToString();
}

TEST_F(S3ClientTest, ClosedPortFailsQuicklyWithIoError) {
  const int port = ClosedPort();
  ASSERT_NE(port, 0);
  S3Config config = S3TestConfig(env_, "some-bucket");
  config.endpoint = "http://127.0.0.1:" + std::to_string(port);
  config.connect_timeout_s = 5;
  ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(config));
  const auto start = std::chrono::steady_clock::now();
  const Status put = client->Put("k", "v").status();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(put.code(), Code::kIoError);
  EXPECT_NE(put.message().find("S3 PUT: cannot reach " + config.endpoint), std::string::npos)
      << put.ToString();
  EXPECT_LT(elapsed, std::chrono::seconds(3));
  std::string read;
  EXPECT_EQ(client->Get("k", &read).code(), Code::kIoError);
}

TEST_F(S3ClientTest, SilentServerFailsAfterTheStallTimeout) {
  // A socket that listens but never answers: the connection is made (by the kernel), the
  // request goes out, nothing comes back.
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  S3Config config = S3TestConfig(env_, "some-bucket");
  config.endpoint = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  config.stall_timeout_s = 1;
  ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(config));
  const auto start = std::chrono::steady_clock::now();
  std::string read;
  const Status get = client->Get("k", &read);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  close(listener);
  EXPECT_EQ(get.code(), Code::kIoError);
  EXPECT_NE(get.message().find("S3 GET: no answer from " + config.endpoint), std::string::npos)
      << get.ToString();
  EXPECT_GE(elapsed, std::chrono::milliseconds(900));
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

TEST_F(S3ClientTest, ConcurrentCallsShareTheClient) {
  auto client = NewBucket("concurrent", false, 3);
  ASSERT_NE(client, nullptr);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 15; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        const std::string body = RandomBytes(static_cast<size_t>(1000 * i + t), seed_ + i);
        std::string read;
        if (!client->Put(key, body).ok() || !client->Get(key, &read).ok() || read != body) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  std::vector<S3ObjectInfo> objects;
  ASSERT_OK(client->List("t", &objects));
  EXPECT_EQ(objects.size(), 90u);
}

TEST_F(S3ClientTest, CredentialsFromAProfileOfTheCredentialsFile) {
  ScopedTempDir dir;
  const std::filesystem::path file = dir.path() / "credentials";
  test_util::WriteFile(file,
                       "[default]\naws_access_key_id = DEFAULTKEY\n"
                       "aws_secret_access_key = defaultsecret\n\n"
                       "# the test cluster's user\n[medvfs]\naws_access_key_id = " +
                           env_.access_key_id +
                           "\naws_secret_access_key=" + env_.secret_access_key + "\n");
  ScopedEnv scoped;
  scoped.Unset("AWS_ACCESS_KEY_ID");
  scoped.Unset("AWS_SECRET_ACCESS_KEY");
  scoped.Unset("AWS_SESSION_TOKEN");
  scoped.Set("AWS_SHARED_CREDENTIALS_FILE", file.string());
  scoped.Set("AWS_PROFILE", "medvfs");
  ASSERT_OK_AND_ASSIGN(const S3Credentials credentials, LoadS3Credentials());
  EXPECT_EQ(credentials.access_key_id, env_.access_key_id);
  EXPECT_EQ(credentials.secret_access_key, env_.secret_access_key);
  EXPECT_TRUE(credentials.session_token.empty());

  // They work against the gateway.
  S3Config config = S3TestConfig(env_, UniqueBucketName("profile"));
  config.credentials = credentials;
  ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(config));
  ASSERT_OK(client->CreateBucket(false));
  ASSERT_OK(client->Put("k", "v"));
}

TEST(S3CredentialsTest, EnvironmentFirstThenProfiles) {
  ScopedTempDir dir;
  const std::filesystem::path file = dir.path() / "credentials";
  test_util::WriteFile(file,
                       "[default]\naws_access_key_id = DEFAULTKEY\n"
                       "aws_secret_access_key = defaultsecret\n"
                       "[temporary]\nAWS_ACCESS_KEY_ID=TEMPKEY\naws_secret_access_key=tempsecret\n"
                       "aws_session_token = token/with+base64==\n"
                       "[half]\naws_access_key_id = HALF\n");
  ScopedEnv scoped;
  scoped.Set("AWS_SHARED_CREDENTIALS_FILE", file.string());
  scoped.Unset("AWS_PROFILE");
  scoped.Set("AWS_ACCESS_KEY_ID", "ENVKEY");
  scoped.Set("AWS_SECRET_ACCESS_KEY", "envsecret");
  scoped.Set("AWS_SESSION_TOKEN", "envtoken");
  ASSERT_OK_AND_ASSIGN(S3Credentials from_env, LoadS3Credentials());
  EXPECT_EQ(from_env.access_key_id, "ENVKEY");
  EXPECT_EQ(from_env.secret_access_key, "envsecret");
  EXPECT_EQ(from_env.session_token, "envtoken");

  scoped.Unset("AWS_ACCESS_KEY_ID");
  scoped.Unset("AWS_SESSION_TOKEN");
  ASSERT_OK_AND_ASSIGN(S3Credentials by_default, LoadS3Credentials());
  EXPECT_EQ(by_default.access_key_id, "DEFAULTKEY") << "half the pair in the environment is none";
  EXPECT_EQ(by_default.secret_access_key, "defaultsecret");

  scoped.Set("AWS_PROFILE", "temporary");
  ASSERT_OK_AND_ASSIGN(S3Credentials temporary, LoadS3Credentials());
  EXPECT_EQ(temporary.access_key_id, "TEMPKEY");
  EXPECT_EQ(temporary.secret_access_key, "tempsecret");
  EXPECT_EQ(temporary.session_token, "token/with+base64==");

  scoped.Set("AWS_PROFILE", "half");
  EXPECT_EQ(LoadS3Credentials().status().code(), Code::kInvalid);
  scoped.Set("AWS_PROFILE", "absent");
  const Status absent = LoadS3Credentials().status();
  EXPECT_EQ(absent.code(), Code::kNotFound);
  EXPECT_NE(absent.message().find("[absent]"), std::string::npos) << absent.ToString();
  EXPECT_NE(absent.message().find(file.string()), std::string::npos) << "says where it looked";

  scoped.Set("AWS_SHARED_CREDENTIALS_FILE", (dir.path() / "none").string());
  const Status no_file = LoadS3Credentials().status();
  EXPECT_EQ(no_file.code(), Code::kNotFound);
  EXPECT_NE(no_file.message().find((dir.path() / "none").string()), std::string::npos);

  // ~/.aws/credentials when no file is named.
  scoped.Unset("AWS_SHARED_CREDENTIALS_FILE");
  scoped.Set("HOME", dir.path().string());
  std::filesystem::create_directories(dir.path() / ".aws");
  test_util::WriteFile(dir.path() / ".aws" / "credentials",
                       "[absent]\naws_access_key_id = HOMEKEY\naws_secret_access_key = s\n");
  ASSERT_OK_AND_ASSIGN(S3Credentials from_home, LoadS3Credentials());
  EXPECT_EQ(from_home.access_key_id, "HOMEKEY");

  // A line the INI reader would cut (a long session token) is refused, not cut.
  test_util::WriteFile(dir.path() / ".aws" / "credentials",
                       "[absent]\naws_access_key_id = K\naws_secret_access_key = s\n"
                       "aws_session_token = " +
                           std::string(900, 'T') + "==\n");
  const Status long_line = LoadS3Credentials().status();
  EXPECT_EQ(long_line.code(), Code::kInvalid);
  EXPECT_NE(long_line.message().find("line 4"), std::string::npos) << long_line.ToString();
  test_util::WriteFile(dir.path() / ".aws" / "credentials", "[absent\nnot ini\n");
  EXPECT_EQ(LoadS3Credentials().status().code(), Code::kInvalid);
}

TEST(S3UrlTest, ParsesBucketAndPrefix) {
  struct Case {
    const char* url;
    const char* bucket;
    const char* prefix;
    const char* text;
  };
  const Case good[] = {
      {"s3://bucket", "bucket", "", "s3://bucket"},
      {"s3://bucket/", "bucket", "", "s3://bucket"},
      {"s3://my.bucket-1/archive/a", "my.bucket-1", "archive/a", "s3://my.bucket-1/archive/a"},
      {"s3://abc//x/y//", "abc", "x/y", "s3://abc/x/y"},
      {"s3://0ab/a b", "0ab", "a b", "s3://0ab/a b"},
  };
  for (const Case& c : good) {
    SCOPED_TRACE(c.url);
    ASSERT_OK_AND_ASSIGN(const S3Url url, ParseS3Url(c.url));
    EXPECT_EQ(url.bucket, c.bucket);
    EXPECT_EQ(url.prefix, c.prefix);
    EXPECT_EQ(url.ToString(), c.text);
    ASSERT_OK_AND_ASSIGN(const S3Url again, ParseS3Url(url.ToString()));
    EXPECT_EQ(again.bucket, url.bucket);
    EXPECT_EQ(again.prefix, url.prefix);
  }
  const char* bad[] = {"",
                       "s3://",
                       "s3:///prefix",
                       "bucket/prefix",
                       "S3://bucket",
                       "http://bucket/x",
                       "s3://ab",
                       "s3://Bucket",
                       "s3://bu_cket",
                       "s3://-bucket",
                       "s3://bucket-",
                       "s3://bu..cket",
                       "s3://.bucket",
                       "s3:/bucket",
                       "s3://buck et"};
  for (const char* url : bad) {
    const Status status = ParseS3Url(url).status();
    EXPECT_EQ(status.code(), Code::kInvalid) << "\"" << url << "\" was accepted";
  }
  // 63 characters at most.
  ASSERT_OK_AND_ASSIGN(const S3Url longest, ParseS3Url("s3://" + std::string(63, 'b') + "/p"));
  EXPECT_EQ(longest.bucket, std::string(63, 'b'));
  EXPECT_EQ(ParseS3Url("s3://" + std::string(64, 'b')).status().code(), Code::kInvalid);
}

TEST(S3ClientConfigTest, CreateChecksTheConfiguration) {
  S3Config good;
  good.endpoint = "http://127.0.0.1:7480";
  good.bucket = "bucket";
  good.credentials.access_key_id = "KEY";
  good.credentials.secret_access_key = "secret";
  ASSERT_OK(S3Client::Create(good));
  const auto invalid = [&](const std::function<void(S3Config*)>& change) {
    S3Config config = good;
    change(&config);
    return S3Client::Create(config).status().code() == Code::kInvalid;
  };
  EXPECT_TRUE(invalid([](S3Config* c) { c->endpoint = "127.0.0.1:7480"; }));
  EXPECT_TRUE(invalid([](S3Config* c) { c->endpoint = "http://127.0.0.1:7480/"; }));
  EXPECT_TRUE(invalid([](S3Config* c) { c->endpoint = "http://host/path"; }));
  EXPECT_TRUE(invalid([](S3Config* c) { c->endpoint = "http://"; }));
  EXPECT_TRUE(invalid([](S3Config* c) { c->bucket = "B"; }));
  EXPECT_TRUE(invalid([](S3Config* c) { c->region = ""; }));
  EXPECT_TRUE(invalid([](S3Config* c) { c->region = "a:b"; }));
  EXPECT_TRUE(invalid([](S3Config* c) { c->credentials.secret_access_key = ""; }));
  EXPECT_TRUE(invalid([](S3Config* c) { c->credentials.session_token = "a\r\nX-Evil: 1"; }));
  EXPECT_TRUE(invalid([](S3Config* c) { c->max_connections = 0; }));
  EXPECT_TRUE(invalid([](S3Config* c) { c->stall_timeout_s = 0; }));
  ASSERT_OK_AND_ASSIGN(auto client, S3Client::Create(good));
  EXPECT_EQ(client->config().endpoint, good.endpoint);
  std::string body;
  EXPECT_EQ(client->Get("", &body).code(), Code::kInvalid);
  EXPECT_EQ(client->Put(std::string(1025, 'k'), "").status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace medvfs::store
