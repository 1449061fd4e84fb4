// The packed float GEMM of packed_gemm.h: packing, and the register-blocked kernel.
#include "backends/cpu/packed_gemm.h"

#include <algorithm>
#include <utility>

#include "backends/cpu/simd.h"

namespace atelier::cpu {
namespace {

constexpr int64_t kVectors = kPanelColumns / 16;  // vectors per row of a block

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Where the kernel reads A. Packed (pack_a): element (r, kk) of a panel at a[kk * kPanelRows + r]. Row-major:
// element (r, kk) at a[r * lda + kk], the rows read as eight streams. Columns (A given as its transpose, row-major):
// element (r, kk) at a[kk * lda + r], each step's eight values side by side. In the last two, rows past the block's
// last repeat it (their lanes are computed and dropped), so nothing outside A is read.
enum class ALayout { Packed, RowMajor, Columns };

// A block's sums: acc[r][v] lane l = row r, column 16 v + l. Aligned: add_transposed binds acc to a reference
// (simd.h).
struct alignas(64) Block {
  Vec16 acc[kPanelRows][kVectors];
};

#if !defined(__AVX512F__)
// Without AVX-512: rows r0 .. r0 + R - 1 and the 16 V columns from 16 v0 of the block, summed over the whole k in
// 2 R V registers of 8 floats, stored into blk. (A's element (r, kk): a[kk * kPanelRows + r] packed, else
// a_row[r][kk * step].)
template <int R, int V, ALayout Layout>
inline void sum_strip(const float* __restrict a, const float* const* a_row, int64_t step, const float* __restrict b,
                      int64_t ldb, int64_t k, int64_t r0, int64_t v0, Block& blk) {
  Vec8 acc[R][2 * V] = {};
  const float* bq = b + 16 * v0;
  int64_t at = 0;  // kk * step
#pragma GCC unroll 4
  for (int64_t kk = 0; kk < k; ++kk, bq += ldb, at += step) {
    __builtin_prefetch(bq + 8 * ldb);
    Vec8 bv[2 * V];
#pragma GCC unroll 4
    for (int u = 0; u < 2 * V; ++u) bv[u] = *reinterpret_cast<const Vec8*>(bq + 8 * u);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      float ar;
      if constexpr (Layout == ALayout::Packed) {
        ar = a[kk * kPanelRows + r0 + r];
      } else {
        ar = a_row[r0 + r][at];
      }
#pragma GCC unroll 4
      for (int u = 0; u < 2 * V; ++u) acc[r][u] += ar * bv[u];
    }
  }
  // Each sum stored as the half of a 16-float row vector it is: joining two into a Vec16 value first
  // (__builtin_shufflevector) made GCC assemble the vector on the stack lane by lane, a quarter of the time of a
  // block of depth 64.
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    float* const row = reinterpret_cast<float*>(&blk.acc[r0 + r][v0]);
#pragma GCC unroll 4
    for (int u = 0; u < 2 * V; ++u) *reinterpret_cast<Vec8*>(row + 8 * u) = acc[r][u];
  }
}
#endif

