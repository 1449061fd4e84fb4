// argmax's scan of one row, written once for the CPU's and the GPU's kernel (backends/cpu/reduce.cpp,
// backends/cuda/reduce.cu), so both pick the same index: the row's elements are x[0], x[stride], ...,
// x[(n - 1) * stride] (n >= 1); the first maximum wins, a NaN counts as the maximum (as in PyTorch) and the first
// NaN wins.
#pragma once

#include <cstdint>

#include "backends/host_device.h"

namespace atelier {

template <typename T>
ATELIER_HOST_DEVICE inline int64_t argmax_of_row(const T* x, int64_t n, int64_t stride) {
  T best = x[0];
  int64_t best_index = 0;
  for (int64_t j = 1; j < n && best == best; ++j) {  // best != best: a NaN, which nothing after it beats
    const T v = x[j * stride];
    if (v > best || v != v) {
      best = v;
      best_index = j;
    }
  }
  return best_index;
}

}  // namespace atelier
