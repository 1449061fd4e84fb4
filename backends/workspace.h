// Scratch memory for kernels: one block, grown on demand and shared by every call, eager or captured, that needs a
// few temporary bytes on the device between two of its kernels (CUDA's im2col columns, a long reduction's
// partials). The CUDA context owns one (backends/cuda/context.h), and so does the emulation's stand-in for it, so
// the emulated tests run this logic as written.
//
//   Workspace ws(allocator);
//   float* col = static_cast<float*>(ws.get(bytes));  // valid for work queued before the next get()
//
// get(n) returns at least n bytes. A larger request replaces the block; the old one goes back to the caching
// allocator at once, which hands it out again only to work queued later on the same stream, so work queued before
// still reads it safely. A steady training step therefore makes one block the size of its largest request and
// reuses it (no cudaMalloc after the first step).
//
// During a graph capture (CachingAllocator::begin_capture) the captured work is replayed later on the addresses it
// was recorded with, so the block it uses must stay reserved while the graph lives:
//   - If the shared block is large enough (the usual case: the eager warm-up steps before a capture have grown it
//     to the step's largest request), the capture uses it, and the block is adopted into the capture's pool
//     (CachingAllocator::adopt_into_capture). Eager work between replays keeps using it, ordered on the one
//     stream; when a later, larger request replaces it, it goes to the graph's pool, not to the shared lists, and
//     is reused only once the graph is gone. The graph costs no workspace memory of its own.
//   - Otherwise (a request larger than any before it, or a block another live graph holds), the request gets a
//     block of the capture's own pool, given back to the pool at once: it stays reserved while the graph lives,
//     and later work of the same capture reuses it only after this work, in stream order. Each such size stays
//     reserved while the graph lives (the cost item 3 of docs/gpu.md's list for the first GPU run watches).
// A lock orders calls from several threads, but the block is valid only until the next get(), whoever makes it:
// atelier queues all device work from one thread.
#pragma once

#include <cstddef>
#include <mutex>

#include "backends/caching_allocator.h"

namespace atelier {

class Workspace {
 public:
  explicit Workspace(CachingAllocator& allocator) : allocator_(allocator) {}
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  // The block is not freed: its owner (the context) lives until the process ends, and the allocator may be gone
  // by then. A test's Workspace over its own allocator calls release() first.
  ~Workspace() = default;

  // At least `bytes` of scratch memory, valid for work queued before the next call.
  void* get(size_t bytes);
  // The shared block's size (0 before the first request).
  size_t bytes() const;
  // Gives the shared block back to the allocator (to its graph's pool, if a live graph holds it).
  void release() noexcept;

 private:
  CachingAllocator& allocator_;
  mutable std::mutex mutex_;
  void* block_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace atelier
