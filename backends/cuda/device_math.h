// The math functions of CUDA's library by element type, as overloads (dev_exp(float) is expf, dev_exp(double)
// is exp, ...), so kernel bodies read like their CPU twins. float32 uses the float functions, float64 the double
// ones; both are within 2 ulp of the CPU's. Host and device (the emulation test compiles kernels for the host).
#pragma once

#include <cmath>

#include "backends/args.h"
#include "backends/host_device.h"

namespace atelier::cuda {

ATELIER_HOST_DEVICE inline float dev_exp(float x) { return expf(x); }
ATELIER_HOST_DEVICE inline double dev_exp(double x) { return exp(x); }
ATELIER_HOST_DEVICE inline float dev_expm1(float x) { return expm1f(x); }
ATELIER_HOST_DEVICE inline double dev_expm1(double x) { return expm1(x); }
ATELIER_HOST_DEVICE inline float dev_log(float x) { return logf(x); }
ATELIER_HOST_DEVICE inline double dev_log(double x) { return log(x); }
ATELIER_HOST_DEVICE inline float dev_log1p(float x) { return log1pf(x); }
ATELIER_HOST_DEVICE inline double dev_log1p(double x) { return log1p(x); }
ATELIER_HOST_DEVICE inline float dev_abs(float x) { return fabsf(x); }
ATELIER_HOST_DEVICE inline double dev_abs(double x) { return fabs(x); }
ATELIER_HOST_DEVICE inline float dev_sqrt(float x) { return sqrtf(x); }
ATELIER_HOST_DEVICE inline double dev_sqrt(double x) { return sqrt(x); }
ATELIER_HOST_DEVICE inline float dev_tanh(float x) { return tanhf(x); }
ATELIER_HOST_DEVICE inline double dev_tanh(double x) { return tanh(x); }
ATELIER_HOST_DEVICE inline float dev_erf(float x) { return erff(x); }
ATELIER_HOST_DEVICE inline double dev_erf(double x) { return erf(x); }
ATELIER_HOST_DEVICE inline float dev_pow(float x, float y) { return powf(x, y); }
ATELIER_HOST_DEVICE inline double dev_pow(double x, double y) { return pow(x, y); }

// ELU: x > 0 ? x : alpha (exp(x) - 1). CPU twins: the unary ELU and the conv epilogue (backends/cpu/eigen.h's
// elu_array, which computes exp - 1 where this computes expm1: within a few ulp of 1 near 0).
template <typename T>
ATELIER_HOST_DEVICE inline T dev_elu(T v, T alpha) {
  return v > T(0) ? v : alpha * dev_expm1(v);
}

// Softplus (backends/args.h, UnaryOp::Softplus): v where beta v > threshold, else log(1 + exp(beta v)) / beta,
// exp only of a non-positive number. CPU twin: the unary Softplus of backends/cpu/elementwise.cpp. A NaN v gives NaN.
template <typename T>
ATELIER_HOST_DEVICE inline T dev_softplus(T v, T beta, T threshold) {
  const T b = beta * v;
  if (b > threshold) return v;
  return ((b > T(0) ? b : T(0)) + dev_log1p(dev_exp(-dev_abs(b)))) / beta;
}

// The activations whose gradient reads their input (backends/args.h, UnaryOp and ActivationBackwardArgs), each
// value and its derivative d/dx. CPU twins: the unary LeakyRelu, Silu, Gelu and GeluTanh and activation_from_input
// in backends/cpu/elementwise.cpp; the constants are backends/args.h's.

template <typename T>
ATELIER_HOST_DEVICE inline T dev_leaky_relu(T v, T slope) {
  return v > T(0) ? v : v * slope;
}
template <typename T>
ATELIER_HOST_DEVICE inline T dev_silu(T v) {
  return v / (T(1) + dev_exp(-v));
}
template <typename T>
ATELIER_HOST_DEVICE inline T dev_silu_grad(T v) {
  const T s = T(1) / (T(1) + dev_exp(-v));
  return s * (T(1) + v * (T(1) - s));
}
template <typename T>
ATELIER_HOST_DEVICE inline T dev_gelu(T v) {
  return v * T(0.5) * (T(1) + dev_erf(v * T(kGeluSqrtHalf)));
}
template <typename T>
ATELIER_HOST_DEVICE inline T dev_gelu_grad(T v) {
  return T(0.5) * (T(1) + dev_erf(v * T(kGeluSqrtHalf))) + v * dev_exp(T(-0.5) * v * v) * T(kGeluInvSqrt2Pi);
}
template <typename T>
ATELIER_HOST_DEVICE inline T dev_gelu_tanh(T v) {
  return T(0.5) * v * (T(1) + dev_tanh(T(kGeluK) * (v + T(kGeluC) * v * v * v)));
}
template <typename T>
ATELIER_HOST_DEVICE inline T dev_gelu_tanh_grad(T v) {
  // 1 - tanh(u)^2 as 4 e / (1 + e)^2, e = exp(-2 |u|), as on the CPU (whose float tanh saturates early).
  const T u = T(kGeluK) * (v + T(kGeluC) * v * v * v), e = dev_exp(T(-2) * dev_abs(u));
  return T(0.5) * (T(1) + dev_tanh(u)) +
         T(0.5) * v * (T(4) * e / ((T(1) + e) * (T(1) + e))) * T(kGeluK) * (T(1) + T(3 * kGeluC) * v * v);
}

}  // namespace atelier::cuda
