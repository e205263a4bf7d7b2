#include "store/archive/records.h"

#include <cstring>

namespace medvfs::store {

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
std::string RetentionKey(InodeId dir) { return PrefixWithU64(kRetentionPrefix, dir); }
std::string HoldKey(const LegalHold& hold) {
  std::string key(1, kHoldPrefix);
  key.push_back(hold.history != 0 ? kHoldOnFile : kHoldOnDir);
  AppendU64BigEndian(&key, hold.history != 0 ? hold.history : hold.dir);
  return key;
}
std::string IndexedKey(InodeId ino) { return PrefixWithU64(kIndexedPrefix, ino); }
std::string MetaEventPrefix(HistoryId history) { return PrefixWithU64(kMetaEventPrefix, history); }
std::string MetaEventKey(HistoryId history, uint64_t seq) {
  std::string key = MetaEventPrefix(history);
  AppendU64BigEndian(&key, seq);
  return key;
}

std::string Encode(const SuperRecord& r) {
  return RecordWriter()
      .Varint(r.schema)
      .Varint(r.next_inode)
      .Varint(r.next_history)
      .Varint(r.next_seq)
      .U8(r.keeps_state_digest ? 1 : 0)
      .Take();
}
Status Decode(std::string_view in, SuperRecord* r) {
  RecordReader rd(in);
  r->schema = rd.U32();
  r->next_inode = rd.Varint();
  r->next_history = rd.Varint();
  r->next_seq = rd.Varint();
  r->keeps_state_digest = rd.HasMore() && rd.U8() != 0;
  return rd.Finish("super");
}

std::string Encode(const VersionDigestRecord& r) {
  return RecordWriter().Raw(r.sha256.data(), r.sha256.size()).Take();
}
Status Decode(std::string_view in, VersionDigestRecord* r) {
  RecordReader rd(in);
  rd.Raw(r->sha256.data(), r->sha256.size());
  return rd.Finish("version digest");
}

std::string Encode(const InodeRecord& r) {
  RecordWriter w;
  w.Varint(r.mode).Varint(r.uid).Varint(r.gid).Varint(r.nlink).Varint(r.size).Varint(r.rdev);
  w.Signed(r.atime_ns).Signed(r.mtime_ns).Signed(r.ctime_ns);
  w.Varint(r.history).Varint(r.version).Bytes(r.symlink_target);
  w.Varint(r.xattrs.size());
  for (const auto& [name, value] : r.xattrs) w.Bytes(name).Bytes(value);
  w.Varint(r.parent).Bytes(r.name);
  return w.Take();
}
Status Decode(std::string_view in, InodeRecord* r) {
  RecordReader rd(in);
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
  return RecordWriter().Bytes(r.name).Varint(r.ino).Varint(r.mode).Take();
}
Status Decode(std::string_view in, DirentRecord* r) {
  RecordReader rd(in);
  r->name = rd.Bytes();
  r->ino = rd.Varint();
  r->mode = rd.U32();
  return rd.Finish("directory entry");
}

std::string Encode(const NameEventRecord& r) {
  return RecordWriter()
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
  RecordReader rd(in);
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
  return RecordWriter()
      .Varint(r.last_version)
      .Varint(r.live_ino)
      .Varint(r.last_parent)
      .Bytes(r.last_name)
      .U8(static_cast<uint8_t>((r.fresh ? 1 : 0) | (r.scratch ? 2 : 0)))
      .Take();
}
Status Decode(std::string_view in, HistoryRecord* r) {
  RecordReader rd(in);
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
  RecordWriter w;
  w.Varint(v.number).Signed(v.time_ns).Varint(v.size).Raw(v.sha256.data(), v.sha256.size());
  w.Varint(v.writer_uid).Varint(v.writer_gid).Varint(v.writer_pid).Bytes(v.program);
  w.U8(static_cast<uint8_t>(v.op)).Bytes(v.note);
  w.Varint(v.file_mode).Varint(v.file_uid).Varint(v.file_gid).Varint(v.restored_from);
  w.Varint(r.extent_count).Varint(r.group_offsets.size());
  for (uint64_t offset : r.group_offsets) w.Varint(offset);
  w.Bytes(v.sop_instance_uid)
      .U8(static_cast<uint8_t>((v.sop_instance_uid_reused ? 1 : 0) | (v.has_dicom_tags ? 2 : 0) |
                               (v.sha256_deferred ? 4 : 0)));
  // Added later: records without it (older archives) had no ACL.
  const bool removed = v.removed != ContentRemoval::kNone;
  if (!v.file_acl.empty() || removed) w.Bytes(v.file_acl);
  // Added with prune and purge: present only on a version whose content was removed.
  if (removed) {
    w.U8(static_cast<uint8_t>(v.removed)).Signed(v.removed_time_ns).Varint(v.removed_by_uid);
    w.Bytes(v.removed_by_program).Bytes(v.removed_reason);
  }
  return w.Take();
}
Status Decode(std::string_view in, VersionRecord* r) {
  RecordReader rd(in);
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
  v.file_acl = rd.HasMore() ? rd.Bytes() : std::string();
  v.removed = ContentRemoval::kNone;
  if (rd.HasMore()) {
    const uint8_t removal = rd.U8();
    if (removal != 1 && removal != 2) return Status::Corruption("unknown content removal");
    v.removed = static_cast<ContentRemoval>(removal);
    v.removed_time_ns = rd.Signed();
    v.removed_by_uid = rd.U32();
    v.removed_by_program = rd.Bytes();
    v.removed_reason = rd.Bytes();
  }
  return rd.Finish("version");
}

std::string Encode(const MetadataEvent& r) {
  return RecordWriter()
      .Signed(r.time_ns)
      .Bytes(r.what)
      .Varint(r.writer_uid)
      .Varint(r.writer_pid)
      .Bytes(r.program)
      .Take();
}
Status Decode(std::string_view in, MetadataEvent* r) {
  RecordReader rd(in);
  r->time_ns = rd.Signed();
  r->what = rd.Bytes();
  r->writer_uid = rd.U32();
  r->writer_pid = rd.U32();
  r->program = rd.Bytes();
  return rd.Finish("metadata event");
}

std::string Encode(const DicomTags& r) {
  RecordWriter w;
  w.Varint(r.elements.size());
  for (const DicomElement& e : r.elements) {
    w.Varint(e.group).Varint(e.element).Bytes(e.keyword).Bytes(e.vr).Bytes(e.value);
  }
  w.Bytes(r.json);
  return w.Take();
}
Status Decode(std::string_view in, DicomTags* r) {
  RecordReader rd(in);
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
  return RecordWriter()
      .Signed(r.time_ns)
      .Bytes(r.text)
      .Varint(r.writer_uid)
      .Varint(r.writer_pid)
      .Bytes(r.program)
      .Take();
}
Status Decode(std::string_view in, NoteEvent* r) {
  RecordReader rd(in);
  r->time_ns = rd.Signed();
  r->text = rd.Bytes();
  r->writer_uid = rd.U32();
  r->writer_pid = rd.U32();
  r->program = rd.Bytes();
  return rd.Finish("note");
}

std::string Encode(const PatientIndexRecord& r) {
  return RecordWriter().Bytes(r.patient_id).Bytes(r.study).Take();
}
Status Decode(std::string_view in, PatientIndexRecord* r) {
  RecordReader rd(in);
  r->patient_id = rd.Bytes();
  r->study = rd.Bytes();
  return rd.Finish("patient index");
}

std::string Encode(const GcResult& r) {
  return RecordWriter()
      .Signed(r.time_ns)
      .Signed(r.duration_ms)
      .U8(r.cancelled ? 1 : 0)
      .Varint(r.chunks_indexed)
      .Varint(r.chunks_dropped)
      .Varint(r.bytes_dropped)
      .Varint(r.dropped_extent_groups)
      .Varint(r.packs)
      .Varint(r.packs_removed)
      .Varint(r.packs_skipped)
      .Varint(r.bytes_copied)
      .Varint(r.bytes_freed)
      .Take();
}

Status Decode(std::string_view in, GcResult* r) {
  RecordReader rd(in);
  *r = GcResult{};
  r->time_ns = rd.Signed();
  r->duration_ms = rd.Signed();
  r->cancelled = rd.U8() != 0;
  r->chunks_indexed = rd.Varint();
  r->chunks_dropped = rd.Varint();
  r->bytes_dropped = rd.Varint();
  r->dropped_extent_groups = rd.Varint();
  r->packs = rd.Varint();
  r->packs_removed = rd.Varint();
  r->packs_skipped = rd.Varint();
  r->bytes_copied = rd.Varint();
  r->bytes_freed = rd.Varint();
  return rd.Finish("garbage collection");
}

std::string Encode(const RetentionRule& r) {
  return RecordWriter()
      .U8(static_cast<uint8_t>(r.mode))
      .Signed(r.min_age_s)
      .Signed(r.set_time_ns)
      .Varint(r.set_by_uid)
      .Take();
}
Status Decode(std::string_view in, RetentionRule* r) {
  RecordReader rd(in);
  const uint8_t mode = rd.U8();
  if (mode != 1 && mode != 2) return Status::Corruption("unknown retention mode");
  r->mode = static_cast<RetentionMode>(mode);
  r->min_age_s = rd.Signed();
  r->set_time_ns = rd.Signed();
  r->set_by_uid = rd.U32();
  return rd.Finish("retention rule");
}

std::string Encode(const LegalHold& r) {
  return RecordWriter().Bytes(r.reason).Signed(r.time_ns).Varint(r.uid).Bytes(r.program).Take();
}
Status Decode(std::string_view in, LegalHold* r) {
  RecordReader rd(in);
  r->reason = rd.Bytes();
  r->time_ns = rd.Signed();
  r->uid = rd.U32();
  r->program = rd.Bytes();
  return rd.Finish("legal hold");
}

}  // namespace medvfs::store
