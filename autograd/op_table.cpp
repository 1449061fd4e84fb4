#include "autograd/op_table.h"

#include <algorithm>

#include "autograd/functions.h"
#include "tensor/creation.h"
#include "tensor/raw_ops.h"

namespace atelier {

namespace {

using Inputs = std::vector<Tensor>;
constexpr DType f64 = DType::Float64;

// The Philox stream of the next random input. row() resets it from the row's name before each make_inputs
// call, so a row's inputs depend only on its name, never on which rows ran before.
thread_local uint64_t t_stream = 0;

Tensor leaf(Tensor t) {
  t.requires_grad_(true);
  return t;
}

// U[lo, hi) float64 leaf requiring grad.
Tensor u(const Shape& shape, double lo = -1, double hi = 1) {
  return leaf(uniform(shape, lo, hi, RandomKey{42, t_stream++, 0}, f64));
}

// Values at least 0.1 away from 0 (for abs, relu, elu, l1 kinks), random signs.
Tensor away_from_zero(const Shape& shape) {
  Tensor magnitude = uniform(shape, 0.1, 1.0, RandomKey{42, t_stream++, 0}, f64);
  Tensor sign = uniform(shape, -1, 1, RandomKey{42, t_stream++, 0}, f64);
  Tensor signed_values = raw::binary(BinaryOp::Mul, magnitude, raw::unary(UnaryOp::Sign, sign));
  return leaf(signed_values);
}

// Distinct values, pairwise at least 0.05 apart, in a fixed shuffled order (for amax: no ties within 1e-2).
Tensor distinct(const Shape& shape) {
  int64_t n = shape_numel(shape);
  std::vector<double> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = -1.0 + 0.05 * static_cast<double>((i * 7919) % n);
  return leaf(from_vector(values, shape, f64));
}

Tensor labels(const std::vector<int64_t>& values) { return from_vector(values, {static_cast<int64_t>(values.size())}); }

// A row: `name` is "<op>/<case>", the op being a name of autograd/differentiable_ops.def.
OpCase row(std::string name, std::function<Inputs()> make, GradcheckFn fn, GradcheckOptions o = {}) {
  std::string op = name.substr(0, name.find('/'));
  uint64_t first_stream = 14695981039346656037ull;  // FNV-1a of the name: the same on every platform
  for (unsigned char ch : name) first_stream = (first_stream ^ ch) * 1099511628211ull;
  auto seeded_make = [make = std::move(make), first_stream] {
    t_stream = first_stream;
    return make();
  };
  return OpCase{std::move(op), std::move(name), std::move(seeded_make), std::move(fn), o};
}

// One row on one line: ROW("<op>/<case>", ({inputs...}), expression of x, the inputs). The inputs are made
// lazily (row() seeds them from the name); the parentheses keep the braced list one macro argument.
#define ROW(name, inputs, ...) \
  t.push_back(row(             \
      name, [] { return Inputs inputs; }, [](const Inputs& x) { return __VA_ARGS__; }))

std::vector<OpCase> build_table() {
  std::vector<OpCase> t;
  // --- elementwise, binary: same shape, broadcasting, scalars, non-contiguous inputs, a tensor used twice ---
  ROW("add/same_shape", ({u({2, 3}), u({2, 3})}), x[0] + x[1]);
  ROW("add/broadcast", ({u({3, 1, 4}), u({2, 4})}), x[0] + x[1]);
  ROW("add/scalar", ({u({5})}), 2.5 + x[0]);
  ROW("add/same_tensor_twice", ({u({4})}), x[0] + x[0]);
  ROW("add/permuted", ({u({3, 2, 4}), u({2, 4, 3})}), x[0].permute({1, 2, 0}) + x[1]);
  ROW("sub/broadcast", ({u({2, 3}), u({3})}), x[0] - x[1]);
  ROW("sub/scalar_transposed", ({u({3, 2})}), x[0].t() - 0.75);
  ROW("rsub/scalar", ({u({4})}), 1.5 - x[0]);
  ROW("rsub/scalar_transposed_used_twice", ({u({2, 3})}), (1.5 - x[0].t()) * x[0].t());
  ROW("mul/broadcast", ({u({2, 3}), u({2, 1})}), x[0] * x[1]);
  ROW("mul/same_tensor_twice", ({u({5})}), x[0] * x[0]);
  ROW("mul/sliced", ({u({4, 6}), u({2, 3})}), x[0].slice(0, 1, 3).slice(1, 0, 6, 2) * x[1]);
  ROW("mul/expanded", ({u({3, 1}), u({3, 4})}), x[0].expand({3, 4}) * x[1]);
  ROW("mul/scalar", ({u({3})}), x[0] * -3.0);
  ROW("mul/scalar_first_sliced", ({u({4, 6})}), 0.5 * x[0].slice(1, 1, 6, 2));
  ROW("div/broadcast", ({u({2, 3}), u({3}, 0.5, 2.0)}), x[0] / x[1]);
  ROW("div/scalar_transposed", ({u({3, 2})}), x[0].t() / -0.4);
  ROW("rdiv/scalar", ({u({4}, 0.5, 2.0)}), 2.0 / x[0]);
  ROW("rdiv/scalar_transposed", ({u({3, 2}, 0.5, 2.0)}), -0.7 / x[0].t());
  // --- elementwise, unary (inputs kept away from kinks and domain edges) ---
  ROW("neg", ({u({2, 3})}), -x[0]);
  ROW("exp", ({u({2, 3})}), exp(x[0]));
  ROW("exp/used_twice", ({u({4})}), x[0] * exp(x[0]));
  ROW("log", ({u({2, 3}, 0.2, 2.0)}), log(x[0]));
  ROW("abs", ({away_from_zero({2, 4})}), abs(x[0]));
  ROW("sqrt", ({u({5}, 0.2, 2.0)}), sqrt(x[0]));
  ROW("pow/square", ({u({5})}), pow(x[0], 2.0));
  ROW("pow/fractional", ({u({5}, 0.2, 2.0)}), pow(x[0], -1.5));
  ROW("tanh", ({u({2, 3}, -2, 2)}), tanh(x[0]));
  ROW("sigmoid", ({u({2, 3}, -3, 3)}), sigmoid(x[0]));
  ROW("relu", ({away_from_zero({3, 3})}), relu(x[0]));
  ROW("elu/alpha1", ({away_from_zero({3, 3})}), elu(x[0]));
  ROW("elu/alpha0.5_transposed", ({away_from_zero({3, 2})}), elu(x[0].t(), 0.5));
  ROW("elu/alpha1.7_batch2_nchw", ({away_from_zero({2, 3, 2, 3})}), elu(x[0], 1.7));
  ROW("softplus", ({u({2, 3}, -4, 4)}), softplus(x[0]));
  // beta 2, threshold 3: the inputs on both sides of x = 1.5, none within 0.05 of it (the gradient jumps there).
  ROW("softplus/beta2_threshold3",
      ({leaf(from_vector(std::vector<double>{-2.0, 0.3, 1.2, 1.6, 2.5, 4.0}, {2, 3}, f64))}), softplus(x[0], 2.0, 3.0));
  ROW("leaky_relu", ({away_from_zero({3, 3})}), leaky_relu(x[0]));
  ROW("leaky_relu/slope_negative_transposed", ({away_from_zero({3, 2})}), leaky_relu(x[0].t(), -0.3));
  ROW("silu", ({u({2, 3}, -4, 4)}), silu(x[0]));
  ROW("silu/transposed_used_twice", ({u({3, 2}, -4, 4)}), x[0].t() * silu(x[0].t()));
  ROW("gelu", ({u({2, 3}, -3, 3)}), gelu(x[0]));
  ROW("gelu/tanh_transposed", ({u({3, 2}, -3, 3)}), gelu(x[0].t(), GeluApproximate::Tanh));
  // Inputs on both sides of both bounds, each at least 0.05 away from them.
  t.push_back(row(
      "clamp",
      [] {
        std::vector<double> v{-0.9, -0.6, -0.4, -0.1, 0.05, 0.2, 0.35, 0.55, 0.8, 0.95};
        return Inputs{leaf(from_vector(v, {2, 5}))};
      },
      [](const Inputs& x) { return clamp(x[0], -0.52, 0.47); }));
  // Random operands are 0.05 or more apart at these seeds (gradcheck steps by 1e-6); the same tensor twice ties
  // everywhere, where each side's half adds up to the whole gradient.
  ROW("maximum/broadcast", ({u({2, 3}), u({3})}), maximum(x[0], x[1]));
  ROW("maximum/same_tensor_twice", ({u({4})}), maximum(x[0], x[0]));
  ROW("minimum/transposed", ({u({3, 2}), u({2, 3})}), minimum(x[0].t(), x[1]));
  t.push_back(row(
      "where/broadcast",
      [] {
        Tensor cond = from_vector(std::vector<bool>{true, false, false, true, true, false}, {2, 3});
        return Inputs{cond, u({2, 3}), u({3})};
      },
      [](const Inputs& x) { return where(x[0], x[1], x[2]); }));
  // --- reductions ---
  ROW("sum/all", ({u({2, 3, 4})}), x[0].sum());
  ROW("sum/dim1", ({u({2, 3, 4})}), x[0].sum({1}));
  ROW("sum/dims02_keepdim_transposed", ({u({4, 3, 2})}), x[0].transpose(0, 2).sum({0, 2}, true));
  ROW("mean/all", ({u({3, 4})}), x[0].mean());
  ROW("mean/dim-1_keepdim", ({u({3, 4})}), x[0].mean({-1}, true));
  ROW("amax/all", ({distinct({3, 4})}), x[0].amax());
  ROW("amax/dim1", ({distinct({3, 4, 2})}), x[0].amax({1}));
  ROW("amax/dims01_keepdim", ({distinct({3, 4, 2})}), x[0].amax({0, 1}, true));
  ROW("amin/all", ({distinct({3, 4})}), amin(x[0]));
  ROW("amin/dim1_keepdim", ({distinct({3, 4, 2})}), amin(x[0], {1}, true));
  ROW("var/dim1", ({u({3, 4})}), var(x[0], {1}));
  ROW("var/all_correction0", ({u({2, 3})}), var(x[0], {}, 0));
  ROW("var/dims02_keepdim", ({u({2, 3, 4})}), var(x[0], {0, 2}, 1, true));
  ROW("logsumexp/dim1", ({u({3, 4}, -3, 3)}), logsumexp(x[0], {1}));
  ROW("logsumexp/all_keepdim", ({u({2, 3}, -3, 3)}), logsumexp(x[0], {}, true));
  // --- linear algebra ---
  ROW("matmul/2d", ({u({3, 4}), u({4, 5})}), matmul(x[0], x[1]));
  ROW("matmul/batched", ({u({2, 3, 4}), u({2, 4, 5})}), matmul(x[0], x[1]));
  ROW("matmul/broadcast_batch", ({u({2, 3, 4}), u({4, 2})}), matmul(x[0], x[1]));
  ROW("matmul/transposed_inputs", ({u({4, 3}), u({5, 4})}), matmul(x[0].t(), x[1].t()));
  ROW("matmul/same_tensor_twice", ({u({3, 3})}), matmul(x[0], x[0]));
  ROW("linear/bias", ({u({4, 3}), u({2, 3}), u({2})}), linear(x[0], x[1], x[2]));
  ROW("linear/no_bias_3d", ({u({2, 3, 4}), u({5, 4})}), linear(x[0], x[1]));
  // --- shape and conversion ---
  ROW("reshape", ({u({2, 6})}), x[0].reshape({3, -1}) * x[0].reshape({3, 4}));
  ROW("reshape/non_contiguous", ({u({3, 4})}), x[0].t().reshape({2, 6}));
  ROW("permute", ({u({2, 3, 4})}), x[0].permute({2, 0, 1}).contiguous());
  ROW("transpose", ({u({2, 3})}), x[0].transpose(0, 1) * 2.0);
  ROW("slice/step2", ({u({5, 4})}), x[0].slice(0, 0, 5, 2) + x[0].slice(0, 1, 4).slice(1, 1, 3).sum({1}, true));
  ROW("expand", ({u({3, 1})}), x[0].expand({2, 3, 4}) * 1.5);
  ROW("squeeze", ({u({3, 1, 2})}), x[0].squeeze(1) * 2.0);
  ROW("unsqueeze", ({u({3, 2})}), x[0].unsqueeze(0) * x[0].unsqueeze(1).sum({2}));
  ROW("contiguous/permuted", ({u({2, 3})}), x[0].t().contiguous() * 3.0);
  ROW("clone", ({u({4})}), x[0].clone() * x[0]);
  // float64 -> float32 -> float64 loses precision: a larger eps keeps the difference quotient meaningful.
  t.push_back(row(
      "to_dtype/f32_roundtrip", [] { return Inputs{u({4})}; },
      [](const Inputs& x) { return x[0].to(DType::Float32).to(DType::Float64) * 2.0; },
      GradcheckOptions{1e-2, 1e-4, 1e-3}));
  // A round trip through the CPU: the identity where the row runs on the CPU (no node is recorded), two copies
  // and their backward where the parity tests run it on the GPU (tests/cuda/test_cuda_parity.cpp).
  ROW("to_device/via_cpu", ({u({2, 3})}), x[0].to(Device::cpu()).to(x[0].device()) * x[0]);
  ROW("gather/dim1", ({u({3, 4}), from_vector(std::vector<int64_t>{0, 3, 1, 1, 2, 2}, {3, 2})}), gather(x[0], 1, x[1]));
  // --- convolution and image ops: stride 1 and 2, padding 0 to 2, odd sizes, batch 1 to 3, with and without
  // bias, 1x1, 3x3 and 2x3 kernels (which cover each backward-input algorithm: 1x1 direct, stride-1 as a forward
  // conv, and col2im) ---
  ROW("conv2d/3x3_pad1_bias_batch1", ({u({1, 2, 5, 7}), u({3, 2, 3, 3}), u({3})}), conv2d(x[0], x[1], x[2], 1, 1));
  ROW("conv2d/3x3_stride2_pad1_bias_batch3", ({u({3, 2, 5, 7}), u({4, 2, 3, 3}), u({4})}),
      conv2d(x[0], x[1], x[2], 2, 1));
  ROW("conv2d/3x3_stride2_pad0_no_bias_batch3", ({u({3, 3, 7, 5}), u({2, 3, 3, 3})}),
      conv2d(x[0], x[1], Tensor(), 2, 0));
  ROW("conv2d/3x3_pad0_no_bias_batch1", ({u({1, 2, 6, 5}), u({2, 2, 3, 3})}), conv2d(x[0], x[1]));
  // Batch 2 and padding 2 for the Winograd path (tests/test_gradcheck.cpp runs the 3x3 stride-1 rows under it).
  ROW("conv2d/3x3_pad2_bias_batch2", ({u({2, 3, 6, 5}), u({2, 3, 3, 3}), u({2})}), conv2d(x[0], x[1], x[2], 1, 2));
  ROW("conv2d/1x1_bias_batch3", ({u({3, 4, 3, 5}), u({2, 4, 1, 1}), u({2})}), conv2d(x[0], x[1], x[2]));
  ROW("conv2d/1x1_stride2_pad1_batch1", ({u({1, 2, 5, 6}), u({3, 2, 1, 1}), u({3})}), conv2d(x[0], x[1], x[2], 2, 1));
  ROW("conv2d/1x1_pad1_batch3", ({u({3, 2, 3, 4}), u({2, 2, 1, 1})}), conv2d(x[0], x[1], Tensor(), 1, 1));
  ROW("conv2d/2x3_pad1_bias_batch3", ({u({3, 2, 5, 7}), u({2, 2, 2, 3}), u({2})}), conv2d(x[0], x[1], x[2], 1, 1));
  ROW("conv2d/2x3_stride2_pad0_batch1", ({u({1, 3, 5, 7}), u({2, 3, 2, 3}), u({2})}), conv2d(x[0], x[1], x[2], 2, 0));
  // A stride and padding for each direction ({h, w}), with a 3x5 kernel, and the reverse order.
  ROW("conv2d/3x5_stride1x2_pad1x2_bias_batch2", ({u({2, 2, 5, 9}), u({3, 2, 3, 5}), u({3})}),
      conv2d(x[0], x[1], x[2], {1, 2}, {1, 2}));
  ROW("conv2d/3x3_pad1x0_bias_batch2", ({u({2, 2, 5, 6}), u({3, 2, 3, 3}), u({3})}),
      conv2d(x[0], x[1], x[2], 1, {1, 0}));
  ROW("conv2d/3x3_stride2x1_pad0x1_batch1", ({u({1, 3, 7, 6}), u({2, 3, 3, 3})}),
      conv2d(x[0], x[1], Tensor(), {2, 1}, {0, 1}));
  ROW("conv2d/permuted_input", ({u({2, 5, 7, 3}), u({2, 3, 3, 3}), u({2})}),
      conv2d(x[0].permute({0, 3, 1, 2}), x[1], x[2], 1, 1));
  // The fused conv + bias + ELU: stride 1 (Winograd-able) and 2, with and without bias, alpha 1 and 0.7 (the
  // pre-activations of these inputs are far from ELU's kink at 0 compared with gradcheck's step).
  ROW("conv2d_elu/3x3_pad1_bias_batch2", ({u({2, 3, 6, 5}), u({4, 3, 3, 3}), u({4})}),
      conv2d_elu(x[0], x[1], x[2], 1, 1));
  ROW("conv2d_elu/3x3_stride2_pad1_no_bias_batch3_alpha0.7", ({u({3, 2, 5, 7}), u({3, 2, 3, 3})}),
      conv2d_elu(x[0], x[1], Tensor(), 2, 1, 0.7));
  ROW("conv2d_elu/3x3_stride1x2_pad1x0_bias_batch2", ({u({2, 2, 6, 7}), u({3, 2, 3, 3}), u({3})}),
      conv2d_elu(x[0], x[1], x[2], {1, 2}, {1, 0}, 0.9));
  ROW("conv2d_elu/1x1_bias_batch1", ({u({1, 4, 3, 5}), u({2, 4, 1, 1}), u({2})}), conv2d_elu(x[0], x[1], x[2]));
  // The same with the input upsampled by 2 inside the convolution (x is the small image): the BEGAN decoder's
  // 3x3 stride-1 pad-1 layer (Winograd-able), stride 2 without padding, a 1x1 kernel (no pointwise shortcut may
  // skip the upsampling) and a permuted, non-contiguous input.
  ROW("upsample_conv2d_elu/3x3_pad1_bias_batch2", ({u({2, 3, 3, 4}), u({4, 3, 3, 3}), u({4})}),
      upsample_conv2d_elu(x[0], x[1], x[2], 1, 1));
  ROW("upsample_conv2d_elu/3x3_stride2_no_bias_batch1_alpha0.7", ({u({1, 2, 3, 3}), u({3, 2, 3, 3})}),
      upsample_conv2d_elu(x[0], x[1], Tensor(), 2, 0, 0.7));
  ROW("upsample_conv2d_elu/1x1_bias_batch3", ({u({3, 2, 2, 3}), u({2, 2, 1, 1}), u({2})}),
      upsample_conv2d_elu(x[0], x[1], x[2]));
  ROW("upsample_conv2d_elu/permuted_input", ({u({2, 3, 4, 2}), u({2, 2, 3, 3}), u({2})}),
      upsample_conv2d_elu(x[0].permute({0, 3, 1, 2}), x[1], x[2], 1, 1));
  ROW("upsample_nearest2d/scale2", ({u({2, 3, 3, 4})}), upsample_nearest2d(x[0], 2));
  ROW("upsample_nearest2d/scale3_batch1", ({u({1, 2, 2, 3})}), upsample_nearest2d(x[0], 3));
  ROW("cat/dim0_three", ({u({2, 3}), u({1, 3}), u({3, 3})}), cat({x[0], x[1], x[2]}, 0));
  ROW("cat/dim1_three", ({u({2, 1, 4}), u({2, 3, 4}), u({2, 2, 4})}), cat({x[0], x[1] * x[1], x[2]}, 1));
  ROW("cat/dim-1_transposed", ({u({3, 2}), u({2, 2})}), cat({x[0].t(), x[1]}, -1));
  ROW("stack/dim0", ({u({2, 3}), u({2, 3})}), stack({x[0], x[1]}, 0));
  ROW("stack/dim-1_transposed", ({u({3, 2}), u({2, 3})}), stack({x[0].t(), x[1], x[1]}, -1));
  // Ops returning several tensors: the row combines every piece (differently), so each piece's gradient counts.
  t.push_back(row(
      "split/uneven_dim0",
      [] {
        return Inputs{u({7, 3})};
      },
      [](const Inputs& x) {
        std::vector<Tensor> p = split(x[0], 3, 0);  // sizes 3, 3, 1
        return cat({p[2] * 3.0, p[0], p[1] * p[1]}, 0);
      }));
  t.push_back(row(
      "split/one_piece_unused",
      [] {
        return Inputs{u({2, 5})};
      },
      [](const Inputs& x) {
        std::vector<Tensor> p = split(x[0], 2, 1);  // sizes 2, 2, 1; no gradient reaches p[1]
        return cat({p[2] * p[2], p[0] * 3.0}, 1);
      }));
  t.push_back(row(
      "chunk/uneven_dim1",
      [] {
        return Inputs{u({2, 8})};
      },
      [](const Inputs& x) {
        std::vector<Tensor> p = chunk(x[0], 3, 1);  // sizes 3, 3, 2
        return cat({p[2] * 2.0, p[0], exp(p[1])}, 1);
      }));
  // --- losses ---
  ROW("mse_loss", ({u({3, 4}), u({3, 4})}), mse_loss(x[0], x[1]));
  t.push_back(row(
      "l1_loss",
      [] {
        Tensor target = leaf(zeros({2, 5}, f64));
        return Inputs{away_from_zero({2, 5}), target};
      },
      [](const Inputs& x) { return l1_loss(x[0], x[1]); }));
  ROW("log_softmax/dim1", ({u({3, 5}, -2, 2)}), log_softmax(x[0], 1));
  ROW("log_softmax/dim0", ({u({4, 2}, -2, 2)}), log_softmax(x[0], 0));
  ROW("log_softmax/middle_dim", ({u({2, 4, 3}, -2, 2)}), log_softmax(x[0], -2));
  ROW("cross_entropy", ({u({4, 3}, -2, 2), labels({0, 2, 1, 2})}), cross_entropy(x[0], x[1]));
  ROW("softmax/dim1", ({u({3, 5}, -2, 2)}), softmax(x[0], 1));
  ROW("softmax/dim0", ({u({4, 2}, -2, 2)}), softmax(x[0], 0));
  ROW("binary_cross_entropy_with_logits", ({u({3, 4}, -3, 3), u({3, 4}, 0, 1)}),
      binary_cross_entropy_with_logits(x[0], x[1]));
  // --- the layers' ops: dropout reseeds the default generator in each call, so every call draws one mask ---
  ROW("dropout/p0.3", ({u({4, 5})}), (manual_seed(11), dropout(x[0], 0.3)));
  ROW("dropout/p0.5_nchw_eval", ({u({2, 3, 2, 2})}), dropout(x[0], 0.5, /*training=*/false) * 2.0);
  // batch_norm's running statistics: fresh in each call, on the input's device and dtype (they are updated).
  ROW("batch_norm/train_affine_nchw", ({u({3, 2, 2, 2}), u({2}), u({2})}),
      batch_norm(x[0], zeros({2}, x[0].dtype(), x[0].device()), ones({2}, x[0].dtype(), x[0].device()), x[1], x[2],
                 true));
  ROW("batch_norm/train_no_stats_nc", ({u({5, 3})}), batch_norm(x[0], Tensor(), Tensor(), Tensor(), Tensor(), true));
  // 16 rows or more of short runs: the CPU sums them as columns (backends/cpu/norm.cpp).
  ROW("batch_norm/train_affine_nc_columns", ({u({17, 3}), u({3}), u({3})}),
      batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true));
  ROW("batch_norm/train_affine_ncl_columns", ({u({16, 2, 3}), u({2}), u({2})}),
      batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true));
  // Running statistics as inputs that do not require grad.
  ROW("batch_norm/eval_affine_ncl",
      ({u({2, 3, 4}), uniform({3}, -1, 1, RandomKey{42, t_stream++, 0}, f64),
        uniform({3}, 0.5, 2, RandomKey{42, t_stream++, 0}, f64), u({3}), u({3})}),
      batch_norm(x[0], x[1], x[2], x[3], x[4], false));
  ROW("layer_norm/last_dim_affine", ({u({3, 4}), u({4}), u({4})}), layer_norm(x[0], {4}, x[1], x[2]));
  ROW("layer_norm/last_two_dims", ({u({2, 3, 4})}), layer_norm(x[0], {3, 4}));
  // The CPU reads a weight per element where channels are short (under 128 elements: the first three rows), and
  // channel by channel where they are long (the fourth, with a tail past whole registers).
  ROW("group_norm/affine_nchw", ({u({2, 4, 2, 3}), u({4}), u({4})}), group_norm(x[0], 2, x[1], x[2]));
  ROW("group_norm/instance_ncl", ({u({3, 2, 5})}), group_norm(x[0], 2));
  ROW("group_norm/affine_nc_short_channels", ({u({3, 4}), u({4}), u({4})}), group_norm(x[0], 2, x[1], x[2]));
  ROW("group_norm/affine_long_channels", ({u({2, 4, 1, 130}), u({4}), u({4})}), group_norm(x[0], 2, x[1], x[2]));
  // Distinct values: no two in a window within 1e-2 of each other (ties share the gradient, a kink).
  ROW("max_pool2d/k2", ({distinct({1, 2, 4, 4})}), max_pool2d(x[0], 2));
  ROW("max_pool2d/k3_s2_p1", ({distinct({2, 1, 5, 5})}), max_pool2d(x[0], 3, 2, 1));
  ROW("max_pool2d/k2x3_s1x2", ({distinct({1, 2, 3, 5})}), max_pool2d(x[0], {2, 3}, HW{1, 2}));
  ROW("avg_pool2d/k2", ({u({1, 2, 4, 4})}), avg_pool2d(x[0], 2));
  ROW("avg_pool2d/k3_s2_p1", ({u({2, 1, 5, 5})}), avg_pool2d(x[0], 3, 2, 1));
  return t;
}

#undef ROW

}  // namespace

const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> table = build_table();
  return table;
}

std::vector<Tensor> inputs_as(const std::vector<Tensor>& inputs, DType dtype, Device device) {
  std::vector<Tensor> out;
  for (const Tensor& x : inputs) {
    if (!is_floating(x.dtype())) {
      out.push_back(x.to(device));
      continue;
    }
    Tensor t = x.detach().to(dtype).to(device);
    t.requires_grad_(x.requires_grad());
    out.push_back(t);
  }
  return out;
}

const std::vector<std::string>& differentiable_op_names() {
  static const std::vector<std::string> names = {
#define X(name) #name,
#include "autograd/differentiable_ops.def"
#undef X
  };
  return names;
}

}  // namespace atelier
