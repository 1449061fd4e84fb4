// Normalisation's per-element arithmetic, written once for the CPU's and the GPU's normalize kernels
// (backends/cpu/norm.cpp, backends/cuda/norm.cu; backends/args.h, NormArgs and NormBackwardArgs, says what they
// compute). The group sums around it are each backend's own (lanes on the CPU, a block's fold on the GPU), so the
// two agree to rounding, not bit for bit.
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

// The weight (or bias) of group c, element i: `fallback` (1 or 0) when the tensor is null.
template <typename T>
ATELIER_HOST_DEVICE inline double norm_affine(const T* values, NormAffine affine, int64_t c, int64_t i,
                                              double fallback) {
  if (values == nullptr) return fallback;
  return static_cast<double>(values[affine == NormAffine::PerGroup ? c : i]);
}

// y for one element: (x - mean) rstd w + b in double, rounded once.
template <typename T>
ATELIER_HOST_DEVICE inline T norm_output(T x, double mean, double rstd, double w, double b) {
  return static_cast<T>((static_cast<double>(x) - mean) * rstd * w + b);
}

// grad_x for one element from the group's sums sum_gw = sum(g w) and sum_gwx = sum(g w xhat) over n elements.
template <typename T>
ATELIER_HOST_DEVICE inline T norm_grad_x(T g, T x, double mean, double rstd, double w, double sum_gw, double sum_gwx,
                                         double n) {
  const double xhat = (static_cast<double>(x) - mean) * rstd;
  return static_cast<T>(rstd * (static_cast<double>(g) * w - sum_gw / n - xhat * sum_gwx / n));
}

}  // namespace atelier
