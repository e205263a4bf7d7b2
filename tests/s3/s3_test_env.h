// The test Ceph cluster for gtest tests of the S3 tier (header-only).
//
// CTest starts one cluster per test run (tests/s3/CMakeLists.txt: the fixture s3_cluster) and
// names its env file in MEDVFS_S3_ENV_FILE. A test that needs the cluster:
//
//   CMake:  gtest_discover_tests(my_tests PROPERTIES LABELS integration
//             FIXTURES_REQUIRED s3_cluster
//             ENVIRONMENT MEDVFS_S3_ENV_FILE=${CMAKE_BINARY_DIR}/s3-cluster/env ...)
//
//   C++:    class MyTest : public ::testing::Test {
//            protected:
//             void SetUp() override { medvfs::store::test_util::LoadS3TestEnv(&env_); }
//             medvfs::store::test_util::S3TestEnv env_;
//           };
//           TEST_F(MyTest, Works) {
//             auto config = S3TestConfig(env_, UniqueBucketName("mytest"));
//             auto client = medvfs::store::S3Client::Create(config);   // then CreateBucket()
//           }
//
// LoadS3TestEnv fails the test (never skips it) when the file is missing: a test run without
// the cluster must not pass. A failure in SetUp() keeps the test body from running.
// Each test should use buckets of its own (UniqueBucketName): the cluster is shared by the
// whole run and buckets are never removed (the cluster is, at the end).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include <gtest/gtest.h>

#include "store/s3/s3_client.h"

namespace medvfs::store::test_util {

// Where the test cluster's gateway is and who may use it.
struct S3TestEnv {
  std::string endpoint;  // http://127.0.0.1:PORT
  std::string access_key_id;
  std::string secret_access_key;
  std::string region;  // "default": the gateway's zonegroup
};

// Reads the env file named by MEDVFS_S3_ENV_FILE (lines NAME=VALUE: MEDVFS_S3_ENDPOINT,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION) into *env. A fatal gtest
// failure when the variable is unset or the file is missing or incomplete; call it from SetUp()
// or under ASSERT_NO_FATAL_FAILURE().
inline void LoadS3TestEnv(S3TestEnv* env) {
  const char* path = std::getenv("MEDVFS_S3_ENV_FILE");
  if (path == nullptr || *path == '\0') {
    FAIL() << "MEDVFS_S3_ENV_FILE is not set: run this test through ctest, which starts the test "
              "Ceph cluster (fixture s3_cluster, tests/s3/CMakeLists.txt), or start one with "
              "tests/s3/ceph_cluster.sh start DIR and set MEDVFS_S3_ENV_FILE=DIR/env";
  }
  std::ifstream in(path);
  if (!in) {
    FAIL() << "cannot read the S3 test cluster's env file " << path
           << " (MEDVFS_S3_ENV_FILE): did the fixture test s3.cluster_start fail?";
  }
  *env = S3TestEnv();
  for (std::string line; std::getline(in, line);) {
    const size_t equals = line.find('=');
    if (equals == std::string::npos) continue;
    const std::string name = line.substr(0, equals);
    const std::string value = line.substr(equals + 1);
    if (name == "MEDVFS_S3_ENDPOINT") env->endpoint = value;
    if (name == "AWS_ACCESS_KEY_ID") env->access_key_id = value;
    if (name == "AWS_SECRET_ACCESS_KEY") env->secret_access_key = value;
    if (name == "AWS_DEFAULT_REGION") env->region = value;
  }
  if (env->endpoint.empty() || env->access_key_id.empty() || env->secret_access_key.empty() ||
      env->region.empty()) {
    FAIL() << "the S3 test cluster's env file " << path
           << " lacks MEDVFS_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or "
              "AWS_DEFAULT_REGION";
  }
}

// A bucket name no other call (in this process or another) returns: the stem (lowercased,
// reduced to [a-z0-9-], cut to 30 characters), the process id, a counter and 6 random hex
// digits, e.g. "objectlock-4711-3-9f3a2c". Valid under S3's rules (3-63 of [a-z0-9.-]).
inline std::string UniqueBucketName(std::string_view stem) {
  static std::atomic<unsigned> counter{0};
  std::string name;
  for (const char c : stem) {
    if (name.size() == 30) break;
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      name += static_cast<char>(std::tolower(u));
    } else if (!name.empty() && name.back() != '-') {
      name += '-';
    }
  }
  while (!name.empty() && name.back() == '-') name.pop_back();
  if (name.empty()) name = "test";
  std::random_device random;
  char suffix[8];
  std::snprintf(suffix, sizeof(suffix), "%06x", random() & 0xffffffu);
  return name + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + "-" + suffix;
}

// A configuration for `bucket` on the test cluster (the other fields at their defaults).
inline S3Config S3TestConfig(const S3TestEnv& env, std::string bucket) {
  S3Config config;
  config.endpoint = env.endpoint;
  config.region = env.region;
  config.bucket = std::move(bucket);
  config.credentials.access_key_id = env.access_key_id;
  config.credentials.secret_access_key = env.secret_access_key;
  return config;
}

}  // namespace medvfs::store::test_util
