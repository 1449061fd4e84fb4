// Tests of the CPU backend through raw pointers and the args structs (no Tensor): Philox known answers, every
// kernel family against naive loops, the thread pool and the caching allocator.
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "backends/backend.h"
#include "backends/cpu/cpu_allocator.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/dispatch.h"
#include "backends/error.h"
#include "backends/philox.h"
#include "backends/thread_pool.h"

using namespace atelier;

namespace {

Layout layout(std::vector<int64_t> sizes, std::vector<int64_t> strides = {}) {
  Layout l;
  l.ndim = static_cast<int>(sizes.size());
  int64_t stride = 1;
  for (int d = l.ndim - 1; d >= 0; --d) {
    l.sizes[d] = sizes[static_cast<size_t>(d)];
    l.strides[d] = strides.empty() ? stride : strides[static_cast<size_t>(d)];
    stride *= sizes[static_cast<size_t>(d)];
  }
  return l;
}

// Sets the pool size for one test case and restores it afterwards.
struct ThreadCount {
  int saved = num_threads();
  explicit ThreadCount(int n) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(saved); }
};

// Deterministic test data in [-1, 1).
std::vector<double> ramp(size_t n, double scale = 1.0) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * (static_cast<double>((i * 7919) % 2001) / 1000.0 - 1.0);
  return v;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Backend& cpu() { return cpu_backend(); }

}  // namespace

TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors") {
  PhiloxBlock zero = philox4x32_10(0, 0, 0);
  CHECK(zero.w[0] == 0x6627e8d5u);
  CHECK(zero.w[1] == 0xe169c58du);
  CHECK(zero.w[2] == 0xbc57ac4cu);
  CHECK(zero.w[3] == 0x9b00dbd8u);
  PhiloxBlock ones = philox4x32_10(~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0});
  CHECK(ones.w[0] == 0x408f276du);
  CHECK(ones.w[1] == 0x41c83b0eu);
  CHECK(ones.w[2] == 0xa20bc7c6u);
  CHECK(ones.w[3] == 0x6d5451fdu);
  // key (0xa4093822, 0x299f31d0), counter (0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344): digits of pi.
  PhiloxBlock pi = philox4x32_10(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull);
  CHECK(pi.w[0] == 0xd16cfe09u);
  CHECK(pi.w[1] == 0x94fdccebu);
  CHECK(pi.w[2] == 0x5001e420u);
  CHECK(pi.w[3] == 0x24126ea1u);
}

TEST_CASE("random: exact uniforms, determinism, composing offsets, any thread count") {
  auto fill = [](DType dtype, RandomKind kind, int64_t n, uint64_t offset, void* dst) {
    RandomArgs r{dtype, n, dst, kind, 1234, 7, offset, kind == RandomKind::Uniform ? -2.0 : 0.0, 3.0};
    cpu().random(r);
  };
  SUBCASE("uniform values are lo + (hi - lo) * top24 * 2^-24, rounded once") {
    std::vector<double> v(6);
    fill(DType::Float64, RandomKind::Uniform, 6, 5, v.data());
    for (int i = 0; i < 6; ++i) {
      PhiloxBlock blk = philox4x32_10(1234, 7, 5 + static_cast<uint64_t>(i / 4));
      // One rounding (fma), so that the value does not depend on whether a compiler contracts a * b + c.
      CHECK(v[static_cast<size_t>(i)] == std::fma(5.0, philox_unit(blk.w[i % 4]), -2.0));
    }
  }
  for (RandomKind kind : {RandomKind::Uniform, RandomKind::Normal}) {
    CAPTURE(static_cast<int>(kind));
    std::vector<float> a(8), b(8), c(8, 0.f);
    fill(DType::Float32, kind, 8, 0, a.data());
    fill(DType::Float32, kind, 8, 0, b.data());
    CHECK(a == b);
    fill(DType::Float32, kind, 4, 0, c.data());
    fill(DType::Float32, kind, 4, 1, c.data() + 4);
    CHECK(a == c);
    // Odd counts: a 7-element fill is the 8-element fill minus its last element.
    std::vector<float> d(7);
    fill(DType::Float32, kind, 7, 0, d.data());
    CHECK(std::equal(d.begin(), d.end(), a.begin()));
  }
  SUBCASE("thread count does not change the numbers") {
    const int64_t n = 100003;
    std::vector<double> one(n), many(n);
    {
      ThreadCount t(1);
      fill(DType::Float64, RandomKind::Normal, n, 3, one.data());
    }
    {
      ThreadCount t(4);
      fill(DType::Float64, RandomKind::Normal, n, 3, many.data());
    }
    CHECK(one == many);
  }
}

TEST_CASE("random: uniform range and mean, normal mean and std") {
  const int64_t n = 1000000;
  std::vector<float> u(n);
  cpu().random(RandomArgs{DType::Float32, n, u.data(), RandomKind::Uniform, 42, 0, 0, 2.0, 5.0});
  double sum = 0;
  float lo = u[0], hi = u[0];
  for (float x : u) {
    sum += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  CHECK(lo >= 2.0f);
  CHECK(hi < 5.0f);
  CHECK(sum / n == doctest::Approx(3.5).epsilon(0.003));

  std::vector<double> z(n);
  cpu().random(RandomArgs{DType::Float64, n, z.data(), RandomKind::Normal, 42, 1, 0, 1.5, 2.0});
  double mean = 0, sq = 0;
  for (double x : z) mean += x;
  mean /= n;
  for (double x : z) sq += (x - mean) * (x - mean);
  CHECK(mean == doctest::Approx(1.5).epsilon(0.01));
  CHECK(std::sqrt(sq / n) == doctest::Approx(2.0).epsilon(0.01));
  CHECK_THROWS_AS(cpu().random(RandomArgs{DType::Int64, 4, z.data(), RandomKind::Uniform, 0, 0, 0, 0, 1}), Error);
}

TEST_CASE("copy: transposed source, strided destination, every element size") {
  // src (3, 4) row-major; copy its transpose (4, 3) into a contiguous dst.
  std::vector<float> src(12);
  std::iota(src.begin(), src.end(), 0.f);
  std::vector<float> dst(12, -1.f);
  cpu().copy(CopyArgs{DType::Float32, layout({4, 3}), dst.data(), layout({4, 3}, {1, 4}), src.data()});
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 3; ++j) CHECK(dst[static_cast<size_t>(i * 3 + j)] == src[static_cast<size_t>(j * 4 + i)]);
  }
  // A large 2-d transpose takes the tiled path: (130, 100) read from a (100, 130) buffer, into a padded dst.
  std::vector<float> tsrc(100 * 130), tdst(130 * 104, -1.f);
  std::iota(tsrc.begin(), tsrc.end(), 0.f);
  cpu().copy(
      CopyArgs{DType::Float32, layout({130, 100}, {104, 1}), tdst.data(), layout({130, 100}, {1, 130}), tsrc.data()});
  bool tiled_ok = true;
  for (int i = 0; i < 130; ++i)
    for (int j = 0; j < 104; ++j)
      tiled_ok &= tdst[static_cast<size_t>(i * 104 + j)] == (j < 100 ? tsrc[static_cast<size_t>(j * 130 + i)] : -1.f);
  CHECK(tiled_ok);
  // Contiguous int64 into every other element of a (2, 8) buffer: dst sizes (2, 4) strides (8, 2).
  std::vector<int64_t> s64 = {1, 2, 3, 4, 5, 6, 7, 8}, d64(16, 0);
  cpu().copy(CopyArgs{DType::Int64, layout({2, 4}, {8, 2}), d64.data(), layout({2, 4}), s64.data()});
  CHECK(d64 == std::vector<int64_t>{1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0});
  // Bytes: reversed (negative stride) copy.
  std::vector<uint8_t> s8 = {1, 2, 3, 4}, d8(4);
  cpu().copy(CopyArgs{DType::UInt8, layout({4}), d8.data(), layout({4}, {-1}), s8.data() + 3});
  CHECK(d8 == std::vector<uint8_t>{4, 3, 2, 1});
  // A large permuted 3-d copy goes through the parallel path: (64, 32, 48) with dims permuted (2, 0, 1).
  const int64_t A = 64, Bd = 32, C = 48;
  std::vector<double> big(static_cast<size_t>(A * Bd * C)), out(big.size());
  std::iota(big.begin(), big.end(), 0.0);
  // out (C, A, B) = big (A, B, C) permuted.
  cpu().copy(CopyArgs{DType::Float64, layout({C, A, Bd}), out.data(), layout({C, A, Bd}, {1, Bd * C, C}), big.data()});
  bool ok = true;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t a = 0; a < A; ++a)
      for (int64_t b = 0; b < Bd; ++b)
        ok &= out[static_cast<size_t>((c * A + a) * Bd + b)] == big[static_cast<size_t>((a * Bd + b) * C + c)];
  CHECK(ok);
  // Broadcasts materialised (stride 0): a column (300) repeated along rows of 70 (large enough for the tiled
  // path's size, which is for transposes and must not take it), and one value over 5,000 elements.
  std::vector<float> column(300), rows(300 * 70, -1.f), filled(5000, -1.f);
  std::iota(column.begin(), column.end(), 1.f);
  cpu().copy(CopyArgs{DType::Float32, layout({300, 70}), rows.data(), layout({300, 70}, {1, 0}), column.data()});
  bool broadcast_ok = true;
  for (size_t i = 0; i < rows.size(); ++i) broadcast_ok &= rows[i] == column[i / 70];
  CHECK(broadcast_ok);
  cpu().copy(CopyArgs{DType::Float32, layout({5000}), filled.data(), layout({5000}, {0}), column.data() + 6});
  CHECK(std::all_of(filled.begin(), filled.end(), [](float v) { return v == 7.f; }));
}

