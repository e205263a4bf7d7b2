#include "fs/anon_views.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>
#include <span>

#include "fs/view_detail.h"
#include "store/log.h"

namespace medvfs::fs {
namespace {

using store::Status;
using store::StatusOr;

constexpr std::string_view kUnknown = "UNKNOWN";
constexpr std::string_view kDicomExtension = ".dcm";
constexpr size_t kMaxNameBytes = 255;
// /@anon shows de-identified data only, but it is patient data still (research use): like
// /@patients, for the root's owner and group.
constexpr uint32_t kAnonDirMode = S_IFDIR | 0550;
constexpr uint32_t kAnonFileMode = S_IFREG | 0440;

ViewDescriptor AnonDir(std::string path) {
  ViewDescriptor view;
  view.kind = ViewKind::kAnonDir;
  view.owner_dir = store::kRootInode;
  view.text = std::move(path);
  return view;
}

ViewDescriptor AnonFileView(const AnonSource& source, std::string path) {
  ViewDescriptor view;
  view.kind = ViewKind::kAnonFile;
  view.owner_dir = store::kRootInode;
  view.ino = source.ino;
  view.history = source.history;
  view.version = source.version;
  view.text = std::move(path);
  return view;
}

// WITHHELD.tsv: a kAnonFile of no history, whose `version` is the generation it was found
// under (so that a change to the archive gives it another inode and no stale cached pages).
ViewDescriptor ReportView(std::optional<uint64_t> generation) {
  ViewDescriptor view;
  view.kind = ViewKind::kAnonFile;
  view.owner_dir = store::kRootInode;
  view.version = generation.value_or(0);
  view.text = std::string(kWithheldReportName);
  return view;
}

bool IsReport(const ViewDescriptor& view) {
  return view.kind == ViewKind::kAnonFile && view.history == 0 && view.text == kWithheldReportName;
}

// The report's bytes, read from memory.
class TextHandle final : public store::FileHandle {
 public:
  TextHandle(store::InodeId ino, std::string text) : ino_(ino), text_(std::move(text)) {}
  store::InodeId ino() const override { return ino_; }
  StatusOr<size_t> Read(uint64_t offset, std::span<char> out) override {
    if (offset >= text_.size()) return size_t{0};
    const size_t n = std::min<size_t>(out.size(), text_.size() - static_cast<size_t>(offset));
    std::copy_n(text_.data() + offset, n, out.data());
    return n;
  }
  StatusOr<size_t> Write(uint64_t, std::string_view) override {
    return Status::ReadOnly("the @anon view is read-only");
  }
  Status Flush(const store::Caller&) override { return Status::Ok(); }
  Status Sync(const store::Caller&) override { return Status::Ok(); }

 private:
  const store::InodeId ino_;
  const std::string text_;
};

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (!out.empty()) out += '/';
  out += name;
  return out;
}

// The file name of the `index`-th (1-based) file with `stem`'s base name.
std::string FileNameOf(std::string_view base, int index) {
  std::string name(base);
  if (index > 1) name += "_" + std::to_string(index);
  // Keeps the name within NAME_MAX: long values lose their end, never the extension.
  const size_t room = kMaxNameBytes - kDicomExtension.size();
  if (name.size() > room) name.resize(room);
  name += kDicomExtension;
  return name;
}

// Adds `path` ("a/b/c/f.dcm") and its parent directories to *dirs.
void AddPath(const std::string& path, ViewDescriptor file,
             std::map<std::string, std::map<std::string, ViewEntry>>* dirs) {
  size_t start = 0;
  std::string dir;
  for (size_t slash = path.find('/'); slash != std::string::npos;
       start = slash + 1, slash = path.find('/', start)) {
    const std::string name = path.substr(start, slash - start);
    std::string child = JoinPath(dir, name);
    (*dirs)[dir].try_emplace(name, view_detail::MakeEntry(name, AnonDir(child)));
    dir = std::move(child);
  }
  const std::string name = path.substr(start);
  (*dirs)[dir].insert_or_assign(name, view_detail::MakeEntry(name, std::move(file)));
}

// An @anon file: the de-identified header, then the source's pixel bytes.
class AnonFileHandle final : public store::FileHandle {
 public:
  AnonFileHandle(store::InodeId ino, std::unique_ptr<store::FileHandle> source,
                 store::DeidentifiedFile file)
      : ino_(ino), source_(std::move(source)), file_(std::move(file)) {
    read_source_ = [this](uint64_t offset, std::span<char> out) {
      return source_->Read(offset, out);
    };
  }
  store::InodeId ino() const override { return ino_; }
  StatusOr<size_t> Read(uint64_t offset, std::span<char> out) override {
    return store::Deidentifier::ReadDeidentified(file_, read_source_, offset, out);
  }
  StatusOr<size_t> Write(uint64_t, std::string_view) override {
    return Status::ReadOnly("the @anon view is read-only");
  }
  Status Flush(const store::Caller&) override { return Status::Ok(); }
  Status Sync(const store::Caller&) override { return Status::Ok(); }

