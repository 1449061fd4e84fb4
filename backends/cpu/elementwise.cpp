// Elementwise maps on the CPU: unary, binary (with broadcasting), compare, where and the activations' gradients
// from their outputs.
//
// The output is always contiguous with the shared sizes; inputs are strided (stride 0 = broadcast). Each op is
// a small lambda inlined into map1/map2/map3, whose inner loops special-case the common runs (all inputs
// contiguous; one input a broadcast scalar) so the compiler can vectorise them.
#include <algorithm>
#include <bit>
#include <cmath>
#include <string>
#include <type_traits>

#include <immintrin.h>

#include "backends/convert.h"
#include "backends/cpu/eigen.h"
#pragma GCC diagnostic push  // as backends/cpu/eigen.h includes Eigen
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <unsupported/Eigen/SpecialFunctions>  // Eigen's erf: vectorised for float (GELU)
#pragma GCC diagnostic pop
#include "backends/cpu/kernels.h"
#include "backends/cpu/simd.h"
#include "backends/cpu/strided.h"
#include "backends/error.h"

namespace atelier::cpu {
namespace {

// dst (contiguous, shape) = f(a). Unit-stride runs go to unit_run(x, d, count), strided ones to f per element.
template <typename D, typename A, typename UnitRun, typename F>
void map1_runs(const Layout& shape, D* dst, const A* a, UnitRun unit_run, F f) {
  const Layout ld = contiguous_like(shape);
  const Layout* layouts[2] = {&ld, &shape};
  const auto plan = make_plan<2>(shape, layouts);
  parallel_elements(plan.numel, [&](int64_t begin, int64_t end) {
    for_each_run(plan, begin, end, [&](const int64_t* off, const int64_t* st, int64_t count) {
      D* d = dst + off[0];
      const A* x = a + off[1];
      if (st[1] == 1) {
        unit_run(x, d, count);
      } else {
        for (int64_t i = 0; i < count; ++i) d[i] = f(x[i * st[1]]);
      }
    });
  });
}

// The unit-stride loops below are left for the compiler to vectorise, and call a local copy of f: f is reached
// through a reference, so a scalar it captured (ELU's alpha, clamp's bounds) might alias d as far as the compiler
// knows; it then reloads the scalar after every store and keeps the loop scalar (measured: the ELU gradient ran
// at 2 GB/s, 10x slower than copy). A local whose address never escapes cannot alias d.

// dst (contiguous, shape) = f(a).
template <typename D, typename A, typename F>
void map1(const Layout& shape, D* dst, const A* a, F f) {
  map1_runs(
      shape, dst, a,
      [&f](const A* x, D* d, int64_t count) {
        const F local = f;
        for (int64_t i = 0; i < count; ++i) d[i] = local(x[i]);
      },
      f);
}

// dst (contiguous, shape) = f(a), f a generic lambda of T or of Simd<T>::V: unit-stride runs a register at a
// time (the tail one element at a time). For maps with a branch, written as a blend of both arms (v > 0 ? v : v *
// slope): GCC vectorises such a plain loop only with AVX-512, and with AVX2 keeps a branch per element.
template <typename T, typename F>
void map1_lanes(const Layout& shape, T* dst, const T* a, F f) {
  constexpr int64_t kLanes = Simd<T>::kLanes;
  map1_runs(
      shape, dst, a,
      [f](const T* x, T* d, int64_t count) {
        int64_t i = 0;
        for (; i + kLanes <= count; i += kLanes) store_vector(d + i, f(load_vector(x + i)));
        for (; i < count; ++i) d[i] = f(x[i]);
      },
      [f](T v) { return f(v); });
}

// dst (contiguous, la.sizes) = f(a, b). Runs where both inputs have unit stride go to unit_run(x, y, d, count).
template <typename D, typename A, typename B, typename UnitRun, typename F>
void map2_runs(const Layout& la, const A* a, const Layout& lb, const B* b, D* dst, UnitRun unit_run, F f) {
  const Layout ld = contiguous_like(la);
  const Layout* layouts[3] = {&ld, &la, &lb};
  const auto plan = make_plan<3>(la, layouts);
  parallel_elements(plan.numel, [&](int64_t begin, int64_t end) {
    for_each_run(plan, begin, end, [&](const int64_t* off, const int64_t* st, int64_t count) {
      D* d = dst + off[0];
      const A* x = a + off[1];
      const B* y = b + off[2];
      const F local = f;
      if (st[1] == 1 && st[2] == 1) {
        unit_run(x, y, d, count);
      } else if (st[1] == 1 && st[2] == 0) {
        const B yv = *y;
        for (int64_t i = 0; i < count; ++i) d[i] = local(x[i], yv);
      } else if (st[1] == 0 && st[2] == 1) {
        const A xv = *x;
        for (int64_t i = 0; i < count; ++i) d[i] = local(xv, y[i]);
      } else {
        for (int64_t i = 0; i < count; ++i) d[i] = f(x[i * st[1]], y[i * st[2]]);
      }
    });
  });
}

// dst (contiguous, la.sizes) = f(a, b)
template <typename D, typename A, typename B, typename F>
void map2(const Layout& la, const A* a, const Layout& lb, const B* b, D* dst, F f) {
  map2_runs(
      la, a, lb, b, dst,
      [&f](const A* x, const B* y, D* d, int64_t count) {
        const F local = f;
        for (int64_t i = 0; i < count; ++i) d[i] = local(x[i], y[i]);
      },
      f);
}

// Whether map3 is a select that its unit runs take a register at a time: a bool condition choosing between
// operands of D's own floating type (where's f is c ? a : b, the only map3 there is).
template <typename D, typename C, typename A, typename B>
inline constexpr bool kVectorSelect =
    std::is_same_v<C, bool>&& std::is_floating_point_v<D>&& std::is_same_v<A, D>&& std::is_same_v<B, D>;

// dst (contiguous, lc.sizes) = f(c, a, b); f must be c ? a : b where kVectorSelect holds (its unit runs blend).
template <typename D, typename C, typename A, typename B, typename F>
void map3(const Layout& lc, const C* c, const Layout& la, const A* a, const Layout& lb, const B* b, D* dst, F f) {
  const Layout ld = contiguous_like(lc);
  const Layout* layouts[4] = {&ld, &lc, &la, &lb};
  const auto plan = make_plan<4>(lc, layouts);
  parallel_elements(plan.numel, [&](int64_t begin, int64_t end) {
    for_each_run(plan, begin, end, [&](const int64_t* off, const int64_t* st, int64_t count) {
      D* d = dst + off[0];
      const C* x = c + off[1];
      const A* y = a + off[2];
      const B* z = b + off[3];
      const F local = f;
      // A unit-stride condition with operands that are runs or single values (a broadcast row, a scalar: amax's
      // gradient spreads each row's share with where(ties, share, share * 0)) in loops the compiler vectorises;
      // the general loop multiplies zero strides and is not (where over 1M floats: 0.53 ms there, 0.34 here).
      const auto run = [&]<bool YUnit, bool ZUnit>() {
        const A yv = *y;
        const B zv = *z;
        int64_t i = 0;
        if constexpr (kVectorSelect<D, C, A, B>) {
          // GCC kept the plain c ? a : b scalar, with a branch per element: where over 1M floats of a random
          // condition (maximum's gradient) took 2.4 ms, mispredicting about every other element. With AVX-512 a
          // register's condition bytes become a mask in one instruction and the operands are blended by it; else
          // the operands' bits are blended by a mask of all ones or zeros made from each byte, which GCC vectorises
          // when an operand is a run (a vector-extension version made GCC build the widened condition lane by lane,
          // slower than the branches where they are predictable).
#if defined(__AVX512BW__) && defined(__AVX512VL__)
          if constexpr (std::is_same_v<D, float>) {
            const __m512 ys = _mm512_set1_ps(yv), zs = _mm512_set1_ps(zv);
            for (; i + 16 <= count; i += 16) {
              const __m128i c16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
              const __m512 yi = YUnit ? _mm512_loadu_ps(y + i) : ys, zi = ZUnit ? _mm512_loadu_ps(z + i) : zs;
              _mm512_storeu_ps(d + i, _mm512_mask_blend_ps(_mm_test_epi8_mask(c16, c16), zi, yi));
            }
          } else {
            const __m512d ys = _mm512_set1_pd(yv), zs = _mm512_set1_pd(zv);
            for (; i + 8 <= count; i += 8) {
              const __m128i c8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + i));
              const __m512d yi = YUnit ? _mm512_loadu_pd(y + i) : ys, zi = ZUnit ? _mm512_loadu_pd(z + i) : zs;
              const auto k = static_cast<__mmask8>(_mm_test_epi8_mask(c8, c8));
              _mm512_storeu_pd(d + i, _mm512_mask_blend_pd(k, zi, yi));
            }
          }
#else
          using Bits = std::conditional_t<sizeof(D) == 4, uint32_t, uint64_t>;
          const Bits yb = std::bit_cast<Bits>(yv), zb = std::bit_cast<Bits>(zv);
          for (; i < count; ++i) {
            const Bits mask = Bits{0} - static_cast<Bits>(x[i]);  // a bool is 0 or 1
            const Bits a_bits = YUnit ? std::bit_cast<Bits>(y[i]) : yb, b_bits = ZUnit ? std::bit_cast<Bits>(z[i]) : zb;
            d[i] = std::bit_cast<D>((a_bits & mask) | (b_bits & ~mask));
          }
#endif
        }
        for (; i < count; ++i) d[i] = local(x[i], YUnit ? y[i] : yv, ZUnit ? z[i] : zv);
      };
      const bool y_unit = st[2] == 1, z_unit = st[3] == 1;
      if (st[1] == 1 && (y_unit || st[2] == 0) && (z_unit || st[3] == 0)) {
        if (y_unit) {
          z_unit ? run.template operator()<true, true>() : run.template operator()<true, false>();
        } else {
          z_unit ? run.template operator()<false, true>() : run.template operator()<false, false>();
        }
      } else {
        for (int64_t i = 0; i < count; ++i) d[i] = f(x[i * st[1]], y[i * st[2]], z[i * st[3]]);
      }
    });
  });
}

