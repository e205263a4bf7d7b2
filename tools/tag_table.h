// The lines of `medvfs tags`: one per top-level DICOM element, "(gggg,eeee) VR Keyword value".
//
// On an unmounted archive the elements come straight from the store (store::DicomTags). Through
// a mount they are rebuilt from two views of the version: `dicom.json` (the DICOM JSON model:
// every tag of the data set, its VR and its values, but no keywords) and `tags/` (one file per
// keyword holding the value as the store prints it, but no tag numbers). The data dictionary
// (store/dicom_dictionary.h, the one the store names elements with) joins them by tag:
//   1. each element of `dicom.json` gets its tag's keyword; the `tags/` file of that keyword
//      gives its value (to the first element with that keyword, as the store does), so both
//      ways print the same text (SpecificCharacterSet included: the JSON model always says
//      "ISO_IR 192", `tags/` the file's value);
//   2. the File Meta Information (group 0002), which the JSON model leaves out, comes from the
//      `tags/` files whose keywords name group-0002 tags, with the dictionary's tag and VR;
//   3. private and unknown elements show "-" and their JSON value.
// (Until issue 17 the keywords were matched by value, which named SOPClassUID and
// SOPInstanceUID after the meta header's equal MediaStorageSOP* values.)
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

// Names the elements (from ElementsFromDicomJson) and adds the File Meta Information from the
// `tags/` files (in any order), as described at the top.
void AssignKeywords(const std::vector<KeywordFile>& files,
                    std::vector<store::DicomElement>* elements);

// "(0010,0020)": the tag as dcmdump prints it.
std::string FormatTag(uint16_t group, uint16_t element);

// The table: "(gggg,eeee)  VR  Keyword  value" per element, columns aligned, control
// characters in values escaped (\t, \n, \r, \xNN) so that each element stays on one line;
// backslashes, which separate DICOM values, are printed as they are.
std::string FormatTagTable(const std::vector<store::DicomElement>& elements);

}  // namespace medvfs::tools
