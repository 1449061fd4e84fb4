// The CUDA backend emulated on the host, for scripts/cuda-emulate.sh: the CUDA test program runs against it where
// no GPU is at hand, so the kernels' index math and the tests themselves are checked before a GPU session.
//
// "Device" memory is host memory. backends/cuda/{copy_fill,random,elementwise,reduce,conv,winograd,gemm,index,
// upsample,optimizer}.cu are compiled against the fake launch.h and context.h beside this file (their
// one-thread-per-index functors run in host loops, the reductions' block-cooperative kernels as fibers switching at
// each sync(): block_threads.h), their device-to-device copies reach the cudaMemcpyAsync below and their GEMMs the
// column-major host GEMM below, which checks its arguments as cuBLAS does and honours the compute type:
// CUBLAS_COMPUTE_32F and _64F sum exact products in double; CUBLAS_COMPUTE_32F_FAST_TF32 and _FAST_16BF first
// round A and B to TF32 (10-bit mantissa) or bfloat16 (7-bit mantissa), to nearest even, then sum their products
// (exact in float) in float, in k order, as a tensor core does; so the precision modes' accuracy can be stated
// before a GPU runs them (docs/gpu.md). host_copies.cu (the pinned readback and upload) runs as written against
// the event stand-ins below, whose events answer "not ready" once after each record.
// The stand-ins check what the device refuses or leaves undefined where a host copy or loop would give an answer
// anyway: "device" memory is the emulated allocator's blocks (and pinned memory cudaHostAlloc's), so a copy's kind
// must match where its source and destination are, and they may not overlap; a memset and a GEMM's A, B and C
// must be device memory; a GEMM's types and compute type must go together (float64 with CUBLAS_COMPUTE_64F, ...),
// its pointers be aligned to their elements, C share no memory with A or B, nor its batch items with each other;
// and during a capture, a cudaFree, a copy from pageable memory or a wait for a captured event make
// cudaStreamEndCapture fail, as on the device. Each failure says why on stderr. What this cannot check: warps,
// the GPU's memory model, atomics, real cuBLAS and anything about the device itself (the launch limits are the
// launchers' compile-time checks, backends/cuda/launch_config.h).
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backends/caching_allocator.h"
#include "backends/cuda/bad_index.h"
#include "backends/cuda/cublas_api.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/error.h"
#include "tests/cuda_emulation/capture.h"

namespace atelier {

namespace {

// The blocks of one kind of memory (the emulated device's, or pinned host memory), so that the runtime and cuBLAS
// stand-ins below can check what the device checks or needs: a device pointer where one is due, a copy in the
// direction its kind names.
class MemoryMap {
 public:
  void add(const void* ptr, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    blocks_[reinterpret_cast<uintptr_t>(ptr)] = bytes;
  }
  void remove(const void* ptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    blocks_.erase(reinterpret_cast<uintptr_t>(ptr));
  }
  // True when [ptr, ptr + bytes) lies within one block (bytes 0: ptr within one, or one past its end).
  bool holds(const void* ptr, size_t bytes) const {
    const auto first = reinterpret_cast<uintptr_t>(ptr);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = blocks_.upper_bound(first);
    if (it == blocks_.begin()) return false;
    --it;
    return first - it->first <= it->second && bytes <= it->second - (first - it->first);
  }

