// Batched row-major GEMM on the CPU, single-threaded per block; our pool supplies the threads.
//
//   C_b (M x N) = alpha * op(A_b) (M x K) * op(B_b) (K x N) + beta * C_b
//
// A batch splits across threads (one whole GEMM each). A single large GEMM splits its output into column blocks
// (or row blocks when M is the longer side), each a single-threaded GEMM on a view of the operands:
//   column block [n0, n1):  C[:, n0:n1] = alpha * op(A) * op(B)[:, n0:n1] + beta * C[:, n0:n1]
//   row block    [m0, m1):  C[m0:m1, :] = alpha * op(A)[m0:m1, :] * op(B) + beta * C[m0:m1, :]
// A block is a product on the convolutions' packed kernel (float, alpha 1, beta 0 or 1, where the kernel is built
// for speed: packed_block below), whose results do not depend on the thread count, or else Eigen's, whose blocking
// depends on the block shape, so that its results depend on the thread count (and only on it).
#include <algorithm>
#include <tuple>

#include "backends/cpu/eigen.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/packed_gemm.h"
#include "backends/cpu/scratch.h"
#include "backends/error.h"
#include "backends/thread_pool.h"

namespace atelier::cpu {
namespace {

// Single GEMMs from this many multiply-adds use the whole pool (about 1 ms single-threaded).
constexpr int64_t kParallelGemmWork = int64_t{1} << 21;
// Batches go parallel from this much total work.
constexpr int64_t kParallelBatchWork = int64_t{1} << 16;

// One single-threaded GEMM on a block. `a` is op(A) rows [m0, m0 + m), `b` is op(B) columns [n0, n0 + n).
template <typename T>
void gemm_block(const GemmArgs& g, const T* a, const T* b, T* c, int64_t m0, int64_t m, int64_t n0, int64_t n) {
  const int64_t k = g.k;
  const T alpha = static_cast<T>(g.alpha), beta = static_cast<T>(g.beta);
  MutMap<T> cm(c + m0 * g.ldc + n0, m, n, Eigen::OuterStride<>(g.ldc));
  if (k == 0 || g.alpha == 0) {
    if (g.beta == 0) {
      cm.setZero();
    } else {
      cm *= beta;
    }
    return;
  }
  // Stored A is M x K (row m0 starts at m0 * lda) or, transposed, K x M (column m0 starts at m0).
  const ConstMap<T> am = g.trans_a ? ConstMap<T>(a + m0, k, m, Eigen::OuterStride<>(g.lda))
                                   : ConstMap<T>(a + m0 * g.lda, m, k, Eigen::OuterStride<>(g.lda));
  // Stored B is K x N (column n0 starts at n0) or, transposed, N x K (row n0 starts at n0 * ldb).
  const ConstMap<T> bm = g.trans_b ? ConstMap<T>(b + n0 * g.ldb, n, k, Eigen::OuterStride<>(g.ldb))
                                   : ConstMap<T>(b + n0, k, n, Eigen::OuterStride<>(g.ldb));
  auto product = [&](const auto& lhs, const auto& rhs) {
    // beta == 0 overwrites C, so stale contents (even NaN) never leak in.
    if (g.beta == 0) {
      cm.noalias() = alpha * lhs * rhs;
    } else {
      if (g.beta != 1) cm *= beta;
      cm.noalias() += alpha * lhs * rhs;
    }
  };
  if (g.trans_a && g.trans_b) {
    product(am.transpose(), bm.transpose());
  } else if (g.trans_a) {
    product(am.transpose(), bm);
  } else if (g.trans_b) {
    product(am, bm.transpose());
  } else {
    product(am, bm);
  }
}

// Float GEMMs with alpha 1 and beta 0 or 1 (every product the tensor library asks for) run on the convolutions' packed
// kernel where it is built for speed (packed_gemm.h), blocked so its operands stay in cache: op(B) in blocks of
// kDepthBlock rows by kColumnBlock columns, packed once and read from L2/L3 by every row block; op(A) in blocks of
// kRowBlock rows by kDepthBlock, packed (256 KiB at most, in L2) and multiplied by each 32-column panel of the B
// block in turn (kDepthBlock * 32 floats, 32 KiB). Each element of C is then the sum of its depth blocks, each
// summed from zero in one chain of fused multiply-adds and added to C in depth order: the same work whatever the
// split across threads, so the result does not depend on the thread count. On one Zen 3 core (AVX2), in
// interleaved runs, Eigen's product ran the bench_ops gemm/ rows at 49-65 GFLOP/s and this at 66-81 (PyTorch's
// MKL: 78-93); the block sizes barely mattered (128-1024 each way within 3%). docs/benchmarks.md, "AVX2: the
// packed kernel's stores".
constexpr int64_t kDepthBlock = 256;
constexpr int64_t kRowBlock = 256;
constexpr int64_t kColumnBlock = 1024;

bool packed_applies(const GemmArgs& g) {
  return kPackedGemmFast && g.dtype == DType::Float32 && g.alpha == 1 && (g.beta == 0 || g.beta == 1) && g.k > 0;
}

// Floats of scratch one packed_block call needs.
int64_t packed_scratch_size(const GemmArgs& g) {
  const int64_t kc = std::min(g.k, kDepthBlock);
  return packed_b_size(kc, std::min(g.n, kColumnBlock)) + packed_a_size(std::min(g.m, kRowBlock), kc);
}

// As gemm_block, on the packed kernel; `scratch` holds packed_scratch_size(g) floats.
void packed_block(const GemmArgs& g, const float* a, const float* b, float* c, int64_t m0, int64_t m, int64_t n0,
                  int64_t n, float* scratch) {
  const int64_t k = g.k;
  float* const bp = scratch;
  float* const ap = scratch + packed_b_size(std::min(k, kDepthBlock), std::min(g.n, kColumnBlock));
  for (int64_t j0 = n0; j0 < n0 + n; j0 += kColumnBlock) {
    const int64_t nb = std::min(kColumnBlock, n0 + n - j0);
    for (int64_t k0 = 0; k0 < k; k0 += kDepthBlock) {
      const int64_t kb = std::min(kDepthBlock, k - k0);
      // op(B) rows [k0, k0 + kb), columns [j0, j0 + nb): stored K x N, or N x K when transposed.
      if (g.trans_b) {
        pack_b_transposed(b + j0 * g.ldb + k0, kb, nb, g.ldb, kb, bp);
      } else {
        pack_b(b + k0 * g.ldb + j0, kb, nb, g.ldb, bp);
      }
      const bool add = k0 > 0 || g.beta == 1;
      for (int64_t i0 = m0; i0 < m0 + m; i0 += kRowBlock) {
        const int64_t mb = std::min(kRowBlock, m0 + m - i0);
        // op(A) rows [i0, i0 + mb), columns [k0, k0 + kb): stored M x K, or K x M when transposed.
        if (g.trans_a) {
          pack_a(a + k0 * g.lda + i0, mb, kb, 1, g.lda, ap);
        } else {
          pack_a(a + i0 * g.lda + k0, mb, kb, g.lda, 1, ap);
        }
        packed_gemm(ap, bp, mb, nb, kb, c + i0 * g.ldc + j0, g.ldc, add);
      }
    }
  }
}

// One block of C on whichever kernel applies (`scratch`: see packed_block; unused by Eigen).
template <typename T>
void block(const GemmArgs& g, const T* a, const T* b, T* c, int64_t m0, int64_t m, int64_t n0, int64_t n,
           float* scratch) {
  if constexpr (std::is_same_v<T, float>) {
    if (packed_applies(g)) return packed_block(g, a, b, c, m0, m, n0, n, scratch);
  }
  gemm_block<T>(g, a, b, c, m0, m, n0, n);
}

template <typename T>
void gemm_typed(const GemmArgs& g) {
  const T* a = static_cast<const T*>(g.a);
  const T* b = static_cast<const T*>(g.b);
  T* c = static_cast<T*>(g.c);
  auto item = [&](int64_t i) {
    return std::tuple<const T*, const T*, T*>(a + i * g.batch_stride_a, b + i * g.batch_stride_b,
                                              c + i * g.batch_stride_c);
  };
  const int64_t work = g.m * g.n * std::max<int64_t>(g.k, 1);
  const int threads = num_threads();

  if (threads > 1 && work >= kParallelGemmWork && g.batch < threads) {
    // Few large GEMMs: split each one's output across the pool, along its longer side.
    const bool split_columns = g.n >= g.m;
    const int64_t extent = split_columns ? g.n : g.m;
    // Each thread gets one contiguous block; a grain of 8 keeps the blocks within 8 of each other.
    const int64_t grain = 8;
    for (int64_t i = 0; i < g.batch; ++i) {
      auto [ai, bi, ci] = item(i);
      // Init-captures: clang before 16 cannot capture structured bindings (the fuzz build, scripts/fuzz.sh).
      ScratchSlots<float> slots(packed_applies(g) ? threads : 0, packed_scratch_size(g));
      parallel_for(extent, grain, [&, ai = ai, bi = bi, ci = ci](int64_t begin, int64_t end) {
        float* const scratch = packed_applies(g) ? slots.take() : nullptr;
        if (split_columns) {
          block<T>(g, ai, bi, ci, 0, g.m, begin, end - begin, scratch);
        } else {
          block<T>(g, ai, bi, ci, begin, end - begin, 0, g.n, scratch);
        }
      });
    }
    return;
  }
  ScratchSlots<float> slots(packed_applies(g) ? threads : 0, packed_scratch_size(g));
  auto body = [&](int64_t begin, int64_t end) {
    float* const scratch = packed_applies(g) ? slots.take() : nullptr;
    for (int64_t i = begin; i < end; ++i) {
      auto [ai, bi, ci] = item(i);
      block<T>(g, ai, bi, ci, 0, g.m, 0, g.n, scratch);
    }
  };
  // A shared C (batch stride 0) must be accumulated in order by one thread.
  if (threads > 1 && g.batch > 1 && g.batch_stride_c != 0 && work * g.batch >= kParallelBatchWork) {
    parallel_for(g.batch, 1, body);
  } else {
    body(0, g.batch);
  }
}

}  // namespace

void gemm(const GemmArgs& args) {
  ATELIER_CHECK(args.batch >= 0 && args.m >= 0 && args.n >= 0 && args.k >= 0,
                "cpu gemm: negative size (batch " << args.batch << ", m " << args.m << ", n " << args.n << ", k "
                                                  << args.k << ")");
  if (args.batch == 0 || args.m == 0 || args.n == 0) return;
  dispatch(gemm_types{}, args.dtype, "cpu gemm", [&]<class T> { gemm_typed<T>(args); });
}

}  // namespace atelier::cpu
