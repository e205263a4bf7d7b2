// `medvfs note`: notes on versions, set and printed on an unmounted archive and through a
// mount. A note is metadata: it never makes a version.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/archive.h"
#include "tests/tools/cli_fixture.h"
#include "tests/tools/subprocess.h"

namespace medvfs::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(CliTest, NoteSetsAndPrintsTheNoteOfAVersion) {
  InitArchive();
  Populate({"write:/scan.dcm=first", "write:/scan.dcm=second!"});
  const std::string scan = InArchive("/scan.dcm");
  RunResult set = Medvfs({"note", scan, "checked by Dr. Who"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_THAT(set.out, HasSubstr("version 2"));
  EXPECT_EQ(Medvfs({"note", scan}).out, "checked by Dr. Who\n");

  RunResult set_first = Medvfs({"note", scan, "--version", "1", "original import\n"});
  ASSERT_EQ(set_first.exit_code, 0) << set_first.err;
  EXPECT_THAT(set_first.out, HasSubstr("version 1"));
  EXPECT_EQ(Medvfs({"note", scan, "--version", "1"}).out, "original import\n");
  EXPECT_EQ(Medvfs({"note", scan}).out, "checked by Dr. Who\n");

  nlohmann::json versions = LogJson(scan)["versions"];
  ASSERT_EQ(versions.size(), 2u) << "a note made a version: " << versions.dump();
  EXPECT_EQ(versions[0]["note"], "original import");
  EXPECT_EQ(versions[1]["note"], "checked by Dr. Who");

  RunResult clear = Medvfs({"note", "--archive", archive_.string(), "scan.dcm", ""});
  ASSERT_EQ(clear.exit_code, 0) << clear.err;
  EXPECT_THAT(clear.out, HasSubstr("Cleared"));
  RunResult empty = Medvfs({"note", scan});
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_EQ(empty.out, "");
}

TEST_F(CliTest, NoteFailsClearly) {
  InitArchive();
  Populate({"write:/scan.dcm=first", "write:/gone.dcm=x", "rm:/gone.dcm"});
  RunResult unknown = Medvfs({"note", InArchive("/scan.dcm"), "--version", "9", "text"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(unknown));
  EXPECT_THAT(unknown.err, HasSubstr("no version 9"));
  RunResult deleted = Medvfs({"note", InArchive("/gone.dcm"), "text"});
  EXPECT_EQ(deleted.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(deleted));
  EXPECT_THAT(deleted.err, HasSubstr("deleted"));
  EXPECT_EQ(Medvfs({"note", InArchive("/gone.dcm"), "--version", "1", "text"}).exit_code, 0);
  RunResult never = Medvfs({"note", InArchive("/never.dcm")});
  EXPECT_EQ(never.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(never));
  RunResult too_long = Medvfs({"note", InArchive("/scan.dcm"), std::string(70 * 1024, 'a')});
  EXPECT_EQ(too_long.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(too_long));
  EXPECT_THAT(too_long.err, HasSubstr("too long"));

  auto held = store::Archive::Open(archive_, store::KeySource::Passphrase(kPassphrase));
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  RunResult busy = Medvfs({"note", InArchive("/scan.dcm"), "text"});
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(busy));
  EXPECT_THAT(busy.err, HasSubstr("in use"));
}

TEST_F(CliMountTest, NoteThroughTheMount) {
  const std::filesystem::path scan = mnt_ / "scan.dcm";
  Save(scan, "first");
  Save(scan, "second!");
  if (!std::filesystem::exists(mnt_ / ".meta" / "scan.dcm" / "note")) {
    GTEST_FAIL() << "this mount has no .meta views yet";
  }
  RunResult set = Medvfs({"note", scan.string(), "checked"}, NoKey());
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_THAT(set.out, HasSubstr("version 2"));
  EXPECT_EQ(Medvfs({"note", scan.string()}, NoKey()).out, "checked\n");
  RunResult set_first = Medvfs({"note", scan.string(), "--version", "1", "import"}, NoKey());
  ASSERT_EQ(set_first.exit_code, 0) << set_first.err;
  EXPECT_EQ(Medvfs({"note", scan.string(), "--version", "1"}, NoKey()).out, "import\n");

  RunResult log = Medvfs({"log", scan.string(), "--json"}, NoKey());
  ASSERT_EQ(log.exit_code, 0) << log.err;
  nlohmann::json versions = nlohmann::json::parse(log.out)["versions"];
  ASSERT_EQ(versions.size(), 2u) << "a note made a version: " << log.out;
  EXPECT_EQ(versions[0]["note"], "import");
  EXPECT_EQ(versions[1]["note"], "checked");

  std::filesystem::remove(scan);
  RunResult deleted = Medvfs({"note", scan.string(), "text"}, NoKey());
  EXPECT_EQ(deleted.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(deleted));
  EXPECT_THAT(deleted.err, HasSubstr("deleted"));

  // The archive kept the notes; a read-only mount refuses a new one.
  Unmount();
  EXPECT_EQ(Medvfs({"note", InArchive("/scan.dcm"), "--version", "2"}).out, "checked\n");
  EXPECT_EQ(Medvfs({"note", InArchive("/scan.dcm"), "--version", "1"}).out, "import\n");
  RunResult mount = Medvfs({"mount", archive_.string(), mnt_.string(), "-o", "ro"});
  ASSERT_EQ(mount.exit_code, 0) << mount.err;
  mounted_ = true;
  RunResult read_only = Medvfs({"note", scan.string(), "--version", "2", "other"}, NoKey());
  EXPECT_EQ(read_only.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(read_only));
  EXPECT_THAT(read_only.err, HasSubstr("read-only"));
  EXPECT_EQ(Medvfs({"note", scan.string(), "--version", "2"}, NoKey()).out, "checked\n");
}

}  // namespace
}  // namespace medvfs::testing
