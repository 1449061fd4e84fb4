// CpuBackend: memory from the caching allocator, primitives forwarded to the kernels of backends/cpu/kernels.h.
#include "backends/cpu/cpu_backend.h"

#include <cstring>

#include "backends/cpu/cpu_allocator.h"
#include "backends/cpu/kernels.h"

namespace atelier {
namespace {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  bool available() const override { return true; }

  void* allocate(size_t bytes) override { return allocator_.allocate(bytes); }
  void deallocate(void* ptr, size_t bytes) override { allocator_.deallocate(ptr, bytes); }
  AllocatorStats allocator_stats() const override { return allocator_.stats(); }
  void empty_cache() override { allocator_.empty_cache(); }
  void copy_to_host(void* host_dst, const void* device_src, size_t bytes) override {
    if (bytes > 0) std::memcpy(host_dst, device_src, bytes);
  }
  void copy_from_host(void* device_dst, const void* host_src, size_t bytes) override {
    if (bytes > 0) std::memcpy(device_dst, host_src, bytes);
  }

  bool supports(PrimitiveOp op, DType dtype) const override {
    const bool floating = dtype == DType::Float32 || dtype == DType::Float64;
    switch (op) {
      case PrimitiveOp::copy:
      case PrimitiveOp::cast:
      case PrimitiveOp::fill:
      case PrimitiveOp::where:
      case PrimitiveOp::gather: return true;
      case PrimitiveOp::random:
      case PrimitiveOp::unary:
      case PrimitiveOp::binary:
      case PrimitiveOp::argmax:
      case PrimitiveOp::gemm:
      case PrimitiveOp::optimizer_step: return floating;
      case PrimitiveOp::compare:
      case PrimitiveOp::scatter_add: return floating || dtype == DType::Int64;
      // int64: sum and max (mean needs a floating dtype).
      case PrimitiveOp::reduce: return floating || dtype == DType::Int64;
      case PrimitiveOp::conv2d_fwd:
      case PrimitiveOp::conv2d_bwd_input:
      case PrimitiveOp::conv2d_bwd_weight:
      case PrimitiveOp::upsample_nearest_fwd:
      case PrimitiveOp::upsample_nearest_bwd: return floating;
    }
    return false;
  }

  void copy(const CopyArgs& args) override { cpu::copy(args); }
  void cast(const CastArgs& args) override { cpu::cast(args); }
  void fill(const FillArgs& args) override { cpu::fill(args); }
  void random(const RandomArgs& args) override { cpu::random(args); }
  void unary(const UnaryArgs& args) override { cpu::unary(args); }
  void binary(const BinaryArgs& args) override { cpu::binary(args); }
  void compare(const CompareArgs& args) override { cpu::compare(args); }
  void where(const WhereArgs& args) override { cpu::where(args); }
  void reduce(const ReduceArgs& args) override { cpu::reduce(args); }
  void argmax(const ArgmaxArgs& args) override { cpu::argmax(args); }
  void gather(const GatherArgs& args) override { cpu::gather(args); }
  void scatter_add(const ScatterAddArgs& args) override { cpu::scatter_add(args); }
  void gemm(const GemmArgs& args) override { cpu::gemm(args); }
  void conv2d_fwd(const Conv2dForwardArgs& args) override { cpu::conv2d_fwd(args); }
  void conv2d_bwd_input(const Conv2dBackwardInputArgs& args) override { cpu::conv2d_bwd_input(args); }
  void conv2d_bwd_weight(const Conv2dBackwardWeightArgs& args) override { cpu::conv2d_bwd_weight(args); }
  void upsample_nearest_fwd(const UpsampleNearestArgs& args) override { cpu::upsample_nearest_fwd(args); }
  void upsample_nearest_bwd(const UpsampleNearestArgs& args) override { cpu::upsample_nearest_bwd(args); }
  void optimizer_step(const OptimizerStepArgs& args) override { cpu::optimizer_step(args); }

 private:
  CpuAllocator allocator_;
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend instance;
  return instance;
}

}  // namespace atelier
