// Convolution and image ops: conv2d forward and both backward passes against a naive direct loop (float64, every
// kernel algorithm and thread split), determinism and thread-count agreement, upsampling, cat/split/chunk, the
// error messages of bad geometries, and a small CNN trained end to end with hand-written SGD.
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include <doctest/doctest.h>

#include "atelier.h"
#include "backends/thread_pool.h"
#include "tensor/raw_ops.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::ThreadCountGuard;

namespace {

struct Geometry {
  int64_t n, c_in, h, w, c_out, kh, kw;
  HW stride, pad;  // one value for both directions, or {h, w}
};

std::ostream& operator<<(std::ostream& os, const Geometry& g) {
  return os << "n " << g.n << ", " << g.c_in << "->" << g.c_out << ", " << g.h << "x" << g.w << ", kernel " << g.kh
            << "x" << g.kw << ", stride " << g.stride << ", pad " << g.pad;
}

// The three directions of a convolution, computed by direct loops over every term of
//   out[n, o, y, x] = bias[o] + sum over (c, i, j) of in[n, c, y*sh - ph + i, x*sw - pw + j] * w[o, c, i, j].
struct Reference {
  std::vector<double> out, grad_in, grad_w, grad_b;
};

Reference reference(const Geometry& g, const std::vector<double>& in, const std::vector<double>& w,
                    const std::vector<double>& b, const std::vector<double>& grad_out) {
  const int64_t ho = (g.h + 2 * g.pad.h - g.kh) / g.stride.h + 1, wo = (g.w + 2 * g.pad.w - g.kw) / g.stride.w + 1;
  Reference r;
  r.out.assign(g.n * g.c_out * ho * wo, 0.0);
  r.grad_in.assign(in.size(), 0.0);
  r.grad_w.assign(w.size(), 0.0);
  r.grad_b.assign(g.c_out, 0.0);
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t o = 0; o < g.c_out; ++o) {
      for (int64_t y = 0; y < ho; ++y) {
        for (int64_t x = 0; x < wo; ++x) {
          const int64_t oi = ((n * g.c_out + o) * ho + y) * wo + x;
          double acc = b[o];
          for (int64_t c = 0; c < g.c_in; ++c) {
            for (int64_t i = 0; i < g.kh; ++i) {
              for (int64_t j = 0; j < g.kw; ++j) {
                const int64_t iy = y * g.stride.h - g.pad.h + i, ix = x * g.stride.w - g.pad.w + j;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                const int64_t ii = ((n * g.c_in + c) * g.h + iy) * g.w + ix;
                const int64_t wi = ((o * g.c_in + c) * g.kh + i) * g.kw + j;
                acc += in[ii] * w[wi];
                r.grad_in[ii] += grad_out[oi] * w[wi];
                r.grad_w[wi] += grad_out[oi] * in[ii];
              }
            }
          }
          r.out[oi] = acc;
          r.grad_b[o] += grad_out[oi];
        }
      }
    }
  }
  return r;
}

// One case of the direct-loop tests: random x, w, b and output gradient of dtype (uniform in [-1, 1], keys
// {seed, stream++, 0}), the forward output, and the direct loop's results over their values read as float64.
struct Case {
  Tensor x, w, b, out, grad_out;
  Reference want;
};

Case random_case(const Geometry& g, DType dtype, uint64_t seed, uint64_t& stream) {
  Case c;
  c.x = uniform({g.n, g.c_in, g.h, g.w}, -1, 1, RandomKey{seed, stream++, 0}, dtype);
  c.w = uniform({g.c_out, g.c_in, g.kh, g.kw}, -1, 1, RandomKey{seed, stream++, 0}, dtype);
  c.b = uniform({g.c_out}, -1, 1, RandomKey{seed, stream++, 0}, dtype);
  c.out = raw::conv2d(c.x, c.w, c.b, g.stride, g.pad);
  c.grad_out = uniform(c.out.shape(), -1, 1, RandomKey{seed, stream++, 0}, dtype);
  const auto f64 = [](const Tensor& t) { return t.to(DType::Float64).to_vector<double>(); };
  c.want = reference(g, f64(c.x), f64(c.w), f64(c.b), f64(c.grad_out));
  return c;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, const char* what) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]) / (1 + std::abs(want[i])));
  CHECK(worst < 1e-12);
}

