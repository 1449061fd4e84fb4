// Scratch memory for the CPU kernels, taken from the caching allocator (shared by conv.cpp and winograd.cpp).
//
// Scratch<T> is one block, returned when it dies. ScratchSlots<T> is one block per chunk of a parallel region,
// all allocated before the region starts, on the calling thread: blocks allocated inside the region would be
// reused or not depending on how the threads happen to overlap (a thread that starts late takes the block an
// early one has just returned), so a steady training step could still ask the system for memory; taken up
// front, every call makes the same requests in the same order.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "backends/cpu/cpu_backend.h"
#include "backends/error.h"

namespace atelier::cpu {

// `count` elements of T from the CPU caching allocator, returned when the object dies.
template <typename T>
class Scratch {
 public:
  explicit Scratch(int64_t count)
      : bytes_(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T)),
        data_(static_cast<T*>(cpu_backend().allocate(bytes_))) {}
  ~Scratch() { cpu_backend().deallocate(data_, bytes_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return data_; }

 private:
  size_t bytes_;
  T* data_;
};

// `slots` blocks of `count` elements, at least as many as the region has chunks; each block starts on a 64-byte
// boundary, as a block of its own would. take() hands each chunk a block no other chunk gets.
template <typename T>
class ScratchSlots {
 public:
  ScratchSlots(int64_t slots, int64_t count)
      : slots_(slots), count_(round_up(std::max<int64_t>(count, 1))), all_(slots_ * count_) {}
  T* take() {
    const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    ATELIER_ASSERT(i < slots_, "cpu scratch: chunk " << i << " of a region sized for " << slots_);
    return all_.get() + i * count_;
  }

 private:
  static int64_t round_up(int64_t count) {
    constexpr int64_t per_line = 64 / static_cast<int64_t>(sizeof(T));
    return (count + per_line - 1) / per_line * per_line;
  }

  int64_t slots_, count_;
  Scratch<T> all_;
  std::atomic<int64_t> next_{0};
};

}  // namespace atelier::cpu
