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

// Distinct values, pairwise at least 0.05 apart, in a fixed shuffled order (for max: no ties within 1e-2).
Tensor distinct(const Shape& shape) {
  int64_t n = shape_numel(shape);
  std::vector<double> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = -1.0 + 0.05 * static_cast<double>((i * 7919) % n);
  return leaf(from_vector(values, shape, f64));
}

Tensor labels(const std::vector<int64_t>& values) { return from_vector(values, {static_cast<int64_t>(values.size())}); }

OpCase row(std::string op, std::string name, std::function<Inputs()> make, GradcheckFn fn, GradcheckOptions o = {}) {
  uint64_t first_stream = 14695981039346656037ull;  // FNV-1a of the name: the same on every platform
  for (unsigned char ch : name) first_stream = (first_stream ^ ch) * 1099511628211ull;
  auto seeded_make = [make = std::move(make), first_stream] {
    t_stream = first_stream;
    return make();
  };
  return OpCase{std::move(op), std::move(name), std::move(seeded_make), std::move(fn), o};
}

std::vector<OpCase> build_table() {
  std::vector<OpCase> t;
  // --- elementwise, binary: same shape, broadcasting, scalars, non-contiguous inputs, a tensor used twice ---
  t.push_back(row(
      "add", "add/same_shape",
      [] {
        return Inputs{u({2, 3}), u({2, 3})};
      },
      [](const Inputs& x) { return x[0] + x[1]; }));
  t.push_back(row(
      "add", "add/broadcast",
      [] {
        return Inputs{u({3, 1, 4}), u({2, 4})};
      },
      [](const Inputs& x) { return x[0] + x[1]; }));
  t.push_back(row(
      "add", "add/scalar", [] { return Inputs{u({5})}; }, [](const Inputs& x) { return 2.5 + x[0]; }));
  t.push_back(row(
      "add", "add/same_tensor_twice", [] { return Inputs{u({4})}; }, [](const Inputs& x) { return x[0] + x[0]; }));
  t.push_back(row(
      "add", "add/permuted",
      [] {
        return Inputs{u({3, 2, 4}), u({2, 4, 3})};
      },
      [](const Inputs& x) {
        return x[0].permute({1, 2, 0}) + x[1];
      }));
  t.push_back(row(
      "sub", "sub/broadcast",
      [] {
        return Inputs{u({2, 3}), u({3})};
      },
      [](const Inputs& x) { return x[0] - x[1]; }));
  t.push_back(row(
      "sub", "sub/rsub_scalar", [] { return Inputs{u({4})}; }, [](const Inputs& x) { return 1.5 - x[0]; }));
  t.push_back(row(
      "mul", "mul/broadcast",
      [] {
        return Inputs{u({2, 3}), u({2, 1})};
      },
      [](const Inputs& x) { return x[0] * x[1]; }));
  t.push_back(row(
      "mul", "mul/same_tensor_twice", [] { return Inputs{u({5})}; }, [](const Inputs& x) { return x[0] * x[0]; }));
  t.push_back(row(
      "mul", "mul/sliced",
      [] {
        return Inputs{u({4, 6}), u({2, 3})};
      },
      [](const Inputs& x) { return x[0].slice(0, 1, 3).slice(1, 0, 6, 2) * x[1]; }));
  t.push_back(row(
      "mul", "mul/expanded",
      [] {
        return Inputs{u({3, 1}), u({3, 4})};
      },
      [](const Inputs& x) {
        return x[0].expand({3, 4}) * x[1];
      }));
  t.push_back(row(
      "mul", "mul/scalar", [] { return Inputs{u({3})}; }, [](const Inputs& x) { return x[0] * -3.0; }));
  t.push_back(row(
      "div", "div/broadcast",
      [] {
        return Inputs{u({2, 3}), u({3}, 0.5, 2.0)};
      },
      [](const Inputs& x) { return x[0] / x[1]; }));
  t.push_back(row(
      "div", "div/rdiv_scalar", [] { return Inputs{u({4}, 0.5, 2.0)}; }, [](const Inputs& x) { return 2.0 / x[0]; }));
  // --- elementwise, unary (inputs kept away from kinks and domain edges) ---
  t.push_back(row(
      "neg", "neg",
      [] {
        return Inputs{u({2, 3})};
      },
      [](const Inputs& x) { return -x[0]; }));
  t.push_back(row(
      "exp", "exp",
      [] {
        return Inputs{u({2, 3})};
      },
      [](const Inputs& x) { return exp(x[0]); }));
  t.push_back(row(
      "exp", "exp/used_twice", [] { return Inputs{u({4})}; }, [](const Inputs& x) { return x[0] * exp(x[0]); }));
  t.push_back(row(
      "log", "log",
      [] {
        return Inputs{u({2, 3}, 0.2, 2.0)};
      },
      [](const Inputs& x) { return log(x[0]); }));
  t.push_back(row(
      "abs", "abs",
      [] {
        return Inputs{away_from_zero({2, 4})};
      },
      [](const Inputs& x) { return abs(x[0]); }));
  t.push_back(row(
      "sqrt", "sqrt", [] { return Inputs{u({5}, 0.2, 2.0)}; }, [](const Inputs& x) { return sqrt(x[0]); }));
  t.push_back(row(
      "pow", "pow/square", [] { return Inputs{u({5})}; }, [](const Inputs& x) { return pow(x[0], 2.0); }));
  t.push_back(row(
      "pow", "pow/fractional", [] { return Inputs{u({5}, 0.2, 2.0)}; },
      [](const Inputs& x) { return pow(x[0], -1.5); }));
  t.push_back(row(
      "tanh", "tanh",
      [] {
        return Inputs{u({2, 3}, -2, 2)};
      },
      [](const Inputs& x) { return tanh(x[0]); }));
  t.push_back(row(
      "sigmoid", "sigmoid",
      [] {
        return Inputs{u({2, 3}, -3, 3)};
      },
      [](const Inputs& x) { return sigmoid(x[0]); }));
  t.push_back(row(
      "relu", "relu",
      [] {
        return Inputs{away_from_zero({3, 3})};
      },
      [](const Inputs& x) { return relu(x[0]); }));
  t.push_back(row(
      "elu", "elu/alpha1",
      [] {
        return Inputs{away_from_zero({3, 3})};
      },
      [](const Inputs& x) { return elu(x[0]); }));
  t.push_back(row(
      "elu", "elu/alpha0.5_transposed",
      [] {
        return Inputs{away_from_zero({3, 2})};
      },
      [](const Inputs& x) { return elu(x[0].t(), 0.5); }));
  // Inputs on both sides of both bounds, each at least 0.05 away from them.
  t.push_back(row(
      "clamp", "clamp",
      [] {
        std::vector<double> v{-0.9, -0.6, -0.4, -0.1, 0.05, 0.2, 0.35, 0.55, 0.8, 0.95};
        return Inputs{leaf(from_vector(v, {2, 5}))};
      },
      [](const Inputs& x) { return clamp(x[0], -0.52, 0.47); }));
  t.push_back(row(
      "where", "where/broadcast",
      [] {
        Tensor cond = from_vector(std::vector<bool>{true, false, false, true, true, false}, {2, 3});
        return Inputs{cond, u({2, 3}), u({3})};
      },
      [](const Inputs& x) { return where(x[0], x[1], x[2]); }));
  // --- reductions ---
  t.push_back(row(
      "sum", "sum/all",
      [] {
        return Inputs{u({2, 3, 4})};
      },
      [](const Inputs& x) { return x[0].sum(); }));
  t.push_back(row(
      "sum", "sum/dim1",
      [] {
        return Inputs{u({2, 3, 4})};
      },
      [](const Inputs& x) { return x[0].sum({1}); }));
  t.push_back(row(
      "sum", "sum/dims02_keepdim_transposed",
      [] {
        return Inputs{u({4, 3, 2})};
      },
      [](const Inputs& x) {
        return x[0].transpose(0, 2).sum({0, 2}, true);
      }));
  t.push_back(row(
      "mean", "mean/all",
      [] {
        return Inputs{u({3, 4})};
      },
      [](const Inputs& x) { return x[0].mean(); }));
  t.push_back(row(
      "mean", "mean/dim-1_keepdim",
      [] {
        return Inputs{u({3, 4})};
      },
      [](const Inputs& x) { return x[0].mean({-1}, true); }));
  t.push_back(row(
      "max", "max/all",
      [] {
        return Inputs{distinct({3, 4})};
      },
      [](const Inputs& x) { return x[0].max(); }));
  t.push_back(row(
      "max", "max/dim1",
      [] {
        return Inputs{distinct({3, 4, 2})};
      },
      [](const Inputs& x) { return x[0].max({1}); }));
  t.push_back(row(
      "max", "max/dims01_keepdim",
      [] {
        return Inputs{distinct({3, 4, 2})};
      },
      [](const Inputs& x) {
        return x[0].max({0, 1}, true);
      }));
  // --- linear algebra ---
  t.push_back(row(
      "matmul", "matmul/2d",
      [] {
        return Inputs{u({3, 4}), u({4, 5})};
      },
      [](const Inputs& x) { return matmul(x[0], x[1]); }));
  t.push_back(row(
      "matmul", "matmul/batched",
      [] {
        return Inputs{u({2, 3, 4}), u({2, 4, 5})};
      },
      [](const Inputs& x) { return matmul(x[0], x[1]); }));
  t.push_back(row(
      "matmul", "matmul/broadcast_batch",
      [] {
        return Inputs{u({2, 3, 4}), u({4, 2})};
      },
      [](const Inputs& x) { return matmul(x[0], x[1]); }));
  t.push_back(row(
      "matmul", "matmul/transposed_inputs",
      [] {
        return Inputs{u({4, 3}), u({5, 4})};
      },
      [](const Inputs& x) { return matmul(x[0].t(), x[1].t()); }));
  t.push_back(row(
      "matmul", "matmul/same_tensor_twice",
      [] {
        return Inputs{u({3, 3})};
      },
      [](const Inputs& x) { return matmul(x[0], x[0]); }));
  t.push_back(row(
      "linear", "linear/bias",
      [] {
        return Inputs{u({4, 3}), u({2, 3}), u({2})};
      },
      [](const Inputs& x) { return linear(x[0], x[1], x[2]); }));
  t.push_back(row(
      "linear", "linear/no_bias_3d",
      [] {
        return Inputs{u({2, 3, 4}), u({5, 4})};
      },
      [](const Inputs& x) { return linear(x[0], x[1]); }));
  // --- shape and conversion ---
  t.push_back(row(
      "reshape", "reshape",
      [] {
        return Inputs{u({2, 6})};
      },
      [](const Inputs& x) {
        return x[0].reshape({3, -1}) * x[0].reshape({3, 4});
      }));
  t.push_back(row(
      "reshape", "reshape/non_contiguous",
      [] {
        return Inputs{u({3, 4})};
      },
      [](const Inputs& x) {
        return x[0].t().reshape({2, 6});
      }));
  t.push_back(row(
      "permute", "permute",
      [] {
        return Inputs{u({2, 3, 4})};
      },
      [](const Inputs& x) {
        return x[0].permute({2, 0, 1}).contiguous();
      }));
  t.push_back(row(
      "transpose", "transpose",
      [] {
        return Inputs{u({2, 3})};
      },
      [](const Inputs& x) { return x[0].transpose(0, 1) * 2.0; }));
  t.push_back(row(
      "slice", "slice/step2",
      [] {
        return Inputs{u({5, 4})};
      },
      [](const Inputs& x) { return x[0].slice(0, 0, 5, 2) + x[0].slice(0, 1, 4).slice(1, 1, 3).sum({1}, true); }));
  t.push_back(row(
      "expand", "expand",
      [] {
        return Inputs{u({3, 1})};
      },
      [](const Inputs& x) {
        return x[0].expand({2, 3, 4}) * 1.5;
      }));
  t.push_back(row(
      "squeeze", "squeeze",
      [] {
        return Inputs{u({3, 1, 2})};
      },
      [](const Inputs& x) { return x[0].squeeze(1) * 2.0; }));
  t.push_back(row(
      "unsqueeze", "unsqueeze",
      [] {
        return Inputs{u({3, 2})};
      },
      [](const Inputs& x) { return x[0].unsqueeze(0) * x[0].unsqueeze(1).sum({2}); }));
  t.push_back(row(
      "contiguous", "contiguous/permuted",
      [] {
        return Inputs{u({2, 3})};
      },
      [](const Inputs& x) { return x[0].t().contiguous() * 3.0; }));
  t.push_back(row(
      "clone", "clone", [] { return Inputs{u({4})}; }, [](const Inputs& x) { return x[0].clone() * x[0]; }));
  // float64 -> float32 -> float64 loses precision: a larger eps keeps the difference quotient meaningful.
  t.push_back(row(
      "to_dtype", "to_dtype/f32_roundtrip", [] { return Inputs{u({4})}; },
      [](const Inputs& x) { return x[0].to(DType::Float32).to(DType::Float64) * 2.0; },
      GradcheckOptions{1e-2, 1e-4, 1e-3}));
  t.push_back(row(
      "gather", "gather/dim1",
      [] {
        return Inputs{u({3, 4}), from_vector(std::vector<int64_t>{0, 3, 1, 1, 2, 2}, {3, 2})};
      },
      [](const Inputs& x) { return gather(x[0], 1, x[1]); }));
  // --- convolution and image ops: stride 1 and 2, padding 0 and 1, odd sizes, batch 1 and 3, with and without
  // bias, 1x1, 3x3 and 2x3 kernels (which cover each backward-input algorithm: 1x1 direct, stride-1 as a forward
  // conv, and col2im) ---
  t.push_back(row(
      "conv2d", "conv2d/3x3_pad1_bias_batch1",
      [] {
        return Inputs{u({1, 2, 5, 7}), u({3, 2, 3, 3}), u({3})};
      },
      [](const Inputs& x) { return conv2d(x[0], x[1], x[2], 1, 1); }));
  t.push_back(row(
      "conv2d", "conv2d/3x3_stride2_pad1_bias_batch3",
      [] {
        return Inputs{u({3, 2, 5, 7}), u({4, 2, 3, 3}), u({4})};
      },
      [](const Inputs& x) { return conv2d(x[0], x[1], x[2], 2, 1); }));
  t.push_back(row(
      "conv2d", "conv2d/3x3_stride2_pad0_no_bias_batch3",
      [] {
        return Inputs{u({3, 3, 7, 5}), u({2, 3, 3, 3})};
      },
      [](const Inputs& x) { return conv2d(x[0], x[1], Tensor(), 2, 0); }));
  t.push_back(row(
      "conv2d", "conv2d/3x3_pad0_no_bias_batch1",
      [] {
        return Inputs{u({1, 2, 6, 5}), u({2, 2, 3, 3})};
      },
      [](const Inputs& x) { return conv2d(x[0], x[1]); }));
  t.push_back(row(
      "conv2d", "conv2d/1x1_bias_batch3",
      [] {
        return Inputs{u({3, 4, 3, 5}), u({2, 4, 1, 1}), u({2})};
      },
      [](const Inputs& x) { return conv2d(x[0], x[1], x[2]); }));
  t.push_back(row(
      "conv2d", "conv2d/1x1_stride2_pad1_batch1",
      [] {
        return Inputs{u({1, 2, 5, 6}), u({3, 2, 1, 1}), u({3})};
      },
      [](const Inputs& x) { return conv2d(x[0], x[1], x[2], 2, 1); }));
  t.push_back(row(
      "conv2d", "conv2d/1x1_pad1_batch3",
      [] {
        return Inputs{u({3, 2, 3, 4}), u({2, 2, 1, 1})};
      },
      [](const Inputs& x) { return conv2d(x[0], x[1], Tensor(), 1, 1); }));
  t.push_back(row(
      "conv2d", "conv2d/2x3_pad1_bias_batch3",
      [] {
        return Inputs{u({3, 2, 5, 7}), u({2, 2, 2, 3}), u({2})};
      },
      [](const Inputs& x) { return conv2d(x[0], x[1], x[2], 1, 1); }));
  t.push_back(row(
      "conv2d", "conv2d/2x3_stride2_pad0_batch1",
      [] {
        return Inputs{u({1, 3, 5, 7}), u({2, 3, 2, 3}), u({2})};
      },
      [](const Inputs& x) { return conv2d(x[0], x[1], x[2], 2, 0); }));
  t.push_back(row(
      "conv2d", "conv2d/permuted_input",
      [] {
        return Inputs{u({2, 5, 7, 3}), u({2, 3, 3, 3}), u({2})};
      },
      [](const Inputs& x) {
        return conv2d(x[0].permute({0, 3, 1, 2}), x[1], x[2], 1, 1);
      }));
  t.push_back(row(
      "upsample_nearest2d", "upsample_nearest2d/scale2",
      [] {
        return Inputs{u({2, 3, 3, 4})};
      },
      [](const Inputs& x) { return upsample_nearest2d(x[0], 2); }));
  t.push_back(row(
      "upsample_nearest2d", "upsample_nearest2d/scale3_batch1",
      [] {
        return Inputs{u({1, 2, 2, 3})};
      },
      [](const Inputs& x) { return upsample_nearest2d(x[0], 3); }));
  t.push_back(row(
      "cat", "cat/dim0_three",
      [] {
        return Inputs{u({2, 3}), u({1, 3}), u({3, 3})};
      },
      [](const Inputs& x) {
        return cat({x[0], x[1], x[2]}, 0);
      }));
  t.push_back(row(
      "cat", "cat/dim1_three",
      [] {
        return Inputs{u({2, 1, 4}), u({2, 3, 4}), u({2, 2, 4})};
      },
      [](const Inputs& x) {
        return cat({x[0], x[1] * x[1], x[2]}, 1);
      }));
  t.push_back(row(
      "cat", "cat/dim-1_transposed",
      [] {
        return Inputs{u({3, 2}), u({2, 2})};
      },
      [](const Inputs& x) {
        return cat({x[0].t(), x[1]}, -1);
      }));
  // Ops returning several tensors: the row combines every piece (differently), so each piece's gradient counts.
  t.push_back(row(
      "split", "split/uneven_dim0",
      [] {
        return Inputs{u({7, 3})};
      },
      [](const Inputs& x) {
        std::vector<Tensor> p = split(x[0], 3, 0);  // sizes 3, 3, 1
        return cat({p[2] * 3.0, p[0], p[1] * p[1]}, 0);
      }));
  t.push_back(row(
      "chunk", "chunk/uneven_dim1",
      [] {
        return Inputs{u({2, 8})};
      },
      [](const Inputs& x) {
        std::vector<Tensor> p = chunk(x[0], 3, 1);  // sizes 3, 3, 2
        return cat({p[2] * 2.0, p[0], exp(p[1])}, 1);
      }));
  // --- losses ---
  t.push_back(row(
      "mse_loss", "mse_loss",
      [] {
        return Inputs{u({3, 4}), u({3, 4})};
      },
      [](const Inputs& x) { return mse_loss(x[0], x[1]); }));
  t.push_back(row(
      "l1_loss", "l1_loss",
      [] {
        Tensor target = leaf(zeros({2, 5}, f64));
        return Inputs{away_from_zero({2, 5}), target};
      },
      [](const Inputs& x) { return l1_loss(x[0], x[1]); }));
  t.push_back(row(
      "log_softmax", "log_softmax/dim1",
      [] {
        return Inputs{u({3, 5}, -2, 2)};
      },
      [](const Inputs& x) { return log_softmax(x[0], 1); }));
  t.push_back(row(
      "log_softmax", "log_softmax/dim0",
      [] {
        return Inputs{u({4, 2}, -2, 2)};
      },
      [](const Inputs& x) { return log_softmax(x[0], 0); }));
  t.push_back(row(
      "cross_entropy", "cross_entropy",
      [] {
        return Inputs{u({4, 3}, -2, 2), labels({0, 2, 1, 2})};
      },
      [](const Inputs& x) { return cross_entropy(x[0], x[1]); }));
  return t;
}

}  // namespace

const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> table = build_table();
  return table;
}

const std::vector<std::string>& differentiable_op_names() {
  static const std::vector<std::string> names = {
#define X(name) #name,
#include "autograd/ops.def"
#undef X
  };
  return names;
}

}  // namespace atelier
