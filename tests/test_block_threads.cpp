// The CUDA emulation's block launcher on the host (tests/cuda_emulation/block_threads.h, behind the emulated
// launch_blocks of scripts/cuda-emulate.sh): every (block, thread) runs once, a block's threads run on distinct
// host threads that meet at sync(), the shared array is shared by a block and reused by the next one only after
// the block is done, and the threads are pooled, not made per launch. Slow threads (sleeps) make a missing
// barrier show up as a wrong value rather than by chance.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "tests/cuda_emulation/block_threads.h"

namespace {

using atelier::cuda::BlockContext;
using atelier::cuda::run_blocks;

constexpr int kThreads = 32;
constexpr int64_t kBlocks = 5;

void pause_us(int us) { std::this_thread::sleep_for(std::chrono::microseconds(us)); }

// What one launch saw: for each (block, thread) the neighbour's value read after sync() and how often it ran,
// each block's total as thread 0 read it after the last sync, and the host threads that ran.
struct Seen {
  std::vector<int64_t> neighbour = std::vector<int64_t>(kBlocks * kThreads, -1);
  std::vector<int> runs = std::vector<int>(kBlocks * kThreads, 0);
  std::vector<int64_t> total = std::vector<int64_t>(kBlocks, -1);
  std::mutex mutex;
  std::set<std::thread::id> host_threads;
  std::vector<std::set<std::thread::id>> block_threads = std::vector<std::set<std::thread::id>>(kBlocks);
};

// The value thread t of block b writes to the shared array.
int64_t value(int64_t b, int t) { return b * 1000 + t; }

struct Op {
  Seen* seen;
  void operator()(BlockContext<int64_t, kThreads>& blk) const {
    const int64_t b = blk.block;
    const int t = blk.thread;
    const int64_t slot = b * kThreads + t;
    ++seen->runs[slot];
    {
      std::lock_guard<std::mutex> lock(seen->mutex);
      seen->host_threads.insert(std::this_thread::get_id());
      seen->block_threads[b].insert(std::this_thread::get_id());
    }
    if (t % 2 == 1) pause_us(300);  // odd threads write late: without the barrier, even ones read a stale value
    blk.shared[t] = value(b, t);
    blk.sync();
    seen->neighbour[slot] = blk.shared[(t + 1) % kThreads];
    blk.sync();
    if (t == 0) {
      // Thread 0 reads last and slowly: without the launcher's barrier between blocks, the other threads would
      // already be writing the next block's values.
      pause_us(1000);
      int64_t sum = 0;
      for (int i = 0; i < kThreads; ++i) sum += blk.shared[i];
      seen->total[b] = sum;
    }
  }
};

TEST_CASE("emulated launch_blocks: each block's threads run once each, meet at sync() and share one array") {
  Seen seen;
  run_blocks<int64_t, kThreads>(kBlocks, Op{&seen});
  for (int64_t b = 0; b < kBlocks; ++b) {
    INFO("block " << b);
    int64_t want_total = 0;
    for (int t = 0; t < kThreads; ++t) {
      INFO("thread " << t);
      CHECK(seen.runs[b * kThreads + t] == 1);
      CHECK(seen.neighbour[b * kThreads + t] == value(b, (t + 1) % kThreads));
      want_total += value(b, t);
    }
    CHECK(seen.total[b] == want_total);
    CHECK(seen.block_threads[b].size() == static_cast<size_t>(kThreads));  // one host thread per GPU thread
  }
}

TEST_CASE("emulated launch_blocks: the host threads are pooled, and no block runs for an empty launch") {
  Seen first, second;
  run_blocks<int64_t, kThreads>(kBlocks, Op{&first});
  const int made = atelier::cuda::block_thread_gang().threads_made();
  CHECK(made >= kThreads);
  run_blocks<int64_t, kThreads>(kBlocks, Op{&second});
  CHECK(atelier::cuda::block_thread_gang().threads_made() == made);  // the same threads again, no new ones
  CHECK(first.host_threads.size() == static_cast<size_t>(kThreads));
  CHECK(first.host_threads == second.host_threads);
  CHECK(first.host_threads.count(std::this_thread::get_id()) == 0);  // the caller waits, it is not a thread

  Seen none;
  run_blocks<int64_t, kThreads>(0, Op{&none});
  CHECK(std::count(none.runs.begin(), none.runs.end(), 0) == kBlocks * kThreads);
}

}  // namespace