#if defined(__AVX512F__)
// The natural log of 16 floats, within 1 ulp (a double log of every 97th float from the smallest denormal to
// the largest finite one, 22 M values: at most 0.995 ulp). It replaced Eigen's vectorised log for float32 with
// AVX-512: Eigen's took 3x as long (0.93 ms for 1M floats against 0.31) and erred by up to 10^6 ulp on denormals.
// x = m 2^e with m in [sqrt(1/2), sqrt(2)) (getmant and getexp take denormals exactly); log(m) = log(1 + f) =
// 2 atanh(s) = f - s (f - R) for s = f / (2 + f), R = 2 s^2/3 + 2 s^4/5 + 2 s^6/7 + 2 s^8/9 (|s| <= 0.1716: the
// next term is below 2^-28 of the result); e ln 2 in two parts, the high one's products exact. 0 and -0 give -inf,
// a negative x NaN (getmant's sign rule), inf inf, NaN NaN.
inline __m512 log_16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  // The masked forms with every lane set: the plain ones start from _mm512_undefined_ps, which GCC 12 reports as
  // maybe uninitialised.
  __m512 m = _mm512_mask_getmant_ps(x, 0xffff, x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_nan);  // [1, 2)
  __m512 e = _mm512_mask_getexp_ps(x, 0xffff, x);
  const __mmask16 high = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GE_OQ);
  m = _mm512_mask_mul_ps(m, high, m, _mm512_set1_ps(0.5f));
  e = _mm512_mask_add_ps(e, high, e, one);
  const __m512 f = _mm512_sub_ps(m, one);
  const __m512 s = _mm512_div_ps(f, _mm512_add_ps(f, _mm512_set1_ps(2.0f)));
  const __m512 z = _mm512_mul_ps(s, s);
  __m512 r = _mm512_fmadd_ps(_mm512_set1_ps(2.0f / 9), z, _mm512_set1_ps(2.0f / 7));
  r = _mm512_fmadd_ps(r, z, _mm512_set1_ps(2.0f / 5));
  r = _mm512_mul_ps(_mm512_fmadd_ps(r, z, _mm512_set1_ps(2.0f / 3)), z);
  const __m512 ln2_high = _mm512_set1_ps(0.693145751953125f), ln2_low = _mm512_set1_ps(1.428606820309417e-06f);
  const __m512 low = _mm512_fmsub_ps(e, ln2_low, _mm512_mul_ps(s, _mm512_sub_ps(f, r)));  // e ln2_low - s (f - R)
  const __m512 y = _mm512_fmadd_ps(e, ln2_high, _mm512_add_ps(f, low));
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_EQ_OQ), _mm512_set1_ps(-INFINITY));
}