TEST_CASE("cast: truncation, bool, integer sources") {
  std::vector<float> f = {1.7f, -1.7f, 2.0f, 0.0f, -0.0f, 0.5f};
  std::vector<int64_t> i64(6);
  cpu().cast(CastArgs{DType::Float32, DType::Int64, layout({6}), i64.data(), layout({6}), f.data()});
  CHECK(i64 == std::vector<int64_t>{1, -1, 2, 0, 0, 0});
  bool b[6];
  cpu().cast(CastArgs{DType::Float32, DType::Bool, layout({6}), b, layout({6}), f.data()});
  CHECK(b[0]);
  CHECK(b[1]);
  CHECK(b[2]);
  CHECK_FALSE(b[3]);
  CHECK_FALSE(b[4]);
  CHECK(b[5]);
  std::vector<uint8_t> u8 = {0, 1, 255};
  std::vector<double> d(3);
  cpu().cast(CastArgs{DType::UInt8, DType::Float64, layout({3}), d.data(), layout({3}), u8.data()});
  CHECK(d == std::vector<double>{0, 1, 255});
  // Strided source: every other int64 into float32.
  std::vector<int64_t> src = {10, -1, 20, -1, 30, -1};
  std::vector<float> out(3);
  cpu().cast(CastArgs{DType::Int64, DType::Float32, layout({3}), out.data(), layout({3}, {2}), src.data()});
  CHECK(out == std::vector<float>{10, 20, 30});
}

TEST_CASE("fill: strided view and every dtype") {
  // Column 1 of a (4, 4) float buffer: sizes (4), stride 4, starting at element 1.
  std::vector<float> buf(16, 0.f);
  cpu().fill(FillArgs{DType::Float32, layout({4}, {4}), buf.data() + 1, 7.0});
  for (int i = 0; i < 16; ++i) CHECK(buf[static_cast<size_t>(i)] == (i % 4 == 1 ? 7.f : 0.f));
  std::vector<int64_t> i64(5);
  cpu().fill(FillArgs{DType::Int64, layout({5}), i64.data(), -3.0});
  CHECK(i64 == std::vector<int64_t>(5, -3));
  std::vector<uint8_t> u8(100000);
  cpu().fill(FillArgs{DType::UInt8, layout({100000}), u8.data(), 200.0});
  CHECK(std::all_of(u8.begin(), u8.end(), [](uint8_t v) { return v == 200; }));
  bool b[3] = {false, false, false};
  cpu().fill(FillArgs{DType::Bool, layout({3}), b, 1.0});
  CHECK((b[0] && b[1] && b[2]));
}

TEST_CASE("unary: every op against std, strided input") {
  const std::vector<double> x = {-3.0, -0.5, 0.0, 0.25, 2.0, 1000.0, -1000.0};
  const int64_t n = static_cast<int64_t>(x.size());
  auto run = [&](UnaryOp op, double p0 = 0, double p1 = 0) {
    std::vector<double> y(x.size());
    cpu().unary(UnaryArgs{op, DType::Float64, layout({n}), x.data(), y.data(), p0, p1});
    return y;
  };
  auto expect = [&](UnaryOp op, auto ref, double p0 = 0, double p1 = 0) {
    auto y = run(op, p0, p1);
    for (size_t i = 0; i < x.size(); ++i) {
      CAPTURE(i);
      CAPTURE(static_cast<int>(op));
      const double r = ref(x[i]);
      if (std::isnan(r)) {
        CHECK(std::isnan(y[i]));
      } else if (std::isinf(r)) {
        CHECK(y[i] == r);
      } else {
        CHECK(y[i] == doctest::Approx(r).epsilon(1e-12));
      }
    }
  };
  expect(UnaryOp::Neg, [](double v) { return -v; });
  expect(UnaryOp::Exp, [](double v) { return std::exp(v); });
  expect(UnaryOp::Log, [](double v) { return std::log(v); });
  expect(UnaryOp::Abs, [](double v) { return std::abs(v); });
  expect(UnaryOp::Sign, [](double v) { return v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0; });
  expect(UnaryOp::Sqrt, [](double v) { return std::sqrt(v); });
  expect(UnaryOp::Tanh, [](double v) { return std::tanh(v); });
  expect(UnaryOp::Sigmoid, [](double v) { return v > 500 ? 1.0 : v < -500 ? 0.0 : 1.0 / (1.0 + std::exp(-v)); });
  expect(UnaryOp::Relu, [](double v) { return v > 0 ? v : 0.0; });
  expect(
      UnaryOp::Elu, [](double v) { return v > 0 ? v : 0.5 * (std::exp(v) - 1); }, 0.5);
  // x^2, x^1 and x^-1 are one correctly rounded operation each (v * v, v, 1 / v); other exponents are std::pow.
  for (double p : {2.0, 1.0, -1.0, 3.0, 0.5}) {
    expect(
        UnaryOp::Pow, [p](double v) { return std::pow(v, p); }, p);
  }
  expect(
      UnaryOp::Clamp, [](double v) { return std::min(std::max(v, -1.0), 1.5); }, -1.0, 1.5);
  // Softplus: PyTorch's defaults (beta 1, threshold 20), beta 2 with threshold 3, and no threshold; at -1000 the
  // value is exp(-1000), 0 in double.
  expect(
      UnaryOp::Softplus, [](double v) { return v > 20     ? v
                                               : v < -700 ? 0.0
                                                          : std::log1p(std::exp(v)); }, 1.0, 20.0);
  expect(
      UnaryOp::Softplus, [](double v) { return 2 * v > 3 ? v : std::log1p(std::exp(2 * v)) / 2; }, 2.0, 3.0);
  expect(
      UnaryOp::Softplus, [](double v) { return v > 700    ? v
                                               : v < -700 ? 0.0
                                                          : std::log1p(std::exp(v)); }, 1.0,
      INFINITY);

  expect(
      UnaryOp::LeakyRelu, [](double v) { return v > 0 ? v : -0.3 * v; }, -0.3);
  expect(UnaryOp::Silu, [](double v) { return v < -700 ? -0.0 : v / (1 + std::exp(-v)); });
  expect(UnaryOp::Gelu, [](double v) { return v * 0.5 * (1 + std::erf(v / std::sqrt(2.0))); });
  expect(UnaryOp::GeluTanh,
         [](double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); });

  // The special values of x^2, x^1 and x^-1 are pow's: signed zeros, infinities, NaN.
  const std::vector<double> special = {0.0, -0.0, INFINITY, -INFINITY, std::nan(""), 3.0, -2.5};
  for (double p : {2.0, 1.0, -1.0}) {
    std::vector<double> y(special.size());
    cpu().unary(UnaryArgs{UnaryOp::Pow, DType::Float64, layout({7}), special.data(), y.data(), p, 0});
    for (size_t i = 0; i < special.size(); ++i) {
      const double want = std::pow(special[i], p);
      CAPTURE(p);
      CAPTURE(special[i]);
      CHECK(((y[i] == want && std::signbit(y[i]) == std::signbit(want)) || (std::isnan(y[i]) && std::isnan(want))));
    }
  }

  // Where 1 + e rounds to 1 (e = exp(-40) in double), the rounding it lost is the whole value of log1p(e).
  const std::vector<double> far = {-40.0, -60.0, -80.0, -700.0, -40.0, -60.0, -80.0, -700.0, -45.0};
  std::vector<double> far_y(far.size());
  cpu().unary(UnaryArgs{UnaryOp::Softplus, DType::Float64, layout({9}), far.data(), far_y.data(), 1.0, 20.0});
  for (size_t i = 0; i < far.size(); ++i) {
    CAPTURE(far[i]);
    CHECK(std::abs(far_y[i] - std::exp(far[i])) <= 1e-15 * std::exp(far[i]));  // relative: the values are tiny
  }

  // Softplus stays finite in float32 for large |x| without a threshold, and keeps NaN.
  std::vector<float> wide = {-200.f, 200.f, 1e30f, NAN}, sp(4);
  cpu().unary(UnaryArgs{UnaryOp::Softplus, DType::Float32, layout({4}), wide.data(), sp.data(), 1.0, INFINITY});
  CHECK(sp[0] == 0.f);
  CHECK(sp[1] == 200.f);
  CHECK(sp[2] == 1e30f);
  CHECK(std::isnan(sp[3]));

  // Float32 softplus within a few ulp of the double result, values from -40 to 40: the vectorised log1p(e) (log of
  // 1 + e plus the rounding that sum lost) keeps e's precision where exp(-40) is far below float's epsilon.
  // Also beta 2 with threshold 3 and beta 0.5 with PyTorch's threshold, and the same values read transposed.
  std::vector<float> grid, soft(8001), soft_t(8001);
  for (int i = 0; i <= 8000; ++i) grid.push_back(-40.f + 0.01f * static_cast<float>(i));
  for (const auto& setting : std::vector<std::pair<double, double>>{{1.0, INFINITY}, {2.0, 3.0}, {0.5, 20.0}}) {
    const double beta = setting.first, threshold = setting.second;  // not a structured binding: clang 14's CAPTURE
    CAPTURE(beta);
    cpu().unary(
        UnaryArgs{UnaryOp::Softplus, DType::Float32, layout({8001}), grid.data(), soft.data(), beta, threshold});
    cpu().unary(UnaryArgs{UnaryOp::Softplus, DType::Float32, layout({3, 2667}, {1, 3}), grid.data(), soft_t.data(),
                          beta, threshold});
    double worst = 0, worst_t = 0;
    for (int i = 0; i <= 8000; ++i) {
      const size_t k = static_cast<size_t>(i);
      const double v = grid[k], b = beta * v;
      const double want = b > threshold ? v : (std::max(b, 0.0) + std::log1p(std::exp(-std::abs(b)))) / beta;
      worst = std::max(worst, std::abs(soft[k] - want) / want);
      const double strided = soft_t[static_cast<size_t>((i % 3) * 2667 + i / 3)];
      worst_t = std::max(worst_t, std::abs(strided - soft[k]) / soft[k]);
    }
    CHECK(worst < 4e-7);
#if defined(__AVX512F__)
    CHECK(worst_t == 0);  // a strided element goes through the same kernel, one at a time
#else
    CHECK(worst_t < 4e-7);             // the scalar twin (std::log1p) beside Eigen's vectorised runs
#endif
  }

  // Sigmoid stays finite in float32 for large |x|.
  std::vector<float> big = {-200.f, 200.f, -90.f, 90.f}, sy(4);
  cpu().unary(UnaryArgs{UnaryOp::Sigmoid, DType::Float32, layout({4}), big.data(), sy.data()});
  CHECK(sy[0] == 0.f);
  CHECK(sy[1] == 1.f);
  CHECK(std::isfinite(sy[2]));
  CHECK(sy[3] == 1.f);

  // Strided input: the transpose of a (3, 5) matrix.
  std::vector<float> m = to_float(ramp(15)), t(15);
  cpu().unary(UnaryArgs{UnaryOp::Neg, DType::Float32, layout({5, 3}, {1, 5}), m.data(), t.data()});
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) CHECK(t[static_cast<size_t>(i * 3 + j)] == -m[static_cast<size_t>(j * 5 + i)]);
  // Softplus read strided (its scalar twin) agrees with its vectorised runs, on both sides of the threshold.
  std::vector<double> xs(15), contiguous(15), strided(15);
  for (int i = 0; i < 15; ++i) xs[static_cast<size_t>(i)] = -3.0 + 0.5 * i;  // beta x from -6 to 8, threshold 3
  cpu().unary(UnaryArgs{UnaryOp::Softplus, DType::Float64, layout({15}), xs.data(), contiguous.data(), 2.0, 3.0});
  cpu().unary(
      UnaryArgs{UnaryOp::Softplus, DType::Float64, layout({5, 3}, {1, 5}), xs.data(), strided.data(), 2.0, 3.0});
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 3; ++j) {
      CHECK(strided[static_cast<size_t>(i * 3 + j)] ==
            doctest::Approx(contiguous[static_cast<size_t>(j * 5 + i)]).epsilon(1e-14));
    }
  }
  CHECK_THROWS_AS(cpu().unary(UnaryArgs{UnaryOp::Neg, DType::Int64, layout({1}), m.data(), t.data()}), Error);
}

