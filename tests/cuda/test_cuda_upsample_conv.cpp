// The nearest 2x upsampling folded into the convolution's gather on CUDA (Conv2dGeometry::input_upsample,
// backends/cuda/conv.cu): upsample_conv2d_elu against upsample_nearest2d followed by conv2d_elu on the same device,
// bit for bit forward and backward (im2col reads the same values, col2im sums each small pixel's block in the order
// upsample_nearest2d_backward does), and against the CPU within the conv tolerance. And the convolutions' chunked
// paths (conv_workspace_limit, backends/conv_algo.h): a batch cut into chunks of images gives the one-chunk
// results, forward and backward, by im2col and by Winograd. And Winograd on CUDA (backends/cuda/winograd.cu)
// against the CPU's im2col, and when the convolution algorithm setting's auto takes it.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "backends/backend.h"
#include "backends/conv_algo.h"
#include "backends/precision.h"
#include "tensor/creation.h"
#include "tests/test_util.h"

namespace atelier {
namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// y = fn(inputs) and the gradients of sum(y * r) for fixed r, every input a fresh leaf on `device` (in the inputs'
// dtype); y first, each widened to double (exactly).
std::vector<std::vector<double>> outputs_and_grads(const Fn& fn, const std::vector<Tensor>& inputs, Device device) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) leaves.push_back(t.clone().to(device).requires_grad_());
  const Tensor y = fn(leaves);
  y.backward(uniform(y.shape(), -1, 1, RandomKey{31, 0, 0}, y.dtype()).to(device));
  const auto widened = [](const Tensor& t) { return t.to(DType::Float64).to_vector<double>(); };
  std::vector<std::vector<double>> out{widened(y)};
  for (const Tensor& t : leaves) out.push_back(widened(t.grad()));
  return out;
}

TEST_CASE("upsample_conv2d_elu on CUDA equals upsample_nearest2d then conv2d_elu bit for bit, and the CPU") {
  struct Case {
    int64_t kernel, stride, padding;
  };
  for (const Case& c : {Case{3, 1, 1}, Case{3, 2, 0}, Case{1, 1, 0}}) {
    INFO("kernel " << c.kernel << ", stride " << c.stride << ", padding " << c.padding);
    const std::vector<Tensor> in{uniform({2, 5, 4, 6}, -1, 1, RandomKey{30, 0, 0}),
                                 uniform({3, 5, c.kernel, c.kernel}, -0.4, 0.4, RandomKey{30, 1, 0}),
                                 uniform({3}, -0.5, 0.5, RandomKey{30, 2, 0})};
    const Fn fused = [&](const std::vector<Tensor>& x) {
      return upsample_conv2d_elu(x[0], x[1], x[2], c.stride, c.padding, 0.8);
    };
    const Fn plain = [&](const std::vector<Tensor>& x) {
      return conv2d_elu(upsample_nearest2d(x[0], 2), x[1], x[2], c.stride, c.padding, 0.8);
    };
    const auto fused_cuda = outputs_and_grads(fused, in, Device::cuda());
    const auto plain_cuda = outputs_and_grads(plain, in, Device::cuda());
    const auto cpu = outputs_and_grads(plain, in, Device::cpu());
    for (size_t i = 0; i < cpu.size(); ++i) {
      INFO("result " << i << " (output, then the gradients of x, weight, bias)");
      CHECK(fused_cuda[i] == plain_cuda[i]);
      CHECK(testing::relative_l2(fused_cuda[i], cpu[i]) <= 1e-5);
    }
  }
}

// The CUDA convolutions' workspace limit while it lives; the old one afterwards, also when a check throws.
struct WorkspaceLimitScope {
  size_t saved = conv_workspace_limit();
  explicit WorkspaceLimitScope(size_t bytes) { set_conv_workspace_limit(bytes); }
  ~WorkspaceLimitScope() { set_conv_workspace_limit(saved); }
};

