// libFuzzer target: the path parser of the virtual views. The input is a path from the mount
// root, split on '/' ("study1/@version/scan.dcm/.meta/v2/diff", ".meta/scan.dcm/tags/PatientID",
// "@version/@2026-11-21T10:00:03Z/study1", "@patients/FUZZ-1"). It is walked as the FUSE
// lookup handler walks it: live names through Archive::Lookup until a view name
// (fs::IsViewName), then fs::ResolveViewChild, over a small real archive made once per
// process in $TMPDIR (several versions, a note, a deleted file, a rename, a symlink, a
// restore, DICOM files for .meta and @patients). Each node reached gets its attributes; the
// last one is listed, read or readlink()ed like a program would.
//
// The archive's versions are made at run time, so their times are not known in advance:
// an @<time> name between 2026-11-21T10:00:00Z and one hour later is therefore read as "S
// seconds after that" = the moment after set-up step S (a fraction of a second is dropped),
// so that a seed reaches the same state on every run. Every other @<time> is used as given.
//
// MEDVFS_FUZZ_TRACE=1 in the environment prints each step of the walk (to check seeds).
//
// Each component also goes through the pure parsers with their round trips: ParseTimeNs and
// FormatTimeNs, ParseVersionFileName and VersionFileName, ParseTimeDirName, NameExtension,
// IsReservedName and IsViewName.
#include <fcntl.h>
#include <stdlib.h>  // mkdtemp
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "fs/views.h"
#include "store/archive.h"
#include "store/keys.h"
#include "store/views.h"
#include "tests/fuzz/fuzz_util.h"

namespace medvfs::fuzz {
namespace {

using store::Archive;
using store::InodeId;

constexpr int64_t kNsPerSecond = 1'000'000'000;
constexpr int64_t kSeedEpochNs = int64_t{1'795'255'200} * kNsPerSecond;  // 2026-11-21T10:00:00Z
constexpr size_t kMaxComponents = 24;
constexpr size_t kMaxReadBytes = 1 << 20;

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * kNsPerSecond + ts.tv_nsec;
}

// The archive the paths are walked in, and the moment after each set-up step.
struct Fixture {
  std::filesystem::path dir;
  std::unique_ptr<Archive> archive;
  std::vector<int64_t> step_times;
};

class Builder {
 public:
  explicit Builder(Archive& archive) : archive_(archive) {
    caller_.uid = 1000;
    caller_.gid = 100;
    caller_.pid = 4242;
    caller_.program = "fuzz";
  }

  InodeId Dir(InodeId parent, std::string_view name) {
    auto made = archive_.MakeDir(parent, name, 0750, caller_);
    Check(made.ok(), "set-up: MakeDir");
    return made->ino;
  }

  // Creates NAME (or opens it) and commits `content` as a new version.
  InodeId Save(InodeId dir, std::string_view name, std::string_view content) {
    auto existing = archive_.Lookup(dir, name);
    InodeId ino = existing.ok() ? existing->ino : 0;
    if (ino == 0) {
      auto made = archive_.MakeNode(dir, name, S_IFREG | 0640, 0, caller_);
      Check(made.ok(), "set-up: MakeNode");
      ino = made->ino;
    }
    auto handle = archive_.Open(ino, O_WRONLY | O_TRUNC, caller_);
    Check(handle.ok(), "set-up: Open");
    Check((*handle)->Write(0, content).ok(), "set-up: Write");
    Check((*handle)->Flush(caller_).ok(), "set-up: Flush");
    return ino;
  }

  store::Attr AttrOf(InodeId ino) {
    auto attr = archive_.GetAttr(ino);
    Check(attr.ok(), "set-up: GetAttr");
    return *attr;
  }

  const store::Caller& caller() const { return caller_; }

