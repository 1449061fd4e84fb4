// Elementwise raw ops: unary maps, binary maps and comparisons with NumPy broadcasting, where, ELU's gradient.
#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "backends/strided.h"
#include "tensor/creation.h"
#include "tensor/raw/common.h"

namespace atelier::raw {

using namespace detail;

Tensor unary(UnaryOp op, const Tensor& t, double p0, double p1) {
  const char* name = unary_name(op);
  check_floating(t, name);
  Tensor out = raw::empty(t.shape(), t.dtype(), t.device());
  launch<PrimitiveOp::unary>(t.device(), name, out.numel(),
                             UnaryArgs{op, t.dtype(), layout_of(t), t.raw_data(), out.raw_data(), p0, p1});
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_same_device(a, b, name);
  check_same_dtype(a, b, name);
  check_floating(a, name);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = raw::empty(out_shape, a.dtype(), a.device());
  launch<PrimitiveOp::binary>(a.device(), name, out.numel(),
                              BinaryArgs{op, a.dtype(), broadcast_layout(a, out_shape), a.raw_data(),
                                         broadcast_layout(b, out_shape), b.raw_data(), out.raw_data()});
  return out;
}

namespace {

// t op s, or s op t when scalar_first: the scalar travels by value in the args (BinaryArgs::scalar), its operand's
// data null and strides 0: no tensor, no device memory per call.
Tensor binary_with_scalar(BinaryOp op, const Tensor& t, double s, bool scalar_first) {
  const char* name = binary_name(op);
  check_floating(t, name);
  Tensor out = raw::empty(t.shape(), t.dtype(), t.device());
  const Layout lt = layout_of(t);
  BinaryArgs args{op, t.dtype(), lt, t.raw_data(), scalar_layout(lt), nullptr, out.raw_data(), s};
  if (scalar_first) {
    std::swap(args.a, args.b);
    std::swap(args.a_data, args.b_data);
  }
  launch<PrimitiveOp::binary>(t.device(), name, out.numel(), args);
  return out;
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, double b) { return binary_with_scalar(op, a, b, false); }
Tensor binary(BinaryOp op, double a, const Tensor& b) { return binary_with_scalar(op, b, a, true); }

void binary_(BinaryOp op, const Tensor& dst, const Tensor& other) {
  const char* name = binary_name(op);
  check_same_device(dst, other, name);
  check_same_dtype(dst, other, name);
  check_floating(dst, name);
  ATELIER_CHECK(
      broadcast_shapes(dst.shape(), other.shape(), name) == dst.shape(),
      name << "_: operand of shape " << other.shape() << " does not broadcast to the destination " << dst.shape());
  check_no_internal_overlap(dst, (std::string(name) + "_").c_str());
  if (!dst.is_contiguous()) {
    copy_(dst, binary(op, dst, other));
    return;
  }
  // An operand that overlaps dst other than element for element (a shifted view of the same bytes) could be
  // read after a thread has overwritten it: read it from a copy.
  const bool same_view = other.offset() == dst.offset() && other.shape() == dst.shape() &&
                         (other.strides() == dst.strides() || other.is_contiguous());
  const Tensor rhs = may_share_memory(dst, other) && !same_view ? clone(other) : other;
  launch<PrimitiveOp::binary>(dst.device(), name, dst.numel(),
                              BinaryArgs{op, dst.dtype(), layout_of(dst), dst.raw_data(),
                                         broadcast_layout(rhs, dst.shape()), rhs.raw_data(), dst.raw_data()});
  dst.storage()->bump_version();
}

void binary_(BinaryOp op, const Tensor& dst, double other) {
  const char* name = binary_name(op);
  check_floating(dst, name);
  check_no_internal_overlap(dst, (std::string(name) + "_").c_str());
  if (!dst.is_contiguous()) {
    copy_(dst, binary(op, dst, other));
    return;
  }
  const Layout ld = layout_of(dst);
  launch<PrimitiveOp::binary>(
      dst.device(), name, dst.numel(),
      BinaryArgs{op, dst.dtype(), ld, dst.raw_data(), scalar_layout(ld), nullptr, dst.raw_data(), other});
  dst.storage()->bump_version();
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_same_device(a, b, "compare");
  check_same_dtype(a, b, "compare");
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), "compare");
  Tensor out = raw::empty(out_shape, DType::Bool, a.device());
  launch<PrimitiveOp::compare>(
      a.device(), "compare", out.numel(),
      CompareArgs{op, a.dtype(), broadcast_layout(a, out_shape), a.raw_data(), broadcast_layout(b, out_shape),
                  b.raw_data(), static_cast<bool*>(out.raw_data())});
  return out;
}

