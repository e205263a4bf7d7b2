// Writes the seeds of corpus/fuzz_records: for each decoder of fuzz_records.cc, its selector
// byte followed by well-formed encodings (typical, empty and extreme values). Run once and
// commit the files: `cmake --build BUILD --target fuzz_make_record_seeds` and
// `BUILD/tests/fuzz/fuzz_make_record_seeds tests/fuzz/corpus/fuzz_records`.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "store/archive/audit_chain.h"
#include "store/archive/records.h"
#include "store/crypto/compress.h"
#include "store/views.h"

namespace {

using namespace medvfs::store;

std::filesystem::path out_dir;

void Seed(uint8_t selector, const std::string& name, const std::string& bytes) {
  char prefix[8];
  std::snprintf(prefix, sizeof(prefix), "%02u-", unsigned{selector});
  std::ofstream out(out_dir / (prefix + name), std::ios::binary | std::ios::trunc);
  out.put(static_cast<char>(selector));
  out << bytes;
}

constexpr uint64_t kMax64 = std::numeric_limits<uint64_t>::max();
constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
constexpr uint32_t kMax32 = std::numeric_limits<uint32_t>::max();

VersionInfo Version(uint64_t number, Operation op) {
  VersionInfo v;
  v.number = number;
  v.time_ns = 1'795'255'200'123'456'789;
  v.size = 5 << 20;
  for (size_t i = 0; i < v.sha256.size(); ++i) v.sha256[i] = static_cast<uint8_t>(i * 9);
  v.writer_uid = 1000;
  v.writer_gid = 100;
  v.writer_pid = 4242;
  v.program = "dcmodify";
  v.op = op;
  v.note = "checked\tby\\Dr.\nMeyer";
  v.file_mode = 0100640;
  v.file_uid = 1000;
  v.file_gid = 100;
  v.restored_from = op == Operation::kRestore ? 1 : 0;
  v.sop_instance_uid = "1.2.826.0.1.3680043.2.1125.1";
  v.sop_instance_uid_reused = number == 2;
  v.has_dicom_tags = true;
  return v;
}

void Records() {
  Seed(0, "super", Encode(SuperRecord{1, 1234, 56, 789}));
  Seed(0, "super-max", Encode(SuperRecord{kMax32, kMax64, kMax64, kMax64}));

  InodeRecord inode;
  inode.mode = 0100640;
  inode.uid = 1000;
  inode.gid = 100;
  inode.nlink = 2;
  inode.size = 123456;
  inode.atime_ns = -1;
  inode.mtime_ns = 1'795'255'200'000'000'000;
  inode.ctime_ns = kMin64;
  inode.history = 7;
  inode.version = 3;
  inode.xattrs = {{"user.a", "1"}, {"user.dicom.note", std::string("\0\xff", 2)}};
  Seed(1, "inode-file", Encode(inode));
  InodeRecord dir;
  dir.mode = 040750;
  dir.nlink = 3;
  dir.parent = 1;
  dir.name = "study1";
  Seed(1, "inode-dir", Encode(dir));
  InodeRecord link;
  link.mode = 0120777;
  link.symlink_target = "../scan.dcm";
  Seed(1, "inode-symlink", Encode(link));

  Seed(2, "dirent", Encode(DirentRecord{"scan.dcm", 42, 0100640}));
  Seed(3, "name-event",
       Encode(NameEventRecord{"scan.dcm", 1'795'255'200'000'000'000, 42, 7, 0100640, "", false}));
  Seed(3, "name-event-removed",
       Encode(NameEventRecord{"link", -5, 43, 0, 0120777, "../scan.dcm", true}));
  Seed(4, "history", Encode(HistoryRecord{3, 42, 1, "scan.dcm"}));
  Seed(4, "history-deleted", Encode(HistoryRecord{kMax64, 0, 5, ""}));

  VersionRecord version;
  version.info = Version(2, Operation::kWrite);
  version.extent_count = 2050;
  version.group_offsets = {0, 1 << 30, uint64_t{3} << 30};
  Seed(5, "version", Encode(version));
  VersionRecord restored;
  restored.info = Version(3, Operation::kRestore);
  Seed(5, "version-restore", Encode(restored));
  VersionRecord marker;
  marker.info = Version(4, Operation::kDeleteMarker);
  marker.info.size = 0;
  marker.info.sop_instance_uid.clear();
  Seed(5, "version-delete-marker", Encode(marker));

  std::vector<Extent> extents(3);
  for (size_t i = 0; i < extents.size(); ++i) {
    extents[i].id.fill(static_cast<uint8_t>(i + 1));
    extents[i].length = static_cast<uint32_t>(65536 * (i + 1));
  }
  Seed(6, "extents", Encode(extents));
  Seed(6, "extents-empty", Encode(std::vector<Extent>{}));
  Seed(7, "chunk-index", Encode(ChunkIndexRecord{65536, 20011}));
  Seed(8, "metadata-event",
       Encode(MetadataEvent{1'795'255'200'000'000'000, "chmod 0640", 1000, 4242, "chmod"}));
  Seed(8, "metadata-event-chown", Encode(MetadataEvent{-1, "chown 0:0", 0, 1, ""}));

  DicomTags tags;
  tags.elements = {{0x0002, 0x0010, "TransferSyntaxUID", "UI", "1.2.840.10008.1.2.1"},
                   {0x0010, 0x0010, "PatientName", "PN", "Müller^Jörg"},
                   {0x0009, 0x1001, "", "UN", "(2048 bytes)"},
                   {0x7FE0, 0x0010, "PixelData", "OW", "(8192 bytes)"}};
  tags.json = R"({"00100010":{"vr":"PN","Value":[{"Alphabetic":"Müller^Jörg"}]}})";
  Seed(9, "dicom-tags", Encode(tags));
  Seed(9, "dicom-tags-empty", Encode(DicomTags{}));
  Seed(10, "note", Encode(NoteEvent{1'795'255'200'000'000'000, "checked", 1000, 4242, "medvfs"}));
  Seed(11, "patient-index", Encode(PatientIndexRecord{"FUZZ-1", "20261121_CT HEAD"}));
}

void Audit() {
  AuditEntry entry;
  entry.seq = 41;
  entry.time_ns = 1'795'255'200'000'000'000;
  entry.uid = 1000;
  entry.gid = 100;
  entry.pid = 4242;
  entry.program = "cp";
  entry.op = AuditOp::kRename;
  entry.path = "/study1/a.dcm";
  entry.target_path = "/study1/b.dcm";
  entry.version = 3;
  entry.result = 13;  // EACCES
  entry.detail = "0640";
  Seed(12, "audit-entry", EncodeAuditEntry(entry));
  AuditEntry negative;
  negative.seq = kMax64;
  negative.time_ns = kMin64;
  negative.result = std::numeric_limits<int32_t>::min();
  negative.op = AuditOp::kListDir;
  Seed(12, "audit-entry-extreme", EncodeAuditEntry(negative));

  AuditRecord record;
  record.encoded_entry = EncodeAuditEntry(entry);
  record.mac.fill(0xAB);
  Seed(13, "audit-record", Encode(record));
  Seed(14, "audit-head", Encode(AuditHeadRecord{41, record.mac}));

  const SecretKey zero;  // fuzz_records.cc checks marks under the all-zero key
  HighWaterMark mark{41, record.mac};
  Seed(15, "high-water", EncodeHighWater(zero, "fuzz-archive-id!", mark));
  Seed(15, "high-water-zero", EncodeHighWater(zero, "fuzz-archive-id!", HighWaterMark{}));

  Seed(16, "failed-unlock",
       FormatFailedUnlock(1'795'255'200'123'456'789, 1000, 100, 4242, "mount"));
  Seed(16, "failed-unlock-epoch", FormatFailedUnlock(0, 0, 0, 0, ""));
}

void Views() {
  std::vector<VersionInfo> versions = {
      Version(1, Operation::kWrite), Version(2, Operation::kRenameOver),
      Version(3, Operation::kRestore), Version(4, Operation::kDeleteMarker)};
  const std::string tsv = FormatVersionsTsv(versions);
  Seed(17, "versions-tsv", tsv);
  // The first form, without the two DICOM columns, and with CR LF line ends.
  Seed(17, "versions-tsv-v1",
       "number\ttime\tsize\tsha256\tuid\tgid\tpid\tprogram\toperation\tnote\r\n"
       "1\t2026-11-21T10:00:00+01:00\t5\t" +
           std::string(64, 'a') + "\t0\t0\t1\tcp\twrite\t\r\n");
}

void KeySlotsAndChunks() {
  // Key slot files as medvfs init writes them (values are only well-formed, not a real key).
  const std::string hex32(64, '0');
  Seed(18, "keyslot-keyfile",
       R"({"format":1,"archive_id":"00112233445566778899aabbccddeeff","kind":"keyfile",)"
       R"("kdf":{"name":"hkdf-sha256","salt":")" +
           hex32 + R"("},"wrapped_key":")" + std::string(120, 'a') + "\"}\n");
  Seed(18, "keyslot-passphrase",
       R"({"format":1,"archive_id":"00112233445566778899aabbccddeeff","kind":"passphrase",)"
       R"("kdf":{"name":"scrypt","salt":")" +
           hex32 + R"(","n":131072,"r":8,"p":1},"wrapped_key":")" + std::string(120, 'b') +
           "\"}\n");
  std::string frame;
  if (Compress(std::string(100000, 'x') + "DICM" + std::string(1000, '\0'), 3, &frame).ok()) {
    Seed(19, "zstd-frame", frame);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  std::filesystem::create_directories(out_dir);
  Records();
  Audit();
  Views();
  KeySlotsAndChunks();
  return 0;
}
