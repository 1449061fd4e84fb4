// Reductions on the GPU: sum / mean / max over any split of the source's dimensions into kept and reduced, and
// argmax along one dimension. CPU twin: backends/cpu/reduce.cpp.
//
// Determinism (no atomics, results depend only on the sizes):
//   - short reductions (fewer than kBlockReduceFrom elements per output): one thread per kept element walks its
//     reduced range in order, like the CPU;
//   - long ones: one block per kept element; thread t takes the reduced indices t, t + B, t + 2B, ... in order,
//     then the B partials meet in a fixed tree in shared memory.
// Accuracy as on the CPU: float32 and float64 sums accumulate in double; int64 sums wrap in uint64; max
// propagates NaN.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/host_device.h"
#include "backends/strided.h"

namespace atelier {
namespace {

// From this many reduced elements per output a whole block reduces each output.
constexpr int64_t kBlockReduceFrom = 64;
constexpr int kReduceBlock = 256;  // a power of two (the tree halves it)

// Sum and mean: accumulate in double (floating T) or uint64 (int64: wraps modulo 2^64, as on the CPU); the
// result is acc * scale (scale 1 for a sum, 1 / count for a mean) converted to T.
template <typename T>
struct SumReducer {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;
  ATELIER_HOST_DEVICE static Acc init() { return Acc(0); }
  ATELIER_HOST_DEVICE static Acc load(T x) { return static_cast<Acc>(x); }
  ATELIER_HOST_DEVICE static Acc combine(Acc a, Acc b) { return a + b; }
  ATELIER_HOST_DEVICE static T finish(Acc a, double scale) {
    if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(a * scale);
    } else {
      return static_cast<T>(a);  // scale is 1: int64 has no mean
    }
  }
};

// Max: NaN wins and stays, whichever side it comes from (NaN > m and m > NaN are both false).
template <typename T>
struct MaxReducer {
  using Acc = T;
  ATELIER_HOST_DEVICE static Acc init() {
    if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(-INFINITY);
    } else {
      return INT64_MIN;
    }
  }
  ATELIER_HOST_DEVICE static Acc load(T x) { return x; }
  ATELIER_HOST_DEVICE static Acc combine(Acc m, Acc x) { return (x > m || x != x) ? x : m; }
  ATELIER_HOST_DEVICE static T finish(Acc a, double) { return a; }
};

// The element offset of position `linear` of a one-operand plan.
ATELIER_HOST_DEVICE inline int64_t offset_at(const StridedPlan<1>& plan, int64_t linear) {
  int64_t offset[1];
  plan_offsets(plan, linear, offset);
  return offset[0];
}

// CPU twin: run_reduce's per-output loop (backends/cpu/reduce.cpp). Kept element k, reduced in order.
template <typename Red, typename T>
struct ReducePerThread {
  const T* src;
  T* dst;
  StridedPlan<1> kept, reduced;
  double scale;
  ATELIER_HOST_DEVICE void operator()(int64_t k) const {
    const T* base = src + offset_at(kept, k);
    typename Red::Acc acc = Red::init();
    for (int64_t r = 0; r < reduced.numel; ++r) acc = Red::combine(acc, Red::load(base[offset_at(reduced, r)]));
    dst[k] = Red::finish(acc, scale);
  }
};

// CPU twin: run_reduce (backends/cpu/reduce.cpp). One block per kept element (a block-stride loop over them),
// kReduceBlock threads, a fixed tree over the threads' partials.
template <typename Red, typename T>
__global__ void reduce_per_block_kernel(const T* src, StridedPlan<1> kept, StridedPlan<1> reduced, double scale,
                                        T* dst) {
  __shared__ typename Red::Acc partial[kReduceBlock];
  const int t = static_cast<int>(threadIdx.x);
  for (int64_t k = blockIdx.x; k < kept.numel; k += gridDim.x) {
    const T* base = src + offset_at(kept, k);
    typename Red::Acc acc = Red::init();
    for (int64_t r = t; r < reduced.numel; r += kReduceBlock) {
      acc = Red::combine(acc, Red::load(base[offset_at(reduced, r)]));
    }
    partial[t] = acc;
    __syncthreads();
    for (int half = kReduceBlock / 2; half > 0; half /= 2) {
      if (t < half) partial[t] = Red::combine(partial[t], partial[t + half]);
      __syncthreads();
    }
    if (t == 0) dst[k] = Red::finish(partial[0], scale);
    __syncthreads();  // partial[0] is read before the next output overwrites the array
  }
}

