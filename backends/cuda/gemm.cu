// Batched row-major GEMM on the GPU through cuBLAS, on the context's stream. CPU twin: backends/cpu/gemm.cpp.
//
//   C_b (M x N) = alpha * op(A_b) (M x K) * op(B_b) (K x N) + beta * C_b
//
// cuBLAS is column-major. A row-major matrix with row stride ld is, read column-major, its transpose with
// leading dimension ld, so we ask cuBLAS for the transposed product, which needs no copy:
//   C^T (N x M) = op(B)^T (N x K) * op(A)^T (K x M)
// where stored B is handed over as is (CUBLAS_OP_N) unless trans_b (then CUBLAS_OP_T), and the same for A.
//
// Precision (backends/precision.h): float32 products are full FP32 (CUBLAS_COMPUTE_32F) under Precision::FP32,
// CUBLAS_COMPUTE_32F_FAST_TF32 under TF32 and CUBLAS_COMPUTE_32F_FAST_16BF under BF16: A, B and C stay float32
// in memory, cuBLAS rounds A and B to TF32 or bfloat16 inside the kernel and sums in float32 (BF16 "allows" it to
// round to bfloat16: it may keep more bits, never fewer). float64 is always CUBLAS_COMPUTE_64F. The convolutions
// (conv.cu) do all their products here, so they follow the same setting. cuBLAS gives the same bits on every run
// for a given GPU model and library version (no atomics in the default mode).
//
// k = 0 or alpha = 0 never reaches cuBLAS: the product is empty (or zero), so C_b = beta * C_b, as the CPU computes
// it (beta = 0 writes zeros, whatever C held; A and B are not read, so a NaN there does not leak in). BLAS defines
// that case, but cuBLAS has returned C unwritten for k = 0 (PyTorch works around it the same way), and nothing
// short of a GPU would show it.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "backends/cuda/context.h"
#include "backends/cuda/cublas_api.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernel_count.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/host_device.h"
#include "backends/precision.h"

