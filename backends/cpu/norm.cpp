// Normalisation by groups on the CPU (backends/args.h, NormArgs), forward and backward. The arithmetic runs in the
// tensor's own type a vector register at a time (backends/cpu/simd.h), through the per-element functions of
// backends/norm_math.h, shared with the GPU; sums are taken in that type and added into double often enough that a
// float adds few terms (below). Two layouts of the (outer, groups, inner) view:
//   runs     (inner >= kColumnInner, few rows, or an affine not PerGroup) a group is one thread's: its runs of inner
//            contiguous elements, summed in kAccumulators registers of lanes (so the adds pipeline) that are folded
//            in a fixed order into double every kSumChunk elements. Forward: three passes over a group (the sum; the
//            deviations from the mean rounded to the type and their squares, norm_variance correcting for that
//            rounding; y). Backward: two (the sums of g w and g w (x - mean); grad_x). A PerGroup affine's weight
//            and bias gradients are those sums (w = 1); a PerInner one's sum over the groups: each thread adds its
//            groups' runs into columns of its own while the run is in cache, and the threads' columns are added
//            in order, so they depend on the thread count, as the reductions' long sums do. A PerChannel one (group
//            norm's) with channels of kShortChannel elements or more writes each channel's segment of a run with its
//            own weight and bias, and keeps each segment's sums for the channel's gradients, added in group order;
//            shorter channels are read as PerInner's are, their weights repeated per element (ElementAffine), and
//            their gradients summed in columns likewise. Groups of fewer than kSmallGroup elements
//            (layer norm over short rows, group norm with small groups) go kSmallBatch at a time through each step
//            (all their sums, then all their statistics, then all their outputs): one at a time, each group waited
//            on its own chain of sums, divisions and square root (layer norm on (32768, 32): 2.1 -> 1.5 ms);
//   columns  (inner < kColumnInner, at least kColumnRows rows, a PerGroup affine: BatchNorm1d's (N, C)) the
//            view is outer rows of groups * inner columns, summed down each column (column_sums: threads take
//            chunks of rows) and a group's sum is its columns' in order; y and grad_x are then one pass over the
//            rows with each column's constants in scratch. Run by run, each element of a column would pay a run's
//            overhead, and each group would walk the whole tensor to read its column (0.01x PyTorch on (4096,
//            256)); runs of 16 to 63 elements measured 1.1-2.7x slower as runs than as columns.
// Nothing else depends on the thread count.
#include <algorithm>
#include <array>
#include <cmath>

#include "backends/cpu/kernels.h"
#include "backends/cpu/scratch.h"
#include "backends/cpu/simd.h"
#include "backends/error.h"
#include "backends/norm_math.h"
#include "backends/thread_pool.h"

