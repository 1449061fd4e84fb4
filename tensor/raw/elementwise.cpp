// Elementwise raw ops: unary maps, binary maps and comparisons with NumPy broadcasting, where.
#include <algorithm>
#include <cstring>

#include "tensor/creation.h"
#include "tensor/raw/common.h"

namespace atelier::raw {

using namespace detail;

Tensor unary(UnaryOp op, const Tensor& t, double p0, double p1) {
  const char* name = unary_name(op);
  check_floating(t, name);
  Tensor out = raw::empty(t.shape(), t.dtype(), t.device());
  Backend& b = backend_of(t);
  check_supported(b, PrimitiveOp::unary, t.dtype(), name);
  if (t.numel() > 0) b.unary(UnaryArgs{op, t.dtype(), layout_of(t), t.raw_data(), out.raw_data(), p0, p1});
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_same_device(a, b, name);
  check_same_dtype(a, b, name);
  check_floating(a, name);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = raw::empty(out_shape, a.dtype(), a.device());
  Backend& be = backend_of(a);
  check_supported(be, PrimitiveOp::binary, a.dtype(), name);
  if (out.numel() > 0) {
    be.binary(BinaryArgs{op, a.dtype(), broadcast_layout(a, out_shape), a.raw_data(), broadcast_layout(b, out_shape),
                         b.raw_data(), out.raw_data()});
  }
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, double b) { return binary(op, a, scalar_tensor(b, a.dtype(), a.device())); }

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_same_device(a, b, "compare");
  check_same_dtype(a, b, "compare");
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), "compare");
  Tensor out = raw::empty(out_shape, DType::Bool, a.device());
  Backend& be = backend_of(a);
  check_supported(be, PrimitiveOp::compare, a.dtype(), "compare");
  if (out.numel() > 0) {
    be.compare(CompareArgs{op, a.dtype(), broadcast_layout(a, out_shape), a.raw_data(), broadcast_layout(b, out_shape),
                           b.raw_data(), out.data_ptr<bool>()});
  }
  return out;
}

Tensor compare(CompareOp op, const Tensor& a, double b) {
  return compare(op, a, scalar_tensor(b, a.dtype(), a.device()));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  ATELIER_CHECK(cond.dtype() == DType::Bool,
                "where: condition must be bool, got " << cond.dtype() << " " << cond.shape());
  check_same_device(cond, a, "where");
  check_same_device(a, b, "where");
  check_same_dtype(a, b, "where");
  Shape out_shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = raw::empty(out_shape, a.dtype(), a.device());
  Backend& be = backend_of(a);
  check_supported(be, PrimitiveOp::where, a.dtype(), "where");
  if (out.numel() > 0) {
    be.where(WhereArgs{a.dtype(), broadcast_layout(cond, out_shape), static_cast<const bool*>(cond.raw_data()),
                       broadcast_layout(a, out_shape), a.raw_data(), broadcast_layout(b, out_shape), b.raw_data(),
                       out.raw_data()});
  }
  return out;
}

}  // namespace atelier::raw
