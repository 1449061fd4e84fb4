// Dropout, batch, layer and group normalisation, max and average pooling (autograd/ops/layer_ops.cpp) and their layers
// (nn/layers.h): each op's output against a plain loop over the definition in float64 (the op table checks the
// gradients), the statistics' updates, the modes, the refusals, and a small classifier that uses them all.
#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "atelier.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::check_throws_with;

namespace {

constexpr DType f64 = DType::Float64;

Tensor random_f64(const Shape& shape, uint64_t stream, double lo = -1, double hi = 1) {
  return uniform(shape, lo, hi, RandomKey{77, stream, 0}, f64);
}

// Largest |a - b| over two tensors of one shape.
double max_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = a.to(f64).to_vector<double>(), y = b.to(f64).to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

// batch_norm by its definition, for x (N, C, L) as a flat vector: per channel c, over n and l.
struct ChannelStats {
  std::vector<double> mean, biased_var;
};
ChannelStats channel_stats(const std::vector<double>& x, int64_t n, int64_t c, int64_t l) {
  ChannelStats s{std::vector<double>(c, 0.0), std::vector<double>(c, 0.0)};
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < l; ++j) s.mean[ch] += x[(i * c + ch) * l + j];
    s.mean[ch] /= static_cast<double>(n * l);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < l; ++j) {
        const double d = x[(i * c + ch) * l + j] - s.mean[ch];
        s.biased_var[ch] += d * d;
      }
    }
    s.biased_var[ch] /= static_cast<double>(n * l);
  }
  return s;
}

// (x - mean) / sqrt(var + eps) * w + b per channel of x (N, C, L).
std::vector<double> normalise_channels(const std::vector<double>& x, int64_t n, int64_t c, int64_t l,
                                       const std::vector<double>& mean, const std::vector<double>& var,
                                       const std::vector<double>& w, const std::vector<double>& b, double eps) {
  std::vector<double> y(x.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t j = 0; j < l; ++j) {
        const int64_t k = (i * c + ch) * l + j;
        y[k] = (x[k] - mean[ch]) / std::sqrt(var[ch] + eps) * w[ch] + b[ch];
      }
  return y;
}

// A 2-d pooling by its definition: each window of the zero- (avg) or -inf- (max) padded input.
Tensor pool_by_loops(const Tensor& x, bool max, HW k, HW s, HW p) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t h_out = (h + 2 * p.h - k.h) / s.h + 1, w_out = (w + 2 * p.w - k.w) / s.w + 1;
  const std::vector<double> v = x.to(f64).to_vector<double>();
  std::vector<double> out;
  for (int64_t plane = 0; plane < n * c; ++plane) {
    for (int64_t a = 0; a < h_out; ++a) {
      for (int64_t b = 0; b < w_out; ++b) {
        double acc = max ? -INFINITY : 0.0;
        for (int64_t i = 0; i < k.h; ++i) {
          for (int64_t j = 0; j < k.w; ++j) {
            const int64_t r = a * s.h + i - p.h, q = b * s.w + j - p.w;
            if (r < 0 || r >= h || q < 0 || q >= w) continue;  // padding: never the maximum, 0 in the sum
            const double value = v[(plane * h + r) * w + q];
            acc = max ? std::max(acc, value) : acc + value;
          }
        }
        out.push_back(max ? acc : acc / static_cast<double>(k.h * k.w));
      }
    }
  }
  return from_vector(out, {n, c, h_out, w_out}, f64);
}

}  // namespace

