// Model-based test of history identity without FUSE: thousands of random sequences of saves
// (also through temporary names and backup names), renames, rename-overs, unlinks and links are
// applied to an archive and to tests/history_model.h; after every step every name's history
// (which history, which versions, which contents) agrees with the model, and again after the
// archive is closed and reopened. MEDVFS_MODEL_SEQUENCES sets the number of sequences (the
// long run in tests/CMakeLists.txt uses 100,000).
#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <map>
#include <random>

#include "store/archive.h"
#include "store/crypto/crypto.h"
#include "store/verify.h"
#include "tests/history_model.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_model::HistoryModel;
using test_model::Place;

const std::vector<std::string> kNames = {"scan.dcm", "scan.dcm.bak", "scan.bak", "y.dcm",
                                         ".tmp",     ".tmpA",        "rpt"};
const std::vector<std::string> kContents = {"A", "BB", "CCC", "DDDD", "EEEEE"};

class HistoryModelTest : public test_util::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    options_.kdf.n = 1 << 10;
    // The archive lives in memory when it can: every save is an fsync.
    if (std::filesystem::is_directory("/dev/shm")) {
      shm_ = std::filesystem::path("/dev/shm") / ("medvfs-model-" + std::to_string(getpid()));
      std::filesystem::remove_all(shm_);
      std::filesystem::create_directories(shm_);
    }
    ASSERT_OK_AND_ASSIGN(archive_, Archive::Create(path(), Key(), options_));
    caller_.uid = 1000;
    caller_.gid = 1000;
    caller_.pid = 42;
    caller_.program = "model";
  }
  void TearDown() override {
    archive_.reset();
    if (!shm_.empty()) std::filesystem::remove_all(shm_);
  }
  std::filesystem::path path() const { return (shm_.empty() ? dir() : shm_) / "archive"; }
  static KeySource Key() { return KeySource::Passphrase("model"); }
  void Reopen() {
    archive_.reset();
    auto opened = Archive::Open(path(), Key(), options_);
    ASSERT_OK(opened);
    archive_ = std::move(opened).value();
  }

  // --- the operations, on the archive ---
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

  StatusOr<std::string> ReadAll(FileHandle& handle) {
    std::string out;
    char buffer[4096];
    for (;;) {
      MEDVFS_ASSIGN_OR_RETURN(size_t n, handle.Read(out.size(), std::span<char>(buffer)));
      if (n == 0) return out;
      out.append(buffer, n);
    }
  }

  // Every name of both directories against the model. `step` names the failing step.
  void Check(const HistoryModel& model, const InodeId dirs[2], const std::string& step) {
    SCOPED_TRACE(step);
    std::map<int, HistoryId> model_to_archive;
    std::map<HistoryId, int> archive_to_model;
    auto same_history = [&](int model_id, HistoryId archive_id) {
      auto [a, inserted_a] = model_to_archive.emplace(model_id, archive_id);
      auto [b, inserted_b] = archive_to_model.emplace(archive_id, model_id);
      return a->second == archive_id && b->second == model_id;
    };
    for (int d = 0; d < 2; ++d) {
      ASSERT_OK_AND_ASSIGN(auto names, archive_->ListNames(dirs[d]));
      std::map<std::string, NameRecord> by_name;
      for (auto& record : names) by_name[record.name] = record;
      std::set<std::string> expected;
      for (const auto& [place, list] : model.events) {
        if (place.first == d && !list.empty()) expected.insert(place.second);
      }
      std::set<std::string> got;
      for (const auto& [name, record] : by_name) got.insert(name);
      ASSERT_EQ(got, expected) << "the names @version lists in dir " << d;
      for (const std::string& name : expected) {
        SCOPED_TRACE("name " + std::to_string(d) + "/" + name);
        const Place place{d, name};
        const NameRecord& record = by_name[name];
        ASSERT_EQ(record.live(), model.live.contains(place));
        const int model_history = *model.HistoryOf(place);
        ASSERT_TRUE(same_history(model_history, record.history))
            << "two histories where the model has one, or one where it has two";
        const auto& versions = model.histories[model_history].versions;
        ASSERT_OK_AND_ASSIGN(auto infos, archive_->ListVersions(record.history));
        ASSERT_EQ(infos.size(), versions.size());
        for (size_t i = 0; i < infos.size(); ++i) {
          ASSERT_EQ(infos[i].number, i + 1);
          ASSERT_EQ(infos[i].is_delete_marker(), versions[i].marker) << "version " << i + 1;
          if (!versions[i].marker) {
            ASSERT_EQ(infos[i].sha256, Sha256Of(versions[i].content)) << "version " << i + 1;
          }
        }
      }
    }
    for (const auto& [place, file] : model.live) {
      SCOPED_TRACE("live " + std::to_string(place.first) + "/" + place.second);
      ASSERT_OK_AND_ASSIGN(Attr attr,
                           ReleasedAttr(archive_->Lookup(dirs[place.first], place.second)));
      ASSERT_TRUE(same_history(model.files[file].history, attr.history));
      ASSERT_OK_AND_ASSIGN(auto handle, archive_->Open(attr.ino, O_RDONLY, caller_));
      ASSERT_OK_AND_ASSIGN(std::string content, ReadAll(*handle));
      ASSERT_EQ(content, model.files[file].content);
    }
  }

  // Old versions' bytes, not only their hashes (once per sequence: reading is slower).
  void CheckContents(const HistoryModel& model, const InodeId dirs[2]) {
    for (const auto& [place, list] : model.events) {
      if (list.empty()) continue;
      ASSERT_OK_AND_ASSIGN(NameRecord record,
                           archive_->ResolveName(dirs[place.first], place.second));
      const auto& versions = model.histories[*model.HistoryOf(place)].versions;
      for (size_t i = 0; i < versions.size(); ++i) {
        if (versions[i].marker) continue;
        ASSERT_OK_AND_ASSIGN(auto handle, archive_->OpenVersion(record.history, i + 1));
        ASSERT_OK_AND_ASSIGN(std::string content, ReadAll(*handle));
        ASSERT_EQ(content, versions[i].content) << place.second << " v" << i + 1;
      }
    }
  }

  // One random sequence in two new directories; returns a description of the steps.
  void RunSequence(std::mt19937_64& rng, int sequence, int steps) {
    HistoryModel model;
    InodeId dirs[2];
    for (int d = 0; d < 2; ++d) {
      ASSERT_OK_AND_ASSIGN(
          Attr made, ReleasedAttr(archive_->MakeDir(
                         kRootInode, "s" + std::to_string(sequence) + "_" + std::to_string(d), 0755,
                         caller_)));
      dirs[d] = made.ino;
    }
    std::string trace;
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    auto any_place = [&]() -> Place {
      return {static_cast<int>(pick(4) == 0 ? 1 : 0), kNames[pick(kNames.size())]};
    };
    auto live_place = [&]() -> std::optional<Place> {
      if (model.live.empty()) return std::nullopt;
      auto it = model.live.begin();
      std::advance(it, static_cast<std::ptrdiff_t>(pick(model.live.size())));
      return it->first;
    };
    auto label = [](const Place& p) { return std::to_string(p.first) + "/" + p.second; };
    for (int step = 0; step < steps; ++step) {
      const size_t kind = pick(10);
      const std::string content = kContents[pick(kContents.size())];
      std::optional<Place> from = live_place();
      if (kind <= 2 || !from) {
        const Place at = any_place();
        trace += "save " + label(at) + " " + content + "; ";
        ASSERT_OK(Save(dirs[at.first], at.second, content)) << trace;
        model.Save(at, content);
      } else if (kind == 3) {
        // The editor save: write a temporary name, rename it over (or onto) the target.
        const Place temp{from->first, pick(2) == 0 ? ".tmp" : ".tmpA"};
        if (temp == *from) continue;
        trace += "temp-save " + label(*from) + " via " + temp.second + " " + content + "; ";
        ASSERT_OK(Save(dirs[temp.first], temp.second, content)) << trace;
        model.Save(temp, content);
        ASSERT_OK(archive_->Rename(dirs[temp.first], temp.second, dirs[from->first], from->second,
                                   0, caller_))
            << trace;
        model.Rename(temp, *from);
      } else if (kind == 4) {
        // The backup save of dcmodify: move to NAME.bak, write a new NAME.
        const Place backup{from->first, from->second + ".bak"};
        if (model.live.contains(backup)) continue;
        trace += "backup-save " + label(*from) + " " + content + "; ";
        ASSERT_OK(archive_->Rename(dirs[from->first], from->second, dirs[backup.first],
                                   backup.second, 0, caller_))
            << trace;
        model.Rename(*from, backup);
        ASSERT_OK(Save(dirs[from->first], from->second, content)) << trace;
        model.Save(*from, content);
      } else if (kind <= 6) {
        const Place to = any_place();
        trace += "rename " + label(*from) + " " + label(to) + "; ";
        ASSERT_OK(archive_->Rename(dirs[from->first], from->second, dirs[to.first], to.second, 0,
                                   caller_))
            << trace;
        model.Rename(*from, to);
      } else if (kind <= 8) {
        trace += "unlink " + label(*from) + "; ";
        ASSERT_OK(archive_->Unlink(dirs[from->first], from->second, caller_)) << trace;
        model.Unlink(*from);
      } else {
        const Place to = any_place();
        if (model.live.contains(to)) continue;
        trace += "link " + label(*from) + " " + label(to) + "; ";
        ASSERT_OK_AND_ASSIGN(Attr attr,
                             ReleasedAttr(archive_->Lookup(dirs[from->first], from->second)));
        ASSERT_OK(archive_->Link(attr.ino, dirs[to.first], to.second, caller_)) << trace;
        model.Link(*from, to);
      }
      ASSERT_NO_FATAL_FAILURE(Check(model, dirs, trace));
    }
    ASSERT_NO_FATAL_FAILURE(CheckContents(model, dirs)) << trace;
    if (sequence % 25 == 24) {
      ASSERT_NO_FATAL_FAILURE(Reopen());
      ASSERT_NO_FATAL_FAILURE(Check(model, dirs, "after reopening: " + trace));
      ASSERT_NO_FATAL_FAILURE(CheckContents(model, dirs)) << trace;
    }
  }

  ArchiveOptions options_;
  std::unique_ptr<Archive> archive_;
  Caller caller_;
  std::filesystem::path shm_;
};

