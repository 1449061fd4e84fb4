// The launch configuration of launch.h's launchers and the limits a GPU holds a launch to, in plain C++ (no CUDA
// header), so that the host emulation's launchers (tests/cuda_emulation/fake/backends/cuda/launch.h) check the
// very rules the real launches must keep. Each launcher calls its check at the top:
//   check_linear_launch<Op>()                  launch_linear: linear_kernel(int64_t n, Op op)
//   check_strided_launch<N, Op>()              launch_strided: strided_kernel(StridedPlan<N> plan, Op op)
//   check_block_launch<Shared, Threads, Op>()  launch_blocks: block_kernel(int64_t blocks, Op op), Threads
//                                              threads and a __shared__ Shared[Threads] per block
// Every rule is a static_assert, so a functor or a block that breaks one does not build, under
// scripts/cuda-emulate.sh as in the CUDA build; on a GPU the same mistake is a failed launch ("too many resources
// requested", "invalid configuration argument") or a kernel that nvcc refuses, found only there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "backends/strided.h"

namespace atelier::cuda {

// What every GPU of compute capability 7.0 (Volta) or newer accepts (CUDA C++ Programming Guide, "Compute
// Capabilities"): blocks in a grid's x dimension (y and z, 65,535, are not used), threads per block, static
// __shared__ memory per block (more needs dynamic shared memory raised by cudaFuncSetAttribute), and the bytes of
// a kernel's arguments: 4,096 before CUDA 12.1, 32,764 since on Volta and newer. The smaller bound is kept here:
// every functor is far below it (the largest, adam_step_multi's, about 2.4 KB), and it holds on every toolkit.
constexpr long long kMaxGridX = (1LL << 31) - 1;
constexpr int kMaxThreadsPerBlock = 1024;
constexpr size_t kMaxStaticSharedBytes = 48 * 1024;
constexpr size_t kMaxKernelParamBytes = 4096;

// Threads per block of the elementwise kernels, and the grid that covers n elements with one thread each (the
// kernels loop with a grid stride, so a grid capped at kMaxBlocks still covers any n).
constexpr int kThreads = 256;
constexpr long long kMaxBlocks = 65535LL * 32;
inline unsigned grid_for(long long n) {
  const long long blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks > kMaxBlocks ? kMaxBlocks : blocks);
}
static_assert(kThreads > 0 && kThreads <= kMaxThreadsPerBlock, "kThreads: a block has 1 to 1024 threads");
static_assert(kMaxBlocks <= kMaxGridX, "kMaxBlocks: a grid has at most 2^31 - 1 blocks in x");

// An upper bound of the bytes a kernel's parameters take: each one placed at its alignment after the one before.
template <class... Params>
constexpr size_t kernel_param_bytes() {
  return ((sizeof(Params) + alignof(Params) - 1) + ...);
}

// A kernel argument is copied to the GPU byte for byte: no constructor, destructor or pointer into host state
// of the functor's own runs there.
template <class Op>
constexpr void check_functor() {
  static_assert(std::is_trivially_copyable_v<Op> && std::is_trivially_destructible_v<Op>,
                "a kernel functor travels as a kernel argument, copied byte for byte: it must be trivially copyable");
}

template <class Op>
constexpr void check_linear_launch() {
  check_functor<Op>();
  static_assert(kernel_param_bytes<int64_t, Op>() <= kMaxKernelParamBytes,
                "launch_linear: the functor is too large for a kernel argument (4 KB with the count)");
}

template <int N, class Op>
constexpr void check_strided_launch() {
  check_functor<Op>();
  static_assert(kernel_param_bytes<StridedPlan<N>, Op>() <= kMaxKernelParamBytes,
                "launch_strided: the plan and the functor are too large for kernel arguments (4 KB together)");
}

template <class Shared, int Threads, class Op>
constexpr void check_block_launch() {
  check_functor<Op>();
  static_assert(Threads > 0 && Threads <= kMaxThreadsPerBlock, "launch_blocks: a block has 1 to 1024 threads");
  static_assert(sizeof(Shared) * Threads <= kMaxStaticSharedBytes,
                "launch_blocks: the block's __shared__ array is over the 48 KB of static shared memory");
  static_assert(std::is_trivially_default_constructible_v<Shared> && std::is_trivially_destructible_v<Shared>,
                "launch_blocks: a __shared__ array cannot hold a type with a constructor or destructor");
  static_assert(kernel_param_bytes<int64_t, Op>() <= kMaxKernelParamBytes,
                "launch_blocks: the functor is too large for a kernel argument (4 KB with the block count)");
}

}  // namespace atelier::cuda
