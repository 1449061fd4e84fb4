// Reductions on the CPU: sum/mean/max over a split of the source's dimensions into kept and reduced, argmax along
// one dimension, and log-softmax (a max and a sum of exponentials per row, then one elementwise pass) with its
// gradient.
//
// Accuracy: float32 and float64 sums accumulate in double, in kSumChains registers of double lanes over contiguous
// runs (sum_contiguous: the registers keep the adds pipelined; double keeps a 10^6-element float sum exact to ~1e-10
// instead of drifting ~1e-5). Determinism: with
// many kept elements each one is reduced by one thread, start to end, so the result does not depend on the thread count
// at all. With few kept elements (a full sum of a big tensor) the reduced range is cut into num_threads() fixed chunks
// whose partials are combined in chunk order: the result then depends on the thread count only.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "backends/argmax_math.h"
#include "backends/cpu/eigen.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/simd.h"
#include "backends/cpu/strided.h"
#include "backends/error.h"

namespace atelier::cpu {
namespace {

// The sum in double of a contiguous run of float or double: kSumChains registers of double lanes, so that the adds'
// latency is hidden (each step a load, a conversion from float, an add), then the registers and their lanes added
// in a fixed order. With AVX-512, 16 lanes (two registers) bound the loop by the adds' latency at 4 floats a cycle:
// a mean over 16 x 3 x 64 x 64 floats (in L2) took 18 us against PyTorch's 8 (float adds).
constexpr int kSumChains = 8;

template <typename T>
double sum_contiguous(const T* x, int64_t n) {
  typedef DoubleRegister D;
  constexpr int64_t L = Simd<double>::kLanes, kStep = kSumChains * L;
  const auto lanes_at = [x](int64_t at) -> D {  // x[at .. at + L) in double
    if constexpr (std::is_same_v<T, float>) {
      // One conversion from memory where the instruction set has it: from __builtin_convertvector GCC converted
      // AVX-512's 8 floats as two halves and joined them, five instructions where this is two. (The masked form
      // with every lane set: the plain one starts from _mm512_undefined_pd, which GCC 12 reports as uninitialised.)
#if defined(__AVX512F__)
      return reinterpret_cast<D>(_mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(x + at)));
#elif defined(__AVX__)
      return reinterpret_cast<D>(_mm256_cvtps_pd(_mm_loadu_ps(x + at)));
#else
      typedef float F __attribute__((vector_size(L * sizeof(float)), aligned(4)));  // L floats
      return __builtin_convertvector(*reinterpret_cast<const F*>(x + at), D);
#endif
    } else {
      return load_vector(x + at);
    }
  };
  D acc[kSumChains] = {};
  int64_t i = 0;
  for (; i + kStep <= n; i += kStep) {
    for (int c = 0; c < kSumChains; ++c) acc[c] += lanes_at(i + c * L);
  }
  for (; i + L <= n; i += L) acc[0] += lanes_at(i);  // fewer than kSumChains registers left
  for (int width = kSumChains / 2; width >= 1; width /= 2) {
    for (int c = 0; c < width; ++c) acc[c] += acc[c + width];
  }
  double tail = 0;
  for (; i < n; ++i) tail += static_cast<double>(x[i]);
  return tail + lane_total<double>(acc[0]);
}

template <typename T>
struct SumReducer {
  // Integers add in uint64_t: a sum past int64's range wraps modulo 2^64 (as in PyTorch), where signed overflow
  // would be undefined behaviour.
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;
  static Acc init() { return Acc(0); }
  static Acc combine(Acc a, Acc b) { return a + b; }
  static Acc run(const T* x, int64_t stride, int64_t n) {
    if constexpr (std::is_floating_point_v<T>) {
      if (stride == 1) return sum_contiguous(x, n);
    }
    Acc s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<Acc>(x[i * stride]);
    return s;
  }
};

// The maximum of x[0], x[stride], ..., x[(n - 1) * stride] from m: a NaN wins and then stays (NaN > m and m > NaN
// are both false).
template <typename T>
T max_serial(T m, const T* x, int64_t stride, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i * stride];
    m = (v > m || v != v) ? v : m;
  }
  return m;
}

