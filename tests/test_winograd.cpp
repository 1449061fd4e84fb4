// Winograd convolution (backends/cpu/winograd.cpp) and the direct kernels (backends/cpu/direct_conv.cpp) on the CPU
// against im2col: forward, input gradient, weight and bias gradients over a table of shapes, in float32 (relative
// L2 error within the stated accuracy of each algorithm) and float64 (1e-12); bit-identical repeated calls and
// agreement across thread counts; and the algorithm's selection (ATELIER_CONV_ALGO and the auto rule).
// tests/test_conv.cpp checks that a steady step allocates nothing under each algorithm, tests/test_gradcheck.cpp the op
// table's conv rows under each.
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <unistd.h>

#include "atelier.h"
#include "backends/conv_algo.h"
#include "backends/cpu/winograd.h"
#include "tensor/raw_ops.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::ConvAlgoScope;
using testing::relative_l2;
using testing::same_bits;
using testing::ThreadCountGuard;
// The Winograd chunk limit (backends/cpu/winograd.h): 0 for the machine's rule, else every layer's.
using ChunkTilesScope =
    testing::SettingScope<int64_t, cpu::winograd_chunk_tiles_setting, cpu::set_winograd_chunk_tiles>;

namespace {

// A 3x3 stride-1 convolution.
struct Case {
  int64_t n, c_in, h, w, c_out, pad;
  bool bias;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << "n " << c.n << ", " << c.c_in << "->" << c.c_out << ", " << c.h << "x" << c.w << ", pad " << c.pad
            << (c.bias ? ", bias" : "");
}

// Odd sizes, sizes that are not a multiple of either tile (2 or 4), pad 0 to 3 (3 > k - 1: the input gradient
// crops), one channel, channel counts that are not a multiple of a vector (16 floats, 8 doubles), batch > 1,
// a 1x1 output, enough tiles for several chunks per thread, and a row of tiles too wide for one gather strip.
// For the float32 chunk GEMMs on the packed kernel (8-row blocks of tiles, 32-column panels of channels): chunks
// of tiles that are no multiple of 8 (60, 74, 81 or 84 tiles at one thread), output channels past a whole panel (33,
// 70) and input channels whose rows of V are padded past a whole vector (16, 20 and 40: rows of 32 and 64 floats).
// And chunks whose point matrices V[xi] and M[xi] would be a whole number of 4 KiB apart but for the 64-byte line
// winograd.cpp's point_stride puts between them (64 tiles of 64 channels: 16 KiB, at one thread and F(4x4)).
// For the output transform's groups of tiles (16 output columns stored as one line per channel, streamed where
// the row starts on a line): rows of 16 and 32 floats, and chunks that begin and end inside a group on such rows
// at every thread count the suite runs (124x64: 496 tiles of F(4x4) in chunks of 83 at 1, 2 and 3 threads, of 71
// at 7; of F(2x2), 1984 in chunks of 91 or 95). For the direct kernels (padding 1 only; the rest run im2col under
// a forced direct): rows that are one vector, no whole number of vectors (1, 5, 13, 17, 21, 23 wide; 10 and 36 for
// float, whose vectors are 16 wide, 8 for double) and several blocks of 4 vectors (48, 64, 530); 1 to 4 output
// channels and blocks of 4 with 1 or 2 left over (17, 33, 70), for the input gradient as many input channels.
const std::vector<Case> kCases = {
    {1, 3, 1, 1, 2, 1, true},      {2, 5, 2, 17, 3, 1, true},     {1, 7, 6, 48, 5, 1, false},
    {1, 1, 5, 5, 1, 1, true},      {2, 3, 7, 9, 4, 0, false},     {3, 5, 9, 6, 2, 2, true},
    {1, 16, 17, 13, 24, 1, true},  {2, 20, 16, 16, 16, 1, false}, {1, 4, 3, 3, 5, 0, true},
    {2, 33, 11, 10, 17, 1, true},  {1, 8, 4, 6, 3, 3, false},     {4, 16, 26, 23, 16, 1, true},
    {1, 2, 3, 4, 1, 2, true},      {1, 64, 3, 530, 4, 1, false},  {2, 40, 19, 21, 70, 1, true},
    {1, 96, 36, 36, 33, 1, false}, {1, 64, 32, 32, 64, 1, true},  {1, 16, 124, 64, 16, 1, true},
};

// The three passes of one case in `dtype`: output, grad_input, grad_weight, grad_bias (undefined without bias).
// The inputs are rounded to `values_in` first (a float64 reference of a float32 run sees the float32 inputs).
std::vector<Tensor> run_passes(const Case& c, DType dtype, ConvAlgo algo, DType values_in) {
  ConvAlgoScope scope(algo);
  const uint64_t seed = static_cast<uint64_t>(c.n * 1000 + c.c_in * 100 + c.h * 10 + c.w);
  // Uniform values with every mantissa bit of the dtype used: float32's 24 bits would make many float64 sums exact
  // and hide the differences between algorithms.
  auto values = [&](const Shape& s, double scale, uint64_t stream) {
    Tensor coarse = uniform(s, -scale, scale, RandomKey{31, seed, stream}, DType::Float64);
    Tensor fine = uniform(s, -scale, scale, RandomKey{32, seed, stream}, DType::Float64);
    return (coarse + fine * std::ldexp(1.0, -26)).to(values_in).to(dtype);
  };
  Tensor x = values({c.n, c.c_in, c.h, c.w}, 1, 0);
  Tensor w = values({c.c_out, c.c_in, 3, 3}, 0.5, 1);
  Tensor b = c.bias ? values({c.c_out}, 1, 2) : Tensor();
  Tensor out = raw::conv2d(x, w, b, 1, c.pad);
  Tensor grad_out = values(out.shape(), 1, 3);
  raw::Conv2dWeightGrads grads = raw::conv2d_backward_weight(x, grad_out, w.shape(), c.bias, 1, c.pad);
  return {out, raw::conv2d_backward_input(grad_out, w, x.shape(), 1, c.pad), grads.weight, grads.bias};
}

const std::string kPassNames[] = {"forward", "grad_input", "grad_weight", "grad_bias"};

std::string name(ConvAlgo algo) { return conv_algo_name(algo); }

// The chunk limits the table runs under: the default 96, for which the case comments above name the chunks, and
// the 40 that cores with 2 MiB of L2 give layers of up to 256 channels (the machine's rule picks one per layer, so
// both are pinned here on every machine).
constexpr int64_t kChunkLimits[] = {96, 40};

// The float32 relative L2 error each algorithm stays within on this file's shapes (~3x the worst measured).
double float32_bound(ConvAlgo algo) {
  return algo == ConvAlgo::Im2col || algo == ConvAlgo::Direct ? 1.5e-6 : algo == ConvAlgo::Wino2 ? 1e-6 : 5e-6;
}

// Every case's four results under `algo` in `dtype` against im2col in float64 (from the same inputs): each
// within `bound` (relative L2 error). Returns a line with the worst error of each result.
std::string check_every_case(ConvAlgo algo, DType dtype, double bound, int64_t chunk_tiles) {
  ChunkTilesScope chunks(chunk_tiles);
  double worst[4] = {0, 0, 0, 0};
  for (const Case& c : kCases) {
    const std::vector<Tensor> want = run_passes(c, DType::Float64, ConvAlgo::Im2col, dtype);
    const std::vector<Tensor> got = run_passes(c, dtype, algo, dtype);
    for (size_t k = 0; k < want.size(); ++k) {
      if (!want[k].defined()) continue;
      INFO(name(algo) << ", " << c << ", " << kPassNames[k] << ", chunks of at most " << chunk_tiles << " tiles");
      const double err = relative_l2(got[k], want[k]);
      worst[k] = std::max(worst[k], err);
      CHECK(err < bound);
    }
  }
  std::ostringstream line;
  line << name(algo) << " " << dtype_name(dtype) << ", chunks of at most " << chunk_tiles
       << " tiles, worst relative L2 error:";
  for (size_t k = 0; k < 4; ++k) line << " " << kPassNames[k] << " " << worst[k];
  return line.str();
}

}  // namespace

