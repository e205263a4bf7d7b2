// The S3 tier end to end (issue 22, DESIGN.md section 8), against the real Ceph RADOS Gateway
// the s3_cluster fixture starts: an archive mounted with the built `medvfs`, saves made through
// the mount checked against a plain model of every version, and then the same versions read
// back from the bucket alone, by a remote read-only mount on an empty cache and by
// restore-remote; the daemon killed in the middle of an upload; the gateway frozen while the
// mount goes on; Object Lock enforced by the gateway; an archive keeping fewer packs than its
// data. Runs serially (it freezes the shared gateway).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/views.h"
#include "tests/fs/mount_fixture.h"
#include "tests/s3/s3_test_env.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;
using Json = nlohmann::json;
using store::test_util::S3TestEnv;

constexpr const char* kCtSample =
    "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";

// site-a/medvfs-remote, site-a/packs/<16 hex>, site-a/records/<32 hex> or
// site-a/snapshots/<20 digits>: nothing else may name an object. (std::regex is avoided: GCC
// 12 warns inside it under -O2 -Werror.)
bool IsOpaqueKey(const std::string& key) {
  auto all_of = [](std::string_view s, size_t n, std::string_view alphabet) {
    return s.size() == n && s.find_first_not_of(alphabet) == std::string_view::npos;
  };
  const std::string_view k(key);
  if (k == "site-a/medvfs-remote") return true;
  for (const auto& [prefix, n, alphabet] : {std::tuple<std::string_view, size_t, std::string_view>{
                                                "site-a/packs/", 16, "0123456789abcdef"},
                                            {"site-a/records/", 32, "0123456789abcdef"},
                                            {"site-a/snapshots/", 20, "0123456789"}}) {
    if (k.starts_with(prefix) && all_of(k.substr(prefix.size()), n, alphabet)) return true;
  }
  return false;
}

// Every saved content of every path, in order: version N is versions[path][N-1].
using Model = std::map<std::string, std::vector<std::string>>;