double relative_difference(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to(DType::Float64).to_vector<double>(), y = b.to(DType::Float64).to_vector<double>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff += (x[i] - y[i]) * (x[i] - y[i]);
    norm += y[i] * y[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace

TEST_CASE("conv2d forward and backward match a direct loop") {
  // Small odd shapes, every stride/padding combination, batch 1 (threads split channels or tiles) and batch > 1
  // (threads split images), 1x1 (no im2col), stride-1 input gradients both as a forward conv (C_out <= 2 C_in) and
  // through col2im (C_out > 2 C_in, or padding > k - 1), shapes large enough for several tiles per image, and
  // outputs under 256 pixels in batches of several groups of images per GEMM with a partial last group (8x8
  // outputs: groups of 4, 18 images; 9x9 stride 1 with C_out > 2 C_in: groups of 4, 5 images, through col2im).
  const std::vector<Geometry> geometries = {
      {18, 4, 16, 16, 6, 3, 3, 2, 1},
      {5, 3, 9, 9, 10, 3, 3, 1, 1},
      {1, 2, 5, 7, 3, 3, 3, 1, 1},
      {3, 3, 7, 5, 4, 3, 3, 2, 1},
      {3, 2, 6, 9, 2, 2, 3, 2, 0},
      {1, 4, 5, 5, 3, 1, 1, 1, 0},
      {3, 5, 4, 6, 2, 1, 1, 2, 1},
      {2, 3, 6, 5, 2, 5, 5, 1, 2},
      {3, 2, 4, 4, 6, 3, 3, 1, 3},
      {2, 2, 9, 8, 8, 3, 3, 1, 1},
      {1, 1, 3, 3, 2, 3, 3, 1, 1},
      {3, 8, 40, 70, 5, 3, 3, 1, 1},
      {1, 64, 40, 40, 8, 3, 3, 2, 1},
      {1, 16, 64, 64, 4, 1, 1, 1, 0},
      // A stride or padding for each direction (HW {h, w}): each direction's own in every pass.
      {2, 3, 7, 11, 4, 3, 5, {1, 2}, {1, 2}},
      {3, 2, 9, 6, 3, 3, 3, {2, 1}, {0, 1}},
      {1, 4, 6, 8, 5, 1, 3, {1, 3}, {2, 0}},
      {2, 3, 9, 9, 12, 3, 3, 1, {1, 0}},
  };
  ThreadCountGuard guard;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    uint64_t stream = 0;
    for (const Geometry& g : geometries) {
      INFO(g << ", threads " << threads);
      const auto [x, w, b, out, grad_out, want] = random_case(g, DType::Float64, 11, stream);
      check_close(out.to_vector<double>(), want.out, "forward");
      check_close(raw::conv2d_backward_input(grad_out, w, x.shape(), g.stride, g.pad).to_vector<double>(), want.grad_in,
                  "backward input");
      raw::Conv2dWeightGrads grads = raw::conv2d_backward_weight(x, grad_out, w.shape(), true, g.stride, g.pad);
      check_close(grads.weight.to_vector<double>(), want.grad_w, "backward weight");
      check_close(grads.bias.to_vector<double>(), want.grad_b, "backward bias");
    }
  }
}

TEST_CASE("float32 stride-2 convolutions (packed GEMM, stride-2 im2col and col2im) match a direct loop" *
          doctest::test_suite("heavy")) {
  // float32 with stride 2 takes the packed-GEMM path where AVX-512 is compiled in (forward and input gradient:
  // w_out dividing 32; weight gradient: any w_out) and the stride-2 im2col everywhere; the float64 test above never
  // reaches the packed path. Edges: w_out 32, 16, 8, 4, 2, 1, 5, 10 and 33, odd sizes, padding 0 to 2, 1x1 / 2x3 /
  // 5x5 kernels, C_out not a multiple of the 8-row register block, C_out 40 and 70 (the weight gradient's whole
  // 32-column blocks, transposed in registers into gW, and its edge blocks), several tiles per image (120
  // channels at w_out 32: tiles of 8 output rows, so the stride-2 col2im adds the rows two tiles share; 33x33
  // outputs: two weight-gradient tiles of 31 and 2 rows), groups of whole images per weight-gradient item (a
  // partial last group: 5 images of 16x16 outputs, groups of 4), packed weights over the 512 KiB channel block
  // (67 -> 250 channels: two blocks of 33 and 34 channels; 130 -> 130 at batch 1: two blocks, three for the input
  // gradient at three threads, over two tiles of 8 and 2 output rows), batch 1 (threads split the input channels)
  // and batch 5.
  const std::vector<Geometry> geometries = {
      {5, 16, 64, 64, 13, 3, 3, 2, 1},
      {1, 120, 40, 64, 6, 3, 3, 2, 1},
      {3, 120, 35, 63, 9, 3, 3, 2, 1},
      {2, 9, 31, 33, 5, 3, 3, 2, 1},
      {1, 7, 16, 16, 24, 3, 3, 2, 1},
      {3, 4, 9, 9, 3, 3, 3, 2, 0},
      {2, 6, 8, 8, 17, 5, 5, 2, 2},
      {4, 5, 7, 3, 4, 2, 3, 2, 1},
      {2, 8, 12, 16, 8, 1, 1, 2, 0},
      {3, 3, 10, 9, 6, 3, 3, 2, 1},
      {2, 5, 12, 20, 40, 3, 3, 2, 1},
      {3, 2, 66, 66, 40, 3, 3, 2, 1},
      {5, 3, 32, 32, 70, 3, 3, 2, 1},
      {1, 9, 16, 16, 70, 3, 3, 2, 1},
      {2, 67, 16, 16, 250, 3, 3, 2, 1},
      {1, 130, 20, 64, 130, 3, 3, 2, 1},
      // Stride 2 across and 1 down (the width's stride selects the stride-2 paths; the rows use their own), and the
      // reverse, which takes the general paths.
      {2, 16, 12, 64, 13, 3, 3, {1, 2}, 1},
      {3, 9, 16, 33, 40, 3, 3, {1, 2}, {0, 1}},
      {2, 8, 32, 16, 8, 3, 3, {2, 1}, 1},
  };
  ThreadCountGuard guard;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    uint64_t stream = 100;
    for (const Geometry& g : geometries) {
      INFO(g << ", threads " << threads);
      // The reference sums the float32 values exactly (in float64): what is left is float32 rounding.
      const auto [x, w, b, out, grad_out, want] = random_case(g, DType::Float32, 12, stream);
      const auto f64 = [](const Tensor& t) { return t.to(DType::Float64).to_vector<double>(); };
      CHECK(testing::relative_l2(f64(out), want.out) < 1e-6);
      CHECK(testing::relative_l2(f64(raw::conv2d_backward_input(grad_out, w, x.shape(), g.stride, g.pad)),
                                 want.grad_in) < 1e-6);
      raw::Conv2dWeightGrads grads = raw::conv2d_backward_weight(x, grad_out, w.shape(), true, g.stride, g.pad);
      CHECK(testing::relative_l2(f64(grads.weight), want.grad_w) < 1e-6);
    }
  }
}

