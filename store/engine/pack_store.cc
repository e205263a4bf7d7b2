#include "store/engine/pack_store.h"

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <algorithm>

#include "store/log.h"

namespace medvfs::store {

// A pack opened for reading (every pack that was read from: sealed ones never change).
class PackReader {
 public:
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;  // null: the pack is read from the remote
};

// A pack taking appends.
struct PackStore::OpenPack {
  uint64_t number = 0;
  std::mutex mu;
  std::unique_ptr<rocksdb::FSWritableFile> file;  // GUARDED_BY(mu); null once closed
  uint64_t end = 0;                               // GUARDED_BY(mu): bytes in the file
  uint64_t synced_end = 0;                        // GUARDED_BY(mu)
  std::vector<PackEntryInfo> entries;             // GUARDED_BY(mu): for the trailer
  bool taking_appends = true;                     // GUARDED_BY(mu): false once sealed or retired
  bool sealed = false;                            // GUARDED_BY(mu)
  size_t writers = 0;                             // GUARDED_BY(PackStore::mu_): leases
};

namespace {

rocksdb::FileOptions PackFileOptions() {
  rocksdb::FileOptions options;
  // RocksDB's defaults map written files into memory and preallocate: neither suits a file
  // that is appended by write(2), read by pread(2) and must end exactly at its last entry.
  options.use_mmap_writes = false;
  options.use_mmap_reads = false;
  options.allow_fallocate = false;
  options.use_direct_reads = false;
  options.use_direct_writes = false;
  return options;
}

Status FromIo(const rocksdb::IOStatus& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsNoSpace()) {
    return Status(Code::kNoSpace, what + ": the disk holding the archive is full");
  }
  return Status::IoError(what + ": " + s.ToString());
}

// Reads exactly `n` bytes at `offset`; kCorruption when the file ends before.
Status ReadExactly(rocksdb::FSRandomAccessFile& file, uint64_t offset, size_t n, std::string* out,
                   const std::string& what) {
  out->resize(n);
  rocksdb::Slice result;
  rocksdb::IOStatus s =
      file.Read(offset, n, rocksdb::IOOptions(), &result, out->data(), /*dbg=*/nullptr);
  if (!s.ok()) return FromIo(s, what);
  if (result.size() != n) return Status::Corruption(what + ": the pack file ends early");
  if (result.data() != out->data()) std::memmove(out->data(), result.data(), n);
  return Status::Ok();
}

}  // namespace

PackStore::PackStore(std::filesystem::path dir, const SecretKey& seal_key,
                     const PackStoreOptions& options)
    : dir_(std::move(dir)),
      seal_key_(seal_key),
      options_(options),
      fs_(options.env != nullptr ? options.env->GetFileSystem() : rocksdb::FileSystem::Default()) {}

