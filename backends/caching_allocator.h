// The caching allocator both backends use: freed memory is kept and handed out again, so a steady-state training
// step (the same sizes every step) asks the system for nothing new. On the CPU large activations then never
// page-fault twice; on the GPU a step makes no cudaMalloc (which synchronises the device).
//
// Small requests (up to 256 KiB) take exact buckets: multiples of 512 bytes, each block from the system, a free
// list per bucket. A repeated step finds every bucket as full as its busiest moment left it.
//
// Larger requests (rounded to 512 bytes) are pieces of segments, as in PyTorch's CUDA caching allocator: a request
// takes the best-fitting free piece (the smallest that is large enough, the lowest address among equals) and
// splits it when the rest is at least 256 KiB (the rest stays free; a smaller rest goes with the request, which then
// counts its whole piece); a freed piece merges with the free pieces on either side of it in its segment, never
// across segments. When no free piece fits, the system is asked for a new segment: a request's own size, or 2 MiB
// for requests under 1 MiB, which several then share. empty_cache() returns only segments that are wholly free.
// Why: with a free list per bucket, memory freed at one size served no other, and the blocks of sizes the step
// was not asking for at that moment sat idle beside new ones (BEGAN's 64x64 step held 678 MiB for a 363 MiB peak
// in use; serving an empty bucket with a cached block up to twice its size, whole, 472 MiB). Pieces let the step's
// activations of many sizes share the same memory in turn: 369-375 MiB (docs/benchmarks.md, "allocator:
// splitting"). The 256 KiB limit was measured: with 1 MiB, the 32x32 step, made of smaller tensors, held more than
// with the larger fit; with 64 KiB, a step after the two warm-up ones still asked the system for a segment. The
// best fit is a lookup in an ordered set; a step makes a few thousand requests, each far cheaper than
// the kernel that uses it. Splitting and merging keep pieces at multiples of 512 bytes from their segment's start,
// so every piece is aligned as the system aligns a block (64 bytes on the CPU for AVX-512, 256 for cudaMalloc,
// which cuBLAS expects).
//
// A steady state: a repeated step takes the same pieces as the step before it once the pieces that outlive a step
// (parameters, Adam's moments) are in place; BEGAN's steps ask the system for nothing from the third step on (the
// "no allocation in steady steps" tests, bench_train's system_allocs counter). Unlike exact buckets this is
// measured, not guaranteed: a step whose order of requests changes (threads racing for scratch) may carve the
// same free memory differently and need one more segment, once.
//
// The system memory behind it is two functions (SystemMemory): the CPU's aligned_alloc/free, the GPU's
// cudaMalloc/cudaFree. Reuse without waiting is safe on the GPU because every kernel and copy runs on the one
// stream of the CUDA context: work that used a freed block was queued before any work that reuses it.
//
// Private pools for captured graphs (Backend::begin_capture, docs/gpu.md "--cuda-graph"). A captured step is
// replayed later on the very addresses it was recorded with, so while the graph lives no memory it writes may be
// handed to anyone else. Between begin_capture() and end_capture(), every block that the capturing thread
// allocates or frees belongs to the capture's pool: blocks freed during the capture (temporaries of the step, and
// blocks allocated before it whose last owner let go during it, which the step may still read) are the pool's
// cached blocks, and blocks allocated during it (from the pool, the shared lists or the system) return to the pool
// when they are freed, during the capture or after it. Allocations outside a capture never take a pool's blocks.
//
// During its capture, a pool's free pieces and the shared ones form one free space, split and merged as an eager
// step's: a capture's large request takes the best fit of both (the smallest large enough, the lowest address among
// equals) and splits it (the rest keeps its owner), and a piece the capture frees merges with its free neighbours in
// its segment, the pool's or shared ones, which then become the pool's. So a capture gets exactly the pieces an
// eager step with the same requests would, from the memory its eager warm-up steps left, and holds what they held
// when it makes their requests (tests/test_caching_allocator.cpp). BEGAN's 64x64 step on the CPU: 443 MiB reserved
// in graph mode against 375 eager, 500 when a pool's pieces were never split or merged; the rest is the CPU
// kernels' scratch, which they take while they run, so a capture, running nothing, never asks for it and each
// replay takes it beside the pool (docs/benchmarks.md, "Graph pool"). Reuse inside the capture is safe for the
// reason eager reuse is: a replay runs the recorded work in the recorded order on one stream, so the work that used
// a piece before the capture freed it runs before the work that reuses it, at every replay (PyTorch's private pools
// rely on the same order).
//
// The invariants that keep a replay's addresses its own:
//   - A piece of pool P (Piece::pool == P), in use or free, is handed out only to a request of P's capture, and no
//     request reaches P once that capture has ended (end_capture; pool ids are never reused). Splitting a pool's
//     piece therefore happens only during its capture.
//   - A free piece is in exactly one set, its owner's: the shared free_pieces_ or its pool's. Shared memory joins a
//     pool (carved by its capture, or merged into a piece its capture frees); a pool's memory never becomes shared
//     while the pool lives: outside its capture, a pool's freed piece merges only with the pool's own free pieces.
//   - A segment holding a pool's piece is never wholly free, so empty_cache() keeps it.
// release_pool() (the graph's destructor, through GraphPool) makes every piece of the pool shared: its free pieces
// merge with their shared free neighbours, its cached small blocks join the shared lists, and its blocks still in
// use go there when freed. Other threads (a data loader's prefetch) allocate from the shared lists and pieces even
// during a capture, so a batch never lands in memory a replay writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
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
  // Byte counters count what the blocks and pieces really occupy: in_use their whole sizes (a bucket, or a piece
  // with the rest too small to split off), cached the cached small blocks and the free pieces. in_use + cached is
  // everything held from the system.
  AllocatorStats stats() const;
  // Starts peak_in_use again from what is in use now, to measure the peak of what follows (one training step).
  void reset_peak_in_use();
  // Returns every cached small block of the shared lists and every wholly free segment to the system (a live
  // graph's pool keeps its blocks, and a segment with a piece in use or in a pool stays).
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

  // A request rounded up to a multiple of 512 bytes: the size of the small block, or of the piece, that serves it
  // (a piece may be up to 256 KiB larger: see above).
  static size_t bucket_size(size_t bytes);

 private:
  using FreeLists = std::unordered_map<size_t, std::vector<void*>>;  // bucket size -> cached blocks
  // Free pieces by (size, address): the first entry not below (size, nullptr) is the best fit.
  using FreePieces = std::set<std::pair<size_t, char*>>;
  struct Pool {
    FreeLists free_lists;    // its cached small blocks
    FreePieces free_pieces;  // its free pieces
    size_t cached = 0;       // bytes of both
  };
  struct Piece {
    char* segment = nullptr;  // the start of its segment (the pointer the system returned)
    size_t size = 0;
    bool free = false;
    uint64_t pool = 0;  // the live private pool it belongs to, in use or free; 0: shared
    // Its entry of its owner's free pieces (free_pieces_ or its pool's), kept here while the piece is in use:
    // freeing it moves the entry back and allocates nothing (deallocate never throws, and a piece, unlike a
    // bucket's block, cannot go back to the system alone).
    FreePieces::node_type entry;
  };
  using Pieces = std::map<char*, Piece>;  // every piece of every segment by address: a segment's pieces are neighbours

  // A cached block of exactly `size` bytes taken from `lists`, or nullptr. Caller holds mutex_.
  static void* take(FreeLists& lists, size_t size);
  // The best-fitting piece of `from` (the shared free pieces or a pool's) of at least `size` bytes, split when the
  // rest is worth keeping apart (`size` then stays; else it becomes the piece's size), or nullptr. The rest keeps
  // the owner of the piece it was split from; the piece handed out belongs to `pool` (0: shared). Caller holds
  // mutex_.
  void* carve(FreePieces& from, size_t& size, uint64_t pool);
  // A new segment from the system at `base`, `bytes` long, whose first piece (`size` bytes, belonging to `pool`)
  // is handed out; the rest is a shared free piece. Caller holds mutex_. On an exception nothing changed.
  void add_segment(char* base, size_t bytes, size_t size, uint64_t pool);
  // Marks a piece in use as free and merges it with its neighbours in its segment that are free pieces of the same
  // owner (Piece::pool); the result goes to that owner's free pieces. Allocates nothing. Caller holds mutex_.
  void free_piece(Pieces::iterator piece) noexcept;
  // The free pieces of `pool`: the shared ones for 0, else those of that live pool. Caller holds mutex_.
  FreePieces& free_pieces_of(uint64_t pool) noexcept;
  // The pool the calling thread's blocks go to now (0: none). Caller holds mutex_.
  uint64_t routing_pool() const;

  SystemMemory system_;
  mutable std::mutex mutex_;
  FreeLists free_lists_;  // the shared lists (small blocks)
  Pieces pieces_;
  FreePieces free_pieces_;  // the shared free pieces
  AllocatorStats stats_;
  std::unordered_map<uint64_t, Pool> pools_;     // the live private pools by id
  std::unordered_map<void*, uint64_t> pool_of_;  // every small block (in use or cached) of a live pool -> its id
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
