// `--data folder` (began/data/image_folder.h): JPEG decoding through libjpeg-turbo, PNG through libpng, the crop and
// area-average resize, the sorted walk with parallel decoding, the cache file, and the data set.
//
// Both libraries report errors by calling back, and both callbacks here leave with longjmp (libjpeg's default
// exits the process; libpng's longjmps too). So every libjpeg/libpng call sits in a function that holds only
// trivially destructible locals between its setjmp and the calls (decode_jpeg_raw, decode_png_raw): longjmp then
// skips no destructor. Everything with a destructor (the output vectors) lives in the caller.
#include "began/data/image_folder.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <sstream>
#include <system_error>

// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <png.h>

#include "backends/error.h"
#include "backends/philox.h"
#include "backends/thread_pool.h"
#include "began/number_text.h"
#include "tensor/creation.h"

namespace atelier::began {

namespace {

// Limits that keep a hostile header from asking for gigabytes: a side of 16384 pixels and 40 megapixels cover
// every photo a face data set holds (LFW's are 250x250); a larger file is rejected by name.
constexpr int64_t kMaxSide = 16384;
constexpr int64_t kMaxPixels = 40'000'000;
constexpr long kMaxDecoderMemory = 1L << 30;  // libjpeg's own working memory (progressive files buffer coefficients)

constexpr uint64_t kFlipStreamTag = 0x464c495000000000ull;  // "FLIP"

// ---- JPEG (libjpeg-turbo) ----

struct JpegError {
  jpeg_error_mgr mgr;  // first, so the library's pointer to it is a pointer to the whole struct
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

extern "C" void jpeg_fail(j_common_ptr cinfo) {
  auto* error = reinterpret_cast<JpegError*>(cinfo->err);
  cinfo->err->format_message(cinfo, error->message);
  std::longjmp(error->jump, 1);
}

// libjpeg reports corrupt data (a truncated file, a damaged segment) as a warning (level -1) and goes on with grey
// filler; a warning here rejects the file instead. Trace messages (level >= 0) are ignored.
extern "C" void jpeg_warn(j_common_ptr cinfo, int level) {
  if (level < 0) jpeg_fail(cinfo);
}

// A JPEG decoded to interleaved pixels: 1 (grey), 3 (RGB) or 4 (CMYK as stored) components.
struct RawImage {
  int64_t width = 0, height = 0, components = 0;
  int64_t file_width = 0, file_height = 0;  // the file's own size (a JPEG may be decoded smaller)
  bool adobe = false;                       // JPEG: an Adobe marker (CMYK stored inverted)
  bool one_component = false;               // skipped: 3 channels asked, the file has one
  int64_t scale = 1;                        // the DCT scale used: the image is 1/scale of the file's size
  std::vector<uint8_t> pixels;
};

// The DCT scale: the largest of 8, 4, 2 that keeps the crop (of side `crop` in the full image) at least twice
// `size` a side; 1 when no resize is asked for. The margin matters: a block decoded at 1/2 scale (with its colour
// planes at 1/4) differs from the average of the full decode by up to ~8 levels at sharp colour edges, and the
// area average of at least 2x2 such pixels brings that back within the 2 levels the tests allow.
int64_t jpeg_scale(int64_t crop, int64_t size) {
  if (size <= 0) return 1;
  for (int64_t d : {8, 4, 2}) {
    if (crop / d >= 2 * size) return d;
  }
  return 1;
}

// Decodes `bytes` into *out. Returns false with `message` filled when libjpeg fails or the image is too large.
// want_channels 3: a 1-component file only sets out->one_component. crop/size pick the DCT scale (jpeg_scale).
bool decode_jpeg_raw(const uint8_t* data, size_t size, int64_t want_channels, int64_t crop, int64_t target, bool scaled,
                     RawImage* out, char* message) {
  jpeg_decompress_struct cinfo;
  JpegError error;
  cinfo.err = jpeg_std_error(&error.mgr);
  error.mgr.error_exit = jpeg_fail;
  error.mgr.emit_message = jpeg_warn;
  if (setjmp(error.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(message, JMSG_LENGTH_MAX, "%s", error.message);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  cinfo.mem->max_memory_to_use = kMaxDecoderMemory;
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const int64_t w = cinfo.image_width, h = cinfo.image_height;
  if (w > kMaxSide || h > kMaxSide || w * h > kMaxPixels) {
    std::snprintf(message, JMSG_LENGTH_MAX, "%lld x %lld pixels is too large (at most %lld a side, %lld in all)",
                  static_cast<long long>(w), static_cast<long long>(h), static_cast<long long>(kMaxSide),
                  static_cast<long long>(kMaxPixels));
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  out->file_width = w;
  out->file_height = h;
  out->adobe = cinfo.saw_Adobe_marker != 0;
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      if (want_channels == 3) {
        out->one_component = true;
        jpeg_destroy_decompress(&cinfo);
        return true;
      }
      cinfo.out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_YCbCr:
    case JCS_RGB: cinfo.out_color_space = JCS_RGB; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; break;
    default:
      std::snprintf(message, JMSG_LENGTH_MAX, "unsupported colour space (%d components)", cinfo.num_components);
      jpeg_destroy_decompress(&cinfo);
      return false;
  }
  const int64_t side = crop > 0 ? crop : std::min(w, h);
  out->scale = scaled ? jpeg_scale(side, target) : 1;
  cinfo.scale_num = 1;
  cinfo.scale_denom = static_cast<unsigned>(out->scale);
  jpeg_start_decompress(&cinfo);
  out->width = cinfo.output_width;
  out->height = cinfo.output_height;
  out->components = cinfo.output_components;
  const size_t row = static_cast<size_t>(out->width * out->components);
  out->pixels.resize(row * static_cast<size_t>(out->height));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW rows[1] = {out->pixels.data() + row * cinfo.output_scanline};
    jpeg_read_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

// ---- PNG (libpng) ----

struct PngSource {
  const uint8_t* data;
  size_t size;
  size_t pos;
  char message[256];
};

extern "C" void png_fail(png_structp png, png_const_charp text) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->message, sizeof source->message, "%s", text);
  png_longjmp(png, 1);
}

// Warnings (a damaged ancillary chunk such as a colour profile) leave the pixels intact: the file is kept.
extern "C" void png_note(png_structp, png_const_charp) {}

extern "C" void png_read_bytes(png_structp png, png_bytep into, size_t count) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (count > source->size - source->pos) png_error(png, "truncated: the file ends early");
  std::memcpy(into, source->data + source->pos, count);
  source->pos += count;
}

// Decodes a PNG to 8-bit grey (types 0 and 4, alpha dropped) or RGB (types 2, 3 and 6, alpha and a palette's
// transparency dropped, palette expanded); 16-bit samples keep their high byte. Returns false with source->message
// filled on a libpng error.
bool decode_png_raw(PngSource* source, int64_t want_channels, RawImage* out) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, source, png_fail, png_note);
  if (png == nullptr) {
    std::snprintf(source->message, sizeof source->message, "libpng could not start");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, source, png_read_bytes);
  png_set_user_limits(png, kMaxSide, kMaxSide);
  png_read_info(png, info);
  const int64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (w * h > kMaxPixels) {
    png_error(png, "too many pixels");
  }
  const int color_type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  const bool grey = (color_type & PNG_COLOR_MASK_COLOR) == 0;
  if (grey && want_channels == 3) {
    out->one_component = true;
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
  }
  if (depth == 16) png_set_strip_16(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (grey && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  // A palette's tRNS chunk becomes an alpha sample in the expansion: dropped too (4 samples would read as CMYK).
  if ((color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  out->file_width = out->width = w;
  out->file_height = out->height = h;
  out->components = png_get_channels(png, info);
  const size_t row = png_get_rowbytes(png, info);
  if (row != static_cast<size_t>(w * out->components)) png_error(png, "unexpected row size after conversion");
  out->pixels.resize(row * static_cast<size_t>(h));
  // Row by row (every pass of an interlaced file), so no array of row pointers needs freeing on error.
  for (int pass = 0; pass < passes; ++pass) {
    for (int64_t y = 0; y < h; ++y) png_read_row(png, out->pixels.data() + row * static_cast<size_t>(y), nullptr);
  }
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

// ---- Colour, crop and resize ----

uint8_t luma(int r, int g, int b) { return static_cast<uint8_t>((299 * r + 587 * g + 114 * b + 500) / 1000); }

// raw (1, 3 or 4 components) -> interleaved `channels` (1 or 3).
std::vector<uint8_t> to_channels(const RawImage& raw, int64_t channels) {
  const size_t n = static_cast<size_t>(raw.width * raw.height);
  std::vector<uint8_t> out(n * static_cast<size_t>(channels));
  const uint8_t* p = raw.pixels.data();
  for (size_t i = 0; i < n; ++i) {
    int r, g, b;
    if (raw.components == 1) {
      r = g = b = p[i];
    } else if (raw.components == 3) {
      r = p[3 * i];
      g = p[3 * i + 1];
      b = p[3 * i + 2];
    } else {  // CMYK; with an Adobe marker the stored values are 255 - C etc.
      auto ink = [&](int k) { return raw.adobe ? p[4 * i + k] : 255 - p[4 * i + k]; };  // 255 - ink
      const int white = ink(3);
      r = (ink(0) * white + 127) / 255;
      g = (ink(1) * white + 127) / 255;
      b = (ink(2) * white + 127) / 255;
    }
    if (channels == 1) {
      out[i] = raw.components == 1 ? static_cast<uint8_t>(r) : luma(r, g, b);
    } else {
      out[3 * i] = static_cast<uint8_t>(r);
      out[3 * i + 1] = static_cast<uint8_t>(g);
      out[3 * i + 2] = static_cast<uint8_t>(b);
    }
  }
  return out;
}

// The area-average weights of resizing `from` samples to `to`: output o covers [o * from / to, (o+1) * from / to)
// of the input, and each input sample weighs by its overlap with it (weights of one output sum to 1).
struct Tap {
  int64_t index;
  float weight;
};
std::vector<std::vector<Tap>> area_taps(int64_t from, int64_t to) {
  std::vector<std::vector<Tap>> taps(static_cast<size_t>(to));
  const double ratio = static_cast<double>(from) / static_cast<double>(to);
  for (int64_t o = 0; o < to; ++o) {
    const double lo = static_cast<double>(o) * ratio, hi = static_cast<double>(o + 1) * ratio;
    for (auto i = static_cast<int64_t>(lo); i < from && static_cast<double>(i) < hi; ++i) {
      const double overlap = std::min(hi, static_cast<double>(i + 1)) - std::max(lo, static_cast<double>(i));
      if (overlap > 1e-12) taps[static_cast<size_t>(o)].push_back({i, static_cast<float>(overlap / ratio)});
    }
  }
  return taps;
}

// The square of side `side` at (x0, y0) of an interleaved image, area-averaged to size x size.
Image8 crop_and_resize(const std::vector<uint8_t>& px, int64_t width, int64_t channels, int64_t x0, int64_t y0,
                       int64_t side, int64_t size) {
  Image8 out{size, size, channels, std::vector<uint8_t>(static_cast<size_t>(size * size * channels))};
  const auto taps = area_taps(side, size);
  // Rows first: (side, size, C) floats, then columns.
  std::vector<float> rows(static_cast<size_t>(side * size * channels));
  for (int64_t y = 0; y < side; ++y) {
    const uint8_t* src = px.data() + ((y0 + y) * width + x0) * channels;
    for (int64_t o = 0; o < size; ++o) {
      for (int64_t c = 0; c < channels; ++c) {
        float acc = 0;
        for (const Tap& t : taps[static_cast<size_t>(o)]) acc += t.weight * src[t.index * channels + c];
        rows[static_cast<size_t>((y * size + o) * channels + c)] = acc;
      }
    }
  }
  for (int64_t o = 0; o < size; ++o) {
    for (int64_t x = 0; x < size * channels; ++x) {
      float acc = 0;
      for (const Tap& t : taps[static_cast<size_t>(o)])
        acc += t.weight * rows[static_cast<size_t>(t.index * size * channels + x)];
      out.pixels[static_cast<size_t>(o * size * channels + x)] =
          static_cast<uint8_t>(std::clamp(acc + 0.5f, 0.0f, 255.0f));
    }
  }
  return out;
}

bool starts_with(const std::string& bytes, const void* magic, size_t n) {
  return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0;
}

}  // namespace

DecodedImage decode_image(const std::string& bytes, const std::string& what, const ImageRequest& request) {
  ATELIER_CHECK(request.channels == 1 || request.channels == 3,
                "decode_image: " << what << ": channels must be 1 or 3, got " << request.channels);
  ATELIER_CHECK(request.crop >= 0 && request.size >= 0, "decode_image: " << what << ": crop " << request.crop
                                                                         << " and size " << request.size
                                                                         << " must be >= 0");
  ATELIER_CHECK(!bytes.empty(), what << ": empty file");
  static const uint8_t kJpeg[3] = {0xFF, 0xD8, 0xFF};
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  RawImage raw;
  const bool jpeg = starts_with(bytes, kJpeg, sizeof kJpeg);
  if (jpeg) {
    char message[JMSG_LENGTH_MAX] = {0};
    const bool ok = decode_jpeg_raw(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), request.channels,
                                    request.crop, request.size, request.scaled_decoding, &raw, message);
    ATELIER_CHECK(ok, what << ": truncated or corrupt JPEG (libjpeg: " << message << ")");
  } else if (starts_with(bytes, kPng, sizeof kPng)) {
    PngSource source{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 0, {0}};
    ATELIER_CHECK(decode_png_raw(&source, request.channels, &raw),
                  what << ": truncated or corrupt PNG (libpng: " << source.message << ")");
  } else {
    ATELIER_FAIL(what << ": not a JPEG or PNG file (" << bytes.size() << " bytes that start like neither)");
  }
  DecodedImage result;
  result.dct_scale = raw.scale;
  if (raw.one_component) {
    result.one_component = true;
    return result;
  }
  ATELIER_CHECK(raw.width >= 1 && raw.height >= 1,
                what << ": an image of " << raw.width << " x " << raw.height << " pixels");
  // The crop in the decoded image's pixels (a JPEG decoded at 1/scale has its crop scaled alike).
  const int64_t file_side = std::min(raw.file_width, raw.file_height);
  ATELIER_CHECK(request.crop <= file_side, what << ": " << raw.file_width << " x " << raw.file_height
                                                << " pixels, smaller than the crop of " << request.crop);
  const int64_t crop = request.crop > 0 ? request.crop : file_side;
  result.upscaled = request.size > crop;
  const int64_t side = std::max<int64_t>(1, std::min({crop / raw.scale, raw.width, raw.height}));
  const int64_t x0 = (raw.width - side) / 2, y0 = (raw.height - side) / 2;
  const std::vector<uint8_t> px = to_channels(raw, request.channels);
  result.image = crop_and_resize(px, raw.width, request.channels, x0, y0, side, request.size > 0 ? request.size : side);
  return result;
}

bool is_image_name(const std::string& name) {
  const size_t dot = name.find_last_of('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == "jpg" || ext == "jpeg" || ext == "jpe" || ext == "png";
}

// ---- The folder ----

namespace {

namespace fs = std::filesystem;

struct FileEntry {
  std::string rel;  // relative to the root, '/'-separated
  int64_t size = 0;
  int64_t mtime_ns = 0;
};

// Every file under root, sorted by relative path; files whose names are not images are only counted.
std::vector<FileEntry> walk(const std::string& root, int64_t& ignored) {
  std::vector<FileEntry> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, ec), end;
  ATELIER_CHECK(!ec, "--data-dir " << root << ": cannot list the folder: " << ec.message());
  // increment(ec) leaves the iterator at `end` when it cannot open a subfolder: checking ec only inside the loop
  // ended the walk there without a word, that folder and every file listed after it dropped. A subfolder is opened
  // by the increment from its own entry, which names it.
  while (it != end) {
    const fs::directory_entry entry = *it;
    it.increment(ec);
    if (ec) {
      std::error_code is_dir_ec;
      const fs::path folder = entry.is_directory(is_dir_ec) ? entry.path() : entry.path().parent_path();
      ATELIER_FAIL("--data-dir " << root << ": cannot list " << folder.generic_string() << ": " << ec.message());
    }
    if (!entry.is_regular_file(ec)) continue;
    const std::string rel = entry.path().lexically_relative(root).generic_string();
    if (!is_image_name(entry.path().filename().string())) {
      ++ignored;
      continue;
    }
    FileEntry f{rel, 0, 0};
    f.size = static_cast<int64_t>(entry.file_size(ec));
    if (!ec) {
      f.mtime_ns = static_cast<int64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(entry.last_write_time(ec).time_since_epoch()).count());
    }
    files.push_back(std::move(f));
  }
  std::sort(files.begin(), files.end(), [](const FileEntry& a, const FileEntry& b) { return a.rel < b.rel; });
  return files;
}

// FNV-1a, 64 bits: the cache key only has to change when its input does.
class Hash {
 public:
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 0x100000001b3ull;
  }
  void number(int64_t v) { bytes(&v, sizeof v); }
  void text(const std::string& s) {
    number(static_cast<int64_t>(s.size()));
    bytes(s.data(), s.size());
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

// The cache's two keys. `settings`: the loader's version, the folder and the settings; `files`: those and every
// image file's path, size and modification time. A cache file is named by both, so that a file written for the
// same folder and settings under another `files` key is an outdated one, and is removed when the new one is written.
struct CacheKeys {
  uint64_t settings = 0, files = 0;
};

CacheKeys cache_keys(const ImageFolderOptions& o, const std::vector<FileEntry>& files) {
  Hash h;
  h.number(kImageFolderLoaderVersion);
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(o.dir, ec);
  h.text(ec ? o.dir : root.string());
  h.number(o.image_size);
  h.number(o.crop);
  h.number(o.channels);
  CacheKeys keys;
  keys.settings = h.value();
  h.number(static_cast<int64_t>(files.size()));
  for (const FileEntry& f : files) {
    h.text(f.rel);
    h.number(f.size);
    h.number(f.mtime_ns);
  }
  keys.files = h.value();
  return keys;
}

// "image_folder_<settings>_" and "<files>.bin", in hex: the cache file's name is the two joined.
std::string cache_prefix(uint64_t settings) {
  char text[48];
  std::snprintf(text, sizeof text, "image_folder_%016llx_", static_cast<unsigned long long>(settings));
  return text;
}
std::string cache_name(const CacheKeys& keys) {
  char text[32];
  std::snprintf(text, sizeof text, "%016llx.bin", static_cast<unsigned long long>(keys.files));
  return cache_prefix(keys.settings) + text;
}

// Removes the cache files of the same folder and settings but other files (the folder changed since), keeping
// the one of `keys`. Best effort: a file that cannot be removed stays, silently (it only costs disk space).
void remove_outdated_caches(const std::string& dir, const CacheKeys& keys,
                            const std::function<void(const std::string&)>& log) {
  const std::string prefix = cache_prefix(keys.settings), kept = cache_name(keys);
  std::vector<fs::path> outdated;  // listed first, removed after: no removal while the folder is being read
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name != kept && it->path().extension() == ".bin") outdated.push_back(it->path());
  }
  for (const fs::path& path : outdated) {
    std::error_code removed;
    if (fs::remove(path, removed) && log) log("removed the outdated cache " + path.string());
  }
}

// The cache file: "ATLIMGF2", the key, channels, image size, the counts (the upscaled images' last), the names (each a
// u32 length and bytes), the rejection reasons, then the pixels. Native byte order: a cache belongs to one machine.
constexpr char kCacheMagic[8] = {'A', 'T', 'L', 'I', 'M', 'G', 'F', '2'};

void put_number(std::string& out, int64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
void put_text(std::string& out, const std::string& s) {
  const auto n = static_cast<uint32_t>(s.size());
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out += s;
}

std::string cache_bytes(uint64_t key, const ImageFolderData& d) {
  std::string out(kCacheMagic, sizeof kCacheMagic);
  put_number(out, static_cast<int64_t>(key));
  for (int64_t v : {d.channels, d.image_size, d.count(), static_cast<int64_t>(d.skipped.size()),
                    static_cast<int64_t>(d.rejected.size()), d.ignored, d.upscaled}) {
    put_number(out, v);
  }
  for (const std::string& s : d.used) put_text(out, s);
  for (const std::string& s : d.skipped) put_text(out, s);
  for (const auto& [path, reason] : d.rejected) {
    put_text(out, path);
    put_text(out, reason);
  }
  out.append(reinterpret_cast<const char*>(d.pixels.data()), d.pixels.size());
  return out;
}

// Reads bytes of a cache file front to back; every read is checked against what is left.
class CacheReader {
 public:
  explicit CacheReader(const std::string& bytes) : bytes_(bytes) {}
  void take(void* into, size_t n) {
    ATELIER_CHECK(n <= bytes_.size() - pos_, "the file ends early");
    std::memcpy(into, bytes_.data() + pos_, n);
    pos_ += n;
  }
  int64_t number() {
    int64_t v = 0;
    take(&v, sizeof v);
    return v;
  }
  std::string text() {
    uint32_t n = 0;
    take(&n, sizeof n);
    ATELIER_CHECK(n <= bytes_.size() - pos_, "the file ends early");
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  size_t left() const { return bytes_.size() - pos_; }

 private:
  const std::string& bytes_;
  size_t pos_ = 0;
};

ImageFolderData parse_cache(const std::string& bytes, uint64_t key, const ImageFolderOptions& o) {
  CacheReader r(bytes);
  char magic[sizeof kCacheMagic];
  r.take(magic, sizeof magic);
  ATELIER_CHECK(std::memcmp(magic, kCacheMagic, sizeof magic) == 0, "not a cache file of this loader");
  ATELIER_CHECK(static_cast<uint64_t>(r.number()) == key, "made for other files or settings");
  ImageFolderData d;
  d.channels = r.number();
  d.image_size = r.number();
  const int64_t used = r.number(), skipped = r.number(), rejected = r.number();
  d.ignored = r.number();
  d.upscaled = r.number();
  ATELIER_CHECK(d.channels == o.channels && d.image_size == o.image_size, "made for other settings");
  const auto most = static_cast<int64_t>(r.left() / sizeof(uint32_t));  // each name takes at least its length
  ATELIER_CHECK(used >= 0 && skipped >= 0 && rejected >= 0 && used + skipped + 2 * rejected <= most &&
                    d.upscaled >= 0 && d.upscaled <= used,
                "counts that the file cannot hold");
  for (int64_t i = 0; i < used; ++i) d.used.push_back(r.text());
  for (int64_t i = 0; i < skipped; ++i) d.skipped.push_back(r.text());
  for (int64_t i = 0; i < rejected; ++i) {
    std::string path = r.text();
    d.rejected.emplace_back(std::move(path), r.text());
  }
  const auto image_bytes = static_cast<size_t>(d.channels * d.image_size * d.image_size);
  ATELIER_CHECK(r.left() == image_bytes * static_cast<size_t>(used), "the pixels do not fill the rest of the file");
  d.pixels.resize(r.left());
  r.take(d.pixels.data(), d.pixels.size());
  return d;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ATELIER_CHECK(in.good(), path << ": cannot open for reading");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ATELIER_CHECK(!in.bad(), path << ": cannot read");
  return bytes;
}

// Decodes every file in parallel into one buffer (slot i for file i), then keeps the used ones in order.
ImageFolderData decode_all(const ImageFolderOptions& o, const std::vector<FileEntry>& files) {
  const auto n = static_cast<int64_t>(files.size());
  const size_t image_bytes = static_cast<size_t>(o.channels * o.image_size * o.image_size);
  enum class Outcome : uint8_t { used, skipped, rejected };
  std::vector<Outcome> outcome(static_cast<size_t>(n), Outcome::rejected);
  std::vector<std::string> reason(static_cast<size_t>(n));
  std::vector<uint8_t> upscaled(static_cast<size_t>(n), 0);
  std::vector<uint8_t> slots(image_bytes * static_cast<size_t>(n));
  const ImageRequest request{.channels = o.channels, .crop = o.crop, .size = o.image_size};

  std::atomic<int64_t> done{0};
  std::mutex log_mutex;
  const auto start = std::chrono::steady_clock::now();
  auto last_line = start;
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto k = static_cast<size_t>(i);
      try {
        const DecodedImage img = decode_image(read_whole_file(o.dir + "/" + files[k].rel), files[k].rel, request);
        if (img.one_component) {
          outcome[k] = Outcome::skipped;
        } else {
          // Interleaved (S, S, C) -> planar (C, S, S).
          uint8_t* to = slots.data() + image_bytes * k;
          const int64_t plane = o.image_size * o.image_size;
          for (int64_t p = 0; p < plane; ++p) {
            for (int64_t c = 0; c < o.channels; ++c)
              to[c * plane + p] = img.image.pixels[static_cast<size_t>(p * o.channels + c)];
          }
          outcome[k] = Outcome::used;
          upscaled[k] = img.upscaled;
        }
      } catch (const std::exception& e) {
        reason[k] = e.what();
      }
      const int64_t finished = ++done;
      // last_line is read and written under log_mutex only (an unlocked first look would race with the write).
      // try_to_lock: a thread never waits here; a busy mutex means another thread is printing the line.
      if (o.log) {
        std::unique_lock<std::mutex> lock(log_mutex, std::try_to_lock);
        if (lock.owns_lock() && seconds_since(last_line) >= 1.0) {
          last_line = std::chrono::steady_clock::now();
          char line[160];
          std::snprintf(line, sizeof line, "decoding images: %lld / %lld (%.0f%%), %.1f s",
                        static_cast<long long>(finished), static_cast<long long>(n),
                        100.0 * static_cast<double>(finished) / static_cast<double>(n), seconds_since(start));
          o.log(line);
        }
      }
    }
  });

  ImageFolderData d;
  d.channels = o.channels;
  d.image_size = o.image_size;
  size_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<size_t>(i);
    switch (outcome[k]) {
      case Outcome::used:
        if (kept != k) std::memmove(slots.data() + kept * image_bytes, slots.data() + k * image_bytes, image_bytes);
        ++kept;
        d.used.push_back(files[k].rel);
        d.upscaled += upscaled[k];
        break;
      case Outcome::skipped: d.skipped.push_back(files[k].rel); break;
      case Outcome::rejected: d.rejected.emplace_back(files[k].rel, reason[k]); break;
    }
  }
  slots.resize(kept * image_bytes);
  d.pixels = std::move(slots);
  if (o.log) {
    char line[160];
    std::snprintf(line, sizeof line, "decoded %s in %.1f s", count_text(n, "image file").c_str(), seconds_since(start));
    o.log(line);
  }
  return d;
}

}  // namespace