// leaky_relu, silu and the GELUs (their maps and their gradients, which read the input x) against their
// definitions over -8..8: the gradients against central differences of the double formulas (an independent
// derivative, exact to ~1e-9), float32 within float rounding of the double results (Eigen's float erf and tanh are
// approximations within a few 1e-7), and a transposed read (the scalar twins) the same values as the vector runs.
TEST_CASE("leaky_relu, silu and gelu: maps and gradients from the input against their definitions") {
  ThreadCount threads(2);
  struct Case {
    UnaryOp op;
    double p0;
    double (*f)(double, double);
  };
  const std::vector<Case> cases = {
      {UnaryOp::LeakyRelu, 0.01, [](double v, double slope) { return v > 0 ? v : slope * v; }},
      {UnaryOp::LeakyRelu, -0.3, [](double v, double slope) { return v > 0 ? v : slope * v; }},
      {UnaryOp::Silu, 0, [](double v, double) { return v / (1 + std::exp(-v)); }},
      {UnaryOp::Gelu, 0, [](double v, double) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
      {UnaryOp::GeluTanh, 0,
       [](double v, double) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); }}};
  // 1,600 points, none at 0 (leaky_relu's kink), in a (40, 40) block read both ways.
  const int64_t n = 1600;
  std::vector<double> x(n), g(n);
  for (int64_t i = 0; i < n; ++i) {
    x[static_cast<size_t>(i)] = -8.0 + 0.01 * static_cast<double>(i) + 0.005;
    g[static_cast<size_t>(i)] = 0.5 + static_cast<double>(i % 7) * 0.25;
  }
  const std::vector<float> xf(x.begin(), x.end()), gf(g.begin(), g.end());
  for (const Case& c : cases) {
    CAPTURE(static_cast<int>(c.op));
    CAPTURE(c.p0);
    std::vector<double> y(n), dx(n), y_t(n), dx_t(n);
    std::vector<float> yf(n), dxf(n);
    cpu().unary(UnaryArgs{c.op, DType::Float64, layout({n}), x.data(), y.data(), c.p0, 0});
    cpu().unary(UnaryArgs{c.op, DType::Float32, layout({n}), xf.data(), yf.data(), c.p0, 0});
    auto backward = [&](DType dtype, const Layout& l, const void* gd, const void* xd, void* dst) {
      cpu().activation_backward(ActivationBackwardArgs{c.op, dtype, l, gd, l, xd, dst, c.p0});
    };
    backward(DType::Float64, layout({n}), g.data(), x.data(), dx.data());
    backward(DType::Float32, layout({n}), gf.data(), xf.data(), dxf.data());
    // The transposed read: element (i, j) of the (40, 40) output is x[j * 40 + i].
    cpu().unary(UnaryArgs{c.op, DType::Float64, layout({40, 40}, {1, 40}), x.data(), y_t.data(), c.p0, 0});
    backward(DType::Float64, layout({40, 40}, {1, 40}), g.data(), x.data(), dx_t.data());
    double worst_y = 0, worst_dx = 0, worst_yf = 0, worst_dxf = 0, worst_t = 0;
    for (int64_t i = 0; i < n; ++i) {
      const size_t k = static_cast<size_t>(i);
      const double v = x[k], h = 1e-5;
      const double want = c.f(v, c.p0), slope = (c.f(v + h, c.p0) - c.f(v - h, c.p0)) / (2 * h);
      worst_y = std::max(worst_y, std::abs(y[k] - want) / (1 + std::abs(want)));
      worst_dx = std::max(worst_dx, std::abs(dx[k] - g[k] * slope));
      worst_yf = std::max(worst_yf, std::abs(yf[k] - want) / (1 + std::abs(v)));
      worst_dxf = std::max(worst_dxf, std::abs(dxf[k] - g[k] * slope) / g[k]);
      const size_t t = static_cast<size_t>((i % 40) * 40 + i / 40);  // where the transposed read put x[k]
      worst_t = std::max({worst_t, std::abs(y_t[t] - y[k]), std::abs(dx_t[t] - dx[k])});
    }
    CHECK(worst_y < 1e-14);
    CHECK(worst_dx < 1e-8);
    CHECK(worst_yf < 4e-7);
    CHECK(worst_dxf < 1e-6);
    CHECK(worst_t < 1e-14);
  }
}