// The A panel a (kPanelRows, k) times the B panel b (k, kPanelColumns), summed from zero over kk = 0, 1, ..., k - 1
// (one fused multiply-add per term). `rows`: A's rows that exist (RowMajor and Columns read no others). B's rows
// are ldb floats apart: kPanelColumns when packed, a row-major matrix's row stride otherwise.
//
// With AVX-512 the block's 16 sums stay in the 32 vector registers through the whole k. AVX2 has 16 registers of 8
// floats, where the block would need 32 for its sums alone (GCC spilled them to the stack on every step): there the
// block is summed in three strips, each over the whole k: rows 0-5 by columns 0-15, rows 0-5 by columns 16-31
// (12 sums, 2 B vectors and the broadcast: 15 registers), then rows 6-7 by all 32 columns (8 sums, 4 B vectors).
// B's panel is read twice, as it was by the four 4 x 16 quarters this replaced, but a strip of 6 rows does 12
// fused multiply-adds per 8 loads where a quarter did 8 per 6, and has 12 independent sums to cover the adds'
// latency rather than 8: on one Zen 3 core the kernel went from 63-80 GFLOP/s to 77-87 (of 101) on the shapes
// of bench_ops' packed_gemm/ rows, and the BEGAN step took 0.93-0.99 of its time (docs/benchmarks.md, "AVX2: the
// packed GEMM in strips of 6 rows").
template <ALayout Layout>
inline Block multiply(const float* __restrict a, int64_t lda, const float* __restrict b, int64_t ldb, int64_t k,
                      int64_t rows) {
  Block blk;
#if defined(__AVX512F__)
#pragma GCC unroll 8
  for (int64_t r = 0; r < kPanelRows; ++r) {
#pragma GCC unroll 2
    for (int64_t v = 0; v < kVectors; ++v) blk.acc[r][v] = Vec16{};
  }
#endif
  // RowMajor and Columns: element (r, kk) at a_row[r][kk * step].
  const int64_t row_step = Layout == ALayout::RowMajor ? lda : 1, step = Layout == ALayout::RowMajor ? 1 : lda;
  const float* a_row[kPanelRows];
#pragma GCC unroll 8
  for (int64_t r = 0; r < kPanelRows; ++r) a_row[r] = a + std::min(r, rows - 1) * row_step;
#if defined(__AVX512F__)
  int64_t at = 0;  // kk * step
#pragma GCC unroll 4
  for (int64_t kk = 0; kk < k; ++kk, b += ldb, at += step) {
    __builtin_prefetch(b + 8 * ldb);  // B comes from L2: ask for it 8 steps ahead
    Vec16 bv[kVectors];
#pragma GCC unroll 2
    for (int64_t v = 0; v < kVectors; ++v) bv[v] = *reinterpret_cast<const Vec16*>(b + 16 * v);
#pragma GCC unroll 8
    for (int64_t r = 0; r < kPanelRows; ++r) {
      float ar;
      if constexpr (Layout == ALayout::Packed) {
        ar = a[kk * kPanelRows + r];
      } else {
        ar = a_row[r][at];
      }
#pragma GCC unroll 2
      for (int64_t v = 0; v < kVectors; ++v) blk.acc[r][v] += ar * bv[v];
    }
  }
#else
  sum_strip<6, 1, Layout>(a, a_row, step, b, ldb, k, 0, 0, blk);  // rows 0-5, columns 0-15
  sum_strip<6, 1, Layout>(a, a_row, step, b, ldb, k, 0, 1, blk);  // rows 0-5, columns 16-31
  sum_strip<2, 2, Layout>(a, a_row, step, b, ldb, k, 6, 0, blk);  // rows 6-7, columns 0-31
#endif
  return blk;
}

// C's block at c (rows ldc apart) = (Add: C +) the block's first `rows` rows and `columns` columns; a whole block
// straight from the registers, an edge block through a buffer.
template <bool Add>
inline void store(const Block& blk, float* c, int64_t ldc, int64_t rows, int64_t columns) {
  const bool whole = rows == kPanelRows && columns == kPanelColumns;
  float edge[kPanelRows * kPanelColumns];
  float* const dst = whole ? c : edge;
  const int64_t ld = whole ? ldc : kPanelColumns;
#pragma GCC unroll 8
  for (int64_t r = 0; r < kPanelRows; ++r) {
#pragma GCC unroll 2
    for (int64_t v = 0; v < kVectors; ++v) {
      Vec16* d = reinterpret_cast<Vec16*>(dst + r * ld + 16 * v);
      *d = Add && whole ? *d + blk.acc[r][v] : blk.acc[r][v];
    }
  }
  if (!whole) {
    for (int64_t r = 0; r < rows; ++r) {
      float* row = c + r * ldc;
      const float* sums = edge + r * kPanelColumns;
      for (int64_t col = 0; col < columns; ++col) row[col] = Add ? row[col] + sums[col] : sums[col];
    }
  }
}

// The same with `add` known only at run time (packed_gemm's and gemm_columns_a's callers choose).
inline void store(const Block& blk, float* c, int64_t ldc, int64_t rows, int64_t columns, bool add) {
  if (add) {
    store<true>(blk, c, ldc, rows, columns);
  } else {
    store<false>(blk, c, ldc, rows, columns);
  }
}

// One step of a W x W block transpose (W = Simd<float>::kLanes: one register per row), of distance D (W / 2, ...,
// 2, 1): rows i and i + D (bit D of i clear) swap their off-diagonal D x D blocks. Row i keeps lane l, or for l
// with bit D set takes row i + D's lane l - D; row i + D takes row i's lane l + D, or for l with bit D set keeps
// its own lane l (W + lane: the shuffle's second operand). The masks are spelled out lane by lane (L...) because
// __builtin_shufflevector, which GCC and clang both have, takes only constant lane indices.
constexpr int kTile = static_cast<int>(Simd<float>::kLanes);
using Row = Simd<float>::V;

