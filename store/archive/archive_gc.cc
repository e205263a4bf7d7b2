// Garbage collection (Archive::CollectGarbage): mark, sweep, repack.
//
// Mark: the chunks the archive references are those of every extent group (every version of
// every history) and of every file being written (WriteSession's pending content). The chunk
// store starts remembering the chunks writers take up (ChunkStore::BeginCollection) before
// the mark, so a chunk that becomes referenced while the collection runs (a commit, a
// dedup hit of a new write) is never dropped: the sweep leaves it, whatever the mark found.
// Sweep: chunk index records the mark did not reach are dropped (ChunkStore::
// DropUnreferenced), and the extent groups of dropped scratch versions (kDroppedExtentPrefix:
// garbage by definition) are deleted. Repack: sealed packs with enough garbage are rewritten
// (ChunkStore::Repack), which is where the disk space comes back.
#include <algorithm>

#include "store/archive/archive_impl.h"
#include "store/engine/pack_format.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

// Extent groups of dropped versions deleted per batch (mu_ is held for each batch).
constexpr size_t kDroppedGroupsPerBatch = 512;
// A pack still taking appends is sealed and rewritten once it holds this much garbage (and the
// threshold's share): less is left for when it fills up, rather than making small packs.
constexpr uint64_t kMinGarbageToSealEarly = uint64_t{1} << 20;

std::string Describe(const GcResult& r) {
  std::string text = r.dry_run ? "dry run: would drop " : "dropped ";
  text += std::to_string(r.chunks_dropped) + " unreferenced chunks (" +
          std::to_string(r.bytes_dropped) + " bytes) of " + std::to_string(r.chunks_indexed) +
          "; " + (r.dry_run ? "would rewrite " : "rewrote ") + std::to_string(r.packs_removed) +
          " of " + std::to_string(r.packs) + " packs, copying " + std::to_string(r.bytes_copied) +
          " bytes; " + (r.dry_run ? "would free " : "freed ") + std::to_string(r.bytes_freed) +
          " bytes";
  if (r.packs_skipped != 0) text += "; " + std::to_string(r.packs_skipped) + " packs left";
  if (r.cancelled) text += "; cancelled";
  return text;
}

}  // namespace

StatusOr<GcResult> ArchiveImpl::CollectGarbage(const GcRequest& request, const Caller& caller) {
  if (!request.dry_run) MEDVFS_RETURN_IF_ERROR(CheckWritable());
  std::unique_lock gc_lock(gc_mu_, std::try_to_lock);
  if (!gc_lock.owns_lock()) {
    return Status(Code::kBusy, "a garbage collection or a backup is running");
  }
  return CollectGarbageLocked(request, caller);
}

StatusOr<GcResult> ArchiveImpl::CollectGarbageLocked(const GcRequest& request,
                                                     const Caller& caller) {
  GcResult result;
  StatusOr<GcResult> collected = DoCollectGarbage(request, &result);
  Audit(caller, AuditOp::kGc, collected.status(), "/", 0,
        collected.ok() ? Describe(*collected) : Describe(result));
  if (collected.ok() && !request.dry_run) {
    KvBatch batch;
    PutRecord(batch, kLastGcKey, *collected);
    Status s = kv_->Write(batch, /*sync=*/false);
    if (s.ok()) s = kv_->SyncWal();
    if (!s.ok()) MEDVFS_LOG_ERROR("recording the garbage collection: %s", s.ToString().c_str());
  }
  return collected;
}

