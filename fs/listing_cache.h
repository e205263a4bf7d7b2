// Listings of view directories that are costly to compute (a study of /@patients resolves the
// path of every file in it), kept until the archive changes. Every request that may change the
// archive bumps Filesystem's generation when it is done; a listing computed under an older
// generation is never served, so the cache is exact, not time-based. Without it, `ls -l` of a
// study (one lookup per link, each needing the whole listing) costs O(files^2).
//
// Under the same rule it keeps what a file's history directory (DIR/@version/NAME) resolves to
// and its attributes. The kernel may not cache those (the name may come to carry another
// history, the live file's permissions guard it), so every path walk through the directory
// asks again: `ls -l` of a history of 10,000 versions asks about 30,000 times, and each answer
// would otherwise read the name's last event, the live file and the owner directory.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fs/views.h"

namespace medvfs::fs {

class ListingCache {
 public:
  // The listing of `dir` if it was stored under `generation`.
  std::optional<std::vector<ViewEntry>> Get(const ViewDescriptor& dir, uint64_t generation) const;
  // Stores the listing of `dir` computed under `generation` (read before computing it).
  void Put(const ViewDescriptor& dir, uint64_t generation, std::vector<ViewEntry> entries);

  // The child `name` of view directory `dir` if it was stored under `generation`.
  std::optional<ViewEntry> GetChild(const ViewDescriptor& dir, std::string_view name,
                                    uint64_t generation) const;
  void PutChild(const ViewDescriptor& dir, std::string_view name, uint64_t generation,
                ViewEntry child);
  // The attributes of view `view` if they were stored under `generation`.
  std::optional<store::Attr> GetAttr(const ViewDescriptor& view, uint64_t generation) const;
  void PutAttr(const ViewDescriptor& view, uint64_t generation, const store::Attr& attr);

  // How many listings are kept at most. Default: 16.
  static constexpr size_t kMaxListings = 16;
  // How many resolved children, and how many attributes, are kept at most. Default: 4096.
  static constexpr size_t kMaxSmallItems = 4096;

 private:
  template <typename Value>
  struct Item {
    uint64_t generation = 0;
    Value value;
  };
  using Listing = Item<std::vector<ViewEntry>>;
  using ChildKey = std::pair<ViewDescriptor, std::string>;
  mutable std::mutex mu_;                                   // a leaf lock
  std::map<ViewDescriptor, Listing> listings_;              // GUARDED_BY(mu_)
  std::map<ChildKey, Item<ViewEntry>> children_;            // GUARDED_BY(mu_)
  std::map<ViewDescriptor, Item<store::Attr>> attributes_;  // GUARDED_BY(mu_)
};

}  // namespace medvfs::fs