namespace atelier::cpu {
namespace {

constexpr int64_t kSumChunk = 2048;     // elements of a group summed in T between folds into double
constexpr int kAccumulators = 4;        // registers per sum
constexpr int64_t kSmallGroup = 64;     // groups smaller than this are summed without kAccumulators and folds, ...
constexpr int64_t kSmallBatch = 16;     // ... and go this many at a time through each step
constexpr int64_t kColumnRuns = 64;     // rows a column adds in T between flushes into double
constexpr int64_t kColumnInner = 64;    // runs shorter than this are summed as columns ...
constexpr int64_t kColumnRows = 16;     // ... when there are at least this many rows
constexpr int64_t kShortChannel = 128;  // a PerChannel affine's channels shorter than this are read per element

// The arithmetic of a loop body: Lanes<T, true>, a vector register of T (Simd<T>::V), or Lanes<T, false>, one
// element (a run's tail); each reads (load), writes (store) and broadcasts (splat) its V. (A tag type, not V
// itself: a vector type with attributes is not a template argument.)
template <typename T, bool kVector>
struct Lanes;
template <typename T>
struct Lanes<T, true> {
  typedef typename Simd<T>::V V;
  static constexpr int64_t kCount = Simd<T>::kLanes;
  static V load(const T* p) { return load_vector(p); }
  static void store(T* p, V v) { store_vector(p, v); }
  static V splat(T value) { return V{} + value; }
};
template <typename T>
struct Lanes<T, false> {
  typedef T V;
  static constexpr int64_t kCount = 1;
  static T load(const T* p) { return *p; }
  static void store(T* p, T v) { *p = v; }
  static T splat(T value) { return value; }
};

// body(Lanes<T, true>{}, i) for each whole register of a run of n elements, then body(Lanes<T, false>{}, i) for
// each of the rest.
template <typename T, class Body>
void for_run(int64_t n, const Body& body) {
  constexpr int64_t kCount = Lanes<T, true>::kCount;
  int64_t i = 0;
  for (; i + kCount <= n; i += kCount) body(Lanes<T, true>{}, i);
  for (; i < n; ++i) body(Lanes<T, false>{}, i);
}

// The (outer, groups, inner) view of a normalisation's x, as group_sums reads it.
struct NormView {
  int64_t outer, groups, inner;
};

// The K sums over group c's elements of the terms that terms(L{}, at, i, t) sets in t[0..K-1] (L a Lanes: those of
// the register of elements from x[at], element i of its run, or of that element alone), in lanes of T folded into
// double once kSumChunk terms are pending (checked every kAccumulators registers and at each run's end); a group
// of fewer than kSmallGroup elements in one register per sum (or, runs shorter than a register, four chains of
// doubles), as the full folds would cost more than its adds (group norm on (1024, 64, 16) in 32 groups, 32 elements
// a group, spent most of its time folding).
template <typename T, int K, class Terms>
std::array<double, K> group_sums(const NormView& a, int64_t c, const Terms& terms) {
  typedef typename Simd<T>::V V;
  constexpr int64_t kLanes = Simd<T>::kLanes, kBlock = kAccumulators * kLanes;
  std::array<double, K> sums{};
  if (a.outer * a.inner < kSmallGroup && a.inner < kLanes) {  // runs shorter than a register: four chains of adds
    double part[K][4] = {};
    int64_t count = 0;
    for (int64_t o = 0; o < a.outer; ++o) {
      const int64_t run = norm_index(a.groups, a.inner, o, c, 0);
      for (int64_t i = 0; i < a.inner; ++i, ++count) {
        T one[K];
        terms(Lanes<T, false>{}, run + i, i, one);
        for (int k = 0; k < K; ++k) part[k][count & 3] += static_cast<double>(one[k]);
      }
    }
    for (int k = 0; k < K; ++k) sums[k] = (part[k][0] + part[k][1]) + (part[k][2] + part[k][3]);
    return sums;
  }
  if (a.outer * a.inner < kSmallGroup) {  // a few registers: one per sum, its lanes added once at the end
    alignas(kVectorBytes) V acc[K] = {};
    alignas(kVectorBytes) V t[K];
    double tail[K] = {};
    for (int64_t o = 0; o < a.outer; ++o) {
      const int64_t run = norm_index(a.groups, a.inner, o, c, 0);
      int64_t i = 0;
      for (; i + kLanes <= a.inner; i += kLanes) {
        terms(Lanes<T, true>{}, run + i, i, t);
        for (int k = 0; k < K; ++k) acc[k] += t[k];
      }
      for (; i < a.inner; ++i) {
        T one[K];
        terms(Lanes<T, false>{}, run + i, i, one);
        for (int k = 0; k < K; ++k) tail[k] += static_cast<double>(one[k]);
      }
    }
    for (int k = 0; k < K; ++k) sums[k] = tail[k] + static_cast<double>(lane_total<T>(acc[k]));
    return sums;
  }
  alignas(kVectorBytes) V acc[K][kAccumulators] = {};
  alignas(kVectorBytes) V t[K];
  T tail[K] = {};
  int64_t pending = 0;
  const auto fold = [&] {
    for (int k = 0; k < K; ++k) {
      for (int width = kAccumulators / 2; width >= 1; width /= 2) {
        for (int u = 0; u < width; ++u) acc[k][u] += acc[k][u + width];
      }
      sums[k] += static_cast<double>(lane_total<T>(acc[k][0])) + static_cast<double>(tail[k]);
      for (int u = 0; u < kAccumulators; ++u) acc[k][u] = V{};
      tail[k] = 0;
    }
    pending = 0;
  };
  for (int64_t o = 0; o < a.outer; ++o) {
    const int64_t run = norm_index(a.groups, a.inner, o, c, 0);
    int64_t i = 0;
    for (; i + kBlock <= a.inner; i += kBlock) {
      for (int u = 0; u < kAccumulators; ++u) {
        terms(Lanes<T, true>{}, run + i + u * kLanes, i + u * kLanes, t);
        for (int k = 0; k < K; ++k) acc[k][u] += t[k];
      }
      if ((pending += kBlock) >= kSumChunk) fold();
    }
    for (; i + kLanes <= a.inner; i += kLanes) {
      terms(Lanes<T, true>{}, run + i, i, t);
      for (int k = 0; k < K; ++k) acc[k][0] += t[k];
      pending += kLanes;
    }
    for (; i < a.inner; ++i) {
      T one[K];
      terms(Lanes<T, false>{}, run + i, i, one);
      for (int k = 0; k < K; ++k) tail[k] += one[k];
      ++pending;
    }
    if (pending >= kSumChunk) fold();
  }
  fold();
  return sums;
}

// K sums per column of `width` columns over many rows, the k-th of column j at k * width + j of `recent` (T) and
// `total` (double): each row's terms are added in T, flushed into double every flush_every rows (end_row after each
// row, flush at the end).
template <typename T, int K>
struct ColumnSums {
  int64_t width;
  T* recent;
  double* total;
  int64_t rows = 0;
  int64_t flush_every = kColumnRuns;
  void clear() {
    std::fill(recent, recent + K * width, T(0));
    std::fill(total, total + K * width, 0.0);
  }
  void end_row() {
    if (++rows % flush_every == 0) flush();
  }
  void flush() {
    for (int64_t j = 0; j < K * width; ++j) total[j] += static_cast<double>(recent[j]);
    std::fill(recent, recent + K * width, T(0));
  }
};

// The K sums down each column j < width of the (rows, width) matrix of the terms that terms(L{}, at, j, t) sets
// (those of the register of elements from element `at`, columns from j, or of that element alone), into
// sums[k * width + j]: each chunk of kColumnRuns rows summed in T (chunks in parallel, each read as one sequential
// stream), then the chunks' sums added in double in chunk order. Those are ColumnSums' adds, so no result depends
// on the thread count. (Blocks of columns down all the rows, one per thread, went at half the memory's pace and did
// not scale.)
template <typename T, int K, class Terms>
void column_sums(int64_t rows, int64_t width, double* sums, const Terms& terms) {
  const int64_t chunks = (rows + kColumnRuns - 1) / kColumnRuns;
  Scratch<T> partial(chunks * K * width);
  parallel_for(chunks, grain_for_items(kColumnRuns * width), [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      T* own = partial.get() + chunk * K * width;
      std::fill(own, own + K * width, T(0));
      for (int64_t r = chunk * kColumnRuns; r < std::min(rows, (chunk + 1) * kColumnRuns); ++r) {
        for_run<T>(width, [&]<class L>(L, int64_t j) {
          alignas(kVectorBytes) typename L::V t[K];
          terms(L{}, r * width + j, j, t);
          for (int k = 0; k < K; ++k) L::store(own + k * width + j, L::load(own + k * width + j) + t[k]);
        });
      }
    }
  });
  parallel_for(K * width, grain_for_items(chunks), [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      double total = 0;
      for (int64_t chunk = 0; chunk < chunks; ++chunk)
        total += static_cast<double>(partial.get()[chunk * K * width + j]);
      sums[j] = total;
    }
  });
}

