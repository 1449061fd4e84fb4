// Normalisation by groups (batch norm's channels, layer norm's rows, group norm's groups of channels): shape checks,
// then the normalize primitives.
#include "backends/norm_math.h"
#include "tensor/creation.h"
#include "tensor/raw/common.h"

namespace atelier::raw {

using namespace detail;

namespace {

// Throws unless t is undefined or a contiguous-able vector of `size` elements of x's dtype and device.
void check_affine(const Tensor& t, int64_t size, const Tensor& x, const char* what) {
  if (!t.defined()) return;
  ATELIER_CHECK(t.dim() == 1 && t.size(0) == size,
                "normalize: " << what << " must have " << size << " elements, got " << t.shape());
  check_same_dtype(x, t, "normalize");
  check_same_device(x, t, "normalize");
}

}  // namespace

NormResult normalize(const Tensor& x, int64_t outer, int64_t groups, int64_t inner, NormAffine affine,
                     const Tensor& weight, const Tensor& bias, double eps, NormChannels channels) {
  check_floating(x, "normalize");
  ATELIER_CHECK(outer >= 1 && groups >= 0 && inner >= 1 && outer * groups * inner == x.numel(),
                "normalize: input " << x.shape() << " is not (" << outer << ", " << groups << ", " << inner << ")");
  ATELIER_CHECK(eps > 0, "normalize: eps must be positive, got " << eps);
  check_norm_channels("normalize", affine, groups, inner, channels);
  const int64_t affine_size = norm_affine_size(affine, groups, inner, channels);
  check_affine(weight, affine_size, x, "weight");
  check_affine(bias, affine_size, x, "bias");
  const Tensor xc = contiguous(x), wc = weight.defined() ? contiguous(weight) : Tensor();
  const Tensor bc = bias.defined() ? contiguous(bias) : Tensor();
  NormResult r{raw::empty(x.shape(), x.dtype(), x.device()), raw::empty({groups}, x.dtype(), x.device()),
               raw::empty({groups}, x.dtype(), x.device()), raw::empty({groups}, x.dtype(), x.device())};
  const NormArgs a{x.dtype(),
                   outer,
                   groups,
                   inner,
                   affine,
                   eps,
                   xc.raw_data(),
                   wc.defined() ? wc.raw_data() : nullptr,
                   bc.defined() ? bc.raw_data() : nullptr,
                   r.y.raw_data(),
                   r.mean.raw_data(),
                   r.var.raw_data(),
                   r.rstd.raw_data(),
                   channels};
  launch<PrimitiveOp::normalize>(x.device(), "normalize", x.numel(), a);
  return r;
}

NormGrads normalize_backward(const Tensor& grad_y, const Tensor& x, const NormResult& forward, NormAffine affine,
                             const Tensor& weight, int64_t outer, bool need_x, bool need_weight, bool need_bias,
                             NormChannels channels) {
  const char* op = "normalize_backward";
  ATELIER_CHECK(grad_y.shape() == x.shape(),
                op << ": gradient " << grad_y.shape() << " is not the input's shape " << x.shape());
  check_same_dtype(grad_y, x, op);
  check_same_device(grad_y, x, op);
  const int64_t groups = forward.mean.numel();
  const int64_t inner = groups == 0 ? 1 : x.numel() / (outer * groups);
  check_norm_channels(op, affine, groups, inner, channels);
  const int64_t affine_size = norm_affine_size(affine, groups, inner, channels);
  const Tensor gc = contiguous(grad_y), xc = contiguous(x), wc = weight.defined() ? contiguous(weight) : Tensor();
  NormGrads out;
  if (need_x) out.x = raw::empty(x.shape(), x.dtype(), x.device());
  if (need_weight) out.weight = raw::empty({affine_size}, x.dtype(), x.device());
  if (need_bias) out.bias = raw::empty({affine_size}, x.dtype(), x.device());
  const NormBackwardArgs a{x.dtype(),
                           outer,
                           groups,
                           inner,
                           affine,
                           gc.raw_data(),
                           xc.raw_data(),
                           forward.mean.raw_data(),
                           forward.rstd.raw_data(),
                           wc.defined() ? wc.raw_data() : nullptr,
                           need_x ? out.x.raw_data() : nullptr,
                           need_weight ? out.weight.raw_data() : nullptr,
                           need_bias ? out.bias.raw_data() : nullptr,
                           channels};
  launch<PrimitiveOp::normalize_backward>(x.device(), op, x.numel(), a);
  return out;
}

}  // namespace atelier::raw
