// De-identification (see deid.h and medvfs-deid(5)). Three parts:
//  - the config file parser;
//  - the keyed values: pseudonyms, UIDs and date shifts from HMACs under the archive's subkey;
//  - the file: its start is read up to the top-level Pixel Data (dicom_detail::ReadDicomFile,
//    the parser the tag views use), each element is treated as the profile table
//    (deid_profile.h) says, recursively in sequences, and the result is written back in the
//    file's own transfer syntax, so that the Pixel Data element can follow as the source's bytes.
#include "store/dicom/deid.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "store/dicom/dcmtk_guard.h"
#include "store/dicom/deid_profile.h"
#include "store/dicom/dicom.h"
#include "store/dicom/dicom_detail.h"

#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcostrmb.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"

namespace medvfs::store {
namespace {

using deid_profile::Action;

// ---- Config ------------------------------------------------------------------------------

constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr size_t kMaxQuotedKey = 64;

std::string_view Trim(std::string_view s, std::string_view chars = " \t\r") {
  const size_t begin = s.find_first_not_of(chars);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(chars) - begin + 1);
}

// The line without its comment: '#' outside double quotes starts one.
std::string_view StripComment(std::string_view line) {
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '"') quoted = !quoted;
    if (line[i] == '#' && !quoted) return line.substr(0, i);
  }
  return line;
}

bool ParseHex(std::string_view text, size_t digits, uint32_t* out) {
  if (text.size() != digits) return false;
  uint32_t value = 0;
  for (char c : text) {
    const int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
    if (d < 0) return false;
    value = value * 16 + static_cast<uint32_t>(d);
  }
  *out = value;
  return true;
}

std::optional<bool> ParseYesNo(std::string_view value) {
  if (value == "yes") return true;
  if (value == "no") return false;
  return std::nullopt;
}

// (gggg,"Creator",ee): an odd group above 0008, a creator of 1..64 printable characters other
// than '\' and '"', and the element's low byte.
std::optional<SafePrivateTag> ParseSafePrivateTag(std::string_view value) {
  if (value.size() < 2 || value.front() != '(' || value.back() != ')') return std::nullopt;
  value = value.substr(1, value.size() - 2);
  const size_t open = value.find('"'), close = value.rfind('"');
  if (open == std::string_view::npos || close <= open) return std::nullopt;
  const std::string_view group_text = Trim(value.substr(0, open));
  const std::string_view element_text = Trim(value.substr(close + 1));
  const std::string_view creator = value.substr(open + 1, close - open - 1);
  uint32_t group = 0, element = 0;
  if (!group_text.ends_with(',') || !element_text.starts_with(',') ||
      !ParseHex(Trim(group_text.substr(0, group_text.size() - 1)), 4, &group) ||
      !ParseHex(Trim(element_text.substr(1)), 2, &element) || (group & 1) == 0 || group < 9 ||
      group == 0xFFFF || creator.empty() || creator.size() > 64 ||
      !std::all_of(creator.begin(), creator.end(),
                   [](char c) { return c >= 0x20 && c < 0x7F && c != '\\' && c != '"'; })) {
    return std::nullopt;
  }
  return SafePrivateTag{static_cast<uint16_t>(group), std::string(creator),
                        static_cast<uint8_t>(element)};
}

bool ParseNumber(std::string_view text, uint32_t* out) {
  if (text.empty() || text.size() > 6) return false;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  *out = value;
  return true;
}

// "(x,y,w,h)" with w and h above zero.
std::optional<MaskRectangle> ParseRectangle(std::string_view text) {
  if (text.size() < 2 || text.front() != '(' || text.back() != ')') return std::nullopt;
  text = text.substr(1, text.size() - 2);
  uint32_t numbers[4];
  for (uint32_t& number : numbers) {
    const size_t comma = text.find(',');
    if (!ParseNumber(Trim(text.substr(0, comma)), &number)) return std::nullopt;
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (&number != &numbers[3] && comma == std::string_view::npos) return std::nullopt;
    if (&number == &numbers[3] && comma != std::string_view::npos) return std::nullopt;
  }
  if (numbers[2] == 0 || numbers[3] == 0) return std::nullopt;
  return MaskRectangle{numbers[0], numbers[1], numbers[2], numbers[3]};
}

// The value of `key=value` or `key="quoted value"` at the start of `text`, consumed.
std::optional<std::string> TakeWordValue(std::string_view* text) {
  std::string_view rest = Trim(*text);
  std::string value;
  if (rest.starts_with('"')) {
    const size_t close = rest.find('"', 1);
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    value = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
  } else {
    const size_t end = rest.find_first_of(" \t");
    value = std::string(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  }
  if (value.empty()) return std::nullopt;
  *text = rest;
  return value;
}

// [modality=M] [manufacturer="T"] [model="T"] [size=RxC] : (x,y,w,h) (x,y,w,h)...
std::optional<PixelMaskRule> ParsePixelMaskRule(std::string_view value) {
  const size_t colon =
      value.find(':', value.rfind('"') == std::string_view::npos ? 0 : value.rfind('"'));
  if (colon == std::string_view::npos) return std::nullopt;
  PixelMaskRule rule;
  std::string_view words = Trim(value.substr(0, colon));
  while (!words.empty()) {
    const size_t equals = words.find('=');
    if (equals == std::string_view::npos) return std::nullopt;
    const std::string_view key = Trim(words.substr(0, equals));
    words = words.substr(equals + 1);
    const std::optional<std::string> word = TakeWordValue(&words);
    if (!word) return std::nullopt;
    words = Trim(words);
    if (key == "modality") {
      rule.modality = *word;
    } else if (key == "manufacturer") {
      rule.manufacturer = *word;
    } else if (key == "model") {
      rule.model = *word;
    } else if (key == "size") {
      const size_t x = word->find('x');
      if (x == std::string::npos ||
          !ParseNumber(std::string_view(*word).substr(0, x), &rule.rows) ||
          !ParseNumber(std::string_view(*word).substr(x + 1), &rule.columns) || rule.rows == 0 ||
          rule.columns == 0) {
        return std::nullopt;
      }
    } else {
      return std::nullopt;
    }
  }
  std::string_view rectangles = Trim(value.substr(colon + 1));
  while (!rectangles.empty()) {
    const size_t close = rectangles.find(')');
    if (close == std::string_view::npos) return std::nullopt;
    std::optional<MaskRectangle> rectangle = ParseRectangle(Trim(rectangles.substr(0, close + 1)));
    if (!rectangle) return std::nullopt;
    rule.rectangles.push_back(*rectangle);
    rectangles = Trim(rectangles.substr(close + 1));
  }
  if (rule.rectangles.empty()) return std::nullopt;
  return rule;
}

bool ValidPrefix(std::string_view prefix) {
  return !prefix.empty() && prefix.size() <= 16 &&
         std::all_of(prefix.begin(), prefix.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
         });
}

