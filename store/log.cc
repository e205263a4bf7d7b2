#include "store/log.h"

#include <syslog.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace medvfs::store {
namespace {

std::atomic<LogSink> g_sink{LogSink::kStderr};
std::atomic<int> g_level{static_cast<int>(LogLevel::kWarning)};

int SyslogPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return LOG_ERR;
    case LogLevel::kWarning:
      return LOG_WARNING;
    case LogLevel::kInfo:
      return LOG_INFO;
    case LogLevel::kDebug:
      return LOG_DEBUG;
  }
  return LOG_INFO;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "";
}

}  // namespace

void SetLogSink(LogSink sink) {
  if (sink == LogSink::kSyslog) openlog("medvfs", LOG_PID, LOG_DAEMON);
  g_sink = sink;
}

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }

void LogMessage(LogLevel level, const char* format, ...) {
  if (static_cast<int>(level) > g_level.load()) return;
  char line[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof(line), format, args);
  va_end(args);
  if (g_sink.load() == LogSink::kSyslog) {
    syslog(SyslogPriority(level), "%s", line);
  } else {
    std::fprintf(stderr, "medvfs: %s: %s\n", LevelName(level), line);
  }
}

}  // namespace medvfs::store