template <int D, int... L>
inline void transpose_step(Row (&t)[kTile], std::integer_sequence<int, L...>) {
  for (int i = 0; i < kTile; ++i) {
    if (i & D) continue;
    const Row a = t[i], b = t[i + D];
    t[i] = __builtin_shufflevector(a, b, ((L & D) != 0 ? L + kTile - D : L)...);
    t[i + D] = __builtin_shufflevector(a, b, ((L & D) != 0 ? L + kTile : L + D)...);
  }
}

// t[j][i] = t[i][j]: swapping the off-diagonal blocks of halves, then of quarters, ..., down to single lanes
// transposes every block at once (W log2 W / 2 two-register shuffles for W * W floats; with AVX2, W = 8: 24 for
// 64 floats, where the 16 x 16 tiles of two-register rows that this replaced there spilled to the stack and held
// the weight gradient's packing to 3 GB/s).
template <int D = kTile / 2>
inline void transpose_tile(Row (&t)[kTile]) {
  transpose_step<D>(t, std::make_integer_sequence<int, kTile>{});
  if constexpr (D > 1) transpose_tile<D / 2>(t);
}

// The transposed block added to C: C[col * ldc + r] += block (r, col) for the first `rows` rows and `columns`
// columns. A whole block is transposed in registers: three rounds of two-vector shuffles turn the eight row
// vectors of 16 columns into 16 runs of eight rows (two columns a vector), each added to its row of C as one
// 8-float load and store.
inline void add_transposed(const Block& blk, float* c, int64_t ldc, int64_t rows, int64_t columns) {
  if constexpr (kTile == kPanelRows) {
    // A register holds a block's 8 rows (AVX2): each 8 x 8 square of the block is one transpose_tile, whose rows
    // are then columns of the block, each added to its row of C. (The rounds below join 16-float vectors, which
    // GCC builds lane by lane on AVX2.)
    if (rows == kPanelRows && columns == kPanelColumns) {
      for (int64_t col0 = 0; col0 < kPanelColumns; col0 += kTile) {
        alignas(kVectorBytes) Row t[kTile];  // bound to a reference: simd.h says why alignas
        for (int r = 0; r < kTile; ++r) t[r] = load_vector(reinterpret_cast<const float*>(blk.acc[r]) + col0);
        transpose_tile(t);
        for (int j = 0; j < kTile; ++j) {
          float* const d = c + (col0 + j) * ldc;
          store_vector(d, load_vector(d) + t[j]);
        }
      }
      return;
    }
  } else if (rows == kPanelRows && columns == kPanelColumns) {
    for (int64_t v = 0; v < kVectors; ++v) {
      const Vec16(&x)[kPanelRows][kVectors] = blk.acc;  // not auto: it would drop Vec16's aligned(4)
      // Round 1: rows 2i, 2i+1 interleaved, (r0 r1) per column, columns 0-7 (lo) and 8-15 (hi).
      Vec16 p[kPanelRows];
      for (int64_t i = 0; i < kPanelRows / 2; ++i) {
        p[2 * i] = __builtin_shufflevector(x[2 * i][v], x[2 * i + 1][v], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6,
                                           22, 7, 23);
        p[2 * i + 1] = __builtin_shufflevector(x[2 * i][v], x[2 * i + 1][v], 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13,
                                               29, 14, 30, 15, 31);
      }
      // Round 2: pairs of pairs, (r0 r1 r2 r3) per column, four columns a vector.
      Vec16 q[kPanelRows];
      for (int64_t h = 0; h < 2; ++h) {    // columns 0-7 (h 0) or 8-15 (h 1)
        for (int64_t i = 0; i < 2; ++i) {  // rows 0-3 (i 0) or 4-7 (i 1)
          const Vec16 lo = p[4 * i + h], hi = p[4 * i + 2 + h];
          q[4 * h + 2 * i] = __builtin_shufflevector(lo, hi, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
          q[4 * h + 2 * i + 1] =
              __builtin_shufflevector(lo, hi, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
        }
      }
      // Round 3: rows 0-3 and 4-7 joined, eight rows per column, two columns a vector (the halves).
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t i = 0; i < 2; ++i) {
          const Vec16 lo = q[4 * h + i], hi = q[4 * h + 2 + i];
          const Vec16 t = __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
          const Vec16 u = __builtin_shufflevector(lo, hi, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
          // t holds columns col0, col0 + 1 and u col0 + 2, col0 + 3, where col0 = 16 v + 8 h + 4 i.
          const int64_t col0 = 16 * v + 8 * h + 4 * i;
          const Vec16 both[2] = {t, u};
          for (int64_t w = 0; w < 2; ++w) {
            for (int64_t half = 0; half < 2; ++half) {
              Vec8* d = reinterpret_cast<Vec8*>(c + (col0 + 2 * w + half) * ldc);
              const Vec8 s = half == 0 ? __builtin_shufflevector(both[w], both[w], 0, 1, 2, 3, 4, 5, 6, 7)
                                       : __builtin_shufflevector(both[w], both[w], 8, 9, 10, 11, 12, 13, 14, 15);
              *d += s;
            }
          }
        }
      }
    }
    return;
  }
  float edge[kPanelRows * kPanelColumns];
  store<false>(blk, edge, kPanelColumns, kPanelRows, kPanelColumns);
  for (int64_t col = 0; col < columns; ++col) {
    for (int64_t r = 0; r < rows; ++r) c[col * ldc + r] += edge[r * kPanelColumns + col];
  }
}

}  // namespace

