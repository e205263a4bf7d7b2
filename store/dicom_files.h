// DICOM files as fs/ and tools/ handle them without DCMTK: the File Meta Information the C-STORE
// receiver puts before a data set it received, the path templates that name received
// instances, and `tags.tsv`, the table of a version's top-level elements that a mount shows
// beside `dicom.json` (and `medvfs tags` reads back). Implemented by the dicom layer
// (store/dicom/part10.cc, path_template.cc, tags_tsv.cc): bytes in, results out, no archive.
//
// The element type and the parser come from store/dicom/dicom.h (DicomElement, DicomTags,
// ParseDicom), which store/archive.h shows too.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/dicom/dicom.h"
#include "store/status.h"

namespace medvfs::store {

// --- Part 10 ------------------------------------------------------------------------------------

// What the File Meta Information of a received instance says.
struct Part10Meta {
  std::string sop_class_uid;        // (0002,0002) MediaStorageSOPClassUID
  std::string sop_instance_uid;     // (0002,0003) MediaStorageSOPInstanceUID
  std::string transfer_syntax_uid;  // (0002,0010): the one the data set bytes are encoded in
  // (0002,0013) ImplementationVersionName, cut to the 16 characters of an SH. Default: none.
  std::string implementation_version;
  std::string source_aet;  // (0002,0016) SourceApplicationEntityTitle; empty: left out
};

// The 128-byte preamble, "DICM" and the File Meta Information (group 0002 with its group
// length, explicit VR little endian) for a data set in `meta.transfer_syntax_uid`, written by
// DCMTK's DcmMetaInfo as storescp --bit-preserving writes it: FileMetaInformationVersion 00\01
// and DCMTK's ImplementationClassUID. The data set's bytes, exactly as received, follow it to
// make a Part 10 file. The values are written as given (a UID is not checked).
// kIoError when DCMTK cannot write it. Thread-safe; never throws.
StatusOr<std::string> Part10Header(const Part10Meta& meta);

// --- Path templates -----------------------------------------------------------------------------

// A parsed path template ("{PatientID}/{StudyDate}_{StudyInstanceUID}/..."): '/'-separated
// components of literal text and {Keyword} fields.
class PathTemplate {
 public:
  // kInvalid (with a message saying what is wrong) for an empty template or component, a
  // component starting with '.', an unclosed brace, a keyword that is not a DICOM data
  // dictionary keyword, or literal text with characters outside [A-Za-z0-9._ ^=+-].
  static StatusOr<PathTemplate> Parse(std::string_view text);

  // The path components for an instance's tags: each field is the value of the top-level
  // element with that keyword (DicomTags::Find) through SanitizePathValue ("UNKNOWN" when
  // absent or empty); each component is cut to 255 bytes.
  std::vector<std::string> Expand(const DicomTags& tags) const;

 private:
  struct Piece {
    bool field = false;
    std::string text;  // literal text, or the keyword of a field
  };
  std::vector<std::vector<Piece>> components_;
};

// The template `medvfs receive` uses by default.
inline constexpr std::string_view kDefaultPathTemplate =
    "{PatientID}/{StudyDate}_{StudyInstanceUID}/{SeriesNumber}_{SeriesInstanceUID}/"
    "{SOPInstanceUID}.dcm";

// A tag value made safe as (part of) a file name: leading and trailing spaces trimmed, every
// byte outside [A-Za-z0-9._ ^=+-] ('/', '\\', NUL, control characters, non-ASCII ...) and a
// leading '.' replaced by '_'; an empty value becomes "UNKNOWN".
std::string SanitizePathValue(std::string_view value);

// --- tags.tsv -----------------------------------------------------------------------------------

// The header line of tags.tsv (with its newline).
inline constexpr std::string_view kTagsTsvHeader = "tag\tvr\tkeyword\tvalue\n";

// The `tags.tsv` view of a version: kTagsTsvHeader, then one line per top-level element of
// `elements` (DicomTags::elements, File Meta Information included), in their order:
//   tag ("(0010,0020)" as dcmdump prints it)  VR  keyword (empty: private or unknown)  value
// separated by tabs. Tabs, newlines and backslashes inside a value are escaped (as in
// versions.tsv) as backslash-t, backslash-n and two backslashes, so a value with several DICOM
// values shows them as "A\\B".
std::string FormatTagsTsv(const std::vector<DicomElement>& elements);

// Parses what FormatTagsTsv wrote, back to the same elements (the command line reads it
// through a mount). kInvalid for anything else.
StatusOr<std::vector<DicomElement>> ParseTagsTsv(std::string_view tsv);

}  // namespace medvfs::store
