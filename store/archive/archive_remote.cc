// The S3 tier (remote.h): connecting, the capacity tier's pack reads, adding and removing
// remotes, and replication rounds. What reads a bucket without a local archive is in
// remote_restore.cc; formats and local state in remote_format.cc.
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "store/archive/archive_impl.h"
#include "store/archive/remote.h"
#include "store/archive/remote_format.h"
#include "store/archive/remote_pack_cache.h"
#include "store/engine/pack_format.h"
#include "store/file_util.h"
#include "store/log.h"

namespace medvfs::store {

using namespace remote_tier;  // NOLINT(google-build-using-namespace): the tier's own helpers
namespace stdfs = std::filesystem;
using Json = nlohmann::json;

// Packs a replication round uploads at once (each in parts sent in parallel: S3Client).
constexpr size_t kPacksInFlight = 2;
// Multipart part size of a pack upload: each part in flight is held in memory, so the mount
// daemon holds at most kPacksInFlight x 4 (S3Config::max_connections) x 8 MiB for it.
constexpr uint64_t kPartBytes = uint64_t{8} << 20;

// --- Connecting ---

StatusOr<std::shared_ptr<S3Client>> ConnectRemote(const RemoteLocation& location, S3Url* url) {
  MEDVFS_ASSIGN_OR_RETURN(*url, ParseS3Url(location.url));
  if (location.endpoint.empty()) {
    return Status::Invalid("no S3 endpoint given (--endpoint, or AWS_ENDPOINT_URL)");
  }
  S3Config config;
  config.endpoint = location.endpoint;
  while (!config.endpoint.empty() && config.endpoint.back() == '/') config.endpoint.pop_back();
  config.region = location.region.empty() ? "us-east-1" : location.region;
  config.bucket = url->bucket;
  MEDVFS_ASSIGN_OR_RETURN(config.credentials, LoadS3Credentials());
  MEDVFS_ASSIGN_OR_RETURN(auto client, S3Client::Create(config));
  return std::shared_ptr<S3Client>(std::move(client));
}

StatusOr<std::shared_ptr<RemotePacks>> OpenRemotePacks(const RemotePackReading& reading) {
  S3Url url;
  MEDVFS_ASSIGN_OR_RETURN(std::shared_ptr<S3Client> client, ConnectRemote(reading.location, &url));
  RemotePackCacheOptions options;
  options.dir = reading.cache_dir;
  options.max_bytes = reading.cache_bytes;
  auto fetch_range = [client, url](uint64_t pack, uint64_t offset, uint64_t length,
                                   std::string* bytes) {
    return client->GetRange(ObjectKey(url, PackObjectName(pack)), offset, length, bytes);
  };
  auto fetch_size = [client, url](uint64_t pack) -> StatusOr<uint64_t> {
    MEDVFS_ASSIGN_OR_RETURN(S3ObjectInfo info, client->Head(ObjectKey(url, PackObjectName(pack))));
    return info.size;
  };
  MEDVFS_ASSIGN_OR_RETURN(auto cache, RemotePackCache::Open(options, fetch_range, fetch_size));
  return std::shared_ptr<RemotePacks>(std::move(cache));
}

std::map<uint64_t, uint64_t> RemotePackSizes(const stdfs::path& dir) {
  std::map<uint64_t, uint64_t> sizes;
  auto mirror = ReadWholeFile(dir / kMirrorPacksFile, kMaxSmallFile);
  if (mirror.ok()) {
    Json j = Json::parse(*mirror, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) {
      for (const auto& [pack, size] : j.items()) {
        if (size.is_number_unsigned()) sizes[std::stoull(pack)] = size.get<uint64_t>();
      }
    }
  }
  for (const std::string& name : RemoteNames(dir)) {
    auto st = LoadState(dir, name);
    if (!st.ok()) continue;
    for (const auto& [pack, o] : st->packs) sizes[pack] = o.size;
  }
  return sizes;
}

std::optional<RemotePackReading> CapacityTierReading(const stdfs::path& dir, uint32_t local_packs,
                                                     uint64_t cache_bytes) {
  std::optional<RemotePackReading> reading;
  for (const std::string& name : RemoteNames(dir)) {
    auto st = LoadState(dir, name);
    auto config = LoadConfig(dir, name);
    if (!st.ok() || !config.ok()) continue;
    if (st->evicted.empty() && (local_packs == 0 || reading)) continue;
    reading = RemotePackReading{};
    reading->location = config->location;
    reading->cache_dir = RemoteDir(dir, name) / "cache";
    reading->cache_bytes = cache_bytes;
    if (!st->evicted.empty()) break;  // the remote that holds evicted packs wins
  }
  return reading;
}

// --- Remotes of an open archive ---

Status ArchiveImpl::AddRemote(const RemoteConfig& remote, const Caller& caller) {
  const std::string detail = "add " + remote.name + " " + remote.location.url;
  auto done = [&](const Status& status) {
    Audit(caller, AuditOp::kRemote, status, "/", 0, detail);
    kv_->SyncWal().IgnoreError();
    return status;
  };
  if (options_.no_writes || options_.read_only) {
    return Status::ReadOnly("the archive is open read-only");
  }
  if (!ValidRemoteName(remote.name)) {
    return Status::Invalid("a remote's name is 1 to 32 letters, digits, '-' or '_'");
  }
  std::lock_guard lock(remote_mu_);
  if (stdfs::exists(RemoteDir(dir_, remote.name) / "config.json")) {
    return done(Status::Exists("the archive already has a remote named " + remote.name));
  }
  S3Url url;
  auto client = ConnectRemote(remote.location, &url);
  if (!client.ok()) return done(client.status());
  // The bucket must exist and answer; Object Lock is noted for the rounds.
  auto locked = (*client)->ObjectLockEnabled();
  if (!locked.ok()) {
    if (locked.status().code() == Code::kNotFound) {
      return done(Status::NotFound("the bucket " + url.bucket + " does not exist"));
    }
    return done(locked.status());
  }
  const std::string id_hex = Hex(archive_id_);
  std::string marker_slot_sha;  // empty: the next round writes the marker again
  std::string marker;
  Status s = (*client)->Get(ObjectKey(url, kMarkerName), &marker);
  if (s.ok()) {
    std::string marked_id;
    std::string slot;
    if (Status decoded = DecodeMarker(marker, &marked_id, &slot); !decoded.ok()) {
      return done(decoded);
    }
    if (marked_id != id_hex) {
      return done(Status::Exists("s3://" + url.bucket + "/" + url.prefix +
                                 " holds another archive (id " + marked_id + ")"));
    }
  } else if (s.code() == Code::kNotFound) {
    auto slot = ReadWholeFile(dir_ / kKeySlotFileName, 1 << 16);
    if (!slot.ok()) return done(slot.status());
    auto put = (*client)->Put(ObjectKey(url, kMarkerName), EncodeMarker(id_hex, *slot));
    if (!put.ok()) return done(put.status());
    marker_slot_sha = Hex(Sha256Of(*slot));
  } else {
    return done(s);
  }
  std::error_code ec;
  stdfs::create_directories(RemoteDir(dir_, remote.name), ec);
  if (ec) return done(Status::IoError("creating the remote's directory: " + ec.message()));
  ::chmod(RemotesDir(dir_).c_str(), 0700);
  ::chmod(RemoteDir(dir_, remote.name).c_str(), 0700);
  RemoteState st;
  st.object_lock = *locked ? 1 : 0;
  st.key_slot_sha256 = marker_slot_sha;
  // A prefix that already holds snapshots of this archive (a remote removed and added again,
  // or an archive restored from it): new snapshots must sort after them, or readers, which
  // take the highest number, would go on reading the old ones.
  std::vector<S3ObjectInfo> snapshots;
  if (Status listed = (*client)->List(ObjectKey(url, kSnapshotsDir), &snapshots); !listed.ok()) {
    return done(listed);
  }
  for (const S3ObjectInfo& o : snapshots) {
    const std::string digits = o.key.substr(o.key.rfind('/') + 1);
    uint64_t seq = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), seq);
    st.next_seq = std::max(st.next_seq, seq + 1);
  }
  if (Status saved = SaveState(dir_, remote.name, st); !saved.ok()) return done(saved);
  RemoteConfig config = remote;
  config.location.url = url.ToString();
  if (Status saved =
          WriteFileDurably(RemoteDir(dir_, remote.name) / "config.json", EncodeConfig(config));
      !saved.ok()) {
    return done(saved);
  }
  remote_clients_[remote.name] = *client;
  return done(Status::Ok());
}