StatusOr<GcResult> ArchiveImpl::DoCollectGarbage(const GcRequest& request, GcResult* result) {
  *result = GcResult{};
  result->dry_run = request.dry_run;
  result->time_ns = NowNs();
  const auto started = std::chrono::steady_clock::now();
  auto progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (request.progress) request.progress(phase, done, total);
  };
  auto cancelled = [&] {
    if (request.cancelled && request.cancelled()) result->cancelled = true;
    return result->cancelled;
  };
  auto finish = [&]() -> StatusOr<GcResult> {
    result->duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - started)
                              .count();
    return *result;
  };

  // --- Mark ---
  progress("mark", 0, 0);
  chunks_->BeginCollection();
  struct EndCollection {
    ChunkStore* chunks;
    ~EndCollection() { chunks->EndCollection(); }
  } end_collection{chunks_.get()};
  std::vector<ChunkId> marked;
  std::vector<std::shared_ptr<WriteSession>> sessions;
  {
    std::shared_lock lock(mu_);
    for (const auto& [ino, session] : sessions_) sessions.push_back(session);
  }
  for (const auto& session : sessions) {
    std::lock_guard session_lock(session->mu);
    session->content.AppendChunkIds(&marked);
  }
  sessions.clear();
  // One scan, one consistent view: every version that exists at its start is marked.
  MEDVFS_RETURN_IF_ERROR(ScanRecords<std::vector<Extent>>(
      std::string(1, kExtentPrefix), [&](std::string_view, const std::vector<Extent>& group) {
        for (const Extent& extent : group) {
          if (!IsHole(extent)) marked.push_back(extent.id);
        }
        return true;
      }));
  std::sort(marked.begin(), marked.end());
  marked.erase(std::unique(marked.begin(), marked.end()), marked.end());
  if (cancelled()) return finish();

  // --- Sweep ---
  progress("sweep", 0, 0);
  std::vector<ChunkId> unreferenced;
  std::map<uint64_t, uint64_t> unreferenced_bytes_per_pack;
  MEDVFS_RETURN_IF_ERROR(chunks_->ScanIndex([&](const ChunkId& id, const ChunkIndexRecord& index) {
    ++result->chunks_indexed;
    if (!std::binary_search(marked.begin(), marked.end(), id)) {
      unreferenced.push_back(id);
      unreferenced_bytes_per_pack[index.pack] += index.stored_length;
      result->bytes_dropped += index.stored_length;
    }
    return true;
  }));
  marked.clear();
  marked.shrink_to_fit();
  result->chunks_dropped = unreferenced.size();
  std::vector<std::string> dropped_groups;
  MEDVFS_RETURN_IF_ERROR(kv_->Scan(Family::kMeta, std::string(1, kDroppedExtentPrefix),
                                   [&](std::string_view key, std::string_view) {
                                     dropped_groups.emplace_back(key);
                                     return true;
                                   }));
  result->dropped_extent_groups = dropped_groups.size();
  if (!request.dry_run) {
    MEDVFS_ASSIGN_OR_RETURN(ChunkStore::DropResult dropped,
                            chunks_->DropUnreferenced(unreferenced));
    result->chunks_dropped = dropped.chunks;
    result->bytes_dropped = dropped.bytes;
    for (size_t first = 0; first < dropped_groups.size(); first += kDroppedGroupsPerBatch) {
      std::unique_lock lock(mu_);
      MEDVFS_RETURN_IF_ERROR(CheckWritable());
      KvBatch batch;
      const size_t end = std::min(dropped_groups.size(), first + kDroppedGroupsPerBatch);
      for (size_t i = first; i < end; ++i) batch.Delete(Family::kMeta, dropped_groups[i]);
      MEDVFS_RETURN_IF_ERROR(WriteBatchLocked(batch));
    }
  }
  unreferenced.clear();
  unreferenced.shrink_to_fit();
  if (cancelled()) return finish();

  // --- Repack ---
  const std::map<uint64_t, PackRecord> records = chunks_->PackRecords();
  std::vector<uint64_t> chosen;
  std::vector<uint64_t> to_seal;
  uint64_t chosen_live_bytes = 0;
  for (const auto& [pack, known] : records) {
    if (known.removed) continue;
    ++result->packs;
    if (known.size == 0) continue;
    PackRecord record = known;
    if (request.dry_run) {
      // As the sweep would leave it (the count of dropped entries is not known here: their
      // trailer records count as live, so the garbage is slightly underestimated).
      auto it = unreferenced_bytes_per_pack.find(pack);
      if (it != unreferenced_bytes_per_pack.end()) {
        record.live_bytes -= std::min(record.live_bytes, it->second);
      }
    }
    const uint64_t live = record.live_bytes;
    const uint64_t garbage = PackGarbageBytes(record);
    const bool worth_it =
        (garbage > 0 && garbage * 100 >= uint64_t{request.repack_garbage_percent} * record.size) ||
        (request.rewrite_packs_of_dropped && unreferenced_bytes_per_pack.contains(pack));
    if (record.sealed) {
      if (live != 0 && !worth_it) continue;
    } else {
      const bool must =
          request.rewrite_packs_of_dropped && unreferenced_bytes_per_pack.contains(pack);
      if (!must && (!worth_it || garbage < kMinGarbageToSealEarly)) continue;
      to_seal.push_back(pack);
    }
    chosen.push_back(pack);
    chosen_live_bytes += live;
    if (request.dry_run) {
      ++result->packs_removed;
      result->bytes_copied += live;
      result->bytes_freed += garbage;
    }
  }
  if (request.dry_run || chosen.empty()) return finish();
  MEDVFS_RETURN_IF_ERROR(chunks_->SealPacks(to_seal));
  ChunkStore::RepackOptions repack;
  repack.rate_bytes_per_s = request.rate_bytes_per_s;
  repack.progress = [&](uint64_t bytes_read) { progress("repack", bytes_read, chosen_live_bytes); };
  repack.cancelled = cancelled;
  MEDVFS_ASSIGN_OR_RETURN(ChunkStore::RepackResult repacked, chunks_->Repack(chosen, repack));
  result->packs_removed = repacked.packs_removed;
  result->packs_skipped = repacked.packs_skipped;
  result->bytes_copied = repacked.bytes_copied;
  result->bytes_freed =
      repacked.bytes_removed - std::min(repacked.bytes_removed, repacked.bytes_copied);
  if (repacked.cancelled) result->cancelled = true;
  return finish();
}

StatusOr<std::optional<GcResult>> ArchiveImpl::LastCollection() const {
  GcResult last;
  Status s = GetRecord(kLastGcKey, &last);
  if (s.code() == Code::kNotFound) return std::optional<GcResult>();
  MEDVFS_RETURN_IF_ERROR(s);
  return std::optional<GcResult>(last);
}

}  // namespace medvfs::store