std::string ImageFolderData::summary() const {
  std::ostringstream os;
  // The fingerprint below is a key stored in checkpoints, not a message: its "N images" stays as it is.
  os << count_text(count(), "image") << " used";
  // Enlarged images are blurred: a folder of thumbnails trained at 64x64 should not look like photos silently.
  if (upscaled > 0) os << " (" << upscaled << " enlarged: smaller than " << image_size << "x" << image_size << ")";
  os << ", " << skipped.size() << " skipped (one colour component), " << rejected.size() << " rejected, "
     << count_text(ignored, "other file") << " ignored";
  return os.str();
}

std::string ImageFolderData::fingerprint() const {
  Hash h;
  for (const std::string& path : used) h.text(path);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h.value()));
  return std::to_string(count()) + " images, names " + hex;
}

std::string ImageFolderData::report() const {
  std::string out = summary() + "\n";
  for (const std::string& path : skipped) out += "skipped\t" + path + "\tone colour component\n";
  for (const auto& [path, why] : rejected) out += "rejected\t" + path + "\t" + why + "\n";
  return out;
}

void check_data_dir(const std::string& dir) {
  const std::string problem = folder_problem(dir);
  ATELIER_CHECK(problem.empty(), "--data-dir " << dir << ": " << problem);
}

ImageFolderData load_image_folder(const ImageFolderOptions& o) {
  ATELIER_CHECK(o.channels == 1 || o.channels == 3,
                "--data folder: --channels must be 1 (luma) or 3 (RGB), got " << o.channels);
  ATELIER_CHECK(o.image_size >= 1 && o.image_size <= 4096,
                "--data folder: the image size must be in [1, 4096], got " << o.image_size);
  ATELIER_CHECK(o.crop >= 0, "--crop must be >= 0 (0: the largest centred square), got " << o.crop);
  check_data_dir(o.dir);
  std::error_code ec;
  int64_t ignored = 0;
  const std::vector<FileEntry> files = walk(o.dir, ignored);
  ATELIER_CHECK(!files.empty(), "--data-dir " << o.dir << ": no image files (*.jpg, *.jpeg, *.jpe, *.png) in it or "
                                              << "its subfolders (" << count_text(ignored, "other file") << ")");

  ImageFolderData d;
  const CacheKeys keys = cache_keys(o, files);
  std::string cache_path;
  if (!o.cache_dir.empty()) {
    cache_path = o.cache_dir + "/" + cache_name(keys);
    if (fs::exists(cache_path, ec)) {
      try {
        d = parse_cache(read_whole_file(cache_path), keys.files, o);
        d.from_cache = true;
      } catch (const Error& e) {
        if (o.log) o.log("note: the cache " + cache_path + " is unusable (" + e.what() + "): decoding again");
      }
    }
  }
  if (!d.from_cache) {
    d = decode_all(o, files);
    d.ignored = ignored;
    if (!cache_path.empty() && o.write_cache) {
      write_file_atomically(cache_path, cache_bytes(keys.files, d), "--cache: ");
      remove_outdated_caches(o.cache_dir, keys, o.log);
    }
  } else if (o.log) {
    o.log("images read from the cache " + cache_path);
  }
  d.cache_path = cache_path;
  ATELIER_CHECK(d.count() > 0, "--data-dir " << o.dir << ": "
                                             << (files.size() == 1 ? std::string("its one image file could not be used")
                                                                   : "none of its " + std::to_string(files.size()) +
                                                                         " image files could be used")
                                             << " (" << d.summary() << ")");
  return d;
}

