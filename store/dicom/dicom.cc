// DICOM parsing with DCMTK, from memory (see dicom.h). Three steps:
//  1. StructureWalker walks the raw bytes before DCMTK sees them: it bounds the nesting of
//     sequences (DCMTK reads them recursively), refuses values that run past the end (before
//     DCMTK allocates them) and describes the Pixel Data element that parsing stops at;
//  2. DCMTK reads the File Meta Information and the data set up to Pixel Data;
//  3. the elements (dcmdump's values) and the JSON (DcmDataset::writeJson, bulk data as
//     BulkDataURI) are taken from DCMTK's objects, in UTF-8.
// Nothing global is changed except, once, the level of DCMTK's own logger (off: its warnings
// may name elements of patient files, and a daemon's stderr is no place for them).
#include "store/dicom/dicom.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <unordered_set>
#include <utility>
#include <vector>

#include "dcmtk/config/osconfig.h"  // first, as DCMTK requires

#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcjson.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcstack.h"
#include "dcmtk/dcmdata/dcvrobow.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/oflog/oflog.h"

#include <nlohmann/json.hpp>

#include "store/dicom/dcmtk_guard.h"
#include "store/dicom/dicom_detail.h"
#include "store/dicom/dicom_dictionary.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

using dicom_detail::DicomFile;
using dicom_detail::KeywordOf;
using dicom_detail::kMaxSequenceDepth;
using dicom_detail::PixelDataInfo;
using dicom_detail::ValueOf;

constexpr size_t kPreambleBytes = 132;                // 128-byte preamble and "DICM"
constexpr size_t kMaxValueBytes = size_t{64} * 1024;  // one element's value text, marker included
constexpr uint32_t kBulkBytes = 1024;  // binary values longer than this are bulk data
constexpr size_t kMaxInflatedBytes = kMaxDicomHeaderBytes;  // deflated data sets
constexpr uint32_t kUndefinedLength = 0xFFFFFFFFu;
constexpr std::string_view kTruncatedMarker = "...(truncated)";
constexpr std::string_view kBulkDataUriPrefix = "bulkdata/";

constexpr uint32_t TagKey(uint16_t group, uint16_t element) {
  return (uint32_t{group} << 16) | element;
}
constexpr uint32_t kItemTag = TagKey(0xFFFE, 0xE000);
constexpr uint32_t kItemDelimitationTag = TagKey(0xFFFE, 0xE00D);
constexpr uint32_t kSequenceDelimitationTag = TagKey(0xFFFE, 0xE0DD);
constexpr uint32_t kPixelDataTag = TagKey(0x7FE0, 0x0010);

// ---- UTF-8 -------------------------------------------------------------------------------

// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629), or 0 if none does.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) low = 0xA0;   // no overlong forms
    if (c == 0xED) high = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) low = 0x90;
    if (c == 0xF4) high = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < n || byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

// `s` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD.
std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// Cuts valid UTF-8 text to at most kMaxValueBytes, on a character boundary, with a marker.
void CapValue(std::string* value) {
  if (value->size() <= kMaxValueBytes) return;
  size_t cut = kMaxValueBytes - kTruncatedMarker.size();
  while (cut > 0 && (static_cast<unsigned char>((*value)[cut]) & 0xC0) == 0x80) --cut;
  value->resize(cut);
  value->append(kTruncatedMarker);
}

// ---- StructureWalker ---------------------------------------------------------------------

struct Syntax {
  bool explicit_vr = true;
  bool big_endian = false;
};
constexpr Syntax kExplicitLittle{true, false};
constexpr Syntax kImplicitLittle{false, false};

// Walks the element structure of DICOM bytes the way DCMTK's parser will, without building
// anything. Where the walker cannot follow (unexpected tags), it stops and leaves the verdict
// to DCMTK, which fails on such data or stops reading there too. Values of implicit VR that
// look like sequences are descended into speculatively: there only the depth counts.
class StructureWalker {
 public:
  enum class Result { kDone, kStopped, kOverrun, kTooDeep };

  explicit StructureWalker(std::string_view data) : data_(data) {}

  // The data set from the start of the data to its end or to the first tag >= (7FE0,0010);
  // fills *pixel when that tag is Pixel Data.
  Result WalkDataset(Syntax syntax, PixelDataInfo* pixel) {
    size_t pos = 0;
    return WalkElements(&pos, data_.size(), Scope::kDataset, syntax, 0, pixel);
  }

  // The whole data set, Pixel Data and whatever follows it included, as a read of the whole
  // file takes it. (Stopping at Pixel Data there let DCMTK allocate a 3 GB value declared by
  // an element after it; found by tests/fuzz/fuzz_dicom.)
  Result WalkWholeDataset(Syntax syntax) {
    size_t pos = 0;
    return WalkElements(&pos, data_.size(), Scope::kWholeDataset, syntax, 0, nullptr);
  }

