// CpuBackend: memory from the caching allocator; the primitives and supports() are generated from
// backends/primitives.def and forward to the kernels and type lists of backends/cpu/kernels.h.
#include "backends/cpu/cpu_backend.h"

#include <cstring>

#include "backends/cpu/cpu_allocator.h"
#include "backends/cpu/kernels.h"
#include "backends/thread_pool.h"

namespace atelier {
namespace {

class CpuBackend final : public Backend {
 public:
  // The library's first use: the thread pool is made now, so a bad ATELIER_NUM_THREADS is refused before any work.
  CpuBackend() { (void)num_threads(); }

  std::string name() const override { return "cpu"; }
  bool available() const override { return true; }

  void* allocate(size_t bytes) override { return allocator_.allocate(bytes); }
  void deallocate(void* ptr, size_t bytes) override { allocator_.deallocate(ptr, bytes); }
  AllocatorStats allocator_stats() const override { return allocator_.stats(); }
  void reset_peak_in_use() override { allocator_.reset_peak_in_use(); }
  void empty_cache() override { allocator_.empty_cache(); }
  void copy_to_host(void* host_dst, const void* device_src, size_t bytes) override {
    refuse_in_capture("copy_to_host");
    if (bytes > 0) std::memcpy(host_dst, device_src, bytes);
  }
  void copy_from_host(void* device_dst, const void* host_src, size_t bytes) override {
    refuse_in_capture("copy_from_host");
    count_host_sync_upload();  // where a GPU would wait (backends/backend.h)
    if (bytes > 0) std::memcpy(device_dst, host_src, bytes);
  }
  // A memcpy from the staging buffer, not counted: on a GPU the same upload waits for nothing.
  std::unique_ptr<HostUpload> make_upload(size_t bytes) override { return make_host_memory_upload(bytes); }

  // Answered from the kernels' type lists (backends/cpu/kernels.h), which are also what they dispatch over.
  bool supports(PrimitiveOp op, DType dtype) const override {
    switch (op) {
#define X(name, Args)     \
  case PrimitiveOp::name: \
    return cpu::name##_types::contains(dtype);
#include "backends/primitives.def"
#undef X
    }
    return false;
  }

  // Every primitive forwards to its kernel, cpu::<name>(args).
#define X(name, Args) \
  void name(const Args& args) override { cpu::name(args); }
#include "backends/primitives.def"
#undef X

 protected:
  // Captures use the default recorder (Backend::capture_begin) and this allocator's private pools.
  CachingAllocator* caching_allocator() override { return &allocator_; }

 private:
  CpuAllocator allocator_;
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend instance;
  return instance;
}

}  // namespace atelier
