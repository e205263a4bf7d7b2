#include "tools/tag_table.h"

#include <array>
#include <cstdio>

#include "tools/output.h"

namespace medvfs::tools {
namespace {

using store::DicomElement;

// Keeps a value on one line: control characters become \t, \n, \r or \xNN. Backslashes stay
// as they are: they separate DICOM values, and dcmdump prints them so.
std::string EscapeValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20 || u == 0x7f) {
      std::array<char, 8> hex{};
      std::snprintf(hex.data(), hex.size(), "\\x%02x", u);
      out += hex.data();
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

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
                    e.keyword.empty() ? std::string(kNoKeyword) : e.keyword, EscapeValue(e.value)});
  }
  return FormatTable(rows);
}

}  // namespace medvfs::tools
