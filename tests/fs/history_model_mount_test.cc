// Model-based test of history identity through a real mount: random sequences of saves (also
// through fixed temporary names and dcmodify's backup name), renames, rename-overs, unlinks and
// hard links, made with plain POSIX calls, against tests/history_model.h. After every step,
// every @version file (its name and its bytes) and every versions.tsv agrees with the model;
// at the end of each sequence `medvfs log --json` does too; and every few sequences the
// archive is unmounted and mounted again and everything is checked once more.
// MEDVFS_MOUNT_MODEL_SEQUENCES sets the number of sequences.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "store/crypto/crypto.h"
#include "store/views.h"
#include "tests/fs/mount_fixture.h"
#include "tests/history_model.h"

namespace medvfs::fs_test {
namespace {

using test_model::HistoryModel;
using test_model::Place;

const std::vector<std::string> kNames = {"scan.dcm", "scan.dcm.bak", "y.dcm", ".tmp", ".tmpA"};
const std::vector<std::string> kContents = {"A", "BB", "CCC", "DDDD"};

class HistoryModelMountTest : public MountTest {
 protected:
  std::string Dir(int sequence, int d) const {
    return "s" + std::to_string(sequence) + "_" + std::to_string(d);
  }
  std::string PathOf(int sequence, const Place& place) const {
    return Dir(sequence, place.first) + "/" + place.second;
  }
  std::string VersionDir(int sequence, const Place& place) const {
    return Dir(sequence, place.first) + "/@version/" + place.second;
  }

  // @version and versions.tsv of every name, and the live files, against the model.
  void Check(const HistoryModel& model, int sequence, const std::string& trace) {
    SCOPED_TRACE(trace);
    for (const auto& [place, list] : model.events) {
      if (list.empty()) continue;
      SCOPED_TRACE("name " + PathOf(sequence, place));
      const auto& versions = model.histories[*model.HistoryOf(place)].versions;
      std::set<uint64_t> expected_files;
      for (size_t i = 0; i < versions.size(); ++i) {
        if (!versions[i].marker) expected_files.insert(i + 1);
      }
      std::set<uint64_t> listed;
      for (const std::string& entry : ListDir(P(VersionDir(sequence, place)))) {
        if (entry == ".meta") continue;
        auto number = store::ParseVersionFileName(entry);
        ASSERT_TRUE(number.has_value()) << entry;
        listed.insert(*number);
        ASSERT_EQ(ReadFile(P(VersionDir(sequence, place) + "/" + entry)),
                  versions[*number - 1].content)
            << entry;
      }
      ASSERT_EQ(listed, expected_files);
      const std::string tsv_text = ReadFile(P(VersionDir(sequence, place) + "/.meta/versions.tsv"));
      auto tsv = store::ParseVersionsTsv(tsv_text);
      ASSERT_TRUE(tsv.ok()) << tsv.status().ToString();
      ASSERT_EQ(tsv->size(), versions.size()) << tsv_text;
      for (size_t i = 0; i < versions.size(); ++i) {
        ASSERT_EQ((*tsv)[i].number, i + 1);
        ASSERT_EQ((*tsv)[i].is_delete_marker(), versions[i].marker);
        if (!versions[i].marker) {
          ASSERT_EQ((*tsv)[i].sha256, store::Sha256Of(versions[i].content));
        }
      }
    }
    for (const auto& [place, file] : model.live) {
      ASSERT_EQ(ReadFile(P(PathOf(sequence, place))), model.files[file].content)
          << PathOf(sequence, place);
    }
  }

  // `medvfs log --json` of every name against the model.
  void CheckLog(const HistoryModel& model, int sequence) {
    for (const auto& [place, list] : model.events) {
      if (list.empty()) continue;
      const auto& versions = model.histories[*model.HistoryOf(place)].versions;
      ProcResult log = RunProgram({MEDVFS_BIN, "log", "--json", P(PathOf(sequence, place))});
      ASSERT_EQ(log.exit_code, 0) << PathOf(sequence, place) << ": " << log.err;
      const nlohmann::json json = nlohmann::json::parse(log.out);
      ASSERT_EQ(json["versions"].size(), versions.size()) << log.out;
      for (size_t i = 0; i < versions.size(); ++i) {
        const auto& entry = json["versions"][i];
        ASSERT_EQ(entry["number"], i + 1);
        if (!versions[i].marker) {
          ASSERT_EQ(entry["sha256"], store::HexEncode(store::Sha256Of(versions[i].content)));
        } else {
          ASSERT_TRUE(entry["sha256"].is_null());
        }
      }
    }
  }