  // The File Meta Information from `pos`, as DcmMetaInfo::read takes it: the elements while
  // their group is 0002; but when it starts with its group length (0002,0000, UL), every
  // element that starts within that length, whatever its group. (Walking only group 0002
  // there let DCMTK allocate a 1.3 GB value; found by tests/fuzz/fuzz_dicom.)
  Result WalkMeta(size_t pos, Syntax syntax) {
    Header h;
    if (!ReadHeader(pos, data_.size(), syntax, &h) || h.tag != TagKey(0x0002, 0x0000) ||
        (syntax.explicit_vr && h.vr != "UL") || h.length < 4 || h.length == kUndefinedLength ||
        h.length > data_.size() - h.value) {
      return WalkElements(&pos, data_.size(), Scope::kMeta, syntax, 0, nullptr);
    }
    const uint64_t group_end = uint64_t{h.value} + h.length + U32(h.value, syntax);
    pos = h.value + h.length;
    while (pos < group_end && pos < data_.size()) {
      if (!ReadHeader(pos, data_.size(), syntax, &h)) return Result::kStopped;
      if ((h.tag >> 16) == 0xFFFE) return Result::kStopped;
      size_t next = 0;
      const Result result = WalkValue(h, data_.size(), syntax, 0, &next);
      if (result != Result::kDone) return result;
      pos = next;
    }
    return Result::kDone;
  }

 private:
  enum class Scope { kDataset, kWholeDataset, kMeta, kDefinedItem, kUndefinedItem };
  struct Header {
    uint32_t tag = 0;
    std::string_view vr;  // empty in implicit VR and for items and delimiters
    uint32_t length = 0;
    size_t value = 0;  // offset of the value
    size_t start = 0;  // offset of the tag
  };

  uint16_t U16(size_t at, Syntax syntax) const {
    const auto b0 = static_cast<unsigned char>(data_[at]);
    const auto b1 = static_cast<unsigned char>(data_[at + 1]);
    return static_cast<uint16_t>(syntax.big_endian ? (b0 << 8) | b1 : (b1 << 8) | b0);
  }
  uint32_t U32(size_t at, Syntax syntax) const {
    const uint32_t lo = U16(at, syntax), hi = U16(at + 2, syntax);
    return syntax.big_endian ? (lo << 16) | hi : (hi << 16) | lo;
  }
  uint32_t TagAt(size_t at, Syntax syntax) const {
    return TagKey(U16(at, syntax), U16(at + 2, syntax));
  }

  // The element header at `at`, or false if it does not fit before `end`.
  bool ReadHeader(size_t at, size_t end, Syntax syntax, Header* h) const {
    if (end - at < 8) return false;
    h->start = at;
    h->tag = TagAt(at, syntax);
    const bool delimiter =
        h->tag == kItemTag || h->tag == kItemDelimitationTag || h->tag == kSequenceDelimitationTag;
    if (!syntax.explicit_vr || delimiter) {
      h->vr = {};
      h->length = U32(at + 4, syntax);
      h->value = at + 8;
      return true;
    }
    h->vr = data_.substr(at + 4, 2);
    const char vr_name[3] = {h->vr[0], h->vr[1], '\0'};
    if (DcmVR(vr_name).usesExtendedLengthEncoding()) {  // as DCMTK decides it
      if (end - at < 12) return false;
      h->length = U32(at + 8, syntax);
      h->value = at + 12;
    } else {
      h->length = U16(at + 6, syntax);
      h->value = at + 8;
    }
    return true;
  }

  Result WalkElements(size_t* pos, size_t end, Scope scope, Syntax syntax, int depth,
                      PixelDataInfo* pixel) {
    while (true) {
      if (*pos >= end) return scope == Scope::kUndefinedItem ? Result::kStopped : Result::kDone;
      Header h;
      if (!ReadHeader(*pos, end, syntax, &h)) return Result::kStopped;
      if (scope == Scope::kMeta && (h.tag >> 16) != 0x0002) return Result::kDone;
      if (h.tag == kItemDelimitationTag && scope == Scope::kUndefinedItem) {
        *pos = h.value;
        return Result::kDone;
      }
      if ((h.tag >> 16) == 0xFFFE) return Result::kStopped;  // an item or delimiter out of place
      if (scope == Scope::kDataset && h.tag >= kPixelDataTag) {
        if (h.tag == kPixelDataTag && pixel != nullptr) DescribePixelData(h, syntax, pixel);
        return Result::kDone;
      }
      size_t next = 0;
      const Result result = WalkValue(h, end, syntax, depth, &next);
      if (result != Result::kDone) return result;
      *pos = next;
    }
  }

  // Steps over one element's value, into it when it holds a sequence; *next is the offset
  // after it.
  Result WalkValue(const Header& h, size_t end, Syntax syntax, int depth, size_t* next) {
    size_t pos = h.value;
    if (h.length == kUndefinedLength) {
      Result result = Result::kDone;
      if (h.tag == kPixelDataTag) {
        uint64_t fragment_bytes = 0;
        result = WalkFragments(&pos, end, &fragment_bytes);
      } else {
        // A sequence; in explicit VR anything but SQ is read as implicit VR (CP-246).
        const Syntax inner = !syntax.explicit_vr || h.vr == "SQ" ? syntax : kImplicitLittle;
        result = WalkItems(&pos, end, /*undefined_length=*/true, inner, depth + 1);
      }
      *next = pos;
      return result;
    }
    if (h.length > end - h.value) return Result::kOverrun;
    *next = h.value + h.length;
    const bool sequence =
        syntax.explicit_vr ? h.vr == "SQ" : h.length >= 8 && TagAt(h.value, syntax) == kItemTag;
    if (!sequence) return Result::kDone;
    const Result result = WalkItems(&pos, *next, /*undefined_length=*/false, syntax, depth + 1);
    if (result == Result::kTooDeep) return result;
    if (result == Result::kOverrun && syntax.explicit_vr) return result;
    return Result::kDone;  // the value's end is known: carry on after it
  }

