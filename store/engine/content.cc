#include "store/engine/content.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <system_error>

namespace medvfs::store {

void ExtentList::Append(const Extent& extent) {
  extents_.push_back(extent);
  starts_.push_back(size_);
  size_ += extent.length;
}

void ExtentList::AppendHole(uint64_t length) {
  while (length > 0) {
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(length, kMaxHoleExtent));
    Append({ChunkId{}, n});
    length -= n;
  }
}

void ExtentList::Clear() {
  extents_.clear();
  starts_.clear();
  size_ = 0;
}

size_t ExtentList::IndexAt(uint64_t offset) const {
  auto it = std::upper_bound(starts_.begin(), starts_.end(), offset);
  return static_cast<size_t>(it - starts_.begin()) - 1;
}

namespace {
// FUSE's read-ahead window: reads this large come from a sequential reader.
constexpr size_t kSequentialReadBytes = size_t{128} * 1024;
// How many chunks (~64 KiB each) to fetch ahead of such a read: ~2 MiB.
constexpr size_t kReadAheadChunks = 32;
// Zeros to hash for holes, a piece at a time.
constexpr size_t kZeroPieceBytes = 1 << 20;

uint64_t NextOwner() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

Status TooBig() {
  return Status(Code::kTooBig, "a file can hold at most " + std::to_string(kMaxFileSize >> 30) +
                                   " GiB (the archive's limit)");
}
}  // namespace

StatusOr<size_t> ReadExtents(ChunkStore& chunks, const ExtentList& list, uint64_t offset,
                             std::span<char> out) {
  if (offset >= list.size()) return size_t{0};
  const uint64_t end = std::min<uint64_t>(list.size(), offset + out.size());
  size_t done = 0;
  size_t index = list.IndexAt(offset);
  while (offset + done < end) {
    const Extent& extent = list.extents()[index];
    const uint64_t in_chunk = offset + done - list.StartOf(index);
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(extent.length - in_chunk, end - offset - done));
    if (IsHole(extent)) {
      std::memset(out.data() + done, 0, n);
    } else {
      std::shared_ptr<const std::string> chunk;
      MEDVFS_RETURN_IF_ERROR(chunks.Get(extent.id, extent.length, &chunk));
      std::memcpy(out.data() + done, chunk->data() + in_chunk, n);
    }
    done += n;
    ++index;
  }
  // A read of a whole read-ahead window is the kernel's sign of a sequential reader: fetch
  // the chunks that follow while it consumes these (small random reads fetch nothing more).
  if (out.size() >= kSequentialReadBytes && index < list.extents().size()) {
    const size_t ahead = std::min(kReadAheadChunks, list.extents().size() - index);
    chunks.ReadAhead(std::span<const Extent>(list.extents()).subspan(index, ahead));
  }
  return done;
}

uint64_t HoleBytes(const ExtentList& list) {
  uint64_t total = 0;
  for (const Extent& extent : list.extents()) {
    if (IsHole(extent)) total += extent.length;
  }
  return total;
}

Status HashExtents(ChunkStore& chunks, const ExtentList& list,
                   const std::function<bool()>& cancelled, Sha256Digest* sha256) {
  static const std::string kZeros(kZeroPieceBytes, '\0');
  Sha256 sha;
  std::string buffer;
  const auto& extents = list.extents();
  size_t index = 0;
  for (uint64_t offset = 0; offset < list.size();) {
    if (cancelled && cancelled())
      return Status(Code::kBusy, "the digest computation was interrupted");
    if (IsHole(extents[index])) {
      // Holes are hashed as zeros in memory, a piece at a time: nothing is read for them.
      const uint64_t hole_end = list.StartOf(index) + extents[index].length;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(hole_end - offset, kZeros.size()));
      sha.Update(std::string_view(kZeros.data(), n));
      offset += n;
      if (offset == hole_end) ++index;
      continue;
    }
    // The chunks up to the next hole, a buffer at a time.
    size_t next = index;
    while (next < extents.size() && !IsHole(extents[next])) ++next;
    const uint64_t data_end = next < extents.size() ? list.StartOf(next) : list.size();
    if (buffer.empty()) buffer.assign(kZeroPieceBytes, '\0');
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), data_end - offset));
    MEDVFS_ASSIGN_OR_RETURN(
        size_t n, ReadExtents(chunks, list, offset, std::span<char>(buffer.data(), want)));
    if (n == 0) return Status::IoError("content ended early while hashing");
    sha.Update(std::string_view(buffer.data(), n));
    offset += n;
    if (offset == data_end) index = next;
  }
  *sha256 = sha.Finish();
  return Status::Ok();
}

