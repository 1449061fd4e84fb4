// Walking N strided operands that share one set of sizes, for the elementwise, copy and reduce kernels.
//
// A StridedPlan first simplifies the layout: size-1 dimensions go, and neighbouring dimensions merge when every
// operand steps through them as one (stride[d] == stride[d + 1] * size[d + 1]). Contiguous operands thus become
// one flat dimension of stride 1, and a contiguous tensor against a broadcast scalar one of strides (1, 0).
// for_each_run then hands the kernel runs along the innermost dimension: base offsets, inner strides, count;
// the kernel's inner loop is a plain (vectorisable) loop over a run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "backends/args.h"
#include "backends/thread_pool.h"

namespace atelier::cpu {

// Elementwise kernels go parallel from this many elements, in chunks of kElementwiseGrain.
constexpr int64_t kParallelThreshold = 32768;
constexpr int64_t kElementwiseGrain = 16384;

// The unsigned integer of T's size: copy and gather move bytes, so float32 and uint32 share one instantiation.
template <typename T>
using SameSize = std::conditional_t<sizeof(T) == 1, uint8_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;

template <int N>
struct StridedPlan {
  int ndim = 0;
  int64_t numel = 1;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};
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
  return plan;
}

// Calls fn(offsets[N], inner_strides[N], count) for consecutive runs covering the linear indices [begin, end)
// of the plan's (row-major) index space. Offsets are in elements from each operand's data pointer.
template <int N, typename Fn>
void for_each_run(const StridedPlan<N>& plan, int64_t begin, int64_t end, Fn&& fn) {
  if (begin >= end) return;
  int64_t offsets[N] = {};
  if (plan.ndim == 0) {
    const int64_t zero[N] = {};
    fn(offsets, zero, int64_t{1});
    return;
  }
  const int last = plan.ndim - 1;
  int64_t inner_strides[N];
  for (int k = 0; k < N; ++k) inner_strides[k] = plan.strides[k][last];

  int64_t index[kMaxDims];
  int64_t rest = begin;
  for (int d = last; d >= 0; --d) {
    index[d] = rest % plan.sizes[d];
    rest /= plan.sizes[d];
    for (int k = 0; k < N; ++k) offsets[k] += index[d] * plan.strides[k][d];
  }

  int64_t pos = begin;
  while (true) {
    const int64_t count = std::min(plan.sizes[last] - index[last], end - pos);
    fn(static_cast<const int64_t*>(offsets), static_cast<const int64_t*>(inner_strides), count);
    pos += count;
    if (pos >= end) return;
    // The run ended at the end of the innermost dimension: rewind it and carry into the outer ones.
    for (int k = 0; k < N; ++k) offsets[k] -= index[last] * plan.strides[k][last];
    index[last] = 0;
    for (int d = last - 1; d >= 0; --d) {
      ++index[d];
      for (int k = 0; k < N; ++k) offsets[k] += plan.strides[k][d];
      if (index[d] < plan.sizes[d]) break;
      for (int k = 0; k < N; ++k) offsets[k] -= index[d] * plan.strides[k][d];
      index[d] = 0;
    }
  }
}

// Runs fn(begin, end) over [0, numel): in parallel chunks when the work is large enough to pay for the pool.
template <typename Fn>
void parallel_elements(int64_t numel, Fn&& fn) {
  if (numel >= kParallelThreshold) {
    parallel_for(numel, kElementwiseGrain, fn);
  } else if (numel > 0) {
    fn(int64_t{0}, numel);
  }
}

}  // namespace atelier::cpu