// max_serial(m, x, 1, n) for a contiguous float run: four chains of vector maxima that skip NaN (a NaN compares
// false) and four of "NaN seen" masks. The serial chain of compare-and-select is latency-bound: a row of 2048
// floats took 3.4 us (1.75 ms for 512 rows; PyTorch's whole amax forward about 0.2), and GCC vectorised the rule
// poorly over lane arrays (0.5-0.75 ms); these registers take 0.25. The maximum is the same value in any order;
// a run holding a NaN is done again serially, which returns its first NaN as before. (Of a -0 and a +0, the one
// kept may differ from the serial loop's; they compare equal.)
constexpr int kMaxChains = 4;

template <typename T>
T max_contiguous(T m, const T* x, int64_t n) {
  using V = typename Simd<T>::V;
  using Mask = decltype(V{} != V{});
  constexpr int64_t L = Simd<T>::kLanes;
  V lanes[kMaxChains];
  Mask nan[kMaxChains];
  for (int c = 0; c < kMaxChains; ++c) {
    lanes[c] = V{} + m;
    nan[c] = Mask{};
  }
  int64_t i = 0;
  for (; i + kMaxChains * L <= n; i += kMaxChains * L) {
    for (int c = 0; c < kMaxChains; ++c) {
      const V v = load_vector(x + i + c * L);
      lanes[c] = v > lanes[c] ? v : lanes[c];
      nan[c] |= v != v;
    }
  }
  bool any_nan = false;
  for (int c = 0; c < kMaxChains; ++c) {
    for (int64_t l = 0; l < L; ++l) any_nan = any_nan || nan[c][l] != 0;
  }
  if (any_nan) return max_serial(m, x, 1, n);
  T values[kMaxChains * L];
  for (int c = 0; c < kMaxChains; ++c) store_vector(values + c * L, lanes[c]);
  return max_serial(max_serial(m, x + i, 1, n - i), values, 1, kMaxChains * L);
}

template <typename T>
struct MaxReducer {
  using Acc = T;
  static Acc init() {
    return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                : std::numeric_limits<T>::lowest();
  }
  static Acc combine(Acc m, Acc x) { return max_serial(m, &x, 1, 1); }
  static Acc run(const T* x, int64_t stride, int64_t n) {
    if constexpr (std::is_floating_point_v<T>) {
      if (stride == 1 && n >= kMaxChains * Simd<T>::kLanes) return max_contiguous(init(), x, n);
    }
    return max_serial(init(), x, stride, n);
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

// Outputs side by side in memory (the kept elements one contiguous run) and every reduced element a whole row
// of them away: a sum over the leading dimensions, as of a bias gradient (x.sum(0)) or broadcasting's backward.
// Reduced output by output, each output's loads are a row apart (a cache line per element); instead a block of
// adjacent outputs is reduced together, a row of the block at a time, so that every load is contiguous and the
// adds vectorise. Each output is still reduced by one thread from start to end in the plan's order: the
// results do not depend on the thread count. (sum over dim 0 of 512 x 2048 floats, one thread, forward and
// backward: 5.2x PyTorch's time output by output.)
constexpr int64_t kColumnBlock = 512;    // outputs per block: accumulators in 4 KiB of doubles
constexpr int64_t kColumnBlockMin = 16;  // fewer outputs than this: output by output

template <typename Red, typename T, typename Finish>
void reduce_columns(const T* src, T* dst, int64_t kept, const StridedPlan<1>& rplan, int64_t reduced, Finish finish) {
  using Acc = typename Red::Acc;
  // Blocks of at most kColumnBlock outputs, at least one per thread while there are outputs for it.
  const int64_t per_thread = (kept + num_threads() - 1) / num_threads();
  const int64_t block = std::clamp<int64_t>((per_thread + 15) / 16 * 16, kColumnBlockMin, kColumnBlock);
  const int64_t blocks = (kept + block - 1) / block;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t k0 = b * block, width = std::min(block, kept - k0);
      Acc acc[kColumnBlock];
      for (int64_t k = 0; k < width; ++k) acc[k] = Red::init();
      for_each_run(rplan, 0, reduced, [&](const int64_t* off, const int64_t* st, int64_t count) {
        for (int64_t i = 0; i < count; ++i) {
          const T* row = src + off[0] + i * st[0] + k0;
          for (int64_t k = 0; k < width; ++k) acc[k] = Red::combine(acc[k], static_cast<Acc>(row[k]));
        }
      });
      for (int64_t k = 0; k < width; ++k) dst[k0 + k] = finish(acc[k]);
    }
  };
  if (kept * reduced >= kParallelThreshold) {
    parallel_for(blocks, 1, body);
  } else {
    body(0, blocks);
  }
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