 private:
  const store::InodeId ino_;
  const std::unique_ptr<store::FileHandle> source_;
  const store::DeidentifiedFile file_;
  store::ReadAtFunction read_source_;
};

}  // namespace

std::string AnonNameOf(std::string_view value) {
  std::string name(value);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\0')) name.pop_back();
  for (char& c : name) {
    if (c == '/' || c == '\0') c = '_';
  }
  if (name.empty()) name = std::string(kUnknown);
  if (name == "." || name == "..") name = "_";
  if (name.size() > kMaxNameBytes) name.resize(kMaxNameBytes);
  return name;
}

std::string AnonPathStem(const store::DeidentifiedFile& names) {
  // Each value alone gets UNKNOWN when empty, so "<date>_<uid>" keeps both halves readable.
  const auto part = [](std::string_view value) {
    return value.empty() ? std::string(kUnknown) : std::string(value);
  };
  std::string study = part(names.study_date);
  study += '_';
  study += part(names.study_instance_uid);
  std::string series = part(names.series_number);
  series += '_';
  series += part(names.series_instance_uid);
  std::string stem = AnonNameOf(names.patient_pseudonym);
  for (const std::string& component :
       {AnonNameOf(study), AnonNameOf(series), AnonNameOf(names.sop_instance_uid)}) {
    stem += '/';
    stem += component;
  }
  return stem;
}

AnonTree BuildAnonTree(std::vector<AnonSource> files) {
  std::sort(files.begin(), files.end(), [](const AnonSource& a, const AnonSource& b) {
    return a.stem != b.stem ? a.stem < b.stem : a.ino < b.ino;
  });
  std::map<std::string, std::map<std::string, ViewEntry>> dirs;
  dirs[""];  // /@anon itself, even when empty
  std::set<std::string> taken;
  AnonTree tree;
  for (size_t i = 0; i < files.size(); ++i) {
    const AnonSource& file = files[i];
    const bool repeats = i > 0 && files[i - 1].stem == file.stem;
    // The first of a stem takes the plain name; later ones count on from 2. A stem that
    // itself ends in "_2" (a retained UID) cannot take a name that is already used either.
    int index = repeats ? 2 : 1;
    std::string path;
    while (true) {
      const size_t slash = file.stem.rfind('/');
      path = file.stem.substr(0, slash + 1) + FileNameOf(file.stem.substr(slash + 1), index);
      if (taken.insert(path).second) break;
      ++index;
    }
    ViewDescriptor view = AnonFileView(file, path);
    tree.files.emplace(file.ino, view);
    AddPath(path, std::move(view), &dirs);
  }
  for (auto& [dir, entries] : dirs) {
    std::vector<ViewEntry>& out = tree.dirs[dir];
    for (auto& [name, entry] : entries) out.push_back(std::move(entry));
  }
  return tree;
}

AnonView::AnonView(store::Archive& archive, std::unique_ptr<store::Deidentifier> deidentifier)
    : archive_(archive), deidentifier_(std::move(deidentifier)) {}

StatusOr<store::Attr> AnonView::Attr(const ViewDescriptor& view) {
  if (!IsAnonKind(view.kind)) return Status::Invalid("not an @anon node");
  const store::Attr root = view_detail::OwnerAttr(archive_, store::kRootInode);
  store::Attr attr;
  attr.ino = StableViewIno(view);
  attr.uid = root.uid;
  attr.gid = root.gid;
  if (view.kind != ViewKind::kAnonFile) {
    attr.mode = kAnonDirMode;
    attr.nlink = 2;
    attr.atime_ns = root.atime_ns;
    attr.mtime_ns = root.mtime_ns;
    attr.ctime_ns = root.ctime_ns;
    return attr;
  }
  if (IsReport(view)) {
    MEDVFS_ASSIGN_OR_RETURN(std::string report, WithheldReport(LastGeneration()));
    attr.mode = kAnonFileMode;
    attr.nlink = 1;
    attr.size = report.size();
    attr.atime_ns = attr.mtime_ns = attr.ctime_ns = root.mtime_ns;
    return attr;
  }
  MEDVFS_ASSIGN_OR_RETURN(Outcome outcome, OutcomeOf(view.history, view.version));
  if (!outcome.shown()) return view_detail::NotFound();
  attr.mode = kAnonFileMode;
  attr.nlink = 1;
  attr.size = outcome.size;
  attr.atime_ns = attr.mtime_ns = attr.ctime_ns = outcome.time_ns;
  return attr;
}