 private:
  mutable std::mutex mutex_;
  std::map<uintptr_t, size_t> blocks_;  // start -> bytes
};

// Every block the emulated CUDA allocator has from the system (the "device" memory) and every cudaHostAlloc block.
// Never destroyed: the allocator's destructor, at exit, still gives its blocks back through host_release.
MemoryMap& device_memory() {
  static MemoryMap* const map = new MemoryMap;
  return *map;
}
MemoryMap& pinned_memory() {
  static MemoryMap* const map = new MemoryMap;
  return *map;
}

// Set between the emulated cudaStreamBeginCapture and cudaStreamEndCapture, while g_captured collects the device
// work queued meanwhile (capture.h); a call that would break a stream capture on the device (capture_violation)
// makes cudaStreamEndCapture fail as the device's would.
bool g_capturing = false;
bool g_capture_invalidated = false;
std::vector<std::function<void()>> g_captured;

void capture_violation(const char* what) {
  std::fprintf(stderr, "emulated CUDA: %s during a stream capture: on the device this invalidates the capture\n", what);
  g_capture_invalidated = true;
}

void* host_allocate(size_t bytes) {
  const size_t size = (bytes + 255) / 256 * 256;
  void* ptr = std::aligned_alloc(256, size);
  if (ptr != nullptr) device_memory().add(ptr, size);
  return ptr;
}
void host_release(void* ptr) noexcept {
  if (g_capturing) capture_violation("cudaFree (a block given back to the system)");
  device_memory().remove(ptr);
  std::free(ptr);
}

// The backends' caching allocator over host memory, standing in for the one over cudaMalloc.
CachingAllocator& allocator() {
  static CachingAllocator instance(SystemMemory{"cuda (emulated)", &host_allocate, &host_release});
  return instance;
}

Backend& cpu() { return backend_for(Device::cpu()); }

}  // namespace

// For the stand-in context's workspace (tests/cuda_emulation/fake/backends/cuda/context.h declares it).
namespace cuda {
CachingAllocator& emulated_device_allocator() { return allocator(); }
}  // namespace cuda

bool CudaBackend::available() const { return true; }
std::string CudaBackend::unavailable_reason() const { return ""; }
void* CudaBackend::allocate(size_t bytes) { return allocator().allocate(bytes); }
void CudaBackend::deallocate(void* ptr, size_t bytes) { allocator().deallocate(ptr, bytes); }
AllocatorStats CudaBackend::allocator_stats() const { return allocator().stats(); }
void CudaBackend::reset_peak_in_use() { allocator().reset_peak_in_use(); }
CachingAllocator* CudaBackend::caching_allocator() { return &allocator(); }
void CudaBackend::empty_cache() {
  refuse_in_capture("empty_cache");
  allocator().empty_cache();
}
// Refused during a capture, as on the device (backends/cuda/cuda_backend.cu).
// Through the cudaMemcpyAsync stand-in below, as on the device, so that its checks apply (the source of a copy to
// the host is device memory, ...).
void CudaBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  refuse_in_capture("copy_to_host");
  if (bytes == 0) return;
  const cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, nullptr);
  ATELIER_CHECK(err == cudaSuccess, "emulated copy_to_host: cudaMemcpyAsync failed (" << err << "; stderr says why)");
  cuda::report_bad_index();  // as on the device, after the copy
}
void CudaBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  refuse_in_capture("copy_from_host");
  count_host_sync_upload();  // as on the device: from pageable memory
  if (bytes == 0) return;
  const cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, nullptr);
  ATELIER_CHECK(err == cudaSuccess, "emulated copy_from_host: cudaMemcpyAsync failed (" << err << "; stderr says why)");
}
void CudaBackend::synchronize() {
  refuse_in_capture("synchronize");
  cuda::report_bad_index();
}
// The host's clock stands in for events on the stream: the emulated kernels have finished when they return.
std::unique_ptr<DeviceTimeline> CudaBackend::make_timeline() { return cpu().make_timeline(); }
// The CUDA table for every primitive, as cuda_backend.cu builds it: every family's kernels run here (emulated),
// so a primitive missing from a CUDA type list fails to compile instead of borrowing the CPU's table.
bool CudaBackend::supports(PrimitiveOp op, DType dtype) const {
  switch (op) {
#define X(name, Args)     \
  case PrimitiveOp::name: \
    return cuda::name##_types::contains(dtype);
#include "backends/primitives.def"
#undef X
  }
  return false;
}

