// The C-STORE SCP of `medvfs receive`: listening, accepting and negotiating associations, and
// serving each one's DIMSE commands (answered by dicom_dimse.cc).
//
// Threads: the caller's thread accepts TCP connections and reads each A-ASSOCIATE-RQ (DCMTK
// takes an accepted socket through the process-wide dcmExternalSocketHandle, so only this one
// thread may call ASC_receiveAssociation); each association is then negotiated and served on a
// thread of its own, at most ReceiverOptions::max_associations at once.
#include "tools/dicom_receiver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <mutex>
#include <set>
#include <thread>

#include "dcmtk/config/osconfig.h"  // first, as DCMTK requires

#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/dcmnet/dul.h"
#include "dcmtk/oflog/oflog.h"

#include "tools/dicom_dimse.h"

namespace medvfs::tools {
namespace {

using store::Status;
using store::StatusOr;

// What the SCP accepts.
//
// The storage SOP classes are the ones modalities, PACS and viewers commonly send: the image
// classes of CT, MR, CR, DX, MG, intra-oral X-ray, US, NM, PET, XA, RF, secondary capture, VL
// photography and endoscopy, breast tomosynthesis and the enhanced CT/MR/PET/XA/RF forms;
// RT objects; structured reports (basic, enhanced, comprehensive, 3D, dose); key objects,
// presentation states, segmentations, registrations, encapsulated PDF/CDA, raw data and ECG.
// The list is kept short on purpose: an SCU proposing every class we accept, each with its
// own contexts for a few transfer syntaxes, must stay under the 128 presentation contexts an
// association can carry; a class an SCU needs beyond these is refused per context, visibly.
const char* const kAbstractSyntaxes[] = {
    UID_VerificationSOPClass,
    UID_CTImageStorage,
    UID_EnhancedCTImageStorage,
    UID_MRImageStorage,
    UID_EnhancedMRImageStorage,
    UID_MRSpectroscopyStorage,
    UID_ComputedRadiographyImageStorage,
    UID_DigitalXRayImageStorageForPresentation,
    UID_DigitalXRayImageStorageForProcessing,
    UID_DigitalMammographyXRayImageStorageForPresentation,
    UID_DigitalMammographyXRayImageStorageForProcessing,
    UID_DigitalIntraOralXRayImageStorageForPresentation,
    UID_BreastTomosynthesisImageStorage,
    UID_UltrasoundImageStorage,
    UID_UltrasoundMultiframeImageStorage,
    UID_RETIRED_UltrasoundImageStorage,
    UID_RETIRED_UltrasoundMultiframeImageStorage,
    UID_NuclearMedicineImageStorage,
    UID_PositronEmissionTomographyImageStorage,
    UID_EnhancedPETImageStorage,
    UID_XRayAngiographicImageStorage,
    UID_EnhancedXAImageStorage,
    UID_XRayRadiofluoroscopicImageStorage,
    UID_EnhancedXRFImageStorage,
    UID_SecondaryCaptureImageStorage,
    UID_MultiframeSingleBitSecondaryCaptureImageStorage,
    UID_MultiframeGrayscaleByteSecondaryCaptureImageStorage,
    UID_MultiframeGrayscaleWordSecondaryCaptureImageStorage,
    UID_MultiframeTrueColorSecondaryCaptureImageStorage,
    UID_VLPhotographicImageStorage,
    UID_VLEndoscopicImageStorage,
    UID_RTImageStorage,
    UID_RTDoseStorage,
    UID_RTStructureSetStorage,
    UID_RTPlanStorage,
    UID_RTIonPlanStorage,
    UID_RTBeamsTreatmentRecordStorage,
    UID_BasicTextSRStorage,
    UID_EnhancedSRStorage,
    UID_ComprehensiveSRStorage,
    UID_Comprehensive3DSRStorage,
    UID_XRayRadiationDoseSRStorage,
    UID_KeyObjectSelectionDocumentStorage,
    UID_GrayscaleSoftcopyPresentationStateStorage,
    UID_SegmentationStorage,
    UID_SpatialRegistrationStorage,
    UID_EncapsulatedPDFStorage,
    UID_EncapsulatedCDAStorage,
    UID_RawDataStorage,
    UID_TwelveLeadECGWaveformStorage,
};

// The transfer syntaxes: every uncompressed one, deflate, and the lossless and lossy JPEG,
// JPEG-LS, JPEG 2000 and RLE syntaxes in clinical use. Video (MPEG, HEVC) is left out: such
// instances are large and rare in the flows medvfs serves.
const char* const kTransferSyntaxes[] = {
    UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
    UID_BigEndianExplicitTransferSyntax,    UID_DeflatedExplicitVRLittleEndianTransferSyntax,
    UID_JPEGProcess1TransferSyntax,         UID_JPEGProcess2_4TransferSyntax,
    UID_JPEGProcess14TransferSyntax,        UID_JPEGProcess14SV1TransferSyntax,
    UID_JPEGLSLosslessTransferSyntax,       UID_JPEGLSLossyTransferSyntax,
    UID_JPEG2000LosslessOnlyTransferSyntax, UID_JPEG2000TransferSyntax,
    UID_RLELosslessTransferSyntax,
};

template <size_t N>
bool Contains(const char* const (&list)[N], std::string_view uid) {
  for (const char* item : list) {
    if (uid == item) return true;
  }
  return false;
}

// Accepts each proposed context whose abstract syntax we know, with the first transfer syntax
// the SCU proposed that we accept: SCUs list the syntax their file is in first, so this is
// the choice that lets them send the instance unchanged (our own preference order would
// make an SCU holding a JPEG file decompress it, or one holding a raw file compress it).
// Returns the number of contexts accepted.
int AcceptContexts(T_ASC_Parameters* params) {
  int accepted = 0;
  const int count = ASC_countPresentationContexts(params);
  for (int i = 0; i < count; ++i) {
    T_ASC_PresentationContext pc{};
    if (ASC_getPresentationContext(params, i, &pc).bad()) continue;
    if (!Contains(kAbstractSyntaxes, pc.abstractSyntax)) {
      (void)ASC_refusePresentationContext(params, pc.presentationContextID,
                                          ASC_P_ABSTRACTSYNTAXNOTSUPPORTED);
      continue;
    }
    const char* chosen = nullptr;
    for (int t = 0; t < pc.transferSyntaxCount && chosen == nullptr; ++t) {
      if (Contains(kTransferSyntaxes, pc.proposedTransferSyntaxes[t])) {
        chosen = pc.proposedTransferSyntaxes[t];
      }
    }
    if (chosen == nullptr) {
      (void)ASC_refusePresentationContext(params, pc.presentationContextID,
                                          ASC_P_TRANSFERSYNTAXESNOTSUPPORTED);
      continue;
    }
    // The SCU role only: we never send C-STOREs back on this association.
    if (ASC_acceptPresentationContext(params, pc.presentationContextID, chosen).good()) {
      ++accepted;
    }
  }
  return accepted;
}

// A name for logs: DCMTK's name of a UID, or "unknown SOP class".

// --- Listening --------------------------------------------------------------------------------

StatusOr<in_addr> ResolveIpv4(const std::string& name) {
  in_addr address{};
  if (inet_pton(AF_INET, name.c_str(), &address) == 1) return address;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(name.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return Status::Invalid("cannot resolve '" + name + "' to an IPv4 address");
  }
  address = reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr;
  freeaddrinfo(found);
  return address;
}

// A listening TCP socket on address:port; *bound_port gets the port (for port 0).
StatusOr<int> Listen(const std::string& address, uint16_t port, uint16_t* bound_port) {
  MEDVFS_ASSIGN_OR_RETURN(in_addr ip, ResolveIpv4(address));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr = ip;
  sa.sin_port = htons(port);
  socklen_t length = sizeof(sa);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &length) != 0) {
    const int err = errno;
    close(fd);
    return Status(
        err == EADDRINUSE ? store::Code::kBusy : store::Code::kIoError,
        "cannot listen on " + address + ":" + std::to_string(port) + ": " + std::strerror(err));
  }
  *bound_port = ntohs(sa.sin_port);
  return fd;
}

