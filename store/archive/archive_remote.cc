// The S3 tier (remote.h): adding remotes, replication rounds, restoring and mirroring from a
// bucket, and checking a bucket.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>
#include <thread>

#include "store/archive/archive_impl.h"
#include "store/archive/remote.h"
#include "store/archive/remote_pack_cache.h"
#include "store/bytes.h"
#include "store/crypto/subkeys.h"
#include "store/engine/pack_format.h"
#include "store/file_util.h"
#include "store/log.h"

namespace medvfs::store {
namespace {

namespace stdfs = std::filesystem;
using Json = nlohmann::json;

constexpr char kMarkerName[] = "medvfs-remote";
constexpr char kMarkerMagic[] = "medvfs-remote 1\n";
constexpr char kSnapshotsDir[] = "snapshots/";
constexpr char kRecordsDir[] = "records/";
constexpr char kMirrorPacksFile[] = "remote-packs.json";
constexpr int kStateFormat = 1;
constexpr int kSnapshotFormat = 1;
// Snapshots kept in the bucket (with every object they need); older ones get delete markers.
constexpr size_t kKeptSnapshots = 3;
// A retention "for ever" becomes this many years of Object Lock retention.
constexpr int64_t kForeverSeconds = int64_t{100} * 365 * 86400;
constexpr size_t kMaxSmallFile = 64u << 20;

int64_t NowSeconds() { return static_cast<int64_t>(::time(nullptr)); }

std::string Hex(std::span<const uint8_t> bytes) { return HexEncode(bytes); }
std::string Hex(const std::string& bytes) {
  return HexEncode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

StatusOr<std::string> ReadWholeFile(const stdfs::path& file, size_t limit) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return StatusFromErrno(errno, "reading " + file.filename().string());
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return StatusFromErrno(errno, "reading " + file.filename().string());
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) return Status::Corruption(file.filename().string() + " is too large");
  }
  return out;
}

