// `--data folder`: a tree of JPEG and PNG photos (e.g. LFW's lfw-deepfunneled/<Name>/<Name>_NNNN.jpg) as a data set
// of square images for BEGAN.
//
// Decoding goes through two well-kept Debian libraries, the references for their formats: libjpeg-turbo
// (libjpeg62-turbo: baseline and progressive JPEG, CMYK/YCCK, and DCT-domain scaled decoding, which makes a 250x250
// photo into 125x125 at a fraction of the cost of a full decode) and libpng (already used for the sample grids).
//
// Per file, in order:
//   - the name: only *.jpg, *.jpeg, *.jpe and *.png (any case) are images; other files are ignored (counted);
//   - the content: an empty, truncated or non-image file, or one a library reports as corrupt, is rejected with
//     its reason, and the load goes on;
//   - the colours: with 3 channels, a file with one colour component (a 1-component JPEG, a PNG of colour type 0
//     or 4) is skipped and counted, as the original BEGAN program did; an RGB file whose channels happen to be
//     equal is kept. With 1 channel every file is used, colour converted to luma (0.299 R + 0.587 G + 0.114 B).
//     PNG: 16-bit samples keep their high byte, palettes are expanded, alpha (a palette's tRNS too) is
//     dropped (never composited).
//     JPEG: CMYK and YCCK become RGB as R = (255 - C)(255 - K) / 255 (Adobe files store C, M, Y, K inverted);
//   - the geometry: a centred square crop (the largest one, or --crop N pixels a side), then an area-average
//     downscale to image_size (JPEGs are first decoded at the largest DCT scale 1/8, 1/4 or 1/2 that keeps the crop
//     at least image_size a side).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "began/image_io.h"
#include "nn/data/dataset.h"

namespace atelier::began {

// Bumped whenever decoding or resizing changes what a file becomes: it is part of the cache key.
constexpr int kImageFolderLoaderVersion = 2;  // 2: a palette PNG's tRNS chunk no longer read as CMYK

// What decode_image makes of one file.
struct ImageRequest {
  int64_t channels = 3;         // 1 (luma) or 3 (RGB)
  int64_t crop = 0;             // side of the centred square crop; 0: the largest square that fits
  int64_t size = 0;             // side of the result; 0: the crop's side (no resize)
  bool scaled_decoding = true;  // let libjpeg decode at 1/2, 1/4 or 1/8 scale when the crop stays >= size
};

struct DecodedImage {
  bool one_component = false;  // channels 3 asked, the file has one colour component: skipped, `image` is empty
  Image8 image;                // (size, size, channels), interleaved
  int64_t dct_scale = 1;       // a JPEG decoded by libjpeg at 1/dct_scale of its size (before the area average)
  bool upscaled = false;       // the square taken was smaller than the size asked for: enlarged, so blurred
};

// Decodes a JPEG or PNG file's bytes as `request` says. `what` names the file in errors. Throws atelier::Error
// (naming `what` and the reason: empty, not a JPEG or PNG, truncated, corrupt, too large, smaller than the crop)
// for a file that must be rejected.
DecodedImage decode_image(const std::string& bytes, const std::string& what, const ImageRequest& request);

// True when the file name is one of an image (*.jpg, *.jpeg, *.jpe, *.png, any case).
bool is_image_name(const std::string& name);

struct ImageFolderOptions {
  std::string dir;         // the root of the tree
  int64_t image_size = 0;  // side of every image
  int64_t channels = 3;    // 1 or 3
  int64_t crop = 0;        // 0: the largest centred square of each image
  std::string cache_dir;   // "": no cache. Else the decoded images are kept in one file there (see load_image_folder)
  // false: a cache file found is read, but none is written (the checkpoint tools: they read a run's images and
  // must not fail, or blame a --cache flag they do not have, when the run's cache folder is gone or read-only).
  bool write_cache = true;
  // Progress lines and notes (decoding progress, cache reuse); none when empty.
  std::function<void(const std::string& line)> log;
};

// The images of a folder, decoded: image i is pixels[i * C * S * S ...], planar (C, S, S), 8 bits.
struct ImageFolderData {
  int64_t channels = 0;
  int64_t image_size = 0;
  std::vector<uint8_t> pixels;
  std::vector<std::string> used;                              // paths relative to the root, in sorted order
  std::vector<std::string> skipped;                           // one colour component (channels 3 only)
  std::vector<std::pair<std::string, std::string>> rejected;  // path, reason
  int64_t ignored = 0;                                        // files whose names are not images
  int64_t upscaled = 0;     // used images whose square was smaller than image_size (enlarged: blurred)
  bool from_cache = false;  // read from the cache file, not decoded
  std::string cache_path;   // the cache file, when a cache dir was given

  int64_t count() const { return static_cast<int64_t>(used.size()); }
  // "13194 images used, 39 skipped (one colour component), 0 rejected, 2 other files ignored".
  std::string summary() const;
  // The summary, then one line per skipped ("skipped\t<path>\tone colour component") and rejected
  // ("rejected\t<path>\t<reason>") file: what `began train` writes to <run>/image_folder.txt.
  std::string report() const;
  // "14 images, names 0123456789abcdef": the count and a 64-bit hash of the used files' relative paths, in order.
  // Every checkpoint of a folder run records it, and a resume checks that the folder still gives the same images
  // (files added, removed or renamed change it; the folder itself may move).
  std::string fingerprint() const;
};

// Walks options.dir recursively (paths sorted byte-wise, so the order is the same on every machine), decodes
// every image file in parallel over the thread pool, and keeps the used ones in that order.
//
// The cache: with a cache_dir, the result lives in <cache_dir>/image_folder_<key>.bin, where key is a 64-bit hash
// of the loader version, the root, every image file's relative path, size and modification time, the image size,
// the crop and the channels. A file that matches is read instead of decoding (from_cache); any change makes a new
// key, so the folder is decoded again and a new cache file written (atomically: a temporary file renamed over).
// A cache file that cannot be read or does not check out is decoded again too, with a note; a cache folder that
// cannot be written is an error.
//
// Throws atelier::Error when dir is not a folder, holds no image file, or none of its images could be used.
ImageFolderData load_image_folder(const ImageFolderOptions& options);

// --data-dir names a folder: throws "--data-dir DIR: not a folder" (a file) or "...: no such folder" otherwise.
// load_image_folder checks it first; `began train`, `classify-train`, `classify-eval` and the checkpoint tools
// check their --data-dir with it before any work.
void check_data_dir(const std::string& dir);

// The decoded images as a data set: example i is image i as float32 (C, S, S) in [-1, 1] (x / 127.5 - 1),
// mirrored left to right when `flip` is on and the bit that Philox keyed by (seed, epoch, i) draws says so. The
// epoch comes from the DataLoader (Dataset::batch_for_epoch); get() and get_batch() are epoch 0.
class ImageFolderDataset : public nn::Dataset {
 public:
  ImageFolderDataset(std::shared_ptr<const ImageFolderData> data, bool flip, uint64_t seed);

  int64_t size() const override { return data_->count(); }
  nn::Example get(int64_t i) const override;
  nn::Batch get_batch(const std::vector<int64_t>& indices) const override;
  nn::Batch batch_for_epoch(int64_t epoch, const std::vector<int64_t>& indices) const override;

  // Whether image i is mirrored in `epoch`.
  bool flipped(int64_t epoch, int64_t i) const;

 private:
  void write_image(int64_t i, bool mirror, float* to) const;

  std::shared_ptr<const ImageFolderData> data_;
  bool flip_;
  uint64_t seed_;
};

}  // namespace atelier::began