  Result WalkItems(size_t* pos, size_t end, bool undefined_length, Syntax syntax, int depth) {
    if (depth > kMaxSequenceDepth) return Result::kTooDeep;
    while (true) {
      if (*pos >= end) return undefined_length ? Result::kStopped : Result::kDone;
      if (end - *pos < 8) return Result::kStopped;
      const uint32_t tag = TagAt(*pos, syntax);
      const uint32_t length = U32(*pos + 4, syntax);
      const size_t value = *pos + 8;
      if (tag == kSequenceDelimitationTag && undefined_length) {
        *pos = value;
        return Result::kDone;
      }
      if (tag != kItemTag) return Result::kStopped;
      if (length == kUndefinedLength) {
        *pos = value;
        const Result result = WalkElements(pos, end, Scope::kUndefinedItem, syntax, depth, nullptr);
        if (result != Result::kDone) return result;
      } else {
        if (length > end - value) return Result::kOverrun;
        size_t item_pos = value;
        const Result result =
            WalkElements(&item_pos, value + length, Scope::kDefinedItem, syntax, depth, nullptr);
        if (result == Result::kTooDeep || result == Result::kOverrun) return result;
        *pos = value + length;
      }
    }
  }

  // Encapsulated pixel data: items of defined length up to a sequence delimiter.
  Result WalkFragments(size_t* pos, size_t end, uint64_t* fragment_bytes) {
    Syntax little = kExplicitLittle;  // encapsulated syntaxes are all little endian
    *fragment_bytes = 0;
    while (true) {
      if (end - *pos < 8) return Result::kOverrun;
      const uint32_t tag = TagAt(*pos, little);
      const uint32_t length = U32(*pos + 4, little);
      if (tag == kSequenceDelimitationTag) {
        *pos += 8;
        return Result::kDone;
      }
      if (tag != kItemTag || length == kUndefinedLength) return Result::kStopped;
      if (length > end - *pos - 8) return Result::kOverrun;
      *fragment_bytes += length;
      *pos += 8 + length;
    }
  }

  void DescribePixelData(const Header& h, Syntax syntax, PixelDataInfo* pixel) {
    pixel->present = true;
    pixel->value_offset = h.value;
    pixel->header_offset = h.start;
    pixel->encapsulated = h.length == kUndefinedLength;
    if (pixel->encapsulated) {
      pixel->vr = "OB";
      size_t pos = h.value;
      pixel->complete = WalkFragments(&pos, data_.size(), &pixel->length) == Result::kDone;
    } else {
      pixel->vr = syntax.explicit_vr && h.vr == "OB" ? "OB" : "OW";
      pixel->length = h.length;
      pixel->complete = h.length <= data_.size() - h.value;
    }
  }

  std::string_view data_;
};

// ---- Data sets without a Part 10 header --------------------------------------------------

constexpr Syntax kExplicitBig{true, true};
// The data elements LooksLikeDicom looks at, at most.
constexpr int kDataSetCheckElements = 8;

bool IsStandardVr(std::string_view vr) {
  static constexpr std::string_view kVrs[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL",
                                              "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW",
                                              "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC",
                                              "UI", "UL", "UN", "UR", "US", "UT", "UV"};
  return std::find(std::begin(kVrs), std::end(kVrs), vr) != std::end(kVrs);
}

// VRs with a reserved 16 bits and a 32-bit length in explicit VR (PS3.5 7.1.2).
bool HasLongLength(std::string_view vr) {
  static constexpr std::string_view kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                               "SV", "UC", "UN", "UR", "UT", "UV"};
  return std::find(std::begin(kLong), std::end(kLong), vr) != std::end(kLong);
}

