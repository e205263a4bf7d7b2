#include "store/s3/s3_http.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <tinyxml2.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace medvfs::store::s3_internal {
namespace {

// curl_global_init, once per process (never cleaned up: other libraries may use libcurl).
bool CurlReady() {
  static const bool ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  return ready;
}

// AWS's URI encoding: every byte but A-Z a-z 0-9 - . _ ~ as %XX (upper case), which is what
// curl_easy_escape does.
std::string Escape(std::string_view text) {
  if (text.empty()) return {};  // curl_easy_escape takes a length of 0 for strlen()
  char* escaped = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  if (escaped == nullptr) return {};
  std::string out(escaped);
  curl_free(escaped);
  return out;
}

// A key as a URL path: each '/'-separated segment escaped, the '/' kept.
std::string EscapeKey(std::string_view key) {
  std::string out;
  while (true) {
    const size_t slash = key.find('/');
    out += Escape(key.substr(0, slash));
    if (slash == std::string_view::npos) break;
    out += '/';
    key.remove_prefix(slash + 1);
  }
  return out;
}

// The canonical query string of SigV4: name=value pairs, encoded, sorted by name.
std::string QueryString(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) encoded.emplace_back(Escape(name), Escape(value));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using HeaderList = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// The state of one transfer, seen by the callbacks.
struct Transfer {
  std::string_view body;  // what is uploaded
  size_t sent = 0;        // of body, handed to curl so far
  const std::function<void(uint64_t)>* upload_progress = nullptr;
  HttpResponse* response = nullptr;
  CURL* handle = nullptr;
};

size_t OnRead(char* buffer, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t n = std::min(size * count, transfer->body.size() - transfer->sent);
  if (n > 0) std::memcpy(buffer, transfer->body.data() + transfer->sent, n);
  transfer->sent += n;
  return n;
}

// curl rewinds the body to send it again (a retry on a new connection, say).
int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* transfer = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > transfer->body.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  transfer->sent = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t OnWrite(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  std::string& body = transfer->response->body;
  if (body.empty()) {
    curl_off_t length = -1;
    if (curl_easy_getinfo(transfer->handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) ==
            CURLE_OK &&
        length > 0) {
      body.reserve(static_cast<size_t>(length));
    }
  }
  body.append(data, size * count);
  return size * count;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  const std::string_view line(data, size * count);
  // A new status line (after a "100 Continue", say) starts a new set of headers.
  if (line.starts_with("HTTP/")) response->headers.clear();
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name(Trim(line.substr(0, colon)));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    response->headers[name] = std::string(Trim(line.substr(colon + 1)));
  }
  return size * count;
}

int OnProgress(void* user, curl_off_t /*download_total*/, curl_off_t /*downloaded*/,
               curl_off_t /*upload_total*/, curl_off_t uploaded) {
  auto* transfer = static_cast<Transfer*>(user);
  if (uploaded > 0) (*transfer->upload_progress)(static_cast<uint64_t>(uploaded));
  return 0;
}

bool IsSuccess(long status) {  // NOLINT(google-runtime-int): curl's type
  return status >= 200 && status < 300;
}

}  // namespace

// Idle easy handles. Lock order: mu is a leaf.
struct HttpClient::Pool {
  explicit Pool(size_t keep) : max_idle(keep) {}
  ~Pool() {
    for (CURL* handle : idle) curl_easy_cleanup(handle);
  }
  CURL* Acquire() {
    {
      const std::lock_guard<std::mutex> lock(mu);
      if (!idle.empty()) {
        CURL* handle = idle.back();
        idle.pop_back();
        return handle;
      }
    }
    return CurlReady() ? curl_easy_init() : nullptr;
  }
  // Keeps the handle (and its open connection) for the next request, up to max_idle of them.
  void Release(CURL* handle) {
    {
      const std::lock_guard<std::mutex> lock(mu);
      if (idle.size() < max_idle) {
        idle.push_back(handle);
        return;
      }
    }
    curl_easy_cleanup(handle);
  }

  const size_t max_idle;
  std::mutex mu;
  std::vector<CURL*> idle;  // GUARDED_BY(mu)
};