  if (kplan.ndim == 1 && kplan.strides[0][0] == 1 && kept >= kColumnBlockMin &&
      (rplan.ndim == 0 || rplan.strides[0][rplan.ndim - 1] != 1)) {
    reduce_columns<Red>(src, dst, kept, rplan, reduced, finish);
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

// Log-softmax and its gradient. A row (one (o, i) of the (outer, dim, inner) view) is computed by one thread start
// to end, so results do not depend on the thread count. Sums are taken over at most kSumChunk elements in the dtype
// (Eigen's vectorised reduction, 16 float lanes) and those added in double. Three layouts:
//   - rows of the last dimension (inner == 1, as for logits) of at most kSumChunk elements: a group of whole rows,
//     kSumChunk elements or fewer, at a time; the exponentials of the whole group are one vectorised Eigen call
//     into a stack buffer, and so are the group's logarithms. Row by row, a row of 10 floats (less than one
//     AVX-512 vector) went through libm's scalar expf and logf: 1.1x the time of the five composed ops;
//   - longer rows of the last dimension: one row at a time, its sum in chunks of kSumChunk;
//   - rows that are not the last dimension (inner > 1): a slice (dim, inner) holds its rows side by side, so blocks
//     of up to kSumChunk of them are done together, element j of the block's rows (contiguous) at a time.
// A cast to double inside an Eigen expression (exp(y).cast<double>().sum()) stops Eigen vectorising all of it, exp
// included: the casts are applied to computed sums only.
// The softmax mode (args.softmax) writes e / s, each e = exp(x - m) stored as it is summed (one exp per element),
// and takes the gradient from the softmax's output, y (dy - sum(dy y)): softmax in one pass each way, not four.
constexpr int64_t kSumChunk = 256;

template <typename T>
using Column = Eigen::Array<T, Eigen::Dynamic, 1>;
template <typename T>
using ColumnMap = Eigen::Map<Column<T>>;
template <typename T>
using ConstColumnMap = Eigen::Map<const Column<T>>;
// At most kSumChunk values on the stack (a kernel allocates nothing).
template <typename T>
using Chunk = Eigen::Array<T, Eigen::Dynamic, 1, Eigen::ColMajor, kSumChunk, 1>;

// A unit of work: `rows` rows from element `begin`. step 1: rows of the last dimension, one after another (several
// only when they are short); step inner > 1: rows side by side, element j of row r at begin + r + j * step.
struct SoftmaxUnit {
  int64_t begin, rows, step;
};

// Calls unit_op(unit) for every unit of the view, in parallel.
template <typename UnitOp>
void for_each_softmax_unit(int64_t outer, int64_t dim, int64_t inner, UnitOp unit_op) {
  if (outer == 0 || dim == 0 || inner == 0) return;
  // Units per slice (o fixed) and rows per unit.
  const int64_t rows_per_unit = inner > 1 ? kSumChunk : std::max<int64_t>(1, kSumChunk / dim);
  const int64_t rows_per_slice = inner > 1 ? inner : outer;
  const int64_t per_slice = (rows_per_slice + rows_per_unit - 1) / rows_per_unit;
  const int64_t slices = inner > 1 ? outer : 1;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t o = u / per_slice, r0 = (u % per_slice) * rows_per_unit;
      const int64_t rows = std::min(rows_per_unit, rows_per_slice - r0);
      unit_op(inner > 1 ? SoftmaxUnit{o * dim * inner + r0, rows, inner} : SoftmaxUnit{r0 * dim, rows, 1});
    }
  };
  const int64_t units = slices * per_slice, per_unit = dim * rows_per_unit;
  if (units * per_unit >= kParallelThreshold) {
    parallel_for(units, std::max<int64_t>(1, kElementwiseGrain / per_unit), body);
  } else {
    body(0, units);
  }
}

