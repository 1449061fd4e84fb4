// The autograd engine: gradient values, accumulation, retain_graph, no-grad mode, detach, and the version
// checks that turn an in-place write to a saved tensor into an error at backward time.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "atelier.h"
#include "autograd/record.h"
#include "tensor/raw_ops.h"
#include "tests/test_util.h"

using namespace atelier;

namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

std::string backward_error(const Tensor& loss) {
  try {
    loss.backward();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("backward computes hand-derived gradients") {
  Tensor x = tensor({1, 2, 3}, {}, DType::Float64).requires_grad_();
  Tensor w = tensor({0.5, -1, 2}, {}, DType::Float64).requires_grad_();
  Tensor loss = (x * w + x * x).sum();  // d/dx = w + 2x, d/dw = x
  CHECK(loss.item() == doctest::Approx(0.5 - 2 + 6 + 1 + 4 + 9));
  loss.backward();
  CHECK(values(x.grad()) == std::vector<double>{2.5, 3, 8});
  CHECK(values(w.grad()) == std::vector<double>{1, 2, 3});
  CHECK(x.is_leaf());
  CHECK_FALSE(loss.is_leaf());
  CHECK(loss.grad_fn()->name() == "sum");
}

TEST_CASE("gradients accumulate across backward calls until reset") {
  Tensor x = tensor({1, 2}).requires_grad_();
  (x * 3.0).sum().backward();
  (x * x).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{5, 7});
  x.set_grad(Tensor());
  (x * 3.0).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{3, 3});
}

TEST_CASE("a gradient shared by two leaves is not aliased") {
  // add passes the same gradient tensor to both inputs; an in-place change to one .grad must not move the other.
  Tensor a = zeros({2}).requires_grad_();
  Tensor b = zeros({2}).requires_grad_();
  (a + b).sum().backward();
  a.grad().mul_(10.0);
  CHECK(values(b.grad()) == std::vector<double>{1, 1});
  // There sum's gradient reaches add as an expanded (strided) view, which a leaf copies anyway. Through a product
  // it is a fresh contiguous tensor, the case where the engine must see that two leaves hold it.
  Tensor c = zeros({2}).requires_grad_();
  Tensor d = zeros({2}).requires_grad_();
  ((c + d) * tensor({1, 2})).sum().backward();
  c.grad().mul_(10.0);
  CHECK(values(c.grad()) == std::vector<double>{10, 20});
  CHECK(values(d.grad()) == std::vector<double>{1, 2});
}

TEST_CASE("a column-major matmul operand (linear's W^T) gets its gradient in its own layout, kept without a copy") {
  // Small integers: every product and sum is exact in float64, so either formula's order gives the same bits.
  const Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float64);
  const Tensor w0 = tensor({1, -1, 2, 0, 3, -2, 1, 1, 0, 2, -3, 1}, {4, 3}, DType::Float64);
  const Tensor g = tensor({1, 2, -1, 3, 0, -2, 1, 1}, {2, 4}, DType::Float64);
  Tensor w = w0.clone().requires_grad_();
  Tensor b = zeros({4}, DType::Float64).requires_grad_();
  Tensor y = linear(x, w, b);  // x W^T + b: W^T is column-major
  Profiler profiler(backend_for(Device::cpu()));
  y.backward(g);
  int64_t copies = 0;
  for (const ProfileRow& row : profiler.report().rows) copies += row.op == PrimitiveOp::copy ? row.calls : 0;
  CHECK(copies == 0);  // the engine kept both gradients as computed (one was a transposed copy before)
  REQUIRE(w.grad().is_contiguous());
  CHECK(values(w.grad()) == values(matmul(g.t(), x)));  // dW = g^T x
  CHECK(values(b.grad()) == values(g.sum({0})));

  // The same for a column-major left operand: C = A^T B with A a leaf.
  Tensor a = tensor({1, 0, 2, -1, 3, 1}, {3, 2}, DType::Float64).requires_grad_();
  const Tensor rhs = tensor({2, 1, -1, 0, 1, 3, 1, 2, -2, 1, 0, 1}, {3, 4}, DType::Float64);
  Tensor c = matmul(a.t(), rhs);  // (2, 4)
  c.backward(g);
  REQUIRE(a.grad().is_contiguous());
  CHECK(values(a.grad()) == values(matmul(rhs, g.t())));  // dA = B g^T, (3, 2)
}

