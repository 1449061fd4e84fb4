// Reductions on the GPU: sum / mean / max over any split of the source's dimensions into kept and reduced, argmax
// along one dimension, and log-softmax with its gradient (at the end of the file). CPU twin: backends/cpu/reduce.cpp.
//
// Three paths, by the reduced count R per output and the kept count K (the kernels per call in brackets):
//   - short (R < kBlockReduceFrom): one thread per kept element walks its reduced range in order, like the CPU
//     (1 kernel: launch_linear);
//   - long, K >= kFillBlocks or R < kSplitFrom: one block per kept element; its kReduceBlock threads take the
//     reduced indices t, t + B, t + 2B, ... in order, then their partials meet in the block's fixed combine
//     (below) and thread 0 writes the result (1 kernel: launch_blocks);
//   - long into few outputs (K < kFillBlocks, R >= kSplitFrom; e.g. BEGAN's L1 losses, about 200k elements
//     into 1 or 2 outputs, and the bias gradients, a few channels of N * H * W): each output's reduced range is
//     cut into S contiguous chunks of C indices (C about R / ceil(kFillBlocks / K), rounded down to a multiple
//     of kWarp so that every warp's loads stay aligned, and at least kMinChunk), one block per (output, chunk)
//     (K * S blocks, kFillBlocks or a few more: two per SM of a 132-SM H200), each writing its chunk's partial
//     (in the accumulator's type) to scratch memory from the caching allocator; then one block per output folds
//     its S partials (thread t those t, t + B, ... in order, then the block's combine) and writes the result
//     (2 kernels, both launch_blocks).
// The block's combine: thread t stores its partial in shared[t]; threads 0..15 each fold shared[t], shared[t +
// 16], ..., shared[t + 240] in that order (consecutive threads read consecutive words: no bank conflicts); thread
// 0 folds those 16 in order. Three syncs per block (two here, one by the launcher between blocks).
// A reduced range that is one run of the plan (one dimension after merging, any stride; contiguous for a
// reduction over trailing dimensions) is read as base[r * stride], without the plan's per-element divisions;
// with stride 1 a warp's loads are coalesced. Two runs (a bias gradient's batch and pixels) advance their two
// indices by additions; only three or more dimensions pay the plan's divisions per element.
//
// Determinism (no atomics; results depend only on the sizes and strides, never on timing or the device): every
// fold above has a fixed order. The scratch (at most K * S accumulators, a few KB) is the context's workspace
// (context.h: valid for work queued before the next workspace() call, and both kernels are queued before any
// other), a block of the caching allocator; inside a graph capture it comes from the capture's pool, and in steady
// steps the cached block is reused, so no cudaMalloc happens there.
// Accuracy as on the CPU: float32 and float64 sums accumulate in double, across blocks too (the partials are
// doubles); int64 sums wrap in uint64; max propagates NaN (from any thread and any chunk).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "backends/argmax_math.h"
#include "backends/cuda/block_reduce.h"
#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/device_math.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/fast_divide.h"
#include "backends/host_device.h"
#include "backends/strided.h"