// A PerInner affine, or a PerChannel one whose channels are shorter than kShortChannel (group norm of a 2-d input:
// one element each), read per element of a run: group c's run has weight(c)[i] and bias(c)[i] (null where the
// tensor is). PerInner's are the tensors themselves (cycle 1); short channels' are each channel's weight and bias
// repeated over its elements, for the `cycle` runs after which the groups' channels repeat (channel j's elements at
// j * size .. j * size + size - 1). Channel by channel, a segment of 1 to 3 elements a call cost more than all the
// arithmetic ((4096, 256) in 32 groups: 48 ms); one call a run is faster up to 64-element channels, as fast at 128
// and slower at 256 (group norm in 32 groups of 64 channels, one thread: 1.10 against 1.24 ms, 0.94 against 0.95,
// 0.98 against 0.86).
template <typename T>
struct ElementAffine {
  bool on;  // the affine is read per element
  int64_t inner, cycle, size;
  Scratch<T> repeated;
  const T *w, *b;
  ElementAffine(NormAffine affine, int64_t inner, NormChannels channels, const T* weight, const T* bias)
      : on(affine == NormAffine::PerInner || (affine == NormAffine::PerChannel && channels.size < kShortChannel)),
        inner(inner),
        cycle(affine == NormAffine::PerChannel && on ? channels.count / (inner / channels.size) : 1),
        size(affine == NormAffine::PerChannel && on ? channels.size : 1),
        repeated(affine == NormAffine::PerChannel && on ? 2 * cycle * inner : 1),
        w(on ? weight : nullptr),
        b(on ? bias : nullptr) {
    if (affine != NormAffine::PerChannel || !on) return;
    T *rw = repeated.get(), *rb = rw + cycle * inner;
    for (int64_t e = 0; e < cycle * inner; ++e) {
      rw[e] = weight != nullptr ? weight[e / size] : T(1);
      rb[e] = bias != nullptr ? bias[e / size] : T(0);
    }
    w = weight != nullptr ? rw : nullptr;
    b = bias != nullptr ? rb : nullptr;
  }
  // Where group c's run starts in the repeated weights (and in the columns of their gradients).
  int64_t offset(int64_t c) const { return (c % cycle) * inner; }
  // Null unless `on`.
  const T* weight(int64_t c) const { return w != nullptr ? w + offset(c) : nullptr; }
  const T* bias(int64_t c) const { return b != nullptr ? b + offset(c) : nullptr; }
};