TEST_CASE("binary: broadcasting with stride 0, contiguous and scalar fast paths, parallel sizes") {
  ThreadCount threads(3);
  // a (2, 3) + b (3) broadcast over rows.
  std::vector<double> a = {1, 2, 3, 4, 5, 6}, b = {10, 20, 30}, out(6);
  cpu().binary(BinaryArgs{BinaryOp::Add, DType::Float64, layout({2, 3}), a.data(), layout({2, 3}, {0, 1}), b.data(),
                          out.data()});
  CHECK(out == std::vector<double>{11, 22, 33, 14, 25, 36});
  // a (2, 3) - column (2, 1) broadcast over columns.
  std::vector<double> col = {100, 200};
  cpu().binary(BinaryArgs{BinaryOp::Sub, DType::Float64, layout({2, 3}), a.data(), layout({2, 3}, {1, 0}), col.data(),
                          out.data()});
  CHECK(out == std::vector<double>{-99, -98, -97, -196, -195, -194});
  // Every op on scalar vs tensor and tensor vs tensor, including the parallel path.
  const int64_t n = 100001;
  auto xs = to_float(ramp(static_cast<size_t>(n), 2.0)), ys = to_float(ramp(static_cast<size_t>(n) + 13, 3.0));
  for (float& y : ys) y = y == 0.f ? 0.5f : y;
  std::vector<float> res(static_cast<size_t>(n));
  const float scalar = 1.25f;
  for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow, BinaryOp::Maximum,
                      BinaryOp::Minimum}) {
    CAPTURE(static_cast<int>(op));
    auto ref = [op](float x, float y) -> float {
      switch (op) {
        case BinaryOp::Add: return x + y;
        case BinaryOp::Sub: return x - y;
        case BinaryOp::Mul: return x * y;
        case BinaryOp::Div: return x / y;
        case BinaryOp::Pow: return std::pow(x, y);
        case BinaryOp::Maximum: return std::max(x, y);
        case BinaryOp::Minimum: return std::min(x, y);
      }
      return 0;
    };
    cpu().binary(BinaryArgs{op, DType::Float32, layout({n}), xs.data(), layout({n}), ys.data() + 13, res.data()});
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) {
      const float r = ref(xs[static_cast<size_t>(i)], ys[static_cast<size_t>(i + 13)]);
      ok &= (std::isnan(r) && std::isnan(res[static_cast<size_t>(i)])) || res[static_cast<size_t>(i)] == r;
    }
    CHECK(ok);
    // scalar (stride 0) on the left
    cpu().binary(BinaryArgs{op, DType::Float32, layout({n}, {0}), &scalar, layout({n}), ys.data(), res.data()});
    ok = true;
    for (int64_t i = 0; i < n; ++i) {
      const float r = ref(scalar, ys[static_cast<size_t>(i)]);
      ok &= (std::isnan(r) && std::isnan(res[static_cast<size_t>(i)])) || res[static_cast<size_t>(i)] == r;
    }
    CHECK(ok);
  }
  // Large 3-d broadcast: (40, 50, 60) * (1, 50, 1) with a transposed a.
  const int64_t D0 = 40, D1 = 50, D2 = 60;
  auto big = ramp(static_cast<size_t>(D0 * D1 * D2)), mid = ramp(static_cast<size_t>(D1), 5.0);
  std::vector<double> prod(big.size());
  // a is stored as (D2, D1, D0) and read transposed.
  cpu().binary(BinaryArgs{BinaryOp::Mul, DType::Float64, layout({D0, D1, D2}, {1, D0, D0 * D1}), big.data(),
                          layout({D0, D1, D2}, {0, 1, 0}), mid.data(), prod.data()});
  bool ok = true;
  for (int64_t i = 0; i < D0; ++i)
    for (int64_t j = 0; j < D1; ++j)
      for (int64_t k = 0; k < D2; ++k)
        ok &= prod[static_cast<size_t>((i * D1 + j) * D2 + k)] ==
              big[static_cast<size_t>((k * D1 + j) * D0 + i)] * mid[static_cast<size_t>(j)];
  CHECK(ok);
  // NaN propagates through maximum.
  double nan = std::numeric_limits<double>::quiet_NaN(), one = 1.0, mx = 0;
  cpu().binary(BinaryArgs{BinaryOp::Maximum, DType::Float64, layout({}), &one, layout({}), &nan, &mx});
  CHECK(std::isnan(mx));
}

TEST_CASE("compare: float and int64 with broadcasting") {
  std::vector<int64_t> a = {1, 5, 3, 7}, b = {3};
  bool out[4];
  auto run = [&](CompareOp op) {
    cpu().compare(CompareArgs{op, DType::Int64, layout({4}), a.data(), layout({4}, {0}), b.data(), out});
    return std::vector<bool>(out, out + 4);
  };
  CHECK(run(CompareOp::Eq) == std::vector<bool>{false, false, true, false});
  CHECK(run(CompareOp::Ne) == std::vector<bool>{true, true, false, true});
  CHECK(run(CompareOp::Gt) == std::vector<bool>{false, true, false, true});
  CHECK(run(CompareOp::Ge) == std::vector<bool>{false, true, true, true});
  CHECK(run(CompareOp::Lt) == std::vector<bool>{true, false, false, false});
  CHECK(run(CompareOp::Le) == std::vector<bool>{true, false, true, false});
  std::vector<float> x = {0.5f, -1.f, 2.f, 2.f}, y = {0.5f, 0.f, 1.f, 3.f};
  cpu().compare(
      CompareArgs{CompareOp::Ge, DType::Float32, layout({2, 2}), x.data(), layout({2, 2}, {1, 2}), y.data(), out});
  // y read transposed: (0.5, 1, 0, 3)
  CHECK(std::vector<bool>(out, out + 4) == std::vector<bool>{true, false, true, false});
  CHECK_THROWS_AS(cpu().compare(CompareArgs{CompareOp::Eq, DType::Bool, layout({1}), out, layout({1}), out, out}),
                  Error);
}

TEST_CASE("where: broadcast condition and every dtype") {
  bool cond[3] = {true, false, true};
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {-1};
  std::vector<float> out(6);
  // cond (3) broadcast over 2 rows, b a scalar.
  cpu().where(WhereArgs{DType::Float32, layout({2, 3}, {0, 1}), cond, layout({2, 3}), a.data(), layout({2, 3}, {0, 0}),
                        b.data(), out.data()});
  CHECK(out == std::vector<float>{1, -1, 3, 4, -1, 6});
  std::vector<int64_t> ia = {1, 2, 3}, ib = {7, 8, 9}, io(3);
  cpu().where(WhereArgs{DType::Int64, layout({3}), cond, layout({3}), ia.data(), layout({3}), ib.data(), io.data()});
  CHECK(io == std::vector<int64_t>{1, 8, 3});
}

// where's unit runs are blended a register at a time (a mask from the condition's bytes): every combination of
// run and single-value operands, float32 and float64, a random condition, run lengths that end in a partial
// register, and NaN, inf and -0.0 operands passed through bit for bit, against an element-by-element select.
TEST_CASE("where: unit runs blended by the condition, every operand form, the bits of the chosen operand") {
  const int64_t n = 1000 + 13;  // a partial register at the end
  std::vector<uint8_t> cond_bytes(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) cond_bytes[static_cast<size_t>(i)] = (i * 2654435761u) >> 7 & 1;
  const bool* cond = reinterpret_cast<const bool*>(cond_bytes.data());
  auto check = [&]<typename T>(DType dtype) {
    std::vector<T> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      a[static_cast<size_t>(i)] = static_cast<T>(i) * T(0.5);
      b[static_cast<size_t>(i)] = -static_cast<T>(i);
    }
    a[3] = std::numeric_limits<T>::quiet_NaN();
    a[5] = -std::numeric_limits<T>::infinity();
    b[7] = T(-0.0);
    const T a_one = std::numeric_limits<T>::infinity(), b_one = T(-0.0);
    for (int form = 0; form < 4; ++form) {  // a a run or one value, b likewise
      const bool a_run = form & 1, b_run = form & 2;
      CAPTURE(form);
      std::vector<T> out(static_cast<size_t>(n));
      cpu().where(WhereArgs{dtype, layout({n}), cond, a_run ? layout({n}) : layout({n}, {0}), a_run ? a.data() : &a_one,
                            b_run ? layout({n}) : layout({n}, {0}), b_run ? b.data() : &b_one, out.data()});
      bool same = true;
      for (int64_t i = 0; i < n; ++i) {
        const size_t k = static_cast<size_t>(i);
        const T want = cond[k] ? (a_run ? a[k] : a_one) : (b_run ? b[k] : b_one);
        same = same && std::memcmp(&out[k], &want, sizeof(T)) == 0;
      }
      CHECK(same);
    }
  };
  check.template operator()<float>(DType::Float32);
  check.template operator()<double>(DType::Float64);
}

