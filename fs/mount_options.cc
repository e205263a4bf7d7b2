#include "fs/mount_options.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>

namespace medvfs::fs {
namespace {

using store::Status;

// Splits at unescaped commas, removing the escaping backslashes.
std::vector<std::string> SplitOptionList(std::string_view list) {
  std::vector<std::string> out;
  std::string current;
  for (size_t i = 0; i < list.size(); ++i) {
    const char c = list[i];
    if (c == '\\' && i + 1 < list.size()) {
      current += list[++i];
    } else if (c == ',') {
      out.push_back(std::move(current));
      current.clear();
    } else {
      current += c;
    }
  }
  out.push_back(std::move(current));
  return out;
}

bool IsMountHelperOnly(std::string_view option) {
  static constexpr std::array<std::string_view, 10> kDropped = {
      "defaults", "auto",  "noauto", "user",    "users",
      "nouser",   "owner", "group",  "_netdev", "nofail"};
  if (std::find(kDropped.begin(), kDropped.end(), option) != kDropped.end()) return true;
  return option.starts_with("x-") || option.starts_with("user=") ||
         option.starts_with("comment=") || option.starts_with("fsname=") ||
         option.starts_with("subtype=");
}

std::string EscapeOptionValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// The daemon works in / (tools/cmd_mount.cc): a relative name must mean what the user meant.
Status SetDeidConfig(const std::string& file, MountOptions* options) {
  if (file.empty()) return Status::Invalid("deid_config= is empty");
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(file, ec);
  options->deid_config = ec ? file : absolute.lexically_normal().string();
  return Status::Ok();
}

// commit=SECONDS: a decimal number of seconds from 0 to 300, kept in milliseconds.
Status SetCommitInterval(std::string_view value, MountOptions* options) {
  constexpr std::string_view kUsage = "commit= takes seconds from 0 to 300 (e.g. 0.1, 5 or 0)";
  uint64_t whole = 0;
  uint64_t millis = 0;
  size_t i = 0;
  for (; i < value.size() && value[i] >= '0' && value[i] <= '9'; ++i) {
    whole = whole * 10 + static_cast<uint64_t>(value[i] - '0');
    if (whole > 300) return Status::Invalid(std::string(kUsage));
  }
  if (i == 0) return Status::Invalid(std::string(kUsage));
  if (i < value.size()) {
    if (value[i] != '.' || i + 1 == value.size()) return Status::Invalid(std::string(kUsage));
    uint64_t scale = 100;
    for (++i; i < value.size(); ++i) {
      if (value[i] < '0' || value[i] > '9') return Status::Invalid(std::string(kUsage));
      millis += static_cast<uint64_t>(value[i] - '0') * scale;
      scale /= 10;
    }
  }
  const uint64_t total = whole * 1000 + millis;
  if (total > 300'000) return Status::Invalid(std::string(kUsage));
  // A nonzero interval below a millisecond is a millisecond, not "durable at close".
  options->commit_interval_ms = static_cast<uint32_t>(
      total == 0 && value.find_first_of("123456789") != std::string_view::npos ? 1 : total);
  return Status::Ok();
}

// A count or size: digits, then an optional K, M, G or T (powers of 1024).
Status ParseSize(std::string_view name, std::string_view value, uint64_t* out) {
  const std::string usage = std::string(name) + " takes a number, optionally with K, M, G or T";
  uint64_t n = 0;
  size_t i = 0;
  for (; i < value.size() && value[i] >= '0' && value[i] <= '9'; ++i) {
    if (n > (UINT64_MAX - 9) / 10) return Status::Invalid(usage);
    n = n * 10 + static_cast<uint64_t>(value[i] - '0');
  }
  if (i == 0) return Status::Invalid(usage);
  if (i + 1 == value.size()) {
    unsigned shift = 0;
    switch (value[i]) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      case 'T':
      case 't':
        shift = 40;
        break;
      default:
        return Status::Invalid(usage);
    }
    if (n > (UINT64_MAX >> shift)) return Status::Invalid(usage);
    n <<= shift;
  } else if (i != value.size()) {
    return Status::Invalid(usage);
  }
  *out = n;
  return Status::Ok();
}

}  // namespace

Status ParseMountOptions(std::string_view list, MountOptions* options) {
  for (const std::string& option : SplitOptionList(list)) {
    if (option.empty() || IsMountHelperOnly(option)) continue;
    if (option == "ro") {
      options->read_only = true;
    } else if (option == "rw") {
      options->read_only = false;
    } else if (option == "allow_other") {
      options->allow_other = true;
    } else if (option == "default_permissions") {
      // Always on (FuseOptionString): accepted, so that fstab lines that say it keep working.
    } else if (option == "accept_rollback") {
      options->accept_rollback = true;
    } else if (option == "accept_wal_damage") {
      options->accept_wal_damage = true;
    } else if (option == "accept_record_damage") {
      options->accept_record_damage = true;
    } else if (option.starts_with("versions=")) {
      const std::string_view value = std::string_view(option).substr(9);
      if (value == "visible") {
        options->versions_visible = true;
      } else if (value == "hidden") {
        options->versions_visible = false;
      } else {
        return Status::Invalid("versions= takes 'visible' or 'hidden'");
      }
    } else if (option.starts_with("audit_failure=")) {
      const std::string_view value = std::string_view(option).substr(14);
      if (value != "refuse" && value != "allow") {
        return Status::Invalid("audit_failure= takes 'refuse' or 'allow'");
      }
      options->audit_failure_allow = value == "allow";
    } else if (option.starts_with("passphrase_file=")) {
      options->passphrase_file = option.substr(16);
      if (options->passphrase_file.empty()) return Status::Invalid("passphrase_file= is empty");
    } else if (option.starts_with("key_file=")) {
      options->key_file = option.substr(9);
      if (options->key_file.empty()) return Status::Invalid("key_file= is empty");
    } else if (option.starts_with("scratch=")) {
      std::vector<std::string> patterns;
      std::string_view rest = std::string_view(option).substr(8);
      while (!rest.empty()) {
        const size_t colon = rest.find(':');
        const std::string_view pattern = rest.substr(0, colon);
        if (!pattern.empty()) patterns.emplace_back(pattern);
        if (colon == std::string_view::npos) break;
        rest.remove_prefix(colon + 1);
      }
      options->scratch_patterns = std::move(patterns);
    } else if (option.starts_with("commit=")) {
      MEDVFS_RETURN_IF_ERROR(SetCommitInterval(std::string_view(option).substr(7), options));
    } else if (option.starts_with("endpoint=")) {
      options->s3_endpoint = option.substr(9);
      if (options->s3_endpoint.empty()) return Status::Invalid("endpoint= is empty");
    } else if (option.starts_with("region=")) {
      options->s3_region = option.substr(7);
      if (options->s3_region.empty()) return Status::Invalid("region= is empty");
    } else if (option.starts_with("cache=")) {
      if (option.size() == 6) return Status::Invalid("cache= is empty");
      std::error_code ec;
      const std::filesystem::path absolute = std::filesystem::absolute(option.substr(6), ec);
      options->cache_dir = ec ? option.substr(6) : absolute.lexically_normal().string();
    } else if (option.starts_with("cache_size=")) {
      MEDVFS_RETURN_IF_ERROR(
          ParseSize("cache_size=", std::string_view(option).substr(11), &options->cache_bytes));
      if (options->cache_bytes < (uint64_t{16} << 20)) {
        return Status::Invalid("cache_size= must be at least 16M");
      }
    } else if (option.starts_with("local_packs=")) {
      uint64_t n = 0;
      MEDVFS_RETURN_IF_ERROR(ParseSize("local_packs=", std::string_view(option).substr(12), &n));
      if (n > UINT32_MAX) return Status::Invalid("local_packs= is too large");
      options->local_packs = static_cast<uint32_t>(n);
    } else if (option.starts_with("snapshot_interval=")) {
      uint64_t n = 0;
      MEDVFS_RETURN_IF_ERROR(
          ParseSize("snapshot_interval=", std::string_view(option).substr(18), &n));
      if (n < 1 || n > 86400) {
        return Status::Invalid("snapshot_interval= takes seconds from 1 to 86400");
      }
      options->snapshot_interval_s = static_cast<uint32_t>(n);
    } else if (option.starts_with("pack_size=")) {
      MEDVFS_RETURN_IF_ERROR(
          ParseSize("pack_size=", std::string_view(option).substr(10), &options->pack_bytes));
      if (options->pack_bytes < (uint64_t{1} << 20) || options->pack_bytes > (uint64_t{1} << 30)) {
        return Status::Invalid("pack_size= takes 1M to 1G");
      }
    } else if (option.starts_with("replicate=")) {
      const std::string_view value = std::string_view(option).substr(10);
      if (value != "on" && value != "off") return Status::Invalid("replicate= takes 'on' or 'off'");
      options->replicate = value == "on";
    } else if (option == "anon_only") {
      options->anon_only = true;
    } else if (option.starts_with("deid_config=")) {
      MEDVFS_RETURN_IF_ERROR(SetDeidConfig(option.substr(12), options));
    } else {
      options->fuse_options.push_back(option);
    }
  }
  // A research workstation's mount shows de-identified data and must not change the archive.
  if (options->anon_only) options->read_only = true;
  return Status::Ok();
}

std::string FormatCommitInterval(uint32_t milliseconds) {
  std::string out = std::to_string(milliseconds / 1000);
  std::string fraction = std::to_string(1000 + milliseconds % 1000).substr(1);
  while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
  if (!fraction.empty()) out += "." + fraction;
  return out;
}

std::string FuseOptionString(const MountOptions& options, std::string_view archive_path) {
  // The kernel checks permissions on every mount (default_permissions). Only the kernel can:
  // without it, opening a FIFO, socket or device node and connecting to a socket never reach
  // the daemon (fuse_permission() lets them through unasked), so another user could use
  // root's 0600 FIFO. With allow_other the daemon checks again on top (fs/access.h), for the
  // views whose rules differ from the modes they show and to audit what it refuses; what the
  // kernel refuses first never reaches the daemon, so it is not audited.
  std::string out = "default_permissions,";
  out += "fsname=" + EscapeOptionValue(archive_path) + ",subtype=medvfs";
  if (options.read_only) out += ",ro";
  if (options.allow_other) out += ",allow_other";
  if (options.anon_only) out += ",anon_only";
  if (!options.deid_config.empty()) out += ",deid_config=" + EscapeOptionValue(options.deid_config);
  for (const std::string& option : options.fuse_options) {
    out += ',';
    out += EscapeOptionValue(option);
  }
  return out;
}

}  // namespace medvfs::fs
