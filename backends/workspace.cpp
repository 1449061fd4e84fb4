// The shared scratch block (see workspace.h).
#include "backends/workspace.h"

namespace atelier {

void* Workspace::get(size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (allocator_.capturing()) {
    // The shared block if it is large enough and no other live graph holds it; it then belongs to this capture's
    // pool, so it outlives a later, larger request for as long as the graph lives.
    if (block_ != nullptr && bytes <= bytes_ && allocator_.adopt_into_capture(block_)) return block_;
    // A block of the capture's own, back to its pool at once (reserved while the graph lives).
    void* own = allocator_.allocate(bytes);
    allocator_.deallocate(own, bytes);
    return own;
  }
  if (block_ == nullptr || bytes > bytes_) {
    // The old block may still be read by queued work; the allocator hands it out again only to work queued
    // later on the same stream (or keeps it in a live graph's pool), so giving it back now is safe.
    void* fresh = allocator_.allocate(bytes);
    allocator_.deallocate(block_, bytes_);
    block_ = fresh;
    bytes_ = bytes;
  }
  return block_;
}

size_t Workspace::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

void Workspace::release() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  allocator_.deallocate(block_, bytes_);
  block_ = nullptr;
  bytes_ = 0;
}

}  // namespace atelier
