#include "store/engine/pack_format.h"

#include <cstring>

namespace medvfs::store {
namespace {

constexpr std::string_view kHeaderMagic = "MEDVFSPK";
constexpr std::string_view kEntryMagic = "MVCK";
constexpr std::string_view kTrailerMagic = "MVTR";
constexpr std::string_view kFooterMagic = "MVPKEND1";
constexpr std::string_view kEntryAadLabel = "medvfs pack entry";
constexpr std::string_view kTrailerAadLabel = "medvfs pack trailer";
constexpr size_t kTrailerHeaderSize = kPackTrailerHeaderSize;
// The largest chunk the chunker cuts is 256 KiB; anything far beyond is not an entry.
constexpr uint32_t kMaxPlainLength = 16u << 20;

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t GetU32(std::string_view in, size_t pos) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | static_cast<uint8_t>(in[pos + static_cast<size_t>(i)]);
  return v;
}
uint64_t GetU64(std::string_view in, size_t pos) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<uint8_t>(in[pos + static_cast<size_t>(i)]);
  return v;
}

std::string EntryAad(uint64_t pack, uint64_t offset, std::string_view header) {
  std::string aad(kEntryAadLabel);
  PutU64(&aad, pack);
  PutU64(&aad, offset);
  aad.append(header);
  return aad;
}

std::string TrailerAad(uint64_t pack, uint64_t trailer_offset, uint32_t count) {
  std::string aad(kTrailerAadLabel);
  PutU64(&aad, pack);
  PutU64(&aad, trailer_offset);
  PutU32(&aad, count);
  return aad;
}

}  // namespace

std::string EncodePackHeader(uint64_t pack) {
  std::string out(kHeaderMagic);
  PutU32(&out, kPackFormat);
  PutU32(&out, 0);
  PutU64(&out, pack);
  PutU64(&out, 0);
  return out;
}

Status CheckPackHeader(std::string_view bytes, uint64_t pack) {
  if (bytes.size() < kPackHeaderSize || bytes.substr(0, kHeaderMagic.size()) != kHeaderMagic) {
    return Status::Corruption("a pack file has no pack header");
  }
  if (GetU32(bytes, 8) != kPackFormat) {
    return Status(Code::kNotSupported,
                  "a pack file has format " + std::to_string(GetU32(bytes, 8)) +
                      "; this medvfs reads pack format " + std::to_string(kPackFormat));
  }
  if (GetU64(bytes, 16) != pack) {
    return Status::Corruption("a pack file's header names another pack (renamed or copied)");
  }
  return Status::Ok();
}

Status AppendPackEntry(const SecretKey& seal_key, uint64_t pack, uint64_t offset, const ChunkId& id,
                       uint32_t plain_length, uint8_t encoding, std::string_view payload,
                       std::string* out) {
  std::string header(kEntryMagic);
  PutU32(&header, static_cast<uint32_t>(kSealOverhead + payload.size()));
  PutU32(&header, plain_length);
  header.push_back(static_cast<char>(encoding));
  header.append(3, '\0');
  header.append(reinterpret_cast<const char*>(id.data()), id.size());
  out->append(header);
  return Seal(seal_key, EntryAad(pack, offset, header), payload, out);
}

Status ParsePackEntryHeader(std::string_view bytes, uint64_t offset, PackEntryInfo* info) {
  if (bytes.size() < kPackEntryHeaderSize || bytes.substr(0, kEntryMagic.size()) != kEntryMagic) {
    return Status::Corruption("no chunk entry where one should begin in a pack");
  }
  const uint32_t sealed_length = GetU32(bytes, 4);
  info->plain_length = GetU32(bytes, 8);
  info->encoding = static_cast<uint8_t>(bytes[12]);
  if (sealed_length < kSealOverhead || sealed_length > kMaxPlainLength + kSealOverhead + 1024 ||
      info->plain_length > kMaxPlainLength ||
      (info->encoding != kEncodingRaw && info->encoding != kEncodingZstd) || bytes[13] != 0 ||
      bytes[14] != 0 || bytes[15] != 0) {
    return Status::Corruption("a chunk entry in a pack has an impossible header");
  }
  std::memcpy(info->id.data(), bytes.data() + 16, info->id.size());
  info->offset = offset;
  info->length = static_cast<uint32_t>(kPackEntryHeaderSize + sealed_length);
  return Status::Ok();
}

