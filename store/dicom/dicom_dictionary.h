// The DICOM data dictionary (DCMTK's), for code of store/dicom that has tag numbers or keywords
// without a parsed file. The keywords are the ones DicomElement::keyword (store/dicom/dicom.h)
// shows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace medvfs::store {

// The keyword of a tag, e.g. "PatientID" for (0010,0020); for a tag of a repeating group
// (overlays, curves: 60xx, 50xx) the group's keyword. Empty for private (odd group) and unknown
// tags, and when the dictionary is missing. Thread-safe.
std::string DictionaryKeyword(uint16_t group, uint16_t element);

struct DictionaryEntry {
  uint16_t group = 0;
  uint16_t element = 0;  // of a repeating group: its first group (e.g. 6000)
  std::string vr;        // e.g. "UI"; for tags with several, the dictionary's first
};

// The tag of a keyword (retired ones included, without DCMTK's "RETIRED_" mark); nullopt for
// an unknown keyword or without the dictionary. Thread-safe.
std::optional<DictionaryEntry> DictionaryEntryOf(std::string_view keyword);

}  // namespace medvfs::store
