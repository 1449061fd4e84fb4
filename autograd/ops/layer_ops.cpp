// The ops behind nn's dropout, normalisation and pooling layers. Dropout and the normalisations are composites of
// the differentiable ops (a mask and a mul; means, a centring and a scaling), so their gradients are those ops' and
// they run wherever those run. Pooling is one node over the pool2d primitive (it was a stack of strided slices
// reduced by amax or mean, 3.7-5x slower than PyTorch's kernel: docs/benchmarks.md, "Pooling as one kernel").
#include <cmath>
#include <string>

#include "autograd/functions.h"
#include "autograd/record.h"
#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/raw_ops.h"

namespace atelier {

Tensor dropout(const Tensor& x, double p, bool training) {
  ATELIER_CHECK(p >= 0 && p <= 1, "dropout: p must be in [0, 1], got " << p);
  ATELIER_CHECK(is_floating(x.dtype()), "dropout: input must be float32 or float64, got " << x.dtype());
  if (!training || p == 0) return x;
  // keep = u < 1 - p for u ~ U[0, 1), so an element survives with probability 1 - p (never when p = 1); the mask
  // holds 1 / (1 - p) where kept and 0 elsewhere, so the expected output is x.
  const Tensor keep = raw::compare(CompareOp::Lt, rand(x.shape(), x.dtype(), x.device()), 1.0 - p);
  const Tensor mask = raw::binary(BinaryOp::Mul, raw::cast(keep, x.dtype()), p < 1 ? 1.0 / (1.0 - p) : 0.0);
  return mul(x, mask);
}

namespace {

// (1, C, 1, ...) for an input (N, C, ...): a per-channel vector's shape for broadcasting against the input.
Shape channel_shape(const Tensor& x) {
  Shape s(x.dim(), 1);
  s[1] = x.size(1);
  return s;
}

// (x - mean) * rstd * weight + bias, weight and bias (viewed as `affine_shape`) optional.
Tensor scale_and_shift(Tensor y, const Tensor& weight, const Tensor& bias, const Shape& affine_shape) {
  if (weight.defined()) y = mul(y, weight.reshape(affine_shape));
  if (bias.defined()) y = add(y, bias.reshape(affine_shape));
  return y;
}

// Throws unless t is undefined or a vector of the given shape (named `what` in the message, for `op`'s input x).
void check_optional(const Tensor& t, const Shape& shape, const char* what, const char* op, const Tensor& x) {
  ATELIER_CHECK(!t.defined() || t.shape() == shape,
                op << ": " << what << " must be " << shape << " for input " << x.shape() << ", got " << t.shape());
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  ATELIER_CHECK(x.dim() >= 2, "batch_norm: input must be (N, C, ...), got " << x.shape());
  ATELIER_CHECK(running_mean.defined() == running_var.defined(),
                "batch_norm: running_mean and running_var must be given together or not at all");
  ATELIER_CHECK(eps > 0, "batch_norm: eps must be positive, got " << eps);
  ATELIER_CHECK(momentum >= 0 && momentum <= 1, "batch_norm: momentum must be in [0, 1], got " << momentum);
  const Shape channels{x.size(1)};
  check_optional(running_mean, channels, "running_mean", "batch_norm", x);
  check_optional(running_var, channels, "running_var", "batch_norm", x);
  check_optional(weight, channels, "weight", "batch_norm", x);
  check_optional(bias, channels, "bias", "batch_norm", x);
  const Shape per_channel = channel_shape(x);
  if (!training && running_mean.defined()) {
    const Tensor rstd = rdiv(1.0, sqrt(add(running_var.reshape(per_channel), eps)));
    return scale_and_shift(mul(sub(x, running_mean.reshape(per_channel)), rstd), weight, bias, per_channel);
  }
  std::vector<int64_t> dims{0};  // every dim but the channels
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  const int64_t count = x.numel() / std::max<int64_t>(x.size(1), 1);
  ATELIER_CHECK(count > 1,
                "batch_norm: the batch's statistics need more than one value per channel, got input " << x.shape());
  const Tensor mu = mean(x, dims, /*keepdim=*/true);
  const Tensor centred = sub(x, mu);
  const Tensor var = mean(mul(centred, centred), dims, /*keepdim=*/true);
  if (running_mean.defined()) {
    NoGradGuard no_grad;
    Tensor r_mean = running_mean, r_var = running_var;  // handles on the caller's tensors, written in place
    r_mean.mul_(1 - momentum).add_(mu.reshape(channels), momentum);
    r_var.mul_(1 - momentum).add_(var.reshape(channels), momentum * count / (count - 1.0));
  }
  const Tensor rstd = rdiv(1.0, sqrt(add(var, eps)));
  return scale_and_shift(mul(centred, rstd), weight, bias, per_channel);
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  bool matches = k >= 1 && k <= x.dim();
  for (int64_t i = 0; matches && i < k; ++i) matches = x.size(x.dim() - k + i) == normalized_shape[i];
  ATELIER_CHECK(matches, "layer_norm: normalized_shape " << normalized_shape << " must be the last dims of the input "
                                                         << x.shape());
  ATELIER_CHECK(eps > 0, "layer_norm: eps must be positive, got " << eps);
  check_optional(weight, normalized_shape, "weight", "layer_norm", x);
  check_optional(bias, normalized_shape, "bias", "layer_norm", x);
  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - k; d < x.dim(); ++d) dims.push_back(d);
  const Tensor centred = sub(x, mean(x, dims, /*keepdim=*/true));
  const Tensor rstd = rdiv(1.0, sqrt(add(mean(mul(centred, centred), dims, /*keepdim=*/true), eps)));
  return scale_and_shift(mul(centred, rstd), weight, bias, normalized_shape);  // broadcast over the leading dims
}

namespace {

// One pooling node: the pool2d primitive forward, pool2d_backward (a gather over the windows, with the forward's
// indices for the maximum) backward.
Tensor pool(const Tensor& x, PoolMode mode, HW kernel, std::optional<HW> stride_or_kernel, HW padding) {
  const HW stride = stride_or_kernel.value_or(kernel);
  raw::Pool2dResult r = raw::pool2d(x, mode, kernel, stride, padding);
  if (!should_record({x})) return r.output;
  const char* name = mode == PoolMode::Max ? "max_pool2d" : "avg_pool2d";
  return record(name, r.output, {x},
                [indices = r.indices, shape = x.shape(), mode, kernel, stride, padding](const auto& g, const auto&) {
                  return std::vector<Tensor>{raw::pool2d_backward(g[0], indices, mode, shape, kernel, stride, padding)};
                });
}

}  // namespace

Tensor max_pool2d(const Tensor& x, HW kernel, std::optional<HW> stride, HW padding) {
  return pool(x, PoolMode::Max, kernel, stride, padding);
}

Tensor avg_pool2d(const Tensor& x, HW kernel, std::optional<HW> stride, HW padding) {
  return pool(x, PoolMode::Average, kernel, stride, padding);
}

}  // namespace atelier
