// The DIMSE services of `medvfs receive` (see dicom_dimse.h): C-ECHO, and C-STORE.
//
// Bit preservation: a C-STORE's data set is streamed by DIMSE_receiveDataSetInFile into an
// InstanceWriter (a DcmConsumer) exactly as the PDVs carry it, never parsed and re-encoded.
// The writer prefixes the File Meta Information the store writes for the negotiated transfer
// syntax (store::Part10Header), keeps the head of the file in memory (up to the Pixel Data
// element, at most 64 MiB) to check it with store::ParseDicom and to expand the path
// template, and streams the rest to the sink.
#include "tools/dicom_dimse.h"

#include <string.h>  // explicit_bzero

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string_view>
#include <utility>

#include "dcmtk/dcmdata/dcostrma.h"
#include "dcmtk/dcmdata/dcuid.h"

namespace medvfs::tools {
namespace {

using store::Status;
using store::StatusOr;

constexpr uint16_t kStatusOutOfResources = STATUS_STORE_Refused_OutOfResources;
constexpr uint16_t kStatusDoesNotMatch = STATUS_STORE_Error_DataSetDoesNotMatchSOPClass;
constexpr uint16_t kStatusCannotUnderstand = STATUS_STORE_Error_CannotUnderstand;

// The head is first parsed at this size (or at the end of a smaller data set), then at every
// doubling up to store::kMaxDicomHeaderBytes: a parse needs the bytes up to Pixel Data.
constexpr size_t kFirstParseBytes = 8u << 20;

// What the C-STORE-RQ and its presentation context say about an instance.
struct InstanceRequest {
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string transfer_syntax_uid;
};

struct InstanceOutcome {
  uint16_t status = 0;  // the DIMSE status to answer
  std::string reason;   // why it was refused
  StoredInstance stored;
};

// A UID as sent: DIMSE fields may be padded with a space or NUL.
std::string TrimUid(const char* uid) {
  std::string out(uid);
  while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) out.pop_back();
  return out;
}

// The File Meta Information of an instance, as storescp --bit-preserving writes it.
store::Part10Meta MetaOf(const InstanceRequest& request, const std::string& source_aet) {
  store::Part10Meta meta;
  meta.sop_class_uid = request.sop_class_uid;
  meta.sop_instance_uid = request.sop_instance_uid;
  meta.transfer_syntax_uid = request.transfer_syntax_uid;
  meta.implementation_version = "MEDVFS_" MEDVFS_VERSION;
  meta.source_aet = source_aet;
  return meta;
}

// Receives one data set from DIMSE (a DcmConsumer) and stores it through the sink. It never
// reports an error to DCMTK: a refused instance is drained to its end and discarded, so that
// the association survives and the SCU gets a failure status for that instance only.
class InstanceWriter final : public DcmConsumer {
 public:
  InstanceWriter(InstanceSink& sink, const store::PathTemplate& path_template, const PeerInfo& peer,
                 InstanceRequest request)
      : sink_(sink), template_(path_template), peer_(peer), request_(std::move(request)) {
    store::StatusOr<std::string> header = store::Part10Header(MetaOf(request_, peer.calling_aet));
    if (!header.ok()) {
      Refuse(kStatusOutOfResources, "cannot write the meta header: " + header.status().ToString());
      return;
    }
    head_ = std::move(header).value();
    meta_size_ = head_.size();
  }
  ~InstanceWriter() override { Wipe(); }
  InstanceWriter(const InstanceWriter&) = delete;
  InstanceWriter& operator=(const InstanceWriter&) = delete;

  OFBool good() const override { return OFTrue; }
  OFCondition status() const override { return EC_Normal; }
  OFBool isFlushed() const override { return OFTrue; }
  offile_off_t avail() const override { return 1 << 30; }
  offile_off_t write(const void* buf, offile_off_t buflen) override {
    Consume(std::string_view(static_cast<const char*>(buf), static_cast<size_t>(buflen)));
    return buflen;
  }
  void flush() override {}