// --- forward ---

// One run of y, w and b per element (PerInner) when kWeight / kBias, else the constants wc and bc.
template <typename T, bool kWeight, bool kBias>
void output_run(const T* x, T* y, int64_t n, T mean, T mean_low, T rstd, const T* w, const T* b, T wc, T bc) {
  for_run<T>(n, [&]<class L>(L, int64_t i) {
    const typename L::V wv = kWeight ? L::load(w + i) : L::splat(wc), bv = kBias ? L::load(b + i) : L::splat(bc);
    L::store(y + i, norm_output(L::load(x + i), L::splat(mean), L::splat(mean_low), L::splat(rstd), wv, bv));
  });
}

// A group's statistics from its sum and its two-pass sums about `centre` (norm_variance), written to the outputs.
template <typename T>
struct GroupStats {
  T mean, mean_low, rstd;
};
template <typename T>
GroupStats<T> group_stats(const NormArgs& a, int64_t c, T centre, double sum_d, double sum_dd) {
  const double n = static_cast<double>(a.outer * a.inner);
  const double var = norm_variance(sum_d, sum_dd, n), rstd = 1.0 / std::sqrt(var + a.eps);
  const double mean = static_cast<double>(centre) + sum_d / n;
  const GroupStats<T> s{static_cast<T>(mean), static_cast<T>(mean - static_cast<double>(static_cast<T>(mean))),
                        static_cast<T>(rstd)};
  static_cast<T*>(a.mean)[c] = s.mean;
  static_cast<T*>(a.rstd)[c] = s.rstd;
  if (a.var != nullptr) static_cast<T*>(a.var)[c] = static_cast<T>(var);
  return s;
}

template <typename T>
void forward_runs(const NormArgs& a) {
  const T* x = static_cast<const T*>(a.x);
  const T* weight = static_cast<const T*>(a.weight);
  const T* bias = static_cast<const T*>(a.bias);
  T* y = static_cast<T*>(a.y);
  const double n = static_cast<double>(a.outer * a.inner);
  const NormAffineMap map{a.affine, a.inner, a.channels};
  const NormView view{a.outer, a.groups, a.inner};
  const ElementAffine<T> element(a.affine, a.inner, a.channels, weight, bias);
  // y of group c from its statistics.
  const auto output = [&](int64_t c, const GroupStats<T>& s) {
    if (!element.on) {  // the run in segments of one weight and bias: the whole run, or each channel's
      const int64_t segment = a.affine == NormAffine::PerChannel ? a.channels.size : a.inner;
      const int64_t first = map.index(c, 0);  // segment k's weight and bias: first + k
      for (int64_t o = 0; o < a.outer; ++o) {
        for (int64_t i = 0, k = first; i < a.inner; i += segment, ++k) {
          const int64_t at = norm_index(a.groups, a.inner, o, c, i);
          const T wc = weight != nullptr ? weight[k] : T(1), bc = bias != nullptr ? bias[k] : T(0);
          output_run<T, false, false>(x + at, y + at, segment, s.mean, s.mean_low, s.rstd, weight, bias, wc, bc);
        }
      }
      return;
    }
    const T wc = 1, bc = 0;  // where the weight or the bias is null
    const T *w = element.weight(c), *b = element.bias(c);
    for (int64_t o = 0; o < a.outer; ++o) {
      const int64_t at = norm_index(a.groups, a.inner, o, c, 0);
      if (w != nullptr && b != nullptr) {
        output_run<T, true, true>(x + at, y + at, a.inner, s.mean, s.mean_low, s.rstd, w, b, wc, bc);
      } else if (w != nullptr) {
        output_run<T, true, false>(x + at, y + at, a.inner, s.mean, s.mean_low, s.rstd, w, b, wc, bc);
      } else if (b != nullptr) {
        output_run<T, false, true>(x + at, y + at, a.inner, s.mean, s.mean_low, s.rstd, w, b, wc, bc);
      } else {
        output_run<T, false, false>(x + at, y + at, a.inner, s.mean, s.mean_low, s.rstd, w, b, wc, bc);
      }
    }
  };
  const int64_t batch = a.outer * a.inner < kSmallGroup ? kSmallBatch : 1;
  parallel_for(a.groups, grain_for_items(a.outer * a.inner), [&](int64_t begin, int64_t end) {
    for (int64_t first = begin; first < end; first += batch) {
      const int64_t count = std::min(batch, end - first);
      T centre[kSmallBatch];
      double sum_d[kSmallBatch], sum_dd[kSmallBatch];
      GroupStats<T> s[kSmallBatch];
      for (int64_t j = 0; j < count; ++j) {
        const double sum = group_sums<T, 1>(
            view, first + j, [x]<class L>(L, int64_t at, int64_t, typename L::V* t) { t[0] = L::load(x + at); })[0];
        centre[j] = static_cast<T>(sum / n);
      }
      for (int64_t j = 0; j < count; ++j) {
        const T m = centre[j];
        const auto sums = group_sums<T, 2>(view, first + j, [x, m]<class L>(L, int64_t at, int64_t, typename L::V* t) {
          t[0] = L::load(x + at) - m;
          t[1] = t[0] * t[0];
        });
        sum_d[j] = sums[0];
        sum_dd[j] = sums[1];
      }
      for (int64_t j = 0; j < count; ++j) s[j] = group_stats<T>(a, first + j, centre[j], sum_d[j], sum_dd[j]);
      for (int64_t j = 0; j < count; ++j) output(first + j, s[j]);
    }
  });
}

