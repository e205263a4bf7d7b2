// Small formatting helpers shared by the subcommands' human-readable output.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace medvfs::tools {

// "0 B", "512 B", "1.5 KiB", "3.2 GiB" (binary units, one decimal).
std::string HumanBytes(uint64_t bytes);

// Makes a free-text field fit one table cell: tabs, newlines and other control characters
// become escapes (\t, \n, \x1b), backslashes double.
std::string EscapeCell(std::string_view text);

// Left-aligned columns separated by two spaces; the last column is not padded.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace medvfs::tools