  // Refuses the instance (the first reason counts); the rest of the data set is discarded.
  void Refuse(uint16_t status, std::string reason) {
    if (refused_ == 0) {
      refused_ = status;
      reason_ = std::move(reason);
    }
    pending_.reset();  // removes the temporary file: no file, no version
    Wipe();
    sink_.RecordRefusal(Refusal{peer_, path_, status, reason_});
  }

  // After the whole data set arrived: checks it and commits it.
  InstanceOutcome Finish() {
    if (refused_ == 0) {
      auto tags = store::ParseDicom(head_, meta_size_ + data_bytes_);
      if (!tags.ok()) {
        Refuse(kStatusCannotUnderstand, "not a DICOM data set: " + tags.status().message());
      } else if (CheckUids(*tags) && (pending_ != nullptr || Begin(*tags))) {
        Commit();
      }
    }
    return InstanceOutcome{refused_, reason_, stored_};
  }

  uint64_t bytes() const { return data_bytes_; }

 private:
  void Consume(std::string_view data) {
    data_bytes_ += data.size();
    if (refused_ != 0) return;
    if (pending_ != nullptr) {
      store::Status s = pending_->Append(data);
      if (!s.ok()) Refuse(kStatusOutOfResources, "cannot write: " + s.ToString());
      return;
    }
    head_.append(data);
    if (head_.size() >= next_parse_) StartStreaming();
  }

  // A large data set goes to its temporary file as soon as its head says where it belongs,
  // so memory stays bounded; the head is kept for the final check.
  void StartStreaming() {
    auto tags = store::ParseDicom(head_);
    if (!tags.ok()) {
      if (head_.size() >= store::kMaxDicomHeaderBytes) {
        Refuse(kStatusCannotUnderstand, "no DICOM header within the first 64 MiB");
      } else {
        next_parse_ = std::min(head_.size() * 2, store::kMaxDicomHeaderBytes);
      }
      return;
    }
    if (!CheckUids(*tags) || !Begin(*tags)) return;
    store::Status s = pending_->Append(head_);
    if (!s.ok()) Refuse(kStatusOutOfResources, "cannot write: " + s.ToString());
    head_written_ = true;
  }

  bool CheckUids(const store::DicomTags& tags) {
    const store::DicomElement* sop_class = tags.Find("SOPClassUID");
    const store::DicomElement* sop_instance = tags.Find("SOPInstanceUID");
    if (sop_class == nullptr || sop_instance == nullptr || sop_class->value.empty() ||
        sop_instance->value.empty()) {
      Refuse(kStatusCannotUnderstand, "the data set has no SOP Class or SOP Instance UID");
      return false;
    }
    if (sop_class->value != request_.sop_class_uid ||
        sop_instance->value != request_.sop_instance_uid) {
      Refuse(kStatusDoesNotMatch, "the SOP Class or Instance UID differs from the request");
      return false;
    }
    return true;
  }

  bool Begin(const store::DicomTags& tags) {
    const std::vector<std::string> components = template_.Expand(tags);
    path_.clear();
    for (const std::string& component : components) path_ += "/" + component;
    auto pending = sink_.Begin(components, peer_);
    if (!pending.ok()) {
      Refuse(kStatusOutOfResources, "cannot create the file: " + pending.status().ToString());
      return false;
    }
    pending_ = std::move(pending).value();
    return true;
  }

  void Commit() {
    if (!head_written_) {
      // Small data sets are written in one go, once checked.
      store::Status s = pending_->Append(head_);
      if (!s.ok()) {
        Refuse(kStatusOutOfResources, "cannot write: " + s.ToString());
        return;
      }
    }
    auto stored = pending_->Commit();
    pending_.reset();
    if (!stored.ok()) {
      Refuse(kStatusOutOfResources, "cannot store: " + stored.status().ToString());
      return;
    }
    stored_ = *stored;
    sink_.RecordStored(peer_, path_, stored_, UidName(request_.sop_class_uid.c_str()));
  }

  void Wipe() {
    explicit_bzero(head_.data(), head_.size());
    head_.clear();
    head_.shrink_to_fit();
  }