PackStore::~PackStore() {
  // Nobody else uses the store any more; still, the locks are taken in their order (a pack's
  // before mu_, never inside it), which ThreadSanitizer checks.
  std::vector<std::shared_ptr<OpenPack>> open;
  {
    std::lock_guard lock(mu_);
    open = open_;
  }
  for (const auto& pack : open) {
    std::lock_guard pack_lock(pack->mu);
    if (pack->file) pack->file->Close(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
  }
}

std::string PackStore::PathOf(uint64_t pack) const { return (dir_ / PackFileName(pack)).string(); }

StatusOr<std::unique_ptr<PackStore>> PackStore::Open(const std::filesystem::path& dir,
                                                     const SecretKey& seal_key,
                                                     const PackStoreOptions& options,
                                                     const std::vector<KnownPack>& known,
                                                     std::vector<RecoveredPack>* recovered) {
  std::unique_ptr<PackStore> store(new PackStore(dir, seal_key, options));
  recovered->clear();
  if (!options.read_only) {
    MEDVFS_RETURN_IF_ERROR(
        FromIo(store->fs_->CreateDirIfMissing(dir.string(), rocksdb::IOOptions(), nullptr),
               "creating the packs directory"));
  }
  std::map<uint64_t, KnownPack> by_number;
  for (const KnownPack& pack : known) by_number[pack.pack] = pack;
  std::map<uint64_t, uint64_t> files;
  if (options.read_only && !std::filesystem::exists(dir)) {
    // An archive written before packs: nothing to list.
  } else {
    MEDVFS_ASSIGN_OR_RETURN(files, store->ListFiles());
  }
  uint64_t highest = 0;
  for (const auto& [number, pack] : by_number) highest = std::max(highest, number);
  for (const auto& [number, size] : files) highest = std::max(highest, number);
  store->next_pack_ = highest + 1;
  bool removed_any = false;
  for (const auto& [number, size] : files) {
    auto it = by_number.find(number);
    if (it != by_number.end() && it->second.removed) {
      if (options.read_only) continue;
      MEDVFS_LOG_INFO("pack %llu: deleting the file garbage collection left behind",
                      static_cast<unsigned long long>(number));
      MEDVFS_RETURN_IF_ERROR(
          FromIo(store->fs_->DeleteFile(store->PathOf(number), rocksdb::IOOptions(), nullptr),
                 "deleting a removed pack"));
      removed_any = true;
      continue;
    }
    if (it != by_number.end() && it->second.sealed) continue;
    // A pack without a record was created just before a crash: nothing refers to it yet.
    const KnownPack pack = it != by_number.end() ? it->second : KnownPack{number, false, 0};
    RecoveredPack found;
    MEDVFS_RETURN_IF_ERROR(store->Recover(pack, &found));
    recovered->push_back(found);
  }
  if (removed_any) MEDVFS_RETURN_IF_ERROR(store->SyncDirectory("deleting a removed pack"));
  return store;
}

Status PackStore::SyncDirectory(const std::string& what) {
  std::unique_ptr<rocksdb::FSDirectory> directory;
  rocksdb::IOStatus s = fs_->NewDirectory(dir_.string(), rocksdb::IOOptions(), &directory, nullptr);
  if (s.ok()) s = directory->Fsync(rocksdb::IOOptions(), nullptr);
  return FromIo(s, what);
}

Status PackStore::RemovePack(uint64_t pack) {
  if (options_.read_only) return Status(Code::kReadOnly, "the archive is open read-only");
  {
    std::lock_guard lock(readers_mu_);
    readers_.erase(pack);  // readers holding it keep the file open until they are done
  }
  rocksdb::IOStatus s = fs_->DeleteFile(PathOf(pack), rocksdb::IOOptions(), nullptr);
  if (!s.ok() && !s.IsPathNotFound() && !s.IsNotFound()) return FromIo(s, "deleting a pack");
  return SyncDirectory("deleting a pack");
}

Status PackStore::Recover(const KnownPack& known, RecoveredPack* out) {
  const uint64_t number = known.pack;
  out->pack = number;
  const std::string path = PathOf(number);
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  MEDVFS_RETURN_IF_ERROR(
      FromIo(fs_->NewRandomAccessFile(path, PackFileOptions(), &file, nullptr), "opening a pack"));
  uint64_t size = 0;
  MEDVFS_RETURN_IF_ERROR(FromIo(fs_->GetFileSize(path, rocksdb::IOOptions(), &size, nullptr),
                                "reading a pack's size"));
  const std::string what = "pack " + std::to_string(number);
  std::string bytes;
  // Whether appends may go on: the header and every indexed entry header must be sound (a
  // trailer lists every entry); otherwise the pack is left as it is, for verify to report.
  bool appendable = size >= kPackHeaderSize;
  if (appendable) {
    MEDVFS_RETURN_IF_ERROR(ReadExactly(*file, 0, kPackHeaderSize, &bytes, what));
    appendable = CheckPackHeader(bytes, number).ok();
  }
  std::vector<PackEntryInfo> entries;
  uint64_t pos = kPackHeaderSize;
  const uint64_t indexed_end = std::max<uint64_t>(known.indexed_end, kPackHeaderSize);
  while (appendable && pos < indexed_end) {
    PackEntryInfo info;
    if (pos + kPackEntryHeaderSize > size ||
        !ReadExactly(*file, pos, kPackEntryHeaderSize, &bytes, what).ok() ||
        !ParsePackEntryHeader(bytes, pos, &info).ok() || info.end() > size) {
      appendable = false;
      break;
    }
    entries.push_back(info);
    pos = info.end();
  }
  if (!appendable || pos != indexed_end) {
    if (appendable) appendable = false;  // the index's end is not an entry boundary
    MEDVFS_LOG_ERROR("pack %llu is damaged before its indexed end: it takes no appends",
                     static_cast<unsigned long long>(number));
    out->end = size;
    return Status::Ok();
  }
  // Past the indexed end: whole, authentic entries are orphans; the first thing that is not
  // one is a torn tail, unless it is a trailer that seals the pack.
  std::string payload;
  while (pos + kPackEntryHeaderSize <= size) {
    PackEntryInfo info;
    if (!ReadExactly(*file, pos, kPackEntryHeaderSize, &bytes, what).ok() ||
        !ParsePackEntryHeader(bytes, pos, &info).ok() || info.end() > size ||
        !ReadExactly(*file, pos, info.length, &bytes, what).ok() ||
        !OpenPackEntry(seal_key_, number, info, bytes, &payload).ok()) {
      break;
    }
    entries.push_back(info);
    ++out->orphan_entries;
    out->orphan_bytes += info.length;
    pos = info.end();
  }
  if (pos < size && size - pos >= kPackFooterSize) {
    PackFooter footer;
    std::vector<PackEntryInfo> listed;
    if (ReadExactly(*file, size - kPackFooterSize, kPackFooterSize, &bytes, what).ok() &&
        ParsePackFooter(bytes, size, &footer).ok() && footer.trailer_offset == pos &&
        ReadExactly(*file, pos, footer.trailer_length, &bytes, what).ok() &&
        OpenPackTrailer(seal_key_, number, footer, bytes, &listed).ok() &&
        listed.size() == entries.size()) {
      out->sealed_on_disk = true;
      out->end = size;
      std::lock_guard lock(mu_);
      sealed_.emplace_back(number, size);
      return Status::Ok();
    }
  }
  out->cut_bytes = size - pos;
  out->end = pos;
  if (options_.read_only) return Status::Ok();

  std::unique_ptr<rocksdb::FSWritableFile> writable;
  MEDVFS_RETURN_IF_ERROR(FromIo(
      fs_->ReopenWritableFile(path, PackFileOptions(), &writable, nullptr), "reopening a pack"));
  // Synced whether or not anything is cut: orphans a killed daemon left in the page cache
  // count as durable from here on.
  if (out->cut_bytes > 0) {
    MEDVFS_LOG_INFO("pack %llu: cut %llu torn bytes after its last whole entry",
                    static_cast<unsigned long long>(number),
                    static_cast<unsigned long long>(out->cut_bytes));
    MEDVFS_RETURN_IF_ERROR(FromIo(writable->Truncate(pos, rocksdb::IOOptions(), nullptr),
                                  "cutting a pack's torn tail"));
    // Appends continue from a fresh handle: after a truncate the old one may still write at
    // its former position.
    MEDVFS_RETURN_IF_ERROR(
        FromIo(writable->Close(rocksdb::IOOptions(), nullptr), "cutting a pack's torn tail"));
    MEDVFS_RETURN_IF_ERROR(FromIo(
        fs_->ReopenWritableFile(path, PackFileOptions(), &writable, nullptr), "reopening a pack"));
  }
  MEDVFS_RETURN_IF_ERROR(FromIo(writable->Sync(rocksdb::IOOptions(), nullptr), "syncing a pack"));
  auto pack = std::make_shared<OpenPack>();
  pack->number = number;
  pack->file = std::move(writable);
  pack->end = pack->synced_end = pos;
  pack->entries = std::move(entries);
  std::lock_guard pack_lock(pack->mu);
  if (pack->end >= options_.seal_bytes) {
    Status sealed = SealLocked(*pack);
    if (!sealed.ok()) {
      MEDVFS_LOG_ERROR("pack %llu could not be sealed: %s", static_cast<unsigned long long>(number),
                       sealed.ToString().c_str());
    }
    return Status::Ok();
  }
  std::lock_guard lock(mu_);
  open_.push_back(pack);
  durable_end_[number] = pos;
  return Status::Ok();
}

Status PackStore::NewPack(std::shared_ptr<OpenPack>* made) {
  // REQUIRES: mu_ held.
  auto pack = std::make_shared<OpenPack>();
  pack->number = next_pack_++;
  const std::string path = PathOf(pack->number);
  MEDVFS_RETURN_IF_ERROR(FromIo(fs_->NewWritableFile(path, PackFileOptions(), &pack->file, nullptr),
                                "creating a pack"));
  const std::string header = EncodePackHeader(pack->number);
  rocksdb::IOStatus s = pack->file->Append(header, rocksdb::IOOptions(), nullptr);
  if (s.ok()) s = pack->file->Sync(rocksdb::IOOptions(), nullptr);
  // The new name must survive a power loss before anything refers to the pack.
  std::unique_ptr<rocksdb::FSDirectory> directory;
  if (s.ok()) s = fs_->NewDirectory(dir_.string(), rocksdb::IOOptions(), &directory, nullptr);
  if (s.ok()) s = directory->Fsync(rocksdb::IOOptions(), nullptr);
  if (!s.ok()) {
    pack->file->Close(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
    fs_->DeleteFile(path, rocksdb::IOOptions(), nullptr).PermitUncheckedError();
    return FromIo(s, "creating a pack");
  }
  pack->end = pack->synced_end = header.size();
  durable_end_[pack->number] = pack->end;
  *made = std::move(pack);
  return Status::Ok();
}

StatusOr<std::shared_ptr<PackStore::OpenPack>> PackStore::PackFor(uint64_t writer) {
  std::lock_guard lock(mu_);
  if (writer != 0) {
    auto leased = leases_.find(writer);
    if (leased != leases_.end()) return leased->second;
  }
  std::shared_ptr<OpenPack> chosen;
  for (const auto& pack : open_) {
    if (!chosen || pack->writers < chosen->writers) chosen = pack;
  }
  if (!chosen || (chosen->writers > 0 && open_.size() < options_.max_open_packs)) {
    MEDVFS_RETURN_IF_ERROR(NewPack(&chosen));
    open_.push_back(chosen);
  }
  if (writer != 0) {
    ++chosen->writers;
    leases_[writer] = chosen;
  }
  return chosen;
}

void PackStore::EndWriter(uint64_t writer) {
  if (writer == 0) return;
  std::lock_guard lock(mu_);
  auto leased = leases_.find(writer);
  if (leased == leases_.end()) return;
  --leased->second->writers;
  leases_.erase(leased);
}

void PackStore::Retire(const std::shared_ptr<OpenPack>& pack) {
  // REQUIRES: pack->mu held, mu_ not held.
  pack->taking_appends = false;
  std::lock_guard lock(mu_);
  std::erase(open_, pack);
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second == pack) {
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
  pack->writers = 0;
}

Status PackStore::Append(uint64_t writer, const ChunkId& id, uint32_t plain_length,
                         uint8_t encoding, std::string_view payload, PackLocation* at) {
  if (options_.read_only) return Status(Code::kReadOnly, "the archive is open read-only");
  for (int attempt = 0; attempt < 8; ++attempt) {
    MEDVFS_ASSIGN_OR_RETURN(std::shared_ptr<OpenPack> pack, PackFor(writer));
    std::lock_guard pack_lock(pack->mu);
    if (!pack->taking_appends) continue;  // sealed or retired since: take another
    const uint64_t offset = pack->end;
    std::string entry;
    entry.reserve(PackEntryLength(payload.size()));
    MEDVFS_RETURN_IF_ERROR(AppendPackEntry(seal_key_, pack->number, offset, id, plain_length,
                                           encoding, payload, &entry));
    rocksdb::IOStatus s = pack->file->Append(entry, rocksdb::IOOptions(), nullptr);
    if (!s.ok()) {
      // Whatever part of the entry reached the file is cut off (or, failing that, cut by the
      // next open's recovery), and the pack takes no more appends in this process.
      pack->file->Truncate(offset, rocksdb::IOOptions(), nullptr).PermitUncheckedError();
      Retire(pack);
      return FromIo(s, "appending to a pack");
    }
    PackEntryInfo info;
    info.id = id;
    info.offset = offset;
    info.length = static_cast<uint32_t>(entry.size());
    info.plain_length = plain_length;
    info.encoding = encoding;
    pack->entries.push_back(info);
    pack->end += entry.size();
    *at = PackLocation{pack->number, offset, info.length};
    {
      std::lock_guard lock(mu_);
      if (std::find(unsynced_.begin(), unsynced_.end(), pack) == unsynced_.end()) {
        unsynced_.push_back(pack);
      }
    }
    if (pack->end >= options_.seal_bytes) {
      Status sealed = SealLocked(*pack);
      if (!sealed.ok()) {
        // The entry itself is whole; the next Sync makes it durable. The pack is left
        // unsealed, and the next open recovers it (cuts the partial trailer).
        MEDVFS_LOG_ERROR("pack %llu could not be sealed: %s",
                         static_cast<unsigned long long>(pack->number), sealed.ToString().c_str());
        Retire(pack);
      }
    }
    return Status::Ok();
  }
  return Status::IoError("no pack takes appends");
}

Status PackStore::SealLocked(OpenPack& pack) {
  // REQUIRES: pack.mu held.
  std::string trailer;
  MEDVFS_RETURN_IF_ERROR(
      AppendPackTrailer(seal_key_, pack.number, pack.end, pack.entries, &trailer));
  rocksdb::IOStatus s = pack.file->Append(trailer, rocksdb::IOOptions(), nullptr);
  if (s.ok()) s = pack.file->Sync(rocksdb::IOOptions(), nullptr);
  if (s.ok()) s = pack.file->Close(rocksdb::IOOptions(), nullptr);
  if (!s.ok()) return FromIo(s, "sealing a pack");
  pack.file.reset();
  pack.end += trailer.size();
  pack.synced_end = pack.end;
  pack.taking_appends = false;
  pack.sealed = true;
  pack.entries.clear();
  pack.entries.shrink_to_fit();
  std::lock_guard lock(mu_);
  sealed_.emplace_back(pack.number, pack.end);
  std::erase_if(open_, [&](const std::shared_ptr<OpenPack>& p) { return p.get() == &pack; });
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.get() == &pack) {
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
  durable_end_.erase(pack.number);
  return Status::Ok();
}

Status PackStore::Sync() {
  std::lock_guard sync_lock(sync_mu_);
  std::vector<std::shared_ptr<OpenPack>> packs;
  {
    std::lock_guard lock(mu_);
    packs.swap(unsynced_);
  }
  Status first_failure;
  for (size_t i = 0; i < packs.size(); ++i) {
    const std::shared_ptr<OpenPack>& pack = packs[i];
    std::lock_guard pack_lock(pack->mu);
    // Sealing synced it; a retired pack whose handle is gone was synced before.
    if (pack->sealed || !pack->file || pack->synced_end == pack->end) continue;
    const uint64_t end = pack->end;
    Status s = FromIo(pack->file->Sync(rocksdb::IOOptions(), nullptr), "syncing a pack");
    std::lock_guard lock(mu_);
    if (!s.ok()) {
      // Left for the next Sync to try again.
      if (std::find(unsynced_.begin(), unsynced_.end(), pack) == unsynced_.end()) {
        unsynced_.push_back(pack);
      }
      if (first_failure.ok()) first_failure = s;
      continue;
    }
    pack->synced_end = end;
    durable_end_[pack->number] = end;
    if (!pack->taking_appends && pack->file) {
      // Retired: nothing more is appended, so the handle can go.
      pack->file->Close(rocksdb::IOOptions(), nullptr).PermitUncheckedError();
      pack->file.reset();
    }
  }
  return first_failure;
}

Status PackStore::SealAll() {
  std::vector<std::shared_ptr<OpenPack>> packs;
  {
    std::lock_guard lock(mu_);
    packs = open_;
  }
  Status first_failure;
  for (const auto& pack : packs) {
    Status s = SealIfTakingAppends(pack);
    if (!s.ok() && first_failure.ok()) first_failure = s;
  }
  return first_failure;
}

Status PackStore::SealIfTakingAppends(const std::shared_ptr<OpenPack>& pack) {
  std::lock_guard pack_lock(pack->mu);
  if (!pack->taking_appends || pack->entries.empty()) return Status::Ok();
  Status s = SealLocked(*pack);
  if (!s.ok()) Retire(pack);
  return s;
}

Status PackStore::Seal(uint64_t pack) {
  std::shared_ptr<OpenPack> target;
  {
    std::lock_guard lock(mu_);
    for (const auto& open : open_) {
      if (open->number == pack) target = open;
    }
  }
  return target ? SealIfTakingAppends(target) : Status::Ok();
}

uint64_t PackStore::DurableEnd(uint64_t pack) const {
  std::lock_guard lock(mu_);
  auto it = durable_end_.find(pack);
  return it != durable_end_.end() ? it->second : UINT64_MAX;  // sealed: all of it
}

std::vector<std::pair<uint64_t, uint64_t>> PackStore::TakeSealed() {
  std::lock_guard lock(mu_);
  return std::exchange(sealed_, {});
}

Status PackStore::ReaderFor(uint64_t pack, std::shared_ptr<PackReader>* reader) {
  std::lock_guard lock(readers_mu_);
  auto it = readers_.find(pack);
  if (it != readers_.end()) {
    *reader = it->second;
    return Status::Ok();
  }
  auto made = std::make_shared<PackReader>();
  rocksdb::IOStatus s =
      fs_->NewRandomAccessFile(PathOf(pack), PackFileOptions(), &made->file, nullptr);
  if ((s.IsPathNotFound() || s.IsNotFound()) && options_.remote) {
    made->file.reset();  // read from the remote (not kept: the file may come back, restored)
    *reader = std::move(made);
    return Status::Ok();
  }
  if (s.IsPathNotFound() || s.IsNotFound()) {
    return Status(Code::kNotFound, "pack " + std::to_string(pack) + " does not exist");
  }
  MEDVFS_RETURN_IF_ERROR(FromIo(s, "opening a pack"));
  // Descriptors are kept for the packs read; beyond a bound the oldest numbers go first.
  constexpr size_t kMaxOpenReaders = 256;
  if (readers_.size() >= kMaxOpenReaders) readers_.erase(readers_.begin());
  readers_[pack] = made;
  *reader = std::move(made);
  return Status::Ok();
}

Status PackStore::ReadRaw(uint64_t pack, uint64_t offset, size_t length, std::string* bytes) {
  std::shared_ptr<PackReader> reader;
  MEDVFS_RETURN_IF_ERROR(ReaderFor(pack, &reader));
  if (reader->file == nullptr) {
    MEDVFS_RETURN_IF_ERROR(options_.remote->Read(pack, offset, length, bytes));
    if (bytes->size() != length) {
      return Status::Corruption("pack " + std::to_string(pack) + " ends early in the remote");
    }
    return Status::Ok();
  }
  return ReadExactly(*reader->file, offset, length, bytes, "pack " + std::to_string(pack));
}

Status PackStore::DropLocalCopy(uint64_t pack) {
  if (!options_.remote) return Status::Invalid("the archive has no remote to read packs from");
  {
    std::lock_guard lock(readers_mu_);
    readers_.erase(pack);
  }
  rocksdb::IOStatus s = fs_->DeleteFile(PathOf(pack), rocksdb::IOOptions(), nullptr);
  if (!s.ok() && !s.IsPathNotFound() && !s.IsNotFound()) {
    return FromIo(s, "deleting a pack's local copy");
  }
  return SyncDirectory("deleting a pack's local copy");
}

uint64_t PackStore::NextPackNumber() const {
  std::lock_guard lock(mu_);
  return next_pack_;
}

bool PackStore::HasLocalFile(uint64_t pack) const {
  return fs_->FileExists(PathOf(pack), rocksdb::IOOptions(), nullptr).ok();
}

Status PackStore::OpenEntry(uint64_t pack, const PackEntryInfo& info, std::string_view bytes,
                            std::string* payload) const {
  return OpenPackEntry(seal_key_, pack, info, bytes, payload);
}

Status PackStore::Read(const PackLocation& at, const ChunkId& id, PackEntryInfo* info,
                       std::string* payload) {
  std::string bytes;
  Status s = ReadRaw(at.pack, at.offset, at.length, &bytes);
  if (s.code() == Code::kCorruption || s.ok()) {
    if (s.ok()) s = ParsePackEntryHeader(bytes, at.offset, info);
    if (s.ok() && (info->id != id || info->length != at.length)) {
      s = Status::Corruption("a pack holds another chunk where the index points");
    }
    if (s.ok()) s = OpenPackEntry(seal_key_, at.pack, *info, bytes, payload);
    if (!s.ok()) {
      MEDVFS_LOG_ERROR("pack %llu, offset %llu: %s", static_cast<unsigned long long>(at.pack),
                       static_cast<unsigned long long>(at.offset), s.ToString().c_str());
    }
  }
  return s;
}

StatusOr<std::map<uint64_t, uint64_t>> PackStore::ListFiles() const {
  std::vector<std::string> names;
  MEDVFS_RETURN_IF_ERROR(
      FromIo(fs_->GetChildren(dir_.string(), rocksdb::IOOptions(), &names, nullptr),
             "listing the packs directory"));
  std::map<uint64_t, uint64_t> files;
  for (const std::string& name : names) {
    const uint64_t number = PackNumberOfFileName(name);
    if (number == 0) continue;
    uint64_t size = 0;
    MEDVFS_RETURN_IF_ERROR(
        FromIo(fs_->GetFileSize((dir_ / name).string(), rocksdb::IOOptions(), &size, nullptr),
               "reading a pack's size"));
    files[number] = size;
  }
  return files;
}

Status PackStore::ScanPack(uint64_t pack,
                           const std::function<void(const PackEntryInfo& info, const Status& status,
                                                    std::string_view payload)>& visit,
                           ScanResult* result) {
  *result = ScanResult{};
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  const std::string path = PathOf(pack);
  MEDVFS_RETURN_IF_ERROR(
      FromIo(fs_->NewRandomAccessFile(path, PackFileOptions(), &file, nullptr), "opening a pack"));
  uint64_t size = 0;
  MEDVFS_RETURN_IF_ERROR(FromIo(fs_->GetFileSize(path, rocksdb::IOOptions(), &size, nullptr),
                                "reading a pack's size"));
  const std::string what = "pack " + std::to_string(pack);
  std::string bytes;
  if (size < kPackHeaderSize) return Status::Corruption(what + " is shorter than its header");
  MEDVFS_RETURN_IF_ERROR(ReadExactly(*file, 0, kPackHeaderSize, &bytes, what));
  MEDVFS_RETURN_IF_ERROR(CheckPackHeader(bytes, pack));
  // Sealed when the footer and trailer authenticate; the entries then end at the trailer.
  std::vector<PackEntryInfo> listed;
  PackFooter footer;
  result->entries_end = size;
  if (size >= kPackHeaderSize + kPackFooterSize &&
      ReadExactly(*file, size - kPackFooterSize, kPackFooterSize, &bytes, what).ok() &&
      ParsePackFooter(bytes, size, &footer).ok()) {
    MEDVFS_RETURN_IF_ERROR(
        ReadExactly(*file, footer.trailer_offset, footer.trailer_length, &bytes, what));
    MEDVFS_RETURN_IF_ERROR(OpenPackTrailer(seal_key_, pack, footer, bytes, &listed));
    result->sealed = true;
    result->entries_end = footer.trailer_offset;
  }
  uint64_t pos = kPackHeaderSize;
  size_t index = 0;
  std::string payload;
  while (pos < result->entries_end) {
    PackEntryInfo info;
    Status s;
    if (pos + kPackEntryHeaderSize > result->entries_end) {
      s = Status::Corruption("a cut entry");
    } else {
      s = ReadExactly(*file, pos, kPackEntryHeaderSize, &bytes, what);
      if (s.ok()) s = ParsePackEntryHeader(bytes, pos, &info);
      if (s.ok() && info.end() > result->entries_end) s = Status::Corruption("a cut entry");
    }
    if (!s.ok()) {
      if (!result->sealed) {
        result->tail_bytes = result->entries_end - pos;
        result->entries_end = pos;
        return Status::Ok();
      }
      return Status::Corruption(what + ": an entry header is damaged at offset " +
                                std::to_string(pos));
    }
    s = ReadExactly(*file, pos, info.length, &bytes, what);
    if (s.ok()) s = OpenPackEntry(seal_key_, pack, info, bytes, &payload);
    if (result->sealed) {
      if (index >= listed.size() || listed[index].offset != info.offset ||
          listed[index].id != info.id || listed[index].length != info.length) {
        return Status::Corruption(what + ": the trailer does not list the pack's entries");
      }
      ++index;
    }
    visit(info, s, s.ok() ? std::string_view(payload) : std::string_view());
    pos = info.end();
  }
  if (result->sealed && index != listed.size()) {
    return Status::Corruption(what + ": the trailer lists entries the pack does not hold");
  }
  return Status::Ok();
}

}  // namespace medvfs::store