TEST_CASE("amax's gradient is split evenly between ties, and a NaN maximum gives its row NaN, as the mask formula") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = tensor({1, 3, 3, 2, 0, 2, 5, 4, 3, nan, 1, 2}, {4, 3}, DType::Float64).requires_grad_();
  amax(x, {1}).backward(tensor({1, 2, 4, 8}, {}, DType::Float64));
  const std::vector<double> g = values(x.grad());
  const std::vector<double> want = {0, 0.5, 0.5, 1, 0, 1, 4, 0, 0};
  CHECK(std::vector<double>(g.begin(), g.begin() + 9) == want);
  for (size_t i = 9; i < 12; ++i) CHECK(std::isnan(g[i]));  // count 0: 8 / 0 = inf, times the mask's 0

  // Over both dimensions, kept: one share of 3 ties (in float32, the same bits as g / count * mask).
  Tensor y = tensor({1, 7, 7, 2, 7, 0}, {2, 3}).requires_grad_();
  amax(y, {0, 1}, true).backward(tensor({1.5f}, {1, 1}));
  const float share = 1.5f / 3.0f;
  CHECK(y.grad().to_vector<float>() == std::vector<float>{0, share, share, 0, share, 0});
}

TEST_CASE(
    "cat's disjoint gradient slices are kept by their leaves without a copy; shared or overlapping ones are copied") {
  Tensor a = zeros({2, 3}).requires_grad_();
  Tensor b = zeros({1, 3}).requires_grad_();
  Tensor y = cat({a, b}, 0) * tensor({1, 2, 3});  // a fresh gradient for cat, sliced for a and b
  Profiler profiler(backend_for(Device::cpu()));
  y.sum().backward();
  int64_t copies = 0;
  for (const ProfileRow& row : profiler.report().rows) copies += row.op == PrimitiveOp::copy ? row.calls : 0;
  CHECK(copies == 0);  // one of the two slices was copied before
  CHECK(a.grad().storage() == b.grad().storage());
  a.grad().mul_(10.0);  // in place on a's slice: b's elements are elsewhere
  CHECK(values(a.grad()) == std::vector<double>{10, 20, 30, 10, 20, 30});
  CHECK(values(b.grad()) == std::vector<double>{1, 2, 3});

  // A seed the caller still holds: its storage is not the slices' alone, so both are copied.
  a.set_grad(Tensor());
  b.set_grad(Tensor());
  Tensor seed = ones({3, 3});
  cat({a, b}, 0).backward(seed);
  seed.mul_(7.0);
  CHECK(values(a.grad()) == std::vector<double>(6, 1.0));
  CHECK(values(b.grad()) == std::vector<double>(3, 1.0));

  // Overlapping slices (a formula handing rows 0-1 and 1-2 of one gradient to two leaves): copied, so an in-place
  // update of one does not reach the other.
  Tensor c = zeros({2, 2}).requires_grad_();
  Tensor d = zeros({2, 2}).requires_grad_();
  Tensor out = record("overlap", zeros({3, 2}), {c, d}, [](const auto& g, const auto&) {
    return std::vector<Tensor>{raw::slice(g[0], 0, 0, 2, 1), raw::slice(g[0], 0, 1, 3, 1)};
  });
  (out * tensor({1, 2, 3, 4, 5, 6}, {3, 2})).sum().backward();  // a gradient only the two slices hold
  c.grad().mul_(10.0);
  CHECK(values(c.grad()) == std::vector<double>{10, 20, 30, 40});
  CHECK(values(d.grad()) == std::vector<double>{3, 4, 5, 6});
}