class RemoteMountTest : public MountTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(MountTest::SetUp());
    ASSERT_NO_FATAL_FAILURE(store::test_util::LoadS3TestEnv(&env_));
    bucket_ = store::test_util::UniqueBucketName("medvfs");
    auto client = store::S3Client::Create(store::test_util::S3TestConfig(env_, bucket_));
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value();
    ASSERT_TRUE(client_->CreateBucket(/*object_lock=*/true).ok());
    url_ = "s3://" + bucket_ + "/site-a";
    // The daemons and commands started by the tests inherit these.
    setenv("AWS_ACCESS_KEY_ID", env_.access_key_id.c_str(), 1);
    setenv("AWS_SECRET_ACCESS_KEY", env_.secret_access_key.c_str(), 1);
    setenv("AWS_ENDPOINT_URL", env_.endpoint.c_str(), 1);
    setenv("AWS_REGION", env_.region.c_str(), 1);
    remote_mnt_ = dir_ / "remote-mnt";
    stdfs::create_directory(remote_mnt_);
  }

  void TearDown() override {
    ResumeGateway();
    if (IsMedvfsMount(remote_mnt_)) {
      RunProgram({MEDVFS_BIN, "umount", remote_mnt_.string()});
    }
    MountTest::TearDown();
  }

  ProcResult Medvfs(std::vector<std::string> args, int timeout_s = 120) {
    args.insert(args.begin(), MEDVFS_BIN);
    return RunProgram(args, {{"MEDVFS_PASSPHRASE", kPassphrase}, {"MEDVFS_STATE_DIR", StateDir()}},
                      timeout_s);
  }
  void MedvfsOk(const std::vector<std::string>& args, int timeout_s = 120) {
    const ProcResult r = Medvfs(args, timeout_s);
    ASSERT_EQ(r.exit_code, 0) << "medvfs " << testing::PrintToString(args) << ": " << r.err
                              << r.out;
  }

  void AddRemote() {
    ASSERT_NO_FATAL_FAILURE(MedvfsOk({"remote", "add", archive_.string(), "offsite", url_}));
  }

  Json RemoteStatus() {
    const ProcResult r = Medvfs({"remote", "list", "--json", archive_.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    Json list = Json::parse(r.out, nullptr, false);
    if (!list.is_array() || list.empty()) return Json::object();
    return list[0];
  }

  // The gateway, frozen and thawed by its PID (the cluster script's pids file).
  pid_t GatewayPid() {
    const char* env_file = std::getenv("MEDVFS_S3_ENV_FILE");
    std::ifstream in(stdfs::path(env_file).parent_path() / "pids");
    pid_t pid = 0;
    std::string name;
    pid_t found = 0;
    while (in >> pid >> name) {
      if (name.find("radosgw") != std::string::npos || name.find("rgw") != std::string::npos) {
        found = pid;
      }
    }
    return found;
  }
  void FreezeGateway() {
    gateway_ = GatewayPid();
    ASSERT_GT(gateway_, 0) << "no radosgw in the cluster's pids file";
    ASSERT_EQ(kill(gateway_, SIGSTOP), 0);
  }
  void ResumeGateway() {
    if (gateway_ > 0) kill(gateway_, SIGCONT);
    gateway_ = 0;
  }

  // Saves `content` at `path` through the mount and in the model.
  void Save(Model& model, const std::string& path, const std::string& content) {
    stdfs::create_directories(P(path).parent_path());
    ASSERT_EQ(WriteFile(P(path), content), 0) << path;
    model[path].push_back(content);
  }

  // Random saves: binary content with a marker a reader of the bucket must never see.
  void RandomSaves(Model& model, std::mt19937_64& rng, int count, size_t max_size) {
    const std::vector<std::string> names = {"ct/a.bin", "ct/b.bin", "mr/c.bin", "mr/d.bin",
                                            "notes.txt"};
    for (int i = 0; i < count; ++i) {
      const std::string& name = names[rng() % names.size()];
      std::string content = "PATIENT-SECRET-" + std::to_string(rng() % 1000000) + " ";
      const size_t size = rng() % max_size;
      while (content.size() < size) content.push_back(static_cast<char>(rng()));
      ASSERT_NO_FATAL_FAILURE(Save(model, name, content));
    }
  }

  // Every version of every path of the model, and the live files, under `root` (a mount).
  void CheckAgainstModel(const stdfs::path& root, const Model& model) {
    for (const auto& [path, versions] : model) {
      SCOPED_TRACE(path);
      const stdfs::path p(path);
      const stdfs::path version_dir = root / p.parent_path() / "@version" / p.filename();
      std::map<uint64_t, std::string> found;
      for (const std::string& entry : ListDir(version_dir)) {
        auto number = store::ParseVersionFileName(entry);
        if (!number) continue;
        found[*number] = ReadFile(version_dir / entry);
      }
      ASSERT_EQ(found.size(), versions.size());
      for (size_t i = 0; i < versions.size(); ++i) {
        ASSERT_TRUE(found.contains(i + 1)) << "version " << i + 1;
        EXPECT_TRUE(found[i + 1] == versions[i]) << "version " << i + 1 << " differs";
      }
      EXPECT_TRUE(ReadFile(root / path) == versions.back()) << "the live file differs";
    }
  }

  // Every object version in the bucket (packs, records, snapshots, marker), whole.
  std::vector<std::string> AllObjectBodies() {
    std::vector<store::S3ObjectInfo> objects;
    EXPECT_TRUE(client_->List("site-a/", &objects).ok());
    std::vector<std::string> bodies;
    for (const auto& o : objects) {
      std::string body;
      EXPECT_TRUE(client_->Get(o.key, &body).ok()) << o.key;
      bodies.push_back(std::move(body));
    }
    return bodies;
  }

  std::vector<store::S3ObjectInfo> Objects(const std::string& prefix) {
    std::vector<store::S3ObjectInfo> objects;
    EXPECT_TRUE(client_->List(prefix, &objects).ok());
    return objects;
  }

  ProcResult MountRemote(const stdfs::path& cache) {
    return RunProgram({MEDVFS_BIN, "mount", url_, remote_mnt_.string(), "-o",
                       "cache=" + cache.string() + ",cache_size=64M"},
                      {{"MEDVFS_PASSPHRASE", kPassphrase}, {"MEDVFS_STATE_DIR", StateDir()}}, 120);
  }

  S3TestEnv env_;
  std::string bucket_;
  std::string url_;
  std::unique_ptr<store::S3Client> client_;
  stdfs::path remote_mnt_;
  pid_t gateway_ = 0;
};

// Saves through a mount reach the bucket sealed; the bucket alone then gives back every
// version, byte for byte, to a remote mount on an empty cache and to restore-remote, whose
// archive verifies; Object Lock keeps the gateway from deleting a replicated version.
TEST_F(RemoteMountTest, EveryVersionComesBackFromTheBucketAlone) {
  ASSERT_NO_FATAL_FAILURE(AddRemote());
  // A compliance rule and a legal hold: the objects must carry both.
  ASSERT_NO_FATAL_FAILURE(
      MedvfsOk({"retention", archive_.string(), "set", "--mode", "compliance", "--min-age", "1d"}));
  ASSERT_NO_FATAL_FAILURE(MountOk("pack_size=1M,snapshot_interval=1"));
  Model model;
  std::mt19937_64 rng(22);
  ASSERT_NO_FATAL_FAILURE(RandomSaves(model, rng, 40, 300 << 10));
  std::ifstream ct(kCtSample, std::ios::binary);
  const std::string dicom((std::istreambuf_iterator<char>(ct)), std::istreambuf_iterator<char>());
  ASSERT_GT(dicom.size(), 1000u);
  ASSERT_NO_FATAL_FAILURE(Save(model, "ct/scan.dcm", dicom));
  ASSERT_NO_FATAL_FAILURE(
      MedvfsOk({"hold", archive_.string() + "::/ct/scan.dcm", "--reason", "case 22"}));
  ASSERT_NO_FATAL_FAILURE(MedvfsOk({"remote", "sync", archive_.string()}));
  const Json status = RemoteStatus();
  EXPECT_EQ(status.value("lag_bytes", uint64_t{1}), 0u) << status.dump();
  EXPECT_GT(status.value("snapshot_seq", uint64_t{0}), 0u) << status.dump();
  EXPECT_TRUE(status.value("object_lock", false));

  // Nothing in the bucket is readable: no name, no tag value, no content marker.
  const std::vector<store::S3ObjectInfo> packs = Objects("site-a/packs/");
  ASSERT_GE(packs.size(), 3u) << "pack_size=1M should have sealed several packs";
  EXPECT_FALSE(Objects("site-a/records/").empty());
  EXPECT_FALSE(Objects("site-a/snapshots/").empty());
  // Object keys are numbers and keyed hashes only.
  for (const auto& o : Objects("site-a/")) EXPECT_TRUE(IsOpaqueKey(o.key)) << o.key;
  const std::string patient = Dcmdump("PatientName", kCtSample);
  ASSERT_FALSE(patient.empty());
  for (const std::string& body : AllObjectBodies()) {
    for (const std::string& needle : {std::string("PATIENT-SECRET"), patient,
                                      std::string("scan.dcm"), std::string("notes.txt")}) {
      EXPECT_FALSE(Contains(body, needle)) << "the bucket holds \"" << needle << "\"";
      EXPECT_FALSE(InZstdFrames(body, needle)) << "a compressed frame holds \"" << needle << "\"";
    }
  }

  // Object Lock: every pack is under COMPLIANCE retention of at least a day, and held.
  std::vector<store::S3ObjectInfo> versions;
  ASSERT_TRUE(client_->ListVersions("site-a/packs/", &versions).ok());
  ASSERT_FALSE(versions.empty());
  for (const auto& v : versions) {
    if (v.delete_marker) continue;
    auto lock = client_->GetObjectLock(v.key, v.version_id);
    ASSERT_TRUE(lock.ok()) << lock.status().ToString();
    EXPECT_EQ(lock->mode, store::S3LockMode::kCompliance) << v.key;
    EXPECT_GE(lock->retain_until_s, ::time(nullptr) + 86400 - 600) << v.key;
    EXPECT_TRUE(lock->legal_hold) << v.key;
  }
  const store::Status refused = client_->DeleteVersion(versions[0].key, versions[0].version_id);
  EXPECT_EQ(refused.code(), store::Code::kAccess) << refused.ToString();

  ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(mnt_, model));
  ASSERT_NO_FATAL_FAILURE(UmountOk());

  // A second site: a read-only mount of the bucket, on an empty cache.
  const ProcResult mounted = MountRemote(dir_ / "cache");
  ASSERT_EQ(mounted.exit_code, 0) << mounted.err;
  ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(remote_mnt_, model));
  EXPECT_NE(WriteFile(remote_mnt_ / "ct" / "new.bin", "x"), 0) << "a remote mount is read-only";
  MedvfsOk({"umount", remote_mnt_.string()});

  // Disaster recovery: a complete local archive from the bucket, which verifies.
  const stdfs::path restored = dir_ / "restored";
  ASSERT_NO_FATAL_FAILURE(MedvfsOk({"restore-remote", url_, restored.string()}, 300));
  ASSERT_NO_FATAL_FAILURE(MedvfsOk({"verify", restored.string()}, 300));
  ASSERT_NO_FATAL_FAILURE(MedvfsOk({"verify", "--remote", "offsite", archive_.string()}, 300));
  archive_ = restored;
  ASSERT_NO_FATAL_FAILURE(MountOk("ro"));
  ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(mnt_, model));
}