// The columns layout's per-column constants: `count` arrays of groups * inner values of T in one scratch block.
template <typename T>
struct ColumnConstants {
  int64_t width;
  Scratch<T> block;
  ColumnConstants(int64_t width, int count) : width(width), block(width * count) {}
  T* operator[](int k) const { return block.get() + k * width; }
};

template <typename T>
void forward_columns(const NormArgs& a) {
  const T* x = static_cast<const T*>(a.x);
  const T* weight = static_cast<const T*>(a.weight);
  const T* bias = static_cast<const T*>(a.bias);
  const int64_t width = a.groups * a.inner;
  const double n = static_cast<double>(a.outer * a.inner);
  const NormAffineMap map{a.affine, a.inner, a.channels};
  Scratch<double> sums(2 * width);
  ColumnConstants<T> k(width, 5);  // mean (first the centre), mean_low, rstd, w, b of each column
  T *mean = k[0], *mean_low = k[1], *rstd = k[2], *w = k[3], *b = k[4];
  column_sums<T, 1>(a.outer, width, sums.get(),
                    [x]<class L>(L, int64_t at, int64_t, typename L::V* t) { t[0] = L::load(x + at); });
  for (int64_t c = 0; c < a.groups; ++c) {
    double sum = 0;
    for (int64_t i = 0; i < a.inner; ++i) sum += sums.get()[c * a.inner + i];
    std::fill(mean + c * a.inner, mean + (c + 1) * a.inner, static_cast<T>(sum / n));
  }
  column_sums<T, 2>(a.outer, width, sums.get(), [x, mean]<class L>(L, int64_t at, int64_t j, typename L::V* t) {
    t[0] = L::load(x + at) - L::load(mean + j);
    t[1] = t[0] * t[0];
  });
  for (int64_t c = 0; c < a.groups; ++c) {
    double sum_d = 0, sum_dd = 0;
    for (int64_t i = 0; i < a.inner; ++i) {
      sum_d += sums.get()[c * a.inner + i];
      sum_dd += sums.get()[width + c * a.inner + i];
    }
    const GroupStats<T> s = group_stats<T>(a, c, mean[c * a.inner], sum_d, sum_dd);
    for (int64_t i = 0; i < a.inner; ++i) {
      const int64_t j = c * a.inner + i;
      mean[j] = s.mean;
      mean_low[j] = s.mean_low;
      rstd[j] = s.rstd;
      w[j] = static_cast<T>(norm_affine(weight, map, c, i, 1.0));
      b[j] = static_cast<T>(norm_affine(bias, map, c, i, 0.0));
    }
  }
  T* y = static_cast<T*>(a.y);
  parallel_for(a.outer, grain_for_items(width), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const T* xr = x + o * width;
      T* yr = y + o * width;
      for_run<T>(width, [&]<class L>(L, int64_t j) {
        L::store(yr + j, norm_output(L::load(xr + j), L::load(mean + j), L::load(mean_low + j), L::load(rstd + j),
                                     L::load(w + j), L::load(b + j)));
      });
    }
  });
}

// --- backward ---

// One run of grad_x, w per element (PerInner) when kWeight, else the constant wc.
template <typename T, bool kWeight>
void grad_x_run(const T* g, const T* x, T* grad_x, int64_t n, T mean, T rstd, const T* w, T wc, T shift, T slope) {
  for_run<T>(n, [&]<class L>(L, int64_t i) {
    const typename L::V wv = kWeight ? L::load(w + i) : L::splat(wc);
    L::store(grad_x + i, norm_grad_x(L::load(g + i), L::load(x + i), L::splat(mean), L::splat(rstd), wv,
                                     L::splat(shift), L::splat(slope)));
  });
}

