// S3Client (s3_client.h): the single requests. PutFile is in s3_multipart.cc, the
// credentials and URLs in s3_config.cc, the HTTP layer in s3_http.cc.
#include "store/s3/s3_client.h"

#include <curl/curl.h>
#include <tinyxml2.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/s3/s3_client_internal.h"
#include "store/s3/s3_http.h"

namespace medvfs::store {

using s3_internal::ChildText;
using s3_internal::ErrorCode;
using s3_internal::HttpClient;
using s3_internal::HttpRequest;
using s3_internal::HttpResponse;
using s3_internal::ParseXmlAnswer;

namespace {

constexpr const char* kS3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/";

const char* LockModeName(S3LockMode mode) {
  switch (mode) {
    case S3LockMode::kGovernance:
      return "GOVERNANCE";
    case S3LockMode::kCompliance:
      return "COMPLIANCE";
    case S3LockMode::kNone:
      break;
  }
  return "";
}

uint64_t ParseUint(std::string_view text) {
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

// An ETag without its quotes.
std::string Unquote(std::string text) {
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    text = text.substr(1, text.size() - 2);
  }
  return text;
}

int64_t ParseIsoTimeOrZero(std::string_view text) {
  int64_t seconds = 0;
  return s3_internal::ParseIsoTime(text, &seconds) ? seconds : 0;
}

// A one-element XML request body: <root xmlns="..."><child>text</child>...</root>.
std::string XmlBody(const char* root,
                    const std::vector<std::pair<const char*, std::string>>& children) {
  tinyxml2::XMLPrinter printer(nullptr, /*compact=*/true);
  printer.OpenElement(root, /*compactMode=*/true);
  printer.PushAttribute("xmlns", kS3Namespace);
  for (const auto& [name, text] : children) {
    printer.OpenElement(name, true);
    printer.PushText(text.c_str());
    printer.CloseElement(true);
  }
  printer.CloseElement(true);
  return std::string(printer.CStr(), static_cast<size_t>(printer.CStrSize() - 1));
}

HttpRequest VersionRequest(std::string_view method, std::string_view key, const char* subresource,
                           std::string_view version_id) {
  HttpRequest request;
  request.method = method;
  request.key = key;
  request.query.emplace_back(subresource, "");
  if (!version_id.empty()) request.query.emplace_back("versionId", std::string(version_id));
  return request;
}

bool ValidEndpoint(std::string_view endpoint) {
  std::string_view host;
  if (endpoint.starts_with("http://")) {
    host = endpoint.substr(7);
  } else if (endpoint.starts_with("https://")) {
    host = endpoint.substr(8);
  } else {
    return false;
  }
  if (host.empty()) return false;
  for (const char c : host) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c)) || std::strchr("/?#@", c) != nullptr) {
      return false;
    }
  }
  return true;
}

bool HasLineBreak(std::string_view text) {
  return text.find_first_of("\r\n") != std::string_view::npos;
}

}  // namespace