// A daemon killed while an upload is under way (the gateway frozen mid-request) loses nothing:
// the next mount resumes the queue and the bucket ends up with every version.
TEST_F(RemoteMountTest, KilledDuringAnUploadResumesAndLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(AddRemote());
  ASSERT_NO_FATAL_FAILURE(MountOk("pack_size=1M,snapshot_interval=1"));
  Model model;
  std::mt19937_64 rng(7);
  ASSERT_NO_FATAL_FAILURE(RandomSaves(model, rng, 10, 200 << 10));
  ASSERT_NO_FATAL_FAILURE(MedvfsOk({"remote", "sync", archive_.string()}));
  ASSERT_NO_FATAL_FAILURE(FreezeGateway());
  ASSERT_NO_FATAL_FAILURE(RandomSaves(model, rng, 30, 400 << 10));
  // The mount's replication is now stuck in a request to the frozen gateway.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ASSERT_EQ(kill(daemon_pid_, SIGKILL), 0);
  ASSERT_TRUE(PollUntil([&] { return kill(daemon_pid_, 0) != 0; }, 10000));
  daemon_pid_ = 0;
  ResumeGateway();
  const ProcResult remounted = Mount("pack_size=1M,snapshot_interval=1");
  ASSERT_EQ(remounted.exit_code, 0) << remounted.err;
  EXPECT_TRUE(Contains(remounted.err, "left mounted by a medvfs daemon that died"))
      << remounted.err;
  daemon_pid_ = static_cast<pid_t>(std::stol(ReadFile(archive_ / "medvfs.pid")));
  ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(mnt_, model));
  ASSERT_NO_FATAL_FAILURE(MedvfsOk({"remote", "sync", archive_.string()}));
  EXPECT_EQ(RemoteStatus().value("lag_bytes", uint64_t{1}), 0u);
  ASSERT_NO_FATAL_FAILURE(UmountOk());
  const ProcResult mounted = MountRemote(dir_ / "cache");
  ASSERT_EQ(mounted.exit_code, 0) << mounted.err;
  ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(remote_mnt_, model));
}

