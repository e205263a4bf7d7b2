// The DICOM tag diff (diff_internal.h): both files are read as ParseDicom reads them
// (dicom_detail.h), then their items are walked side by side in tag order, File Meta
// Information first. Values are compared as DICOM defines them (string padding is not
// significant; numbers and binary values byte for byte, whatever the byte order) and shown as
// DicomElement::value shows them.
#include "store/dicom/diff_internal.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dcmtk/config/osconfig.h"  // first, as DCMTK requires

#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcsequen.h"

#include "store/dicom/dcmtk_guard.h"
#include "store/dicom/dicom_detail.h"

namespace medvfs::store::diff_internal {
namespace {

using dicom_detail::DicomFile;
using dicom_detail::KeywordOf;
using dicom_detail::ValueOf;

// An element's place: keywords and tags from the top level, e.g.
// "ReferencedImageSequence[0].ReferencedSOPInstanceUID" and "(0008,1140)[0].(0008,1155)".
// Both empty at the top level.
struct Path {
  std::string keywords;
  std::string tags;
};

std::string TagText(const DcmTagKey& tag) {
  char text[12];
  std::snprintf(text, sizeof text, "(%04X,%04X)", tag.getGroup(), tag.getElement());
  return text;
}

Path ElementPath(const Path& item, const DcmObject& object) {
  const std::string tag = TagText(object.getTag());
  std::string keyword = KeywordOf(object.getTag());
  if (keyword.empty()) keyword = tag;  // private or unknown
  const char* dot = item.tags.empty() ? "" : ".";
  return {item.keywords + dot + keyword, item.tags + dot + tag};
}

Path ItemPath(const Path& sequence, unsigned long index) {
  const std::string suffix = "[" + std::to_string(index) + "]";
  return {sequence.keywords + suffix, sequence.tags + suffix};
}

std::string VrOf(DcmObject& object) { return DcmVR(object.getVR()).getValidVRName(); }

bool IsSequence(const DcmObject& object) { return object.ident() == EVR_SQ; }

std::optional<std::string> RawValue(DcmElement& element);

// Encapsulated pixel data (an icon inside a sequence): its fragments, each after its length.
std::optional<std::string> FragmentsValue(DcmPixelSequence& fragments) {
  std::string out;
  for (unsigned long i = 0; i < fragments.card(); ++i) {
    DcmPixelItem* fragment = nullptr;
    if (fragments.getItem(fragment, i).bad() || fragment == nullptr) return std::nullopt;
    std::optional<std::string> bytes = RawValue(*fragment);
    if (!bytes) return std::nullopt;
    out += std::to_string(bytes->size()) + ":";
    out += *bytes;
  }
  return out;
}

// The value's bytes, numbers in little endian whatever the file's byte order; nullopt when
// DCMTK does not give them.
std::optional<std::string> RawValue(DcmElement& element) {
  if (DcmPixelSequence* fragments = dicom_detail::FragmentsOf(element)) {
    return FragmentsValue(*fragments);
  }
  const Uint32 length = element.getLengthField();
  if (length == DCM_UndefinedLength) return std::nullopt;
  std::string bytes(length, '\0');
  if (length > 0 &&
      element.getPartialValue(bytes.data(), 0, length, nullptr, EBO_LittleEndian).bad()) {
    return std::nullopt;
  }
  return bytes;
}

// Whether two elements that are not sequences hold the same value. Strings are compared as
// DICOM defines them, without their insignificant padding (DCMTK's normalisation per VR).
bool SameValue(DcmObject& a, DcmObject& b) {
  auto* element_a = dynamic_cast<DcmElement*>(&a);
  auto* element_b = dynamic_cast<DcmElement*>(&b);
  if (element_a != nullptr && element_b != nullptr) {
    if (element_a->isaString() && element_b->isaString()) {
      OFString value_a, value_b;
      if (element_a->getOFStringArray(value_a, OFTrue).good() &&
          element_b->getOFStringArray(value_b, OFTrue).good()) {
        return value_a == value_b;
      }
    }
    const std::optional<std::string> raw_a = RawValue(*element_a);
    const std::optional<std::string> raw_b = RawValue(*element_b);
    if (raw_a && raw_b) return *raw_a == *raw_b;
  }
  return ValueOf(a) == ValueOf(b);  // what DCMTK does not give as bytes: as it is shown
}

// Walks two items side by side and collects their differences.
class TagDiffer {
 public:
  // Compares the elements of two items: meta headers, data sets (`dataset`: Pixel Data is
  // left out) or sequence items at `depth`.
  void CompareItems(DcmItem& a, DcmItem& b, const Path& path, int depth, bool dataset) {
    if (!Enter(depth)) return;
    DcmObject* x = Next(a, nullptr, dataset);
    DcmObject* y = Next(b, nullptr, dataset);
    while (x != nullptr || y != nullptr) {
      if (y == nullptr || (x != nullptr && x->getTag() < y->getTag())) {
        ReportElement(TagChange::kRemoved, *x, ElementPath(path, *x), depth);
        x = Next(a, x, dataset);
      } else if (x == nullptr || y->getTag() < x->getTag()) {
        ReportElement(TagChange::kAdded, *y, ElementPath(path, *y), depth);
        y = Next(b, y, dataset);
      } else {
        CompareElements(*x, *y, ElementPath(path, *x), depth);
        x = Next(a, x, dataset);
        y = Next(b, y, dataset);
      }
    }
  }

