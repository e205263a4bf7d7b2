// Helpers shared by the fuzz targets: a failed property stops the run like a crash (so that
// libFuzzer keeps the input), exact-size copies (so that AddressSanitizer sees a read past
// the end of a prefix), a UTF-8 check, and a small DICOM file built in memory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

namespace medvfs::fuzz {

// Aborts with `what` when `condition` is false: a broken property is a finding.
inline void Check(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

// A copy of `bytes` in a heap block of exactly that size: reading one byte past it is an
// AddressSanitizer report, where a view into a longer buffer would hide it.
class ExactCopy {
 public:
  explicit ExactCopy(std::string_view bytes)
      : size_(bytes.size()), data_(std::make_unique<char[]>(bytes.size())) {
    if (size_ > 0) bytes.copy(data_.get(), size_);
  }
  std::string_view view() const { return {data_.get(), size_}; }

 private:
  size_t size_;
  std::unique_ptr<char[]> data_;
};

// True when `s` is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates, or code points
// above U+10FFFF).
inline bool IsUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (c < 0x80) {
      n = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (s.size() - i < n) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? low : 0x80) || b > (k == 1 ? high : 0xBF)) return false;
    }
    i += n;
  }
  return true;
}

// One data element in explicit VR little endian, its value padded to an even length.
inline std::string Element(uint16_t group, uint16_t element, std::string_view vr,
                           std::string value) {
  if (value.size() % 2 != 0) value.push_back(vr == "UI" || vr == "OB" ? '\0' : ' ');
  auto le16 = [](std::string* out, uint32_t v) {
    out->push_back(static_cast<char>(v & 0xff));
    out->push_back(static_cast<char>((v >> 8) & 0xff));
  };
  std::string out;
  le16(&out, group);
  le16(&out, element);
  out.append(vr);
  const bool long_length = vr == "OB" || vr == "OW" || vr == "SQ" || vr == "UN" || vr == "UT";
  const auto length = static_cast<uint32_t>(value.size());
  if (long_length) {
    le16(&out, 0);
    le16(&out, length & 0xffff);
    le16(&out, length >> 16);
  } else {
    le16(&out, length);
  }
  return out + value;
}

// A US value.
inline std::string DicomUs(uint16_t v) {
  return std::string{static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
}

// A small Secondary Capture file (explicit VR little endian, 4x4 8-bit pixels) with the
// elements the archive indexes (PatientID, StudyDate, StudyDescription, SOPInstanceUID).
inline std::string SmallDicom(std::string_view patient_name, std::string_view patient_id,
                              std::string_view sop_instance_uid, uint8_t pixel_seed) {
  const std::string sop_class = "1.2.840.10008.5.1.4.1.1.7";
  std::string meta = Element(0x0002, 0x0001, "OB", std::string("\0\1", 2)) +
                     Element(0x0002, 0x0002, "UI", sop_class) +
                     Element(0x0002, 0x0003, "UI", std::string(sop_instance_uid)) +
                     Element(0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1");
  const auto meta_length = static_cast<uint32_t>(meta.size());
  std::string length_value;
  for (int shift = 0; shift < 32; shift += 8) {
    length_value.push_back(static_cast<char>((meta_length >> shift) & 0xff));
  }
  std::string pixels;
  for (int i = 0; i < 16; ++i) pixels.push_back(static_cast<char>(pixel_seed + i * 7));
  std::string file(128, '\0');
  file += "DICM";
  file += Element(0x0002, 0x0000, "UL", length_value) + meta;
  file += Element(0x0008, 0x0016, "UI", sop_class);
  file += Element(0x0008, 0x0018, "UI", std::string(sop_instance_uid));
  file += Element(0x0008, 0x0020, "DA", "20261121");
  file += Element(0x0008, 0x1030, "LO", "FUZZ STUDY");
  file += Element(0x0010, 0x0010, "PN", std::string(patient_name));
  file += Element(0x0010, 0x0020, "LO", std::string(patient_id));
  file += Element(0x0020, 0x000D, "UI", "1.2.826.0.1.3680043.2.1125.1");
  file += Element(0x0028, 0x0002, "US", DicomUs(1));
  file += Element(0x0028, 0x0004, "CS", "MONOCHROME2");
  file += Element(0x0028, 0x0010, "US", DicomUs(4));
  file += Element(0x0028, 0x0011, "US", DicomUs(4));
  file += Element(0x0028, 0x0100, "US", DicomUs(8));
  file += Element(0x0028, 0x0101, "US", DicomUs(8));
  file += Element(0x0028, 0x0102, "US", DicomUs(7));
  file += Element(0x0028, 0x0103, "US", DicomUs(0));
  file += Element(0x7FE0, 0x0010, "OB", pixels);
  return file;
}

}  // namespace medvfs::fuzz