namespace {
// Where the extent holding `offset` ends, and whether it is a hole. REQUIRES: offset < size.
std::pair<uint64_t, bool> ExtentRunAt(const ExtentList& list, uint64_t offset, size_t* index) {
  while (list.StartOf(*index) + list.extents()[*index].length <= offset) ++*index;
  const Extent& extent = list.extents()[*index];
  return {list.StartOf(*index) + extent.length, IsHole(extent)};
}
}  // namespace

StatusOr<bool> SameContent(ChunkStore& chunks, const ExtentList& a, const ExtentList& b) {
  if (a.size() != b.size()) return false;
  std::string buffer_a;
  std::string buffer_b;
  size_t index_a = 0;
  size_t index_b = 0;
  for (uint64_t offset = 0; offset < a.size();) {
    const auto [end_a, hole_a] = ExtentRunAt(a, offset, &index_a);
    const auto [end_b, hole_b] = ExtentRunAt(b, offset, &index_b);
    const uint64_t end = std::min(end_a, end_b);
    const Extent& ea = a.extents()[index_a];
    const Extent& eb = b.extents()[index_b];
    // The same chunk at the same place in it: the same bytes, nothing to read.
    const bool same_chunk = !hole_a && !hole_b && ea.id == eb.id &&
                            offset - a.StartOf(index_a) == offset - b.StartOf(index_b);
    if ((hole_a && hole_b) || same_chunk) {
      offset = end;
      continue;
    }
    // At most one chunk's bytes from each side (a hole side reads as zeros, in memory).
    const size_t n = static_cast<size_t>(
        std::min<uint64_t>(end - offset, hole_a || hole_b ? kZeroPieceBytes : end - offset));
    buffer_a.resize(n);
    buffer_b.resize(n);
    MEDVFS_ASSIGN_OR_RETURN(size_t got_a,
                            ReadExtents(chunks, a, offset, std::span<char>(buffer_a)));
    MEDVFS_ASSIGN_OR_RETURN(size_t got_b,
                            ReadExtents(chunks, b, offset, std::span<char>(buffer_b)));
    if (got_a != n || got_b != n) return Status::IoError("content ended early while comparing");
    if (buffer_a != buffer_b) return false;
    offset += n;
  }
  return true;
}

PendingContent::PendingContent(ChunkStore* chunks, ExtentList base, uint64_t max_dirty_bytes,
                               DirtyBudget* budget)
    : chunks_(chunks),
      base_(std::move(base)),
      size_(base_.size()),
      max_dirty_bytes_(std::max<uint64_t>(max_dirty_bytes, kPageSize)),
      streaming_(base_.size() == 0),
      head_known_(base_.size() == 0),
      base_visible_(base_.size()),
      owner_(NextOwner()),
      budget_(budget) {}

PendingContent::~PendingContent() {
  if (intake_) {
    {
      std::lock_guard lock(intake_->mu);
      intake_->stopping = true;
    }
    intake_->changed.notify_all();
    intake_->worker.join();
  }
  if (budget_ != nullptr) budget_->Give(page_budget_held_ + queue_budget_held_.load());
}

Status PendingContent::SettlePageBudget() {
  if (budget_ == nullptr) return Status::Ok();
  const uint64_t wanted = pages_.size() * kPageSize;
  if (wanted <= page_budget_held_) {
    budget_->Give(page_budget_held_ - wanted);
    page_budget_held_ = wanted;
    return Status::Ok();
  }
  if (budget_->TryTake(wanted - page_budget_held_)) {
    page_budget_held_ = wanted;
    return Status::Ok();
  }
  // No room left in the mount: store this file's overlay now rather than hold more of it.
  MEDVFS_RETURN_IF_ERROR(Checkpoint());
  budget_->Give(page_budget_held_);
  page_budget_held_ = 0;
  return Status::Ok();
}

