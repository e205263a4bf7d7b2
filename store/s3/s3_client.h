// S3Client: the S3 API calls the S3 tier makes (store/archive/remote*.cc), over libcurl.
// Internal to store/.
//
// Requests are signed by libcurl's own AWS Signature Version 4 (CURLOPT_AWS_SIGV4); the
// x-amz-content-sha256 header, which curl 7.88 leaves out and the RADOS Gateway requires, is
// sent with the payload's SHA-256 (or UNSIGNED-PAYLOAD for a GET). Connections are kept and
// reused (a pool of easy handles, each keeping its own connection: curl 7.88's shared
// connection cache is not thread-safe); a multipart upload sends its parts in parallel.
// Path-style addressing (ENDPOINT/BUCKET/KEY), which Ceph, MinIO and AWS all accept. XML
// answers are read with tinyxml2. Object PUTs and parts carry Content-MD5 (AWS wants it with
// Object Lock), so the server also checks the bytes it stores.
//
// Implementation: s3_client.cc (single requests), s3_multipart.cc (PutFile), s3_config.cc
// (credentials, URLs), s3_http.cc (signing, the handle pool, errors).
//
// Errors name the operation, the HTTP status and the S3 error code ("AccessDenied"), never an
// object's content. Object keys are passed as they are (the S3 tier's keys are opaque).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace medvfs::store {

struct S3Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary credentials
};

// The credentials, as the AWS tools find them: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
// (and AWS_SESSION_TOKEN) from the environment; otherwise profile AWS_PROFILE (default
// "default") of AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials), read with inih.
// kNotFound saying where it looked when there are none.
StatusOr<S3Credentials> LoadS3Credentials();

// "s3://BUCKET[/PREFIX]": the bucket and the prefix (without leading or trailing '/').
struct S3Url {
  std::string bucket;
  std::string prefix;
  std::string ToString() const;  // s3://bucket/prefix
};
// kInvalid for anything else (a bucket name must be 3-63 of [a-z0-9.-], starting and ending
// with a letter or digit, without "..": S3's rules).
StatusOr<S3Url> ParseS3Url(std::string_view url);

struct S3Config {
  std::string endpoint;  // http(s)://host[:port], no trailing '/'
  std::string region = "us-east-1";
  std::string bucket;
  S3Credentials credentials;
  // Connections kept open (and parts of one multipart upload sent at once). Default: 4.
  int max_connections = 4;
  // A request that makes no progress for this long fails with kIoError. Default: 30 s.
  int stall_timeout_s = 30;
  // A connection attempt that takes longer fails with kIoError. Default: 10 s.
  int connect_timeout_s = 10;
};

enum class S3LockMode { kNone, kGovernance, kCompliance };

// Object Lock settings of one object version.
struct S3ObjectLock {
  S3LockMode mode = S3LockMode::kNone;
  int64_t retain_until_s = 0;  // Unix seconds; with mode != kNone
  bool legal_hold = false;
};

struct S3ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::string etag;            // without its quotes
  std::string version_id;      // ListVersions and Head only
  bool is_latest = true;       // ListVersions
  bool delete_marker = false;  // ListVersions
  int64_t last_modified_s = 0;
};

class S3Client {
 public:
  // Checks the configuration (not the network).
  static StatusOr<std::unique_ptr<S3Client>> Create(const S3Config& config);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // Every method may be called from several threads at once.

  // Stores `body` as `key` with the given Object Lock settings (mode kNone: none; the bucket's
  // default retention, if any, applies). Returns the new version's id (empty in an
  // unversioned bucket).
  StatusOr<std::string> Put(std::string_view key, std::string_view body,
                            const S3ObjectLock& lock = {});
  // Stores the file's bytes as `key`: one PUT up to part_bytes, a multipart upload above
  // (parts of part_bytes, up to max_connections sent at once; an upload that fails is
  // aborted). `progress`, if set, is called with the bytes sent so far, in increasing order and
  // one call at a time, but from the threads that send the parts. Returns the version id.
  // A multipart upload also sets the lock on the completed version (PUT ?retention,
  // ?legal-hold): the RADOS Gateway of Ceph 16 ignores the lock headers of its first request.
  StatusOr<std::string> PutFile(std::string_view key, const std::filesystem::path& file,
                                const S3ObjectLock& lock = {}, uint64_t part_bytes = 16u << 20,
                                const std::function<void(uint64_t)>& progress = {});
  // The whole object (its current version); kNotFound when there is none.
  Status Get(std::string_view key, std::string* body);
  // Bytes [offset, offset + length) of the object (fewer at its end); kNotFound when absent.
  Status GetRange(std::string_view key, uint64_t offset, uint64_t length, std::string* body);
  // Size, ETag and last-modified of the current version; kNotFound when absent.
  StatusOr<S3ObjectInfo> Head(std::string_view key);
  // Every current object whose key starts with `prefix`, in key order (all pages).
  Status List(std::string_view prefix, std::vector<S3ObjectInfo>* objects);
  // Every version and delete marker whose key starts with `prefix` (all pages).
  Status ListVersions(std::string_view prefix, std::vector<S3ObjectInfo>* versions);
  // DELETE without a version: in a versioned bucket, a delete marker (always allowed, also
  // under Object Lock); the object versions stay. Ok when the key does not exist.
  Status Delete(std::string_view key);
  // Deletes one version for good: kAccess when Object Lock forbids it.
  Status DeleteVersion(std::string_view key, std::string_view version_id);
  // Sets the retention of a version (PUT ?retention); extending is always allowed,
  // shortening COMPLIANCE is refused by the server (kAccess).
  Status PutRetention(std::string_view key, std::string_view version_id, S3LockMode mode,
                      int64_t retain_until_s);
  // Turns the legal hold of a version on or off (PUT ?legal-hold).
  Status PutLegalHold(std::string_view key, std::string_view version_id, bool on);
  // The Object Lock settings of a version (GET ?retention and ?legal-hold).
  StatusOr<S3ObjectLock> GetObjectLock(std::string_view key, std::string_view version_id);
  // Whether Object Lock is enabled on the bucket (GET ?object-lock).
  StatusOr<bool> ObjectLockEnabled();
  // Creates the bucket (versioned, with Object Lock when asked); kExists when it exists.
  Status CreateBucket(bool object_lock);

  const S3Config& config() const;

 private:
  struct Rep;
  explicit S3Client(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace medvfs::store