TEST_CASE("dropout: zeroes about p of the elements, scales the rest by 1 / (1 - p), and is the identity in eval") {
  const Tensor x = ones({200000});
  manual_seed(5);
  const Tensor y = dropout(x, 0.3);
  const std::vector<float> v = y.to_vector<float>();
  const float kept = static_cast<float>(1.0 / 0.7);
  int64_t zeros_seen = 0;
  bool only_two_values = true;
  for (float e : v) {
    zeros_seen += e == 0.0f;
    only_two_values = only_two_values && (e == 0.0f || e == kept);
  }
  CHECK(only_two_values);
  CHECK(std::abs(static_cast<double>(zeros_seen) / 200000.0 - 0.3) < 0.005);
  // The same seed draws the same mask; the next call another.
  manual_seed(5);
  CHECK(testing::same_bits(dropout(x, 0.3), y));
  CHECK_FALSE(testing::same_bits(dropout(x, 0.3), y));
  // Eval mode and p = 0 return x itself; p = 1 zeroes everything.
  CHECK(dropout(x, 0.3, /*training=*/false).impl() == x.impl());
  CHECK(dropout(x, 0.0).impl() == x.impl());
  CHECK(max_diff(dropout(x, 1.0), zeros({200000})) == 0);
}

TEST_CASE("dropout: the gradient is the mask") {
  Tensor x = random_f64({6, 50}, 1);
  x.requires_grad_(true);
  manual_seed(9);
  const Tensor y = dropout(x, 0.4);
  y.sum().backward();
  // y = x * mask, so the gradient of sum(y) is the mask: 1 / 0.6 where kept, 0 where dropped.
  const std::vector<double> g = x.grad().to_vector<double>(), yv = y.to_vector<double>(), xv = x.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    CHECK(g[i] == doctest::Approx(yv[i] == 0.0 ? 0.0 : 1.0 / 0.6));
    if (yv[i] != 0.0) CHECK(yv[i] == doctest::Approx(xv[i] / 0.6));
  }
}

TEST_CASE("dropout: refuses p outside [0, 1] and integer input") {
  check_throws_with([] { dropout(ones({3}), -0.1); }, {"dropout: p must be in [0, 1], got -0.1"});
  check_throws_with([] { dropout(ones({3}), 1.5); }, {"got 1.5"});
  check_throws_with([] { dropout(zeros({3}, DType::Int64), 0.5); }, {"dropout: input must be float32 or float64"});
  check_throws_with([] { nn::Dropout(2.0); }, {"Dropout: p must be in [0, 1], got 2"});
}

TEST_CASE("batch_norm: training normalises by the batch's statistics and moves the running ones; eval uses them") {
  const int64_t n = 4, c = 3, l = 10;
  const Tensor x = random_f64({n, c, 2, 5}, 2, -2, 3);
  const Tensor w = random_f64({c}, 3), b = random_f64({c}, 4);
  Tensor r_mean = random_f64({c}, 5), r_var = random_f64({c}, 6, 0.5, 2);
  const std::vector<double> r_mean0 = r_mean.to_vector<double>(), r_var0 = r_var.to_vector<double>();
  const std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
  const double momentum = 0.2, eps = 1e-3;

  const Tensor y = batch_norm(x, r_mean, r_var, w, b, /*training=*/true, momentum, eps);
  const ChannelStats s = channel_stats(xv, n, c, l);
  const std::vector<double> want = normalise_channels(xv, n, c, l, s.mean, s.biased_var, wv, bv, eps);
  CHECK(max_diff(y, from_vector(want, x.shape(), f64)) < 1e-12);
  // running = (1 - momentum) running + momentum batch; the variance unbiased (n l / (n l - 1)), as PyTorch.
  for (int64_t ch = 0; ch < c; ++ch) {
    CHECK(r_mean.to_vector<double>()[ch] == doctest::Approx(0.8 * r_mean0[ch] + 0.2 * s.mean[ch]).epsilon(1e-12));
    const double unbiased = s.biased_var[ch] * static_cast<double>(n * l) / static_cast<double>(n * l - 1);
    CHECK(r_var.to_vector<double>()[ch] == doctest::Approx(0.8 * r_var0[ch] + 0.2 * unbiased).epsilon(1e-12));
  }

  const std::vector<double> r_mean1 = r_mean.to_vector<double>(), r_var1 = r_var.to_vector<double>();
  const Tensor y_eval = batch_norm(x, r_mean, r_var, w, b, /*training=*/false, momentum, eps);
  const std::vector<double> want_eval = normalise_channels(xv, n, c, l, r_mean1, r_var1, wv, bv, eps);
  CHECK(max_diff(y_eval, from_vector(want_eval, x.shape(), f64)) < 1e-12);
  CHECK(r_mean.to_vector<double>() == r_mean1);  // eval leaves the statistics alone
  // Without running statistics, eval mode normalises by the batch's too.
  CHECK(max_diff(batch_norm(x, Tensor(), Tensor(), w, b, /*training=*/false, momentum, eps), y) < 1e-12);
}

