// `medvfs receive`: DCMTK's storescu/echoscu, a raw upper-layer client (dicom_raw_store.py)
// and Orthanc send to the receiver, which runs as a subprocess on an unmounted archive or on a
// mount; what arrives is read back with `medvfs cat`/`log`/`audit` or through the mount.
// Skipped without dcmtk's tools or python3-pydicom's samples (the Orthanc test without Orthanc).
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/posix_regex.h"
#include "tests/tools/cli_fixture.h"

namespace medvfs::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr const char* kAet = "MEDVFS";
const fs::path kRawStore = fs::path(MEDVFS_TEST_SOURCE_DIR) / "dicom_raw_store.py";

// `medvfs receive` as a child process, stopped by SIGTERM to its pid.
class Receiver {
 public:
  ~Receiver() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Starts it and waits for its "listening on ADDRESS:PORT" line; false if it does not come.
  bool Start(const std::vector<std::string>& args, const RunOptions& options, const fs::path& log) {
    log_ = log;
    std::vector<std::string> argv = {MEDVFS_BIN, "receive"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = SpawnProgram(argv, options, log);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = ReadAll(log_);
      if (auto port = RegexSearch(text, "listening on [0-9.]+:([0-9]+) ", 1)) {
        port_ = *port;
        return true;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // SIGTERM, then its exit code.
  int Stop() {
    kill(pid_, SIGTERM);
    const int code = WaitExit(pid_, std::chrono::seconds(30));
    pid_ = -1;
    return code;
  }
  const std::string& port() const { return port_; }
  std::string Log() const { return ReadAll(log_); }

 private:
  pid_t pid_ = -1;
  std::string port_;
  fs::path log_;
};

// A value as the receiver puts it into a path (see store::SanitizePathValue).
std::string Sanitize(std::string value) {
  const size_t first = value.find_first_not_of(' ');
  if (first == std::string::npos) return "UNKNOWN";
  value = value.substr(first, value.find_last_not_of(' ') - first + 1);
  for (char& c : value) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("._ ^=+-").find(c) == std::string_view::npos) {
      c = '_';
    }
  }
  if (value[0] == '.') value[0] = '_';
  return value;
}

// Where the default template puts `file` (from the archive root).
std::string ExpectedPath(const fs::path& file) {
  auto v = [&](const char* keyword) { return Sanitize(DcmdumpValue(file, keyword)); };
  return "/" + v("PatientID") + "/" + v("StudyDate") + "_" + v("StudyInstanceUID") + "/" +
         v("SeriesNumber") + "_" + v("SeriesInstanceUID") + "/" + v("SOPInstanceUID") + ".dcm";
}

// The data set of a Part 10 file: the bytes after its File Meta Information.
std::string DatasetBytes(const std::string& file) {
  if (file.size() < 144 || file.compare(128, 4, "DICM") != 0) return "";
  uint32_t group_length = 0;
  for (int i = 3; i >= 0; --i) {
    group_length = (group_length << 8) | static_cast<uint8_t>(file[140 + static_cast<size_t>(i)]);
  }
  return file.substr(144 + group_length);
}

// The transfer syntax UID of a DICOM file, as a number ("1.2.840.10008.1.2"), or "".
std::string TransferSyntaxOf(const fs::path& file) {
  RunResult dump =
      RunProgram({FindProgram("dcmdump"), "-q", "-Un", "+P", "TransferSyntaxUID", file.string()});
  const size_t open = dump.out.find('[');
  const size_t close = dump.out.find(']', open);
  if (open == std::string::npos || close == std::string::npos) return "";
  return dump.out.substr(open + 1, close - open - 1);
}

std::string MissingTools() {
  for (const char* tool : {"storescu", "echoscu", "dcmconv", "dcmodify", "dump2dcm", "dcmdump",
                           "dcmcjpeg", "dcmcjpls", "dcmcrle", "python3"}) {
    if (FindProgram(tool).empty()) return std::string(tool) + " (package dcmtk) is not installed";
  }
  if (!fs::exists(fs::path(kDicomSamples) / "CT_small.dcm")) {
    return "python3-pydicom's sample files are not installed";
  }
  return "";
}

// The helpers both fixtures share; Base is CliTest or CliMountTest.
template <typename Base>
class ReceiveFixture : public Base {
 protected:
  void SetUp() override {
    Base::SetUp();
    if (::testing::Test::IsSkipped() || ::testing::Test::HasFatalFailure()) return;
    if (const std::string missing = MissingTools(); !missing.empty()) GTEST_FAIL() << missing;
    fs::create_directories(this->dir_ / "in");
  }
  void TearDown() override {
    if (receiver_) {
      EXPECT_EQ(receiver_->Stop(), 0) << receiver_->Log();
    }
    Base::TearDown();
  }