// d[i] = log(x[i]) for i < n, every element by log_16 (the last few under a mask), so an element's result does
// not depend on where a run starts or ends.
void log_floats(const float* x, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, log_16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const auto rest = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(d + i, rest, log_16(_mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), rest, x + i)));
  }
}

// d[i] = softplus(x[i]) for i < n (UnaryOp::Softplus with beta, threshold), 16 floats at a time in one pass: the
// formula of the Eigen version below, max(b, 0) + log(u) + (e - (u - 1)) / u with b = beta x, e = exp(-|b|) (Eigen's
// pexp, the function its .exp() calls) and u = 1 + e, log(u) by log_16, then divided by beta unless it is 1, and x
// itself where b > threshold, by a mask. The last term (what the rounding of 1 + e lost) is divided by u through a
// reciprocal (rcp14 and a Newton step), not a divide.
void softplus_floats(const float* x, float* d, int64_t n, float beta, float threshold) {
  const __m512 vbeta = _mm512_set1_ps(beta), vthreshold = _mm512_set1_ps(threshold), one = _mm512_set1_ps(1.0f);
  const __m512 zero = _mm512_setzero_ps();
  const bool unit = beta == 1.0f;
  const auto one_register = [&](__m512 v) {
    const __m512 b = unit ? v : _mm512_mul_ps(v, vbeta);
    const __m512 minus_abs =  // -|b|: the sign bit set (an integer or: _mm512_or_ps needs AVX512DQ)
        _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(b), _mm512_set1_epi32(INT32_MIN)));
    const __m512 e = Eigen::internal::pexp(minus_abs);
    const __m512 u = _mm512_add_ps(one, e);
    const __m512 lost = _mm512_sub_ps(e, _mm512_sub_ps(u, one));
    // 1 / u: rcp14 (within 2^-14) and one Newton step (within ~2^-28). Where u rounds to 1 the term is the whole
    // result (softplus(-40) = 4e-18), so rcp14 alone would cost its 2^-14 there.
    const __m512 r0 = _mm512_mask_rcp14_ps(u, 0xffff, u);
    const __m512 r = _mm512_fmadd_ps(r0, _mm512_fnmadd_ps(u, r0, one), r0);
    __m512 y = _mm512_add_ps(_mm512_add_ps(_mm512_mask_max_ps(b, 0xffff, b, zero), log_16(u)), _mm512_mul_ps(lost, r));
    if (!unit) y = _mm512_div_ps(y, vbeta);
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(b, vthreshold, _CMP_GT_OQ), v);  // NaN: false, y is NaN
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, one_register(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const auto rest = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(d + i, rest, one_register(_mm512_maskz_loadu_ps(rest, x + i)));
  }
}
#endif

