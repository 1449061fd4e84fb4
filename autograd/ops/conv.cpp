// Convolution and image ops: conv2d and upsample_nearest2d (backend primitives), cat, split and chunk (views and
// copies). Forward and backward side by side; each backward computes only the gradients its inputs need, so a
// frozen weight costs no weight-gradient GEMM and an input image no input gradient.
#include <algorithm>

#include "autograd/functions.h"
#include "autograd/record.h"
#include "backends/error.h"
#include "tensor/grad_mode.h"
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

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  Tensor out = raw::cat(tensors, dim);
  bool any = false;
  for (const Tensor& t : tensors) any = any || t.requires_grad();
  if (!any || !grad_mode_enabled()) return out;
  // The gradient of each input is its slice of the output's gradient (a view; the engine copies if needed).
  const int d = normalize_dim(dim, tensors[0].dim(), "cat");
  std::vector<int64_t> sizes;
  for (const Tensor& t : tensors) sizes.push_back(t.shape()[d]);
  return record("cat", out, tensors, [d, sizes](const auto& g, const auto& needs) {
    std::vector<Tensor> grads(sizes.size());
    int64_t offset = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (needs[i]) grads[i] = raw::slice(g[0], d, offset, offset + sizes[i], 1);
      offset += sizes[i];
    }
    return grads;
  });
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  ATELIER_CHECK(split_size >= 1,
                "split: split_size must be positive, got " << split_size << " (tensor of shape " << x.shape() << ")");
  const int d = normalize_dim(dim, x.dim(), "split");
  const int64_t size = x.shape()[d];
  // Views made by slice, so each piece's backward writes its part of x's gradient.
  std::vector<Tensor> pieces;
  for (int64_t start = 0; start < size || (size == 0 && pieces.empty()); start += split_size) {
    pieces.push_back(slice(x, d, start, std::min(size, start + split_size), 1));
  }
  return pieces;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  ATELIER_CHECK(chunks >= 1,
                "chunk: chunks must be positive, got " << chunks << " (tensor of shape " << x.shape() << ")");
  const int d = normalize_dim(dim, x.dim(), "chunk");
  // As PyTorch: pieces of ceil(size / chunks), so there may be fewer than `chunks` of them.
  const int64_t size = x.shape()[d];
  return split(x, std::max<int64_t>(1, (size + chunks - 1) / chunks), d);
}

}  // namespace atelier
