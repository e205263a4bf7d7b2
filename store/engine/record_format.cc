#include "store/engine/record_format.h"

namespace medvfs::store {

void AppendU64BigEndian(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

void AppendU32BigEndian(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

std::string PrefixWithU64(char prefix, uint64_t v) {
  std::string key(1, prefix);
  AppendU64BigEndian(&key, v);
  return key;
}

uint64_t KeyU64(std::string_view key, size_t pos) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && pos + i < key.size(); ++i) {
    v = (v << 8) | static_cast<uint8_t>(key[pos + i]);
  }
  return v;
}

std::string ChunkIndexKey(const ChunkId& id) {
  std::string key(1, kChunkIndexPrefix);
  key.append(reinterpret_cast<const char*>(id.data()), id.size());
  return key;
}

std::string AuditKey(uint64_t seq) { return PrefixWithU64(kAuditPrefix, seq); }

// An extent group without holes keeps format 1 (so archives without holes stay readable by
// older binaries): [1][varint n] then n times [32-byte chunk id][varint length]. A group with
// a hole (an extent whose id is all zeros) is written in format 2: [2][varint n] then entries
// [varint tag]: tag = length << 1 for a chunk, followed by its 32-byte id; tag = length << 1 | 1
// for `count` consecutive holes of that length, followed by [varint count].
namespace {
constexpr uint8_t kExtentGroupWithHolesFormat = 2;
bool IsHoleId(const ChunkId& id) {
  for (uint8_t byte : id) {
    if (byte != 0) return false;
  }
  return true;
}
}  // namespace

std::string Encode(const std::vector<Extent>& group) {
  RecordWriter w;
  w.Varint(group.size());
  bool has_holes = false;
  for (const Extent& e : group) has_holes = has_holes || IsHoleId(e.id);
  if (!has_holes) {
    for (const Extent& e : group) w.Raw(e.id.data(), e.id.size()).Varint(e.length);
    return w.Take();
  }
  for (size_t i = 0; i < group.size();) {
    const Extent& e = group[i];
    if (!IsHoleId(e.id)) {
      w.Varint(uint64_t{e.length} << 1).Raw(e.id.data(), e.id.size());
      ++i;
      continue;
    }
    size_t run = 1;
    while (i + run < group.size() && IsHoleId(group[i + run].id) &&
           group[i + run].length == e.length) {
      ++run;
    }
    w.Varint((uint64_t{e.length} << 1) | 1).Varint(run);
    i += run;
  }
  std::string out = w.Take();
  out[0] = static_cast<char>(kExtentGroupWithHolesFormat);
  return out;
}

namespace {
Status DecodeWithHoles(std::string_view in, std::vector<Extent>* group) {
  std::string copy(in);
  copy[0] = static_cast<char>(kRecordFormat);
  RecordReader rd(copy);
  const uint64_t n = rd.Varint();
  if (n > kExtentsPerGroup) return Status::Corruption("malformed extent group record");
  group->clear();
  while (group->size() < n && rd.Finish("extent group").ok()) {
    const uint64_t tag = rd.Varint();
    const uint64_t length = tag >> 1;
    if (length == 0 || length > UINT32_MAX) {
      return Status::Corruption("malformed extent group record");
    }
    if (tag & 1) {
      const uint64_t count = rd.Varint();
      if (count == 0 || count > n - group->size()) {
        return Status::Corruption("malformed extent group record");
      }
      group->insert(group->end(), count, Extent{ChunkId{}, static_cast<uint32_t>(length)});
    } else {
      Extent e;
      rd.Raw(e.id.data(), e.id.size());
      e.length = static_cast<uint32_t>(length);
      group->push_back(e);
    }
  }
  if (group->size() != n) return Status::Corruption("malformed extent group record");
  return rd.Finish("extent group");
}
}  // namespace

Status Decode(std::string_view in, std::vector<Extent>* group) {
  if (!in.empty() && static_cast<uint8_t>(in[0]) == kExtentGroupWithHolesFormat) {
    return DecodeWithHoles(in, group);
  }
  RecordReader rd(in);
  uint64_t n = rd.Varint();
  if (n > kExtentsPerGroup) return Status::Corruption("malformed extent group record");
  group->resize(n);
  for (auto& e : *group) {
    rd.Raw(e.id.data(), e.id.size());
    e.length = rd.U32();
    // Holes are written in format 2 only: a hole's id here is damage, not a hole.
    if (IsHoleId(e.id)) return Status::Corruption("malformed extent group record");
  }
  return rd.Finish("extent group");
}

std::string Encode(const ChunkIndexRecord& r) {
  RecordWriter w;
  w.Varint(r.plain_length).Varint(r.stored_length);
  if (r.pack != 0) w.Varint(r.pack).Varint(r.offset);
  return w.Take();
}
Status Decode(std::string_view in, ChunkIndexRecord* r) {
  RecordReader rd(in);
  r->plain_length = rd.U32();
  r->stored_length = rd.U32();
  r->pack = 0;
  r->offset = 0;
  // Schema 1 records end here: the chunk is in the "chunks" family.
  if (rd.HasMore()) {
    r->pack = rd.Varint();
    r->offset = rd.Varint();
    if (r->pack == 0) return Status::Corruption("malformed chunk index record");
  }
  return rd.Finish("chunk index");
}

std::string PackKey(uint64_t pack) { return PrefixWithU64(kPackPrefix, pack); }

std::string Encode(const PackRecord& r) {
  return RecordWriter()
      .Varint(r.pack)
      .U8(static_cast<uint8_t>((r.sealed ? 1 : 0) | (r.removed ? 2 : 0)))
      .Varint(r.size)
      .Varint(r.indexed_end)
      .Varint(r.live_bytes)
      .Varint(r.live_chunks)
      .Take();
}
Status Decode(std::string_view in, PackRecord* r) {
  RecordReader rd(in);
  r->pack = rd.Varint();
  const uint8_t flags = rd.U8();
  r->sealed = (flags & 1) != 0;
  r->removed = (flags & 2) != 0;
  r->size = rd.Varint();
  r->indexed_end = rd.Varint();
  r->live_bytes = rd.Varint();
  r->live_chunks = rd.Varint();
  if (flags > 3 || r->pack == 0) return Status::Corruption("malformed pack record");
  return rd.Finish("pack");
}

}  // namespace medvfs::store
