// `--data folder` (began/data/image_folder.h) on the generated tree of tests/image_tree.h: the counts and names of
// every case, pixels against Pillow's decode (the committed fixture tests/fixtures/image_tree_pil.txt), the crop,
// scaled JPEG decoding, the cache, the flips, and `began train --data folder` with an exact resume.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "began/data/image_folder.h"
#include "began/run_files.h"
#include "began/train_checkpoint.h"
#include "began/trainer.h"
#include "nn/data/dataloader.h"
#include "nn/safetensors.h"
#include "tests/began_train_util.h"
#include "tests/image_tree.h"
#include "tests/test_util.h"

using namespace atelier;
using began::ImageFolderData;
using began::ImageFolderOptions;
using testing::TempDir;

namespace {

// Pillow's decode of one file: interleaved (height, width, channels).
struct Reference {
  int64_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// tests/fixtures/image_tree_pil.txt: "<path> <channels> <width> <height> <hex pixels>" per line, '#' comments.
std::map<std::pair<std::string, int64_t>, Reference> read_fixture() {
  std::ifstream in(std::string(ATELIER_SOURCE_DIR) + "/tests/fixtures/image_tree_pil.txt");
  REQUIRE(in.good());
  std::map<std::pair<std::string, int64_t>, Reference> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string path, hex;
    Reference r;
    fields >> path >> r.channels >> r.width >> r.height >> hex;
    REQUIRE(hex.size() == static_cast<size_t>(2 * r.width * r.height * r.channels));
    for (size_t i = 0; i < hex.size(); i += 2)
      r.pixels.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    out[{path, r.channels}] = r;
  }
  return out;
}

// The centred square of side `side` of a reference, averaged over blocks of factor x factor: (s, s, C).
std::vector<double> reference_square(const Reference& r, int64_t side, int64_t factor) {
  const int64_t x0 = (r.width - side) / 2, y0 = (r.height - side) / 2, s = side / factor, c = r.channels;
  std::vector<double> out(static_cast<size_t>(s * s * c), 0.0);
  for (int64_t y = 0; y < side; ++y) {
    for (int64_t x = 0; x < side; ++x) {
      for (int64_t k = 0; k < c; ++k) {
        out[static_cast<size_t>(((y / factor) * s + x / factor) * c + k)] +=
            r.pixels[static_cast<size_t>(((y0 + y) * r.width + x0 + x) * c + k)] / static_cast<double>(factor * factor);
      }
    }
  }
  return out;
}

ImageFolderData load(const std::string& dir, int64_t size, int64_t channels, int64_t crop = 0,
                     const std::string& cache = "", std::vector<std::string>* log = nullptr) {
  ImageFolderOptions o;
  o.dir = dir;
  o.image_size = size;
  o.channels = channels;
  o.crop = crop;
  o.cache_dir = cache;
  if (log) o.log = [log](const std::string& line) { log->push_back(line); };
  return began::load_image_folder(o);
}

std::vector<std::string> names(const std::vector<std::pair<std::string, std::string>>& rejected) {
  std::vector<std::string> out;
  for (const auto& r : rejected) out.push_back(r.first);
  return out;
}

// Image i of a load, interleaved (S, S, C) like a reference.
std::vector<uint8_t> interleaved(const ImageFolderData& d, int64_t i) {
  const int64_t s = d.image_size, c = d.channels, plane = s * s;
  std::vector<uint8_t> out(static_cast<size_t>(plane * c));
  for (int64_t p = 0; p < plane; ++p) {
    for (int64_t k = 0; k < c; ++k) {
      out[static_cast<size_t>(p * c + k)] = d.pixels[static_cast<size_t>(i * plane * c + k * plane + p)];
    }
  }
  return out;
}

double max_difference(const std::vector<uint8_t>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

began::ImageRequest request(int64_t channels, int64_t crop = 0, int64_t size = 0, bool scaled = true) {
  began::ImageRequest r;
  r.channels = channels;
  r.crop = crop;
  r.size = size;
  r.scaled_decoding = scaled;
  return r;
}

}  // namespace

TEST_CASE("image folder: every case of the generated tree is used, skipped, rejected or ignored as the rules say") {
  TempDir dir;
  const testing::ImageTree tree = testing::write_image_tree(dir.path);
  REQUIRE(tree.colour.size() == 14);
  REQUIRE(tree.one_component.size() == 4);

  const ImageFolderData rgb = load(dir.path, 8, 3);
  CHECK(rgb.used == tree.colour);  // sorted walk: the order is the paths' byte order
  CHECK(rgb.skipped == tree.one_component);
  CHECK(names(rgb.rejected) == tree.rejected);
  CHECK(rgb.ignored == tree.ignored);
  CHECK(rgb.pixels.size() == tree.colour.size() * 3 * 8 * 8);
  CHECK(rgb.summary() == "14 images used, 4 skipped (one colour component), 5 rejected, 2 other files ignored");
  CHECK(rgb.upscaled == 0);
  CHECK(load(dir.path, 16, 3).upscaled == 0);  // the 16x16 images at 16 (the 24x16 one's centred square is 16)

  const ImageFolderData grey = load(dir.path, 8, 1);
  std::vector<std::string> all = tree.colour;
  all.insert(all.end(), tree.one_component.begin(), tree.one_component.end());
  std::sort(all.begin(), all.end());
  CHECK(grey.used == all);
  CHECK(grey.skipped.empty());
  CHECK(names(grey.rejected) == tree.rejected);

  // The report lists every skipped and rejected file with its reason.
  const std::string report = rgb.report();
  for (const std::string& name : tree.one_component) CHECK(report.find("skipped\t" + name + "\t") != std::string::npos);
  std::map<std::string, std::string> reason(rgb.rejected.begin(), rgb.rejected.end());
  CHECK(reason["bad/empty.jpg"].find("empty file") != std::string::npos);
  CHECK(reason["bad/truncated.jpg"].find("truncated or corrupt JPEG") != std::string::npos);
  CHECK(reason["bad/truncated.png"].find("truncated or corrupt PNG") != std::string::npos);
  CHECK(reason["bad/garbage.png"].find("not a JPEG or PNG") != std::string::npos);
  CHECK(reason["bad/text.jpeg"].find("not a JPEG or PNG") != std::string::npos);
  for (const std::string& name : tree.rejected) {
    CHECK(report.find("rejected\t" + name + "\t") != std::string::npos);
  }
}

TEST_CASE("image folder: pixels are within 2 levels of Pillow's decode (the committed fixture)") {
  TempDir dir;
  const testing::ImageTree tree = testing::write_image_tree(dir.path);
  // tests/fixtures/make_image_tree_fixture.py decodes a tree written here: set the variable to a folder to get one.
  if (const char* out = std::getenv("ATELIER_WRITE_IMAGE_TREE")) testing::write_image_tree(out);
  const auto fixture = read_fixture();

  for (int64_t channels : {3, 1}) {
    std::vector<std::string> files = tree.colour;
    if (channels == 1) files.insert(files.end(), tree.one_component.begin(), tree.one_component.end());
    // The full decode of each file, and the folder load at 8x8 (the 16x16 centre square averaged over 2x2).
    const ImageFolderData d = load(dir.path, 8, channels);
    for (const std::string& name : files) {
      CAPTURE(name);
      CAPTURE(channels);
      auto it = fixture.find({name, channels});
      REQUIRE(it != fixture.end());
      const Reference& ref = it->second;
      const began::DecodedImage full =
          began::decode_image(testing::read_bytes(dir.file(name)), name, request(channels, 0, 0, false));
      REQUIRE(!full.one_component);
      CHECK(full.image.height == 16);
      CHECK(full.image.width == 16);
      CHECK(max_difference(full.image.pixels, reference_square(ref, 16, 1)) <= 2);

      const auto at = std::find(d.used.begin(), d.used.end(), name);
      REQUIRE(at != d.used.end());
      CHECK(max_difference(interleaved(d, at - d.used.begin()), reference_square(ref, 16, 2)) <= 2);
    }
  }
}

TEST_CASE("image folder: --crop takes the centred square; a crop larger than the image rejects the file") {
  TempDir dir;
  testing::write_image_tree(dir.path);
  const auto fixture = read_fixture();
  const Reference& wide = fixture.at({"png/deeper/wide.png", 3});
  REQUIRE(wide.width == 24);
  const std::string bytes = testing::read_bytes(dir.file("png/deeper/wide.png"));
  const began::DecodedImage crop8 = began::decode_image(bytes, "wide", request(3, 8));
  CHECK(crop8.image.width == 8);
  CHECK(max_difference(crop8.image.pixels, reference_square(wide, 8, 1)) <= 2);
  const began::DecodedImage crop12_to_4 = began::decode_image(bytes, "wide", request(3, 12, 4));
  CHECK(max_difference(crop12_to_4.image.pixels, reference_square(wide, 12, 3)) <= 2);

  testing::check_throws_with([&] { began::decode_image(bytes, "wide.png", request(3, 17)); },
                             {"wide.png", "24 x 16 pixels, smaller than the crop of 17"});
  // A folder load under --crop 17: every colour image is smaller, so each is rejected by name and the load fails.
  testing::check_throws_with([&] { load(dir.path, 8, 3, 17); },
                             {"none of its 23 image files could be used", "0 images used", "19 rejected"});
}

TEST_CASE("image folder: one channel of an RGB image is its luma rounded to the nearest level, as Pillow's L") {
  // (299 R + 587 G + 114 B) / 1000, rounded: 0.598 -> 1, 0.57 -> 1, 140.75 -> 141, 255 -> 255 (truncated: 0, 0, 140).
  // Decoded at its own size, the area resize is the identity, so the levels come out as computed. (The fixture test
  // allows 2 levels against Pillow for the decoders' sake, which would hide a rounding slip.)
  const std::vector<uint8_t> rgb = {2, 0, 0, 0, 0, 5, 100, 150, 200, 255, 255, 255};
  const std::string png = testing::encode_png_raw(rgb, 2, 2, testing::PngSpec(PNG_COLOR_TYPE_RGB));
  const began::DecodedImage grey = began::decode_image(png, "luma.png", request(1));
  CHECK(grey.image.pixels == std::vector<uint8_t>{1, 1, 141, 255});
  CHECK(began::decode_image(png, "rgb.png", request(3)).image.pixels == rgb);
}

TEST_CASE("image folder: a palette PNG with transparency (a tRNS chunk) gives its palette's colours, alpha dropped") {
  // libpng's palette expansion also turns a tRNS chunk into a fourth (alpha) sample; read as four components, the
  // pixels went through the CMYK conversion (opaque entries came out black). pngquant's output is such a file.
  testing::PngSpec spec(PNG_COLOR_TYPE_PALETTE);
  spec.palette = {{10, 20, 30}, {200, 150, 100}};
  spec.alphas = {0, 255};
  const std::string png = testing::encode_png_raw({0, 1, 1, 0}, 2, 2, spec);
  CHECK(began::decode_image(png, "trns.png", request(3)).image.pixels ==
        std::vector<uint8_t>{10, 20, 30, 200, 150, 100, 200, 150, 100, 10, 20, 30});
  CHECK(began::decode_image(png, "trns.png", request(1)).image.pixels == std::vector<uint8_t>{18, 159, 159, 18});
}

TEST_CASE("image folder: an empty folder, a folder without images and one without usable images are clear errors") {
  TempDir dir;
  testing::check_throws_with([&] { load(dir.path, 8, 3); }, {dir.path, "no image files"});
  testing::write_file(dir.file("readme.txt"), "hello");
  testing::check_throws_with([&] { load(dir.path, 8, 3); }, {"no image files", "(1 other file)"});
  testing::write_file(dir.file("broken.jpg"), "not really");
  testing::check_throws_with([&] { load(dir.path, 8, 3); },
                             {"its one image file could not be used", "0 images used", "1 rejected"});
  testing::check_throws_with([&] { load(dir.file("missing"), 8, 3); }, {"missing", "no such folder"});
  testing::check_throws_with([&] { load(dir.file("readme.txt"), 8, 3); }, {"readme.txt: not a folder"});
  testing::check_throws_with([&] { load(dir.path, 8, 2); }, {"--channels must be 1 (luma) or 3 (RGB), got 2"});
}

TEST_CASE("image folder: JPEG decoding at a DCT scale stays within 2 levels of the full decode, area-averaged") {
  // A 96x96 photo-like picture to 12x12: 96 / 4 = 24 >= 2 * 12, so libjpeg decodes at 1/4 scale, then 2x2 averages.
  for (testing::JpegKind kind : {testing::JpegKind::rgb, testing::JpegKind::progressive, testing::JpegKind::cmyk}) {
    const int components = kind == testing::JpegKind::cmyk ? 4 : 3;
    const std::string bytes = testing::encode_jpeg(testing::picture_pixels(7, 96, 96, components), 96, 96, kind);
    const began::DecodedImage scaled = began::decode_image(bytes, "photo", request(3, 0, 12, true));
    const began::DecodedImage full = began::decode_image(bytes, "photo", request(3, 0, 0, false));
    CHECK(scaled.dct_scale == 4);
    CHECK(full.dct_scale == 1);
    Reference ref{96, 96, 3, full.image.pixels};
    CHECK(max_difference(scaled.image.pixels, reference_square(ref, 96, 8)) <= 2);
  }
}

TEST_CASE("image folder: the cache is reused on the second run and rebuilt when a file changes") {
  TempDir dir, cache;
  testing::write_image_tree(dir.path);
  std::vector<std::string> log;
  const ImageFolderData first = load(dir.path, 8, 3, 0, cache.path, &log);
  CHECK(!first.from_cache);
  REQUIRE(cache.list().size() == 1);
  CHECK(first.cache_path == cache.file(*cache.list().begin()));

  const ImageFolderData second = load(dir.path, 8, 3, 0, cache.path, &log);
  CHECK(second.from_cache);
  CHECK(second.pixels == first.pixels);
  CHECK(second.used == first.used);
  CHECK(second.skipped == first.skipped);
  CHECK(second.rejected == first.rejected);
  CHECK(second.ignored == first.ignored);
  CHECK(second.summary() == first.summary());

  // Other settings make another key: decoded again, into a second file.
  CHECK(!load(dir.path, 8, 1, 0, cache.path).from_cache);
  CHECK(cache.list().size() == 2);
  // So does another --crop: the same size, another square of each image.
  const ImageFolderData cropped = load(dir.path, 8, 3, 12, cache.path);
  CHECK(!cropped.from_cache);
  CHECK(cropped.pixels != first.pixels);
  CHECK(cache.list().size() == 3);

  // A changed file (new content, later modification time): decoded again, and the new pixels show.
  const std::string changed = dir.file("png/rgb8.png");
  testing::write_file(changed, testing::encode_png_raw(std::vector<uint8_t>(16 * 16 * 3, 200), 16, 16,
                                                       testing::PngSpec(PNG_COLOR_TYPE_RGB)));
  std::filesystem::last_write_time(changed, std::filesystem::last_write_time(changed) + std::chrono::seconds(5));
  log.clear();
  const ImageFolderData third = load(dir.path, 8, 3, 0, cache.path, &log);
  CHECK(!third.from_cache);
  CHECK(third.pixels != first.pixels);
  // Its new cache file replaces the outdated one of the same folder and settings; the other settings' files stay.
  CHECK(third.cache_path != first.cache_path);
  CHECK(!std::filesystem::exists(first.cache_path));
  CHECK(std::filesystem::exists(third.cache_path));
  CHECK(std::filesystem::exists(cropped.cache_path));
  CHECK(cache.list().size() == 3);
  CHECK(std::find(log.begin(), log.end(), "removed the outdated cache " + first.cache_path) != log.end());
  const auto at = std::find(third.used.begin(), third.used.end(), "png/rgb8.png") - third.used.begin();
  CHECK(interleaved(third, at) == std::vector<uint8_t>(8 * 8 * 3, 200));
  CHECK(load(dir.path, 8, 3, 0, cache.path).from_cache);

  // A damaged cache file is noticed, decoded again and rewritten.
  testing::write_bytes(third.cache_path, testing::read_bytes(third.cache_path).substr(0, 100));
  log.clear();
  const ImageFolderData fourth = load(dir.path, 8, 3, 0, cache.path, &log);
  CHECK(!fourth.from_cache);
  CHECK(fourth.pixels == third.pixels);
  bool noted = false;
  for (const std::string& line : log) noted = noted || line.find("is unusable") != std::string::npos;
  CHECK(noted);
  CHECK(load(dir.path, 8, 3, 0, cache.path).from_cache);
}

TEST_CASE("image folder: images smaller than the size asked for are counted as enlarged, also from the cache") {
  TempDir dir, cache;
  const testing::ImageTree tree = testing::write_image_tree(dir.path);
  // Every image's centred square is 16x16: at 32 all 14 used images are enlarged, at 16 none.
  const ImageFolderData first = load(dir.path, 32, 3, 0, cache.path);
  CHECK(first.upscaled == static_cast<int64_t>(tree.colour.size()));
  CHECK(first.summary() ==
        "14 images used (14 enlarged: smaller than 32x32), 4 skipped (one colour component), "
        "5 rejected, 2 other files ignored");
  const ImageFolderData second = load(dir.path, 32, 3, 0, cache.path);
  REQUIRE(second.from_cache);
  CHECK(second.upscaled == first.upscaled);
  CHECK(second.summary() == first.summary());
  // The crop decides: a crop of 12 at size 12 enlarges nothing, at size 14 everything.
  CHECK(load(dir.path, 12, 3, 12).upscaled == 0);
  CHECK(load(dir.path, 14, 3, 12).upscaled == 14);
}

TEST_CASE("image folder: flips are keyed by (seed, epoch, index) and reach the DataLoader's batches") {
  TempDir dir;
  testing::write_image_tree(dir.path);
  auto data = std::make_shared<ImageFolderData>(load(dir.path, 8, 3));
  const int64_t n = data->count();
  began::ImageFolderDataset plain(data, false, 5), flipping(data, true, 5), other_seed(data, true, 6);
  int64_t flips_e0 = 0, differ_e1 = 0, differ_seed = 0;
  for (int64_t i = 0; i < n; ++i) {
    flips_e0 += flipping.flipped(0, i);
    differ_e1 += flipping.flipped(0, i) != flipping.flipped(1, i);
    differ_seed += flipping.flipped(0, i) != other_seed.flipped(0, i);
    CHECK(!plain.flipped(0, i));
  }
  CHECK(flips_e0 > 0);
  CHECK(flips_e0 < n);
  CHECK(differ_e1 > 0);
  CHECK(differ_seed > 0);

  // A flipped image is the plain one mirrored left to right; values are x / 127.5 - 1.
  for (int64_t epoch : {0, 1, 2}) {
    const nn::Batch a = plain.batch_for_epoch(epoch, {0, 1, 2, 3});
    const nn::Batch b = flipping.batch_for_epoch(epoch, {0, 1, 2, 3});
    const std::vector<float> va = a.data.to_vector<float>(), vb = b.data.to_vector<float>();
    for (int64_t k = 0; k < 4; ++k) {
      const bool mirrored = flipping.flipped(epoch, k);
      for (int64_t row = 0; row < 3 * 8; ++row) {
        for (int64_t x = 0; x < 8; ++x) {
          const size_t base = static_cast<size_t>(k * 3 * 64 + row * 8);
          REQUIRE(vb[base + static_cast<size_t>(x)] == va[base + static_cast<size_t>(mirrored ? 7 - x : x)]);
        }
      }
    }
    CHECK(va[0] == static_cast<float>(data->pixels[0]) / 127.5f - 1.0f);
  }

  // The DataLoader passes its epoch: batch b of epoch e is batch_for_epoch(e, those indices).
  auto shared = std::make_shared<began::ImageFolderDataset>(data, true, 5);
  nn::DataLoader loader(shared, {.batch_size = 4, .shuffle = true, .drop_last = true, .seed = 5, .prefetch = 1});
  for (int64_t epoch : {0, 3}) {
    const std::vector<int64_t> order = loader.order(epoch);
    nn::Epoch e = loader.epoch(epoch, 1);  // from the second batch, as a resumed run starts
    std::optional<nn::Batch> batch = e.next();
    REQUIRE(batch.has_value());
    const std::vector<int64_t> indices(order.begin() + 4, order.begin() + 8);
    CHECK(batch->data.to_vector<float>() == shared->batch_for_epoch(epoch, indices).data.to_vector<float>());
  }
}

namespace {

began::TrainConfig folder_config(const std::string& data_dir, const std::string& out, int64_t steps) {
  began::TrainConfig c;
  c.data = "folder";
  c.data_dir = data_dir;
  c.crop = 16;
  c.flip = true;
  c.given = {"data", "data_dir", "crop", "flip"};
  c.model = {.image_size = 32, .channels = 3, .n = 2, .h = 4};
  c.batch = 4;  // 14 images: 3 steps per epoch
  c.lr = 1e-3;
  c.lr_window = 2;
  c.steps = steps;
  c.checkpoint_every = 2;
  c.sample_every = 1000;
  c.sample_count = 4;
  c.out = out;
  c.progress_seconds = 1e9;
  return c;
}

}  // namespace

TEST_CASE("began train --data folder: the checkpoint records the data settings and a resume is exact") {
  TempDir data, straight, split;
  testing::write_image_tree(data.path);
  REQUIRE(testing::run_training(folder_config(data.path, straight.path, 7)).status ==
          began::TrainOutcome::Status::completed);
  REQUIRE(testing::run_training(folder_config(data.path, split.path, 4)).status ==
          began::TrainOutcome::Status::completed);

  // The names of the skipped and rejected files are in the run folder.
  const std::string names = testing::read_bytes(split.file("image_folder.txt"));
  CHECK(names.find("14 images used (14 enlarged: smaller than 32x32), 4 skipped (one colour component), 5 rejected") ==
        0);
  CHECK(names.find("rejected\tbad/truncated.jpg\t") != std::string::npos);
  CHECK(names.find("skipped\tgrey.jpg\tone colour component") != std::string::npos);

  const auto metadata = began::read_train_metadata(began::checkpoint_path(split.path, 4));
  CHECK(metadata.at("setting.data") == "folder");
  CHECK(metadata.at("setting.data_dir") == data.path);
  CHECK(metadata.at("setting.crop") == "16");
  CHECK(metadata.at("setting.flip") == "true");

  // Resumed from step 4 (inside epoch 2, whose flips differ from epoch 1's): the rows of a straight run.
  began::TrainConfig resume;
  resume.resume = split.path;
  resume.steps = 7;
  resume.given = {"steps"};
  resume.progress_seconds = 1e9;
  REQUIRE(testing::run_training(resume).status == began::TrainOutcome::Status::completed);
  const std::vector<std::string> want = testing::metrics_without_time(straight.path);
  REQUIRE(want.size() == 8);
  CHECK(testing::metrics_without_time(split.path) == want);

  // A resume may not change the data settings a checkpoint fixes.
  resume.flip = false;
  resume.crop = 12;
  resume.given = {"steps", "flip", "crop"};
  testing::check_throws_with([&] { began::resolve_config(resume); }, {"--crop 12 (the run has 16)", "--flip false"});
}

TEST_CASE("began train --data folder: a resume refuses a folder whose files changed, and goes on once restored") {
  TempDir data, out;
  const testing::ImageTree tree = testing::write_image_tree(data.path);
  REQUIRE(testing::run_training(folder_config(data.path, out.path, 2)).status ==
          began::TrainOutcome::Status::completed);
  CHECK(nn::load_safetensors(began::checkpoint_path(out.path, 2))
            .metadata.at("data_images")
            .rfind("14 images, names ", 0) == 0);
  began::TrainConfig resume;
  resume.resume = out.path;
  resume.steps = 4;
  resume.given = {"steps"};
  resume.progress_seconds = 1e9;
  // One more image (a copy under a new name): the epochs, the order and the flips would no longer be the run's.
  const std::string source = data.path + "/" + tree.colour.back();
  const std::string extra = data.path + "/zz-extra" + std::filesystem::path(source).extension().string();
  std::filesystem::copy_file(source, extra);
  testing::check_throws_with([&] { began::resolve_config(resume); },
                             {"--resume: the image folder " + data.path + " now gives 15 images, names ",
                              "the run trained on 14 images, names ", "restore the folder, or start a new run"});
  std::filesystem::remove(extra);
  CHECK(testing::run_training(resume).status == began::TrainOutcome::Status::completed);
  // The folder moved: the resume names the folder its checkpoint records and the flag that points at the new place
  // (not "--data-dir X: no such folder", a flag the command line did not give), then goes on with --data-dir.
  const std::string moved = data.path + "-moved";
  std::filesystem::rename(data.path, moved);
  resume.steps = 6;
  testing::check_throws_with([&] { began::resolve_config(resume); },
                             {"--resume " + out.path + ": the run's image folder " + data.path,
                              "(recorded in its checkpoint) is not a folder here; pass --data-dir"});
  resume.data_dir = moved;
  resume.given.insert("data_dir");
  CHECK(testing::run_training(resume).status == began::TrainOutcome::Status::completed);
  std::filesystem::rename(moved, data.path);  // for TempDir to remove
}

TEST_CASE("began train --data folder: clear errors for a missing --data-dir, too few images, and folder-only flags") {
  TempDir data, out;
  testing::write_image_tree(data.path);
  began::TrainConfig c = folder_config(data.path, out.path, 2);
  c.given.erase("data_dir");
  testing::check_throws_with([&] { began::resolve_config(c); }, {"--data folder needs --data-dir"});
  c = folder_config(data.path, out.path, 2);
  c.batch = 15;
  testing::check_throws_with([&] { began::resolve_config(c); },
                             {"--batch 15 is larger than the data set (14 images in " + data.path});
  c = folder_config(data.path, out.path, 2);
  c.model.channels = 2;
  testing::check_throws_with([&] { began::resolve_config(c); }, {"not --channels 2"});
  c = folder_config(data.path, out.path, 2);
  c.data = "synthetic";
  testing::check_throws_with([&] { began::resolve_config(c); }, {"--crop applies to --data folder only"});
  // A --cache that is a file is refused before the images are decoded (and before the run folder is made).
  c = folder_config(data.path, out.path + "/run", 2);
  c.cache = out.path + "/a-file";
  c.given.insert("cache");
  std::ofstream(c.cache) << "not a folder";
  testing::check_throws_with([&] { began::resolve_config(c); }, {"--cache " + c.cache + ": not a folder"});
  CHECK_FALSE(std::filesystem::exists(out.path + "/run"));
  // And a cache folder that could not be made, under that file: named before decoding, not when the cache is written.
  const std::string file = c.cache;
  c.cache = file + "/sub";
  testing::check_throws_with([&] { began::resolve_config(c); },
                             {"--cache " + c.cache + ": " + file + " is not a folder"});
  CHECK_FALSE(std::filesystem::exists(out.path + "/run"));
  // A run folder inside the image folder: its sample grids (PNG) would join the training images on a resume.
  c = folder_config(data.path, data.path + "/sub/../run", 2);
  testing::check_throws_with(
      [&] { began::resolve_config(c); },
      {"--out " + c.out + " is inside --data-dir " + data.path, "its sample grids would join the training images"});
  CHECK_FALSE(std::filesystem::exists(data.path + "/run"));
}
