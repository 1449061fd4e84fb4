// The CUDA backend, private to backends/cuda/ (never installed): class CudaBackend and its support table.
//
// Every primitive of backends/primitives.def gets an override here; its body lives in the .cu file of its kernel
// family (copy_fill.cu, elementwise.cu, reduce.cu, ...). supports() answers from the cuda::<op>_types lists below,
// which are also what the kernels dispatch over (backends/dispatch.h), so support is written once. A primitive
// added to the list before its CUDA kernel exists gets `using <op>_types = NotImplemented;` (no type, no support)
// and a body that calls not_implemented(PrimitiveOp::<op>), which throws "<op> is not implemented on cuda".
//
// Nothing here touches CUDA at load or static-initialisation time: available() asks the driver once, on first
// call, and the stream, cuBLAS handle, workspace and caching allocator (backends/cuda/context.h) are made on first
// use, so a binary built with CUDA runs its CPU work on machines without a GPU. This header is plain C++ (no CUDA
// headers); the checked-call macros live in backends/cuda/cuda_check.h.
#pragma once

#include <cstddef>
#include <string>

#include "backends/backend.h"
#include "backends/cuda/kernel_count.h"
#include "backends/dispatch.h"

namespace atelier {

namespace cuda {

// The type list of a primitive whose kernel is not written yet: supports() is false for every dtype. (Every
// primitive has its kernel today.)
using NotImplemented = DTypes<>;

using copy_types = AllTypes;
using cast_types = AllTypes;  // every (source, destination) pair; supports() is asked about the source
using fill_types = AllTypes;
using random_types = FloatingTypes;
using unary_types = FloatingTypes;
using binary_types = FloatingTypes;
using compare_types = SignedTypes;
using where_types = AllTypes;
using activation_backward_types = FloatingTypes;
using reduce_types = SignedTypes;
using argmax_types = FloatingTypes;
using log_softmax_types = FloatingTypes;
using log_softmax_backward_types = FloatingTypes;
using gather_types = AllTypes;
using scatter_add_types = SignedTypes;
using gemm_types = FloatingTypes;
using conv2d_types = FloatingTypes;
using conv2d_backward_input_types = FloatingTypes;
using conv2d_backward_weight_types = FloatingTypes;
using upsample_nearest2d_types = FloatingTypes;
using upsample_nearest2d_backward_types = FloatingTypes;
using pool2d_types = FloatingTypes;
using pool2d_backward_types = FloatingTypes;
using normalize_types = FloatingTypes;
using normalize_backward_types = FloatingTypes;
using sgd_step_types = FloatingTypes;
using adam_step_types = FloatingTypes;
using adam_step_multi_types = FloatingTypes;

}  // namespace cuda

class CudaBackend final : public Backend {
 public:
  std::string name() const override { return "cuda"; }
  // True when the driver reports at least one device. Asked once (cudaGetDeviceCount), then remembered.
  bool available() const override;
  // The probe's error (its name and text), "no device" when the driver counts none, "" when available.
  std::string unavailable_reason() const override;

  // Memory from the context's allocator; host copies ordered on the context's stream.
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  AllocatorStats allocator_stats() const override;
  void reset_peak_in_use() override;
  void empty_cache() override;
  void copy_to_host(void* host_dst, const void* device_src, size_t bytes) override;
  void copy_from_host(void* device_dst, const void* host_src, size_t bytes) override;
  void synchronize() override;
  // Pinned host memory and an event: start() queues cudaMemcpyAsync and records the event, wait() waits on it.
  std::unique_ptr<HostReadback> make_readback(size_t bytes) override;
  // Pinned host memory and an event: start() queues cudaMemcpyAsync and records the event, done() queries it.
  std::unique_ptr<HostUpload> make_upload(size_t bytes) override;

  // Answered from the cuda::<op>_types lists above.
  bool supports(PrimitiveOp op, DType dtype) const override;

  // Profiling: a timeline of events recorded on the context's stream (backends/cuda/timeline.cu), and the count of
  // kernels, cuBLAS calls and device copies queued so far (backends/cuda/kernel_count.h).
  std::unique_ptr<DeviceTimeline> make_timeline() override;
  int64_t kernels_launched() const override { return cuda::kernels_queued(); }

#define X(name, Args) void name(const Args& args) override;
#include "backends/primitives.def"
#undef X

 protected:
  // Graph capture (backends/cuda/graph.cu): the context's allocator gives the pool, the context's stream is
  // captured (cudaStreamBeginCapture, relaxed mode) and ends as an instantiated graph replayed by cudaGraphLaunch.
  CachingAllocator* caching_allocator() override;
  void capture_begin() override;
  std::unique_ptr<CapturedGraph> capture_end(GraphPool pool) override;
};

}  // namespace atelier