template <typename Red, typename T>
void run_reduce(const ReduceArgs& args, double scale) {
  const Layout* kept_layout[1] = {&args.kept};
  const Layout* reduced_layout[1] = {&args.reduced};
  const StridedPlan<1> kept = make_plan<1>(args.kept, kept_layout);
  const StridedPlan<1> reduced = make_plan<1>(args.reduced, reduced_layout);
  const T* src = static_cast<const T*>(args.src_data);
  T* dst = static_cast<T*>(args.dst_data);
  if (reduced.numel >= kBlockReduceFrom) {
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(kept.numel, cuda::kMaxBlocks));
    reduce_per_block_kernel<Red, T>
        <<<blocks, kReduceBlock, 0, cuda::context().stream()>>>(src, kept, reduced, scale, dst);
    cuda::check_launch("reduce_per_block_kernel");
  } else {
    cuda::launch_linear(kept.numel, ReducePerThread<Red, T>{src, dst, kept, reduced, scale});
  }
}

template <typename T>
void reduce_typed(const ReduceArgs& args) {
  const int64_t kept = args.kept.numel(), reduced = args.reduced.numel();
  if (kept == 0) return;
  if (reduced == 0) {
    ATELIER_CHECK(
        args.op == ReduceOp::Sum,
        "cuda reduce: " << reduce_op_name(args.op) << " over an empty range (0 elements reduced) is undefined");
    // A sum of nothing is 0, whose bytes are all zero for float32, float64 and int64.
    ATELIER_CUDA_CHECK(
        cudaMemsetAsync(args.dst_data, 0, static_cast<size_t>(kept) * sizeof(T), cuda::context().stream()));
    cuda::count_kernel();
    return;
  }
  switch (args.op) {
    case ReduceOp::Sum: return run_reduce<SumReducer<T>, T>(args, 1.0);
    case ReduceOp::Mean:
      if constexpr (std::is_floating_point_v<T>) {
        return run_reduce<SumReducer<T>, T>(args, 1.0 / static_cast<double>(reduced));
      } else {
        throw Error(std::string("cuda reduce: mean needs a floating dtype, got ") + dtype_name(args.dtype));
      }
    case ReduceOp::Max: return run_reduce<MaxReducer<T>, T>(args, 1.0);
  }
}

// CPU twin: argmax_typed (backends/cpu/reduce.cpp). Kept element k scans its row in order: the first maximum
// wins, a NaN counts as the maximum and the first NaN wins.
template <typename T>
struct Argmax {
  const T* src;
  int64_t* dst;
  StridedPlan<1> kept;
  int64_t n, stride;
  ATELIER_HOST_DEVICE void operator()(int64_t k) const {
    const T* x = src + offset_at(kept, k);
    T best = x[0];
    int64_t best_index = 0;
    for (int64_t j = 1; j < n && best == best; ++j) {
      const T v = x[j * stride];
      if (v > best || v != v) {
        best = v;
        best_index = j;
      }
    }
    dst[k] = best_index;
  }
};

}  // namespace

void CudaBackend::reduce(const ReduceArgs& args) {
  dispatch(cuda::reduce_types{}, args.dtype, "cuda reduce", [&]<class T> { reduce_typed<T>(args); });
}

void CudaBackend::argmax(const ArgmaxArgs& args) {
  if (args.kept.numel() == 0) return;
  ATELIER_CHECK(args.reduced_size > 0, "cuda argmax: the reduced dimension is empty (size 0)");
  const Layout* kept_layout[1] = {&args.kept};
  const StridedPlan<1> kept = make_plan<1>(args.kept, kept_layout);
  dispatch(cuda::argmax_types{}, args.dtype, "cuda argmax", [&]<class T> {
    cuda::launch_linear(kept.numel, Argmax<T>{static_cast<const T*>(args.src_data), args.dst_data, kept,
                                              args.reduced_size, args.reduced_stride});
  });
}

}  // namespace atelier