  void RunSequence(std::mt19937_64& rng, int sequence, int steps, HistoryModel& model,
                   std::string& trace) {
    for (int d = 0; d < 2; ++d) ASSERT_EQ(mkdir(P(Dir(sequence, d)).c_str(), 0755), 0);
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    auto any_place = [&]() -> Place {
      return {static_cast<int>(pick(4) == 0 ? 1 : 0), kNames[pick(kNames.size())]};
    };
    auto path = [&](const Place& p) { return P(PathOf(sequence, p)); };
    for (int step = 0; step < steps; ++step) {
      const size_t kind = pick(10);
      const std::string content = kContents[pick(kContents.size())];
      std::optional<Place> from;
      if (!model.live.empty()) {
        auto it = model.live.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(pick(model.live.size())));
        from = it->first;
      }
      if (kind <= 2 || !from) {
        const Place at = any_place();
        trace += "save " + PathOf(sequence, at) + " " + content + "; ";
        ASSERT_EQ(WriteFile(path(at), content), 0) << trace;
        model.Save(at, content);
      } else if (kind == 3) {
        const Place temp{from->first, pick(2) == 0 ? ".tmp" : ".tmpA"};
        if (temp == *from) continue;
        trace += "temp-save " + PathOf(sequence, *from) + " via " + temp.second + "; ";
        ASSERT_EQ(WriteFile(path(temp), content), 0) << trace;
        model.Save(temp, content);
        ASSERT_EQ(rename(path(temp).c_str(), path(*from).c_str()), 0) << trace;
        model.Rename(temp, *from);
      } else if (kind == 4) {
        const Place backup{from->first, from->second + ".bak"};
        if (model.live.contains(backup)) continue;
        trace += "backup-save " + PathOf(sequence, *from) + "; ";
        ASSERT_EQ(rename(path(*from).c_str(), path(backup).c_str()), 0) << trace;
        model.Rename(*from, backup);
        ASSERT_EQ(WriteFile(path(*from), content), 0) << trace;
        model.Save(*from, content);
      } else if (kind <= 6) {
        const Place to = any_place();
        trace += "rename " + PathOf(sequence, *from) + " " + PathOf(sequence, to) + "; ";
        ASSERT_EQ(rename(path(*from).c_str(), path(to).c_str()), 0) << trace;
        model.Rename(*from, to);
      } else if (kind <= 8) {
        trace += "unlink " + PathOf(sequence, *from) + "; ";
        ASSERT_EQ(unlink(path(*from).c_str()), 0) << trace;
        model.Unlink(*from);
      } else {
        const Place to = any_place();
        if (model.live.contains(to)) continue;
        trace += "link " + PathOf(sequence, *from) + " " + PathOf(sequence, to) + "; ";
        ASSERT_EQ(link(path(*from).c_str(), path(to).c_str()), 0) << trace;
        model.Link(*from, to);
      }
      ASSERT_NO_FATAL_FAILURE(Check(model, sequence, trace));
    }
    ASSERT_NO_FATAL_FAILURE(CheckLog(model, sequence)) << trace;
  }
};

TEST_F(HistoryModelMountTest, RandomSequencesAgreeWithTheModel) {
  MountOk();
  const char* env = std::getenv("MEDVFS_MOUNT_MODEL_SEQUENCES");
  const int sequences = env != nullptr ? std::atoi(env) : 30;
  std::mt19937_64 rng(1206);
  std::vector<HistoryModel> models(static_cast<size_t>(sequences));
  std::vector<std::string> traces(static_cast<size_t>(sequences));
  for (int sequence = 0; sequence < sequences; ++sequence) {
    SCOPED_TRACE("sequence " + std::to_string(sequence));
    const auto s = static_cast<size_t>(sequence);
    ASSERT_NO_FATAL_FAILURE(RunSequence(rng, sequence, 16, models[s], traces[s]));
    if (sequence % 10 == 9 || sequence == sequences - 1) {
      // A remount: everything written so far, read back from the archive alone.
      UmountOk();
      MountOk();
      for (int earlier = 0; earlier <= sequence; ++earlier) {
        const auto e = static_cast<size_t>(earlier);
        ASSERT_NO_FATAL_FAILURE(Check(models[e], earlier, "after a remount: " + traces[e]));
      }
    }
  }
}

}  // namespace
}  // namespace medvfs::fs_test