std::string HttpResponse::Header(const std::string& name) const {
  const auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

HttpClient::HttpClient(const S3Config& config)
    : config_(config),
      pool_(std::make_unique<Pool>(static_cast<size_t>(std::max(1, config.max_connections)))) {}

HttpClient::~HttpClient() = default;

std::string HttpClient::OperationName(const HttpRequest& request) {
  // The sub-resource the request works on, if any ("S3 PUT ?retention").
  static constexpr const char* kSubresources[] = {"uploads",    "uploadId",    "retention",
                                                  "legal-hold", "object-lock", "versioning",
                                                  "versions",   "list-type",   "versionId"};
  std::string name = "S3 " + std::string(request.method);
  for (const char* subresource : kSubresources) {
    for (const auto& parameter : request.query) {
      if (parameter.first == subresource) return name + " ?" + subresource;
    }
  }
  return name;
}

Status HttpClient::Call(const HttpRequest& request, HttpResponse* response) {
  const std::string operation = OperationName(request);
  std::string url = config_.endpoint + "/" + config_.bucket;
  if (!request.key.empty()) url += "/" + EscapeKey(request.key);
  if (!request.query.empty()) url += "?" + QueryString(request.query);

  const bool has_body = request.method == "PUT" || request.method == "POST";
  std::vector<std::string> lines;
  lines.push_back("x-amz-content-sha256: " +
                  (has_body ? Sha256Hex(request.body) : std::string("UNSIGNED-PAYLOAD")));
  if (!config_.credentials.session_token.empty()) {
    lines.push_back("x-amz-security-token: " + config_.credentials.session_token);
  }
  if (request.content_md5) lines.push_back("content-md5: " + Md5Base64(request.body));
  lines.insert(lines.end(), request.headers.begin(), request.headers.end());
  // Else curl would add its own form type to a body.
  if (has_body &&
      std::none_of(request.headers.begin(), request.headers.end(),
                   [](const std::string& line) { return line.starts_with("content-type:"); })) {
    lines.emplace_back("content-type: application/octet-stream");
  }
  HeaderList headers;
  for (const std::string& line : lines) {
    curl_slist* appended = curl_slist_append(headers.get(), line.c_str());
    if (appended == nullptr) return Status::IoError(operation + ": out of memory");
    if (!headers) headers.reset(appended);  // later appends return the same head
  }
  const std::string sigv4 = "aws:amz:" + config_.region + ":s3";
  const std::string method(request.method);

  CURL* handle = pool_->Acquire();
  if (handle == nullptr) return Status::IoError(operation + ": libcurl cannot start");
  Transfer transfer;
  transfer.handle = handle;
  transfer.response = response;
  transfer.upload_progress = &request.upload_progress;
  char error[CURL_ERROR_SIZE] = {};
  CURLcode code = CURLE_OK;
  // One retry, only when a kept connection turned out closed by the server.
  for (int attempt = 0; attempt < 2; ++attempt) {
    *response = HttpResponse();
    transfer.body = request.body;
    transfer.sent = 0;
    error[0] = '\0';
    curl_easy_reset(handle);  // keeps the open connection
    curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
    curl_easy_setopt(handle, CURLOPT_PATH_AS_IS, 1L);  // a key's "./" and "../" stay as they are
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(handle, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(handle, CURLOPT_USERNAME, config_.credentials.access_key_id.c_str());
    curl_easy_setopt(handle, CURLOPT_PASSWORD, config_.credentials.secret_access_key.c_str());
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT, static_cast<long>(config_.connect_timeout_s));
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME, static_cast<long>(config_.stall_timeout_s));
    curl_easy_setopt(handle, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, response);
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, OnWrite);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &transfer);
    if (method == "HEAD") {
      curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
    } else if (has_body) {
      // A PUT too is sent the way curl sends a POST: curl 7.88 asks a PUT's server for a
      // "100 Continue" whatever its size, and the gateway sends that for a ?retention or
      // ?legal-hold only once it reads the body, which curl sends after waiting 1 s for it.
      // A POST asks only above 1 MiB.
      curl_easy_setopt(handle, CURLOPT_POST, 1L);
      curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
      if (method != "POST") curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method.c_str());
      curl_easy_setopt(handle, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024L);
      curl_easy_setopt(handle, CURLOPT_READFUNCTION, OnRead);
      curl_easy_setopt(handle, CURLOPT_READDATA, &transfer);
      curl_easy_setopt(handle, CURLOPT_SEEKFUNCTION, OnSeek);
      curl_easy_setopt(handle, CURLOPT_SEEKDATA, &transfer);
      if (request.upload_progress) {
        curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, OnProgress);
        curl_easy_setopt(handle, CURLOPT_XFERINFODATA, &transfer);
      }
    } else if (method != "GET") {
      curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    code = curl_easy_perform(handle);
    if (code == CURLE_OK) break;
    long connects = -1;  // NOLINT(google-runtime-int): curl's type
    curl_easy_getinfo(handle, CURLINFO_NUM_CONNECTS, &connects);
    const bool closed_by_server =
        code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR || code == CURLE_GOT_NOTHING;
    if (!(closed_by_server && connects == 0)) break;
  }
  if (code == CURLE_OK) curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response->status);
  curl_off_t connect_time_us = 0;  // 0: no connection was made
  curl_easy_getinfo(handle, CURLINFO_CONNECT_TIME_T, &connect_time_us);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, nullptr);
  pool_->Release(handle);

  if (code != CURLE_OK) {
    const std::string detail = error[0] != '\0' ? error : curl_easy_strerror(code);
    // A timeout is the connection's (CURLOPT_CONNECTTIMEOUT) or a stalled transfer's.
    const bool unreachable = code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
                             code == CURLE_SSL_CONNECT_ERROR ||
                             (code == CURLE_OPERATION_TIMEDOUT && connect_time_us == 0);
    return Status::IoError(operation + (unreachable ? ": cannot reach " : ": no answer from ") +
                           config_.endpoint + ": " + detail);
  }
  if (IsSuccess(response->status)) return Status::Ok();
  return StatusFromAnswer(operation, *response);
}