TEST_CASE("the stride-2 input gradient zeroes the input rows no kernel row reaches, whatever its memory held") {
  // A 1x1 kernel of stride 2 reaches the even input rows only. Where AVX-512 is compiled in (the packed path, w_out
  // 32) the input gradient of 512 channels goes through the stride-2 col2im in two tiles of 16 output rows, and
  // input row 31, between the rows the two tiles reach, is written by neither: it must be zeroed. The caching
  // allocator hands the gradient memory that held other values (freed tensors of its size, all 7), so a row left
  // as it was shows.
  const Geometry g{1, 512, 64, 64, 4, 1, 1, 2, 0};
  uint64_t stream = 0;
  const auto [x, w, b, out, grad_out, want] = random_case(g, DType::Float32, 13, stream);
  ThreadCountGuard guard;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    {
      std::vector<Tensor> junk;
      for (int k = 0; k < 4; ++k) junk.push_back(full(x.shape(), 7.0));
    }
    const Tensor grad_in = raw::conv2d_backward_input(grad_out, w, x.shape(), g.stride, g.pad);
    INFO("threads " << threads);
    CHECK(testing::relative_l2(grad_in.to(DType::Float64).to_vector<double>(), want.grad_in) < 1e-6);
  }
}

TEST_CASE("conv2d through autograd gives the gradients of the direct loop") {
  const Geometry g{2, 3, 6, 5, 4, 3, 3, 2, 1};
  const auto f64 = DType::Float64;
  Tensor x = uniform({g.n, g.c_in, g.h, g.w}, -1, 1, RandomKey{5, 0, 0}, f64).requires_grad_();
  Tensor w = uniform({g.c_out, g.c_in, g.kh, g.kw}, -1, 1, RandomKey{5, 1, 0}, f64).requires_grad_();
  Tensor b = uniform({g.c_out}, -1, 1, RandomKey{5, 2, 0}, f64).requires_grad_();
  Tensor out = conv2d(x, w, b, g.stride, g.pad);
  CHECK(out.shape() == Shape{2, 4, 3, 3});
  Tensor grad_out = uniform(out.shape(), -1, 1, RandomKey{5, 3, 0}, f64);
  out.backward(grad_out);
  Reference want =
      reference(g, x.to_vector<double>(), w.to_vector<double>(), b.to_vector<double>(), grad_out.to_vector<double>());
  check_close(x.grad().to_vector<double>(), want.grad_in, "x.grad");
  check_close(w.grad().to_vector<double>(), want.grad_w, "w.grad");
  check_close(b.grad().to_vector<double>(), want.grad_b, "b.grad");
}

