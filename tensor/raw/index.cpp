// Indexing along one dim: gather and its adjoint scatter_add.
#include <algorithm>
#include <cstring>

#include "tensor/creation.h"
#include "tensor/raw/common.h"

namespace atelier::raw {

using namespace detail;

namespace {

void check_index_shape(const Shape& t_shape, const Tensor& index, int d, const char* op) {
  ATELIER_CHECK(index.dtype() == DType::Int64, op << ": index must be int64, got " << index.dtype());
  ATELIER_CHECK(index.dim() == static_cast<int64_t>(t_shape.size()), op << ": index of shape " << index.shape()
                                                                        << " and tensor of shape " << t_shape
                                                                        << " must have the same number of dimensions");
  for (size_t i = 0; i < t_shape.size(); ++i) {
    ATELIER_CHECK(static_cast<int>(i) == d || index.shape()[i] == t_shape[i],
                  op << ": index of shape " << index.shape() << " must match tensor of shape " << t_shape
                     << " in every dimension except " << d);
  }
}

}  // namespace

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  int d = normalize_dim(dim, t.dim(), "gather");
  check_index_shape(t.shape(), index, d, "gather");
  check_same_device(t, index, "gather");
  Tensor src = contiguous(t), idx = contiguous(index);
  Tensor out = raw::empty(index.shape(), t.dtype(), t.device());
  int64_t outer, inner;
  split_around(t.shape(), d, outer, inner);
  launch<PrimitiveOp::gather>(t.device(), "gather", out.numel(),
                              GatherArgs{t.dtype(), outer, t.shape()[d], index.shape()[d], inner, src.raw_data(),
                                         static_cast<const int64_t*>(idx.raw_data()), out.raw_data()});
  return out;
}

Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  int d = normalize_dim(dim, static_cast<int64_t>(shape.size()), "scatter_add");
  check_index_shape(shape, index, d, "scatter_add");
  ATELIER_CHECK(src.shape() == index.shape(),
                "scatter_add: source of shape " << src.shape() << " must match index of shape " << index.shape());
  check_same_device(src, index, "scatter_add");
  Tensor out = raw::empty(shape, src.dtype(), src.device());
  fill_(out, 0.0);
  Tensor s = contiguous(src), idx = contiguous(index);
  int64_t outer, inner;
  split_around(shape, d, outer, inner);
  launch<PrimitiveOp::scatter_add>(src.device(), "scatter_add", src.numel(),
                                   ScatterAddArgs{src.dtype(), outer, shape[d], index.shape()[d], inner, s.raw_data(),
                                                  static_cast<const int64_t*>(idx.raw_data()), out.raw_data()});
  return out;
}

}  // namespace atelier::raw