// Whether `head` starts with a data set in `syntax`, as DCMTK's readUntilTag would read it with
// E_FileReadMode_Auto: at least two whole elements, the first a group-0008 tag the dictionary
// knows (or that group's length), tags ascending, VRs standard with their reserved bytes zero
// (explicit VR), an undefined length only where a sequence may have one. Elements running past
// the end of `head` end the check there.
bool StartsWithDataSet(std::string_view head, Syntax syntax) {
  const auto u16 = [&](size_t at) {
    const auto b0 = static_cast<unsigned char>(head[at]);
    const auto b1 = static_cast<unsigned char>(head[at + 1]);
    return static_cast<uint16_t>(syntax.big_endian ? (b0 << 8) | b1 : (b1 << 8) | b0);
  };
  const auto u32 = [&](size_t at) {
    const uint32_t lo = u16(at), hi = u16(at + 2);
    return syntax.big_endian ? (lo << 16) | hi : (hi << 16) | lo;
  };
  size_t pos = 0;
  int whole = 0;
  uint32_t previous = 0;
  for (int n = 0; n < kDataSetCheckElements && head.size() - pos >= 8; ++n) {
    const uint16_t group = u16(pos);
    const uint16_t element = u16(pos + 2);
    const uint32_t tag = TagKey(group, element);
    if (n == 0) {
      if (group != 0x0008) return false;
      if (element != 0x0000 && KeywordOf(DcmTag(group, element)).empty()) return false;
    } else if (tag <= previous || group == 0xFFFE) {
      return false;
    }
    previous = tag;
    uint32_t length = 0;
    size_t value = 0;
    bool may_be_undefined = true;  // implicit VR: any element may be a sequence
    if (syntax.explicit_vr) {
      const std::string_view vr = head.substr(pos + 4, 2);
      if (!IsStandardVr(vr)) return false;
      if (HasLongLength(vr)) {
        if (head.size() - pos < 12) break;
        if (u16(pos + 6) != 0) return false;
        length = u32(pos + 8);
        value = pos + 12;
        may_be_undefined = vr == "SQ" || vr == "UN" || vr == "OB" || vr == "OW";
      } else {
        length = u16(pos + 6);
        value = pos + 8;
        may_be_undefined = false;
      }
    } else {
      length = u32(pos + 4);
      value = pos + 8;
    }
    if (length == kUndefinedLength) {
      // A sequence of undefined length: its items are not checked here; it counts as whole.
      if (!may_be_undefined) return false;
      ++whole;
      break;
    }
    if (length > head.size() - value) break;
    ++whole;
    pos = value + length;
  }
  return whole >= 2;
}

bool LooksLikeDataSet(std::string_view head) {
  if (head.size() < 16 || !dicom_detail::DcmtkReady().ok()) return false;
  for (Syntax syntax : {kImplicitLittle, kExplicitLittle, kExplicitBig}) {
    if (StartsWithDataSet(head, syntax)) return true;
  }
  return false;
}

bool HasPart10Magic(std::string_view head) {
  return head.size() >= kPreambleBytes && head.substr(128, 4) == "DICM";
}

// ---- DCMTK -------------------------------------------------------------------------------

using dicom_detail::DcmtkReady;
using dicom_detail::MemoryStream;

// Exposes DCMTK's transfer syntax detection, protected in DcmItem.
class SyntaxProbe : public DcmDataset {
 public:
  using DcmItem::checkTransferSyntax;
};

Status InvalidFrom(const char* what, const OFCondition& cond) {
  return Status::Invalid(std::string(what) + ": " + cond.text());
}

Status ReadMeta(std::string_view bytes, DcmMetaInfo* meta, size_t* meta_end) {
  MemoryStream in(bytes);
  meta->transferInit();
  const OFCondition cond = meta->read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
  meta->transferEnd();
  if (cond.bad()) return InvalidFrom("DICOM meta header does not parse", cond);
  *meta_end = static_cast<size_t>(in.tell());
  if (*meta_end >= bytes.size()) return Status::Invalid("DICOM file has no data set");
  return Status::Ok();
}

E_TransferSyntax TransferSyntaxOf(DcmMetaInfo& meta, std::string_view data) {
  OFString uid;
  if (meta.findAndGetOFString(DCM_TransferSyntaxUID, uid).good() && !uid.empty()) {
    const E_TransferSyntax xfer = DcmXfer(uid.c_str()).getXfer();
    if (xfer != EXS_Unknown) return xfer;
  }
  // Missing or unknown to DCMTK: detect it from the data set, as DcmFileFormat does.
  MemoryStream in(data);
  SyntaxProbe probe;
  return probe.checkTransferSyntax(in);
}

// Inflates a deflated data set through DCMTK's zlib filter, up to kMaxInflatedBytes. *ended
// tells whether the deflated stream ended (rather than the bytes, or the cap).
Status Inflate(std::string_view deflated, std::string* out, bool* ended) {
  MemoryStream in(deflated);
  const OFCondition cond = in.installCompressionFilter(ESC_zlib);
  if (cond.bad()) return InvalidFrom("deflated DICOM data set", cond);
  constexpr size_t kStep = size_t{256} * 1024;
  while (in.good() && !in.eos() && out->size() < kMaxInflatedBytes) {
    const size_t have = out->size();
    out->resize(have + kStep);
    const offile_off_t n = in.read(out->data() + have, static_cast<offile_off_t>(kStep));
    out->resize(have + static_cast<size_t>(std::max<offile_off_t>(n, 0)));
    if (n <= 0) break;
  }
  if (!in.good()) return InvalidFrom("deflated DICOM data set does not inflate", in.status());
  *ended = in.eos() && out->size() < kMaxInflatedBytes;
  return Status::Ok();
}

// Reads the data set up to Pixel Data, or `whole`.
std::unique_ptr<DcmDataset> ReadDataset(std::string_view data, E_TransferSyntax xfer,
                                        Status* status, bool whole = false) {
  auto dataset = std::make_unique<DcmDataset>();
  MemoryStream in(data);
  dataset->transferInit();
  const OFCondition cond =
      whole ? dataset->read(in, xfer, EGL_noChange, DCM_MaxReadLength)
            : dataset->readUntilTag(in, xfer, EGL_noChange, DCM_MaxReadLength, DCM_PixelData);
  dataset->transferEnd();
  if (cond.bad()) {
    *status = InvalidFrom("DICOM data set does not parse", cond);
    return nullptr;
  }
  return dataset;
}

