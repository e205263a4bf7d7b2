// The HTTP layer of S3Client (s3_client.h): one signed request to the bucket, over a pool of
// libcurl easy handles. Internal to store/s3/.
//
// Signing is libcurl's (CURLOPT_AWS_SIGV4). curl 7.88 signs the query string as it is in the
// URL, the path as it is, and every header of CURLOPT_HTTPHEADER, and takes the payload hash
// from an x-amz-content-sha256 header when there is one: so the query is sent sorted and
// encoded the AWS way, and the hash header is always set (the RADOS Gateway refuses a request
// without it).
//
// Each pooled handle keeps its own connection: curl 7.88's shared connection cache
// (CURL_LOCK_DATA_CONNECT) is not safe across threads (its KNOWN_BUGS 11.11).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tinyxml2.h>

#include "store/s3/s3_client.h"
#include "store/status.h"

namespace medvfs::store::s3_internal {

// One request to the configured bucket.
struct HttpRequest {
  std::string_view method = "GET";  // GET, HEAD, PUT, POST or DELETE
  std::string_view key;             // empty: the bucket itself
  // Query parameters, not encoded ("uploads" is {"uploads", ""}); sent sorted.
  std::vector<std::pair<std::string, std::string>> query;
  // Extra headers, "name: value" with a lowercase name (all of them are signed).
  std::vector<std::string> headers;
  std::string_view body;     // PUT and POST
  bool content_md5 = false;  // adds a Content-MD5 header of the body
  // PUT and POST: called with the body bytes sent so far (from the transfer's thread).
  std::function<void(uint64_t)> upload_progress;
};

struct HttpResponse {
  long status = 0;  // NOLINT(google-runtime-int): curl's type
  std::string body;
  std::map<std::string, std::string> headers;  // lowercase names, of the final answer
  // The header's value, or "" when absent.
  std::string Header(const std::string& name) const;
};

class HttpClient {
 public:
  explicit HttpClient(const S3Config& config);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends the request. Ok when the server answered 2xx; otherwise the status of
  // StatusFromAnswer, or kIoError when the server could not be reached or the transfer broke.
  // `response` holds the answer (also an error answer, for callers that accept some).
  Status Call(const HttpRequest& request, HttpResponse* response);

  // "S3 PUT ?retention": the operation's name in error messages.
  static std::string OperationName(const HttpRequest& request);

 private:
  struct Pool;
  const S3Config& config_;
  std::unique_ptr<Pool> pool_;
};

// The Status of a non-2xx answer: 404 kNotFound, 403 kAccess, 409 BucketAlreadyExists or
// BucketAlreadyOwnedByYou kExists, anything else kIoError; the message names the operation,
// the HTTP status and the S3 error code and message (never a body).
Status StatusFromAnswer(std::string_view operation, const HttpResponse& response);
// The <Code> of an S3 error answer, or "" when the body is not one.
std::string ErrorCode(const HttpResponse& response);

// Parses an XML answer whose root element is `root` (namespaces aside); kIoError naming the
// operation when it is something else.
Status ParseXmlAnswer(std::string_view operation, const HttpResponse& response, const char* root,
                      tinyxml2::XMLDocument* doc);
// The text of the first child element `name` of `parent`, or "".
std::string ChildText(const tinyxml2::XMLElement* parent, const char* name);

// Hex SHA-256 (lowercase), as x-amz-content-sha256 wants it.
std::string Sha256Hex(std::string_view bytes);
// Base64 MD5, as Content-MD5 wants it.
std::string Md5Base64(std::string_view bytes);

// Unix seconds <-> the ISO 8601 dates of S3 ("2027-01-01T00:00:00Z"; parsing also takes
// fractional seconds). Parse gives false for anything else.
std::string FormatIsoTime(int64_t unix_seconds);
bool ParseIsoTime(std::string_view text, int64_t* unix_seconds);

}  // namespace medvfs::store::s3_internal