// With the gateway frozen for a minute, the mount goes on saving and reading; only the lag
// grows. Once the gateway is back, replication catches up by itself.
TEST_F(RemoteMountTest, AGatewayOutageOnlyGrowsTheLag) {
  ASSERT_NO_FATAL_FAILURE(MountOk("pack_size=1M,snapshot_interval=1"));
  ASSERT_NO_FATAL_FAILURE(AddRemote());  // through the daemon
  Model model;
  std::mt19937_64 rng(11);
  ASSERT_NO_FATAL_FAILURE(RandomSaves(model, rng, 5, 100 << 10));
  ASSERT_TRUE(PollUntil([&] { return RemoteStatus().value("snapshot_seq", 0) > 0; }, 60000));
  ASSERT_NO_FATAL_FAILURE(FreezeGateway());
  const int outage_s = 60;  // the minute
  Json first;
  for (int second = 0; second < outage_s; second += 5) {
    ASSERT_NO_FATAL_FAILURE(RandomSaves(model, rng, 3, 500 << 10));
    ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(mnt_, model));
    std::this_thread::sleep_for(std::chrono::seconds(5));
    if (first.empty()) first = RemoteStatus();
  }
  const Json during = RemoteStatus();
  EXPECT_GT(during.value("lag_bytes", uint64_t{0}), 0u) << during.dump();
  EXPECT_GT(during.value("lag_seconds", int64_t{0}), first.value("lag_seconds", int64_t{0}))
      << first.dump() << during.dump();
  const ProcResult stats = Medvfs({"stats", "--json", mnt_.string()});
  EXPECT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_GT(Json::parse(stats.out, nullptr, false).value("remote_lag_bytes", uint64_t{0}), 0u)
      << stats.out;
  ResumeGateway();
  // The retry pauses grow to at most two minutes; the stall timeout is 30 s.
  ASSERT_TRUE(PollUntil(
      [&] {
        const Json s = RemoteStatus();
        return s.value("lag_bytes", uint64_t{1}) == 0 && s.value("lag_seconds", int64_t{1}) == 0;
      },
      240000))
      << RemoteStatus().dump();
  ASSERT_NO_FATAL_FAILURE(UmountOk());
  const ProcResult mounted = MountRemote(dir_ / "cache");
  ASSERT_EQ(mounted.exit_code, 0) << mounted.err;
  ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(remote_mnt_, model));
}

