// Normalisation by groups on the CPU (backends/args.h, NormArgs), forward and backward, parallel over the groups.
// The arithmetic runs in the tensor's own type a vector register at a time (backends/cpu/simd.h), through the
// per-element functions of backends/norm_math.h, shared with the GPU. A group's sums run over its contiguous runs
// of `inner` elements in lanes of that type (kAccumulators registers per sum, so the adds pipeline), folded in a
// fixed order every kSumChunk elements and added in double: a float lane adds at most kSumChunk / 64 terms.
// A group is one thread's, so its sums do not depend on the thread count; a PerInner affine's weight and bias
// gradients (below) do, as the reductions' long sums do.
//   forward   three passes over a group: the sum, then the deviations from the mean rounded to the type and their
//             squares (norm_variance corrects for that rounding), then y;
//   backward  two: the sums of g w and g w (x - mean), then grad_x. A PerGroup affine's weight and bias
//             gradients are those sums (with w = 1); a PerInner one's sum over the groups: each thread adds its
//             groups' runs into columns of its own while the run is in cache (in the type, flushed into double
//             columns every kColumnRuns runs), and the threads' columns are added in order.
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

constexpr int64_t kSumChunk = 2048;
constexpr int kAccumulators = 4;
constexpr int64_t kColumnRuns = 64;

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

// The K sums over a run of n elements of the terms that terms(L{}, i, t) sets in t[0..K-1] (L a Lanes: those of
// the register of elements from i, or of element i alone), in lanes of T as the file's header says.
template <typename T, int K, class Terms>
std::array<double, K> lane_sums(int64_t n, const Terms& terms) {
  typedef typename Simd<T>::V V;
  constexpr int64_t kLanes = Simd<T>::kLanes;
  std::array<double, K> sums{};
  for (int64_t start = 0; start < n; start += kSumChunk) {
    const int64_t end = std::min(n, start + kSumChunk);
    alignas(kVectorBytes) V acc[K][kAccumulators] = {};
    alignas(kVectorBytes) V t[K];
    int64_t i = start;
    for (; i + kAccumulators * kLanes <= end; i += kAccumulators * kLanes) {
      for (int u = 0; u < kAccumulators; ++u) {
        terms(Lanes<T, true>{}, i + u * kLanes, t);
        for (int k = 0; k < K; ++k) acc[k][u] += t[k];
      }
    }
    for (; i + kLanes <= end; i += kLanes) {
      terms(Lanes<T, true>{}, i, t);
      for (int k = 0; k < K; ++k) acc[k][0] += t[k];
    }
    T tail[K] = {};
    for (; i < end; ++i) {
      T one[K];
      terms(Lanes<T, false>{}, i, one);
      for (int k = 0; k < K; ++k) tail[k] += one[k];
    }
    for (int k = 0; k < K; ++k) {
      for (int width = kAccumulators / 2; width >= 1; width /= 2) {
        for (int u = 0; u < width; ++u) acc[k][u] += acc[k][u + width];
      }
      alignas(kVectorBytes) T lanes[kLanes];
      store_vector(lanes, acc[k][0]);
      for (int64_t width = kLanes / 2; width >= 1; width /= 2) {
        for (int64_t j = 0; j < width; ++j) lanes[j] += lanes[j + width];
      }
      sums[k] += static_cast<double>(lanes[0]) + static_cast<double>(tail[k]);
    }
  }
  return sums;
}

// One run of y, w and b per element (PerInner) when kWeight / kBias, else the constants wc and bc.
template <typename T, bool kWeight, bool kBias>
void output_run(const T* x, T* y, int64_t n, T mean, T mean_low, T rstd, const T* w, const T* b, T wc, T bc) {
  for_run<T>(n, [&]<class L>(L, int64_t i) {
    const typename L::V wv = kWeight ? L::load(w + i) : L::splat(wc), bv = kBias ? L::load(b + i) : L::splat(bc);
    L::store(y + i, norm_output(L::load(x + i), L::splat(mean), L::splat(mean_low), L::splat(rstd), wv, bv));
  });
}