bool IsBinaryVr(DcmEVR evr) {
  switch (evr) {
    case EVR_OB:
    case EVR_OW:
    case EVR_OD:
    case EVR_OF:
    case EVR_OL:
    case EVR_OV:
    case EVR_UN:
    case EVR_ox:
    case EVR_px:
    case EVR_pixelSQ:
    case EVR_pixelItem:
    case EVR_PixelData:
    case EVR_OverlayData:
    case EVR_UNKNOWN:
    case EVR_UNKNOWN2B:
      return true;
    default:
      return false;
  }
}

// Bulk data: binary values in group 7FE0 (pixel data) or longer than kBulkBytes.
bool IsBulk(DcmObject& object) {
  if (!IsBinaryVr(object.ident()) && !IsBinaryVr(object.getVR())) return false;
  return object.getGTag() == 0x7FE0 || object.getLengthField() > kBulkBytes;
}

std::string BytesValue(uint64_t bytes) { return "(" + std::to_string(bytes) + " bytes)"; }

// Encapsulated pixel data: its fragments' bytes, as PixelDataInfo counts them. nullopt for
// anything else.
std::optional<uint64_t> FragmentBytes(DcmObject& object) {
  DcmPixelSequence* fragments = dicom_detail::FragmentsOf(object);
  if (fragments == nullptr) return std::nullopt;
  uint64_t bytes = 0;
  for (unsigned long i = 0; i < fragments->card(); ++i) {
    DcmPixelItem* fragment = nullptr;
    if (fragments->getItem(fragment, i).good() && fragment != nullptr) {
      bytes += fragment->getLengthField();
    }
  }
  return bytes;
}

}  // namespace

// ---- Shared with the tag diff (dicom_detail.h) --------------------------------------------

namespace dicom_detail {

Status DcmtkReady() {
  static const bool dictionary_loaded = [] {
    const bool loaded = dcmDataDict.isDictionaryLoaded();  // loads it on first use
    OFLog::getLogger("dcmtk").setLogLevel(OFLogger::OFF_LOG_LEVEL);
    if (!loaded) {
      MEDVFS_LOG_ERROR(
          "dicom: DCMTK has no data dictionary; install dcmtk's dicom.dic (package libdcmtk17) "
          "or set DCMDICTPATH. DICOM files get no tags until then.");
    }
    return loaded;
  }();
  if (!dictionary_loaded) {
    return Status::IoError(
        "DCMTK data dictionary not loaded: install libdcmtk17 (dicom.dic) or set DCMDICTPATH");
  }
  return Status::Ok();
}

DcmPixelSequence* FragmentsOf(DcmObject& object) {
  if (object.ident() != EVR_PixelData) return nullptr;
  auto& pixel = static_cast<DcmPixelData&>(object);
  E_TransferSyntax xfer = EXS_Unknown;
  const DcmRepresentationParameter* parameter = nullptr;
  pixel.getCurrentRepresentationKey(xfer, parameter);
  DcmPixelSequence* fragments = nullptr;
  if (!DcmXfer(xfer).isEncapsulated() ||
      pixel.getEncapsulatedRepresentation(xfer, parameter, fragments).bad()) {
    return nullptr;
  }
  return fragments;
}

std::string KeywordOf(const DcmTag& element_tag) {
  if (element_tag.getGroup() & 1) return {};  // private
  DcmTag tag(element_tag);
  const char* name = tag.getTagName();
  if (name == nullptr) return {};
  std::string_view keyword = name;
  if (keyword == DcmTag_ERROR_TagName) return {};
  constexpr std::string_view kRetired = "RETIRED_";  // DCMTK's mark, not part of the keyword
  if (keyword.starts_with(kRetired)) keyword.remove_prefix(kRetired.size());
  return std::string(keyword);
}

// The value as dcmdump prints it, without brackets; '\' between values.
std::string ValueOf(DcmObject& object) {
  if (object.ident() == EVR_SQ) {
    auto& sequence = static_cast<DcmSequenceOfItems&>(object);
    return "(Sequence with " + std::to_string(sequence.card()) + " items)";
  }
  if (IsBulk(object)) return BytesValue(FragmentBytes(object).value_or(object.getLengthField()));
  auto* element = dynamic_cast<DcmElement*>(&object);
  if (element == nullptr) return {};
  std::string text;
  OFString value;
  if (element->isaString() || IsBinaryVr(object.ident()) || IsBinaryVr(object.getVR())) {
    // Strings as stored (padding removed); small binary values in hex. One pass each.
    if (element->getOFStringArray(value, OFFalse).good()) text.assign(value.c_str(), value.size());
  } else {
    // Numbers and tags: value by value, stopping once the cap is reached.
    const unsigned long count = element->getVM();
    for (unsigned long i = 0; i < count && text.size() <= kMaxValueBytes; ++i) {
      if (element->getOFString(value, i, OFFalse).bad()) break;
      if (i > 0) text += '\\';
      text.append(value.c_str(), value.size());
    }
  }
  text = ValidUtf8(text);
  CapValue(&text);
  return text;
}

}  // namespace dicom_detail

