// Deidentifier::NamesFor: the de-identified naming values of a file from its stored tags, for
// the paths of the `@anon` view and of exports, without reading the file. It must agree with
// what Deidentify writes into the file (deid_test.cc checks both on every sample).
#include <cctype>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

#include "store/dicom/deid.h"

namespace medvfs::store {
namespace {

// A value stored with VR UN (an implicit-VR file written without a dictionary) shows as hex
// bytes, "31\\2e\\39..."; Deidentify reads it with the dictionary's VR, so the text is decoded
// here alike. Empty when it is not such hex.
std::string DecodeUnknownValue(std::string_view hex) {
  std::string bytes;
  while (!hex.empty()) {
    const size_t end = hex.find('\\');
    const std::string_view byte = hex.substr(0, end);
    if (byte.size() != 2 || !std::isxdigit(static_cast<unsigned char>(byte[0])) ||
        !std::isxdigit(static_cast<unsigned char>(byte[1]))) {
      return {};
    }
    bytes += static_cast<char>(std::stoi(std::string(byte), nullptr, 16));
    hex = end == std::string_view::npos ? std::string_view() : hex.substr(end + 1);
  }
  return bytes;
}

std::string TrimmedValue(const DicomTags& tags, std::string_view keyword) {
  const DicomElement* element = tags.Find(keyword);
  if (element == nullptr) return {};
  const std::string decoded = element->vr == "UN" ? DecodeUnknownValue(element->value) : "";
  std::string_view value = element->vr == "UN" ? std::string_view(decoded) : element->value;
  while (!value.empty() && (value.back() == ' ' || value.back() == '\0')) value.remove_suffix(1);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  return std::string(value);
}

// A DA value (YYYYMMDD) moved back `days` days; empty when it is no valid date.
std::string ShiftedDate(std::string_view date, int days) {
  if (date.size() != 8) return {};
  for (char c : date) {
    if (c < '0' || c > '9') return {};
  }
  const int year = std::stoi(std::string(date.substr(0, 4)));
  const unsigned month = static_cast<unsigned>(std::stoi(std::string(date.substr(4, 2))));
  const unsigned day = static_cast<unsigned>(std::stoi(std::string(date.substr(6, 2))));
  const std::chrono::year_month_day ymd{std::chrono::year{year}, std::chrono::month{month},
                                        std::chrono::day{day}};
  if (!ymd.ok()) return {};
  const std::chrono::year_month_day shifted{std::chrono::sys_days{ymd} - std::chrono::days{days}};
  char text[16];
  std::snprintf(text, sizeof(text), "%04d%02u%02u", static_cast<int>(shifted.year()),
                static_cast<unsigned>(shifted.month()), static_cast<unsigned>(shifted.day()));
  return text;
}

// One path component made of de-identified values.
std::string SafeComponent(std::string_view value) {
  std::string out = value.empty() ? std::string("UNKNOWN") : std::string(value);
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '/' || c == '\\' || byte < 0x20 || byte == 0x7F) c = '_';
  }
  if (out == "." || out == "..") out = "_";
  if (out.size() > 250) out.resize(250);  // room for a "_2" or ".dcm" within NAME_MAX
  return out;
}

}  // namespace

std::string AnonymousPath(const DeidentifiedFile& names) {
  std::string path = SafeComponent(names.patient_pseudonym);
  path += '/';
  path += SafeComponent(SafeComponent(names.study_date) + "_" +
                        SafeComponent(names.study_instance_uid));
  path += '/';
  path += SafeComponent(SafeComponent(names.series_number) + "_" +
                        SafeComponent(names.series_instance_uid));
  path += '/';
  path += SafeComponent(names.sop_instance_uid);
  path += ".dcm";
  return path;
}

DeidentifiedFile Deidentifier::NamesFor(const DicomTags& tags) const {
  DeidentifiedFile names;
  const std::string patient_id = TrimmedValue(tags, "PatientID");
  // No ID, no pseudonym: such files go under "UNKNOWN" rather than share one made-up patient.
  if (!patient_id.empty()) names.patient_pseudonym = Pseudonym(patient_id);
  const auto uid = [&](std::string_view keyword) {
    std::string value = TrimmedValue(tags, keyword);
    if (value.empty() || config_.retain_uids) return value;
    return RemapUid(value);
  };
  names.study_instance_uid = uid("StudyInstanceUID");
  names.series_instance_uid = uid("SeriesInstanceUID");
  names.sop_instance_uid = uid("SOPInstanceUID");
  const std::string study_date = TrimmedValue(tags, "StudyDate");
  if (config_.keep_study_date || config_.temporal == TemporalRetention::kFullDates) {
    names.study_date = study_date;
  } else if (config_.temporal == TemporalRetention::kModifiedDates) {
    names.study_date = ShiftedDate(study_date, DateShiftDays(patient_id));
  }  // else the profile empties StudyDate (Z)
  names.series_number = TrimmedValue(tags, "SeriesNumber");
  return names;
}

}  // namespace medvfs::store
