// What the .cc files of S3Client share: its Rep and the single-request PUT. Internal to
// store/s3/.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "store/s3/s3_client.h"
#include "store/s3/s3_http.h"
#include "store/status.h"

namespace medvfs::store {

struct S3Client::Rep {
  explicit Rep(const S3Config& c) : config(c), http(config) {}
  const S3Config config;
  s3_internal::HttpClient http;  // refers to config
};

namespace s3_internal {

// S3's minimum size of a part of a multipart upload (but the last), and its most parts.
inline constexpr uint64_t kMinPartBytes = uint64_t{5} << 20;
inline constexpr uint64_t kMaxParts = 10000;

// The Object Lock request headers of `lock` (none for mode kNone and no legal hold).
std::vector<std::string> LockHeaders(const S3ObjectLock& lock);

// One PUT of `body` as `key` with Content-MD5 and the lock headers; returns the version id.
StatusOr<std::string> PutObject(HttpClient& http, std::string_view key, std::string_view body,
                                const S3ObjectLock& lock,
                                const std::function<void(uint64_t)>& progress);

// S3's bucket naming rules: 3 to 63 of [a-z0-9.-], starting and ending with a letter or
// digit, no "..".
bool ValidBucketName(std::string_view name);

// PUT ?retention and PUT ?legal-hold of a version (the current one when version_id is empty).
Status PutRetention(HttpClient& http, std::string_view key, std::string_view version_id,
                    S3LockMode mode, int64_t retain_until_s);
Status PutLegalHold(HttpClient& http, std::string_view key, std::string_view version_id, bool on);

// Checks a key before it goes into a URL: 1 to 1024 bytes.
Status CheckKey(std::string_view operation, std::string_view key);

}  // namespace s3_internal
}  // namespace medvfs::store
