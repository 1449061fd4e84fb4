// Host emulation (scripts/cuda-emulate.sh) of backends/cuda/context.h: no stream and no cuBLAS handle (the
// emulated cuBLAS in emulated_backend.cpp ignores both; the handle's first use is still refused in a capture), and a
// workspace from the CUDA backend's allocator, as the real context's (so that the emulated runtime and cuBLAS, which
// check that device work gets device memory, see it as device memory).
#pragma once

#include <cstddef>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backends/backend.h"
#include "backends/cuda/kernel_count.h"
#include "backends/error.h"

namespace atelier::cuda {

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
  // As the real one: at least `bytes`, valid until the next call, which may give the block back for a larger one;
  // during a capture a block of the capture's pool, given back to it at once (backends/cuda/context.cu says why).
  void* workspace(size_t bytes) {
    Backend& backend = *cuda_backend_or_null();
    if (backend.capturing()) {
      void* block = backend.allocate(bytes);
      backend.deallocate(block, bytes);
      return block;
    }
    if (bytes > bytes_) {
      void* fresh = backend.allocate(bytes);
      backend.deallocate(workspace_, bytes_);
      workspace_ = fresh;
      bytes_ = bytes;
    }
    return workspace_;
  }

 private:
  void* workspace_ = nullptr;
  size_t bytes_ = 0;
  bool cublas_used_ = false;
};

inline Context& context() {
  static Context instance;
  return instance;
}

// The emulated kernels have run when this is called: only the count (kernel_count.h).
inline void check_launch(const char*) { count_kernel(); }

}  // namespace atelier::cuda