TEST_CASE("cuda conv: a batch cut into chunks of images gives the one-chunk results, forward and backward") {
  struct Case {
    int64_t kernel, stride, padding;
    bool upsample;
    ConvAlgo algo;  // on both devices
  };
  for (const Case& c : {Case{3, 1, 1, false, ConvAlgo::Im2col}, Case{3, 2, 1, false, ConvAlgo::Im2col},
                        Case{1, 1, 0, false, ConvAlgo::Im2col}, Case{3, 1, 1, true, ConvAlgo::Im2col},
                        Case{3, 1, 1, false, ConvAlgo::Wino4}, Case{3, 1, 1, true, ConvAlgo::Wino2}}) {
    INFO("kernel " << c.kernel << ", stride " << c.stride << ", padding " << c.padding << ", upsample " << c.upsample
                   << ", " << conv_algo_name(c.algo));
    const testing::ConvAlgoScope algo(c.algo);
    const std::vector<Tensor> in{uniform({5, 4, 6, 6}, -1, 1, RandomKey{32, 0, 0}),
                                 uniform({3, 4, c.kernel, c.kernel}, -0.4, 0.4, RandomKey{32, 1, 0}),
                                 uniform({3}, -0.5, 0.5, RandomKey{32, 2, 0})};
    const Fn fn = [&](const std::vector<Tensor>& x) {
      return c.upsample ? upsample_conv2d_elu(x[0], x[1], x[2], c.stride, c.padding, 0.8)
                        : conv2d_elu(x[0], x[1], x[2], c.stride, c.padding, 0.8);
    };
    const auto whole = outputs_and_grads(fn, in, Device::cuda());  // 256 MiB: one chunk
    const auto cpu = outputs_and_grads(fn, in, Device::cpu());
    // One image per chunk (any limit below one image's columns), then two (five images: chunks of 2, 2 and 1;
    // the limit holds two images' forward columns, C*k*k rows of the output's pixels, 4 bytes each; Winograd's
    // scratch per image is about as large, so it cuts the batch into a few chunks too).
    const int64_t side = (c.upsample ? 12 : 6), out_side = (side + 2 * c.padding - c.kernel) / c.stride + 1;
    const size_t two_images = static_cast<size_t>(2 * 4 * c.kernel * c.kernel * out_side * out_side * 4);
    for (size_t limit : {size_t{1}, two_images}) {
      INFO("workspace limit " << limit << " bytes");
      std::vector<std::vector<double>> chunked;
      {
        WorkspaceLimitScope scope(limit);
        chunked = outputs_and_grads(fn, in, Device::cuda());
      }
      for (size_t i = 0; i < whole.size(); ++i) {
        INFO("result " << i << " (output, then the gradients of x, weight, bias)");
        // Per image the same sums; the weight gradient adds its chunks one after another (GEMM beta 1).
        CHECK(testing::relative_l2(chunked[i], whole[i]) <= 1e-6);
        CHECK(testing::relative_l2(chunked[i], cpu[i]) <= 1e-5);
      }
    }
  }
}

// Winograd on CUDA (backends/cuda/winograd.cu) against the CPU's im2col, the most exact: every pass (the output
// with its bias and ELU, the gradients of x, weight and bias), both tile sizes, float64 (the arithmetic: the
// transforms are exact but for rounding) and float32 (the accuracy backends/conv_algo.h states), over shapes that
// reach every edge: partial tiles, padding 0, 1 and 2, one and several images, 17 channels, the folded upsampling.
TEST_CASE("cuda winograd: F(2x2) and F(4x4) give im2col's results, forward and backward, float64 and float32") {
  struct Case {
    int64_t n, c_in, c_out, h, w, padding;  // h, w: the stored input's
    bool upsample;
  };
  const Case cases[] = {{2, 5, 3, 7, 9, 1, false},   {1, 3, 4, 6, 6, 0, false}, {2, 4, 2, 5, 8, 2, false},
                        {3, 17, 6, 9, 10, 1, false}, {2, 3, 5, 4, 6, 1, true},  {1, 2, 3, 5, 3, 1, true}};
  for (DType dtype : {DType::Float64, DType::Float32}) {
    for (ConvAlgo algo : {ConvAlgo::Wino2, ConvAlgo::Wino4}) {
      for (const Case& c : cases) {
        INFO(dtype_name(dtype) << ", " << conv_algo_name(algo) << ": " << c.n << " images, " << c.c_in << " -> "
                               << c.c_out << " channels, " << c.h << "x" << c.w << ", padding " << c.padding
                               << ", upsample " << c.upsample);
        const std::vector<Tensor> in{uniform({c.n, c.c_in, c.h, c.w}, -1, 1, RandomKey{33, 0, 0}, dtype),
                                     uniform({c.c_out, c.c_in, 3, 3}, -0.4, 0.4, RandomKey{33, 1, 0}, dtype),
                                     uniform({c.c_out}, -0.5, 0.5, RandomKey{33, 2, 0}, dtype)};
        const Fn fn = [&](const std::vector<Tensor>& x) {
          return c.upsample ? upsample_conv2d_elu(x[0], x[1], x[2], 1, c.padding, 0.8)
                            : conv2d_elu(x[0], x[1], x[2], 1, c.padding, 0.8);
        };
        std::vector<std::vector<double>> cpu, cuda;
        {
          const testing::ConvAlgoScope scope(ConvAlgo::Im2col);
          cpu = outputs_and_grads(fn, in, Device::cpu());
        }
        {
          const testing::ConvAlgoScope scope(algo);
          cuda = outputs_and_grads(fn, in, Device::cuda());
        }
        // float32: F(2x2) about im2col's few 1e-7, F(4x4) a few 1e-6 (its transforms' factors reach 8 and 1/24).
        const double tolerance = dtype == DType::Float64 ? 1e-12 : algo == ConvAlgo::Wino2 ? 1e-6 : 1e-5;
        for (size_t i = 0; i < cpu.size(); ++i) {
          INFO("result " << i << " (output, then the gradients of x, weight, bias)");
          CHECK(testing::relative_l2(cuda[i], cpu[i]) <= tolerance);
        }
      }
    }
  }
}

