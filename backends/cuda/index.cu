// gather and scatter_add along one dimension on the GPU, with every index checked. CPU twin:
// backends/cpu/index.cpp.
//
// Shapes (contiguous): gather   src (outer, src_dim, inner), index/dst (outer, index_dim, inner)
//                      scatter  src/index (outer, index_dim, inner), dst (outer, dst_dim, inner)
// Both are gathers, one thread per output element, so no two threads write one element and no atomics touch
// the data: scatter_add's thread for dst[o, d, i] scans index[o, :, i] and adds, in order j = 0, 1, ..., the
// src[o, j, i] whose index is d: the CPU's order of adds, so the results are bit-identical to the CPU's. (It reads
// index_dim indices per output: fine for the class dimension of a loss, slow for a large embedding-style
// scatter, which would want a sort-based kernel.)
//
// A bad index is found on the GPU and reported without a synchronisation of its own, so that a step that uses
// these (cross_entropy's forward and backward) keeps the host free and can be captured as a CUDA graph: the
// kernel records the first bad position of its call in a device word (atomicMin), and a one-thread kernel queued
// after it copies that call's report (the primitive, the index and where it is) into a record in mapped pinned
// host memory, unless the record already holds an earlier call's. The next host read of the backend
// (copy_to_host, synchronize, a readback's wait: report_bad_index below) finds it there after its own wait, and
// throws the CPU's message for it, saying that an earlier call found it. scatter_add's kernel reads its check's
// word and adds nothing when an index is bad, so dst is left untouched, as on the CPU. With ATELIER_CUDA_SYNC=1
// (every launch waits: context.h) the call itself throws, as on the CPU.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "backends/cuda/bad_index.h"
#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/fast_divide.h"
#include "backends/host_device.h"
#include "backends/strided.h"

namespace atelier {
namespace {

using BadPosition = unsigned long long;  // atomicMin's type; kNoBadPosition when every index is in range
constexpr BadPosition kNoBadPosition = ~BadPosition{0};

// The first bad index found since the last host read, in mapped pinned memory: written by PublishBadIndex on
// the device, read and cleared by report_bad_index on the host after a wait for the stream.
struct BadIndexRecord {
  int32_t found;      // 0: nothing to report
  int32_t primitive;  // 0 gather, 1 scatter_add
  int64_t value, position, index_dim, inner, size;
};

constexpr const char* kPrimitiveNames[] = {"gather", "scatter_add"};

// The record's host address, once the first gather or scatter_add has made it (report_bad_index has nothing to
// read before).
std::atomic<BadIndexRecord*> g_bad_index_record{nullptr};

// The record's device address, the record made on the first call: pinned host memory mapped into the device's
// address space (the device address is the host address on every 64-bit platform CUDA supports, but is asked for
// all the same). Never freed, as the context.
BadIndexRecord* bad_index_record_on_device() {
  static BadIndexRecord* const device = [] {
    void* memory = nullptr;
    ATELIER_CUDA_CHECK(cudaHostAlloc(&memory, sizeof(BadIndexRecord), cudaHostAllocMapped));
    std::memset(memory, 0, sizeof(BadIndexRecord));
    void* address = nullptr;
    ATELIER_CUDA_CHECK(cudaHostGetDevicePointer(&address, memory, 0));
    g_bad_index_record.store(static_cast<BadIndexRecord*>(memory));
    return static_cast<BadIndexRecord*>(address);
  }();
  return device;
}

// One call's device word for the first position holding a bad index, set to "none" on the stream.
class BadIndexFlag {
 public:
  explicit BadIndexFlag(CudaBackend& backend) : backend_(backend) {
    flag_ = static_cast<BadPosition*>(backend_.allocate(sizeof(BadPosition)));
    ATELIER_CUDA_CHECK(cudaMemsetAsync(flag_, 0xff, sizeof(BadPosition), cuda::context().stream()));
    cuda::count_kernel();
  }
  // Freed at once: the next use of the block is queued on the same stream, after every kernel that reads it.
  ~BadIndexFlag() { backend_.deallocate(flag_, sizeof(BadPosition)); }
  BadIndexFlag(const BadIndexFlag&) = delete;
  BadIndexFlag& operator=(const BadIndexFlag&) = delete;

  BadPosition* get() const { return flag_; }

  // After the call's kernels: queues the copy of its report into the record (PublishBadIndex). `index` is the
  // index tensor (outer, index_dim, inner) on the device; `size` the dimension its values index.
  void publish(int32_t primitive, const int64_t* index, int64_t index_dim, int64_t inner, int64_t size);

