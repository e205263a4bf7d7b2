#include "tools/tag_table.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include <nlohmann/json.hpp>

#include "tools/output.h"

namespace medvfs::tools {
namespace {

using store::DicomElement;
using Json = nlohmann::json;

// Fewer sure pairs than this say nothing about the order of the `tags/` listing.
constexpr size_t kMinPairsForOrder = 3;

bool IsNumericVr(std::string_view vr) {
  static constexpr std::array<std::string_view, 10> kNumeric = {"IS", "DS", "FL", "FD", "US",
                                                                "SS", "UL", "SL", "UV", "SV"};
  return std::find(kNumeric.begin(), kNumeric.end(), vr) != kNumeric.end();
}

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

std::string_view TrimEnd(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.remove_suffix(1);
  return text;
}

std::vector<std::string_view> SplitValues(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find('\\', start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::optional<double> ParseNumber(std::string_view text) {
  std::string copy(text);
  while (!copy.empty() && copy.front() == ' ') copy.erase(copy.begin());
  while (!copy.empty() && copy.back() == ' ') copy.pop_back();
  if (copy.empty()) return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size()) return std::nullopt;
  return value;
}

// Equal lists of numbers, to a relative 1e-6 (FL values print with fewer digits than JSON).
bool SameNumbers(std::string_view a, std::string_view b) {
  std::vector<std::string_view> xs = SplitValues(a);
  std::vector<std::string_view> ys = SplitValues(b);
  if (xs.size() != ys.size()) return false;
  for (size_t i = 0; i < xs.size(); ++i) {
    std::optional<double> x = ParseNumber(xs[i]);
    std::optional<double> y = ParseNumber(ys[i]);
    if (!x || !y) {
      if (TrimEnd(xs[i]) != TrimEnd(ys[i])) return false;
      continue;
    }
    double scale = std::max({1.0, std::fabs(*x), std::fabs(*y)});
    if (std::fabs(*x - *y) > 1e-6 * scale) return false;
  }
  return true;
}

bool SameIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool LooksLikeByteCount(std::string_view text) {
  return text.size() > 8 && text.front() == '(' && text.ends_with(" bytes)") &&
         std::isdigit(static_cast<unsigned char>(text[1]));
}

// Whether the `tags/` file may hold the value of this element.
bool Fits(const KeywordFile& file, const DicomElement& element) {
  if (element.group % 2 == 1 || element.element == 0) return false;  // private, group length
  // The JSON model is UTF-8, so its SpecificCharacterSet is "ISO_IR 192" whatever the file
  // said; tags/ keeps the file's value. The tag is fixed by the standard.
  if (file.keyword == "SpecificCharacterSet") return element.group == 8 && element.element == 5;
  std::string_view value = TrimEnd(file.value);
  std::string_view shown = TrimEnd(element.value);
  if (value == shown) return true;
  if (shown == "(bulk data)") return LooksLikeByteCount(value);
  if (IsNumericVr(element.vr)) return SameNumbers(value, shown);
  if (element.vr == "AT") return SameIgnoringCase(value, shown);
  return false;
}

// Pairs elements [e0, e1) with files [f0, f1) in order, as many as fit (longest common
// subsequence); pairs are written to file_of.
void PairInOrder(const std::vector<std::vector<char>>& fit, size_t e0, size_t e1, size_t f0,
                 size_t f1, std::vector<int>* file_of) {
  if (e0 >= e1 || f0 >= f1) return;
  const size_t rows = e1 - e0;
  const size_t cols = f1 - f0;
  // longest[i][j]: the most pairs among elements e0+i.. and files f0+j..
  std::vector<std::vector<uint32_t>> longest(rows + 1, std::vector<uint32_t>(cols + 1, 0));
  for (size_t i = rows; i-- > 0;) {
    for (size_t j = cols; j-- > 0;) {
      uint32_t best = std::max(longest[i + 1][j], longest[i][j + 1]);
      if (fit[f0 + j][e0 + i]) best = std::max(best, longest[i + 1][j + 1] + 1);
      longest[i][j] = best;
    }
  }
  size_t i = 0;
  size_t j = 0;
  while (i < rows && j < cols) {
    if (fit[f0 + j][e0 + i] && longest[i][j] == longest[i + 1][j + 1] + 1) {
      (*file_of)[e0 + i] = static_cast<int>(f0 + j);
      ++i;
      ++j;
    } else if (longest[i + 1][j] >= longest[i][j + 1]) {
      ++i;
    } else {
      ++j;
    }
  }
}

// The sure pairs: a file that fits one element only, which fits no other file.
std::vector<int> SurePairs(const std::vector<std::vector<char>>& fit, size_t elements) {
  std::vector<int> file_of(elements, -1);
  std::vector<size_t> files_fitting(elements, 0);
  for (const std::vector<char>& row : fit) {
    for (size_t i = 0; i < elements; ++i) files_fitting[i] += row[i] ? 1 : 0;
  }
  for (size_t j = 0; j < fit.size(); ++j) {
    size_t count = static_cast<size_t>(std::count(fit[j].begin(), fit[j].end(), char{1}));
    if (count != 1) continue;
    size_t i =
        static_cast<size_t>(std::find(fit[j].begin(), fit[j].end(), char{1}) - fit[j].begin());
    if (files_fitting[i] == 1) file_of[i] = static_cast<int>(j);
  }
  return file_of;
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
  const size_t count = elements->size();
  std::vector<std::vector<char>> fit(files.size(), std::vector<char>(count, 0));
  for (size_t j = 0; j < files.size(); ++j) {
    for (size_t i = 0; i < count; ++i) fit[j][i] = Fits(files[j], (*elements)[i]) ? 1 : 0;
  }
  std::vector<int> file_of = SurePairs(fit, count);

  // The sure pairs in element (tag) order; is the listing in that order too?
  std::vector<size_t> paired;
  for (size_t i = 0; i < count; ++i) {
    if (file_of[i] >= 0) paired.push_back(i);
  }
  bool in_order = paired.size() >= kMinPairsForOrder;
  for (size_t k = 1; in_order && k < paired.size(); ++k) {
    in_order = file_of[paired[k - 1]] < file_of[paired[k]];
  }
  if (in_order) {
    size_t e0 = 0;
    size_t f0 = 0;
    for (size_t k = 0; k <= paired.size(); ++k) {
      size_t e1 = k < paired.size() ? paired[k] : count;
      size_t f1 = k < paired.size() ? static_cast<size_t>(file_of[paired[k]]) : files.size();
      PairInOrder(fit, e0, e1, f0, f1, &file_of);
      e0 = e1 + 1;
      f0 = f1 + 1;
    }
  }
  for (size_t i = 0; i < count; ++i) {
    if (file_of[i] < 0) continue;
    const KeywordFile& file = files[static_cast<size_t>(file_of[i])];
    (*elements)[i].keyword = file.keyword;
    std::string_view value = file.value;
    if (!value.empty() && value.back() == '\n') value.remove_suffix(1);
    (*elements)[i].value = std::string(value);
  }
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