template <typename T>
void forward_typed(const NormArgs& a) {
  const T* x = static_cast<const T*>(a.x);
  const T* weight = static_cast<const T*>(a.weight);
  const T* bias = static_cast<const T*>(a.bias);
  T* y = static_cast<T*>(a.y);
  const double n = static_cast<double>(a.outer * a.inner);
  const bool per_inner = a.affine == NormAffine::PerInner;
  parallel_for(a.groups, grain_for_items(a.outer * a.inner), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      double sum = 0;
      for (int64_t o = 0; o < a.outer; ++o) {
        const T* run = x + norm_index(a.groups, a.inner, o, c, 0);
        sum += lane_sums<T, 1>(a.inner, [run]<class L>(L, int64_t i, typename L::V* t) { t[0] = L::load(run + i); })[0];
      }
      const T centre = static_cast<T>(sum / n);
      double sum_d = 0, sum_dd = 0;
      for (int64_t o = 0; o < a.outer; ++o) {
        const T* run = x + norm_index(a.groups, a.inner, o, c, 0);
        const auto [d, dd] = lane_sums<T, 2>(a.inner, [run, centre]<class L>(L, int64_t i, typename L::V* t) {
          t[0] = L::load(run + i) - centre;
          t[1] = t[0] * t[0];
        });
        sum_d += d;
        sum_dd += dd;
      }
      const double var = norm_variance(sum_d, sum_dd, n), rstd = 1.0 / std::sqrt(var + a.eps);
      const double mean_exact = static_cast<double>(centre) + sum_d / n;
      const T mean = static_cast<T>(mean_exact), mean_low = static_cast<T>(mean_exact - static_cast<double>(mean));
      static_cast<T*>(a.mean)[c] = mean;
      static_cast<T*>(a.rstd)[c] = static_cast<T>(rstd);
      if (a.var != nullptr) static_cast<T*>(a.var)[c] = static_cast<T>(var);
      const T wc = static_cast<T>(norm_affine(weight, a.affine, c, 0, 1.0));
      const T bc = static_cast<T>(norm_affine(bias, a.affine, c, 0, 0.0));
      const bool w_run = per_inner && weight != nullptr, b_run = per_inner && bias != nullptr;
      const T r = static_cast<T>(rstd);
      for (int64_t o = 0; o < a.outer; ++o) {
        const int64_t at = norm_index(a.groups, a.inner, o, c, 0);
        if (w_run && b_run) {
          output_run<T, true, true>(x + at, y + at, a.inner, mean, mean_low, r, weight, bias, wc, bc);
        } else if (w_run) {
          output_run<T, true, false>(x + at, y + at, a.inner, mean, mean_low, r, weight, bias, wc, bc);
        } else if (b_run) {
          output_run<T, false, true>(x + at, y + at, a.inner, mean, mean_low, r, weight, bias, wc, bc);
        } else {
          output_run<T, false, false>(x + at, y + at, a.inner, mean, mean_low, r, weight, bias, wc, bc);
        }
      }
    }
  });
}

// One run of grad_x, w per element (PerInner) when kWeight, else the constant wc.
template <typename T, bool kWeight>
void grad_x_run(const T* g, const T* x, T* grad_x, int64_t n, T mean, T rstd, const T* w, T wc, T shift, T slope) {
  for_run<T>(n, [&]<class L>(L, int64_t i) {
    const typename L::V wv = kWeight ? L::load(w + i) : L::splat(wc);
    L::store(grad_x + i, norm_grad_x(L::load(g + i), L::load(x + i), L::splat(mean), L::splat(rstd), wv,
                                     L::splat(shift), L::splat(slope)));
  });
}

