// The CUDA backend, a shell for now: it probes for a device, allocates with cudaMalloc, copies to and from the host
// and synchronizes; it implements no primitive yet (each throws "<op> is not implemented on cuda"). Its kernels
// (cuBLAS plus one .cu file per kernel family), the cuBLAS handle, the stream and a caching allocator are to come.
//
// Nothing here touches CUDA at load or static-initialisation time: available() asks the driver once, on first
// call, and what is still to come (handle, stream, allocator) is to be made on first use too, so a binary built
// with CUDA runs its CPU work on machines without a GPU. This header is plain C++ (no CUDA headers), so .cpp files may
// include it; the checked-call macros live in backends/cuda/cuda_check.h.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>

#include "backends/backend.h"

namespace atelier {

class CudaBackend final : public Backend {
 public:
  std::string name() const override { return "cuda"; }
  // True when the driver reports at least one device. Asked once (cudaGetDeviceCount), then remembered.
  bool available() const override;

  // Memory straight from cudaMalloc/cudaFree for now (aligned to 256 bytes); the caching allocator comes later.
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  AllocatorStats allocator_stats() const override;
  void empty_cache() override;
  void copy_to_host(void* host_dst, const void* device_src, size_t bytes) override;
  void copy_from_host(void* device_dst, const void* host_src, size_t bytes) override;
  void synchronize() override;

  // No primitive is implemented yet: every one keeps Backend's default body, which throws naming "cuda".
  bool supports(PrimitiveOp op, DType dtype) const override;

 private:
  mutable std::mutex mutex_;  // guards stats_
  AllocatorStats stats_;
};

}  // namespace atelier
