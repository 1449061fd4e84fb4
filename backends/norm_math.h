// Normalisation's per-element arithmetic, written once for the CPU's and the GPU's normalize kernels
// (backends/cpu/norm.cpp, backends/cuda/norm.cu; backends/args.h, NormArgs and NormBackwardArgs, says what they
// compute). Each function is generic over its arithmetic type A: the GPU runs it in double, one element per
// thread; the CPU in the tensor's own type, a vector register of elements at a time (backends/cpu/simd.h), with the
// group's constants broadcast. The group sums around it are each backend's own (lanes on the CPU, a block's fold on
// the GPU), so the two agree to rounding, not bit for bit.
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/args.h"
#include "backends/error.h"
#include "backends/host_device.h"

namespace atelier {

inline void check_norm_sizes(const char* what, int64_t outer, int64_t groups, int64_t inner) {
  ATELIER_CHECK(outer >= 1 && groups >= 0 && inner >= 1,
                what << ": invalid sizes (outer " << outer << ", groups " << groups << ", inner " << inner << ")");
}

// The element x[o][c][i] of the (outer, groups, inner) view.
ATELIER_HOST_DEVICE inline int64_t norm_index(int64_t groups, int64_t inner, int64_t o, int64_t c, int64_t i) {
  return (o * groups + c) * inner + i;
}

// Which weight and bias element goes with element i of group c's runs (backends/args.h, NormAffine).
struct NormAffineMap {
  NormAffine affine;
  int64_t inner;
  NormChannels channels;
  ATELIER_HOST_DEVICE int64_t index(int64_t c, int64_t i) const {
    if (affine == NormAffine::PerGroup) return c;
    if (affine == NormAffine::PerInner) return i;
    const int64_t per_run = inner / channels.size;  // PerChannel
    return (c % (channels.count / per_run)) * per_run + i / channels.size;
  }
};

// The weight (or bias) of group c, element i: `fallback` (1 or 0) when the tensor is null.
template <typename T>
ATELIER_HOST_DEVICE inline double norm_affine(const T* values, const NormAffineMap& map, int64_t c, int64_t i,
                                              double fallback) {
  if (values == nullptr) return fallback;
  return static_cast<double>(values[map.index(c, i)]);
}

// The affine's length: groups (PerGroup), inner (PerInner) or channels.count (PerChannel).
inline int64_t norm_affine_size(NormAffine affine, int64_t groups, int64_t inner, NormChannels channels) {
  return affine == NormAffine::PerGroup ? groups : affine == NormAffine::PerInner ? inner : channels.count;
}

// Throws unless a PerChannel affine's channels tile the view: whole channels per run, whole runs per cycle.
inline void check_norm_channels(const char* what, NormAffine affine, int64_t groups, int64_t inner,
                                NormChannels channels) {
  if (affine != NormAffine::PerChannel) return;
  const bool tiles = channels.size >= 1 && inner % channels.size == 0 && channels.count >= inner / channels.size &&
                     channels.count % (inner / channels.size) == 0 &&
                     (groups == 0 || groups % (channels.count / (inner / channels.size)) == 0);
  ATELIER_CHECK(tiles, what << ": " << channels.count << " channels of " << channels.size
                            << " elements do not tile runs of " << inner << " in " << groups << " groups");
}

// A group's variance from its two-pass sums over its n elements about `centre` (the mean as rounded to the
// arithmetic type): sum_d = sum (x - centre) and sum_dd = sum (x - centre)^2. Subtracting (sum_d / n)^2 makes the
// result the variance about the exact mean, whatever the rounding of the centre (and sum_d is 0 when there was
// none); never negative.
ATELIER_HOST_DEVICE inline double norm_variance(double sum_d, double sum_dd, double n) {
  const double shift = sum_d / n, var = sum_dd / n - shift * shift;
  return var > 0 ? var : 0;
}

// y for one element: (x - mean - mean_low) (rstd w) + b, the group's mean in two parts: the CPU's rounded to its
// arithmetic type and the rest (x - mean is exact for x near the mean, so y keeps the precision of the type where
// the mean is far from 0); the GPU's in double, mean_low 0.
template <typename A>
ATELIER_HOST_DEVICE inline A norm_output(A x, A mean, A mean_low, A rstd, A w, A b) {
  return ((x - mean) - mean_low) * (rstd * w) + b;
}

// The two constants of a group's input gradient (norm_grad_x), from its sums sum_gw = sum(g w) and
// sum_gwx = sum(g w xhat) over its n elements: rstd (g w - sum_gw / n - xhat sum_gwx / n) is
// g w rstd + shift + (x - mean) slope.
struct NormGradTerms {
  double shift, slope;
};
ATELIER_HOST_DEVICE inline NormGradTerms norm_grad_terms(double rstd, double sum_gw, double sum_gwx, double n) {
  return {-rstd * sum_gw / n, -rstd * rstd * sum_gwx / n};
}

// grad_x for one element, w its weight (1 when there is none) and shift and slope its group's norm_grad_terms.
template <typename A>
ATELIER_HOST_DEVICE inline A norm_grad_x(A g, A x, A mean, A rstd, A w, A shift, A slope) {
  return g * (w * rstd) + (shift + (x - mean) * slope);
}

}  // namespace atelier