template <typename T>
void backward_typed(const NormBackwardArgs& a) {
  const T* g = static_cast<const T*>(a.grad_y);
  const T* x = static_cast<const T*>(a.x);
  const T* mean_of = static_cast<const T*>(a.mean);
  const T* rstd_of = static_cast<const T*>(a.rstd);
  const T* weight = static_cast<const T*>(a.weight);
  T* grad_x = static_cast<T*>(a.grad_x);
  const double n = static_cast<double>(a.outer * a.inner);
  const bool per_inner = a.affine == NormAffine::PerInner;
  // Weights inside a group's sums: PerInner's w_i; a PerGroup weight multiplies the sums afterwards.
  const T* inner_weight = per_inner ? weight : nullptr;
  // PerInner weight and bias gradients: each thread's column sums over its groups, added while a run is in cache.
  const bool columns = per_inner && (a.grad_weight != nullptr || a.grad_bias != nullptr);
  const int threads = num_threads();
  Scratch<double> totals(columns ? 2 * a.inner * threads : 1);
  Scratch<T> recent(columns ? 2 * a.inner * threads : 1);
  parallel_run([&](int t, int nthreads) {
    const int64_t begin = a.groups * t / nthreads, end = a.groups * (t + 1) / nthreads;
    // This thread's columns of g xhat and g: the last runs' in T, the others' in double.
    double* total_gx = columns ? totals.get() + 2 * a.inner * t : nullptr;
    double* total_g = columns ? total_gx + a.inner : nullptr;
    T* recent_gx = columns ? recent.get() + 2 * a.inner * t : nullptr;
    T* recent_g = columns ? recent_gx + a.inner : nullptr;
    const auto flush = [&] {
      for (int64_t i = 0; i < a.inner; ++i) {
        total_gx[i] += static_cast<double>(recent_gx[i]);
        total_g[i] += static_cast<double>(recent_g[i]);
      }
      std::fill(recent_gx, recent_gx + 2 * a.inner, T(0));
    };
    if (columns) {
      std::fill(total_gx, total_gx + 2 * a.inner, 0.0);
      std::fill(recent_gx, recent_gx + 2 * a.inner, T(0));
    }
    int64_t runs = 0;
    for (int64_t c = begin; c < end; ++c) {
      const T mean = mean_of[c], rstd = rstd_of[c];
      double sum_g = 0, sum_gd = 0;  // sum(g w_i) and sum(g w_i (x - mean))
      for (int64_t o = 0; o < a.outer; ++o) {
        const int64_t at = norm_index(a.groups, a.inner, o, c, 0);
        const T *gr = g + at, *xr = x + at;
        const auto [run_g, run_gd] =
            inner_weight != nullptr
                ? lane_sums<T, 2>(a.inner,
                                  [gr, xr, inner_weight, mean]<class L>(L, int64_t i, typename L::V* s) {
                                    s[0] = L::load(gr + i) * L::load(inner_weight + i);
                                    s[1] = s[0] * (L::load(xr + i) - mean);
                                  })
                : lane_sums<T, 2>(a.inner, [gr, xr, mean]<class L>(L, int64_t i, typename L::V* s) {
                    s[0] = L::load(gr + i);
                    s[1] = s[0] * (L::load(xr + i) - mean);
                  });
        sum_g += run_g;
        sum_gd += run_gd;
        if (!columns) continue;
        for_run<T>(a.inner, [&]<class L>(L, int64_t i) {
          const typename L::V gi = L::load(gr + i);
          L::store(recent_gx + i, L::load(recent_gx + i) + gi * ((L::load(xr + i) - mean) * rstd));
          L::store(recent_g + i, L::load(recent_g + i) + gi);
        });
        if (++runs % kColumnRuns == 0) flush();
      }
      const double sum_gx = sum_gd * static_cast<double>(rstd);  // sum(g w_i xhat)
      if (!per_inner) {
        if (a.grad_weight != nullptr) static_cast<T*>(a.grad_weight)[c] = static_cast<T>(sum_gx);
        if (a.grad_bias != nullptr) static_cast<T*>(a.grad_bias)[c] = static_cast<T>(sum_g);
      }
      if (grad_x == nullptr) continue;
      const double wc = per_inner ? 1.0 : norm_affine(weight, a.affine, c, 0, 1.0);
      const NormGradTerms terms = norm_grad_terms(static_cast<double>(rstd), sum_g * wc, sum_gx * wc, n);
      const T shift = static_cast<T>(terms.shift), slope = static_cast<T>(terms.slope), w = static_cast<T>(wc);
      for (int64_t o = 0; o < a.outer; ++o) {
        const int64_t at = norm_index(a.groups, a.inner, o, c, 0);
        if (inner_weight != nullptr) {
          grad_x_run<T, true>(g + at, x + at, grad_x + at, a.inner, mean, rstd, inner_weight, w, shift, slope);
        } else {
          grad_x_run<T, false>(g + at, x + at, grad_x + at, a.inner, mean, rstd, inner_weight, w, shift, slope);
        }
      }
    }
    if (columns) flush();
  });
  if (!columns) return;
  // The threads' column sums, added in thread order (the result depends on the thread count only).
  for (int64_t i = 0; i < a.inner; ++i) {
    double gx = 0, g_sum = 0;
    for (int t = 0; t < threads; ++t) {
      gx += totals.get()[2 * a.inner * t + i];
      g_sum += totals.get()[2 * a.inner * t + a.inner + i];
    }
    if (a.grad_weight != nullptr) static_cast<T*>(a.grad_weight)[i] = static_cast<T>(gx);
    if (a.grad_bias != nullptr) static_cast<T*>(a.grad_bias)[i] = static_cast<T>(g_sum);
  }
}

}  // namespace

void normalize(const NormArgs& args) {
  check_norm_sizes("cpu normalize", args.outer, args.groups, args.inner);
  dispatch(normalize_types{}, args.dtype, "cpu normalize", [&]<class T> { forward_typed<T>(args); });
}

void normalize_backward(const NormBackwardArgs& args) {
  check_norm_sizes("cpu normalize_backward", args.outer, args.groups, args.inner);
  dispatch(normalize_backward_types{}, args.dtype, "cpu normalize_backward", [&]<class T> { backward_typed<T>(args); });
}

}  // namespace atelier::cpu
