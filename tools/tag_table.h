// The lines of `medvfs tags`: one per top-level DICOM element, "(gggg,eeee) VR Keyword value".
//
// On an unmounted archive the elements come straight from the store (store::DicomTags). Through
// a mount they are rebuilt from two views of the version: `dicom.json` (the DICOM JSON model:
// every tag, its VR and its values, but no keywords) and `tags/` (one file per keyword holding
// the value as the store prints it, but no tag numbers). The data dictionary lives in store/
// only (DCMTK), so the keywords are put back by matching values:
//   1. a keyword whose value fits exactly one element, which no other keyword fits, names it;
//   2. when those sure pairs appear in `tags/` in tag order (the store lists them so), the
//      rest is paired in order too (a longest common subsequence over the values), which tells
//      apart elements with equal values such as StudyDate and SeriesDate;
//   3. an element left without a keyword shows "-".
// SpecificCharacterSet is paired by its tag: the JSON model always says "ISO_IR 192" (UTF-8).
// The File Meta Information (group 0002) is not part of the JSON model, so it is not shown.
// A named element shows the `tags/` text as its value, so both ways print the same text.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/dicom.h"
#include "store/status.h"

namespace medvfs::tools {

// Shown in the keyword column of an element without a keyword (private or unknown tags).
inline constexpr std::string_view kNoKeyword = "-";

// The top-level elements of a DICOM JSON object (PS3.18 Annex F), in tag order, with the value
// as text: values joined with '\', person names as "Alphabetic=Ideographic=Phonetic",
// sequences as "(Sequence with N items)", inline binary as "(N bytes)", a BulkDataURI as
// "(bulk data)". Keywords are left empty. kInvalid when `json` is not such an object.
store::StatusOr<std::vector<store::DicomElement>> ElementsFromDicomJson(std::string_view json);

// A file of the `tags/` view: its name (the keyword) and content (the value).
struct KeywordFile {
  std::string keyword;
  std::string value;
};

// Names the elements from the `tags/` files (given in listing order) as described at the top.
void AssignKeywords(const std::vector<KeywordFile>& files,
                    std::vector<store::DicomElement>* elements);

// "(0010,0020)": the tag as dcmdump prints it.
std::string FormatTag(uint16_t group, uint16_t element);

// The table: "(gggg,eeee)  VR  Keyword  value" per element, columns aligned, control
// characters in values escaped (\t, \n, \r, \xNN) so that each element stays on one line;
// backslashes, which separate DICOM values, are printed as they are.
std::string FormatTagTable(const std::vector<store::DicomElement>& elements);

}  // namespace medvfs::tools
