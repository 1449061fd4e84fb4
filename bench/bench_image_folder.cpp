// Loading a folder of LFW-like photos with `--data folder` (began/data/image_folder.h): ATELIER_BENCH_IMAGES
// (default 2,000) JPEGs of 250x250, in folders of 10 like lfw-deepfunneled/<Name>/<Name>_NNNN.jpg, generated once
// into a temporary folder (smooth colour pictures with a fine texture, quality 90: about LFW's file sizes), then
//   load_image_folder/64        RGB 64x64, the whole square: full decode (125 < 2 * 64), area average 250 -> 64
//   load_image_folder/64/crop108  RGB 64x64 from the centred 108x108 (a tighter face crop)
//   load_image_folder/32        RGB 32x32: libjpeg decodes at 1/2 scale (125 >= 2 * 32), then 125 -> 32
//   load_image_folder/64/cached the second run with --cache: the cache file read back
// Counters: images/s over the whole load (walk, read, decode, resize; parallel over ATELIER_NUM_THREADS threads).
// The target: 13,000 such files in under 30 s on 2 cores (ATELIER_BENCH_IMAGES=13000; docs/began.md).
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include "backends/thread_pool.h"
#include "began/data/image_folder.h"
#include "tests/image_tree.h"

namespace atelier {
namespace {

int64_t image_count() {
  const char* env = std::getenv("ATELIER_BENCH_IMAGES");
  return env != nullptr && std::atoll(env) > 0 ? std::atoll(env) : 2000;
}

// The photo folder, written on first use and removed at exit.
struct PhotoFolder {
  std::string dir, cache;
  PhotoFolder() {
    const std::string base = "/tmp/atelier-bench-photos-" + std::to_string(::getpid());
    dir = base + "/photos";
    cache = base + "/cache";
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> noise(-12, 12);
    const int64_t n = image_count();
    for (int64_t i = 0; i < n; ++i) {
      std::vector<uint8_t> px = testing::picture_pixels(static_cast<int>(i), 250, 250, 3);
      for (uint8_t& v : px) v = static_cast<uint8_t>(std::clamp(v + noise(rng), 0, 255));
      const std::string name = "Person_" + std::to_string(i / 10);
      testing::write_file(dir + "/" + name + "/" + name + "_" + std::to_string(i % 10) + ".jpg",
                          testing::encode_jpeg(px, 250, 250, testing::JpegKind::rgb, 90));
    }
  }
  ~PhotoFolder() { std::filesystem::remove_all(std::filesystem::path(dir).parent_path()); }
};

PhotoFolder& photos() {
  static PhotoFolder folder;
  return folder;
}

void run_load(benchmark::State& state, int64_t size, int64_t crop, bool cached) {
  PhotoFolder& folder = photos();
  began::ImageFolderOptions options;
  options.dir = folder.dir;
  options.image_size = size;
  options.channels = 3;
  options.crop = crop;
  if (cached) {
    options.cache_dir = folder.cache;
    began::load_image_folder(options);  // writes the cache file
  }
  int64_t used = 0;
  for (auto _ : state) {
    began::ImageFolderData data = began::load_image_folder(options);
    if (cached && !data.from_cache) state.SkipWithError("the cache was not used");
    used = data.count();
    benchmark::DoNotOptimize(data.pixels.data());
  }
  state.counters["images"] = static_cast<double>(used);
  state.counters["threads"] = num_threads();
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(used) * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

void BM_load_64(benchmark::State& state) { run_load(state, 64, 0, false); }
void BM_load_64_crop108(benchmark::State& state) { run_load(state, 64, 108, false); }
void BM_load_32(benchmark::State& state) { run_load(state, 32, 0, false); }
void BM_load_64_cached(benchmark::State& state) { run_load(state, 64, 0, true); }

BENCHMARK(BM_load_64)->Name("load_image_folder/64")->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_load_64_crop108)
    ->Name("load_image_folder/64/crop108")
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_load_32)->Name("load_image_folder/32")->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_load_64_cached)
    ->Name("load_image_folder/64/cached")
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace
}  // namespace atelier

BENCHMARK_MAIN();
