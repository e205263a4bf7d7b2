// The DCMTK side of store/dicom/dicom.cc that other DICOM code in store/ shares (the tag diff,
// diff_tags.cc, and the pixel decoding, diff_pixels.cc): reading a file into DCMTK's objects and
// showing an element's value as DicomElement::value does. Includes DCMTK: only store/*.cc files may
// include this header.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "dcmtk/config/osconfig.h"  // first, as DCMTK requires

#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcelem.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dctag.h"

#include "store/status.h"

namespace medvfs::store::dicom_detail {

// Loads DCMTK's data dictionary once and silences DCMTK's logger. Thread-safe. kIoError when
// the dictionary is missing (then no DICOM file can be read).
Status DcmtkReady();

// An input stream over bytes owned by the caller; nothing is copied.
class MemoryStream : public DcmInputBufferStream {
 public:
  explicit MemoryStream(std::string_view bytes) {
    setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
    setEos();
  }
};

// Sequences nested deeper than this are refused.
inline constexpr int kMaxSequenceDepth = 128;

// The top-level Pixel Data element, which DCMTK is told not to read.
struct PixelDataInfo {
  bool present = false;
  bool encapsulated = false;
  bool complete = false;       // its whole value lies within the bytes
  std::string vr;              // "OB" or "OW"
  uint64_t length = 0;         // value bytes; for encapsulated data, the fragments' bytes
  uint64_t value_offset = 0;   // where the value starts in the walked data
  uint64_t header_offset = 0;  // where the element (its tag) starts in the walked data
};

// A DICOM Part 10 file as DCMTK's objects, read up to its top-level Pixel Data.
struct DicomFile {
  std::unique_ptr<DcmMetaInfo> meta;
  // The data set without Pixel Data, its values converted to UTF-8 when a character set other
  // than UTF-8 or ASCII is declared and the conversion succeeds.
  std::unique_ptr<DcmDataset> dataset;
  // The top-level SpecificCharacterSet as the file has it (before the conversion), if any.
  std::unique_ptr<DcmElement> charset;
  PixelDataInfo pixel;
  // Where the data set starts in the file (after the File Meta Information), its transfer
  // syntax as read, and whether it was deflated (then `pixel` describes the inflated data and
  // `xfer` is explicit VR little endian).
  uint64_t data_offset = 0;
  E_TransferSyntax xfer = EXS_Unknown;
  bool inflated = false;
};

// Reads a file as ParseDicom (store/dicom/dicom.h) does, with the same checks and errors: `bytes`
// is the start of the file, `file_size` the size of the whole file when known. May throw
// (std::bad_alloc); callers catch.
StatusOr<DicomFile> ReadDicomFile(std::string_view bytes, std::optional<uint64_t> file_size);
// As ReadDicomFile, but the data set is read whole, Pixel Data and what follows it included
// (for the de-identification of deflated files, whose pixels cannot be copied as bytes).
StatusOr<DicomFile> ReadWholeDicomFile(std::string_view bytes, std::optional<uint64_t> file_size);

// The fragments (items) of encapsulated pixel data that DCMTK read: Pixel Data inside a
// sequence (an icon), as the top-level one is never read. nullptr for anything else. Owned by
// `object`.
DcmPixelSequence* FragmentsOf(DcmObject& object);

// The element's keyword from the data dictionary, without DCMTK's "RETIRED_" mark; empty for
// private and unknown elements.
std::string KeywordOf(const DcmTag& element_tag);

// The value as DicomElement::value shows it.
std::string ValueOf(DcmObject& object);

}  // namespace medvfs::store::dicom_detail
