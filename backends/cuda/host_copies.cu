// The CUDA backend's asynchronous copies between host and device (Backend::make_readback, make_upload;
// backends/backend.h): pinned host memory and an event each. Kept apart from cuda_backend.cu so that
// scripts/cuda-emulate.sh compiles and runs them as written, against host stand-ins of the CUDA calls
// (tests/cuda_emulation/emulated_backend.cpp), whose events report "not ready" once after each record.
#include "backends/cuda/bad_index.h"
#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"

namespace atelier {

namespace {

// Pinned host memory of `bytes` (at least 1) and an event, what both asynchronous host copies below are made of.
// The destructor waits for the event first: a copy still in flight must not read or write memory given back.
struct PinnedStaging {
  explicit PinnedStaging(size_t bytes) {
    ATELIER_CUDA_CHECK(cudaHostAlloc(&host, bytes > 0 ? bytes : 1, cudaHostAllocDefault));
    const cudaError_t made = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
    if (made != cudaSuccess) {
      ATELIER_CUDA_CLEANUP(cudaFreeHost(host));
      ATELIER_CUDA_CHECK(made);
    }
  }
  ~PinnedStaging() {  // a destructor must not throw: failures are reported and cleared
    ATELIER_CUDA_CLEANUP(cudaEventSynchronize(event));
    ATELIER_CUDA_CLEANUP(cudaEventDestroy(event));
    ATELIER_CUDA_CLEANUP(cudaFreeHost(host));
  }
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  // Queues the copy (of `bytes`, skipped when 0) and records the event after it, on the context's stream.
  void copy_and_record(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    cudaStream_t stream = cuda::context().stream();
    if (bytes > 0) ATELIER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream));
    ATELIER_CUDA_CHECK(cudaEventRecord(event, stream));
  }

  void* host = nullptr;
  cudaEvent_t event = nullptr;
};

// HostReadback on the context's stream: the copy lands in pinned memory (so cudaMemcpyAsync does not wait for the
// stream), and the event recorded after it is what wait() waits on.
class PinnedReadback final : public HostReadback {
 public:
  explicit PinnedReadback(size_t bytes) : HostReadback(bytes), pinned_(bytes) {}
  void start(const void* device_src) override {
    // Captured, the copy would run at each replay, not now, and its event would mark nothing (as an upload's).
    cuda_backend_or_null()->refuse_in_capture("a host readback's start");
    pinned_.copy_and_record(pinned_.host, device_src, bytes(), cudaMemcpyDeviceToHost);
  }
  const void* wait() override {
    ATELIER_CUDA_CHECK(cudaEventSynchronize(pinned_.event));
    cuda::report_bad_index();  // what a gather or scatter_add queued before the copy found (bad_index.h)
    return pinned_.host;
  }

 private:
  PinnedStaging pinned_;
};

// HostUpload on the context's stream: the caller fills pinned memory (cudaMemcpyAsync from pageable memory may make
// the host wait for the stream, to stage it), start() queues the copy and records an event after it, and done()
// asks the event whether the copy has read the staging buffer (cudaEventQuery; an event never recorded is done).
class PinnedUpload final : public HostUpload {
 public:
  explicit PinnedUpload(size_t bytes) : HostUpload(bytes), pinned_(bytes) {}
  void* staging() override { return pinned_.host; }
  void start(void* device_dst) override {
    cuda_backend_or_null()->refuse_in_capture("a host upload's start");
    pinned_.copy_and_record(device_dst, pinned_.host, bytes(), cudaMemcpyHostToDevice);
  }
  bool done() override {
    const cudaError_t state = cudaEventQuery(pinned_.event);
    if (state == cudaErrorNotReady) {
      // Not a failure, but the runtime keeps it for cudaGetLastError, which every kernel launch checks
      // (cuda::check_launch): cleared, or the next launch would report it.
      (void)cudaGetLastError();
      return false;
    }
    ATELIER_CUDA_CHECK(state);
    return true;
  }
  void wait() override { ATELIER_CUDA_CHECK(cudaEventSynchronize(pinned_.event)); }

 private:
  PinnedStaging pinned_;
};

}  // namespace

std::unique_ptr<HostReadback> CudaBackend::make_readback(size_t bytes) {
  return std::make_unique<PinnedReadback>(bytes);
}

std::unique_ptr<HostUpload> CudaBackend::make_upload(size_t bytes) { return std::make_unique<PinnedUpload>(bytes); }

}  // namespace atelier