TEST_CASE("batch_norm: refuses mismatched shapes and a single value per channel, naming them") {
  const Tensor x = zeros({4, 3, 5});
  check_throws_with([&] { batch_norm(x, Tensor(), Tensor(), ones({4}), Tensor(), true); },
                    {"batch_norm: weight must be [3] for input [4, 3, 5], got [4]"});
  check_throws_with([&] { batch_norm(x, zeros({3}), Tensor(), Tensor(), Tensor(), true); },
                    {"running_mean and running_var must be given together"});
  check_throws_with(
      [&] {
        batch_norm(zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true);
      },
      {"more than one value per channel", "[1, 3]"});
  check_throws_with([&] { batch_norm(zeros({5}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                    {"batch_norm: input must be (N, C, ...), got [5]"});
  check_throws_with([&] { batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 1.5); },
                    {"momentum must be in [0, 1], got 1.5"});
}

TEST_CASE("layer_norm: each sample over its last dims, then the elementwise affine") {
  const Tensor x = random_f64({2, 3, 4}, 7, -1, 4);
  const Tensor w = random_f64({3, 4}, 8), b = random_f64({3, 4}, 9);
  const Tensor y = layer_norm(x, {3, 4}, w, b, 1e-4);
  // Each sample of x as one "channel" of 12 values: the same definition as batch_norm's over (1, 2, 12).
  const std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<double> want(xv.size());
  for (int64_t s = 0; s < 2; ++s) {
    const std::vector<double> sample(xv.begin() + s * 12, xv.begin() + (s + 1) * 12);
    const ChannelStats st = channel_stats(sample, 1, 1, 12);
    for (int64_t i = 0; i < 12; ++i)
      want[s * 12 + i] = (sample[i] - st.mean[0]) / std::sqrt(st.biased_var[0] + 1e-4) * wv[i] + bv[i];
  }
  CHECK(max_diff(y, from_vector(want, x.shape(), f64)) < 1e-12);
  check_throws_with(
      [&] {
        layer_norm(x, {4, 3});
      },
      {"layer_norm: normalized_shape [4, 3] must be the last dims of the input [2, 3, 4]"});
  check_throws_with([&] { layer_norm(x, {4}, ones({3})); },
                    {"layer_norm: weight must be [4] for input [2, 3, 4], got [3]"});
}

TEST_CASE("layer_norm over many short rows: y and every gradient by their definition") {
  // 300 rows: more than the CPU's 64-row flushes of each thread's column sums, at one thread or a few, and rows of 5
  // go through the CPU's steps 16 at a time (300 = 18 * 16 + 12).
  const int64_t rows = 300, len = 5;
  Tensor x = random_f64({rows, len}, 30, -1, 2);
  const Tensor r = random_f64({rows, len}, 31);
  Tensor w = random_f64({len}, 32), b = random_f64({len}, 33);
  x.requires_grad_(true);
  w.requires_grad_(true);
  b.requires_grad_(true);
  const Tensor y = layer_norm(x, {len}, w, b, 1e-5);
  (y * r).sum().backward();
  const std::vector<double> xv = x.to_vector<double>(), rv = r.to_vector<double>(), wv = w.to_vector<double>(),
                            bv = b.to_vector<double>();
  std::vector<double> want_y(rows * len), want_x(rows * len), want_w(len, 0.0), want_b(len, 0.0);
  for (int64_t row = 0; row < rows; ++row) {
    const std::vector<double> sample(xv.begin() + row * len, xv.begin() + (row + 1) * len);
    const ChannelStats st = channel_stats(sample, 1, 1, len);
    const double rstd = 1 / std::sqrt(st.biased_var[0] + 1e-5);
    double mean_gw = 0, mean_gwx = 0;  // the row's means of g w and g w xhat
    for (int64_t i = 0; i < len; ++i) {
      const double xhat = (sample[i] - st.mean[0]) * rstd, g = rv[row * len + i];
      want_y[row * len + i] = xhat * wv[i] + bv[i];
      want_w[i] += g * xhat;
      want_b[i] += g;
      mean_gw += g * wv[i] / len;
      mean_gwx += g * wv[i] * xhat / len;
    }
    for (int64_t i = 0; i < len; ++i) {
      const double xhat = (sample[i] - st.mean[0]) * rstd;
      want_x[row * len + i] = rstd * (rv[row * len + i] * wv[i] - mean_gw - xhat * mean_gwx);
    }
  }
  CHECK(max_diff(y, from_vector(want_y, {rows, len}, f64)) < 1e-12);
  CHECK(max_diff(x.grad(), from_vector(want_x, {rows, len}, f64)) < 1e-10);
  CHECK(max_diff(w.grad(), from_vector(want_w, {len}, f64)) < 1e-11);
  CHECK(max_diff(b.grad(), from_vector(want_b, {len}, f64)) < 1e-11);
}

TEST_CASE("batch_norm on (N, C) with many rows: y and the weight and bias gradients by their definition") {
  // 150 rows of 4 channels: the CPU sums such short runs as columns, 64 rows a chunk (three chunks here).
  const int64_t n = 150, c = 4;
  const Tensor x = random_f64({n, c}, 40, -1, 3), r = random_f64({n, c}, 41);
  Tensor w = random_f64({c}, 42), b = random_f64({c}, 43);
  w.requires_grad_(true);
  b.requires_grad_(true);
  const Tensor y = batch_norm(x, Tensor(), Tensor(), w, b, /*training=*/true, 0.1, 1e-5);
  (y * r).sum().backward();
  const std::vector<double> xv = x.to_vector<double>(), rv = r.to_vector<double>();
  const ChannelStats st = channel_stats(xv, n, c, 1);
  CHECK(max_diff(y, from_vector(normalise_channels(xv, n, c, 1, st.mean, st.biased_var, w.to_vector<double>(),
                                                   b.to_vector<double>(), 1e-5),
                                {n, c}, f64)) < 1e-12);
  std::vector<double> want_w(c, 0.0), want_b(c, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t ch = 0; ch < c; ++ch) {
      want_w[ch] += rv[i * c + ch] * (xv[i * c + ch] - st.mean[ch]) / std::sqrt(st.biased_var[ch] + 1e-5);
      want_b[ch] += rv[i * c + ch];
    }
  }
  CHECK(max_diff(w.grad(), from_vector(want_w, {c}, f64)) < 1e-11);
  CHECK(max_diff(b.grad(), from_vector(want_b, {c}, f64)) < 1e-11);
}

// Relative to the float64 result: the largest |a - b| over the largest |b|.
double relative_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> y = b.to(f64).to_vector<double>();
  double scale = 0;
  for (double v : y) scale = std::max(scale, std::abs(v));
  return max_diff(a, b) / scale;
}