 private:
  Archive& archive_;
  store::Caller caller_;
};

void Populate(Fixture& f) {
  Archive& a = *f.archive;
  Builder b(a);
  const InodeId root = store::kRootInode;
  auto step = [&] { f.step_times.push_back(NowNs()); };
  step();  // 0: empty
  const InodeId study = b.Dir(root, "study1");
  const InodeId scan = b.Save(root, "scan.dcm", SmallDicom("Doe^Jane", "FUZZ-1", "1.2.3.4", 1));
  step();  // 1: scan.dcm v1
  b.Save(root, "scan.dcm", SmallDicom("Doe^Janet", "FUZZ-1", "1.2.3.4", 1));
  Check(a.SetNote(b.AttrOf(scan).history, 2, "checked by Dr. Fuzz", b.caller()).ok(), "SetNote");
  step();  // 2: scan.dcm v2 (same SOPInstanceUID, other content), with a note
  b.Save(root, "notes.txt", "first\n");
  b.Save(root, "notes.txt", "second\n");
  step();  // 3: notes.txt v1, v2
  Check(a.Unlink(root, "notes.txt", b.caller()).ok(), "Unlink");
  b.Save(study, "img.dcm", SmallDicom("Roe^Richard", "FUZZ-2", "1.2.3.5", 9));
  Check(a.MakeSymlink(study, "link", "../scan.dcm", b.caller()).ok(), "MakeSymlink");
  Check(a.MakeNode(root, "pipe", S_IFIFO | 0600, 0, b.caller()).ok(), "MakeNode fifo");
  step();  // 4: notes.txt deleted; study1/img.dcm, study1/link, pipe
  Check(a.Rename(study, "img.dcm", study, "img2.dcm", 0, b.caller()).ok(), "Rename");
  const InodeId sub = b.Dir(study, "sub");
  b.Save(sub, "deep.txt", "deep\n");
  store::SetAttrRequest mode_change;
  mode_change.mode = 0600;
  Check(a.SetAttr(scan, mode_change, b.caller()).ok(), "SetAttr");
  step();  // 5: img.dcm renamed to img2.dcm; study1/sub/deep.txt; scan.dcm chmod 0600
  Check(a.Restore(b.AttrOf(scan).history, 1, b.caller()).ok(), "Restore");
  step();  // 6: scan.dcm v3 = v1 restored
}

Fixture& GetFixture() {
  static Fixture* fixture = [] {
    auto* f = new Fixture;
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/medvfs-fuzz-XXXXXX";
    Check(mkdtemp(pattern.data()) != nullptr, "mkdtemp");
    f->dir = pattern;
    store::ArchiveOptions options;
    options.kdf.n = uint64_t{1} << 10;  // cheap key derivation: a throw-away archive
    auto created =
        Archive::Create(f->dir / "archive", store::KeySource::Passphrase("fuzz"), options);
    Check(created.ok(), "Archive::Create");
    f->archive = std::move(created).value();
    Populate(*f);
    std::atexit([] {
      Fixture& fx = GetFixture();
      fx.archive.reset();
      std::error_code ec;
      std::filesystem::remove_all(fx.dir, ec);
    });
    return f;
  }();
  return *fixture;
}

// The pure parsers on one path component.
void CheckNameParsers(std::string_view name) {
  if (auto number = store::ParseVersionFileName(name)) {
    Check(*number > 0, "version numbers start at 1");
    store::VersionInfo v;
    v.number = *number;
    Check(store::ParseVersionFileName(store::VersionFileName(v, name)) == number,
          "VersionFileName parses back to its number");
  }
  auto parsed = store::ParseTimeNs(name);
  if (parsed.ok()) {
    auto again = store::ParseTimeNs(store::FormatTimeNs(*parsed));
    Check(again.ok() && *again == *parsed, "FormatTimeNs parses back to the same time");
    const int64_t seconds = *parsed - ((*parsed % kNsPerSecond) + kNsPerSecond) % kNsPerSecond;
    auto file_form = store::ParseTimeNs(store::FormatTimeForFileName(*parsed));
    Check(file_form.ok() && *file_form == seconds,
          "FormatTimeForFileName parses back to the second");
  }
  const std::optional<int64_t> dir_time = store::ParseTimeDirName(name);
  if (!name.empty() && name[0] == '@') {
    auto expected = store::ParseTimeNs(name.substr(1));
    Check(dir_time.has_value() == expected.ok() && (!dir_time || *dir_time == *expected),
          "ParseTimeDirName is ParseTimeNs after the '@'");
  } else {
    Check(!dir_time.has_value(), "ParseTimeDirName needs an '@'");
  }
  const std::string_view ext = store::NameExtension(name);
  Check(name.ends_with(ext), "NameExtension is a suffix");
  Check(ext.empty() ||
            (ext.size() >= 2 && ext[0] == '.' && ext.substr(1).find('.') == std::string_view::npos),
        "NameExtension is one dot and what follows it");
  Check(!fs::IsReservedName(name) || fs::IsViewName(7, name), "reserved names are views");
  Check(fs::IsViewName(7, name) == fs::IsReservedName(name), "below the root, views are reserved");
}

// The name a view lookup sees: seed-epoch @<time> names moved onto the set-up's clock.
std::string MapTimeName(const Fixture& f, std::string_view name) {
  const std::optional<int64_t> when = store::ParseTimeDirName(name);
  if (!when || *when < kSeedEpochNs || *when >= kSeedEpochNs + 3600 * kNsPerSecond) {
    return std::string(name);
  }
  const auto step = static_cast<size_t>((*when - kSeedEpochNs) / kNsPerSecond);
  return "@" + store::FormatTimeNs(f.step_times[std::min(step, f.step_times.size() - 1)]);
}

// What a program does with the node it reached.
void UseNode(Archive& archive, const fs::ViewDescriptor& view, bool show_hidden) {
  (void)fs::IsGeneratedViewFile(view);
  (void)fs::IsVolatileView(view);
  (void)fs::ResolvesAgainstLiveTree(view);
  if (view.is_dir()) {
    auto entries = fs::ListView(archive, view, show_hidden);
    if (!entries.ok()) return;
    for (const fs::ViewEntry& entry : *entries) {
      Check(!entry.name.empty() && entry.name.find('/') == std::string::npos,
            "a listed name is one path component");
      auto found = fs::ResolveViewChild(archive, view, entry.name);
      Check(found.ok(), "a listed name resolves");
    }
    return;
  }
  (void)fs::ReadViewLink(view);
  auto handle = fs::OpenViewFile(archive, view);
  if (!handle.ok()) return;
  std::string buffer(4096, '\0');
  for (uint64_t offset = 0; offset < kMaxReadBytes;) {
    auto n = (*handle)->Read(offset, std::span<char>(buffer.data(), buffer.size()));
    if (!n.ok() || *n == 0) break;
    offset += *n;
  }
}

// One step of the walk, with MEDVFS_FUZZ_TRACE set.
void Trace(std::string_view name, const char* what, int kind) {
  static const bool trace = std::getenv("MEDVFS_FUZZ_TRACE") != nullptr;
  if (trace) {
    std::fprintf(stderr, "  %.*s: %s %d\n", static_cast<int>(name.size()), name.data(), what, kind);
  }
}

void Walk(std::string_view path, bool show_hidden) {
  Fixture& f = GetFixture();
  Archive& archive = *f.archive;
  InodeId live = store::kRootInode;
  std::optional<fs::ViewDescriptor> view;
  size_t components = 0;
  while (!path.empty() && components < kMaxComponents) {
    const size_t slash = path.find('/');
    const std::string_view name = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (name.empty()) continue;
    ++components;
    CheckNameParsers(name);
    if (!view) {
      if (fs::IsViewName(live, name)) {
        view = name == fs::kVersionDirName ? fs::VersionRootOf(live)
               : name == fs::kMetaDirName  ? fs::LiveMetaRootOf(live)
                                           : fs::PatientsRoot();
      } else {
        auto attr = archive.Lookup(live, name);
        if (!attr.ok() || !S_ISDIR(attr->mode)) return Trace(name, "no live directory", 0);
        live = attr->ino;
        Trace(name, "live directory, inode", static_cast<int>(live));
        continue;
      }
    } else {
      auto child = fs::ResolveViewChild(archive, *view, MapTimeName(f, name));
      if (!child.ok()) return Trace(name, "not found", static_cast<int>(child.status().code()));
      view = child->view;
    }
    Trace(name, "view kind", static_cast<int>(view->kind));
    auto attr = fs::ViewAttr(archive, *view);
    if (attr.ok()) {
      Check(attr->ino == fs::StableViewIno(*view), "a view's inode is its stable number");
    }
  }
  if (view) UseNode(archive, *view, show_hidden);
}

}  // namespace
}  // namespace medvfs::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const medvfs::fuzz::ExactCopy copy(input);
  // A trailing newline (text seeds) is not part of the path.
  std::string_view path = copy.view();
  if (path.ends_with('\n')) path.remove_suffix(1);
  medvfs::fuzz::Walk(path, /*show_hidden=*/size % 2 == 1);
  return 0;
}