TEST_CASE("wino2, wino4 and direct match im2col in float64 (relative L2 error < 1e-12)" *
          doctest::test_suite("heavy")) {
  for (ConvAlgo algo : {ConvAlgo::Wino2, ConvAlgo::Wino4, ConvAlgo::Direct}) {
    for (int64_t limit : kChunkLimits) MESSAGE(check_every_case(algo, DType::Float64, 1e-12, limit));
  }
}

TEST_CASE(
    "wino2, wino4 and direct match float64 in float32 within their accuracy (wino2 1e-6, wino4 5e-6, "
    "im2col and direct 1.5e-6)") {
  // The float32 results of each algorithm against im2col in float64; im2col's own float32 error is the baseline.
  for (ConvAlgo algo : {ConvAlgo::Im2col, ConvAlgo::Wino2, ConvAlgo::Wino4, ConvAlgo::Direct}) {
    for (int64_t limit : kChunkLimits) MESSAGE(check_every_case(algo, DType::Float32, float32_bound(algo), limit));
  }
}

TEST_CASE("the Winograd chunk limit bounds a chunk's scratch: 40 tiles hold less memory at a time than 96") {
  // One thread, so one chunk's scratch (V and M: 36 points x tiles x 64 channels each, 18 KiB a tile) is all the
  // call holds beside U, the input and the output. 256 tiles of F(4x4): under a limit of 96, 3 chunks of 86; under
  // 40, 7 of 37 (equal sizes, Tiling in winograd.cpp).
  ThreadCountGuard guard;
  set_num_threads(1);
  ConvAlgoScope algo(ConvAlgo::Wino4);
  const Tensor x = uniform({1, 64, 64, 64}, -1, 1), w = uniform({64, 64, 3, 3}, -0.1, 0.1);
  Backend& cpu = backend_for(Device::cpu());
  auto peak_of_forward = [&](int64_t limit) {
    ChunkTilesScope chunks(limit);
    cpu.reset_peak_in_use();
    const size_t before = cpu.allocator_stats().in_use;
    const Tensor out = raw::conv2d(x, w, Tensor(), 1, 1);
    return static_cast<double>(cpu.allocator_stats().peak_in_use - before);
  };
  const double at_96 = peak_of_forward(96), at_40 = peak_of_forward(40);
  INFO("peak above the inputs: " << at_96 << " bytes at 96 tiles, " << at_40 << " at 40");
  CHECK(at_96 - at_40 == doctest::Approx((86 - 37) * 2 * 36 * 64 * 4.0).epsilon(0.02));  // 49 tiles of V and M
}