// Applies one `key = value`; the error text, or empty when it is fine.
std::string ApplySetting(std::string_view key, std::string_view value, DeidConfig* config) {
  static const std::map<std::string_view, bool DeidConfig::*> kFlags = {
      {"retain_patient_characteristics", &DeidConfig::retain_patient_characteristics},
      {"retain_device_identity", &DeidConfig::retain_device_identity},
      {"retain_uids", &DeidConfig::retain_uids},
      {"clean_descriptors", &DeidConfig::clean_descriptors},
      {"retain_institution_identity", &DeidConfig::retain_institution_identity},
      {"keep_study_date", &DeidConfig::keep_study_date},
  };
  if (const auto flag = kFlags.find(key); flag != kFlags.end()) {
    const std::optional<bool> yes = ParseYesNo(value);
    if (!yes) return "must be yes or no";
    config->*(flag->second) = *yes;
  } else if (key == "retain_longitudinal_temporal") {
    if (value == "no") {
      config->temporal = TemporalRetention::kNone;
    } else if (value == "full") {
      config->temporal = TemporalRetention::kFullDates;
    } else if (value == "modified") {
      config->temporal = TemporalRetention::kModifiedDates;
    } else {
      return "must be no, full or modified";
    }
  } else if (key == "birth_date") {
    if (value == "year") {
      config->birth_date = BirthDateRule::kYear;
    } else if (value == "remove") {
      config->birth_date = BirthDateRule::kRemove;
    } else {
      const std::string_view day = value.starts_with("day") ? Trim(value.substr(3)) : "";
      int n = 0;
      for (char c : day) n = c >= '0' && c <= '9' && n <= 31 ? n * 10 + (c - '0') : 99;
      if (!value.starts_with("day ") || day.empty() || n < 1 || n > 31) {
        return "must be 'day N' (N 1..31), year or remove";
      }
      config->birth_date = BirthDateRule::kDayOfMonth;
      config->birth_day = n;
    }
  } else if (key == "pseudonym_prefix") {
    if (!ValidPrefix(value)) return "must be 1..16 characters of A-Z a-z 0-9 _ -";
    config->pseudonym_prefix = std::string(value);
  } else if (key == "burned_in_annotation") {
    if (value == "withhold") {
      config->burned_in = BurnedInPolicy::kWithhold;
    } else if (value == "include") {
      config->burned_in = BurnedInPolicy::kInclude;
    } else if (value == "mask") {
      config->burned_in = BurnedInPolicy::kMask;
    } else {
      return "must be withhold, include or mask";
    }
  } else if (key == "pixel_mask") {
    std::optional<PixelMaskRule> rule = ParsePixelMaskRule(value);
    if (!rule) {
      return "must be [modality=M] [manufacturer=\"T\"] [model=\"T\"] [size=ROWSxCOLUMNS] : "
             "(x,y,w,h)...";
    }
    config->pixel_masks.push_back(std::move(*rule));
  } else if (key == "safe_private_tag") {
    std::optional<SafePrivateTag> tag = ParseSafePrivateTag(value);
    if (!tag) return "must be (gggg,\"Creator\",ee) with an odd private group gggg";
    config->safe_private_tags.push_back(std::move(*tag));
  } else {
    return "unknown key";
  }
  return {};
}

std::string QuotedKey(std::string_view key) {
  return "'" + std::string(key.substr(0, kMaxQuotedKey)) + "'";
}

// ---- Keyed values ------------------------------------------------------------------------

std::array<uint8_t, 32> KeyedMac(const SecretKey& key, std::string_view label,
                                 std::string_view data) {
  std::string message(label);
  message.push_back('\0');
  message.append(data);
  const std::array<uint8_t, 32> mac = HmacSha256(key, message);
  WipeString(&message);
  return mac;
}

// Decimal digits of a big-endian unsigned integer, by repeated division by ten.
std::string Decimal(std::vector<uint8_t> number) {
  std::string digits;
  while (std::any_of(number.begin(), number.end(), [](uint8_t b) { return b != 0; })) {
    unsigned remainder = 0;
    for (uint8_t& byte : number) {
      const unsigned value = remainder * 256 + byte;
      byte = static_cast<uint8_t>(value / 10);
      remainder = value % 10;
    }
    digits.push_back(static_cast<char>('0' + remainder));
  }
  if (digits.empty()) digits = "0";
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::string_view TrimId(std::string_view id) { return Trim(id, std::string_view(" \0", 2)); }

}  // namespace

StatusOr<DeidConfig> ParseDeidConfig(std::string_view text) {
  DeidConfig config;
  std::map<std::string, size_t, std::less<>> seen;
  size_t number = 0;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view raw = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++number;
    const std::string_view line = Trim(StripComment(raw));
    if (line.empty()) continue;
    const std::string prefix = "line " + std::to_string(number) + ": ";
    const size_t equals = line.find('=');
    if (equals == std::string_view::npos) return Status::Invalid(prefix + "expected key = value");
    const std::string_view key = Trim(line.substr(0, equals));
    const std::string_view value = Trim(line.substr(equals + 1));
    if (key.empty()) return Status::Invalid(prefix + "missing key before '='");
    if (key != "safe_private_tag" && key != "pixel_mask" && seen.contains(key)) {
      return Status::Invalid(prefix + QuotedKey(key) + " is already set on line " +
                             std::to_string(seen.find(key)->second));
    }
    const std::string error = ApplySetting(key, value, &config);
    if (!error.empty()) {
      std::string message = prefix;
      message += QuotedKey(key);
      message += ": ";
      message += error;
      return Status::Invalid(message);
    }
    seen.emplace(std::string(key), number);
  }
  return config;
}

StatusOr<DeidConfig> LoadDeidConfig(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) {
    return Status::NotFound("de-identification config file does not exist");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::IoError("cannot open the de-identification config file");
  std::string text;
  text.resize(kMaxConfigBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return Status::IoError("cannot read the de-identification config file");
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigBytes) {
    return Status::Invalid("de-identification config file is over 1 MiB");
  }
  return ParseDeidConfig(text);
}

std::string_view WithholdReasonName(WithholdReason reason) {
  switch (reason) {
    case WithholdReason::kNone:
      return "none";
    case WithholdReason::kEncapsulatedDocument:
      return "encapsulated-document";
    case WithholdReason::kBurnedInAnnotation:
      return "burned-in-annotation";
    case WithholdReason::kNoMaskRule:
      return "burned-in-annotation-no-mask-rule";
    case WithholdReason::kMaskUnsupported:
      return "burned-in-annotation-cannot-mask";
  }
  return "unknown";
}

