// S3Client::PutFile (s3_client.h): one PUT for a small file, a multipart upload with parts
// sent in parallel for a larger one.
//
// Each part is read into memory (part_bytes per thread at most), hashed (SHA-256 for the
// signature, MD5 for Content-MD5) and sent by its own thread with its own pooled handle; the
// calling thread is one of them. The first failure stops the others from starting new parts,
// and the upload is aborted so that its parts do not linger (and cost) on the server.
#include <sys/stat.h>
#include <tinyxml2.h>
#include <unistd.h>

#include <fcntl.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "store/file_util.h"
#include "store/s3/s3_client.h"
#include "store/s3/s3_client_internal.h"
#include "store/s3/s3_http.h"

namespace medvfs::store {

using s3_internal::HttpClient;
using s3_internal::HttpRequest;
using s3_internal::HttpResponse;

namespace {

// Reads exactly `length` bytes at `offset`; kIoError when the file is shorter now.
Status ReadAt(int fd, uint64_t offset, uint64_t length, std::string* bytes) {
  bytes->resize(length);
  size_t done = 0;
  while (done < length) {
    const ssize_t n =
        ::pread(fd, bytes->data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return StatusFromErrno(errno, "S3 PutFile: reading the file");
    if (n == 0) return Status::IoError("S3 PutFile: the file shrank while it was sent");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// The bytes sent so far over all parts, reported to the caller's callback in increasing
// order, one call at a time. Lock order: mu is a leaf but for the callback, which is called
// under it (and must not call back into the upload).
class Progress {
 public:
  Progress(size_t parts, const std::function<void(uint64_t)>& callback)
      : callback_(callback), sent_(parts, 0) {}
  // Part `part` has sent `bytes` of its body.
  void Update(size_t part, uint64_t bytes) {
    if (!callback_) return;
    const std::lock_guard<std::mutex> lock(mu_);
    if (bytes <= sent_[part]) return;
    total_ += bytes - sent_[part];
    sent_[part] = bytes;
    if (total_ > reported_) {
      reported_ = total_;
      callback_(reported_);
    }
  }

 private:
  const std::function<void(uint64_t)>& callback_;
  std::mutex mu_;
  std::vector<uint64_t> sent_;  // GUARDED_BY(mu_), per part
  uint64_t total_ = 0;          // GUARDED_BY(mu_)
  uint64_t reported_ = 0;       // GUARDED_BY(mu_)
};

// One multipart upload in progress.
class MultipartUpload {
 public:
  MultipartUpload(HttpClient& http, std::string_view key, int fd, uint64_t size,
                  uint64_t part_bytes, const std::function<void(uint64_t)>& progress)
      : http_(http),
        key_(key),
        fd_(fd),
        size_(size),
        part_bytes_(part_bytes),
        parts_((size + part_bytes - 1) / part_bytes),
        etags_(parts_),
        progress_(parts_, progress) {}

  StatusOr<std::string> Run(const S3ObjectLock& lock, int max_connections) {
    MEDVFS_RETURN_IF_ERROR(Start(lock));
    SendParts(max_connections);
    if (!failure_.ok()) {
      Abort();
      return failure_;
    }
    StatusOr<std::string> version = Complete();
    if (!version.ok()) {
      Abort();
      return version;
    }
    // The RADOS Gateway (Ceph 16) ignores the lock headers of CreateMultipartUpload: the
    // lock is set again on the new version (the same settings, which S3 allows).
    if (lock.mode != S3LockMode::kNone) {
      MEDVFS_RETURN_IF_ERROR(
          s3_internal::PutRetention(http_, key_, *version, lock.mode, lock.retain_until_s));
    }
    if (lock.legal_hold) {
      MEDVFS_RETURN_IF_ERROR(s3_internal::PutLegalHold(http_, key_, *version, true));
    }
    return version;
  }

 private:
  Status Start(const S3ObjectLock& lock) {
    HttpRequest request;
    request.method = "POST";
    request.key = key_;
    request.query.emplace_back("uploads", "");
    request.headers = s3_internal::LockHeaders(lock);
    request.headers.emplace_back("content-type: application/octet-stream");
    HttpResponse response;
    MEDVFS_RETURN_IF_ERROR(http_.Call(request, &response));
    tinyxml2::XMLDocument doc;
    MEDVFS_RETURN_IF_ERROR(s3_internal::ParseXmlAnswer(HttpClient::OperationName(request), response,
                                                       "InitiateMultipartUploadResult", &doc));
    upload_id_ = s3_internal::ChildText(doc.RootElement(), "UploadId");
    if (upload_id_.empty()) return Status::IoError("S3 POST ?uploads: no UploadId in the answer");
    return Status::Ok();
  }

  // Sends every part, up to max_connections at once; failure_ holds the first error.
  void SendParts(int max_connections) {
    const size_t senders = std::min(parts_, static_cast<size_t>(std::max(1, max_connections)));
    std::vector<std::thread> threads;
    for (size_t i = 1; i < senders; ++i) {
      try {
        threads.emplace_back([this] { SendPartsInTurn(); });
      } catch (const std::system_error&) {
        break;  // no more threads: fewer parts at once
      }
    }
    SendPartsInTurn();
    for (std::thread& thread : threads) thread.join();
  }

  void SendPartsInTurn() {
    std::string bytes;
    while (true) {
      const size_t part = next_part_.fetch_add(1);
      if (part >= parts_ || failed_.load()) return;
      const uint64_t offset = part * part_bytes_;
      Status status = ReadAt(fd_, offset, std::min(part_bytes_, size_ - offset), &bytes);
      if (status.ok()) status = SendPart(part, bytes);
      if (!status.ok()) {
        const std::lock_guard<std::mutex> lock(mu_);
        if (failure_.ok()) failure_ = std::move(status);
        failed_.store(true);
        return;
      }
    }
  }

  Status SendPart(size_t part, std::string_view bytes) {
    HttpRequest request;
    request.method = "PUT";
    request.key = key_;
    request.query.emplace_back("partNumber", std::to_string(part + 1));
    request.query.emplace_back("uploadId", upload_id_);
    request.body = bytes;
    request.content_md5 = true;
    request.upload_progress = [this, part](uint64_t sent) { progress_.Update(part, sent); };
    HttpResponse response;
    MEDVFS_RETURN_IF_ERROR(http_.Call(request, &response));
    std::string etag = response.Header("etag");
    if (etag.empty()) {
      return Status::IoError("S3 PUT ?uploadId: part " + std::to_string(part + 1) + " got no ETag");
    }
    progress_.Update(part, bytes.size());
    const std::lock_guard<std::mutex> lock(mu_);
    etags_[part] = std::move(etag);
    return Status::Ok();
  }

  StatusOr<std::string> Complete() {
    tinyxml2::XMLPrinter printer(nullptr, /*compact=*/true);
    printer.OpenElement("CompleteMultipartUpload", true);
    printer.PushAttribute("xmlns", "http://s3.amazonaws.com/doc/2006-03-01/");
    for (size_t part = 0; part < parts_; ++part) {
      printer.OpenElement("Part", true);
      printer.OpenElement("PartNumber", true);
      printer.PushText(static_cast<uint64_t>(part + 1));
      printer.CloseElement(true);
      printer.OpenElement("ETag", true);
      printer.PushText(etags_[part].c_str());
      printer.CloseElement(true);
      printer.CloseElement(true);
    }
    printer.CloseElement(true);
    const std::string body(printer.CStr(), static_cast<size_t>(printer.CStrSize() - 1));

    HttpRequest request;
    request.method = "POST";
    request.key = key_;
    request.query.emplace_back("uploadId", upload_id_);
    request.body = body;
    request.headers.emplace_back("content-type: application/xml");
    HttpResponse response;
    MEDVFS_RETURN_IF_ERROR(http_.Call(request, &response));
    // S3 may answer 200 and still fail, with an <Error> in the body.
    tinyxml2::XMLDocument doc;
    MEDVFS_RETURN_IF_ERROR(s3_internal::ParseXmlAnswer(HttpClient::OperationName(request), response,
                                                       "CompleteMultipartUploadResult", &doc));
    return response.Header("x-amz-version-id");
  }

  // Best effort: the caller gets the error that made us abort, not the abort's.
  void Abort() {
    HttpRequest request;
    request.method = "DELETE";
    request.key = key_;
    request.query.emplace_back("uploadId", upload_id_);
    HttpResponse response;
    http_.Call(request, &response).IgnoreError();
  }

  HttpClient& http_;
  const std::string_view key_;
  const int fd_;
  const uint64_t size_;
  const uint64_t part_bytes_;
  const size_t parts_;
  std::string upload_id_;  // set by Start, before the threads
  std::atomic<size_t> next_part_{0};
  std::atomic<bool> failed_{false};
  std::mutex mu_;                   // a leaf
  std::vector<std::string> etags_;  // GUARDED_BY(mu_) while the parts are sent
  Status failure_;                  // GUARDED_BY(mu_) while the parts are sent
  Progress progress_;
};

}  // namespace

StatusOr<std::string> S3Client::PutFile(std::string_view key, const std::filesystem::path& file,
                                        const S3ObjectLock& lock, uint64_t part_bytes,
                                        const std::function<void(uint64_t)>& progress) {
  MEDVFS_RETURN_IF_ERROR(s3_internal::CheckKey("S3 PutFile", key));
  if (part_bytes == 0) return Status::Invalid("S3 PutFile: part_bytes is 0");
  if (lock.mode != S3LockMode::kNone && lock.retain_until_s <= 0) {
    return Status::Invalid("S3 PutFile: a retention mode needs a retain-until date");
  }
  // No path in the messages: a path may name a patient.
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return StatusFromErrno(errno, "S3 PutFile: opening the file");
  struct stat st = {};
  if (::fstat(fd.get(), &st) != 0) return StatusFromErrno(errno, "S3 PutFile: stat");
  if (!S_ISREG(st.st_mode)) return Status::Invalid("S3 PutFile: not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);

  if (size <= part_bytes) {
    std::string bytes;
    MEDVFS_RETURN_IF_ERROR(ReadAt(fd.get(), 0, size, &bytes));
    uint64_t reported = 0;
    std::function<void(uint64_t)> report;
    if (progress) {
      report = [&](uint64_t sent) {
        if (sent <= reported) return;
        reported = sent;
        progress(sent);
      };
    }
    MEDVFS_ASSIGN_OR_RETURN(std::string version,
                            s3_internal::PutObject(rep_->http, key, bytes, lock, report));
    if (progress && (reported < size || size == 0)) progress(size);
    return version;
  }
  if (part_bytes < s3_internal::kMinPartBytes) {
    return Status::Invalid("S3 PutFile: parts of " + std::to_string(part_bytes) +
                           " bytes, below S3's minimum of 5 MiB");
  }
  // S3 takes 10,000 parts at most: larger parts for a file that needs more.
  part_bytes = std::max(part_bytes, (size + s3_internal::kMaxParts - 1) / s3_internal::kMaxParts);
  MultipartUpload upload(rep_->http, key, fd.get(), size, part_bytes, progress);
  return upload.Run(lock, rep_->config.max_connections);
}

}  // namespace medvfs::store