// A PerChannel group's sums of g w and g w (x - mean): each channel's sums of g and g (x - mean) (group_terms) over
// its segment of the group's runs (group c * per_run + s of the segments view), kept in
// sums[2 (c per_run + s) + 0, 1], then weighted by the channel's weight (weight[first + s]) and added in channel
// order.
template <typename T, class Terms>
std::array<double, 2> weighted_channel_sums(const NormView& segments, int64_t c, int64_t per_run, const T* weight,
                                            int64_t first, const Terms& group_terms, double* sums) {
  std::array<double, 2> weighted{};
  for (int64_t s = 0; s < per_run; ++s) {
    const auto [sum_g, sum_gd] = group_sums<T, 2>(segments, c * per_run + s, group_terms);
    sums[2 * (c * per_run + s)] = sum_g;
    sums[2 * (c * per_run + s) + 1] = sum_gd;
    const double w = weight != nullptr ? static_cast<double>(weight[first + s]) : 1.0;
    weighted[0] += w * sum_g;
    weighted[1] += w * sum_gd;
  }
  return weighted;
}

template <typename T>
void backward_runs(const NormBackwardArgs& a) {
  const T* g = static_cast<const T*>(a.grad_y);
  const T* x = static_cast<const T*>(a.x);
  const T* mean_of = static_cast<const T*>(a.mean);
  const T* rstd_of = static_cast<const T*>(a.rstd);
  const T* weight = static_cast<const T*>(a.weight);
  T* grad_x = static_cast<T*>(a.grad_x);
  const NormView view{a.outer, a.groups, a.inner};
  const double n = static_cast<double>(a.outer * a.inner);
  const NormAffineMap map{a.affine, a.inner, a.channels};
  const ElementAffine<T> element(a.affine, a.inner, a.channels, weight, nullptr);
  // Weights inside a group's sums: per element (element.on); a PerGroup weight multiplies the sums afterwards; a
  // PerChannel one's (segments) multiply each channel's sums (its segment of each run), which are kept for the
  // weight and bias gradients.
  const bool segments_of_channels = a.affine == NormAffine::PerChannel && !element.on;
  const int64_t segment = segments_of_channels ? a.channels.size : a.inner, per_run = a.inner / segment;
  const NormView segments{a.outer, a.groups * per_run, segment};  // a group per (group, channel)
  Scratch<double> channel_sums(segments_of_channels ? 2 * a.groups * per_run : 1);
  // Per-element weight and bias gradients: each thread's column sums over its groups (a column per element of the
  // `cycle` runs), added while a run is in cache.
  const bool columns = element.on && (a.grad_weight != nullptr || a.grad_bias != nullptr);
  const int64_t width = element.cycle * a.inner;
  const int threads = num_threads();
  Scratch<double> totals(columns ? 2 * width * threads : 1);
  Scratch<T> recent(columns ? 2 * width * threads : 1);
  const int64_t batch = a.outer * a.inner < kSmallGroup ? kSmallBatch : 1;
  parallel_run([&](int t, int nthreads) {
    const int64_t begin = a.groups * t / nthreads, end = a.groups * (t + 1) / nthreads;
    // This thread's columns of g xhat (k = 0) and g (k = 1).
    ColumnSums<T, 2> own{width, nullptr, nullptr};
    if (columns) {
      own = {width, recent.get() + 2 * width * t, totals.get() + 2 * width * t};
      own.flush_every = kColumnRuns * element.cycle;  // each column a row in `cycle`
      own.clear();
    }
    // Group c's sums of g w and g w (x - mean) (w = 1 but for a weight per element; a PerGroup weight multiplies
    // them afterwards; the channels' segments are weighted channel by channel).
    const auto sums_of = [&](int64_t c) {
      const T mean = mean_of[c];
      const T* inner_weight = element.weight(c);
      // g and g (x - mean), unweighted, for the channels' segments. The plain groups below spell the same terms in a
      // lambda of their own: passing this one to both made one group_sums instantiation that GCC no longer inlined
      // into this loop (group norm on (4096, 256): 7.7 -> 8.8 ms).
      const auto g_terms = [g, x, mean]<class L>(L, int64_t at, int64_t, typename L::V* s) {
        s[0] = L::load(g + at);
        s[1] = s[0] * (L::load(x + at) - mean);
      };
      return segments_of_channels
                 ? weighted_channel_sums<T>(segments, c, per_run, weight, map.index(c, 0), g_terms, channel_sums.get())
             : inner_weight != nullptr
                 ? group_sums<T, 2>(view, c,
                                    [g, x, inner_weight, mean]<class L>(L, int64_t at, int64_t i, typename L::V* s) {
                                      s[0] = L::load(g + at) * L::load(inner_weight + i);
                                      s[1] = s[0] * (L::load(x + at) - mean);
                                    })
                 : group_sums<T, 2>(view, c, [g, x, mean]<class L>(L, int64_t at, int64_t, typename L::V* s) {
                     s[0] = L::load(g + at);
                     s[1] = s[0] * (L::load(x + at) - mean);
                   });
    };
    // Group c's part of a per-element affine's gradients, its grad_x, and a PerGroup affine's gradients.
    const auto finish = [&](int64_t c, double sum_g, double sum_gd) {
      const T mean = mean_of[c], rstd = rstd_of[c];
      const int64_t column = element.offset(c);  // the first of the run's columns
      const T* inner_weight = element.w != nullptr ? element.w + column : nullptr;
      for (int64_t o = 0; columns && o < a.outer; ++o) {
        const int64_t at = norm_index(a.groups, a.inner, o, c, 0);
        for_run<T>(a.inner, [&]<class L>(L, int64_t i) {
          const typename L::V gi = L::load(g + at + i);
          T *gx = own.recent + column + i, *gs = own.recent + width + column + i;
          L::store(gx, L::load(gx) + gi * ((L::load(x + at + i) - mean) * rstd));
          L::store(gs, L::load(gs) + gi);
        });
        own.end_row();
      }
      const double sum_gx = sum_gd * static_cast<double>(rstd);  // sum(g w_i xhat)
      if (a.affine == NormAffine::PerGroup) {
        if (a.grad_weight != nullptr) static_cast<T*>(a.grad_weight)[c] = static_cast<T>(sum_gx);
        if (a.grad_bias != nullptr) static_cast<T*>(a.grad_bias)[c] = static_cast<T>(sum_g);
      }
      if (grad_x == nullptr) return;
      const double wc = a.affine == NormAffine::PerGroup ? norm_affine(weight, map, c, 0, 1.0) : 1.0;
      const NormGradTerms terms = norm_grad_terms(static_cast<double>(rstd), sum_g * wc, sum_gx * wc, n);
      const T shift = static_cast<T>(terms.shift), slope = static_cast<T>(terms.slope);
      const int64_t first = segments_of_channels ? map.index(c, 0) : 0;  // segment k's weight: first + k
      for (int64_t o = 0; o < a.outer; ++o) {
        for (int64_t i = 0, k = first; i < a.inner; i += segment, ++k) {  // a segment of one weight, or a whole run
          const int64_t at = norm_index(a.groups, a.inner, o, c, i);
          const T w = segments_of_channels && weight != nullptr ? weight[k] : static_cast<T>(wc);
          if (inner_weight != nullptr) {
            grad_x_run<T, true>(g + at, x + at, grad_x + at, segment, mean, rstd, inner_weight, w, shift, slope);
          } else {
            grad_x_run<T, false>(g + at, x + at, grad_x + at, segment, mean, rstd, inner_weight, w, shift, slope);
          }
        }
      }
    };
    for (int64_t first = begin; first < end; first += batch) {  // kSmallBatch groups at a time through each step
      const int64_t count = std::min(batch, end - first);
      std::array<double, 2> sums[kSmallBatch];
      for (int64_t j = 0; j < count; ++j) sums[j] = sums_of(first + j);
      for (int64_t j = 0; j < count; ++j) finish(first + j, sums[j][0], sums[j][1]);
    }
    if (columns) own.flush();
  });
  if (segments_of_channels) {  // each channel's sums over the groups that hold it, in group order
    const int64_t cycle = a.channels.count / per_run;
    for (int64_t channel = 0; channel < a.channels.count; ++channel) {
      double gx = 0, g_sum = 0;
      for (int64_t c = channel / per_run; c < a.groups; c += cycle) {
        const double* sums = channel_sums.get() + 2 * (c * per_run + channel % per_run);
        gx += sums[1] * static_cast<double>(rstd_of[c]);
        g_sum += sums[0];
      }
      if (a.grad_weight != nullptr) static_cast<T*>(a.grad_weight)[channel] = static_cast<T>(gx);
      if (a.grad_bias != nullptr) static_cast<T*>(a.grad_bias)[channel] = static_cast<T>(g_sum);
    }
  }
  if (!columns) return;
  // Each weight's columns (PerInner: one; a short channel: its elements'), the threads' added in thread order (the
  // result depends on the thread count only).
  for (int64_t j = 0; j < width / element.size; ++j) {
    double gx = 0, g_sum = 0;
    for (int t = 0; t < threads; ++t) {
      for (int64_t e = j * element.size; e < (j + 1) * element.size; ++e) {
        gx += totals.get()[2 * width * t + e];
        g_sum += totals.get()[2 * width * t + width + e];
      }
    }
    if (a.grad_weight != nullptr) static_cast<T*>(a.grad_weight)[j] = static_cast<T>(gx);
    if (a.grad_bias != nullptr) static_cast<T*>(a.grad_bias)[j] = static_cast<T>(g_sum);
  }
}