namespace s3_internal {

std::vector<std::string> LockHeaders(const S3ObjectLock& lock) {
  std::vector<std::string> headers;
  if (lock.mode != S3LockMode::kNone) {
    headers.push_back(std::string("x-amz-object-lock-mode: ") + LockModeName(lock.mode));
    headers.push_back("x-amz-object-lock-retain-until-date: " + FormatIsoTime(lock.retain_until_s));
  }
  if (lock.legal_hold) headers.emplace_back("x-amz-object-lock-legal-hold: ON");
  return headers;
}

Status CheckKey(std::string_view operation, std::string_view key) {
  if (key.empty() || key.size() > 1024) {
    return Status::Invalid(std::string(operation) + ": a key has 1 to 1024 bytes, not " +
                           std::to_string(key.size()));
  }
  return Status::Ok();
}

StatusOr<std::string> PutObject(HttpClient& http, std::string_view key, std::string_view body,
                                const S3ObjectLock& lock,
                                const std::function<void(uint64_t)>& progress) {
  MEDVFS_RETURN_IF_ERROR(CheckKey("S3 PUT", key));
  if (lock.mode != S3LockMode::kNone && lock.retain_until_s <= 0) {
    return Status::Invalid("S3 PUT: a retention mode needs a retain-until date");
  }
  HttpRequest request;
  request.method = "PUT";
  request.key = key;
  request.body = body;
  // Always, not only with the lock headers: AWS also wants it in a bucket with a default
  // retention, and the gateway then checks the bytes it stores.
  request.content_md5 = true;
  request.headers = LockHeaders(lock);
  request.headers.emplace_back("content-type: application/octet-stream");
  request.upload_progress = progress;
  HttpResponse response;
  MEDVFS_RETURN_IF_ERROR(http.Call(request, &response));
  return response.Header("x-amz-version-id");
}

Status PutRetention(HttpClient& http, std::string_view key, std::string_view version_id,
                    S3LockMode mode, int64_t retain_until_s) {
  MEDVFS_RETURN_IF_ERROR(CheckKey("S3 PUT ?retention", key));
  if (mode == S3LockMode::kNone || retain_until_s <= 0) {
    return Status::Invalid("S3 PUT ?retention: needs a mode and a retain-until date");
  }
  HttpRequest request = VersionRequest("PUT", key, "retention", version_id);
  const std::string body =
      XmlBody("Retention",
              {{"Mode", LockModeName(mode)}, {"RetainUntilDate", FormatIsoTime(retain_until_s)}});
  request.body = body;
  request.content_md5 = true;
  request.headers.emplace_back("content-type: application/xml");
  HttpResponse response;
  return http.Call(request, &response);
}

Status PutLegalHold(HttpClient& http, std::string_view key, std::string_view version_id, bool on) {
  MEDVFS_RETURN_IF_ERROR(CheckKey("S3 PUT ?legal-hold", key));
  HttpRequest request = VersionRequest("PUT", key, "legal-hold", version_id);
  const std::string body = XmlBody("LegalHold", {{"Status", on ? "ON" : "OFF"}});
  request.body = body;
  request.content_md5 = true;
  request.headers.emplace_back("content-type: application/xml");
  HttpResponse response;
  return http.Call(request, &response);
}

}  // namespace s3_internal

S3Client::S3Client(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
S3Client::~S3Client() = default;

const S3Config& S3Client::config() const { return rep_->config; }

StatusOr<std::unique_ptr<S3Client>> S3Client::Create(const S3Config& config) {
  if (!ValidEndpoint(config.endpoint)) {
    return Status::Invalid("S3: the endpoint must be http(s)://host[:port], not \"" +
                           config.endpoint + "\"");
  }
  if (!s3_internal::ValidBucketName(config.bucket)) {
    return Status::Invalid("S3: \"" + config.bucket +
                           "\" is not a bucket name (3-63 of a-z, 0-9, '.' and '-')");
  }
  if (config.region.empty() || config.region.size() > 64 ||
      config.region.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789-_") != std::string::npos) {
    return Status::Invalid("S3: \"" + config.region + "\" is not a region name");
  }
  const S3Credentials& credentials = config.credentials;
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty()) {
    return Status::Invalid("S3: the credentials lack an access key id or a secret access key");
  }
  if (HasLineBreak(credentials.access_key_id) || HasLineBreak(credentials.secret_access_key) ||
      HasLineBreak(credentials.session_token)) {
    return Status::Invalid("S3: the credentials contain a line break");
  }
  if (config.max_connections < 1 || config.stall_timeout_s < 1 || config.connect_timeout_s < 1) {
    return Status::Invalid(
        "S3: max_connections, stall_timeout_s and connect_timeout_s must be at least 1");
  }
  return std::unique_ptr<S3Client>(new S3Client(std::make_unique<Rep>(config)));
}

StatusOr<std::string> S3Client::Put(std::string_view key, std::string_view body,
                                    const S3ObjectLock& lock) {
  return s3_internal::PutObject(rep_->http, key, body, lock, {});
}

