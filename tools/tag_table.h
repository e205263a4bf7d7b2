// The lines of `medvfs tags`: one per top-level DICOM element, "(gggg,eeee) VR Keyword value".
//
// The elements are the store's own (store::DicomTags::elements, keywords included): on an
// unmounted archive straight from it, through a mount from the version's `tags.tsv` view
// (store::ParseTagsTsv), so both ways print the same table.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/dicom_files.h"

namespace medvfs::tools {

// Shown in the keyword column of an element without a keyword (private or unknown tags).
inline constexpr std::string_view kNoKeyword = "-";

// "(0010,0020)": the tag as dcmdump prints it.
std::string FormatTag(uint16_t group, uint16_t element);

// The table: "(gggg,eeee)  VR  Keyword  value" per element, columns aligned, control
// characters in values escaped (\t, \n, \r, \xNN) so that each element stays on one line;
// backslashes, which separate DICOM values, are printed as they are.
std::string FormatTagTable(const std::vector<store::DicomElement>& elements);

}  // namespace medvfs::tools