TEST_CASE("a second backward needs retain_graph") {
  Tensor x = tensor({2}).requires_grad_();
  Tensor y = (x * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  CHECK(values(x.grad()) == std::vector<double>{8});
  std::string msg = backward_error(y);
  CHECK(msg.find("second time") != std::string::npos);
  CHECK(msg.find("retain_graph") != std::string::npos);
}

TEST_CASE("backward needs a seed for non-scalars and a graph to walk") {
  Tensor x = ones({2, 2}).requires_grad_();
  Tensor y = x * 2.0;
  std::string msg = backward_error(y);
  CHECK(msg.find("one-element") != std::string::npos);
  CHECK(msg.find("[2, 2]") != std::string::npos);
  y.backward(full({2, 2}, 0.5));
  CHECK(values(x.grad()) == std::vector<double>{1, 1, 1, 1});
  CHECK(backward_error(ones({1})).find("does not require grad") != std::string::npos);
}

TEST_CASE("NoGradGuard records nothing; detach cuts the graph") {
  Tensor x = ones({3}).requires_grad_();
  {
    NoGradGuard no_grad;
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    CHECK_FALSE(grad_mode_enabled());
  }
  CHECK(grad_mode_enabled());
  Tensor d = (x * 2.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  Tensor y = (d * x).sum();
  y.backward();
  CHECK(values(x.grad()) == std::vector<double>{2, 2, 2});
}

TEST_CASE("an in-place write to a saved tensor makes backward throw, naming the op") {
  SUBCASE("directly") {
    Tensor w = ones({3}).requires_grad_();
    Tensor x = tensor({1, 2, 3});  // saved by mul for w's gradient
    Tensor loss = (x * w).sum();
    x.add_(1.0);
    std::string msg = backward_error(loss);
    CHECK(msg.find("mul") != std::string::npos);
    CHECK(msg.find("modified by an in-place operation") != std::string::npos);
  }
  SUBCASE("through a view") {
    Tensor w = ones({2, 2}).requires_grad_();
    Tensor x = tensor({1, 2, 3, 4}, {2, 2});
    Tensor loss = matmul(x, w).sum();
    x.slice(0, 1, 2).fill_(0.0);
    std::string msg = backward_error(loss);
    CHECK(msg.find("matmul") != std::string::npos);
    CHECK(msg.find("in-place") != std::string::npos);
  }
  SUBCASE("an output saved by its own op") {
    Tensor x = ones({2}).requires_grad_();
    Tensor y = exp(x);  // exp saves its output
    Tensor loss = y.sum();
    {
      NoGradGuard no_grad;
      y.mul_(2.0);
    }
    CHECK(backward_error(loss).find("exp") != std::string::npos);
  }
  SUBCASE("a write before the forward pass is fine") {
    Tensor w = ones({3}).requires_grad_();
    Tensor x = tensor({1, 2, 3});
    x.add_(1.0);
    (x * w).sum().backward();
    CHECK(values(w.grad()) == std::vector<double>{2, 3, 4});
  }
}

TEST_CASE("a deep graph does not overflow the stack") {
  Tensor x = ones({1}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y * 1.0;
  y.sum().backward();
  CHECK(x.grad().item() == 1);
}

TEST_CASE("backward casts a seed of another dtype to the root's, for a leaf and a non-leaf alike") {
  Tensor x = full({2}, 3.0).requires_grad_();  // float32
  Tensor y = x * x;
  y.backward(ones({2}, DType::Float64));
  CHECK(x.grad().dtype() == DType::Float32);
  CHECK(values(x.grad()) == std::vector<double>{6, 6});
  x.set_grad(Tensor());
  x.backward(full({2}, 2.0, DType::Float64));
  CHECK(values(x.grad()) == std::vector<double>{2, 2});
}

TEST_CASE("record gives a node several outputs and the engine sums what reaches each") {
  Tensor x = full({3}, 2.0).requires_grad_();
  Tensor a = raw::binary(BinaryOp::Mul, x, 2.0), b = raw::binary(BinaryOp::Mul, x, 5.0);
  std::vector<Tensor> outs = record("two", {a, b}, {x}, [](const auto& g, const auto&) {
    // d/dx (2x, 5x) . (g0, g1) = 2 g0 + 5 g1; an output no gradient reached arrives undefined.
    Tensor sum = zeros({3});
    if (g[0].defined()) sum = raw::binary(BinaryOp::Add, sum, raw::binary(BinaryOp::Mul, g[0], 2.0));
    if (g[1].defined()) sum = raw::binary(BinaryOp::Add, sum, raw::binary(BinaryOp::Mul, g[1], 5.0));
    return std::vector<Tensor>{sum};
  });
  CHECK(outs[0].grad_fn() == outs[1].grad_fn());
  CHECK(outs[1].impl()->output_nr() == 1);
  (outs[0].sum() + outs[1].sum() * 10.0).backward();
  CHECK(values(x.grad()) == std::vector<double>{52, 52, 52});
  // Backward from output 1 alone: output 0's gradient arrives undefined.
  x.set_grad(Tensor());
  Tensor c = record("two", {raw::clone(a), raw::clone(b)}, {x}, [](const auto& g, const auto&) {
    CHECK_FALSE(g[0].defined());
    return std::vector<Tensor>{raw::binary(BinaryOp::Mul, g[1], 5.0)};
  })[1];
  c.sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{5, 5, 5});
}

TEST_CASE("an internal invariant fails with ATELIER_ASSERT's message, distinct from a user error") {
  try {
    ATELIER_ASSERT(1 + 1 == 3, "arithmetic is broken: " << 2);
    FAIL("ATELIER_ASSERT did not throw");
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK(what.find("internal error (a bug in atelier") == 0);
    CHECK(what.find("test_autograd.cpp") != std::string::npos);
    CHECK(what.find("arithmetic is broken: 2") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(Tensor().set_grad(Tensor()), doctest::Contains("undefined Tensor"), Error);
}

// elu's backward is one kernel (raw::activation_backward) computed from the saved output y; it replaced
// where(x > 0, g, g * (y + alpha)) over four ops. Both compute g * (y + alpha) in the dtype, so they agree exactly.
TEST_CASE("elu's one-kernel backward matches the four-op formula it replaced") {
  // Around 0 (both zeros, tiny of both signs), ordinary values, large negatives (y rounds to -alpha, the gradient
  // to 0), a large positive.
  const std::vector<double> xs = {0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 1e-3, -1e-3, 0.5, -0.5,
                                  2,   -2,   -15,   -20,    -40,  -88,   -100, -1e4,  3e4, -0.25};
  std::vector<double> gs;
  for (size_t i = 0; i < xs.size(); ++i) gs.push_back(0.5 + 0.25 * static_cast<double>(i % 7) - 1.0 * (i % 3 == 0));
  const Shape shape = {4, 5};
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const double eps = dtype == DType::Float32 ? 1.1920929e-7 : 2.220446e-16;
    for (double alpha : {1.0, 0.3, 2.5, 0.0}) {
      CAPTURE(dtype);
      CAPTURE(alpha);
      Tensor x = from_vector(xs, shape, dtype).requires_grad_();
      const Tensor g = from_vector(gs, shape, dtype);
      Tensor y = elu(x, alpha);
      y.backward(g);
      const Tensor got = x.grad();

      const Tensor y_raw = raw::unary(UnaryOp::Elu, x.detach(), alpha);
      const Tensor negative_side = raw::binary(BinaryOp::Mul, g, raw::binary(BinaryOp::Add, y_raw, alpha));
      const Tensor old = raw::where(raw::compare(CompareOp::Gt, x.detach(), 0.0), g, negative_side);
      CHECK(values(got) == values(old));

      // Against the derivative in double: 1 for x > 0, alpha e^x otherwise; y + alpha loses the digits of alpha
      // e^x below an ulp of alpha (PyTorch's output-based formula does the same), hence the absolute bound.
      const std::vector<double> got_v = values(got);
      for (size_t i = 0; i < xs.size(); ++i) {
        const double want = gs[i] * (xs[i] > 0 ? 1.0 : alpha * std::exp(xs[i]));
        CAPTURE(xs[i]);
        CHECK(std::fabs(got_v[i] - want) <= std::fabs(gs[i]) * 4 * eps * (1 + alpha));
      }

      // Strided operands: the transposed gradient and output give the transposed result.
      const Tensor strided =
          raw::activation_backward(UnaryOp::Elu, g.t().contiguous().t(), y.detach().t().contiguous().t(), alpha);
      CHECK(values(strided) == values(old));
    }
  }
}

// log_softmax is one kernel each way (backends/cpu/reduce.cpp), with three layouts: groups of short rows of the last
// dimension, long rows summed in chunks of 256, and rows strided by the dimensions after (blocks of 64 side by
// side). Each shape below reaches one layout or the edge between two; every result is checked against the formula
// in double, and must be the same bits at 1, 2 and 3 threads.
TEST_CASE("log_softmax's and softmax's kernels match the formula in double on every layout and thread count") {
  struct Case {
    Shape shape;
    int64_t dim;
  };
  const std::vector<Case> cases = {
      {{50, 10}, 1},    // short rows: groups of 25
      {{7, 256}, 1},    // one row per group, exactly a chunk
      {{4, 257}, 1},    // the shortest long row: chunks of 256 and 1
      {{3, 1000}, -1},  // long rows
      {{6, 1}, 1},      // one element per row: 0
      {{2, 5, 70}, 1},  // strided rows: blocks of 64 and 6
      {{1000, 3}, 0},   // strided rows, a long reduced dimension
  };
  for (const bool soft : {false, true})
    for (DType dtype : {DType::Float32, DType::Float64}) {
      const double eps = dtype == DType::Float32 ? 1.1920929e-7 : 2.220446e-16;
      for (const Case& c : cases) {
        CAPTURE(soft);
        CAPTURE(dtype);
        CAPTURE(c.shape);
        const Tensor x = uniform(c.shape, -8, 8, RandomKey{41}, dtype).requires_grad_();
        const Tensor g = uniform(c.shape, -1, 1, RandomKey{42}, dtype);
        std::vector<double> first_y, first_dx;
        for (int threads : {1, 2, 3}) {
          testing::ThreadCountGuard guard;
          set_num_threads(threads);
          x.set_grad(Tensor());
          const Tensor y = soft ? softmax(x, c.dim) : log_softmax(x, c.dim);
          y.backward(g);
          if (threads == 1) {
            first_y = values(y);
            first_dx = values(x.grad());
          } else {
            CHECK(values(y) == first_y);
            CHECK(values(x.grad()) == first_dx);
          }
        }
        // The formula along dimension d of a contiguous (outer, n, inner) view, in double.
        const int d = normalize_dim(c.dim, static_cast<int64_t>(c.shape.size()), "test");
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < d; ++i) outer *= c.shape[i];
        for (size_t i = d + 1; i < c.shape.size(); ++i) inner *= c.shape[i];
        const int64_t n = c.shape[d];
        const std::vector<double> xv = values(x), gv = values(g);
        for (int64_t o = 0; o < outer; ++o) {
          for (int64_t i = 0; i < inner; ++i) {
            auto at = [&](int64_t j) { return static_cast<size_t>((o * n + j) * inner + i); };
            double m = xv[at(0)], s = 0, gs = 0;
            for (int64_t j = 1; j < n; ++j) m = std::max(m, xv[at(j)]);
            for (int64_t j = 0; j < n; ++j) {
              s += std::exp(xv[at(j)] - m);
              gs += soft ? gv[at(j)] * first_y[at(j)] : gv[at(j)];  // softmax: sum(g y)
            }
            for (int64_t j = 0; j < n; ++j) {
              const double log_y = xv[at(j)] - m - std::log(s);
              const double want_y = soft ? std::exp(log_y) : log_y;
              REQUIRE(std::fabs(first_y[at(j)] - want_y) <= 8 * eps * (1 + std::fabs(want_y)));
              // dx from the output as computed (the kernel's input), so only the backward's rounding counts.
              const double want_dx =
                  soft ? first_y[at(j)] * (gv[at(j)] - gs) : gv[at(j)] - std::exp(first_y[at(j)]) * gs;
              REQUIRE(std::fabs(first_dx[at(j)] - want_dx) <= 8 * eps * (1 + std::fabs(gs) + std::fabs(gv[at(j)])));
            }
          }
        }
      }
    }
}

TEST_CASE("log_softmax: NaN and +inf make their row NaN, -inf gives -inf, an empty tensor an empty result") {
  // Rows of 10 (grouped) and 300 (long): row 0 holds a NaN, row 1 a +inf, row 2 a -inf, row 3 is ordinary.
  for (int64_t n : {10, 300}) {
    CAPTURE(n);
    std::vector<double> v(static_cast<size_t>(4 * n));
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<double>(i));
    v[3] = std::nan("");
    v[static_cast<size_t>(n + 5)] = INFINITY;
    v[static_cast<size_t>(2 * n + 7)] = -INFINITY;
    const std::vector<double> y = values(log_softmax(from_vector(v, {4, n}), 1));
    for (int64_t j = 0; j < n; ++j) {
      CHECK(std::isnan(y[static_cast<size_t>(j)]));
      CHECK(std::isnan(y[static_cast<size_t>(n + j)]));
      const double third = y[static_cast<size_t>(2 * n + j)];
      CHECK((j == 7 ? third == -INFINITY : std::isfinite(third)));
      CHECK(std::isfinite(y[static_cast<size_t>(3 * n + j)]));
    }
  }
  CHECK(log_softmax(zeros({0, 5}), 1).shape() == Shape{0, 5});
  CHECK(log_softmax(zeros({3, 0}), 1).shape() == Shape{3, 0});
}

TEST_CASE("log_softmax and its gradient kernel refuse bad input by name") {
  testing::check_throws_with([] { log_softmax(zeros({2, 3}, DType::Int64), 1); }, {"log_softmax", "int64"});
  testing::check_throws_with([] { log_softmax(zeros({2, 3}), 2); }, {"log_softmax", "2"});
  testing::check_throws_with(
      [] {
        raw::log_softmax_backward(zeros({2, 3}), zeros({3, 2}), 1);
      },
      {"log_softmax_backward", "[2, 3]", "[3, 2]"});
  testing::check_throws_with(
      [] {
        raw::log_softmax_backward(zeros({2, 3}), zeros({2, 3}, DType::Float64), 1);
      },
      {"log_softmax_backward", "dtypes differ"});
}

// relu, tanh and sigmoid's backward became one kernel each too (raw::activation_backward), computing in the order of
// the maps they replaced: relu g * (y > 0 as 0 or 1), tanh g * (1 - y * y), sigmoid g * (s * (1 - s)). relu and
// sigmoid agree bit for bit, on contiguous and strided operands, across the vector loop's body and tail (1,000
// elements); tanh's 1 - y * y may be one fused multiply-add in the kernel (the compiler contracts it), which
// rounds once where the maps rounded twice: within an ulp of the dtype on d (|d| <= 1), so 2 eps |g| on the result.
TEST_CASE("relu, tanh and sigmoid's one-kernel backward matches the maps it replaced") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype);
    const Tensor x = uniform({40, 25}, -4, 4, RandomKey{61}, dtype);
    const Tensor g = uniform({40, 25}, -2, 2, RandomKey{62}, dtype);
    for (UnaryOp op : {UnaryOp::Relu, UnaryOp::Tanh, UnaryOp::Sigmoid}) {
      CAPTURE(static_cast<int>(op));
      const Tensor y = raw::unary(op, x);
      Tensor d;
      if (op == UnaryOp::Relu) d = raw::cast(raw::compare(CompareOp::Gt, y, 0.0), dtype);
      if (op == UnaryOp::Tanh) d = raw::binary(BinaryOp::Sub, 1.0, raw::binary(BinaryOp::Mul, y, y));
      if (op == UnaryOp::Sigmoid) d = raw::binary(BinaryOp::Mul, y, raw::binary(BinaryOp::Sub, 1.0, y));
      const std::vector<double> old = values(raw::binary(BinaryOp::Mul, g, d)), gv = values(g);
      const double eps = dtype == DType::Float32 ? 1.1920929e-7 : 2.220446e-16;
      auto agrees = [&](const Tensor& got) {
        const std::vector<double> v = values(got);
        if (op != UnaryOp::Tanh) return v == old;
        for (size_t i = 0; i < v.size(); ++i) {
          if (!(std::fabs(v[i] - old[i]) <= 2 * eps * std::fabs(gv[i]))) return false;
        }
        return true;
      };
      CHECK(agrees(raw::activation_backward(op, g, y)));
      CHECK(agrees(raw::activation_backward(op, g.t().contiguous().t(), y.t().contiguous().t())));
      // Through autograd: the op's recorded backward is the kernel.
      const Tensor leaf = x.detach().requires_grad_();
      const Tensor out = op == UnaryOp::Relu ? relu(leaf) : op == UnaryOp::Tanh ? tanh(leaf) : sigmoid(leaf);
      out.backward(g);
      CHECK(agrees(leaf.grad()));
    }
  }
}