// The sum of a long row's chunk_sum(start, count) over chunks of kSumChunk elements, added in double.
template <typename ChunkSum>
double sum_in_chunks(int64_t n, ChunkSum chunk_sum) {
  double total = 0;
  for (int64_t j = 0; j < n; j += kSumChunk) total += static_cast<double>(chunk_sum(j, std::min(kSumChunk, n - j)));
  return total;
}

// y = (x - m) - log(sum exp(x - m)): subtracting the two parts in turn keeps y exact to x's precision where
// x - (m + log s) would round at m's magnitude (logits of 1000 in float32: 6e-5 instead of 1e-7). A NaN anywhere
// in a row makes its sum NaN, whatever its max is.
template <typename T>
void log_softmax_typed(const LogSoftmaxArgs& args) {
  const T* src = static_cast<const T*>(args.src_data);
  T* dst = static_cast<T*>(args.dst_data);
  const int64_t dim = args.dim;
  const bool softmax = args.softmax;  // then y = e / s, e = exp(x - m) stored as it is summed: one exp per element
  for_each_softmax_unit(args.outer, dim, args.inner, [&](const SoftmaxUnit& unit) {
    const T* x = src + unit.begin;
    T* y = dst + unit.begin;
    if (unit.step == 1 && dim > kSumChunk) {
      const ConstColumnMap<T> row(x, dim);
      ColumnMap<T> out(y, dim);
      out = row - row.maxCoeff();
      if (softmax) {
        out = out.exp();
        out /= static_cast<T>(sum_in_chunks(dim, [&](int64_t j, int64_t n) { return out.segment(j, n).sum(); }));
      } else {
        out -= static_cast<T>(
            std::log(sum_in_chunks(dim, [&](int64_t j, int64_t n) { return out.segment(j, n).exp().sum(); })));
      }
    } else if (unit.step == 1) {
      const int64_t n = unit.rows * dim;
      for (int64_t r = 0; r < unit.rows; ++r) {
        const ConstColumnMap<T> row(x + r * dim, dim);
        ColumnMap<T>(y + r * dim, dim) = row - row.maxCoeff();
      }
      const Chunk<T> e = ConstColumnMap<T>(y, n).exp();
      Chunk<T> sums(unit.rows);
      for (int64_t r = 0; r < unit.rows; ++r) sums[r] = e.segment(r * dim, dim).sum();
      const Chunk<T> log_sums = sums.log();
      for (int64_t r = 0; r < unit.rows; ++r) {
        if (softmax) {
          ColumnMap<T>(y + r * dim, dim) = e.segment(r * dim, dim) / sums[r];
        } else {
          ColumnMap<T>(y + r * dim, dim) -= log_sums[r];
        }
      }
    } else {
      const int64_t w = unit.rows, step = unit.step;
      Chunk<T> m = ConstColumnMap<T>(x, w);
      for (int64_t j = 1; j < dim; ++j) m = m.max(ConstColumnMap<T>(x + j * step, w));
      Chunk<double> sums = Chunk<double>::Zero(w);
      for (int64_t j = 0; j < dim; ++j) {
        ColumnMap<T> out(y + j * step, w);
        out = ConstColumnMap<T>(x + j * step, w) - m;
        const Chunk<T> e = out.exp();
        sums += e.template cast<double>();
        if (softmax) out = e;
      }
      if (softmax) {
        const Chunk<T> totals = sums.template cast<T>();
        for (int64_t j = 0; j < dim; ++j) ColumnMap<T>(y + j * step, w) /= totals;
      } else {
        const Chunk<T> log_sums = sums.log().template cast<T>();
        for (int64_t j = 0; j < dim; ++j) ColumnMap<T>(y + j * step, w) -= log_sums;
      }
    }
  });
}