Status PendingContent::QueueAppend(std::string_view data) {
  if (!intake_) {
    intake_ = std::make_unique<Intake>();
    try {
      intake_->worker = std::thread([this] { WorkerLoop(); });
    } catch (const std::system_error&) {
      intake_.reset();
      return StoreAppend(data);  // no thread to be had: store it on this one
    }
  }
  std::unique_lock lock(intake_->mu);
  // Room for it, or nothing queued (an append larger than the bound still goes, alone).
  intake_->changed.wait(lock, [&] {
    return !intake_->failed.ok() || intake_->queued_bytes == 0 ||
           intake_->queued_bytes + data.size() <= kMaxQueuedBytes;
  });
  if (!intake_->failed.ok()) {
    lock.unlock();
    WaitForQueue();
    return failed_;
  }
  if (budget_ != nullptr && !budget_->TryTake(data.size())) {
    // The mount holds all the unstored bytes it may: store this append here, after the queue.
    lock.unlock();
    WaitForQueue();
    MEDVFS_RETURN_IF_ERROR(failed_);
    return StoreAppend(data);
  }
  if (budget_ != nullptr) queue_budget_held_ += data.size();
  intake_->queue.emplace_back(data);
  intake_->queued_bytes += data.size();
  lock.unlock();
  intake_->changed.notify_all();
  return Status::Ok();
}

void PendingContent::WorkerLoop() {
  std::unique_lock lock(intake_->mu);
  for (;;) {
    intake_->changed.wait(lock, [&] { return intake_->stopping || !intake_->queue.empty(); });
    if (intake_->queue.empty()) return;  // stopping, and everything queued is stored
    std::string data = std::move(intake_->queue.front());
    intake_->queue.pop_front();
    intake_->busy = true;
    const bool store = intake_->failed.ok();  // after a failure the rest is dropped
    lock.unlock();
    Status stored = store ? StoreAppend(data) : Status::Ok();
    if (budget_ != nullptr) {
      queue_budget_held_ -= data.size();
      budget_->Give(data.size());
    }
    lock.lock();
    intake_->busy = false;
    intake_->queued_bytes -= data.size();
    if (!stored.ok() && intake_->failed.ok()) intake_->failed = std::move(stored);
    intake_->changed.notify_all();
  }
}

void PendingContent::WaitForQueue() {
  if (!intake_) return;
  std::unique_lock lock(intake_->mu);
  intake_->changed.wait(lock, [&] { return intake_->queue.empty() && !intake_->busy; });
  if (!intake_->failed.ok()) {
    Fail(intake_->failed).IgnoreError();
    intake_->failed = Status::Ok();  // now failed_'s, until Truncate(0) starts over
  }
}

void PendingContent::AppendChunkIds(std::vector<ChunkId>* ids) {
  WaitForQueue();
  for (const Extent& extent : base_.extents()) {
    if (!IsHole(extent)) ids->push_back(extent.id);
  }
}

Status PendingContent::StoreChunk(std::string_view chunk, ExtentList* into) {
  ChunkId id;
  bool inserted = false;
  MEDVFS_RETURN_IF_ERROR(chunks_->Put(chunk, &id, owner_, &inserted));
  if (inserted) inserted_.push_back(id);
  into->Append({id, static_cast<uint32_t>(chunk.size())});
  return Status::Ok();
}

Status PendingContent::SwitchToOverlay() {
  if (!streaming_) return Status::Ok();
  // The bytes the chunker still holds become overlay pages after the stored chunks.
  std::string tail(chunker_.pending());
  chunker_.Reset();
  stream_sha_.Reset();
  streaming_ = false;
  base_visible_ = base_.size();
  uint64_t offset = base_.size();
  std::string_view rest = tail;
  while (!rest.empty()) {
    const uint64_t index = offset / kPageSize;
    auto [page, inserted] = pages_.try_emplace(index);
    // The first page may start inside the last stored chunk: load those bytes first.
    if (inserted) MEDVFS_RETURN_IF_ERROR(LoadPage(index, &page->second));
    const size_t in_page = static_cast<size_t>(offset % kPageSize);
    const size_t n = std::min<size_t>(rest.size(), kPageSize - in_page);
    std::memcpy(page->second.data() + in_page, rest.data(), n);
    rest.remove_prefix(n);
    offset += n;
  }
  return Status::Ok();
}

