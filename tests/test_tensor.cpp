// The tensor floor: creation, views, conversions, raw op values against hand-computed results, in-place
// versioning, random reproducibility, and the error messages of bad calls.
#include <cmath>
#include <string>

#include <doctest/doctest.h>

#include "atelier.h"
#include "tensor/readback.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::check_throws_with;

namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST_CASE("creation: constants, ranges and data") {
  CHECK(values(zeros({2, 2})) == std::vector<double>{0, 0, 0, 0});
  CHECK(values(ones({3}, DType::Float64)) == std::vector<double>{1, 1, 1});
  CHECK(values(full({2}, 2.5)) == std::vector<double>{2.5, 2.5});
  CHECK(values(arange(0, 5, 2)) == std::vector<double>{0, 2, 4});
  CHECK(values(arange(3.0, 0.0, -1.0)) == std::vector<double>{3, 2, 1});
  CHECK(arange(4).dtype() == DType::Int64);
  Tensor t = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.strides() == Shape{3, 1});
  CHECK(t.dtype() == DType::Float32);
  CHECK(scalar_tensor(7).dim() == 0);
  CHECK(scalar_tensor(7).item() == 7);
  Tensor bytes = from_vector(std::vector<uint8_t>{0, 128, 255}, {3});
  CHECK(bytes.dtype() == DType::UInt8);
  CHECK(values(bytes.to(DType::Float32)) == std::vector<double>{0, 128, 255});
  check_throws_with([] { from_vector(std::vector<float>{1, 2, 3}, {2, 2}); }, {"from_vector", "[2, 2]"});
  check_throws_with([] { tensor({1, 2}).item(); }, {"item", "[2]"});
}