 private:
  CudaBackend& backend_;
  BadPosition* flag_ = nullptr;
};

// Records position n as holding a bad index, keeping the smallest: atomicMin on the GPU; a plain min where the
// functors run on the host (scripts/cuda-emulate.sh runs them there, one thread, to check their logic).
ATELIER_HOST_DEVICE inline void record_bad_position(BadPosition* bad, int64_t n) {
#ifdef __CUDA_ARCH__
  atomicMin(bad, static_cast<BadPosition>(n));
#else
  if (static_cast<BadPosition>(n) < *bad) *bad = static_cast<BadPosition>(n);
#endif
}

// CPU twin: gather_typed (backends/cpu/index.cpp). dst element n; one whose index is out of range is left
// unwritten and reported.
template <typename U>
struct Gather {
  const U* src;
  const int64_t* index;
  U* dst;
  int64_t src_dim;
  Divisor by_inner, by_index_dim;
  int64_t inner;
  BadPosition* bad;
  ATELIER_HOST_DEVICE void operator()(int64_t n) const {
    int64_t i;
    const int64_t o = by_index_dim.divide(by_inner.divide(n, i));
    const int64_t v = index[n];
    if (v < 0 || v >= src_dim) {
      record_bad_position(bad, n);
      return;
    }
    dst[n] = src[(o * src_dim + v) * inner + i];
  }
};

// The check that runs before scatter_add writes anything: records the first index outside [0, size).
struct CheckIndex {
  const int64_t* index;
  int64_t size;
  BadPosition* bad;
  ATELIER_HOST_DEVICE void operator()(int64_t n) const {
    const int64_t v = index[n];
    if (v < 0 || v >= size) record_bad_position(bad, n);
  }
};

// One thread: copies a call's first bad position, its index and the shapes into the record, unless the record
// holds an earlier call's report still unread (the first bad call is the one reported, as the CPU throws there).
struct PublishBadIndex {
  const BadPosition* bad;
  const int64_t* index;
  BadIndexRecord* record;
  int32_t primitive;
  int64_t index_dim, inner, size;
  ATELIER_HOST_DEVICE void operator()(int64_t) const {
    const BadPosition position = *bad;
    if (position == kNoBadPosition || record->found != 0) return;
    record->primitive = primitive;
    record->value = index[position];
    record->position = static_cast<int64_t>(position);
    record->index_dim = index_dim;
    record->inner = inner;
    record->size = size;
    record->found = 1;
  }
};

void BadIndexFlag::publish(int32_t primitive, const int64_t* index, int64_t index_dim, int64_t inner, int64_t size) {
  cuda::launch_linear(1,
                      PublishBadIndex{flag_, index, bad_index_record_on_device(), primitive, index_dim, inner, size});
  if (cuda::sync_each_launch()) cuda::report_bad_index();  // the launch has waited for the device: report it here
}

// CPU twin: scatter_add_typed (backends/cpu/index.cpp), turned into a gather: the thread of dst[o, d, i] adds
// the src[o, j, i] with index[o, j, i] == d in increasing j, starting from dst's own value. int64 adds wrap in
// uint64 (no signed-overflow undefined behaviour). When CheckIndex found a bad index, it writes nothing.
template <typename T>
struct ScatterAddAsGather {
  const T* src;
  const int64_t* index;
  T* dst;
  int64_t index_dim, inner;
  Divisor by_inner, by_dst_dim;
  const BadPosition* bad;
  ATELIER_HOST_DEVICE void operator()(int64_t n) const {
    if (*bad != kNoBadPosition) return;
    using Acc = std::conditional_t<std::is_floating_point_v<T>, T, uint64_t>;
    int64_t i, d;
    const int64_t o = by_dst_dim.divide(by_inner.divide(n, i), d);
    const int64_t first = o * index_dim * inner + i;  // (o, 0, i) in src and index
    Acc acc = static_cast<Acc>(dst[n]);
    for (int64_t j = 0; j < index_dim; ++j) {
      if (index[first + j * inner] == d) acc += static_cast<Acc>(src[first + j * inner]);
    }
    dst[n] = static_cast<T>(acc);
  }
};

}  // namespace

namespace cuda {

void report_bad_index() {
  volatile BadIndexRecord* record = g_bad_index_record.load();
  if (record == nullptr || record->found == 0) return;
  const int64_t n = record->position, index_dim = record->index_dim, inner = record->inner;
  const char* primitive = kPrimitiveNames[record->primitive == 1 ? 1 : 0];
  const int64_t value = record->value, size = record->size;
  record->found = 0;  // reported once
  ATELIER_FAIL("cuda " << primitive << ": index " << value << " at position (outer " << n / (index_dim * inner) << ", "
                       << n / inner % index_dim << ", inner " << n % inner << ") is out of range [0, " << size
                       << ") (found by a " << primitive
                       << " queued before this host read; ATELIER_CUDA_SYNC=1 makes the call itself throw)");
}

}  // namespace cuda

void CudaBackend::gather(const GatherArgs& args) {
  const int64_t count = args.outer * args.index_dim * args.inner;
  if (count == 0) return;
  dispatch(cuda::gather_types{}, args.dtype, "cuda gather", [&]<class T> {
    using U = SameSize<T>;
    BadIndexFlag bad(*this);
    cuda::launch_linear(count,
                        Gather<U>{static_cast<const U*>(args.src_data), args.index_data, static_cast<U*>(args.dst_data),
                                  args.src_dim, Divisor(args.inner), Divisor(args.index_dim), args.inner, bad.get()});
    bad.publish(0, args.index_data, args.index_dim, args.inner, args.src_dim);
  });
}

void CudaBackend::scatter_add(const ScatterAddArgs& args) {
  const int64_t index_count = args.outer * args.index_dim * args.inner;
  if (index_count == 0) return;  // nothing to add
  dispatch(cuda::scatter_add_types{}, args.dtype, "cuda scatter_add", [&]<class T> {
    BadIndexFlag bad(*this);
    cuda::launch_linear(index_count, CheckIndex{args.index_data, args.dst_dim, bad.get()});
    cuda::launch_linear(
        args.outer * args.dst_dim * args.inner,
        ScatterAddAsGather<T>{static_cast<const T*>(args.src_data), args.index_data, static_cast<T*>(args.dst_data),
                              args.index_dim, args.inner, Divisor(args.inner), Divisor(args.dst_dim), bad.get()});
    bad.publish(1, args.index_data, args.index_dim, args.inner, args.dst_dim);
  });
}

}  // namespace atelier