// --- Associations -----------------------------------------------------------------------------

// State shared by the accept loop and the association threads.
struct Shared {
  const ReceiverOptions& options;
  InstanceSink& sink;
  std::set<uint32_t> allowed_hosts;  // IPv4 addresses in network order; empty: any
  std::atomic<bool> stopping{false};
  std::mutex mu;  // guards `active`; a leaf lock
  uint32_t active = 0;
};

// Why an association is rejected, or "" to accept it.
std::string RejectReason(const Shared& shared, T_ASC_Parameters* params,
                         T_ASC_RejectParameters* rej, const PeerInfo& peer) {
  rej->result = ASC_RESULT_REJECTEDPERMANENT;
  rej->source = ASC_SOURCE_SERVICEUSER;
  char called[64] = {};
  char calling[64] = {};
  (void)ASC_getAPTitles(params, calling, sizeof(calling), called, sizeof(called), nullptr, 0);
  char context[128] = {};
  (void)ASC_getApplicationContextName(params, context, sizeof(context));
  if (std::string_view(context) != UID_StandardApplicationContext) {
    rej->reason = ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED;
    return "unknown application context";
  }
  if (called != shared.options.aet) {
    rej->reason = ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED;
    return "called AE title is not ours";
  }
  const auto& aets = shared.options.allowed_aets;
  if (!aets.empty() && std::find(aets.begin(), aets.end(), peer.calling_aet) == aets.end()) {
    rej->reason = ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED;
    return "calling AE title not allowed";
  }
  in_addr ip{};
  if (!shared.allowed_hosts.empty() && (inet_pton(AF_INET, peer.host.c_str(), &ip) != 1 ||
                                        !shared.allowed_hosts.contains(ip.s_addr))) {
    rej->reason = ASC_REASON_SU_NOREASON;
    return "host not allowed";
  }
  return "";
}

