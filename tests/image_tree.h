// A tree of small JPEG and PNG files holding every case `--data folder` must handle (began/data/image_folder.h),
// written by the tests (tests/test_image_folder.cpp), the decoding benchmark (bench/bench_image_folder.cpp) and
// the fuzz seed writer. Encoded with libjpeg and libpng directly, so the files are exactly the same on every run
// with the same libraries; tests/fixtures/make_image_tree_fixture.py decodes them with Pillow for the reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

namespace atelier::testing {

// ---- Writers ----

enum class JpegKind { rgb, progressive, grey, cmyk, ycck };

// Interleaved 8-bit pixels: 3 components for rgb/progressive, 1 for grey, 4 (C, M, Y, K as stored) for cmyk/ycck.
inline std::string encode_jpeg(const std::vector<uint8_t>& px, int width, int height, JpegKind kind, int quality = 92) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);  // valid input only: libjpeg's default (exit) never runs
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  const bool four = kind == JpegKind::cmyk || kind == JpegKind::ycck;
  cinfo.input_components = kind == JpegKind::grey ? 1 : four ? 4 : 3;
  cinfo.in_color_space = kind == JpegKind::grey ? JCS_GRAYSCALE : four ? JCS_CMYK : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  if (kind == JpegKind::cmyk) jpeg_set_colorspace(&cinfo, JCS_CMYK);  // both write an Adobe marker
  if (kind == JpegKind::ycck) jpeg_set_colorspace(&cinfo, JCS_YCCK);
  jpeg_set_quality(&cinfo, quality, TRUE);
  if (kind == JpegKind::progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  const size_t row = static_cast<size_t>(width * cinfo.input_components);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW rows[1] = {const_cast<uint8_t*>(px.data()) + row * cinfo.next_scanline};
    jpeg_write_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string bytes(reinterpret_cast<const char*>(buffer), size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return bytes;
}

struct PngSpec {
  PngSpec(int type, int depth = 8, bool interlace = false)
      : color_type(type), bit_depth(depth), interlaced(interlace) {}
  int color_type = PNG_COLOR_TYPE_RGB;  // 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA
  int bit_depth = 8;                    // 8 or 16 (palette: 8)
  bool interlaced = false;
  std::vector<png_color> palette;  // colour type 3
  std::vector<png_byte> alphas;    // colour type 3: a tRNS chunk of one alpha per palette entry (none when empty)
};

inline void png_append(png_structp png, png_bytep data, size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}

// Rows of samples as the PNG stores them (16-bit samples big-endian). Throws std::runtime_error on a libpng error.
inline std::string encode_png_raw(const std::vector<uint8_t>& rows, int width, int height, const PngSpec& spec) {
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("encode_png_raw: libpng failed");
  }
  png_set_write_fn(png, &out, png_append, nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), spec.bit_depth,
               spec.color_type, spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (spec.color_type == PNG_COLOR_TYPE_PALETTE) {
    png_set_PLTE(png, info, spec.palette.data(), static_cast<int>(spec.palette.size()));
    if (!spec.alphas.empty())
      png_set_tRNS(png, info, spec.alphas.data(), static_cast<int>(spec.alphas.size()), nullptr);
  }
  png_write_info(png, info);
  const size_t row = rows.size() / static_cast<size_t>(height);
  std::vector<png_bytep> pointers(static_cast<size_t>(height));
  for (int y = 0; y < height; ++y) pointers[static_cast<size_t>(y)] = const_cast<uint8_t*>(rows.data()) + row * y;
  png_write_image(png, pointers.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.good()) throw std::runtime_error("write_file: cannot write " + path);
}

// ---- Content ----

// A smooth colour picture, different for each `seed` (so a swapped order shows): component c of pixel (x, y).
inline uint8_t picture(int seed, int x, int y, int c, int width, int height) {
  const double u = static_cast<double>(x) / width, v = static_cast<double>(y) / height;
  const double s = seed * 0.37;
  double value = 0;
  if (c == 0) value = 40 + 170 * u + 20 * std::sin(s);
  if (c == 1) value = 50 + 150 * v + 25 * std::cos(s);
  if (c == 2) value = 128 + 80 * std::sin(3.0 * (u + v) + s);
  if (c == 3) value = 30 + 60 * u * v + 10 * seed % 40;
  return static_cast<uint8_t>(std::lround(std::fmin(255.0, std::fmax(0.0, value))));
}

// Interleaved pixels of `components` components (1: the first; 4: adds a fourth).
inline std::vector<uint8_t> picture_pixels(int seed, int width, int height, int components) {
  std::vector<uint8_t> px;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < components; ++c) px.push_back(picture(seed, x, y, c, width, height));
    }
  }
  return px;
}

// ---- The tree ----

// What load_image_folder must find in the tree (paths relative to its root, in sorted order).
struct ImageTree {
  std::vector<std::string> colour;         // used with 3 channels (and with 1)
  std::vector<std::string> one_component;  // skipped with 3 channels, used with 1
  std::vector<std::string> rejected;       // truncated, empty, not an image
  int64_t ignored = 0;                     // names that are not images
};

