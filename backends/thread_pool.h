// The only source of compute threads in atelier (Eigen runs single-threaded inside it; a DataLoader's prefetch
// thread, nn/data/dataloader.cpp, only loads batches).
//
// Work is split statically: parallel_for cuts [0, n) into num_threads() equal chunks and chunk t always runs on
// thread t (t = 0 is the calling thread), so results depend only on the thread count, never on timing.
// The pool size comes from ATELIER_NUM_THREADS (default: all cores) and can be changed between ops. The pool is
// made, and the variable checked, at the library's first use (when the CPU backend is created).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

namespace atelier {

// The most threads a pool may have: ATELIER_NUM_THREADS and the programs' --threads are checked against it, so that
// a typo cannot ask the system for millions of threads.
constexpr int kMaxThreads = 4096;

// The thread count ATELIER_NUM_THREADS asks for (all cores when it is unset or empty). Throws atelier::Error
// naming the value unless it is an integer in [1, kMaxThreads]. Programs call it first, to refuse a bad setting in one
// line before any work (bin/began and bin/gradcheck do); the library checks it again when it makes the pool.
int num_threads_from_environment();

int num_threads();
// Resizes the pool (n >= 1). Must not be called from inside a parallel region.
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint chunks covering [0, n). Runs inline on the calling thread when there is one
// thread, when n < 2 * grain, or when called from inside another parallel region (no nested parallelism).
// Chunk boundaries are multiples of `grain` where possible. An exception thrown by fn is rethrown here.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

// The grain for parallel_for over items (image planes, normalisation groups) of `item_elements` elements each: as
// many items as make about 16k elements, at least one.
inline int64_t grain_for_items(int64_t item_elements) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(item_elements, 1));
}

// Calls fn(t, num_threads()) once on each thread of the pool (t = 0 on the calling thread).
void parallel_run(const std::function<void(int t, int nthreads)>& fn);

// True on a pool worker, or on the calling thread while it runs a chunk.
bool in_parallel_region();

}  // namespace atelier