int64_t packed_a_size(int64_t m, int64_t k) { return ceil_div(m, kPanelRows) * kPanelRows * k; }
int64_t packed_b_size(int64_t k, int64_t n) { return ceil_div(n, kPanelColumns) * kPanelColumns * k; }

void pack_a(const float* a, int64_t m, int64_t k, int64_t row_stride, int64_t col_stride, float* ap) {
  for (int64_t r0 = 0; r0 < m; r0 += kPanelRows) {
    const int64_t rows = std::min(kPanelRows, m - r0);
    if (row_stride == 1 && rows == kPanelRows) {
      // A given transposed (the input gradient's W^T): each step's 8 rows are 8 consecutive floats.
      for (int64_t kk = 0; kk < k; ++kk, ap += kPanelRows) {
        const float* src = a + r0 + kk * col_stride;
        std::copy(src, src + kPanelRows, ap);
      }
      continue;
    }
    for (int64_t kk = 0; kk < k; ++kk, ap += kPanelRows) {
      for (int64_t r = 0; r < rows; ++r) ap[r] = a[(r0 + r) * row_stride + kk * col_stride];
      std::fill(ap + rows, ap + kPanelRows, 0.0f);
    }
  }
}

void pack_b(const float* b, int64_t k, int64_t n, int64_t ldb, float* bp) {
  // Row by row, each row's panels in turn, so that B is read in order and the prefetcher follows it (panel by
  // panel read 128 bytes from each of k rows ldb apart, and called memmove for each: 23% of a 64x576x4096 product).
  constexpr int64_t W = Simd<float>::kLanes;
  const int64_t full = n / kPanelColumns, rest = n % kPanelColumns;
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* row = b + kk * ldb;
    float* dst = bp + kk * kPanelColumns;
    for (int64_t q = 0; q < full; ++q, row += kPanelColumns, dst += k * kPanelColumns) {
      for (int64_t x = 0; x < kPanelColumns; x += W) store_vector(dst + x, load_vector(row + x));
    }
    if (rest > 0) {
      std::copy(row, row + rest, dst);
      // The last panel's columns past n are computed and dropped; zero, not whatever the scratch held (a
      // denormal there would cost microcode assists on some CPUs).
      std::fill(dst + rest, dst + kPanelColumns, 0.0f);
    }
  }
}

void packed_gemm(const float* ap, const float* bp, int64_t m, int64_t n, int64_t k, float* c, int64_t ldc, bool add) {
  // One B panel (k * 32 floats: 72-216 KiB for k = 576..1728, in L2) against every A panel, then the next B panel.
  for (int64_t c0 = 0; c0 < n; c0 += kPanelColumns, bp += k * kPanelColumns) {
    const int64_t columns = std::min(kPanelColumns, n - c0);
    const float* a = ap;
    for (int64_t r0 = 0; r0 < m; r0 += kPanelRows, a += k * kPanelRows) {
      const int64_t rows = std::min(kPanelRows, m - r0);
      const Block blk = multiply<ALayout::Packed>(a, 0, bp, kPanelColumns, k, rows);
      store(blk, c + r0 * ldc + c0, ldc, rows, columns, add);
    }
  }
}