// float32 log (backends/cpu/elementwise.cpp: log_16 with AVX-512, Eigen's otherwise): within 1 ulp of a double
// log over floats spread across the whole range (denormals too with AVX-512; Eigen errs there), the special
// values exact, and every element the same bits whether it is read contiguously, strided, or at a run's end.
TEST_CASE("unary log, float32: within 1 ulp everywhere, special values, the same bits in any layout") {
  std::vector<float> x;
#if defined(__AVX512F__)
  const uint32_t first = 1;  // the smallest denormal
#else
  const uint32_t first = 0x00800000u;  // the smallest normal float
#endif
  for (uint32_t bits = first; bits < 0x7f800000u; bits += 9973) x.push_back(std::bit_cast<float>(bits));
  x.push_back(1.0f);
  x.push_back(std::nextafter(1.0f, 2.0f));
  x.push_back(std::nextafter(1.0f, 0.0f));
  x.push_back(std::numeric_limits<float>::max());
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> y(x.size());
  cpu().unary(UnaryArgs{UnaryOp::Log, DType::Float32, layout({n}), x.data(), y.data()});
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::log(static_cast<double>(x[i]));
    const auto rounded = static_cast<float>(want);
    const double ulp = std::fabs(static_cast<double>(std::nextafter(rounded, 1e30f)) - static_cast<double>(rounded));
    const double error = std::fabs(static_cast<double>(y[i]) - want) / ulp;
    if (error > worst) worst = error;
    if (error > 1.0) FAIL("log(" << x[i] << ") = " << y[i] << ", off by " << error << " ulp (want " << want << ")");
  }
  MESSAGE("float32 log: at most " << worst << " ulp over " << x.size() << " values");
  CHECK(y[static_cast<size_t>(n - 4)] == 0.0f);  // log(1) exactly

  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> special = {0.0f, -0.0f, -1.0f, -inf, inf, nan, -1e-40f}, sy(special.size());
  cpu().unary(UnaryArgs{UnaryOp::Log, DType::Float32, layout({7}), special.data(), sy.data()});
  CHECK(sy[0] == -inf);
  CHECK(sy[1] == -inf);
  CHECK(std::isnan(sy[2]));
  CHECK(std::isnan(sy[3]));
  CHECK(sy[4] == inf);
  CHECK(std::isnan(sy[5]));
  CHECK(std::isnan(sy[6]));

  // The first 51 values as a (3, 17) matrix read transposed (strided: element by element), and every prefix
  // length up to 40 (a run's last elements): the contiguous results, bit for bit with AVX-512 (log_16 everywhere);
  // elsewhere (Eigen's log for runs, std::log element by element) within an ulp of them.
  const auto agrees = [](float got, float want) {
#if defined(__AVX512F__)
    return got == want;
#else
    return std::fabs(got - want) <= std::fabs(std::nextafter(want, 1e30f) - want);
#endif
  };
  std::vector<float> t(51);
  cpu().unary(UnaryArgs{UnaryOp::Log, DType::Float32, layout({17, 3}, {1, 17}), x.data(), t.data()});
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t c = 0; c < 17; ++c) {
      CHECK(agrees(t[static_cast<size_t>(c * 3 + r)], y[static_cast<size_t>(r * 17 + c)]));
    }
  }
  for (int64_t len = 1; len <= 40; ++len) {
    std::vector<float> part(static_cast<size_t>(len));
    cpu().unary(UnaryArgs{UnaryOp::Log, DType::Float32, layout({len}), x.data() + 100, part.data()});
    CHECK(std::equal(part.begin(), part.end(), y.begin() + 100, agrees));
  }
}

TEST_CASE("reduce: sum, mean, max over kept/reduced splits") {
  // src (3, 4) = 0..11
  std::vector<double> src(12);
  std::iota(src.begin(), src.end(), 0.0);
  std::vector<double> out(4);
  // Sum over dim 0: kept (4) stride 1, reduced (3) stride 4.
  cpu().reduce(ReduceArgs{ReduceOp::Sum, DType::Float64, layout({4}, {1}), layout({3}, {4}), src.data(), out.data()});
  CHECK(out == std::vector<double>{12, 15, 18, 21});
  // Mean over dim 1: kept (3) stride 4, reduced (4) stride 1.
  cpu().reduce(ReduceArgs{ReduceOp::Mean, DType::Float64, layout({3}, {4}), layout({4}, {1}), src.data(), out.data()});
  CHECK(std::vector<double>(out.begin(), out.begin() + 3) == std::vector<double>{1.5, 5.5, 9.5});
  // Max over everything: kept () scalar.
  cpu().reduce(ReduceArgs{ReduceOp::Max, DType::Float64, layout({}), layout({3, 4}), src.data(), out.data()});
  CHECK(out[0] == 11);
  // Sum over dims 0 and 2 of (2, 3, 2): kept (3) stride 2, reduced (2, 2) strides (6, 1).
  cpu().reduce(
      ReduceArgs{ReduceOp::Sum, DType::Float64, layout({3}, {2}), layout({2, 2}, {6, 1}), src.data(), out.data()});
  CHECK(std::vector<double>(out.begin(), out.begin() + 3) ==
        std::vector<double>{0 + 1 + 6 + 7, 2 + 3 + 8 + 9, 4 + 5 + 10 + 11});
  // Max with negative values and NaN.
  std::vector<float> neg = {-5, -2, -9}, nanv = {1, std::numeric_limits<float>::quiet_NaN(), 3};
  float fo = 0;
  cpu().reduce(ReduceArgs{ReduceOp::Max, DType::Float32, layout({}), layout({3}), neg.data(), &fo});
  CHECK(fo == -2.f);
  cpu().reduce(ReduceArgs{ReduceOp::Max, DType::Float32, layout({}), layout({3}), nanv.data(), &fo});
  CHECK(std::isnan(fo));
  // int64 sum and max.
  std::vector<int64_t> iv = {3, -4, 10}, io(1);
  cpu().reduce(ReduceArgs{ReduceOp::Sum, DType::Int64, layout({}), layout({3}), iv.data(), io.data()});
  CHECK(io[0] == 9);
  cpu().reduce(ReduceArgs{ReduceOp::Max, DType::Int64, layout({}), layout({3}), iv.data(), io.data()});
  CHECK(io[0] == 10);
  // Empty reductions: sum is 0, max and mean throw.
  double e = 5;
  cpu().reduce(ReduceArgs{ReduceOp::Sum, DType::Float64, layout({}), layout({0}), src.data(), &e});
  CHECK(e == 0);
  CHECK(error_of([&] {
          cpu().reduce(ReduceArgs{ReduceOp::Max, DType::Float64, layout({}), layout({0}), src.data(), &e});
        }).find("empty") != std::string::npos);
  CHECK_THROWS_AS(cpu().reduce(ReduceArgs{ReduceOp::Mean, DType::Float64, layout({}), layout({0}), src.data(), &e}),
                  Error);
}

// Outputs side by side and reduced over leading dimensions (x.sum(0), a bias gradient, broadcasting's backward)
// go a block of outputs at a time (backends/cpu/reduce.cpp, reduce_columns). Each output is still summed in double
// in the plan's order, so a double loop in that order gives the same bits; at 1, 2 and 3 threads; blocks of 16 to
// 512 outputs and a last partial block; the reduced dimensions one merged run or two that do not merge (a sliced
// view).
TEST_CASE("reduce: sums, means and maxima over leading dimensions, a block of outputs at a time") {
  const int64_t rows = 37, cols = 1100;  // 1,100 outputs: blocks of 512 (1 thread), 560 -> 512 (2), 368 (3)
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)) * 10);
  x[static_cast<size_t>(5 * cols + 7)] = std::numeric_limits<float>::quiet_NaN();  // output 7's max and sum
  struct Case {
    Layout reduced;
    std::vector<int64_t> row_offsets;  // the reduced rows' offsets, in the plan's order
  };
  std::vector<Case> cases;
  std::vector<int64_t> all(static_cast<size_t>(rows)), even;
  for (int64_t r = 0; r < rows; ++r) all[static_cast<size_t>(r)] = r * cols;
  cases.push_back({layout({rows}, {cols}), all});
  // Rows 0, 2, ..., 34 as (2, 9) with strides (18 cols, 2 cols): two dimensions that do not merge.
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 9; ++b) even.push_back((a * 18 + b * 2) * cols);
  cases.push_back({layout({2, 9}, {18 * cols, 2 * cols}), even});
  for (const Case& c : cases) {
    for (int threads : {1, 2, 3}) {
      ThreadCount pool(threads);
      CAPTURE(threads);
      for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max}) {
        std::vector<float> out(static_cast<size_t>(cols));
        cpu().reduce(ReduceArgs{op, DType::Float32, layout({cols}, {1}), c.reduced, x.data(), out.data()});
        for (int64_t k = 0; k < cols; ++k) {
          double sum = 0;
          float max = -std::numeric_limits<float>::infinity();
          for (int64_t off : c.row_offsets) {
            const float v = x[static_cast<size_t>(off + k)];
            sum += v;
            max = (v > max || v != v) ? v : max;
          }
          const double n = static_cast<double>(c.row_offsets.size());
          const float want = op == ReduceOp::Sum    ? static_cast<float>(sum)
                             : op == ReduceOp::Mean ? static_cast<float>(sum * (1.0 / n))
                                                    : max;
          const float got = out[static_cast<size_t>(k)];
          if (!(got == want || (std::isnan(got) && std::isnan(want)))) {
            FAIL("output " << k << " of " << reduce_op_name(op) << ": got " << got << ", want " << want);
          }
        }
      }
    }
  }
  // int64 sums wrap as the output-by-output path's do.
  const int64_t largest = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> m(40), wrapped(20);
  for (int64_t k = 0; k < 20; ++k) {
    m[static_cast<size_t>(k)] = largest;
    m[static_cast<size_t>(20 + k)] = k;
  }
  cpu().reduce(ReduceArgs{ReduceOp::Sum, DType::Int64, layout({20}, {1}), layout({2}, {20}), m.data(), wrapped.data()});
  for (int64_t k = 0; k < 20; ++k) {
    CHECK(wrapped[static_cast<size_t>(k)] ==
          static_cast<int64_t>(static_cast<uint64_t>(largest) + static_cast<uint64_t>(k)));
  }
}

