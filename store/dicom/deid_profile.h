// The attribute table of DICOM PS3.15 Annex E (Table E.1-1, Application Level Confidentiality
// Profile Attributes) as data, for store/dicom/deid.cc. Internal to store/.
// The rows are generated from a machine-readable rendition of the standard's edition
// kProfileEdition by store/dicom/deid_table_gen.py into store/dicom/deid_table.inc.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "store/dicom/deid.h"

namespace medvfs::store::deid_profile {

// An action code of Table E.1-1. kNone: no action given (an option column that is empty).
enum class Action : uint8_t {
  kNone,
  kD,    // replace with a non-zero length dummy value consistent with the VR
  kZ,    // replace with a zero length value (or a dummy)
  kX,    // remove
  kK,    // keep
  kC,    // clean (see medvfs-deid(5): kept, or for dates shifted)
  kU,    // replace the UID consistently
  kZD,   // Z unless D is needed for a Type 1 attribute
  kXZ,   // X unless Z is needed for a Type 2 attribute
  kXD,   // X unless D is needed for a Type 1 attribute
  kXZD,  // X unless Z or D is needed for a Type 2 or 1 attribute
  kXZU,  // X unless Z or replacement of the UIDs inside (U*) is needed
};

// The option columns medvfs supports; kNone where the table gives no action for the option.
struct OptionActions {
  Action uids = Action::kNone;            // Retain UIDs Option
  Action device = Action::kNone;          // Retain Device Identity Option
  Action institution = Action::kNone;     // Retain Institution Identity Option
  Action patient = Action::kNone;         // Retain Patient Characteristics Option
  Action full_dates = Action::kNone;      // Retain Longitudinal Temporal Information Full Dates
  Action modified_dates = Action::kNone;  // ... Modified Dates Option
  Action descriptors = Action::kNone;     // Clean Descriptors Option
};

struct ProfileRow {
  uint32_t tag = 0;              // (group << 16) | element
  const char* keyword = "";      // as in DCMTK's data dictionary; PS3.6's where DCMTK lacks the tag
  const char* vr = "";           // PS3.6's VR ("OB or OW" where it gives two)
  bool dcmtk_knows = true;       // DCMTK's data dictionary has the tag
  Action basic = Action::kNone;  // Basic Profile column
  OptionActions options;
};

// The edition of PS3.15 the rows come from, as DeidentificationMethod names it.
inline constexpr const char* kProfileEdition = "DICOM PS3.15 2024b Table E.1-1";

// The rows in ascending tag order. Rows with tag patterns (curves 50xx, overlays 60xx, private
// groups) are not in it: deid.cc handles those by group.
std::span<const ProfileRow> ProfileRows();

// The row of `tag`, or nullptr.
const ProfileRow* FindProfileRow(uint32_t tag);

// The action for `row` under `config`: the Basic Profile's, replaced by the action of each
// option that is on and has one for the row (Clean Descriptors first, then Retain Patient
// Characteristics, Device Identity, Institution Identity, UIDs, and the temporal option, so that a
// Retain option's K wins over a C).
Action EffectiveAction(const ProfileRow& row, const DeidConfig& config);

// A DA value (values joined by '\') or a DT value (`date_time`) with the date of each value moved
// back `days` days, times and offsets kept; nullopt when a non-empty value holds no full date
// (YYYYMMDD), which then cannot be shifted and has to go.
std::optional<std::string> ShiftDates(std::string_view value, bool date_time, int days);

// PatientBirthDate (YYYYMMDD, already shifted if the dates are) after the BirthDateRule of
// `config`: the configured day of its month (clamped to the month's last day), the first of
// January of its year, or empty (kRemove, and for anything that is not a date).
std::string BirthDateByRule(std::string_view date, const DeidConfig& config);

}  // namespace medvfs::store::deid_profile
