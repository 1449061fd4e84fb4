#include "nn/grad_clip.h"

#include <cmath>

#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/raw_ops.h"

namespace atelier::nn {

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  ATELIER_CHECK(std::isfinite(max_norm) && max_norm > 0,
                "clip_grad_norm_: max_norm must be a positive finite number, got " << max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    const Tensor g = p.grad();
    ATELIER_CHECK(g.dtype() == DType::Float32 || g.dtype() == DType::Float64,
                  "clip_grad_norm_: a gradient of dtype " << dtype_name(g.dtype()) << " (shape " << g.shape()
                                                          << "); only float32 and float64 are clipped");
    ATELIER_CHECK(grads.empty() || g.device() == grads[0].device(),
                  "clip_grad_norm_: gradients on " << grads[0].device() << " and " << g.device() << " (shape "
                                                   << g.shape() << "); clip each device's apart");
    grads.push_back(g);
  }
  if (grads.empty()) return zeros({});
  // The sum of squares of every gradient, in float64 (a float32 sum of a large model's squares loses digits).
  Tensor total;
  for (const Tensor& g : grads) {
    const Tensor squares = raw::reduce(ReduceOp::Sum, raw::binary(BinaryOp::Mul, g, g), {}, false);
    const Tensor part = raw::cast(squares, DType::Float64);
    total = total.defined() ? raw::binary(BinaryOp::Add, total, part) : part;
  }
  const Tensor norm = raw::unary(UnaryOp::Sqrt, total);
  // min(1, max_norm / (norm + 1e-6)): a 0-d tensor, so nothing is read back.
  const Tensor scale =
      raw::binary(BinaryOp::Minimum, raw::binary(BinaryOp::Div, max_norm, raw::binary(BinaryOp::Add, norm, 1e-6)), 1.0);
  const Tensor scale_float32 = raw::cast(scale, DType::Float32);  // once, not per float32 gradient
  for (Tensor g : grads) g.mul_(g.dtype() == DType::Float64 ? scale : scale_float32);
  return raw::cast(norm, grads[0].dtype());
}

}  // namespace atelier::nn
