// The CUDA backend emulated on the host, for scripts/cuda-emulate.sh: the CUDA test program runs against it where
// no GPU is at hand, so the kernels' index math and the tests themselves are checked before a GPU session.
//
// "Device" memory is host memory. backends/cuda/{copy_fill,random,elementwise,reduce,conv,gemm,index,upsample,
// optimizer}.cu are compiled against the fake launch.h and context.h beside this file (their one-thread-per-index
// functors run in host loops, the reductions' block-cooperative kernels as fibers switching at each sync():
// block_threads.h), their device-to-device copies reach the cudaMemcpyAsync below and their GEMMs the
// column-major host GEMM below, which checks its arguments as cuBLAS does and honours the compute type:
// CUBLAS_COMPUTE_32F and _64F sum exact products in double; CUBLAS_COMPUTE_32F_FAST_TF32 and _FAST_16BF first
// round A and B to TF32 (10-bit mantissa) or bfloat16 (7-bit mantissa), to nearest even, then sum their products
// (exact in float) in float, in k order, as a tensor core does; so the precision modes' accuracy can be stated
// before a GPU runs them (docs/gpu.md). host_copies.cu (the pinned readback and upload) runs as written against
// the event stand-ins below, whose events answer "not ready" once after each record. What this cannot check:
// launch configurations, warps, the GPU's memory model, atomics, real cuBLAS and anything about the device itself.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backends/caching_allocator.h"
#include "backends/cuda/cuda_backend.h"

namespace atelier {

namespace {

void* host_allocate(size_t bytes) { return std::aligned_alloc(256, (bytes + 255) / 256 * 256); }
void host_release(void* ptr) noexcept { std::free(ptr); }

// The backends' caching allocator over host memory, standing in for the one over cudaMalloc.
CachingAllocator& allocator() {
  static CachingAllocator instance(SystemMemory{"cuda (emulated)", &host_allocate, &host_release});
  return instance;
}

Backend& cpu() { return backend_for(Device::cpu()); }

}  // namespace

bool CudaBackend::available() const { return true; }
std::string CudaBackend::unavailable_reason() const { return ""; }
void* CudaBackend::allocate(size_t bytes) { return allocator().allocate(bytes); }
void CudaBackend::deallocate(void* ptr, size_t bytes) { allocator().deallocate(ptr, bytes); }
AllocatorStats CudaBackend::allocator_stats() const { return allocator().stats(); }
CachingAllocator* CudaBackend::caching_allocator() { return &allocator(); }
void CudaBackend::empty_cache() {
  refuse_in_capture("empty_cache");
  allocator().empty_cache();
}
// Refused during a capture, as on the device (backends/cuda/cuda_backend.cu).
void CudaBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  refuse_in_capture("copy_to_host");
  if (bytes > 0) std::memcpy(dst, src, bytes);
}
void CudaBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  refuse_in_capture("copy_from_host");
  count_host_sync_upload();  // as on the device: from pageable memory
  if (bytes > 0) std::memcpy(dst, src, bytes);
}
void CudaBackend::synchronize() { refuse_in_capture("synchronize"); }
// The host's clock stands in for events on the stream: the emulated kernels have finished when they return.
std::unique_ptr<DeviceTimeline> CudaBackend::make_timeline() { return cpu().make_timeline(); }
// The CUDA table for the emulated families, the CPU's for the primitives that run on the CPU here.
bool CudaBackend::supports(PrimitiveOp op, DType dtype) const {
  switch (op) {
#define ATELIER_EMULATED(name) \
  case PrimitiveOp::name: return cuda::name##_types::contains(dtype);
    ATELIER_EMULATED(copy)
    ATELIER_EMULATED(cast)
    ATELIER_EMULATED(fill)
    ATELIER_EMULATED(random)
    ATELIER_EMULATED(unary)
    ATELIER_EMULATED(binary)
    ATELIER_EMULATED(compare)
    ATELIER_EMULATED(where)
    ATELIER_EMULATED(gather)
    ATELIER_EMULATED(scatter_add)
    ATELIER_EMULATED(reduce)
    ATELIER_EMULATED(argmax)
    ATELIER_EMULATED(gemm)
    ATELIER_EMULATED(conv2d)
    ATELIER_EMULATED(conv2d_backward_input)
    ATELIER_EMULATED(conv2d_backward_weight)
    ATELIER_EMULATED(upsample_nearest2d)
    ATELIER_EMULATED(upsample_nearest2d_backward)
    ATELIER_EMULATED(sgd_step)
    ATELIER_EMULATED(adam_step)
    ATELIER_EMULATED(adam_step_multi)
#undef ATELIER_EMULATED
    default: return cpu().supports(op, dtype);
  }
}