TEST_CASE("batch_norm, layer_norm and group_norm in float32: within float rounding of float64, far from 0 too") {
  // The CPU computes in float (vectors of it, the sums folded into double every chunk); the same values in float64
  // are the reference. Sizes that leave tails past whole vector registers, rows longer than one chunk, and
  // batch norm's short runs that the CPU sums as columns, and layer norm with more rows than a flush.
  struct Case {
    int kind;  // 0 batch_norm, 1 layer_norm, 2 group_norm (4 groups)
    Shape shape;
  };
  for (const double offset : {0.0, 1e3}) {
    for (const Case& c : {Case{0, {8, 4, 301}}, Case{0, {150, 6}}, Case{0, {20, 5, 3}}, Case{1, {6, 2100}},
                          Case{2, {3, 8, 5, 7}}, Case{2, {20, 32}}, Case{1, {300, 37}}}) {
      CAPTURE(offset);
      std::ostringstream shape;
      shape << c.shape;
      CAPTURE(shape.str());
      const int64_t features = c.kind == 1 ? c.shape.back() : c.shape[1];
      const Tensor x32 = (random_f64(c.shape, 20, offset - 2, offset + 3)).to(DType::Float32);
      const Tensor w32 = random_f64({features}, 21, 0.5, 2).to(DType::Float32);
      const Tensor b32 = random_f64({features}, 22).to(DType::Float32);
      const Tensor r32 = random_f64(c.shape, 23).to(DType::Float32);
      std::vector<Tensor> got, want;
      for (const DType dtype : {DType::Float32, f64}) {
        Tensor x = x32.to(dtype).detach(), w = w32.to(dtype).detach(), b = b32.to(dtype).detach();
        x.requires_grad_(true);
        w.requires_grad_(true);
        b.requires_grad_(true);
        const Tensor y = c.kind == 0   ? batch_norm(x, Tensor(), Tensor(), w, b, /*training=*/true, 0.1, 1e-5)
                         : c.kind == 1 ? layer_norm(x, {features}, w, b, 1e-5)
                                       : group_norm(x, 4, w, b, 1e-5);
        (y * r32.to(dtype)).sum().backward();
        std::vector<Tensor>& out = dtype == f64 ? want : got;
        out = {y, x.grad(), w.grad(), b.grad()};
      }
      // y and the bias gradient keep float's precision (a few roundings); the others read the saved mean, rounded
      // to float, so an offset mean costs them its rounding over the spread (as PyTorch's saved float mean does).
      const std::string names[] = {"y", "grad x", "grad weight", "grad bias"};
      const double bounds[] = {1e-6, 1e-6 + 3e-8 * offset, 1e-6 + 3e-8 * offset, 1e-6};
      for (int i = 0; i < 4; ++i) {
        CAPTURE(names[i]);
        CHECK(relative_diff(got[i], want[i]) < bounds[i]);
      }
    }
  }
}