TEST_CASE("activation_backward and elu refuse what the output-based gradient cannot serve") {
  const Tensor g = zeros({2, 3});
  testing::check_throws_with(
      [&] {
        raw::activation_backward(UnaryOp::Elu, g, zeros({3, 2}), 1.0);
      },
      {"activation_backward", "[2, 3]", "elu", "[3, 2]"});
  testing::check_throws_with(
      [&] {
        raw::activation_backward(UnaryOp::Tanh, g, zeros({2, 3}, DType::Float64));
      },
      {"activation_backward", "dtypes differ"});
  testing::check_throws_with([&] { raw::activation_backward(UnaryOp::Exp, g, g); },
                             {"activation_backward", "exp", "no gradient from its output"});
  Tensor x = zeros({2, 3}).requires_grad_();
  testing::check_throws_with([&] { elu(x, -0.5); }, {"elu", "-0.5", "alpha >= 0"});
  NoGradGuard no_grad;  // without a gradient to record, any alpha is fine
  CHECK(elu(x, -0.5).shape() == Shape{2, 3});
}

namespace {

// The six forms with a scalar operand, each beside the raw two-tensor op and the differentiable two-tensor op it
// equals when the scalar is a constant 0-d tensor s of x's dtype.
struct ScalarForm {
  const char* name;
  Tensor (*form)(const Tensor& x, double s);
  BinaryOp op;
  bool scalar_first;  // s op x (rsub, rdiv), else x op s
  Tensor (*two_tensor)(const Tensor& x, const Tensor& s);
};

const std::vector<ScalarForm>& scalar_forms() {
  static const std::vector<ScalarForm> forms = {
      {"add", [](const Tensor& x, double s) { return add(x, s); }, BinaryOp::Add, false,
       [](const Tensor& x, const Tensor& s) { return add(x, s); }},
      {"sub", [](const Tensor& x, double s) { return sub(x, s); }, BinaryOp::Sub, false,
       [](const Tensor& x, const Tensor& s) { return sub(x, s); }},
      {"rsub", [](const Tensor& x, double s) { return rsub(s, x); }, BinaryOp::Sub, true,
       [](const Tensor& x, const Tensor& s) { return sub(s, x); }},
      {"mul", [](const Tensor& x, double s) { return mul(x, s); }, BinaryOp::Mul, false,
       [](const Tensor& x, const Tensor& s) { return mul(x, s); }},
      {"div", [](const Tensor& x, double s) { return div(x, s); }, BinaryOp::Div, false,
       [](const Tensor& x, const Tensor& s) { return div(x, s); }},
      {"rdiv", [](const Tensor& x, double s) { return rdiv(s, x); }, BinaryOp::Div, true,
       [](const Tensor& x, const Tensor& s) { return div(s, x); }},
  };
  return forms;
}

// The calls of one primitive in a profile, whatever their op names.
int64_t calls_of(const ProfileReport& report, PrimitiveOp op) {
  int64_t calls = 0;
  for (const ProfileRow& row : report.rows) calls += row.op == op ? row.calls : 0;
  return calls;
}

}  // namespace

