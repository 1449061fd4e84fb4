// The strided-iteration plan both backends walk: N operands that share one set of sizes, each with its own
// strides (in elements; 0 on a broadcast dimension).
//
// make_plan first simplifies the layout: size-1 dimensions go, and neighbouring dimensions merge when every
// operand steps through them as one (stride[d] == stride[d + 1] * size[d + 1]). Contiguous operands thus become
// one flat dimension of stride 1, and a contiguous tensor against a broadcast scalar one of strides (1, 0).
// The CPU walks the plan in runs along the innermost dimension (backends/cpu/strided.h); a GPU thread finds the
// offsets of its one element with plan_offsets.
//   const Layout* layouts[2] = {&args.dst, &args.src};
//   const StridedPlan<2> plan = make_plan<2>(args.dst, layouts);   // plan.numel elements
#pragma once

#include <cstdint>
#include <type_traits>

#include "backends/args.h"
#include "backends/fast_divide.h"
#include "backends/host_device.h"

namespace atelier {

// The unsigned integer of T's size: copy and gather move bytes, so float32 and uint32 share one instantiation.
template <typename T>
using SameSize = std::conditional_t<sizeof(T) == 1, uint8_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;

// Trivially copyable, so the CUDA backend passes it to a kernel by value (at most 8 + 8 + 64 + 4 * 64 + 8 * 24
// bytes).
template <int N>
struct StridedPlan {
  int ndim = 0;
  int64_t numel = 1;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};
  Divisor by_size[kMaxDims];  // by_size[d] divides by sizes[d], for d >= 1 when numel > 0 (plan_offsets)
};

// sizes: the shared sizes; layouts[k]: operand k's strides (its own sizes are ignored).
template <int N>
StridedPlan<N> make_plan(const Layout& shape, const Layout* const (&layouts)[N]) {
  StridedPlan<N> plan;
  plan.numel = shape.numel();
  for (int d = 0; d < shape.ndim; ++d) {
    if (shape.sizes[d] == 1) continue;
    const int out = plan.ndim;
    bool merge = out > 0;
    for (int k = 0; k < N && merge; ++k) {
      merge = plan.strides[k][out - 1] == layouts[k]->strides[d] * shape.sizes[d];
    }
    if (merge) {
      plan.sizes[out - 1] *= shape.sizes[d];
      for (int k = 0; k < N; ++k) plan.strides[k][out - 1] = layouts[k]->strides[d];
    } else {
      plan.sizes[out] = shape.sizes[d];
      for (int k = 0; k < N; ++k) plan.strides[k][out] = layouts[k]->strides[d];
      ++plan.ndim;
    }
  }
  if (plan.numel > 0) {
    for (int d = 1; d < plan.ndim; ++d) plan.by_size[d] = Divisor(plan.sizes[d]);
  }
  return plan;
}

// The layout of a contiguous (row-major) tensor of `shape`'s sizes: the output of the elementwise kernels.
inline Layout contiguous_like(const Layout& shape) {
  Layout out = shape;
  int64_t stride = 1;
  for (int d = shape.ndim - 1; d >= 0; --d) {
    out.strides[d] = stride;
    stride *= shape.sizes[d];
  }
  return out;
}

// The layout of a scalar operand broadcast to `shape`'s sizes: every stride 0 (BinaryArgs::scalar).
inline Layout scalar_layout(const Layout& shape) {
  Layout out = shape;
  for (int d = 0; d < shape.ndim; ++d) out.strides[d] = 0;
  return out;
}

// offsets[k] = the element offset, from operand k's data pointer, of the element at row-major position `linear`
// of the plan's index space (0 <= linear < plan.numel).
//
// One index split per dimension but the outermost: what is left of `linear` there is already its index
// (< sizes[0], since the sizes multiply to numel). So contiguous operands, whose dimensions make_plan merges into
// one, cost a GPU thread no split at all. Each split divides by the dimension's Divisor (backends/fast_divide.h),
// prepared by make_plan on the host: a multiply-high, an add and a shift, where `/` and `%` by a run-time size
// would be a software routine per dimension and element (a GPU has no integer divider; 64-bit operands take a
// call), several times what an elementwise op's arithmetic costs, and enough to make a memory-bound kernel
// instruction-bound (docs/gpu.md, "Index arithmetic").
template <int N>
ATELIER_HOST_DEVICE inline void plan_offsets(const StridedPlan<N>& plan, int64_t linear, int64_t (&offsets)[N]) {
  for (int k = 0; k < N; ++k) offsets[k] = 0;
  for (int d = plan.ndim - 1; d > 0; --d) {
    int64_t index;
    linear = plan.by_size[d].divide(linear, index);
    for (int k = 0; k < N; ++k) offsets[k] += index * plan.strides[k][d];
  }
  if (plan.ndim > 0) {
    for (int k = 0; k < N; ++k) offsets[k] += linear * plan.strides[k][0];
  }
}

}  // namespace atelier
