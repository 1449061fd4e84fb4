// Host emulation (scripts/cuda-emulate.sh) of backends/cuda/context.h: no stream and no cuBLAS handle (the
// emulated cuBLAS in emulated_backend.cpp ignores both), a workspace of host memory.
#pragma once

#include <cstddef>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backends/cuda/kernel_count.h"

namespace atelier::cuda {

class Context {
 public:
  cudaStream_t stream() const { return nullptr; }
  cublasHandle_t cublas() { return nullptr; }
  void* workspace(size_t bytes) {
    if (workspace_.size() < bytes) workspace_.resize(bytes);
    return workspace_.data();
  }

 private:
  std::vector<char> workspace_;
};

inline Context& context() {
  static Context instance;
  return instance;
}

// The emulated kernels have run when this is called: only the count (kernel_count.h).
inline void check_launch(const char*) { count_kernel(); }

}  // namespace atelier::cuda
