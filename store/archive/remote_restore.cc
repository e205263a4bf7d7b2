// The S3 tier without a local archive (remote.h): restore-remote, the mirror a remote mount
// serves, the latest snapshot's number, and checking a bucket (verify --remote).
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "store/archive/remote.h"
#include "store/archive/remote_format.h"
#include "store/crypto/subkeys.h"
#include "store/engine/kv_store.h"
#include "store/engine/pack_format.h"
#include "store/engine/pack_store.h"
#include "store/file_util.h"

namespace medvfs::store {

using namespace remote_tier;  // NOLINT(google-build-using-namespace): the tier's own helpers
namespace stdfs = std::filesystem;
using Json = nlohmann::json;

namespace {

// Downloads the snapshot's record files into `backup_dir` (a BackupEngine directory), each
// checked against the snapshot.
Status DownloadRecords(S3Client& client, const S3Url& url, const SecretKey& remote_key,
                       const Snapshot& snapshot, const stdfs::path& backup_dir) {
  for (const SnapshotFile& f : snapshot.files) {
    std::string sealed;
    MEDVFS_RETURN_IF_ERROR(client.Get(ObjectKey(url, f.object), &sealed));
    std::string plain;
    if (!Unseal(remote_key, f.object, sealed, &plain).ok() || plain.size() != f.size ||
        Hex(Sha256Of(plain)) != f.sha256) {
      return Status::Corruption("record file " + f.object + " in the bucket is damaged");
    }
    const stdfs::path target = backup_dir / f.path;
    std::error_code ec;
    stdfs::create_directories(target.parent_path(), ec);
    if (ec)
      return Status::IoError("creating " + target.parent_path().string() + ": " + ec.message());
    MEDVFS_RETURN_IF_ERROR(WriteFileDurably(target, plain));
  }
  return Status::Ok();
}

// Downloads packs into `packs_dir`, two at a time, each checked for its size.
Status DownloadPacks(S3Client& client, const S3Url& url, const std::map<uint64_t, uint64_t>& packs,
                     const stdfs::path& packs_dir) {
  std::vector<std::pair<uint64_t, uint64_t>> todo(packs.begin(), packs.end());
  std::mutex mu;
  size_t next = 0;
  Status first_error;
  auto worker = [&] {
    for (;;) {
      std::pair<uint64_t, uint64_t> job;
      {
        std::lock_guard lock(mu);
        if (next >= todo.size() || !first_error.ok()) return;
        job = todo[next++];
      }
      std::string bytes;
      Status s = client.Get(ObjectKey(url, PackObjectName(job.first)), &bytes);
      if (s.ok() && bytes.size() != job.second) {
        s = Status::Corruption("pack " + std::to_string(job.first) +
                               " in the bucket has the wrong size");
      }
      if (s.ok()) s = WriteFileDurably(packs_dir / PackFileName(job.first), bytes);
      if (!s.ok()) {
        std::lock_guard lock(mu);
        if (first_error.ok()) first_error = s;
        return;
      }
    }
  };
  std::thread helper(worker);
  worker();
  helper.join();
  return first_error;
}

// The restore's audit entry, in the restored archive.
Status RecordRemoteRestore(const stdfs::path& dir, const KeySource& key, const std::string& from,
                           const RestoreBackupOptions& options, const Caller& caller) {
  ArchiveOptions archive_options;
  archive_options.read_only = true;  // audit entries are still appended
  archive_options.high_water_dir = options.high_water_dir;
  archive_options.accept_rollback = true;
  MEDVFS_ASSIGN_OR_RETURN(auto archive, Archive::Open(dir, key, archive_options));
  AuditEvent event;
  event.uid = caller.uid;
  event.gid = caller.gid;
  event.pid = caller.pid;
  event.program = caller.program;
  event.op = AuditOp::kRestoreBackup;
  event.path = "/";
  event.detail = "from " + from;
  MEDVFS_RETURN_IF_ERROR(archive->RecordAudit(event));
  return archive->SyncAll();
}

}  // namespace

StatusOr<uint64_t> LatestRemoteSnapshot(const RemoteLocation& location) {
  S3Url url;
  MEDVFS_ASSIGN_OR_RETURN(auto client, ConnectRemote(location, &url));
  std::vector<S3ObjectInfo> listed;
  MEDVFS_RETURN_IF_ERROR(client->List(ObjectKey(url, kSnapshotsDir), &listed));
  if (listed.empty()) return uint64_t{0};
  const std::string& key = listed.back().key;
  const std::string digits = key.substr(key.rfind('/') + 1);
  uint64_t seq = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  return seq;
}

Status RestoreRemote(const RemoteLocation& location, const stdfs::path& archive_dir,
                     const KeySource& key, const RestoreBackupOptions& options,
                     const Caller& caller, uint64_t* snapshot_seq) {
  S3Url url;
  MEDVFS_ASSIGN_OR_RETURN(auto client, ConnectRemote(location, &url));
  bool created = false;
  {
    struct stat sb {};
    if (::lstat(archive_dir.c_str(), &sb) == 0) {
      std::error_code ec;
      if (!S_ISDIR(sb.st_mode) || !stdfs::is_empty(archive_dir, ec)) {
        return Status(Code::kNotEmpty, "the archive directory exists and is not empty");
      }
    } else {
      if (::mkdir(archive_dir.c_str(), 0700) != 0) {
        return StatusFromErrno(errno, "creating the archive directory");
      }
      created = true;
    }
  }
  auto undo = [&] {
    std::error_code ec;
    if (created) {
      stdfs::remove_all(archive_dir, ec);
      return;
    }
    for (auto it = stdfs::directory_iterator(archive_dir, ec);
         !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
      std::error_code ignored;
      stdfs::remove_all(it->path(), ignored);
    }
  };
  auto restore = [&]() -> Status {
    SecretKey remote_key;
    std::string archive_hex;
    MEDVFS_RETURN_IF_ERROR(
        UnlockFromMarker(*client, url, archive_dir, key, &remote_key, &archive_hex));
    Snapshot snapshot;
    MEDVFS_RETURN_IF_ERROR(FetchLatestSnapshot(*client, url, remote_key, &snapshot));
    if (snapshot.archive_id != archive_hex) {
      return Status::Corruption("the bucket's snapshot belongs to another archive");
    }
    const stdfs::path staging = archive_dir / ".restore-records";
    MEDVFS_RETURN_IF_ERROR(DownloadRecords(*client, url, remote_key, snapshot, staging));
    MEDVFS_RETURN_IF_ERROR(KvStore::VerifyBackup(staging, snapshot.backup_id));
    MEDVFS_RETURN_IF_ERROR(KvStore::RestoreBackup(staging, snapshot.backup_id, archive_dir / "db"));
    std::error_code ec;
    stdfs::remove_all(staging, ec);
    stdfs::create_directory(archive_dir / "packs", ec);
    ::chmod((archive_dir / "packs").c_str(), 0700);
    MEDVFS_RETURN_IF_ERROR(DownloadPacks(*client, url, snapshot.packs, archive_dir / "packs"));
    SyncDirectoryQuietly(archive_dir);
    *snapshot_seq = snapshot.seq;
    return RecordRemoteRestore(archive_dir, key,
                               url.ToString() + " snapshot " + std::to_string(snapshot.seq),
                               options, caller);
  };
  Status s = restore();
  if (!s.ok()) undo();
  return s;
}

StatusOr<std::pair<stdfs::path, uint64_t>> OpenRemoteMirror(const RemoteLocation& location,
                                                            const stdfs::path& cache_dir,
                                                            const KeySource& key) {
  S3Url url;
  MEDVFS_ASSIGN_OR_RETURN(auto client, ConnectRemote(location, &url));
  std::error_code ec;
  stdfs::create_directories(cache_dir, ec);
  if (ec) return Status::IoError("creating the cache directory: " + ec.message());
  ::chmod(cache_dir.c_str(), 0700);
  // Each snapshot gets a directory of its own: a mirror in use is never changed under it.
  const stdfs::path unlock_dir = cache_dir / "key";
  stdfs::create_directories(unlock_dir, ec);
  SecretKey remote_key;
  std::string archive_hex;
  MEDVFS_RETURN_IF_ERROR(
      UnlockFromMarker(*client, url, unlock_dir, key, &remote_key, &archive_hex));
  Snapshot snapshot;
  MEDVFS_RETURN_IF_ERROR(FetchLatestSnapshot(*client, url, remote_key, &snapshot));
  const stdfs::path dir = cache_dir / ("snapshot-" + std::to_string(snapshot.seq));
  if (stdfs::exists(dir / "db" / "CURRENT")) return std::make_pair(dir, snapshot.seq);
  stdfs::remove_all(dir, ec);
  stdfs::create_directories(dir, ec);
  if (ec) return Status::IoError("creating the mirror directory: " + ec.message());
  ::chmod(dir.c_str(), 0700);
  Status s = [&]() -> Status {
    stdfs::copy_file(unlock_dir / kKeySlotFileName, dir / kKeySlotFileName, ec);
    if (ec) return Status::IoError("copying the key slot: " + ec.message());
    const stdfs::path staging = dir / ".records";
    MEDVFS_RETURN_IF_ERROR(DownloadRecords(*client, url, remote_key, snapshot, staging));
    MEDVFS_RETURN_IF_ERROR(KvStore::RestoreBackup(staging, snapshot.backup_id, dir / "db.new"));
    stdfs::remove_all(staging, ec);
    Json packs = Json::object();
    for (const auto& [pack, size] : snapshot.packs) packs[std::to_string(pack)] = size;
    MEDVFS_RETURN_IF_ERROR(WriteFileDurably(dir / kMirrorPacksFile, packs.dump()));
    stdfs::create_directory(dir / "packs", ec);
    stdfs::rename(dir / "db.new", dir / "db", ec);
    if (ec) return Status::IoError("placing the mirror's records: " + ec.message());
    SyncDirectoryQuietly(dir);
    return Status::Ok();
  }();
  if (!s.ok()) {
    stdfs::remove_all(dir, ec);
    return s;
  }
  // Older mirrors go (a mount still using one keeps its open files).
  for (auto it = stdfs::directory_iterator(cache_dir, ec); !ec && it != stdfs::directory_iterator();
       it.increment(ec)) {
    const std::string entry = it->path().filename().string();
    if (entry.starts_with("snapshot-") && it->path() != dir) {
      std::error_code ignored;
      stdfs::remove_all(it->path(), ignored);
    }
  }
  return std::make_pair(dir, snapshot.seq);
}

StatusOr<RemoteVerifyReport> VerifyRemote(const RemoteLocation& location, const KeySource& key) {
  S3Url url;
  MEDVFS_ASSIGN_OR_RETURN(auto client, ConnectRemote(location, &url));
  RemoteVerifyReport report;
  char temp_template[] = "/tmp/medvfs-verify-remote.XXXXXX";
  if (::mkdtemp(temp_template) == nullptr) return StatusFromErrno(errno, "a temporary directory");
  const stdfs::path temp(temp_template);
  auto cleanup = [&temp] {
    std::error_code ec;
    stdfs::remove_all(temp, ec);
  };
  SecretKey remote_key;
  std::string archive_hex;
  Status s = UnlockFromMarker(*client, url, temp, key, &remote_key, &archive_hex);
  if (!s.ok()) {
    cleanup();
    return s;
  }
  Snapshot snapshot;
  s = FetchLatestSnapshot(*client, url, remote_key, &snapshot);
  if (!s.ok()) {
    cleanup();
    if (s.code() == Code::kCorruption) {
      report.problems.push_back(s.message());
      return report;
    }
    return s;
  }
  report.snapshot_seq = snapshot.seq;
  for (const SnapshotFile& f : snapshot.files) {
    std::string sealed;
    std::string plain;
    Status got = client->Get(ObjectKey(url, f.object), &sealed);
    if (got.ok() && (!Unseal(remote_key, f.object, sealed, &plain).ok() || plain.size() != f.size ||
                     Hex(Sha256Of(plain)) != f.sha256)) {
      got = Status::Corruption("record file " + f.object + " is damaged");
    }
    if (!got.ok()) {
      if (got.code() == Code::kIoError || got.code() == Code::kAccess) {
        cleanup();
        return got;
      }
      report.problems.push_back(got.code() == Code::kNotFound
                                    ? "record file " + f.object + " is missing"
                                    : got.message());
      continue;
    }
    ++report.record_files_checked;
  }
  // Each pack is fetched whole into the temporary directory and its entries authenticated
  // by a PackStore there (the data key's chunk subkey comes from the key slot).
  SecretKey data_key;
  std::string archive_id;
  s = UnlockKeySlot(temp / kKeySlotFileName, key, &data_key, &archive_id);
  if (!s.ok()) {
    cleanup();
    return s;
  }
  const stdfs::path packs_dir = temp / "packs";
  std::error_code ec;
  stdfs::create_directory(packs_dir, ec);
  for (const auto& [pack, size] : snapshot.packs) {
    std::string bytes;
    Status got = client->Get(ObjectKey(url, PackObjectName(pack)), &bytes);
    if (got.code() == Code::kIoError || got.code() == Code::kAccess) {
      cleanup();
      return got;
    }
    if (!got.ok()) {
      report.problems.push_back("pack " + std::to_string(pack) + " is missing");
      continue;
    }
    if (bytes.size() != size) {
      report.problems.push_back("pack " + std::to_string(pack) + " has the wrong size");
      continue;
    }
    if (Status w = WriteFileDurably(packs_dir / PackFileName(pack), bytes); !w.ok()) {
      cleanup();
      return w;
    }
    PackStoreOptions pack_options;
    pack_options.read_only = true;
    std::vector<RecoveredPack> recovered;
    auto store = PackStore::Open(packs_dir, DeriveSubkey(data_key, kChunkSealLabel), pack_options,
                                 {KnownPack{pack, true, size, false}}, &recovered);
    Status scanned = store.status();
    bool damaged = false;
    if (scanned.ok()) {
      PackStore::ScanResult scan;
      scanned = (*store)->ScanPack(
          pack,
          [&damaged](const PackEntryInfo&, const Status& entry, std::string_view) {
            if (!entry.ok()) damaged = true;
          },
          &scan);
      if (scanned.ok() && !scan.sealed) scanned = Status::Corruption("it is not sealed");
    }
    if (!scanned.ok() || damaged) {
      report.problems.push_back("pack " + std::to_string(pack) + " is damaged" +
                                (scanned.ok() ? "" : ": " + scanned.message()));
    } else {
      ++report.packs_checked;
      report.bytes_checked += size;
    }
    stdfs::remove(packs_dir / PackFileName(pack), ec);
  }
  cleanup();
  return report;
}

}  // namespace medvfs::store