Tensor compare(CompareOp op, const Tensor& a, double b) {
  Tensor out = raw::empty(a.shape(), DType::Bool, a.device());
  const Layout la = layout_of(a);
  launch<PrimitiveOp::compare>(
      a.device(), "compare", out.numel(),
      CompareArgs{op, a.dtype(), la, a.raw_data(), scalar_layout(la), nullptr, static_cast<bool*>(out.raw_data()), b});
  return out;
}

namespace {

void check_where_condition(const Tensor& cond, const Tensor& t) {
  ATELIER_CHECK(cond.dtype() == DType::Bool,
                "where: condition must be bool, got " << cond.dtype() << " " << cond.shape());
  check_same_device(cond, t, "where");
}

// cond ? t : s, or cond ? s : t when scalar_first; the scalar by value, as in binary_with_scalar.
Tensor where_with_scalar(const Tensor& cond, const Tensor& t, double s, bool scalar_first) {
  check_where_condition(cond, t);
  Shape out_shape = broadcast_shapes(cond.shape(), t.shape(), "where");
  Tensor out = raw::empty(out_shape, t.dtype(), t.device());
  const Layout lt = broadcast_layout(t, out_shape);
  WhereArgs args{t.dtype(),
                 broadcast_layout(cond, out_shape),
                 static_cast<const bool*>(cond.raw_data()),
                 lt,
                 t.raw_data(),
                 scalar_layout(lt),
                 nullptr,
                 out.raw_data(),
                 s};
  if (scalar_first) {
    std::swap(args.a, args.b);
    std::swap(args.a_data, args.b_data);
  }
  launch<PrimitiveOp::where>(t.device(), "where", out.numel(), args);
  return out;
}

}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, double b) { return where_with_scalar(cond, a, b, false); }
Tensor where(const Tensor& cond, double a, const Tensor& b) { return where_with_scalar(cond, b, a, true); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_where_condition(cond, a);
  check_same_device(a, b, "where");
  check_same_dtype(a, b, "where");
  Shape out_shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = raw::empty(out_shape, a.dtype(), a.device());
  launch<PrimitiveOp::where>(a.device(), "where", out.numel(),
                             WhereArgs{a.dtype(), broadcast_layout(cond, out_shape),
                                       static_cast<const bool*>(cond.raw_data()), broadcast_layout(a, out_shape),
                                       a.raw_data(), broadcast_layout(b, out_shape), b.raw_data(), out.raw_data()});
  return out;
}

Tensor activation_backward(UnaryOp op, const Tensor& grad, const Tensor& out, double alpha, double threshold) {
  const char* name = unary_name(op);
  const bool from_output = op == UnaryOp::Elu || op == UnaryOp::Relu || op == UnaryOp::Tanh || op == UnaryOp::Sigmoid;
  const bool from_input = op == UnaryOp::Softplus || op == UnaryOp::LeakyRelu || op == UnaryOp::Silu ||
                          op == UnaryOp::Gelu || op == UnaryOp::GeluTanh;
  ATELIER_CHECK(from_output || from_input,
                "activation_backward: " << name
                                        << " has no gradient from its output (elu, relu, tanh, sigmoid do; "
                                           "softplus, leaky_relu, silu, gelu, gelu_tanh from their input)");
  check_same_device(grad, out, "activation_backward");
  check_same_dtype(grad, out, "activation_backward");
  check_floating(grad, "activation_backward");
  ATELIER_CHECK(grad.shape() == out.shape(), "activation_backward: gradient " << grad.shape() << " and " << name
                                                                              << " output " << out.shape()
                                                                              << " differ in shape");
  Tensor dst = raw::empty(grad.shape(), grad.dtype(), grad.device());
  launch<PrimitiveOp::activation_backward>(
      grad.device(), "activation_backward", dst.numel(),
      ActivationBackwardArgs{op, grad.dtype(), layout_of(grad), grad.raw_data(), layout_of(out), out.raw_data(),
                             dst.raw_data(), alpha, threshold});
  return dst;
}

}  // namespace atelier::raw
