// Graph capture on CUDA (Backend::begin_capture; docs/gpu.md, "--cuda-graph"): the context's one stream is
// captured in relaxed mode (the caching allocator may still call cudaMalloc for a block its pool lacks, which the
// stricter modes forbid while a capture is under way), the capture ends as a cudaGraph_t, which is instantiated
// once, and each replay is one cudaGraphLaunch on the same stream, ordered like any other work. Every call is
// checked. Under scripts/cuda-emulate.sh these four runtime calls are host stand-ins (tests/cuda_emulation/) that
// record the primitive calls through Backend's recorder and replay them on the host.
#include <memory>
#include <utility>

#include "backends/caching_allocator.h"
#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"

namespace atelier {
namespace {

// An instantiated graph and the pool that keeps its memory reserved.
class CudaGraph final : public CapturedGraph {
 public:
  CudaGraph(cudaGraphExec_t exec, GraphPool pool) : exec_(exec), pool_(std::move(pool)) {}
  // The pool is released after the graph is destroyed (members go after the body); its blocks are then reused
  // only by work queued later on the same stream, behind the last replay.
  ~CudaGraph() override { ATELIER_CUDA_CLEANUP(cudaGraphExecDestroy(exec_)); }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void replay() override { ATELIER_CUDA_CHECK(cudaGraphLaunch(exec_, cuda::context().stream())); }

 private:
  cudaGraphExec_t exec_;
  GraphPool pool_;
};

}  // namespace

void CudaBackend::capture_begin() {
  ATELIER_CUDA_CHECK(cudaStreamBeginCapture(cuda::context().stream(), cudaStreamCaptureModeRelaxed));
}

std::unique_ptr<CapturedGraph> CudaBackend::capture_end(GraphPool pool) {
  cudaGraph_t graph = nullptr;
  // Fails (cudaErrorStreamCaptureInvalidated ...) when a call during the capture broke it; the pool is then
  // released with `pool`.
  ATELIER_CUDA_CHECK(cudaStreamEndCapture(cuda::context().stream(), &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  const cudaError_t destroyed = cudaGraphDestroy(graph);  // the executable graph does not need it
  ATELIER_CUDA_CHECK(made);
  if (destroyed != cudaSuccess) ATELIER_CUDA_CLEANUP(cudaGraphExecDestroy(exec));
  ATELIER_CUDA_CHECK(destroyed);
  return std::make_unique<CudaGraph>(exec, std::move(pool));
}

}  // namespace atelier