  // Starts `medvfs receive TARGET --aet MEDVFS --port 0 EXTRA...`.
  void StartReceiver(const std::string& target, const std::vector<std::string>& extra = {},
                     const RunOptions* options = nullptr) {
    std::vector<std::string> args = {target, "--aet", kAet, "--port", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    receiver_.emplace();
    ASSERT_TRUE(receiver_->Start(args, options ? *options : this->Options(),
                                 this->dir_ / ("receive" + std::to_string(++runs_) + ".log")))
        << receiver_->Log();
  }
  // Stops it (SIGTERM) and checks that it exits 0; returns its log.
  std::string StopReceiver() {
    std::string log = receiver_->Log();
    EXPECT_EQ(receiver_->Stop(), 0) << log;
    receiver_.reset();
    return log;
  }

  // PROGRAM -aec MEDVFS OPTIONS... 127.0.0.1 PORT FILES...
  std::vector<std::string> ScuArgs(const std::string& program,
                                   const std::vector<std::string>& options,
                                   const std::vector<std::string>& files = {}) const {
    std::vector<std::string> argv = {FindProgram(program), "-aec", kAet};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back("127.0.0.1");
    argv.push_back(receiver_->port());
    argv.insert(argv.end(), files.begin(), files.end());
    return argv;
  }
  // storescu with ARGS: options first, files last (as storescu wants them).
  RunResult StoreScu(const std::vector<std::string>& args) const {
    std::vector<std::string> options;
    std::vector<std::string> files;
    for (const std::string& arg : args) {
      (arg[0] == '-' || arg[0] == '+' ? options : files).push_back(arg);
    }
    return RunProgram(ScuArgs("storescu", options, files));
  }

  // A copy of a pydicom sample as DCMTK writes it (same transfer syntax) and without Data Set
  // Trailing Padding (storescu leaves it out), so that what storescu sends (it re-encodes what
  // it reads) is the file's data set byte for byte; with a SOP Instance UID of its own (some
  // samples share one, and would share a path).
  fs::path Normalized(const std::string& sample) {
    const fs::path out = this->dir_ / "in" / sample;
    RunResult conv = RunProgram(
        {FindProgram("dcmconv"), (fs::path(kDicomSamples) / sample).string(), out.string()});
    EXPECT_EQ(conv.exit_code, 0) << conv.err;
    RunResult unpad = RunProgram(
        {FindProgram("dcmodify"), "-nb", "-imt", "-gin", "-ea", "(fffc,fffc)", out.string()});
    EXPECT_EQ(unpad.exit_code, 0) << unpad.err;
    return out;
  }

  // Runs `tool` (dcmcjpeg...) on `in` into dir_/in/NAME.
  fs::path Converted(const std::string& tool, const fs::path& in, const std::string& name) {
    const fs::path out = this->dir_ / "in" / name;
    RunResult conv = RunProgram({FindProgram(tool), in.string(), out.string()});
    EXPECT_EQ(conv.exit_code, 0) << conv.err;
    RunResult uid = RunProgram({FindProgram("dcmodify"), "-nb", "-gin", out.string()});
    EXPECT_EQ(uid.exit_code, 0) << uid.err;
    return out;
  }

  std::optional<Receiver> receiver_;
  int runs_ = 0;
};

using ReceiveTest = ReceiveFixture<CliTest>;
using ReceiveMountTest = ReceiveFixture<CliMountTest>;

// The stored file has the sent file's transfer syntax and, byte for byte (unless `exact` is
// false: only the same instance), its data set.
void ExpectSameDataset(const std::string& stored, const fs::path& sent, bool exact = true) {
  const std::string sent_bytes = ReadAll(sent);
  ASSERT_FALSE(stored.empty()) << sent;
  EXPECT_EQ(stored.compare(128, 4, "DICM"), 0) << sent;
  const fs::path copy = sent.string() + ".received";
  Save(copy, stored);
  EXPECT_EQ(TransferSyntaxOf(copy), TransferSyntaxOf(sent)) << sent;
  EXPECT_NE(TransferSyntaxOf(sent), "") << sent;
  if (!exact) {
    EXPECT_EQ(DcmdumpValue(copy, "SOPInstanceUID"), DcmdumpValue(sent, "SOPInstanceUID"));
    return;
  }
  EXPECT_TRUE(DatasetBytes(stored) == DatasetBytes(sent_bytes)) << sent << " data sets differ";
}

TEST_F(ReceiveTest, StoresSamplesBitForBitAtTemplatedPaths) {
  InitArchive();
  const std::vector<std::string> samples = {
      "CT_small.dcm",         "MR_small.dcm",    "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
      "rtdose.dcm",           "rtplan.dcm",      "reportsi.dcm",          "test-SR.dcm",
      "SC_rgb_small_odd.dcm", "waveform_ecg.dcm"};
  std::vector<std::string> files;
  for (const std::string& sample : samples) files.push_back(Normalized(sample).string());
  StartReceiver(archive_.string());
  for (const std::string& file : files) {
    // storescu proposes explicit little endian first unless told otherwise, and would convert.
    const std::string syntax = TransferSyntaxOf(file);
    const std::string option = syntax == "1.2.840.10008.1.2"     ? "-xi"
                               : syntax == "1.2.840.10008.1.2.2" ? "-xb"
                                                                 : "-xe";
    RunResult store = StoreScu({option, file});
    ASSERT_EQ(store.exit_code, 0) << file << ": " << store.err;
  }
  const std::string log = StopReceiver();
  size_t stored = 0;
  for (size_t at = 0; (at = log.find("released: 1 stored, 0 unchanged", at)) != std::string::npos;
       ++at) {
    ++stored;
  }
  EXPECT_EQ(stored, files.size()) << log;
  // The log names SOP classes and counts, never patient data.
  EXPECT_THAT(log, ::testing::Not(HasSubstr(DcmdumpValue(files[0], "PatientID"))));
  for (const std::string& file : files) {
    RunResult cat = Medvfs({"cat", InArchive(ExpectedPath(file))});
    ASSERT_EQ(cat.exit_code, 0) << file << ": " << cat.err;
    ExpectSameDataset(cat.out, file);
  }
}

TEST_F(ReceiveTest, KeepsCompressedTransferSyntaxes) {
  InitArchive();
  const fs::path ct = Normalized("CT_small.dcm");
  const fs::path mr = Normalized("MR_small.dcm");
  struct Case {
    std::string option;
    fs::path file;
  };
  const std::vector<Case> cases = {
      {"-xs", Converted("dcmcjpeg", ct, "ct_jpeg_lossless.dcm")},
      {"-xt", Converted("dcmcjpls", mr, "mr_jpeg_ls.dcm")},
      {"-xr", Converted("dcmcrle", mr, "mr_rle.dcm")},
      {"-xv", Normalized("MR_small_jp2klossless.dcm")},
      {"-xd", Normalized("image_dfl.dcm")},  // storescu deflates anew: not always the same bytes
  };
  StartReceiver(archive_.string());
  for (const Case& c : cases) {
    RunResult store = StoreScu({c.option, c.file.string()});
    ASSERT_EQ(store.exit_code, 0) << c.option << ": " << store.err;
  }
  StopReceiver();
  for (const Case& c : cases) {
    RunResult cat = Medvfs({"cat", InArchive(ExpectedPath(c.file))});
    ASSERT_EQ(cat.exit_code, 0) << c.option << ": " << cat.err;
    ExpectSameDataset(cat.out, c.file, /*exact=*/c.option != "-xd");
  }
}

// A CT series of `count` slices written with dump2dcm and dcmodify into dir/slice_NN.dcm.
std::vector<fs::path> MakeCtSeries(const fs::path& dir, int count = 50) {
  fs::create_directories(dir);
  std::ostringstream dump;
  dump << "(0008,0016) UI [1.2.840.10008.5.1.4.1.1.2]\n"
          "(0008,0018) UI [1.2.826.0.1.3680043.9.7433.3.0]\n"
          "(0008,0020) DA [20260102]\n(0008,0060) CS [CT]\n"
          "(0010,0010) PN [Synthetic^Series]\n(0010,0020) LO [SYN 001/A]\n"
          "(0020,000d) UI [1.2.826.0.1.3680043.9.7433.1.1]\n"
          "(0020,000e) UI [1.2.826.0.1.3680043.9.7433.1.2]\n"
          "(0020,0011) IS [3]\n(0020,0013) IS [0]\n(0020,0032) DS [0\\0\\0]\n"
          "(0028,0002) US 1\n(0028,0004) CS [MONOCHROME2]\n(0028,0010) US 8\n"
          "(0028,0011) US 8\n(0028,0100) US 16\n(0028,0101) US 12\n(0028,0102) US 11\n"
          "(0028,0103) US 0\n(7fe0,0010) OW ";
  for (int i = 0; i < 64; ++i) dump << (i ? "\\" : "") << std::hex << (i * 37) % 4096;
  dump << "\n";
  Save(dir / "slice.dump", dump.str());
  const fs::path first = dir / "template.dcm";
  RunResult made =
      RunProgram({FindProgram("dump2dcm"), "+te", (dir / "slice.dump").string(), first.string()});
  EXPECT_EQ(made.exit_code, 0) << made.err;
  std::vector<fs::path> slices;
  for (int i = 1; i <= count; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "slice_%02d.dcm", i);
    const fs::path slice = dir / name;
    fs::copy_file(first, slice);
    RunResult modify =
        RunProgram({FindProgram("dcmodify"), "-nb", "-m",
                    "SOPInstanceUID=1.2.826.0.1.3680043.9.7433.3." + std::to_string(i), "-m",
                    "InstanceNumber=" + std::to_string(i), "-m",
                    "ImagePositionPatient=0\\0\\" + std::to_string(i * 2.5), slice.string()});
    EXPECT_EQ(modify.exit_code, 0) << modify.err;
    slices.push_back(slice);
  }
  fs::remove(first);
  fs::remove(dir / "slice.dump");
  return slices;
}

// Through a mount, so that 50 files are checked by reading them rather than by 50 runs of
// medvfs cat (each opening the archive).
TEST_F(ReceiveMountTest, CtSeriesArrivesAndResendsMakeVersions) {
  const std::vector<fs::path> slices = MakeCtSeries(dir_ / "series");
  // The PatientID "SYN 001/A" keeps its space and loses its slash.
  EXPECT_EQ(ExpectedPath(slices[0]).substr(0, 11), "/SYN 001_A/");
  RunOptions no_key = NoKey();
  StartReceiver(mnt_.string(), {}, &no_key);
  RunResult store = RunProgram(ScuArgs("storescu", {"+sd"}, {(dir_ / "series").string()}));
  ASSERT_EQ(store.exit_code, 0) << store.err;
  const fs::path changed = dir_ / "in" / "slice_07_changed.dcm";
  DcmodifyCopy(slices[6], changed, "PatientName=Changed^Name");
  for (int i = 0; i < 2; ++i) {  // the second send is identical: no version
    RunResult resend = StoreScu({changed.string()});
    ASSERT_EQ(resend.exit_code, 0) << resend.err;
  }
  const std::string log = StopReceiver();
  EXPECT_THAT(log, HasSubstr("50 stored, 0 unchanged, 0 refused"));
  EXPECT_THAT(log, HasSubstr("0 stored, 1 unchanged, 0 refused"));
  for (size_t i = 0; i < slices.size(); ++i) {
    const std::string stored = ReadAll(mnt_ / ExpectedPath(slices[i]).substr(1));
    const std::string sent = ReadAll(i == 6 ? changed : slices[i]);
    ASSERT_FALSE(stored.empty()) << slices[i];
    EXPECT_TRUE(DatasetBytes(stored) == DatasetBytes(sent)) << slices[i] << " data sets differ";
  }
  ExpectSameDataset(ReadAll(mnt_ / ExpectedPath(slices[0]).substr(1)), slices[0]);
  const nlohmann::json versions =
      LogJson((mnt_ / ExpectedPath(slices[6]).substr(1)).string())["versions"];
  ASSERT_EQ(versions.size(), 2u) << versions.dump();
  // The temporary names left no files behind.
  for (const auto& entry :
       fs::directory_iterator((mnt_ / ExpectedPath(slices[0]).substr(1)).parent_path())) {
    EXPECT_EQ(entry.path().filename().string().rfind(".medvfs-receive", 0), std::string::npos);
  }
}

TEST_F(ReceiveTest, TwoSendersAtOnce) {
  InitArchive();
  const std::vector<fs::path> slices = MakeCtSeries(dir_ / "series", 12);
  fs::create_directories(dir_ / "a");
  fs::create_directories(dir_ / "b");
  for (size_t i = 0; i < slices.size(); ++i) {
    fs::rename(slices[i], dir_ / (i % 2 ? "a" : "b") / slices[i].filename());
  }
  StartReceiver(archive_.string());
  std::vector<pid_t> senders;
  for (const char* part : {"a", "b"}) {
    std::vector<std::string> argv = ScuArgs("storescu", {"+sd"}, {(dir_ / part).string()});
    senders.push_back(SpawnProgram(argv, RunOptions(), dir_ / (std::string("storescu_") + part)));
  }
  for (size_t i = 0; i < senders.size(); ++i) {
    EXPECT_EQ(WaitExit(senders[i]), 0)
        << ReadAll(dir_ / (std::string("storescu_") + (i == 0 ? "a" : "b")));
  }
  const std::string log = StopReceiver();
  size_t released = 0;
  for (size_t at = 0;
       (at = log.find("released: 6 stored, 0 unchanged, 0 refused", at)) != std::string::npos;
       ++at) {
    ++released;
  }
  EXPECT_EQ(released, 2u) << log;
  // Every slice is recorded as stored at its own path.
  RunResult audit = Medvfs({"audit", archive_.string(), "--json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  for (const char* part : {"a", "b"}) {
    for (const auto& entry : fs::directory_iterator(dir_ / part)) {
      EXPECT_THAT(audit.out, HasSubstr("\"path\":\"" + ExpectedPath(entry.path()) + "\""));
    }
  }
}

TEST_F(ReceiveTest, EchoAndAssociationRestrictions) {
  InitArchive();
  StartReceiver(archive_.string(), {"--allow-aet", "GOODSCU", "--allow-host", "127.0.0.1"});
  RunResult echo = RunProgram(ScuArgs("echoscu", {"-aet", "GOODSCU"}));
  EXPECT_EQ(echo.exit_code, 0) << echo.err;
  RunResult bad_aet = RunProgram(ScuArgs("echoscu", {"-aet", "BADSCU"}));
  EXPECT_NE(bad_aet.exit_code, 0);
  std::vector<std::string> wrong_called = ScuArgs("echoscu", {"-aet", "GOODSCU"});
  wrong_called[2] = "OTHER";
  EXPECT_NE(RunProgram(wrong_called).exit_code, 0);
  const std::string log = StopReceiver();
  EXPECT_THAT(log, HasSubstr("rejected: calling AE title not allowed"));
  EXPECT_THAT(log, HasSubstr("rejected: called AE title is not ours"));

  StartReceiver(archive_.string(), {"--allow-host", "10.9.8.7"});
  EXPECT_NE(RunProgram(ScuArgs("echoscu", {})).exit_code, 0);
  EXPECT_THAT(StopReceiver(), HasSubstr("rejected: host not allowed"));

  RunResult audit = Medvfs({"audit", archive_.string()});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("association rejected: calling AE title not allowed"));
  EXPECT_THAT(audit.out, HasSubstr("association rejected: host not allowed"));
}

TEST_F(ReceiveTest, TruncatedDatasetIsRefusedAndLeavesNothing) {
  InitArchive();
  const fs::path ct = Normalized("CT_small.dcm");
  StartReceiver(archive_.string());
  RunResult cut = RunProgram({FindProgram("python3"), kRawStore.string(), "127.0.0.1",
                              receiver_->port(), kAet, ct.string(), "20000"});
  EXPECT_EQ(cut.exit_code, 0) << cut.out << cut.err;
  EXPECT_EQ(cut.out, "C000\n");
  const std::string log = StopReceiver();
  EXPECT_THAT(log, HasSubstr("0 stored, 0 unchanged, 1 refused"));
  EXPECT_NE(Medvfs({"cat", InArchive(ExpectedPath(ct))}).exit_code, 0);
  RunResult audit = Medvfs({"audit", archive_.string()});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("refused with status 0xC000"));
  // Nothing was created: no directory, no temporary file, no version.
  EXPECT_THAT(audit.out, ::testing::Not(HasSubstr("create")));
  EXPECT_THAT(audit.out, ::testing::Not(HasSubstr("mkdir")));
  EXPECT_THAT(audit.out, ::testing::Not(HasSubstr("commit")));
}

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