  bool too_deep() const { return too_deep_; }
  std::vector<TagDifference> Take() { return std::move(differences_); }

 private:
  // The element after `after` (the first when nullptr) that is compared: group lengths are
  // left out (they follow from the rest), and the data set's Pixel Data.
  static DcmObject* Next(DcmItem& item, DcmObject* after, bool dataset) {
    DcmObject* object = item.nextInContainer(after);
    while (object != nullptr &&
           (object->getETag() == 0 || (dataset && object->getTag() == DCM_PixelData))) {
      object = item.nextInContainer(object);
    }
    return object;
  }

  // Items nest at depth 1 and more; dicom_detail refuses files that nest deeper than its
  // limit, so this only guards against a change there.
  bool Enter(int depth) {
    if (depth > dicom_detail::kMaxSequenceDepth) too_deep_ = true;
    return !too_deep_;
  }

  void Report(TagChange change, const Path& path, DcmObject* a, DcmObject* b) {
    TagDifference difference;
    difference.change = change;
    difference.keyword_path = path.keywords;
    difference.tag_path = path.tags;
    difference.vr = VrOf(b != nullptr ? *b : *a);
    if (a != nullptr) difference.old_value = ValueOf(*a);
    if (b != nullptr) difference.new_value = ValueOf(*b);
    differences_.push_back(std::move(difference));
  }

  void CompareElements(DcmObject& a, DcmObject& b, const Path& path, int depth) {
    if (!IsSequence(a) && !IsSequence(b)) {
      if (VrOf(a) != VrOf(b) || !SameValue(a, b)) Report(TagChange::kChanged, path, &a, &b);
      return;
    }
    if (!IsSequence(a) || !IsSequence(b)) {  // a sequence on one side only
      Report(TagChange::kChanged, path, &a, &b);
      if (IsSequence(a)) ReportItems(TagChange::kRemoved, a, path, depth, 0);
      if (IsSequence(b)) ReportItems(TagChange::kAdded, b, path, depth, 0);
      return;
    }
    auto& sequence_a = static_cast<DcmSequenceOfItems&>(a);
    auto& sequence_b = static_cast<DcmSequenceOfItems&>(b);
    const unsigned long common = std::min(sequence_a.card(), sequence_b.card());
    // The item count, when it changes ("(Sequence with N items)"); then item by item.
    if (sequence_a.card() != sequence_b.card()) Report(TagChange::kChanged, path, &a, &b);
    for (unsigned long i = 0; i < common; ++i) {
      CompareItems(*sequence_a.getItem(i), *sequence_b.getItem(i), ItemPath(path, i), depth + 1,
                   /*dataset=*/false);
    }
    ReportItems(TagChange::kRemoved, a, path, depth, common);
    ReportItems(TagChange::kAdded, b, path, depth, common);
  }