TEST_CASE("the Winograd chunk limit: the rule by channels and L2 size, the setting, a negative limit refused") {
  ChunkTilesScope scope(0);
  // The rule (backends/cpu/winograd.cpp): 96 tiles, 40 for layers of at most 256 channels where the L2 holds 2 MiB.
  const bool large_l2 = sysconf(_SC_LEVEL2_CACHE_SIZE) >= (long{2} << 20);
  MESSAGE("L2 of " << sysconf(_SC_LEVEL2_CACHE_SIZE) << " bytes: 128 channels in chunks of at most "
                   << cpu::winograd_chunk_tiles(128) << " tiles");
  for (int64_t channels : {2, 128, 256}) CHECK(cpu::winograd_chunk_tiles(channels) == (large_l2 ? 40 : 96));
  for (int64_t channels : {257, 384, 1024}) CHECK(cpu::winograd_chunk_tiles(channels) == 96);
  // A limit set holds every layer to it, and 0 gives the rule back.
  cpu::set_winograd_chunk_tiles(17);
  CHECK(cpu::winograd_chunk_tiles_setting() == 17);
  for (int64_t channels : {2, 1024}) CHECK(cpu::winograd_chunk_tiles(channels) == 17);
  cpu::set_winograd_chunk_tiles(0);
  CHECK(cpu::winograd_chunk_tiles(1024) == 96);
  CHECK_THROWS_WITH_AS(cpu::set_winograd_chunk_tiles(-3), doctest::Contains("got -3"), Error);
  CHECK(cpu::winograd_chunk_tiles_setting() == 0);
}