Backend* cuda_backend_or_null() {
  static CudaBackend backend;
  return &backend;
}

namespace cuda {

bool stream_capturing() { return g_capturing; }
void capture_work(std::function<void()> work) { g_captured.push_back(std::move(work)); }

}  // namespace cuda

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

// cuBLAS's checks of the sizes and leading dimensions: false (and why, on stderr) where it returns
// CUBLAS_STATUS_INVALID_VALUE.
bool gemm_sizes_valid(cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k, int lda, int ldb, int ldc,
                      int batch) {
  const bool bad = m < 0 || n < 0 || k < 0 || batch < 0 || lda < std::max(1, op_a == CUBLAS_OP_N ? m : k) ||
                   ldb < std::max(1, op_b == CUBLAS_OP_N ? k : n) || ldc < std::max(1, m);
  if (bad) {
    std::fprintf(stderr, "emulated cuBLAS: invalid value (m %d n %d k %d lda %d ldb %d ldc %d batch %d)\n", m, n, k,
                 lda, ldb, ldc, batch);
  }
  return !bad;
}

// C (m x n, column-major) = alpha op(A) op(B) + beta C for each batch item (the arguments checked before). With
// `mantissa_bits` > 0 (float only) A and B are rounded to that many bits and the sum is a float's.
template <class T>
void host_gemm(cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k, const void* alpha_ptr,
               const void* a_ptr, int lda, long long stride_a, const void* b_ptr, int ldb, long long stride_b,
               const void* beta_ptr, void* c_ptr, int ldc, long long stride_c, int batch, int mantissa_bits) {
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
}

// The element offsets, from its pointer, of a column-major matrix of rows x cols (leading dimension ld) in each of
// `batch` items `stride` elements apart: from `first` to `last`, both included.
struct Span {
  long long first, last;
};

Span matrix_span(long long rows, long long cols, long long ld, long long stride, long long batch) {
  const long long item = (cols - 1) * ld + rows - 1, last_item = (batch - 1) * stride;
  return {std::min(0LL, last_item), std::max(0LL, last_item) + item};
}

// One operand of a GEMM call as cuBLAS sees it: stored rows x cols, column-major.
struct Operand {
  const char* name;
  const void* ptr;
  long long rows, cols, ld, stride;
  uintptr_t byte(long long offset, size_t element) const {
    return reinterpret_cast<uintptr_t>(ptr) + static_cast<uintptr_t>(offset) * element;
  }
  template <class F>
  void for_each_element(long long batch, F f) const {
    for (long long item = 0; item < batch; ++item) {
      for (long long j = 0; j < cols; ++j) {
        for (long long i = 0; i < rows; ++i) f(item * stride + j * ld + i);
      }
    }
  }
};