Deidentifier::Deidentifier(const SecretKey& key, DeidConfig config)
    : key_(key), config_(std::move(config)) {}

std::string Deidentifier::Pseudonym(std::string_view patient_id) const {
  const std::array<uint8_t, 32> mac = KeyedMac(key_, "patient-id", TrimId(patient_id));
  return config_.pseudonym_prefix + "-" + HexEncode(mac).substr(0, 20);
}

std::string Deidentifier::RemapUid(std::string_view uid) const {
  const std::array<uint8_t, 32> mac = KeyedMac(key_, "uid", TrimId(uid));
  return "2.25." + Decimal(std::vector<uint8_t>(mac.begin(), mac.begin() + 16));
}

int Deidentifier::DateShiftDays(std::string_view patient_id) const {
  const std::array<uint8_t, 32> mac = KeyedMac(key_, "date-shift", TrimId(patient_id));
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value = (value << 8) | mac[i];
  return 1 + static_cast<int>(value % 3650);
}

namespace {

// ---- The data set ------------------------------------------------------------------------

uint32_t TagOf(const DcmTagKey& key) { return (uint32_t{key.getGroup()} << 16) | key.getElement(); }
constexpr uint32_t kPixelDataTag = 0x7FE00010;
constexpr const char* kDummyText = "ANONYMIZED";

// The VR the element's value has, or for an element stored as UN, the dictionary's.
DcmEVR VrOf(DcmObject& object) {
  const DcmEVR evr = object.getVR();
  if (evr != EVR_UN) return evr;
  return DcmTag(DcmTagKey(object.getGTag(), object.getETag())).getEVR();
}

// The value as text; for an element stored as UN, its bytes without trailing padding.
std::string TextOf(DcmObject& object) {
  auto* element = dynamic_cast<DcmElement*>(&object);
  if (element == nullptr) return {};
  if (object.isaString()) {
    OFString value;
    if (element->getOFStringArray(value).bad()) return {};
    return std::string(value.c_str(), value.size());
  }
  Uint8* data = nullptr;
  if (object.getVR() != EVR_UN || element->getUint8Array(data).bad() || data == nullptr) return {};
  std::string text(reinterpret_cast<const char*>(data), element->getLength());
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

// UI elements that name classes, syntaxes and coding schemes, not instances: never remapped.
bool NamesAClass(const DcmTagKey& key) {
  const std::string keyword = dicom_detail::KeywordOf(DcmTag(key));
  for (const char* part : {"ClassUID", "TransferSyntax", "CodingSchemeUID", "MappingResourceUID",
                           "ContextUID", "ContextGroupExtensionCreatorUID", "SOPClassesIn"}) {
    if (keyword.find(part) != std::string::npos) return true;
  }
  return false;
}

// Dates that version a coding scheme or context group (ContextGroupVersion...), not an event
// of the patient's: never shifted nor emptied.
bool DatesAVersion(const DcmTagKey& key) {
  return dicom_detail::KeywordOf(DcmTag(key)).find("Version") != std::string::npos;
}

// Applies the profile to a data set (or the File Meta Information), item by item.
class Cleaner {
 public:
  Cleaner(const Deidentifier& deid, std::string patient_id)
      : deid_(deid),
        config_(deid.config()),
        patient_id_(std::move(patient_id)),
        shift_days_(deid.DateShiftDays(patient_id_)) {}

  void CleanItem(DcmItem& item) {
    std::vector<DcmObject*> objects;
    for (DcmObject* o = item.nextInContainer(nullptr); o != nullptr; o = item.nextInContainer(o)) {
      objects.push_back(o);
    }
    const std::vector<DcmObject*> private_kept = SafePrivateElements(objects);
    for (DcmObject* object : objects) {
      const bool is_private = (object->getGTag() & 1) != 0;
      if (is_private &&
          std::find(private_kept.begin(), private_kept.end(), object) == private_kept.end()) {
        delete item.remove(object);
      } else if (is_private) {
        Recurse(*object);
      } else {
        CleanElement(item, object);
      }
    }
  }

  void CleanMeta(DcmMetaInfo& meta) {
    for (const DcmTagKey& key :
         {DCM_SourceApplicationEntityTitle, DCM_SendingApplicationEntityTitle,
          DCM_ReceivingApplicationEntityTitle, DCM_PrivateInformationCreatorUID,
          DCM_PrivateInformation}) {
      delete meta.remove(key);
    }
    DcmElement* element = nullptr;
    if (!config_.retain_uids &&
        meta.findAndGetElement(DCM_MediaStorageSOPInstanceUID, element).good()) {
      PutString(meta, element, RemappedUids(TextOf(*element)));
    }
  }

  bool study_date_kept() const { return study_date_kept_; }

 private:
  // The private elements of `item` that stay: those of a safe_private_tag, and the private
  // creators that reserve them.
  std::vector<DcmObject*> SafePrivateElements(const std::vector<DcmObject*>& objects) const {
    std::map<uint32_t, DcmObject*> creators;  // (group << 8 | block) -> creator element
    for (DcmObject* o : objects) {
      if ((o->getGTag() & 1) != 0 && o->getETag() >= 0x10 && o->getETag() <= 0xFF) {
        creators[(uint32_t{o->getGTag()} << 8) | o->getETag()] = o;
      }
    }
    std::vector<DcmObject*> kept;
    for (DcmObject* o : objects) {
      if ((o->getGTag() & 1) == 0 || o->getETag() < 0x1000) continue;
      const auto creator = creators.find((uint32_t{o->getGTag()} << 8) | (o->getETag() >> 8));
      if (creator == creators.end()) continue;
      const std::string name(Trim(TextOf(*creator->second), std::string_view(" \0", 2)));
      const bool safe = std::any_of(config_.safe_private_tags.begin(),
                                    config_.safe_private_tags.end(), [&](const SafePrivateTag& t) {
                                      return t.group == o->getGTag() &&
                                             t.element == (o->getETag() & 0xFF) &&
                                             t.creator == name;
                                    });
      if (!safe) continue;
      kept.push_back(o);
      if (std::find(kept.begin(), kept.end(), creator->second) == kept.end()) {
        kept.push_back(creator->second);
      }
    }
    return kept;
  }

  void Recurse(DcmObject& object) {
    if (object.ident() != EVR_SQ) return;
    auto& sequence = static_cast<DcmSequenceOfItems&>(object);
    for (unsigned long i = 0; i < sequence.card(); ++i) {
      if (DcmItem* item = sequence.getItem(i)) CleanItem(*item);
    }
  }

  void CleanElement(DcmItem& item, DcmObject* object) {
    const DcmTagKey key(object->getGTag(), object->getETag());
    const uint32_t tag = TagOf(key);
    const uint16_t group = key.getGroup();
    const bool curve = group >= 0x5000 && group <= 0x501E;
    const bool overlay_text = group >= 0x6000 && group <= 0x601E &&
                              (key.getElement() == 0x3000 || key.getElement() == 0x4000);
    if (key.getElement() == 0x0000 || curve || overlay_text) {
      delete item.remove(object);
      return;
    }
    if (key == DCM_PatientID || key == DCM_PatientName) {
      // PatientName takes the pseudonym of the PatientID beside it (not yet replaced: it comes
      // later in tag order).
      DcmElement* id_element = nullptr;
      const std::string id = key == DCM_PatientID ? TextOf(*object)
                             : item.findAndGetElement(DCM_PatientID, id_element, OFFalse).good()
                                 ? TextOf(*id_element)
                                 : std::string();
      if (TrimId(id).empty()) return Empty(object);
      return PutString(item, object, deid_.Pseudonym(id));
    }
    if (key == DCM_PatientBirthDate) {
      std::string date = TextOf(*object);
      if (config_.temporal == TemporalRetention::kModifiedDates) {
        date = deid_profile::ShiftDates(date, false, shift_days_).value_or("");
      }
      return PutString(item, object, deid_profile::BirthDateByRule(date, config_));
    }
    if (key == DCM_StudyDate && config_.keep_study_date) {
      study_date_kept_ = study_date_kept_ || !TextOf(*object).empty();
      return;
    }
    const deid_profile::ProfileRow* row = deid_profile::FindProfileRow(tag);
    if (row != nullptr) return Apply(item, object, deid_profile::EffectiveAction(*row, config_));
    Keep(item, object, /*in_table=*/false);
  }

  void Apply(DcmItem& item, DcmObject* object, Action action) {
    const bool sequence = object->ident() == EVR_SQ || VrOf(*object) == EVR_SQ;
    switch (action) {
      case Action::kNone:
      case Action::kK:
      case Action::kC:
        return Keep(item, object, /*in_table=*/true);
      case Action::kX:
        delete item.remove(object);
        return;
      case Action::kU:
        if (VrOf(*object) == EVR_UI) return RemapElement(item, object);
        return Empty(object);
      case Action::kZ:
      case Action::kXZ:
        return Empty(object);
      case Action::kD:
      case Action::kZD:
        return sequence ? Empty(object) : Dummy(item, object);
      case Action::kXD:
      case Action::kXZD:
        if (sequence) {
          delete item.remove(object);
          return;
        }
        return Dummy(item, object);
      case Action::kXZU:
        if (object->ident() == EVR_SQ) return Recurse(*object);
        if (VrOf(*object) == EVR_UI) return RemapElement(item, object);
        return Empty(object);
    }
  }

  // What stays: sequences are cleaned inside, UIDs remapped unless they name classes (the table's
  // U rows aside), dates shifted (Modified Dates) or, without a temporal option, emptied when the
  // table does not cover them (medvfs-deid(5)).
  void Keep(DcmItem& item, DcmObject* object, bool in_table) {
    if (object->ident() == EVR_SQ) return Recurse(*object);
    const DcmEVR evr = VrOf(*object);
    if (evr == EVR_SQ) {  // a sequence stored as UN: its contents cannot be cleaned
      delete item.remove(object);
      return;
    }
    if (evr == EVR_UI && !in_table && !config_.retain_uids && !NamesAClass(object->getTag())) {
      return RemapElement(item, object);
    }
    if ((evr != EVR_DA && evr != EVR_DT) || DatesAVersion(object->getTag())) return;
    if (config_.temporal == TemporalRetention::kModifiedDates) {
      const auto shifted = deid_profile::ShiftDates(TextOf(*object), evr == EVR_DT, shift_days_);
      return shifted ? PutString(item, object, *shifted) : Empty(object);
    }
    if (config_.temporal == TemporalRetention::kNone && !in_table) Empty(object);
  }

  void RemapElement(DcmItem& item, DcmObject* object) {
    if (config_.retain_uids) return;
    PutString(item, object, RemappedUids(TextOf(*object)));
  }

  // Each value of a UI element remapped, well-known UIDs (DCMTK's UID dictionary) aside.
  std::string RemappedUids(const std::string& in) const {
    std::string out;
    std::string_view rest = in;
    while (true) {
      const size_t end = rest.find('\\');
      const std::string uid(TrimId(rest.substr(0, end)));
      const bool known = uid.empty() || dcmFindNameOfUID(uid.c_str()) != nullptr;
      out += known ? uid : deid_.RemapUid(uid);
      if (end == std::string_view::npos) break;
      out += '\\';
      rest.remove_prefix(end + 1);
    }
    return out;
  }

  void Dummy(DcmItem& item, DcmObject* object) {
    switch (VrOf(*object)) {
      case EVR_UI:
        return RemapElement(item, object);
      case EVR_DA:
        return PutString(item, object, "19000101");
      case EVR_DT:
        return PutString(item, object, "19000101000000");
      case EVR_TM:
        return PutString(item, object, "000000");
      case EVR_DS:
      case EVR_IS:
        return PutString(item, object, "0");
      case EVR_AS:
        return PutString(item, object, "000D");
      case EVR_AE:
      case EVR_CS:
      case EVR_LO:
      case EVR_LT:
      case EVR_PN:
      case EVR_SH:
      case EVR_ST:
      case EVR_UC:
      case EVR_UT:
      case EVR_UR:
        return PutString(item, object, kDummyText);
      case EVR_OB:
      case EVR_UN:
        if (auto* element = dynamic_cast<DcmElement*>(object)) {
          const Uint8 zeros[2] = {0, 0};
          if (element->putUint8Array(zeros, 2).good()) return;
        }
        return Empty(object);
      default:
        return Empty(object);
    }
  }

  static void Empty(DcmObject* object) {
    if (object->ident() == EVR_SQ) {
      (void)static_cast<DcmSequenceOfItems*>(object)->clear();
    } else if (auto* element = dynamic_cast<DcmElement*>(object)) {
      (void)element->clear();
    }
  }

  // Sets a string value; an element whose class cannot hold strings (one stored as UN) is
  // replaced by one of the dictionary's VR.
  static void PutString(DcmItem& item, DcmObject* object, const std::string& value) {
    if (object->isaString()) {
      (void)static_cast<DcmElement*>(object)->putOFStringArray(
          OFString(value.data(), value.size()));
      return;
    }
    const DcmTagKey key(object->getGTag(), object->getETag());
    delete item.remove(object);
    if (value.empty()) {
      (void)item.insertEmptyElement(DcmTag(key));
    } else {
      (void)item.putAndInsertString(DcmTag(key), value.c_str());
    }
  }

  const Deidentifier& deid_;
  const DeidConfig& config_;
  const std::string patient_id_;
  const int shift_days_;
  bool study_date_kept_ = false;
};

// ---- Reading -----------------------------------------------------------------------------

constexpr size_t kSniffBytes = 4 << 10;
constexpr size_t kFirstStep = 256 << 10;
constexpr size_t kMaxStep = 8 << 20;

// Appends the source's bytes up to `target` (fewer at its end), whatever short reads it makes.
Status ReadUpTo(const ReadAtFunction& read, uint64_t target, std::string* bytes) {
  size_t have = bytes->size();
  bytes->resize(static_cast<size_t>(target));
  while (have < target) {
    auto n = read(have, std::span<char>(bytes->data() + have, bytes->size() - have));
    if (!n.ok()) {
      bytes->resize(have);
      return n.status();
    }
    if (*n == 0) break;
    have += std::min<size_t>(*n, bytes->size() - have);
  }
  bytes->resize(have);
  return Status::Ok();
}

// Whether the bytes from `from` on hold the Pixel Data tag in either byte order.
bool MayHoldPixelData(std::string_view bytes, size_t from) {
  static constexpr std::string_view kLittle("\xE0\x7F\x10\x00", 4), kBig("\x7F\xE0\x00\x10", 4);
  return bytes.find(kLittle, from) != std::string_view::npos ||
         bytes.find(kBig, from) != std::string_view::npos;
}

struct SourceHeader {
  std::string bytes;  // the start of the file (patient data: wiped when done)
  dicom_detail::DicomFile file;
  ~SourceHeader() { WipeString(&bytes); }
};

// Reads the start of the file, growing it until the parser finds the top-level Pixel Data (a
// candidate is where its tag bytes occur) or the whole file, at most kMaxDicomHeaderBytes.
Status ReadSourceHeader(const ReadAtFunction& read, uint64_t file_size, SourceHeader* out) {
  const uint64_t limit = std::min<uint64_t>(file_size, kMaxDicomHeaderBytes);
  std::string& bytes = out->bytes;
  // 4 KiB, as the archive looks at: a data set without a Part 10 header is recognised by its
  // first elements (LooksLikeDicom), and is written out with a File Meta Information.
  MEDVFS_RETURN_IF_ERROR(ReadUpTo(read, std::min<uint64_t>(limit, kSniffBytes), &bytes));
  if (!LooksLikeDicom(bytes)) return Status::Invalid("not DICOM (no DICM magic, no data set)");
  size_t step = kFirstStep;
  while (true) {
    const size_t old_size = bytes.size();
    MEDVFS_RETURN_IF_ERROR(ReadUpTo(read, std::min<uint64_t>(limit, old_size + step), &bytes));
    step = std::min(step * 2, kMaxStep);
    const bool at_end = bytes.size() >= limit || bytes.size() == old_size;
    // Candidates near the old end are tried again: their element header may have been cut.
    if (!at_end && !MayHoldPixelData(bytes, old_size > 300 ? old_size - 300 : 0)) continue;
    auto parsed = dicom_detail::ReadDicomFile(bytes, file_size);
    if (parsed.ok() && (parsed->pixel.present || bytes.size() >= file_size)) {
      out->file = std::move(parsed).value();
      return Status::Ok();
    }
    if (!at_end) continue;
    if (!parsed.ok()) return parsed.status();
    if (bytes.size() < file_size && bytes.size() >= kMaxDicomHeaderBytes) {
      return Status::Invalid("DICOM header is over 64 MiB before its Pixel Data");
    }
    return Status::Invalid("DICOM file is shorter than its size says");
  }
}

uint32_t LittleU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// The end of encapsulated Pixel Data whose items start at `pos`: after the sequence delimiter.
StatusOr<uint64_t> EncapsulatedEnd(const ReadAtFunction& read, uint64_t file_size, uint64_t pos) {
  while (true) {
    if (pos > file_size || file_size - pos < 8) {
      return Status::Invalid("DICOM file is truncated inside its Pixel Data");
    }
    std::string item;
    const ReadAtFunction from_pos = [&](uint64_t offset, std::span<char> out) {
      return read(pos + offset, out);
    };
    MEDVFS_RETURN_IF_ERROR(ReadUpTo(from_pos, 8, &item));
    if (item.size() < 8) return Status::Invalid("DICOM file is truncated inside its Pixel Data");
    const uint32_t tag = (uint32_t{static_cast<unsigned char>(item[1])} << 24) |
                         (uint32_t{static_cast<unsigned char>(item[0])} << 16) |
                         (uint32_t{static_cast<unsigned char>(item[3])} << 8) |
                         static_cast<unsigned char>(item[2]);
    const uint32_t length = LittleU32(item.data() + 4);
    if (tag == 0xFFFEE0DD) return pos + 8;
    if (tag != 0xFFFEE000 || length == 0xFFFFFFFFu) {
      return Status::Invalid("DICOM encapsulated Pixel Data is damaged");
    }
    if (length > file_size - pos - 8) {
      return Status::Invalid("DICOM file is truncated inside its Pixel Data");
    }
    pos += 8 + uint64_t{length};
  }
}

// ---- Writing -----------------------------------------------------------------------------

// The attributes that say what was done (PS3.15 E.1.1, CID 7050).
void AddMethodAttributes(DcmDataset& dataset, const DeidConfig& config, bool study_date_kept,
                         bool masked) {
  struct Code {
    bool on;
    const char* value;
    const char* meaning;
    const char* text;
  };
  const bool full = config.temporal == TemporalRetention::kFullDates;
  const bool modified = config.temporal == TemporalRetention::kModifiedDates;
  const Code codes[] = {
      {true, "113100", "Basic Application Confidentiality Profile", "PS3.15 E.1 Basic Profile"},
      {full, "113106", "Retain Longitudinal Temporal Information Full Dates Option",
       "Retain Longitudinal Full Dates"},
      {modified, "113107", "Retain Longitudinal Temporal Information Modified Dates Option",
       "Retain Longitudinal Modified Dates"},
      {config.retain_patient_characteristics, "113108", "Retain Patient Characteristics Option",
       "Retain Patient Characteristics"},
      {config.retain_device_identity, "113109", "Retain Device Identity Option",
       "Retain Device Identity"},
      {config.retain_uids, "113110", "Retain UIDs Option", "Retain UIDs"},
      {config.retain_institution_identity, "113112", "Retain Institution Identity Option",
       "Retain Institution Identity"},
      {config.clean_descriptors, "113105", "Clean Descriptors Option", "Clean Descriptors"},
  };
  delete dataset.remove(DCM_DeidentificationMethodCodeSequence);
  std::string method = std::string("medvfs ") + deid_profile::kProfileEdition;
  for (const Code& code : codes) {
    if (!code.on) continue;
    method += "\\";
    method += code.text;
    DcmItem* item = nullptr;
    if (dataset.findOrCreateSequenceItem(DCM_DeidentificationMethodCodeSequence, item, -2).good()) {
      (void)item->putAndInsertString(DCM_CodeValue, code.value);
      (void)item->putAndInsertString(DCM_CodingSchemeDesignator, "DCM");
      (void)item->putAndInsertString(DCM_CodeMeaning, code.meaning);
    }
  }
  if (study_date_kept) method += "\\StudyDate kept unmodified";
  if (masked) method += "\\Burned-in annotation masked";
  method += config.birth_date == BirthDateRule::kDayOfMonth
                ? "\\BirthDate moved to day " + std::to_string(config.birth_day) + " of its month"
            : config.birth_date == BirthDateRule::kYear ? "\\BirthDate cut to its year"
                                                        : "\\BirthDate removed";
  (void)dataset.putAndInsertString(DCM_PatientIdentityRemoved, "YES");
  (void)dataset.putAndInsertString(DCM_DeidentificationMethod, method.c_str());
  // A true StudyDate in the output means the dates are not all removed (nor all shifted).
  // Modified Dates with a kept StudyDate stays MODIFIED: DeidentificationMethod says which one
  // date is true.
  const char* temporal = full              ? "UNMODIFIED"
                         : modified        ? "MODIFIED"
                         : study_date_kept ? "UNMODIFIED"
                                           : "REMOVED";
  (void)dataset.putAndInsertString(DCM_LongitudinalTemporalInformationModified, temporal);
}

// The File Meta Information and the data set as a Part 10 file start (preamble included), the
// data set in `xfer` and without group lengths.
StatusOr<std::string> WriteHeader(DcmMetaInfo& meta, std::unique_ptr<DcmDataset> dataset,
                                  E_TransferSyntax xfer) {
  DcmFileFormat file(dataset.release(), /*deepCopy=*/OFFalse);
  *file.getMetaInfo() = meta;
  std::string out;
  std::vector<char> buffer(64 << 10);
  DcmOutputBufferStream stream(buffer.data(), static_cast<offile_off_t>(buffer.size()));
  file.transferInit();
  OFCondition cond = EC_StreamNotifyClient;
  while (cond == EC_StreamNotifyClient) {
    cond = file.write(stream, xfer, EET_ExplicitLength, nullptr, EGL_withoutGL, EPD_noChange);
    if (cond == EC_Normal) stream.flush();
    void* data = nullptr;
    offile_off_t length = 0;
    stream.flushBuffer(data, length);
    out.append(static_cast<const char*>(data), static_cast<size_t>(length));
  }
  file.transferEnd();
  if (cond.bad()) {
    WipeString(&out);
    return Status::Invalid(std::string("de-identified DICOM header cannot be written: ") +
                           cond.text());
  }
  return out;
}

// The value of a top-level element as text (also one stored as UN), trimmed.
std::string TopLevelText(DcmDataset& dataset, const DcmTagKey& key) {
  DcmElement* element = nullptr;
  if (dataset.findAndGetElement(key, element, OFFalse).bad() || element == nullptr) return {};
  return std::string(TrimId(TextOf(*element)));
}

// ---- What cannot be made safe ------------------------------------------------------------

// Encapsulated PDF, CDA, STL, OBJ and MTL Storage: the document inside names the patient.
constexpr std::string_view kEncapsulatedDocumentClasses[] = {
    "1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.104.2",
    "1.2.840.10008.5.1.4.1.1.104.3", "1.2.840.10008.5.1.4.1.1.104.4",
    "1.2.840.10008.5.1.4.1.1.104.5"};

// The classes that usually carry burned-in text when BurnedInAnnotation is absent: ultrasound
// (the patient's name and the date in the image's header bar) and secondary capture (scanned
// documents, screenshots, the classes of document scans). medvfs-deid(5) lists them.
constexpr std::string_view kBurnedInClasses[] = {
    "1.2.840.10008.5.1.4.1.1.6.1",  // Ultrasound Image
    "1.2.840.10008.5.1.4.1.1.6",    // Ultrasound Image (retired)
    "1.2.840.10008.5.1.4.1.1.3.1",  // Ultrasound Multi-frame Image
    "1.2.840.10008.5.1.4.1.1.3",    // Ultrasound Multi-frame Image (retired)
    "1.2.840.10008.5.1.4.1.1.7",    // Secondary Capture Image
    "1.2.840.10008.5.1.4.1.1.7.1",  // Multi-frame Single Bit Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.2",  // Multi-frame Grayscale Byte Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.3",  // Multi-frame Grayscale Word Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.4",  // Multi-frame True Color Secondary Capture
};

template <size_t N>
bool OneOf(const std::string_view (&list)[N], std::string_view value) {
  return std::find(std::begin(list), std::end(list), value) != std::end(list);
}

std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// What the source says about its class and pixels, read before it is cleaned.
struct PixelFacts {
  std::string sop_class;
  std::string modality;
  std::string manufacturer;
  std::string model;
  std::string burned_in;  // BurnedInAnnotation, upper case
  std::string photometric;
  uint16_t rows = 0, columns = 0, bits_allocated = 0, samples = 0, planar = 0;
  uint64_t frames = 1;
  bool has_document = false;
};

PixelFacts FactsOf(DcmDataset& dataset, DcmMetaInfo& meta) {
  PixelFacts facts;
  const auto text = [&](const DcmTagKey& key) { return TopLevelText(dataset, key); };
  facts.sop_class = text(DCM_SOPClassUID);
  if (facts.sop_class.empty()) {
    DcmElement* element = nullptr;
    if (meta.findAndGetElement(DCM_MediaStorageSOPClassUID, element).good()) {
      facts.sop_class = TrimId(TextOf(*element));
    }
  }
  facts.modality = Upper(text(DCM_Modality));
  facts.manufacturer = Upper(text(DCM_Manufacturer));
  facts.model = Upper(text(DCM_ManufacturerModelName));
  facts.burned_in = Upper(text(DCM_BurnedInAnnotation));
  facts.photometric = Upper(text(DCM_PhotometricInterpretation));
  (void)dataset.findAndGetUint16(DCM_Rows, facts.rows);
  (void)dataset.findAndGetUint16(DCM_Columns, facts.columns);
  (void)dataset.findAndGetUint16(DCM_BitsAllocated, facts.bits_allocated);
  (void)dataset.findAndGetUint16(DCM_SamplesPerPixel, facts.samples);
  (void)dataset.findAndGetUint16(DCM_PlanarConfiguration, facts.planar);
  Sint32 frames = 1;
  if (dataset.findAndGetSint32(DCM_NumberOfFrames, frames).good() && frames > 1) {
    facts.frames = static_cast<uint64_t>(frames);
  }
  facts.has_document = dataset.tagExists(DCM_EncapsulatedDocument, OFFalse);
  return facts;
}

bool CarriesBurnedInText(const PixelFacts& facts) {
  if (facts.burned_in == "YES") return true;
  if (facts.burned_in == "NO") return false;
  return OneOf(kBurnedInClasses, facts.sop_class) || facts.modality == "US";
}

const PixelMaskRule* MatchingRule(const DeidConfig& config, const PixelFacts& facts) {
  for (const PixelMaskRule& rule : config.pixel_masks) {
    if (!rule.modality.empty() && Upper(rule.modality) != facts.modality) continue;
    if (facts.manufacturer.find(Upper(rule.manufacturer)) == std::string::npos) continue;
    if (facts.model.find(Upper(rule.model)) == std::string::npos) continue;
    if (rule.rows != 0 && (rule.rows != facts.rows || rule.columns != facts.columns)) continue;
    return &rule;
  }
  return nullptr;
}

// Whether the file may be published, and if its burned-in text is to be masked, the plan
// (without its start, known once the header is written).
WithholdReason Judge(const DeidConfig& config, const dicom_detail::DicomFile& file,
                     const PixelFacts& facts, PixelMaskPlan* plan, bool* decompress) {
  if (facts.has_document || OneOf(kEncapsulatedDocumentClasses, facts.sop_class)) {
    return WithholdReason::kEncapsulatedDocument;
  }
  if (!CarriesBurnedInText(facts) || config.burned_in == BurnedInPolicy::kInclude) {
    return WithholdReason::kNone;
  }
  if (config.burned_in == BurnedInPolicy::kWithhold) return WithholdReason::kBurnedInAnnotation;
  const PixelMaskRule* rule = MatchingRule(config, facts);
  if (rule == nullptr) return WithholdReason::kNoMaskRule;
  if (file.pixel.present && file.pixel.encapsulated && !file.inflated) {
    // Compressed: decompressed whole with DCMTK's codecs, then masked (DecompressAndMask).
    plan->rectangles = rule->rectangles;
    *decompress = true;
    return WithholdReason::kNone;
  }
  const bool subsampled =
      facts.photometric.starts_with("YBR") && facts.photometric.ends_with("422");
  const uint64_t frame_bytes =
      uint64_t{facts.rows} * facts.columns * facts.samples * (facts.bits_allocated / 8u);
  // Compressed, deflated, bit-packed or subsampled pixels cannot be masked byte by byte.
  if (file.inflated || !file.pixel.present || file.pixel.encapsulated || subsampled ||
      facts.bits_allocated == 0 || facts.bits_allocated % 8 != 0 || frame_bytes == 0 ||
      file.pixel.length < frame_bytes) {
    return WithholdReason::kMaskUnsupported;
  }
  plan->frames = std::min<uint64_t>(facts.frames, file.pixel.length / frame_bytes);
  plan->rows = facts.rows;
  plan->columns = facts.columns;
  plan->bytes_per_sample = facts.bits_allocated / 8u;
  plan->samples_per_pixel = facts.samples;
  plan->planar = facts.planar == 1 && facts.samples > 1;
  plan->rectangles = rule->rectangles;
  return WithholdReason::kNone;
}

// Zeroes the bytes of `out` (the de-identified file's bytes from `offset`) under the plan's
// rectangles.
void ApplyMask(const PixelMaskPlan& plan, uint64_t offset, std::span<char> out) {
  const uint64_t plane = uint64_t{plan.rows} * plan.columns * plan.bytes_per_sample;
  const uint64_t frame = plane * plan.samples_per_pixel;
  const uint64_t end = plan.start + frame * plan.frames;
  const uint64_t pixel_bytes = plan.planar
                                   ? plan.bytes_per_sample
                                   : uint64_t{plan.bytes_per_sample} * plan.samples_per_pixel;
  for (size_t i = 0; i < out.size(); ++i) {
    const uint64_t at = offset + i;
    if (at < plan.start || at >= end) continue;
    uint64_t in_frame = (at - plan.start) % frame;
    if (plan.planar) in_frame %= plane;
    const uint64_t pixel = in_frame / pixel_bytes;
    const uint64_t row = pixel / plan.columns, column = pixel % plan.columns;
    for (const MaskRectangle& r : plan.rectangles) {
      if (column >= r.x && column < uint64_t{r.x} + r.width && row >= r.y &&
          row < uint64_t{r.y} + r.height) {
        out[i] = 0;
        break;
      }
    }
  }
}

// Decoded pixels of a compressed instance are held in memory whole: at most this many bytes.
constexpr uint64_t kMaxDecompressedBytes = 256 << 20;

// Decompresses the Pixel Data of the whole data set `dataset` (JPEG, JPEG-LS, RLE: DCMTK's
// decoders; not JPEG 2000) and zeroes `rectangles` in every frame. False when it cannot.
bool DecompressAndMask(DcmDataset& dataset, DcmMetaInfo& meta,
                       const std::vector<MaskRectangle>& rectangles) {
  static std::once_flag once;
  std::call_once(once, [] {
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
  });
  const PixelFacts before = FactsOf(dataset, meta);
  const uint64_t frame_bytes =
      uint64_t{before.rows} * before.columns * before.samples * (before.bits_allocated / 8u);
  if (frame_bytes == 0 || before.bits_allocated % 8 != 0 ||
      frame_bytes * before.frames > kMaxDecompressedBytes) {
    return false;
  }
  if (dataset.chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad() ||
      !dataset.canWriteXfer(EXS_LittleEndianExplicit)) {
    return false;
  }
  const PixelFacts facts = FactsOf(dataset, meta);  // the decoder may change the colour model
  if (facts.photometric.starts_with("YBR") && facts.photometric.ends_with("422")) return false;
  DcmElement* pixels = nullptr;
  Uint8* data = nullptr;
  if (dataset.findAndGetElement(DCM_PixelData, pixels, OFFalse).bad() || pixels == nullptr ||
      pixels->getUint8Array(data).bad() || data == nullptr) {
    return false;
  }
  const uint64_t length = pixels->getLength();
  if (length < frame_bytes) return false;
  PixelMaskPlan plan;
  plan.frames = std::min<uint64_t>(facts.frames, length / frame_bytes);
  plan.rows = facts.rows;
  plan.columns = facts.columns;
  plan.bytes_per_sample = facts.bits_allocated / 8u;
  plan.samples_per_pixel = facts.samples;
  plan.planar = facts.planar == 1 && facts.samples > 1;
  plan.rectangles = rectangles;
  ApplyMask(plan, 0, std::span<char>(reinterpret_cast<char*>(data), static_cast<size_t>(length)));
  return true;
}

StatusOr<DeidentifiedFile> DeidentifyFile(const Deidentifier& deid, const ReadAtFunction& read,
                                          uint64_t file_size) {
  SourceHeader source;
  MEDVFS_RETURN_IF_ERROR(ReadSourceHeader(read, file_size, &source));
  dicom_detail::DicomFile& file = source.file;
  DeidentifiedFile result;
  E_TransferSyntax xfer = file.xfer;
  if (file.inflated) {
    // Deflated: the pixels are inside the deflated stream, so the whole data set is rewritten.
    if (file_size > kMaxDicomHeaderBytes) {
      return Status::Invalid("deflated DICOM file over 64 MiB cannot be de-identified");
    }
    MEDVFS_RETURN_IF_ERROR(ReadUpTo(read, file_size, &source.bytes));
    MEDVFS_ASSIGN_OR_RETURN(file, dicom_detail::ReadWholeDicomFile(source.bytes, file_size));
    std::vector<DcmObject*> after;
    for (DcmObject* o = file.dataset->nextInContainer(nullptr); o != nullptr;
         o = file.dataset->nextInContainer(o)) {
      if (TagOf(o->getTag()) > kPixelDataTag) after.push_back(o);
    }
    for (DcmObject* o : after) delete file.dataset->remove(o);
    xfer = EXS_LittleEndianExplicit;
  } else if (file.pixel.present) {
    result.pixel_offset = file.data_offset + file.pixel.header_offset;
    const uint64_t value = file.data_offset + file.pixel.value_offset;
    uint64_t end = value + file.pixel.length;
    if (file.pixel.encapsulated) {
      MEDVFS_ASSIGN_OR_RETURN(end, EncapsulatedEnd(read, file_size, value));
    }
    if (end > file_size) return Status::Invalid("DICOM file is truncated inside its Pixel Data");
    result.pixel_length = end - result.pixel_offset;
  }
  const PixelFacts facts = FactsOf(*file.dataset, *file.meta);
  bool decompress = false;
  result.withheld = Judge(deid.config(), file, facts, &result.mask, &decompress);
  bool masked_whole = false;
  if (result.withheld == WithholdReason::kNone && decompress) {
    // The pixels are decoded and masked in memory, and written with the header.
    if (file_size > kMaxDicomHeaderBytes) {
      result.withheld = WithholdReason::kMaskUnsupported;
    } else {
      MEDVFS_RETURN_IF_ERROR(ReadUpTo(read, file_size, &source.bytes));
      MEDVFS_ASSIGN_OR_RETURN(file, dicom_detail::ReadWholeDicomFile(source.bytes, file_size));
      std::vector<DcmObject*> after;
      for (DcmObject* o = file.dataset->nextInContainer(nullptr); o != nullptr;
           o = file.dataset->nextInContainer(o)) {
        if (TagOf(o->getTag()) > kPixelDataTag) after.push_back(o);
      }
      for (DcmObject* o : after) delete file.dataset->remove(o);
      if (DecompressAndMask(*file.dataset, *file.meta, result.mask.rectangles)) {
        xfer = EXS_LittleEndianExplicit;
        result.pixel_offset = result.pixel_length = 0;
        result.mask = PixelMaskPlan{};
        masked_whole = true;
      } else {
        result.withheld = WithholdReason::kMaskUnsupported;
      }
    }
  }
  if (result.withheld != WithholdReason::kNone) {
    DeidentifiedFile withheld;
    withheld.withheld = result.withheld;
    return withheld;
  }
  const std::string patient_id = TopLevelText(*file.dataset, DCM_PatientID);
  Cleaner cleaner(deid, patient_id);
  cleaner.CleanMeta(*file.meta);
  cleaner.CleanItem(*file.dataset);
  const bool masked = result.mask.active() || masked_whole;
  if (masked) (void)file.dataset->putAndInsertString(DCM_BurnedInAnnotation, "NO");
  AddMethodAttributes(*file.dataset, deid.config(), cleaner.study_date_kept(), masked);
  DcmDataset& out = *file.dataset;
  if (!patient_id.empty()) result.patient_pseudonym = deid.Pseudonym(patient_id);
  result.study_instance_uid = TopLevelText(out, DCM_StudyInstanceUID);
  result.series_instance_uid = TopLevelText(out, DCM_SeriesInstanceUID);
  result.sop_instance_uid = TopLevelText(out, DCM_SOPInstanceUID);
  result.study_date = TopLevelText(out, DCM_StudyDate);
  result.series_number = TopLevelText(out, DCM_SeriesNumber);
  MEDVFS_ASSIGN_OR_RETURN(result.header, WriteHeader(*file.meta, std::move(file.dataset), xfer));
  if (result.mask.active()) {
    result.mask.start =
        result.header.size() + (file.data_offset + file.pixel.value_offset - result.pixel_offset);
  }
  return result;
}

}  // namespace

StatusOr<DeidentifiedFile> Deidentifier::Deidentify(const ReadAtFunction& read,
                                                    uint64_t file_size) const {
  return dicom_detail::GuardDcmtk({.failed = "DICOM de-identification failed",
                                   .too_large = "DICOM file too large to de-identify in memory",
                                   .with_what = true},
                                  [&] { return DeidentifyFile(*this, read, file_size); });
}

StatusOr<size_t> Deidentifier::ReadDeidentified(const DeidentifiedFile& file,
                                                const ReadAtFunction& source, uint64_t offset,
                                                std::span<char> out) {
  if (file.withheld != WithholdReason::kNone) {
    return Status::Invalid("the file is withheld: it cannot be de-identified safely");
  }
  const uint64_t first = offset;
  size_t done = 0;
  while (done < out.size() && offset < file.size()) {
    if (offset < file.header.size()) {
      const size_t n = std::min<size_t>(out.size() - done, file.header.size() - offset);
      std::copy_n(file.header.data() + offset, n, out.data() + done);
      done += n;
      offset += n;
      continue;
    }
    const uint64_t in_pixels = offset - file.header.size();
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(out.size() - done, file.pixel_length - in_pixels));
    // The source is the caller's function: whatever it throws is a failed read.
    MEDVFS_RETURN_IF_ERROR(dicom_detail::GuardDcmtk(
        {.code = Code::kIoError, .failed = "reading the source file failed"}, [&]() -> Status {
          MEDVFS_ASSIGN_OR_RETURN(size_t n,
                                  source(file.pixel_offset + in_pixels, out.subspan(done, want)));
          if (n == 0) return Status::IoError("source file ended inside its Pixel Data");
          n = std::min(n, want);
          done += n;
          offset += n;
          return Status::Ok();
        }));
  }
  if (file.mask.active()) ApplyMask(file.mask, first, out.first(done));
  return done;
}

}  // namespace medvfs::store