// What the scalar forms computed when they made a 0-d tensor of the scalar (scalar_tensor: the scalar converted to
// x's dtype as fill converts) and ran the two-tensor op: the same values bit for bit, in x's dtype, and the same
// gradients. Integer tensors are refused, naming the op.
TEST_CASE("a scalar operand is converted to the tensor's dtype, with the values and gradients of a 0-d operand") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    // Zeros, both signs, a transposed (strided) view; 0.1 and 1/3 are inexact in float32, 1e40 overflows it.
    const Tensor base =
        from_vector(std::vector<double>{0.0, -0.0, 1.5, -2.25, 0.1, 7e3, -1e-3, 3.0}, {2, 4}, dtype).t();
    const Tensor seed = from_vector(std::vector<double>{0.5, -1.0, 2.0, 0.25, -3.0, 1e-4, 9.0, -0.1}, {4, 2}, dtype);
    for (const ScalarForm& f : scalar_forms()) {
      for (double s : {0.1, 1.0 / 3.0, -2.5, 1e40, 0.0}) {
        const std::string op = f.name;
        CAPTURE(dtype);
        CAPTURE(op);
        CAPTURE(s);
        const Tensor s0 = scalar_tensor(s, dtype);
        Tensor x = base.detach().requires_grad_();
        Tensor y = f.form(x, s);
        CHECK(y.dtype() == dtype);
        CHECK(
            testing::same_bits(y.detach(), f.scalar_first ? raw::binary(f.op, s0, base) : raw::binary(f.op, base, s0)));
        y.backward(seed);
        Tensor x2 = base.detach().requires_grad_();
        f.two_tensor(x2, s0).backward(seed);
        CHECK(testing::same_bits(x.grad(), x2.grad()));
      }
    }
  }
  const Tensor ints = from_vector(std::vector<double>{1, 2, 3}, {3}, DType::Int64);
  for (const ScalarForm& f : scalar_forms()) {
    const std::string op = f.name[0] == 'r' ? f.name + 1 : f.name;  // rsub and rdiv run sub and div
    CAPTURE(op);
    testing::check_throws_with([&] { f.form(ints, 2.0); }, {op + ": expected a float32 or float64 tensor, got int64"});
  }
}

