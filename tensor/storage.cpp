#include "tensor/storage.h"

#include <new>

#include "backends/backend.h"
#include "backends/error.h"

namespace atelier {

namespace {
std::atomic<size_t> g_live_storage_bytes{0};
}

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device), backend_(&backend_for(device)) {
  // The backends' allocators throw atelier::OutOfMemoryError naming the size; a std::bad_alloc from anywhere below
  // (a backend's own bookkeeping) becomes one too, so out-of-memory always says what was asked for.
  try {
    data_ = backend_->allocate(bytes);
  } catch (const std::bad_alloc&) {
    ATELIER_OUT_OF_MEMORY(device << ": out of memory allocating " << bytes << " bytes for a tensor");
  }
  g_live_storage_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

Storage::~Storage() {
  backend_->deallocate(data_, bytes_);
  g_live_storage_bytes.fetch_sub(bytes_, std::memory_order_relaxed);
}

size_t live_storage_bytes() { return g_live_storage_bytes.load(std::memory_order_relaxed); }

}  // namespace atelier
