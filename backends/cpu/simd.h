// The CPU kernels' vectors (conv.cpp, packed_gemm.cpp, direct_conv.cpp): GCC vector extensions of 64, 32 and 16
// bytes, one AVX-512, AVX or SSE register where compiled in (the compiler splits wider ones).
//
// Loads and stores go through these types, never memcpy: through memcpy GCC bounced vectors via the stack, and the
// mismatched store-to-load forwarding made the stride-2 gather 4x slower. A vector type may alias its element type
// in GCC, so a float array is read as Vec16 in place. The aligned(4) and aligned(8) let such accesses be unaligned;
// `auto` drops that attribute, so a vector is never declared `auto`. A 64-byte vector is never passed or returned
// by value: without AVX-512 that changes the calling convention (GCC's -Wpsabi, an error under -Werror); one
// register's vector (Simd<T>::V below) is, by load_vector and store_vector.
//
// clang honours aligned(4) and aligned(8) on a pointer's target but not on a reference's: a value read or written
// through a `V&` is assumed to sit at V's natural alignment (vmovaps), so a reference to a vector inside a float
// array faults, and so does one to a vector object that has only the typedef's alignment (a local array of them,
// a struct member). So: arrays go through pointers (load_vector, store_vector, or a cast pointer), and a vector
// object that is bound to a reference is declared alignas(kVectorBytes) (direct_conv.cpp's sums, packed_gemm.cpp's
// Block). GCC needs neither; its code is the same with them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace atelier::cpu {

typedef float Vec16 __attribute__((vector_size(64), aligned(4)));  // 16 floats
typedef float Vec8 __attribute__((vector_size(32), aligned(4)));   // 8 floats

// The vector registers the compiler targets: 32 of 64 bytes with AVX-512, 16 of 32 bytes with AVX2, 16 of 16 bytes
// otherwise (SSE). A kernel that keeps its sums in registers sizes its block by these: a block of 64-byte vectors
// that fits AVX-512's 32 registers needs 64 on AVX2 and is spilled to the stack at every step.
// kVectorIsa names the instruction set (`began --version` prints it).
#if defined(__AVX512F__)
inline constexpr int kVectorRegisters = 32;
inline constexpr int64_t kVectorBytes = 64;
inline constexpr const char* kVectorIsa = "AVX-512";
#elif defined(__AVX__)
inline constexpr int kVectorRegisters = 16;
inline constexpr int64_t kVectorBytes = 32;
#if defined(__AVX2__)
inline constexpr const char* kVectorIsa = "AVX2";
#else
inline constexpr const char* kVectorIsa = "AVX";
#endif
#else
inline constexpr int kVectorRegisters = 16;
inline constexpr int64_t kVectorBytes = 16;
inline constexpr const char* kVectorIsa = "SSE2";
#endif

// One register's vector of T (V) and its lanes, for kernels written once for float and double.
typedef float FloatRegister __attribute__((vector_size(kVectorBytes), aligned(4)));
typedef double DoubleRegister __attribute__((vector_size(kVectorBytes), aligned(8)));
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef FloatRegister V;
  static constexpr int64_t kLanes = kVectorBytes / 4;
};
template <>
struct Simd<double> {
  typedef DoubleRegister V;
  static constexpr int64_t kLanes = kVectorBytes / 8;
};

// The vector at p (which need not be aligned): read, and written.
template <typename T>
typename Simd<T>::V load_vector(const T* p) {
  return *reinterpret_cast<const typename Simd<T>::V*>(p);
}
template <typename T>
void store_vector(T* p, typename Simd<T>::V v) {
  *reinterpret_cast<typename Simd<T>::V*>(p) = v;
}

// The sum of the lanes of v (a vector of 2 * sizeof...(I) T), in a fixed order: its halves added, then their halves
// ... In registers: the same adds through an array made GCC add the lanes one at a time, each waiting on the last's
// store, and a normalisation's small groups spent most of their time there (norm.cpp, group_sums).
template <typename T, std::size_t... I, class W>
T fold_halves(W v, std::index_sequence<I...>) {
  constexpr std::size_t kHalf = sizeof...(I);
  if constexpr (kHalf == 1) {
    return v[0] + v[1];
  } else {
    typedef T Half __attribute__((vector_size(kHalf * sizeof(T))));
    const Half h = __builtin_shufflevector(v, v, I...) + __builtin_shufflevector(v, v, (I + kHalf)...);
    return fold_halves<T>(h, std::make_index_sequence<kHalf / 2>{});
  }
}
template <typename T>
T lane_total(typename Simd<T>::V v) {
  return fold_halves<T>(v, std::make_index_sequence<Simd<T>::kLanes / 2>{});
}

}  // namespace atelier::cpu
