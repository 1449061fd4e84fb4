// CudaBackend's shell: the device probe, memory from the context's caching allocator, host copies ordered on
// the context's stream, and supports() from the type lists of cuda_backend.h. The primitives live in one .cu
// file per kernel family; the asynchronous host copies (make_readback, make_upload) in host_copies.cu.
#include "backends/cuda/cuda_backend.h"

#include <string>

#include "backends/cuda/bad_index.h"
#include "backends/cuda/context.h"
#include "backends/cuda/cuda_check.h"

namespace atelier {

namespace {

// The one unchecked CUDA call: no driver, no device or any other error means "not available", and what went wrong
// is kept for unavailable_reason(). The count is read only on success. A function-local static runs it once,
// thread-safely, on first use (never at load).
const std::string& probe_failure() {
  static const std::string failure = [] {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return "cudaGetDeviceCount: " + std::string(cudaGetErrorName(err)) + " (" + cudaGetErrorString(err) + ")";
    }
    return count > 0 ? std::string() : std::string("no device (cudaGetDeviceCount counted 0)");
  }();
  return failure;
}

}  // namespace

bool CudaBackend::available() const { return probe_failure().empty(); }

std::string CudaBackend::unavailable_reason() const { return probe_failure(); }

void* CudaBackend::allocate(size_t bytes) { return cuda::context().allocator().allocate(bytes); }

void CudaBackend::deallocate(void* ptr, size_t bytes) {
  if (ptr != nullptr) cuda::context().allocator().deallocate(ptr, bytes);
}

AllocatorStats CudaBackend::allocator_stats() const {
  // Asking for counters must not start CUDA on a machine without a device: zero until the context exists.
  if (!available()) return {};
  return cuda::context().allocator().stats();
}

void CudaBackend::reset_peak_in_use() {
  if (available()) cuda::context().allocator().reset_peak_in_use();
}

CachingAllocator* CudaBackend::caching_allocator() { return &cuda::context().allocator(); }

void CudaBackend::empty_cache() {
  if (!available()) return;
  refuse_in_capture("empty_cache");  // it synchronises
  cuda::Context& ctx = cuda::context();
  ctx.synchronize();  // queued work may still use cached blocks
  ctx.allocator().empty_cache();
}

// Both copies run on the stream, after every kernel queued before them. A copy to the host waits for its data;
// a copy from (pageable) host memory returns once the source has been staged, so the caller may reuse it, which
// may mean waiting for the stream (counted: host_sync_uploads; a HostUpload stages in pinned memory instead).
// Refused during a capture (Backend::refuse_in_capture): a synchronisation breaks a stream capture, and a copy from
// pageable host memory would not be repeated by a replay.
void CudaBackend::copy_to_host(void* host_dst, const void* device_src, size_t bytes) {
  refuse_in_capture("copy_to_host");
  if (bytes == 0) return;
  cuda::Context& ctx = cuda::context();
  ATELIER_CUDA_CHECK(cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.synchronize();
  cuda::report_bad_index();  // what an earlier gather or scatter_add found (backends/cuda/bad_index.h)
}

void CudaBackend::copy_from_host(void* device_dst, const void* host_src, size_t bytes) {
  refuse_in_capture("copy_from_host");
  count_host_sync_upload();  // from pageable memory: the driver may make the host wait to stage it
  if (bytes == 0) return;
  cuda::Context& ctx = cuda::context();
  ATELIER_CUDA_CHECK(cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, ctx.stream()));
}

void CudaBackend::synchronize() {
  refuse_in_capture("synchronize");
  cuda::context().synchronize();
  cuda::report_bad_index();
}

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
  static CudaBackend backend;  // constructed on first call; its constructor makes no CUDA call
  return &backend;
}

}  // namespace atelier
