// Reductions over any set of dims (sum, mean, max), argmax, sum_to (the inverse of broadcasting), and log_softmax
// with its gradient.
#include <algorithm>
#include <cstring>

#include "tensor/creation.h"
#include "tensor/raw/common.h"

namespace atelier::raw {

using namespace detail;

Tensor reduce(ReduceOp op, const Tensor& t, const std::vector<int64_t>& dims, bool keepdim) {
  const char* name = reduce_name(op);
  std::vector<int> rdims = normalize_dims(dims, t.dim(), name);
  Shape kept_sizes, kept_strides, red_sizes, red_strides, out_shape;
  for (int d = 0; d < t.dim(); ++d) {
    bool reduced = std::find(rdims.begin(), rdims.end(), d) != rdims.end();
    if (reduced) {
      red_sizes.push_back(t.shape()[d]);
      red_strides.push_back(t.strides()[d]);
      if (keepdim) out_shape.push_back(1);
    } else {
      kept_sizes.push_back(t.shape()[d]);
      kept_strides.push_back(t.strides()[d]);
      out_shape.push_back(t.shape()[d]);
    }
  }
  int64_t reduced_count = shape_numel(red_sizes);
  ATELIER_CHECK(reduced_count > 0 || op == ReduceOp::Sum,
                name << ": cannot reduce over an empty range (tensor of shape " << t.shape() << ")");
  Tensor out = raw::empty(out_shape, t.dtype(), t.device());
  launch<PrimitiveOp::reduce>(t.device(), name, out.numel(),
                              ReduceArgs{op, t.dtype(), make_layout(kept_sizes, kept_strides),
                                         make_layout(red_sizes, red_strides), t.raw_data(), out.raw_data()});
  return out;
}

Tensor argmax(const Tensor& t, int64_t dim, bool keepdim) {
  int d = normalize_dim(dim, t.dim(), "argmax");
  ATELIER_CHECK(t.shape()[d] > 0, "argmax: dimension " << d << " of shape " << t.shape() << " is empty");
  Shape kept_sizes, kept_strides, out_shape;
  for (int i = 0; i < t.dim(); ++i) {
    if (i == d) {
      if (keepdim) out_shape.push_back(1);
      continue;
    }
    kept_sizes.push_back(t.shape()[i]);
    kept_strides.push_back(t.strides()[i]);
    out_shape.push_back(t.shape()[i]);
  }
  Tensor out = raw::empty(out_shape, DType::Int64, t.device());
  launch<PrimitiveOp::argmax>(t.device(), "argmax", out.numel(),
                              ArgmaxArgs{t.dtype(), make_layout(kept_sizes, kept_strides), t.shape()[d], t.strides()[d],
                                         t.raw_data(), static_cast<int64_t*>(out.raw_data())});
  return out;
}

namespace {

// log_softmax or (softmax) its exp: the log_softmax primitive either way.
Tensor log_softmax_or_softmax(const Tensor& t, int64_t dim, bool softmax) {
  const char* name = softmax ? "softmax" : "log_softmax";
  const int d = normalize_dim(dim, t.dim(), name);
  check_floating(t, name);  // an empty tensor gives an empty result (no kernel runs)
  const Tensor src = contiguous(t);
  Tensor out = raw::empty(t.shape(), t.dtype(), t.device());
  int64_t outer, inner;
  split_around(t.shape(), d, outer, inner);
  launch<PrimitiveOp::log_softmax>(
      t.device(), name, out.numel(),
      LogSoftmaxArgs{t.dtype(), outer, t.shape()[d], inner, src.raw_data(), out.raw_data(), softmax});
  return out;
}

Tensor log_softmax_or_softmax_backward(const Tensor& grad, const Tensor& out, int64_t dim, bool softmax) {
  const char* name = softmax ? "softmax_backward" : "log_softmax_backward";
  check_same_device(grad, out, name);
  check_same_dtype(grad, out, name);
  check_floating(grad, name);
  ATELIER_CHECK(grad.shape() == out.shape(), name << ": gradient " << grad.shape() << " and "
                                                  << (softmax ? "softmax" : "log_softmax") << " output " << out.shape()
                                                  << " differ in shape");
  const int d = normalize_dim(dim, out.dim(), name);
  const Tensor g = contiguous(grad), y = contiguous(out);
  Tensor dst = raw::empty(out.shape(), out.dtype(), out.device());
  int64_t outer, inner;
  split_around(out.shape(), d, outer, inner);
  launch<PrimitiveOp::log_softmax_backward>(
      out.device(), name, dst.numel(),
      LogSoftmaxBackwardArgs{out.dtype(), outer, out.shape()[d], inner, g.raw_data(), y.raw_data(), dst.raw_data(),
                             softmax});
  return dst;
}

}  // namespace

Tensor log_softmax(const Tensor& t, int64_t dim) { return log_softmax_or_softmax(t, dim, false); }

Tensor log_softmax_backward(const Tensor& grad, const Tensor& out, int64_t dim) {
  return log_softmax_or_softmax_backward(grad, out, dim, false);
}

Tensor softmax(const Tensor& t, int64_t dim) { return log_softmax_or_softmax(t, dim, true); }

Tensor softmax_backward(const Tensor& grad, const Tensor& out, int64_t dim) {
  return log_softmax_or_softmax_backward(grad, out, dim, true);
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  ATELIER_CHECK(broadcast_shapes(shape, t.shape(), "sum_to") == t.shape(),
                "sum_to: shape " << shape << " does not broadcast to " << t.shape());
  // Sum the leading dims that broadcasting added, and the dims where `shape` has 1, keeping them.
  size_t lead = t.shape().size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < t.shape().size(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && t.shape()[i] != 1)) dims.push_back(static_cast<int64_t>(i));
  }
  if (dims.empty()) return reshape(t, shape);
  Tensor summed = reduce(ReduceOp::Sum, t, dims, /*keepdim=*/true);
  return reshape(summed, shape);
}

}  // namespace atelier::raw
