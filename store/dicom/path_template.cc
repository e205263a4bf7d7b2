// Path templates of received instances (store/dicom_files.h); keywords are checked against
// DCMTK's data dictionary.
#include <algorithm>

#include "dcmtk/config/osconfig.h"  // first, as DCMTK requires

#include "dcmtk/dcmdata/dctag.h"

#include "store/dicom/dicom_detail.h"
#include "store/dicom_files.h"

namespace medvfs::store {
namespace {

constexpr size_t kMaxComponentBytes = 255;

bool SafeByte(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("._ ^=+-").find(c) != std::string_view::npos;
}

// True when `keyword` is a data dictionary keyword, spelt as the dictionary spells it.
bool IsDictionaryKeyword(const std::string& keyword) {
  DcmTag tag;
  return !keyword.empty() && DcmTag::findTagFromName(keyword.c_str(), tag).good() &&
         keyword == tag.getTagName();
}

// One component of a template ("{StudyDate}_{StudyInstanceUID}") into literal and field pieces.
template <typename Piece>
Status ParseComponent(std::string_view text, std::vector<Piece>* pieces) {
  if (text.empty()) return Status::Invalid("the path template has an empty component");
  if (text.front() == '.') {
    return Status::Invalid("a path template component must not start with '.'");
  }
  size_t at = 0;
  while (at < text.size()) {
    if (text[at] == '{') {
      const size_t end = text.find('}', at);
      if (end == std::string_view::npos)
        return Status::Invalid("the path template has an unclosed '{'");
      std::string keyword(text.substr(at + 1, end - at - 1));
      if (!IsDictionaryKeyword(keyword)) {
        return Status::Invalid("'" + keyword + "' in the path template is no DICOM keyword");
      }
      pieces->push_back(Piece{true, keyword});
      at = end + 1;
      continue;
    }
    const size_t end = std::min(text.find('{', at), text.size());
    std::string literal(text.substr(at, end - at));
    if (!std::all_of(literal.begin(), literal.end(), SafeByte)) {
      return Status::Invalid(
          "the path template may hold only A-Z a-z 0-9 . _ space ^ = + - "
          "outside its {Keyword} fields");
    }
    pieces->push_back(Piece{false, literal});
    at = end;
  }
  return Status::Ok();
}

}  // namespace

StatusOr<PathTemplate> PathTemplate::Parse(std::string_view text) {
  if (text.empty()) return Status::Invalid("the path template is empty");
  MEDVFS_RETURN_IF_ERROR(dicom_detail::DcmtkReady());
  PathTemplate result;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t end = std::min(text.find('/', at), text.size());
    std::vector<Piece> pieces;
    MEDVFS_RETURN_IF_ERROR(ParseComponent(text.substr(at, end - at), &pieces));
    result.components_.push_back(std::move(pieces));
    at = end + 1;
  }
  return result;
}

std::vector<std::string> PathTemplate::Expand(const DicomTags& tags) const {
  std::vector<std::string> out;
  for (const std::vector<Piece>& pieces : components_) {
    std::string component;
    for (const Piece& piece : pieces) {
      if (!piece.field) {
        component += piece.text;
        continue;
      }
      const DicomElement* element = tags.Find(piece.text);
      component += SanitizePathValue(element != nullptr ? element->value : "");
    }
    if (component.size() > kMaxComponentBytes) component.resize(kMaxComponentBytes);
    out.push_back(std::move(component));
  }
  return out;
}

std::string SanitizePathValue(std::string_view value) {
  const size_t first = value.find_first_not_of(' ');
  if (first == std::string_view::npos) return "UNKNOWN";
  value = value.substr(first, value.find_last_not_of(' ') - first + 1);
  std::string out;
  for (char c : value) out.push_back(SafeByte(c) ? c : '_');
  if (out.front() == '.') out.front() = '_';
  return out;
}

}  // namespace medvfs::store