// Like map1, but unit-stride runs go through an Eigen array expression `vec(in, out)`: Eigen's exp, log and tanh
// are vectorised (AVX-512: 16 floats at a time), where the scalar libm calls cost ~9 ns per element. Measured on
// ELU over 16x64x64x64 float32, 2 threads (bench_ops elu/...): 18.8 ms with std::expm1, 0.3 ms this way.
template <typename T, typename Vec, typename F>
void map1_array(const Layout& shape, T* dst, const T* a, Vec vec, F f) {
  using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
  using ConstArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  map1_runs(
      shape, dst, a,
      [&vec](const T* x, T* d, int64_t count) {
        ArrayMap out(d, count);
        vec(ConstArrayMap(x, count), out);
      },
      f);
}

template <typename T>
void unary_typed(const UnaryArgs& args) {
  const T* x = static_cast<const T*>(args.src_data);
  T* dst = static_cast<T*>(args.dst_data);
  const Layout& s = args.src;
  const T p0 = static_cast<T>(args.p0), p1 = static_cast<T>(args.p1);
  switch (args.op) {
    case UnaryOp::Neg: return map1(s, dst, x, [](T v) { return -v; });
    case UnaryOp::Exp:
      return map1_array(
          s, dst, x, [](const auto& in, auto& out) { out = in.exp(); }, [](T v) { return std::exp(v); });
    case UnaryOp::Log:
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        return map1_runs(s, dst, x, log_floats, [](float v) {
          float y;
          log_floats(&v, &y, 1);
          return y;
        });
      }
#endif
      return map1_array(
          s, dst, x, [](const auto& in, auto& out) { out = in.log(); }, [](T v) { return std::log(v); });
    case UnaryOp::Abs: return map1(s, dst, x, [](T v) { return std::abs(v); });
    case UnaryOp::Sign:
      // NaN stays NaN (v != v falls through every comparison).
      return map1(s, dst, x, [](T v) { return v > T(0) ? T(1) : v < T(0) ? T(-1) : v == T(0) ? T(0) : v; });
    case UnaryOp::Sqrt: return map1(s, dst, x, [](T v) { return std::sqrt(v); });
    case UnaryOp::Tanh:
      return map1_array(
          s, dst, x, [](const auto& in, auto& out) { out = in.tanh(); }, [](T v) { return std::tanh(v); });
    case UnaryOp::Sigmoid:
      // 1 / (1 + e^-v): e^-v past the dtype's range is inf (or Eigen's largest finite value), which gives 0, never
      // NaN. Vectorised as exp is (map1_array): with libm's scalar exp and a branch on the sign per element,
      // sigmoid forward and backward over 1M floats took 7.6x PyTorch's time.
      return map1_array(
          s, dst, x, [](const auto& in, auto& out) { out = (T(1) + (-in).exp()).inverse(); },
          [](T v) { return T(1) / (T(1) + std::exp(-v)); });
    case UnaryOp::Relu: return map1(s, dst, x, [](T v) { return v < T(0) ? T(0) : v; });
    case UnaryOp::Elu:
      // Vectorised by elu_array (backends/cpu/eigen.h); strided elements one at a time.
      return map1_array(
          s, dst, x, [p0](const auto& in, auto& out) { out = elu_array(in, p0); },
          [p0](T v) { return v > T(0) ? v : p0 * std::expm1(v); });
    case UnaryOp::Pow:
      // The exponents whose result one correctly rounded operation gives, as pow's does (x^2, and x^1 in x^2's
      // gradient): libm's pow costs ~20 ns an element (x^2 forward and backward: 8.8x PyTorch's time).
      if (p0 == T(2)) return map1(s, dst, x, [](T v) { return v * v; });
      if (p0 == T(1)) return map1(s, dst, x, [](T v) { return v; });
      if (p0 == T(-1)) return map1(s, dst, x, [](T v) { return T(1) / v; });
      return map1(s, dst, x, [p0](T v) { return std::pow(v, p0); });
    case UnaryOp::Clamp: return map1(s, dst, x, [p0, p1](T v) { return std::min(std::max(v, p0), p1); });
    case UnaryOp::Softplus:
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        return map1_runs(
            s, dst, x, [p0, p1](const float* in, float* out, int64_t n) { softplus_floats(in, out, n, p0, p1); },
            [p0, p1](float v) {
              float y;
              softplus_floats(&v, &y, 1, p0, p1);
              return y;
            });
      }
