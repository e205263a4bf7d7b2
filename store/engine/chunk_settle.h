// What a commit does with the chunks its writer stored since the previous commit. Internal to
// store/ (archive_content.cc).
#pragma once

#include <cstdint>
#include <vector>

#include "store/engine/chunk_store.h"
#include "store/engine/content.h"

namespace medvfs::store {

// The commit of `content` is written (or found equal to the current version, which `content`
// then stands for). Of `inserted` (PendingContent::TakeInserted of writer `owner`), the chunks
// that `content` references are settled: they are the version's now. The others were
// overwritten or truncated away before any commit referenced them (a file written to its end,
// then changed nearer its start, as SQLite does to its -wal file; a checkpointed overlay
// written again; a truncate): nothing can ever reference them, so they are released
// (ChunkStore::ReleaseFresh: unless another writer was handed them). Without this, each such
// chunk stayed in the archive for good and `medvfs verify` blamed an interrupted write.
// Returns how many chunks were released.
StatusOr<size_t> SettleCommitted(ChunkStore& chunks, uint64_t owner, std::vector<ChunkId> inserted,
                                 const ExtentList& content);

}  // namespace medvfs::store
