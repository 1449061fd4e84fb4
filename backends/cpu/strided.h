// Walking a StridedPlan (backends/strided.h, shared with the CUDA backend) on the CPU, for the elementwise, copy
// and reduce kernels: for_each_run hands the kernel runs along the innermost dimension (base offsets, inner
// strides, count); the kernel's inner loop is a plain (vectorisable) loop over a run.
#pragma once

#include <algorithm>
#include <cstdint>

#include "backends/args.h"
#include "backends/strided.h"
#include "backends/thread_pool.h"

namespace atelier::cpu {

// Elementwise kernels go parallel from this many elements, in chunks of kElementwiseGrain.
constexpr int64_t kParallelThreshold = 32768;
constexpr int64_t kElementwiseGrain = 16384;

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
