// Fields of the tab-separated files medvfs writes (versions.tsv, tags.tsv): a tab, a newline
// and a backslash are escaped as \t, \n and \\, so that a field holds any text on one line.
// Base of store/: no third-party library.
#pragma once

#include <string>
#include <string_view>

namespace medvfs::store {

// Appends `text` escaped to *out.
void AppendTsvField(std::string_view text, std::string* out);
// The text of an escaped field; false on an unknown escape or a trailing backslash.
bool UnescapeTsvField(std::string_view text, std::string* out);

}  // namespace medvfs::store
