#include "store/views.h"

#include <gtest/gtest.h>

#include "tests/store/test_util.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace medvfs::store {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
// 2026-11-21T10:22:03Z
constexpr int64_t kSample = int64_t{1795256523} * kSecond;

TEST(FormatTimeTest, FormatsUtcWithNanoseconds) {
  EXPECT_EQ(FormatTimeNs(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(FormatTimeNs(kSample + 123456789), "2026-11-21T10:22:03.123456789Z");
  EXPECT_EQ(FormatTimeNs(-1), "1969-12-31T23:59:59.999999999Z");
  EXPECT_EQ(FormatTimeNs(int64_t{951782400} * kSecond), "2000-02-29T00:00:00.000000000Z");
}

TEST(FormatTimeTest, FileNameFormHasNoColons) {
  EXPECT_EQ(FormatTimeForFileName(kSample + 999999999), "2026-11-21T10-22-03Z");
  EXPECT_EQ(FormatTimeForFileName(0), "1970-01-01T00-00-00Z");
}

TEST(ParseTimeTest, AcceptsTheDocumentedForms) {
  struct Case {
    const char* text;
    int64_t want;
  };
  const std::vector<Case> cases = {
      {"2026-11-21T10:22:03Z", kSample},
      {"2026-11-21T10:22:03.5Z", kSample + kSecond / 2},
      {"2026-11-21T10:22:03.123456789Z", kSample + 123456789},
      {"2026-11-21T10:22:03.1234567891Z", kSample + 123456789},
      {"2026-11-21T11:22:03+01:00", kSample},
      {"2026-11-21T11:22:03+0100", kSample},
      {"2026-11-21T05:22:03-05:00", kSample},
      {"2026-11-21T10:22:03", kSample},
      {"2026-11-21 10:22:03Z", kSample},
      {"2026-11-21T10:22Z", kSample - 3 * kSecond},
      {"2026-11-21", kSample - (10 * 3600 + 22 * 60 + 3) * kSecond},
      {"2026-11-21T10-22-03Z", kSample},
      {"1969-12-31T23:59:59Z", -kSecond},
  };
  for (const Case& c : cases) {
    auto got = ParseTimeNs(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status().ToString();
    EXPECT_EQ(*got, c.want) << c.text;
  }
}

TEST(ParseTimeTest, RejectsMalformedTimes) {
  for (const char* text :
       {"", "2026", "2026-11", "2026-13-01", "2026-02-30", "2026-11-21T", "2026-11-21T25:00:00Z",
        "2026-11-21T10:61:00Z", "2026-11-21T10:22:03X", "2026-11-21T10:22:03.Z",
        "2026-11-21T10-22-03-05:00", "2026-11-21T10:22:03Z trailing", "+2026-11-21", "now",
        "2026-11-21T10:22:03+25:00"}) {
    EXPECT_FALSE(ParseTimeNs(text).ok()) << text;
  }
}

TEST(ParseTimeTest, RoundTripsFormatTimeNs) {
  for (int64_t t : {int64_t{0}, kSample + 1, kSample + 999999999, int64_t{-5} * kSecond + 7,
                    int64_t{4102444800} * kSecond}) {
    auto parsed = ParseTimeNs(FormatTimeNs(t));
    ASSERT_OK(parsed);
    EXPECT_EQ(*parsed, t);
    auto file_form = ParseTimeNs(FormatTimeForFileName(t));
    ASSERT_OK(file_form);
    EXPECT_LE(*file_form, t);
    EXPECT_GT(*file_form + kSecond, t);
  }
}

TEST(ParseTimeTest, RejectsTimesBeyondTheNanosecondRange) {
  EXPECT_FALSE(ParseTimeNs("9999-01-01T00:00:00Z").ok());
  EXPECT_FALSE(ParseTimeNs("1000-01-01T00:00:00Z").ok());
}

TEST(NameExtensionTest, LastDotSuffix) {
  EXPECT_EQ(NameExtension("scan.dcm"), ".dcm");
  EXPECT_EQ(NameExtension("a.tar.gz"), ".gz");
  EXPECT_EQ(NameExtension("README"), "");
  EXPECT_EQ(NameExtension(".bashrc"), "");
  EXPECT_EQ(NameExtension("trailing."), "");
  EXPECT_EQ(NameExtension(""), "");
}

TEST(VersionFileNameTest, NumberTimeAndExtension) {
  VersionInfo v;
  v.number = 3;
  v.time_ns = kSample + 42;
  EXPECT_EQ(VersionFileName(v, "scan.dcm"), "v3_2026-11-21T10-22-03Z.dcm");
  EXPECT_EQ(VersionFileName(v, "README"), "v3_2026-11-21T10-22-03Z");
  EXPECT_EQ(ParseVersionFileName(VersionFileName(v, "scan.dcm")), 3u);
}

TEST(ParseVersionFileNameTest, AcceptsShortAndLongForms) {
  EXPECT_EQ(ParseVersionFileName("v1"), 1u);
  EXPECT_EQ(ParseVersionFileName("v42"), 42u);
  EXPECT_EQ(ParseVersionFileName("v3_anything.dcm"), 3u);
  EXPECT_EQ(ParseVersionFileName("v3_"), 3u);
  EXPECT_EQ(ParseVersionFileName("v18446744073709551615"), UINT64_MAX);
}

TEST(ParseVersionFileNameTest, RejectsEverythingElse) {
  for (const char* entry : {"", "v", "v0", "v0_x", "v03", "v-1", "v+1", "v1x", "v1.dcm", "V1", "x1",
                            "v_1", "v18446744073709551616", "v99999999999999999999_x", " v1"}) {
    EXPECT_EQ(ParseVersionFileName(entry), std::nullopt) << entry;
  }
}

TEST(ParseTimeDirNameTest, NeedsAtAndAValidTime) {
  EXPECT_EQ(ParseTimeDirName("@2026-11-21T10:22:03Z"), kSample);
  EXPECT_EQ(ParseTimeDirName("@2026-11-21T10-22-03Z"), kSample);
  EXPECT_EQ(ParseTimeDirName("2026-11-21T10:22:03Z"), std::nullopt);
  EXPECT_EQ(ParseTimeDirName("@version"), std::nullopt);
  EXPECT_EQ(ParseTimeDirName("@"), std::nullopt);
  EXPECT_EQ(ParseTimeDirName(""), std::nullopt);
}

std::vector<VersionInfo> SampleVersions() {
  VersionInfo a;
  a.number = 1;
  a.time_ns = kSample + 5;
  a.size = 1234;
  for (size_t i = 0; i < a.sha256.size(); ++i) a.sha256[i] = static_cast<uint8_t>(i * 7);
  a.writer_uid = 1000;
  a.writer_gid = 100;
  a.writer_pid = 4242;
  a.program = "dcmodify";
  a.op = Operation::kWrite;
  VersionInfo b = a;
  b.sop_instance_uid = "";
  b.number = 2;
  b.time_ns = kSample + 10 * kSecond;
  b.size = 0;
  b.sha256 = {};
  b.program = "weird\tname\\x";
  b.op = Operation::kDeleteMarker;
  b.note = "line one\nline two";
  a.sop_instance_uid = "1.2.840.99.1";
  VersionInfo c = a;
  c.number = 3;
  c.op = Operation::kRestore;
  c.program = "";
  c.sop_instance_uid_reused = true;
  return {a, b, c};
}

TEST(VersionsTsvTest, FormatsHeaderAndEscapedFields) {
  const std::string tsv = FormatVersionsTsv(SampleVersions());
  const std::string header =
      "number\ttime\tsize\tsha256\tuid\tgid\tpid\tprogram\toperation\tnote\tsop_instance_uid"
      "\ttraceability\tcontent\tremoved_time\tremoved_uid\tremoved_program\tremoved_reason\thold\n";
  ASSERT_EQ(tsv.substr(0, header.size()), header);
  const std::string first_line =
      tsv.substr(header.size(), tsv.find('\n', header.size()) - header.size());
  const std::string want_prefix = "1\t2026-11-21T10:22:03.000000005Z\t1234\t";
  EXPECT_EQ(first_line.substr(0, want_prefix.size()), want_prefix);
  EXPECT_NE(tsv.find("weird\\tname\\\\x"), std::string::npos);
  EXPECT_NE(tsv.find("line one\\nline two"), std::string::npos);
  EXPECT_NE(tsv.find(std::string(OperationName(Operation::kDeleteMarker))), std::string::npos);
  // Header plus one line per version.
  EXPECT_EQ(std::count(tsv.begin(), tsv.end(), '\n'), 4);
  // The DICOM columns: the UID, then the traceability flag; then the six lifecycle columns,
  // empty for versions with content and no hold.
  EXPECT_TRUE(first_line.ends_with("\t1.2.840.99.1\t\t\t\t\t\t\t")) << first_line;
  EXPECT_NE(tsv.find("\t1.2.840.99.1\tSOPInstanceUID reused with different content\t\t\t\t\t\t\n"),
            std::string::npos);
  EXPECT_EQ(std::string(kSopInstanceUidReusedText), "SOPInstanceUID reused with different content");
}

TEST(VersionsTsvTest, ReadsTheFormWithoutDicomColumns) {
  const std::string old_form =
      "number\ttime\tsize\tsha256\tuid\tgid\tpid\tprogram\toperation\tnote\n"
      "1\t2026-11-21T10:22:03.000000005Z\t4\t" +
      std::string(64, 'a') + "\t1000\t100\t7\tcp\t" +
      std::string(OperationName(Operation::kWrite)) + "\tfirst\n";
  auto parsed = ParseVersionsTsv(old_form);
  ASSERT_OK(parsed);
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].note, "first");
  EXPECT_EQ((*parsed)[0].sop_instance_uid, "");
  EXPECT_FALSE((*parsed)[0].sop_instance_uid_reused);
  // Each form needs its own number of fields.
  std::string mixed = FormatVersionsTsv(SampleVersions());
  mixed = old_form.substr(0, old_form.find('\n') + 1) + mixed.substr(mixed.find('\n') + 1);
  EXPECT_FALSE(ParseVersionsTsv(mixed).ok());
}

TEST(VersionsTsvTest, RoundTripsPrunedPurgedAndHeldVersions) {
  std::vector<VersionInfo> versions = SampleVersions();
  versions[0].removed = ContentRemoval::kPruned;
  versions[0].removed_time_ns = kSample + 99;
  versions[0].removed_by_uid = 7;
  versions[0].removed_by_program = "medvfs";
  versions[2].removed = ContentRemoval::kPurged;
  versions[2].sha256 = {};
  versions[2].removed_time_ns = kSample + 100;
  versions[2].removed_reason = "wrong\tpatient";
  VersionInfo held = versions[1];
  held.number = 4;
  held.op = Operation::kWrite;
  held.hold = "case 12";
  versions.push_back(held);
  const std::string tsv = FormatVersionsTsv(versions);
  EXPECT_NE(tsv.find("\tpruned\t"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto parsed, ParseVersionsTsv(tsv));
  ASSERT_EQ(parsed.size(), versions.size());
  EXPECT_EQ(parsed[0].removed, ContentRemoval::kPruned);
  EXPECT_EQ(parsed[0].removed_time_ns, kSample + 99);
  EXPECT_EQ(parsed[0].removed_by_uid, 7u);
  EXPECT_EQ(parsed[0].removed_by_program, "medvfs");
  EXPECT_EQ(parsed[0].sha256, versions[0].sha256);
  EXPECT_EQ(parsed[2].removed, ContentRemoval::kPurged);
  EXPECT_EQ(parsed[2].removed_reason, "wrong\tpatient");
  EXPECT_EQ(parsed[2].sha256, Sha256Digest{});
  EXPECT_EQ(parsed[3].hold, "case 12");
  EXPECT_FALSE(parsed[3].content_removed());
  // The form before the lifecycle columns still reads.
  std::string lines =
      "number\ttime\tsize\tsha256\tuid\tgid\tpid\tprogram\toperation\tnote\tsop_instance_uid"
      "\ttraceability\n";
  for (const VersionInfo& v : SampleVersions()) {
    std::string line = FormatVersionsTsv({v});
    line = line.substr(line.find('\n') + 1);
    for (int i = 0; i < 6; ++i) line.erase(line.rfind('\t'), 1);
    lines += line;
  }
  ASSERT_OK_AND_ASSIGN(auto old_form, ParseVersionsTsv(lines));
  EXPECT_EQ(old_form.size(), 3u);
}

TEST(VersionsTsvTest, RejectsAnUnknownTraceabilityText) {
  std::string tsv = FormatVersionsTsv(SampleVersions());
  tsv.replace(tsv.find(std::string(kSopInstanceUidReusedText)), kSopInstanceUidReusedText.size(),
              "fine");
  EXPECT_FALSE(ParseVersionsTsv(tsv).ok());
}

TEST(FormatSha256HexTest, LowerCaseHex) {
  Sha256Digest digest{};
  digest[0] = 0xAB;
  digest[31] = 0x01;
  const std::string hex = FormatSha256Hex(digest);
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.substr(0, 4), "ab00");
  EXPECT_EQ(hex.substr(60), "0001");
}

TEST(VersionsTsvTest, RoundTrips) {
  const auto versions = SampleVersions();
  auto parsed = ParseVersionsTsv(FormatVersionsTsv(versions));
  ASSERT_OK(parsed);
  ASSERT_EQ(parsed->size(), versions.size());
  for (size_t i = 0; i < versions.size(); ++i) {
    const VersionInfo& want = versions[i];
    const VersionInfo& got = (*parsed)[i];
    EXPECT_EQ(got.number, want.number);
    EXPECT_EQ(got.time_ns, want.time_ns);
    EXPECT_EQ(got.size, want.size);
    EXPECT_EQ(got.sha256, want.sha256);
    EXPECT_EQ(got.writer_uid, want.writer_uid);
    EXPECT_EQ(got.writer_gid, want.writer_gid);
    EXPECT_EQ(got.writer_pid, want.writer_pid);
    EXPECT_EQ(got.program, want.program);
    EXPECT_EQ(got.op, want.op);
    EXPECT_EQ(got.note, want.note);
    EXPECT_EQ(got.sop_instance_uid, want.sop_instance_uid);
    EXPECT_EQ(got.sop_instance_uid_reused, want.sop_instance_uid_reused);
  }
}

TEST(VersionsTsvTest, EmptyHistoryIsJustTheHeader) {
  auto parsed = ParseVersionsTsv(FormatVersionsTsv({}));
  ASSERT_OK(parsed);
  EXPECT_TRUE(parsed->empty());
}

TEST(VersionsTsvTest, RejectsMalformedInput) {
  const std::string good = FormatVersionsTsv(SampleVersions());
  const std::string header = good.substr(0, good.find('\n') + 1);
  EXPECT_FALSE(ParseVersionsTsv("").ok());
  EXPECT_FALSE(ParseVersionsTsv("bogus header\n").ok());
  EXPECT_FALSE(ParseVersionsTsv(header + "1\t2\t3\n").ok());
  std::string bad_op = good;
  bad_op.replace(bad_op.find(std::string(OperationName(Operation::kRestore))),
                 OperationName(Operation::kRestore).size(), "explode");
  EXPECT_FALSE(ParseVersionsTsv(bad_op).ok());
  std::string bad_escape = good;
  bad_escape.replace(bad_escape.find("\\n"), 2, "\\q");
  EXPECT_FALSE(ParseVersionsTsv(bad_escape).ok());
  std::string bad_number = good;
  bad_number[header.size()] = 'x';
  EXPECT_FALSE(ParseVersionsTsv(bad_number).ok());
}

}  // namespace
}  // namespace medvfs::store
