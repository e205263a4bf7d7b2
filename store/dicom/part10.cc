// The File Meta Information of a received data set (store/dicom_files.h), written by DCMTK.
#include "store/dicom_files.h"

#include <exception>
#include <vector>

#include "dcmtk/config/osconfig.h"  // first, as DCMTK requires

#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcostrmb.h"
#include "dcmtk/dcmdata/dcuid.h"

#include "store/dicom/dicom_detail.h"

namespace medvfs::store {
namespace {

// The SH value limit of ImplementationVersionName.
constexpr size_t kMaxShLength = 16;

Status Put(DcmMetaInfo* info, const DcmTagKey& tag, const std::string& value) {
  OFCondition cond =
      info->putAndInsertString(tag, value.c_str(), static_cast<Uint32>(value.size()));
  if (cond.bad())
    return Status::IoError(std::string("cannot build the meta header: ") + cond.text());
  return Status::Ok();
}

StatusOr<std::string> WriteHeader(const Part10Meta& meta) {
  MEDVFS_RETURN_IF_ERROR(dicom_detail::DcmtkReady());  // the dictionary gives each VR
  DcmMetaInfo info;
  const Uint8 version[2] = {0, 1};
  OFCondition cond = info.putAndInsertUint8Array(DCM_FileMetaInformationVersion, version, 2);
  if (cond.bad())
    return Status::IoError(std::string("cannot build the meta header: ") + cond.text());
  MEDVFS_RETURN_IF_ERROR(Put(&info, DCM_MediaStorageSOPClassUID, meta.sop_class_uid));
  MEDVFS_RETURN_IF_ERROR(Put(&info, DCM_MediaStorageSOPInstanceUID, meta.sop_instance_uid));
  MEDVFS_RETURN_IF_ERROR(Put(&info, DCM_TransferSyntaxUID, meta.transfer_syntax_uid));
  MEDVFS_RETURN_IF_ERROR(Put(&info, DCM_ImplementationClassUID, OFFIS_IMPLEMENTATION_CLASS_UID));
  if (!meta.implementation_version.empty()) {
    MEDVFS_RETURN_IF_ERROR(Put(&info, DCM_ImplementationVersionName,
                               meta.implementation_version.substr(0, kMaxShLength)));
  }
  if (!meta.source_aet.empty()) {
    MEDVFS_RETURN_IF_ERROR(Put(&info, DCM_SourceApplicationEntityTitle, meta.source_aet));
  }
  // (0002,0000) FileMetaInformationGroupLength, over the elements above.
  cond = info.computeGroupLengthAndPadding(EGL_withGL, EPD_noChange, EXS_LittleEndianExplicit,
                                           EET_ExplicitLength);
  if (cond.bad())
    return Status::IoError(std::string("cannot build the meta header: ") + cond.text());
  // DcmMetaInfo::write puts the preamble and "DICM" first; a full buffer is handed over and
  // the write resumed (EC_StreamNotifyClient), as DCMTK's own writers do.
  std::vector<char> buffer(4096);
  DcmOutputBufferStream stream(buffer.data(), static_cast<offile_off_t>(buffer.size()));
  std::string out;
  info.transferInit();
  do {
    cond = info.write(stream, EXS_LittleEndianExplicit, EET_ExplicitLength, nullptr);
    void* written = nullptr;
    offile_off_t length = 0;
    stream.flushBuffer(written, length);
    out.append(static_cast<const char*>(written), static_cast<size_t>(length));
  } while (cond == EC_StreamNotifyClient);
  info.transferEnd();
  if (cond.bad())
    return Status::IoError(std::string("cannot write the meta header: ") + cond.text());
  return out;
}

}  // namespace

StatusOr<std::string> Part10Header(const Part10Meta& meta) {
  try {
    return WriteHeader(meta);
  } catch (const std::exception&) {  // std::bad_alloc
    return Status::IoError("out of memory writing a meta header");
  }
}

}  // namespace medvfs::store