  // An element on one side only, and everything in it.
  void ReportElement(TagChange change, DcmObject& object, const Path& path, int depth) {
    Report(change, path, change == TagChange::kRemoved ? &object : nullptr,
           change == TagChange::kAdded ? &object : nullptr);
    if (IsSequence(object)) ReportItems(change, object, path, depth, 0);
  }

  // The items of a sequence from `first` on, element by element.
  void ReportItems(TagChange change, DcmObject& object, const Path& path, int depth,
                   unsigned long first) {
    auto& sequence = static_cast<DcmSequenceOfItems&>(object);
    for (unsigned long i = first; i < sequence.card() && Enter(depth + 1); ++i) {
      DcmItem& item = *sequence.getItem(i);
      const Path item_path = ItemPath(path, i);
      for (DcmObject* element = Next(item, nullptr, false); element != nullptr;
           element = Next(item, element, false)) {
        ReportElement(change, *element, ElementPath(item_path, *element), depth + 1);
      }
    }
  }

  std::vector<TagDifference> differences_;
  bool too_deep_ = false;
};

// Reads one side; kInvalid errors name it ("A" or "B").
StatusOr<DicomFile> ReadSide(std::string_view bytes, const char* side) {
  const std::string prefix = std::string(side) + " is not a readable DICOM file";
  const std::string failed = prefix + ": the DICOM parser failed";
  const std::string too_large = prefix + ": too large to parse in memory";
  return dicom_detail::GuardDcmtk(
      {.failed = failed, .too_large = too_large}, [&]() -> StatusOr<DicomFile> {
        StatusOr<DicomFile> file = dicom_detail::ReadDicomFile(bytes, bytes.size());
        if (file.ok() || file.status().code() != Code::kInvalid) {
          return file;
        }
        return Status::Invalid(prefix + ": " + file.status().message());
      });
}

// Puts SpecificCharacterSet back as the file has it: the data set's values are in UTF-8, and
// DCMTK's conversion rewrote the declaration.
void RestoreCharset(DicomFile& file) {
  if (file.charset == nullptr) return;
  if (file.dataset->insert(file.charset.get(), /*replaceOld=*/OFTrue).good()) {
    (void)file.charset.release();  // the data set owns it now
  }
}

StatusOr<std::vector<TagDifference>> Diff(std::string_view a, std::string_view b) {
  MEDVFS_ASSIGN_OR_RETURN(DicomFile file_a, ReadSide(a, "A"));
  MEDVFS_ASSIGN_OR_RETURN(DicomFile file_b, ReadSide(b, "B"));
  RestoreCharset(file_a);
  RestoreCharset(file_b);
  TagDiffer differ;
  differ.CompareItems(*file_a.meta, *file_b.meta, Path{}, 0, /*dataset=*/false);
  differ.CompareItems(*file_a.dataset, *file_b.dataset, Path{}, 0, /*dataset=*/true);
  if (differ.too_deep()) return Status::Invalid("DICOM data set nests sequences too deeply");
  return differ.Take();
}

}  // namespace

StatusOr<std::vector<TagDifference>> DiffDicomTags(std::string_view a, std::string_view b) {
  return dicom_detail::GuardDcmtk({.failed = "DICOM tag comparison failed",
                                   .too_large = "DICOM files too large to compare in memory",
                                   .with_what = true},
                                  [&] { return Diff(a, b); });
}

}  // namespace medvfs::store::diff_internal

namespace medvfs::store {

std::string TagChangeName(TagChange change) {
  switch (change) {
    case TagChange::kAdded:
      return "added";
    case TagChange::kRemoved:
      return "removed";
    case TagChange::kChanged:
      return "changed";
  }
  return "changed";
}

}  // namespace medvfs::store