// The evaluation's reproduction: scan.dcm saved through .tmpA, then .tmpB, then .tmpA again
// lost version 1 and renumbered the rest.
TEST_F(HistoryModelTest, ReusedTemporaryNameKeepsEveryVersion) {
  int n = 0;
  for (const std::string temp : {".tmpA", ".tmpB", ".tmpA", ".tmpA"}) {
    const std::string content = "save " + std::to_string(++n);
    ASSERT_OK(Save(kRootInode, temp, content));
    ASSERT_OK(archive_->Rename(kRootInode, temp, kRootInode, "scan.dcm", 0, caller_));
  }
  ASSERT_OK_AND_ASSIGN(NameRecord scan, archive_->ResolveName(kRootInode, "scan.dcm"));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(scan.history));
  ASSERT_EQ(versions.size(), 4u);
  for (uint64_t number = 1; number <= 4; ++number) {
    ASSERT_OK_AND_ASSIGN(auto handle, archive_->OpenVersion(scan.history, number));
    ASSERT_OK_AND_ASSIGN(std::string content, ReadAll(*handle));
    EXPECT_EQ(content, "save " + std::to_string(number));
  }
  // The temporary names left nothing.
  for (const std::string temp : {".tmpA", ".tmpB"}) {
    EXPECT_EQ(archive_->ResolveName(kRootInode, temp).status().code(), Code::kNotFound) << temp;
  }
}