void gemm_rows_a(const float* a, int64_t lda, const float* bp, int64_t m, int64_t n, int64_t k, float* c, int64_t ldc) {
  // As packed_gemm: one B panel (k * 32 floats) against every 8-row block of A, then the next B panel.
  for (int64_t c0 = 0; c0 < n; c0 += kPanelColumns, bp += k * kPanelColumns) {
    const int64_t columns = std::min(kPanelColumns, n - c0);
    for (int64_t r0 = 0; r0 < m; r0 += kPanelRows) {
      const int64_t rows = std::min(kPanelRows, m - r0);
      store<false>(multiply<ALayout::RowMajor>(a + r0 * lda, lda, bp, kPanelColumns, k, rows), c + r0 * ldc + c0, ldc,
                   rows, columns);
    }
  }
}

void gemm_columns_a(const float* at, int64_t lda, const float* b, int64_t ldb, int64_t m, int64_t n, int64_t k,
                    float* c, int64_t ldc, bool add) {
  // One 32-column strip of B (k rows) against every 8-row block of A, then the next strip.
  for (int64_t c0 = 0; c0 < n; c0 += kPanelColumns) {
    const int64_t columns = std::min(kPanelColumns, n - c0);
    for (int64_t r0 = 0; r0 < m; r0 += kPanelRows) {
      const int64_t rows = std::min(kPanelRows, m - r0);
      const Block blk = multiply<ALayout::Columns>(at + r0, lda, b + c0, ldb, k, rows);
      store(blk, c + r0 * ldc + c0, ldc, rows, columns, add);
    }
  }
}

void pack_b_transposed(const float* x, int64_t k, int64_t n, int64_t ldx, int64_t depth, float* bp) {
  for (int64_t c0 = 0; c0 < n; c0 += kPanelColumns, bp += depth * kPanelColumns) {
    const int64_t columns = std::min(kPanelColumns, n - c0);
    int64_t k0 = 0;
    if (columns == kPanelColumns) {
      // kTile x kTile tiles transposed in registers: kTile rows of x in, kTile rows of the panel (part of their
      // width) out.
      for (; k0 + kTile <= k; k0 += kTile) {
        for (int64_t part = 0; part < kPanelColumns; part += kTile) {
          alignas(kVectorBytes) Row t[kTile];  // bound to a reference: simd.h says why alignas
          for (int64_t i = 0; i < kTile; ++i) t[i] = load_vector(x + (c0 + part + i) * ldx + k0);
          transpose_tile(t);
          for (int64_t j = 0; j < kTile; ++j) store_vector(bp + (k0 + j) * kPanelColumns + part, t[j]);
        }
      }
    }
    // The rest (and an edge panel) element by element, 16 rows of B at a time: each column's 16 values are read
    // from one cache line of x.
    for (; k0 < k; k0 += 16) {
      const int64_t k1 = std::min(k, k0 + 16);
      for (int64_t c = 0; c < columns; ++c) {
        const float* src = x + (c0 + c) * ldx;
        for (int64_t kk = k0; kk < k1; ++kk) bp[kk * kPanelColumns + c] = src[kk];
      }
      for (int64_t kk = k0; kk < k1; ++kk) {
        std::fill(bp + kk * kPanelColumns + columns, bp + (kk + 1) * kPanelColumns, 0.0f);
      }
    }
  }
}

void gemm_add_transposed(const float* a, int64_t lda, const float* bp, int64_t m, int64_t n, int64_t k, float* c,
                         int64_t ldc) {
  // Each 8-row block of A (8 * k floats, in L1 for k <= 512) against every B panel: B (k * n floats) stays in L2.
  for (int64_t r0 = 0; r0 < m; r0 += kPanelRows, a += kPanelRows * lda) {
    const int64_t rows = std::min(kPanelRows, m - r0);
    const float* b = bp;
    for (int64_t c0 = 0; c0 < n; c0 += kPanelColumns, b += k * kPanelColumns) {
      add_transposed(multiply<ALayout::RowMajor>(a, lda, b, kPanelColumns, k, rows), c + c0 * ldc + r0, ldc, rows,
                     std::min(kPanelColumns, n - c0));
    }
  }
}

}  // namespace atelier::cpu