Status S3Client::Get(std::string_view key, std::string* body) {
  MEDVFS_RETURN_IF_ERROR(s3_internal::CheckKey("S3 GET", key));
  HttpRequest request;
  request.key = key;
  HttpResponse response;
  MEDVFS_RETURN_IF_ERROR(rep_->http.Call(request, &response));
  *body = std::move(response.body);
  return Status::Ok();
}

Status S3Client::GetRange(std::string_view key, uint64_t offset, uint64_t length,
                          std::string* body) {
  if (length == 0) {  // no byte range says "nothing": the object only has to be there
    MEDVFS_RETURN_IF_ERROR(Head(key).status());
    body->clear();
    return Status::Ok();
  }
  MEDVFS_RETURN_IF_ERROR(s3_internal::CheckKey("S3 GET", key));
  HttpRequest request;
  request.key = key;
  std::string range = "range: bytes=" + std::to_string(offset) + "-";
  if (length - 1 <= std::numeric_limits<uint64_t>::max() - offset) {
    range += std::to_string(offset + length - 1);
  }
  request.headers.push_back(std::move(range));
  HttpResponse response;
  Status status = rep_->http.Call(request, &response);
  if (response.status == 416) {  // the range starts at or after the object's end
    body->clear();
    return Status::Ok();
  }
  MEDVFS_RETURN_IF_ERROR(status);
  if (response.status == 200) {  // the whole object: a server that ignores ranges
    *body = offset < response.body.size() ? response.body.substr(offset, length) : std::string();
    return Status::Ok();
  }
  *body = std::move(response.body);
  return Status::Ok();
}

StatusOr<S3ObjectInfo> S3Client::Head(std::string_view key) {
  MEDVFS_RETURN_IF_ERROR(s3_internal::CheckKey("S3 HEAD", key));
  HttpRequest request;
  request.method = "HEAD";
  request.key = key;
  HttpResponse response;
  MEDVFS_RETURN_IF_ERROR(rep_->http.Call(request, &response));
  S3ObjectInfo info;
  info.key = std::string(key);
  info.size = ParseUint(response.Header("content-length"));
  info.etag = Unquote(response.Header("etag"));
  info.version_id = response.Header("x-amz-version-id");
  const std::string last_modified = response.Header("last-modified");
  const time_t when = curl_getdate(last_modified.c_str(), nullptr);
  info.last_modified_s = when > 0 ? static_cast<int64_t>(when) : 0;
  return info;
}

Status S3Client::List(std::string_view prefix, std::vector<S3ObjectInfo>* objects) {
  objects->clear();
  std::string token;
  while (true) {
    HttpRequest request;
    request.query.emplace_back("list-type", "2");
    if (!prefix.empty()) request.query.emplace_back("prefix", std::string(prefix));
    if (!token.empty()) request.query.emplace_back("continuation-token", token);
    const std::string operation = HttpClient::OperationName(request);
    HttpResponse response;
    MEDVFS_RETURN_IF_ERROR(rep_->http.Call(request, &response));
    tinyxml2::XMLDocument doc;
    MEDVFS_RETURN_IF_ERROR(ParseXmlAnswer(operation, response, "ListBucketResult", &doc));
    const tinyxml2::XMLElement* root = doc.RootElement();
    for (const tinyxml2::XMLElement* item = root->FirstChildElement("Contents"); item != nullptr;
         item = item->NextSiblingElement("Contents")) {
      S3ObjectInfo info;
      info.key = ChildText(item, "Key");
      info.size = ParseUint(ChildText(item, "Size"));
      info.etag = Unquote(ChildText(item, "ETag"));
      info.last_modified_s = ParseIsoTimeOrZero(ChildText(item, "LastModified"));
      objects->push_back(std::move(info));
    }
    if (ChildText(root, "IsTruncated") != "true") return Status::Ok();
    token = ChildText(root, "NextContinuationToken");
    if (token.empty()) {
      return Status::IoError(operation + ": a truncated page without NextContinuationToken");
    }
  }
}