#endif
      // (max(b, 0) + log1p(exp(-|b|))) / beta, b = beta v: exp of a non-positive number only. Vectorised as exp is
      // (Eigen's exp and log1p), then v itself where b passes the threshold, a second loop: Eigen 3.4 does not
      // vectorise select(), and one select in the expression made every element's exp and log1p scalar calls
      // (softplus over 1M floats, forward and backward, 12.9 ms; PyTorch 2.1). A NaN v gives NaN either way.
      return map1_array(
          s, dst, x,
          [p0, p1](const auto& in, auto& out) {
            // log1p(e) as log(u) + (e - (u - 1)) / u, u = 1 + e: u - 1 is exact, e - (u - 1) is what the rounding of
            // 1 + e lost, and the second term puts it back to first order (e itself when u rounds to 1). With Eigen's
            // log1p, softplus forward and backward over 1M floats took 3.5 ms, this way 3.1, and 2.3 -> 2.1 with
            // log_floats for float with AVX-512 (Eigen's log takes 3x as long). e and log(u) are kept a chunk at a
            // time, so exp and log run once per element.
            constexpr Eigen::Index kChunk = 256;
            Eigen::Array<T, Eigen::Dynamic, 1, Eigen::ColMajor, kChunk, 1> e, log_u;
            for (Eigen::Index at = 0; at < in.size(); at += kChunk) {
              const Eigen::Index n = std::min(kChunk, in.size() - at);
              e = (-(in.segment(at, n) * p0).abs()).exp();
              log_u = e + T(1);
#if defined(__AVX512F__)
              if constexpr (std::is_same_v<T, float>) {
                log_floats(log_u.data(), log_u.data(), n);
              } else {
                log_u = log_u.log();
              }
#else
              log_u = log_u.log();
#endif
              out.segment(at, n) =
                  ((in.segment(at, n) * p0).max(T(0)) + log_u + (e - ((e + T(1)) - T(1))) / (e + T(1))) / p0;
            }
            if (!(p1 < std::numeric_limits<T>::infinity())) return;  // no threshold (binary cross-entropy's)
            for (Eigen::Index i = 0; i < in.size(); ++i) out[i] = in[i] * p0 > p1 ? in[i] : out[i];  // a blend
          },
          [p0, p1](T v) {
            const T b = p0 * v;
            return b > p1 ? v : (std::max(b, T(0)) + std::log1p(std::exp(-std::abs(b)))) / p0;
          });
    case UnaryOp::LeakyRelu: return map1_lanes(s, dst, x, [p0]<typename S>(S v) -> S { return v > T(0) ? v : v * p0; });
    case UnaryOp::Silu:
      // x / (1 + e^-x), vectorised as sigmoid is; e^-x past the dtype's range gives -0 (or a tiny negative value
      // from Eigen's largest finite exp), never NaN, for finite x.
      return map1_array(
          s, dst, x, [](const auto& in, auto& out) { out = in / (T(1) + (-in).exp()); },
          [](T v) { return v / (T(1) + std::exp(-v)); });
    case UnaryOp::Gelu:
      // Eigen's erf is vectorised for float (a rational approximation within 3e-7 of erf) and std::erf for double.
      return map1_array(
          s, dst, x, [](const auto& in, auto& out) { out = in * T(0.5) * (T(1) + (in * T(kGeluSqrtHalf)).erf()); },
          [](T v) { return v * T(0.5) * (T(1) + std::erf(v * T(kGeluSqrtHalf))); });
    case UnaryOp::GeluTanh:
      return map1_array(
          s, dst, x,
          [](const auto& in, auto& out) {
            out = T(0.5) * in * (T(1) + (T(kGeluK) * (in + T(kGeluC) * in.cube())).tanh());
          },
          [](T v) { return T(0.5) * v * (T(1) + std::tanh(T(kGeluK) * (v + T(kGeluC) * v * v * v))); });
  }
  throw Error("cpu unary: unknown op " + std::to_string(static_cast<int>(args.op)));
}