// dx = dy - exp(y) * sum(dy) over each row; with softmax (y the softmax), dx = y * (dy - sum(dy * y)).
template <typename T>
void log_softmax_backward_typed(const LogSoftmaxBackwardArgs& args) {
  const T* grad = static_cast<const T*>(args.grad_data);
  const T* out = static_cast<const T*>(args.out_data);
  T* dst = static_cast<T*>(args.dst_data);
  const int64_t dim = args.dim;
  const bool softmax = args.softmax;
  for_each_softmax_unit(args.outer, dim, args.inner, [&](const SoftmaxUnit& unit) {
    const T* g = grad + unit.begin;
    const T* y = out + unit.begin;
    T* dx = dst + unit.begin;
    if (unit.step == 1 && dim > kSumChunk) {
      const ConstColumnMap<T> row(g, dim), yr(y, dim);
      const T total = static_cast<T>(sum_in_chunks(dim, [&](int64_t j, int64_t n) {
        return softmax ? (row.segment(j, n) * yr.segment(j, n)).sum() : row.segment(j, n).sum();
      }));
      if (softmax) {
        ColumnMap<T>(dx, dim) = yr * (row - total);
      } else {
        ColumnMap<T>(dx, dim) = row - yr.exp() * total;
      }
    } else if (unit.step == 1) {
      const int64_t n = unit.rows * dim;
      const Chunk<T> e = softmax ? Chunk<T>(ConstColumnMap<T>(y, n)) : Chunk<T>(ConstColumnMap<T>(y, n).exp());
      for (int64_t r = 0; r < unit.rows; ++r) {
        const ConstColumnMap<T> row(g + r * dim, dim);
        const auto er = e.segment(r * dim, dim);
        if (softmax) {
          ColumnMap<T>(dx + r * dim, dim) = er * (row - (row * er).sum());
        } else {
          ColumnMap<T>(dx + r * dim, dim) = row - er * row.sum();
        }
      }
    } else {
      const int64_t w = unit.rows, step = unit.step;
      Chunk<double> sums = Chunk<double>::Zero(w);
      for (int64_t j = 0; j < dim; ++j) {
        const ConstColumnMap<T> gj(g + j * step, w), yj(y + j * step, w);
        if (softmax) {
          sums += Chunk<T>(gj * yj).template cast<double>();
        } else {
          sums += gj.template cast<double>();
        }
      }
      const Chunk<T> totals = sums.template cast<T>();
      for (int64_t j = 0; j < dim; ++j) {
        const ConstColumnMap<T> gj(g + j * step, w), yj(y + j * step, w);
        if (softmax) {
          ColumnMap<T>(dx + j * step, w) = yj * (gj - totals);
        } else {
          ColumnMap<T>(dx + j * step, w) = gj - yj.exp() * totals;
        }
      }
    }
  });
}

}  // namespace

void reduce(const ReduceArgs& args) {
  dispatch(reduce_types{}, args.dtype, "cpu reduce", [&]<class T> { reduce_typed<T>(args); });
}

void argmax(const ArgmaxArgs& args) {
  dispatch(argmax_types{}, args.dtype, "cpu argmax", [&]<class T> { argmax_typed<T>(args); });
}

void log_softmax(const LogSoftmaxArgs& args) {
  dispatch(log_softmax_types{}, args.dtype, "cpu log_softmax", [&]<class T> { log_softmax_typed<T>(args); });
}

void log_softmax_backward(const LogSoftmaxBackwardArgs& args) {
  dispatch(log_softmax_backward_types{}, args.dtype, "cpu log_softmax_backward",
           [&]<class T> { log_softmax_backward_typed<T>(args); });
}

}  // namespace atelier::cpu