Status PendingContent::LoadPage(uint64_t index, std::string* page) {
  page->assign(kPageSize, '\0');
  const uint64_t start = index * kPageSize;
  const uint64_t visible = std::min(base_visible_, base_.size());
  if (start >= visible) return Status::Ok();
  const size_t n = static_cast<size_t>(std::min<uint64_t>(kPageSize, visible - start));
  MEDVFS_ASSIGN_OR_RETURN(size_t got,
                          ReadExtents(*chunks_, base_, start, std::span<char>(page->data(), n)));
  if (got != n) return Status::Corruption("stored content is shorter than its record");
  return Status::Ok();
}

StatusOr<size_t> PendingContent::Read(uint64_t offset, std::span<char> out) {
  WaitForQueue();
  if (!failed_.ok()) return failed_;
  auto read = ReadPending(offset, out);
  if (!read.ok()) Fail(read.status()).IgnoreError();
  return read;
}

Status PendingContent::Write(uint64_t offset, std::string_view data) {
  if (!failed_.ok()) return failed_;
  if (offset > kMaxFileSize || data.size() > kMaxFileSize - offset) return TooBig();
  return Fail(WritePending(offset, data));
}

Status PendingContent::Truncate(uint64_t new_size) {
  if (new_size > kMaxFileSize) return TooBig();
  WaitForQueue();
  if (new_size == 0) failed_ = Status::Ok();  // starting over: nothing unknown is left
  if (!failed_.ok()) return failed_;
  return Fail(TruncatePending(new_size));
}

Status PendingContent::Finalize(ExtentList* content, Sha256Digest* sha256, bool* deferred) {
  WaitForQueue();
  if (!failed_.ok()) return failed_;
  return Fail(FinalizePending(content, sha256, deferred));
}

StatusOr<size_t> PendingContent::ReadPending(uint64_t offset, std::span<char> out) {
  if (offset >= size_) return size_t{0};
  const size_t total = static_cast<size_t>(std::min<uint64_t>(out.size(), size_ - offset));
  if (streaming_) {
    size_t done = 0;
    if (offset < base_.size()) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(total, base_.size() - offset));
      MEDVFS_ASSIGN_OR_RETURN(done, ReadExtents(*chunks_, base_, offset, out.first(n)));
    }
    if (done < total) {
      std::string_view pending = chunker_.pending();
      const uint64_t from = offset + done - base_.size();
      std::memcpy(out.data() + done, pending.data() + from, total - done);
    }
    return total;
  }
  size_t done = 0;
  const uint64_t visible = std::min(base_visible_, base_.size());
  while (done < total) {
    const uint64_t at = offset + done;
    const uint64_t index = at / kPageSize;
    const size_t in_page = static_cast<size_t>(at % kPageSize);
    const size_t n = std::min<size_t>(total - done, kPageSize - in_page);
    auto page = pages_.find(index);
    if (page != pages_.end()) {
      std::memcpy(out.data() + done, page->second.data() + in_page, n);
    } else if (at < visible) {
      const size_t from_base = static_cast<size_t>(std::min<uint64_t>(n, visible - at));
      MEDVFS_ASSIGN_OR_RETURN(size_t got,
                              ReadExtents(*chunks_, base_, at, out.subspan(done, from_base)));
      if (got != from_base) return Status::Corruption("stored content is shorter than its record");
      std::memset(out.data() + done + from_base, 0, n - from_base);
    } else {
      std::memset(out.data() + done, 0, n);
    }
    done += n;
  }
  return total;
}

Status PendingContent::StoreAppend(std::string_view data) {
  Status failed;
  chunker_.Update(data, [&](std::string_view chunk) {
    if (failed.ok()) failed = StoreChunk(chunk, &base_);
  });
  return failed;
}

