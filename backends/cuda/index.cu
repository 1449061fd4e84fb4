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
// A bad index is found on the GPU (the first bad position, by atomicMin on a flag used only for this report),
// read back after the kernel, and thrown as the CPU's error. scatter_add checks before it writes, so a bad index
// leaves dst untouched, as on the CPU. Reading the flag synchronises the stream once per call.
#include <cstdint>
#include <type_traits>

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

// One device word that records the first position holding a bad index, and the check that reads it back.
class BadIndexFlag {
 public:
  explicit BadIndexFlag(CudaBackend& backend) : backend_(backend) {
    flag_ = static_cast<BadPosition*>(backend_.allocate(sizeof(BadPosition)));
    ATELIER_CUDA_CHECK(cudaMemsetAsync(flag_, 0xff, sizeof(BadPosition), cuda::context().stream()));
    cuda::count_kernel();
  }
  ~BadIndexFlag() { backend_.deallocate(flag_, sizeof(BadPosition)); }
  BadIndexFlag(const BadIndexFlag&) = delete;
  BadIndexFlag& operator=(const BadIndexFlag&) = delete;

  BadPosition* get() const { return flag_; }

  // After the kernel: throws the CPU's message for the first bad index, if any. `index` is the index tensor
  // (outer, index_dim, inner) on the device.
  void check(const char* primitive, const int64_t* index, int64_t index_dim, int64_t inner, int64_t size) {
    BadPosition position = kNoBadPosition;
    backend_.copy_to_host(&position, flag_, sizeof(position));  // ordered after the kernel on the stream
    if (position == kNoBadPosition) return;
    const int64_t n = static_cast<int64_t>(position);
    int64_t value = 0;
    backend_.copy_to_host(&value, index + n, sizeof(value));
    ATELIER_FAIL("cuda " << primitive << ": index " << value << " at position (outer " << n / (index_dim * inner)
                         << ", " << n / inner % index_dim << ", inner " << n % inner << ") is out of range [0, " << size
                         << ")");
  }

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

// CPU twin: scatter_add_typed (backends/cpu/index.cpp), turned into a gather: the thread of dst[o, d, i] adds
// the src[o, j, i] with index[o, j, i] == d in increasing j, starting from dst's own value. int64 adds wrap in
// uint64 (no signed-overflow undefined behaviour).
template <typename T>
struct ScatterAddAsGather {
  const T* src;
  const int64_t* index;
  T* dst;
  int64_t index_dim, inner;
  Divisor by_inner, by_dst_dim;
  ATELIER_HOST_DEVICE void operator()(int64_t n) const {
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

void CudaBackend::gather(const GatherArgs& args) {
  const int64_t count = args.outer * args.index_dim * args.inner;
  if (count == 0) return;
  dispatch(cuda::gather_types{}, args.dtype, "cuda gather", [&]<class T> {
    using U = SameSize<T>;
    BadIndexFlag bad(*this);
    cuda::launch_linear(count,
                        Gather<U>{static_cast<const U*>(args.src_data), args.index_data, static_cast<U*>(args.dst_data),
                                  args.src_dim, Divisor(args.inner), Divisor(args.index_dim), args.inner, bad.get()});
    bad.check("gather", args.index_data, args.index_dim, args.inner, args.src_dim);
  });
}

void CudaBackend::scatter_add(const ScatterAddArgs& args) {
  const int64_t index_count = args.outer * args.index_dim * args.inner;
  if (index_count == 0) return;  // nothing to add
  dispatch(cuda::scatter_add_types{}, args.dtype, "cuda scatter_add", [&]<class T> {
    {
      BadIndexFlag bad(*this);
      cuda::launch_linear(index_count, CheckIndex{args.index_data, args.dst_dim, bad.get()});
      bad.check("scatter_add", args.index_data, args.index_dim, args.inner, args.dst_dim);
    }
    // (dst has elements here: an empty dst_dim would have failed the check above.)
    cuda::launch_linear(
        args.outer * args.dst_dim * args.inner,
        ScatterAddAsGather<T>{static_cast<const T*>(args.src_data), args.index_data, static_cast<T*>(args.dst_data),
                              args.index_dim, args.inner, Divisor(args.inner), Divisor(args.dst_dim)});
  });
}

}  // namespace atelier