TEST_CASE("conv2d weight gradients are bit-identical run to run, and agree across thread counts") {
  // float32, batch 6 (threads split the batch and reduce per-thread partials in thread order), and batch 1
  // (threads split channels).
  ThreadCountGuard guard;
  for (int64_t n : {6, 1}) {
    INFO("batch " << n);
    Tensor x = uniform({n, 16, 24, 20}, -1, 1, RandomKey{3, 0, 0});
    Tensor w = uniform({12, 16, 3, 3}, -0.2, 0.2, RandomKey{3, 1, 0});
    Tensor grad_out = uniform({n, 12, 12, 10}, -1, 1, RandomKey{3, 2, 0});
    auto run = [&] {
      std::vector<Tensor> r{raw::conv2d(x, w, Tensor(), 2, 1),
                            raw::conv2d_backward_input(grad_out, w, x.shape(), 2, 1)};
      raw::Conv2dWeightGrads g = raw::conv2d_backward_weight(x, grad_out, w.shape(), true, 2, 1);
      r.push_back(g.weight);
      r.push_back(g.bias);
      return r;
    };
    set_num_threads(2);
    std::vector<Tensor> first = run(), second = run();
    for (size_t k = 0; k < first.size(); ++k) {
      std::vector<float> a = first[k].to_vector<float>(), b = second[k].to_vector<float>();
      CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
    set_num_threads(1);
    std::vector<Tensor> single = run();
    for (size_t k = 0; k < first.size(); ++k) {
      INFO("result " << k);
      CHECK(relative_difference(first[k], single[k]) < 1e-5);
    }
  }
}

TEST_CASE("a steady conv2d step allocates nothing from the system (im2col, wino2, wino4, direct)") {
  for (ConvAlgo algo : {ConvAlgo::Im2col, ConvAlgo::Wino2, ConvAlgo::Wino4, ConvAlgo::Direct}) {
    INFO(std::string(conv_algo_name(algo)));
    testing::ConvAlgoScope scope(algo);
    Tensor x = uniform({4, 8, 16, 16}, -1, 1, RandomKey{1, 0, 0}).requires_grad_();
    Tensor w = uniform({8, 8, 3, 3}, -0.3, 0.3, RandomKey{1, 1, 0}).requires_grad_();
    Tensor b = zeros({8}).requires_grad_();
    auto step = [&] {
      conv2d(conv2d(x, w, b, 1, 1), w, b, 2, 1).sum().backward();
      x.grad().zero_();
      w.grad().zero_();
      b.grad().zero_();
    };
    step();
    step();
    const size_t before = backend_for(Device::cpu()).allocator_stats().system_allocs;
    for (int i = 0; i < 3; ++i) step();
    CHECK(backend_for(Device::cpu()).allocator_stats().system_allocs == before);
  }
}

TEST_CASE("conv2d_elu equals elu(conv2d) forward and backward under every conv algorithm, float32 and float64") {
  // 16 -> 24 channels at 12x10 (Winograd under auto too), and a stride-2 layer (always im2col); with and without
  // bias; alpha 1 and 0.6. The fused op applies the same ELU expression while each output tile is in cache, so
  // the two differ by float rounding of exp at most.
  struct Case {
    int64_t stride;
    bool bias;
    double alpha;
  };
  for (ConvAlgo algo : {ConvAlgo::Im2col, ConvAlgo::Wino2, ConvAlgo::Wino4, ConvAlgo::Direct}) {
    testing::ConvAlgoScope scope(algo);
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (const Case& c : {Case{1, true, 1.0}, Case{1, false, 0.6}, Case{2, true, 0.6}}) {
        INFO(std::string(conv_algo_name(algo)) << ", " << dtype_name(dtype) << ", stride " << c.stride
                                               << (c.bias ? ", bias" : "") << ", alpha " << c.alpha);
        auto leaf = [&](const Shape& s, double scale, uint64_t stream) {
          return uniform(s, -scale, scale, RandomKey{9, stream, 0}, dtype).requires_grad_();
        };
        std::vector<Tensor> fused_in{leaf({3, 16, 12, 10}, 1, 0), leaf({24, 16, 3, 3}, 0.2, 1), leaf({24}, 0.5, 2)};
        std::vector<Tensor> plain_in;
        for (const Tensor& t : fused_in) plain_in.push_back(t.detach().clone().requires_grad_());
        const Tensor fb = c.bias ? fused_in[2] : Tensor(), pb = c.bias ? plain_in[2] : Tensor();
        Tensor fused = conv2d_elu(fused_in[0], fused_in[1], fb, c.stride, 1, c.alpha);
        Tensor plain = elu(conv2d(plain_in[0], plain_in[1], pb, c.stride, 1), c.alpha);
        const double tol = dtype == DType::Float32 ? 1e-6 : 1e-14;
        CHECK(relative_difference(fused, plain) < tol);
        // Both sides negative somewhere, so the ELU's negative branch is exercised.
        CHECK(plain.amax().item<double>() > 0);
        CHECK((plain * -1.0).amax().item<double>() > 0);
        const Tensor grad_out = uniform(fused.shape(), -1, 1, RandomKey{9, 3, 0}, dtype);
        fused.backward(grad_out);
        plain.backward(grad_out);
        CHECK(relative_difference(fused_in[0].grad(), plain_in[0].grad()) < tol);
        CHECK(relative_difference(fused_in[1].grad(), plain_in[1].grad()) < tol);
        if (c.bias) CHECK(relative_difference(fused_in[2].grad(), plain_in[2].grad()) < tol);
      }
    }
  }
}

