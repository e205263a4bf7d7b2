// The de-identified view at the mount root (DESIGN.md section 1, man/medvfs-views.7):
//
//   /@anon/<pseudonym>/<StudyDate>_<StudyInstanceUID>/<SeriesNumber>_<SeriesInstanceUID>/
//          <SOPInstanceUID>.dcm
//
// holds every live DICOM file of the patient index, de-identified on read by a
// store::Deidentifier (store/dicom/deid.h). Every name comes from the de-identified values
// (Deidentifier::NamesFor of the current version's stored tags: the pseudonym, the remapped
// UIDs, StudyDate as the output has it), never from the real ones, so that a listing of @anon
// shows no patient data. Files that share all four names get "_2", "_3"... before ".dcm",
// by inode order. A file that cannot be de-identified is left out, and so is a file the profile
// cannot make safe (store::WithholdReason: encapsulated documents, burned-in annotation); the
// root holds a report of those, WITHHELD.tsv (kWithheldReportName), by reason and anonymised
// path only.
//
// Unlike the other views, @anon needs state: the de-identifier (keyed by the archive), the
// layout (built from the whole patient index, so it is kept until the archive changes) and the
// de-identified sizes (kept per version, since a stat must not re-read the header each time).
// AnonView holds them; tests use it without a mount.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fs/views.h"
#include "store/archive.h"
#include "store/status.h"

namespace medvfs::fs {

// The report of withheld files at the root of /@anon.
inline constexpr std::string_view kWithheldReportName = "WITHHELD.tsv";
// The virtual xattr of a live DICOM file that is not in /@anon: why (a WithholdReasonName,
// "damaged", or "no-patient-or-study" for DICOM files outside the patient index). ENODATA for
// files that are shown and for files that are not DICOM.
inline constexpr std::string_view kAnonWithheldXattr = "user.medvfs.anon_withheld";
// The reasons of files the store does not judge.
inline constexpr std::string_view kDamagedReason = "damaged";
inline constexpr std::string_view kNotIndexedReason = "no-patient-or-study";

// A value usable as one @anon path component, by the rule /@patients names follow: trailing
// spaces and NULs dropped, '/' and NUL become '_', "." and ".." become "_", at most 255 bytes,
// and "UNKNOWN" for an empty value.
std::string AnonNameOf(std::string_view value);

// The path inside /@anon of a file named `names` (Deidentifier::NamesFor), before duplicate
// suffixes: "<pseudonym>/<StudyDate>_<StudyInstanceUID>/<SeriesNumber>_<SeriesInstanceUID>/
// <SOPInstanceUID>" (without ".dcm"; each value through AnonNameOf).
std::string AnonPathStem(const store::DeidentifiedFile& names);

// The layout of /@anon.
struct AnonTree {
  // Each directory by its path inside /@anon ("" for /@anon itself): its entries, by name.
  std::map<std::string, std::vector<ViewEntry>> dirs;
  // Each live file shown, by inode: its kAnonFile descriptor (`text` is its path in /@anon).
  std::map<store::InodeId, ViewDescriptor> files;
};

// One live DICOM file for BuildAnonTree: its inode, current version and naming values.
struct AnonSource {
  store::InodeId ino = 0;
  store::HistoryId history = 0;
  uint64_t version = 0;
  std::string stem;  // AnonPathStem of its names
};

// Lays out `files`: files with the same stem get "_2", "_3"... in inode order (the first
// none), then ".dcm".
AnonTree BuildAnonTree(std::vector<AnonSource> files);

class AnonView {
 public:
  // `deidentifier`: from Archive::NewDeidentifier, so pseudonyms match the archive's exports.
  AnonView(store::Archive& archive, std::unique_ptr<store::Deidentifier> deidentifier);
  AnonView(const AnonView&) = delete;
  AnonView& operator=(const AnonView&) = delete;

  // `generation`: the archive's change count (Filesystem::StableGeneration). The layout is
  // rebuilt when it differs from the one the layout was built under, and always when nullopt.