// The scalar travels by value in the node and through the raw scalar ops: a forward pass takes one block (its
// output) and one launch, and the backward runs the formula's launches only (add, sub: none, the gradient passes
// as it is; mul, div: one; rsub: a negation; rdiv: -(g * out) / x, three). No fill, so no 0-d tensor, either way.
TEST_CASE(
    "a scalar form allocates its output only and launches no fill, forward or backward; nor does where's backward") {
  Backend& cpu = backend_for(Device::cpu());
  const std::vector<int64_t> backward_launches = {0, 0, 1, 1, 1, 3};  // in scalar_forms() order
  auto blocks_handed_out = [&cpu] {
    const AllocatorStats s = cpu.allocator_stats();
    return s.system_allocs + s.cache_hits;
  };
  for (size_t i = 0; i < scalar_forms().size(); ++i) {
    const ScalarForm& f = scalar_forms()[i];
    const std::string op = f.name;
    CAPTURE(op);
    Tensor x = uniform({5, 7}, 0.5, 2, RandomKey{7, 1, 0}).requires_grad_();
    const Tensor seed = ones({5, 7});

    const size_t before = blocks_handed_out();
    Profiler forward_profile(cpu);
    Tensor y = f.form(x, 2.5);
    const ProfileReport forward = forward_profile.report();
    CHECK(blocks_handed_out() - before == 1);
    CHECK(forward.calls == 1);
    CHECK(forward.rows.size() == 1);
    CHECK(forward.rows.front().op == PrimitiveOp::binary);

    Profiler backward_profile(cpu);
    y.backward(seed);
    const ProfileReport backward = backward_profile.report();
    CHECK(calls_of(backward, PrimitiveOp::fill) == 0);
    CHECK(calls_of(backward, PrimitiveOp::binary) + calls_of(backward, PrimitiveOp::unary) == backward_launches[i]);
  }
  // where's backward sends g to a where the condition holds and 0 elsewhere (b the other way round): the 0 is a
  // scalar operand too.
  Tensor a = uniform({3, 4}, -1, 1, RandomKey{7, 2, 0}).requires_grad_();
  Tensor b = uniform({4}, -1, 1, RandomKey{7, 3, 0}).requires_grad_();
  const Tensor cond = raw::compare(CompareOp::Gt, a.detach(), 0.0);
  Tensor y = where(cond, a, b);
  const Tensor where_seed = ones({3, 4});
  Profiler profile(cpu);
  y.backward(where_seed);
  const ProfileReport report = profile.report();
  CHECK(calls_of(report, PrimitiveOp::fill) == 0);
  CHECK(calls_of(report, PrimitiveOp::where) == 2);
  const std::vector<double> av = values(a.detach());
  std::vector<double> a_grad(12), b_grad(4, 0.0);  // 1 where a > 0; b: per column, the rows where a <= 0
  for (size_t i = 0; i < 12; ++i) {
    a_grad[i] = av[i] > 0 ? 1 : 0;
    b_grad[i % 4] += 1 - a_grad[i];
  }
  CHECK(values(a.grad()) == a_grad);
  CHECK(values(b.grad()) == b_grad);
}

