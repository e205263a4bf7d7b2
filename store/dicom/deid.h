// De-identification of DICOM files for research (the `@anon` view, `medvfs export
// --deidentify`): DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile, with
// the options a DeidConfig chooses, plus the clinic's extensions (StudyDate kept, BirthDate
// moved to a fixed day of its month or to its year). See man/medvfs-deid.5.
//
// Identifiers are replaced by keyed, deterministic values so that research across studies
// works and the archive's owner alone can re-identify: PatientID becomes an HMAC pseudonym
// under a subkey of the archive's data key (Archive::NewDeidentifier), UIDs become "2.25."
// UIDs derived from an HMAC of the original, dates shifted (the Modified Dates option) move by
// a per-patient number of days from another HMAC.
//
// Memory stays bounded whatever the image size: only the File Meta Information and the data
// elements before the top-level Pixel Data are parsed and rewritten (at most
// kMaxDicomHeaderBytes); the Pixel Data element itself is then copied from the source
// unchanged, and elements after it (digital signatures, trailing padding, private groups above
// 7FE0) are dropped, as the profile removes them all.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/crypto/crypto.h"
#include "store/dicom/dicom.h"
#include "store/status.h"

namespace medvfs::store {

// Retain Longitudinal Temporal Information: none (dates and times are removed or emptied as
// the profile says), the Full Dates option (kept as they are), or the Modified Dates option
// (every date shifted back by the same number of days for one patient, times kept).
enum class TemporalRetention : uint8_t { kNone = 0, kFullDates = 1, kModifiedDates = 2 };

// What becomes of PatientBirthDate: moved to the configured day of its month (19670312 ->
// 19670315 with the default day 15; a day past the month's end becomes its last day), cut to
// the first of January of its year, or emptied.
enum class BirthDateRule : uint8_t { kDayOfMonth = 0, kYear = 1, kRemove = 2 };

// A private element that may stay: its group, its private creator (the value of the
// (gggg,00xx) reservation) and the low byte of its element number, as in
// (0019,"SIEMENS MR HEADER",0C).
struct SafePrivateTag {
  uint16_t group = 0;
  std::string creator;
  uint8_t element = 0;
};

// Why a DICOM file is withheld (never published in `@anon` nor exported): what the profile
// cannot make safe. WithholdReasonName gives the stable text used in reports.
enum class WithholdReason : uint8_t {
  kNone = 0,
  kEncapsulatedDocument = 1,  // PDF, CDA, STL, OBJ, MTL...: the document itself names the patient
  kBurnedInAnnotation = 2,    // burned-in text, and the config neither includes nor masks it
  kNoMaskRule = 3,            // burned-in text, masking asked, but no pixel_mask rule matches
  kMaskUnsupported = 4,       // a rule matches, but the pixels cannot be masked (compressed...)
};
std::string_view WithholdReasonName(WithholdReason reason);

// What becomes of instances with burned-in annotation (BurnedInAnnotation YES, or absent for the
// classes that usually carry it: medvfs-deid(5)): withheld, included as they are, or masked by
// the pixel_mask rules (and withheld when none matches).
enum class BurnedInPolicy : uint8_t { kWithhold = 0, kInclude = 1, kMask = 2 };

// A rectangle of pixels, from the top left corner (column x, row y), `width` x `height` pixels.
struct MaskRectangle {
  uint32_t x = 0;
  uint32_t y = 0;
  uint32_t width = 0;
  uint32_t height = 0;
};

// A pixel_mask rule in the style of CTP's DicomPixelAnonymizer: the rectangles zeroed in every
// frame of the instances it matches. Empty texts and zero sizes match anything; texts match
// case-insensitively, manufacturer and model as substrings.
struct PixelMaskRule {
  std::string modality;
  std::string manufacturer;
  std::string model;
  uint32_t rows = 0;
  uint32_t columns = 0;
  std::vector<MaskRectangle> rectangles;
};

struct DeidConfig {
  TemporalRetention temporal = TemporalRetention::kNone;
  bool retain_patient_characteristics = false;  // sex, age, size, weight... kept
  bool retain_device_identity = false;          // device serial numbers, station names... kept
  bool retain_uids = false;                     // UIDs kept as they are (no remapping)
  bool clean_descriptors = false;  // descriptions kept (the option's "C": see medvfs-deid(5))
  bool retain_institution_identity = false;  // institution name, address, department... kept
  // The clinic's extension: StudyDate stays as it is whatever `temporal` says. Default: true.
  bool keep_study_date = true;
  BirthDateRule birth_date = BirthDateRule::kDayOfMonth;
  int birth_day = 15;  // 1..31, for kDayOfMonth
  // Pseudonyms are "<prefix>-<20 hex digits>". Default: "ANON".
  std::string pseudonym_prefix = "ANON";
  std::vector<SafePrivateTag> safe_private_tags;
  // Burned-in annotation. Default: kWithhold, no rules (the first matching rule applies).
  BurnedInPolicy burned_in = BurnedInPolicy::kWithhold;
  std::vector<PixelMaskRule> pixel_masks;
};

// Parses a config file's text (format: medvfs-deid(5)). kInvalid naming the line and what is
// wrong with it; the message never quotes more of the file than the key that is wrong.
StatusOr<DeidConfig> ParseDeidConfig(std::string_view text);
// Reads and parses a config file; kNotFound/kIoError when it cannot be read.
StatusOr<DeidConfig> LoadDeidConfig(const std::filesystem::path& file);

// Reads bytes of the source file at `offset` into `out`; returns how many (0 at the end).
using ReadAtFunction = std::function<StatusOr<size_t>(uint64_t offset, std::span<char> out)>;

// Rectangles to zero in native (uncompressed) pixel data, applied on read.
struct PixelMaskPlan {
  uint64_t start = 0;   // offset of the first pixel byte in the de-identified file
  uint64_t frames = 0;  // frames the pixel data holds whole
  uint32_t rows = 0;
  uint32_t columns = 0;
  uint32_t bytes_per_sample = 0;  // BitsAllocated / 8
  uint32_t samples_per_pixel = 0;
  bool planar = false;  // PlanarConfiguration 1: each sample's plane after the other
  std::vector<MaskRectangle> rectangles;
  bool active() const { return !rectangles.empty(); }
};

// A de-identified file, described without holding its pixels: `header`, then the source's
// bytes [pixel_offset, pixel_offset + pixel_length) unchanged (the Pixel Data element, its tag
// and length included; pixel_length is 0 for files without Pixel Data).
struct DeidentifiedFile {
  std::string header;  // File Meta Information and the de-identified elements before Pixel Data
  uint64_t pixel_offset = 0;
  uint64_t pixel_length = 0;
  // De-identified values for naming the file (never the original ones): the pseudonym, the
  // (remapped) UIDs, StudyDate as it is in the output, SeriesNumber. Empty when absent.
  std::string patient_pseudonym;
  std::string study_instance_uid;
  std::string series_instance_uid;
  std::string sop_instance_uid;
  std::string study_date;
  std::string series_number;
  // Not kNone: the file must not be published; `header` is empty and nothing can be read.
  WithholdReason withheld = WithholdReason::kNone;
  PixelMaskPlan mask;  // the rectangles zeroed in the pixels read (burned-in text masked)