Status S3Client::ListVersions(std::string_view prefix, std::vector<S3ObjectInfo>* versions) {
  versions->clear();
  std::string key_marker, version_marker;
  while (true) {
    HttpRequest request;
    request.query.emplace_back("versions", "");
    if (!prefix.empty()) request.query.emplace_back("prefix", std::string(prefix));
    if (!key_marker.empty()) request.query.emplace_back("key-marker", key_marker);
    if (!version_marker.empty()) request.query.emplace_back("version-id-marker", version_marker);
    const std::string operation = HttpClient::OperationName(request);
    HttpResponse response;
    MEDVFS_RETURN_IF_ERROR(rep_->http.Call(request, &response));
    tinyxml2::XMLDocument doc;
    MEDVFS_RETURN_IF_ERROR(ParseXmlAnswer(operation, response, "ListVersionsResult", &doc));
    const tinyxml2::XMLElement* root = doc.RootElement();
    // Versions and delete markers come interleaved, in key order.
    for (const tinyxml2::XMLElement* item = root->FirstChildElement(); item != nullptr;
         item = item->NextSiblingElement()) {
      const bool marker = std::strcmp(item->Name(), "DeleteMarker") == 0;
      if (!marker && std::strcmp(item->Name(), "Version") != 0) continue;
      S3ObjectInfo info;
      info.key = ChildText(item, "Key");
      info.version_id = ChildText(item, "VersionId");
      info.is_latest = ChildText(item, "IsLatest") == "true";
      info.delete_marker = marker;
      info.last_modified_s = ParseIsoTimeOrZero(ChildText(item, "LastModified"));
      if (!marker) {
        info.size = ParseUint(ChildText(item, "Size"));
        info.etag = Unquote(ChildText(item, "ETag"));
      }
      versions->push_back(std::move(info));
    }
    if (ChildText(root, "IsTruncated") != "true") return Status::Ok();
    key_marker = ChildText(root, "NextKeyMarker");
    version_marker = ChildText(root, "NextVersionIdMarker");
    if (key_marker.empty()) {
      return Status::IoError(operation + ": a truncated page without NextKeyMarker");
    }
  }
}

Status S3Client::Delete(std::string_view key) {
  MEDVFS_RETURN_IF_ERROR(s3_internal::CheckKey("S3 DELETE", key));
  HttpRequest request;
  request.method = "DELETE";
  request.key = key;
  HttpResponse response;
  Status status = rep_->http.Call(request, &response);
  // An absent key is no error (S3 itself answers 204), an absent bucket is.
  if (response.status == 404 && ErrorCode(response) != "NoSuchBucket") return Status::Ok();
  return status;
}

Status S3Client::DeleteVersion(std::string_view key, std::string_view version_id) {
  MEDVFS_RETURN_IF_ERROR(s3_internal::CheckKey("S3 DELETE", key));
  if (version_id.empty()) return Status::Invalid("S3 DELETE ?versionId: no version id");
  HttpRequest request;
  request.method = "DELETE";
  request.key = key;
  request.query.emplace_back("versionId", std::string(version_id));
  HttpResponse response;
  return rep_->http.Call(request, &response);
}

Status S3Client::PutRetention(std::string_view key, std::string_view version_id, S3LockMode mode,
                              int64_t retain_until_s) {
  return s3_internal::PutRetention(rep_->http, key, version_id, mode, retain_until_s);
}

Status S3Client::PutLegalHold(std::string_view key, std::string_view version_id, bool on) {
  return s3_internal::PutLegalHold(rep_->http, key, version_id, on);
}

