// Kernel launchers shared by the CUDA kernel families (included by .cu files only):
//   launch_strided(plan, op)  one GPU thread per element of a StridedPlan (backends/strided.h): op(offsets), where
//                             offsets[k] is operand k's element offset; the twin of the CPU's for_each_run
//   launch_linear(n, op)      one GPU thread per index i < n: op(i)
//   launch_blocks<Shared, Threads>(blocks, op)
//                             block-cooperative kernels: op(BlockContext<Shared, Threads>& b) runs on every
//                             thread b.thread < Threads of every block b.block < blocks, with b.shared, an array
//                             of Threads `Shared` elements in the block's __shared__ memory, and b.sync()
//                             (__syncthreads). Every thread of a block must reach the same syncs (no sync inside
//                             a branch that depends on the thread). A grid capped at kMaxBlocks runs the blocks
//                             with a block stride and a sync between two blocks, so op may use the shared array
//                             freely within its block; it must not expect anything in it at entry.
// Each checks its configuration against the GPU's limits at compile time (launch_config.h: kernel argument
// bytes, threads and shared memory per block). All run on the context's stream, loop with a grid (or block) stride, and
// check and count the launch (check_launch, context.h; ATELIER_CUDA_SYNC=1 names the functor's type of a kernel that
// faults). `op` is a small struct with a __device__ operator() holding the typed pointers and values it needs: it is
// copied to the GPU as a kernel argument.
//
// The host emulation (scripts/cuda-emulate.sh) has its own launch.h with the same three launchers
// (tests/cuda_emulation/fake/): one host loop per one-thread-per-index launcher, and for launch_blocks fibers that
// run a block's threads one at a time between syncs, in a seeded order (tests/cuda_emulation/block_threads.h says
// what that does and does not prove).
#pragma once

#include <cstdint>
#include <typeinfo>

#include "backends/cuda/context.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernel_count.h"
#include "backends/cuda/launch_config.h"
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

// One thread's view of a block-cooperative kernel (launch_blocks). The emulation's twin has the same members.
template <class Shared, int Threads>
struct BlockContext {
  int64_t block;   // this block's index, < the launch's block count
  int thread;      // threadIdx.x, < Threads
  Shared* shared;  // Threads elements of the block's __shared__ memory
  __device__ void sync() const { __syncthreads(); }
};

template <class Shared, int Threads, class Op>
__global__ void __launch_bounds__(Threads) block_kernel(int64_t blocks, Op op) {
  __shared__ Shared shared[Threads];
  BlockContext<Shared, Threads> block{0, static_cast<int>(threadIdx.x), shared};
  for (int64_t b = blockIdx.x; b < blocks; b += gridDim.x) {
    block.block = b;
    op(block);
    __syncthreads();  // every thread is done with the shared array before the next block's op writes it
  }
}

template <int N, class Op>
void launch_strided(const StridedPlan<N>& plan, const Op& op) {
  check_strided_launch<N, Op>();
  if (plan.numel <= 0) return;
  strided_kernel<N, Op><<<grid_for(plan.numel), kThreads, 0, context().stream()>>>(plan, op);
  check_launch(typeid(Op).name());
}

template <class Op>
void launch_linear(int64_t n, const Op& op) {
  check_linear_launch<Op>();
  if (n <= 0) return;
  linear_kernel<Op><<<grid_for(n), kThreads, 0, context().stream()>>>(n, op);
  check_launch(typeid(Op).name());
}

template <class Shared, int Threads, class Op>
void launch_blocks(int64_t blocks, const Op& op) {
  check_block_launch<Shared, Threads, Op>();
  if (blocks <= 0) return;
  const auto grid = static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
  block_kernel<Shared, Threads, Op><<<grid, Threads, 0, context().stream()>>>(blocks, op);
  check_launch(typeid(Op).name());
}

}  // namespace atelier::cuda