// The gradients of sum(y * r) for fixed weights r with respect to `inputs` (leaves that require grad), after
// y = fn(inputs); y itself comes first. Fresh copies of the inputs, so two calls never share a .grad.
std::vector<std::vector<double>> outputs_and_grads(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                                                   const std::vector<Tensor>& inputs) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) leaves.push_back(t.detach().clone().requires_grad_());
  const Tensor y = fn(leaves);
  y.backward(uniform(y.shape(), -1, 1, RandomKey{21, 0, 0}, y.dtype()));
  std::vector<std::vector<double>> out{y.to_vector<double>()};
  for (const Tensor& t : leaves) out.push_back(t.grad().to_vector<double>());
  return out;
}

TEST_CASE("upsample_conv2d_elu equals upsample_nearest2d then conv2d_elu bit for bit on the CPU, every algorithm") {
  // The CPU upsamples into scratch and runs the plain convolution (backends/cpu/conv.cpp), so output and every
  // gradient are exactly the separate ops' under im2col, F(2x2), F(4x4) and direct: 16 -> 8 channels 3x3 stride 1 pad 1
  // (the BEGAN decoder's layer, Winograd-able), a stride-2 unpadded layer, a 1x1, float32 and float64.
  struct Case {
    int64_t kernel, stride, padding;
  };
  for (ConvAlgo algo : {ConvAlgo::Im2col, ConvAlgo::Wino2, ConvAlgo::Wino4, ConvAlgo::Direct}) {
    testing::ConvAlgoScope scope(algo);
    for (DType dtype : {DType::Float32, DType::Float64}) {
      for (const Case& c : {Case{3, 1, 1}, Case{3, 2, 0}, Case{1, 1, 0}}) {
        INFO(std::string(conv_algo_name(algo)) << ", " << dtype_name(dtype) << ", kernel " << c.kernel << ", stride "
                                               << c.stride << ", padding " << c.padding);
        const std::vector<Tensor> in{uniform({2, 16, 5, 6}, -1, 1, RandomKey{20, 0, 0}, dtype),
                                     uniform({8, 16, c.kernel, c.kernel}, -0.2, 0.2, RandomKey{20, 1, 0}, dtype),
                                     uniform({8}, -0.5, 0.5, RandomKey{20, 2, 0}, dtype)};
        const auto fused = outputs_and_grads(
            [&](const std::vector<Tensor>& x) {
              return upsample_conv2d_elu(x[0], x[1], x[2], c.stride, c.padding, 0.8);
            },
            in);
        const auto plain = outputs_and_grads(
            [&](const std::vector<Tensor>& x) {
              return conv2d_elu(upsample_nearest2d(x[0], 2), x[1], x[2], c.stride, c.padding, 0.8);
            },
            in);
        CHECK(fused[0].size() == static_cast<size_t>(2 * 8 * ((10 + 2 * c.padding - c.kernel) / c.stride + 1) *
                                                     ((12 + 2 * c.padding - c.kernel) / c.stride + 1)));
        CHECK(fused[1].size() == in[0].numel());  // the input gradient is the small image's
        for (size_t i = 0; i < fused.size(); ++i) {
          INFO("result " << i << " (output, then the gradients of x, weight, bias)");
          CHECK(fused[i] == plain[i]);
        }
      }
    }
  }
}

