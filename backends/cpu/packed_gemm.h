// A single-threaded float GEMM over operands packed by its callers, for the im2col convolutions (conv.cpp), the
// plain GEMM primitive (gemm.cpp, packing in blocks) and, in two unpacked forms (gemm_rows_a, gemm_columns_a), for
// Winograd's per-point products (winograd.cpp):
//   C (m, n), rows ldc apart, = A (m, k) * B (k, n)
// A convolution multiplies the same weights by every tile of every image. Eigen packs both operands on every call
// (the weights included), and im2col must first write a row-major matrix that Eigen then copies into its own panel
// order. Here the caller packs A once per call (pack_a: the weights, or their transpose) and writes B straight in
// panel order (im2col writes whole output rows into a panel; pack_b copies a row-major block).
//
// Layouts (k is the full depth: a panel holds every term of its outputs, there is no blocking over k):
//   packed A, panels of kPanelRows rows:       element (r, kk) at ap[(r / kPanelRows * k + kk) * kPanelRows + r %
//   kPanelRows],
//                                              rows >= m zero (pack_a writes them)
//   packed B, panels of kPanelColumns columns: element (kk, c) at bp[(c / kPanelColumns * k + kk) * kPanelColumns
//                                              + c % kPanelColumns]; columns >= n of the last panel may hold anything
//                                              (their lanes are computed and dropped)
// Each kPanelRows x kPanelColumns block of C is summed in registers (16 AVX-512 vectors) over kk = 0, 1, ..., k - 1,
// one fused multiply-add per term, and stored once. Measured on one Zen 5 core against Eigen's product of the same
// row-major matrices (which includes Eigen's packing of both): 180-210 GFLOP/s against 150-165 for the shapes of
// BEGAN's stride-2 layers, (128..256) x (576..1728) x (256..448) and their input-gradient transposes, under load;
// on a quieter host the kernel alone (bench_ops' packed_gemm/ rows) ran at 278-285 GFLOP/s, 96-99% of that
// core's FMA peak (peak/fma_1thread: 288), and no other register tile beat it (docs/benchmarks.md, fourth pass).
//
// With AVX2 (16 registers of 8 floats) a block is summed in strips of 6 x 16, 6 x 16 and 2 x 32 (multiply,
// packed_gemm.cpp): on one Zen 3 core 85-89 GFLOP/s for the shapes above, 84-88% of its FMA peak (101), against
// Eigen's 45-63 (docs/benchmarks.md, "AVX2"). kPackedGemmFast says where it is built for speed (AVX-512, or AVX2 with
// FMA); the code is portable C++ (GCC vector extensions), so other targets still compile it, and conv.cpp and
// winograd.cpp keep Eigen there.
#pragma once

#include <cstdint>

namespace atelier::cpu {

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
inline constexpr bool kPackedGemmFast = true;
#else
inline constexpr bool kPackedGemmFast = false;
#endif

inline constexpr int64_t kPanelRows = 8;      // rows of A (and of C) per register block
inline constexpr int64_t kPanelColumns = 32;  // columns of B (and of C) per register block: two 16-float vectors

// Floats of a packed A of m rows and depth k, and of a packed B of depth k and n columns.
int64_t packed_a_size(int64_t m, int64_t k);
int64_t packed_b_size(int64_t k, int64_t n);

// Packs A (m, k), element (r, kk) at a[r * row_stride + kk * col_stride] (col_stride 1: row-major; row_stride 1:
// the transpose of a row-major (k, m) matrix), into ap (packed_a_size(m, k) floats).
void pack_a(const float* a, int64_t m, int64_t k, int64_t row_stride, int64_t col_stride, float* ap);

// Packs B (k, n), rows ldb apart, into bp (packed_b_size(k, n) floats; the last panel's columns past n zero).
void pack_b(const float* b, int64_t k, int64_t n, int64_t ldb, float* bp);

// C (m, n), rows ldc apart, = packed A (m, k) * packed B (k, n), or with add C += A * B (the k products summed
// from zero, then added to C: a product blocked over k adds one block's sum at a time).
void packed_gemm(const float* ap, const float* bp, int64_t m, int64_t n, int64_t k, float* c, int64_t ldc,
                 bool add = false);

// C (m, n), rows ldc apart, = A (m, k) * packed B (k, n), A row-major (rows lda apart) and read in place, its
// eight rows of a block as eight streams. Winograd's per-point products M = V * U (backends/cpu/winograd.cpp): V is
// written by the input transform and read once, U packed once per call.
void gemm_rows_a(const float* a, int64_t lda, const float* bp, int64_t m, int64_t n, int64_t k, float* c, int64_t ldc);

// C (m, n), rows ldc apart, = (add: C +) A (m, k) * B (k, n), neither packed: A given as its transpose (element
// (r, kk) at at[kk * lda + r]: each step reads eight side by side) and B row-major (rows ldb apart). B is read
// kPanelColumns columns at a time, so its rows must hold n rounded up to kPanelColumns floats (the columns past n
// are read and their sums dropped). With add, the k products of each element are summed from zero and then added.
// Winograd's weight gradient dU += dM^T V, both chunk matrices as the transforms write them.
void gemm_columns_a(const float* at, int64_t lda, const float* b, int64_t ldb, int64_t m, int64_t n, int64_t k,
                    float* c, int64_t ldc, bool add);

// Packs rows [kk0, kk0 + k) of a B of depth `depth` and n columns that is the transpose of x: B (kk0 + kk, c) =
// x[c * ldx + kk] (x (n, k), rows ldx apart); bp points at row kk0 of B's first panel (bp = B + kk0 *
// kPanelColumns), the panels are depth * kPanelColumns floats apart, and the last panel's columns >= n are zeroed.
// The weight gradient's grad_output^T, one image at a time into a B whose depth is several images' pixels.
void pack_b_transposed(const float* x, int64_t k, int64_t n, int64_t ldx, int64_t depth, float* bp);

// C (n, m), rows ldc apart, += (A (m, k) * packed B (k, n))^T, A row-major and not packed (rows lda apart): the
// weight gradient gW (C_out, CKK) += (col (CKK, P) * grad_output^T (P, C_out))^T, col read as im2col wrote it
// (the kernel reads its eight rows as eight streams), only grad_output packed (transposed), and each 8x32 block
// of sums transposed in registers on its way to gW. The k products of each element are summed from zero and
// then added to C (an item's chain of k additions, not one chain over every item of a batch: shorter in float).
void gemm_add_transposed(const float* a, int64_t lda, const float* bp, int64_t m, int64_t n, int64_t k, float* c,
                         int64_t ldc);

}  // namespace atelier::cpu