TEST_CASE("max_pool2d and avg_pool2d: every window by the definition, padded, strided and rectangular") {
  const Tensor x = random_f64({2, 3, 7, 6}, 10, -3, 1);
  struct Case {
    HW k, s, p;
  };
  for (const Case& c :
       {Case{2, 2, 0}, Case{3, 2, 1}, Case{{2, 3}, {1, 2}, {1, 1}}, Case{3, 1, 0}, Case{{1, 2}, 3, 0}}) {
    INFO("kernel " << c.k << ", stride " << c.s << ", padding " << c.p);
    CHECK(max_diff(max_pool2d(x, c.k, c.s, c.p), pool_by_loops(x, true, c.k, c.s, c.p)) == 0);
    CHECK(max_diff(avg_pool2d(x, c.k, c.s, c.p), pool_by_loops(x, false, c.k, c.s, c.p)) < 1e-15);
  }
  // Images so small that no window lies inside them: every output is at the border.
  const Tensor tiny = random_f64({1, 2, 2, 3}, 11);
  for (const Case& c : {Case{2, 2, 1}, Case{{2, 3}, 1, {1, 1}}, Case{{2, 3}, 2, 0}}) {
    INFO("tiny, kernel " << c.k << ", stride " << c.s << ", padding " << c.p);
    CHECK(max_diff(max_pool2d(tiny, c.k, c.s, c.p), pool_by_loops(tiny, true, c.k, c.s, c.p)) == 0);
    CHECK(max_diff(avg_pool2d(tiny, c.k, c.s, c.p), pool_by_loops(tiny, false, c.k, c.s, c.p)) < 1e-15);
  }
  // stride defaults to the kernel.
  CHECK(max_diff(max_pool2d(x, 3), max_pool2d(x, 3, 3)) == 0);
}

