// The ops behind nn's dropout, normalisation and pooling layers. Dropout is a composite (a mask and a mul), and so
// is batch_norm in eval mode (the running statistics' scale and shift). Training-mode batch_norm and layer_norm are
// one node over the normalize primitives (group_norm too), pooling one over pool2d: each began as a composite of the
// differentiable ops and was measured at 0.17-0.45x PyTorch's fused kernels (docs/benchmarks.md, "The layers' ops
// against PyTorch").
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

SavedTensor saved_if(const Tensor& t) { return t.defined() ? SavedTensor(t) : SavedTensor(); }

// One normalisation node over x viewed as (outer, groups, inner): the normalize primitive forward (its mean and
// rstd kept for the backward), normalize_backward backward, each gradient only where needed. The running
// statistics, when given, move under no-grad from the primitive's mean and biased variance.
Tensor normalize_node(const char* name, const Tensor& x, int64_t outer, int64_t groups, int64_t inner,
                      NormAffine affine, const Tensor& weight, const Tensor& bias, double eps,
                      const Tensor& running_mean = Tensor(), const Tensor& running_var = Tensor(), double momentum = 0,
                      NormChannels channels = {}) {
  raw::NormResult r = raw::normalize(x, outer, groups, inner, affine, weight, bias, eps, channels);
  if (running_mean.defined()) {
    NoGradGuard no_grad;
    const double count = static_cast<double>(outer * inner);
    Tensor r_mean = running_mean, r_var = running_var;  // handles on the caller's tensors, written in place
    r_mean.mul_(1 - momentum).add_(r.mean, momentum);
    r_var.mul_(1 - momentum).add_(r.var, momentum * count / (count - 1));
  }
  if (!should_record({x, weight, bias})) return r.y;
  const raw::NormResult stats{Tensor(), r.mean, Tensor(), r.rstd};  // what the backward reads
  return record(
      name, r.y, {x, weight, bias},
      [sx = SavedTensor(x), sw = saved_if(weight), stats, affine, outer, channels](const auto& g, const auto& needs) {
        const raw::NormGrads d =
            raw::normalize_backward(g[0], sx.unpack(), stats, affine, sw.defined() ? sw.unpack() : Tensor(), outer,
                                    needs[0], needs[1], needs[2], channels);
        return std::vector<Tensor>{d.x, d.weight, d.bias};
      });
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
  const int64_t n = x.size(0), c = x.size(1), inner = c == 0 || n == 0 ? 1 : x.numel() / (n * c);
  ATELIER_CHECK(n * inner > 1,
                "batch_norm: the batch's statistics need more than one value per channel, got input " << x.shape());
  return normalize_node("batch_norm", x, n, c, inner, NormAffine::PerGroup, weight, bias, eps, running_mean,
                        running_var, momentum);
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
  const int64_t inner = shape_numel(normalized_shape);
  ATELIER_CHECK(inner > 0, "layer_norm: normalized_shape " << normalized_shape << " has no elements");
  const int64_t rows = x.numel() / inner;
  const Tensor w = weight.defined() ? weight.reshape({inner}) : Tensor();
  const Tensor b = bias.defined() ? bias.reshape({inner}) : Tensor();
  return normalize_node("layer_norm", x, 1, rows, inner, NormAffine::PerInner, w, b, eps);
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias, double eps) {
  ATELIER_CHECK(x.dim() >= 2, "group_norm: input must be (N, C, ...), got " << x.shape());
  const int64_t n = x.size(0), c = x.size(1);
  ATELIER_CHECK(num_groups > 0 && c % num_groups == 0, "group_norm: num_groups "
                                                           << num_groups << " must divide the input's " << c
                                                           << " channels (input " << x.shape() << ")");
  ATELIER_CHECK(eps > 0, "group_norm: eps must be positive, got " << eps);
  check_optional(weight, {c}, "weight", "group_norm", x);
  check_optional(bias, {c}, "bias", "group_norm", x);
  if (x.numel() == 0) return scale_and_shift(x, weight, bias, channel_shape(x));
  // Each (sample, group) is one contiguous run of C / G channels: a group of normalize's (1, N G, run) view, the
  // weight and bias per channel (PerChannel) of x.numel() / (N C) elements.
  const int64_t run = x.numel() / (n * num_groups), channel_size = x.numel() / (n * c);
  return normalize_node("group_norm", x, 1, n * num_groups, run, NormAffine::PerChannel, weight, bias, eps, Tensor(),
                        Tensor(), 0, NormChannels{c, channel_size});
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