// Two files saved through one shared temporary name: neither history shows the other's bytes.
TEST_F(HistoryModelTest, SharedTemporaryNameKeepsFilesApart) {
  for (int round = 0; round < 2; ++round) {
    for (const std::string target : {"x.dcm", "y.dcm"}) {
      ASSERT_OK(Save(kRootInode, ".tmp", target + std::to_string(round)));
      ASSERT_OK(archive_->Rename(kRootInode, ".tmp", kRootInode, target, 0, caller_));
    }
  }
  for (const std::string target : {"x.dcm", "y.dcm"}) {
    ASSERT_OK_AND_ASSIGN(NameRecord name, archive_->ResolveName(kRootInode, target));
    ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(name.history));
    ASSERT_EQ(versions.size(), 2u) << target;
    for (uint64_t number = 1; number <= 2; ++number) {
      ASSERT_OK_AND_ASSIGN(auto handle, archive_->OpenVersion(name.history, number));
      ASSERT_OK_AND_ASSIGN(std::string content, ReadAll(*handle));
      EXPECT_EQ(content, target + std::to_string(number - 1));
    }
  }
}

// A long-lived file renamed over another keeps its own versions under its old name.
TEST_F(HistoryModelTest, RenameOverKeepsTheSourcesHistory) {
  ASSERT_OK(Save(kRootInode, "a.dcm", "a1"));
  ASSERT_OK(Save(kRootInode, "a.dcm", "a2"));
  ASSERT_OK(Save(kRootInode, "b.dcm", "b1"));
  ASSERT_OK(archive_->Rename(kRootInode, "a.dcm", kRootInode, "b.dcm", 0, caller_));
  ASSERT_OK_AND_ASSIGN(NameRecord a, archive_->ResolveName(kRootInode, "a.dcm"));
  EXPECT_FALSE(a.live());
  ASSERT_OK_AND_ASSIGN(auto a_versions, archive_->ListVersions(a.history));
  EXPECT_EQ(a_versions.size(), 2u);
  ASSERT_OK_AND_ASSIGN(NameRecord b, archive_->ResolveName(kRootInode, "b.dcm"));
  ASSERT_OK_AND_ASSIGN(auto b_versions, archive_->ListVersions(b.history));
  EXPECT_EQ(b_versions.size(), 2u);
  EXPECT_EQ(b_versions.back().sha256, Sha256Of("a2"));
}