TEST_CASE("max_pool2d: a window's gradient goes to its first maximum; a NaN is the maximum") {
  Tensor x = from_vector(std::vector<double>{1, 5, 2, 2, 3, 0, 2, 2}, {1, 1, 2, 4}, f64);
  x.requires_grad_(true);
  max_pool2d(x, 2).sum().backward();
  // Windows {1, 5, 3, 0} (maximum 5) and {2, 2, 2, 2} (four tied maxima: the first, in row-major order, as PyTorch).
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 1, 1, 0, 0, 0, 0, 0});
  // Overlapping windows (3x3, stride 1) that share their maximum: it gets both windows' gradients.
  Tensor y = from_vector(std::vector<double>{0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0}, {1, 1, 3, 4}, f64);
  y.requires_grad_(true);
  max_pool2d(y, 3, 1).sum().backward();
  CHECK(y.grad().to_vector<double>()[5] == 2);
  // A NaN anywhere in a window is its maximum (and takes its gradient), before or after the largest number.
  const Tensor z = from_vector(std::vector<double>{NAN, 5, 7, 2, 1, 2, 3, NAN}, {1, 1, 2, 4}, f64);
  const std::vector<double> pooled = max_pool2d(z, 2).to_vector<double>();
  CHECK(std::isnan(pooled[0]));
  CHECK(std::isnan(pooled[1]));
}

TEST_CASE("max_pool2d and avg_pool2d: refuse what they cannot pool, naming it") {
  check_throws_with([] { max_pool2d(zeros({3, 4, 4}), 2); }, {"max_pool2d: input must be (N, C, H, W), got [3, 4, 4]"});
  check_throws_with(
      [] {
        avg_pool2d(zeros({1, 1, 4, 4}), 2, 2, 2);
      },
      {"avg_pool2d: padding must be in [0, kernel / 2], got padding 2 for kernel 2"});
  check_throws_with(
      [] {
        max_pool2d(zeros({1, 1, 2, 5}), 3);
      },
      {"max_pool2d: kernel 3 is larger than the input [1, 1, 2, 5] padded by 0"});
  check_throws_with([] { avg_pool2d(zeros({1, 1, 4, 4}), 2, 0); }, {"kernel and stride must be at least 1"});
}

TEST_CASE("BatchNorm2d: PyTorch's names, training moves the buffers and counts batches, eval reads them") {
  nn::BatchNorm2d bn(3, 1e-5, 0.5);
  std::vector<std::string> names;
  for (const auto& [name, t] : bn.state_dict()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"weight", "bias", "running_mean", "running_var", "num_batches_tracked"});
  CHECK(bn.num_batches_tracked.dtype() == DType::Int64);
  CHECK(bn.num_parameters() == 6);

  const Tensor x = uniform({4, 3, 5, 5}, 1, 3, RandomKey{3, 1, 0});
  const Tensor y = bn(x);
  bn(x);
  CHECK(bn.num_batches_tracked.item<int64_t>() == 2);
  // Two steps of momentum 0.5 from 0 toward the batch mean (about 2): three quarters of the way.
  const std::vector<float> mean = bn.running_mean.to_vector<float>();
  const std::vector<float> batch_mean = x.mean({0, 2, 3}).to_vector<float>();
  for (int c = 0; c < 3; ++c) CHECK(mean[c] == doctest::Approx(0.75 * batch_mean[c]).epsilon(1e-5));
  CHECK(std::abs(y.mean().item<float>()) < 1e-5);  // weight 1, bias 0: each channel's mean 0

  bn.eval();
  const Tensor running = bn.running_mean.clone();
  const Tensor y_eval = bn(x);
  CHECK(bn.num_batches_tracked.item<int64_t>() == 2);
  CHECK(testing::same_bits(bn.running_mean, running));
  CHECK(max_diff(y_eval, batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, false)) == 0);

  bn.to(DType::Float64);  // the floating buffers follow, the count stays an integer
  CHECK(bn.running_var.dtype() == f64);
  CHECK(bn.num_batches_tracked.dtype() == DType::Int64);
  check_throws_with(
      [&] {
        bn(zeros({2, 4, 5, 5}, f64));
      },
      {"BatchNorm2d(3): input must be (N, C, H, W) with C = 3, got [2, 4, 5, 5]"});
  check_throws_with([&] { bn(zeros({2, 3}, f64)); }, {"got [2, 3]"});
}

