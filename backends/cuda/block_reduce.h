// The block-cooperative sum of reduce.cu, shared with the kernels that end in one (direct_conv.cu, norm.cu): a
// reducer's accumulator type and steps, the block's fixed-order combine, and how a long sum is cut into chunks, one
// block each (reduce.cu's header describes both rules). Included by .cu files only; the emulation runs it as it runs
// reduce.cu's blocks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "backends/host_device.h"

namespace atelier::cuda {

// Threads per reduction block: the combine folds 16 rows of 16 partials.
constexpr int kReduceFan = 16;
constexpr int kReduceBlock = kReduceFan * kReduceFan;

// Blocks that fill the GPU: two per SM of an H200 (132 SMs). A constant, not the device's count, so that the
// chunks (and so the results' rounding) depend only on the sizes.
constexpr int64_t kFillBlocks = 2 * 132;
// Chunks start at multiples of a warp's 32 elements (aligned loads where the range is contiguous).
constexpr int64_t kWarp = 32;
// A chunk has at least this many reduced elements: two loads per thread before the block's combine.
constexpr int64_t kMinChunk = 2 * kReduceBlock;
// Ranges this long are split when there are fewer than kFillBlocks outputs. Below it one block's threads walk
// fewer than 16 elements each, about as long as the second kernel of a split would add (an estimate: to be
// measured on a GPU, like everything here).
constexpr int64_t kSplitFrom = 16 * kReduceBlock;

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

// The block's fold, its result handed to every thread (block_fold leaves it in thread 0 only). The second sync
// keeps the next fold's first write to shared[0] after every thread has read this result.
template <typename Red, class Block>
ATELIER_HOST_DEVICE typename Red::Acc block_fold_to_all(Block& b, typename Red::Acc acc) {
  const typename Red::Acc total = block_fold<Red>(b, acc);
  if (b.thread == 0) b.shared[0] = total;
  b.sync();
  const typename Red::Acc result = b.shared[0];
  b.sync();
  return result;
}

// How a long reduction of K outputs of R elements each is cut: `count` chunks of `size` reduced indices each (the
// last may be shorter), reduce.cu's header's rule.
struct Chunking {
  int64_t count, size;
};

inline Chunking chunking(int64_t kept, int64_t reduced) {
  if (reduced < kSplitFrom) return {1, reduced};
  const int64_t wanted = std::min((kFillBlocks + kept - 1) / kept, reduced / kMinChunk);
  if (wanted <= 1) return {1, reduced};
  const int64_t per_chunk = (reduced + wanted - 1) / wanted;
  const int64_t size = std::max(kMinChunk, per_chunk / kWarp * kWarp);
  return {(reduced + size - 1) / size, size};
}

}  // namespace atelier::cuda