  uint64_t size() const { return header.size() + pixel_length; }
};

// Where a de-identified file goes, relative to the top of the `@anon` view or of an export:
// "<pseudonym>/<StudyDate>_<StudyInstanceUID>/<SeriesNumber>_<SeriesInstanceUID>/
// <SOPInstanceUID>.dcm" from `names` (never original values), each value made safe as one
// path component ('/', '\\', NUL and control characters become '_'; an empty value
// "UNKNOWN").
std::string AnonymousPath(const DeidentifiedFile& names);

class Deidentifier {
 public:
  // `key`: the archive's de-identification subkey (Archive::NewDeidentifier derives it).
  Deidentifier(const SecretKey& key, DeidConfig config);

  const DeidConfig& config() const { return config_; }

  // The keyed pseudonym of a PatientID: "<prefix>-" and 20 lowercase hex digits of an HMAC of
  // the ID (leading and trailing spaces ignored). The same ID gives the same pseudonym in
  // every study of the archive.
  std::string Pseudonym(std::string_view patient_id) const;
  // A UID replaced deterministically: "2.25." and the decimal value of 128 bits of an HMAC of
  // the UID (trailing NUL/space padding ignored). The same UID always maps to the same one.
  std::string RemapUid(std::string_view uid) const;
  // Days the Modified Dates option moves this patient's dates back: 1..3650.
  int DateShiftDays(std::string_view patient_id) const;

  // The naming fields of DeidentifiedFile (pseudonym, remapped UIDs, StudyDate as the output
  // has it, SeriesNumber) from a version's stored tags, without reading its content: what
  // Deidentify would fill in for the same file. For paths of the `@anon` view and of exports.
  DeidentifiedFile NamesFor(const DicomTags& tags) const;

  // De-identifies one DICOM Part 10 file of `file_size` bytes read through `read`. A file the
  // profile cannot make safe comes back with `withheld` set and nothing else to publish.
  // kInvalid when it is not DICOM or is damaged (nothing is returned then: a file that cannot be
  // de-identified is never shown); kIoError when reading fails.
  // Thread-safe; never throws.
  StatusOr<DeidentifiedFile> Deidentify(const ReadAtFunction& read, uint64_t file_size) const;

  // Reads the de-identified file `file` at `offset` (header bytes, then pixel bytes read
  // through `source`, with `file.mask` applied). Returns the count (0 at or past the end);
  // kInvalid for a withheld file.
  static StatusOr<size_t> ReadDeidentified(const DeidentifiedFile& file,
                                           const ReadAtFunction& source, uint64_t offset,
                                           std::span<char> out);

 private:
  SecretKey key_;
  DeidConfig config_;
};

}  // namespace medvfs::store
