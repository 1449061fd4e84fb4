// The packed float GEMM of packed_gemm.h: packing, and the register-blocked kernel.
#include "backends/cpu/packed_gemm.h"

#include <algorithm>

namespace atelier::cpu {
namespace {

// 16 floats: one AVX-512 register. Loads and stores through it may be unaligned (aligned(4)).
typedef float Vec16 __attribute__((vector_size(64), aligned(4)));
constexpr int64_t kVectors = kPanelColumns / 16;  // vectors per row of a block

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The block of C at c (kPanelRows rows, kPanelColumns columns, rows ldc apart) = the A panel a (k, kPanelRows) times
// the B panel b (k, kPanelColumns). Only the first `rows` rows and `columns` columns are stored.
inline void kernel(const float* __restrict a, const float* __restrict b, int64_t k, float* c, int64_t ldc, int64_t rows,
                   int64_t columns) {
  Vec16 acc[kPanelRows][kVectors];
#pragma GCC unroll 8
  for (int64_t r = 0; r < kPanelRows; ++r) {
#pragma GCC unroll 2
    for (int64_t v = 0; v < kVectors; ++v) acc[r][v] = Vec16{};
  }
#pragma GCC unroll 4
  for (int64_t kk = 0; kk < k; ++kk, a += kPanelRows, b += kPanelColumns) {
    __builtin_prefetch(b + 8 * kPanelColumns);  // B comes from L2: ask for it 8 steps ahead
    Vec16 bv[kVectors];
#pragma GCC unroll 2
    for (int64_t v = 0; v < kVectors; ++v) bv[v] = *reinterpret_cast<const Vec16*>(b + 16 * v);
#pragma GCC unroll 8
    for (int64_t r = 0; r < kPanelRows; ++r) {
#pragma GCC unroll 2
      for (int64_t v = 0; v < kVectors; ++v) acc[r][v] += a[r] * bv[v];
    }
  }
  // A whole block goes straight to C; an edge block through a buffer, then the part inside C.
  const bool whole = rows == kPanelRows && columns == kPanelColumns;
  float edge[kPanelRows * kPanelColumns];
  float* dst = whole ? c : edge;
  const int64_t ld = whole ? ldc : kPanelColumns;
#pragma GCC unroll 8
  for (int64_t r = 0; r < kPanelRows; ++r) {
#pragma GCC unroll 2
    for (int64_t v = 0; v < kVectors; ++v) *reinterpret_cast<Vec16*>(dst + r * ld + 16 * v) = acc[r][v];
  }
  if (!whole) {
    for (int64_t r = 0; r < rows; ++r)
      std::copy(edge + r * kPanelColumns, edge + r * kPanelColumns + columns, c + r * ldc);
  }
}

}  // namespace

int64_t packed_a_size(int64_t m, int64_t k) { return ceil_div(m, kPanelRows) * kPanelRows * k; }
int64_t packed_b_size(int64_t k, int64_t n) { return ceil_div(n, kPanelColumns) * kPanelColumns * k; }

void pack_a(const float* a, int64_t m, int64_t k, int64_t row_stride, int64_t col_stride, float* ap) {
  for (int64_t r0 = 0; r0 < m; r0 += kPanelRows) {
    const int64_t rows = std::min(kPanelRows, m - r0);
    for (int64_t kk = 0; kk < k; ++kk, ap += kPanelRows) {
      for (int64_t r = 0; r < rows; ++r) ap[r] = a[(r0 + r) * row_stride + kk * col_stride];
      std::fill(ap + rows, ap + kPanelRows, 0.0f);
    }
  }
}

void pack_b(const float* b, int64_t k, int64_t n, int64_t ldb, float* bp) {
  for (int64_t c0 = 0; c0 < n; c0 += kPanelColumns) {
    const int64_t columns = std::min(kPanelColumns, n - c0);
    for (int64_t kk = 0; kk < k; ++kk, bp += kPanelColumns)
      std::copy(b + kk * ldb + c0, b + kk * ldb + c0 + columns, bp);
  }
}

void packed_gemm(const float* ap, const float* bp, int64_t m, int64_t n, int64_t k, float* c, int64_t ldc) {
  // One B panel (k * 32 floats: 72-216 KiB for k = 576..1728, in L2) against every A panel, then the next B panel.
  for (int64_t c0 = 0; c0 < n; c0 += kPanelColumns, bp += k * kPanelColumns) {
    const int64_t columns = std::min(kPanelColumns, n - c0);
    const float* a = ap;
    for (int64_t r0 = 0; r0 < m; r0 += kPanelRows, a += k * kPanelRows) {
      kernel(a, bp, k, c + r0 * ldc + c0, ldc, std::min(kPanelRows, m - r0), columns);
    }
  }
}

}  // namespace atelier::cpu