class AssociationServer {
 public:
  AssociationServer(Shared& shared, T_ASC_Association* assoc, PeerInfo peer)
      : shared_(shared), assoc_(assoc), peer_(std::move(peer)) {}
  ~AssociationServer() {
    (void)ASC_dropSCPAssociation(assoc_);
    (void)ASC_destroyAssociation(&assoc_);
  }
  AssociationServer(const AssociationServer&) = delete;
  AssociationServer& operator=(const AssociationServer&) = delete;

  void Run() {
    T_ASC_RejectParameters rej{};
    const std::string reason = RejectReason(shared_, assoc_->params, &rej, peer_);
    if (!reason.empty()) {
      Reject(rej, reason);
      return;
    }
    const int contexts = AcceptContexts(assoc_->params);
    if (ASC_acknowledgeAssociation(assoc_).bad()) {
      Log("could not be acknowledged (the peer went away)");
      return;
    }
    Log("accepted from AE " + peer_.calling_aet + " at " + peer_.host + " (" +
        std::to_string(contexts) + " presentation contexts accepted)");
    const std::string end = ServeCommands();
    Log(end + ": " + std::to_string(counts_.stored) + " stored, " +
        std::to_string(counts_.unchanged) + " unchanged, " + std::to_string(counts_.refused) +
        " refused");
  }

 private:
  void Log(const std::string& text) const { LogAssociation(peer_, text); }

  void Reject(const T_ASC_RejectParameters& rej, const std::string& reason) {
    T_ASC_RejectParameters copy = rej;
    (void)ASC_rejectAssociation(assoc_, &copy);
    Log("from AE " + peer_.calling_aet + " at " + peer_.host + " rejected: " + reason);
    shared_.sink.RecordRefusal(Refusal{peer_, "", 0, "association rejected: " + reason});
  }

