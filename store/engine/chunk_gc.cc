// ChunkStore's part of garbage collection: dropping index records of chunks nothing
// references, and rewriting packs whose live bytes fell (see chunk_store.h). What is
// referenced is the archive's to say (store/archive/archive_gc.cc).
#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "store/crypto/sealed_record.h"
#include "store/engine/chunk_store.h"
#include "store/log.h"

namespace medvfs::store {

// Keeps a long copy at a set rate: Spend(bytes) sleeps until the bytes spent so far are
// within the rate since the start (a burst of up to one run is allowed).
class RateLimit {
 public:
  explicit RateLimit(uint64_t bytes_per_s)
      : bytes_per_s_(bytes_per_s), start_(std::chrono::steady_clock::now()) {}
  void Spend(uint64_t bytes) {
    spent_ += bytes;
    if (bytes_per_s_ == 0) return;
    const auto due = start_ + std::chrono::microseconds(spent_ * 1'000'000 / bytes_per_s_);
    if (due > std::chrono::steady_clock::now()) std::this_thread::sleep_until(due);
  }
  uint64_t spent() const { return spent_; }

 private:
  uint64_t bytes_per_s_;
  std::chrono::steady_clock::time_point start_;
  uint64_t spent_ = 0;
};

namespace {

// Index records dropped or moved per batch: bounds the time index_mu_ is held (commits wait
// for it) and the size of one write.
constexpr size_t kCollectBatch = 1024;
// A group of packs is switched over together (one log sync and one flush of the memory
// tables per group) once this many bytes were copied.
constexpr uint64_t kRepackGroupBytes = uint64_t{256} << 20;
// Live entries that follow each other in a pack are read with one read of at most this.
constexpr uint64_t kMaxRunBytes = uint64_t{4} << 20;

}  // namespace

void ChunkStore::BeginCollection() {
  std::lock_guard lock(mu_);
  collecting_ = true;
  taken_up_.clear();
}

void ChunkStore::EndCollection() {
  std::lock_guard lock(mu_);
  collecting_ = false;
  taken_up_.clear();
  taken_up_.rehash(0);
}

Status ChunkStore::ScanIndex(
    const std::function<bool(const ChunkId& id, const ChunkIndexRecord& record)>& visit) const {
  Status failed;
  MEDVFS_RETURN_IF_ERROR(
      kv_->Scan(Family::kMeta, std::string(1, kChunkIndexPrefix),
                [&](std::string_view key, std::string_view value) {
                  ChunkIndexRecord record;
                  if (key.size() != 1 + sizeof(ChunkId) ||
                      OpenSealedRecord(seal_key_, key, value, &record) != RecordFault::kNone) {
                    failed = Status::Corruption("a chunk index record does not open");
                    return false;
                  }
                  ChunkId id;
                  std::copy(key.begin() + 1, key.end(), id.begin());
                  return visit(id, record);
                }));
  return failed;
}

StatusOr<ChunkStore::DropResult> ChunkStore::DropUnreferenced(
    std::span<const ChunkId> unreferenced) {
  DropResult result;
  for (size_t first = 0; first < unreferenced.size(); first += kCollectBatch) {
    const auto part =
        unreferenced.subspan(first, std::min(kCollectBatch, unreferenced.size() - first));
    std::lock_guard index_lock(index_mu_);
    std::lock_guard lock(mu_);
    KvBatch batch;
    std::map<uint64_t, PackRecord> changed;
    std::vector<ChunkId> dropped;
    for (const ChunkId& id : part) {
      // Put checks the index under mu_ too: a writer either found this chunk (and it is in
      // taken_up_ now) or will not find it and stores it again.
      if (taken_up_.contains(id) || fresh_.contains(id) || pending_.contains(id)) continue;
      const uint64_t bytes = DropIndexed(id, batch, changed);
      if (bytes == 0) continue;
      dropped.push_back(id);
      result.bytes += bytes;
    }
    if (dropped.empty()) continue;
    MEDVFS_RETURN_IF_ERROR(WriteWithPackRecords(batch, changed));
    result.chunks += dropped.size();
    ForgetCached(dropped);
  }
  return result;
}

Status ChunkStore::SealPacks(std::span<const uint64_t> packs) {
  for (uint64_t pack : packs) MEDVFS_RETURN_IF_ERROR(packs_->Seal(pack));
  std::lock_guard index_lock(index_mu_);
  std::map<uint64_t, PackRecord> changed;
  CountSealed(changed);
  KvBatch batch;
  return WriteWithPackRecords(batch, changed);
}

StatusOr<ChunkStore::RepackResult> ChunkStore::Repack(std::span<const uint64_t> packs,
                                                      const RepackOptions& options) {
  RepackResult result;
  if (packs.empty()) return result;
  const std::set<uint64_t> wanted(packs.begin(), packs.end());
  // Each pack's live entries, from the index, in pack order.
  std::map<uint64_t, std::vector<MovedEntry>> live;
  for (uint64_t pack : wanted) live[pack];
  MEDVFS_RETURN_IF_ERROR(ScanIndex([&](const ChunkId& id, const ChunkIndexRecord& record) {
    auto it = live.find(record.pack);
    if (it != live.end()) {
      MovedEntry entry;
      entry.id = id;
      entry.old_offset = record.offset;
      entry.now = PackLocation{record.pack, record.offset, record.stored_length};
      entry.plain_length = record.plain_length;
      it->second.push_back(entry);
    }
    return true;
  }));
  RateLimit limit(options.rate_bytes_per_s);
  std::vector<CopiedPack> group;
  uint64_t group_bytes = 0;
  Status failed;
  for (auto& [pack, entries] : live) {
    if (options.cancelled && options.cancelled()) {
      result.cancelled = true;
      break;
    }
    std::sort(entries.begin(), entries.end(),
              [](const MovedEntry& a, const MovedEntry& b) { return a.old_offset < b.old_offset; });
    const uint64_t copied_before = result.bytes_copied;
    Status s = CopyLiveEntries(pack, &entries, options, limit, &result);
    if (s.code() == Code::kCorruption || s.code() == Code::kNotFound) {
      MEDVFS_LOG_ERROR("pack %llu is left as it is: %s", static_cast<unsigned long long>(pack),
                       s.ToString().c_str());
      ++result.packs_skipped;
      continue;
    }
    if (s.code() == Code::kBusy) {
      result.cancelled = true;
      break;
    }
    if (!s.ok()) {
      failed = s;
      break;
    }
    group.push_back(CopiedPack{pack, std::move(entries)});
    group_bytes += result.bytes_copied - copied_before;
    if (group_bytes >= kRepackGroupBytes) {
      s = SwitchToCopies(group, &result);
      group.clear();
      group_bytes = 0;
      if (!s.ok()) {
        failed = s;
        break;
      }
    }
  }
  // What was copied before a failure or a cancel is switched over all the same.
  Status s = SwitchToCopies(group, &result);
  packs_->EndWriter(kCollectorWriter);
  MEDVFS_RETURN_IF_ERROR(failed);
  MEDVFS_RETURN_IF_ERROR(s);
  return result;
}

Status ChunkStore::CopyLiveEntries(uint64_t pack, std::vector<MovedEntry>* entries,
                                   const RepackOptions& options, RateLimit& limit,
                                   RepackResult* result) {
  for (size_t first = 0; first < entries->size();) {
    size_t last = first;
    const uint64_t run_start = (*entries)[first].now.offset;
    while (last + 1 < entries->size() &&
           (*entries)[last + 1].now.offset == (*entries)[last].now.end() &&
           (*entries)[last + 1].now.end() - run_start <= kMaxRunBytes) {
      ++last;
    }
    if (options.cancelled && options.cancelled()) return Status(Code::kBusy, "cancelled");
    const uint64_t run_length = (*entries)[last].now.end() - run_start;
    uint64_t copied_in_run = 0;
    std::string run;
    MEDVFS_RETURN_IF_ERROR(packs_->ReadRaw(pack, run_start, run_length, &run));
    for (size_t i = first; i <= last; ++i) {
      MovedEntry& entry = (*entries)[i];
      const std::string_view bytes =
          std::string_view(run).substr(entry.now.offset - run_start, entry.now.length);
      PackEntryInfo info;
      std::string payload;
      MEDVFS_RETURN_IF_ERROR(ParsePackEntryHeader(bytes, entry.now.offset, &info));
      if (info.id != entry.id || info.length != entry.now.length ||
          info.plain_length != entry.plain_length) {
        return Status::Corruption("an entry is not the one the index names");
      }
      MEDVFS_RETURN_IF_ERROR(packs_->OpenEntry(pack, info, bytes, &payload));
      MEDVFS_RETURN_IF_ERROR(kv_->CheckDataWrite(PackEntryLength(payload.size())));
      PackLocation at;
      MEDVFS_RETURN_IF_ERROR(packs_->Append(kCollectorWriter, entry.id, info.plain_length,
                                            info.encoding, payload, &at));
      entry.now = at;
      ++result->chunks_copied;
      result->bytes_copied += at.length;
      copied_in_run += at.length;
      bytes_written_ += at.length;
    }
    // Both the bytes read and those written take the disk from clients.
    limit.Spend(run_length + copied_in_run);
    if (options.progress) options.progress(result->bytes_copied);
    first = last + 1;
  }
  return Status::Ok();
}

Status ChunkStore::SwitchToCopies(std::vector<CopiedPack>& group, RepackResult* result) {
  if (group.empty()) return Status::Ok();
  // The copies are durable before any index record names them.
  MEDVFS_RETURN_IF_ERROR(packs_->Sync());
  std::vector<uint64_t> removable;
  {
    std::lock_guard index_lock(index_mu_);
    std::lock_guard lock(mu_);
    std::set<uint64_t> pending_packs;
    for (const auto& [id, pending] : pending_) pending_packs.insert(pending.at.pack);
    KvBatch batch;
    std::map<uint64_t, PackRecord> changed;
    for (const CopiedPack& copied : group) {
      // A chunk appended to the pack before it was sealed and not yet indexed would be
      // indexed there after the switch: the pack stays.
      if (pending_packs.contains(copied.pack)) {
        ++result->packs_skipped;
        continue;
      }
      std::vector<const MovedEntry*> still_there;
      for (const MovedEntry& entry : copied.moved) {
        ChunkIndexRecord index;
        if (ReadIndexed(entry.id, &index) && index.pack == copied.pack &&
            index.offset == entry.old_offset) {
          still_there.push_back(&entry);
        }
      }
      PackRecord& old_record = ChangedRecord(changed, copied.pack);
      if (old_record.live_chunks != still_there.size()) {
        MEDVFS_LOG_ERROR(
            "pack %llu: the index names %llu entries in it, the rewrite copied %zu; it is left "
            "as it is",
            static_cast<unsigned long long>(copied.pack),
            static_cast<unsigned long long>(old_record.live_chunks), still_there.size());
        changed.erase(copied.pack);
        ++result->packs_skipped;
        continue;
      }
      for (const MovedEntry* entry : still_there) {
        MEDVFS_RETURN_IF_ERROR(
            PutIndexed(batch, changed, entry->id, entry->plain_length, entry->now));
      }
      PackRecord& emptied = ChangedRecord(changed, copied.pack);
      result->bytes_removed += emptied.size;
      emptied.live_bytes = 0;
      emptied.live_chunks = 0;
      emptied.removed = true;
      removable.push_back(copied.pack);
    }
    CountSealed(changed);
    MEDVFS_RETURN_IF_ERROR(WriteWithPackRecords(batch, changed));
  }
  group.clear();
  if (removable.empty()) return Status::Ok();
  // Durable, and in table files: a replay after a crash never meets an index record naming a
  // pack about to be deleted (it would stop there: see ReplayCheck).
  MEDVFS_RETURN_IF_ERROR(kv_->SyncWal());
  MEDVFS_RETURN_IF_ERROR(kv_->FlushAll());
  for (uint64_t pack : removable) {
    MEDVFS_RETURN_IF_ERROR(packs_->RemovePack(pack));
    ++result->packs_removed;
  }
  return Status::Ok();
}

}  // namespace medvfs::store