  // Attributes: directories 0550 and files 0440, owned like the root (as /@patients); a
  // file's size is its exact de-identified size and its times its version's time.
  store::StatusOr<store::Attr> Attr(const ViewDescriptor& view);
  // The child `name` of an @anon directory; kNotFound also for a file that cannot be
  // de-identified.
  store::StatusOr<ViewEntry> Resolve(const ViewDescriptor& parent, std::string_view name,
                                     std::optional<uint64_t> generation);
  // The entries of an @anon directory, by name, without the files that cannot be
  // de-identified (so listing a series de-identifies the headers of its files once).
  store::StatusOr<std::vector<ViewEntry>> List(const ViewDescriptor& dir,
                                               std::optional<uint64_t> generation);
  // Opens an @anon file: its version de-identified, read through the stored version; the
  // report WITHHELD.tsv as it is now.
  store::StatusOr<std::unique_ptr<store::FileHandle>> Open(const ViewDescriptor& file);
  // "@anon/<...>.dcm" (relative to the mount root) for the live file `ino`; kNoData when it is
  // not shown in /@anon (not DICOM, not in the patient index, or not de-identifiable).
  store::StatusOr<std::string> PathOfLiveFile(store::InodeId ino,
                                              std::optional<uint64_t> generation);
  // The kAnonFile descriptor of the live file `ino`, as PathOfLiveFile.
  store::StatusOr<ViewDescriptor> DescriptorOfLiveFile(store::InodeId ino,
                                                       std::optional<uint64_t> generation);
  // Why the live file `ino` is not in /@anon (kAnonWithheldXattr); kNoData when it is shown or
  // is not DICOM.
  store::StatusOr<std::string> WithheldReasonOfLiveFile(store::InodeId ino,
                                                        std::optional<uint64_t> generation);
  // The text of WITHHELD.tsv: "# N withheld: ..." then "reason<TAB>path" per withheld file
  // (path inside /@anon, as the file would be named), sorted. De-identifies every header once.
  store::StatusOr<std::string> WithheldReport(std::optional<uint64_t> generation);

  // How many versions' sizes (and names) are kept at most. Default: 65536.
  static constexpr size_t kMaxCachedVersions = 65536;

 private:
  using VersionKey = std::pair<store::HistoryId, uint64_t>;
  // What de-identifying a version gave: its size and time, or nothing (it failed).
  // A withheld file has ok true and `withheld` set; a damaged one ok false.
  struct Outcome {
    bool ok = false;
    uint64_t size = 0;
    int64_t time_ns = 0;
    store::WithholdReason withheld = store::WithholdReason::kNone;
    bool shown() const { return ok && withheld == store::WithholdReason::kNone; }
  };

  store::StatusOr<std::shared_ptr<const AnonTree>> Tree(std::optional<uint64_t> generation);
  // The generation the kept layout was built under (the report's attributes and content use
  // it rather than rebuilding the layout on every stat), or nullopt.
  std::optional<uint64_t> LastGeneration();
  store::StatusOr<AnonTree> Build();
  // Appends the files of one study of the patient index to *out.
  store::Status CollectStudy(const std::string& patient, const std::string& study,
                             std::vector<AnonSource>* out);
  // The naming stem of a version, through the names cache; kNotFound when it has no tags.
  store::StatusOr<std::string> StemOf(store::HistoryId history, uint64_t version);
  // De-identifies a version once (header only) and keeps the outcome; kIoError passes through
  // (a read failure is not the file's fault and is not remembered).
  store::StatusOr<Outcome> OutcomeOf(store::HistoryId history, uint64_t version);
  // De-identifies the stored version `key` of `size` bytes read through `source`; a failure
  // other than a read error is logged (with the history and version numbers only).
  store::StatusOr<store::DeidentifiedFile> Deidentify(const VersionKey& key,
                                                      store::FileHandle& source, uint64_t size);
  // Remembers that a version can or cannot be de-identified (bounded: all is forgotten when
  // kMaxCachedVersions is reached).
  void Remember(const VersionKey& key, Outcome outcome);

  store::Archive& archive_;
  const std::unique_ptr<store::Deidentifier> deidentifier_;
  mutable std::mutex mu_;                 // a leaf lock: never held across a call into the archive
  std::shared_ptr<const AnonTree> tree_;  // GUARDED_BY(mu_)
  std::optional<uint64_t> tree_generation_;  // GUARDED_BY(mu_)
  std::map<VersionKey, Outcome> outcomes_;   // GUARDED_BY(mu_)
  std::map<VersionKey, std::string> stems_;  // GUARDED_BY(mu_)
};

}  // namespace medvfs::fs