// An operand of binary and where (either side) or compare (the second): the tensor's data, or (data == nullptr)
// the args' scalar converted into `value`, read through the zero strides of the operand's layout.
template <typename T>
const T* operand(const void* data, double scalar, T& value) {
  if (data != nullptr) return static_cast<const T*>(data);
  value = convert_element<T>(scalar);
  return &value;
}

template <typename T>
void binary_typed(const BinaryArgs& args) {
  T a_value, b_value;
  const T* a = operand(args.a_data, args.scalar, a_value);
  const T* b = operand(args.b_data, args.scalar, b_value);
  T* dst = static_cast<T*>(args.dst_data);
  const Layout &la = args.a, &lb = args.b;
  switch (args.op) {
    case BinaryOp::Add: return map2(la, a, lb, b, dst, [](T x, T y) { return x + y; });
    case BinaryOp::Sub: return map2(la, a, lb, b, dst, [](T x, T y) { return x - y; });
    case BinaryOp::Mul: return map2(la, a, lb, b, dst, [](T x, T y) { return x * y; });
    case BinaryOp::Div: return map2(la, a, lb, b, dst, [](T x, T y) { return x / y; });
    case BinaryOp::Pow: return map2(la, a, lb, b, dst, [](T x, T y) { return std::pow(x, y); });
    // NaN in either input propagates, as in PyTorch's maximum/minimum.
    case BinaryOp::Maximum: return map2(la, a, lb, b, dst, [](T x, T y) { return (x > y || x != x) ? x : y; });
    case BinaryOp::Minimum: return map2(la, a, lb, b, dst, [](T x, T y) { return (x < y || x != x) ? x : y; });
  }
  throw Error("cpu binary: unknown op " + std::to_string(static_cast<int>(args.op)));
}

template <typename T>
void compare_typed(const CompareArgs& args) {
  const T* a = static_cast<const T*>(args.a_data);
  T b_value;
  const T* b = operand(args.b_data, args.scalar, b_value);
  bool* dst = args.dst_data;
  const Layout &la = args.a, &lb = args.b;
  switch (args.op) {
    case CompareOp::Eq: return map2(la, a, lb, b, dst, [](T x, T y) { return x == y; });
    case CompareOp::Ne: return map2(la, a, lb, b, dst, [](T x, T y) { return x != y; });
    case CompareOp::Gt: return map2(la, a, lb, b, dst, [](T x, T y) { return x > y; });
    case CompareOp::Ge: return map2(la, a, lb, b, dst, [](T x, T y) { return x >= y; });
    case CompareOp::Lt: return map2(la, a, lb, b, dst, [](T x, T y) { return x < y; });
    case CompareOp::Le: return map2(la, a, lb, b, dst, [](T x, T y) { return x <= y; });
  }
  throw Error("cpu compare: unknown op " + std::to_string(static_cast<int>(args.op)));
}

template <typename T>
void where_typed(const WhereArgs& args) {
  T a_value, b_value;
  const T* a = operand(args.a_data, args.scalar, a_value);
  const T* b = operand(args.b_data, args.scalar, b_value);
  map3(args.cond, args.cond_data, args.a, a, args.b, b, static_cast<T*>(args.dst_data),
       [](bool c, T x, T y) { return c ? x : y; });
}