  // Serves DIMSE commands until release, abort, a network error, the idle timeout or a stop;
  // returns how the association ended.
  std::string ServeCommands() {
    uint32_t idle_s = 0;
    while (true) {
      T_ASC_PresentationContextID pres_id = 0;
      T_DIMSE_Message msg{};
      OFCondition cond =
          DIMSE_receiveCommand(assoc_, DIMSE_NONBLOCKING, 1, &pres_id, &msg, nullptr);
      if (cond == DIMSE_NODATAAVAILABLE) {
        if (shared_.stopping.load()) return Abort("aborted (medvfs receive is stopping)");
        if (++idle_s >= shared_.options.idle_timeout_s) return Abort("aborted (idle timeout)");
        continue;
      }
      idle_s = 0;
      if (cond == DUL_PEERREQUESTEDRELEASE) {
        (void)ASC_acknowledgeRelease(assoc_);
        return "released";
      }
      if (cond == DUL_PEERABORTEDASSOCIATION) return "aborted by the peer";
      if (cond.bad()) return Abort(std::string("aborted (") + cond.text() + ")");
      if (msg.CommandField == DIMSE_C_ECHO_RQ) {
        cond = AnswerEcho(assoc_, pres_id, &msg.msg.CEchoRQ);
      } else if (msg.CommandField == DIMSE_C_STORE_RQ) {
        const StoreContext context{shared_.sink, shared_.options.path_template, peer_,
                                   shared_.options.idle_timeout_s};
        cond = AnswerStore(assoc_, pres_id, msg.msg.CStoreRQ, context, &counts_);
      } else {
        return Abort("aborted (unsupported DIMSE command " +
                     std::to_string(static_cast<unsigned>(msg.CommandField)) + ")");
      }
      if (cond.bad()) return Abort(std::string("aborted (") + cond.text() + ")");
      if (shared_.stopping.load()) return Abort("aborted (medvfs receive is stopping)");
    }
  }

  std::string Abort(const std::string& why) {
    (void)ASC_abortAssociation(assoc_);
    return why;
  }

  Shared& shared_;
  T_ASC_Association* assoc_;
  const PeerInfo peer_;
  AssociationCounts counts_;
};

// --- Accepting --------------------------------------------------------------------------------

// Waits until `fd` is readable or `stop_fd` is; false on a stop or after `timeout_ms`.
bool WaitReadable(int fd, int stop_fd, int timeout_ms) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  while (true) {
    const int n = poll(fds, 2, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    return n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 &&
           (fds[1].revents & POLLIN) == 0;
  }
}

// Reads the A-ASSOCIATE-RQ of an accepted connection; null when it does not come.
T_ASC_Association* ReceiveAssociation(T_ASC_Network* net, int fd, int stop_fd) {
  // A peer that connects and stays silent must not hold up the accept loop for long.
  if (!WaitReadable(fd, stop_fd, 10000)) {
    close(fd);
    return nullptr;
  }
  T_ASC_Association* assoc = nullptr;
  dcmExternalSocketHandle.set(fd);
  OFCondition cond = ASC_receiveAssociation(net, &assoc, ASC_DEFAULTMAXPDU);
  dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
  if (cond.good()) return assoc;
  if (assoc != nullptr) {
    (void)ASC_dropSCPAssociation(assoc);
    (void)ASC_destroyAssociation(&assoc);
  }
  return nullptr;
}

// An association's thread; `done` is set when it may be joined without waiting.
struct Worker {
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> done;
};

// Joins the threads of the associations that ended (each holds its stack until joined).
void ReapWorkers(std::list<Worker>* workers) {
  for (auto it = workers->begin(); it != workers->end();) {
    if (!it->done->load()) {
      ++it;
      continue;
    }
    it->thread.join();
    it = workers->erase(it);
  }
}

