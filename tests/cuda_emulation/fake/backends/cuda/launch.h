// Host emulation (scripts/cuda-emulate.sh) of backends/cuda/launch.h: launch_linear runs the functor in a host
// loop, i = 0, 1, ..., n - 1. The kernel families that launch only through launch_linear (conv, gemm, index,
// upsample, optimizer) thus run their index math on the host, where no GPU is at hand.
#pragma once

#include <cstdint>

#include "backends/cuda/context.h"
#include "backends/strided.h"

namespace atelier::cuda {

template <class Op>
void launch_linear(int64_t n, const Op& op) {
  for (int64_t i = 0; i < n; ++i) op(i);
}

}  // namespace atelier::cuda
