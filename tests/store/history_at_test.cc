// A name at a moment (Archive::ResolveNameAt, the @version/@<time>/NAME lookup) against two
// references: the whole directory at that moment (ListDirAt, which reads every name event of
// the directory) and the version chain itself (ListVersions: the newest version made at or
// before the moment). Random sequences of saves, editor saves, renames, unlinks and links from
// tests/history_model.h; the model also gives the content each name held after each step.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <map>
#include <random>
#include <set>

#include "store/archive.h"
#include "tests/history_model.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_model::HistoryModel;
using test_model::Place;

const std::vector<std::string> kNames = {"scan.dcm", "scan.dcm.bak", "y.dcm", ".tmp", "rpt"};
const std::vector<std::string> kContents = {"A", "BB", "CCC", "DDDD"};

int64_t Now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// A moment strictly after every event so far and strictly before every later one.
int64_t Moment() {
  const int64_t t = Now();
  while (Now() <= t) {
  }
  return t;
}

class HistoryAtTest : public test_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    options_.kdf.n = 1 << 10;
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Create(dir() / "archive", Key(), options_));
    caller_.uid = 1000;
    caller_.gid = 1000;
    caller_.pid = 42;
    caller_.program = "history_at";
  }
  static KeySource Key() { return KeySource::Passphrase("at"); }

  Status Save(InodeId dir, const std::string& name, const std::string& content) {
    InodeId ino;
    auto existing = archive_->Lookup(dir, name);
    if (existing.ok()) {
      ino = existing->ino;
    } else {
      MEDVFS_ASSIGN_OR_RETURN(
          Attr made, ReleasedAttr(archive_->MakeNode(dir, name, S_IFREG | 0644, 0, caller_)));
      ino = made.ino;
    }
    MEDVFS_ASSIGN_OR_RETURN(auto handle, archive_->Open(ino, O_WRONLY | O_TRUNC, caller_));
    MEDVFS_RETURN_IF_ERROR(handle->Write(0, content).status());
    return handle->Flush(caller_);
  }

  // The newest version of `history` made at or before `t`, from the whole chain; 0 if none.
  uint64_t ReferenceVersionAt(HistoryId history, int64_t t) {
    auto versions = archive_->ListVersions(history);
    if (!versions.ok()) return 0;
    uint64_t found = 0;
    for (const VersionInfo& v : *versions) {
      if (v.time_ns <= t) found = v.number;
    }
    return found;
  }

  // ResolveNameAt agrees with ListDirAt and with the version chain for every name at `t`.
  void CheckAgainstListing(InodeId dir, int64_t t, const std::string& where) {
    SCOPED_TRACE(where + " at " + std::to_string(t));
    ASSERT_OK_AND_ASSIGN(auto listed, archive_->ListDirAt(dir, t));
    std::map<std::string, DirEntryAt> by_name;
    for (DirEntryAt& entry : listed) by_name[entry.name] = entry;
    for (const std::string& name : kNames) {
      auto one = archive_->ResolveNameAt(dir, name, t);
      auto it = by_name.find(name);
      if (it == by_name.end()) {
        ASSERT_EQ(one.status().code(), Code::kNotFound) << name << " is not in the listing";
        continue;
      }
      ASSERT_OK(one.status());
      const DirEntryAt& want = it->second;
      EXPECT_EQ(one->ino, want.ino) << name;
      EXPECT_EQ(one->mode, want.mode) << name;
      EXPECT_EQ(one->history, want.history) << name;
      EXPECT_EQ(one->version, want.version) << name;
      EXPECT_EQ(one->size, want.size) << name;
      EXPECT_EQ(one->mtime_ns, want.mtime_ns) << name;
      if (S_ISREG(one->mode)) {
        EXPECT_EQ(one->version, ReferenceVersionAt(one->history, t)) << name;
      }
    }
  }

  StatusOr<std::string> ReadVersion(HistoryId history, uint64_t number) {
    MEDVFS_ASSIGN_OR_RETURN(auto handle, archive_->OpenVersion(history, number));
    std::string out;
    char buffer[256];
    for (;;) {
      MEDVFS_ASSIGN_OR_RETURN(size_t n, handle->Read(out.size(), std::span<char>(buffer)));
      if (n == 0) return out;
      out.append(buffer, n);
    }
  }

  ArchiveOptions options_;
  std::unique_ptr<Archive> archive_;
  Caller caller_;
};

