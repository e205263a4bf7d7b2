// Small formatting helpers shared by the subcommands' human-readable output.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace medvfs::tools {

// "2026-12-08T01:24:29Z": Unix seconds as an ISO 8601 UTC time.
std::string UtcTime(int64_t seconds);

// "0 B", "512 B", "1.5 KiB", "3.2 GiB" (binary units, one decimal).
std::string HumanBytes(uint64_t bytes);

// Keeps text on one line of a table: tab, newline and carriage return become \t, \n, \r,
// other control characters \xNN. Backslashes double (kDouble), so that the escapes read back
// unambiguously, or stay as they are (kKeep: they separate DICOM values, as dcmdump shows them).
enum class Backslashes { kDouble, kKeep };
std::string EscapeCell(std::string_view text, Backslashes backslashes = Backslashes::kDouble);

// Left-aligned columns separated by two spaces; the last column is not padded.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// Progress of long work ("backup: 120.0 MiB copied") on stderr, one line rewritten in place
// at most every 200 ms; only when stderr is a terminal.
class ProgressLine {
 public:
  ProgressLine();
  void Update(const std::string& text);
  // Erases the line (before the result is printed).
  void Clear();

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace medvfs::tools
