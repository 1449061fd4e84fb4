// Differentiable views and conversions. A view's backward maps the gradient back to the input's layout:
// reshape back, permute by the inverse, transpose again, scatter a slice into zeros, sum an expand.
#include <numeric>

#include "autograd/functions.h"
#include "autograd/record.h"
#include "tensor/creation.h"
#include "tensor/raw_ops.h"

namespace atelier {

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor out = raw::reshape(x, shape);
  if (!should_record({x})) return out;
  return record("reshape", out, {x},
                [xs = x.shape()](const auto& g, const auto&) { return std::vector<Tensor>{raw::reshape(g[0], xs)}; });
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  Tensor out = raw::permute(x, dims);
  if (!should_record({x})) return out;
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i)
    inverse[normalize_dim(dims[i], x.dim(), "permute")] = static_cast<int64_t>(i);
  return record("permute", out, {x},
                [inverse](const auto& g, const auto&) { return std::vector<Tensor>{raw::permute(g[0], inverse)}; });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  Tensor out = raw::transpose(x, dim0, dim1);
  if (!should_record({x})) return out;
  return record("transpose", out, {x}, [dim0, dim1](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::transpose(g[0], dim0, dim1)};
  });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  Tensor out = raw::slice(x, dim, start, end, step);
  if (!should_record({x})) return out;
  return record("slice", out, {x}, [xs = x.shape(), dt = x.dtype(), dim, start, end, step](const auto& g, const auto&) {
    Tensor grad = zeros(xs, dt, g[0].device());
    raw::copy_(raw::slice(grad, dim, start, end, step), g[0]);
    return std::vector<Tensor>{grad};
  });
}

Tensor expand(const Tensor& x, const Shape& shape) {
  Tensor out = raw::expand(x, shape);
  if (!should_record({x})) return out;
  return record("expand", out, {x},
                [xs = x.shape()](const auto& g, const auto&) { return std::vector<Tensor>{raw::sum_to(g[0], xs)}; });
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  Tensor out = raw::squeeze(x, dim);
  if (!should_record({x})) return out;
  return record("squeeze", out, {x},
                [xs = x.shape()](const auto& g, const auto&) { return std::vector<Tensor>{raw::reshape(g[0], xs)}; });
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  Tensor out = raw::unsqueeze(x, dim);
  if (!should_record({x})) return out;
  return record("unsqueeze", out, {x},
                [xs = x.shape()](const auto& g, const auto&) { return std::vector<Tensor>{raw::reshape(g[0], xs)}; });
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  return clone(x);
}

Tensor clone(const Tensor& x) {
  Tensor out = raw::clone(x);
  if (!should_record({x})) return out;
  return record("clone", out, {x}, [](const auto& g, const auto&) { return std::vector<Tensor>{g[0]}; });
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor out = raw::cast(x, dtype);
  if (!should_record({x}) || !is_floating(dtype)) return out;
  return record("to_dtype", out, {x},
                [from = x.dtype()](const auto& g, const auto&) { return std::vector<Tensor>{raw::cast(g[0], from)}; });
}

Tensor to_device(const Tensor& x, Device device) {
  if (x.device() == device) return x;
  Tensor out = raw::to_device(x, device);
  if (!should_record({x})) return out;
  // The gradient goes back the way the values came: a copy onto x's device.
  return record("to_device", out, {x}, [from = x.device()](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::to_device(g[0], from)};
  });
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = raw::gather(x, dim, index);
  if (!should_record({x})) return out;
  return record("gather", out, {x}, [xs = x.shape(), dim, si = SavedTensor(index)](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::scatter_add(xs, dim, si.unpack(), g[0])};
  });
}

}  // namespace atelier
