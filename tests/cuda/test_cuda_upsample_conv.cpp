// The nearest 2x upsampling folded into the convolution's gather on CUDA (Conv2dGeometry::input_upsample,
// backends/cuda/conv.cu): upsample_conv2d_elu against upsample_nearest2d followed by conv2d_elu on the same device,
// bit for bit forward and backward (im2col reads the same values, col2im sums each small pixel's block in the order
// upsample_nearest2d_backward does), and against the CPU within the conv tolerance. And the convolutions' chunked
// paths (conv_workspace_limit, backends/conv_algo.h): a batch cut into chunks of images gives the one-chunk
// results, forward and backward.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "backends/conv_algo.h"
#include "tensor/creation.h"
#include "tests/test_util.h"

namespace atelier {
namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// y = fn(inputs) and the gradients of sum(y * r) for fixed r, every input a fresh leaf on `device`; y first.
std::vector<std::vector<float>> outputs_and_grads(const Fn& fn, const std::vector<Tensor>& inputs, Device device) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) leaves.push_back(t.clone().to(device).requires_grad_());
  const Tensor y = fn(leaves);
  y.backward(uniform(y.shape(), -1, 1, RandomKey{31, 0, 0}).to(device));
  std::vector<std::vector<float>> out{y.to_vector<float>()};
  for (const Tensor& t : leaves) out.push_back(t.grad().to_vector<float>());
  return out;
}

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

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
      CHECK(testing::relative_l2(as_double(fused_cuda[i]), as_double(cpu[i])) <= 1e-5);
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
  };
  for (const Case& c : {Case{3, 1, 1, false}, Case{3, 2, 1, false}, Case{1, 1, 0, false}, Case{3, 1, 1, true}}) {
    INFO("kernel " << c.kernel << ", stride " << c.stride << ", padding " << c.padding << ", upsample " << c.upsample);
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
    // the limit holds two images' forward columns, C*k*k rows of the output's pixels, 4 bytes each).
    const int64_t side = (c.upsample ? 12 : 6), out_side = (side + 2 * c.padding - c.kernel) / c.stride + 1;
    const size_t two_images = static_cast<size_t>(2 * 4 * c.kernel * c.kernel * out_side * out_side * 4);
    for (size_t limit : {size_t{1}, two_images}) {
      INFO("workspace limit " << limit << " bytes");
      std::vector<std::vector<float>> chunked;
      {
        WorkspaceLimitScope scope(limit);
        chunked = outputs_and_grads(fn, in, Device::cuda());
      }
      for (size_t i = 0; i < whole.size(); ++i) {
        INFO("result " << i << " (output, then the gradients of x, weight, bias)");
        // Per image the same sums; the weight gradient adds its chunks one after another (GEMM beta 1).
        CHECK(testing::relative_l2(as_double(chunked[i]), as_double(whole[i])) <= 1e-6);
        CHECK(testing::relative_l2(as_double(chunked[i]), as_double(cpu[i])) <= 1e-5);
      }
    }
  }
}

}  // namespace
}  // namespace atelier
