// Elementwise maps on the GPU: unary, binary (with broadcasting), compare,
// where and the activations' gradients from their outputs (CPU twin: backends/cpu/elementwise.cpp).
//
// The output is contiguous with the shared sizes; inputs are strided (stride 0
// = broadcast). One thread per output element (launch_strided); each op is a
// device function of the element values, written as the CPU's lambda is, so NaN
// and the edge cases (sign of NaN, maximum with NaN, clamp) come out the same.
// The op is a template parameter: the switch over it runs once per call, on the
// host. float32 uses the float functions of CUDA's math library (expf, logf,
// ...), float64 the double ones; both are within 2 ulp of the CPU's.
#include <cmath>
#include <string>

#include "backends/convert.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device_math.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/host_device.h"

namespace atelier {
namespace {

using cuda::dev_abs;
using cuda::dev_elu;
using cuda::dev_exp;
using cuda::dev_gelu;
using cuda::dev_gelu_grad;
using cuda::dev_gelu_tanh;
using cuda::dev_gelu_tanh_grad;
using cuda::dev_leaky_relu;
using cuda::dev_log;
using cuda::dev_pow;
using cuda::dev_silu;
using cuda::dev_silu_grad;
using cuda::dev_softplus;
using cuda::dev_sqrt;
using cuda::dev_tanh;

// op(v) with parameters p0, p1. CPU twin: the cases of unary_typed (the scalar
// lambdas).
template <UnaryOp op, typename T>
ATELIER_HOST_DEVICE inline T unary_value(T v, T p0, T p1) {
  if constexpr (op == UnaryOp::Neg) return -v;
  if constexpr (op == UnaryOp::Exp) return dev_exp(v);
  if constexpr (op == UnaryOp::Log) return dev_log(v);
  if constexpr (op == UnaryOp::Abs) return dev_abs(v);
  // NaN stays NaN (v != v falls through every comparison).
  if constexpr (op == UnaryOp::Sign) return v > T(0) ? T(1) : v < T(0) ? T(-1) : v == T(0) ? T(0) : v;
  if constexpr (op == UnaryOp::Sqrt) return dev_sqrt(v);
  if constexpr (op == UnaryOp::Tanh) return dev_tanh(v);
  if constexpr (op == UnaryOp::Sigmoid) {
    // exp of a non-positive number only: no overflow for large |v|.
    if (v >= T(0)) return T(1) / (T(1) + dev_exp(-v));
    const T e = dev_exp(v);
    return e / (T(1) + e);
  }
  if constexpr (op == UnaryOp::Relu) return v < T(0) ? T(0) : v;
  if constexpr (op == UnaryOp::Elu) return dev_elu(v, p0);
  if constexpr (op == UnaryOp::Pow) return dev_pow(v, p0);
  if constexpr (op == UnaryOp::Clamp) {
    // std::min(std::max(v, p0), p1), spelled out: a NaN v stays NaN, as on the
    // CPU.
    const T low = v < p0 ? p0 : v;
    return p1 < low ? p1 : low;
  }
  if constexpr (op == UnaryOp::Softplus) return dev_softplus(v, p0, p1);
  if constexpr (op == UnaryOp::LeakyRelu) return dev_leaky_relu(v, p0);
  if constexpr (op == UnaryOp::Silu) return dev_silu(v);
  if constexpr (op == UnaryOp::Gelu) return dev_gelu(v);
  if constexpr (op == UnaryOp::GeluTanh) return dev_gelu_tanh(v);
  return v;  // not reached: every UnaryOp has its case above
}

// dst[off0] = op(src[off1]); dst is contiguous (its plan strides are the
// row-major ones).
template <UnaryOp op, typename T>
struct UnaryMap {
  T* dst;
  const T* src;
  T p0, p1;
  ATELIER_HOST_DEVICE void operator()(const int64_t (&off)[2]) const {
    dst[off[0]] = unary_value<op>(src[off[1]], p0, p1);
  }
};

// a op b. CPU twin: the lambdas of binary_typed.
template <BinaryOp op, typename T>
ATELIER_HOST_DEVICE inline T binary_value(T x, T y) {
  if constexpr (op == BinaryOp::Add) return x + y;
  if constexpr (op == BinaryOp::Sub) return x - y;
  if constexpr (op == BinaryOp::Mul) return x * y;
  if constexpr (op == BinaryOp::Div) return x / y;
  if constexpr (op == BinaryOp::Pow) return dev_pow(x, y);
  // NaN in either input propagates, as in PyTorch's maximum/minimum.
  if constexpr (op == BinaryOp::Maximum) return (x > y || x != x) ? x : y;
  if constexpr (op == BinaryOp::Minimum) return (x < y || x != x) ? x : y;
  return x;  // not reached
}

// a op b -> bool. CPU twin: the lambdas of compare_typed.
template <CompareOp op, typename T>
ATELIER_HOST_DEVICE inline bool compare_value(T x, T y) {
  if constexpr (op == CompareOp::Eq) return x == y;
  if constexpr (op == CompareOp::Ne) return x != y;
  if constexpr (op == CompareOp::Gt) return x > y;
  if constexpr (op == CompareOp::Ge) return x >= y;
  if constexpr (op == CompareOp::Lt) return x < y;
  if constexpr (op == CompareOp::Le) return x <= y;
  return false;  // not reached
}

// An operand of binary and where (either side) or compare (the second): a
// strided tensor, or (data == nullptr) one value passed by value in the args
// (BinaryArgs::scalar), so a tensor-scalar op costs no device memory. CPU twin:
// operand in backends/cpu/elementwise.cpp.
template <typename T>
struct Operand {
  const T* data;
  T value;
  ATELIER_HOST_DEVICE T at(int64_t offset) const { return data != nullptr ? data[offset] : value; }
};

template <typename T>
Operand<T> operand(const void* data, double scalar) {
  return {static_cast<const T*>(data), data == nullptr ? convert_element<T>(scalar) : T(0)};
}

// dst[off0] = a[off1] op b[off2]
template <BinaryOp op, typename T>
struct BinaryMap {
  T* dst;
  Operand<T> a;
  Operand<T> b;
  ATELIER_HOST_DEVICE void operator()(const int64_t (&off)[3]) const {
    dst[off[0]] = binary_value<op>(a.at(off[1]), b.at(off[2]));
  }
};

// dst[off0] = a[off1] op b[off2] (bool)
template <CompareOp op, typename T>
struct CompareMap {
  bool* dst;
  const T* a;
  Operand<T> b;
  ATELIER_HOST_DEVICE void operator()(const int64_t (&off)[3]) const {
    dst[off[0]] = compare_value<op>(a[off[1]], b.at(off[2]));
  }
};

// dst[off0] = cond[off1] ? a[off2] : b[off3]. CPU twin: where_typed.
template <typename T>
struct WhereMap {
  T* dst;
  const bool* cond;
  Operand<T> a;
  Operand<T> b;
  ATELIER_HOST_DEVICE void operator()(const int64_t (&off)[4]) const {
    dst[off[0]] = cond[off[1]] ? a.at(off[2]) : b.at(off[3]);
  }
};

// dst[off0] = grad[off1] * d(y[off2]), an activation's gradient from its saved output y (backends/args.h,
// ActivationBackwardArgs). CPU twin: activation_backward_op in backends/cpu/elementwise.cpp.
template <UnaryOp Op, typename T>
struct ActivationBackwardMap {
  T* dst;
  const T* grad;
  const T* y;  // x for the ops that read their input (Softplus, LeakyRelu, Silu, Gelu, GeluTanh)
  T alpha, threshold;
  ATELIER_HOST_DEVICE void operator()(const int64_t (&off)[3]) const {
    const T v = y[off[2]], g = grad[off[1]];
    if constexpr (Op == UnaryOp::Elu) {
      dst[off[0]] = g * (v > T(0) ? T(1) : v + alpha);
    } else if constexpr (Op == UnaryOp::Relu) {
      dst[off[0]] = g * (v > T(0) ? T(1) : T(0));
    } else if constexpr (Op == UnaryOp::Tanh) {
      dst[off[0]] = g * (T(1) - v * v);
    } else if constexpr (Op == UnaryOp::Softplus) {
      const T b = v * alpha;
      dst[off[0]] = b > threshold ? g : g / (T(1) + dev_exp(-b));
    } else if constexpr (Op == UnaryOp::LeakyRelu) {
      dst[off[0]] = v > T(0) ? g : g * alpha;
    } else if constexpr (Op == UnaryOp::Silu) {
      dst[off[0]] = g * dev_silu_grad(v);
    } else if constexpr (Op == UnaryOp::Gelu) {
      dst[off[0]] = g * dev_gelu_grad(v);
    } else if constexpr (Op == UnaryOp::GeluTanh) {
      dst[off[0]] = g * dev_gelu_tanh_grad(v);
    } else {
      dst[off[0]] = g * (v * (T(1) - v));
    }
  }
};

template <typename T>
void unary_typed(const UnaryArgs& args) {
  const Layout dst = contiguous_like(args.src);
  const Layout* layouts[2] = {&dst, &args.src};
  const auto plan = make_plan<2>(args.src, layouts);
  T* out = static_cast<T*>(args.dst_data);
  const T* src = static_cast<const T*>(args.src_data);
  const T p0 = static_cast<T>(args.p0), p1 = static_cast<T>(args.p1);
  auto run = [&]<UnaryOp op> { cuda::launch_strided(plan, UnaryMap<op, T>{out, src, p0, p1}); };
  switch (args.op) {
    case UnaryOp::Neg: return run.template operator()<UnaryOp::Neg>();
    case UnaryOp::Exp: return run.template operator()<UnaryOp::Exp>();
    case UnaryOp::Log: return run.template operator()<UnaryOp::Log>();
    case UnaryOp::Abs: return run.template operator()<UnaryOp::Abs>();
    case UnaryOp::Sign: return run.template operator()<UnaryOp::Sign>();
    case UnaryOp::Sqrt: return run.template operator()<UnaryOp::Sqrt>();
    case UnaryOp::Tanh: return run.template operator()<UnaryOp::Tanh>();
    case UnaryOp::Sigmoid: return run.template operator()<UnaryOp::Sigmoid>();
    case UnaryOp::Relu: return run.template operator()<UnaryOp::Relu>();
    case UnaryOp::Elu: return run.template operator()<UnaryOp::Elu>();
    case UnaryOp::Pow: return run.template operator()<UnaryOp::Pow>();
    case UnaryOp::Clamp: return run.template operator()<UnaryOp::Clamp>();
    case UnaryOp::Softplus: return run.template operator()<UnaryOp::Softplus>();
    case UnaryOp::LeakyRelu: return run.template operator()<UnaryOp::LeakyRelu>();
    case UnaryOp::Silu: return run.template operator()<UnaryOp::Silu>();
    case UnaryOp::Gelu: return run.template operator()<UnaryOp::Gelu>();
    case UnaryOp::GeluTanh: return run.template operator()<UnaryOp::GeluTanh>();
  }
  throw Error("cuda unary: unknown op " + std::to_string(static_cast<int>(args.op)));
}

template <typename T>
void binary_typed(const BinaryArgs& args) {
  const Layout dst = contiguous_like(args.a);
  const Layout* layouts[3] = {&dst, &args.a, &args.b};
  const auto plan = make_plan<3>(args.a, layouts);
  T* out = static_cast<T*>(args.dst_data);
  const Operand<T> a = operand<T>(args.a_data, args.scalar);
  const Operand<T> b = operand<T>(args.b_data, args.scalar);
  auto run = [&]<BinaryOp op> { cuda::launch_strided(plan, BinaryMap<op, T>{out, a, b}); };
  switch (args.op) {
    case BinaryOp::Add: return run.template operator()<BinaryOp::Add>();
    case BinaryOp::Sub: return run.template operator()<BinaryOp::Sub>();
    case BinaryOp::Mul: return run.template operator()<BinaryOp::Mul>();
    case BinaryOp::Div: return run.template operator()<BinaryOp::Div>();
    case BinaryOp::Pow: return run.template operator()<BinaryOp::Pow>();
    case BinaryOp::Maximum: return run.template operator()<BinaryOp::Maximum>();
    case BinaryOp::Minimum: return run.template operator()<BinaryOp::Minimum>();
  }
  throw Error("cuda binary: unknown op " + std::to_string(static_cast<int>(args.op)));
}

template <typename T>
void compare_typed(const CompareArgs& args) {
  const Layout dst = contiguous_like(args.a);
  const Layout* layouts[3] = {&dst, &args.a, &args.b};
  const auto plan = make_plan<3>(args.a, layouts);
  const T* a = static_cast<const T*>(args.a_data);
  const Operand<T> b = operand<T>(args.b_data, args.scalar);
  auto run = [&]<CompareOp op> { cuda::launch_strided(plan, CompareMap<op, T>{args.dst_data, a, b}); };
  switch (args.op) {
    case CompareOp::Eq: return run.template operator()<CompareOp::Eq>();
    case CompareOp::Ne: return run.template operator()<CompareOp::Ne>();
    case CompareOp::Gt: return run.template operator()<CompareOp::Gt>();
    case CompareOp::Ge: return run.template operator()<CompareOp::Ge>();
    case CompareOp::Lt: return run.template operator()<CompareOp::Lt>();
    case CompareOp::Le: return run.template operator()<CompareOp::Le>();
  }
  throw Error("cuda compare: unknown op " + std::to_string(static_cast<int>(args.op)));
}

template <typename T>
void where_typed(const WhereArgs& args) {
  const Layout dst = contiguous_like(args.cond);
  const Layout* layouts[4] = {&dst, &args.cond, &args.a, &args.b};
  cuda::launch_strided(make_plan<4>(args.cond, layouts),
                       WhereMap<T>{static_cast<T*>(args.dst_data), args.cond_data, operand<T>(args.a_data, args.scalar),
                                   operand<T>(args.b_data, args.scalar)});
}

template <typename T>
void activation_backward_typed(const ActivationBackwardArgs& args) {
  const Layout dst = contiguous_like(args.grad);
  const Layout* layouts[3] = {&dst, &args.grad, &args.out};
  const auto plan = make_plan<3>(args.grad, layouts);
  auto run = [&]<UnaryOp op> {
    cuda::launch_strided(
        plan, ActivationBackwardMap<op, T>{static_cast<T*>(args.dst_data), static_cast<const T*>(args.grad_data),
                                           static_cast<const T*>(args.out_data), static_cast<T>(args.alpha),
                                           static_cast<T>(args.threshold)});
  };
  switch (args.op) {
    case UnaryOp::Elu: return run.template operator()<UnaryOp::Elu>();
    case UnaryOp::Relu: return run.template operator()<UnaryOp::Relu>();
    case UnaryOp::Tanh: return run.template operator()<UnaryOp::Tanh>();
    case UnaryOp::Sigmoid: return run.template operator()<UnaryOp::Sigmoid>();
    case UnaryOp::Softplus: return run.template operator()<UnaryOp::Softplus>();
    case UnaryOp::LeakyRelu: return run.template operator()<UnaryOp::LeakyRelu>();
    case UnaryOp::Silu: return run.template operator()<UnaryOp::Silu>();
    case UnaryOp::Gelu: return run.template operator()<UnaryOp::Gelu>();
    case UnaryOp::GeluTanh: return run.template operator()<UnaryOp::GeluTanh>();
    default: break;
  }
  throw Error("cuda activation_backward: unary op " + std::to_string(static_cast<int>(args.op)) +
              " has no gradient from its output");
}

}  // namespace

void CudaBackend::unary(const UnaryArgs& args) {
  dispatch(cuda::unary_types{}, args.dtype, "cuda unary", [&]<class T> { unary_typed<T>(args); });
}

void CudaBackend::binary(const BinaryArgs& args) {
  dispatch(cuda::binary_types{}, args.dtype, "cuda binary", [&]<class T> { binary_typed<T>(args); });
}

void CudaBackend::compare(const CompareArgs& args) {
  dispatch(cuda::compare_types{}, args.dtype, "cuda compare", [&]<class T> { compare_typed<T>(args); });
}

void CudaBackend::where(const WhereArgs& args) {
  dispatch(cuda::where_types{}, args.dtype, "cuda where", [&]<class T> { where_typed<T>(args); });
}

void CudaBackend::activation_backward(const ActivationBackwardArgs& args) {
  dispatch(cuda::activation_backward_types{}, args.dtype, "cuda activation_backward",
           [&]<class T> { activation_backward_typed<T>(args); });
}

}  // namespace atelier
