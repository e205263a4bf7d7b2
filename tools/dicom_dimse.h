// The DIMSE services of `medvfs receive` (dicom_dimse.cc): C-ECHO, and C-STORE with its
// bit-preserving InstanceWriter. Internal to tools/dicom_*.cc; includes DCMTK's dcmnet.
#pragma once

#include <cstdint>
#include <string>

#include "dcmtk/config/osconfig.h"  // first, as DCMTK requires

#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dimse.h"

#include "tools/dicom_receiver.h"

namespace medvfs::tools {

// What one association did, for its closing log line.
struct AssociationCounts {
  uint64_t stored = 0;
  uint64_t unchanged = 0;
  uint64_t refused = 0;
};

// Writes "medvfs receive: association N <text>" to stderr (AE titles, addresses, SOP class
// names and counts only: never patient data).
void LogAssociation(const PeerInfo& peer, const std::string& text);

// A name for logs: DCMTK's name of a UID, or `unknown`.
std::string UidName(const char* uid, const char* unknown = "unknown SOP class");

// Answers a C-ECHO-RQ with success.
OFCondition AnswerEcho(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                       T_DIMSE_C_EchoRQ* request);

// What a C-STORE needs of the association's settings.
struct StoreContext {
  InstanceSink& sink;
  const store::PathTemplate& path_template;
  const PeerInfo& peer;
  uint32_t idle_timeout_s = 60;
};

// Receives the data set of a C-STORE-RQ, stores it through the sink (or refuses it, with the
// DIMSE status that says why), logs the outcome and answers the request. A bad condition means
// the association failed (it is then to be aborted); a refused instance is no failure.
OFCondition AnswerStore(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                        const T_DIMSE_C_StoreRQ& request, const StoreContext& context,
                        AssociationCounts* counts);

}  // namespace medvfs::tools
