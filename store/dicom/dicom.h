// DICOM parsing for the tag views (`.meta`, `user.dicom.*`, `medvfs tags`). Internal to
// store/: DCMTK is used only in store/'s .cc files (dicom.cc; dicom_detail.h shares its DCMTK
// side with the tag diff). Parsing happens in memory, never through a plaintext temporary
// file, and a file that does not parse simply has no tags.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace medvfs::store {

// One top-level data element (File Meta Information group 0002 included).
struct DicomElement {
  uint16_t group = 0;
  uint16_t element = 0;
  std::string keyword;  // data dictionary keyword, e.g. "PatientID"; empty for private/unknown
  std::string vr;       // two letters, e.g. "PN"
  // The value as text, in UTF-8 (SpecificCharacterSet honoured), multiple values joined with
  // '\', as dcmdump prints it (without its brackets; UIDs as numbers; small binary values in
  // hex). Sequences: "(Sequence with N items)". Bulk binary data (OB, OW, OF, OD, OL, OV, UN
  // values over 1 KiB, and Pixel Data): "(N bytes)". At most 64 KiB, else cut and ending in
  // "...(truncated)". Bytes that are not valid in the character set become U+FFFD.
  // SpecificCharacterSet itself keeps the file's value, although the text is now UTF-8.
  std::string value;
};

struct DicomTags {
  std::vector<DicomElement> elements;  // in tag order
  // The dataset in the DICOM JSON model (PS3.18 Annex F), UTF-8, as DCMTK's dcm2json writes it.
  // Bulk data (Pixel Data and other binary values over 1 KiB) is left out and replaced by a
  // "BulkDataURI" naming the tag: "bulkdata/7FE00010". Top-level elements whose values
  // the JSON model cannot hold (an FD of NaN, which DCMTK writes as `nan`) are left out.
  std::string json;
  // The element with this keyword at the top level, or nullptr.
  const DicomElement* Find(std::string_view keyword) const;
};

// True when `head` (the first bytes of a file; 132 suffice for a Part 10 file) starts with the
// DICOM Part 10 preamble and "DICM" magic, or with a data set without them, as DCMTK, pydicom
// and Orthanc read it: at least two whole data elements in implicit or explicit VR little
// endian or explicit VR big endian, the first a group-0008 tag the data dictionary knows,
// tags ascending, VRs valid. A structural check, never the file's name; ParseDicom decides.
bool LooksLikeDicom(std::string_view head);

// The bytes ParseDicom needs at most: everything up to the Pixel Data element, capped.
inline constexpr size_t kMaxDicomHeaderBytes = 64u << 20;

// Parses a DICOM file from memory (Part 10, or a bare data set as LooksLikeDicom accepts it,
// whose transfer syntax is then detected as DCMTK does): `bytes` is the start of the file (up to
// kMaxDicomHeaderBytes), at least up to the Pixel Data element's header; parsing stops at Pixel
// Data (7FE0,0010). All transfer syntaxes DCMTK reads (explicit/implicit little endian, big
// endian, deflated, and encapsulated: RLE, JPEG, JPEG-LS, JPEG 2000) give their tags; pixel data
// is never decoded. `file_size`, when given, is the size of the whole file: a file that ends
// inside its Pixel Data is then refused as truncated (without it, only `bytes` is checked).
// kInvalid when it is not DICOM or is damaged (sequences nested over 128 deep included);
// kIoError when DCMTK has no data dictionary. Thread-safe; never throws.
StatusOr<DicomTags> ParseDicom(std::string_view bytes,
                               std::optional<uint64_t> file_size = std::nullopt);

}  // namespace medvfs::store
