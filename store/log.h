// Diagnostics for admins. Messages carry inode and version numbers, never names, paths or
// DICOM values: patient data must not reach a log.
#pragma once

#include <string_view>

namespace medvfs::store {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };
enum class LogSink { kStderr, kSyslog };

// Where log lines go and which levels pass. Default: stderr, kWarning.
void SetLogSink(LogSink sink);
void SetLogLevel(LogLevel level);

// printf-style.
void LogMessage(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace medvfs::store

#define MEDVFS_LOG_ERROR(...) \
  ::medvfs::store::LogMessage(::medvfs::store::LogLevel::kError, __VA_ARGS__)
#define MEDVFS_LOG_WARNING(...) \
  ::medvfs::store::LogMessage(::medvfs::store::LogLevel::kWarning, __VA_ARGS__)
#define MEDVFS_LOG_INFO(...) \
  ::medvfs::store::LogMessage(::medvfs::store::LogLevel::kInfo, __VA_ARGS__)
