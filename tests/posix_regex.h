// Regular expressions for tests, through POSIX <regex.h> (extended syntax). std::regex is not
// used: GCC 12 reports false -Wmaybe-uninitialized warnings inside <regex> under the sanitizer
// build, which our warnings-as-errors turn into build failures.
#pragma once

#include <regex.h>

#include <optional>
#include <string>

namespace medvfs::testing {

// The first match of `pattern` in `text`: group `group` of it (0: the whole match), or nullopt
// when nothing matches (or the pattern does not compile).
inline std::optional<std::string> RegexSearch(const std::string& text, const std::string& pattern,
                                              size_t group = 0) {
  regex_t compiled;
  if (regcomp(&compiled, pattern.c_str(), REG_EXTENDED) != 0) return std::nullopt;
  regmatch_t matches[10];
  std::optional<std::string> found;
  if (group < 10 && regexec(&compiled, text.c_str(), 10, matches, 0) == 0 &&
      matches[group].rm_so >= 0) {
    found = text.substr(static_cast<size_t>(matches[group].rm_so),
                        static_cast<size_t>(matches[group].rm_eo - matches[group].rm_so));
  }
  regfree(&compiled);
  return found;
}

// True when all of `text` matches `pattern`.
inline bool RegexFullMatch(const std::string& text, const std::string& pattern) {
  return RegexSearch(text, "^(" + pattern + ")$").has_value();
}

}  // namespace medvfs::testing