// The maximum of a contiguous run goes through vector lanes (backends/cpu/reduce.cpp, max_contiguous) from 64
// floats or 32 doubles: every length around the lanes' edges, the maximum in the tail or in any lane, -inf and
// +inf, and a NaN anywhere (a run holding one is redone serially: the serial rule's NaN, bit for bit).
template <typename T>
void check_contiguous_max() {
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  for (int64_t n : {1, 15, 31, 32, 33, 63, 64, 65, 127, 128, 129, 300, 2048}) {
    CAPTURE(n);
    std::vector<T> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = static_cast<T>(std::sin(0.7 * static_cast<double>(i)));
    auto max_of = [&] {
      T out = 0;
      cpu().reduce(ReduceArgs{ReduceOp::Max, dtype_of<T>(), layout({}), layout({n}), x.data(), &out});
      return out;
    };
    for (int64_t at : {int64_t{0}, n / 3, n / 2, n - 1}) {
      CAPTURE(at);
      const T kept = x[static_cast<size_t>(at)];
      x[static_cast<size_t>(at)] = T(5);
      CHECK(max_of() == T(5));
      x[static_cast<size_t>(at)] = inf;
      CHECK(max_of() == inf);
      x[static_cast<size_t>(at)] = nan;
      CHECK(std::isnan(max_of()));
      x[static_cast<size_t>(at)] = kept;
    }
    std::fill(x.begin(), x.end(), -inf);
    CHECK(max_of() == -inf);
    // Two NaNs of different payloads: the result has the bits the serial rule gives (the run is redone serially).
    T marked;
    const uint64_t payload = sizeof(T) == 4 ? 0x7fc00123u : 0x7ff8000000000123u;
    std::memcpy(&marked, &payload, sizeof(T));
    x[static_cast<size_t>(n / 2)] = marked;
    x[static_cast<size_t>(n - 1)] = n > 1 ? nan : marked;
    T want = -inf;
    for (const T v : x) want = (v > want || v != v) ? v : want;
    const T got = max_of();
    CHECK(std::isnan(got));
    CHECK(std::memcmp(&got, &want, sizeof(T)) == 0);
  }
}

TEST_CASE("reduce: the maximum of a contiguous run, vectorised, at every length; NaN, inf and -inf") {
  check_contiguous_max<float>();
  check_contiguous_max<double>();
}

TEST_CASE("reduce: float32 accuracy and determinism on 10^6 elements") {
  const int64_t n = 1000000;
  std::vector<float> x(static_cast<size_t>(n), 0.1f);
  double ref = 0;
  for (float v : x) ref += v;
  for (int t : {1, 2, 4, 7}) {
    ThreadCount threads(t);
    CAPTURE(t);
    float s = 0, m = 0;
    cpu().reduce(ReduceArgs{ReduceOp::Sum, DType::Float32, layout({}), layout({n}), x.data(), &s});
    CHECK(std::abs(s - ref) <= 1e-7 * ref);
    cpu().reduce(ReduceArgs{ReduceOp::Mean, DType::Float32, layout({}), layout({n}), x.data(), &m});
    CHECK(std::abs(m - ref / n) <= 1e-7);
    float again = 0;
    cpu().reduce(ReduceArgs{ReduceOp::Sum, DType::Float32, layout({}), layout({n}), x.data(), &again});
    CHECK(again == s);
  }
  // Few kept elements over a long strided range (split path) and many kept elements (per-output path).
  auto v = to_float(ramp(static_cast<size_t>(n)));
  for (int t : {1, 4}) {
    ThreadCount threads(t);
    std::vector<float> cols(4), rows(static_cast<size_t>(n / 4));
    // v as (n/4, 4): sum over rows -> 4 outputs.
    cpu().reduce(
        ReduceArgs{ReduceOp::Sum, DType::Float32, layout({4}, {1}), layout({n / 4}, {4}), v.data(), cols.data()});
    for (int64_t c = 0; c < 4; ++c) {
      double r = 0;
      for (int64_t i = 0; i < n / 4; ++i) r += v[static_cast<size_t>(i * 4 + c)];
      CHECK(cols[static_cast<size_t>(c)] == doctest::Approx(r).epsilon(1e-6));
    }
    // max over columns -> n/4 outputs.
    cpu().reduce(
        ReduceArgs{ReduceOp::Max, DType::Float32, layout({n / 4}, {4}), layout({4}, {1}), v.data(), rows.data()});
    bool ok = true;
    for (int64_t i = 0; i < n / 4; ++i) {
      float r = v[static_cast<size_t>(i * 4)];
      for (int c = 1; c < 4; ++c) r = std::max(r, v[static_cast<size_t>(i * 4 + c)]);
      ok &= rows[static_cast<size_t>(i)] == r;
    }
    CHECK(ok);
  }
}

TEST_CASE("argmax: first maximum on ties, strided rows") {
  // (2, 4) rows; argmax along dim 1.
  std::vector<float> x = {1, 3, 3, 2, 9, 0, 9, 9};
  std::vector<int64_t> out(2);
  cpu().argmax(ArgmaxArgs{DType::Float32, layout({2}, {4}), 4, 1, x.data(), out.data()});
  CHECK(out == std::vector<int64_t>{1, 0});
  // Along dim 0 (columns): kept (4) stride 1, reduced 2 stride 4.
  std::vector<int64_t> cols(4);
  cpu().argmax(ArgmaxArgs{DType::Float32, layout({4}, {1}), 2, 4, x.data(), cols.data()});
  CHECK(cols == std::vector<int64_t>{1, 0, 1, 1});
  // Large: 5000 rows of 100, the maximum planted at row % 100.
  const int64_t rows = 5000, len = 100;
  std::vector<double> big(static_cast<size_t>(rows * len), 0.0);
  for (int64_t r = 0; r < rows; ++r) big[static_cast<size_t>(r * len + r % len)] = 1.0;
  std::vector<int64_t> idx(static_cast<size_t>(rows));
  cpu().argmax(ArgmaxArgs{DType::Float64, layout({rows}, {len}), len, 1, big.data(), idx.data()});
  bool ok = true;
  for (int64_t r = 0; r < rows; ++r) ok &= idx[static_cast<size_t>(r)] == r % len;
  CHECK(ok);
  CHECK_THROWS_AS(cpu().argmax(ArgmaxArgs{DType::Float32, layout({2}), 0, 1, x.data(), out.data()}), Error);
}

TEST_CASE("gather and scatter_add along a dimension, with index checks") {
  // src (outer 2, dim 3, inner 2)
  std::vector<float> src = {0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121};
  // index (2, 2, 2)
  std::vector<int64_t> index = {2, 0, 1, 1, 0, 2, 2, 2};
  std::vector<float> dst(8);
  cpu().gather(GatherArgs{DType::Float32, 2, 3, 2, 2, src.data(), index.data(), dst.data()});
  CHECK(dst == std::vector<float>{20, 1, 10, 11, 100, 121, 120, 121});

  // scatter_add is gather's adjoint: sum(dst * g) == sum(src_s * scatter(g)).
  std::vector<float> acc(12, 1.f);
  cpu().scatter_add(ScatterAddArgs{DType::Float32, 2, 3, 2, 2, dst.data(), index.data(), acc.data()});
  std::vector<float> expect(12, 1.f);
  for (int o = 0; o < 2; ++o)
    for (int j = 0; j < 2; ++j)
      for (int i = 0; i < 2; ++i) {
        const size_t pos = static_cast<size_t>((o * 2 + j) * 2 + i);
        expect[static_cast<size_t>((o * 3 + index[pos]) * 2 + i)] += dst[pos];
      }
  CHECK(acc == expect);

  // Large scatter (parallel over outer), deterministic across thread counts.
  const int64_t outer = 64, dim = 50, idim = 200, inner = 8;
  std::vector<int64_t> bidx(static_cast<size_t>(outer * idim * inner));
  for (size_t i = 0; i < bidx.size(); ++i) bidx[i] = static_cast<int64_t>((i * 31) % dim);
  auto bsrc = ramp(bidx.size());
  std::vector<double> r1(static_cast<size_t>(outer * dim * inner), 0.0), r4 = r1;
  {
    ThreadCount t(1);
    cpu().scatter_add(ScatterAddArgs{DType::Float64, outer, dim, idim, inner, bsrc.data(), bidx.data(), r1.data()});
  }
  {
    ThreadCount t(4);
    cpu().scatter_add(ScatterAddArgs{DType::Float64, outer, dim, idim, inner, bsrc.data(), bidx.data(), r4.data()});
  }
  CHECK(r1 == r4);

  // Both primitives, both ends of the range: -1 and the dimension's size (3) are the first indices out.
  for (int64_t bad : {int64_t{3}, int64_t{-1}}) {
    INFO("index " << bad);
    index[3] = bad;
    const std::string msg = error_of([&] {
      cpu().gather(GatherArgs{DType::Float32, 2, 3, 2, 2, src.data(), index.data(), dst.data()});
    });
    CHECK(msg.find("index " + std::to_string(bad)) != std::string::npos);
    CHECK(msg.find("[0, 3)") != std::string::npos);
    std::vector<float> before = acc;
    CHECK(error_of([&] {
            cpu().scatter_add(ScatterAddArgs{DType::Float32, 2, 3, 2, 2, dst.data(), index.data(), acc.data()});
          }).find("index " + std::to_string(bad)) != std::string::npos);
    CHECK(acc == before);  // a bad index leaves dst untouched
  }
}

