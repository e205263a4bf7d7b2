// Bad input never takes the mount down: malformed DICOM of many kinds, extreme names, paths
// and attribute sizes, concurrent writers to one file, rename cycles and bogus `@version`
// lookups each get an answer (data or an errno), and afterwards the same daemon still serves
// and `medvfs verify` passes.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/fs/mount_fixture.h"

namespace medvfs::fs_test {
namespace {

namespace stdfs = std::filesystem;

std::string U16(uint16_t v) {
  return std::string{static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
}
std::string U32(uint32_t v) {
  return U16(static_cast<uint16_t>(v & 0xffff)) + U16(static_cast<uint16_t>(v >> 16));
}

// An explicit-VR little-endian element with a 16-bit length.
std::string Element(uint16_t group, uint16_t element, const char* vr, const std::string& value) {
  return U16(group) + U16(element) + vr + U16(static_cast<uint16_t>(value.size())) + value;
}

// Preamble, "DICM" and a file meta group naming explicit VR little endian.
std::string DicomStart() {
  const std::string syntax =
      Element(0x0002, 0x0010, "UI", std::string("1.2.840.10008.1.2.1") + '\0');
  return std::string(128, '\0') + "DICM" +
         Element(0x0002, 0x0000, "UL", U32(static_cast<uint32_t>(syntax.size()))) + syntax;
}

// Sequences nested `depth` deep, all of undefined length.
std::string DeepSequences(int depth) {
  std::string bytes = DicomStart();
  for (int i = 0; i < depth; ++i) {
    bytes += U16(0x0008) + U16(0x1115) + "SQ" + U16(0) + U32(0xffffffff);
    bytes += U16(0xfffe) + U16(0xe000) + U32(0xffffffff);
  }
  bytes += Element(0x0010, 0x0010, "PN", "DEEP^PATIENT");
  for (int i = 0; i < depth; ++i) {
    bytes += U16(0xfffe) + U16(0xe00d) + U32(0);
    bytes += U16(0xfffe) + U16(0xe0dd) + U32(0);
  }
  return bytes;
}

// Malformed DICOM files, by what is wrong with them.
std::vector<std::pair<std::string, std::string>> MalformedDicom() {
  std::vector<std::pair<std::string, std::string>> files;
  const std::string sample = ReadFile(store::test_util::kPydicomSamples / "CT_small.dcm");
  for (size_t cut : {size_t{0}, size_t{100}, size_t{131}, size_t{132}, size_t{140}, size_t{400},
                     sample.size() / 2, sample.size() - 1}) {
    if (cut <= sample.size())
      files.emplace_back("truncated-" + std::to_string(cut) + ".dcm", sample.substr(0, cut));
  }
  files.emplace_back("garbage.dcm", std::string(128, '\0') + "DICM" + std::string(5000, '\xff'));
  // A value length far past the end of the file, and one just under 4 GiB.
  files.emplace_back("huge-length.dcm", DicomStart() + U16(0x0010) + U16(0x0010) + "UN" + U16(0) +
                                            U32(0xfffffff0) + "x");
  files.emplace_back("huge-value.dcm", DicomStart() + U16(0x0008) + U16(0x103e) + "UT" + U16(0) +
                                           U32(8 << 20) + std::string(8 << 20, 'A'));
  files.emplace_back("deep-200.dcm", DeepSequences(200));
  files.emplace_back("deep-20000.dcm", DeepSequences(20000));
  files.emplace_back("odd-length.dcm", DicomStart() + Element(0x0010, 0x0010, "PN", "ODD"));
  files.emplace_back("bad-vr.dcm", DicomStart() + Element(0x0010, 0x0010, "\x01\x02", "X"));
  // Items and delimiters where elements belong.
  files.emplace_back("stray-delimiters.dcm", DicomStart() + U16(0xfffe) + U16(0xe0dd) + U32(0) +
                                                 U16(0xfffe) + U16(0xe000) + U32(0xfffffff0));
  // A sample whose pixel data length lies.
  std::string lying = sample;
  const size_t pixel = lying.rfind(std::string("\xe0\x7f\x10\x00", 4));
  if (pixel != std::string::npos && pixel + 12 <= lying.size()) {
    lying.replace(pixel + 8, 4, U32(0x7ffffff0));
    files.emplace_back("lying-pixels.dcm", lying);
  }
  return files;
}

class BadInputTest : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    MountOk();
  }