TEST_CASE("upsample_conv2d_elu and the raw input upsampling refuse bad factors and shapes, naming them") {
  const Tensor x = zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(upsample_conv2d_elu(x, zeros({4, 5, 3, 3})),
                       "conv2d: input [2, 3, 4, 4] upsampled to [2, 3, 8, 8] has 3 channels but weight [4, 5, 3, 3] "
                       "expects 5",
                       Error);
  CHECK_THROWS_WITH_AS(raw::conv2d(x, zeros({4, 3, 3, 3}), Tensor(), 1, 1, ConvActivation::Elu, 1, 3),
                       doctest::Contains("conv2d: the input upsampling factor must be 1 or 2, got 3"), Error);
  CHECK_THROWS_WITH_AS(raw::conv2d_backward_input(zeros({2, 4, 8, 8}), zeros({4, 3, 3, 3}), {2, 3, 8, 8}, 1, 1, 2),
                       doctest::Contains("gradient of shape [2, 4, 8, 8] for input [2, 3, 8, 8]"), Error);
  // A primitive called with an odd size or factor is refused by the kernel's geometry check too.
  Conv2dGeometry g{2, 3, 7, 8, 4, 3, 3, 1, 1, 1, 1, 7, 8, 2};
  const Tensor w = zeros({4, 3, 3, 3});
  Tensor out = zeros({2, 4, 7, 8});
  const Conv2dForwardArgs a{DType::Float32, g, x.raw_data(), w.raw_data(), nullptr, out.raw_data()};
  CHECK_THROWS_WITH_AS(backend_for(Device::cpu()).conv2d(a), doctest::Contains("input upsample 2"), Error);
}

TEST_CASE("conv2d_elu rejects a negative or non-finite alpha") {
  Tensor x = zeros({1, 2, 5, 5}), w = zeros({3, 2, 3, 3});
  CHECK_THROWS_WITH_AS(conv2d_elu(x, w, Tensor(), 1, 1, -0.5),
                       doctest::Contains("ELU alpha -0.5 must be finite and >= 0"), Error);
  CHECK_THROWS_WITH_AS(conv2d_elu(x, w, Tensor(), 1, 1, std::nan("")), doctest::Contains("ELU alpha nan"), Error);
}

