// `medvfs diff` and the `.meta/vN/diff` view, on an unmounted archive and through a mount, over
// python3-pydicom's samples changed with dcmtk's tools. The pixel numbers themselves are checked
// against an independent decoding in tests/store/diff_pixels_test.cc; here: that the command
// line and the view carry them, pick the right versions, and fail clearly.
#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <png.h>

#include "store/dicom/diff_font.h"
#include "store/dicom/diff_pixels_detail.h"
#include "tests/tools/cli_fixture.h"

namespace medvfs::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::filesystem::path kMrSmall = std::filesystem::path(kDicomSamples) / "MR_small.dcm";
const std::filesystem::path kMrJpeg2000 =
    std::filesystem::path(kDicomSamples) / "MR_small_jp2klossless.dcm";

std::string MissingTools() {
  if (!std::filesystem::exists(kMrSmall) || !std::filesystem::exists(kMrJpeg2000)) {
    return "python3-pydicom's sample files are not installed";
  }
  for (const char* tool : {"dcmodify", "dcmcjpeg", "dcmdump"}) {
    if (FindProgram(tool).empty()) return std::string(tool) + " (package dcmtk) is not installed";
  }
  return "";
}

// Width and height from a PNG's IHDR chunk; {0, 0} when it is not a PNG.
std::pair<uint32_t, uint32_t> PngSize(const std::string& png) {
  if (png.size() < 24 || png.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0 ||
      png.compare(12, 4, "IHDR") != 0) {
    return {0, 0};
  }
  auto be32 = [&](size_t at) {
    return (uint32_t{static_cast<uint8_t>(png[at])} << 24) |
           (uint32_t{static_cast<uint8_t>(png[at + 1])} << 16) |
           (uint32_t{static_cast<uint8_t>(png[at + 2])} << 8) |
           uint32_t{static_cast<uint8_t>(png[at + 3])};
  };
  return {be32(16), be32(20)};
}

// The size of the picture of an image of rows x columns (store/dicom/diff_pixels_detail.h).
std::pair<uint32_t, uint32_t> PictureSize(uint32_t rows, uint32_t columns) {
  const store::diff_internal::detail::ComparisonGeometry g =
      store::diff_internal::detail::GeometryFor(rows, columns);
  return {static_cast<uint32_t>(g.width), static_cast<uint32_t>(g.height)};
}

// An RGB picture decoded with libpng.
struct Rgb8 {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<uint8_t> rgb;
  std::array<uint8_t, 3> at(uint64_t x, uint64_t y) const {
    const size_t i = (y * width + x) * 3;
    return {rgb[i], rgb[i + 1], rgb[i + 2]};
  }
};

std::optional<Rgb8> DecodePng(const std::string& bytes) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()) == 0) {
    return std::nullopt;
  }
  image.format = PNG_FORMAT_RGB;
  Rgb8 out{image.width, image.height, std::vector<uint8_t>(PNG_IMAGE_SIZE(image))};
  if (png_image_finish_read(&image, nullptr, out.rgb.data(), 0, nullptr) == 0) {
    return std::nullopt;
  }
  return out;
}

// Whether line `line` of panel `panel`'s label shows `text` (white on the background), drawn
// again with the picture's font.
bool LabelShows(const Rgb8& picture, uint32_t rows, uint32_t columns, uint32_t panel, uint32_t line,
                const std::string& text) {
  namespace diff = store::diff_internal;
  const diff::detail::ComparisonGeometry g = diff::detail::GeometryFor(rows, columns);
  const diff::font::TextBitmap bitmap = diff::font::RenderText(text, g.text_scale);
  const uint64_t top = g.label_y + uint64_t{line} * g.line_height;
  for (uint32_t y = 0; y < g.line_height; ++y) {
    for (uint32_t x = 0; x < g.panel_width; ++x) {
      const bool on = x < bitmap.width && y < bitmap.height && bitmap.at(x, y);
      const bool white =
          picture.at(g.panel_x[panel] + x, top + y) == std::array<uint8_t, 3>{255, 255, 255};
      if (on != white) return false;
    }
  }
  return true;
}

nlohmann::json ParseJson(const RunResult& run) {
  nlohmann::json parsed = nlohmann::json::parse(run.out, nullptr, false);
  EXPECT_TRUE(parsed.is_object()) << run.out << run.err;
  return parsed;
}

const nlohmann::json* FindTag(const nlohmann::json& diff, const std::string& keyword_path) {
  for (const nlohmann::json& d : diff["tags"]["differences"]) {
    if (d["keyword_path"] == keyword_path) return &d;
  }
  return nullptr;
}

class CliDiffTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    ASSERT_EQ(MissingTools(), "");
    renamed_ = dir_ / "renamed.dcm";
    DcmodifyCopy(kMrSmall, renamed_, "PatientName=Doe^Jane");
    lossy_ = dir_ / "lossy.dcm";
    RunResult jpeg =
        RunProgram({FindProgram("dcmcjpeg"), "+ee", kMrSmall.string(), lossy_.string()});
    ASSERT_EQ(jpeg.exit_code, 0) << jpeg.err;
  }

  std::filesystem::path renamed_;  // MR_small with another PatientName: same SOP UID
  std::filesystem::path lossy_;    // MR_small recompressed with lossy JPEG: other pixels
};

TEST_F(CliDiffTest, TagChangeOnAnUnmountedArchive) {
  InitArchive();
  Populate({"file:/scan.dcm=" + kMrSmall.string(), "file:/scan.dcm=" + renamed_.string()});
  RunResult json = Medvfs({"diff", InArchive("/scan.dcm"), "1", "2", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json diff = ParseJson(json);
  // Besides PatientName, only the File Meta Information may differ (dcmodify writes its own
  // ImplementationClassUID and ImplementationVersionName).
  for (const nlohmann::json& d : diff["tags"]["differences"]) {
    if (d["keyword_path"] == "PatientName") continue;
    EXPECT_EQ(d["tag_path"].get<std::string>().substr(0, 6), "(0002,") << d.dump();
  }
  const nlohmann::json* found = FindTag(diff, "PatientName");
  ASSERT_NE(found, nullptr) << diff.dump(2);
  const nlohmann::json& name = *found;
  EXPECT_EQ(name["change"], "changed");
  EXPECT_EQ(name["keyword_path"], "PatientName");
  EXPECT_EQ(name["tag_path"], "(0010,0010)");
  EXPECT_EQ(name["vr"], "PN");
  EXPECT_EQ(name["old"], DcmdumpValue(kMrSmall, "PatientName"));
  EXPECT_EQ(name["new"], "Doe^Jane");
  EXPECT_EQ(diff["sop_instance_uid"]["same"], true);
  EXPECT_EQ(diff["sop_instance_uid"]["reused_for_different_content"], true);
  EXPECT_EQ(diff["pixels"]["compared"], true);
  ASSERT_EQ(diff["pixels"]["frames"].size(), 1u);
  EXPECT_EQ(diff["pixels"]["frames"][0]["identical"], true);
  EXPECT_TRUE(diff["pixels"]["frames"][0]["psnr_db"].is_null());
  EXPECT_EQ(diff["a"]["label"], "v1");
  EXPECT_EQ(diff["b"]["label"], "v2");
  EXPECT_EQ(diff["identical"], false);

  // The text form says the same, in words; "v2" and "current" name the same version.
  RunResult text = Medvfs({"diff", InArchive("/scan.dcm"), "v1", "current"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr(" changed, 0 added, "));
  EXPECT_THAT(text.out, HasSubstr("changed PatientName (0010,0010) PN: \"" +
                                  DcmdumpValue(kMrSmall, "PatientName") + "\" -> \"Doe^Jane\""));
  EXPECT_THAT(text.out, HasSubstr("although the content changed"));
  EXPECT_THAT(text.out, HasSubstr("frame 1: identical"));
}

TEST_F(CliDiffTest, LossyRecompressionDiffersInPixelsAndPicture) {
  InitArchive();
  Populate({"file:/scan.dcm=" + kMrSmall.string(), "file:/scan.dcm=" + lossy_.string()});
  const std::filesystem::path png = dir_ / "diff.png";
  RunResult json =
      Medvfs({"diff", InArchive("/scan.dcm"), "1", "2", "--json", "--png", png.string()});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json diff = ParseJson(json);
  const nlohmann::json& frame = diff["pixels"]["frames"][0];
  EXPECT_EQ(frame["identical"], false);
  EXPECT_GT(frame["differing_pixels"].get<uint64_t>(), 0u);
  EXPECT_LE(frame["differing_pixels"].get<uint64_t>(), 64u * 64u);
  EXPECT_GT(frame["max_abs_difference"].get<int64_t>(), 0);
  EXPECT_TRUE(frame["psnr_db"].is_number());
  // A new SOP instance, and a new transfer syntax in the File Meta Information.
  EXPECT_EQ(diff["sop_instance_uid"]["same"], false);
  const nlohmann::json* syntax = FindTag(diff, "TransferSyntaxUID");
  ASSERT_NE(syntax, nullptr) << diff["tags"].dump(2);
  EXPECT_EQ((*syntax)["tag_path"], "(0002,0010)");
  EXPECT_EQ(PngSize(ReadAll(png)), PictureSize(64, 64));
}

// The picture for people: panels labelled with version and UTC time (from the history), frame
// and window; the heat map's scale from the window, or --heat-max.
TEST_F(CliDiffTest, PictureIsLabelledEnlargedAndOnAnAbsoluteScale) {
  InitArchive();
  Populate({"file:/scan.dcm=" + kMrSmall.string(), "file:/scan.dcm=" + lossy_.string()});
  const nlohmann::json log = LogJson(InArchive("/scan.dcm"))["versions"];
  ASSERT_EQ(log.size(), 2u);
  // "2026-11-21T10:22:03.120044512Z" -> "2026-11-21T10:22:03Z"
  const auto to_second = [](const nlohmann::json& time) {
    return time.get<std::string>().substr(0, 19) + "Z";
  };
  const std::filesystem::path png = dir_ / "diff.png";
  RunResult run = Medvfs({"diff", InArchive("/scan.dcm"), "1", "2", "--png", png.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::optional<Rgb8> picture = DecodePng(ReadAll(png));
  ASSERT_TRUE(picture.has_value());
  EXPECT_EQ(std::make_pair(picture->width, picture->height), PictureSize(64, 64));
  EXPECT_GE(picture->width, 3u * 512u) << "64 x 64 pixels are enlarged to at least 512 wide";
  EXPECT_TRUE(LabelShows(*picture, 64, 64, 0, 0, "A: v1  " + to_second(log[0]["time"])));
  EXPECT_TRUE(LabelShows(*picture, 64, 64, 1, 0, "B: v2  " + to_second(log[1]["time"])));
  EXPECT_TRUE(LabelShows(*picture, 64, 64, 0, 1, "frame 1 of 1"));
  EXPECT_TRUE(LabelShows(*picture, 64, 64, 1, 2, "window C 600 W 1600"));
  EXPECT_TRUE(LabelShows(*picture, 64, 64, 1, 3, "from the file"));
  EXPECT_TRUE(LabelShows(*picture, 64, 64, 2, 1, "0 to 1600 (window width)"));

  // A smaller full scale makes the same differences brighter, never darker.
  const std::filesystem::path bright = dir_ / "bright.png";
  run = Medvfs(
      {"diff", InArchive("/scan.dcm"), "1", "2", "--png", bright.string(), "--heat-max", "5"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::optional<Rgb8> brighter = DecodePng(ReadAll(bright));
  ASSERT_TRUE(brighter.has_value());
  EXPECT_TRUE(LabelShows(*brighter, 64, 64, 2, 1, "0 to 5 (set)"));
  const store::diff_internal::detail::ComparisonGeometry g =
      store::diff_internal::detail::GeometryFor(64, 64);
  int brighter_pixels = 0;
  for (uint32_t y = 0; y < g.image_height; y += g.scale) {
    for (uint32_t x = 0; x < g.image_width; x += g.scale) {
      const auto before = picture->at(g.panel_x[2] + x, g.image_y + y);
      const auto after = brighter->at(g.panel_x[2] + x, g.image_y + y);
      const int sum_before = before[0] + before[1] + before[2];
      const int sum_after = after[0] + after[1] + after[2];
      ASSERT_GE(sum_after, sum_before) << x << ", " << y;
      brighter_pixels += sum_after > sum_before;
    }
  }
  EXPECT_GT(brighter_pixels, 0);

  RunResult zero = Medvfs(
      {"diff", InArchive("/scan.dcm"), "1", "2", "--png", bright.string(), "--heat-max", "0"});
  EXPECT_EQ(zero.exit_code, 2);
  EXPECT_TRUE(IsOneLineError(zero));
}

// rtdose.dcm: 15 frames of 10 x 10 unsigned 32-bit doses, Pixel Data last in the file. Five
// pixels of frame 3 change by one; the picture then shows frame 3 unless --frame says otherwise.
TEST_F(CliDiffTest, MultiFramePictureShowsTheFirstDifferingFrame) {
  const std::filesystem::path rtdose = std::filesystem::path(kDicomSamples) / "rtdose.dcm";
  ASSERT_TRUE(std::filesystem::exists(rtdose)) << "rtdose.dcm (python3-pydicom) is not installed";
  std::string bytes = ReadAll(rtdose);
  constexpr size_t kFrameBytes = 10 * 10 * 4;
  ASSERT_GT(bytes.size(), 15 * kFrameBytes);
  const size_t frame3 = bytes.size() - 15 * kFrameBytes + 2 * kFrameBytes;
  for (size_t pixel = 0; pixel < 5; ++pixel) bytes[frame3 + pixel * 4] ^= 1;
  const std::filesystem::path changed = dir_ / "rtdose_changed.dcm";
  std::ofstream(changed, std::ios::binary) << bytes;
  InitArchive();
  Populate({"file:/dose.dcm=" + rtdose.string(), "file:/dose.dcm=" + changed.string()});

  const std::filesystem::path png = dir_ / "dose.png";
  RunResult json =
      Medvfs({"diff", InArchive("/dose.dcm"), "1", "2", "--json", "--png", png.string()});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json diff = ParseJson(json);
  EXPECT_TRUE(diff["tags"]["differences"].empty()) << diff["tags"].dump(2);
  ASSERT_EQ(diff["pixels"]["frames"].size(), 15u);
  for (const nlohmann::json& frame : diff["pixels"]["frames"]) {
    const bool is_changed_frame = frame["frame"] == 3;
    EXPECT_EQ(frame["identical"], !is_changed_frame) << frame.dump();
    EXPECT_EQ(frame["differing_pixels"], is_changed_frame ? 5 : 0) << frame.dump();
    EXPECT_EQ(frame["max_abs_difference"], is_changed_frame ? 1 : 0) << frame.dump();
  }
  EXPECT_EQ(diff["png_frame"], 3);
  EXPECT_EQ(PngSize(ReadAll(png)), PictureSize(10, 10));

  RunResult chosen = Medvfs(
      {"diff", InArchive("/dose.dcm"), "1", "2", "--json", "--png", png.string(), "--frame", "7"});
  ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
  EXPECT_EQ(ParseJson(chosen)["png_frame"], 7);
  RunResult beyond =
      Medvfs({"diff", InArchive("/dose.dcm"), "1", "2", "--png", png.string(), "--frame", "16"});
  EXPECT_EQ(beyond.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(beyond));
  EXPECT_THAT(beyond.err, HasSubstr("there is no frame 16"));
}

TEST_F(CliDiffTest, Jpeg2000TagsAreComparedAndPixelsExplained) {
  const std::filesystem::path renamed = dir_ / "j2k_renamed.dcm";
  DcmodifyCopy(kMrJpeg2000, renamed, "PatientName=Doe^Jane");
  InitArchive();
  Populate({"file:/scan.dcm=" + kMrJpeg2000.string(), "file:/scan.dcm=" + renamed.string()});
  RunResult text = Medvfs({"diff", InArchive("/scan.dcm"), "1", "2"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("PatientName (0010,0010) PN"));
  EXPECT_THAT(text.out, HasSubstr("Pixels: not compared"));
  EXPECT_THAT(text.out, HasSubstr("JPEG 2000"));
  // No picture can be drawn: a clear error after the comparison.
  RunResult png =
      Medvfs({"diff", InArchive("/scan.dcm"), "1", "2", "--png", (dir_ / "never.png").string()});
  EXPECT_EQ(png.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(png));
  EXPECT_THAT(png.err, HasSubstr("cannot draw"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "never.png"));
}

TEST_F(CliDiffTest, PlainFilesGetAByteSummary) {
  InitArchive();
  Populate({"write:/notes.txt=hello world", "write:/notes.txt=hello there, world"});
  RunResult json = Medvfs({"diff", InArchive("/notes.txt"), "1", "2", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json diff = ParseJson(json);
  EXPECT_EQ(diff["bytes"]["size_a"], 11);
  EXPECT_EQ(diff["bytes"]["size_b"], 18);
  EXPECT_EQ(diff["bytes"]["first_difference"], 6);
  EXPECT_EQ(diff["bytes"]["chunks_only_in_b"], 1);
  EXPECT_EQ(diff["a"]["format"], "bytes");
  EXPECT_EQ(diff["tags"]["compared"], false);
  EXPECT_EQ(diff["pixels"]["compared"], false);
  RunResult text = Medvfs({"diff", InArchive("/notes.txt"), "1", "1"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("Content: identical"));
  EXPECT_THAT(text.out, Not(HasSubstr("Pixels")));
}

TEST_F(CliDiffTest, VersionsByTimeAndClearErrors) {
  InitArchive();
  Populate({"write:/notes.txt=one", "write:/notes.txt=two", "rm:/notes.txt"});
  // A time after both saves names the delete marker: the file was deleted then.
  RunResult deleted = Medvfs({"diff", InArchive("/notes.txt"), "1", "2200-01-01"});
  EXPECT_EQ(deleted.exit_code, 1);
  EXPECT_TRUE(IsOneLineError(deleted));
  EXPECT_THAT(deleted.err, HasSubstr("was deleted at 2200-01-01"));
  RunResult early = Medvfs({"diff", InArchive("/notes.txt"), "2000-01-01", "2"});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_THAT(early.err, HasSubstr("did not exist yet at 2000-01-01"));
  RunResult current = Medvfs({"diff", InArchive("/notes.txt"), "1", "current"});
  EXPECT_EQ(current.exit_code, 1);
  EXPECT_THAT(current.err, HasSubstr("has been deleted"));
  RunResult marker = Medvfs({"diff", InArchive("/notes.txt"), "1", "3"});
  EXPECT_EQ(marker.exit_code, 1);
  EXPECT_THAT(marker.err, HasSubstr("delete marker"));
  RunResult missing = Medvfs({"diff", InArchive("/notes.txt"), "1", "9"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no version 9"));
  RunResult usage = Medvfs({"diff", InArchive("/notes.txt"), "1", "yesterday-ish"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_TRUE(IsOneLineError(usage));
  // Nanosecond times reach to 2262; a later year is named as the reason.
  RunResult far = Medvfs({"diff", InArchive("/notes.txt"), "1", "2999-01-01"});
  EXPECT_EQ(far.exit_code, 2);
  EXPECT_THAT(far.err, HasSubstr("out of range"));

  // Both saves happened before now: the version current a moment ago is version 2.
  nlohmann::json log = LogJson(InArchive("/notes.txt"))["versions"];
  const std::string second_time = log[1]["time"];
  RunResult by_time = Medvfs({"diff", InArchive("/notes.txt"), "1", second_time, "--json"});
  ASSERT_EQ(by_time.exit_code, 0) << by_time.err;
  EXPECT_EQ(ParseJson(by_time)["b"]["label"], "v2");
}

class CliDiffMountTest : public CliMountTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(MissingTools(), "");
    CliMountTest::SetUp();
  }
};

TEST_F(CliDiffMountTest, DiffThroughTheMountAndTheDiffView) {
  const std::filesystem::path scan = mnt_ / "scan.dcm";
  Save(scan, ReadAll(kMrSmall));
  RunResult modify = RunProgram({FindProgram("dcmodify"), "-nb", "-m", "PatientName=Doe^Jane", "-i",
                                 "(0009,0010)=ACME", scan.string()});
  ASSERT_EQ(modify.exit_code, 0) << modify.err;

  RunResult json = Medvfs({"diff", scan.string(), "1", "current", "--json"}, NoKey());
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json diff = ParseJson(json);
  const nlohmann::json* name = FindTag(diff, "PatientName");
  ASSERT_NE(name, nullptr) << diff.dump(2);
  EXPECT_EQ((*name)["new"], "Doe^Jane");
  const nlohmann::json* creator = FindTag(diff, "(0009,0010)");
  ASSERT_NE(creator, nullptr) << diff.dump(2);
  EXPECT_EQ((*creator)["change"], "added");
  EXPECT_EQ((*creator)["new"], "ACME");

  // The same comparison as a file of the mount, for a file manager.
  const std::filesystem::path meta = mnt_ / "@version" / "scan.dcm" / ".meta";
  std::string view;
  {
    std::ifstream in(meta / "v2" / "diff");
    ASSERT_TRUE(in.good());
    view.assign(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_EQ(view, Medvfs({"diff", scan.string(), "1", "2"}, NoKey()).out);
  EXPECT_EQ(std::filesystem::file_size(meta / "v2" / "diff"), view.size());
  EXPECT_THAT(ReadAll(meta / "v1" / "diff"), HasSubstr("first version"));
  bool listed = false;
  for (const auto& entry : std::filesystem::directory_iterator(meta / "v2")) {
    listed = listed || entry.path().filename() == "diff";
  }
  EXPECT_TRUE(listed);
  // Only versions have a diff: the current version's metadata has none.
  EXPECT_FALSE(std::filesystem::exists(mnt_ / ".meta" / "scan.dcm" / "diff"));

  // The unmounted archive gives the same answer.
  Unmount();
  RunResult offline = Medvfs({"diff", InArchive("/scan.dcm"), "1", "2"});
  ASSERT_EQ(offline.exit_code, 0) << offline.err;
  EXPECT_EQ(offline.out, view);
}

}  // namespace
}  // namespace medvfs::testing