// What cuBLAS refuses, or what it computes differently from the host GEMM below, in a call whose sizes and leading
// dimensions host_gemm accepts: "" when nothing. The host GEMM reads and writes host memory in a fixed order, so it
// would give an answer anyway; the device would not.
std::string gemm_operand_error(const Operand& a, const Operand& b, const Operand& c, long long batch, size_t element) {
  char buf[320];
  for (const Operand* x : {&a, &b, &c}) {
    if (x->rows == 0 || x->cols == 0 || batch == 0) continue;
    if (reinterpret_cast<uintptr_t>(x->ptr) % element != 0) {
      std::snprintf(buf, sizeof(buf), "%s (%p) is not aligned to its %zu-byte elements", x->name, x->ptr, element);
      return buf;
    }
    const Span span = matrix_span(x->rows, x->cols, x->ld, x->stride, batch);
    const auto bytes = static_cast<size_t>(span.last - span.first + 1) * element;
    if (!atelier::device_memory().holds(reinterpret_cast<const void*>(x->byte(span.first, element)), bytes)) {
      std::snprintf(buf, sizeof(buf), "%s (%p, %zu bytes from element offset %lld) is not device memory", x->name,
                    x->ptr, bytes, span.first);
      return buf;
    }
  }
  if (c.rows == 0 || c.cols == 0 || batch == 0) return "";
  const Span c_span = matrix_span(c.rows, c.cols, c.ld, c.stride, batch);
  // C's items are written concurrently: none may share an element with another (a stride of 0, or one shorter
  // than an item's span, unless the items interleave without touching).
  std::unordered_set<uintptr_t> c_bytes;
  bool c_listed = false;
  const auto list_c = [&] {
    if (c_listed) return true;
    c_listed = true;
    bool distinct = true;
    c.for_each_element(
        batch, [&](long long offset) { distinct = c_bytes.insert(c.byte(offset, element)).second && distinct; });
    return distinct;
  };
  if (batch > 1 && (c.stride < 0 ? -c.stride : c.stride) <= (c.cols - 1) * c.ld + c.rows - 1 && !list_c()) {
    std::snprintf(buf, sizeof(buf),
                  "C's %lld batch items overlap (stride %lld, ldc %lld, %lld x %lld): cuBLAS writes them concurrently",
                  batch, c.stride, c.ld, c.rows, c.cols);
    return buf;
  }
  // C may not share memory with A or B: cuBLAS reads them while it writes C, in no fixed order.
  for (const Operand* x : {&a, &b}) {
    if (x->rows == 0 || x->cols == 0) continue;
    const Span span = matrix_span(x->rows, x->cols, x->ld, x->stride, batch);
    if (x->byte(span.last, element) < c.byte(c_span.first, element) ||
        c.byte(c_span.last, element) < x->byte(span.first, element)) {
      continue;
    }
    list_c();
    bool shared = false;
    x->for_each_element(batch,
                        [&](long long offset) { shared = shared || c_bytes.count(x->byte(offset, element)) != 0; });
    if (shared) {
      std::snprintf(buf, sizeof(buf), "C (%p) shares memory with %s (%p): cuBLAS reads %s while it writes C", c.ptr,
                    x->name, x->ptr, x->name);
      return buf;
    }
  }
  return "";
}

// "" for the (A, B, C, compute) type combinations the emulation stands in for, which cuBLAS accepts: float64 with
// CUBLAS_COMPUTE_64F, float32 with CUBLAS_COMPUTE_32F or a fast variant of it; else why not.
std::string gemm_type_error(cudaDataType a, cudaDataType b, cudaDataType c, cublasComputeType_t compute) {
  if (a != b || a != c) return "A, B and C of different types";
  if (a == CUDA_R_64F) {
    return compute == CUBLAS_COMPUTE_64F || compute == CUBLAS_COMPUTE_64F_PEDANTIC
               ? ""
               : "float64 operands need CUBLAS_COMPUTE_64F (a float32 compute type reads them as floats)";
  }
  if (a == CUDA_R_32F) {
    return compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_PEDANTIC ||
                   compute == CUBLAS_COMPUTE_32F_FAST_TF32 || compute == CUBLAS_COMPUTE_32F_FAST_16BF ||
                   compute == CUBLAS_COMPUTE_32F_FAST_16F
               ? ""
               : "float32 operands need a CUBLAS_COMPUTE_32F* compute type";
  }
  return "a data type the emulation does not stand in for";
}

const char* memory_kind(bool device) { return device ? "device" : "host"; }