constexpr const char* kOrthanc = "/usr/sbin/Orthanc";

// Orthanc, with a configuration of its own in dir/orthanc, stopped by SIGTERM to its pid.
class Orthanc {
 public:
  ~Orthanc() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      if (WaitExit(pid_, std::chrono::seconds(20)) == -1) kill(pid_, SIGKILL);
    }
  }
  bool Start(const fs::path& dir, int dicom_peer_port) {
    http_ = "http://127.0.0.1:" + std::to_string(FreePort());
    fs::create_directories(dir / "storage");
    nlohmann::json config = {
        {"Name", "medvfs-test"},
        {"StorageDirectory", (dir / "storage").string()},
        {"IndexDirectory", (dir / "storage").string()},
        {"HttpPort", std::stoi(http_.substr(http_.rfind(':') + 1))},
        {"DicomPort", FreePort()},
        {"DicomAet", "ORTHANC"},
        {"RemoteAccessAllowed", false},
        {"AuthenticationEnabled", false},
        {"Plugins", nlohmann::json::array()},
        {"DicomModalities", {{"medvfs", {kAet, "127.0.0.1", dicom_peer_port}}}}};
    Save(dir / "orthanc.json", config.dump(2));
    pid_ = SpawnProgram({kOrthanc, (dir / "orthanc.json").string()}, RunOptions(),
                        dir / "orthanc.log");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Curl({"-f", http_ + "/system"}).exit_code == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  RunResult Curl(std::vector<std::string> args) const {
    args.insert(args.begin(), {FindProgram("curl"), "-s", "--max-time", "30"});
    return RunProgram(args);
  }
  const std::string& http() const { return http_; }

 private:
  pid_t pid_ = -1;
  std::string http_;
};