bool ValidRemoteName(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

std::string ObjectKey(const S3Url& url, std::string_view name) {
  return url.prefix.empty() ? std::string(name) : url.prefix + "/" + std::string(name);
}

std::string PackObjectName(uint64_t pack) {
  char name[32];
  std::snprintf(name, sizeof(name), "packs/%016" PRIx64, pack);
  return name;
}

std::string SnapshotObjectName(uint64_t seq) {
  char name[40];
  std::snprintf(name, sizeof(name), "snapshots/%020" PRIu64, seq);
  return name;
}

// --- The marker object ---

std::string EncodeMarker(const std::string& archive_id_hex, const std::string& key_slot) {
  return std::string(kMarkerMagic) + "archive " + archive_id_hex + "\nkeyslot " +
         std::to_string(key_slot.size()) + "\n" + key_slot;
}

Status DecodeMarker(std::string_view in, std::string* archive_id_hex, std::string* key_slot) {
  auto line = [&in](std::string_view prefix, std::string* value) {
    const size_t end = in.find('\n');
    if (end == std::string_view::npos || !in.starts_with(prefix)) return false;
    *value = std::string(in.substr(prefix.size(), end - prefix.size()));
    in.remove_prefix(end + 1);
    return true;
  };
  std::string magic;
  std::string length_text;
  size_t length = 0;
  if (!line("medvfs-remote 1", &magic) || !magic.empty() || !line("archive ", archive_id_hex) ||
      !line("keyslot ", &length_text) ||
      std::from_chars(length_text.data(), length_text.data() + length_text.size(), length).ec !=
          std::errc() ||
      length != in.size()) {
    return Status::Corruption("the bucket's medvfs-remote marker is damaged");
  }
  *key_slot = std::string(in);
  return Status::Ok();
}

// --- Snapshots ---

struct SnapshotFile {
  std::string path;    // relative to the BackupEngine directory
  std::string object;  // records/...
  uint64_t size = 0;
  std::string sha256;  // hex, of the plain file
};

struct Snapshot {
  uint64_t seq = 0;
  int64_t time_s = 0;
  std::string archive_id;  // hex
  uint32_t backup_id = 0;
  std::vector<SnapshotFile> files;
  std::map<uint64_t, uint64_t> packs;  // pack -> size
};

std::string EncodeSnapshot(const Snapshot& s) {
  Json files = Json::array();
  for (const SnapshotFile& f : s.files) {
    files.push_back(
        {{"path", f.path}, {"object", f.object}, {"size", f.size}, {"sha256", f.sha256}});
  }
  Json packs = Json::object();
  for (const auto& [pack, size] : s.packs) packs[std::to_string(pack)] = size;
  Json j = {
      {"format", kSnapshotFormat}, {"seq", s.seq},   {"time", s.time_s}, {"archive", s.archive_id},
      {"backup", s.backup_id},     {"files", files}, {"packs", packs}};
  return j.dump();
}

Status DecodeSnapshot(std::string_view text, Snapshot* s) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("format", 0) != kSnapshotFormat) {
    return Status::Corruption("a snapshot in the bucket does not decode");
  }
  try {
    s->seq = j.at("seq").get<uint64_t>();
    s->time_s = j.at("time").get<int64_t>();
    s->archive_id = j.at("archive").get<std::string>();
    s->backup_id = j.at("backup").get<uint32_t>();
    for (const Json& f : j.at("files")) {
      s->files.push_back({f.at("path").get<std::string>(), f.at("object").get<std::string>(),
                          f.at("size").get<uint64_t>(), f.at("sha256").get<std::string>()});
    }
    for (const auto& [pack, size] : j.at("packs").items()) {
      s->packs[std::stoull(pack)] = size.get<uint64_t>();
    }
  } catch (const std::exception&) {
    return Status::Corruption("a snapshot in the bucket does not decode");
  }
  for (const SnapshotFile& f : s->files) {
    const stdfs::path p(f.path);
    if (f.path.empty() || p.is_absolute() ||
        std::any_of(p.begin(), p.end(), [](const stdfs::path& c) { return c == ".."; }) ||
        !f.object.starts_with(kRecordsDir)) {
      return Status::Corruption("a snapshot in the bucket names a file outside its directory");
    }
  }
  return Status::Ok();
}

// The latest snapshot of the bucket, opened with `remote_key`; kNotFound when there is none.
Status FetchLatestSnapshot(S3Client& client, const S3Url& url, const SecretKey& remote_key,
                           Snapshot* snapshot) {
  std::vector<S3ObjectInfo> listed;
  MEDVFS_RETURN_IF_ERROR(client.List(ObjectKey(url, kSnapshotsDir), &listed));
  if (listed.empty()) return Status::NotFound("the bucket holds no snapshot of the archive yet");
  const std::string& key = listed.back().key;  // zero-padded numbers: the last is the newest
  const std::string name = key.substr(key.size() - SnapshotObjectName(0).size());
  std::string sealed;
  MEDVFS_RETURN_IF_ERROR(client.Get(key, &sealed));
  std::string plain;
  if (!Unseal(remote_key, name, sealed, &plain).ok()) {
    return Status::Corruption("the bucket's latest snapshot does not open with this key (" + name +
                              ")");
  }
  return DecodeSnapshot(plain, snapshot);
}

// --- Local state of a remote ---

struct ObjectState {
  uint64_t size = 0;
  std::string version;
  int64_t uploaded_s = 0;
  int64_t until_s = 0;  // Object Lock retention given (0: none)
  bool hold = false;
};

struct SnapshotState {
  uint64_t seq = 0;
  int64_t time_s = 0;
  ObjectState object;
  std::set<uint64_t> packs;
  std::set<std::string> records;
};