// What each place held after one step: the model's history and content.
struct Held {
  int history = -1;
  std::string content;
};

TEST_F(HistoryAtTest, RandomSequencesAgreeAtEveryMoment) {
  std::mt19937_64 rng(20261207);
  for (int sequence = 0; sequence < 30; ++sequence) {
    SCOPED_TRACE("sequence " + std::to_string(sequence));
    HistoryModel model;
    InodeId dirs[2];
    for (int d = 0; d < 2; ++d) {
      ASSERT_OK_AND_ASSIGN(
          Attr made, ReleasedAttr(archive_->MakeDir(
                         kRootInode, "s" + std::to_string(sequence) + "_" + std::to_string(d), 0755,
                         caller_)));
      dirs[d] = made.ino;
    }
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    auto any_place = [&]() -> Place {
      return {static_cast<int>(pick(4) == 0 ? 1 : 0), kNames[pick(kNames.size())]};
    };
    std::vector<std::pair<int64_t, std::map<Place, Held>>> moments;
    // (place, history) pairs whose bindings the model erased (a temporary name renamed over
    // its target leaves no trace): what such a name showed then is not expected later.
    std::set<std::pair<Place, int>> erased;
    auto note_erasures = [&](const std::map<Place, std::vector<test_model::NameEvent>>& before) {
      for (const auto& [place, list] : before) {
        auto now = model.events.find(place);
        for (const auto& event : list) {
          bool still = false;
          if (now != model.events.end()) {
            for (const auto& e : now->second) still |= e.history == event.history;
          }
          if (!still || now->second.size() < list.size()) erased.emplace(place, event.history);
        }
      }
    };
    moments.emplace_back(Moment(), std::map<Place, Held>{});
    std::string trace;
    for (int step = 0; step < 20; ++step) {
      const auto events_before = model.events;
      const size_t kind = pick(8);
      const std::string content = kContents[pick(kContents.size())];
      std::optional<Place> from;
      if (!model.live.empty()) {
        auto it = model.live.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(pick(model.live.size())));
        from = it->first;
      }
      if (kind <= 2 || !from) {
        const Place at = any_place();
        trace += "save " + at.second + "; ";
        ASSERT_OK(Save(dirs[at.first], at.second, content)) << trace;
        model.Save(at, content);
      } else if (kind == 3) {
        const Place temp{from->first, ".tmp"};
        if (temp == *from) continue;
        trace += "temp-save " + from->second + "; ";
        ASSERT_OK(Save(dirs[temp.first], temp.second, content)) << trace;
        model.Save(temp, content);
        ASSERT_OK(archive_->Rename(dirs[temp.first], temp.second, dirs[from->first], from->second,
                                   0, caller_))
            << trace;
        model.Rename(temp, *from);
      } else if (kind == 4) {
        const Place to = any_place();
        trace += "rename " + from->second + " " + to.second + "; ";
        ASSERT_OK(archive_->Rename(dirs[from->first], from->second, dirs[to.first], to.second, 0,
                                   caller_))
            << trace;
        model.Rename(*from, to);
      } else if (kind <= 6) {
        trace += "unlink " + from->second + "; ";
        ASSERT_OK(archive_->Unlink(dirs[from->first], from->second, caller_)) << trace;
        model.Unlink(*from);
      } else {
        const Place to = any_place();
        if (model.live.contains(to)) continue;
        trace += "link " + from->second + " " + to.second + "; ";
        ASSERT_OK_AND_ASSIGN(Attr attr,
                             ReleasedAttr(archive_->Lookup(dirs[from->first], from->second)));
        ASSERT_OK(archive_->Link(attr.ino, dirs[to.first], to.second, caller_)) << trace;
        model.Link(*from, to);
      }
      note_erasures(events_before);
      std::map<Place, Held> held;
      for (const auto& [place, file] : model.live) {
        held[place] = Held{model.files[file].history, model.files[file].content};
      }
      moments.emplace_back(Moment(), std::move(held));
    }
    SCOPED_TRACE(trace);
    // Every moment, looked at after the whole sequence (later events must not leak in).
    std::map<int, HistoryId> model_to_archive;
    for (size_t i = 0; i < moments.size(); ++i) {
      const auto& [t, held] = moments[i];
      for (int d = 0; d < 2; ++d) {
        ASSERT_NO_FATAL_FAILURE(CheckAgainstListing(dirs[d], t, "moment " + std::to_string(i)));
        for (const std::string& name : kNames) {
          const Place place{d, name};
          auto it = held.find(place);
          auto at = archive_->ResolveNameAt(dirs[d], name, t);
          if (it == held.end()) {
            EXPECT_EQ(at.status().code(), Code::kNotFound)
                << "moment " << i << ": " << name << " was not there";
            continue;
          }
          if (erased.contains({place, it->second.history})) continue;
          ASSERT_OK(at.status()) << "moment " << i << ": " << name;
          auto [known, inserted] = model_to_archive.emplace(it->second.history, at->history);
          EXPECT_EQ(known->second, at->history) << "moment " << i << ": " << name;
          ASSERT_OK_AND_ASSIGN(std::string content, ReadVersion(at->history, at->version));
          EXPECT_EQ(content, it->second.content) << "moment " << i << ": " << name;
        }
      }
    }
  }
}