namespace atelier {
namespace {

// cuBLAS takes int sizes and leading dimensions.
int to_int(int64_t value, const char* what, const GemmArgs& g) {
  ATELIER_CHECK(value >= 0 && value <= INT_MAX,
                "cuda gemm: " << what << " = " << value << " is beyond cuBLAS's int range (batch " << g.batch << ", m "
                              << g.m << ", n " << g.n << ", k " << g.k << ")");
  return static_cast<int>(value);
}

// The leading dimension cuBLAS accepts for a column-major matrix of `rows` x `cols` stored with `ld`. cuBLAS
// insists on ld >= max(1, rows) even where ld reaches no element (a single column, or no rows: k = 0), where the
// caller may have passed anything; there any large enough value will do.
int64_t leading_dim(int64_t ld, int64_t rows, int64_t cols) {
  return cols <= 1 || rows == 0 ? std::max<int64_t>({ld, rows, 1}) : ld;
}

// The cuBLAS compute type of a float32 GEMM under the library precision.
cublasComputeType_t float_compute_type(Precision p) {
  switch (p) {
    case Precision::FP32: return CUBLAS_COMPUTE_32F;
    case Precision::TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case Precision::BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
  }
  return CUBLAS_COMPUTE_32F;
}

// C_b = beta * C_b, element e of the (batches, M, N) index space, for k = 0 or alpha = 0. `products` is how many
// products land in each C: 1, or the batch when every product lands in one C (batch stride 0), which the CPU scales
// once per product. CPU twin: the k == 0 || alpha == 0 branch of gemm_block (backends/cpu/gemm.cpp).
template <typename T>
struct ScaleC {
  T* c;
  int64_t m, n, ldc, batch_stride_c, products;
  T beta;
  bool zero;  // beta is 0 (as a double, as the CPU asks): C is overwritten, never read
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    const int64_t j = e % n, i = e / n % m, b = e / (n * m);
    T* v = c + b * batch_stride_c + i * ldc + j;
    if (zero) {
      *v = T(0);
      return;
    }
    T x = *v;
    for (int64_t p = 0; p < products; ++p) x *= beta;
    *v = x;
  }
};

template <typename T>
void scale_c(const GemmArgs& g) {
  if (g.beta == 1) return;  // C stays as it is
  const bool shared = g.batch > 1 && g.batch_stride_c == 0;
  const int64_t batches = shared ? 1 : g.batch;
  cuda::launch_linear(batches * g.m * g.n, ScaleC<T>{static_cast<T*>(g.c), g.m, g.n, g.ldc, g.batch_stride_c,
                                                     shared ? g.batch : 1, static_cast<T>(g.beta), g.beta == 0});
}

template <typename T>
void gemm_typed(const GemmArgs& g) {
  constexpr bool is_float = std::is_same_v<T, float>;
  const cudaDataType_t type = is_float ? CUDA_R_32F : CUDA_R_64F;
  const cublasComputeType_t compute = is_float ? float_compute_type(precision()) : CUBLAS_COMPUTE_64F;
  if (g.k == 0 || g.alpha == 0) return scale_c<T>(g);  // beta = 0 never reads C (see the header)
  const T alpha = static_cast<T>(g.alpha), beta = static_cast<T>(g.beta);
  // Column-major view: first operand op(B)^T (N x K), stored B read column-major is (N x K) when !trans_b,
  // (K x N) when trans_b; second operand op(A)^T (K x M), stored A read column-major is (K x M) or (M x K).
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int64_t ldb = g.trans_b ? leading_dim(g.ldb, g.k, g.n) : leading_dim(g.ldb, g.n, g.k);
  const int64_t lda = g.trans_a ? leading_dim(g.lda, g.m, g.k) : leading_dim(g.lda, g.k, g.m);
  const int64_t ldc = leading_dim(g.ldc, g.n, g.m);
  const int m = to_int(g.m, "m", g), n = to_int(g.n, "n", g), k = to_int(g.k, "k", g);
  const int ldb_i = to_int(ldb, "ldb", g), lda_i = to_int(lda, "lda", g), ldc_i = to_int(ldc, "ldc", g);
  cublasHandle_t handle = cuda::context().cublas();
  const cuda::Cublas& api = cuda::cublas_api();
  if (g.batch > 1 && g.batch_stride_c == 0) {
    // Every product lands in one C: one call per batch item, in order (as the CPU runs them), never concurrently.
    for (int64_t i = 0; i < g.batch; ++i) {
      const T* a = static_cast<const T*>(g.a) + i * g.batch_stride_a;
      const T* b = static_cast<const T*>(g.b) + i * g.batch_stride_b;
      ATELIER_CUBLAS_CHECK(api.gemm_ex(handle, op_b, op_a, n, m, k, &alpha, b, type, ldb_i, a, type, lda_i, &beta, g.c,
                                       type, ldc_i, compute, CUBLAS_GEMM_DEFAULT));
      cuda::check_launch("cublasGemmEx");
    }
    return;
  }
  const int batch = to_int(g.batch, "batch", g);
  ATELIER_CUBLAS_CHECK(api.gemm_strided_batched_ex(handle, op_b, op_a, n, m, k, &alpha, g.b, type, ldb_i,
                                                   g.batch_stride_b, g.a, type, lda_i, g.batch_stride_a, &beta, g.c,
                                                   type, ldc_i, g.batch_stride_c, batch, compute, CUBLAS_GEMM_DEFAULT));
  cuda::check_launch("cublasGemmStridedBatchedEx");
}

}  // namespace

void CudaBackend::gemm(const GemmArgs& args) {
  ATELIER_CHECK(args.batch >= 0 && args.m >= 0 && args.n >= 0 && args.k >= 0,
                "cuda gemm: negative size (batch " << args.batch << ", m " << args.m << ", n " << args.n << ", k "
                                                   << args.k << ")");
  if (args.batch == 0 || args.m == 0 || args.n == 0) return;
  dispatch(cuda::gemm_types{}, args.dtype, "cuda gemm", [&]<class T> { gemm_typed<T>(args); });
}

}  // namespace atelier