StatusOr<ViewEntry> AnonView::Resolve(const ViewDescriptor& parent, std::string_view name,
                                      std::optional<uint64_t> generation) {
  if (parent.kind != ViewKind::kAnonRoot && parent.kind != ViewKind::kAnonDir) {
    return Status(store::Code::kNotDirectory, "view node is not a directory");
  }
  if (parent.kind == ViewKind::kAnonRoot && name == kWithheldReportName) {
    return view_detail::MakeEntry(std::string(name), ReportView(generation));
  }
  MEDVFS_ASSIGN_OR_RETURN(std::shared_ptr<const AnonTree> tree, Tree(generation));
  auto dir = tree->dirs.find(parent.text);
  if (dir == tree->dirs.end()) return view_detail::NotFound();
  auto entry =
      std::lower_bound(dir->second.begin(), dir->second.end(), name,
                       [](const ViewEntry& e, std::string_view wanted) { return e.name < wanted; });
  if (entry == dir->second.end() || entry->name != name) return view_detail::NotFound();
  if (entry->view.kind == ViewKind::kAnonFile) {
    MEDVFS_ASSIGN_OR_RETURN(Outcome outcome, OutcomeOf(entry->view.history, entry->view.version));
    if (!outcome.shown()) return view_detail::NotFound();
  }
  return *entry;
}

StatusOr<std::vector<ViewEntry>> AnonView::List(const ViewDescriptor& dir,
                                                std::optional<uint64_t> generation) {
  if (dir.kind != ViewKind::kAnonRoot && dir.kind != ViewKind::kAnonDir) {
    return Status(store::Code::kNotDirectory, "view node is not a directory");
  }
  MEDVFS_ASSIGN_OR_RETURN(std::shared_ptr<const AnonTree> tree, Tree(generation));
  auto found = tree->dirs.find(dir.text);
  if (found == tree->dirs.end()) return view_detail::NotFound();
  std::vector<ViewEntry> out;
  for (const ViewEntry& entry : found->second) {
    if (entry.view.kind == ViewKind::kAnonFile) {
      MEDVFS_ASSIGN_OR_RETURN(Outcome outcome, OutcomeOf(entry.view.history, entry.view.version));
      if (!outcome.shown()) continue;
    }
    out.push_back(entry);
  }
  if (dir.kind == ViewKind::kAnonRoot) {
    ViewEntry report =
        view_detail::MakeEntry(std::string(kWithheldReportName), ReportView(generation));
    auto at = std::lower_bound(out.begin(), out.end(), report.name,
                               [](const ViewEntry& e, const std::string& n) { return e.name < n; });
    out.insert(at, std::move(report));
  }
  return out;
}

StatusOr<std::unique_ptr<store::FileHandle>> AnonView::Open(const ViewDescriptor& file) {
  if (file.kind != ViewKind::kAnonFile) {
    return Status(store::Code::kIsDirectory, "open of a view directory");
  }
  if (IsReport(file)) {
    MEDVFS_ASSIGN_OR_RETURN(std::string report, WithheldReport(LastGeneration()));
    return std::unique_ptr<store::FileHandle>(
        new TextHandle(StableViewIno(file), std::move(report)));
  }
  MEDVFS_ASSIGN_OR_RETURN(store::VersionInfo info, archive_.GetVersion(file.history, file.version));
  MEDVFS_ASSIGN_OR_RETURN(auto source, archive_.OpenVersion(file.history, file.version));
  auto deidentified = Deidentify({file.history, file.version}, *source, info.size);
  if (!deidentified.ok()) {
    if (deidentified.status().code() != store::Code::kInvalid) return deidentified.status();
    Remember({file.history, file.version}, Outcome{});
    return view_detail::NotFound();
  }
  if (deidentified->withheld != store::WithholdReason::kNone) {
    Remember({file.history, file.version}, Outcome{true, 0, info.time_ns, deidentified->withheld});
    return view_detail::NotFound();
  }
  Remember({file.history, file.version}, Outcome{true, deidentified->size(), info.time_ns});
  return std::unique_ptr<store::FileHandle>(
      new AnonFileHandle(StableViewIno(file), std::move(source), std::move(deidentified).value()));
}