Status ArchiveImpl::RemoveRemote(const std::string& name, const Caller& caller) {
  if (options_.no_writes || options_.read_only) {
    return Status::ReadOnly("the archive is open read-only");
  }
  std::lock_guard lock(remote_mu_);
  Status s = ValidRemoteName(name) && stdfs::exists(RemoteDir(dir_, name) / "config.json")
                 ? Status::Ok()
                 : Status::NotFound("the archive has no remote named " + name);
  if (s.ok()) {
    auto st = LoadState(dir_, name);
    if (st.ok() && !st->evicted.empty()) {
      s = Status(Code::kBusy, "remote " + name + " holds the only copy of " +
                                  std::to_string(st->evicted.size()) +
                                  " packs (local_packs); keep it, or make a complete local "
                                  "copy first with medvfs restore-remote");
    }
  }
  if (s.ok()) {
    // config.json goes first: a remote without it is no remote, whatever else is left.
    std::error_code ec;
    stdfs::remove(RemoteDir(dir_, name) / "config.json", ec);
    SyncDirectoryQuietly(RemoteDir(dir_, name));
    stdfs::remove_all(RemoteDir(dir_, name), ec);
    remote_clients_.erase(name);
    std::lock_guard status_lock(remote_status_mu_);
    remote_dirty_since_s_.erase(name);
  }
  Audit(caller, AuditOp::kRemote, s, "/", 0, "remove " + name);
  kv_->SyncWal().IgnoreError();
  return s;
}