TEST_F(ReceiveTest, OrthancPushesAStudy) {
  if (access(kOrthanc, X_OK) != 0 || FindProgram("curl").empty()) {
    GTEST_FAIL() << "Orthanc (package orthanc) or curl is not installed";
  }
  InitArchive();
  const std::vector<fs::path> slices = MakeCtSeries(dir_ / "series");
  const std::vector<fs::path> sent(slices.begin(), slices.begin() + 5);
  StartReceiver(archive_.string(), {"--allow-aet", "ORTHANC"});
  Orthanc orthanc;
  ASSERT_TRUE(orthanc.Start(dir_ / "orthanc", std::stoi(receiver_->port())))
      << ReadAll(dir_ / "orthanc" / "orthanc.log");
  nlohmann::json ids = nlohmann::json::array();
  for (const fs::path& file : sent) {
    RunResult upload = orthanc.Curl(
        {"-f", "-X", "POST", "--data-binary", "@" + file.string(), orthanc.http() + "/instances"});
    ASSERT_EQ(upload.exit_code, 0) << upload.out << upload.err;
    ids.push_back(nlohmann::json::parse(upload.out)["ID"]);
  }
  RunResult push = orthanc.Curl(
      {"-f", "-X", "POST", "--data", ids.dump(), orthanc.http() + "/modalities/medvfs/store"});
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  const std::string log = StopReceiver();
  EXPECT_THAT(log, HasSubstr("from AE ORTHANC"));
  for (const fs::path& file : sent) {
    RunResult cat = Medvfs({"cat", InArchive(ExpectedPath(file))});
    ASSERT_EQ(cat.exit_code, 0) << cat.err << log;
    ExpectSameDataset(cat.out, file);
  }
}

