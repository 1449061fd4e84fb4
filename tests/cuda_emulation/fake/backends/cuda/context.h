// Host emulation (scripts/cuda-emulate.sh) of backends/cuda/context.h: no stream and no cuBLAS handle (the
// emulated cuBLAS in emulated_backend.cpp ignores both; the handle's first use is still refused in a capture), and
// the real context's workspace class over the CUDA backend's allocator (so that the emulated runtime and cuBLAS,
// which check that device work gets device memory, see it as device memory).
#pragma once

#include <cstddef>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backends/backend.h"
#include "backends/cuda/kernel_count.h"
#include "backends/error.h"
#include "backends/workspace.h"

namespace atelier::cuda {

// The CUDA backend's caching allocator over host memory (tests/cuda_emulation/emulated_backend.cpp).
CachingAllocator& emulated_device_allocator();

class Context {
 public:
  cudaStream_t stream() const { return nullptr; }
  // No handle; but, as the real one, the first use may not be inside a capture (cublasCreate and the workspace
  // made with the handle would belong to the graph).
  cublasHandle_t cublas() {
    ATELIER_CHECK(cublas_used_ || !cuda_backend_or_null()->capturing(),
                  "cuBLAS first used inside a graph capture: its workspace would belong "
                  "to the graph; run one eager step (a GEMM) before capturing");
    cublas_used_ = true;
    return nullptr;
  }
  // The real context's workspace (backends/workspace.h), over the emulated backend's caching allocator: the
  // emulated tests run its logic as written, captures included.
  void* workspace(size_t bytes) { return workspace_.get(bytes); }

 private:
  Workspace workspace_{emulated_device_allocator()};
  bool cublas_used_ = false;
};

inline Context& context() {
  static Context instance;
  return instance;
}

// The emulated kernels have run when this is called: only the count (kernel_count.h).
inline void check_launch(const char*) { count_kernel(); }

// ATELIER_CUDA_SYNC has no meaning here (the emulated kernels run as they are launched): the device's default.
inline bool sync_each_launch() { return false; }

}  // namespace atelier::cuda
