// Convolution and image ops: conv2d, conv2d_elu (the convolution with ELU fused into its output pass),
// upsample_conv2d_elu (the same with a nearest 2x upsampling of the input folded into the convolution's gather) and
// upsample_nearest2d (backend primitives). Forward and backward side by side; each backward computes only the
// gradients its inputs need, so a frozen weight costs no weight-gradient GEMM and an input image no input gradient.
#include "autograd/functions.h"
#include "autograd/record.h"
#include "tensor/raw_ops.h"

namespace atelier {

namespace {

// The gradients of a convolution's (x, weight, bias) from the gradient g of its pre-activation output, each only
// if needed. sx and sw are the saved input and weight (empty where no needed gradient reads them); upsample is the
// convolution's input upsampling (1, or 2 for upsample_conv2d_elu: x and xs are then the small image).
std::vector<Tensor> conv2d_grads(const Tensor& g, const SavedTensor& sx, const SavedTensor& sw, const Shape& xs,
                                 const Shape& ws, HW stride, HW padding, const std::vector<bool>& needs,
                                 int64_t upsample = 1) {
  Tensor gx, gw, gb;
  if (needs[0]) gx = raw::conv2d_backward_input(g, sw.unpack(), xs, stride, padding, upsample);
  if (needs[1]) {
    // One pass over grad_out gives the bias gradient too.
    raw::Conv2dWeightGrads grads = raw::conv2d_backward_weight(sx.unpack(), g, ws, needs[2], stride, padding, upsample);
    gw = grads.weight;
    gb = grads.bias;
  } else if (needs[2]) {
    gb = raw::reduce(ReduceOp::Sum, g, {0, 2, 3}, /*keepdim=*/false);  // (C_out)
  }
  return {gx, gw, gb};
}

// dx needs the weight, dW needs the input, db needs neither: save only what a needed gradient reads.
SavedTensor saved_input(const Tensor& x, const Tensor& weight) {
  return weight.requires_grad() ? SavedTensor(x) : SavedTensor();
}
SavedTensor saved_weight(const Tensor& x, const Tensor& weight) {
  return x.requires_grad() ? SavedTensor(weight) : SavedTensor();
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, HW stride, HW padding) {
  Tensor out = raw::conv2d(x, weight, bias, stride, padding);  // (N, C_out, H_out, W_out)
  if (!should_record({x, weight, bias})) return out;
  return record(
      "conv2d", out, {x, weight, bias},
      [sx = saved_input(x, weight), sw = saved_weight(x, weight), xs = x.shape(), ws = weight.shape(), stride, padding](
          const auto& g, const auto& needs) { return conv2d_grads(g[0], sx, sw, xs, ws, stride, padding, needs); });
}

Tensor conv2d_elu(const Tensor& x, const Tensor& weight, const Tensor& bias, HW stride, HW padding, double alpha) {
  // y = ELU(conv + bias) in one pass; the backward turns dy into d(conv + bias) from y alone (activation_backward),
  // so the pre-activation is never stored: the memory of conv2d followed by elu, less one temporary.
  Tensor out = raw::conv2d(x, weight, bias, stride, padding, ConvActivation::Elu, alpha);
  if (!should_record({x, weight, bias})) return out;
  return record("conv2d_elu", out, {x, weight, bias},
                [sy = SavedTensor(out), sx = saved_input(x, weight), sw = saved_weight(x, weight), xs = x.shape(),
                 ws = weight.shape(), stride, padding, alpha](const auto& g, const auto& needs) {
                  const Tensor pre = raw::activation_backward(UnaryOp::Elu, g[0], sy.unpack(), alpha);
                  return conv2d_grads(pre, sx, sw, xs, ws, stride, padding, needs);
                });
}

Tensor upsample_conv2d_elu(const Tensor& x, const Tensor& weight, const Tensor& bias, HW stride, HW padding,
                           double alpha) {
  // conv2d_elu of x upsampled by 2, the upsampling done by the convolution's gather: x (N, C, H, W) is saved and
  // read instead of a (N, C, 2H, 2W) copy, and the input gradient comes back (N, C, H, W) directly.
  constexpr int64_t kUpsample = 2;
  Tensor out = raw::conv2d(x, weight, bias, stride, padding, ConvActivation::Elu, alpha, kUpsample);
  if (!should_record({x, weight, bias})) return out;
  return record("upsample_conv2d_elu", out, {x, weight, bias},
                [sy = SavedTensor(out), sx = saved_input(x, weight), sw = saved_weight(x, weight), xs = x.shape(),
                 ws = weight.shape(), stride, padding, alpha](const auto& g, const auto& needs) {
                  const Tensor pre = raw::activation_backward(UnaryOp::Elu, g[0], sy.unpack(), alpha);
                  return conv2d_grads(pre, sx, sw, xs, ws, stride, padding, needs, kUpsample);
                });
}

Tensor upsample_nearest2d(const Tensor& x, int64_t scale) {
  Tensor out = raw::upsample_nearest2d(x, scale);  // (N, C, H * scale, W * scale)
  if (!should_record({x})) return out;
  return record("upsample_nearest2d", out, {x}, [scale](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::upsample_nearest2d_backward(g[0], scale)};
  });
}

}  // namespace atelier