Status PendingContent::WritePending(uint64_t offset, std::string_view data) {
  if (data.empty()) return Status::Ok();
  if (streaming_ && offset == size_) {
    // The file's SHA-256 on this thread; a large append's chunk ids, seals and stores on the
    // worker (two passes over the bytes, on two cores), a small one's here, after the queue.
    stream_sha_.Update(data);
    if (head_known_ && stream_head_.size() < kHeadBytes) {
      stream_head_.append(data.substr(0, kHeadBytes - stream_head_.size()));
    }
    if (data.size() >= kPipelinedWriteBytes) {
      MEDVFS_RETURN_IF_ERROR(QueueAppend(data));
    } else {
      WaitForQueue();
      MEDVFS_RETURN_IF_ERROR(failed_);
      MEDVFS_RETURN_IF_ERROR(StoreAppend(data));
    }
    size_ += data.size();
    return Status::Ok();
  }
  WaitForQueue();
  MEDVFS_RETURN_IF_ERROR(failed_);
  ForgetHead();
  MEDVFS_RETURN_IF_ERROR(SwitchToOverlay());
  uint64_t at = offset;
  std::string_view rest = data;
  while (!rest.empty()) {
    const uint64_t index = at / kPageSize;
    auto [page, inserted] = pages_.try_emplace(index);
    if (inserted) MEDVFS_RETURN_IF_ERROR(LoadPage(index, &page->second));
    const size_t in_page = static_cast<size_t>(at % kPageSize);
    const size_t n = std::min<size_t>(rest.size(), kPageSize - in_page);
    std::memcpy(page->second.data() + in_page, rest.data(), n);
    rest.remove_prefix(n);
    at += n;
  }
  size_ = std::max(size_, offset + data.size());
  if (pages_.size() * kPageSize > max_dirty_bytes_) MEDVFS_RETURN_IF_ERROR(Checkpoint());
  return SettlePageBudget();
}

Status PendingContent::TruncatePending(uint64_t new_size) {
  if (new_size == size_) return Status::Ok();
  ForgetHead();
  if (new_size == 0) {
    head_known_ = true;  // the empty content's head: nothing
    base_.Clear();
    pages_.clear();
    chunker_.Reset();
    stream_sha_.Reset();
    streaming_ = true;
    size_ = 0;
    base_visible_ = 0;
    return SettlePageBudget();
  }
  MEDVFS_RETURN_IF_ERROR(SwitchToOverlay());
  if (new_size < size_) {
    base_visible_ = std::min(base_visible_, new_size);
    const uint64_t first_gone = (new_size + kPageSize - 1) / kPageSize;
    pages_.erase(pages_.lower_bound(first_gone), pages_.end());
    auto partial = pages_.find(new_size / kPageSize);
    if (partial != pages_.end()) {
      const size_t keep = static_cast<size_t>(new_size % kPageSize);
      std::memset(partial->second.data() + keep, 0, kPageSize - keep);
    }
  }
  size_ = new_size;
  return SettlePageBudget();
}

