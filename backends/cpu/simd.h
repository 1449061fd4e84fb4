// The CPU kernels' vectors (conv.cpp, packed_gemm.cpp, direct_conv.cpp): GCC vector extensions of 64 and 32 bytes,
// one AVX-512 or AVX register where compiled in (the compiler splits them otherwise).
//
// Loads and stores go through these types, never memcpy: through memcpy GCC bounced vectors via the stack, and the
// mismatched store-to-load forwarding made the stride-2 gather 4x slower. A vector type may alias its element type
// in GCC, so a float array is read as Vec16 in place. The aligned(4) and aligned(8) let such accesses be unaligned;
// `auto` drops that attribute, so a vector is never declared `auto`. A 64-byte vector is never passed or returned
// by value: without AVX-512 that changes the calling convention (GCC's -Wpsabi, an error under -Werror); vec_at
// gives a reference, and the callers are inlined anyway.
#pragma once

#include <cstdint>

namespace atelier::cpu {

typedef float Vec16 __attribute__((vector_size(64), aligned(4)));   // 16 floats
typedef float Vec8 __attribute__((vector_size(32), aligned(4)));    // 8 floats
typedef double Vec8d __attribute__((vector_size(64), aligned(8)));  // 8 doubles

// The 64-byte vector of T and its lanes, for kernels written once for float and double.
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef Vec16 V;
  static constexpr int64_t kLanes = 16;
};
template <>
struct Simd<double> {
  typedef Vec8d V;
  static constexpr int64_t kLanes = 8;
};

// The vector at p (which need not be aligned), by reference.
template <typename T>
const typename Simd<T>::V& vec_at(const T* p) {
  return *reinterpret_cast<const typename Simd<T>::V*>(p);
}
template <typename T>
typename Simd<T>::V& vec_at(T* p) {
  return *reinterpret_cast<typename Simd<T>::V*>(p);
}

}  // namespace atelier::cpu