Backend* cuda_backend_or_null() {
  static CudaBackend backend;
  return &backend;
}

}  // namespace atelier

namespace {

// A float rounded to nearest even at `mantissa_bits` bits of mantissa (TF32: 10, bfloat16: 7), as the fast
// compute types convert their inputs; infinities and NaNs pass unchanged.
float round_mantissa(float value, int mantissa_bits) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7f800000u) == 0x7f800000u) return value;
  const int drop = 23 - mantissa_bits;
  const uint32_t half = (uint32_t{1} << (drop - 1)) - 1 + ((bits >> drop) & 1u);
  return std::bit_cast<float>((bits + half) & ~((uint32_t{1} << drop) - 1));
}

// The mantissa bits a compute type keeps of float32 inputs; 0: full precision, products summed in double.
int input_mantissa_bits(cublasComputeType_t compute) {
  switch (compute) {
    case CUBLAS_COMPUTE_32F_FAST_TF32: return 10;
    case CUBLAS_COMPUTE_32F_FAST_16BF: return 7;
    default: return 0;
  }
}

// C (m x n, column-major) = alpha op(A) op(B) + beta C for each batch item, with cuBLAS's argument checks. With
// `mantissa_bits` > 0 (float only) A and B are rounded to that many bits and the sum is a float's.
template <class T>
cublasStatus_t host_gemm(cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k, const void* alpha_ptr,
                         const void* a_ptr, int lda, long long stride_a, const void* b_ptr, int ldb, long long stride_b,
                         const void* beta_ptr, void* c_ptr, int ldc, long long stride_c, int batch, int mantissa_bits) {
  const bool bad = m < 0 || n < 0 || k < 0 || batch < 0 || lda < std::max(1, op_a == CUBLAS_OP_N ? m : k) ||
                   ldb < std::max(1, op_b == CUBLAS_OP_N ? k : n) || ldc < std::max(1, m);
  if (bad) {
    std::fprintf(stderr, "emulated cuBLAS: invalid value (m %d n %d k %d lda %d ldb %d ldc %d batch %d)\n", m, n, k,
                 lda, ldb, ldc, batch);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const T alpha = *static_cast<const T*>(alpha_ptr), beta = *static_cast<const T*>(beta_ptr);
  for (int item = 0; item < batch; ++item) {
    const T* a = static_cast<const T*>(a_ptr) + item * stride_a;
    const T* b = static_cast<const T*>(b_ptr) + item * stride_b;
    T* c = static_cast<T*>(c_ptr) + item * stride_c;
    for (long j = 0; j < n; ++j) {
      for (long i = 0; i < m; ++i) {
        double sum = 0;
        float fast_sum = 0;
        for (long l = 0; l < k; ++l) {
          const T av = op_a == CUBLAS_OP_N ? a[i + l * lda] : a[l + i * lda];
          const T bv = op_b == CUBLAS_OP_N ? b[l + j * ldb] : b[j + l * ldb];
          if constexpr (std::is_same_v<T, float>) {
            if (mantissa_bits > 0) {
              fast_sum += round_mantissa(av, mantissa_bits) * round_mantissa(bv, mantissa_bits);
              continue;
            }
          }
          sum += static_cast<double>(av) * static_cast<double>(bv);
        }
        if (mantissa_bits > 0) sum = fast_sum;
        T& cv = c[i + j * ldc];
        cv = beta == T(0) ? static_cast<T>(alpha * sum) : static_cast<T>(alpha * sum + beta * cv);
      }
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

// The cuBLAS and CUDA runtime entry points the emulated families call, defined here in place of the libraries'.
extern "C" {

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n,
                                          int k, const void* alpha, const void* a, cudaDataType a_type, int lda,
                                          long long stride_a, const void* b, cudaDataType, int ldb, long long stride_b,
                                          const void* beta, void* c, cudaDataType, int ldc, long long stride_c,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t) {
  return a_type == CUDA_R_32F ? host_gemm<float>(op_a, op_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta,
                                                 c, ldc, stride_c, batch, input_mantissa_bits(compute))
                              : host_gemm<double>(op_a, op_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta,
                                                  c, ldc, stride_c, batch, 0);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                            const void* alpha, const void* a, cudaDataType a_type, int lda, const void* b,
                            cudaDataType b_type, int ldb, const void* beta, void* c, cudaDataType c_type, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  return cublasGemmStridedBatchedEx(handle, op_a, op_b, m, n, k, alpha, a, a_type, lda, 0, b, b_type, ldb, 0, beta, c,
                                    c_type, ldc, 0, 1, compute, algo);
}

const char* cublasGetStatusString(cublasStatus_t) { return "emulated cuBLAS call failed"; }
const char* cublasGetStatusName(cublasStatus_t) { return "CUBLAS_STATUS_INVALID_VALUE"; }

// The runtime's last-error slot (cudaGetLastError), which the event stand-ins below fill with cudaErrorNotReady as
// the runtime does. The real launches check it (cuda::check_launch) and report what was left there; here the
// copies, fills and event records do, so an error the code forgot to clear fails the next call.
static cudaError_t g_last_error = cudaSuccess;

cudaError_t cudaGetLastError() {
  const cudaError_t last = g_last_error;
  g_last_error = cudaSuccess;
  return last;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  if (g_last_error != cudaSuccess) return cudaGetLastError();
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  if (g_last_error != cudaSuccess) return cudaGetLastError();
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

// Pinned memory and events, for backends/cuda/host_copies.cu (the readback and the upload, compiled here as
// written). Host memory stands in for pinned memory. An event stands in for a copy engine a little behind the
// host: after each cudaEventRecord, the first cudaEventQuery answers cudaErrorNotReady (left in the last-error
// slot too), a later query or cudaEventSynchronize cudaSuccess. The copies themselves run at once (cudaMemcpyAsync
// above), so the values are right whatever the host does; what this checks is that the code takes "not ready"
// (an upload waits for the event before it refills that staging buffer) and clears the error it leaves.
struct EmulatedEvent {
  bool recorded_unqueried = false;
};

cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned int) {
  *ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  return *ptr != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  *event = reinterpret_cast<cudaEvent_t>(new EmulatedEvent);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete reinterpret_cast<EmulatedEvent*>(event);
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (g_last_error != cudaSuccess) return cudaGetLastError();
  reinterpret_cast<EmulatedEvent*>(event)->recorded_unqueried = true;
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  EmulatedEvent& e = *reinterpret_cast<EmulatedEvent*>(event);
  if (!e.recorded_unqueried) return cudaSuccess;
  e.recorded_unqueried = false;
  g_last_error = cudaErrorNotReady;
  return cudaErrorNotReady;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  reinterpret_cast<EmulatedEvent*>(event)->recorded_unqueried = false;
  return cudaSuccess;
}

// Stream capture, for backends/cuda/graph.cu (compiled here against these stand-ins, as the kernel families are):
// the emulated backend's launches are recorded (Backend::start_recording, which launch() honours) between
// cudaStreamBeginCapture and cudaStreamEndCapture; the "graph" is the list of recorded calls, and cudaGraphLaunch
// runs them on the emulated backend, on the same pointers. A real stream capture (what breaks one, the graph's
// launch cost) is not checked here.
struct EmulatedGraph {
  std::vector<atelier::RecordedCall> calls;
};

cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode mode) {
  if (mode != cudaStreamCaptureModeRelaxed) return cudaErrorInvalidValue;  // the mode graph.cu must ask for
  atelier::cuda_backend_or_null()->start_recording();
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* graph) {
  *graph = reinterpret_cast<cudaGraph_t>(new EmulatedGraph{atelier::cuda_backend_or_null()->stop_recording()});
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = reinterpret_cast<cudaGraphExec_t>(new EmulatedGraph(*reinterpret_cast<EmulatedGraph*>(graph)));
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete reinterpret_cast<EmulatedGraph*>(graph);
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete reinterpret_cast<EmulatedGraph*>(exec);
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
  for (const atelier::RecordedCall& call : reinterpret_cast<EmulatedGraph*>(exec)->calls) {
    call(*atelier::cuda_backend_or_null());
  }
  return cudaSuccess;
}

}  // extern "C"