// Swap files, lock files and probes keep only their current version, and nothing once
// deleted; the chunks of the versions they dropped wait for garbage collection, which verify
// tells from damage.
TEST_F(HistoryModelTest, ScratchFilesKeepNoHistory) {
  for (const std::string content : {"swap one", "swap two", "swap three"}) {
    ASSERT_OK(Save(kRootInode, ".scan.dcm.swp", content));
  }
  ASSERT_OK_AND_ASSIGN(NameRecord swap, archive_->ResolveName(kRootInode, ".scan.dcm.swp"));
  ASSERT_OK_AND_ASSIGN(auto versions, archive_->ListVersions(swap.history));
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].sha256, Sha256Of("swap three"));
  ASSERT_OK(archive_->Unlink(kRootInode, ".scan.dcm.swp", caller_));
  EXPECT_EQ(archive_->ResolveName(kRootInode, ".scan.dcm.swp").status().code(), Code::kNotFound);
  EXPECT_EQ(archive_->ListVersions(swap.history).status().code(), Code::kNotFound);
  // vim's probe, LibreOffice's lock file: created and deleted, no trace.
  for (const std::string name : {"4913", ".~lock.scan.odt#"}) {
    ASSERT_OK(Save(kRootInode, name, "probe"));
    ASSERT_OK(archive_->Unlink(kRootInode, name, caller_));
    EXPECT_EQ(archive_->ResolveName(kRootInode, name).status().code(), Code::kNotFound) << name;
  }
  // A scratch file renamed to an ordinary name becomes an ordinary file there.
  ASSERT_OK(Save(kRootInode, "#draft#", "draft"));
  ASSERT_OK(archive_->Rename(kRootInode, "#draft#", kRootInode, "draft.txt", 0, caller_));
  ASSERT_OK(Save(kRootInode, "draft.txt", "draft two"));
  ASSERT_OK_AND_ASSIGN(NameRecord draft, archive_->ResolveName(kRootInode, "draft.txt"));
  ASSERT_OK_AND_ASSIGN(auto draft_versions, archive_->ListVersions(draft.history));
  EXPECT_EQ(draft_versions.size(), 2u);
  EXPECT_EQ(archive_->ResolveName(kRootInode, "#draft#").status().code(), Code::kNotFound);
  // Ordinary files keep everything.
  ASSERT_OK(Save(kRootInode, "scan.dcm", "one"));
  ASSERT_OK(Save(kRootInode, "scan.dcm", "two"));
  ASSERT_OK_AND_ASSIGN(NameRecord scan, archive_->ResolveName(kRootInode, "scan.dcm"));
  EXPECT_EQ(archive_->ListVersions(scan.history)->size(), 2u);
  archive_.reset();
  ASSERT_OK_AND_ASSIGN(VerifyReport report, VerifyArchive(path(), Key()));
  EXPECT_EQ(report.errors, 0u);
  EXPECT_EQ(report.unreferenced_chunks, 0u);
  EXPECT_GT(report.chunks_awaiting_gc, 0u);
}

// Without scratch patterns a swap file is an ordinary file.
TEST_F(HistoryModelTest, ScratchPatternsCanBeTurnedOff) {
  options_.scratch_patterns.clear();
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_OK(Save(kRootInode, ".scan.dcm.swp", "one"));
  ASSERT_OK(Save(kRootInode, ".scan.dcm.swp", "two"));
  ASSERT_OK_AND_ASSIGN(NameRecord swap, archive_->ResolveName(kRootInode, ".scan.dcm.swp"));
  EXPECT_EQ(archive_->ListVersions(swap.history)->size(), 2u);
}

TEST_F(HistoryModelTest, RandomSequencesAgreeWithTheModel) {
  const char* env = std::getenv("MEDVFS_MODEL_SEQUENCES");
  const int sequences = env != nullptr ? std::atoi(env) : 800;
  const char* seed_env = std::getenv("MEDVFS_MODEL_SEED");
  const uint64_t seed = seed_env != nullptr ? std::strtoull(seed_env, nullptr, 10) : 20261206;
  std::mt19937_64 rng(seed);
  for (int sequence = 0; sequence < sequences; ++sequence) {
    SCOPED_TRACE("seed " + std::to_string(seed) + ", sequence " + std::to_string(sequence));
    ASSERT_NO_FATAL_FAILURE(RunSequence(rng, sequence, 24));
  }
}

}  // namespace
}  // namespace medvfs::store