StatusOr<std::string> AnonView::PathOfLiveFile(store::InodeId ino,
                                               std::optional<uint64_t> generation) {
  MEDVFS_ASSIGN_OR_RETURN(ViewDescriptor view, DescriptorOfLiveFile(ino, generation));
  return JoinPath(kAnonDirName, view.text);
}

StatusOr<ViewDescriptor> AnonView::DescriptorOfLiveFile(store::InodeId ino,
                                                        std::optional<uint64_t> generation) {
  const Status absent(store::Code::kNoData, "not shown in @anon");
  MEDVFS_ASSIGN_OR_RETURN(std::shared_ptr<const AnonTree> tree, Tree(generation));
  auto found = tree->files.find(ino);
  if (found == tree->files.end()) return absent;
  MEDVFS_ASSIGN_OR_RETURN(Outcome outcome, OutcomeOf(found->second.history, found->second.version));
  if (!outcome.shown()) return absent;
  return found->second;
}

StatusOr<std::string> AnonView::WithheldReasonOfLiveFile(store::InodeId ino,
                                                         std::optional<uint64_t> generation) {
  const Status absent(store::Code::kNoData, "shown in @anon, or not DICOM");
  MEDVFS_ASSIGN_OR_RETURN(std::shared_ptr<const AnonTree> tree, Tree(generation));
  auto found = tree->files.find(ino);
  if (found != tree->files.end()) {
    MEDVFS_ASSIGN_OR_RETURN(Outcome outcome,
                            OutcomeOf(found->second.history, found->second.version));
    if (!outcome.ok) return std::string(kDamagedReason);
    if (outcome.withheld == store::WithholdReason::kNone) return absent;
    return std::string(store::WithholdReasonName(outcome.withheld));
  }
  MEDVFS_ASSIGN_OR_RETURN(store::Attr attr, archive_.GetAttr(ino));
  if (!S_ISREG(attr.mode) || attr.history == 0 || attr.version == 0) return absent;
  auto tags = archive_.GetTags(attr.history, attr.version);
  if (!tags.ok()) {
    if (tags.status().code() == store::Code::kNotFound) return absent;  // not DICOM
    return tags.status();
  }
  return std::string(kNotIndexedReason);
}

std::optional<uint64_t> AnonView::LastGeneration() {
  std::lock_guard<std::mutex> lock(mu_);
  return tree_generation_;
}

StatusOr<std::string> AnonView::WithheldReport(std::optional<uint64_t> generation) {
  MEDVFS_ASSIGN_OR_RETURN(std::shared_ptr<const AnonTree> tree, Tree(generation));
  std::vector<std::pair<std::string, std::string>> lines;  // reason, path
  std::map<std::string, size_t> counts;
  for (const auto& [ino, view] : tree->files) {
    MEDVFS_ASSIGN_OR_RETURN(Outcome outcome, OutcomeOf(view.history, view.version));
    if (outcome.shown()) continue;
    std::string reason = outcome.ok ? std::string(store::WithholdReasonName(outcome.withheld))
                                    : std::string(kDamagedReason);
    ++counts[reason];
    lines.emplace_back(std::move(reason), view.text);
  }
  std::sort(lines.begin(), lines.end());
  std::string out = "# " + std::to_string(lines.size()) + " withheld";
  const char* separator = ": ";
  for (const auto& [reason, count] : counts) {
    out += separator + std::to_string(count) + " " + reason;
    separator = ", ";
  }
  out += "\nreason\tpath\n";
  for (const auto& [reason, path] : lines) {
    out += reason;
    out += '\t';
    out += path;
    out += '\n';
  }
  return out;
}

StatusOr<std::shared_ptr<const AnonTree>> AnonView::Tree(std::optional<uint64_t> generation) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (generation && tree_ && tree_generation_ == generation) return tree_;
  }
  // Built outside the lock: two threads may both build after a change, which costs time only.
  MEDVFS_ASSIGN_OR_RETURN(AnonTree built, Build());
  auto tree = std::make_shared<const AnonTree>(std::move(built));
  if (generation) {
    std::lock_guard<std::mutex> lock(mu_);
    tree_ = tree;
    tree_generation_ = generation;
  }
  return tree;
}