namespace {

// Naive C = alpha op(A) op(B) + beta C for one matrix, in double.
template <typename T>
void gemm_reference(const GemmArgs& g, const T* a, const T* b, T* c) {
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < g.k; ++p) {
        const double av = g.trans_a ? a[p * g.lda + i] : a[i * g.lda + p];
        const double bv = g.trans_b ? b[j * g.ldb + p] : b[p * g.ldb + j];
        s += av * bv;
      }
      T& out = c[i * g.ldc + j];
      out = static_cast<T>(g.alpha * s + (g.beta == 0 ? 0.0 : g.beta * static_cast<double>(out)));
    }
}

template <typename T>
double max_rel_error(const std::vector<T>& got, const std::vector<T>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i])));
    den = std::max(den, std::abs(static_cast<double>(want[i])));
  }
  return num / std::max(den, 1e-30);
}

// Runs one batched GEMM (padded leading dimensions when `pad`) against the reference.
template <typename T>
double check_gemm(int64_t batch, int64_t m, int64_t n, int64_t k, bool ta, bool tb, double alpha, double beta,
                  int64_t pad, bool shared_b = false) {
  GemmArgs g{};
  g.dtype = dtype_of<T>();
  g.batch = batch;
  g.m = m;
  g.n = n;
  g.k = k;
  g.trans_a = ta;
  g.trans_b = tb;
  g.lda = (ta ? m : k) + pad;
  g.ldb = (tb ? k : n) + pad;
  g.ldc = n + pad;
  g.batch_stride_a = (ta ? k : m) * g.lda;
  g.batch_stride_b = shared_b ? 0 : (tb ? n : k) * g.ldb;
  g.batch_stride_c = m * g.ldc;
  g.alpha = alpha;
  g.beta = beta;
  std::vector<T> a(static_cast<size_t>(batch * g.batch_stride_a)),
      b(static_cast<size_t>(std::max<int64_t>(batch * g.batch_stride_b, (tb ? n : k) * g.ldb))),
      c(static_cast<size_t>(batch * g.batch_stride_c));
  auto ra = ramp(a.size()), rb = ramp(b.size() + 5), rc = ramp(c.size() + 11);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<T>(ra[i]);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<T>(rb[i + 5]);
  for (size_t i = 0; i < c.size(); ++i)
    c[i] = beta == 0 ? std::numeric_limits<T>::quiet_NaN() : static_cast<T>(rc[i + 11]);
  std::vector<T> want = c;
  for (int64_t i = 0; i < batch; ++i) {
    gemm_reference(g, a.data() + i * g.batch_stride_a, b.data() + i * g.batch_stride_b,
                   want.data() + i * g.batch_stride_c);
  }
  g.a = a.data();
  g.b = b.data();
  g.c = c.data();
  cpu().gemm(g);
  // Padding columns of C must be untouched (they hold the original values, NaN when beta == 0).
  for (int64_t i = 0; i < batch * m; ++i)
    for (int64_t j = n; j < g.ldc; ++j) {
      const T got = c[static_cast<size_t>(i * g.ldc + j)], orig = want[static_cast<size_t>(i * g.ldc + j)];
      if (!(got == orig || (std::isnan(got) && std::isnan(orig)))) return 1e9;
      c[static_cast<size_t>(i * g.ldc + j)] = want[static_cast<size_t>(i * g.ldc + j)] = 0;
    }
  return max_rel_error(c, want);
}

}  // namespace

TEST_CASE("gemm: transposes, batches, batch stride 0, alpha/beta, padded leading dimensions") {
  ThreadCount threads(3);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      CHECK(check_gemm<double>(1, 5, 7, 3, ta, tb, 1.0, 0.0, 0) < 1e-12);
      CHECK(check_gemm<double>(4, 6, 5, 9, ta, tb, 0.5, 2.0, 3) < 1e-12);
      CHECK(check_gemm<float>(3, 17, 33, 20, ta, tb, -1.5, 1.0, 2, /*shared_b=*/true) < 1e-5);
      CHECK(check_gemm<float>(2, 4, 4, 0, ta, tb, 1.0, 0.5, 1) < 1e-6);  // k = 0: C = beta C
    }
  // beta == 0 ignores NaN in C (check_gemm fills C with NaN then).
  CHECK(check_gemm<float>(1, 8, 8, 8, false, false, 2.0, 0.0, 0) < 1e-6);
  CHECK(check_gemm<double>(1, 8, 8, 8, true, false, 0.0, 0.0, 0) == 0.0);  // alpha == 0, beta == 0: zeros
  CHECK_THROWS_AS(
      cpu().gemm(GemmArgs{DType::Int64, 1, 1, 1, 1, nullptr, 1, 0, false, nullptr, 1, 0, false, nullptr, 1, 0}), Error);
}

TEST_CASE("gemm: large single GEMM split across threads matches a naive loop") {
  for (int t : {1, 4}) {
    ThreadCount threads(t);
    CAPTURE(t);
    CHECK(check_gemm<double>(1, 300, 500, 400, false, false, 1.0, 0.0, 0) < 1e-12);
    CHECK(check_gemm<double>(1, 300, 500, 400, true, true, 0.5, 1.0, 4) < 1e-12);
    CHECK(check_gemm<float>(1, 500, 300, 400, false, true, 1.0, 0.0, 1) < 1e-5);  // M longer: row split
    CHECK(check_gemm<float>(2, 200, 200, 200, true, false, 1.0, 0.0, 0) < 1e-5);  // batch < threads
  }
}

// Float GEMMs with alpha 1 and beta 0 or 1 run on the packed kernel where it is built for speed (AVX2 or AVX-512),
// blocked 256 deep, 256 rows and 1024 columns at a time (backends/cpu/gemm.cpp): these sizes cross every block
// boundary and end on edge register blocks (m not a multiple of 8, n of 32).
TEST_CASE("gemm: float products over several depth, row and column blocks, every transpose, assigning and adding") {
  ThreadCount threads(2);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      CHECK(check_gemm<float>(1, 260, 1030, 520, ta, tb, 1.0, 0.0, 3) < 1e-5);  // C full of NaN, overwritten
      CHECK(check_gemm<float>(2, 41, 1030, 257, ta, tb, 1.0, 1.0, 0) < 1e-5);   // C += A B, batched
    }
}

// Each element of C is the same chain of multiply-adds whichever thread computes its block, so the packed path's
// result does not depend on the thread count (Eigen's, where the packed kernel is not built for speed, does).
TEST_CASE("gemm: a float product is bit for bit the same at 1, 2 and 3 threads") {
#if !defined(__AVX512F__) && !(defined(__AVX2__) && defined(__FMA__))
  return;  // not built for speed there (backends/cpu/packed_gemm.h's kPackedGemmFast): Eigen's product
#endif
  const int64_t m = 70, n = 1500, k = 300;
  std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n));
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(0.37f * static_cast<float>(i));
  for (size_t i = 0; i < b.size(); ++i) b[i] = std::cos(0.11f * static_cast<float>(i));
  auto run = [&](int t, bool trans_b) {
    ThreadCount threads(t);
    std::vector<float> c(static_cast<size_t>(m * n));
    GemmArgs g{DType::Float32,  1, m,       n,        k, a.data(), k, 0, false, b.data(),
               trans_b ? k : n, 0, trans_b, c.data(), n, 0};
    cpu().gemm(g);
    return c;
  };
  for (bool trans_b : {false, true}) {
    CAPTURE(trans_b);
    const std::vector<float> one = run(1, trans_b);
    CHECK(run(2, trans_b) == one);
    CHECK(run(3, trans_b) == one);
  }
}