TEST_CASE("winograd and direct results are bit-identical run to run, and agree across thread counts") {
  ThreadCountGuard guard;
  const Case c{3, 24, 21, 18, 20, 1, true};
  for (ConvAlgo algo : {ConvAlgo::Wino2, ConvAlgo::Wino4, ConvAlgo::Direct}) {
    INFO(name(algo));
    set_num_threads(2);
    const std::vector<Tensor> first = run_passes(c, DType::Float32, algo, DType::Float32);
    const std::vector<Tensor> second = run_passes(c, DType::Float32, algo, DType::Float32);
    for (size_t k = 0; k < first.size(); ++k) {
      INFO(kPassNames[k]);
      CHECK(same_bits(first[k], second[k]));
    }
    for (int threads : {1, 3}) {
      set_num_threads(threads);
      const std::vector<Tensor> other = run_passes(c, DType::Float32, algo, DType::Float32);
      for (size_t k = 0; k < first.size(); ++k) {
        INFO(kPassNames[k] << ", " << threads << " threads against 2");
        CHECK(relative_l2(other[k], first[k]) < float32_bound(algo));
      }
    }
  }
}

TEST_CASE("winograd inside a parallel region runs inline and gives the same results") {
  // A conv called from a pool thread (nested) runs every chunk on that thread: same chunks, same results.
  ThreadCountGuard guard;
  set_num_threads(2);
  const Case c{2, 16, 10, 12, 16, 1, true};
  const std::vector<Tensor> outside = run_passes(c, DType::Float32, ConvAlgo::Wino4, DType::Float32);
  std::vector<Tensor> inside;
  parallel_run([&](int t, int) {
    if (t == 0) inside = run_passes(c, DType::Float32, ConvAlgo::Wino4, DType::Float32);
  });
  REQUIRE(inside.size() == outside.size());
  for (size_t k = 0; k < inside.size(); ++k) {
    INFO(kPassNames[k]);
    CHECK(same_bits(inside[k], outside[k]));
  }
}

