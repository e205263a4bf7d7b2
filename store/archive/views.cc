#include "store/views.h"

#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <limits>

#include "store/tsv.h"

namespace medvfs::store {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;

struct BrokenDownTime {
  int year = 1970;
  unsigned month = 1;
  unsigned day = 1;
  int64_t hour = 0;
  int64_t minute = 0;
  int64_t second = 0;
  int64_t nanos = 0;  // 0 ... 999'999'999
};

// Splits nanoseconds since the epoch into UTC calendar fields (proleptic Gregorian).
BrokenDownTime BreakDown(int64_t time_ns) {
  using namespace std::chrono;
  int64_t seconds = time_ns / kNsPerSecond;
  int64_t nanos = time_ns % kNsPerSecond;
  if (nanos < 0) {
    nanos += kNsPerSecond;
    --seconds;
  }
  const sys_seconds tp{std::chrono::seconds{seconds}};
  const sys_days day = floor<days>(tp);
  const year_month_day ymd{day};
  const int64_t in_day = (tp - day).count();
  BrokenDownTime out;
  out.year = static_cast<int>(ymd.year());
  out.month = static_cast<unsigned>(ymd.month());
  out.day = static_cast<unsigned>(ymd.day());
  out.hour = in_day / 3600;
  out.minute = in_day / 60 % 60;
  out.second = in_day % 60;
  out.nanos = nanos;
  return out;
}

// A small cursor over the text being parsed.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}
  bool done() const { return pos_ == text_.size(); }
  char peek() const { return done() ? '\0' : text_[pos_]; }
  bool Consume(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  // Exactly `width` decimal digits.
  bool Digits(size_t width, int64_t* value) {
    if (text_.size() - pos_ < width) return false;
    int64_t v = 0;
    for (size_t i = 0; i < width; ++i) {
      const char c = text_[pos_ + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos_ += width;
    *value = v;
    return true;
  }
  // One or more digits as a fraction of a second, in nanoseconds (digits past the ninth are
  // dropped).
  bool Fraction(int64_t* nanos) {
    size_t count = 0;
    int64_t v = 0;
    while (!done() && peek() >= '0' && peek() <= '9') {
      if (count < 9) v = v * 10 + (peek() - '0');
      ++count;
      ++pos_;
    }
    if (count == 0) return false;
    for (size_t i = count; i < 9; ++i) v *= 10;
    *nanos = v;
    return true;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

// Parses "Z", "+HH:MM", "+HHMM", "+HH" (or '-'); returns the offset east of UTC in seconds.
bool ParseZone(Scanner& s, int64_t* offset_seconds) {
  if (s.Consume('Z') || s.Consume('z')) {
    *offset_seconds = 0;
    return true;
  }
  int64_t sign = 0;
  if (s.Consume('+')) {
    sign = 1;
  } else if (s.Consume('-')) {
    sign = -1;
  } else {
    return false;
  }
  int64_t hours = 0;
  int64_t minutes = 0;
  if (!s.Digits(2, &hours)) return false;
  if (!s.done()) {
    s.Consume(':');
    if (!s.Digits(2, &minutes)) return false;
  }
  if (hours > 23 || minutes > 59) return false;
  *offset_seconds = sign * (hours * 3600 + minutes * 60);
  return true;
}

template <typename T>
bool ParseUnsigned(std::string_view text, T* value) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string FormatSha256Hex(const Sha256Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

namespace {

bool ParseHexDigest(std::string_view text, Sha256Digest* digest) {
  if (text.size() != 64) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    const int hi = nibble(text[2 * i]);
    const int lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*digest)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

constexpr std::array<Operation, 5> kAllOperations = {Operation::kWrite, Operation::kRenameOver,
                                                     Operation::kTruncate, Operation::kRestore,
                                                     Operation::kDeleteMarker};

bool ParseOperation(std::string_view text, Operation* op) {
  for (Operation candidate : kAllOperations) {
    if (OperationName(candidate) == text) {
      *op = candidate;
      return true;
    }
  }
  return false;
}

// The header of the current form, and of the first form (without the DICOM columns), which
// ParseVersionsTsv still reads.
constexpr std::string_view kTsvHeader =
    "number\ttime\tsize\tsha256\tuid\tgid\tpid\tprogram\toperation\tnote\tsop_instance_uid"
    "\ttraceability\tcontent\tremoved_time\tremoved_uid\tremoved_program\tremoved_reason\thold";
constexpr std::string_view kTsvHeaderV2 =
    "number\ttime\tsize\tsha256\tuid\tgid\tpid\tprogram\toperation\tnote\tsop_instance_uid"
    "\ttraceability";
constexpr std::string_view kTsvHeaderV1 =
    "number\ttime\tsize\tsha256\tuid\tgid\tpid\tprogram\toperation\tnote";
constexpr size_t kTsvFields = 18;
constexpr size_t kTsvFieldsV2 = 12;
constexpr size_t kTsvFieldsV1 = 10;

std::vector<std::string_view> SplitTabs(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

Status ParseTsvLine(std::string_view line, size_t line_number, size_t field_count, VersionInfo* v) {
  const auto fields = SplitTabs(line);
  const std::string where = "versions.tsv line " + std::to_string(line_number);
  if (fields.size() != field_count) return Status::Invalid(where + ": wrong number of fields");
  auto time = ParseTimeNs(fields[1]);
  if (!time.ok()) return Status::Invalid(where + ": bad time");
  v->time_ns = *time;
  if (!ParseUnsigned(fields[0], &v->number) || !ParseUnsigned(fields[2], &v->size) ||
      !ParseUnsigned(fields[4], &v->writer_uid) || !ParseUnsigned(fields[5], &v->writer_gid) ||
      !ParseUnsigned(fields[6], &v->writer_pid)) {
    return Status::Invalid(where + ": bad number");
  }
  if (fields[3] == kSha256PendingText) {
    v->sha256_deferred = true;
  } else if (fields[3].empty() && field_count == kTsvFields && fields[12] == "purged") {
    // A purge took the SHA-256 with the content.
  } else if (!ParseHexDigest(fields[3], &v->sha256)) {
    return Status::Invalid(where + ": bad sha256");
  }
  if (!UnescapeTsvField(fields[7], &v->program) || !UnescapeTsvField(fields[9], &v->note)) {
    return Status::Invalid(where + ": bad escape");
  }
  if (!ParseOperation(fields[8], &v->op)) return Status::Invalid(where + ": bad operation");
  if (field_count == kTsvFieldsV1) return Status::Ok();
  if (!UnescapeTsvField(fields[10], &v->sop_instance_uid)) {
    return Status::Invalid(where + ": bad escape");
  }
  if (fields[11] == kSopInstanceUidReusedText) {
    v->sop_instance_uid_reused = true;
  } else if (!fields[11].empty()) {
    return Status::Invalid(where + ": bad traceability");
  }
  if (field_count == kTsvFieldsV2) return Status::Ok();
  if (fields[12] == ContentRemovalName(ContentRemoval::kPruned)) {
    v->removed = ContentRemoval::kPruned;
  } else if (fields[12] == ContentRemovalName(ContentRemoval::kPurged)) {
    v->removed = ContentRemoval::kPurged;
  } else if (!fields[12].empty()) {
    return Status::Invalid(where + ": bad content");
  }
  if (v->content_removed()) {
    auto removed_time = ParseTimeNs(fields[13]);
    if (!removed_time.ok() || !ParseUnsigned(fields[14], &v->removed_by_uid)) {
      return Status::Invalid(where + ": bad removal");
    }
    v->removed_time_ns = *removed_time;
  }
  if (!UnescapeTsvField(fields[15], &v->removed_by_program) ||
      !UnescapeTsvField(fields[16], &v->removed_reason) ||
      !UnescapeTsvField(fields[17], &v->hold)) {
    return Status::Invalid(where + ": bad escape");
  }
  return Status::Ok();
}

}  // namespace

std::string FormatTimeNs(int64_t time_ns) {
  const BrokenDownTime t = BreakDown(time_ns);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02lld:%02lld:%02lld.%09lldZ", t.year, t.month,
                t.day, static_cast<long long>(t.hour), static_cast<long long>(t.minute),
                static_cast<long long>(t.second), static_cast<long long>(t.nanos));
  return buf;
}

std::string FormatTimeForFileName(int64_t time_ns) {
  const BrokenDownTime t = BreakDown(time_ns);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02lld-%02lld-%02lldZ", t.year, t.month, t.day,
                static_cast<long long>(t.hour), static_cast<long long>(t.minute),
                static_cast<long long>(t.second));
  return buf;
}

StatusOr<int64_t> ParseTimeNs(std::string_view text) {
  using namespace std::chrono;
  const Status invalid = Status::Invalid("not an ISO-8601 time");
  Scanner s(text);
  int64_t y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, nanos = 0, offset = 0;
  if (!s.Digits(4, &y) || !s.Consume('-') || !s.Digits(2, &mo) || !s.Consume('-') ||
      !s.Digits(2, &d)) {
    return invalid;
  }
  if (!s.done()) {
    if (!s.Consume('T') && !s.Consume('t') && !s.Consume(' ')) return invalid;
    if (!s.Digits(2, &h)) return invalid;
    // "10:22:03" or the file-name form "10-22-03" (which then needs a zone, like "Z").
    const char sep = s.peek();
    if (sep != ':' && sep != '-') return invalid;
    s.Consume(sep);
    if (!s.Digits(2, &mi)) return invalid;
    if (s.Consume(sep)) {
      if (!s.Digits(2, &sec)) return invalid;
      if ((s.Consume('.') || s.Consume(',')) && !s.Fraction(&nanos)) return invalid;
    }
    if (!s.done() && !ParseZone(s, &offset)) return invalid;
    if (sep == '-' && offset != 0) return invalid;
    if (!s.done()) return invalid;
  }
  // 23:59:60 (a leap second) is accepted and folds into the next minute, as timegm does.
  if (h > 23 || mi > 59 || sec > 60) return invalid;
  const year_month_day ymd{year{static_cast<int>(y)}, month{static_cast<unsigned>(mo)},
                           day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return invalid;
  const int64_t days_since_epoch = sys_days{ymd}.time_since_epoch().count();
  const int64_t seconds = days_since_epoch * 86400 + h * 3600 + mi * 60 + sec - offset;
  // Nanoseconds in an int64_t reach from 1677 to 2262; four-digit years go beyond that.
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / kNsPerSecond - 1;
  if (seconds > kMaxSeconds || seconds < -kMaxSeconds) {
    return Status::Invalid("time out of range");
  }
  return seconds * kNsPerSecond + nanos;
}

std::string_view NameExtension(std::string_view name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == name.size()) return {};
  return name.substr(dot);
}

std::string VersionFileName(const VersionInfo& version, std::string_view name) {
  // Built by appending: GCC 12's -Wrestrict misfires on "literal" + std::string&& at -O2.
  std::string out = "v";
  out += std::to_string(version.number);
  out += '_';
  out += FormatTimeForFileName(version.time_ns);
  out += NameExtension(name);
  return out;
}

std::optional<uint64_t> ParseVersionFileName(std::string_view entry) {
  if (entry.size() < 2 || entry[0] != 'v') return std::nullopt;
  const size_t end = entry.find('_');
  const std::string_view digits = entry.substr(1, end == std::string_view::npos ? end : end - 1);
  if (digits.empty() || digits[0] == '0') return std::nullopt;  // "v0", "v03", "v_..."
  uint64_t number = 0;
  if (!ParseUnsigned(digits, &number)) return std::nullopt;  // signs, overflow, non-digits
  return number;
}

std::optional<int64_t> ParseTimeDirName(std::string_view entry) {
  if (entry.empty() || entry[0] != '@') return std::nullopt;
  auto time = ParseTimeNs(entry.substr(1));
  if (!time.ok()) return std::nullopt;
  return *time;
}

std::string FormatVersionSha256(const VersionInfo& version) {
  if (version.sha256_deferred) return std::string(kSha256PendingText);
  if (version.removed == ContentRemoval::kPurged) return std::string();
  return FormatSha256Hex(version.sha256);
}

std::string FormatVersionsTsv(const std::vector<VersionInfo>& versions) {
  std::string out(kTsvHeader);
  out += '\n';
  for (const VersionInfo& v : versions) {
    out += std::to_string(v.number);
    out += '\t';
    out += FormatTimeNs(v.time_ns);
    out += '\t';
    out += std::to_string(v.size);
    out += '\t';
    out += FormatVersionSha256(v);
    out += '\t';
    out += std::to_string(v.writer_uid);
    out += '\t';
    out += std::to_string(v.writer_gid);
    out += '\t';
    out += std::to_string(v.writer_pid);
    out += '\t';
    AppendTsvField(v.program, &out);
    out += '\t';
    out += OperationName(v.op);
    out += '\t';
    AppendTsvField(v.note, &out);
    out += '\t';
    AppendTsvField(v.sop_instance_uid, &out);
    out += '\t';
    if (v.sop_instance_uid_reused) out += kSopInstanceUidReusedText;
    out += '\t';
    out += ContentRemovalName(v.removed);
    out += '\t';
    if (v.content_removed()) {
      out += FormatTimeNs(v.removed_time_ns);
      out += '\t';
      out += std::to_string(v.removed_by_uid);
    } else {
      out += '\t';
    }
    out += '\t';
    AppendTsvField(v.removed_by_program, &out);
    out += '\t';
    AppendTsvField(v.removed_reason, &out);
    out += '\t';
    AppendTsvField(v.hold, &out);
    out += '\n';
  }
  return out;
}

StatusOr<std::vector<VersionInfo>> ParseVersionsTsv(std::string_view tsv) {
  std::vector<VersionInfo> versions;
  size_t line_number = 0;
  bool header_seen = false;
  size_t field_count = kTsvFields;
  while (!tsv.empty()) {
    const size_t newline = tsv.find('\n');
    std::string_view line = tsv.substr(0, newline);
    tsv = newline == std::string_view::npos ? std::string_view() : tsv.substr(newline + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!header_seen) {
      if (line == kTsvHeaderV1) {
        field_count = kTsvFieldsV1;
      } else if (line == kTsvHeaderV2) {
        field_count = kTsvFieldsV2;
      } else if (line != kTsvHeader) {
        return Status::Invalid("versions.tsv: unexpected header");
      }
      header_seen = true;
      continue;
    }
    if (line.empty()) continue;
    VersionInfo v;
    MEDVFS_RETURN_IF_ERROR(ParseTsvLine(line, line_number, field_count, &v));
    versions.push_back(std::move(v));
  }
  if (!header_seen) return Status::Invalid("versions.tsv: empty");
  return versions;
}

// Here rather than in archive_lifecycle.cc: views.cc links without the archive's engine (the
// records fuzzer parses versions.tsv).
std::string_view ContentRemovalName(ContentRemoval removal) {
  switch (removal) {
    case ContentRemoval::kPruned:
      return "pruned";
    case ContentRemoval::kPurged:
      return "purged";
    case ContentRemoval::kNone:
      break;
  }
  return "";
}

std::string_view RetentionModeName(RetentionMode mode) {
  return mode == RetentionMode::kCompliance ? "compliance" : "governance";
}

std::string_view OperationName(Operation op) {
  switch (op) {
    case Operation::kWrite:
      return "write";
    case Operation::kRenameOver:
      return "rename-over";
    case Operation::kTruncate:
      return "truncate";
    case Operation::kRestore:
      return "restore";
    case Operation::kDeleteMarker:
      return "delete";
  }
  return "unknown";
}

}  // namespace medvfs::store