// The composites stack, amin, var and logsumexp, and maximum / minimum, against their definitions: values, the
// gradients where the rule matters (ties, broadcasting, infinities), and their refusals by name.
TEST_CASE("stack, amin, var, logsumexp, maximum and minimum: definitions, ties, infinities and refusals") {
  const Tensor a = from_vector(std::vector<double>{1, 5, -2, 5, 0, 3}, {2, 3});
  const Tensor b = from_vector(std::vector<double>{4, 5, -3}, {3});

  // stack: a new dim; its gradient is each input's slice.
  Tensor s0 = a.detach().requires_grad_(), s1 = (a.detach() * 2.0).requires_grad_();
  const Tensor st = stack({s0, s1}, -1);
  CHECK(st.shape() == Shape{2, 3, 2});
  CHECK(values(st) == std::vector<double>{1, 2, 5, 10, -2, -4, 5, 10, 0, 0, 3, 6});
  (st * from_vector(std::vector<double>{1, 10}, {2})).sum().backward();
  CHECK(values(s0.grad()) == std::vector<double>(6, 1.0));
  CHECK(values(s1.grad()) == std::vector<double>(6, 10.0));
  testing::check_throws_with([&] { stack({a, b}, 0); }, {"stack", "tensor 0 is [2, 3]", "tensor 1 is [3]"});
  testing::check_throws_with([&] { stack({}, 0); }, {"stack", "at least one tensor"});
  testing::check_throws_with([&] { stack({a, a}, 3); }, {"stack", "3"});

  // amin: the smallest, ties splitting the gradient as amax's do.
  Tensor x = from_vector(std::vector<double>{3, -1, -1, 2, 0, 7}, {2, 3}).requires_grad_();
  const Tensor lo = amin(x, {1});
  CHECK(values(lo) == std::vector<double>{-1, 0});
  CHECK(values(x.detach().amin({1})) == values(lo));  // the Tensor methods are the free functions
  lo.sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{0, 0.5, 0.5, 0, 1, 0});

  // var: sum of squared deviations over n - correction; refused without degrees of freedom.
  const Tensor v = from_vector(std::vector<double>{1, 2, 4, 7}, {2, 2});
  CHECK(values(var(v, {1})) == std::vector<double>{0.5, 4.5});
  CHECK(values(var(v, {1}, 0)) == std::vector<double>{0.25, 2.25});
  CHECK(values(var(v)) == std::vector<double>{7.0});  // mean 3.5: (6.25 + 2.25 + 0.25 + 12.25) / 3
  CHECK(var(v, {0}, 1, true).shape() == Shape{1, 2});
  CHECK(values(v.var({1}, 0)) == std::vector<double>{0.25, 2.25});
  testing::check_throws_with([&] { var(v, {1}, 2); }, {"var", "2 element(s) per output", "[2, 2]", "correction 2"});
  testing::check_throws_with([&] { var(v, {}, -1); }, {"var", "correction -1"});

  // logsumexp: no overflow at 1000, -inf for a row of -inf, +inf for a row holding +inf; its gradient softmax.
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor big = from_vector(std::vector<double>{1000, 1000, -inf, -inf, 1, inf}, {3, 2});
  const std::vector<double> lse = values(logsumexp(big, {1}));
  CHECK(lse[0] == doctest::Approx(1000 + std::log(2.0)).epsilon(1e-15));
  CHECK(lse[1] == -inf);
  CHECK(lse[2] == inf);
  CHECK(logsumexp(big, {1}, true).shape() == Shape{3, 1});
  CHECK(values(big.logsumexp({1})) == lse);
  CHECK(logsumexp(big.slice(0, 0, 1)).shape() == Shape{});
  Tensor l = from_vector(std::vector<double>{0, std::log(3.0)}, {1, 2}).requires_grad_();
  logsumexp(l, {1}).sum().backward();
  const std::vector<double> soft = values(l.grad());
  CHECK(soft[0] == doctest::Approx(0.25));
  CHECK(soft[1] == doctest::Approx(0.75));

  // maximum / minimum: broadcast; the winner takes the gradient, a tie halves it, the broadcast side sums.
  Tensor p = a.detach().requires_grad_(), q = b.detach().requires_grad_();
  const Tensor mx = maximum(p, q);
  CHECK(values(mx) == std::vector<double>{4, 5, -2, 5, 5, 3});
  mx.sum().backward();
  CHECK(values(p.grad()) == std::vector<double>{0, 0.5, 1, 1, 0, 1});
  CHECK(values(q.grad()) == std::vector<double>{1 + 0, 0.5 + 1, 0 + 0});
  Tensor p2 = a.detach().requires_grad_(), q2 = b.detach().requires_grad_();
  const Tensor mn = minimum(p2, q2);
  CHECK(values(mn) == std::vector<double>{1, 5, -3, 4, 0, -3});
  mn.sum().backward();
  CHECK(values(p2.grad()) == std::vector<double>{1, 0.5, 0, 0, 1, 0});
  CHECK(values(q2.grad()) == std::vector<double>{0 + 1, 0.5 + 0, 1 + 1});
  // NaN in either operand gives NaN, and (PyTorch's rule) the whole gradient to both.
  Tensor n1 = from_vector(std::vector<double>{std::nan(""), 1}, {2}).requires_grad_();
  Tensor n2 = from_vector(std::vector<double>{0, 2}, {2}).requires_grad_();
  const Tensor nm = maximum(n1, n2);
  CHECK(std::isnan(values(nm)[0]));
  nm.sum().backward();
  CHECK(values(n1.grad()) == std::vector<double>{1, 0});
  CHECK(values(n2.grad()) == std::vector<double>{1, 1});
}