TEST_CASE("cuda winograd: an empty batch gives an empty output and zero weight and bias gradients") {
  const testing::ConvAlgoScope scope(ConvAlgo::Wino4);
  const std::vector<Tensor> in{zeros({0, 16, 8, 8}), uniform({4, 16, 3, 3}, -1, 1, RandomKey{35, 0, 0}),
                               uniform({4}, -1, 1, RandomKey{35, 1, 0})};
  const Fn fn = [](const std::vector<Tensor>& x) { return conv2d_elu(x[0], x[1], x[2], 1, 1, 1.0); };
  const auto cuda = outputs_and_grads(fn, in, Device::cuda());
  CHECK(cuda[0].empty());
  CHECK(cuda[1].empty());
  CHECK(cuda[2] == std::vector<double>(4 * 16 * 9, 0.0));
  CHECK(cuda[3] == std::vector<double>(4, 0.0));
}

// The direct kernels on CUDA (backends/cuda/direct_conv.cu) against the CPU's im2col: every pass, float64 and
// float32, 3x3 stride-1 padding-1 shapes: 1 to 3 output channels (auto's), 4 and 6 (a second forward block of 4,
// a second weight-gradient block of 3), one and several images, a 1x1 image, a row of 1, 17 channels, and
// enough pixels (2 x 64 x 72, past reduce.cu's kSplitFrom) for the weight gradient's 18 chunks.
TEST_CASE("cuda direct: the direct kernels give im2col's results, forward and backward, float64 and float32") {
  struct Case {
    int64_t n, c_in, c_out, h, w;
  };
  const Case cases[] = {{2, 5, 1, 7, 9}, {1, 3, 3, 6, 6}, {2, 17, 2, 5, 8}, {3, 4, 4, 9, 10},
                        {1, 2, 6, 1, 1}, {2, 3, 5, 1, 7}, {2, 8, 3, 64, 72}};
  for (DType dtype : {DType::Float64, DType::Float32}) {
    for (const Case& c : cases) {
      INFO(dtype_name(dtype) << ": " << c.n << " images, " << c.c_in << " -> " << c.c_out << " channels, " << c.h << "x"
                             << c.w);
      const std::vector<Tensor> in{uniform({c.n, c.c_in, c.h, c.w}, -1, 1, RandomKey{36, 0, 0}, dtype),
                                   uniform({c.c_out, c.c_in, 3, 3}, -0.4, 0.4, RandomKey{36, 1, 0}, dtype),
                                   uniform({c.c_out}, -0.5, 0.5, RandomKey{36, 2, 0}, dtype)};
      const Fn fn = [](const std::vector<Tensor>& x) { return conv2d_elu(x[0], x[1], x[2], 1, 1, 0.8); };
      std::vector<std::vector<double>> cpu, cuda;
      {
        const testing::ConvAlgoScope scope(ConvAlgo::Im2col);
        cpu = outputs_and_grads(fn, in, Device::cpu());
      }
      {
        const testing::ConvAlgoScope scope(ConvAlgo::Direct);
        cuda = outputs_and_grads(fn, in, Device::cuda());
      }
      for (size_t i = 0; i < cpu.size(); ++i) {
        INFO("result " << i << " (output, then the gradients of x, weight, bias)");
        // float32: 1e-6 for the output and the input gradient (sums of 9 C_in terms), 1e-5 for the weight and
        // bias gradients, sums over every pixel (9,216 of them in the 2 x 64 x 72 case) in another order on each
        // side: with the CPU library built without -march=native (SSE2, as in the GPU bundle) the bias gradient
        // differed by 1.3e-6.
        const double tolerance = dtype == DType::Float64 ? 1e-12 : i < 2 ? 1e-6 : 1e-5;
        CHECK(testing::relative_l2(cuda[i], cpu[i]) <= tolerance);
      }
    }
  }
}