  InstanceSink& sink_;
  const store::PathTemplate& template_;
  const PeerInfo& peer_;
  const InstanceRequest request_;
  std::string head_;  // the meta header and the first bytes of the data set
  size_t meta_size_ = 0;
  uint64_t data_bytes_ = 0;
  size_t next_parse_ = kFirstParseBytes;
  std::unique_ptr<PendingInstance> pending_;
  bool head_written_ = false;  // head_ went to pending_ (large data sets)
  std::string path_;
  uint16_t refused_ = 0;
  std::string reason_;
  StoredInstance stored_;
};

// The DcmOutputStream DIMSE_receiveDataSetInFile writes to: straight into an InstanceWriter.
class InstanceStream final : public DcmOutputStream {
 public:
  explicit InstanceStream(InstanceWriter* writer) : DcmOutputStream(writer) {}
};

}  // namespace

void LogAssociation(const PeerInfo& peer, const std::string& text) {
  std::cerr << "medvfs receive: association " << peer.association << " " << text << std::endl;
}

std::string UidName(const char* uid, const char* unknown) { return dcmFindNameOfUID(uid, unknown); }

OFCondition AnswerEcho(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                       T_DIMSE_C_EchoRQ* request) {
  return DIMSE_sendEchoResponse(assoc, pres_id, request, STATUS_Success, nullptr);
}

OFCondition AnswerStore(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                        const T_DIMSE_C_StoreRQ& request, const StoreContext& context,
                        AssociationCounts* counts) {
  T_ASC_PresentationContext pc{};
  OFCondition cond = ASC_findAcceptedPresentationContext(assoc->params, pres_id, &pc);
  if (cond.bad()) return cond;
  InstanceRequest instance;
  instance.sop_class_uid = TrimUid(request.AffectedSOPClassUID);
  instance.sop_instance_uid = TrimUid(request.AffectedSOPInstanceUID);
  instance.transfer_syntax_uid = TrimUid(pc.acceptedTransferSyntax);
  InstanceWriter writer(context.sink, context.path_template, context.peer, instance);
  InstanceStream stream(&writer);
  T_ASC_PresentationContextID data_pres_id = 0;
  cond =
      DIMSE_receiveDataSetInFile(assoc, DIMSE_NONBLOCKING, static_cast<int>(context.idle_timeout_s),
                                 &data_pres_id, &stream, nullptr, nullptr);
  if (cond.bad()) return cond;  // nothing is stored: the writer's pending file goes away
  if (data_pres_id != pres_id) writer.Refuse(kStatusCannotUnderstand, "context mismatch");
  const InstanceOutcome outcome = writer.Finish();
  const std::string what = UidName(instance.sop_class_uid.c_str()) + " (" +
                           UidName(pc.acceptedTransferSyntax, "?") + ", " +
                           std::to_string(writer.bytes()) + " bytes)";
  if (outcome.status == 0) {
    ++(outcome.stored.unchanged ? counts->unchanged : counts->stored);
    LogAssociation(
        context.peer,
        std::string(outcome.stored.unchanged ? "unchanged " : "stored ") + what +
            (outcome.stored.version ? ", version " + std::to_string(outcome.stored.version) : ""));
  } else {
    ++counts->refused;
    char hex[8];
    std::snprintf(hex, sizeof(hex), "%04X", outcome.status);
    LogAssociation(context.peer,
                   "refused " + what + " with status 0x" + hex + ": " + outcome.reason);
  }
  T_DIMSE_C_StoreRSP response{};
  response.MessageIDBeingRespondedTo = request.MessageID;
  OFStandard::strlcpy(response.AffectedSOPClassUID, request.AffectedSOPClassUID,
                      sizeof(response.AffectedSOPClassUID));
  OFStandard::strlcpy(response.AffectedSOPInstanceUID, request.AffectedSOPInstanceUID,
                      sizeof(response.AffectedSOPInstanceUID));
  response.DataSetType = DIMSE_DATASET_NULL;
  response.DimseStatus = outcome.status;
  response.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
  T_DIMSE_C_StoreRQ request_copy = request;
  return DIMSE_sendStoreResponse(assoc, pres_id, &request_copy, &response, nullptr);
}

}  // namespace medvfs::tools
