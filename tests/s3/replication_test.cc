// Replication to an S3 remote at the archive's API (store::Archive::Replicate, RestoreRemote,
// VerifyRemote), against the real Ceph RADOS Gateway of the s3_cluster fixture: random rounds
// of saves, purges and garbage collections, each followed by a replication round, and after
// each round the bucket alone restored into a new archive and compared with a plain model of
// every version; failures of the gateway kept for stats and recovered from.
#include <sys/stat.h>

#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/archive.h"
#include "tests/s3/s3_test_env.h"
#include "tests/store/test_util.h"

namespace medvfs::store {
namespace {

using test_util::S3TestEnv;

constexpr const char* kPassphrase = "replication test passphrase";

struct ModelVersion {
  std::string content;
  bool purged = false;
};

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(test_util::LoadS3TestEnv(&env_));
    bucket_ = test_util::UniqueBucketName("repl");
    auto client = S3Client::Create(test_util::S3TestConfig(env_, bucket_));
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(client).value();
    ASSERT_OK(client_->CreateBucket(/*object_lock=*/false));
    setenv("AWS_ACCESS_KEY_ID", env_.access_key_id.c_str(), 1);
    setenv("AWS_SECRET_ACCESS_KEY", env_.secret_access_key.c_str(), 1);
    setenv("MEDVFS_STATE_DIR", (temp_.path() / "state").c_str(), 1);
    location_.url = "s3://" + bucket_ + "/archive-1";
    location_.endpoint = env_.endpoint;
    location_.region = env_.region;
    options_.kdf.n = uint64_t{1} << 10;
    options_.pack_bytes = uint64_t{256} << 10;
    auto created = Archive::Create(temp_.path() / "archive", Key(), options_);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    archive_ = std::move(created).value();
    caller_.uid = ::geteuid();
    caller_.gid = ::getegid();
  }

  static KeySource Key() { return KeySource::Passphrase(kPassphrase); }

  void Save(const std::string& name, const std::string& content) {
    ASSERT_OK(SaveInRoot(*archive_, caller_, name, content));
    model_[name].push_back({content});
  }

  HistoryId HistoryOf(Archive& archive, const std::string& name) {
    auto record = archive.ResolveName(kRootInode, name);
    EXPECT_TRUE(record.ok()) << name << ": " << record.status().ToString();
    return record.ok() ? record->history : 0;
  }

  // Every version the model keeps, from `archive` (a restored one).
  void CheckAgainstModel(Archive& archive) {
    for (const auto& [name, versions] : model_) {
      SCOPED_TRACE(name);
      const HistoryId history = HistoryOf(archive, name);
      ASSERT_NE(history, 0u);
      for (size_t i = 0; i < versions.size(); ++i) {
        if (versions[i].purged) continue;
        EXPECT_TRUE(ReadWholeVersion(archive, history, i + 1) == versions[i].content)
            << "version " << i + 1 << " differs";
      }
    }
  }

  // The bucket alone, restored into a new archive and compared with the model; and checked.
  void RestoreAndCheck(int round) {
    const auto restored_dir = temp_.path() / ("restored-" + std::to_string(round));
    uint64_t seq = 0;
    RestoreBackupOptions options;
    ASSERT_OK(RestoreRemote(location_, restored_dir, Key(), options, caller_, &seq));
    EXPECT_GT(seq, 0u);
    ArchiveOptions open_options;
    open_options.read_only = true;
    auto restored = Archive::Open(restored_dir, Key(), open_options);
    ASSERT_TRUE(restored.ok()) << restored.status().ToString();
    ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(**restored));
    auto report = VerifyRemote(location_, Key());
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->problems.empty()) << testing::PrintToString(report->problems);
    EXPECT_EQ(report->snapshot_seq, seq);
    EXPECT_GT(report->packs_checked, 0u);
  }

  test_util::ScopedTempDir temp_;
  S3TestEnv env_;
  std::string bucket_;
  std::unique_ptr<S3Client> client_;
  RemoteLocation location_;
  ArchiveOptions options_;
  std::unique_ptr<Archive> archive_;
  Caller caller_;
  std::map<std::string, std::vector<ModelVersion>> model_;
};