Status OpenPackEntry(const SecretKey& seal_key, uint64_t pack, const PackEntryInfo& info,
                     std::string_view bytes, std::string* payload) {
  if (bytes.size() != info.length || info.length < kPackEntryHeaderSize + kSealOverhead) {
    return Status::Corruption("a chunk entry in a pack is cut short");
  }
  const std::string_view header = bytes.substr(0, kPackEntryHeaderSize);
  Status s = Unseal(seal_key, EntryAad(pack, info.offset, header),
                    bytes.substr(kPackEntryHeaderSize), payload);
  if (!s.ok()) return Status::Corruption("a chunk entry in a pack failed authentication");
  return Status::Ok();
}

Status AppendPackTrailer(const SecretKey& seal_key, uint64_t pack, uint64_t trailer_offset,
                         const std::vector<PackEntryInfo>& entries, std::string* out) {
  const auto count = static_cast<uint32_t>(entries.size());
  std::string records;
  records.reserve(entries.size() * kPackTrailerRecordSize);
  for (const PackEntryInfo& entry : entries) {
    records.append(reinterpret_cast<const char*>(entry.id.data()), entry.id.size());
    PutU64(&records, entry.offset);
    PutU32(&records, entry.length);
    PutU32(&records, entry.plain_length);
    records.push_back(static_cast<char>(entry.encoding));
  }
  const size_t start = out->size();
  out->append(kTrailerMagic);
  PutU32(out, count);
  MEDVFS_RETURN_IF_ERROR(Seal(seal_key, TrailerAad(pack, trailer_offset, count), records, out));
  const uint64_t trailer_length = out->size() - start;
  PutU64(out, trailer_offset);
  PutU64(out, trailer_length);
  PutU32(out, count);
  PutU32(out, 0);
  out->append(kFooterMagic);
  return Status::Ok();
}

Status ParsePackFooter(std::string_view bytes, uint64_t file_size, PackFooter* footer) {
  if (bytes.size() != kPackFooterSize || bytes.substr(24) != kFooterMagic) {
    return Status::Corruption("a sealed pack has no footer");
  }
  footer->trailer_offset = GetU64(bytes, 0);
  footer->trailer_length = GetU64(bytes, 8);
  footer->count = GetU32(bytes, 16);
  if (GetU32(bytes, 20) != 0 || footer->trailer_offset < kPackHeaderSize ||
      footer->trailer_length !=
          kTrailerHeaderSize + kSealOverhead + uint64_t{footer->count} * kPackTrailerRecordSize ||
      footer->trailer_offset + footer->trailer_length + kPackFooterSize != file_size) {
    return Status::Corruption("a sealed pack's footer does not fit the file");
  }
  return Status::Ok();
}

Status OpenPackTrailer(const SecretKey& seal_key, uint64_t pack, const PackFooter& footer,
                       std::string_view bytes, std::vector<PackEntryInfo>* entries) {
  if (bytes.size() != footer.trailer_length || bytes.substr(0, 4) != kTrailerMagic ||
      GetU32(bytes, 4) != footer.count) {
    return Status::Corruption("a sealed pack's trailer is malformed");
  }
  std::string records;
  Status s = Unseal(seal_key, TrailerAad(pack, footer.trailer_offset, footer.count),
                    bytes.substr(kTrailerHeaderSize), &records);
  if (!s.ok()) return Status::Corruption("a sealed pack's trailer failed authentication");
  if (records.size() != uint64_t{footer.count} * kPackTrailerRecordSize) {
    return Status::Corruption("a sealed pack's trailer is malformed");
  }
  entries->clear();
  entries->reserve(footer.count);
  for (size_t pos = 0; pos < records.size(); pos += kPackTrailerRecordSize) {
    PackEntryInfo entry;
    std::memcpy(entry.id.data(), records.data() + pos, entry.id.size());
    entry.offset = GetU64(records, pos + 32);
    entry.length = GetU32(records, pos + 40);
    entry.plain_length = GetU32(records, pos + 44);
    entry.encoding = static_cast<uint8_t>(records[pos + 48]);
    entries->push_back(entry);
  }
  return Status::Ok();
}

std::string PackFileName(uint64_t pack) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name(16, '0');
  for (int i = 15; i >= 0; --i, pack >>= 4) name[static_cast<size_t>(i)] = kHex[pack & 0xf];
  return name + ".pack";
}

uint64_t PackNumberOfFileName(std::string_view name) {
  if (name.size() != 21 || !name.ends_with(".pack")) return 0;
  uint64_t pack = 0;
  for (size_t i = 0; i < 16; ++i) {
    const char c = name[i];
    uint64_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a') + 10;
    } else {
      return 0;
    }
    pack = (pack << 4) | digit;
  }
  return pack;
}

}  // namespace medvfs::store