ImageFolderDataset::ImageFolderDataset(std::shared_ptr<const ImageFolderData> data, bool flip, uint64_t seed)
    : data_(std::move(data)), flip_(flip), seed_(seed) {
  ATELIER_CHECK(data_ != nullptr && data_->count() > 0, "ImageFolderDataset: no images");
  ATELIER_CHECK(data_->pixels.size() ==
                    static_cast<size_t>(data_->count() * data_->channels * data_->image_size * data_->image_size),
                "ImageFolderDataset: " << data_->pixels.size() << " bytes of pixels for " << data_->count()
                                       << " images of " << data_->channels << " x " << data_->image_size << " x "
                                       << data_->image_size);
}

bool ImageFolderDataset::flipped(int64_t epoch, int64_t i) const {
  if (!flip_) return false;
  return (philox4x32_10(seed_, kFlipStreamTag ^ static_cast<uint64_t>(epoch), static_cast<uint64_t>(i)).w[0] & 1) != 0;
}

// Image i as floats (C, S, S) at `to`, mirrored left to right when `mirror`.
void ImageFolderDataset::write_image(int64_t i, bool mirror, float* to) const {
  ATELIER_CHECK(i >= 0 && i < size(), "ImageFolderDataset: index " << i << " out of range for " << size() << " images");
  const int64_t s = data_->image_size, rows = data_->channels * s;
  const uint8_t* from = data_->pixels.data() + i * rows * s;
  for (int64_t row = 0; row < rows; ++row) {
    for (int64_t x = 0; x < s; ++x) {
      to[row * s + x] = static_cast<float>(from[row * s + (mirror ? s - 1 - x : x)]) / 127.5f - 1.0f;
    }
  }
}

nn::Example ImageFolderDataset::get(int64_t i) const {
  Tensor image = empty({data_->channels, data_->image_size, data_->image_size});
  write_image(i, flipped(0, i), image.data_ptr<float>());
  return {image, Tensor()};
}

nn::Batch ImageFolderDataset::get_batch(const std::vector<int64_t>& indices) const {
  return batch_for_epoch(0, indices);
}

nn::Batch ImageFolderDataset::batch_for_epoch(int64_t epoch, const std::vector<int64_t>& indices) const {
  ATELIER_CHECK(!indices.empty(), "ImageFolderDataset: empty batch");
  const int64_t c = data_->channels, s = data_->image_size;
  nn::Batch batch;
  batch.data = empty({static_cast<int64_t>(indices.size()), c, s, s});
  float* to = batch.data.data_ptr<float>();
  for (size_t b = 0; b < indices.size(); ++b) {
    write_image(indices[b], flipped(epoch, indices[b]), to + static_cast<int64_t>(b) * c * s * s);
  }
  return batch;
}

}  // namespace atelier::began