StatusOr<std::vector<RemoteStatus>> ArchiveImpl::ListRemotes() {
  std::vector<RemoteStatus> out;
  // The mount asks every few seconds: an archive without remotes costs one directory lookup.
  const std::vector<std::string> names = RemoteNames(dir_);
  if (names.empty()) return out;
  const std::map<uint64_t, PackRecord> records = chunks_->PackRecords();
  std::map<uint64_t, uint64_t> files;
  if (auto listed = chunks_->packs().ListFiles(); listed.ok()) files = *listed;
  const uint64_t kv_seq = kv_->LatestSequence();
  // Not under remote_mu_, which a round holds while it talks to the network: the state files
  // are replaced whole (WriteFileDurably), so a read sees one state or the next.
  std::map<std::string, int64_t> dirty_since;
  {
    std::lock_guard lock(remote_status_mu_);
    dirty_since = remote_dirty_since_s_;
  }
  for (const std::string& name : names) {
    MEDVFS_ASSIGN_OR_RETURN(RemoteConfig config, LoadConfig(dir_, name));
    MEDVFS_ASSIGN_OR_RETURN(RemoteState st, LoadState(dir_, name));
    RemoteStatus status;
    status.config = config;
    for (const auto& [pack, record] : records) {
      if (record.removed) continue;
      const bool uploaded = st.packs.contains(pack);
      if (record.sealed) {
        ++status.packs_local;
        if (uploaded) ++status.packs_uploaded;
      }
      if (!uploaded) {
        auto file = files.find(pack);
        status.lag_bytes += file != files.end() ? file->second : record.size;
      }
    }
    status.packs_evicted = st.evicted.size();
    if (!st.snapshots.empty()) {
      status.snapshot_seq = st.snapshots.back().seq;
      status.snapshot_time_s = st.snapshots.back().time_s;
    }
    if (kv_seq > st.kv_seq) {
      auto dirty = dirty_since.find(name);
      const int64_t since = dirty != dirty_since.end() && dirty->second > 0
                                ? dirty->second
                                : (st.snapshots.empty() ? NowSeconds() : status.snapshot_time_s);
      status.lag_seconds = std::max<int64_t>(0, NowSeconds() - since);
    }
    status.object_lock = st.object_lock == 1;
    status.last_error = st.last_error;
    status.last_error_time_s = st.last_error_time_s;
    out.push_back(std::move(status));
  }
  return out;
}

