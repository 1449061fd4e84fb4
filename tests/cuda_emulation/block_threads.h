// Host threads standing in for the threads of a CUDA block, for the emulated launch_blocks
// (tests/cuda_emulation/fake/backends/cuda/launch.h): run_blocks<Shared, Threads>(blocks, op) calls
// op(BlockContext&) for every block index b < blocks and thread index t < Threads, each thread of a block on its
// own host thread, with a typed array of Threads `Shared` elements that the block's threads share and a sync()
// that is a std::barrier over them (__syncthreads). Blocks run one after another on the same threads, with a
// barrier between two blocks (shared memory is reused, as the device's block-stride loop reuses it). Pure C++:
// the CPU suite tests it (tests/test_block_threads.cpp) where no nvcc is.
//
// What it proves: a kernel's result does not depend on the order its threads run in between two syncs, as far as
// the host's scheduler varies that order, and a missing sync before reading another thread's shared element
// shows up as a wrong value (likely, not certain: a race may happen to read the right value). What it does not:
// anything about warps (no lockstep, no warp-synchronous code, no shuffles), the GPU's memory model beyond what
// the barrier orders (it is stronger here: a host barrier orders global memory too, __syncthreads orders shared
// and global memory for the block only), bank conflicts, occupancy or speed. Blocks never run concurrently, so
// races between blocks (which the kernels must not have: no atomics) are not exercised either.
#pragma once

#include <barrier>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "backends/host_device.h"

namespace atelier::cuda {

// The view one thread of one block has (the host twin of launch.h's BlockContext).
template <class Shared, int Threads>
struct BlockContext {
  int64_t block = 0;         // this block's index, < the launch's block count
  int thread = 0;            // this thread's index in the block, < Threads
  Shared* shared = nullptr;  // Threads elements shared by the block's threads, uninitialised at the first block
  std::barrier<>* barrier = nullptr;
  // Host and device for nvcc, which compiles the kernels' functors (__host__ __device__) for both; only the host
  // side ever runs.
  ATELIER_HOST_DEVICE void sync() const {
#if !defined(__CUDA_ARCH__)
    barrier->arrive_and_wait();
#endif
  }
};

// A pool of host threads that runs body(0), ..., body(count - 1) at once, each on its own thread, so the calls
// may meet at a barrier. Threads are made once (as many as the largest count asked so far) and reused: a
// reduction launches hundreds of blocks of 256 threads. run() calls are serialised; body must not call run().
class ThreadGang {
 public:
  ThreadGang() = default;
  ThreadGang(const ThreadGang&) = delete;
  ThreadGang& operator=(const ThreadGang&) = delete;
  ~ThreadGang() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  // How many host threads the gang has made so far.
  int threads_made() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int>(threads_.size());
  }

  void run(int count, const std::function<void(int)>& body) {
    if (count <= 0) return;
    std::lock_guard<std::mutex> one_run(run_mutex_);
    std::unique_lock<std::mutex> lock(mutex_);
    while (static_cast<int>(threads_.size()) < count) {
      const int index = static_cast<int>(threads_.size());
      threads_.emplace_back([this, index] { work(index); });
    }
    body_ = &body;
    count_ = count;
    running_ = count;
    ++generation_;
    wake_.notify_all();
    done_.wait(lock, [this] { return running_ == 0; });
    body_ = nullptr;
  }

 private:
  void work(int index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (index >= count_) continue;
      const std::function<void(int)>* body = body_;
      lock.unlock();
      (*body)(index);
      lock.lock();
      if (--running_ == 0) done_.notify_one();
    }
  }

  std::mutex run_mutex_;  // one run at a time
  std::mutex mutex_;      // guards everything below
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(int)>* body_ = nullptr;
  int count_ = 0, running_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

inline ThreadGang& block_thread_gang() {
  static ThreadGang gang;
  return gang;
}

// Runs op(BlockContext&) for blocks 0, 1, ..., blocks - 1 in turn, each on Threads host threads. An exception
// escaping op ends the program (as a fault ends a kernel); the kernels' functors do not throw.
template <class Shared, int Threads, class Op>
void run_blocks(int64_t blocks, const Op& op) {
  static_assert(Threads > 0);
  if (blocks <= 0) return;
  // One block's shared memory, uninitialised as __shared__ memory is, and reused by the next block.
  const std::unique_ptr<Shared[]> shared = std::make_unique_for_overwrite<Shared[]>(Threads);
  std::barrier<> barrier(Threads);
  block_thread_gang().run(Threads, [&](int t) {
    BlockContext<Shared, Threads> block{0, t, shared.get(), &barrier};
    for (int64_t b = 0; b < blocks; ++b) {
      block.block = b;
      op(block);
      barrier.arrive_and_wait();  // every thread is done with this block's shared memory before the next one
    }
  });
}

}  // namespace atelier::cuda
