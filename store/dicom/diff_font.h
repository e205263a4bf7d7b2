// A 5 x 7 bitmap font for the labels of the `medvfs diff --png` picture: printable ASCII only,
// drawn by our code (no font file, no font parser: the labels are version numbers, UTC times,
// frame numbers and window values). Internal to store/.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace medvfs::store::diff_internal::font {

inline constexpr uint32_t kGlyphWidth = 5;
inline constexpr uint32_t kGlyphHeight = 7;
inline constexpr uint32_t kAdvance = kGlyphWidth + 1;  // one blank column between characters

// Whether pixel (x, y) of c's glyph is set (x < kGlyphWidth, y < kGlyphHeight, from the top
// left). A character outside printable ASCII (0x20..0x7E) is drawn as '?'.
bool GlyphPixel(char c, uint32_t x, uint32_t y);

// A line of text as a bitmap, each font pixel a scale x scale square:
// width (size * kAdvance - 1) * scale (0 for an empty text), height kGlyphHeight * scale.
struct TextBitmap {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<uint8_t> on;  // width * height, row by row: 1 where the text is drawn
  bool at(uint32_t x, uint32_t y) const { return on[size_t{y} * width + x] != 0; }
};

// REQUIRES: scale >= 1.
TextBitmap RenderText(std::string_view text, uint32_t scale);

// The width RenderText(text, scale) has.
inline uint32_t TextWidth(std::string_view text, uint32_t scale) {
  return text.empty() ? 0 : (static_cast<uint32_t>(text.size()) * kAdvance - 1) * scale;
}

}  // namespace medvfs::store::diff_internal::font