  // The same daemon still answers, and a normal save works.
  void ExpectDaemonServes(const std::string& after) {
    ASSERT_EQ(kill(daemon_pid_, 0), 0) << "the daemon died after " << after;
    ASSERT_TRUE(IsMedvfsMount(mnt_)) << after;
    EXPECT_EQ(WriteFile(P("alive.txt"), after), 0) << after;
    EXPECT_EQ(ReadFile(P("alive.txt")), after);
  }

  void ExpectVerifyPasses() {
    UmountOk();
    const ProcResult verify = RunProgram({MEDVFS_BIN, "verify", archive_.string()},
                                         {{"MEDVFS_PASSPHRASE", kPassphrase}}, 120);
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  }
};

TEST_F(BadInputTest, MalformedDicomIsStoredAsBytesAndItsViewsAnswer) {
  for (const auto& [name, bytes] : MalformedDicom()) {
    ASSERT_EQ(WriteFile(P(name), bytes), 0) << name;
    EXPECT_TRUE(ReadFile(P(name)) == bytes) << name << " did not read back byte for byte";
    EXPECT_TRUE(ReadFile(P("@version/" + name + "/v1")) == bytes) << name;
    // The tag views answer with something or with an errno, never by dying.
    ReadFile(P(".meta/" + name + "/dicom.json"));
    ListDir(P(".meta/" + name + "/tags"));
    char value[256];
    getxattr(P(name).c_str(), "user.dicom.PatientName", value, sizeof(value));
    ExpectDaemonServes(name);
  }
  ExpectVerifyPasses();
}

TEST_F(BadInputTest, ExtremeNamesPathsAndAttributes) {
  // Names of 255 bytes work; 256 is ENAMETOOLONG.
  const std::string longest(255, 'n');
  EXPECT_EQ(ErrnoName(WriteFile(P(longest), "x")), "ok");
  EXPECT_EQ(ErrnoName(WriteFile(P(longest + "n"), "x")), "ENAMETOOLONG");
  // Invalid UTF-8 and control characters are just bytes in a name.
  for (const std::string& name : {std::string("\xff\xfe\x80"),
                                  std::string("a\x01\x1f"
                                              "b"),
                                  std::string("\xc3\x28"), std::string("\xed\xa0\x80")}) {
    EXPECT_EQ(ErrnoName(WriteFile(P(name), name)), "ok");
    EXPECT_EQ(ReadFile(P(name)), name);
    EXPECT_EQ(ReadFile(P("@version/" + name + "/v1")), name);
  }
  // A path near PATH_MAX: directories of 200 bytes, 19 deep (3,819 bytes + the mount point).
  stdfs::path deep = mnt_;
  for (int i = 0; i < 19 && deep.string().size() + 201 < 4000; ++i) {
    deep /= std::string(200, static_cast<char>('a' + i));
    ASSERT_EQ(mkdir(deep.c_str(), 0755), 0) << std::strerror(errno);
  }
  EXPECT_EQ(ErrnoName(WriteFile(deep / "f", "deep")), "ok");
  EXPECT_EQ(ReadFile(deep / "f"), "deep");
  const stdfs::path too_long = deep / std::string(255, 'z') / std::string(255, 'z');
  EXPECT_EQ(ErrnoName(WriteFile(too_long, "x")),
            too_long.string().size() >= 4096 ? "ENAMETOOLONG" : "ENOENT");
  // Extended attributes at the limits: a 255-byte name, a 64 KiB value; one byte more fails.
  const std::string attr_name = "user." + std::string(250, 'k');
  const std::string big_value(64 * 1024, 'v');
  EXPECT_EQ(ErrnoName(ErrnoOf(setxattr(P(longest).c_str(), attr_name.c_str(), big_value.data(),
                                       big_value.size(), 0))),
            "ok");
  std::string read_back(big_value.size(), '\0');
  EXPECT_EQ(getxattr(P(longest).c_str(), attr_name.c_str(), read_back.data(), read_back.size()),
            static_cast<ssize_t>(big_value.size()));
  EXPECT_TRUE(read_back == big_value);
  EXPECT_NE(ErrnoName(ErrnoOf(setxattr(P(longest).c_str(), (attr_name + "k").c_str(), "v", 1, 0))),
            "ok");
  const std::string too_big(64 * 1024 + 1, 'v');
  EXPECT_NE(ErrnoName(ErrnoOf(
                setxattr(P(longest).c_str(), "user.big", too_big.data(), too_big.size(), 0))),
            "ok");
  ExpectDaemonServes("extreme names");
  ExpectVerifyPasses();
}

TEST_F(BadInputTest, ConcurrentWritersAndRenameCycles) {
  // Eight threads write, truncate and close the same file at once.
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([this, t] {
      for (int i = 0; i < 25; ++i) {
        const int fd =
            open(P("shared.dat").c_str(), O_WRONLY | O_CREAT | (i % 3 == 0 ? O_TRUNC : 0), 0644);
        if (fd < 0) continue;
        const std::string block(4096 * (1 + (t + i) % 7), static_cast<char>('a' + t));
        if (pwrite(fd, block.data(), block.size(), static_cast<off_t>(((t * 31 + i) % 64) * 4096)) <
            0) {
          ADD_FAILURE() << "pwrite: " << std::strerror(errno);
        }
        if (i % 5 == 0) ftruncate(fd, 4096 * (i % 9));
        close(fd);
      }
    });
  }
  for (auto& w : writers) w.join();
  // Whatever won, the file reads whole and every version opens.
  const std::string final_content = ReadFile(P("shared.dat"));
  for (const std::string& entry : ListDir(P("@version/shared.dat"))) {
    if (entry[0] == 'v') ReadFile(P("@version/shared.dat/" + entry));
  }
  // Rename cycles: a → b → c → a, a directory into its own subtree, over and over.
  ASSERT_EQ(mkdir(P("a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("a/sub").c_str(), 0755), 0);
  EXPECT_EQ(ErrnoName(ErrnoOf(rename(P("a").c_str(), P("a/sub/a").c_str()))), "EINVAL");
  ASSERT_EQ(WriteFile(P("r1"), "one"), 0);
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(rename(P("r1").c_str(), P("r2").c_str()), 0);
    ASSERT_EQ(rename(P("r2").c_str(), P("a/r3").c_str()), 0);
    ASSERT_EQ(rename(P("a/r3").c_str(), P("r1").c_str()), 0);
  }
  EXPECT_EQ(ReadFile(P("r1")), "one");
  ExpectDaemonServes("concurrent writers");
  ExpectVerifyPasses();
}

TEST_F(BadInputTest, BogusVersionLookupsAreNotFound) {
  ASSERT_EQ(WriteFile(P("scan.dcm"), "v1"), 0);
  ASSERT_EQ(WriteFile(P("scan.dcm"), "v2"), 0);
  for (const char* entry :
       {"v0", "v3", "v-1", "v+1", "v18446744073709551615", "v18446744073709551616",
        "v99999999999999999999999", "v1x", "V1", "v", "v 1", "v01", "v1_", "vv1", "\xff"}) {
    struct stat st {};
    const int rc = stat(P(std::string("@version/scan.dcm/") + entry).c_str(), &st);
    if (rc == 0) {
      // Some spellings legitimately name a version ("v1_" and "v01" parse as version 1).
      EXPECT_TRUE(S_ISREG(st.st_mode)) << entry;
    } else {
      EXPECT_EQ(ErrnoName(errno), "ENOENT") << entry;
    }
  }
  for (const char* time :
       {"@", "@x", "@9999-99-99T99:99:99Z", "@0000-01-01T00:00:00Z", "@1969-12-31T23:59:59Z",
        "@2262-04-12T00:00:00Z", "@99999999999999999999", "@-1", "@2026-02-30T00:00:00Z",
        "@2026-11-21T10:00:00+99:99", "@2026-11-21T10:00:00.9999999999999Z"}) {
    struct stat st {};
    if (stat(P(std::string("@version/") + time).c_str(), &st) == 0) {
      EXPECT_TRUE(S_ISDIR(st.st_mode)) << time;
      ListDir(P(std::string("@version/") + time));
    } else {
      EXPECT_EQ(ErrnoName(errno), "ENOENT") << time;
    }
  }
  ExpectDaemonServes("bogus lookups");
  EXPECT_EQ(ReadFile(P("@version/scan.dcm/v1")), "v1");
  ExpectVerifyPasses();
}

}  // namespace
}  // namespace medvfs::fs_test
