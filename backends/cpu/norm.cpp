// Normalisation by groups on the CPU (batch norm's channels, layer norm's rows; backends/args.h, NormArgs), forward
// and backward, parallel over the groups. A group's sums run over its contiguous runs of `inner` elements in 16
// double lanes (the adds pipeline and vectorise; the lanes combine in a fixed order), one thread per group, so they
// do not depend on the thread count; a PerInner affine's weight and bias gradients (below) do, as the reductions'
// long sums. The per-element arithmetic is backends/norm_math.h, shared with the GPU.
//   forward   three passes over a group: the sum, the squared deviations from the mean, then y;
//   backward  two: the sums of g w and g w xhat, then grad_x. A PerGroup affine's weight and bias gradients are
//             those sums (with w = 1); a PerInner one's sum over the groups: each thread adds its groups' runs into
//             columns of its own (scratch) while the run is in cache, and the threads' columns are added in order.
#include <algorithm>
#include <array>
#include <cmath>

#include "backends/cpu/kernels.h"
#include "backends/cpu/scratch.h"
#include "backends/error.h"
#include "backends/norm_math.h"
#include "backends/thread_pool.h"

namespace atelier::cpu {
namespace {

// The K sums over i < n of terms(i, t) (which sets the i-th terms t[0..K-1]), each in 16 double lanes combined in a
// fixed order (the adds pipeline and vectorise).
template <int K, class Terms>
std::array<double, K> lane_sums(int64_t n, const Terms& terms) {
  double lane[K][16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 16; ++j) {
      double t[K];
      terms(i + j, t);
      for (int k = 0; k < K; ++k) lane[k][j] += t[k];
    }
  }
  std::array<double, K> tail{};
  for (; i < n; ++i) {
    double t[K];
    terms(i, t);
    for (int k = 0; k < K; ++k) tail[k] += t[k];
  }
  std::array<double, K> sums;
  for (int k = 0; k < K; ++k) {
    for (int width = 8; width >= 1; width /= 2) {
      for (int j = 0; j < width; ++j) lane[k][j] += lane[k][j + width];
    }
    sums[k] = lane[k][0] + tail[k];
  }
  return sums;
}

// One run of y: (x - mean) rstd w + b, w and b per element (PerInner) when kWeight / kBias, else the constants wc
// and bc (norm_output's arithmetic, with the null checks out of the loop).
template <typename T, bool kWeight, bool kBias>
void output_run(const T* x, T* y, int64_t n, double mean, double rstd, const T* w, const T* b, double wc, double bc) {
  for (int64_t i = 0; i < n; ++i) {
    y[i] =
        norm_output(x[i], mean, rstd, kWeight ? static_cast<double>(w[i]) : wc, kBias ? static_cast<double>(b[i]) : bc);
  }
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
        sum += lane_sums<1>(a.inner, [run](int64_t i, double* t) { t[0] = static_cast<double>(run[i]); })[0];
      }
      const double mean = sum / n;
      double squares = 0;
      for (int64_t o = 0; o < a.outer; ++o) {
        const T* run = x + norm_index(a.groups, a.inner, o, c, 0);
        squares += lane_sums<1>(a.inner, [run, mean](int64_t i, double* t) {
          const double d = static_cast<double>(run[i]) - mean;
          t[0] = d * d;
        })[0];
      }
      const double var = squares / n, rstd = 1.0 / std::sqrt(var + a.eps);
      static_cast<T*>(a.mean)[c] = static_cast<T>(mean);
      static_cast<T*>(a.rstd)[c] = static_cast<T>(rstd);
      if (a.var != nullptr) static_cast<T*>(a.var)[c] = static_cast<T>(var);
      const double wc = norm_affine(weight, a.affine, c, 0, 1.0), bc = norm_affine(bias, a.affine, c, 0, 0.0);
      const bool w_run = per_inner && weight != nullptr, b_run = per_inner && bias != nullptr;
      for (int64_t o = 0; o < a.outer; ++o) {
        const int64_t at = norm_index(a.groups, a.inner, o, c, 0);
        if (w_run && b_run) {
          output_run<T, true, true>(x + at, y + at, a.inner, mean, rstd, weight, bias, wc, bc);
        } else if (w_run) {
          output_run<T, true, false>(x + at, y + at, a.inner, mean, rstd, weight, bias, wc, bc);
        } else if (b_run) {
          output_run<T, false, true>(x + at, y + at, a.inner, mean, rstd, weight, bias, wc, bc);
        } else {
          output_run<T, false, false>(x + at, y + at, a.inner, mean, rstd, weight, bias, wc, bc);
        }
      }
    }
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
  Scratch<double> partial(columns ? 2 * a.inner * threads : 1);
  parallel_run([&](int t, int nthreads) {
    const int64_t begin = a.groups * t / nthreads, end = a.groups * (t + 1) / nthreads;
    double* column_gx = columns ? partial.get() + 2 * a.inner * t : nullptr;
    double* column_g = columns ? column_gx + a.inner : nullptr;
    if (columns) std::fill(column_gx, column_gx + 2 * a.inner, 0.0);
    for (int64_t c = begin; c < end; ++c) {
      const double mean = static_cast<double>(mean_of[c]), rstd = static_cast<double>(rstd_of[c]);
      double sum_g = 0, sum_gx = 0;  // sum(g w_i) and sum(g w_i xhat)
      for (int64_t o = 0; o < a.outer; ++o) {
        const int64_t at = norm_index(a.groups, a.inner, o, c, 0);
        const T *gr = g + at, *xr = x + at;
        const auto [run_g, run_gx] =
            inner_weight != nullptr
                ? lane_sums<2>(a.inner,
                               [gr, xr, inner_weight, mean, rstd](int64_t i, double* t) {
                                 t[0] = static_cast<double>(gr[i]) * static_cast<double>(inner_weight[i]);
                                 t[1] = t[0] * ((static_cast<double>(xr[i]) - mean) * rstd);
                               })
                : lane_sums<2>(a.inner, [gr, xr, mean, rstd](int64_t i, double* t) {
                    t[0] = static_cast<double>(gr[i]);
                    t[1] = t[0] * ((static_cast<double>(xr[i]) - mean) * rstd);
                  });
        sum_g += run_g;
        sum_gx += run_gx;
        if (!columns) continue;
        for (int64_t i = 0; i < a.inner; ++i) {
          const double gi = static_cast<double>(gr[i]);
          column_gx[i] += gi * (static_cast<double>(xr[i]) - mean) * rstd;
          column_g[i] += gi;
        }
      }
      if (!per_inner) {
        if (a.grad_weight != nullptr) static_cast<T*>(a.grad_weight)[c] = static_cast<T>(sum_gx);
        if (a.grad_bias != nullptr) static_cast<T*>(a.grad_bias)[c] = static_cast<T>(sum_g);
      }
      if (grad_x == nullptr) continue;
      const double wc = per_inner ? 1.0 : norm_affine(weight, a.affine, c, 0, 1.0);
      const double sum_gw = sum_g * wc, sum_gwx = sum_gx * wc;
      for (int64_t o = 0; o < a.outer; ++o) {
        const int64_t at = norm_index(a.groups, a.inner, o, c, 0);
        if (inner_weight != nullptr) {
          for (int64_t i = 0; i < a.inner; ++i) {
            grad_x[at + i] =
                norm_grad_x(g[at + i], x[at + i], mean, rstd, static_cast<double>(inner_weight[i]), sum_gw, sum_gwx, n);
          }
        } else {
          for (int64_t i = 0; i < a.inner; ++i) {
            grad_x[at + i] = norm_grad_x(g[at + i], x[at + i], mean, rstd, wc, sum_gw, sum_gwx, n);
          }
        }
      }
    }
  });
  if (!columns) return;
  // The threads' column sums, added in thread order (the result depends on the thread count only).
  for (int64_t i = 0; i < a.inner; ++i) {
    double gx = 0, g_sum = 0;
    for (int t = 0; t < threads; ++t) {
      gx += partial.get()[2 * a.inner * t + i];
      g_sum += partial.get()[2 * a.inner * t + a.inner + i];
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
