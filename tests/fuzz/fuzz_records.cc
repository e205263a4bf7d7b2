// libFuzzer target: the decoders of what an archive stores. The first input byte selects the
// decoder (modulo the number of decoders), the rest is its input. Every decoder must refuse
// malformed bytes with a Status, never crash; and what it accepts must survive being encoded
// and decoded again unchanged (else a record would change on its next rewrite).
//
//   0-11   store/archive/records.h: super, inode, dirent, name event, history, version, extent
//          group, chunk index, metadata event, DICOM tags, note, patient index
//   12-14  store/archive/audit_chain.h: audit entry, audit record, audit head record
//   15     the high-water mark file (DecodeHighWater, all-zero key, fixed archive id)
//   16     a line of the plaintext failed-unlocks side file (ParseFailedUnlock)
//   17     versions.tsv (ParseVersionsTsv, store/views.h)
//   18     the key slot file (UnlockKeySlot with a key file: parsing, no scrypt)
//   19     a stored chunk's zstd frame (Decompress, capped at 1 MiB)
#include <stdlib.h>  // mkdtemp

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "store/archive/audit_chain.h"
#include "store/archive/records.h"
#include "store/crypto/compress.h"
#include "store/keys.h"
#include "store/views.h"
#include "tests/fuzz/fuzz_util.h"

namespace medvfs::fuzz {
namespace {

using namespace medvfs::store;

// Decode, then Encode/Decode/Encode: the second encoding must equal the first.
template <typename Record, typename DecodeFn, typename EncodeFn>
void RoundTripWith(std::string_view in, DecodeFn decode, EncodeFn encode) {
  Record record;
  if (!decode(in, &record).ok()) return;
  const std::string once = encode(record);
  Record again;
  Check(decode(once, &again).ok(), "a re-encoded record decodes");
  Check(encode(again) == once, "a record survives re-encoding");
}

template <typename Record>
void RoundTrip(std::string_view in) {
  RoundTripWith<Record>(
      in, [](std::string_view bytes, Record* out) { return Decode(bytes, out); },
      [](const Record& record) { return Encode(record); });
}

void AuditEntryRoundTrip(std::string_view in) {
  RoundTripWith<AuditEntry>(in, DecodeAuditEntry, EncodeAuditEntry);
}

void HighWater(std::string_view in) {
  const SecretKey key;  // all zero: the seeds carry MACs under it
  const std::string archive_id = "fuzz-archive-id!";
  HighWaterMark mark;
  if (!DecodeHighWater(key, archive_id, in, &mark).ok()) return;
  HighWaterMark again;
  Check(DecodeHighWater(key, archive_id, EncodeHighWater(key, archive_id, mark), &again).ok(),
        "a re-encoded high-water mark decodes");
  Check(again.seq == mark.seq && again.entry_mac == mark.entry_mac,
        "a high-water mark survives re-encoding");
}

void FailedUnlock(std::string_view in) {
  AuditEvent event;
  if (!ParseFailedUnlock(in, &event)) return;
  const std::string once =
      FormatFailedUnlock(event.time_ns, event.uid, event.gid, event.pid, event.program);
  AuditEvent again;
  Check(ParseFailedUnlock(once, &again), "a re-formatted failed-unlock line parses");
  Check(FormatFailedUnlock(again.time_ns, again.uid, again.gid, again.pid, again.program) == once,
        "a failed-unlock line survives re-formatting");
}

void VersionsTsv(std::string_view in) {
  auto versions = ParseVersionsTsv(in);
  if (!versions.ok()) return;
  const std::string once = FormatVersionsTsv(*versions);
  auto again = ParseVersionsTsv(once);
  Check(again.ok(), "a re-formatted versions.tsv parses");
  Check(FormatVersionsTsv(*again) == once, "versions.tsv survives re-formatting");
}

// A directory of this process for the key slot file, removed at exit.
const std::filesystem::path& ScratchDir() {
  static const std::filesystem::path dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/medvfs-fuzz-XXXXXX";
    Check(mkdtemp(pattern.data()) != nullptr, "mkdtemp");
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(ScratchDir(), ec);
    });
    return std::filesystem::path(pattern);
  }();
  return dir;
}

void KeySlot(std::string_view in) {
  const std::filesystem::path file = ScratchDir() / kKeySlotFileName;
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(in.data(), static_cast<std::streamsize>(in.size()));
  }
  SecretKey data_key;
  std::string archive_id;
  const KeySource source = KeySource::KeyFileBytes(std::string(32, 'k'));
  (void)UnlockKeySlot(file, source, &data_key, &archive_id).ok();
}

void Zstd(std::string_view in) {
  std::string out;
  if (Decompress(in, size_t{1} << 20, &out).ok()) {
    Check(out.size() <= size_t{1} << 20, "Decompress keeps to its cap");
  }
}

constexpr uint8_t kDecoders = 20;

}  // namespace
}  // namespace medvfs::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace medvfs::store;
  using namespace medvfs::fuzz;
  if (size == 0) return 0;
  const ExactCopy copy(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  const std::string_view in = copy.view();
  switch (data[0] % kDecoders) {
    case 0:
      RoundTrip<SuperRecord>(in);
      break;
    case 1:
      RoundTrip<InodeRecord>(in);
      break;
    case 2:
      RoundTrip<DirentRecord>(in);
      break;
    case 3:
      RoundTrip<NameEventRecord>(in);
      break;
    case 4:
      RoundTrip<HistoryRecord>(in);
      break;
    case 5:
      RoundTrip<VersionRecord>(in);
      break;
    case 6:
      RoundTrip<std::vector<Extent>>(in);
      break;
    case 7:
      RoundTrip<ChunkIndexRecord>(in);
      break;
    case 8:
      RoundTrip<MetadataEvent>(in);
      break;
    case 9:
      RoundTrip<DicomTags>(in);
      break;
    case 10:
      RoundTrip<NoteEvent>(in);
      break;
    case 11:
      RoundTrip<PatientIndexRecord>(in);
      break;
    case 12:
      AuditEntryRoundTrip(in);
      break;
    case 13:
      RoundTrip<AuditRecord>(in);
      break;
    case 14:
      RoundTrip<AuditHeadRecord>(in);
      break;
    case 15:
      HighWater(in);
      break;
    case 16:
      FailedUnlock(in);
      break;
    case 17:
      VersionsTsv(in);
      break;
    case 18:
      KeySlot(in);
      break;
    case 19:
      Zstd(in);
      break;
  }
  return 0;
}
