#include "tools/tag_table.h"

#include <array>
#include <cstdio>

#include "tools/output.h"

namespace medvfs::tools {

using store::DicomElement;

std::string FormatTag(uint16_t group, uint16_t element) {
  std::array<char, 16> text{};
  std::snprintf(text.data(), text.size(), "(%04x,%04x)", group, element);
  return text.data();
}

std::string FormatTagTable(const std::vector<DicomElement>& elements) {
  std::vector<std::vector<std::string>> rows;
  rows.reserve(elements.size());
  for (const DicomElement& e : elements) {
    rows.push_back({FormatTag(e.group, e.element), e.vr.empty() ? "??" : e.vr,
                    e.keyword.empty() ? std::string(kNoKeyword) : e.keyword,
                    EscapeCell(e.value, Backslashes::kKeep)});
  }
  return FormatTable(rows);
}

}  // namespace medvfs::tools