template <typename T>
void backward_columns(const NormBackwardArgs& a) {
  const T* g = static_cast<const T*>(a.grad_y);
  const T* x = static_cast<const T*>(a.x);
  const T* weight = static_cast<const T*>(a.weight);
  const int64_t width = a.groups * a.inner;
  const double n = static_cast<double>(a.outer * a.inner);
  ColumnConstants<T> k(width, 5);  // mean, rstd, w, shift, slope of each column
  T *mean = k[0], *rstd = k[1], *w = k[2], *shift = k[3], *slope = k[4];
  for (int64_t c = 0; c < a.groups; ++c) {
    std::fill(mean + c * a.inner, mean + (c + 1) * a.inner, static_cast<const T*>(a.mean)[c]);
    std::fill(rstd + c * a.inner, rstd + (c + 1) * a.inner, static_cast<const T*>(a.rstd)[c]);
  }
  // Each column's sums of g (k = 0) and g (x - mean) (k = 1); a group's are its columns'.
  Scratch<double> sums(2 * width);
  column_sums<T, 2>(a.outer, width, sums.get(), [g, x, mean]<class L>(L, int64_t at, int64_t j, typename L::V* t) {
    t[0] = L::load(g + at);
    t[1] = t[0] * (L::load(x + at) - L::load(mean + j));
  });
  for (int64_t c = 0; c < a.groups; ++c) {
    const double r = static_cast<double>(rstd[c * a.inner]);
    double sum_g = 0, sum_gd = 0;  // sum(g) and sum(g (x - mean))
    for (int64_t i = 0; i < a.inner; ++i) {
      sum_g += sums.get()[c * a.inner + i];
      sum_gd += sums.get()[width + c * a.inner + i];
    }
    if (a.grad_weight != nullptr) static_cast<T*>(a.grad_weight)[c] = static_cast<T>(sum_gd * r);
    if (a.grad_bias != nullptr) static_cast<T*>(a.grad_bias)[c] = static_cast<T>(sum_g);
    const double wc = norm_affine(weight, NormAffineMap{a.affine, a.inner, a.channels}, c, 0, 1.0);
    const NormGradTerms terms = norm_grad_terms(r, sum_g * wc, sum_gd * r * wc, n);
    std::fill(w + c * a.inner, w + (c + 1) * a.inner, static_cast<T>(wc));
    std::fill(shift + c * a.inner, shift + (c + 1) * a.inner, static_cast<T>(terms.shift));
    std::fill(slope + c * a.inner, slope + (c + 1) * a.inner, static_cast<T>(terms.slope));
  }
  T* grad_x = static_cast<T*>(a.grad_x);
  if (grad_x == nullptr) return;
  parallel_for(a.outer, grain_for_items(width), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const T *gr = g + o * width, *xr = x + o * width;
      T* out = grad_x + o * width;
      for_run<T>(width, [&]<class L>(L, int64_t j) {
        L::store(out + j, norm_grad_x(L::load(gr + j), L::load(xr + j), L::load(mean + j), L::load(rstd + j),
                                      L::load(w + j), L::load(shift + j), L::load(slope + j)));
      });
    }
  });
}

