// The CUDA backend's context, private to backends/cuda/: everything a kernel launcher needs, made once, on first
// use (never at load time, so a CUDA build runs its CPU work on machines without a GPU):
//   stream()       the one stream every kernel, cuBLAS call and host copy of atelier runs on, in order
//   cublas()       the cuBLAS handle, bound to that stream (made on its first call, which loads cuBLAS:
//                  cublas_api.h)
//   workspace(n)   scratch memory of at least n bytes, valid for work queued before the next workspace() call
//                  (one growing block shared by eager and captured work: backends/workspace.h)
//   allocator()    the caching allocator (cudaMalloc/cudaFree behind it)
//
//   cuda::Context& ctx = cuda::context();
//   my_kernel<<<blocks, threads, 0, ctx.stream()>>>(...);
//   ATELIER_CUDA_CHECK(cudaGetLastError());
//
// Only device 0 is used: backend_for() refuses cuda:N for N > 0 with a message saying so.
#pragma once

#include <cstddef>
#include <mutex>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backends/caching_allocator.h"
#include "backends/cuda/launch_config.h"  // kThreads, grid_for: the launch configuration
#include "backends/workspace.h"

namespace atelier::cuda {

class Context {
 public:
  // Selects device 0 and creates the stream; throws atelier::Error (naming the failed call) without a device.
  Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas();
  void* workspace(size_t bytes) { return workspace_.get(bytes); }
  CachingAllocator& allocator() { return allocator_; }
  // Waits for everything queued on the stream; throws if a kernel failed.
  void synchronize();

 private:
  cudaStream_t stream_ = nullptr;
  CachingAllocator allocator_;
  std::mutex mutex_;  // guards the lazily made handle
  cublasHandle_t cublas_ = nullptr;
  static constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;
  void* cublas_workspace_ = nullptr;  // cuBLAS's own (cublasSetWorkspace), never freed
  Workspace workspace_;               // after allocator_, which it uses
};

// The context, made on the first call. It is never destroyed: at exit the CUDA runtime may already be shutting
// down, and the process returns the device memory anyway.
Context& context();

// After each kernel launch or cuBLAS call (`what` names it): throws if the launch failed, counts it
// (kernel_count.h), and with ATELIER_CUDA_SYNC=1 in the environment (outside a capture) waits for the device and
// throws naming `what` if it faulted, so a bad kernel is reported where it ran, not at a later call. A debugging
// switch: it makes every step wait for the device.
void check_launch(const char* what);

// Whether ATELIER_CUDA_SYNC=1 is set: check_launch then waits for the device after each launch outside a capture.
bool sync_each_launch();

}  // namespace atelier::cuda
