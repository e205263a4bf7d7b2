#include "tools/tag_table.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "store/dicom_dictionary.h"
#include "tools/output.h"

namespace medvfs::tools {
namespace {

using store::DicomElement;
using Json = nlohmann::json;

std::optional<uint32_t> ParseTagKey(std::string_view key) {
  if (key.size() != 8) return std::nullopt;
  uint32_t tag = 0;
  for (char c : key) {
    int digit = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                                                            : -1;
    if (digit < 0) return std::nullopt;
    tag = tag * 16 + static_cast<uint32_t>(digit);
  }
  return tag;
}

std::string PersonNameText(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (!value.is_object()) return "";
  std::string text;
  int groups = 0;
  for (const char* group : {"Alphabetic", "Ideographic", "Phonetic"}) {
    auto it = value.find(group);
    std::string part = it != value.end() && it->is_string() ? it->get<std::string>() : "";
    if (++groups > 1) text += '=';
    text += part;
  }
  while (!text.empty() && text.back() == '=') text.pop_back();
  return text;
}

std::string AttributeTagText(const Json& value) {
  if (!value.is_string()) return value.dump();
  std::optional<uint32_t> tag = ParseTagKey(value.get<std::string>());
  if (!tag) return value.get<std::string>();
  return FormatTag(static_cast<uint16_t>(*tag >> 16), static_cast<uint16_t>(*tag & 0xffff));
}

std::string OneValueText(std::string_view vr, const Json& value) {
  if (value.is_null()) return "";
  if (vr == "PN") return PersonNameText(value);
  if (vr == "AT") return AttributeTagText(value);
  if (value.is_string()) return value.get<std::string>();
  return value.dump();  // numbers: shortest text that reads back the same
}

size_t Base64Bytes(std::string_view text) {
  size_t padding = 0;
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
    ++padding;
  }
  return (text.size() + padding) / 4 * 3 - padding;
}

std::string ValueText(std::string_view vr, const Json& attribute) {
  if (auto uri = attribute.find("BulkDataURI"); uri != attribute.end()) return "(bulk data)";
  if (auto inline_binary = attribute.find("InlineBinary"); inline_binary != attribute.end()) {
    std::string base64 = inline_binary->is_string() ? inline_binary->get<std::string>() : "";
    return "(" + std::to_string(Base64Bytes(base64)) + " bytes)";
  }
  auto values = attribute.find("Value");
  if (vr == "SQ") {
    size_t items = values != attribute.end() && values->is_array() ? values->size() : 0;
    return "(Sequence with " + std::to_string(items) + " items)";
  }
  if (values == attribute.end() || !values->is_array()) return "";
  std::string text;
  for (size_t i = 0; i < values->size(); ++i) {
    if (i > 0) text += '\\';
    text += OneValueText(vr, (*values)[i]);
  }
  return text;
}

// The text of a `tags/` file without its final newline.
std::string FileText(const KeywordFile& file) {
  std::string_view value = file.value;
  if (!value.empty() && value.back() == '\n') value.remove_suffix(1);
  return std::string(value);
}

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

store::StatusOr<std::vector<DicomElement>> ElementsFromDicomJson(std::string_view json) {
  Json parsed = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return store::Status::Invalid("dicom.json is not a JSON object");
  std::vector<DicomElement> elements;
  for (const auto& [key, attribute] : parsed.items()) {
    std::optional<uint32_t> tag = ParseTagKey(key);
    if (!tag || !attribute.is_object()) {
      return store::Status::Invalid("dicom.json has an entry that is not a DICOM attribute");
    }
    DicomElement element;
    element.group = static_cast<uint16_t>(*tag >> 16);
    element.element = static_cast<uint16_t>(*tag & 0xffff);
    auto vr = attribute.find("vr");
    element.vr = vr != attribute.end() && vr->is_string() ? vr->get<std::string>() : "";
    element.value = ValueText(element.vr, attribute);
    elements.push_back(std::move(element));
  }
  std::sort(elements.begin(), elements.end(), [](const DicomElement& a, const DicomElement& b) {
    return std::pair(a.group, a.element) < std::pair(b.group, b.element);
  });
  return elements;
}

void AssignKeywords(const std::vector<KeywordFile>& files, std::vector<DicomElement>* elements) {
  std::map<std::string, const KeywordFile*, std::less<>> file_of;  // the first of each keyword
  for (const KeywordFile& file : files) file_of.try_emplace(file.keyword, &file);
  // A keyword's file holds the value of the first element with that keyword (the store's
  // DicomTags::Find), the same in both lists: both are in tag order.
  std::set<std::string, std::less<>> named;
  for (DicomElement& element : *elements) {
    element.keyword = store::DictionaryKeyword(element.group, element.element);
    if (element.keyword.empty()) continue;
    auto file = file_of.find(element.keyword);
    if (file != file_of.end() && named.insert(element.keyword).second) {
      element.value = FileText(*file->second);
    }
  }
  std::vector<DicomElement> meta;
  for (const auto& [keyword, file] : file_of) {
    std::optional<store::DictionaryEntry> entry = store::DictionaryEntryOf(keyword);
    if (!entry || entry->group != 0x0002) continue;
    meta.push_back({entry->group, entry->element, keyword, entry->vr, FileText(*file)});
  }
  std::sort(meta.begin(), meta.end(),
            [](const DicomElement& a, const DicomElement& b) { return a.element < b.element; });
  elements->insert(elements->begin(), meta.begin(), meta.end());
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
