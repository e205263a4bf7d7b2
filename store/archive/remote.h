// The S3 tier: what an archive keeps in a bucket, and the pieces of it that the open of an
// archive needs (archive_open.cc). Internal to store/. See DESIGN.md section 8 and
// man/medvfs-format.5, "S3 remotes".
//
// Layout under s3://BUCKET/PREFIX:
//   medvfs-remote                "medvfs-remote 1\narchive HEX\nkeyslot LENGTH\n" and the key
//                                slot's bytes (wrapped by the passphrase, as in the archive)
//   packs/NNNNNNNNNNNNNNNN       a sealed pack, its bytes as they are in packs/ (hex number)
//   records/HHHH...              one file of a snapshot's records (a RocksDB backup made by
//                                KvStore::CreateBackup), sealed with the remote subkey of the
//                                data key, the object's name as additional data; the name is
//                                an HMAC of the file's path and SHA-256 (reveals nothing)
//   snapshots/NNNNNNNNNNNNNNNNNNNN  a snapshot: which record files and packs (with sizes and
//                                SHA-256) make up the archive at one moment, JSON, sealed as
//                                the record files are
// Objects are only ever added; what no kept snapshot needs any more gets a delete marker (the
// bucket's versioning and lifecycle rules decide when the old version goes). A snapshot is
// uploaded only after every object it names, so the newest snapshot in the bucket always
// opens into a complete archive.
//
// Local state, in the archive directory:
//   remotes/NAME/config.json     the remote's location
//   remotes/NAME/state.json      what is in the bucket: the durable queue (sealed packs not in
//                                the state are still to upload), snapshots, Object Lock state
//   remotes/NAME/records/        the BackupEngine directory the snapshots are made in
//   remote-packs.json            in a remote mount's mirror: the packs of its snapshot
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "store/archive.h"
#include "store/engine/remote_packs.h"
#include "store/s3/s3_client.h"
#include "store/status.h"

namespace medvfs::store {

// The client for a remote and its parsed URL (credentials from the environment).
StatusOr<std::shared_ptr<S3Client>> ConnectRemote(const RemoteLocation& location, S3Url* url);

// The RemotePacks of ArchiveOptions::remote_packs: the bucket's packs/ through a block cache.
StatusOr<std::shared_ptr<RemotePacks>> OpenRemotePacks(const RemotePackReading& reading);

// The packs of the archive at `dir` that are in a bucket and may be missing from its packs/
// directory (pack -> size): those of a mirror's snapshot and those its remotes hold.
std::map<uint64_t, uint64_t> RemotePackSizes(const std::filesystem::path& dir);

// The bucket an archive at `dir` reads its evicted packs from (ArchiveOptions::local_packs):
// the remote whose state says it holds packs no longer on the local disk, or, with
// local_packs > 0, the first remote. None when neither.
std::optional<RemotePackReading> CapacityTierReading(const std::filesystem::path& dir,
                                                     uint32_t local_packs, uint64_t cache_bytes);

}  // namespace medvfs::store