TEST_F(ReceiveMountTest, StoresThroughTheMount) {
  const fs::path ct = Normalized("CT_small.dcm");
  // ARCHIVE is given, but it is mounted here: the receiver writes through the mount, without
  // a key.
  RunOptions no_key = NoKey();
  StartReceiver(archive_.string(), {}, &no_key);
  ASSERT_EQ(StoreScu({ct.string()}).exit_code, 0);
  const fs::path changed = dir_ / "in" / "ct_changed.dcm";
  DcmodifyCopy(ct, changed, "ImageComments=re-sent");
  ASSERT_EQ(StoreScu({changed.string()}).exit_code, 0);
  ASSERT_EQ(StoreScu({changed.string()}).exit_code, 0);
  const std::string log = StopReceiver();
  EXPECT_THAT(log, HasSubstr("storing into the mount"));
  const fs::path stored = mnt_ / ExpectedPath(ct).substr(1);
  ExpectSameDataset(ReadAll(stored), changed);
  char version[16] = {};
  ASSERT_GT(getxattr(stored.c_str(), "user.medvfs.version", version, sizeof(version) - 1), 0);
  EXPECT_STREQ(version, "2");
  // The temporary files are gone and left no history.
  for (const auto& entry : fs::directory_iterator(stored.parent_path())) {
    EXPECT_EQ(entry.path().filename().string().rfind(".medvfs-receive", 0), std::string::npos);
  }
}

}  // namespace
}  // namespace medvfs::testing
