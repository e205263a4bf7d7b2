// LoadS3Credentials, ParseS3Url and S3Url::ToString (s3_client.h).
#include <ini.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "store/s3/s3_client.h"
#include "store/s3/s3_client_internal.h"

namespace medvfs::store {
namespace {

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// What the inih handler collects of one profile.
struct ProfileReader {
  std::string profile;
  bool found = false;
  S3Credentials credentials;
};

int OnIniValue(void* user, const char* section, const char* name, const char* value) {
  auto* reader = static_cast<ProfileReader*>(user);
  if (reader->profile != section) return 1;
  reader->found = true;
  if (EqualsIgnoringCase(name, "aws_access_key_id")) {
    reader->credentials.access_key_id = value;
  } else if (EqualsIgnoringCase(name, "aws_secret_access_key")) {
    reader->credentials.secret_access_key = value;
  } else if (EqualsIgnoringCase(name, "aws_session_token") ||
             EqualsIgnoringCase(name, "aws_security_token")) {
    reader->credentials.session_token = value;
  }
  return 1;
}

// The number (from 1) of the first line too long for inih, or 0. Debian's libinih reads lines
// of INI_MAX_LINE (200) bytes, with the newline and the NUL, and silently takes the rest of a
// longer line for the next one: a long aws_session_token would be cut, not refused.
size_t FirstLongLine(std::string_view text) {
  size_t number = 1;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const size_t length = end == std::string_view::npos ? text.size() : end;
    if (length + 2 > INI_MAX_LINE) return number;
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
    ++number;
  }
  return 0;
}

}  // namespace

namespace s3_internal {

bool ValidBucketName(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) return false;
  for (const char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-')) {
      return false;
    }
  }
  const auto alnum = [](char c) { return c != '.' && c != '-'; };
  return alnum(name.front()) && alnum(name.back()) && name.find("..") == std::string_view::npos;
}

}  // namespace s3_internal

StatusOr<S3Credentials> LoadS3Credentials() {
  S3Credentials from_env;
  from_env.access_key_id = Getenv("AWS_ACCESS_KEY_ID");
  from_env.secret_access_key = Getenv("AWS_SECRET_ACCESS_KEY");
  if (!from_env.access_key_id.empty() && !from_env.secret_access_key.empty()) {
    from_env.session_token = Getenv("AWS_SESSION_TOKEN");
    return from_env;
  }

  std::string file = Getenv("AWS_SHARED_CREDENTIALS_FILE");
  const std::string home = Getenv("HOME");
  if (file.empty()) {
    if (home.empty()) {
      return Status::NotFound(
          "S3 credentials: not in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), "
          "and no HOME for ~/.aws/credentials");
    }
    file = home + "/.aws/credentials";
  } else if (file.starts_with("~/") && !home.empty()) {
    file = home + file.substr(1);
  }
  std::string profile = Getenv("AWS_PROFILE");
  if (profile.empty()) profile = "default";

  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return Status::NotFound(
        "S3 credentials: not in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), "
        "and no file " +
        file);
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::IoError("S3 credentials: cannot read " + file);
  if (const size_t line = FirstLongLine(text); line != 0) {
    return Status::Invalid("S3 credentials: " + file + " line " + std::to_string(line) +
                           " is longer than the " + std::to_string(INI_MAX_LINE - 2) +
                           " characters the INI reader takes (a long session token can be "
                           "given as AWS_SESSION_TOKEN)");
  }
  ProfileReader reader;
  reader.profile = profile;
  const int error = ini_parse_string(text.c_str(), OnIniValue, &reader);
  if (error != 0) {
    return Status::Invalid("S3 credentials: " + file +
                           (error > 0 ? " line " + std::to_string(error) + " is not INI syntax"
                                      : std::string(" cannot be parsed")));
  }
  if (!reader.found) {
    return Status::NotFound(
        "S3 credentials: not in the environment (AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY), and no profile [" +
        profile + "] in " + file);
  }
  if (reader.credentials.access_key_id.empty() || reader.credentials.secret_access_key.empty()) {
    return Status::Invalid("S3 credentials: profile [" + profile + "] of " + file +
                           " lacks aws_access_key_id or aws_secret_access_key");
  }
  return reader.credentials;
}

std::string S3Url::ToString() const {
  return prefix.empty() ? "s3://" + bucket : "s3://" + bucket + "/" + prefix;
}

StatusOr<S3Url> ParseS3Url(std::string_view url) {
  constexpr std::string_view kScheme = "s3://";
  const auto invalid = [&](std::string_view why) {
    return Status::Invalid("\"" + std::string(url) +
                           "\" is not an s3://BUCKET[/PREFIX] URL: " + std::string(why));
  };
  if (!url.starts_with(kScheme)) return invalid("it does not start with s3://");
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  const std::string_view bucket = rest.substr(0, slash);
  if (!s3_internal::ValidBucketName(bucket)) {
    return invalid(
        "a bucket name is 3-63 of a-z, 0-9, '.' and '-', starting and ending with a "
        "letter or digit");
  }
  std::string_view prefix = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  while (prefix.starts_with('/')) prefix.remove_prefix(1);
  while (prefix.ends_with('/')) prefix.remove_suffix(1);
  S3Url parsed;
  parsed.bucket = std::string(bucket);
  parsed.prefix = std::string(prefix);
  return parsed;
}

}  // namespace medvfs::store
