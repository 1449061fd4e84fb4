// Convolution and image ops: conv2d and upsample_nearest2d (backend primitives). Forward and backward side by
// side; each backward computes only the gradients its inputs need, so a frozen weight costs no weight-gradient
// GEMM and an input image no input gradient.
#include "autograd/functions.h"
#include "autograd/record.h"
#include "tensor/raw_ops.h"

namespace atelier {

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding) {
  Tensor out = raw::conv2d(x, weight, bias, stride, padding);  // (N, C_out, H_out, W_out)
  if (!should_record({x, weight, bias})) return out;
  // dx needs the weight, dW needs the input, db needs neither: save only what a needed gradient reads.
  SavedTensor sx = weight.requires_grad() ? SavedTensor(x) : SavedTensor();
  SavedTensor sw = x.requires_grad() ? SavedTensor(weight) : SavedTensor();
  return record("conv2d", out, {x, weight, bias},
                [sx, sw, xs = x.shape(), ws = weight.shape(), stride, padding](const auto& g, const auto& needs) {
                  Tensor gx, gw, gb;
                  if (needs[0]) gx = raw::conv2d_backward_input(g[0], sw.unpack(), xs, stride, padding);
                  if (needs[1]) {
                    // One pass over grad_out gives the bias gradient too.
                    raw::Conv2dWeightGrads grads =
                        raw::conv2d_backward_weight(sx.unpack(), g[0], ws, needs[2], stride, padding);
                    gw = grads.weight;
                    gb = grads.bias;
                  } else if (needs[2]) {
                    gb = raw::reduce(ReduceOp::Sum, g[0], {0, 2, 3}, /*keepdim=*/false);  // (C_out)
                  }
                  return std::vector<Tensor>{gx, gw, gb};
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
