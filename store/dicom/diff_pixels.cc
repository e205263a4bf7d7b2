// Pixel decoding and comparison for DiffVersions (see diff_internal.h):
//  - DICOM: DCMTK parses the whole file from memory, its codecs decompress the pixel data to
//    native little endian, and every frame's stored values are taken out as int32 (BitsStored
//    and HighBit masked, sign extended, planes interleaved, YBR_FULL_422 expanded);
//  - pictures: libpng and libjpeg, with error handlers that neither exit nor print;
//  - ComparePixels: per-frame counts, maximum and mean of |A - B| over samples, PSNR.
#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <sstream>
#include <utility>

#include "dcmtk/config/osconfig.h"  // first, as DCMTK requires

#include "dcmtk/dcmdata/dccodec.h"
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/oflog/oflog.h"

#include <jpeglib.h>

#include <jerror.h>  // after jpeglib.h: the warning codes
#include <png.h>

#include "store/dicom/dcmtk_guard.h"
#include "store/dicom/dicom_detail.h"
#include "store/dicom/diff_internal.h"
#include "store/dicom/diff_pixels_detail.h"

namespace medvfs::store::diff_internal {

namespace detail {
DicomPixels::DicomPixels() = default;
DicomPixels::~DicomPixels() = default;
}  // namespace detail

namespace {

using detail::DicomPixels;
using detail::FramePixels;
using detail::kMaxDecodedSamples;
using detail::PicturePixels;
using detail::PixelLayout;

// ---- DICOM -------------------------------------------------------------------------------

// Registers DCMTK's decoders once, after dicom.cc's dictionary check. Thread-safe.
Status PrepareDcmtk() {
  MEDVFS_RETURN_IF_ERROR(dicom_detail::DcmtkReady());
  static std::once_flag once;
  std::call_once(once, [] {
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
  });
  return Status::Ok();
}

using dicom_detail::MemoryStream;

// JPEG 2000 (Part 1, Part 2 multi-component, High-Throughput): DCMTK has no decoder for them.
bool IsJpeg2000(std::string_view uid) {
  static constexpr std::string_view kUids[] = {"1.2.840.10008.1.2.4.90",  "1.2.840.10008.1.2.4.91",
                                               "1.2.840.10008.1.2.4.92",  "1.2.840.10008.1.2.4.93",
                                               "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                                               "1.2.840.10008.1.2.4.203"};
  return std::find(std::begin(kUids), std::end(kUids), uid) != std::end(kUids);
}

std::string TransferSyntaxUid(DcmFileFormat& format) {
  OFString uid;
  if (format.getMetaInfo()->findAndGetOFStringArray(DCM_TransferSyntaxUID, uid).bad()) return {};
  std::string text(uid.c_str());
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

// The part of a file DCMTK may read: up to the end of its top-level Pixel Data element.
// DCMTK's reader allocates what a length field claims before it finds the data short (4 GiB for
// a 352-byte file; found by tests/fuzz/fuzz_dicom). ReadDicomFile's structure walk refuses such
// lengths before Pixel Data; what follows Pixel Data (trailing garbage, in any tag order) is cut
// off here. A deflated data set cannot be cut: it is read up to the first tag after Pixel Data.
StatusOr<std::string_view> ReadablePart(std::string_view file) {
  // Only an allocation failure is settled here; anything else goes on to the caller's guard.
  MEDVFS_ASSIGN_OR_RETURN(
      const dicom_detail::DicomFile parsed,
      dicom_detail::GuardDcmtk({.too_large = "DICOM header too large to parse in memory"},
                               [&] { return dicom_detail::ReadDicomFile(file, file.size()); }));
  const dicom_detail::PixelDataInfo& pixel = parsed.pixel;
  OFString uid;
  parsed.meta->findAndGetOFString(DCM_TransferSyntaxUID, uid);
  if (!pixel.present || DcmXfer(uid.c_str()).getStreamCompression() != ESC_none) return file;
  // The data set starts where reading the meta header ends, as in ReadDicomFile.
  DcmMetaInfo meta;
  MemoryStream in(file);
  meta.transferInit();
  const OFCondition cond = meta.read(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
  meta.transferEnd();
  if (cond.bad()) return Status::Invalid("DICOM meta header does not parse");
  uint64_t end = static_cast<uint64_t>(in.tell()) + pixel.value_offset;
  if (!pixel.encapsulated) {
    end += pixel.length;
  } else {
    // Items up to the sequence delimiter (the walk found them complete).
    while (end + 8 <= file.size()) {
      const auto u16 = [&](uint64_t at) {
        return static_cast<uint32_t>(static_cast<uint8_t>(file[at]) |
                                     static_cast<uint8_t>(file[at + 1]) << 8);
      };
      const uint32_t tag = u16(end) << 16 | u16(end + 2);
      const uint32_t length = u16(end + 4) | u16(end + 6) << 16;
      end += 8;
      if (tag != 0xFFFEE000) break;  // the sequence delimiter (FFFE,E0DD)
      end += length;
    }
  }
  return file.substr(0, static_cast<size_t>(std::min<uint64_t>(end, file.size())));
}

Status Jpeg2000NotSupported(std::string_view uid) {
  return Status::NotSupported("DICOM pixel data is JPEG 2000 (UID " + std::string(uid) +
                              "), which DCMTK cannot decode");
}

// kNotSupported unless DCMTK can turn the pixel data into native little endian. The message
// names the transfer syntax by a UID DCMTK or this file knows, never by the file's bytes.
Status CheckDecodable(std::string_view uid, const DcmXfer& xfer) {
  if (IsJpeg2000(uid)) return Jpeg2000NotSupported(uid);
  if (xfer.isEncapsulated() &&
      !DcmCodecList::canChangeCoding(xfer.getXfer(), EXS_LittleEndianExplicit)) {
    return Status::NotSupported(std::string("DICOM pixel data is ") + xfer.getXferName() +
                                " (UID " + xfer.getXferID() + "), which DCMTK cannot decode");
  }
  return Status::Ok();
}

// How the native pixel data of the decompressed data set is laid out.
struct StoredFormat {
  uint32_t rows = 0;
  uint32_t columns = 0;
  uint32_t samples = 1;
  uint32_t bits_allocated = 0;
  uint32_t bits_stored = 0;
  uint32_t high_bit = 0;
  bool is_signed = false;
  bool planar = false;   // PlanarConfiguration 1: R plane, G plane, B plane
  bool ybr_422 = false;  // YBR_FULL_422: Y1 Y2 Cb Cr for each pair of pixels
  uint32_t frames = 1;
  std::string photometric;
};

bool FindU16(DcmItem& item, const DcmTagKey& tag, uint32_t* out) {
  Uint16 value = 0;
  if (item.findAndGetUint16(tag, value).bad()) return false;
  *out = value;
  return true;
}

Status ReadStoredFormat(DcmDataset& dataset, StoredFormat* f) {
  if (!FindU16(dataset, DCM_Rows, &f->rows) || !FindU16(dataset, DCM_Columns, &f->columns) ||
      !FindU16(dataset, DCM_BitsAllocated, &f->bits_allocated)) {
    return Status::Invalid("DICOM image lacks Rows, Columns or BitsAllocated");
  }
  if (!FindU16(dataset, DCM_BitsStored, &f->bits_stored)) f->bits_stored = f->bits_allocated;
  if (!FindU16(dataset, DCM_HighBit, &f->high_bit)) f->high_bit = f->bits_stored - 1;
  FindU16(dataset, DCM_SamplesPerPixel, &f->samples);
  uint32_t value = 0;
  f->is_signed = FindU16(dataset, DCM_PixelRepresentation, &value) && value == 1;
  f->planar = FindU16(dataset, DCM_PlanarConfiguration, &value) && value == 1 && f->samples > 1;
  Sint32 frames = 1;
  if (dataset.findAndGetSint32(DCM_NumberOfFrames, frames).good() && frames > 1) {
    f->frames = static_cast<uint32_t>(frames);
  }
  OFString photometric;
  if (dataset.findAndGetOFString(DCM_PhotometricInterpretation, photometric).good()) {
    f->photometric = photometric.c_str();
  }
  if (f->photometric.empty()) f->photometric = f->samples == 1 ? "MONOCHROME2" : "RGB";

  if (f->rows == 0 || f->columns == 0 || f->samples == 0) {
    return Status::Invalid("DICOM image has no pixels (Rows, Columns or SamplesPerPixel is 0)");
  }
  if (f->samples > 4) {
    return Status::NotSupported("DICOM pixel data with this SamplesPerPixel is not supported");
  }
  const uint32_t a = f->bits_allocated;
  if (a != 1 && a != 8 && a != 16 && a != 32) {
    return Status::NotSupported("DICOM pixel data with this BitsAllocated is not supported");
  }
  if (f->bits_stored == 0 || f->bits_stored > a || f->high_bit >= a ||
      f->high_bit + 1 < f->bits_stored) {
    return Status::Invalid("DICOM BitsStored and HighBit do not fit BitsAllocated");
  }
  if (f->photometric == "YBR_FULL_422" && f->samples == 3) {
    if (f->columns % 2 != 0 || f->planar) {
      return Status::Invalid("DICOM YBR_FULL_422 pixel data needs an even number of columns");
    }
    f->ybr_422 = true;
  } else if (f->photometric.starts_with("YBR_PARTIAL") || f->photometric == "YBR_RCT" ||
             f->photometric == "YBR_ICT") {
    return Status::NotSupported(
        "DICOM native pixel data in this PhotometricInterpretation "
        "is not supported");
  }
  return Status::Ok();
}

// Turns raw words of BitsAllocated bits into stored values (see PixelLayout::value_bias).
class ValueDecoder {
 public:
  explicit ValueDecoder(const StoredFormat& f)
      : shift_(f.high_bit + 1 - f.bits_stored),
        mask_(f.bits_stored >= 32 ? ~uint32_t{0} : (uint32_t{1} << f.bits_stored) - 1),
        sign_bit_(uint32_t{1} << (f.bits_stored - 1)),
        is_signed_(f.is_signed),
        biased_(!f.is_signed && f.bits_stored == 32) {}

  int32_t operator()(uint32_t raw) const {
    uint32_t v = (raw >> shift_) & mask_;
    if (is_signed_ && (v & sign_bit_) != 0) v |= ~mask_;
    if (biased_) v -= uint32_t{1} << 31;
    return static_cast<int32_t>(v);  // two's complement reinterpretation
  }
  int64_t bias() const { return biased_ ? int64_t{1} << 31 : 0; }

 private:
  uint32_t shift_;
  uint32_t mask_;
  uint32_t sign_bit_;
  bool is_signed_;
  bool biased_;
};

uint32_t RawWord(const uint8_t* data, uint64_t index, uint32_t bits_allocated) {
  switch (bits_allocated) {
    case 1:
      return (data[index >> 3] >> (index & 7)) & 1u;
    case 8:
      return data[index];
    case 16:
      return uint32_t{data[2 * index]} | uint32_t{data[2 * index + 1]} << 8;
    default:
      return uint32_t{data[4 * index]} | uint32_t{data[4 * index + 1]} << 8 |
             uint32_t{data[4 * index + 2]} << 16 | uint32_t{data[4 * index + 3]} << 24;
  }
}

// Takes every frame out of native little-endian pixel data.
Status ExtractFrames(std::span<const uint8_t> data, const StoredFormat& f,
                     std::vector<std::vector<int32_t>>* frames) {
  const uint64_t pixels = uint64_t{f.rows} * f.columns;
  const uint64_t frame_samples = pixels * f.samples;
  const uint64_t words_per_frame = f.ybr_422 ? pixels * 2 : frame_samples;
  if (f.frames > kMaxDecodedSamples / frame_samples) {
    return Status::NotSupported("DICOM pixel data too large to compare");
  }
  const uint64_t bits = words_per_frame * f.frames * f.bits_allocated;
  if (data.size() < (bits + 7) / 8) {
    return Status::Invalid("DICOM pixel data is shorter than its image attributes say");
  }
  const ValueDecoder decode(f);
  frames->assign(f.frames, {});
  for (uint32_t k = 0; k < f.frames; ++k) {
    std::vector<int32_t>& out = (*frames)[k];
    out.resize(frame_samples);
    const uint64_t first = k * words_per_frame;
    for (uint64_t p = 0; p < pixels; ++p) {
      for (uint32_t s = 0; s < f.samples; ++s) {
        uint64_t word = 0;
        if (f.ybr_422) {
          word = 4 * (p / 2) + (s == 0 ? p % 2 : s + 1);
        } else if (f.planar) {
          word = s * pixels + p;
        } else {
          word = p * f.samples + s;
        }
        out[p * f.samples + s] = decode(RawWord(data.data(), first + word, f.bits_allocated));
      }
    }
  }
  return Status::Ok();
}

// Decompresses encapsulated pixel data in place; native data stays as it is.
Status Decompress(DcmDataset* dataset, DcmPixelData* pixel_data, const DcmXfer& xfer) {
  if (!xfer.isEncapsulated()) return Status::Ok();
  const OFCondition cond = dataset->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
  if (cond.bad() || !dataset->canWriteXfer(EXS_LittleEndianExplicit)) {
    return Status::Invalid(std::string("DICOM pixel data does not decode: ") +
                           (cond.bad() ? cond.text() : "no native representation"));
  }
  pixel_data->removeAllButCurrentRepresentations();  // the compressed copy is not needed
  return Status::Ok();
}

void ReadRenderingAttributes(DcmDataset& dataset, DicomPixels* pixels) {
  Float64 value = 0;
  if (dataset.findAndGetFloat64(DCM_RescaleSlope, value).good()) {
    pixels->has_rescale = true;
    pixels->rescale_slope = value;
  }
  if (dataset.findAndGetFloat64(DCM_RescaleIntercept, value).good()) {
    pixels->has_rescale = true;
    pixels->rescale_intercept = value;
  }
  Float64 center = 0, width = 0;
  if (dataset.findAndGetFloat64(DCM_WindowCenter, center, 0).good() &&
      dataset.findAndGetFloat64(DCM_WindowWidth, width, 0).good() && width >= 1) {
    pixels->window = detail::VoiWindow{center, width};
  }
}

// ---- PNG -----------------------------------------------------------------------------------
// libpng reports errors by longjmp to the setjmp of the function that called it. The functions
// that call setjmp (PngReadHeader, PngReadImage) and the callbacks hold no C++ objects with
// destructors, so the jump skips none.

struct PngReadState {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const unsigned char* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
  char error[160] = {};
};

struct PngHeader {
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int channels = 0;
  int bit_depth = 0;
  size_t row_bytes = 0;
};

void PngError(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngReadState*>(png_get_error_ptr(png));
  std::snprintf(state->error, sizeof state->error, "%s", message);
  png_longjmp(png, 1);
}

void PngWarning(png_structp, png_const_charp) {}

void PngRead(png_structp png, png_bytep out, size_t count) {
  auto* state = static_cast<PngReadState*>(png_get_io_ptr(png));
  if (state->size - state->pos < count) png_error(png, "PNG data ends early");
  std::memcpy(out, state->data + state->pos, count);
  state->pos += count;
}

bool PngReadHeader(PngReadState* state, PngHeader* header) {
  if (setjmp(png_jmpbuf(state->png))) return false;
  png_set_read_fn(state->png, state, PngRead);
  png_read_info(state->png, state->info);
  const int color_type = png_get_color_type(state->png, state->info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(state->png);
  if (color_type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(state->png, state->info) < 8) {
    png_set_expand_gray_1_2_4_to_8(state->png);
  }
  png_set_interlace_handling(state->png);
  png_read_update_info(state->png, state->info);
  header->width = png_get_image_width(state->png, state->info);
  header->height = png_get_image_height(state->png, state->info);
  header->channels = png_get_channels(state->png, state->info);
  header->bit_depth = png_get_bit_depth(state->png, state->info);
  header->row_bytes = png_get_rowbytes(state->png, state->info);
  return true;
}

bool PngReadImage(PngReadState* state, png_bytepp rows) {
  if (setjmp(png_jmpbuf(state->png))) return false;
  png_read_image(state->png, rows);
  png_read_end(state->png, nullptr);
  return true;
}

StatusOr<std::unique_ptr<DecodedPixels>> DecodePng(std::string_view file) {
  PngReadState state;
  state.data = reinterpret_cast<const unsigned char*>(file.data());
  state.size = file.size();
  state.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, PngError, PngWarning);
  if (state.png == nullptr) return Status::IoError("libpng cannot start");
  struct Cleanup {
    PngReadState* state;
    ~Cleanup() { png_destroy_read_struct(&state->png, &state->info, nullptr); }
  } cleanup{&state};
  state.info = png_create_info_struct(state.png);
  if (state.info == nullptr) return Status::IoError("libpng cannot start");

  PngHeader header;
  if (!PngReadHeader(&state, &header)) {
    return Status::Invalid(std::string("PNG does not decode: ") + state.error);
  }
  const uint64_t samples = uint64_t{header.width} * header.height * uint64_t(header.channels);
  if (samples > kMaxDecodedSamples) return Status::NotSupported("PNG too large to compare");
  std::vector<unsigned char> buffer(header.row_bytes * header.height);
  std::vector<png_bytep> rows(header.height);
  for (png_uint_32 y = 0; y < header.height; ++y) rows[y] = buffer.data() + y * header.row_bytes;
  if (!PngReadImage(&state, rows.data())) {
    return Status::Invalid(std::string("PNG does not decode: ") + state.error);
  }

  auto pixels = std::make_unique<PicturePixels>();
  pixels->format = "PNG";
  PixelLayout& layout = pixels->layout;
  layout.rows = header.height;
  layout.columns = header.width;
  layout.samples_per_pixel = static_cast<uint32_t>(header.channels);
  layout.bits_stored = header.bit_depth == 16 ? 16 : 8;
  layout.photometric = header.channels <= 2 ? "MONOCHROME2" : "RGB";
  std::vector<int32_t>& frame = pixels->frames.emplace_back(samples);
  const size_t row_samples = size_t{header.width} * size_t(header.channels);
  for (png_uint_32 y = 0; y < header.height; ++y) {
    const unsigned char* row = rows[y];
    int32_t* out = frame.data() + y * row_samples;
    for (size_t i = 0; i < row_samples; ++i) {
      out[i] = header.bit_depth == 16 ? (row[2 * i] << 8) | row[2 * i + 1] : row[i];
    }
  }
  return std::unique_ptr<DecodedPixels>(std::move(pixels));
}

// ---- JPEG ----------------------------------------------------------------------------------
// libjpeg's default error_exit calls exit(); ours longjmps to the setjmp of JpegStart or
// JpegReadRows, which, like the handlers, hold no C++ objects with destructors. Warnings that
// mean damaged data (libjpeg would fill in gray and go on) are errors here too.

struct JpegErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

struct JpegReadState {
  jpeg_decompress_struct cinfo;  // zeroed: jpeg_destroy_decompress is safe at any point
  JpegErrorManager error;
};

void JpegErrorExit(j_common_ptr cinfo) {
  auto* error = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, error->message);
  std::longjmp(error->jump, 1);
}

void JpegEmitMessage(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
      JpegErrorExit(cinfo);
      break;
    default:
      ++cinfo->err->num_warnings;
  }
}

bool JpegStart(JpegReadState* state, const unsigned char* data, unsigned long size) {
  state->cinfo.err = jpeg_std_error(&state->error.pub);
  state->error.pub.error_exit = JpegErrorExit;
  state->error.pub.emit_message = JpegEmitMessage;
  if (setjmp(state->error.jump)) return false;
  jpeg_create_decompress(&state->cinfo);
  jpeg_mem_src(&state->cinfo, data, size);
  jpeg_read_header(&state->cinfo, TRUE);
  state->cinfo.out_color_space = state->cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&state->cinfo);
  return true;
}

// Reads every scanline through `row` (one scanline of bytes) into `out` as int32.
bool JpegReadRows(JpegReadState* state, unsigned char* row, int32_t* out) {
  if (setjmp(state->error.jump)) return false;
  const size_t row_samples =
      size_t{state->cinfo.output_width} * size_t(state->cinfo.output_components);
  while (state->cinfo.output_scanline < state->cinfo.output_height) {
    int32_t* to = out + size_t{state->cinfo.output_scanline} * row_samples;
    JSAMPROW rows[1] = {row};
    if (jpeg_read_scanlines(&state->cinfo, rows, 1) != 1) return false;
    for (size_t i = 0; i < row_samples; ++i) to[i] = row[i];
  }
  jpeg_finish_decompress(&state->cinfo);
  return true;
}

StatusOr<std::unique_ptr<DecodedPixels>> DecodeJpeg(std::string_view file) {
  JpegReadState state{};
  struct Cleanup {
    JpegReadState* state;
    ~Cleanup() { jpeg_destroy_decompress(&state->cinfo); }
  } cleanup{&state};
  if (!JpegStart(&state, reinterpret_cast<const unsigned char*>(file.data()),
                 static_cast<unsigned long>(file.size()))) {
    return Status::Invalid(std::string("JPEG does not decode: ") + state.error.message);
  }
  const uint32_t width = state.cinfo.output_width, height = state.cinfo.output_height;
  const auto components = static_cast<uint32_t>(state.cinfo.output_components);
  const uint64_t samples = uint64_t{width} * height * components;
  if (samples > kMaxDecodedSamples) return Status::NotSupported("JPEG too large to compare");

  auto pixels = std::make_unique<PicturePixels>();
  pixels->format = "JPEG";
  PixelLayout& layout = pixels->layout;
  layout.rows = height;
  layout.columns = width;
  layout.samples_per_pixel = components;
  layout.bits_stored = 8;
  layout.photometric = components == 1 ? "MONOCHROME2" : "RGB";
  std::vector<int32_t>& frame = pixels->frames.emplace_back(samples);
  std::vector<unsigned char> row(size_t{width} * components);
  if (!JpegReadRows(&state, row.data(), frame.data())) {
    return Status::Invalid(std::string("JPEG does not decode: ") + state.error.message);
  }
  return std::unique_ptr<DecodedPixels>(std::move(pixels));
}

// ---- Comparison ----------------------------------------------------------------------------

std::string Number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

void AddScaleNotes(const FramePixels& a, const FramePixels& b, std::vector<std::string>* notes) {
  constexpr std::string_view kScale = ": stored values are not on the same scale";
  const PixelLayout& la = a.layout;
  const PixelLayout& lb = b.layout;
  if (la.bits_stored != lb.bits_stored) {
    notes->push_back("BitsStored changed from " + std::to_string(la.bits_stored) + " to " +
                     std::to_string(lb.bits_stored) + std::string(kScale));
  }
  if (la.is_signed != lb.is_signed) {
    const auto name = [](bool is_signed) { return is_signed ? "signed" : "unsigned"; };
    notes->push_back(std::string("PixelRepresentation changed from ") + name(la.is_signed) +
                     " to " + name(lb.is_signed) + std::string(kScale));
  }
  if (la.photometric != lb.photometric) {
    notes->push_back("PhotometricInterpretation changed from " + la.photometric + " to " +
                     lb.photometric + std::string(kScale));
  }
  const auto* da = dynamic_cast<const DicomPixels*>(&a);
  const auto* db = dynamic_cast<const DicomPixels*>(&b);
  const double slope_a = da ? da->rescale_slope : 1, slope_b = db ? db->rescale_slope : 1;
  const double icpt_a = da ? da->rescale_intercept : 0, icpt_b = db ? db->rescale_intercept : 0;
  if (slope_a != slope_b || icpt_a != icpt_b) {
    notes->push_back("RescaleSlope/RescaleIntercept changed from " + Number(slope_a) + "/" +
                     Number(icpt_a) + " to " + Number(slope_b) + "/" + Number(icpt_b) +
                     std::string(kScale));
  }
}

// Why two sides cannot be compared sample by sample, or empty when they can.
std::string ShapeMismatch(const PixelLayout& a, const PixelLayout& b, size_t frames_a,
                          size_t frames_b) {
  const auto str = [](auto n) { return std::to_string(n); };
  if (a.rows != b.rows || a.columns != b.columns) {  // columns x rows, as width x height
    return "A is " + str(a.columns) + " x " + str(a.rows) + " pixels, B is " + str(b.columns) +
           " x " + str(b.rows);
  }
  if (a.samples_per_pixel != b.samples_per_pixel) {
    return "A has " + str(a.samples_per_pixel) +
           (a.samples_per_pixel == 1 ? " sample" : " samples") + " per pixel, B has " +
           str(b.samples_per_pixel);
  }
  if (frames_a != frames_b) {
    return "A has " + str(frames_a) + (frames_a == 1 ? " frame" : " frames") + ", B has " +
           str(frames_b);
  }
  return {};
}

FrameDifference CompareFrame(const FramePixels& a, const FramePixels& b, size_t k, double peak) {
  const std::vector<int32_t>& fa = a.frames[k];
  const std::vector<int32_t>& fb = b.frames[k];
  const size_t samples = a.layout.samples_per_pixel;
  FrameDifference d;
  d.frame = static_cast<uint32_t>(k + 1);
  d.pixels = fa.size() / samples;
  long double abs_sum = 0;
  double square_sum = 0;
  for (size_t p = 0; p < d.pixels; ++p) {
    uint64_t pixel_abs_sum = 0;  // at most 4 samples of 2^32: no overflow
    for (size_t i = p * samples; i < (p + 1) * samples; ++i) {
      const int64_t diff = a.Value(fa, i) - b.Value(fb, i);
      const int64_t magnitude = diff < 0 ? -diff : diff;
      pixel_abs_sum += static_cast<uint64_t>(magnitude);
      d.max_abs_difference = std::max(d.max_abs_difference, magnitude);
      square_sum += static_cast<double>(diff) * static_cast<double>(diff);
    }
    if (pixel_abs_sum != 0) {
      ++d.differing_pixels;
      abs_sum += static_cast<long double>(pixel_abs_sum);
    }
  }
  if (!fa.empty()) {
    d.mean_abs_difference = static_cast<double>(abs_sum / static_cast<long double>(fa.size()));
  }
  if (d.differing_pixels != 0) {
    const double mse = square_sum / static_cast<double>(fa.size());
    d.psnr_db = 10 * std::log10(peak * peak / mse);
  }
  return d;
}

}  // namespace

// ---- Entry points ----------------------------------------------------------------------------

StatusOr<std::unique_ptr<DecodedPixels>> DecodeDicomPixels(std::string_view file) {
  MEDVFS_RETURN_IF_ERROR(PrepareDcmtk());
  MEDVFS_ASSIGN_OR_RETURN(const std::string_view readable, ReadablePart(file));
  DcmFileFormat format;
  MemoryStream in(readable);
  format.transferInit();
  const OFCondition cond = format.readUntilTag(in, EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
                                               DcmTagKey(0x7FE0, 0x0011));
  format.transferEnd();
  const std::string uid = TransferSyntaxUid(format);
  if (IsJpeg2000(uid)) return Jpeg2000NotSupported(uid);
  if (cond.bad()) return Status::Invalid(std::string("DICOM file does not parse: ") + cond.text());

  DcmDataset* dataset = format.getDataset();
  DcmElement* element = nullptr;
  if (dataset->findAndGetElement(DCM_PixelData, element).bad() || element == nullptr) {
    return Status::Invalid("DICOM file has no pixel data");
  }
  auto* pixel_data = dynamic_cast<DcmPixelData*>(element);
  if (pixel_data == nullptr) return Status::Invalid("DICOM pixel data is not readable");
  // How the pixel data itself is encoded (normally the data set's transfer syntax).
  E_TransferSyntax encoding = EXS_Unknown;
  const DcmRepresentationParameter* parameter = nullptr;
  pixel_data->getOriginalRepresentationKey(encoding, parameter);
  const DcmXfer xfer(encoding);
  MEDVFS_RETURN_IF_ERROR(CheckDecodable(uid, xfer));
  MEDVFS_RETURN_IF_ERROR(Decompress(dataset, pixel_data, xfer));

  StoredFormat f;
  MEDVFS_RETURN_IF_ERROR(ReadStoredFormat(*dataset, &f));
  Uint8* bytes = nullptr;  // little endian, whatever the transfer syntax was
  if (pixel_data->getUint8Array(bytes).bad() || bytes == nullptr) {
    return Status::Invalid("DICOM pixel data is not readable");
  }
  auto pixels = std::make_unique<DicomPixels>();
  MEDVFS_RETURN_IF_ERROR(
      ExtractFrames(std::span<const uint8_t>(bytes, pixel_data->getLength()), f, &pixels->frames));
  PixelLayout& layout = pixels->layout;
  layout.rows = f.rows;
  layout.columns = f.columns;
  layout.samples_per_pixel = f.samples;
  layout.bits_stored = f.bits_stored;
  layout.is_signed = f.is_signed;
  layout.photometric = f.ybr_422 ? "YBR_FULL" : f.photometric;
  layout.value_bias = ValueDecoder(f).bias();
  pixels->ybr_full_422 = f.ybr_422;
  ReadRenderingAttributes(*dataset, pixels.get());

  delete dataset->remove(pixel_data);
  pixels->dataset.reset(format.getAndRemoveDataset());
  return std::unique_ptr<DecodedPixels>(std::move(pixels));
}

bool LooksLikePng(std::string_view head) {
  return head.starts_with(std::string_view("\x89PNG\r\n\x1a\n", 8));
}

bool LooksLikeJpeg(std::string_view head) { return head.starts_with("\xFF\xD8\xFF"); }

StatusOr<std::unique_ptr<DecodedPixels>> DecodePicture(std::string_view file) {
  if (LooksLikePng(file)) return DecodePng(file);
  if (LooksLikeJpeg(file)) return DecodeJpeg(file);
  return Status::Invalid("not a PNG or JPEG picture");
}

PixelComparison ComparePixels(const DecodedPixels& a, const DecodedPixels& b) {
  PixelComparison result;
  const auto* pa = dynamic_cast<const FramePixels*>(&a);
  const auto* pb = dynamic_cast<const FramePixels*>(&b);
  if (pa == nullptr || pb == nullptr) {
    result.not_compared_reason = "pixels were not decoded";
    return result;
  }
  const PixelLayout& la = pa->layout;
  const PixelLayout& lb = pb->layout;
  result.rows = la.rows;
  result.columns = la.columns;
  result.samples_per_pixel = la.samples_per_pixel;
  result.bits_stored = std::max(la.bits_stored, lb.bits_stored);
  result.is_signed = la.is_signed || lb.is_signed;
  result.frame_count = static_cast<uint32_t>(pa->frames.size());
  AddScaleNotes(*pa, *pb, &result.notes);
  result.not_compared_reason = ShapeMismatch(la, lb, pa->frames.size(), pb->frames.size());
  if (!result.not_compared_reason.empty()) return result;

  result.compared = true;
  const double peak = std::ldexp(1.0, static_cast<int>(result.bits_stored)) - 1;
  result.frames.reserve(pa->frames.size());
  for (size_t k = 0; k < pa->frames.size(); ++k) {
    result.frames.push_back(CompareFrame(*pa, *pb, k, peak));
  }
  return result;
}

}  // namespace medvfs::store::diff_internal