TEST_CASE("BatchNorm1d: (N, C) and (N, C, L); without running statistics the batch's in both modes") {
  nn::BatchNorm1d bn(2, 1e-5, 0.1, /*affine=*/false, /*track_running_stats=*/false);
  CHECK(bn.state_dict().empty());
  const Tensor x = uniform({6, 2}, -1, 1, RandomKey{3, 2, 0});
  const Tensor y = bn(x);
  bn.eval();
  CHECK(max_diff(bn(x), y) == 0);
  CHECK(bn(uniform({3, 2, 4}, -1, 1, RandomKey{3, 3, 0})).shape() == Shape{3, 2, 4});
  check_throws_with([&] { bn(zeros({3, 2, 4, 4})); }, {"BatchNorm1d(2): input must be (N, C) or (N, C, L)"});
}

TEST_CASE("group_norm: each sample's groups of channels over the other dims, then the per-channel affine") {
  // 7 samples: 21 groups of 10 elements, which the CPU takes 16 at a time (a whole batch and part of one).
  const int64_t n = 7, c = 6, groups = 3, hw = 5;
  const Tensor x = random_f64({n, c, 1, hw}, 50, -1, 4);
  const Tensor w = random_f64({c}, 51), b = random_f64({c}, 52);
  const Tensor y = group_norm(x, groups, w, b, 1e-4);
  // Each (sample, group) as one "channel" of (c / groups) hw values, as batch_norm's definition sees (1, 1, L).
  const std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
  const int64_t run = c / groups * hw;
  std::vector<double> want(xv.size());
  for (int64_t g = 0; g < n * groups; ++g) {
    const std::vector<double> part(xv.begin() + g * run, xv.begin() + (g + 1) * run);
    const ChannelStats st = channel_stats(part, 1, 1, run);
    for (int64_t i = 0; i < run; ++i) {
      const int64_t channel = (g % groups) * (c / groups) + i / hw;
      want[g * run + i] = (part[i] - st.mean[0]) / std::sqrt(st.biased_var[0] + 1e-4) * wv[channel] + bv[channel];
    }
  }
  CHECK(max_diff(y, from_vector(want, x.shape(), f64)) < 1e-12);
  // num_groups = C: instance normalisation, each sample's channel over its own values.
  const Tensor inst = group_norm(x, c);
  for (int64_t plane = 0; plane < n * c; ++plane) {
    const std::vector<double> part(xv.begin() + plane * hw, xv.begin() + (plane + 1) * hw);
    const ChannelStats st = channel_stats(part, 1, 1, hw);
    for (int64_t i = 0; i < hw; ++i) want[plane * hw + i] = (part[i] - st.mean[0]) / std::sqrt(st.biased_var[0] + 1e-5);
  }
  CHECK(max_diff(inst, from_vector(want, x.shape(), f64)) < 1e-12);
  check_throws_with([&] { group_norm(x, 4); },
                    {"group_norm: num_groups 4 must divide the input's 6 channels (input [7, 6, 1, 5])"});
  check_throws_with([&] { group_norm(x, 3, ones({3})); },
                    {"group_norm: weight must be [6] for input [7, 6, 1, 5], got [3]"});
  check_throws_with([&] { group_norm(ones({4}), 1); }, {"group_norm: input must be (N, C, ...), got [4]"});
}

TEST_CASE("GroupNorm: PyTorch's names, the op in both modes, refusals naming the sizes") {
  nn::GroupNorm gn(2, 4);
  CHECK(gn.num_parameters() == 8);
  CHECK(gn.named_parameters().size() == 2);
  const Tensor x = uniform({3, 4, 2, 2}, -1, 1, RandomKey{3, 6, 0});
  CHECK(max_diff(gn(x), group_norm(x, 2, gn.weight, gn.bias)) == 0);
  gn.eval();
  CHECK(max_diff(gn(x), group_norm(x, 2, gn.weight, gn.bias)) == 0);
  CHECK(max_diff(nn::functional::group_norm(x, 4), group_norm(x, 4)) == 0);
  CHECK(nn::GroupNorm(4, 4, 1e-5, /*affine=*/false).num_parameters() == 0);
  check_throws_with([] { nn::GroupNorm(3, 4); }, {"GroupNorm(3, 4): num_groups must divide num_channels"});
  check_throws_with(
      [&] {
        gn(ones({3, 5, 2}));
      },
      {"GroupNorm(2, 4): input must be (N, C, ...) with C = 4, got [3, 5, 2]"});
}

