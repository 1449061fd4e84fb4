// Batched row-major GEMM on the CPU: Eigen does the math, single-threaded; our pool supplies the threads.
//
//   C_b (M x N) = alpha * op(A_b) (M x K) * op(B_b) (K x N) + beta * C_b
//
// A batch splits across threads (one whole GEMM each). A single large GEMM splits its output into column blocks
// (or row blocks when M is the longer side), each a single-threaded Eigen GEMM on a view of the operands:
//   column block [n0, n1):  C[:, n0:n1] = alpha * op(A) * op(B)[:, n0:n1] + beta * C[:, n0:n1]
//   row block    [m0, m1):  C[m0:m1, :] = alpha * op(A)[m0:m1, :] * op(B) + beta * C[m0:m1, :]
// Eigen's blocking depends on the block shape, so results depend on the thread count (and only on it).
#include <algorithm>
#include <tuple>

#include "backends/cpu/eigen.h"
#include "backends/cpu/kernels.h"
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
      parallel_for(extent, grain, [&, ai = ai, bi = bi, ci = ci](int64_t begin, int64_t end) {
        if (split_columns) {
          gemm_block<T>(g, ai, bi, ci, 0, g.m, begin, end - begin);
        } else {
          gemm_block<T>(g, ai, bi, ci, begin, end - begin, 0, g.n);
        }
      });
    }
    return;
  }
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      auto [ai, bi, ci] = item(i);
      gemm_block<T>(g, ai, bi, ci, 0, g.m, 0, g.n);
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