TEST_F(ReplicationTest, RandomRoundsRestoreFromTheBucketAlone) {
  ASSERT_OK(archive_->AddRemote({"offsite", location_}, caller_));
  std::mt19937_64 rng(2222);
  const std::vector<std::string> names = {"a.dcm", "b.dcm", "c.bin", "d.txt"};
  uint64_t delete_markers = 0;
  uint64_t last_seq = 0;
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const int saves = 3 + static_cast<int>(rng() % 6);
    for (int i = 0; i < saves; ++i) {
      std::string content = "round " + std::to_string(round) + " ";
      const size_t size = rng() % (200 << 10);
      while (content.size() < size) content.push_back(static_cast<char>(rng()));
      ASSERT_NO_FATAL_FAILURE(Save(names[rng() % names.size()], content));
    }
    if (round >= 2 && rng() % 2 == 0) {
      // Purge an old version somewhere, then collect: packs are rewritten and removed.
      for (auto& [name, versions] : model_) {
        if (versions.size() < 2 || versions[0].purged) continue;
        PurgeRequest purge;
        purge.history = HistoryOf(*archive_, name);
        purge.number = 1;
        purge.reason = "test";
        ASSERT_OK(archive_->Purge(purge, caller_));
        versions[0].purged = true;
        break;
      }
    }
    if (rng() % 2 == 0) {
      GcRequest gc;
      gc.repack_garbage_percent = 1;
      ASSERT_OK(archive_->CollectGarbage(gc, caller_));
    }
    ReplicateRequest request;
    request.force_snapshot = true;
    auto result = archive_->Replicate("offsite", request);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_GT(result->snapshot_seq, last_seq);
    last_seq = result->snapshot_seq;
    delete_markers += result->delete_markers;
    auto remotes = archive_->ListRemotes();
    ASSERT_TRUE(remotes.ok());
    ASSERT_EQ(remotes->size(), 1u);
    EXPECT_EQ((*remotes)[0].snapshot_seq, last_seq);
    EXPECT_EQ((*remotes)[0].packs_uploaded, (*remotes)[0].packs_local);
    EXPECT_TRUE((*remotes)[0].last_error.empty()) << (*remotes)[0].last_error;
    ASSERT_NO_FATAL_FAILURE(RestoreAndCheck(round));
  }
  EXPECT_GT(delete_markers, 0u) << "snapshots beyond the kept ones, and rewritten packs, get "
                                   "delete markers";
  // Nothing medvfs did deleted an object version: every version is still listed.
  std::vector<S3ObjectInfo> versions;
  ASSERT_OK(client_->ListVersions("archive-1/", &versions));
  size_t markers = 0;
  for (const auto& v : versions) markers += v.delete_marker ? 1 : 0;
  EXPECT_EQ(markers, delete_markers);
}

// A round that the gateway refuses (wrong secret) fails, is kept for stats without any
// secret or content in it, and the next round with the right credentials catches up.
TEST_F(ReplicationTest, RefusedRoundsAreKeptAndRecoveredFrom) {
  ASSERT_OK(archive_->AddRemote({"offsite", location_}, caller_));
  ASSERT_NO_FATAL_FAILURE(Save("scan.dcm", std::string(300 << 10, 'x') + "PATIENT-NAME"));
  // Reopen with a wrong secret in the environment: the remote's client is made afresh.
  archive_.reset();
  setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret", 1);
  auto reopened = Archive::Open(temp_.path() / "archive", Key(), options_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  archive_ = std::move(reopened).value();
  ReplicateRequest request;
  request.force_snapshot = true;
  auto refused = archive_->Replicate("offsite", request);
  ASSERT_FALSE(refused.ok());
  const std::string message = refused.status().ToString();
  EXPECT_EQ(message.find("not-the-secret"), std::string::npos) << message;
  EXPECT_EQ(message.find("PATIENT-NAME"), std::string::npos) << message;
  auto remotes = archive_->ListRemotes();
  ASSERT_TRUE(remotes.ok());
  ASSERT_EQ(remotes->size(), 1u);
  EXPECT_FALSE((*remotes)[0].last_error.empty());
  EXPECT_GT((*remotes)[0].lag_bytes, 0u);
  EXPECT_EQ((*remotes)[0].snapshot_seq, 0u);

  archive_.reset();
  setenv("AWS_SECRET_ACCESS_KEY", env_.secret_access_key.c_str(), 1);
  reopened = Archive::Open(temp_.path() / "archive", Key(), options_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  archive_ = std::move(reopened).value();
  auto accepted = archive_->Replicate("offsite", request);
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  remotes = archive_->ListRemotes();
  ASSERT_TRUE(remotes.ok());
  EXPECT_TRUE((*remotes)[0].last_error.empty());
  EXPECT_EQ((*remotes)[0].lag_bytes, 0u);
  ASSERT_NO_FATAL_FAILURE(RestoreAndCheck(0));
}

// The bucket prefix of one archive cannot be taken by another; a wrong passphrase cannot
// restore; a damaged object in the bucket is found by VerifyRemote and refused by a restore.
TEST_F(ReplicationTest, ForeignPrefixesWrongKeysAndDamageAreRefused) {
  ASSERT_OK(archive_->AddRemote({"offsite", location_}, caller_));
  ASSERT_NO_FATAL_FAILURE(Save("a.dcm", std::string(600 << 10, 'a')));
  ReplicateRequest request;
  request.force_snapshot = true;
  ASSERT_OK(archive_->Replicate("offsite", request));

  auto other = Archive::Create(temp_.path() / "other", Key(), options_);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->AddRemote({"offsite", location_}, caller_).code(), Code::kExists);
  EXPECT_EQ(archive_->AddRemote({"offsite", location_}, caller_).code(), Code::kExists);
  EXPECT_EQ(archive_->AddRemote({"bad name!", location_}, caller_).code(), Code::kInvalid);

  uint64_t seq = 0;
  EXPECT_EQ(RestoreRemote(location_, temp_.path() / "wrong-key",
                          KeySource::Passphrase("not the passphrase"), {}, caller_, &seq)
                .code(),
            Code::kWrongKey);
  EXPECT_FALSE(std::filesystem::exists(temp_.path() / "wrong-key"))
      << "a failed restore leaves nothing behind";

  // Damage: a pack object replaced by other bytes of the same size.
  std::vector<S3ObjectInfo> packs;
  ASSERT_OK(client_->List("archive-1/packs/", &packs));
  ASSERT_FALSE(packs.empty());
  std::string body;
  ASSERT_OK(client_->Get(packs[0].key, &body));
  body[body.size() / 2] ^= 0x40;
  ASSERT_TRUE(client_->Put(packs[0].key, body).ok());
  auto report = VerifyRemote(location_, Key());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->problems.empty()) << "a flipped byte in a pack must be found";
}

}  // namespace
}  // namespace medvfs::store