// An activation's gradient from its output, one pass: ELU's replaced four (compare, add, mul, where), ReLU's three
// (compare, cast, mul), tanh's and sigmoid's three maps each. d(y) of each op is written once as a function of a
// scalar or a vector (the GCC vector types of simd.h take the same expressions), in the order of the composition
// it replaced, so results are the same bits (but tanh's 1 - y * y, which GCC may contract into one fused
// multiply-add: within an ulp of d). The contiguous runs are written with vectors: for ELU and ReLU both
// arms are computed, then blended. Left to the compiler, the plain loop `g * (y > 0 ? 1 : y + alpha)` was
// vectorised by GCC only with AVX-512: it assumes floating-point ops may trap, so it computes y + alpha only for
// the lanes that need it, which takes a masked add. With AVX2 it kept the loop scalar, with a branch per element
// that the signs of y make unpredictable (and Eigen 3.4's select is scalar too). Measured on a Zen 3, bench_ops
// elu_bwd/16x64x64x64, one thread: 23.3 ms (2.2 GB/s) that way.
template <UnaryOp Op, typename T>
void activation_backward_op(const ActivationBackwardArgs& args) {
  constexpr int64_t kLanes = Simd<T>::kLanes;
  const T alpha = static_cast<T>(args.alpha);
  // g * d(y); S is T or V. (A default capture: only ELU reads alpha, and clang warns of an explicit capture that
  // an instantiation leaves unused.)
  const auto grad = [=]<typename S>(S g, S y) -> S {
    if constexpr (Op == UnaryOp::Elu) {
      return y > T(0) ? g : g * (y + alpha);
    } else if constexpr (Op == UnaryOp::Relu) {
      return g * (y > T(0) ? S{} + T(1) : S{});
    } else if constexpr (Op == UnaryOp::Tanh) {
      return g * (T(1) - y * y);
    } else {
      return g * (y * (T(1) - y));
    }
  };
  map2_runs(
      args.grad, static_cast<const T*>(args.grad_data), args.out, static_cast<const T*>(args.out_data),
      static_cast<T*>(args.dst_data),
      [grad](const T* g, const T* y, T* d, int64_t count) {
        int64_t i = 0;
        for (; i + kLanes <= count; i += kLanes) store_vector(d + i, grad(load_vector(g + i), load_vector(y + i)));
        for (; i < count; ++i) d[i] = grad(g[i], y[i]);
      },
      [grad](T g, T y) { return grad(g, y); });
}

// Softplus's gradient from its input x: g sigmoid(beta x), g itself where beta x > threshold. The sigmoid as the
// unary Sigmoid computes it, vectorised by Eigen; the threshold a second loop over the run (Eigen 3.4's select()
// would make the whole expression scalar). One pass where the composition took four (sigmoid, compare, where, mul).
template <typename T>
void softplus_backward(const ActivationBackwardArgs& args) {
  using ConstArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  const T beta = static_cast<T>(args.alpha), threshold = static_cast<T>(args.threshold);
  map2_runs(
      args.grad, static_cast<const T*>(args.grad_data), args.out, static_cast<const T*>(args.out_data),
      static_cast<T*>(args.dst_data),
      [beta, threshold](const T* g, const T* x, T* d, int64_t count) {
        const ConstArrayMap gs(g, count), xs(x, count);
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(d, count) = gs * (T(1) + (-(xs * beta)).exp()).inverse();
        for (int64_t i = 0; i < count; ++i) d[i] = x[i] * beta > threshold ? g[i] : d[i];  // a blend
      },
      [beta, threshold](T g, T x) { return x * beta > threshold ? g : g / (T(1) + std::exp(-(x * beta))); });
}

