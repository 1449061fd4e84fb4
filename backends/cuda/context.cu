// The CUDA context (see context.h): device 0, one stream, the cuBLAS handle, a workspace and the caching
// allocator over cudaMalloc/cudaFree.
#include "backends/cuda/context.h"

#include <cstdlib>
#include <string>

#include "backends/cuda/cublas_api.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernel_count.h"
#include "backends/error.h"

namespace atelier::cuda {

namespace {

// cudaMalloc for the caching allocator: nullptr when out of memory (the allocator empties its cache and tries
// again, then throws naming the size), an atelier::Error for any other failure.
void* device_allocate(size_t bytes) {
  void* ptr = nullptr;
  const cudaError_t err = cudaMalloc(&ptr, bytes);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear the (non-sticky) error, so the next call does not report it again
    return nullptr;
  }
  if (err != cudaSuccess) cuda_detail::throw_cuda_error("cudaMalloc", __FILE__, __LINE__, err);
  return ptr;
}

// cudaFree, reached from destructors: a failure is reported on stderr and cleared, and the program goes on (the
// block is lost; an error that breaks the device shows up at the next checked call).
void device_release(void* ptr) noexcept { ATELIER_CUDA_CLEANUP(cudaFree(ptr)); }

}  // namespace

Context::Context() : allocator_(SystemMemory{"cuda", &device_allocate, &device_release}), workspace_(allocator_) {
  ATELIER_CUDA_CHECK(cudaSetDevice(0));
  // A blocking stream: it also waits for anything a library might queue on the legacy default stream.
  ATELIER_CUDA_CHECK(cudaStreamCreate(&stream_));
}

cublasHandle_t Context::cublas() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (cublas_ == nullptr) {
    // Made inside a capture, the workspace below would belong to the graph (and cublasCreate itself might break
    // the capture): the first GEMM must run eagerly.
    ATELIER_CHECK(!allocator_.capturing(),
                  "cuBLAS first used inside a graph capture: its workspace would belong "
                  "to the graph; run one eager step (a GEMM) before capturing");
    const Cublas& api = cublas_api();  // loads cuBLAS (cublas_api.h)
    cublasHandle_t handle = nullptr;
    ATELIER_CUBLAS_CHECK(api.create(&handle));
    ATELIER_CUBLAS_CHECK(api.set_stream(handle, stream_));
    // A workspace of our own, made once: cuBLAS then never allocates one itself, neither eagerly nor inside a
    // graph capture (--cuda-graph), so a captured GEMM picks its algorithm with the same workspace as an eager one
    // (the same bits). 32 MiB is what NVIDIA suggests for Hopper. It comes from the caching allocator and is never
    // given back, so the allocator's in_use and peak count it (as PyTorch's counters count its cuBLAS
    // workspaces).
    try {
      cublas_workspace_ = allocator_.allocate(kCublasWorkspaceBytes);
    } catch (...) {
      api.destroy(handle);
      throw;
    }
    ATELIER_CUBLAS_CHECK(api.set_workspace(handle, cublas_workspace_, kCublasWorkspaceBytes));
    cublas_ = handle;
  }
  return cublas_;
}

void Context::synchronize() { ATELIER_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

Context& context() {
  static Context* const instance = new Context();  // never deleted (see context.h)
  return *instance;
}

bool sync_each_launch() {
  static const bool sync = [] {
    const char* value = std::getenv("ATELIER_CUDA_SYNC");
    return value != nullptr && std::string(value) == "1";
  }();
  return sync;
}

void check_launch(const char* what) {
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess) cuda_detail::throw_cuda_error(what, __FILE__, __LINE__, launched);
  count_kernel();
  if (!sync_each_launch()) return;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  ATELIER_CUDA_CHECK(cudaStreamIsCapturing(context().stream(), &status));
  if (status != cudaStreamCaptureStatusNone) return;
  const cudaError_t ran = cudaStreamSynchronize(context().stream());
  if (ran != cudaSuccess) {
    (void)cudaGetLastError();
    ATELIER_FAIL("ATELIER_CUDA_SYNC: the device failed running " << what << ": " << cudaGetErrorString(ran) << " ("
                                                                 << cudaGetErrorName(ran) << ")");
  }
}

}  // namespace atelier::cuda
