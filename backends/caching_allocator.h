// The caching allocator both backends use: freed blocks go to a free list per size bucket and are handed out
// again, so a steady-state training step (the same sizes every step) asks the system for nothing new. On the CPU
// large activations then never page-fault twice; on the GPU a step makes no cudaMalloc (which synchronises the
// device).
//
// When a request's bucket has no cached block, the smallest cached block of a larger bucket, up to twice the
// request's, serves it whole (no split; it goes back to its own bucket when freed) before the system is asked.
// With exact buckets only, blocks of sizes the step was not asking for at that moment stayed idle beside new ones:
// BEGAN's 64x64 step held 678 MiB for a 363 MiB peak in use; with the larger fit 472 MiB (docs/benchmarks.md).
// Outside captures only: a capture takes exact blocks, so a graph's pool holds what its step asked for.
//
// The system memory behind it is two functions (SystemMemory): the CPU's aligned_alloc/free, the GPU's
// cudaMalloc/cudaFree. Reuse without waiting is safe on the GPU because every kernel and copy runs on the one
// stream of the CUDA context: work that used a freed block was queued before any work that reuses it.
//
// Private pools for captured graphs (Backend::begin_capture, docs/gpu.md "--cuda-graph"). A captured step is
// replayed later on the very addresses it was recorded with, so while the graph lives no memory it writes may be
// handed to anyone else. Between begin_capture() and end_capture(), every block that the capturing thread
// allocates or frees belongs to the capture's pool: blocks freed during the capture (temporaries of the step, and
// blocks allocated before it whose last owner let go during it, which the step may still read) go to the pool's
// own free lists, and blocks allocated during it (from the pool, the shared lists or the system) return to the
// pool when they are freed, during the capture or after it. Allocations outside a capture never take a pool's
// blocks. release_pool() (the graph's destructor, through GraphPool) hands the pool's cached blocks to the shared
// lists, and its blocks still in use go there when freed. Other threads (a data loader's prefetch) allocate from
// the shared lists even during a capture, so a batch never lands in memory a replay writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backends/backend.h"

namespace atelier {

// Where the blocks come from. allocate returns nullptr when the system is out of memory (the allocator then
// returns its cache and tries once more) and throws atelier::Error on any other failure; release must not throw
// (it is reached from destructors): it reports a failure and goes on.
struct SystemMemory {
  const char* name;  // "cpu", "cuda": named in error messages
  void* (*allocate)(size_t bytes);
  void (*release)(void* ptr) noexcept;
};

class CachingAllocator {
 public:
  explicit CachingAllocator(SystemMemory system) : system_(system) {}
  // Returns the cached blocks (blocks still in use belong to their owners).
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Uninitialised, aligned as the system memory aligns. allocate(0) returns a real (minimum-size) block, unique
  // and non-null. When the system refuses, the cache of unused blocks is released and the request tried once
  // more, except during a capture (on CUDA a cudaFree would break it): then, as when the retry fails, it throws
  // an atelier::Error naming the size.
  void* allocate(size_t bytes);
  // `bytes` must be the size given to allocate; nullptr is ignored. Never throws.
  void deallocate(void* ptr, size_t bytes) noexcept;
  // Byte counters count whole bucket sizes, i.e. what the blocks really occupy.
  AllocatorStats stats() const;
  // Returns every cached block of the shared lists to the system (a live graph's pool keeps its blocks).
  void empty_cache();

  // Starts routing the calling thread's allocations and frees into a new private pool (see above) and returns its
  // id. Throws when a capture is already under way.
  uint64_t begin_capture();
  // Stops the routing; the pool lives on (its blocks stay reserved) until release_pool.
  void end_capture() noexcept;
  // The graph of pool `id` is gone: its cached blocks join the shared lists, and its blocks in use join them when
  // freed. Never throws (reached from destructors).
  void release_pool(uint64_t id) noexcept;
  // The capture under way on the calling thread uses `ptr`, a block allocated before it and still in use (the
  // context's shared workspace, backends/workspace.h): from now on the block belongs to the capture's pool, so that
  // when its owner frees it, it goes to the pool and stays reserved while the graph lives (a replay writes it),
  // instead of going to the shared lists. Returns false, changing nothing, when the calling thread is not
  // capturing or the block belongs to another live pool (one block cannot be held by two graphs: the caller then
  // uses a block of the capture's own).
  bool adopt_into_capture(void* ptr);
  // True while a capture started by the calling thread routes its blocks.
  bool capturing() const;
  // True while any thread's capture is under way (an out-of-memory then keeps the cache: see allocate).
  bool capturing_anywhere() const;

  // The size of the block that serves a request: multiples of 512 bytes up to 1 MiB, then steps of a quarter
  // of the power of two below (at most 25% waste, and few distinct buckets for large tensors).
  static size_t bucket_size(size_t bytes);

 private:
  using FreeLists = std::unordered_map<size_t, std::vector<void*>>;  // bucket size -> cached blocks
  struct Pool {
    FreeLists free_lists;
    size_t cached = 0;  // bytes on free_lists
  };
  // A cached block of `size` taken from `lists`, or nullptr. Caller holds mutex_.
  static void* take(FreeLists& lists, size_t size);
  // A cached block of the shared lists from the smallest bucket in (size, 2 size], recorded in larger_, its bucket
  // in `taken`; or nullptr. Caller holds mutex_.
  void* take_larger(size_t size, size_t& taken);
  // The pool the calling thread's blocks go to now (0: none). Caller holds mutex_.
  uint64_t routing_pool() const;

  SystemMemory system_;
  mutable std::mutex mutex_;
  FreeLists free_lists_;  // the shared lists
  AllocatorStats stats_;
  std::unordered_map<uint64_t, Pool> pools_;     // the live private pools by id
  std::unordered_map<void*, uint64_t> pool_of_;  // every block (in use or cached) of a live pool -> its id
  std::unordered_map<void*, size_t> larger_;     // blocks handed out for a smaller bucket -> their own size
  uint64_t capture_pool_ = 0;                    // the pool of the capture under way (0: none)
  std::thread::id capture_thread_;               // the thread whose blocks go to it
  uint64_t next_pool_ = 1;
};

// A graph's hold on its private pool: releases it when destroyed. Movable, not copyable.
class GraphPool {
 public:
  GraphPool() = default;
  GraphPool(CachingAllocator* allocator, uint64_t id) : allocator_(allocator), id_(id) {}
  GraphPool(GraphPool&& other) noexcept : allocator_(other.allocator_), id_(other.id_) { other.allocator_ = nullptr; }
  GraphPool& operator=(GraphPool&& other) noexcept;
  GraphPool(const GraphPool&) = delete;
  GraphPool& operator=(const GraphPool&) = delete;
  ~GraphPool() { release(); }

  uint64_t id() const { return id_; }
  void release() noexcept;

 private:
  CachingAllocator* allocator_ = nullptr;
  uint64_t id_ = 0;
};

}  // namespace atelier
