// Losses and log-softmax, composed from differentiable ops (their gradients come from the pieces).
#include "autograd/functions.h"
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
  Tensor d = sub(input, target);
  return mean(mul(d, d));
}

Tensor l1_loss(const Tensor& input, const Tensor& target) {
  check_same_shape(input, target, "l1_loss");
  return mean(abs(sub(input, target)));
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  // x - m - log(sum(exp(x - m))) with m = max(x) along dim: shifting by a constant changes nothing
  // mathematically and keeps exp from overflowing, so m is detached (no gradient through it).
  Tensor m = raw::reduce(ReduceOp::Max, x.detach(), {dim}, /*keepdim=*/true);
  Tensor shifted = sub(x, m);
  return sub(shifted, log(sum(exp(shifted), {dim}, /*keepdim=*/true)));
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

}  // namespace atelier
