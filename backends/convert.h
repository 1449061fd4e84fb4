// Converting one element to another dtype: the rule every backend's cast and fill kernels follow, so that a value
// converts the same way on every device. The function is `constexpr` and header-only so a CUDA kernel can use it
// as it is (nvcc compiles it for the device with --expt-relaxed-constexpr, or mark it __host__ __device__ there).
//
//   to bool                      x != 0 (NaN is true, as in C++ and PyTorch)
//   floating -> integer          saturating: NaN -> 0; x at or beyond the type's range -> its lowest or highest
//                                value; otherwise truncation toward zero. (A plain static_cast is undefined
//                                behaviour for NaN and out-of-range values, and differs between CPUs and GPUs.)
//   integer -> narrower integer  modulo 2^bits (two's complement), as C++20 defines static_cast
//   floating -> floating         IEEE rounding to nearest; beyond float's range gives +-inf
//   integer or bool -> floating  the nearest representable value
#pragma once

#include <limits>
#include <type_traits>

namespace atelier {

template <typename D, typename S>
constexpr D convert_element(S x) {
  if constexpr (std::is_same_v<D, bool>) {
    return x != S(0);
  } else if constexpr (std::is_integral_v<D> && std::is_floating_point_v<S>) {
    if (x != x) return D(0);  // NaN
    // Both bounds are exact in S: the lowest value is 0 or -2^k, and highest + 1 is 2^k (for int64, 2^63; the
    // highest value itself, 2^63 - 1, is not representable in a float and would round up out of range).
    constexpr S lowest = static_cast<S>(std::numeric_limits<D>::lowest());
    constexpr S beyond = static_cast<S>(std::numeric_limits<D>::max() / 2 + 1) * S(2);
    if (x <= lowest) return std::numeric_limits<D>::lowest();
    if (x >= beyond) return std::numeric_limits<D>::max();
    return static_cast<D>(x);
  } else {
    return static_cast<D>(x);
  }
}

}  // namespace atelier