// local_packs: an archive keeping 2 packs on its disk, with many more of data, reads every
// version correctly, mounted again too, and verifies.
TEST_F(RemoteMountTest, KeepingFewerLocalPacksThanDataReadsEverything) {
  ASSERT_NO_FATAL_FAILURE(AddRemote());
  ASSERT_NO_FATAL_FAILURE(MountOk("pack_size=1M,local_packs=2,cache_size=16M"));
  Model model;
  std::mt19937_64 rng(3);
  ASSERT_NO_FATAL_FAILURE(RandomSaves(model, rng, 30, 700 << 10));
  ASSERT_NO_FATAL_FAILURE(MedvfsOk({"remote", "sync", archive_.string()}));
  const Json status = RemoteStatus();
  EXPECT_GT(status.value("packs_evicted", uint64_t{0}), 3u) << status.dump();
  size_t local_sealed = 0;
  for (const auto& entry : stdfs::directory_iterator(archive_ / "packs")) {
    if (entry.path().extension() == ".pack") ++local_sealed;
  }
  EXPECT_LE(local_sealed, 2u + 4u) << "2 sealed packs, and at most 4 taking appends";
  ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(mnt_, model));
  ASSERT_NO_FATAL_FAILURE(UmountOk());
  ASSERT_NO_FATAL_FAILURE(MountOk("pack_size=1M,local_packs=2"));
  ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(mnt_, model));
  ASSERT_NO_FATAL_FAILURE(UmountOk());
  // A backup directory cannot hold packs the disk no longer has: refused, not incomplete.
  const ProcResult backup = Medvfs({"backup", archive_.string(), (dir_ / "backup").string()});
  EXPECT_NE(backup.exit_code, 0) << backup.out;
  EXPECT_TRUE(Contains(backup.err, "local_packs")) << backup.err;
  const ProcResult verified = Medvfs({"verify", archive_.string()}, 300);
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_TRUE(Contains(verified.out, "in the S3 remote only")) << verified.out;
}