// What the device refuses, or leaves undefined, in a cudaMemcpyAsync that memmove does anyway: "" when nothing.
// The source and destination may not overlap, and the kind must name where each is (the runtime's documentation:
// pointers that do not match the direction give undefined behaviour).
std::string memcpy_error(const void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return "";
  const auto d = reinterpret_cast<uintptr_t>(dst), s = reinterpret_cast<uintptr_t>(src);
  if (d < s + bytes && s < d + bytes) return "the source and destination overlap";
  const bool dst_device = atelier::device_memory().holds(dst, bytes);
  const bool src_device = atelier::device_memory().holds(src, bytes);
  bool src_ok = true, dst_ok = true;
  switch (kind) {
    case cudaMemcpyHostToHost: src_ok = !src_device, dst_ok = !dst_device; break;
    case cudaMemcpyHostToDevice: src_ok = !src_device, dst_ok = dst_device; break;
    case cudaMemcpyDeviceToHost: src_ok = src_device, dst_ok = !dst_device; break;
    case cudaMemcpyDeviceToDevice: src_ok = src_device, dst_ok = dst_device; break;
    default: break;  // cudaMemcpyDefault: the runtime tells from the pointers
  }
  if (src_ok && dst_ok) return "";
  char buf[200];
  std::snprintf(buf, sizeof(buf), "kind %d, but the source is %s memory and the destination %s memory (all %zu bytes)",
                static_cast<int>(kind), memory_kind(src_device), memory_kind(dst_device), bytes);
  return buf;
}

}  // namespace

