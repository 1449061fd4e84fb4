// The transforms of Winograd's F(m x m, 3x3), m = 2 or 4 (Lavin & Gray, 2016), shared by the CPU's Winograd
// convolutions (backends/cpu/winograd.cpp, which says how the passes use them) and the GPU's
// (backends/cuda/winograd.cu): one definition of the arithmetic, so the two backends transform alike.
#pragma once

#include "backends/error.h"
#include "backends/host_device.h"

namespace atelier {

// The 1-D transforms of F(m x m, 3x3) over one line of values, `in` read `is` apart and `out` written `os` apart.
// V is T (the CUDA kernels, one tile per thread) or a vector of T (the CPU's: one Eigen array of channels). Each 2-D
// transform applies its 1-D form to the rows, then to the columns (apply_2d).
template <typename T, int M>
struct Transforms;

template <typename T>
struct Transforms<T, 2> {
  // B^T d: 4 -> 4.
  template <class V>
  ATELIER_HOST_DEVICE static void input(const V* d, int is, V* o, int os) {
    o[0] = d[0] - d[2 * is];
    o[os] = d[is] + d[2 * is];
    o[2 * os] = d[2 * is] - d[is];
    o[3 * os] = d[is] - d[3 * is];
  }
  // A^T m: 4 -> 2.
  template <class V>
  ATELIER_HOST_DEVICE static void output(const V* m, int is, V* y, int os) {
    y[0] = m[0] + m[is] + m[2 * is];
    y[os] = m[is] - m[2 * is] - m[3 * is];
  }
  // G g: 3 -> 4.
  template <class V>
  ATELIER_HOST_DEVICE static void filter(const V* g, int is, V* u, int os) {
    u[0] = g[0];
    u[os] = (g[0] + g[is] + g[2 * is]) * T(0.5);
    u[2 * os] = (g[0] - g[is] + g[2 * is]) * T(0.5);
    u[3 * os] = g[2 * is];
  }
  // The adjoint of output, A y: 2 -> 4.
  template <class V>
  ATELIER_HOST_DEVICE static void output_adjoint(const V* y, int is, V* m, int os) {
    m[0] = y[0];
    m[os] = y[0] + y[is];
    m[2 * os] = y[0] - y[is];
    m[3 * os] = -y[is];
  }
  // The adjoint of filter, G^T u: 4 -> 3.
  template <class V>
  ATELIER_HOST_DEVICE static void filter_adjoint(const V* u, int is, V* g, int os) {
    g[0] = u[0] + (u[is] + u[2 * is]) * T(0.5);
    g[os] = (u[is] - u[2 * is]) * T(0.5);
    g[2 * os] = (u[is] + u[2 * is]) * T(0.5) + u[3 * is];
  }
};

template <typename T>
struct Transforms<T, 4> {
  // B^T d: 6 -> 6.
  template <class V>
  ATELIER_HOST_DEVICE static void input(const V* d, int is, V* o, int os) {
    const V &d0 = d[0], &d1 = d[is], &d2 = d[2 * is], &d3 = d[3 * is], &d4 = d[4 * is], &d5 = d[5 * is];
    o[0] = T(4) * d0 - T(5) * d2 + d4;
    o[os] = d3 + d4 - T(4) * (d1 + d2);
    o[2 * os] = T(4) * (d1 - d2) + d4 - d3;
    o[3 * os] = T(2) * (d3 - d1) + d4 - d2;
    o[4 * os] = T(2) * (d1 - d3) + d4 - d2;
    o[5 * os] = T(4) * d1 - T(5) * d3 + d5;
  }
  // A^T m: 6 -> 4.
  template <class V>
  ATELIER_HOST_DEVICE static void output(const V* m, int is, V* y, int os) {
    const V &m0 = m[0], &m1 = m[is], &m2 = m[2 * is], &m3 = m[3 * is], &m4 = m[4 * is], &m5 = m[5 * is];
    y[0] = m0 + m1 + m2 + m3 + m4;
    y[os] = m1 - m2 + T(2) * (m3 - m4);
    y[2 * os] = m1 + m2 + T(4) * (m3 + m4);
    y[3 * os] = m1 - m2 + T(8) * (m3 - m4) + m5;
  }
  // G g: 3 -> 6.
  // Reciprocals: a multiplication instead of a division (the filter transforms run over every channel pair).
  static constexpr T k4 = T(1) / T(4), k6 = T(1) / T(6), k12 = T(1) / T(12), k24 = T(1) / T(24);
  template <class V>
  ATELIER_HOST_DEVICE static void filter(const V* g, int is, V* u, int os) {
    const V &g0 = g[0], &g1 = g[is], &g2 = g[2 * is];
    u[0] = g0 * k4;
    u[os] = (g0 + g1 + g2) * -k6;
    u[2 * os] = (g0 - g1 + g2) * -k6;
    u[3 * os] = g0 * k24 + g1 * k12 + g2 * k6;
    u[4 * os] = g0 * k24 - g1 * k12 + g2 * k6;
    u[5 * os] = g2;
  }
  // The adjoint of output, A y: 4 -> 6.
  template <class V>
  ATELIER_HOST_DEVICE static void output_adjoint(const V* y, int is, V* m, int os) {
    const V &y0 = y[0], &y1 = y[is], &y2 = y[2 * is], &y3 = y[3 * is];
    m[0] = y0;
    m[os] = y0 + y1 + y2 + y3;
    m[2 * os] = y0 - y1 + y2 - y3;
    m[3 * os] = y0 + T(2) * y1 + T(4) * y2 + T(8) * y3;
    m[4 * os] = y0 - T(2) * y1 + T(4) * y2 - T(8) * y3;
    m[5 * os] = y3;
  }
  // The adjoint of filter, G^T u: 6 -> 3.
  template <class V>
  ATELIER_HOST_DEVICE static void filter_adjoint(const V* u, int is, V* g, int os) {
    const V &u0 = u[0], &u1 = u[is], &u2 = u[2 * is], &u3 = u[3 * is], &u4 = u[4 * is], &u5 = u[5 * is];
    g[0] = u0 * k4 - (u1 + u2) * k6 + (u3 + u4) * k24;
    g[os] = (u2 - u1) * k6 + (u3 - u4) * k12;
    g[2 * os] = (u3 + u4 - u1 - u2) * k6 + u5;
  }
};

// out (R2 x R2, row-major) = L in L^T for the 1-D transform f: R1 -> R2 (L is R2 x R1), in R1 x R1 row-major:
// f along every row, then along every column.
template <int R1, int R2, class V, class F>
ATELIER_HOST_DEVICE void apply_2d(const V* in, V* out, F f) {
  V rows[R1 * R2];  // (R1, R2): row y of `in` transformed
  for (int y = 0; y < R1; ++y) f(in + y * R1, 1, rows + y * R2, 1);
  for (int x = 0; x < R2; ++x) f(rows + x, R2, out + x, R2);
}

// fn.template operator()<M>() for the tile size m = 2 or 4 (a run-time choice to a compile-time M).
template <class F>
void with_winograd_tile(int m, F&& fn) {
  ATELIER_ASSERT(m == 2 || m == 4, "winograd: tile size " << m << " (2 or 4)");
  if (m == 2) {
    fn.template operator()<2>();
  } else {
    fn.template operator()<4>();
  }
}

}  // namespace atelier