StatusOr<ReplicateResult> ArchiveImpl::Replicate(const std::string& name,
                                                 const ReplicateRequest& request) {
  if (options_.no_writes || options_.read_only) {
    return Status::ReadOnly("a read-only archive does not replicate");
  }
  std::lock_guard lock(remote_mu_);
  MEDVFS_ASSIGN_OR_RETURN(RemoteConfig config, LoadConfig(dir_, name));
  MEDVFS_ASSIGN_OR_RETURN(RemoteState st, LoadState(dir_, name));
  ReplicateResult result;
  const stdfs::path remote_dir = RemoteDir(dir_, name);
  auto cancelled = [&request] { return request.cancelled && request.cancelled(); };
  {
    const uint64_t kv_seq = kv_->LatestSequence();
    std::lock_guard status_lock(remote_status_mu_);
    int64_t& since = remote_dirty_since_s_[name];
    if (kv_seq > st.kv_seq && since == 0) since = NowSeconds();
  }

  // Everything below may fail on the network; the failure is kept in the state for stats.
  auto round = [&]() -> Status {
    S3Url url;
    std::shared_ptr<S3Client>& client = remote_clients_[name];
    if (!client) {
      MEDVFS_ASSIGN_OR_RETURN(client, ConnectRemote(config.location, &url));
    } else {
      MEDVFS_ASSIGN_OR_RETURN(url, ParseS3Url(config.location.url));
    }
    if (st.object_lock < 0) {
      MEDVFS_ASSIGN_OR_RETURN(bool locked, client->ObjectLockEnabled());
      st.object_lock = locked ? 1 : 0;
    }
    // The marker carries the key slot: after medvfs passwd, the bucket follows, so that the
    // passphrase of today opens it (the old one goes on opening the older snapshots' slot
    // only through the marker's old object versions).
    {
      MEDVFS_ASSIGN_OR_RETURN(std::string slot, ReadWholeFile(dir_ / kKeySlotFileName, 1 << 16));
      const std::string slot_sha = Hex(Sha256Of(slot));
      if (slot_sha != st.key_slot_sha256) {
        MEDVFS_RETURN_IF_ERROR(
            client->Put(ObjectKey(url, kMarkerName), EncodeMarker(Hex(archive_id_), slot))
                .status());
        st.key_slot_sha256 = slot_sha;
        MEDVFS_RETURN_IF_ERROR(SaveState(dir_, name, st));
      }
    }
    LockPolicy policy;
    if (st.object_lock == 1) {
      MEDVFS_ASSIGN_OR_RETURN(auto rules, ListRetention());
      MEDVFS_ASSIGN_OR_RETURN(auto holds, ListHolds());
      policy = PolicyOf(rules, holds);
    }
    // Uploads packs, kPacksInFlight at a time: while one pack's parts are read and hashed,
    // another's are on the wire (one at a time, the link sat idle a third of the time).
    // *gone: a pack's file had disappeared (garbage collection rewrote it meanwhile).
    std::mutex state_mu;  // st and result, shared by the upload threads
    auto upload_packs = [&](const std::vector<uint64_t>& packs, bool* gone) -> Status {
      *gone = false;
      size_t next = 0;
      Status first_error;
      auto worker = [&] {
        for (;;) {
          uint64_t pack = 0;
          {
            std::lock_guard state_lock(state_mu);
            if (next >= packs.size() || !first_error.ok()) return;
            if (cancelled()) {
              first_error = Status(Code::kBusy, "replication stopped");
              return;
            }
            pack = packs[next++];
          }
          const stdfs::path file = chunks_->packs().dir() / PackFileName(pack);
          struct stat sb {};
          if (::stat(file.c_str(), &sb) != 0) {
            std::lock_guard state_lock(state_mu);
            *gone = true;
            continue;
          }
          ObjectState o;
          o.uploaded_s = NowSeconds();
          const S3ObjectLock lock_for =
              st.object_lock == 1 ? policy.For(o.uploaded_s) : S3ObjectLock{};
          auto version =
              client->PutFile(ObjectKey(url, PackObjectName(pack)), file, lock_for, kPartBytes);
          std::lock_guard state_lock(state_mu);
          if (!version.ok()) {
            if (first_error.ok()) first_error = version.status();
            return;
          }
          o.version = std::move(version).value();
          o.size = static_cast<uint64_t>(sb.st_size);
          o.until_s = lock_for.mode != S3LockMode::kNone ? lock_for.retain_until_s : 0;
          o.hold = lock_for.legal_hold;
          st.packs[pack] = o;
          ++result.packs_uploaded;
          result.bytes_uploaded += o.size;
          // The durable queue: a pack is done once the state says so.
          if (Status saved = SaveState(dir_, name, st); !saved.ok()) {
            if (first_error.ok()) first_error = saved;
            return;
          }
        }
      };
      std::vector<std::thread> helpers;
      for (size_t i = 1; i < std::min(kPacksInFlight, packs.size()); ++i) {
        helpers.emplace_back(worker);
      }
      worker();
      for (std::thread& helper : helpers) helper.join();
      return first_error;
    };

    // 1. The sealed packs not in the bucket yet, oldest first.
    {
      std::vector<uint64_t> pending;
      for (const auto& [pack, record] : chunks_->PackRecords()) {
        if (record.sealed && !record.removed && !st.packs.contains(pack)) pending.push_back(pack);
      }
      bool gone = false;
      MEDVFS_RETURN_IF_ERROR(upload_packs(pending, &gone));
    }

    // 2. A snapshot of the records, when due.
    const uint64_t kv_seq_before = kv_->LatestSequence();
    const bool changed = kv_seq_before > st.kv_seq || st.snapshots.empty();
    const int64_t last_time = st.snapshots.empty() ? 0 : st.snapshots.back().time_s;
    if (request.force_snapshot ||
        (changed && NowSeconds() - last_time >= request.snapshot_interval_s)) {
      const stdfs::path staging = remote_dir / "records";
      Snapshot snapshot;
      snapshot.archive_id = Hex(archive_id_);
      snapshot.time_s = NowSeconds();
      uint64_t kv_seq_at_snapshot = 0;
      {
        // No garbage collection meanwhile: the records copied must find every pack they name.
        std::lock_guard gc_lock(gc_mu_);
        kv_seq_at_snapshot = kv_->LatestSequence();
        KvStore::BackupOptions backup_options;
        backup_options.keep = 1;
        backup_options.cancelled = request.cancelled;
        KvStore::BackupInfo info;
        MEDVFS_RETURN_IF_ERROR(kv_->CreateBackup(staging, backup_options, &info));
        snapshot.backup_id = info.id;
        // The packs taking appends are sealed, so that every pack the records name is
        // immutable (as a backup does: pack_backup.h); packs made after this are not named.
        MEDVFS_RETURN_IF_ERROR(chunks_->packs().SealAll());
        const uint64_t next_pack = chunks_->packs().NextPackNumber();
        MEDVFS_ASSIGN_OR_RETURN(auto files, chunks_->packs().ListFiles());
        const auto records = chunks_->PackRecords();
        for (const auto& [pack, size] : files) {
          auto record = records.find(pack);
          if (pack >= next_pack || (record != records.end() && record->second.removed)) continue;
          snapshot.packs[pack] = size;
        }
        // Evicted packs are in the bucket only; the records name them too.
        for (uint64_t pack : st.evicted) {
          auto record = records.find(pack);
          if (record != records.end() && !record->second.removed && st.packs.contains(pack)) {
            snapshot.packs[pack] = st.packs[pack].size;
          }
        }
      }
      {
        std::vector<uint64_t> pending;
        for (const auto& [pack, size] : snapshot.packs) {
          if (!st.packs.contains(pack)) pending.push_back(pack);
        }
        bool gone = false;
        MEDVFS_RETURN_IF_ERROR(upload_packs(pending, &gone));
        if (gone) {
          return Status(Code::kBusy,
                        "a pack was rewritten while the snapshot was made; the next round retries");
        }
      }
      // The record files, sealed; those already in the bucket are not sent again.
      for (const std::string& path : FilesBelow(staging)) {
        if (cancelled()) return Status(Code::kBusy, "replication stopped");
        MEDVFS_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(staging / path, SIZE_MAX / 2));
        SnapshotFile file;
        file.path = path;
        file.size = bytes.size();
        file.sha256 = Hex(Sha256Of(bytes));
        const auto mac = HmacSha256(remote_key_, "record file\n" + path + "\n" + file.sha256);
        file.object = kRecordsDir + Hex(std::span<const uint8_t>(mac.data(), 16));
        if (!st.records.contains(file.object)) {
          std::string sealed;
          MEDVFS_RETURN_IF_ERROR(Seal(remote_key_, file.object, bytes, &sealed));
          ObjectState o;
          o.uploaded_s = NowSeconds();
          const S3ObjectLock lock_for =
              st.object_lock == 1 ? policy.For(o.uploaded_s) : S3ObjectLock{};
          MEDVFS_ASSIGN_OR_RETURN(o.version,
                                  client->Put(ObjectKey(url, file.object), sealed, lock_for));
          o.size = sealed.size();
          o.until_s = lock_for.mode != S3LockMode::kNone ? lock_for.retain_until_s : 0;
          o.hold = lock_for.legal_hold;
          st.records[file.object] = o;
          result.bytes_uploaded += o.size;
        }
        snapshot.files.push_back(std::move(file));
      }
      // The snapshot itself, last.
      snapshot.seq = st.next_seq;
      const std::string snapshot_name = SnapshotObjectName(snapshot.seq);
      std::string sealed;
      MEDVFS_RETURN_IF_ERROR(Seal(remote_key_, snapshot_name, EncodeSnapshot(snapshot), &sealed));
      SnapshotState kept;
      kept.seq = snapshot.seq;
      kept.time_s = snapshot.time_s;
      kept.object.uploaded_s = NowSeconds();
      const S3ObjectLock lock_for =
          st.object_lock == 1 ? policy.For(kept.object.uploaded_s) : S3ObjectLock{};
      MEDVFS_ASSIGN_OR_RETURN(kept.object.version,
                              client->Put(ObjectKey(url, snapshot_name), sealed, lock_for));
      kept.object.size = sealed.size();
      kept.object.until_s = lock_for.mode != S3LockMode::kNone ? lock_for.retain_until_s : 0;
      kept.object.hold = lock_for.legal_hold;
      for (const auto& [pack, size] : snapshot.packs) kept.packs.insert(pack);
      for (const SnapshotFile& f : snapshot.files) kept.records.insert(f.object);
      st.snapshots.push_back(std::move(kept));
      st.next_seq = snapshot.seq + 1;
      st.kv_seq = kv_seq_at_snapshot;
      result.bytes_uploaded += sealed.size();
      result.snapshot_seq = snapshot.seq;
      {
        std::lock_guard status_lock(remote_status_mu_);
        remote_dirty_since_s_[name] = kv_->LatestSequence() > kv_seq_at_snapshot ? NowSeconds() : 0;
      }
      MEDVFS_RETURN_IF_ERROR(SaveState(dir_, name, st));

      // 3. What no kept snapshot needs gets a delete marker (the versions stay, under their
      // retention, until the bucket's lifecycle rules expire them).
      while (st.snapshots.size() > kKeptSnapshots) {
        const std::string old = SnapshotObjectName(st.snapshots.front().seq);
        MEDVFS_RETURN_IF_ERROR(client->Delete(ObjectKey(url, old)));
        ++result.delete_markers;
        st.snapshots.erase(st.snapshots.begin());
      }
      std::set<uint64_t> needed_packs;
      std::set<std::string> needed_records;
      for (const SnapshotState& s : st.snapshots) {
        needed_packs.insert(s.packs.begin(), s.packs.end());
        needed_records.insert(s.records.begin(), s.records.end());
      }
      const auto records = chunks_->PackRecords();
      for (auto it = st.packs.begin(); it != st.packs.end();) {
        auto record = records.find(it->first);
        const bool live = record != records.end() && !record->second.removed;
        if (live || needed_packs.contains(it->first)) {
          ++it;
          continue;
        }
        MEDVFS_RETURN_IF_ERROR(client->Delete(ObjectKey(url, PackObjectName(it->first))));
        ++result.delete_markers;
        st.evicted.erase(it->first);
        it = st.packs.erase(it);
      }
      for (auto it = st.records.begin(); it != st.records.end();) {
        if (needed_records.contains(it->first)) {
          ++it;
          continue;
        }
        MEDVFS_RETURN_IF_ERROR(client->Delete(ObjectKey(url, it->first)));
        ++result.delete_markers;
        it = st.records.erase(it);
      }
      MEDVFS_RETURN_IF_ERROR(SaveState(dir_, name, st));
    }

    // 4. Object Lock: rules lengthened or holds set since the objects were uploaded.
    if (st.object_lock == 1 && policy.Describe() != st.policy) {
      for (auto& [pack, o] : st.packs) {
        MEDVFS_RETURN_IF_ERROR(ApplyPolicy(*client, ObjectKey(url, PackObjectName(pack)), policy,
                                           &o, &result.locks_changed));
      }
      for (auto& [object, o] : st.records) {
        MEDVFS_RETURN_IF_ERROR(
            ApplyPolicy(*client, ObjectKey(url, object), policy, &o, &result.locks_changed));
      }
      for (SnapshotState& s : st.snapshots) {
        MEDVFS_RETURN_IF_ERROR(ApplyPolicy(*client, ObjectKey(url, SnapshotObjectName(s.seq)),
                                           policy, &s.object, &result.locks_changed));
      }
      st.policy = policy.Describe();
      MEDVFS_RETURN_IF_ERROR(SaveState(dir_, name, st));
    }

    // 5. The capacity tier: local copies of packs the bucket holds, oldest first, beyond
    // local_packs. Only with a reader for the bucket, so that reads find them there.
    if (options_.local_packs > 0 && chunks_->packs().remote() && options_.remote_packs &&
        options_.remote_packs->location.url == config.location.url) {
      MEDVFS_ASSIGN_OR_RETURN(auto files, chunks_->packs().ListFiles());
      const auto records = chunks_->PackRecords();
      std::vector<uint64_t> local;
      for (const auto& [pack, size] : files) {
        auto record = records.find(pack);
        if (record != records.end() && record->second.sealed && !record->second.removed) {
          local.push_back(pack);
        }
      }
      size_t to_drop =
          local.size() > options_.local_packs ? local.size() - options_.local_packs : 0;
      for (uint64_t pack : local) {
        if (to_drop == 0) break;
        auto uploaded = st.packs.find(pack);
        if (uploaded == st.packs.end() || uploaded->second.size != files[pack]) continue;
        st.evicted.insert(pack);
        // The state says "in the bucket only" before the file goes: a crash between leaves a
        // local copy that is merely not needed.
        MEDVFS_RETURN_IF_ERROR(SaveState(dir_, name, st));
        MEDVFS_RETURN_IF_ERROR(chunks_->packs().DropLocalCopy(pack));
        ++result.packs_evicted;
        --to_drop;
      }
    }
    return Status::Ok();
  };

  Status s = round();
  if (!s.ok()) {
    st.last_error = s.ToString();
    st.last_error_time_s = NowSeconds();
    SaveState(dir_, name, st).IgnoreError();
    MEDVFS_LOG_WARNING("remote %s: replication round failed: %s", name.c_str(),
                       s.ToString().c_str());
    return s;
  }
  if (!st.last_error.empty()) {
    st.last_error.clear();
    st.last_error_time_s = 0;
    MEDVFS_RETURN_IF_ERROR(SaveState(dir_, name, st));
  }
  return result;
}

}  // namespace medvfs::store
