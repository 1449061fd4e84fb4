// Reductions on the CPU: sum/mean/max over a split of the source's dimensions into kept and reduced, and
// argmax along one dimension.
//
// Accuracy: float32 and float64 sums accumulate in double, in 16 independent lanes over contiguous runs (the
// lanes keep the adds pipelined: with AVX2, four vectors of 4 doubles, where 8 lanes made two and the adds' latency
// bound the loop; double keeps a 10^6-element float sum exact to ~1e-10 instead of drifting ~1e-5). Determinism: with
// many kept elements each one is reduced by one thread, start to end, so the result does not depend on the thread count
// at all. With few kept elements (a full sum of a big tensor) the reduced range is cut into num_threads() fixed chunks
// whose partials are combined in chunk order: the result then depends on the thread count only.
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "backends/argmax_math.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/strided.h"
#include "backends/error.h"

namespace atelier::cpu {
namespace {

template <typename T>
struct SumReducer {
  // Integers add in uint64_t: a sum past int64's range wraps modulo 2^64 (as in PyTorch), where signed overflow
  // would be undefined behaviour.
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;
  static Acc init() { return Acc(0); }
  static Acc combine(Acc a, Acc b) { return a + b; }
  static Acc run(const T* x, int64_t stride, int64_t n) {
    if (stride != 1) {
      Acc s = 0;
      for (int64_t i = 0; i < n; ++i) s += static_cast<Acc>(x[i * stride]);
      return s;
    }
    Acc lane[16] = {};
    int64_t i = 0;
#if defined(__AVX__) && !defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      // The same 16 lanes, each 4 floats converted straight from memory (vcvtps2pd ymm, m128). From the plain loop
      // GCC loaded 8 floats and split them, a load, an extract and a convert per 8 where this has two converts:
      // the per-channel sum of a 16 x 64 x 64 x 64 tensor in 0.92 of the time on a Zen 3 core (bench_ops).
      __m256d a[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
      for (; i + 16 <= n; i += 16) {
        for (int v = 0; v < 4; ++v) a[v] = _mm256_add_pd(a[v], _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * v)));
      }
      for (int v = 0; v < 4; ++v) _mm256_storeu_pd(lane + 4 * v, a[v]);
    }
#endif
    for (; i + 16 <= n; i += 16) {
      for (int j = 0; j < 16; ++j) lane[j] += static_cast<Acc>(x[i + j]);
    }
    Acc tail = 0;
    for (; i < n; ++i) tail += static_cast<Acc>(x[i]);
    for (int width = 8; width >= 1; width /= 2) {
      for (int j = 0; j < width; ++j) lane[j] += lane[j + width];
    }
    return lane[0] + tail;
  }
};

template <typename T>
struct MaxReducer {
  using Acc = T;
  static Acc init() {
    return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                : std::numeric_limits<T>::lowest();
  }
  // A NaN wins and then stays (NaN > m and m > NaN are both false).
  static Acc combine(Acc m, Acc x) { return (x > m || x != x) ? x : m; }
  static Acc run(const T* x, int64_t stride, int64_t n) {
    Acc m = init();
    for (int64_t i = 0; i < n; ++i) m = combine(m, x[i * stride]);
    return m;
  }
};

// Reduces src + base over the reduced linear indices [begin, end).
template <typename Red, typename T>
typename Red::Acc reduce_range(const T* src, const StridedPlan<1>& rplan, int64_t begin, int64_t end) {
  auto acc = Red::init();
  for_each_run(rplan, begin, end, [&](const int64_t* off, const int64_t* st, int64_t count) {
    acc = Red::combine(acc, Red::run(src + off[0], st[0], count));
  });
  return acc;
}

