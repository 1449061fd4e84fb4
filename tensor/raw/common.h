// Helpers shared by the raw ops (tensor/raw/*.cpp): launch (the one way to a primitive), layouts for kernels
// (with broadcast strides) and the checks whose error messages every op shares. Internal to the tensor floor
// (namespace detail), not part of the API.
#pragma once

#include "backends/backend.h"
#include "backends/error.h"
#include "tensor/raw_ops.h"

namespace atelier::raw::detail {

inline Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

inline Layout layout_of(const Tensor& t) { return make_layout(t.shape(), t.strides()); }

// The strides that present `t` with shape `out` (NumPy broadcasting): 0 on broadcast dimensions.
inline Layout broadcast_layout(const Tensor& t, const Shape& out) {
  Shape strides(out.size(), 0);
  size_t lead = out.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i) {
    strides[lead + i] = t.shape()[i] == 1 && out[lead + i] != 1 ? 0 : t.strides()[i];
  }
  return make_layout(out, strides);
}

// Aliasing (tensor/raw/views.cpp). True when a and b view one storage and the element ranges they can reach
// intersect, so writing one may change the other (a false positive costs only a copy).
bool may_share_memory(const Tensor& a, const Tensor& b);
// Throws, naming `op`, the shape and the strides, unless every element of `dst` is its own memory location.
// An expanded (broadcast) view has stride 0: a write through it would keep one arbitrary value per location.
// Checked by every raw op that writes into an existing tensor (as PyTorch does).
void check_no_internal_overlap(const Tensor& dst, const char* op);

inline void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  ATELIER_CHECK(a.device() == b.device(),
                op << ": tensors are on different devices (" << a.device() << " and " << b.device() << ")");
}

inline void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  ATELIER_CHECK(a.dtype() == b.dtype(), op << ": dtypes differ (" << a.dtype() << " " << a.shape() << " and "
                                           << b.dtype() << " " << b.shape() << "); convert one with to(dtype)");
}

// (outer, dim, inner) of a contiguous tensor around dimension d: the view of the primitives that work along one
// dimension (gather, scatter_add, log_softmax).
inline void split_around(const Shape& shape, int d, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int i = 0; i < d; ++i) outer *= shape[i];
  for (size_t i = d + 1; i < shape.size(); ++i) inner *= shape[i];
}

inline void check_floating(const Tensor& t, const char* op) {
  ATELIER_CHECK(is_floating(t.dtype()),
                op << ": expected a float32 or float64 tensor, got " << t.dtype() << " " << t.shape());
}

// Runs primitive `op` on the backend of `device` (see atelier::launch in backends/backend.h: the support check,
// then the call unless `work` is 0). Every raw op that calls a primitive goes through here.
template <PrimitiveOp op>
void launch(Device device, const char* what, int64_t work, const typename Primitive<op>::Args& args) {
  atelier::launch<op>(backend_for(device), what, work, args);
}

inline const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Sign: return "sign";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Elu: return "elu";
    case UnaryOp::Pow: return "pow";
    case UnaryOp::Clamp: return "clamp";
    case UnaryOp::Softplus: return "softplus";
    case UnaryOp::LeakyRelu: return "leaky_relu";
    case UnaryOp::Silu: return "silu";
    case UnaryOp::Gelu: return "gelu";
    case UnaryOp::GeluTanh: return "gelu_tanh";
  }
  return "unary";
}

inline const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
  }
  return "binary";
}

inline const char* reduce_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Mean: return "mean";
    case ReduceOp::Max: return "amax";
  }
  return "reduce";
}

}  // namespace atelier::raw::detail
