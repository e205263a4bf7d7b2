// The S3 tier's formats and local bookkeeping (remote_format.h).
#include "store/archive/remote_format.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "store/bytes.h"
#include "store/crypto/subkeys.h"
#include "store/file_util.h"

namespace medvfs::store::remote_tier {
namespace {

namespace stdfs = std::filesystem;
using Json = nlohmann::json;

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

}  // namespace

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

}  // namespace medvfs::store::remote_tier
