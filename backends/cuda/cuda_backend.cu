// The CUDA backend's shell: device probe, memory and copies. Primitives arrive one kernel family per .cu file.
#include "backends/cuda/cuda_backend.h"

#include <algorithm>

#include "backends/cuda/cuda_check.h"

namespace atelier {

bool CudaBackend::available() const {
  // The one unchecked CUDA call: no driver, no device or any other error means "not available". The count is
  // read only on success. A function-local static runs it once, thread-safely, on first use (never at load).
  static const bool is_available = [] {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    return err == cudaSuccess && count > 0;
  }();
  return is_available;
}

void* CudaBackend::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* ptr = nullptr;
  // Out of memory is told apart from other failures so that its message names the size asked for.
  const cudaError_t err = cudaMalloc(&ptr, bytes);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear the (non-sticky) error, so the next call does not report it again
    ATELIER_FAIL("cuda allocator: out of memory allocating " << bytes << " bytes (" << allocator_stats().in_use
                                                             << " bytes in use)");
  }
  if (err != cudaSuccess) cuda_detail::throw_cuda_error("cudaMalloc", __FILE__, __LINE__, err);
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.in_use += bytes;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  ++stats_.system_allocs;
  return ptr;
}

void CudaBackend::deallocate(void* ptr, size_t bytes) {
  if (ptr == nullptr) return;
  ATELIER_CUDA_CHECK(cudaFree(ptr));
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.in_use -= bytes;
}

AllocatorStats CudaBackend::allocator_stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CudaBackend::empty_cache() {}  // nothing is cached yet

void CudaBackend::copy_to_host(void* host_dst, const void* device_src, size_t bytes) {
  if (bytes == 0) return;
  ATELIER_CUDA_CHECK(cudaMemcpy(host_dst, device_src, bytes, cudaMemcpyDeviceToHost));
}

void CudaBackend::copy_from_host(void* device_dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  ATELIER_CUDA_CHECK(cudaMemcpy(device_dst, host_src, bytes, cudaMemcpyHostToDevice));
}

void CudaBackend::synchronize() { ATELIER_CUDA_CHECK(cudaDeviceSynchronize()); }

bool CudaBackend::supports(PrimitiveOp, DType) const { return false; }

Backend* cuda_backend_or_null() {
  static CudaBackend backend;  // constructed on first call; its constructor makes no CUDA call
  return &backend;
}

}  // namespace atelier
