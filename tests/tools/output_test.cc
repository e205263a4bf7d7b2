// Formatting helpers of the command line.
#include "tools/output.h"

#include <gtest/gtest.h>

namespace medvfs::tools {
namespace {

TEST(OutputTest, HumanBytes) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(uint64_t{3} << 30), "3.0 GiB");
  EXPECT_EQ(HumanBytes(UINT64_MAX), "16.0 EiB");
}

TEST(OutputTest, EscapeCellKeepsOneLine) {
  EXPECT_EQ(EscapeCell("plain text"), "plain text");
  EXPECT_EQ(EscapeCell("a\tb\nc\\d\x1b"), "a\\tb\\nc\\\\d\\x1b");
  EXPECT_EQ(EscapeCell("Müller"), "Müller");
  EXPECT_EQ(EscapeCell("a\rb"), "a\\rb");
  // DICOM values keep their backslash separators.
  EXPECT_EQ(EscapeCell("1\\2\t3", Backslashes::kKeep), "1\\2\\t3");
}

TEST(OutputTest, FormatTableAlignsColumns) {
  EXPECT_EQ(FormatTable({{"A", "BB", "C"}, {"aaa", "b", ""}}), "A    BB  C\naaa  b\n");
}

}  // namespace
}  // namespace medvfs::tools
