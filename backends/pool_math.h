// 2-d pooling's arithmetic, written once: one output element of the forward pass and one input pixel's gradient
// (backends/args.h, Pool2dArgs and Pool2dBackwardArgs, says what each computes). The GPU's kernels
// (backends/cuda/pool.cu) run these per element; the CPU's (backends/cpu/pool.cpp) run pool_output at the border
// and loops that reproduce it and the gather elsewhere, so both backends give the same bits.
#pragma once

#include <cstdint>

#include "backends/args.h"
#include "backends/host_device.h"

namespace atelier {

// The geometry of pooling (planes, h, w) with kh x kw windows at strides (sh, sw), padded by (ph, pw): h_out and
// w_out computed (the sizes are not checked here: check_pool_geometry does that).
inline Pool2dGeometry make_pool_geometry(int64_t planes, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                                         int64_t sw, int64_t ph, int64_t pw) {
  return Pool2dGeometry{planes, h, w, kh, kw, sh, sw, ph, pw, (h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1};
}

ATELIER_HOST_DEVICE inline int64_t pool_min(int64_t a, int64_t b) { return a < b ? a : b; }
ATELIER_HOST_DEVICE inline int64_t pool_max(int64_t a, int64_t b) { return a > b ? a : b; }

// Output (a, b) of one plane: its value, and for Max the position of the maximum in the plane (*index).
template <typename T>
ATELIER_HOST_DEVICE inline T pool_output(const T* plane, const Pool2dGeometry& g, PoolMode mode, int64_t a, int64_t b,
                                         int64_t* index) {
  // The window's real pixels: rows [r0, r1), columns [q0, q1) (the padding is never read).
  const int64_t top = a * g.stride_h - g.pad_h, left = b * g.stride_w - g.pad_w;
  const int64_t r0 = pool_max(top, 0), r1 = pool_min(top + g.kh, g.h);
  const int64_t q0 = pool_max(left, 0), q1 = pool_min(left + g.kw, g.w);
  if (mode == PoolMode::Average) {
    T sum = 0;
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t q = q0; q < q1; ++q) sum += plane[r * g.w + q];
    }
    return sum / static_cast<T>(g.kh * g.kw);
  }
  T best = plane[r0 * g.w + q0];
  int64_t at = r0 * g.w + q0;
  for (int64_t r = r0; r < r1 && best == best; ++r) {  // stops at the first NaN: it is the maximum
    for (int64_t q = q0; q < q1; ++q) {
      const T v = plane[r * g.w + q];
      if (v > best || v != v) {
        best = v;
        at = r * g.w + q;
        if (v != v) break;
      }
    }
  }
  *index = at;
  return best;
}

// The output rows whose windows hold input row r, [*lo, *hi] (empty when *lo > *hi): the windows whose top
// a stride - pad lies in (r - k, r]. The same for columns, with the width's sizes.
ATELIER_HOST_DEVICE inline void pool_windows_holding(int64_t r, int64_t k, int64_t stride, int64_t pad, int64_t out,
                                                     int64_t* lo, int64_t* hi) {
  const int64_t from = r + pad - k + 1;  // may be negative
  *lo = from <= 0 ? 0 : (from + stride - 1) / stride;
  *hi = pool_min((r + pad) / stride, out - 1);
}

// The gradient of one pixel (at `pixel` = y * w + x in its plane) held by the windows of output rows [a0, a1] and
// columns [b0, b1], from its plane of grad_output (and for Max, of indices), summed in row-major window order.
template <typename T>
ATELIER_HOST_DEVICE inline T pool_gather(const T* grad_plane, const int64_t* index_plane, const Pool2dGeometry& g,
                                         PoolMode mode, int64_t pixel, int64_t a0, int64_t a1, int64_t b0, int64_t b1) {
  const T count = static_cast<T>(g.kh * g.kw);
  T sum = 0;
  for (int64_t a = a0; a <= a1; ++a) {
    for (int64_t b = b0; b <= b1; ++b) {
      const int64_t o = a * g.w_out + b;
      if (mode == PoolMode::Average) {
        sum += grad_plane[o] / count;
      } else if (index_plane[o] == pixel) {
        sum += grad_plane[o];
      }
    }
  }
  return sum;
}

}  // namespace atelier
