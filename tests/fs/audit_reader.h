// Reading the audit log of a test archive back (after unmount), for the mount tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "store/audit.h"

namespace medvfs::fs_test {

// Every entry of the archive at `archive` (opened with the fixture's passphrase); adds a test
// failure and returns nothing if it cannot be read.
std::vector<store::AuditEntry> ReadAudit(const std::filesystem::path& archive);

// What FindAudit looks for: every field set must match.
struct AuditMatch {
  std::optional<store::AuditOp> op;
  std::optional<uint32_t> uid;
  std::optional<std::string> path;
  std::optional<int32_t> result;
  std::optional<std::string> program;
  std::optional<uint64_t> version;

  AuditMatch& Op(store::AuditOp v) { return op = v, *this; }
  AuditMatch& Uid(uint32_t v) { return uid = v, *this; }
  AuditMatch& Path(std::string v) { return path = std::move(v), *this; }
  AuditMatch& Result(int32_t v) { return result = v, *this; }
  AuditMatch& Program(std::string v) { return program = std::move(v), *this; }
  AuditMatch& Version(uint64_t v) { return version = v, *this; }
};
// The first entry that matches; nullopt if none does.
std::optional<store::AuditEntry> FindAudit(const std::vector<store::AuditEntry>& entries,
                                           const AuditMatch& match);

// One line per entry ("seq op uid program path -> target v result detail"), for failure
// messages.
std::string DescribeAudit(const std::vector<store::AuditEntry>& entries);

}  // namespace medvfs::fs_test