StatusOr<S3ObjectLock> S3Client::GetObjectLock(std::string_view key, std::string_view version_id) {
  MEDVFS_RETURN_IF_ERROR(s3_internal::CheckKey("S3 GET ?retention", key));
  S3ObjectLock lock;
  // A version without retention or legal hold: 404 NoSuchObjectLockConfiguration (AWS) or
  // ObjectLockConfigurationNotFoundError (the RADOS Gateway).
  const auto unset = [](const HttpResponse& response) {
    if (response.status != 404) return false;
    const std::string code = ErrorCode(response);
    return code == "NoSuchObjectLockConfiguration" ||
           code == "ObjectLockConfigurationNotFoundError";
  };
  {
    const HttpRequest request = VersionRequest("GET", key, "retention", version_id);
    HttpResponse response;
    Status status = rep_->http.Call(request, &response);
    if (status.ok()) {
      const std::string operation = HttpClient::OperationName(request);
      tinyxml2::XMLDocument doc;
      MEDVFS_RETURN_IF_ERROR(ParseXmlAnswer(operation, response, "Retention", &doc));
      const std::string mode = ChildText(doc.RootElement(), "Mode");
      if (mode == "COMPLIANCE") {
        lock.mode = S3LockMode::kCompliance;
      } else if (mode == "GOVERNANCE") {
        lock.mode = S3LockMode::kGovernance;
      } else {
        return Status::IoError(operation + ": unknown retention mode \"" + mode + "\"");
      }
      const std::string until = ChildText(doc.RootElement(), "RetainUntilDate");
      if (!s3_internal::ParseIsoTime(until, &lock.retain_until_s)) {
        return Status::IoError(operation + ": unreadable RetainUntilDate \"" + until + "\"");
      }
    } else if (!unset(response)) {
      return status;
    }
  }
  {
    const HttpRequest request = VersionRequest("GET", key, "legal-hold", version_id);
    HttpResponse response;
    Status status = rep_->http.Call(request, &response);
    if (status.ok()) {
      tinyxml2::XMLDocument doc;
      MEDVFS_RETURN_IF_ERROR(
          ParseXmlAnswer(HttpClient::OperationName(request), response, "LegalHold", &doc));
      lock.legal_hold = ChildText(doc.RootElement(), "Status") == "ON";
    } else if (!unset(response)) {
      return status;
    }
  }
  return lock;
}

StatusOr<bool> S3Client::ObjectLockEnabled() {
  HttpRequest request;
  request.query.emplace_back("object-lock", "");
  HttpResponse response;
  Status status = rep_->http.Call(request, &response);
  if (response.status == 404 && ErrorCode(response) == "ObjectLockConfigurationNotFoundError") {
    return false;
  }
  MEDVFS_RETURN_IF_ERROR(status);
  tinyxml2::XMLDocument doc;
  MEDVFS_RETURN_IF_ERROR(ParseXmlAnswer(HttpClient::OperationName(request), response,
                                        "ObjectLockConfiguration", &doc));
  return ChildText(doc.RootElement(), "ObjectLockEnabled") == "Enabled";
}

Status S3Client::CreateBucket(bool object_lock) {
  // The gateway (like AWS in us-east-1) answers 200 to creating a bucket its owner already
  // has: ask first.
  HttpRequest head;
  head.method = "HEAD";
  HttpResponse head_response;
  Status exists = rep_->http.Call(head, &head_response);
  if (exists.ok()) return Status::Exists("S3 PUT: bucket " + rep_->config.bucket + " exists");
  // 403: perhaps someone else's bucket, which the PUT reports as BucketAlreadyExists.
  if (head_response.status != 404 && head_response.status != 403) return exists;

  HttpRequest create;
  create.method = "PUT";
  if (object_lock) create.headers.emplace_back("x-amz-bucket-object-lock-enabled: true");
  // Outside us-east-1, AWS wants the region in the body (the gateway accepts its zonegroup's
  // name, "default", and refuses "us-east-1").
  std::string body;
  if (rep_->config.region != "us-east-1") {
    body = XmlBody("CreateBucketConfiguration", {{"LocationConstraint", rep_->config.region}});
    create.headers.emplace_back("content-type: application/xml");
  }
  create.body = body;
  HttpResponse response;
  MEDVFS_RETURN_IF_ERROR(rep_->http.Call(create, &response));

  HttpRequest versioning;
  versioning.method = "PUT";
  versioning.query.emplace_back("versioning", "");
  const std::string enabled = XmlBody("VersioningConfiguration", {{"Status", "Enabled"}});
  versioning.body = enabled;
  versioning.content_md5 = true;
  versioning.headers.emplace_back("content-type: application/xml");
  return rep_->http.Call(versioning, &response);
}

}  // namespace medvfs::store