// Writes the tree under `root` (16x16 images, one 24x16 for the centre crop) and says what it holds.
inline ImageTree write_image_tree(const std::string& root) {
  ImageTree tree;
  int seed = 0;
  auto jpeg = [&](const std::string& rel, JpegKind kind, int w = 16, int h = 16) {
    const int components = kind == JpegKind::grey ? 1 : (kind == JpegKind::cmyk || kind == JpegKind::ycck) ? 4 : 3;
    std::string bytes = encode_jpeg(picture_pixels(++seed, w, h, components), w, h, kind);
    write_file(root + "/" + rel, bytes);
    (kind == JpegKind::grey ? tree.one_component : tree.colour).push_back(rel);
    return bytes;
  };
  // Samples per pixel of each PNG colour type, and the rows (16-bit: the 8-bit picture in the high byte and a
  // pattern in the low byte, which a decoder keeping the high byte ignores).
  auto png = [&](const std::string& rel, PngSpec spec, int w = 16, int h = 16) {
    const int t = spec.color_type;
    const int samples = t == 0 ? 1 : t == 2 ? 3 : t == 3 ? 1 : t == 4 ? 2 : 4;
    const std::vector<uint8_t> px = picture_pixels(++seed, w, h, 4);
    std::vector<uint8_t> rows;
    for (int i = 0; i < w * h; ++i) {
      for (int s = 0; s < samples; ++s) {
        uint8_t v = t == 3 ? static_cast<uint8_t>(px[4 * i] ^ px[4 * i + 1]) : px[4 * i + s];
        if ((t == 0 || t == 4) && s == 0) v = px[4 * i + 1];
        rows.push_back(v);
        if (spec.bit_depth == 16) rows.push_back(static_cast<uint8_t>(i * 37 + s));
      }
    }
    if (t == 3) {
      for (int k = 0; k < 256; ++k) {
        spec.palette.push_back(
            {static_cast<png_byte>(k), static_cast<png_byte>(255 - k), static_cast<png_byte>((k * 5) & 255)});
      }
    }
    std::string bytes = encode_png_raw(rows, w, h, spec);
    write_file(root + "/" + rel, bytes);
    (t == 0 || t == 4 ? tree.one_component : tree.colour).push_back(rel);
    return bytes;
  };

  const std::string baseline = jpeg("a/rgb_baseline.jpg", JpegKind::rgb);
  jpeg("a/rgb_progressive.jpg", JpegKind::progressive);
  jpeg("a/b/cmyk.jpg", JpegKind::cmyk);
  jpeg("a/b/ycck.jpeg", JpegKind::ycck);
  jpeg("grey.jpg", JpegKind::grey);
  jpeg("UPPER.JPG", JpegKind::rgb);
  {  // An RGB JPEG whose three channels are equal: three components, so kept.
    std::vector<uint8_t> px;
    for (uint8_t v : picture_pixels(++seed, 16, 16, 1)) px.insert(px.end(), {v, v, v});
    write_file(root + "/equal_rgb.jpg", encode_jpeg(px, 16, 16, JpegKind::rgb));
    tree.colour.push_back("equal_rgb.jpg");
  }
  const std::string rgb_png = png("png/rgb8.png", PngSpec(PNG_COLOR_TYPE_RGB));
  png("png/rgba8.png", PngSpec(PNG_COLOR_TYPE_RGB_ALPHA));
  png("png/rgb16.png", PngSpec(PNG_COLOR_TYPE_RGB, 16));
  png("png/rgba16.png", PngSpec(PNG_COLOR_TYPE_RGB_ALPHA, 16));
  png("png/palette.png", PngSpec(PNG_COLOR_TYPE_PALETTE));
  png("png/interlaced.png", PngSpec(PNG_COLOR_TYPE_RGB, 8, true));
  png("png/grey8.png", PngSpec(PNG_COLOR_TYPE_GRAY));
  png("png/grey16.png", PngSpec(PNG_COLOR_TYPE_GRAY, 16));
  png("png/grey_alpha.png", PngSpec(PNG_COLOR_TYPE_GRAY_ALPHA));
  png("png/deeper/wide.png", PngSpec(PNG_COLOR_TYPE_RGB), 24, 16);
  {  // An RGB PNG whose channels are equal: colour type 2, so kept.
    std::vector<uint8_t> rows;
    for (uint8_t v : picture_pixels(++seed, 16, 16, 1)) rows.insert(rows.end(), {v, v, v});
    write_file(root + "/png/equal_rgb.png", encode_png_raw(rows, 16, 16, PngSpec(PNG_COLOR_TYPE_RGB)));
    tree.colour.push_back("png/equal_rgb.png");
  }
  // Rejected: cut short, empty, not images at all.
  write_file(root + "/bad/truncated.jpg", baseline.substr(0, baseline.size() / 2));
  write_file(root + "/bad/truncated.png", rgb_png.substr(0, rgb_png.size() * 2 / 3));
  write_file(root + "/bad/empty.jpg", "");
  write_file(root + "/bad/garbage.png", std::string("\x12\x34 this is not an image \xff\xd8"));
  write_file(root + "/bad/text.jpeg", "hello, I am a text file with a .jpeg name\n");
  tree.rejected = {"bad/empty.jpg", "bad/garbage.png", "bad/text.jpeg", "bad/truncated.jpg", "bad/truncated.png"};
  // Ignored: names that are not images.
  write_file(root + "/notes.txt", "not an image name\n");
  write_file(root + "/a/README", "nor this\n");
  tree.ignored = 2;

  std::sort(tree.colour.begin(), tree.colour.end());
  std::sort(tree.one_component.begin(), tree.one_component.end());
  return tree;
}

}  // namespace atelier::testing