TEST_CASE("conv2d rejects bad geometries, naming the shapes") {
  Tensor x = zeros({2, 3, 8, 8});
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 5, 3, 3})),
                       "conv2d: input [2, 3, 8, 8] has 3 channels but weight [4, 5, 3, 3] expects 5", Error);
  CHECK_THROWS_WITH_AS(conv2d(zeros({1, 1, 2, 2}), zeros({1, 1, 5, 5}), Tensor(), 1, 1),
                       doctest::Contains("kernel 5x5 is larger than the padded input 4x4"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3, 3}), Tensor(), 0), doctest::Contains("stride must be positive"),
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3, 3}), Tensor(), 1, -1),
                       doctest::Contains("padding must be non-negative"), Error);
  CHECK_THROWS_WITH_AS(conv2d(zeros({3, 8, 8}), zeros({4, 3, 3, 3})),
                       doctest::Contains("input must be (N, C, H, W), got [3, 8, 8]"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3})), doctest::Contains("weight must be (C_out, C_in, kh, kw)"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3, 3}), zeros({5})),
                       doctest::Contains("bias of shape [5] for weight [4, 3, 3, 3]"), Error);
  CHECK_THROWS_WITH_AS(conv2d(x, zeros({4, 3, 3, 3}, DType::Float64)), doctest::Contains("dtypes differ"), Error);
  CHECK_THROWS_WITH_AS(upsample_nearest2d(x, 0), doctest::Contains("scale must be >= 1, got 0"), Error);
  CHECK_THROWS_WITH_AS(upsample_nearest2d(zeros({2, 8}), 2), doctest::Contains("(N, C, H, W), got [2, 8]"), Error);
}

TEST_CASE("upsample_nearest2d repeats pixels, and its backward sums blocks") {
  Tensor x = tensor({1, 2, 3, 4, 5, 6}, {1, 1, 2, 3});
  Tensor y = upsample_nearest2d(x, 2);
  CHECK(y.shape() == Shape{1, 1, 4, 6});
  CHECK(y.to_vector<float>() == std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3,  //
                                                   4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6});
  Tensor g = arange(0, 24, 1).reshape({1, 1, 4, 6});
  // Block (0, 0) holds 0 1 6 7, block (1, 2) holds 16 17 22 23.
  CHECK(raw::upsample_nearest2d_backward(g, 2).to_vector<float>() == std::vector<float>{14, 22, 30, 62, 70, 78});
  // Scale 3 on a batch of planes; each plane is independent.
  Tensor z = upsample_nearest2d(arange(0, 4, 1).reshape({2, 2, 1, 1}), 3);
  CHECK(z.shape() == Shape{2, 2, 3, 3});
  CHECK(z.sum({2, 3}).to_vector<float>() == std::vector<float>{0, 9, 18, 27});
}

TEST_CASE("cat, split and chunk") {
  Tensor a = arange(0, 6, 1).reshape({2, 3}), b = arange(6, 9, 1).reshape({1, 3});
  CHECK(cat({a, b}, 0).to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  Tensor c = cat({a, arange(10, 14, 1).reshape({2, 2}), a.slice(1, 0, 1)}, -1);  // a non-contiguous piece too
  CHECK(c.shape() == Shape{2, 6});
  CHECK(c.to_vector<float>() == std::vector<float>{0, 1, 2, 10, 11, 0, 3, 4, 5, 12, 13, 3});

  Tensor x = arange(0, 14, 1).reshape({7, 2});
  std::vector<Tensor> pieces = split(x, 3, 0);
  REQUIRE(pieces.size() == 3);
  CHECK(pieces[0].shape() == Shape{3, 2});
  CHECK(pieces[2].shape() == Shape{1, 2});
  CHECK(pieces[2].to_vector<float>() == std::vector<float>{12, 13});
  CHECK(pieces[1].storage() == x.storage());    // a view
  std::vector<Tensor> chunks = chunk(x, 3, 0);  // ceil(7 / 3) = 3 rows each: 3, 3, 1
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[1].to_vector<float>() == std::vector<float>{6, 7, 8, 9, 10, 11});
  CHECK(chunk(x, 2, 1).size() == 2);
  CHECK(chunk(arange(0, 4, 1), 3, 0).size() == 2);  // as PyTorch: ceil(4 / 3) = 2 per piece, so only 2 pieces
  CHECK(cat(split(x, 2, 0), 0).to_vector<float>() == x.to_vector<float>());

  CHECK_THROWS_WITH_AS(cat({a, zeros({2, 2})}, 0),
                       "cat: tensor 1 has shape [2, 2] but tensor 0 has shape [2, 3]; they must match except in "
                       "dimension 0",
                       Error);
  CHECK_THROWS_WITH_AS(cat({}, 0), doctest::Contains("at least one tensor"), Error);
  CHECK_THROWS_WITH_AS(cat({a, a}, 2), doctest::Contains("cat"), Error);
  CHECK_THROWS_WITH_AS(cat({a, zeros({2, 3}, DType::Float64)}, 0), doctest::Contains("dtypes differ"), Error);
  CHECK_THROWS_WITH_AS(split(x, 0, 0), doctest::Contains("split_size must be positive"), Error);
  CHECK_THROWS_WITH_AS(chunk(x, 0, 0), doctest::Contains("chunks must be positive"), Error);
}