namespace {

DicomElement ElementOf(DcmObject& object) {
  DicomElement element;
  element.group = object.getGTag();
  element.element = object.getETag();
  element.keyword = KeywordOf(object.getTag());
  element.vr = DcmVR(object.getVR()).getValidVRName();
  element.value = ValueOf(object);
  return element;
}

void AppendElements(DcmItem& item, std::vector<DicomElement>* out) {
  for (DcmObject* object = item.nextInContainer(nullptr); object != nullptr;
       object = item.nextInContainer(object)) {
    out->push_back(ElementOf(*object));
  }
}

// DcmJsonFormatPretty that writes the chosen elements as a BulkDataURI. DCMTK asks with the
// element's own tag object, so its address identifies the element.
class BulkDataJsonFormat : public DcmJsonFormatPretty {
 public:
  explicit BulkDataJsonFormat(std::unordered_set<const DcmTagKey*> bulk)
      : DcmJsonFormatPretty(OFFalse), bulk_(std::move(bulk)) {}

  OFBool asBulkDataURI(const DcmTagKey& tag, OFString& uri) override {
    if (!bulk_.contains(&tag)) return OFFalse;
    char key[9];
    std::snprintf(key, sizeof key, "%04X%04X", tag.getGroup(), tag.getElement());
    uri = OFString(kBulkDataUriPrefix.data(), kBulkDataUriPrefix.size()) + key;
    return OFTrue;
  }

