// tags.tsv (store/dicom_files.h): a version's top-level elements as a tab-separated table.
#include <array>
#include <cstdio>

#include "store/dicom_files.h"
#include "store/tsv.h"

namespace medvfs::store {
namespace {

constexpr size_t kFields = 4;

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool ParseHex16(std::string_view text, uint16_t* value) {
  uint32_t v = 0;
  for (char c : text) {
    const int digit = HexDigit(c);
    if (digit < 0) return false;
    v = v * 16 + static_cast<uint32_t>(digit);
  }
  *value = static_cast<uint16_t>(v);
  return true;
}

// "(0010,0020)", as FormatTagsTsv writes it.
bool ParseTag(std::string_view text, DicomElement* element) {
  return text.size() == 11 && text.front() == '(' && text[5] == ',' && text.back() == ')' &&
         ParseHex16(text.substr(1, 4), &element->group) &&
         ParseHex16(text.substr(6, 4), &element->element);
}

Status LineError(size_t line_number, std::string_view what) {
  return Status::Invalid("tags.tsv line " + std::to_string(line_number) + ": " + std::string(what));
}

}  // namespace

std::string FormatTagsTsv(const std::vector<DicomElement>& elements) {
  std::string out(kTagsTsvHeader);
  for (const DicomElement& e : elements) {
    std::array<char, 16> tag{};
    std::snprintf(tag.data(), tag.size(), "(%04x,%04x)", e.group, e.element);
    out += tag.data();
    out += '\t';
    AppendTsvField(e.vr, &out);
    out += '\t';
    AppendTsvField(e.keyword, &out);
    out += '\t';
    AppendTsvField(e.value, &out);
    out += '\n';
  }
  return out;
}

StatusOr<std::vector<DicomElement>> ParseTagsTsv(std::string_view tsv) {
  if (!tsv.starts_with(kTagsTsvHeader)) return Status::Invalid("tags.tsv has no header line");
  tsv.remove_prefix(kTagsTsvHeader.size());
  std::vector<DicomElement> elements;
  size_t line_number = 1;
  while (!tsv.empty()) {
    ++line_number;
    const size_t end = tsv.find('\n');
    if (end == std::string_view::npos) return LineError(line_number, "no final newline");
    std::string_view line = tsv.substr(0, end);
    tsv.remove_prefix(end + 1);
    std::array<std::string_view, kFields> fields;
    for (size_t i = 0; i < kFields; ++i) {
      const size_t tab = line.find('\t');
      if ((tab == std::string_view::npos) != (i + 1 == kFields)) {
        return LineError(line_number, "not 4 tab-separated fields");
      }
      fields[i] = line.substr(0, tab);
      line = tab == std::string_view::npos ? std::string_view() : line.substr(tab + 1);
    }
    DicomElement element;
    if (!ParseTag(fields[0], &element)) return LineError(line_number, "not a tag");
    if (!UnescapeTsvField(fields[1], &element.vr) ||
        !UnescapeTsvField(fields[2], &element.keyword) ||
        !UnescapeTsvField(fields[3], &element.value)) {
      return LineError(line_number, "a bad escape");
    }
    elements.push_back(std::move(element));
  }
  return elements;
}

}  // namespace medvfs::store
