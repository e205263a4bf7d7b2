// A reference model of file history, for model-based tests: random sequences of creates,
// saves, renames, rename-overs, unlinks and links are applied both to an archive (directly or
// through a mount) and to this model, and every name's history must agree after every step.
//
// The model is the specification of man/medvfs-views.7, "History identity", written as plainly
// as possible: histories are lists of saved contents, names keep the list of bindings to
// histories, and nothing here knows about inodes, records or keys.
#pragma once

#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace medvfs::test_model {

// A place: directory index (0 or 1) and name.
using Place = std::pair<int, std::string>;

struct ModelVersion {
  std::string content;
  bool marker = false;  // a delete marker
};

struct ModelHistory {
  std::vector<ModelVersion> versions;  // version N is versions[N-1]
  bool fresh = true;                   // only ever bound to its birth name, never continued
  int live_file = -1;                  // the file carrying it, -1 when none
  Place last;                          // where it was last bound
  bool erased = false;
};

struct ModelFile {
  int history = -1;
  int nlink = 1;
  std::string content;
  bool has_version = false;  // the file has committed (or received) a version
};

struct NameEvent {
  int history = -1;
  bool removed = false;
  size_t held = 0;  // on removal: how many versions the name held
};

// Whether `candidate` is a backup name of `name` (x.dcm.bak, x.dcm~, x.bak for x.dcm).
inline bool ModelIsBackupName(const std::string& candidate, const std::string& name) {
  if (candidate.size() > name.size() && candidate.compare(0, name.size(), name) == 0) return true;
  const size_t dot = name.rfind('.');
  const std::string stem = dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
  for (const std::string suffix : {".bak", ".BAK", ".old", ".orig", "~"}) {
    if (candidate == stem + suffix) return true;
  }
  return false;
}

class HistoryModel {
 public:
  std::map<Place, int> live;  // name -> file
  std::vector<ModelFile> files;
  std::vector<ModelHistory> histories;
  std::map<Place, std::vector<NameEvent>> events;  // every binding of every name, in order

  // The history a name's @version shows: its last event's; nullopt if the name has none.
  std::optional<int> HistoryOf(const Place& place) const {
    auto it = events.find(place);
    if (it == events.end() || it->second.empty()) return std::nullopt;
    return it->second.back().history;
  }

  // open(O_CREAT|O_TRUNC), write `content`, close.
  void Save(const Place& place, const std::string& content) {
    auto it = live.find(place);
    if (it == live.end()) {
      const int file = static_cast<int>(files.size());
      files.push_back({});
      files[file].history = HistoryForNewFile(place, file);
      live[place] = file;
      events[place].push_back({files[file].history, false, 0});
      Commit(file, content);
      return;
    }
    ModelFile& f = files[it->second];
    if (!f.has_version || f.content != content) Commit(it->second, content);
  }

  void Unlink(const Place& place) {
    const int file = live.at(place);
    ModelFile& f = files[file];
    ModelHistory& h = histories[f.history];
    RemovalEvent(place);
    live.erase(place);
    if (f.nlink == 1) h.last = place;
    if (--f.nlink == 0) {
      h.versions.push_back({"", true});
      h.live_file = -1;
    }
  }

  void Link(const Place& from, const Place& to) {
    const int file = live.at(from);
    files[file].nlink++;
    histories[files[file].history].fresh = false;
    live[to] = file;
    events[to].push_back({files[file].history, false, 0});
  }

  void Rename(const Place& from, const Place& to) {
    const int file = live.at(from);
    auto target = live.find(to);
    if (target != live.end() && target->second == file) return;  // same file: nothing
    ModelFile& f = files[file];
    if (target != live.end()) {
      ModelFile& g = files[target->second];
      if (f.nlink == 1 && g.nlink == 1) {
        RenameOver(from, to, file, target->second);
        return;
      }
      // A link count above one: the target just loses this link.
      RemovalEvent(to);
      ModelHistory& gh = histories[g.history];
      if (--g.nlink == 0) {
        gh.versions.push_back({"", true});
        gh.live_file = -1;
        gh.last = to;
      }
    }
    bool keep_event = true;
    if (f.nlink == 1) {
      ModelHistory& h = histories[f.history];
      const bool to_backup = from.first == to.first && ModelIsBackupName(to.second, from.second);
      if (IsTemporary(h) && !to_backup) {
        EraseEvents(from, f.history);
        keep_event = false;
      } else {
        h.fresh = false;
      }
      h.last = to;
    }
    if (keep_event) RemovalEvent(from);
    live.erase(from);
    live[to] = file;
    events[to].push_back({f.history, false, 0});
  }

 private:
  static bool IsTemporary(const ModelHistory& h) { return h.fresh && h.versions.size() <= 1; }

  int NewHistory() {
    histories.push_back({});
    return static_cast<int>(histories.size()) - 1;
  }

  int HistoryForNewFile(const Place& place, int file) {
    int id = -1;
    auto it = events.find(place);
    if (it != events.end() && !it->second.empty() && it->second.back().removed) {
      const NameEvent& last = it->second.back();
      ModelHistory& old = histories[last.history];
      if (!old.erased && old.live_file == -1 && old.last == place) {
        id = last.history;
      } else if (!old.erased && old.live_file != -1 && old.last.first == place.first &&
                 ModelIsBackupName(old.last.second, place.second)) {
        const std::vector<ModelVersion> held(
            old.versions.begin(), old.versions.begin() + static_cast<std::ptrdiff_t>(last.held));
        id = NewHistory();
        histories[id].versions = held;
      }
      if (id != -1) histories[id].fresh = false;
    }
    if (id == -1) id = NewHistory();
    histories[id].live_file = file;
    histories[id].last = place;
    return id;
  }

  void Commit(int file, const std::string& content) {
    files[file].content = content;
    files[file].has_version = true;
    histories[files[file].history].versions.push_back({content, false});
  }

  void RemovalEvent(const Place& place) {
    std::vector<NameEvent>& list = events[place];
    NameEvent removal = list.back();
    removal.removed = true;
    removal.held = histories[removal.history].versions.size();
    list.push_back(removal);
  }

  void EraseEvents(const Place& place, int history) {
    std::vector<NameEvent>& list = events[place];
    std::erase_if(list, [&](const NameEvent& e) { return e.history == history; });
    if (list.empty()) events.erase(place);
  }

  void RenameOver(const Place& from, const Place& to, int file, int target_file) {
    ModelFile& f = files[file];
    ModelFile& g = files[target_file];
    const int source = f.history;
    const int target = g.history;
    if (f.has_version && (!g.has_version || g.content != f.content)) {
      histories[target].versions.push_back({f.content, false});
    }
    ModelHistory& sh = histories[source];
    const bool temporary = IsTemporary(sh);
    if (temporary) {
      EraseEvents(from, source);
      sh.erased = true;
      sh.versions.clear();
    } else {
      RemovalEvent(from);
      sh.live_file = -1;
      sh.last = from;
      sh.fresh = false;
    }
    ModelHistory& th = histories[target];
    th.live_file = file;
    th.fresh = false;
    th.last = to;
    f.history = target;
    if (f.has_version || g.has_version) f.has_version = true;
    if (!f.has_version) f.content = g.content;
    g.nlink = 0;
    live.erase(from);
    live[to] = file;
    events[to].push_back({target, false, 0});
  }
};

}  // namespace medvfs::test_model