// Runs one association on its own thread, or rejects it (transient) when the limit is reached.
void Dispatch(Shared& shared, T_ASC_Association* assoc, PeerInfo peer, std::list<Worker>* workers) {
  bool full = false;
  {
    std::lock_guard lock(shared.mu);
    full = shared.active >= shared.options.max_associations;
    if (!full) ++shared.active;
  }
  if (full) {
    T_ASC_RejectParameters rej{ASC_RESULT_REJECTEDTRANSIENT,
                               ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
                               ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED};
    (void)ASC_rejectAssociation(assoc, &rej);
    LogAssociation(peer, "rejected: too many associations at once");
    shared.sink.RecordRefusal(Refusal{peer, "", 0, "association rejected: too many at once"});
    (void)ASC_dropSCPAssociation(assoc);
    (void)ASC_destroyAssociation(&assoc);
    return;
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread thread([&shared, assoc, peer = std::move(peer), done]() mutable {
    AssociationServer(shared, assoc, std::move(peer)).Run();
    {
      std::lock_guard lock(shared.mu);
      --shared.active;
    }
    done->store(true);
  });
  workers->push_back(Worker{std::move(thread), std::move(done)});
}

void AcceptLoop(Shared& shared, T_ASC_Network* net, int listen_fd, int stop_fd) {
  std::list<Worker> workers;
  uint64_t next_association = 1;
  while (WaitReadable(listen_fd, stop_fd, -1)) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    T_ASC_Association* assoc = ReceiveAssociation(net, fd, stop_fd);
    if (assoc == nullptr) continue;
    PeerInfo peer;
    char calling[64] = {};
    (void)ASC_getAPTitles(assoc->params, calling, sizeof(calling), nullptr, 0, nullptr, 0);
    peer.calling_aet = calling;
    peer.host = assoc->params->DULparams.callingPresentationAddress;
    peer.association = next_association++;
    ReapWorkers(&workers);
    Dispatch(shared, assoc, std::move(peer), &workers);
  }
  shared.stopping.store(true);
  close(listen_fd);
  for (Worker& worker : workers) worker.thread.join();
}

}  // namespace

Status RunReceiver(const ReceiverOptions& options, InstanceSink& sink, int stop_fd,
                   const std::function<void(uint16_t port)>& on_listening) {
  OFLog::getLogger("dcmtk").setLogLevel(OFLogger::OFF_LOG_LEVEL);
  if (!dcmDataDict.isDictionaryLoaded()) return Status::IoError("DCMTK has no data dictionary");
  Shared shared{options, sink, {}, {}, {}, 0};
  for (const std::string& host : options.allowed_hosts) {
    MEDVFS_ASSIGN_OR_RETURN(in_addr ip, ResolveIpv4(host));
    shared.allowed_hosts.insert(ip.s_addr);
  }
  uint16_t port = 0;
  MEDVFS_ASSIGN_OR_RETURN(int listen_fd, Listen(options.bind_address, options.port, &port));
  // Peers are named by address: no reverse DNS lookups (they can stall for long).
  dcmDisableGethostbyaddr.set(OFTrue);
  // With an external socket set, DCMTK opens no listening socket of its own (which would bind
  // every interface): connections are accepted here, on the address the user chose.
  T_ASC_Network* net = nullptr;
  dcmExternalSocketHandle.set(listen_fd);
  OFCondition cond = ASC_initializeNetwork(NET_ACCEPTOR, 0, 30, &net);
  dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
  if (cond.bad()) {
    close(listen_fd);
    return Status::IoError(std::string("cannot set up the DICOM network: ") + cond.text());
  }
  on_listening(port);
  AcceptLoop(shared, net, listen_fd, stop_fd);
  (void)ASC_dropNetwork(&net);
  return Status::Ok();
}

}  // namespace medvfs::tools
