// Eigen for the CPU kernels, included one way everywhere: single-threaded (atelier's thread pool is the only
// source of threads), and with g++ 12's false-positive warnings from the AVX-512 intrinsics headers silenced
// (-Wmaybe-uninitialized and -Wuninitialized fire inside avx512fintrin.h through Eigen's ptranspose). Also the
// row-major matrix maps the GEMM and conv kernels share, and the vectorised ELU they and the unary op share.
#pragma once

#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif

#pragma GCC diagnostic push
#ifndef __clang__  // a g++ name: clang does not know it (-Wunknown-warning-option)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop

#include <cstdint>

namespace atelier::cpu {

// Row-major matrices over raw buffers, the layout of every atelier tensor: a (rows, cols) matrix whose rows start
// `ld` elements apart (ld >= cols), so a view into a bigger matrix needs no copy.
template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using MutMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename T>
ConstMap<T> cmat(const T* data, int64_t rows, int64_t cols, int64_t ld) {
  return ConstMap<T>(data, rows, cols, Eigen::OuterStride<>(ld));
}
template <typename T>
MutMap<T> mat(T* data, int64_t rows, int64_t cols, int64_t ld) {
  return MutMap<T>(data, rows, cols, Eigen::OuterStride<>(ld));
}

// ELU of an Eigen array expression v: max(v, 0) + alpha (exp(min(v, 0)) - 1), for both signs. Branch-free so
// that Eigen vectorises it (a select() over the comparison evaluated exp one scalar at a time: 11.6 ms against
// 0.3 ms over 16x64x64x64 floats); exp - 1 instead of expm1, which Eigen does not vectorise: the absolute error
// near 0 is ~1 ulp of 1. The unary ELU and the convolutions' fused ELU both use it, so they give the same bits.
template <typename T, class Expr>
auto elu_array(const Expr& v, T alpha) {
  return v.max(T(0)) + alpha * (v.min(T(0)).exp() - T(1));
}

}  // namespace atelier::cpu