namespace atelier {
namespace {

using cuda::block_fold;
using cuda::block_fold_to_all;
using cuda::chunking;
using cuda::Chunking;
using cuda::kReduceBlock;
using cuda::kReduceFan;
using cuda::SumReducer;

// From this many reduced elements per output a whole block reduces each output (or each chunk of it).
constexpr int64_t kBlockReduceFrom = 64;
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

// One block per (kept element k, chunk s): block b takes k = b / chunks, s = b % chunks, and folds the reduced
// indices [s * chunk, min((s + 1) * chunk, R)): thread t those t, t + kReduceBlock, ... in order, then the
// block's combine (the header). With one chunk it writes dst[k] = finish(result); with several, partials[b].
template <typename Red, typename T>
struct ReduceChunks {
  using Acc = typename Red::Acc;
  const T* src;
  StridedPlan<1> kept, reduced;
  int64_t chunks, chunk;
  double scale;
  T* dst;         // chunks == 1
  Acc* partials;  // chunks > 1: K * chunks of them, output-major
  ATELIER_HOST_DEVICE void operator()(cuda::BlockContext<Acc, kReduceBlock>& b) const {
    const int64_t k = b.block / chunks, s = b.block % chunks;
    const int64_t begin = s * chunk, end = begin + chunk < reduced.numel ? begin + chunk : reduced.numel;
    const T* base = src + offset_at(kept, k);
    Acc acc = Red::init();
    if (reduced.ndim == 1) {  // one run: no per-element division
      const int64_t stride = reduced.strides[0][0];
      for (int64_t r = begin + b.thread; r < end; r += kReduceBlock) {
        acc = Red::combine(acc, Red::load(base[r * stride]));
      }
    } else if (reduced.ndim == 2) {
      // Two runs (a bias gradient's (N, H * W)): index r = q * inner + m, advanced by kReduceBlock without a
      // division per element (one per thread to start).
      const int64_t inner = reduced.sizes[1], outer_stride = reduced.strides[0][0];
      const int64_t inner_stride = reduced.strides[0][1];
      const int64_t step_q = kReduceBlock / inner, step_m = kReduceBlock % inner;
      int64_t r = begin + b.thread, q = r / inner, m = r % inner;
      for (; r < end; r += kReduceBlock) {
        acc = Red::combine(acc, Red::load(base[q * outer_stride + m * inner_stride]));
        q += step_q;
        m += step_m;
        if (m >= inner) {
          m -= inner;
          ++q;
        }
      }
    } else {
      for (int64_t r = begin + b.thread; r < end; r += kReduceBlock) {
        acc = Red::combine(acc, Red::load(base[offset_at(reduced, r)]));
      }
    }
    const Acc total = block_fold<Red>(b, acc);
    if (b.thread == 0) {
      if (chunks == 1) {
        dst[k] = Red::finish(total, scale);
      } else {
        partials[b.block] = total;
      }
    }
  }
};

// The second pass of a split reduction: block k folds output k's partials (thread t those t, t + kReduceBlock,
// ... in chunk order, then the block's combine): one or two loads per thread, where one thread per output would
// walk all S partials in a row.
template <typename Red, typename T>
struct CombinePartials {
  using Acc = typename Red::Acc;
  const Acc* partials;
  int64_t chunks;
  double scale;
  T* dst;
  ATELIER_HOST_DEVICE void operator()(cuda::BlockContext<Acc, kReduceBlock>& b) const {
    const Acc* p = partials + b.block * chunks;
    Acc acc = Red::init();
    for (int64_t s = b.thread; s < chunks; s += kReduceBlock) acc = Red::combine(acc, p[s]);
    const Acc total = block_fold<Red>(b, acc);
    if (b.thread == 0) dst[b.block] = Red::finish(total, scale);
  }
};

template <typename Red, typename T>
void run_reduce(const ReduceArgs& args, double scale) {
  using Acc = typename Red::Acc;
  const Layout* kept_layout[1] = {&args.kept};
  const Layout* reduced_layout[1] = {&args.reduced};
  const StridedPlan<1> kept = make_plan<1>(args.kept, kept_layout);
  const StridedPlan<1> reduced = make_plan<1>(args.reduced, reduced_layout);
  const T* src = static_cast<const T*>(args.src_data);
  T* dst = static_cast<T*>(args.dst_data);
  if (reduced.numel < kBlockReduceFrom) {
    cuda::launch_linear(kept.numel, ReducePerThread<Red, T>{src, dst, kept, reduced, scale});
    return;
  }
  const Chunking chunks = chunking(kept.numel, reduced.numel);
  if (chunks.count == 1) {
    cuda::launch_blocks<Acc, kReduceBlock>(
        kept.numel, ReduceChunks<Red, T>{src, kept, reduced, 1, reduced.numel, scale, dst, nullptr});
    return;
  }
  // The partials' scratch (the header says why the shared workspace is safe here).
  Acc* partials =
      static_cast<Acc*>(cuda::context().workspace(static_cast<size_t>(kept.numel * chunks.count) * sizeof(Acc)));
  cuda::launch_blocks<Acc, kReduceBlock>(
      kept.numel * chunks.count,
      ReduceChunks<Red, T>{src, kept, reduced, chunks.count, chunks.size, scale, nullptr, partials});
  cuda::launch_blocks<Acc, kReduceBlock>(kept.numel, CombinePartials<Red, T>{partials, chunks.count, scale, dst});
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

// CPU twin: argmax_typed (backends/cpu/reduce.cpp); both scan a row with argmax_of_row (backends/argmax_math.h).
template <typename T>
struct Argmax {
  const T* src;
  int64_t* dst;
  StridedPlan<1> kept;
  int64_t n, stride;
  ATELIER_HOST_DEVICE void operator()(int64_t k) const { dst[k] = argmax_of_row(src + offset_at(kept, k), n, stride); }
};

// Log-softmax and its gradient along the middle dimension of an (outer, dim, inner) view. Two paths:
//   - one thread per row (o, i) walking its dim elements in order, where rows are strided (inner > 1: adjacent
//     threads read adjacent rows, so loads are coalesced) or short (dim < kBlockReduceFrom);
//   - one block per row of the last dimension (inner == 1, dim >= kBlockReduceFrom, as for logits): thread t takes
//     elements t, t + B, ..., the block's fixed combine (the header) gives the max, then the sum, which every
//     thread reads from shared memory to write its elements.
// Both reduce each row in a fixed order (deterministic); sums accumulate in double, as on the CPU.

// The rows of an (outer, dim, inner) view: row r = o * inner + i starts at start(r), its element j is j * inner
// further.
struct SoftmaxRows {
  int64_t dim, inner;
  Divisor by_inner;
  ATELIER_HOST_DEVICE int64_t start(int64_t row) const {
    int64_t i;
    const int64_t o = by_inner.divide(row, i);
    return o * dim * inner + i;
  }
};

// CPU twin: log_softmax_typed (backends/cpu/reduce.cpp): y = (x - m) - log(sum exp(x - m)).
template <typename T>
struct LogSoftmaxPerRow {
  const T* src;
  T* dst;
  SoftmaxRows rows;
  bool softmax;  // write exp(x - m) / sum, the CPU's softmax mode
  ATELIER_HOST_DEVICE void operator()(int64_t row) const {
    const int64_t base = rows.start(row), dim = rows.dim, inner = rows.inner;
    T m = src[base];
    for (int64_t j = 1; j < dim; ++j) m = MaxReducer<T>::combine(m, src[base + j * inner]);
    double sum = 0;
    for (int64_t j = 0; j < dim; ++j)
      sum += static_cast<double>(cuda::dev_exp(static_cast<T>(src[base + j * inner] - m)));
    const T log_sum = static_cast<T>(cuda::dev_log(sum)), total = static_cast<T>(sum);
    for (int64_t j = 0; j < dim; ++j) {
      const T shifted = src[base + j * inner] - m;
      dst[base + j * inner] = softmax ? cuda::dev_exp(shifted) / total : shifted - log_sum;
    }
  }
};

template <typename T>
struct LogSoftmaxBlockRow {
  const T* src;
  T* dst;
  int64_t dim;
  bool softmax;
  ATELIER_HOST_DEVICE void operator()(cuda::BlockContext<double, kReduceBlock>& b) const {
    const T* x = src + b.block * dim;
    T* y = dst + b.block * dim;
    double m = MaxReducer<double>::init();
    for (int64_t j = b.thread; j < dim; j += kReduceBlock) m = MaxReducer<double>::combine(m, x[j]);
    const T row_max = static_cast<T>(block_fold_to_all<MaxReducer<double>>(b, m));
    double sum = 0;
    for (int64_t j = b.thread; j < dim; j += kReduceBlock) sum += cuda::dev_exp(static_cast<T>(x[j] - row_max));
    const double row_sum = block_fold_to_all<SumReducer<T>>(b, sum);
    const T log_sum = static_cast<T>(cuda::dev_log(row_sum)), total = static_cast<T>(row_sum);
    for (int64_t j = b.thread; j < dim; j += kReduceBlock) {
      const T shifted = x[j] - row_max;
      y[j] = softmax ? cuda::dev_exp(shifted) / total : shifted - log_sum;
    }
  }
};

// CPU twin: log_softmax_backward_typed: dx = dy - exp(y) * sum(dy); softmax: dx = y * (dy - sum(dy * y)).
template <typename T>
struct LogSoftmaxBackwardPerRow {
  const T* grad;
  const T* out;
  T* dst;
  SoftmaxRows rows;
  bool softmax;
  ATELIER_HOST_DEVICE void operator()(int64_t row) const {
    const int64_t base = rows.start(row), dim = rows.dim, inner = rows.inner;
    double sum = 0;
    for (int64_t j = 0; j < dim; ++j) {
      const int64_t at = base + j * inner;
      sum += static_cast<double>(softmax ? static_cast<T>(grad[at] * out[at]) : grad[at]);
    }
    const T total = static_cast<T>(sum);
    for (int64_t j = 0; j < dim; ++j) {
      const int64_t at = base + j * inner;
      dst[at] = softmax ? out[at] * (grad[at] - total) : grad[at] - cuda::dev_exp(out[at]) * total;
    }
  }
};

template <typename T>
struct LogSoftmaxBackwardBlockRow {
  const T* grad;
  const T* out;
  T* dst;
  int64_t dim;
  bool softmax;
  ATELIER_HOST_DEVICE void operator()(cuda::BlockContext<double, kReduceBlock>& b) const {
    const int64_t base = b.block * dim;
    double sum = 0;
    for (int64_t j = b.thread; j < dim; j += kReduceBlock) {
      const int64_t at = base + j;
      sum += static_cast<double>(softmax ? static_cast<T>(grad[at] * out[at]) : grad[at]);
    }
    const T total = static_cast<T>(block_fold_to_all<SumReducer<T>>(b, sum));
    for (int64_t j = b.thread; j < dim; j += kReduceBlock) {
      const int64_t at = base + j;
      dst[at] = softmax ? out[at] * (grad[at] - total) : grad[at] - cuda::dev_exp(out[at]) * total;
    }
  }
};

bool softmax_by_blocks(int64_t dim, int64_t inner) { return inner == 1 && dim >= kBlockReduceFrom; }

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

void CudaBackend::log_softmax(const LogSoftmaxArgs& args) {
  dispatch(cuda::log_softmax_types{}, args.dtype, "cuda log_softmax", [&]<class T> {
    const T* src = static_cast<const T*>(args.src_data);
    T* dst = static_cast<T*>(args.dst_data);
    if (softmax_by_blocks(args.dim, args.inner)) {
      cuda::launch_blocks<double, kReduceBlock>(args.outer, LogSoftmaxBlockRow<T>{src, dst, args.dim, args.softmax});
    } else {
      cuda::launch_linear(
          args.outer * args.inner,
          LogSoftmaxPerRow<T>{src, dst, SoftmaxRows{args.dim, args.inner, Divisor(args.inner)}, args.softmax});
    }
  });
}

void CudaBackend::log_softmax_backward(const LogSoftmaxBackwardArgs& args) {
  dispatch(cuda::log_softmax_backward_types{}, args.dtype, "cuda log_softmax_backward", [&]<class T> {
    const T* grad = static_cast<const T*>(args.grad_data);
    const T* out = static_cast<const T*>(args.out_data);
    T* dst = static_cast<T*>(args.dst_data);
    if (softmax_by_blocks(args.dim, args.inner)) {
      cuda::launch_blocks<double, kReduceBlock>(args.outer,
                                                LogSoftmaxBackwardBlockRow<T>{grad, out, dst, args.dim, args.softmax});
    } else {
      cuda::launch_linear(args.outer * args.inner,
                          LogSoftmaxBackwardPerRow<T>{
                              grad, out, dst, SoftmaxRows{args.dim, args.inner, Divisor(args.inner)}, args.softmax});
    }
  });
}

}  // namespace atelier