struct RemoteState {
  std::map<uint64_t, ObjectState> packs;       // uploaded packs
  std::map<std::string, ObjectState> records;  // uploaded record files, by object name
  std::vector<SnapshotState> snapshots;        // kept, oldest first
  uint64_t next_seq = 1;
  uint64_t kv_seq = 0;          // KvStore::LatestSequence when the last snapshot was made
  int object_lock = -1;         // -1 not asked yet, 0 no, 1 yes
  std::string policy;           // the lock policy last applied to every live object
  std::set<uint64_t> evicted;   // packs whose local copy was dropped (local_packs)
  std::string key_slot_sha256;  // of the key slot the bucket's marker carries
  std::string last_error;
  int64_t last_error_time_s = 0;
};

Json ObjectToJson(const ObjectState& o) {
  return {{"size", o.size},
          {"version", o.version},
          {"uploaded", o.uploaded_s},
          {"until", o.until_s},
          {"hold", o.hold}};
}
ObjectState ObjectFromJson(const Json& j) {
  ObjectState o;
  o.size = j.value("size", uint64_t{0});
  o.version = j.value("version", std::string());
  o.uploaded_s = j.value("uploaded", int64_t{0});
  o.until_s = j.value("until", int64_t{0});
  o.hold = j.value("hold", false);
  return o;
}

std::string EncodeState(const RemoteState& st) {
  Json packs = Json::object();
  for (const auto& [pack, o] : st.packs) packs[std::to_string(pack)] = ObjectToJson(o);
  Json records = Json::object();
  for (const auto& [name, o] : st.records) records[name] = ObjectToJson(o);
  Json snapshots = Json::array();
  for (const SnapshotState& s : st.snapshots) {
    snapshots.push_back({{"seq", s.seq},
                         {"time", s.time_s},
                         {"object", ObjectToJson(s.object)},
                         {"packs", s.packs},
                         {"records", s.records}});
  }
  Json j = {{"format", kStateFormat},
            {"packs", packs},
            {"records", records},
            {"snapshots", snapshots},
            {"next_seq", st.next_seq},
            {"kv_seq", st.kv_seq},
            {"object_lock", st.object_lock},
            {"policy", st.policy},
            {"evicted", st.evicted},
            {"key_slot", st.key_slot_sha256},
            {"last_error", st.last_error},
            {"last_error_time", st.last_error_time_s}};
  return j.dump(1);
}

Status DecodeState(std::string_view text, RemoteState* st) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("format", 0) != kStateFormat) {
    return Status::Corruption("a remote's state.json does not decode");
  }
  try {
    for (const auto& [pack, o] : j.at("packs").items())
      st->packs[std::stoull(pack)] = ObjectFromJson(o);
    for (const auto& [name, o] : j.at("records").items()) st->records[name] = ObjectFromJson(o);
    for (const Json& s : j.at("snapshots")) {
      SnapshotState snap;
      snap.seq = s.at("seq").get<uint64_t>();
      snap.time_s = s.at("time").get<int64_t>();
      snap.object = ObjectFromJson(s.at("object"));
      snap.packs = s.at("packs").get<std::set<uint64_t>>();
      snap.records = s.at("records").get<std::set<std::string>>();
      st->snapshots.push_back(std::move(snap));
    }
    st->next_seq = j.at("next_seq").get<uint64_t>();
    st->kv_seq = j.at("kv_seq").get<uint64_t>();
    st->object_lock = j.at("object_lock").get<int>();
    st->policy = j.at("policy").get<std::string>();
    st->evicted = j.at("evicted").get<std::set<uint64_t>>();
    st->key_slot_sha256 = j.value("key_slot", std::string());
    st->last_error = j.at("last_error").get<std::string>();
    st->last_error_time_s = j.at("last_error_time").get<int64_t>();
  } catch (const std::exception&) {
    return Status::Corruption("a remote's state.json does not decode");
  }
  return Status::Ok();
}

