// Kernel launchers shared by the CUDA kernel families (included by .cu files only):
//   launch_strided(plan, op)  one GPU thread per element of a StridedPlan (backends/strided.h): op(offsets), where
//                             offsets[k] is operand k's element offset; the twin of the CPU's for_each_run
//   launch_linear(n, op)      one GPU thread per index i < n: op(i)
// Both run on the context's stream, loop with a grid stride (any n fits a capped grid), and check and count the
// launch (check_launch, context.h; ATELIER_CUDA_SYNC=1 names the functor's type of a kernel that faults).
// `op` is a small struct with a __device__ operator() holding the typed pointers and values it needs: it is
// copied to the GPU as a kernel argument.
#pragma once

#include <cstdint>
#include <typeinfo>

#include "backends/cuda/context.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernel_count.h"
#include "backends/strided.h"

namespace atelier::cuda {

template <int N, class Op>
__global__ void strided_kernel(StridedPlan<N> plan, Op op) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < plan.numel; i += step) {
    int64_t offsets[N];
    plan_offsets(plan, i, offsets);
    op(offsets);
  }
}

template <class Op>
__global__ void linear_kernel(int64_t n, Op op) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) op(i);
}

template <int N, class Op>
void launch_strided(const StridedPlan<N>& plan, const Op& op) {
  if (plan.numel <= 0) return;
  strided_kernel<N, Op><<<grid_for(plan.numel), kThreads, 0, context().stream()>>>(plan, op);
  check_launch(typeid(Op).name());
}

template <class Op>
void launch_linear(int64_t n, const Op& op) {
  if (n <= 0) return;
  linear_kernel<Op><<<grid_for(n), kThreads, 0, context().stream()>>>(n, op);
  check_launch(typeid(Op).name());
}

}  // namespace atelier::cuda