std::string ChildText(const tinyxml2::XMLElement* parent, const char* name) {
  const tinyxml2::XMLElement* child = parent->FirstChildElement(name);
  const char* text = child != nullptr ? child->GetText() : nullptr;
  return text != nullptr ? text : "";
}

Status ParseXmlAnswer(std::string_view operation, const HttpResponse& response, const char* root,
                      tinyxml2::XMLDocument* doc) {
  if (doc->Parse(response.body.data(), response.body.size()) != tinyxml2::XML_SUCCESS) {
    return Status::IoError(std::string(operation) + ": the answer is not XML (" + doc->ErrorName() +
                           ")");
  }
  const tinyxml2::XMLElement* element = doc->RootElement();
  if (element == nullptr || std::strcmp(element->Name(), root) != 0) {
    return Status::IoError(std::string(operation) + ": the answer is not a " + root +
                           (element != nullptr && std::strcmp(element->Name(), "Error") == 0
                                ? " but an error " + ChildText(element, "Code")
                                : std::string()));
  }
  return Status::Ok();
}

std::string ErrorCode(const HttpResponse& response) {
  if (response.body.empty()) return {};
  tinyxml2::XMLDocument doc;
  if (doc.Parse(response.body.data(), response.body.size()) != tinyxml2::XML_SUCCESS) return {};
  const tinyxml2::XMLElement* root = doc.RootElement();
  if (root == nullptr || std::strcmp(root->Name(), "Error") != 0) return {};
  return ChildText(root, "Code");
}

Status StatusFromAnswer(std::string_view operation, const HttpResponse& response) {
  std::string code, message;
  if (!response.body.empty()) {
    tinyxml2::XMLDocument doc;
    if (doc.Parse(response.body.data(), response.body.size()) == tinyxml2::XML_SUCCESS &&
        doc.RootElement() != nullptr && std::strcmp(doc.RootElement()->Name(), "Error") == 0) {
      code = ChildText(doc.RootElement(), "Code");
      message = ChildText(doc.RootElement(), "Message");
    }
  }
  std::string text = std::string(operation) + ": HTTP " + std::to_string(response.status);
  if (!code.empty()) text += " " + code;
  // S3's own explanation, when it gives one of a sensible length (never the body we sent).
  if (!message.empty() && message.size() <= 200) text += " (" + message + ")";
  switch (response.status) {
    case 404:
      return Status::NotFound(std::move(text));
    case 403:
      return Status(Code::kAccess, std::move(text));
    case 409:
      if (code == "BucketAlreadyExists" || code == "BucketAlreadyOwnedByYou") {
        return Status::Exists(std::move(text));
      }
      break;
    default:
      break;
  }
  return Status::IoError(std::move(text));
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE] = {};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return {};
  }
  char hex[2 * EVP_MAX_MD_SIZE + 1] = {};
  size_t written = 0;
  if (OPENSSL_buf2hexstr_ex(hex, sizeof(hex), &written, digest, length, '\0') != 1) return {};
  std::string out(hex);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Md5Base64(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE] = {};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_md5(), nullptr) != 1) return {};
  unsigned char base64[2 * EVP_MAX_MD_SIZE + 4] = {};
  const int written = EVP_EncodeBlock(base64, digest, static_cast<int>(length));
  return std::string(reinterpret_cast<const char*>(base64), static_cast<size_t>(written));
}

std::string FormatIsoTime(int64_t unix_seconds) {
  const auto time = static_cast<time_t>(unix_seconds);
  struct tm tm = {};
  if (gmtime_r(&time, &tm) == nullptr) return {};
  char text[32] = {};
  const size_t n = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(text, n);
}

bool ParseIsoTime(std::string_view text, int64_t* unix_seconds) {
  const std::string copy(text);  // sscanf needs the terminating NUL
  struct tm tm = {};
  int consumed = 0;
  if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return false;
  }
  // The rest: fractional seconds, then "Z" (or nothing, as some gateways write).
  std::string_view rest = std::string_view(copy).substr(static_cast<size_t>(consumed));
  if (rest.starts_with('.')) {
    rest.remove_prefix(1);
    while (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest.front()))) {
      rest.remove_prefix(1);
    }
  }
  if (!(rest.empty() || rest == "Z" || rest == "+00:00")) return false;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  *unix_seconds = static_cast<int64_t>(timegm(&tm));
  return true;
}

}  // namespace medvfs::store::s3_internal
