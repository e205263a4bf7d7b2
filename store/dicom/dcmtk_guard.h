// The one place store/dicom turns a C++ exception into a Status. DCMTK (and the allocations
// a file's length fields can ask of it) may throw; so may a read callback called from inside
// a parse. A call that may throw runs as GuardDcmtk(says, body), and `says` tells what the
// failure is called. Messages are fixed texts chosen by the caller: never a value from the
// file. Private to store/dicom.
#pragma once

#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>

#include "store/status.h"

namespace medvfs::store::dicom_detail {

// What a guarded call says when it throws.
struct GuardSays {
  // The code of every Status the guard makes. Default: kInvalid (the file cannot be handled).
  Code code = Code::kInvalid;
  // The message for an exception. Empty: exceptions other than std::bad_alloc go on up to an
  // outer guard.
  std::string_view failed = {};
  // The message for std::bad_alloc (a file too large to handle in memory). Empty: as `failed`.
  std::string_view too_large = {};
  // Whether `failed` is followed by ": " and a std::exception's what(). Default: false.
  bool with_what = false;
};

// body() (which returns a Status or a StatusOr), or the Status `says` makes of what it threw.
template <typename F>
auto GuardDcmtk(const GuardSays& says, F&& body) -> std::invoke_result_t<F&> {
  using Result = std::invoke_result_t<F&>;
  try {
    return body();
  } catch (const std::bad_alloc&) {
    if (!says.too_large.empty()) return Result(Status(says.code, std::string(says.too_large)));
    if (says.failed.empty()) throw;
    return Result(Status(says.code, std::string(says.failed)));
  } catch (const std::exception& e) {
    if (says.failed.empty()) throw;
    if (says.with_what) {
      return Result(Status(says.code, std::string(says.failed) + ": " + e.what()));
    }
    return Result(Status(says.code, std::string(says.failed)));
  } catch (...) {
    if (says.failed.empty()) throw;
    return Result(Status(says.code, std::string(says.failed)));
  }
}

}  // namespace medvfs::store::dicom_detail
