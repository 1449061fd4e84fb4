// PNG encoding through libpng's simplified write API (libpng >= 1.6.29: png_image_write_to_memory, which reports
// errors in png_image::message instead of longjmp, so no setjmp crosses C++ frames) and the atomic file write (on
// nn/safetensors.h's writer).
#include "began/image_io.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <png.h>
#include <zlib.h>

#include "backends/error.h"
#include "nn/safetensors.h"

namespace atelier::began {

namespace {

// Common readers (libpng's own included) refuse images wider or taller than this by default.
constexpr int64_t kMaxSide = 1000000;

// A PNG file starts with an 8-byte signature and the IHDR chunk, whose data is always 13 bytes: 4 length + 4 type
// + 13 data + 4 checksum. atelier's mark is the chunk right after it.
constexpr size_t kSignatureBytes = 8;
constexpr size_t kHeaderEnd = kSignatureBytes + 4 + 4 + 13 + 4;

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

uint32_t be32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 |
         static_cast<uint32_t>(p[3]);
}

// The tEXt chunk "Software" = kPngSoftware: length, type, keyword, a zero byte, the text, then the CRC-32 of type
// and data (zlib's crc32 is the checksum PNG specifies).
std::string software_chunk() {
  std::string type_and_data = std::string("tEXt") + "Software" + '\0' + kPngSoftware;
  std::string chunk;
  put_be32(chunk, static_cast<uint32_t>(type_and_data.size() - 4));
  chunk += type_and_data;
  const auto* bytes = reinterpret_cast<const Bytef*>(type_and_data.data());
  put_be32(chunk, static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), bytes, static_cast<uInt>(type_and_data.size()))));
  return chunk;
}

}  // namespace

std::string encode_png(const Image8& image, const std::string& what) {
  const std::string where = "encode_png: " + what + ": ";
  ATELIER_CHECK(image.channels == 1 || image.channels == 3,
                where << "expected 1 (grey) or 3 (RGB) channels, got " << image.channels);
  ATELIER_CHECK(
      image.height > 0 && image.width > 0 && image.height <= kMaxSide && image.width <= kMaxSide,
      where << "image of " << image.height << " x " << image.width << " pixels: each side must be 1 to " << kMaxSide);
  const size_t expected = static_cast<size_t>(image.height * image.width * image.channels);
  ATELIER_CHECK(image.pixels.size() == expected, where << image.height << " x " << image.width << " x "
                                                       << image.channels << " image needs " << expected
                                                       << " bytes, got " << image.pixels.size());

  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = image.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  const auto row_stride = static_cast<png_int_32>(image.width * image.channels);

  // PNG_IMAGE_PNG_SIZE_MAX bounds the file size (raw data plus zlib's and PNG's overheads), so one pass is enough.
  std::string bytes(PNG_IMAGE_PNG_SIZE_MAX(png), '\0');
  png_alloc_size_t size = bytes.size();
  const int ok = png_image_write_to_memory(&png, bytes.data(), &size, /*convert_to_8bit=*/0, image.pixels.data(),
                                           row_stride, /*colormap=*/nullptr);
  ATELIER_CHECK(ok != 0, where << "libpng could not encode the image: " << png.message);
  bytes.resize(size);
  ATELIER_ASSERT(size > kHeaderEnd && std::memcmp(bytes.data() + kSignatureBytes + 4, "IHDR", 4) == 0,
                 where << "libpng's output does not start with the 13-byte IHDR chunk");
  bytes.insert(kHeaderEnd, software_chunk());
  return bytes;
}

bool png_written_by_atelier(const std::string& path) {
  const std::string mark = software_chunk();
  unsigned char head[64];
  static_assert(sizeof head >= kHeaderEnd + 4 + 4 + 8 + 1 + 7 + 4, "room for the header and the mark");
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return false;
  const size_t got = std::fread(head, 1, sizeof head, file);
  std::fclose(file);
  return got >= kHeaderEnd + mark.size() && png_sig_cmp(head, 0, kSignatureBytes) == 0 &&
         std::memcmp(head + kSignatureBytes + 4, "IHDR", 4) == 0 &&
         std::memcmp(head + kHeaderEnd, mark.data(), mark.size()) == 0;
}

std::optional<std::pair<int64_t, int64_t>> png_size(const std::string& path) {
  // Signature (8 bytes), IHDR length (4) and type (4), then width and height, big-endian.
  unsigned char head[24];
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return std::nullopt;
  const size_t got = std::fread(head, 1, sizeof head, file);
  std::fclose(file);
  if (got != sizeof head || png_sig_cmp(head, 0, 8) != 0 || std::memcmp(head + 12, "IHDR", 4) != 0) {
    return std::nullopt;
  }
  return std::make_pair(static_cast<int64_t>(be32(head + 16)), static_cast<int64_t>(be32(head + 20)));
}

void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& where) {
  namespace fs = std::filesystem;
  ATELIER_CHECK(!path.empty(), where << "empty output path");
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    ATELIER_CHECK(!ec,
                  where << "'" << path << "': cannot create the folder '" << parent.string() << "': " << ec.message());
  }
  nn::write_file_atomically(path, bytes, where + "'" + path + "': ");
}

std::string folder_problem(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (std::filesystem::is_directory(status)) return "";
  if (status.type() == std::filesystem::file_type::not_found) return "no such folder";
  return ec ? "cannot look at it: " + ec.message() : "not a folder";
}

}  // namespace atelier::began