// Which algorithm a CUDA convolution ran, told by its kernels: a forward pass with bias and ELU queues 3 by im2col
// (im2col, the GEMM, bias + ELU) and 4 by Winograd (the filter and input transforms, the GEMM, the output transform
// with bias + ELU).
int64_t forward_kernels(const Tensor& x, const Tensor& w, const Tensor& b) {
  Backend& cuda = *cuda_backend_or_null();
  const int64_t before = cuda.kernels_launched();
  (void)conv2d_elu(x, w, b, 1, 1, 1.0);
  return cuda.kernels_launched() - before;
}

TEST_CASE("cuda winograd: auto as the CPU's rule but thin layers of 16+ channels in, F(2x2) for F(4x4) under TF32") {
  const auto x = [](int64_t c) { return uniform({2, c, 8, 8}, -1, 1, RandomKey{34, 0, 0}).to(Device::cuda()); };
  const auto w = [](int64_t o, int64_t c) {
    return uniform({o, c, 3, 3}, -1, 1, RandomKey{34, 1, 0}).to(Device::cuda());
  };
  const auto b = [](int64_t o) { return uniform({o}, -1, 1, RandomKey{34, 2, 0}).to(Device::cuda()); };
  const auto wide = [](const Tensor& t) { return t.to(DType::Float64); };
  const testing::ConvAlgoScope automatic(ConvAlgo::Auto);
  CHECK(forward_kernels(x(16), w(16, 16), b(16)) == 4);  // 16 channels in: Winograd
  CHECK(forward_kernels(x(8), w(16, 8), b(16)) == 3);    // 8: im2col
  CHECK(forward_kernels(x(16), w(3, 16), b(3)) == 4);    // 3 out from 16 in: Winograd (the CPU: direct)
  CHECK(forward_kernels(x(8), w(3, 8), b(3)) == 1);      // from 8 in: the direct kernel (bias and ELU in it)
  for (Precision p : {Precision::TF32, Precision::BF16}) {
    INFO(precision_name(p));
    const testing::PrecisionScope scope(p);
    CHECK(forward_kernels(x(16), w(16, 16), b(16)) == 4);                    // Winograd, F(2x2) (below)
    CHECK(forward_kernels(wide(x(16)), wide(w(16, 16)), wide(b(16))) == 4);  // float64 ignores the precision
    CHECK(forward_kernels(x(16), w(3, 16), b(3)) == 4);                      // Winograd, as in FP32
    CHECK(forward_kernels(x(8), w(3, 8), b(3)) == 1);                        // direct: float32 sums, as in FP32
    // Which tile: an 8x8 output is F(4x4)'s under FP32 (4 tiles of 36 products against 16 of 16), F(2x2)'s here,
    // told by the values: the forced F(2x2)'s bit for bit, not the forced F(4x4)'s.
    const auto values = [&](ConvAlgo algo) {
      const testing::ConvAlgoScope forced(algo);
      return conv2d_elu(x(16), w(16, 16), b(16), 1, 1, 1.0).to_vector<float>();
    };
    const std::vector<float> chosen = values(ConvAlgo::Auto);
    CHECK(chosen == values(ConvAlgo::Wino2));
    CHECK(chosen != values(ConvAlgo::Wino4));
    const testing::ConvAlgoScope forced(ConvAlgo::Wino4);
    CHECK(forward_kernels(x(8), w(8, 8), b(8)) == 4);
  }
}

}  // namespace
}  // namespace atelier
