#include "store/records.h"

#include <cstring>

namespace medvfs::store {
namespace {

// Every encoded record starts with this byte; a reader refuses formats it does not know.
constexpr uint8_t kRecordFormat = 1;

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

class Writer {
 public:
  Writer() { out_.push_back(static_cast<char>(kRecordFormat)); }
  Writer& U8(uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  Writer& Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  // Zig-zag, so that negative times stay short.
  Writer& Signed(int64_t v) {
    return Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  Writer& Bytes(std::string_view s) {
    Varint(s.size());
    out_.append(s);
    return *this;
  }
  Writer& Raw(const void* data, size_t n) {
    out_.append(static_cast<const char*>(data), n);
    return *this;
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {
    if (in_.empty() || static_cast<uint8_t>(in_[0]) != kRecordFormat) {
      ok_ = false;
    } else {
      in_.remove_prefix(1);
    }
  }
  uint8_t U8() {
    if (!Need(1)) return 0;
    uint8_t v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return v;
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!Need(1)) return 0;
      uint8_t b = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok_ = false;
    return 0;
  }
  uint32_t U32() {
    uint64_t v = Varint();
    if (v > UINT32_MAX) ok_ = false;
    return static_cast<uint32_t>(v);
  }
  int64_t Signed() {
    uint64_t v = Varint();
    return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
  }
  std::string Bytes() {
    uint64_t n = Varint();
    if (!Need(n)) return {};
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  void Raw(void* out, size_t n) {
    if (!Need(n)) return;
    std::memcpy(out, in_.data(), n);
    in_.remove_prefix(n);
  }
  // True when fields remain: fields added to a record later are read only when present, so
  // records written before them still open.
  bool HasMore() const { return ok_ && !in_.empty(); }
  Status Finish(const char* what) const {
    if (!ok_) return Status::Corruption(std::string("malformed ") + what + " record");
    return Status::Ok();
  }

 private:
  bool Need(uint64_t n) {
    if (!ok_ || in_.size() < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::string_view in_;
  bool ok_ = true;
};

std::string PrefixWithU64(char prefix, uint64_t v) {
  std::string key(1, prefix);
  AppendU64BigEndian(&key, v);
  return key;
}

}  // namespace

uint64_t KeyU64(std::string_view key, size_t pos) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && pos + i < key.size(); ++i) {
    v = (v << 8) | static_cast<uint8_t>(key[pos + i]);
  }
  return v;
}

std::string InodeKey(InodeId ino) { return PrefixWithU64(kInodePrefix, ino); }
std::string DirentPrefix(InodeId parent) { return PrefixWithU64(kDirentPrefix, parent); }
std::string DirentKey(InodeId parent, std::string_view name_hash) {
  return DirentPrefix(parent).append(name_hash);
}
std::string NameEventPrefix(InodeId parent) { return PrefixWithU64(kNameEventPrefix, parent); }
std::string NameEventPrefix(InodeId parent, std::string_view name_hash) {
  return NameEventPrefix(parent).append(name_hash);
}
std::string NameEventKey(InodeId parent, std::string_view name_hash, uint64_t seq) {
  std::string key = NameEventPrefix(parent, name_hash);
  AppendU64BigEndian(&key, seq);
  return key;
}
std::string HistoryKey(HistoryId history) { return PrefixWithU64(kHistoryPrefix, history); }
std::string VersionPrefix(HistoryId history) { return PrefixWithU64(kVersionPrefix, history); }
std::string VersionKey(HistoryId history, uint64_t number) {
  std::string key = VersionPrefix(history);
  AppendU64BigEndian(&key, number);
  return key;
}
std::string ExtentPrefix(HistoryId history, uint64_t number) {
  std::string key = PrefixWithU64(kExtentPrefix, history);
  AppendU64BigEndian(&key, number);
  return key;
}
std::string ExtentKey(HistoryId history, uint64_t number, uint32_t group) {
  std::string key = ExtentPrefix(history, number);
  AppendU32BigEndian(&key, group);
  return key;
}
std::string ExtentHistoryPrefix(HistoryId history) { return PrefixWithU64(kExtentPrefix, history); }
std::string DroppedExtentKey(HistoryId history, uint64_t number, uint32_t group) {
  std::string key = PrefixWithU64(kDroppedExtentPrefix, history);
  AppendU64BigEndian(&key, number);
  AppendU32BigEndian(&key, group);
  return key;
}
std::string TagsKey(HistoryId history, uint64_t number) {
  std::string key = TagsHistoryPrefix(history);
  AppendU64BigEndian(&key, number);
  return key;
}
std::string TagsHistoryPrefix(HistoryId history) { return PrefixWithU64(kTagsPrefix, history); }
std::string NoteHistoryPrefix(HistoryId history) { return PrefixWithU64(kNotePrefix, history); }
std::string NotePrefix(HistoryId history, uint64_t number) {
  std::string key = NoteHistoryPrefix(history);
  AppendU64BigEndian(&key, number);
  return key;
}
std::string NoteKey(HistoryId history, uint64_t number, uint64_t seq) {
  std::string key = NotePrefix(history, number);
  AppendU64BigEndian(&key, seq);
  return key;
}
std::string PatientPrefix(std::string_view patient_hash, std::string_view study_hash) {
  std::string key(1, kPatientPrefix);
  key.append(patient_hash);
  key.append(study_hash);
  return key;
}
std::string PatientKey(std::string_view patient_hash, std::string_view study_hash, InodeId ino) {
  std::string key = PatientPrefix(patient_hash, study_hash);
  AppendU64BigEndian(&key, ino);
  return key;
}
std::string IndexedKey(InodeId ino) { return PrefixWithU64(kIndexedPrefix, ino); }
std::string ChunkIndexKey(const ChunkId& id) {
  std::string key(1, kChunkIndexPrefix);
  key.append(reinterpret_cast<const char*>(id.data()), id.size());
  return key;
}
std::string AuditKey(uint64_t seq) { return PrefixWithU64(kAuditPrefix, seq); }
std::string MetaEventPrefix(HistoryId history) { return PrefixWithU64(kMetaEventPrefix, history); }
std::string MetaEventKey(HistoryId history, uint64_t seq) {
  std::string key = MetaEventPrefix(history);
  AppendU64BigEndian(&key, seq);
  return key;
}

std::string Encode(const SuperRecord& r) {
  return Writer()
      .Varint(r.schema)
      .Varint(r.next_inode)
      .Varint(r.next_history)
      .Varint(r.next_seq)
      .U8(r.keeps_state_digest ? 1 : 0)
      .Take();
}
Status Decode(std::string_view in, SuperRecord* r) {
  Reader rd(in);
  r->schema = rd.U32();
  r->next_inode = rd.Varint();
  r->next_history = rd.Varint();
  r->next_seq = rd.Varint();
  r->keeps_state_digest = rd.HasMore() && rd.U8() != 0;
  return rd.Finish("super");
}

std::string Encode(const VersionDigestRecord& r) {
  return Writer().Raw(r.sha256.data(), r.sha256.size()).Take();
}
Status Decode(std::string_view in, VersionDigestRecord* r) {
  Reader rd(in);
  rd.Raw(r->sha256.data(), r->sha256.size());
  return rd.Finish("version digest");
}

std::string Encode(const InodeRecord& r) {
  Writer w;
  w.Varint(r.mode).Varint(r.uid).Varint(r.gid).Varint(r.nlink).Varint(r.size).Varint(r.rdev);
  w.Signed(r.atime_ns).Signed(r.mtime_ns).Signed(r.ctime_ns);
  w.Varint(r.history).Varint(r.version).Bytes(r.symlink_target);
  w.Varint(r.xattrs.size());
  for (const auto& [name, value] : r.xattrs) w.Bytes(name).Bytes(value);
  w.Varint(r.parent).Bytes(r.name);
  return w.Take();
}
Status Decode(std::string_view in, InodeRecord* r) {
  Reader rd(in);
  r->mode = rd.U32();
  r->uid = rd.U32();
  r->gid = rd.U32();
  r->nlink = rd.U32();
  r->size = rd.Varint();
  r->rdev = rd.Varint();
  r->atime_ns = rd.Signed();
  r->mtime_ns = rd.Signed();
  r->ctime_ns = rd.Signed();
  r->history = rd.Varint();
  r->version = rd.Varint();
  r->symlink_target = rd.Bytes();
  uint64_t n = rd.Varint();
  r->xattrs.clear();
  for (uint64_t i = 0; i < n && rd.Finish("inode").ok(); ++i) {
    std::string name = rd.Bytes();
    std::string value = rd.Bytes();
    r->xattrs.emplace_back(std::move(name), std::move(value));
  }
  r->parent = rd.Varint();
  r->name = rd.Bytes();
  return rd.Finish("inode");
}

std::string Encode(const DirentRecord& r) {
  return Writer().Bytes(r.name).Varint(r.ino).Varint(r.mode).Take();
}
Status Decode(std::string_view in, DirentRecord* r) {
  Reader rd(in);
  r->name = rd.Bytes();
  r->ino = rd.Varint();
  r->mode = rd.U32();
  return rd.Finish("directory entry");
}

std::string Encode(const NameEventRecord& r) {
  return Writer()
      .Bytes(r.name)
      .Signed(r.time_ns)
      .Varint(r.ino)
      .Varint(r.history)
      .Varint(r.mode)
      .Bytes(r.symlink_target)
      .U8(r.removed ? 1 : 0)
      .Varint(r.version)
      .Take();
}
Status Decode(std::string_view in, NameEventRecord* r) {
  Reader rd(in);
  r->name = rd.Bytes();
  r->time_ns = rd.Signed();
  r->ino = rd.Varint();
  r->history = rd.Varint();
  r->mode = rd.U32();
  r->symlink_target = rd.Bytes();
  r->removed = rd.U8() != 0;
  r->version = rd.HasMore() ? rd.Varint() : 0;
  return rd.Finish("name event");
}

std::string Encode(const HistoryRecord& r) {
  return Writer()
      .Varint(r.last_version)
      .Varint(r.live_ino)
      .Varint(r.last_parent)
      .Bytes(r.last_name)
      .U8(static_cast<uint8_t>((r.fresh ? 1 : 0) | (r.scratch ? 2 : 0)))
      .Take();
}
Status Decode(std::string_view in, HistoryRecord* r) {
  Reader rd(in);
  r->last_version = rd.Varint();
  r->live_ino = rd.Varint();
  r->last_parent = rd.Varint();
  r->last_name = rd.Bytes();
  const uint8_t flags = rd.HasMore() ? rd.U8() : 0;
  r->fresh = (flags & 1) != 0;
  r->scratch = (flags & 2) != 0;
  return rd.Finish("history");
}

std::string Encode(const VersionRecord& r) {
  const VersionInfo& v = r.info;
  Writer w;
  w.Varint(v.number).Signed(v.time_ns).Varint(v.size).Raw(v.sha256.data(), v.sha256.size());
  w.Varint(v.writer_uid).Varint(v.writer_gid).Varint(v.writer_pid).Bytes(v.program);
  w.U8(static_cast<uint8_t>(v.op)).Bytes(v.note);
  w.Varint(v.file_mode).Varint(v.file_uid).Varint(v.file_gid).Varint(v.restored_from);
  w.Varint(r.extent_count).Varint(r.group_offsets.size());
  for (uint64_t offset : r.group_offsets) w.Varint(offset);
  w.Bytes(v.sop_instance_uid)
      .U8(static_cast<uint8_t>((v.sop_instance_uid_reused ? 1 : 0) | (v.has_dicom_tags ? 2 : 0) |
                               (v.sha256_deferred ? 4 : 0)));
  return w.Take();
}
Status Decode(std::string_view in, VersionRecord* r) {
  Reader rd(in);
  VersionInfo& v = r->info;
  v.number = rd.Varint();
  v.time_ns = rd.Signed();
  v.size = rd.Varint();
  rd.Raw(v.sha256.data(), v.sha256.size());
  v.writer_uid = rd.U32();
  v.writer_gid = rd.U32();
  v.writer_pid = rd.U32();
  v.program = rd.Bytes();
  uint8_t op = rd.U8();
  if (op < 1 || op > 5) return Status::Corruption("unknown version operation");
  v.op = static_cast<Operation>(op);
  v.note = rd.Bytes();
  v.file_mode = rd.U32();
  v.file_uid = rd.U32();
  v.file_gid = rd.U32();
  v.restored_from = rd.Varint();
  r->extent_count = rd.Varint();
  uint64_t groups = rd.Varint();
  r->group_offsets.clear();
  for (uint64_t i = 0; i < groups && rd.Finish("version").ok(); ++i) {
    r->group_offsets.push_back(rd.Varint());
  }
  v.sop_instance_uid = rd.Bytes();
  const uint8_t flags = rd.U8();
  v.sop_instance_uid_reused = (flags & 1) != 0;
  v.has_dicom_tags = (flags & 2) != 0;
  v.sha256_deferred = (flags & 4) != 0;
  return rd.Finish("version");
}

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
  Writer w;
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
  Reader rd(copy);
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
  Reader rd(in);
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
  return Writer().Varint(r.plain_length).Varint(r.stored_length).Take();
}
Status Decode(std::string_view in, ChunkIndexRecord* r) {
  Reader rd(in);
  r->plain_length = rd.U32();
  r->stored_length = rd.U32();
  return rd.Finish("chunk index");
}

std::string Encode(const MetadataEvent& r) {
  return Writer()
      .Signed(r.time_ns)
      .Bytes(r.what)
      .Varint(r.writer_uid)
      .Varint(r.writer_pid)
      .Bytes(r.program)
      .Take();
}
Status Decode(std::string_view in, MetadataEvent* r) {
  Reader rd(in);
  r->time_ns = rd.Signed();
  r->what = rd.Bytes();
  r->writer_uid = rd.U32();
  r->writer_pid = rd.U32();
  r->program = rd.Bytes();
  return rd.Finish("metadata event");
}

std::string Encode(const DicomTags& r) {
  Writer w;
  w.Varint(r.elements.size());
  for (const DicomElement& e : r.elements) {
    w.Varint(e.group).Varint(e.element).Bytes(e.keyword).Bytes(e.vr).Bytes(e.value);
  }
  w.Bytes(r.json);
  return w.Take();
}
Status Decode(std::string_view in, DicomTags* r) {
  Reader rd(in);
  const uint64_t n = rd.Varint();
  r->elements.clear();
  for (uint64_t i = 0; i < n && rd.Finish("tags").ok(); ++i) {
    DicomElement e;
    e.group = static_cast<uint16_t>(rd.Varint());
    e.element = static_cast<uint16_t>(rd.Varint());
    e.keyword = rd.Bytes();
    e.vr = rd.Bytes();
    e.value = rd.Bytes();
    r->elements.push_back(std::move(e));
  }
  r->json = rd.Bytes();
  return rd.Finish("tags");
}

std::string Encode(const NoteEvent& r) {
  return Writer()
      .Signed(r.time_ns)
      .Bytes(r.text)
      .Varint(r.writer_uid)
      .Varint(r.writer_pid)
      .Bytes(r.program)
      .Take();
}
Status Decode(std::string_view in, NoteEvent* r) {
  Reader rd(in);
  r->time_ns = rd.Signed();
  r->text = rd.Bytes();
  r->writer_uid = rd.U32();
  r->writer_pid = rd.U32();
  r->program = rd.Bytes();
  return rd.Finish("note");
}

std::string Encode(const PatientIndexRecord& r) {
  return Writer().Bytes(r.patient_id).Bytes(r.study).Take();
}
Status Decode(std::string_view in, PatientIndexRecord* r) {
  Reader rd(in);
  r->patient_id = rd.Bytes();
  r->study = rd.Bytes();
  return rd.Finish("patient index");
}

}  // namespace medvfs::store
