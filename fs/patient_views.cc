// The patient index at the mount root: /@patients/<PatientID>/<study>/ holds one symlink per
// live DICOM file of the study, pointing back at the file's path in the live tree.
#include <sys/stat.h>

#include <algorithm>
#include <map>

#include "fs/view_detail.h"
#include "store/views.h"

namespace medvfs::fs {
namespace view_detail {
namespace {

using store::Archive;
using store::Attr;
using store::Status;
using store::StatusOr;

// The index lists patient IDs, which are patient data: readable by the root's owner and group
// only.
constexpr uint32_t kPatientDirMode = S_IFDIR | 0550;

ViewDescriptor PatientDir(std::string_view patient_id) {
  ViewDescriptor view;
  view.kind = ViewKind::kPatient;
  view.owner_dir = store::kRootInode;
  view.text = std::string(patient_id);
  return view;
}

ViewDescriptor StudyDir(std::string_view patient_id, std::string_view study) {
  ViewDescriptor view = PatientDir(patient_id);
  view.kind = ViewKind::kStudy;
  view.study = std::string(study);
  return view;
}

ViewDescriptor LinkTo(const store::IndexedFile& file) {
  ViewDescriptor view;
  view.kind = ViewKind::kPatientLink;
  view.owner_dir = store::kRootInode;
  view.ino = file.ino;
  view.text = PatientLinkTarget(file.path);
  return view;
}

StatusOr<std::vector<ViewEntry>> ListStudyLinks(Archive& archive, const ViewDescriptor& study) {
  MEDVFS_ASSIGN_OR_RETURN(auto files, archive.ListStudyFiles(study.text, study.study));
  const std::vector<std::string> names = StudyLinkNames(files);
  std::vector<ViewEntry> out;
  for (size_t i = 0; i < files.size(); ++i) out.push_back(MakeEntry(names[i], LinkTo(files[i])));
  std::sort(out.begin(), out.end(),
            [](const ViewEntry& a, const ViewEntry& b) { return a.name < b.name; });
  return out;
}

}  // namespace

bool IsPatientKind(ViewKind kind) {
  return kind == ViewKind::kPatientsRoot || kind == ViewKind::kPatient ||
         kind == ViewKind::kStudy || kind == ViewKind::kPatientLink;
}

StatusOr<Attr> PatientViewAttr(Archive& archive, const ViewDescriptor& view) {
  const Attr root = OwnerAttr(archive, store::kRootInode);
  Attr attr;
  attr.uid = root.uid;
  attr.gid = root.gid;
  attr.atime_ns = root.atime_ns;
  attr.mtime_ns = root.mtime_ns;
  attr.ctime_ns = root.ctime_ns;
  if (view.kind == ViewKind::kPatientLink) {
    attr.mode = S_IFLNK | 0777;
    attr.nlink = 1;
    attr.size = view.text.size();
  } else {
    attr.mode = kPatientDirMode;
    attr.nlink = 2;
  }
  return attr;
}

StatusOr<ViewEntry> ResolveInPatients(Archive& archive, const ViewDescriptor& parent,
                                      std::string_view name) {
  switch (parent.kind) {
    case ViewKind::kPatientsRoot: {
      MEDVFS_RETURN_IF_ERROR(archive.ListStudies(name).status());  // kNotFound: no such patient
      return MakeEntry(std::string(name), PatientDir(name));
    }
    case ViewKind::kPatient: {
      MEDVFS_ASSIGN_OR_RETURN(auto studies, archive.ListStudies(parent.text));
      if (std::find(studies.begin(), studies.end(), name) == studies.end()) return NotFound();
      return MakeEntry(std::string(name), StudyDir(parent.text, name));
    }
    case ViewKind::kStudy: {
      MEDVFS_ASSIGN_OR_RETURN(auto links, ListStudyLinks(archive, parent));
      for (ViewEntry& link : links) {
        if (link.name == name) return std::move(link);
      }
      return NotFound();
    }
    default:
      return Status(store::Code::kNotDirectory, "view node is not a directory");
  }
}

StatusOr<std::vector<ViewEntry>> ListPatients(Archive& archive, const ViewDescriptor& view) {
  std::vector<ViewEntry> out;
  switch (view.kind) {
    case ViewKind::kPatientsRoot: {
      MEDVFS_ASSIGN_OR_RETURN(auto patients, archive.ListPatients());
      for (const std::string& patient : patients) {
        out.push_back(MakeEntry(patient, PatientDir(patient)));
      }
      return out;
    }
    case ViewKind::kPatient: {
      MEDVFS_ASSIGN_OR_RETURN(auto studies, archive.ListStudies(view.text));
      for (const std::string& study : studies) {
        out.push_back(MakeEntry(study, StudyDir(view.text, study)));
      }
      return out;
    }
    case ViewKind::kStudy:
      return ListStudyLinks(archive, view);
    default:
      return Status(store::Code::kNotDirectory, "view node is not a directory");
  }
}

}  // namespace view_detail

std::vector<std::string> StudyLinkNames(const std::vector<store::IndexedFile>& files) {
  std::vector<std::string> names;
  std::map<std::string, int> count;
  for (const store::IndexedFile& file : files) {
    const size_t slash = file.path.rfind('/');
    names.push_back(slash == std::string::npos ? file.path : file.path.substr(slash + 1));
    ++count[names.back()];
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (count[names[i]] < 2) continue;
    const std::string_view ext = store::NameExtension(names[i]);
    std::string name = names[i].substr(0, names[i].size() - ext.size());
    name += '~';
    name += std::to_string(files[i].ino);
    name += ext;
    names[i] = std::move(name);
  }
  return names;
}

std::string PatientLinkTarget(std::string_view path) {
  std::string target = "../../../";
  target += path;
  return target;
}

}  // namespace medvfs::fs