stdfs::path RemotesDir(const stdfs::path& archive) { return archive / "remotes"; }
stdfs::path RemoteDir(const stdfs::path& archive, const std::string& name) {
  return RemotesDir(archive) / name;
}

std::string EncodeConfig(const RemoteConfig& c) {
  Json j = {{"name", c.name},
            {"url", c.location.url},
            {"endpoint", c.location.endpoint},
            {"region", c.location.region}};
  return j.dump(1) + "\n";
}

StatusOr<RemoteConfig> LoadConfig(const stdfs::path& archive, const std::string& name) {
  auto text = ReadWholeFile(RemoteDir(archive, name) / "config.json", 1 << 20);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) {
      return Status::NotFound("the archive has no remote named " + name);
    }
    return text.status();
  }
  Json j = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption("remote " + name + ": config.json does not decode");
  }
  RemoteConfig c;
  c.name = j.value("name", name);
  c.location.url = j.value("url", std::string());
  c.location.endpoint = j.value("endpoint", std::string());
  c.location.region = j.value("region", std::string("us-east-1"));
  return c;
}

StatusOr<RemoteState> LoadState(const stdfs::path& archive, const std::string& name) {
  RemoteState st;
  auto text = ReadWholeFile(RemoteDir(archive, name) / "state.json", kMaxSmallFile);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) return st;
    return text.status();
  }
  MEDVFS_RETURN_IF_ERROR(DecodeState(*text, &st));
  return st;
}

Status SaveState(const stdfs::path& archive, const std::string& name, const RemoteState& st) {
  return WriteFileDurably(RemoteDir(archive, name) / "state.json", EncodeState(st));
}