template <typename Red, typename T, typename Finish>
void run_reduce(const ReduceArgs& args, Finish finish) {
  const T* src = static_cast<const T*>(args.src_data);
  T* dst = static_cast<T*>(args.dst_data);
  const int64_t kept = args.kept.numel(), reduced = args.reduced.numel();
  const Layout* kl[1] = {&args.kept};
  const Layout* rl[1] = {&args.reduced};
  const auto kplan = make_plan<1>(args.kept, kl);
  const auto rplan = make_plan<1>(args.reduced, rl);
  const int threads = num_threads();

  if (threads > 1 && kept < 4 * threads && reduced >= kParallelThreshold) {
    // Few outputs, long reductions: split the reduced range into `threads` fixed chunks.
    std::vector<int64_t> kept_offsets;
    kept_offsets.reserve(static_cast<size_t>(kept));
    for_each_run(kplan, 0, kept, [&](const int64_t* off, const int64_t* st, int64_t count) {
      for (int64_t i = 0; i < count; ++i) kept_offsets.push_back(off[0] + i * st[0]);
    });
    const int64_t chunks = threads;
    std::vector<typename Red::Acc> partials(static_cast<size_t>(chunks * kept));  // (chunks, kept)
    parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        const int64_t rb = c * reduced / chunks, re = (c + 1) * reduced / chunks;
        for (int64_t k = 0; k < kept; ++k) {
          partials[static_cast<size_t>(c * kept + k)] = reduce_range<Red>(src + kept_offsets[k], rplan, rb, re);
        }
      }
    });
    for (int64_t k = 0; k < kept; ++k) {
      auto acc = partials[static_cast<size_t>(k)];
      for (int64_t c = 1; c < chunks; ++c) acc = Red::combine(acc, partials[static_cast<size_t>(c * kept + k)]);
      dst[k] = finish(acc);
    }
    return;
  }

  // Many outputs: each thread takes whole outputs.
  const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(reduced, 1));
  auto body = [&](int64_t begin, int64_t end) {
    int64_t k = begin;
    for_each_run(kplan, begin, end, [&](const int64_t* off, const int64_t* st, int64_t count) {
      for (int64_t i = 0; i < count; ++i, ++k)
        dst[k] = finish(reduce_range<Red>(src + off[0] + i * st[0], rplan, 0, reduced));
    });
  };
  if (kept * reduced >= kParallelThreshold) {
    parallel_for(kept, grain, body);
  } else {
    body(0, kept);
  }
}

template <typename T>
void reduce_typed(const ReduceArgs& args) {
  const int64_t kept = args.kept.numel(), reduced = args.reduced.numel();
  T* dst = static_cast<T*>(args.dst_data);
  if (kept == 0) return;
  if (reduced == 0) {
    ATELIER_CHECK(args.op == ReduceOp::Sum, "cpu reduce: " << reduce_op_name(args.op)
                                                           << " over an empty range (0 elements reduced) is undefined");
    for (int64_t k = 0; k < kept; ++k) dst[k] = T(0);
    return;
  }
  switch (args.op) {
    case ReduceOp::Sum:
      return run_reduce<SumReducer<T>, T>(args, [](typename SumReducer<T>::Acc s) { return static_cast<T>(s); });
    case ReduceOp::Mean:
      if constexpr (std::is_floating_point_v<T>) {
        const double scale = 1.0 / static_cast<double>(reduced);
        return run_reduce<SumReducer<T>, T>(args, [scale](double s) { return static_cast<T>(s * scale); });
      } else {
        throw Error(std::string("cpu reduce: mean needs a floating dtype, got ") + dtype_name(args.dtype));
      }
    case ReduceOp::Max: return run_reduce<MaxReducer<T>, T>(args, [](T m) { return m; });
  }
}

template <typename T>
void argmax_typed(const ArgmaxArgs& args) {
  const T* src = static_cast<const T*>(args.src_data);
  int64_t* dst = args.dst_data;
  const int64_t kept = args.kept.numel(), n = args.reduced_size, stride = args.reduced_stride;
  if (kept == 0) return;
  ATELIER_CHECK(n > 0, "cpu argmax: the reduced dimension is empty (size 0)");
  const Layout* kl[1] = {&args.kept};
  const auto kplan = make_plan<1>(args.kept, kl);
  auto body = [&](int64_t begin, int64_t end) {
    int64_t k = begin;
    for_each_run(kplan, begin, end, [&](const int64_t* off, const int64_t* st, int64_t count) {
      for (int64_t i = 0; i < count; ++i, ++k) {
        dst[k] = argmax_of_row(src + off[0] + i * st[0], n, stride);
      }
    });
  };
  if (kept * n >= kParallelThreshold) {
    parallel_for(kept, std::max<int64_t>(1, kElementwiseGrain / n), body);
  } else {
    body(0, kept);
  }
}

}  // namespace

void reduce(const ReduceArgs& args) {
  dispatch(reduce_types{}, args.dtype, "cpu reduce", [&]<class T> { reduce_typed<T>(args); });
}

void argmax(const ArgmaxArgs& args) {
  dispatch(argmax_types{}, args.dtype, "cpu argmax", [&]<class T> { argmax_typed<T>(args); });
}

}  // namespace atelier::cpu