// The cuBLAS and CUDA runtime entry points the emulated families call, defined here in place of the libraries'.
extern "C" {

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n,
                                          int k, const void* alpha, const void* a, cudaDataType a_type, int lda,
                                          long long stride_a, const void* b, cudaDataType b_type, int ldb,
                                          long long stride_b, const void* beta, void* c, cudaDataType c_type, int ldc,
                                          long long stride_c, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t) {
  const std::string type_error = gemm_type_error(a_type, b_type, c_type, compute);
  if (!type_error.empty()) {
    std::fprintf(stderr, "emulated cuBLAS: not supported: %s (types %d %d %d, compute type %d)\n", type_error.c_str(),
                 a_type, b_type, c_type, compute);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (!gemm_sizes_valid(op_a, op_b, m, n, k, lda, ldb, ldc, batch)) return CUBLAS_STATUS_INVALID_VALUE;
  {
    const bool na = op_a == CUBLAS_OP_N, nb = op_b == CUBLAS_OP_N;
    const std::string error = gemm_operand_error({"A", a, na ? m : k, na ? k : m, lda, stride_a},
                                                 {"B", b, nb ? k : n, nb ? n : k, ldb, stride_b},
                                                 {"C", c, m, n, ldc, stride_c}, batch, a_type == CUDA_R_32F ? 4 : 8);
    if (!error.empty()) {
      std::fprintf(stderr, "emulated cuBLAS: invalid value: %s (m %d n %d k %d batch %d)\n", error.c_str(), m, n, k,
                   batch);
      return CUBLAS_STATUS_INVALID_VALUE;
    }
  }
  // alpha and beta are read now (host pointer mode), also when the call is captured for a graph.
  double scalars[2] = {};
  std::memcpy(&scalars[0], alpha, a_type == CUDA_R_32F ? sizeof(float) : sizeof(double));
  std::memcpy(&scalars[1], beta, a_type == CUDA_R_32F ? sizeof(float) : sizeof(double));
  atelier::cuda::run_or_capture([=] {
    if (a_type == CUDA_R_32F) {
      host_gemm<float>(op_a, op_b, m, n, k, &scalars[0], a, lda, stride_a, b, ldb, stride_b, &scalars[1], c, ldc,
                       stride_c, batch, input_mantissa_bits(compute));
    } else {
      host_gemm<double>(op_a, op_b, m, n, k, &scalars[0], a, lda, stride_a, b, ldb, stride_b, &scalars[1], c, ldc,
                        stride_c, batch, 0);
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
                            const void* alpha, const void* a, cudaDataType a_type, int lda, const void* b,
                            cudaDataType b_type, int ldb, const void* beta, void* c, cudaDataType c_type, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  return cublasGemmStridedBatchedEx(handle, op_a, op_b, m, n, k, alpha, a, a_type, lda, 0, b, b_type, ldb, 0, beta, c,
                                    c_type, ldc, 0, 1, compute, algo);
}

const char* cublasGetStatusString(cublasStatus_t) { return "emulated cuBLAS call failed (its reason is on stderr)"; }
const char* cublasGetStatusName(cublasStatus_t status) {
  return status == CUBLAS_STATUS_NOT_SUPPORTED ? "CUBLAS_STATUS_NOT_SUPPORTED" : "CUBLAS_STATUS_INVALID_VALUE";
}

// The runtime's last-error slot (cudaGetLastError), which the event stand-ins below fill with cudaErrorNotReady as
// the runtime does. The real launches check it (cuda::check_launch) and report what was left there; here the
// copies, fills and event records do, so an error the code forgot to clear fails the next call.
static cudaError_t g_last_error = cudaSuccess;

cudaError_t cudaGetLastError() {
  const cudaError_t last = g_last_error;
  g_last_error = cudaSuccess;
  return last;
}

// Both check what the device would (memcpy_error above; a memset's destination is device memory) and fail with
// cudaErrorInvalidValue, the reason on stderr, where the host copy would have done something anyway.
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  if (g_last_error != cudaSuccess) return cudaGetLastError();
  if (bytes > 0 && !atelier::device_memory().holds(ptr, bytes)) {
    std::fprintf(stderr, "emulated cudaMemsetAsync: %zu bytes at %p are not device memory\n", bytes, ptr);
    return cudaErrorInvalidValue;
  }
  atelier::cuda::run_or_capture([=] { std::memset(ptr, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  if (g_last_error != cudaSuccess) return cudaGetLastError();
  const std::string error = memcpy_error(dst, src, bytes, kind);
  if (!error.empty()) {
    std::fprintf(stderr, "emulated cudaMemcpyAsync(%p, %p, %zu): %s\n", dst, src, bytes, error.c_str());
    return cudaErrorInvalidValue;
  }
  if (atelier::g_capturing && kind != cudaMemcpyDeviceToDevice && !atelier::pinned_memory().holds(dst, bytes) &&
      !atelier::pinned_memory().holds(src, bytes)) {
    atelier::capture_violation("cudaMemcpyAsync to or from pageable host memory");
    return cudaErrorStreamCaptureUnsupported;
  }
  if (bytes > 0) atelier::cuda::run_or_capture([=] { std::memcpy(dst, src, bytes); });
  return cudaSuccess;
}

// Pinned memory and events, for backends/cuda/host_copies.cu (the readback and the upload, compiled here as
// written). Host memory stands in for pinned memory. An event stands in for a copy engine a little behind the
// host: after each cudaEventRecord, the first cudaEventQuery answers cudaErrorNotReady (left in the last-error
// slot too), a later query or cudaEventSynchronize cudaSuccess. The copies themselves run at once (cudaMemcpyAsync
// above), so the values are right whatever the host does; what this checks is that the code takes "not ready"
// (an upload waits for the event before it refills that staging buffer) and clears the error it leaves.
// An event recorded during a capture is a node of the graph: waiting for it or asking about it then breaks the
// capture on the device.
struct EmulatedEvent {
  bool recorded_unqueried = false;
  bool recorded_in_capture = false;
};

cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned int) {
  const size_t size = (bytes + 63) / 64 * 64;
  *ptr = std::aligned_alloc(64, size);
  if (*ptr != nullptr) atelier::pinned_memory().add(*ptr, size);
  return *ptr != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}

// Mapped pinned memory (cudaHostAllocMapped) has one address on the host and the device here, as with unified
// addressing on the device; memory cudaHostAlloc did not give is refused, as by the runtime.
cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned int) {
  if (!atelier::pinned_memory().holds(host, 1)) {
    std::fprintf(stderr, "emulated cudaHostGetDevicePointer: %p is not memory cudaHostAlloc gave\n", host);
    g_last_error = cudaErrorInvalidValue;
    return cudaErrorInvalidValue;
  }
  *device = host;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  if (ptr != nullptr && !atelier::pinned_memory().holds(ptr, 1)) {
    // As the runtime: an error, left in the last-error slot too.
    std::fprintf(stderr, "emulated cudaFreeHost: %p is not memory cudaHostAlloc gave\n", ptr);
    g_last_error = cudaErrorInvalidValue;
    return cudaErrorInvalidValue;
  }
  atelier::pinned_memory().remove(ptr);
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
  EmulatedEvent& e = *reinterpret_cast<EmulatedEvent*>(event);
  e.recorded_unqueried = true;
  e.recorded_in_capture = atelier::g_capturing;
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  EmulatedEvent& e = *reinterpret_cast<EmulatedEvent*>(event);
  if (atelier::g_capturing && e.recorded_in_capture) atelier::capture_violation("cudaEventQuery of a captured event");
  if (!e.recorded_unqueried) return cudaSuccess;
  e.recorded_unqueried = false;
  g_last_error = cudaErrorNotReady;
  return cudaErrorNotReady;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  EmulatedEvent& e = *reinterpret_cast<EmulatedEvent*>(event);
  if (atelier::g_capturing && e.recorded_in_capture) {
    atelier::capture_violation("cudaEventSynchronize of a captured event");
  }
  e.recorded_unqueried = false;
  return cudaSuccess;
}

// Stream capture, for backends/cuda/graph.cu (compiled here against these stand-ins, as the kernel families are):
// between cudaStreamBeginCapture and cudaStreamEndCapture the primitives run their host code as on the device
// (their allocations come from the capture's pool, the workspace too), while the device work they queue (the fake
// launchers' kernels, the copies, memsets and GEMMs above) is recorded (capture.h); the "graph" is that list, and
// cudaGraphLaunch runs it in order, on the same pointers and arguments. Of what breaks a real stream capture, the
// stand-ins report the calls they see during one (capture_violation: a cudaFree, a copy from pageable memory,
// waiting for a captured event), and cudaStreamEndCapture then fails as the device's does. Not checked: what the
// real runtime and cuBLAS do inside a capture, and the graph's launch cost.
struct EmulatedGraph {
  std::vector<std::function<void()>> work;
};

cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode mode) {
  if (mode != cudaStreamCaptureModeRelaxed) return cudaErrorInvalidValue;  // the mode graph.cu must ask for
  if (atelier::g_capturing) return cudaErrorIllegalState;
  atelier::g_capturing = true;
  atelier::g_capture_invalidated = false;
  atelier::g_captured.clear();
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* graph) {
  atelier::g_capturing = false;
  std::vector<std::function<void()>> work = std::move(atelier::g_captured);
  atelier::g_captured.clear();
  if (atelier::g_capture_invalidated) {
    *graph = nullptr;
    return cudaErrorStreamCaptureInvalidated;
  }
  *graph = reinterpret_cast<cudaGraph_t>(new EmulatedGraph{std::move(work)});
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
  if (atelier::g_capturing) return cudaErrorStreamCaptureUnsupported;  // no graph inside a capture here
  for (const std::function<void()>& work : reinterpret_cast<EmulatedGraph*>(exec)->work) work();
  return cudaSuccess;
}

}  // extern "C"

// The table the families call cuBLAS through (backends/cuda/cublas_api.h), over the stand-ins above instead of a
// loaded library. The handle's functions stay empty: the emulated context makes no handle.
const atelier::cuda::Cublas& atelier::cuda::cublas_api() {
  static const Cublas api = [] {
    Cublas table{};
    table.gemm_ex = &cublasGemmEx;
    table.gemm_strided_batched_ex = &cublasGemmStridedBatchedEx;
    table.status_string = &cublasGetStatusString;
    table.status_name = &cublasGetStatusName;
    table.file = "the emulation's host GEMM";
    return table;
  }();
  return api;
}
