// Storage: the bytes behind one or more tensors, taken from the device's caching allocator, plus the version
// counter. Every view of the same bytes shares one Storage, so an in-place write through any view bumps the
// version that a SavedTensor of any other view checks at backward time.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "backends/dtype.h"

namespace atelier {

class Backend;

class Storage {
 public:
  // Allocates `bytes` uninitialised bytes on `device`.
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  Backend* backend_ = nullptr;
  std::atomic<uint64_t> version_{0};
};

// Bytes held by live Storage objects (not the allocators' caches): the leak tests read it.
size_t live_storage_bytes();

}  // namespace atelier