TEST_CASE("views share storage; contiguous copies only when needed") {
  Tensor t = arange(0, 24, 1, DType::Float32).reshape({2, 3, 4});
  CHECK(t.reshape({6, 4}).storage() == t.storage());
  Tensor p = t.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Shape{1, 12, 4});
  CHECK(p.storage() == t.storage());
  CHECK_FALSE(p.is_contiguous());
  Tensor pc = p.contiguous();
  CHECK(pc.storage() != t.storage());
  CHECK(pc.is_contiguous());
  CHECK(t.contiguous().storage() == t.storage());
  // p[i, j, k] = t[j, k, i]
  CHECK(pc.to_vector<float>()[1 * 6 + 1 * 3 + 2] == t.to_vector<float>()[1 * 12 + 2 * 4 + 1]);

  Tensor s = t.slice(2, 1, 4, 2);  // columns 1 and 3
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(s.offset() == 1);
  CHECK(values(s.slice(0, 0, 1).slice(1, 0, 1)) == std::vector<double>{1, 3});
  CHECK(values(t.narrow(1, 2, 1).reshape({-1})) == std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23});

  Tensor e = tensor({1, 2, 3}).reshape({3, 1}).expand({2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(values(e.sum()) == std::vector<double>{48});
  CHECK(tensor({1, 2}).unsqueeze(0).shape() == Shape{1, 2});
  CHECK(tensor({1, 2}).unsqueeze(-1).shape() == Shape{2, 1});
  CHECK(zeros({2, 1, 3}).squeeze(1).shape() == Shape{2, 3});
  CHECK(zeros({1, 2, 1}).squeeze().shape() == Shape{2});
  CHECK(zeros({2, 3, 4}).flatten(1).shape() == Shape{2, 12});
  CHECK(zeros({2, 3}).t().shape() == Shape{3, 2});

  // A reshape of a non-contiguous tensor copies; view() refuses instead.
  CHECK(p.reshape({24}).storage() != t.storage());
  check_throws_with([&] { p.view({24}); }, {"view", "reshape()"});
  // A sliced batch still views when the merged dims are contiguous among themselves.
  CHECK(zeros({2, 0, 4}).is_contiguous());  // a zero-sized tensor is contiguous whatever its strides
  Tensor batch = t.slice(0, 1, 2);
  CHECK(batch.view({1, 12}).storage() == t.storage());
}

TEST_CASE("conversions: dtype, item, to_vector, clone") {
  Tensor t = tensor({1.7, -2.2, 0.0});
  CHECK(values(t.to(DType::Int64)) == std::vector<double>{1, -2, 0});
  CHECK(t.to(DType::Bool).to_vector<bool>() == std::vector<bool>{true, true, false});
  CHECK(t.to(DType::Float64).dtype() == DType::Float64);
  Tensor c = t.clone();
  CHECK(c.storage() != t.storage());
  CHECK(values(c) == values(t));
  CHECK(tensor({3}).item<int64_t>() == 3);
}

TEST_CASE("elementwise values and broadcasting shapes") {
  Tensor a = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = tensor({10, 20, 30});
  CHECK(values(a + b) == std::vector<double>{11, 22, 33, 14, 25, 36});
  Tensor col = tensor({1, 2}, {2, 1});
  CHECK((a * col).shape() == Shape{2, 3});
  CHECK(values(a * col) == std::vector<double>{1, 2, 3, 8, 10, 12});
  CHECK((zeros({3, 1, 5}) + zeros({4, 1})).shape() == Shape{3, 4, 5});
  CHECK(values(a - 1.0) == std::vector<double>{0, 1, 2, 3, 4, 5});
  CHECK(values(12.0 / a) == std::vector<double>{12, 6, 4, 3, 2.4000000953674316, 2});
  CHECK(values(relu(tensor({-1, 0.5}))) == std::vector<double>{0, 0.5});
  CHECK(values(clamp(tensor({-3, 0.25, 3}), -1, 1)) == std::vector<double>{-1, 0.25, 1});
  CHECK(elu(tensor({-1.0}, {}, DType::Float64)).item() == doctest::Approx(std::exp(-1.0) - 1));
  Tensor cond = raw::compare(CompareOp::Gt, a, 3.0);
  CHECK(cond.dtype() == DType::Bool);
  CHECK(values(where(cond, a, zeros({1}))) == std::vector<double>{0, 0, 0, 4, 5, 6});
  // Non-contiguous operands.
  CHECK(values(a.t() + tensor({100, 200})) == std::vector<double>{101, 204, 102, 205, 103, 206});
}

TEST_CASE("reductions over dims, keepdim, argmax") {
  Tensor t = arange(0, 24, 1, DType::Float64).reshape({2, 3, 4});
  CHECK(t.sum().item() == 276);
  CHECK(values(t.sum({0})) == values(t.slice(0, 0, 1).squeeze(0) + t.slice(0, 1, 2).squeeze(0)));
  CHECK(values(t.sum({1, 2})) == std::vector<double>{66, 210});
  CHECK(t.sum({-1}, true).shape() == Shape{2, 3, 1});
  CHECK(values(t.mean({2})) == std::vector<double>{1.5, 5.5, 9.5, 13.5, 17.5, 21.5});
  CHECK(values(t.amax({0, 2})) == std::vector<double>{15, 19, 23});
  CHECK(values(t.permute({2, 1, 0}).amax({2})).front() == 12);
  CHECK(values(tensor({1, 5, 5, 2}).argmax(0)) == std::vector<double>{1});  // first of tied maxima
  CHECK(values(tensor({1, 9, 3, 4, 2, 8}, {2, 3}).argmax(1)) == std::vector<double>{1, 2});
  // A float32 sum of 10^6 values of 0.1 stays accurate (accumulated in double).
  CHECK(full({1000000}, 0.1f).sum().item() == doctest::Approx(100000.0).epsilon(1e-6));
  check_throws_with([&] { t.sum({3}); }, {"sum", "3"});
  check_throws_with([&] { t.sum({1, 1}); }, {"sum", "repeated"});
}

TEST_CASE("matmul against hand-computed products") {
  Tensor a = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = tensor({7, 8, 9, 10, 11, 12}, {3, 2});
  CHECK(values(matmul(a, b)) == std::vector<double>{58, 64, 139, 154});
  CHECK(values(matmul(b.t(), a.t())) == std::vector<double>{58, 139, 64, 154});
  Tensor batch = tensor({1, 0, 0, 1, 2, 0, 0, 2}, {2, 2, 2});
  CHECK(values(matmul(batch, tensor({1, 2, 3, 4}, {2, 2}))) == std::vector<double>{1, 2, 3, 4, 2, 4, 6, 8});
  check_throws_with([&] { matmul(a, a); }, {"matmul", "[2, 3]", "inner"});
  check_throws_with([&] { matmul(tensor({1, 2}), a); }, {"matmul", "2 dimensions"});
}

TEST_CASE("gather and scatter_add") {
  Tensor t = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor idx = from_vector(std::vector<int64_t>{2, 0, 1, 1}, {2, 2});
  CHECK(values(gather(t, 1, idx)) == std::vector<double>{3, 1, 5, 5});
  CHECK(values(raw::scatter_add({2, 3}, 1, idx, ones({2, 2}))) == std::vector<double>{1, 0, 1, 0, 2, 0});
  Tensor bad = from_vector(std::vector<int64_t>{3, 0, 1, 1}, {2, 2});
  check_throws_with([&] { gather(t, 1, bad); }, {"3"});
}

TEST_CASE("shape errors name the op and every shape") {
  check_throws_with([] { zeros({2, 3}) + zeros({4}); }, {"add", "[2, 3]", "[4]"});
  check_throws_with([] { zeros({2, 3}) * zeros({3, 2}); }, {"mul", "[2, 3]", "[3, 2]"});
  check_throws_with([] { zeros({2}) + zeros({2}, DType::Float64); }, {"add", "float32", "float64"});
  check_throws_with([] { zeros({6}).reshape({4, -1}); }, {"reshape", "[4, -1]", "6"});
  check_throws_with([] { zeros({2, 3}).expand({4, 3}); }, {"expand", "[2, 3]", "[4, 3]"});
  check_throws_with([] { zeros({2, 3}).permute({0, 0}); }, {"permute", "repeated"});
  check_throws_with([] { zeros({2, 3}).transpose(0, 2); }, {"transpose", "2"});
  check_throws_with([] { mse_loss(zeros({2}), zeros({3})); }, {"mse_loss", "[2]", "[3]"});
  check_throws_with([] { cross_entropy(zeros({2, 3}), zeros({2})); }, {"cross_entropy", "int64"});
  check_throws_with([] { linear(zeros({2, 3}), zeros({4, 5})); }, {"linear", "[2, 3]", "[4, 5]"});
  check_throws_with([] { Tensor().shape(); }, {"undefined"});
  check_throws_with([] { zeros({2}).to(Device::cuda()); }, {"cuda"});
}

TEST_CASE("in-place writes bump the version and respect requires_grad") {
  Tensor t = zeros({3});
  uint64_t v0 = t.version();
  t.add_(1.0);
  CHECK(t.version() == v0 + 1);
  t.mul_(tensor({1, 2, 3}));
  CHECK(values(t) == std::vector<double>{1, 2, 3});
  Tensor view = t.slice(0, 1, 3);
  view.fill_(7);
  CHECK(values(t) == std::vector<double>{1, 7, 7});
  CHECK(t.version() == view.version());
  t.sub_(tensor({1, 1, 1}));
  t.copy_(tensor({4, 5, 6}));
  t.zero_();
  CHECK(values(t) == std::vector<double>{0, 0, 0});

  Tensor w = ones({2}).requires_grad_();
  check_throws_with([&] { w.add_(1.0); }, {"add_", "requires grad", "NoGradGuard"});
  check_throws_with([&] { w.zero_(); }, {"zero_"});
  check_throws_with([&] { w.copy_(zeros({2})); }, {"copy_"});
  {
    NoGradGuard no_grad;
    w.sub_(tensor({0.5, 0.25}));
  }
  CHECK(values(w) == std::vector<double>{0.5, 0.75});
  check_throws_with([&] { t.add_(zeros({2, 3})); }, {"[2, 3]", "[3]"});

  // copy_ across dtypes converts straight into the destination: a float64 row broadcast into the transposed,
  // sliced float32 view of a matrix (a strided destination), and int64 values into float32 cut to a column.
  Tensor m = zeros({4, 3});
  m.t().slice(1, 1, 3).copy_(tensor({1.5, -2.25, 3}).to(DType::Float64).reshape({3, 1}));
  CHECK(values(m) == std::vector<double>{0, 0, 0, 1.5, -2.25, 3, 1.5, -2.25, 3, 0, 0, 0});
  m.slice(1, 0, 1).copy_(from_vector(std::vector<int64_t>{7, -8, 9, 10}, {4, 1}));
  CHECK(values(m.slice(1, 0, 1)) == std::vector<double>{7, -8, 9, 10});
}

TEST_CASE("in-place arithmetic writes into the tensor's own bytes, on any layout and with overlapping operands") {
  Tensor t = arange(0, 6, 1, DType::Float64).reshape({2, 3});
  const void* bytes = t.raw_data();
  t.mul_(2.0).add_(tensor({1, 1, 1}, {3}, DType::Float64));  // broadcast operand
  CHECK(t.raw_data() == bytes);
  CHECK(values(t) == std::vector<double>{1, 3, 5, 7, 9, 11});
  t.add_(t);  // the same view: element for element, safe in place
  CHECK(values(t) == std::vector<double>{2, 6, 10, 14, 18, 22});

  // A shifted view of the same bytes is read as it was before the write.
  Tensor r = arange(0, 5, 1, DType::Float64);
  r.slice(0, 1, 5).add_(r.slice(0, 0, 4));
  CHECK(values(r) == std::vector<double>{0, 1, 3, 5, 7});

  // A non-contiguous destination (a transposed view) is updated through its strides.
  Tensor m = arange(0, 6, 1, DType::Float64).reshape({2, 3});
  m.t().sub_(tensor({1, 2, 1, 2, 1, 2}, {3, 2}, DType::Float64));
  CHECK(values(m) == std::vector<double>{-1, 0, 1, 1, 2, 3});
}

TEST_CASE("random numbers are reproducible from the seed") {
  manual_seed(123);
  Tensor a = rand({1000});
  Tensor n1 = randn({4, 5}, DType::Float64);
  manual_seed(123);
  Tensor b = rand({1000});
  Tensor n2 = randn({4, 5}, DType::Float64);
  CHECK(values(a) == values(b));
  CHECK(values(n1) == values(n2));
  CHECK(values(rand({1000})) != values(a));  // the generator moved on
  double mean = a.mean().item();
  CHECK(mean == doctest::Approx(0.5).epsilon(0.05));
  CHECK(a.amax().item() < 1.0);
  Tensor s0 = uniform({8}, -1, 1, RandomKey{7, 0, 0});
  Tensor s1 = uniform({8}, -1, 1, RandomKey{7, 1, 0});
  CHECK(values(s0) != values(s1));
  CHECK(values(s0) == values(uniform({8}, -1, 1, RandomKey{7, 0, 0})));
}

TEST_CASE("printing is readable") {
  std::string s = tensor({1, 2, 3, 4}, {2, 2}).to_string();
  CHECK(s.find("tensor([[1.0000, 2.0000],") != std::string::npos);
  CHECK(s.find("shape=[2, 2]") != std::string::npos);
  CHECK(s.find("dtype=float32") != std::string::npos);
  std::string big = zeros({100, 100}).to_string();
  CHECK(big.find("...") != std::string::npos);
  CHECK(big.size() < 2000);
  CHECK(ones({2}).requires_grad_().to_string().find("requires_grad") != std::string::npos);
}

TEST_CASE("thread count: set_num_threads changes the pool between ops") {
  int before = num_threads();
  Tensor big = rand({300, 200}, DType::Float64);
  Tensor w = rand({200, 100}, DType::Float64);
  set_num_threads(1);
  std::vector<double> one = values(matmul(big, w));
  set_num_threads(2);
  std::vector<double> two = values(matmul(big, w));
  set_num_threads(before);
  REQUIRE(one.size() == two.size());
  for (size_t i = 0; i < one.size(); i += 997) CHECK(one[i] == doctest::Approx(two[i]).epsilon(1e-12));
}

TEST_CASE("vectorised and strided elementwise paths agree") {
  // Unit-stride runs of exp, log, tanh and ELU go through Eigen's vectorised functions; strided runs call libm.
  Tensor x = uniform({64, 33}, -4, 4, RandomKey{9, 0, 0});
  Tensor xt = x.t().contiguous().t();  // same values, column-major: the strided path
  REQUIRE_FALSE(xt.is_contiguous());
  std::vector<float> xs = x.to_vector<float>();
  auto check = [&](const Tensor& fast, const Tensor& slow, double (*reference)(double)) {
    std::vector<float> a = fast.to_vector<float>(), b = slow.to_vector<float>();
    for (size_t i = 0; i < a.size(); ++i) {
      double want = reference(xs[i]);
      CHECK(std::fabs(a[i] - want) <= 1e-6 * (1 + std::fabs(want)));
      CHECK(std::fabs(b[i] - want) <= 1e-6 * (1 + std::fabs(want)));
    }
  };
  check(elu(x), elu(xt), [](double v) { return v > 0 ? v : std::expm1(v); });
  check(exp(x), exp(xt), [](double v) { return std::exp(v); });
  check(tanh(x), tanh(xt), [](double v) { return std::tanh(v); });
  Tensor pos = abs(x) + 0.01;
  std::vector<float> ps = pos.to_vector<float>();
  std::vector<float> l = log(pos).to_vector<float>(), lt = log(pos.t().contiguous().t()).to_vector<float>();
  for (size_t i = 0; i < l.size(); ++i) {
    CHECK(l[i] == doctest::Approx(std::log(static_cast<double>(ps[i]))).epsilon(1e-6));
    CHECK(lt[i] == doctest::Approx(std::log(static_cast<double>(ps[i]))).epsilon(1e-6));
  }
}

TEST_CASE("host reads: item and to_vector count as synchronous reads, a TensorReadback does not") {
  const Tensor t = tensor({1.5, -2.0, 3.25}, {3}, DType::Float64);
  const uint64_t before = host_sync_reads();
  CHECK(t.sum().item() == 2.75);
  CHECK(t.to_vector<double>().size() == 3);
  CHECK(host_sync_reads() == before + 2);

  TensorReadback readback(Device::cpu(), 3);
  CHECK_FALSE(readback.pending());
  readback.start(t * 2.0);  // the temporary is kept alive by the readback until wait()
  CHECK(readback.pending());
  CHECK(readback.wait() == std::vector<double>{3.0, -4.0, 6.5});
  CHECK_FALSE(readback.pending());
  readback.start(t);
  CHECK(readback.wait() == std::vector<double>{1.5, -2.0, 3.25});  // reusable
  CHECK(host_sync_reads() == before + 2);

  check_throws_with([&] { readback.wait(); }, {"no copy was started"});
  check_throws_with([&] { readback.start(t.to(DType::Float32)); }, {"expected a contiguous float64 tensor of 3"});
  check_throws_with([&] { readback.start(tensor({1.0, 2.0}, {2}, DType::Float64)); }, {"of 3 elements"});
  check_throws_with([&] { TensorReadback(Device::cpu(), 0); }, {"numel must be >= 1"});
}