 private:
  std::unordered_set<const DcmTagKey*> bulk_;
};

std::unordered_set<const DcmTagKey*> BulkElementsOf(DcmDataset& dataset) {
  std::unordered_set<const DcmTagKey*> bulk;
  DcmStack stack;
  while (dataset.nextObject(stack, OFTrue).good()) {
    DcmObject* object = stack.top();
    if (IsBulk(*object)) bulk.insert(&object->getTag());
  }
  return bulk;
}

// `object` (the data set, or one element) as a JSON object in valid UTF-8, or nullopt when
// DCMTK fails or writes what no JSON parser accepts (an FD of NaN comes out as `nan`).
template <typename Writable>
std::optional<std::string> JsonText(Writable& object,
                                    const std::unordered_set<const DcmTagKey*>& bulk) {
  BulkDataJsonFormat format(bulk);
  std::ostringstream out;
  out << format.indent() << "{" << format.newline();  // as DcmFileFormat::writeJson
  const OFCondition cond = object.writeJson(out, format);
  out << format.newline() << format.indent() << "}" << format.newline();
  std::string text = ValidUtf8(out.str());
  if (cond.bad() || !nlohmann::json::accept(text)) return std::nullopt;
  return text;
}

// The data set as DICOM JSON. The Pixel Data that parsing stopped at is added as a small
// placeholder element, so that it appears (as a BulkDataURI) where DCMTK would write it.
// Top-level elements that do not come out as valid JSON are left out.
std::string JsonOf(DcmDataset& dataset, const PixelDataInfo& pixel) {
  if (pixel.present) {
    const bool ow = pixel.vr == "OW";
    auto placeholder =
        std::make_unique<DcmOtherByteOtherWord>(DcmTag(DCM_PixelData, ow ? EVR_OW : EVR_OB));
    const Uint16 zero = 0;
    const OFCondition put =
        ow ? placeholder->putUint16Array(&zero, 1)
           : placeholder->putUint8Array(reinterpret_cast<const Uint8*>(&zero), 2);
    if (put.good() && dataset.insert(placeholder.get(), OFTrue).good()) {
      static_cast<void>(placeholder.release());  // the data set owns it
    }
  }
  std::optional<std::string> text = JsonText(dataset, BulkElementsOf(dataset));
  if (text) return std::move(*text);
  const std::unordered_set<const DcmTagKey*> bulk = BulkElementsOf(dataset);
  std::vector<DcmObject*> unfit;
  for (DcmObject* object = dataset.nextInContainer(nullptr); object != nullptr;
       object = dataset.nextInContainer(object)) {
    if (!JsonText(*object, bulk)) unfit.push_back(object);
  }
  for (DcmObject* object : unfit) delete dataset.remove(object);
  MEDVFS_LOG_INFO("dicom: %zu element(s) with values DICOM JSON cannot hold left out",
                  unfit.size());
  return JsonText(dataset, BulkElementsOf(dataset)).value_or("{\n}\n");
}

// Refuses a file whose Pixel Data runs past its end. The walked data holds the whole file's
// data set when `whole`; else, if it was not inflated, it starts at `data_offset` of the file.
Status CheckPixelDataComplete(const PixelDataInfo& pixel, bool whole, bool inflated,
                              uint64_t data_offset, std::optional<uint64_t> file_size) {
  if (!pixel.present || pixel.complete) return Status::Ok();
  bool truncated = whole;
  if (!whole && file_size.has_value() && !inflated && !pixel.encapsulated) {
    truncated = data_offset + pixel.value_offset + pixel.length > file_size.value();
  }
  if (truncated) return Status::Invalid("DICOM file is truncated: Pixel Data runs past the end");
  return Status::Ok();
}

using WalkResult = StructureWalker::Result;

// Walks the meta header before DCMTK reads it. It is explicit VR little endian, but some
// writers got that wrong: check it under both readings (DCMTK takes one of them).
// The reading DCMTK itself picks (DcmMetaInfo::checkTransferSyntax) must not overrun either:
// explicit VR when the two bytes after the first tag name a standard VR, implicit otherwise.
// (Accepting a header that overran only under the reading DCMTK did not pick let it allocate
// 4 GB; found by tests/fuzz/fuzz_dicom.)
Status CheckMeta(std::string_view bytes) {
  const WalkResult explicit_vr = StructureWalker(bytes).WalkMeta(kPreambleBytes, kExplicitLittle);
  const WalkResult implicit_vr = StructureWalker(bytes).WalkMeta(kPreambleBytes, kImplicitLittle);
  if (explicit_vr == WalkResult::kTooDeep || implicit_vr == WalkResult::kTooDeep) {
    return Status::Invalid("DICOM meta header nests sequences too deeply");
  }
  bool dcmtk_reads_explicit = true;
  if (bytes.size() >= kPreambleBytes + 6) {
    const char vr_name[3] = {bytes[kPreambleBytes + 4], bytes[kPreambleBytes + 5], '\0'};
    dcmtk_reads_explicit = DcmVR(vr_name).isStandard();
  }
  const WalkResult dcmtk_reading = dcmtk_reads_explicit ? explicit_vr : implicit_vr;
  if (dcmtk_reading == WalkResult::kOverrun ||
      (explicit_vr == WalkResult::kOverrun && implicit_vr == WalkResult::kOverrun)) {
    return Status::Invalid("DICOM meta header is truncated: a value runs past the end");
  }
  return Status::Ok();
}

// The data set after the meta header: its bytes (inflated if need be), their transfer syntax,
// and the Pixel Data element that parsing stops at.
struct DataSetBytes {
  std::string_view raw;
  std::string inflated;
  E_TransferSyntax xfer = EXS_Unknown;
  PixelDataInfo pixel;
  std::string_view data() const { return inflated.empty() ? raw : std::string_view(inflated); }
};

Status PrepareDataSet(std::string_view bytes, size_t meta_end, DcmMetaInfo& meta,
                      std::optional<uint64_t> file_size, DataSetBytes* out) {
  bool whole_file = file_size.has_value() && file_size.value() <= bytes.size();
  out->raw = bytes.substr(meta_end);
  out->xfer = TransferSyntaxOf(meta, out->raw);
  const E_StreamCompression compression = DcmXfer(out->xfer).getStreamCompression();
  if (compression == ESC_zlib) {
    bool ended = false;
    MEDVFS_RETURN_IF_ERROR(Inflate(out->raw, &out->inflated, &ended));
    if (whole_file && !ended && out->inflated.size() < kMaxInflatedBytes) {
      return Status::Invalid("DICOM file is truncated: its deflated data set does not end");
    }
    whole_file = whole_file && ended;
    out->xfer = EXS_LittleEndianExplicit;
  } else if (compression != ESC_none) {
    return Status::Invalid("DICOM data set uses an unsupported stream compression");
  }
  const DcmXfer xfer(out->xfer);
  const Syntax syntax{xfer.isExplicitVR(), xfer.getByteOrder() == EBO_BigEndian};
  switch (StructureWalker(out->data()).WalkDataset(syntax, &out->pixel)) {
    case WalkResult::kTooDeep:
      return Status::Invalid("DICOM data set nests sequences too deeply");
    case WalkResult::kOverrun:
      return Status::Invalid("DICOM data set is truncated: a value runs past the end");
    default:
      break;
  }
  return CheckPixelDataComplete(out->pixel, whole_file, !out->inflated.empty(), meta_end,
                                file_size);
}

// Walks what follows Pixel Data too, before DCMTK reads the whole data set.
Status CheckWholeDataSet(const DataSetBytes& set) {
  const DcmXfer xfer(set.xfer);
  const Syntax syntax{xfer.isExplicitVR(), xfer.getByteOrder() == EBO_BigEndian};
  switch (StructureWalker(set.data()).WalkWholeDataset(syntax)) {
    case WalkResult::kTooDeep:
      return Status::Invalid("DICOM data set nests sequences too deeply");
    case WalkResult::kOverrun:
      return Status::Invalid("DICOM data set is truncated: a value runs past the end");
    default:
      return Status::Ok();
  }
}

// Reads the data set and converts it to UTF-8 as dcm2json does: when a character set other
// than UTF-8 or ASCII is declared. *charset: a copy of SpecificCharacterSet as the file has it.
StatusOr<std::unique_ptr<DcmDataset>> ReadInUtf8(const DataSetBytes& set,
                                                 std::unique_ptr<DcmElement>* charset,
                                                 bool whole = false) {
  Status status;
  std::unique_ptr<DcmDataset> dataset = ReadDataset(set.data(), set.xfer, &status, whole);
  if (dataset == nullptr) return status;
  DcmElement* element = nullptr;
  if (dataset->findAndGetElement(DCM_SpecificCharacterSet, element).good()) {
    charset->reset(static_cast<DcmElement*>(element->clone()));
  }
  OFString declared;
  const bool convert =
      dataset->findAndGetOFStringArray(DCM_SpecificCharacterSet, declared).good() &&
      declared != "ISO_IR 192" && declared != "ISO_IR 6";
  if (convert && dataset->convertToUTF8().bad()) {
    // Not convertible (unknown character set, bytes invalid in it): keep the raw bytes, made
    // valid UTF-8 later. The conversion may have changed some values already: read again.
    dataset = ReadDataset(set.data(), set.xfer, &status, whole);
    if (dataset == nullptr) return status;
  }
  return dataset;
}

// The top-level elements in tag order, SpecificCharacterSet as in the file.
std::vector<DicomElement> ElementsOf(DcmMetaInfo& meta, DcmDataset& dataset,
                                     std::optional<DicomElement> charset,
                                     const PixelDataInfo& pixel) {
  std::vector<DicomElement> elements;
  AppendElements(meta, &elements);
  for (DcmObject* object = dataset.nextInContainer(nullptr); object != nullptr;
       object = dataset.nextInContainer(object)) {
    const DcmTagKey tag(object->getGTag(), object->getETag());
    if (charset && tag >= DCM_SpecificCharacterSet) {
      elements.push_back(*std::exchange(charset, std::nullopt));
    }
    if (tag != DCM_SpecificCharacterSet) elements.push_back(ElementOf(*object));
  }
  if (charset) elements.push_back(*charset);
  if (pixel.present) {
    const bool known = pixel.complete || !pixel.encapsulated;
    elements.push_back({0x7FE0, 0x0010, "PixelData", pixel.vr,
                        known ? BytesValue(pixel.length) : "(encapsulated)"});
  }
  return elements;
}

StatusOr<DicomTags> Parse(std::string_view bytes, std::optional<uint64_t> file_size) {
  MEDVFS_ASSIGN_OR_RETURN(DicomFile file, dicom_detail::ReadDicomFile(bytes, file_size));
  std::optional<DicomElement> charset;
  if (file.charset != nullptr) charset = ElementOf(*file.charset);
  DicomTags tags;
  tags.elements = ElementsOf(*file.meta, *file.dataset, std::move(charset), file.pixel);
  tags.json = JsonOf(*file.dataset, file.pixel);
  return tags;
}

}  // namespace