std::vector<std::string> RemoteNames(const stdfs::path& archive) {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto it = stdfs::directory_iterator(RemotesDir(archive), ec);
       !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (ValidRemoteName(name) && stdfs::exists(it->path() / "config.json")) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// --- Object Lock ---

// What Object Lock the archive's rules and holds ask of every object: the strictest rule's
// mode and age (a pack mixes the versions of many files), and a legal hold while any hold is
// set. Conservative: an object may be kept longer than its own versions need.
struct LockPolicy {
  S3LockMode mode = S3LockMode::kNone;
  int64_t keep_s = 0;
  bool hold = false;
  std::string Describe() const {
    return std::string(mode == S3LockMode::kCompliance   ? "compliance"
                       : mode == S3LockMode::kGovernance ? "governance"
                                                         : "none") +
           " " + std::to_string(keep_s) + (hold ? " hold" : "");
  }
  S3ObjectLock For(int64_t uploaded_s) const {
    S3ObjectLock lock;
    lock.mode = mode;
    if (mode != S3LockMode::kNone) lock.retain_until_s = uploaded_s + keep_s;
    lock.legal_hold = hold;
    return lock;
  }
};

LockPolicy PolicyOf(const std::vector<RetentionRule>& rules, const std::vector<LegalHold>& holds) {
  LockPolicy policy;
  for (const RetentionRule& rule : rules) {
    const int64_t age = rule.min_age_s == kRetainForever ? kForeverSeconds : rule.min_age_s;
    if (age <= 0) continue;
    policy.keep_s = std::max(policy.keep_s, age);
    if (rule.mode == RetentionMode::kCompliance) {
      policy.mode = S3LockMode::kCompliance;
    } else if (policy.mode == S3LockMode::kNone) {
      policy.mode = S3LockMode::kGovernance;
    }
  }
  policy.hold = !holds.empty();
  return policy;
}

// Brings one uploaded object to the policy: retention extended (never shortened), legal hold
// set or lifted. Counts the calls made.
Status ApplyPolicy(S3Client& client, const std::string& key, const LockPolicy& policy,
                   ObjectState* o, uint64_t* changed) {
  if (o->version.empty()) return Status::Ok();
  if (policy.mode != S3LockMode::kNone) {
    const int64_t until = o->uploaded_s + policy.keep_s;
    if (until > o->until_s && until > NowSeconds()) {
      MEDVFS_RETURN_IF_ERROR(client.PutRetention(key, o->version, policy.mode, until));
      o->until_s = until;
      ++*changed;
    }
  }
  if (o->hold != policy.hold) {
    MEDVFS_RETURN_IF_ERROR(client.PutLegalHold(key, o->version, policy.hold));
    o->hold = policy.hold;
    ++*changed;
  }
  return Status::Ok();
}

// Every regular file below `root`, relative to it.
std::vector<std::string> FilesBelow(const stdfs::path& root) {
  std::vector<std::string> files;
  std::error_code ec;
  for (auto it = stdfs::recursive_directory_iterator(root, ec);
       !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(stdfs::relative(it->path(), root, ec).string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

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
  for (const std::string& name : RemoteNames(dir_)) {
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
    auto upload_pack = [&](uint64_t pack, bool* gone) -> Status {
      *gone = false;
      const stdfs::path file = chunks_->packs().dir() / PackFileName(pack);
      struct stat sb {};
      if (::stat(file.c_str(), &sb) != 0) {
        *gone = true;  // garbage collection rewrote it meanwhile
        return Status::Ok();
      }
      ObjectState o;
      o.uploaded_s = NowSeconds();
      const S3ObjectLock lock_for = st.object_lock == 1 ? policy.For(o.uploaded_s) : S3ObjectLock{};
      MEDVFS_ASSIGN_OR_RETURN(
          o.version, client->PutFile(ObjectKey(url, PackObjectName(pack)), file, lock_for));
      o.size = static_cast<uint64_t>(sb.st_size);
      o.until_s = lock_for.mode != S3LockMode::kNone ? lock_for.retain_until_s : 0;
      o.hold = lock_for.legal_hold;
      st.packs[pack] = o;
      ++result.packs_uploaded;
      result.bytes_uploaded += o.size;
      // The durable queue: a pack is done once the state says so.
      return SaveState(dir_, name, st);
    };

    // 1. The sealed packs not in the bucket yet, oldest first.
    for (const auto& [pack, record] : chunks_->PackRecords()) {
      if (!record.sealed || record.removed || st.packs.contains(pack)) continue;
      if (cancelled()) return Status(Code::kBusy, "replication stopped");
      bool gone = false;
      MEDVFS_RETURN_IF_ERROR(upload_pack(pack, &gone));
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
      for (const auto& [pack, size] : snapshot.packs) {
        if (st.packs.contains(pack)) continue;
        if (cancelled()) return Status(Code::kBusy, "replication stopped");
        bool gone = false;
        MEDVFS_RETURN_IF_ERROR(upload_pack(pack, &gone));
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

// --- From a bucket, without a local archive ---

namespace {

// Reads the marker, writes the key slot into `dir` (0600) and unlocks it: the remote subkey.
Status UnlockFromMarker(S3Client& client, const S3Url& url, const stdfs::path& dir,
                        const KeySource& key, SecretKey* remote_key, std::string* archive_hex) {
  std::string marker;
  Status s = client.Get(ObjectKey(url, kMarkerName), &marker);
  if (s.code() == Code::kNotFound) {
    return Status::NotFound(url.ToString() + " holds no medvfs archive (no medvfs-remote marker)");
  }
  MEDVFS_RETURN_IF_ERROR(s);
  std::string slot;
  MEDVFS_RETURN_IF_ERROR(DecodeMarker(marker, archive_hex, &slot));
  const stdfs::path file = dir / kKeySlotFileName;
  MEDVFS_RETURN_IF_ERROR(WriteFileDurably(file, slot));
  SecretKey data_key;
  std::string archive_id;
  MEDVFS_RETURN_IF_ERROR(UnlockKeySlot(file, key, &data_key, &archive_id));
  *remote_key = DeriveSubkey(data_key, kRemoteLabel);
  return Status::Ok();
}

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