TEST_CASE("thread pool: every index exactly once, resizing, exceptions, nesting") {
  ThreadCount restore(num_threads());
  for (int t : {1, 2, 3, 8}) {
    set_num_threads(t);
    CHECK(num_threads() == t);
    for (int64_t n : {0, 1, 7, 100, 1000, 12345}) {
      for (int64_t grain : {1, 3, 64, 1000, 100000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        parallel_for(n, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        });
        bool ok = true;
        for (auto& h : hits) ok &= h.load() == 1;
        CAPTURE(n);
        CAPTURE(grain);
        CHECK(ok);
      }
    }
    std::vector<std::atomic<int>> seen(static_cast<size_t>(t));
    parallel_run([&](int i, int nthreads) {
      CHECK(nthreads == t);
      seen[static_cast<size_t>(i)]++;
    });
    for (auto& s : seen) CHECK(s.load() == 1);
  }

  set_num_threads(4);
  // Exceptions thrown on any thread come back to the caller.
  CHECK_THROWS_WITH_AS(parallel_for(1000, 10,
                                    [](int64_t b, int64_t) {
                                      if (b > 0) throw Error("boom from a worker");
                                    }),
                       "boom from a worker", Error);
  CHECK_THROWS_AS(parallel_for(1000, 10,
                               [](int64_t b, int64_t) {
                                 if (b == 0) throw std::runtime_error("boom on the caller");
                               }),
                  std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int64_t> total{0};
  parallel_for(1000, 10, [&](int64_t b, int64_t e) { total += e - b; });
  CHECK(total.load() == 1000);

  // Nested parallel_for runs inline on the calling thread; set_num_threads inside a region is refused.
  std::atomic<int> inner_inline{0}, refused{0};
  parallel_for(4, 1, [&](int64_t, int64_t) {
    CHECK(in_parallel_region());
    const auto id = std::this_thread::get_id();
    parallel_for(100, 1, [&](int64_t, int64_t) {
      if (std::this_thread::get_id() == id) inner_inline++;
    });
    try {
      set_num_threads(2);
    } catch (const Error&) {
      refused++;
    }
  });
  CHECK(inner_inline.load() >= 1);
  CHECK(refused.load() >= 1);
  CHECK_FALSE(in_parallel_region());

  CHECK(error_of([] { set_num_threads(0); }).find(">= 1") != std::string::npos);
  CHECK_THROWS_AS(set_num_threads(-3), Error);

  // Several threads using the pool at once take turns.
  std::vector<std::thread> users;
  std::atomic<int64_t> sum{0};
  for (int u = 0; u < 4; ++u) {
    users.emplace_back([&] {
      for (int r = 0; r < 50; ++r) parallel_for(10000, 100, [&](int64_t b, int64_t e) { sum += e - b; });
    });
  }
  for (auto& th : users) th.join();
  CHECK(sum.load() == 4 * 50 * 10000);
}

TEST_CASE("cpu allocator: buckets, reuse, stats, empty_cache") {
  CHECK(CpuAllocator::bucket_size(0) == 512);
  CHECK(CpuAllocator::bucket_size(1) == 512);
  CHECK(CpuAllocator::bucket_size(512) == 512);
  CHECK(CpuAllocator::bucket_size(513) == 1024);
  CHECK(CpuAllocator::bucket_size((1 << 20) + 1) == (1 << 20) + 512);
  CHECK(CpuAllocator::bucket_size(3'000'000) == 3'000'320);

  CpuAllocator alloc;
  void* zero_a = alloc.allocate(0);
  void* zero_b = alloc.allocate(0);
  CHECK(zero_a != nullptr);
  CHECK(zero_a != zero_b);
  alloc.deallocate(zero_a, 0);
  alloc.deallocate(zero_b, 0);

  void* p = alloc.allocate(10000);
  CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
  std::memset(p, 1, 10000);
  AllocatorStats s = alloc.stats();
  CHECK(s.in_use == 10240);
  const size_t system_before = s.system_allocs;
  alloc.deallocate(p, 10000);
  void* q = alloc.allocate(9800);  // same bucket
  AllocatorStats s2 = alloc.stats();
  CHECK(q == p);
  CHECK(s2.system_allocs == system_before);
  CHECK(s2.cache_hits == s.cache_hits + 1);
  alloc.deallocate(q, 9800);

  // A steady-state "training step" allocates nothing new after the first.
  const std::vector<size_t> step = {100, 4096, 70000, 3'000'000, 100, 0};
  for (int iter = 0; iter < 5; ++iter) {
    const size_t allocs_before = alloc.stats().system_allocs;
    std::vector<void*> live;
    for (size_t bytes : step) live.push_back(alloc.allocate(bytes));
    for (size_t i = 0; i < step.size(); ++i) alloc.deallocate(live[i], step[i]);
    if (iter > 0) CHECK(alloc.stats().system_allocs == allocs_before);
  }
  AllocatorStats s3 = alloc.stats();
  CHECK(s3.in_use == 0);
  CHECK(s3.cached > 0);
  CHECK(s3.peak_in_use >= 3'000'320);
  alloc.empty_cache();
  CHECK(alloc.stats().cached == 0);
}

TEST_CASE("cpu allocator: thread safety smoke test and the backend's allocator") {
  CpuAllocator alloc;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&alloc, t] {
      std::vector<std::pair<void*, size_t>> live;
      for (int i = 0; i < 2000; ++i) {
        const size_t bytes = static_cast<size_t>((i * 37 + t * 101) % 5000);
        void* p = alloc.allocate(bytes);
        if (bytes > 0) static_cast<char*>(p)[bytes - 1] = 1;
        live.emplace_back(p, bytes);
        if (i % 3 == 0) {
          alloc.deallocate(live.back().first, live.back().second);
          live.pop_back();
        }
      }
      for (auto& [p, bytes] : live) alloc.deallocate(p, bytes);
    });
  }
  // Large requests, pieces of shared segments split and merged by all threads at once: each thread fills its
  // pieces with its own byte and finds it intact when it frees them (no two pieces overlap).
  std::atomic<int> overlaps{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&alloc, &overlaps, t] {
      std::vector<std::pair<void*, size_t>> live;
      for (int i = 0; i < 300; ++i) {
        const size_t bytes = (size_t{300} << 10) + static_cast<size_t>((i * 7919 + t * 104729) % (3 << 20));
        void* p = alloc.allocate(bytes);
        std::memset(p, t + 1, bytes);
        live.emplace_back(p, bytes);
        if (live.size() > 3) {
          const auto [q, n] = live[static_cast<size_t>(i) % live.size()];
          const char* c = static_cast<const char*>(q);
          if (c[0] != t + 1 || c[n / 2] != t + 1 || c[n - 1] != t + 1) ++overlaps;
          alloc.deallocate(q, n);
          live.erase(live.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(i) % live.size()));
        }
      }
      for (auto& [p, bytes] : live) alloc.deallocate(p, bytes);
    });
  }
  for (auto& th : threads) th.join();
  CHECK(overlaps.load() == 0);
  AllocatorStats s = alloc.stats();
  CHECK(s.in_use == 0);
  CHECK(s.system_allocs + s.cache_hits == 4 * 2000 + 4 * 300);

  Backend& backend = cpu();
  CHECK(backend.name() == "cpu");
  CHECK(backend.available());
  void* p = backend.allocate(256);
  const size_t in_use = backend.allocator_stats().in_use;
  CHECK(in_use >= 512);
  float host[4] = {1, 2, 3, 4}, back[4] = {};
  backend.copy_from_host(p, host, sizeof(host));
  backend.copy_to_host(back, p, sizeof(back));
  CHECK(std::equal(host, host + 4, back));
  backend.deallocate(p, 256);
  CHECK(backend.allocator_stats().in_use == in_use - 512);
}

TEST_CASE("dispatch runs the lambda once with the listed type of the dtype, and throws outside the list") {
  std::vector<size_t> sizes;
  dispatch<float, double>(DType::Float64, "test", [&]<class T> { sizes.push_back(sizeof(T)); });
  dispatch(AllTypes{}, DType::UInt8, "test", [&]<class T> { sizes.push_back(sizeof(T)); });
  CHECK(sizes == std::vector<size_t>{8, 1});
  CHECK_THROWS_WITH_AS(dispatch(FloatingTypes{}, DType::Int64, "cpu unary", [&]<class T> { sizes.push_back(0); }),
                       "cpu unary: dtype int64 is not supported", Error);
  CHECK(sizes.size() == 2);
  CHECK(SignedTypes::contains(DType::Int64));
  CHECK_FALSE(SignedTypes::contains(DType::Bool));
}

TEST_CASE("supports() is the kernels' type list: a supported dtype runs, an unsupported one throws") {
  Backend& backend = cpu();
  for (DType t : {DType::Float32, DType::Float64, DType::Int64, DType::Bool, DType::UInt8}) {
    CHECK(backend.supports(PrimitiveOp::copy, t));
    CHECK(backend.supports(PrimitiveOp::cast, t));
    CHECK(backend.supports(PrimitiveOp::fill, t));
    const bool f = is_floating(t);
    CHECK(backend.supports(PrimitiveOp::gemm, t) == f);
    CHECK(backend.supports(PrimitiveOp::unary, t) == f);
    CHECK(backend.supports(PrimitiveOp::compare, t) == (f || t == DType::Int64));
    CHECK(backend.supports(PrimitiveOp::reduce, t) == (f || t == DType::Int64));
    // The kernel agrees: it runs exactly for the supported dtypes (one 8-byte element, reduced to itself).
    alignas(8) unsigned char src[8] = {}, dst[8] = {};
    ReduceArgs r{ReduceOp::Sum, t, layout({1}), layout({1}), src, dst};
    if (backend.supports(PrimitiveOp::reduce, t)) {
      CHECK_NOTHROW(backend.reduce(r));
    } else {
      CHECK_THROWS_WITH_AS(backend.reduce(r), doctest::Contains("is not supported"), Error);
    }
  }
}

TEST_CASE("launch checks support once, on the way into the backend, and skips empty work") {
  Backend& backend = cpu();
  const int64_t bad[1] = {3};
  int64_t out[1] = {0};
  UnaryArgs args{UnaryOp::Neg, DType::Int64, layout({1}), bad, out};
  CHECK_THROWS_WITH_AS(launch<PrimitiveOp::unary>(backend, "neg", 1, args),
                       "neg: unary on int64 is not supported by the cpu backend", Error);
  double x[1] = {2}, y[1] = {0};
  UnaryArgs ok{UnaryOp::Neg, DType::Float64, layout({1}), x, y};
  launch<PrimitiveOp::unary>(backend, "neg", 0, ok);  // no work: the kernel is not called
  CHECK(y[0] == 0);
  launch<PrimitiveOp::unary>(backend, "neg", 1, ok);
  CHECK(y[0] == -2);
}