// The columns layout serves a PerGroup affine (batch norm's); a PerInner one with many rows has no caller (layer
// norm's view has one row), so it keeps to the runs.
bool by_columns(int64_t outer, int64_t inner, NormAffine affine) {
  return inner < kColumnInner && outer >= kColumnRows && affine == NormAffine::PerGroup;
}

}  // namespace

void normalize(const NormArgs& args) {
  check_norm_sizes("cpu normalize", args.outer, args.groups, args.inner);
  check_norm_channels("cpu normalize", args.affine, args.groups, args.inner, args.channels);
  dispatch(normalize_types{}, args.dtype, "cpu normalize", [&]<class T> {
    if (by_columns(args.outer, args.inner, args.affine)) {
      forward_columns<T>(args);
    } else {
      forward_runs<T>(args);
    }
  });
}

void normalize_backward(const NormBackwardArgs& args) {
  check_norm_sizes("cpu normalize_backward", args.outer, args.groups, args.inner);
  check_norm_channels("cpu normalize_backward", args.affine, args.groups, args.inner, args.channels);
  dispatch(normalize_backward_types{}, args.dtype, "cpu normalize_backward", [&]<class T> {
    if (by_columns(args.outer, args.inner, args.affine)) {
      backward_columns<T>(args);
    } else {
      backward_runs<T>(args);
    }
  });
}

}  // namespace atelier::cpu