TEST_CASE("Dropout, LayerNorm, MaxPool2d, AvgPool2d: the layers call their ops and follow the mode") {
  nn::Dropout drop(0.5);
  const Tensor x = ones({1000});
  manual_seed(1);
  const Tensor by_layer = drop(x);
  manual_seed(1);
  CHECK(testing::same_bits(by_layer, dropout(x, 0.5)));
  drop.eval();
  CHECK(drop(x).impl() == x.impl());

  nn::LayerNorm ln({4});
  CHECK(ln.num_parameters() == 8);
  const Tensor v = uniform({3, 4}, -1, 1, RandomKey{3, 4, 0});
  CHECK(max_diff(ln(v), layer_norm(v, {4}, ln.weight, ln.bias)) == 0);
  check_throws_with([] { nn::LayerNorm({}); }, {"normalized_shape must be non-empty"});

  const Tensor img = uniform({2, 3, 8, 8}, -1, 1, RandomKey{3, 5, 0});
  nn::MaxPool2d pool(2);
  CHECK(pool.stride == HW{2});
  CHECK(max_diff(pool(img), max_pool2d(img, 2)) == 0);
  CHECK(max_diff(nn::AvgPool2d(3, 2, 1)(img), avg_pool2d(img, 3, 2, 1)) == 0);
  // nn::functional's forms are the same ops.
  namespace F = nn::functional;
  CHECK(max_diff(F::max_pool2d(img, 2), max_pool2d(img, 2)) == 0);
  CHECK(max_diff(F::avg_pool2d(img, 3, 1, 1), avg_pool2d(img, 3, 1, 1)) == 0);
  CHECK(max_diff(F::layer_norm(v, {4}), layer_norm(v, {4})) == 0);
  CHECK(max_diff(F::batch_norm(img, Tensor(), Tensor(), Tensor(), Tensor(), true),
                 batch_norm(img, Tensor(), Tensor(), Tensor(), Tensor(), true)) == 0);
  CHECK(F::dropout(x, 0.5, /*training=*/false).impl() == x.impl());
}

TEST_CASE("a classifier with batch normalisation, pooling and dropout learns, and its checkpoint round-trips") {
  // Two classes of 8x8 images: a bright upper half or a bright lower half, with noise.
  manual_seed(21);
  const int64_t n = 64;
  Tensor images = uniform({n, 1, 8, 8}, -0.5, 0.5, RandomKey{4, 1, 0});
  std::vector<int64_t> labels(n);
  {
    NoGradGuard no_grad;
    for (int64_t i = 0; i < n; ++i) {
      labels[i] = i % 2;
      images.slice(0, i, i + 1).slice(2, labels[i] * 4, labels[i] * 4 + 4).add_(1.0);
    }
  }
  const Tensor targets = from_vector(labels, {n});
  auto make_model = [] {
    return std::make_shared<nn::Sequential>(
        std::make_shared<nn::Conv2d>(1, 4, 3, 1, 1), std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(), std::make_shared<nn::Dropout>(0.2),
        std::make_shared<nn::LayerNorm>(Shape{64}), std::make_shared<nn::Linear>(64, 2));
  };
  auto model = make_model();
  nn::Adam adam(model->parameters(), 1e-2);
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    adam.zero_grad();
    Tensor loss = cross_entropy((*model)(images), targets);
    loss.backward();
    adam.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  CHECK(last < 0.25 * first);
  model->eval();
  CHECK(testing::argmax_accuracy((*model)(images), targets) == 1.0);

  testing::TempDir dir;
  const std::string path = dir.path + "/classifier.safetensors";
  nn::save_checkpoint(path, *model);
  auto copy = make_model();
  nn::load_checkpoint(path, *copy);
  copy->eval();
  CHECK(testing::same_bits((*copy)(images), (*model)(images)));
  CHECK(std::dynamic_pointer_cast<nn::BatchNorm2d>((*copy)[1])->num_batches_tracked.item<int64_t>() == 30);
}