// Stores the merged content (base + overlay) as chunks and makes it the new base. Only the
// region around the changes is read and chunked again: chunking starts at the old chunk
// boundary before the first change (content-defined boundaries depend only on the bytes since
// the previous boundary, so this equals chunking from the start), and stops as soon as a new
// boundary past the last change lands on an old boundary; the old chunks after it are reused.
Status PendingContent::Checkpoint() {
  const uint64_t old_size = base_.size();
  const bool tail_changed = base_visible_ < old_size || size_ != old_size;
  uint64_t first_change = std::min(base_visible_, size_);
  uint64_t last_change = tail_changed ? UINT64_MAX : 0;
  if (!pages_.empty()) {
    first_change = std::min(first_change, pages_.begin()->first * kPageSize);
    last_change = std::max(last_change, (pages_.rbegin()->first + 1) * kPageSize);
  }
  ExtentList rebuilt;
  uint64_t start = 0;
  if (old_size > 0) {
    // The last old chunk ends where the stream ended, not on a content-defined boundary.
    const size_t index = base_.IndexAt(std::min(first_change, old_size - 1));
    start = base_.StartOf(index);
    for (size_t i = 0; i < index; ++i) rebuilt.Append(base_.extents()[i]);
  }
  Chunker chunker;
  Status failed;
  bool resynced = false;
  uint64_t emitted_end = start;
  // Past the last change the content equals the old base: once a boundary lands on an old
  // boundary, the old extents from there on are reused.
  auto try_resync = [&] {
    if (emitted_end < last_change || emitted_end >= old_size) return;
    const size_t index = base_.IndexAt(emitted_end);
    if (base_.StartOf(index) != emitted_end) return;
    for (size_t i = index; i < base_.extents().size(); ++i) rebuilt.Append(base_.extents()[i]);
    resynced = true;
  };
  auto emit = [&](std::string_view chunk) {
    if (resynced || !failed.ok()) return;
    failed = StoreChunk(chunk, &rebuilt);
    emitted_end += chunk.size();
    try_resync();
  };
  std::string buffer;
  for (uint64_t offset = start; offset < size_ && !resynced;) {
    uint64_t run_end = 0;
    if (HoleAt(offset, &run_end)) {
      // A hole ends the chunk before it and costs no chunk itself.
      chunker.Finish(emit);
      MEDVFS_RETURN_IF_ERROR(failed);
      if (resynced) break;
      rebuilt.AppendHole(run_end - offset);
      emitted_end = offset = run_end;
      try_resync();
      continue;
    }
    if (buffer.empty()) buffer.assign(1 << 20, '\0');
    while (offset < run_end && !resynced) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), run_end - offset));
      MEDVFS_ASSIGN_OR_RETURN(size_t n, ReadPending(offset, std::span<char>(buffer.data(), want)));
      if (n == 0) return Status::IoError("content ended early while rechunking");
      chunker.Update(std::string_view(buffer.data(), n), emit);
      MEDVFS_RETURN_IF_ERROR(failed);
      offset += n;
    }
  }
  if (!resynced) chunker.Finish(emit);
  MEDVFS_RETURN_IF_ERROR(failed);
  if (rebuilt.size() != size_) return Status::IoError("rechunked content has the wrong size");
  base_ = std::move(rebuilt);
  base_visible_ = base_.size();
  pages_.clear();
  if (budget_ != nullptr) {
    budget_->Give(page_budget_held_);
    page_budget_held_ = 0;
  }
  return Status::Ok();
}

bool PendingContent::HoleAt(uint64_t offset, uint64_t* end) const {
  const uint64_t visible = std::min(base_visible_, base_.size());
  // One step: the run at `at` up to the next page, extent or visibility boundary.
  auto step = [&](uint64_t at, uint64_t* step_end) {
    const uint64_t index = at / kPageSize;
    auto page = pages_.lower_bound(index);
    if (page != pages_.end() && page->first == index) {
      *step_end = std::min(size_, (index + 1) * kPageSize);
      return false;
    }
    const uint64_t next_page =
        page == pages_.end() ? size_ : std::min(size_, page->first * kPageSize);
    if (at >= visible) {
      *step_end = next_page;
      return true;
    }
    const size_t extent = base_.IndexAt(at);
    *step_end =
        std::min({next_page, visible, base_.StartOf(extent) + base_.extents()[extent].length});
    return IsHole(base_.extents()[extent]);
  };
  if (!step(offset, end)) return false;
  uint64_t next_end = 0;
  while (*end < size_ && step(*end, &next_end)) *end = next_end;
  return true;
}

Status PendingContent::FinalizePending(ExtentList* content, Sha256Digest* sha256, bool* deferred) {
  *deferred = false;
  if (!streaming_) {
    MEDVFS_RETURN_IF_ERROR(Checkpoint());
    const uint64_t hole_bytes = HoleBytes(base_);
    if (hole_bytes > kMaxHashedHoleBytes || base_.size() - hole_bytes > kMaxRehashedBytes) {
      sha256->fill(0);
      *deferred = true;
    } else {
      MEDVFS_RETURN_IF_ERROR(HashExtents(*chunks_, base_, {}, sha256));
    }
    *content = base_;
    return Status::Ok();
  }
  // A streaming writer never made a hole (a write or truncate beyond the end switches to the
  // overlay): its bytes were all written, and hashed as they came.
  Status failed;
  chunker_.Finish([&](std::string_view chunk) {
    if (failed.ok()) failed = StoreChunk(chunk, &base_);
  });
  MEDVFS_RETURN_IF_ERROR(failed);
  *sha256 = stream_sha_.Finish();
  stream_sha_.Reset();
  *content = base_;
  // Later writes continue on top of what was just stored (an empty file can keep streaming).
  streaming_ = size_ == 0;
  base_visible_ = base_.size();
  return Status::Ok();
}

}  // namespace medvfs::store
