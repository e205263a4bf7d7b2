// The audit log's operation names, filters, encoding, hash chain and side files.
#include <time.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <utility>

#include "store/archive/audit_chain.h"

namespace medvfs::store {
namespace {

constexpr uint8_t kAuditEntryFormat = 1;
constexpr uint8_t kAuditRecordFormat = 1;
constexpr uint8_t kHighWaterFormat = 1;
constexpr char kHighWaterMagic[] = "medvfs-high-water";

constexpr std::array<std::pair<AuditOp, std::string_view>, 42> kOpNames{{
    {AuditOp::kOpenRead, "open-read"},
    {AuditOp::kOpenWrite, "open-write"},
    {AuditOp::kCommit, "commit"},
    {AuditOp::kCreate, "create"},
    {AuditOp::kMkdir, "mkdir"},
    {AuditOp::kSymlink, "symlink"},
    {AuditOp::kLink, "link"},
    {AuditOp::kRename, "rename"},
    {AuditOp::kUnlink, "unlink"},
    {AuditOp::kRmdir, "rmdir"},
    {AuditOp::kRestore, "restore"},
    {AuditOp::kNote, "note"},
    {AuditOp::kChmod, "chmod"},
    {AuditOp::kChown, "chown"},
    {AuditOp::kTruncate, "truncate"},
    {AuditOp::kSetTimes, "set-times"},
    {AuditOp::kSetXattr, "set-xattr"},
    {AuditOp::kRemoveXattr, "remove-xattr"},
    {AuditOp::kReadVersion, "read-version"},
    {AuditOp::kReadMeta, "read-meta"},
    {AuditOp::kCliRead, "cli-read"},
    {AuditOp::kMount, "mount"},
    {AuditOp::kUnmount, "unmount"},
    {AuditOp::kUnlockFailed, "unlock-failed"},
    {AuditOp::kRollbackAccepted, "rollback-accepted"},
    {AuditOp::kPasswd, "passwd"},
    {AuditOp::kVerify, "verify"},
    {AuditOp::kAuditRead, "audit-read"},
    {AuditOp::kListDir, "list-dir"},
    {AuditOp::kBackup, "backup"},
    {AuditOp::kRestoreBackup, "restore-backup"},
    {AuditOp::kDicomReceive, "dicom-receive"},
    {AuditOp::kWalDamageAccepted, "wal-damage-accepted"},
    {AuditOp::kRecordDamageAccepted, "record-damage-accepted"},
    {AuditOp::kDamageFound, "damage-found"},
    {AuditOp::kGc, "gc"},
    {AuditOp::kPrune, "prune"},
    {AuditOp::kPurge, "purge"},
    {AuditOp::kHold, "hold"},
    {AuditOp::kHoldRelease, "hold-release"},
    {AuditOp::kRetention, "retention"},
    {AuditOp::kRemote, "remote"},
}};

void PutU64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutSigned(std::string* out, int64_t v) {
  PutVarint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}

void PutBytes(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

// Reads what the Put* functions wrote; any short or malformed input makes ok() false.
class Cursor {
 public:
  explicit Cursor(std::string_view in) : in_(in) {}
  uint8_t U8() {
    if (!Need(1)) return 0;
    const auto v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return v;
  }
  uint64_t U64() {
    if (!Need(8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in_[static_cast<size_t>(i)]);
    in_.remove_prefix(8);
    return v;
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = U8();
      if (!ok_) return 0;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok_ = false;
    return 0;
  }
  uint32_t U32() {
    const uint64_t v = Varint();
    if (v > UINT32_MAX) ok_ = false;
    return static_cast<uint32_t>(v);
  }
  int64_t Signed() {
    const uint64_t v = Varint();
    return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
  }
  std::string Bytes() {
    const uint64_t n = Varint();
    if (!Need(n)) return {};
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  void Mac(AuditMac* mac) {
    if (!Need(mac->size())) return;
    std::memcpy(mac->data(), in_.data(), mac->size());
    in_.remove_prefix(mac->size());
  }
  // True when everything was read and nothing is left over.
  bool Done() const { return ok_ && in_.empty(); }

 private:
  bool Need(uint64_t n) {
    if (!ok_ || in_.size() < n) ok_ = false;
    return ok_;
  }
  std::string_view in_;
  bool ok_ = true;
};

// The program name as a single token: no blanks or control characters, at most 64 bytes.
std::string SafeProgram(std::string_view program) {
  std::string out;
  for (char c : program.substr(0, 64)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u <= ' ' || u == 0x7f ? '_' : c);
  }
  return out.empty() ? "-" : out;
}

}  // namespace

std::string_view AuditOpName(AuditOp op) {
  for (const auto& [value, name] : kOpNames) {
    if (value == op) return name;
  }
  return "unknown";
}

std::optional<AuditOp> ParseAuditOpName(std::string_view name) {
  for (const auto& [value, op_name] : kOpNames) {
    if (op_name == name) return value;
  }
  return std::nullopt;
}

bool AuditFilterMatches(const AuditFilter& filter, const AuditEntry& entry) {
  if (filter.since_ns && entry.time_ns < *filter.since_ns) return false;
  if (filter.until_ns && entry.time_ns >= *filter.until_ns) return false;
  if (filter.uid && entry.uid != *filter.uid) return false;
  if (filter.path) {
    std::string_view want = *filter.path;
    while (want.size() > 1 && want.back() == '/') want.remove_suffix(1);
    auto under = [&](std::string_view path) {
      if (path.empty()) return false;
      if (want == "/" || path == want) return true;
      return path.size() > want.size() && path.starts_with(want) && path[want.size()] == '/';
    };
    if (!under(entry.path) && !under(entry.target_path)) return false;
  }
  return true;
}

std::string EncodeAuditEntry(const AuditEntry& e) {
  std::string out(1, static_cast<char>(kAuditEntryFormat));
  PutU64(&out, e.seq);
  PutSigned(&out, e.time_ns);
  PutVarint(&out, e.uid);
  PutVarint(&out, e.gid);
  PutVarint(&out, e.pid);
  PutBytes(&out, e.program);
  out.push_back(static_cast<char>(e.op));
  PutBytes(&out, e.path);
  PutBytes(&out, e.target_path);
  PutVarint(&out, e.version);
  PutSigned(&out, e.result);
  PutBytes(&out, e.detail);
  return out;
}

Status DecodeAuditEntry(std::string_view in, AuditEntry* e) {
  Cursor c(in);
  if (c.U8() != kAuditEntryFormat) return Status::Corruption("unknown audit entry format");
  e->seq = c.U64();
  e->time_ns = c.Signed();
  e->uid = c.U32();
  e->gid = c.U32();
  e->pid = c.U32();
  e->program = c.Bytes();
  e->op = static_cast<AuditOp>(c.U8());
  e->path = c.Bytes();
  e->target_path = c.Bytes();
  e->version = c.Varint();
  const int64_t result = c.Signed();
  e->detail = c.Bytes();
  if (!c.Done() || result < INT32_MIN || result > INT32_MAX) {
    return Status::Corruption("malformed audit entry");
  }
  e->result = static_cast<int32_t>(result);
  return Status::Ok();
}

AuditMac AuditChainMac(const KeyedHmacSha256& chain_hmac, const AuditMac& previous,
                       std::string_view encoded_entry) {
  std::string input(reinterpret_cast<const char*>(previous.data()), previous.size());
  input.append(encoded_entry);
  return chain_hmac.Mac(input);
}

std::string Encode(const AuditRecord& r) {
  std::string out(1, static_cast<char>(kAuditRecordFormat));
  PutBytes(&out, r.encoded_entry);
  out.append(reinterpret_cast<const char*>(r.mac.data()), r.mac.size());
  return out;
}

std::string Encode(const AuditHeadRecord& r) {
  std::string out(1, static_cast<char>(kAuditRecordFormat));
  PutU64(&out, r.seq);
  out.append(reinterpret_cast<const char*>(r.mac.data()), r.mac.size());
  return out;
}

Status Decode(std::string_view in, AuditRecord* r) {
  Cursor c(in);
  const bool known = c.U8() == kAuditRecordFormat;
  r->encoded_entry = c.Bytes();
  c.Mac(&r->mac);
  if (!known || !c.Done()) return Status::Corruption("malformed audit record");
  return Status::Ok();
}

Status Decode(std::string_view in, AuditHeadRecord* r) {
  Cursor c(in);
  const bool known = c.U8() == kAuditRecordFormat;
  r->seq = c.U64();
  c.Mac(&r->mac);
  if (!known || !c.Done()) return Status::Corruption("malformed audit head record");
  return Status::Ok();
}

namespace {

AuditMac HighWaterMac(const SecretKey& key, std::string_view archive_id,
                      const HighWaterMark& mark) {
  std::string input(kHighWaterMagic);
  input.push_back('\0');
  PutBytes(&input, archive_id);
  PutU64(&input, mark.seq);
  input.append(reinterpret_cast<const char*>(mark.entry_mac.data()), mark.entry_mac.size());
  return HmacSha256(key, input);
}

}  // namespace

// Text, so that an admin can read it:
//   "medvfs-high-water 1 <seq> <hex entry MAC> <hex file MAC>\n".
std::string EncodeHighWater(const SecretKey& key, std::string_view archive_id,
                            const HighWaterMark& mark) {
  return std::string(kHighWaterMagic) + " " + std::to_string(kHighWaterFormat) + " " +
         std::to_string(mark.seq) + " " + HexEncode(mark.entry_mac) + " " +
         HexEncode(HighWaterMac(key, archive_id, mark)) + "\n";
}

Status DecodeHighWater(const SecretKey& key, std::string_view archive_id, std::string_view in,
                       HighWaterMark* mark) {
  Status bad = Status::Corruption("the high-water mark file is malformed");
  const std::string prefix =
      std::string(kHighWaterMagic) + " " + std::to_string(kHighWaterFormat) + " ";
  if (!in.starts_with(prefix) || !in.ends_with("\n")) return bad;
  in.remove_prefix(prefix.size());
  in.remove_suffix(1);
  const size_t space = in.find(' ');
  const size_t second = space == std::string_view::npos ? space : in.find(' ', space + 1);
  if (second == std::string_view::npos) return bad;
  HighWaterMark value;
  const std::string_view digits = in.substr(0, space);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value.seq);
  if (ec != std::errc() || end != digits.data() + digits.size()) return bad;
  auto entry_mac = HexDecode(in.substr(space + 1, second - space - 1));
  auto stored = HexDecode(in.substr(second + 1));
  if (!entry_mac.ok() || entry_mac->size() != 32 || !stored.ok() || stored->size() != 32) {
    return bad;
  }
  std::memcpy(value.entry_mac.data(), entry_mac->data(), 32);
  const AuditMac expected = HighWaterMac(key, archive_id, value);
  // Constant-time comparison.
  uint8_t diff = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<uint8_t>(expected[i] ^ static_cast<uint8_t>((*stored)[i]));
  }
  if (diff != 0) return Status::Corruption("the high-water mark file fails its MAC");
  *mark = value;
  return Status::Ok();
}

std::string FormatFailedUnlock(int64_t time_ns, uint32_t uid, uint32_t gid, uint32_t pid,
                               std::string_view program) {
  int64_t whole = time_ns / 1'000'000'000;
  int64_t nanos = time_ns % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    whole -= 1;
  }
  const auto seconds = static_cast<time_t>(whole);
  tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[96];
  std::snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<long long>(nanos));
  return std::string(stamp) + " uid=" + std::to_string(uid) + " gid=" + std::to_string(gid) +
         " pid=" + std::to_string(pid) + " program=" + SafeProgram(program) + "\n";
}

