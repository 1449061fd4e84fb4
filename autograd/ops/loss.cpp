// Losses: L1 and cross-entropy composed from differentiable ops (their gradients come from the pieces), MSE and
// binary cross-entropy from logits one node over raw ops each, log-softmax and softmax one primitive each way.
#include <limits>

#include "autograd/functions.h"
#include "autograd/record.h"
#include "backends/error.h"
#include "tensor/raw_ops.h"

namespace atelier {

namespace {

void check_same_shape(const Tensor& input, const Tensor& target, const char* op) {
  ATELIER_CHECK(input.shape() == target.shape(), op << ": input of shape " << input.shape() << " and target of shape "
                                                    << target.shape()
                                                    << " differ (broadcasting is not applied to losses)");
}

}  // namespace

Tensor mse_loss(const Tensor& input, const Tensor& target) {
  check_same_shape(input, target, "mse_loss");
  // One node: mean(d * d) with d = input - target, whose gradient is d times 2 / n times the loss's gradient (its
  // negative for the target): one pass for each input that needs it, where sub, mul and mean recorded three nodes
  // whose backward made four passes (docs/benchmarks.md, "Everyday ops against PyTorch").
  const Tensor d = raw::binary(BinaryOp::Sub, input, target);
  Tensor out = raw::reduce(ReduceOp::Mean, raw::binary(BinaryOp::Mul, d, d), {}, /*keepdim=*/false);
  if (!should_record({input, target})) return out;
  const double scale = 2.0 / static_cast<double>(d.numel());  // d is not empty: the mean refused that
  return record("mse_loss", out, {input, target}, [sd = SavedTensor(d), scale](const auto& g, const auto& needs) {
    const Tensor dx = raw::binary(BinaryOp::Mul, sd.unpack(), raw::binary(BinaryOp::Mul, g[0], scale));
    return std::vector<Tensor>{needs[0] ? dx : Tensor(), needs[1] ? raw::unary(UnaryOp::Neg, dx) : Tensor()};
  });
}

Tensor l1_loss(const Tensor& input, const Tensor& target) {
  check_same_shape(input, target, "l1_loss");
  return mean(abs(sub(input, target)));
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  // One kernel each way (raw::log_softmax: x - m - log(sum(exp(x - m))), m the row's max), where the composition
  // of amax, sub, exp, sum and log recorded five nodes and made ten passes over memory forward and backward:
  // docs/benchmarks.md, "log_softmax as one kernel". The gradient is read from the output alone: dx = dy -
  // softmax * sum(dy), softmax = exp(y).
  Tensor out = raw::log_softmax(x, dim);
  if (!should_record({x})) return out;
  return record("log_softmax", out, {x}, [so = SavedTensor(out), dim](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::log_softmax_backward(g[0], so.unpack(), dim)};
  });
}

Tensor softmax(const Tensor& x, int64_t dim) {
  // The log-softmax kernels' softmax mode: one pass each way (exp(log_softmax) composed made four:
  // docs/benchmarks.md, "The five slower everyday ops"), the gradient from the saved output, y (dy - sum(dy y)).
  Tensor out = raw::softmax(x, dim);
  if (!should_record({x})) return out;
  return record("softmax", out, {x}, [so = SavedTensor(out), dim](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::softmax_backward(g[0], so.unpack(), dim)};
  });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  ATELIER_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, C), got " << logits.shape());
  ATELIER_CHECK(labels.dtype() == DType::Int64, "cross_entropy: labels must be int64, got " << labels.dtype());
  ATELIER_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0),
                "cross_entropy: labels of shape " << labels.shape() << " for logits " << logits.shape()
                                                  << " (expected (" << logits.size(0) << "))");
  // -mean_i log_softmax(logits)[i, label_i]; gather checks every label is in [0, C).
  Tensor picked = gather(log_softmax(logits, 1), 1, raw::unsqueeze(labels, 1));
  return neg(mean(picked));
}

Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target) {
  check_same_shape(input, target, "binary_cross_entropy_with_logits");
  // One node over raw ops, as mse_loss. Per element: max(x, 0) - x t + log(1 + exp(-|x|)), which is
  // -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))) without forming sigmoid(x): exp(-|x|) <= 1 never overflows,
  // and no log of 0 is taken. The gradient is (sigmoid(x) - t) / n for x and -x / n for t, times the loss's
  // gradient, as PyTorch's (the composition's would be wrong at x = 0, where |x| has no derivative).
  // softplus(x) = max(x, 0) + log(1 + exp(-|x|)) is one kernel (no threshold: exact for any x).
  const Tensor softplus = raw::unary(UnaryOp::Softplus, input, 1.0, std::numeric_limits<double>::infinity());
  const Tensor terms = raw::binary(BinaryOp::Sub, softplus, raw::binary(BinaryOp::Mul, input, target));
  Tensor out = raw::reduce(ReduceOp::Mean, terms, {}, /*keepdim=*/false);
  if (!should_record({input, target})) return out;
  const double scale = 1.0 / static_cast<double>(input.numel());  // not empty: the mean refused that
  return record("binary_cross_entropy_with_logits", out, {input, target},
                [sx = SavedTensor(input), st = SavedTensor(target), scale](const auto& g, const auto& needs) {
                  const Tensor x = sx.unpack();
                  const Tensor g_n = raw::binary(BinaryOp::Mul, g[0], scale);  // 0-d
                  Tensor dx, dt;
                  if (needs[0]) {
                    const Tensor p = raw::unary(UnaryOp::Sigmoid, x);
                    dx = raw::binary(BinaryOp::Mul, raw::binary(BinaryOp::Sub, p, st.unpack()), g_n);
                  }
                  if (needs[1]) dt = raw::binary(BinaryOp::Mul, raw::unary(UnaryOp::Neg, x), g_n);
                  return std::vector<Tensor>{dx, dt};
                });
}

}  // namespace atelier
