// Host emulation (scripts/cuda-emulate.sh) of backends/cuda/launch.h: launch_linear runs the functor in a host
// loop, i = 0, 1, ..., n - 1, and launch_strided for each element of the plan in row-major order, with the
// offsets plan_offsets gives a GPU thread; launch_blocks runs each block's Threads threads as fibers on the
// calling thread, one at a time from one sync() to the next, in an order drawn from ATELIER_EMULATION_SEED
// (block_threads.h: what that proves and what it does not). Each counts one kernel, as the real launchers do. The
// kernel families, which launch only through these, thus run their index math and their block cooperation on the
// host, where no GPU is at hand. Each first makes the real launcher's compile-time checks (launch_config.h: kernel
// argument bytes, threads and shared memory per block). During an emulated stream capture the work is recorded for
// the graph instead of run (capture.h), as on the device.
#pragma once

#include <cstdint>

#include "backends/cuda/context.h"
#include "backends/cuda/kernel_count.h"
#include "backends/cuda/launch_config.h"
#include "backends/strided.h"
#include "tests/cuda_emulation/block_threads.h"
#include "tests/cuda_emulation/capture.h"

namespace atelier::cuda {

template <class Op>
void launch_linear(int64_t n, const Op& op) {
  check_linear_launch<Op>();
  if (n <= 0) return;
  run_or_capture([n, op] {
    for (int64_t i = 0; i < n; ++i) op(i);
  });
  count_kernel();
}

template <int N, class Op>
void launch_strided(const StridedPlan<N>& plan, const Op& op) {
  check_strided_launch<N, Op>();
  if (plan.numel <= 0) return;
  run_or_capture([plan, op] {
    for (int64_t i = 0; i < plan.numel; ++i) {
      int64_t offsets[N];
      plan_offsets(plan, i, offsets);
      op(offsets);
    }
  });
  count_kernel();
}

// BlockContext: block_threads.h's.
template <class Shared, int Threads, class Op>
void launch_blocks(int64_t blocks, const Op& op) {
  check_block_launch<Shared, Threads, Op>();
  if (blocks <= 0) return;
  run_or_capture([blocks, op] { run_blocks<Shared, Threads>(blocks, op); });
  count_kernel();
}

}  // namespace atelier::cuda