bool ParseFailedUnlock(std::string_view line, AuditEvent* event) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  long long nanos = 0;
  unsigned uid = 0, gid = 0, pid = 0;
  char program[65] = {};
  const std::string text(line);
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%9lldZ uid=%u gid=%u pid=%u program=%64s",
                  &year, &month, &day, &hour, &minute, &second, &nanos, &uid, &gid, &pid,
                  program) != 11) {
    return false;
  }
  tm utc{};
  utc.tm_year = year - 1900;
  utc.tm_mon = month - 1;
  utc.tm_mday = day;
  utc.tm_hour = hour;
  utc.tm_min = minute;
  utc.tm_sec = second;
  const time_t seconds = timegm(&utc);
  // Only times that nanoseconds in an int64_t can hold (1678 to 2261): no overflow below.
  // (Found by tests/fuzz/fuzz_records: a year "026" overflowed.)
  constexpr int64_t kMaxSeconds = INT64_MAX / 1'000'000'000 - 1;
  if (seconds > kMaxSeconds || seconds < -kMaxSeconds) return false;
  *event = AuditEvent{};
  event->time_ns = static_cast<int64_t>(seconds) * 1'000'000'000 + nanos;
  event->uid = uid;
  event->gid = gid;
  event->pid = pid;
  event->program = program;
  event->op = AuditOp::kUnlockFailed;
  return true;
}

}  // namespace medvfs::store
