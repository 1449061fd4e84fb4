// The block-cooperative sum of reduce.cu, shared with the kernels that end in one (direct_conv.cu): a reducer's
// accumulator type and steps, and the block's fixed-order combine (reduce.cu's header describes it). Included by
// .cu files only; the emulation runs it as it runs reduce.cu's blocks.
#pragma once

#include <cstdint>
#include <type_traits>

#include "backends/host_device.h"

namespace atelier::cuda {

// Threads per reduction block: the combine folds 16 rows of 16 partials.
constexpr int kReduceFan = 16;
constexpr int kReduceBlock = kReduceFan * kReduceFan;

// Sum and mean: accumulate in double (floating T) or uint64 (int64: wraps modulo 2^64, as on the CPU); the
// result is acc * scale (scale 1 for a sum, 1 / count for a mean) converted to T.
template <typename T>
struct SumReducer {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;
  ATELIER_HOST_DEVICE static Acc init() { return Acc(0); }
  ATELIER_HOST_DEVICE static Acc load(T x) { return static_cast<Acc>(x); }
  ATELIER_HOST_DEVICE static Acc combine(Acc a, Acc b) { return a + b; }
  ATELIER_HOST_DEVICE static T finish(Acc a, double scale) {
    if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(a * scale);
    } else {
      return static_cast<T>(a);  // scale is 1: int64 has no mean
    }
  }
};

// The block's combine (reduce.cu's header): every thread brings its partial; thread 0 returns the block's total (the
// other threads return a part of it, unused).
template <typename Red, class Block>
ATELIER_HOST_DEVICE typename Red::Acc block_fold(Block& b, typename Red::Acc acc) {
  b.shared[b.thread] = acc;
  b.sync();
  if (b.thread < kReduceFan) {
    for (int i = 1; i < kReduceFan; ++i) acc = Red::combine(acc, b.shared[b.thread + i * kReduceFan]);
    b.shared[b.thread] = acc;  // only this thread reads or writes shared[t] for t < 16 at this point
  }
  b.sync();
  if (b.thread == 0) {
    for (int i = 1; i < kReduceFan; ++i) acc = Red::combine(acc, b.shared[i]);
  }
  return acc;
}

}  // namespace atelier::cuda
