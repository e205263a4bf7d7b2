#include "tests/fs/audit_reader.h"

#include <gtest/gtest.h>

#include "store/archive.h"
#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {

std::vector<store::AuditEntry> ReadAudit(const std::filesystem::path& archive) {
  std::vector<store::AuditEntry> entries;
  auto opened = store::Archive::Open(archive, store::KeySource::Passphrase(kPassphrase),
                                     store::ArchiveOptions{});
  if (!opened.ok()) {
    ADD_FAILURE() << "cannot open the archive: " << opened.status().ToString();
    return entries;
  }
  const store::Status scanned =
      (*opened)->ScanAudit(store::AuditFilter{}, [&entries](const store::AuditEntry& entry) {
        entries.push_back(entry);
        return true;
      });
  if (!scanned.ok()) ADD_FAILURE() << "cannot read the audit log: " << scanned.ToString();
  return entries;
}

std::optional<store::AuditEntry> FindAudit(const std::vector<store::AuditEntry>& entries,
                                           const AuditMatch& match) {
  for (const store::AuditEntry& entry : entries) {
    if (match.op && entry.op != *match.op) continue;
    if (match.uid && entry.uid != *match.uid) continue;
    if (match.path && entry.path != *match.path) continue;
    if (match.result && entry.result != *match.result) continue;
    if (match.program && entry.program != *match.program) continue;
    if (match.version && entry.version != *match.version) continue;
    return entry;
  }
  return std::nullopt;
}

std::string DescribeAudit(const std::vector<store::AuditEntry>& entries) {
  std::string out;
  for (const store::AuditEntry& entry : entries) {
    out += std::to_string(entry.seq) + " " + std::string(store::AuditOpName(entry.op)) + " uid " +
           std::to_string(entry.uid) + " " + entry.program + " " + entry.path;
    if (!entry.target_path.empty()) out += " -> " + entry.target_path;
    out += " v" + std::to_string(entry.version) + " result " + std::to_string(entry.result) + " [" +
           entry.detail + "]\n";
  }
  return out;
}

}  // namespace medvfs::fs_test