// The gradients of LeakyRelu, Silu, Gelu and GeluTanh from their input x (backends/args.h gives each d(x)): g d(x)
// in one pass. Silu's and the GELUs' runs go through Eigen (vectorised exp, erf, tanh) a chunk at a time, each
// chunk's shared terms (the sigmoid, the erf or tanh) into a small array first, so each is computed once per element
// and stays in L1; LeakyRelu's as a blend of vectors. Strided elements one at a time by the scalar twins.
template <UnaryOp Op, typename T>
void activation_from_input(const ActivationBackwardArgs& args) {
  const T* g = static_cast<const T*>(args.grad_data);
  const T* x = static_cast<const T*>(args.out_data);
  T* dst = static_cast<T*>(args.dst_data);
  if constexpr (Op == UnaryOp::LeakyRelu) {
    constexpr int64_t kLanes = Simd<T>::kLanes;
    const T slope = static_cast<T>(args.alpha);
    const auto grad = [slope]<typename S>(S gv, S xv) -> S { return xv > T(0) ? gv : gv * slope; };
    map2_runs(
        args.grad, g, args.out, x, dst,
        [grad](const T* gs, const T* xs, T* d, int64_t count) {
          int64_t i = 0;
          for (; i + kLanes <= count; i += kLanes) {
            store_vector(d + i, grad(load_vector(gs + i), load_vector(xs + i)));
          }
          for (; i < count; ++i) d[i] = grad(gs[i], xs[i]);
        },
        [grad](T gv, T xv) { return grad(gv, xv); });
  } else {
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    map2_runs(
        args.grad, g, args.out, x, dst,
        [](const T* gp, const T* xp, T* dp, int64_t count) {
          constexpr int64_t kChunk = 256;
          Eigen::Array<T, Eigen::Dynamic, 1, Eigen::ColMajor, kChunk, 1> t, e;  // the chunk's shared terms
          for (int64_t at = 0; at < count; at += kChunk) {
            const Eigen::Index n = std::min<int64_t>(kChunk, count - at);
            const Eigen::Map<const Array> gs(gp + at, n), xs(xp + at, n);
            Eigen::Map<Array> d(dp + at, n);
            if constexpr (Op == UnaryOp::Silu) {
              t = (T(1) + (-xs).exp()).inverse();  // s = sigmoid(x)
              d = gs * (t * (T(1) + xs * (T(1) - t)));
            } else if constexpr (Op == UnaryOp::Gelu) {
              t = (xs * T(kGeluSqrtHalf)).erf();
              d = gs * (T(0.5) * (T(1) + t) + xs * (T(-0.5) * xs.square()).exp() * T(kGeluInvSqrt2Pi));
            } else {
              // 1 - tanh(u)^2 as 4 e / (1 + e)^2, e = exp(-2 |u|): Eigen's float tanh is exactly 1 from |u| ~ 7.9,
              // where 1 - t^2 is still ~4e-7 and its term of the derivative ~3e-6 (at x ~ 4.9).
              t = T(kGeluK) * (xs + T(kGeluC) * xs.cube());  // u
              e = (T(-2) * t.abs()).exp();
              d = gs * (T(0.5) * (T(1) + t.tanh()) + T(0.5) * xs * (T(4) * e / (T(1) + e).square()) * T(kGeluK) *
                                                         (T(1) + T(3 * kGeluC) * xs.square()));
            }
          }
        },
        [](T gv, T xv) {
          if constexpr (Op == UnaryOp::Silu) {
            const T sig = T(1) / (T(1) + std::exp(-xv));
            return gv * (sig * (T(1) + xv * (T(1) - sig)));
          } else if constexpr (Op == UnaryOp::Gelu) {
            const T e = std::erf(xv * T(kGeluSqrtHalf));
            return gv * (T(0.5) * (T(1) + e) + xv * std::exp(T(-0.5) * (xv * xv)) * T(kGeluInvSqrt2Pi));
          } else {
            const T u = T(kGeluK) * (xv + T(kGeluC) * (xv * xv * xv)), ev = std::exp(T(-2) * std::abs(u));
            return gv * (T(0.5) * (T(1) + std::tanh(u)) + T(0.5) * xv * (T(4) * ev / ((T(1) + ev) * (T(1) + ev))) *
                                                              T(kGeluK) * (T(1) + T(3 * kGeluC) * (xv * xv)));
          }
        });
  }
}

template <typename T>
void activation_backward_typed(const ActivationBackwardArgs& args) {
  switch (args.op) {
    case UnaryOp::Elu: return activation_backward_op<UnaryOp::Elu, T>(args);
    case UnaryOp::Relu: return activation_backward_op<UnaryOp::Relu, T>(args);
    case UnaryOp::Tanh: return activation_backward_op<UnaryOp::Tanh, T>(args);
    case UnaryOp::Sigmoid: return activation_backward_op<UnaryOp::Sigmoid, T>(args);
    case UnaryOp::Softplus: return softplus_backward<T>(args);
    case UnaryOp::LeakyRelu: return activation_from_input<UnaryOp::LeakyRelu, T>(args);
    case UnaryOp::Silu: return activation_from_input<UnaryOp::Silu, T>(args);
    case UnaryOp::Gelu: return activation_from_input<UnaryOp::Gelu, T>(args);
    case UnaryOp::GeluTanh: return activation_from_input<UnaryOp::GeluTanh, T>(args);
    default: break;
  }
  throw Error("cpu activation_backward: unary op " + std::to_string(static_cast<int>(args.op)) +
              " has no gradient from its output");
}

}  // namespace

void unary(const UnaryArgs& args) {
  dispatch(unary_types{}, args.dtype, "cpu unary", [&]<class T> { unary_typed<T>(args); });
}

void binary(const BinaryArgs& args) {
  dispatch(binary_types{}, args.dtype, "cpu binary", [&]<class T> { binary_typed<T>(args); });
}

void compare(const CompareArgs& args) {
  dispatch(compare_types{}, args.dtype, "cpu compare", [&]<class T> { compare_typed<T>(args); });
}

void where(const WhereArgs& args) {
  dispatch(where_types{}, args.dtype, "cpu where", [&]<class T> { where_typed<T>(args); });
}

void activation_backward(const ActivationBackwardArgs& args) {
  dispatch(activation_backward_types{}, args.dtype, "cpu activation_backward",
           [&]<class T> { activation_backward_typed<T>(args); });
}

}  // namespace atelier::cpu