namespace {

// A fixed synthetic 2-class image problem: 1x16x16 stripes with period 4 and a random phase, horizontal (class 0)
// or vertical (class 1), contrast +-0.5, plus uniform noise in [-0.6, 0.6] from the counter-based generator.
struct Images {
  Tensor x;       // (n, 1, 16, 16) float32
  Tensor labels;  // (n) int64
};

Images make_images(int64_t n, uint64_t seed) {
  std::vector<float> noise = uniform({n, 1, 16, 16}, -0.6, 0.6, RandomKey{seed, 0, 0}).to_vector<float>();
  std::vector<float> phases = uniform({n}, 0, 4, RandomKey{seed, 1, 0}).to_vector<float>();
  std::vector<float> pixels(n * 256);
  std::vector<int64_t> labels(n);
  for (int64_t k = 0; k < n; ++k) {
    labels[k] = k % 2;
    const int64_t phase = static_cast<int64_t>(phases[k]);
    for (int64_t y = 0; y < 16; ++y) {
      for (int64_t x = 0; x < 16; ++x) {
        const int64_t along = labels[k] == 0 ? y : x;
        const float stripe = ((along + phase) / 2) % 2 == 0 ? 0.5f : -0.5f;
        pixels[k * 256 + y * 16 + x] = stripe + noise[k * 256 + y * 16 + x];
      }
    }
  }
  return {from_vector(pixels, {n, 1, 16, 16}), from_vector(labels, {n})};
}

struct SmallCnn {
  Tensor w1, b1, w2, b2, w3, b3;  // conv 1->8 3x3, conv 8->16 3x3 stride 2, linear 16*8*8 -> 2

  explicit SmallCnn(uint64_t seed) {
    // PyTorch's default: U(+-1/sqrt(fan_in)) for weights and biases.
    auto init = [seed](const Shape& shape, int64_t fan_in, uint64_t stream) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      return uniform(shape, -bound, bound, RandomKey{seed, stream, 0}).requires_grad_();
    };
    w1 = init({8, 1, 3, 3}, 9, 10);
    b1 = init({8}, 9, 11);
    w2 = init({16, 8, 3, 3}, 72, 12);
    b2 = init({16}, 72, 13);
    w3 = init({2, 1024}, 1024, 14);
    b3 = init({2}, 1024, 15);
  }
  Tensor forward(const Tensor& x) const {
    Tensor h = elu(conv2d(x, w1, b1, 1, 1));  // (n, 8, 16, 16)
    h = elu(conv2d(h, w2, b2, 2, 1));         // (n, 16, 8, 8)
    return linear(h.flatten(1), w3, b3);      // (n, 2)
  }
  std::vector<Tensor> parameters() const { return {w1, b1, w2, b2, w3, b3}; }
};

double accuracy(const SmallCnn& model, const Images& data) {
  NoGradGuard no_grad;
  return testing::argmax_accuracy(model.forward(data.x), data.labels);
}

}  // namespace

TEST_CASE("a small CNN learns horizontal versus vertical stripes with plain SGD" * doctest::test_suite("heavy")) {
  // Seed 21 (data and weights), 128 training images, 128 held-out images (seed 22); full-batch SGD, lr 0.2,
  // 60 steps. Must reach at least 95% held-out accuracy (chance is 50%) and bring the training loss from about
  // log 2 below 0.05. (Measured at 1, 2 and 3 threads: 100% and 0.0026; the loss is still 0.32 after 30 steps
  // and about 0.01 after 40, so 60 leaves a margin.)
  Images train = make_images(128, 21), test = make_images(128, 22);
  SmallCnn model(21);
  const double lr = 0.2;
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    Tensor loss = cross_entropy(model.forward(train.x), train.labels);
    loss.backward();
    last = loss.item();
    if (step == 0) first = last;
    NoGradGuard no_grad;
    for (const Tensor& p : model.parameters()) {
      Tensor(p).sub_(p.grad() * lr);
      p.grad().zero_();
    }
  }
  INFO("loss " << first << " -> " << last);
  CHECK(first > 0.6);
  CHECK(last < 0.05);
  CHECK(accuracy(model, test) >= 0.95);
}
