#include "tensor/storage.h"

#include "backends/backend.h"

namespace atelier {

namespace {
std::atomic<size_t> g_live_storage_bytes{0};
}

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device), backend_(&backend_for(device)) {
  data_ = backend_->allocate(bytes);
  g_live_storage_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

Storage::~Storage() {
  backend_->deallocate(data_, bytes_);
  g_live_storage_bytes.fetch_sub(bytes_, std::memory_order_relaxed);
}

size_t live_storage_bytes() { return g_live_storage_bytes.load(std::memory_order_relaxed); }

}  // namespace atelier