namespace dicom_detail {

namespace {

StatusOr<DicomFile> ReadFile(std::string_view bytes, std::optional<uint64_t> file_size,
                             bool whole) {
  const bool part10 = HasPart10Magic(bytes);
  if (!part10 && !LooksLikeDataSet(bytes)) {
    return Status::Invalid("not DICOM (no DICM magic, and no data set at the start)");
  }
  MEDVFS_RETURN_IF_ERROR(DcmtkReady());
  DicomFile file;
  file.meta = std::make_unique<DcmMetaInfo>();  // stays empty for a bare data set
  size_t meta_end = 0;
  if (part10) {
    MEDVFS_RETURN_IF_ERROR(CheckMeta(bytes));
    MEDVFS_RETURN_IF_ERROR(ReadMeta(bytes, file.meta.get(), &meta_end));
  }
  DataSetBytes set;
  MEDVFS_RETURN_IF_ERROR(PrepareDataSet(bytes, meta_end, *file.meta, file_size, &set));
  if (whole) MEDVFS_RETURN_IF_ERROR(CheckWholeDataSet(set));
  MEDVFS_ASSIGN_OR_RETURN(file.dataset, ReadInUtf8(set, &file.charset, whole));
  file.pixel = std::move(set.pixel);
  file.data_offset = meta_end;
  file.xfer = set.xfer;
  file.inflated = !set.inflated.empty();
  return file;
}

}  // namespace

StatusOr<DicomFile> ReadDicomFile(std::string_view bytes, std::optional<uint64_t> file_size) {
  return ReadFile(bytes, file_size, /*whole=*/false);
}

StatusOr<DicomFile> ReadWholeDicomFile(std::string_view bytes, std::optional<uint64_t> file_size) {
  return ReadFile(bytes, file_size, /*whole=*/true);
}

}  // namespace dicom_detail

const DicomElement* DicomTags::Find(std::string_view keyword) const {
  for (const DicomElement& element : elements) {
    if (element.keyword == keyword) return &element;
  }
  return nullptr;
}

std::string DictionaryKeyword(uint16_t group, uint16_t element) {
  if (!dicom_detail::DcmtkReady().ok()) return {};
  return KeywordOf(DcmTag(group, element));
}

std::optional<DictionaryEntry> DictionaryEntryOf(std::string_view keyword) {
  if (keyword.empty() || !dicom_detail::DcmtkReady().ok()) return std::nullopt;
  DcmTag tag;
  const std::string name(keyword);
  if (DcmTag::findTagFromName(name.c_str(), tag).bad() &&
      DcmTag::findTagFromName(("RETIRED_" + name).c_str(), tag).bad()) {
    return std::nullopt;
  }
  return DictionaryEntry{tag.getGroup(), tag.getElement(), DcmVR(tag.getEVR()).getValidVRName()};
}

bool LooksLikeDicom(std::string_view head) {
  return HasPart10Magic(head) || LooksLikeDataSet(head);
}

StatusOr<DicomTags> ParseDicom(std::string_view bytes, std::optional<uint64_t> file_size) {
  return dicom_detail::GuardDcmtk({.failed = "DICOM parser failed",
                                   .too_large = "DICOM header too large to parse in memory",
                                   .with_what = true},
                                  [&] { return Parse(bytes, file_size); });
}

}  // namespace medvfs::store
