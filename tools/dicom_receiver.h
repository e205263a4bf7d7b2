// The DICOM C-STORE SCP behind `medvfs receive` (see man/medvfs-receive.1).
//
// The receiver listens on one TCP address, negotiates associations (C-ECHO and the storage
// SOP classes of dicom_receiver.cc, with their uncompressed and compressed transfer syntaxes),
// and stores each received instance bit-preserving: the stored file is a File Meta Information
// header written for the negotiated transfer syntax, followed by the data set bytes exactly as
// they came off the wire. Where a file goes is decided by a path template over the instance's
// top-level tags; how it is written (archive API or a mount) by an InstanceSink. The DICOM file
// logic (the meta header, path templates, parsing) is the store's (store/dicom_files.h).
//
// DCMTK's dcmnet is used only in dicom_receiver.cc (associations) and dicom_dimse.cc (C-ECHO
// and C-STORE): this header shows no DCMTK type.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/dicom_files.h"
#include "store/status.h"

namespace medvfs::tools {

// Who sent an instance (no patient data: AE titles and addresses only).
struct PeerInfo {
  std::string calling_aet;
  std::string host;          // the peer's IPv4 address
  uint64_t association = 0;  // 1, 2, 3 ... in the order accepted
};

// What became of a stored instance.
struct StoredInstance {
  uint64_t version = 0;    // the target's current version after the save (0: unknown)
  bool unchanged = false;  // identical to the current version: no version was added
};

// An instance being written under a temporary name beside its target. Destroying it before
// Commit() removes the temporary file without leaving a trace (no file, no version).
class PendingInstance {
 public:
  virtual ~PendingInstance() = default;
  // Appends bytes to the temporary file.
  virtual store::Status Append(std::string_view bytes) = 0;
  // Makes the written bytes the target's content (a rename over the target), durably.
  virtual store::StatusOr<StoredInstance> Commit() = 0;
};

// A refused instance or association, for the audit log.
struct Refusal {
  PeerInfo peer;
  std::string path;     // the target path from the root ("/a/b.dcm"), empty if not known
  uint16_t status = 0;  // the DIMSE status sent (0 for a rejected association)
  std::string reason;   // short, without patient data
};

// Where received instances go: an open archive or a mounted one. Called from several
// association threads at once.
class InstanceSink {
 public:
  virtual ~InstanceSink() = default;
  // Creates the missing directories of `components` (the last one is the file name) and a
  // temporary file in the target directory.
  virtual store::StatusOr<std::unique_ptr<PendingInstance>> Begin(
      const std::vector<std::string>& components, const PeerInfo& peer) = 0;
  // Records that an instance was stored (`path` from the root, with a leading '/').
  virtual void RecordStored(const PeerInfo& peer, const std::string& path,
                            const StoredInstance& stored, std::string_view detail) = 0;
  // Records a refused instance or a rejected association.
  virtual void RecordRefusal(const Refusal& refusal) = 0;
};

// --- The receiver -----------------------------------------------------------------------------

struct ReceiverOptions {
  std::string aet;                         // our AE title; the called AE title must equal it
  std::string bind_address = "127.0.0.1";  // IPv4 address or host name
  uint16_t port = 0;                       // 0: any free port (see on_listening)
  std::vector<std::string> allowed_aets;   // empty: any calling AE title
  std::vector<std::string> allowed_hosts;  // names or IPv4 addresses; empty: any host
  store::PathTemplate path_template;
  uint32_t max_associations = 8;  // associations served at once; more are rejected (transient)
  uint32_t idle_timeout_s = 60;   // an association silent this long is aborted
};

// Runs the SCP until `stop_fd` becomes readable (a pipe the signal handling writes to), then
// stops accepting, lets each association finish the instance it is receiving, aborts the
// associations and waits for their threads. `on_listening` is called once with the bound port.
// Fails (kInvalid, kIoError...) when the address cannot be bound or the network not set up.
store::Status RunReceiver(const ReceiverOptions& options, InstanceSink& sink, int stop_fd,
                          const std::function<void(uint16_t port)>& on_listening);

}  // namespace medvfs::tools