// What an admin meets when something is off: each error says what and what to do, and none
// names a secret.
TEST_F(RemoteMountTest, CommandLineErrorsAreClear) {
  auto fails_with = [&](const std::vector<std::string>& args, const std::string& needle,
                        const EnvChanges& env = {}) {
    std::vector<std::string> argv = args;
    argv.insert(argv.begin(), MEDVFS_BIN);
    EnvChanges full = {{"MEDVFS_PASSPHRASE", kPassphrase}, {"MEDVFS_STATE_DIR", StateDir()}};
    for (const auto& [k, v] : env) full[k] = v;
    const ProcResult r = RunProgram(argv, full, 120);
    EXPECT_NE(r.exit_code, 0) << testing::PrintToString(args);
    EXPECT_TRUE(Contains(r.err, needle)) << testing::PrintToString(args) << ": " << r.err;
    EXPECT_FALSE(Contains(r.err, env_.secret_access_key)) << r.err;
  };
  fails_with({"remote", "add", archive_.string(), "bad name!", url_}, "name");
  fails_with({"remote", "add", archive_.string(), "offsite", url_}, "endpoint",
             {{"AWS_ENDPOINT_URL", std::nullopt}});
  fails_with({"remote", "add", archive_.string(), "offsite", "s3://no-such-bucket-medvfs/x"},
             "does not exist");
  fails_with({"remote", "add", archive_.string(), "offsite", "http://not-s3"}, "s3://");
  fails_with({"remote", "add", archive_.string(), "offsite", url_}, "refused",
             {{"AWS_SECRET_ACCESS_KEY", "wrong-secret"}});
  // No snapshot yet: nothing to mount or restore.
  ASSERT_NO_FATAL_FAILURE(AddRemote());
  fails_with({"remote", "add", archive_.string(), "offsite", url_}, "already has a remote");
  fails_with({"restore-remote", url_, (dir_ / "r1").string()}, "no snapshot");
  EXPECT_NE(MountRemote(dir_ / "cache").exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(MedvfsOk({"remote", "sync", archive_.string()}));
  // Another archive cannot take the prefix; a wrong passphrase cannot restore.
  store::ArchiveOptions options;
  options.kdf.n = uint64_t{1} << 10;
  ASSERT_TRUE(
      store::Archive::Create(dir_ / "other", store::KeySource::Passphrase(kPassphrase), options)
          .ok());
  fails_with({"remote", "add", (dir_ / "other").string(), "offsite", url_}, "another archive");
  fails_with({"restore-remote", url_, (dir_ / "r2").string()}, "passphrase",
             {{"MEDVFS_PASSPHRASE", "not the passphrase"}});
  EXPECT_FALSE(stdfs::exists(dir_ / "r2")) << "a refused restore leaves nothing behind";
  const ProcResult list = Medvfs({"remote", "list", "--json", (dir_ / "other").string()});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(Json::parse(list.out, nullptr, false), Json::array()) << list.out;
  fails_with({"remote", "remove", archive_.string(), "nope"}, "no remote named");
  MedvfsOk({"remote", "remove", archive_.string(), "offsite"});
  EXPECT_EQ(RemoteStatus(), Json::object());
}

}  // namespace
}  // namespace medvfs::fs_test