StatusOr<AnonTree> AnonView::Build() {
  MEDVFS_ASSIGN_OR_RETURN(std::vector<std::string> patients, archive_.ListPatients());
  std::vector<AnonSource> files;
  for (const std::string& patient : patients) {
    auto studies = archive_.ListStudies(patient);
    if (!studies.ok()) {
      // Gone since ListPatients (a save or delete meanwhile): nothing to show.
      if (studies.status().code() == store::Code::kNotFound) continue;
      return studies.status();
    }
    for (const std::string& study : *studies) {
      MEDVFS_RETURN_IF_ERROR(CollectStudy(patient, study, &files));
    }
  }
  return BuildAnonTree(std::move(files));
}

Status AnonView::CollectStudy(const std::string& patient, const std::string& study,
                              std::vector<AnonSource>* out) {
  auto listed = archive_.ListStudyFiles(patient, study);
  if (!listed.ok()) {
    if (listed.status().code() == store::Code::kNotFound) return Status::Ok();
    return listed.status();
  }
  for (const store::IndexedFile& file : *listed) {
    auto attr = archive_.GetAttr(file.ino);
    if (!attr.ok()) {
      if (attr.status().code() == store::Code::kNotFound) continue;
      return attr.status();
    }
    if (!S_ISREG(attr->mode) || attr->history == 0 || attr->version == 0) continue;
    auto stem = StemOf(attr->history, attr->version);
    if (!stem.ok()) {
      if (stem.status().code() == store::Code::kNotFound) continue;  // no tags: not DICOM
      return stem.status();
    }
    out->push_back(AnonSource{file.ino, attr->history, attr->version, std::move(stem).value()});
  }
  return Status::Ok();
}

StatusOr<std::string> AnonView::StemOf(store::HistoryId history, uint64_t version) {
  const VersionKey key{history, version};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto found = stems_.find(key);
    if (found != stems_.end()) return found->second;
  }
  MEDVFS_ASSIGN_OR_RETURN(store::DicomTags tags, archive_.GetTags(history, version));
  std::string stem = AnonPathStem(deidentifier_->NamesFor(tags));
  std::lock_guard<std::mutex> lock(mu_);
  if (stems_.size() >= kMaxCachedVersions) stems_.clear();
  stems_.emplace(key, stem);
  return stem;
}

StatusOr<AnonView::Outcome> AnonView::OutcomeOf(store::HistoryId history, uint64_t version) {
  const VersionKey key{history, version};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto found = outcomes_.find(key);
    if (found != outcomes_.end()) return found->second;
  }
  MEDVFS_ASSIGN_OR_RETURN(store::VersionInfo info, archive_.GetVersion(history, version));
  MEDVFS_ASSIGN_OR_RETURN(auto source, archive_.OpenVersion(history, version));
  auto deidentified = Deidentify(key, *source, info.size);
  Outcome outcome;
  if (deidentified.ok()) {
    outcome = Outcome{true, deidentified->size(), info.time_ns, deidentified->withheld};
  } else if (deidentified.status().code() != store::Code::kInvalid) {
    return deidentified.status();  // a read failure: tell, and try again next time
  }
  Remember(key, outcome);
  return outcome;
}

StatusOr<store::DeidentifiedFile> AnonView::Deidentify(const VersionKey& key,
                                                       store::FileHandle& source, uint64_t size) {
  const store::ReadAtFunction read = [&source](uint64_t offset, std::span<char> out) {
    return source.Read(offset, out);
  };
  auto deidentified = deidentifier_->Deidentify(read, size);
  if (!deidentified.ok() && deidentified.status().code() == store::Code::kInvalid) {
    // The reason names what is malformed, never a value; the numbers say which file.
    MEDVFS_LOG_WARNING("@anon leaves out history %llu version %llu: it cannot be de-identified: %s",
                       static_cast<unsigned long long>(key.first),
                       static_cast<unsigned long long>(key.second),
                       deidentified.status().ToString().c_str());
  }
  return deidentified;
}

void AnonView::Remember(const VersionKey& key, Outcome outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  if (outcomes_.size() >= kMaxCachedVersions) outcomes_.clear();
  outcomes_.insert_or_assign(key, outcome);
}

}  // namespace medvfs::fs
