// Differentiable reductions. Their backward broadcasts the output gradient back over the reduced dims.
#include <algorithm>

#include "autograd/functions.h"
#include "autograd/record.h"
#include "tensor/creation.h"
#include "tensor/raw_ops.h"

namespace atelier {

namespace {

// The output gradient reshaped with the reduced dims kept as size 1, then expanded to the input shape.
Tensor expand_back(const Tensor& grad, const Shape& input_shape, const std::vector<int>& rdims) {
  Shape kept = input_shape;
  for (int d : rdims) kept[d] = 1;
  return raw::expand(raw::reshape(grad, kept), input_shape);
}

int64_t reduced_count(const Shape& shape, const std::vector<int>& rdims) {
  int64_t n = 1;
  for (int d : rdims) n *= shape[d];
  return n;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = raw::reduce(ReduceOp::Sum, x, dims, keepdim);
  if (!should_record({x})) return out;
  std::vector<int> rdims = normalize_dims(dims, x.dim(), "sum");
  return record("sum", out, {x}, [xs = x.shape(), rdims](const auto& g, const auto&) {
    return std::vector<Tensor>{expand_back(g[0], xs, rdims)};
  });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = raw::reduce(ReduceOp::Mean, x, dims, keepdim);
  if (!should_record({x})) return out;
  std::vector<int> rdims = normalize_dims(dims, x.dim(), "mean");
  double scale = 1.0 / static_cast<double>(reduced_count(x.shape(), rdims));
  return record("mean", out, {x}, [xs = x.shape(), rdims, scale](const auto& g, const auto&) {
    return std::vector<Tensor>{expand_back(raw::binary(BinaryOp::Mul, g[0], scale), xs, rdims)};
  });
}

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor out = raw::reduce(ReduceOp::Max, x, dims, keepdim);
  if (!should_record({x})) return out;
  std::vector<int> rdims = normalize_dims(dims, x.dim(), "amax");
  // The gradient goes to the elements equal to the maximum, split evenly between ties.
  return record("amax", out, {x}, [sx = SavedTensor(x), so = SavedTensor(out), rdims](const auto& g, const auto&) {
    Tensor x_ = sx.unpack();
    Tensor m = expand_back(so.unpack(), x_.shape(), rdims);
    Tensor mask = raw::cast(raw::compare(CompareOp::Eq, x_, m), x_.dtype());
    std::vector<int64_t> dims64(rdims.begin(), rdims.end());
    Tensor count = raw::reduce(ReduceOp::Sum, mask, dims64, /*keepdim=*/true);
    Tensor share = raw::binary(BinaryOp::Div, expand_back(g[0], x_.shape(), rdims), count);
    return std::vector<Tensor>{raw::binary(BinaryOp::Mul, share, mask)};
  });
}

}  // namespace atelier