// A long history: every version found at its own time, the one before it a nanosecond
// earlier; a file deleted and saved again under its name (a delete marker in the middle);
// a scratch file, whose history keeps only its current version (the search's fallback).
TEST_F(HistoryAtTest, LongHistoryAtEveryVersionBoundary) {
  const int64_t before = Moment();
  for (int i = 1; i <= 150; ++i) ASSERT_OK(Save(kRootInode, "note.txt", std::to_string(i)));
  ASSERT_OK(archive_->Unlink(kRootInode, "note.txt", caller_));
  const int64_t deleted = Moment();
  for (int i = 151; i <= 160; ++i) ASSERT_OK(Save(kRootInode, "note.txt", std::to_string(i)));
  for (int i = 1; i <= 5; ++i) ASSERT_OK(Save(kRootInode, ".note.txt.swp", std::to_string(i)));
  EXPECT_EQ(archive_->ResolveNameAt(kRootInode, "note.txt", before).status().code(),
            Code::kNotFound);
  EXPECT_EQ(archive_->ResolveNameAt(kRootInode, "note.txt", deleted).status().code(),
            Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(NameRecord note, archive_->ResolveName(kRootInode, "note.txt"));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(note.history));
  ASSERT_EQ(versions.size(), 161u);  // 150, the delete marker, 10
  for (const VersionInfo& v : versions) {
    SCOPED_TRACE("version " + std::to_string(v.number));
    auto exact = archive_->ResolveNameAt(kRootInode, "note.txt", v.time_ns);
    if (v.is_delete_marker()) {
      EXPECT_EQ(exact.status().code(), Code::kNotFound);
    } else {
      ASSERT_OK(exact.status());
      EXPECT_EQ(exact->version, v.number);
      EXPECT_EQ(exact->size, v.size);
      EXPECT_EQ(exact->mtime_ns, v.time_ns);
    }
    auto earlier = archive_->ResolveNameAt(kRootInode, "note.txt", v.time_ns - 1);
    if (v.number == 1 || versions[v.number - 2].is_delete_marker()) {
      EXPECT_EQ(earlier.status().code(), Code::kNotFound);
    } else {
      ASSERT_OK(earlier.status());
      EXPECT_EQ(earlier->version, v.number - 1);
    }
  }
  ASSERT_NO_FATAL_FAILURE(CheckAgainstListing(kRootInode, Moment(), "the end"));
  ASSERT_OK_AND_ASSIGN(DirEntryAt swap,
                       archive_->ResolveNameAt(kRootInode, ".note.txt.swp", Now()));
  ASSERT_OK_AND_ASSIGN(std::string content, ReadVersion(swap.history, swap.version));
  EXPECT_EQ(content, "5");
  // Between the first and the last save of the scratch file its older versions are gone:
  // the name shows nothing, in the listing and in the lookup alike.
  ASSERT_OK_AND_ASSIGN(auto swap_versions, archive_->ListVersions(swap.history));
  ASSERT_EQ(swap_versions.size(), 1u);
  const int64_t t = swap_versions[0].time_ns - 1;
  EXPECT_EQ(archive_->ResolveNameAt(kRootInode, ".note.txt.swp", t).status().code(),
            Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(auto listed, archive_->ListDirAt(kRootInode, t));
  for (const DirEntryAt& entry : listed) EXPECT_NE(entry.name, ".note.txt.swp");
  EXPECT_EQ(archive_->ResolveNameAt(kRootInode, "never", Now()).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace medvfs::store