TEST_CASE("the conv algorithm: auto's rule, forced algorithms, shapes Winograd or direct cannot compute") {
  auto geometry = [](int64_t c_in, int64_t c_out, int64_t h, int64_t k, int64_t stride, int64_t pad) {
    Conv2dGeometry g{2, c_in, h, h, c_out, k, k, stride, stride, pad, pad, 0, 0};
    g.h_out = g.w_out = (h + 2 * pad - k) / stride + 1;
    return g;
  };
  using atelier::choose_conv_algo;
  // auto: Winograd for 3x3 stride 1 with >= 16 input and >= 3 output channels; F(2x2) where its tiles need no
  // more multiplications (16 per 2x2 tile, 36 per 4x4 tile), else F(4x4).
  CHECK(choose_conv_algo(geometry(64, 64, 64, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Wino4);
  CHECK(choose_conv_algo(geometry(16, 16, 8, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Wino4);    // 144 against 256
  CHECK(choose_conv_algo(geometry(16, 16, 9, 3, 1, 0), ConvAlgo::Auto) == ConvAlgo::Wino4);    // 7x7 output
  CHECK(choose_conv_algo(geometry(128, 128, 6, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Wino2);  // 144 against 144
  CHECK(choose_conv_algo(geometry(64, 64, 2, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Wino2);    // 16 against 36
  CHECK(choose_conv_algo(geometry(64, 3, 64, 3, 1, 0), ConvAlgo::Auto) == ConvAlgo::Wino4);    // padding 0: not direct
  CHECK(choose_conv_algo(geometry(64, 2, 64, 3, 1, 0), ConvAlgo::Auto) == ConvAlgo::Im2col);
  CHECK(choose_conv_algo(geometry(3, 64, 64, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Im2col);
  CHECK(choose_conv_algo(geometry(8, 32, 32, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Im2col);
  CHECK(choose_conv_algo(geometry(64, 64, 64, 3, 2, 1), ConvAlgo::Auto) == ConvAlgo::Im2col);
  CHECK(choose_conv_algo(geometry(64, 64, 64, 1, 1, 0), ConvAlgo::Auto) == ConvAlgo::Im2col);
  // Forced: every 3x3 stride-1 shape, whatever its size; other kernels and strides stay on im2col.
  CHECK(choose_conv_algo(geometry(1, 1, 3, 3, 1, 0), ConvAlgo::Wino2) == ConvAlgo::Wino2);
  CHECK(choose_conv_algo(geometry(1, 1, 3, 3, 1, 0), ConvAlgo::Wino4) == ConvAlgo::Wino4);
  CHECK(choose_conv_algo(geometry(64, 64, 64, 3, 1, 1), ConvAlgo::Im2col) == ConvAlgo::Im2col);
  CHECK(choose_conv_algo(geometry(64, 64, 64, 5, 1, 2), ConvAlgo::Wino4) == ConvAlgo::Im2col);
  CHECK(choose_conv_algo(geometry(64, 64, 64, 3, 2, 1), ConvAlgo::Wino2) == ConvAlgo::Im2col);
  // The direct kernels: auto takes them for 3x3, stride-1, padding-1 layers with 1 to 3 output channels, whatever
  // the input channels; forced, for every such layer; else the rule above.
  CHECK(choose_conv_algo(geometry(32, 1, 32, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Direct);
  CHECK(choose_conv_algo(geometry(64, 3, 64, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Direct);
  CHECK(choose_conv_algo(geometry(2, 2, 5, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Direct);
  CHECK(choose_conv_algo(geometry(64, 4, 64, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Wino4);
  CHECK(choose_conv_algo(geometry(3, 64, 64, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Im2col);
  CHECK(choose_conv_algo(geometry(64, 3, 64, 3, 2, 1), ConvAlgo::Auto) == ConvAlgo::Im2col);  // stride 2
  CHECK(choose_conv_algo(geometry(64, 64, 64, 3, 1, 1), ConvAlgo::Auto) == ConvAlgo::Wino4);
  CHECK(choose_conv_algo(geometry(64, 64, 64, 3, 1, 1), ConvAlgo::Direct) == ConvAlgo::Direct);
  CHECK(choose_conv_algo(geometry(64, 64, 64, 3, 1, 2), ConvAlgo::Direct) == ConvAlgo::Im2col);
  CHECK(choose_conv_algo(geometry(64, 64, 64, 5, 1, 1), ConvAlgo::Direct) == ConvAlgo::Im2col);
  CHECK(choose_conv_algo(geometry(64, 1, 64, 3, 1, 1), ConvAlgo::Im2col) == ConvAlgo::Im2col);
  CHECK(choose_conv_algo(geometry(64, 1, 64, 3, 1, 1), ConvAlgo::Wino4) == ConvAlgo::Wino4);
  // An input-upsampling geometry (CUDA folds the upsampling into im2col or Winograd): never direct.
  Conv2dGeometry upsampling = geometry(64, 3, 64, 3, 1, 1);
  upsampling.input_upsample = 2;
  CHECK(choose_conv_algo(upsampling, ConvAlgo::Auto) == ConvAlgo::Wino4);
  CHECK(choose_conv_algo(upsampling, ConvAlgo::Direct) == ConvAlgo::Im2col);

  // The weight gradient's per-thread partials stay within their budget (256 MiB), else im2col computes it.
  using cpu::winograd_weight_grad_fits;
  CHECK(winograd_weight_grad_fits(4, geometry(64, 64, 64, 3, 1, 1), 16, 4));
  CHECK_FALSE(winograd_weight_grad_fits(4, geometry(1024, 1024, 64, 3, 1, 1), 16, 4));  // 16 x 151 MiB
  CHECK(winograd_weight_grad_fits(4, geometry(1024, 1024, 64, 3, 1, 1), 1, 4));         // one partial
  CHECK(winograd_weight_grad_fits(2, geometry(256, 256, 64, 3, 1, 1), 16, 8));

  // A 5x5 convolution under wino4 is im2col's, bit for bit.
  Tensor x = uniform({2, 3, 9, 8}, -1, 1, RandomKey{7, 0, 0});
  Tensor w = uniform({4, 3, 5, 5}, -1, 1, RandomKey{7, 1, 0});
  Tensor im2col, forced;
  {
    ConvAlgoScope scope(ConvAlgo::Im2col);
    im2col = raw::conv2d(x, w, Tensor(), 1, 2);
  }
  {
    ConvAlgoScope scope(ConvAlgo::Wino4);
    forced = raw::conv2d(x, w, Tensor(), 1, 2);
  }
  CHECK(same_bits(forced, im2col));
}

TEST_CASE("ATELIER_CONV_ALGO: parsed by name, a bad value refused naming it and the allowed ones") {
  for (ConvAlgo algo : {ConvAlgo::Auto, ConvAlgo::Im2col, ConvAlgo::Wino2, ConvAlgo::Wino4, ConvAlgo::Direct}) {
    CHECK(parse_conv_algo(conv_algo_name(algo)) == algo);
  }
  testing::check_throws_with([] { parse_conv_algo("winograd"); },
                             {"'winograd'", "auto", "im2col", "wino2", "wino4", "direct", "ATELIER_CONV_ALGO"});
  testing::check_throws_with([] { parse_conv_algo(""); }, {"''", "auto, im2col, wino2, wino4, direct"});

  {
    testing::ScopedEnv env("ATELIER_CONV_ALGO", "wino2");
    CHECK(conv_algo_from_environment() == ConvAlgo::Wino2);
    ::setenv("ATELIER_CONV_ALGO", "", 1);
    CHECK(conv_algo_from_environment() == ConvAlgo::Auto);
    ::setenv("ATELIER_CONV_ALGO", "Wino4", 1);
    testing::check_throws_with([] { conv_algo_from_environment(); }, {"'Wino4'", "wino4"});
  }

  // set_conv_algo overrides; the scope restores.
  const ConvAlgo before = conv_algo();
  {
    ConvAlgoScope scope(ConvAlgo::Wino4);
    CHECK(conv_algo() == ConvAlgo::Wino4);
  }
  CHECK(conv_algo() == before);
}

TEST_CASE("set_conv_algo(auto) overrides ATELIER_CONV_ALGO as the other settings do") {
  // conv_algo() reads the environment on its first call only. ctest runs each test case in a process of its own, so
  // the call below is that first one and reads wino2; in a run of the whole program an earlier test may have read
  // the environment already, and then there is nothing to check here.
  ConvAlgo first = ConvAlgo::Auto;
  {
    testing::ScopedEnv env("ATELIER_CONV_ALGO", "wino2");
    first = conv_algo();
  }
  if (first != ConvAlgo::Wino2) {
    MESSAGE("conv_algo() had read ATELIER_CONV_ALGO before this test: nothing to check");
    return;
  }
  set_conv_algo(ConvAlgo::Auto);
  CHECK(conv_algo() == ConvAlgo::Auto);         // not the environment's wino2
  set_conv_algo(conv_algo_from_environment());  // what the environment says
}
