// Hardening of writes through views: a copy between overlapping views of one storage reads its source from a
// temporary (never memcpy over overlapping bytes, never a chunk of one thread overwriting what another still
// reads), and a write into a view whose elements share memory (an expanded or broadcast view) is refused with
// an error naming the op and the shape, as PyTorch does, instead of silently keeping one value per location.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "atelier.h"
#include "backends/thread_pool.h"
#include "tensor/raw_ops.h"
#include "tests/test_util.h"

using namespace atelier;
using atelier::testing::check_throws_with;

namespace {

// Large enough that the copy kernel splits the work into one chunk per thread.
constexpr int64_t kN = 200000;

// Three threads on any machine, restored at scope exit: chunk boundaries are where overlap went wrong.
struct ThreeThreads {
  int saved = num_threads();
  ThreeThreads() { set_num_threads(3); }
  ~ThreeThreads() { set_num_threads(saved); }
  ThreeThreads(const ThreeThreads&) = delete;
  ThreeThreads& operator=(const ThreeThreads&) = delete;
};

}  // namespace

TEST_CASE("copy_ between shifted views of one storage copies through a temporary") {
  ThreeThreads threads;
  for (int64_t shift : {1, 7, 16384}) {
    CAPTURE(shift);
    // Forward: r[i] = r[i - shift] (a naive copy would smear r[0 .. shift) over the whole tensor).
    Tensor r = arange(0, kN, 1, DType::Float64);
    r.slice(0, shift, kN).copy_(r.slice(0, 0, kN - shift));
    std::vector<double> v = r.to_vector<double>();
    bool ok = true;
    for (int64_t i = 0; i < kN; ++i) ok = ok && v[i] == static_cast<double>(i < shift ? i : i - shift);
    CHECK(ok);
    // Backward: r[i] = r[i + shift].
    Tensor s = arange(0, kN, 1, DType::Float64);
    s.slice(0, 0, kN - shift).copy_(s.slice(0, shift, kN));
    v = s.to_vector<double>();
    ok = true;
    for (int64_t i = 0; i < kN; ++i) ok = ok && v[i] == static_cast<double>(i < kN - shift ? i + shift : i);
    CHECK(ok);
  }
}

TEST_CASE("copy_ of a matrix's transpose into itself transposes it") {
  ThreeThreads threads;
  const int64_t n = 300;  // 90,000 elements: several chunks, and the tiled transpose path
  Tensor m = arange(0, n * n, 1, DType::Float64).reshape({n, n});
  m.copy_(m.t());
  std::vector<double> v = m.to_vector<double>();
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) ok = ok && v[i * n + j] == static_cast<double>(j * n + i);
  }
  CHECK(ok);
}

TEST_CASE("copy_ of a view onto itself keeps the values and counts as a write") {
  Tensor t = arange(0, 6, 1, DType::Float32).reshape({2, 3});
  const uint64_t before = t.version();
  t.copy_(t);
  t.slice(1, 0, 2).copy_(t.slice(1, 0, 2));
  CHECK(t.to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5});
  CHECK(t.version() == before + 2);
  // A dtype conversion between views of different tensors is unaffected.
  Tensor d = zeros({2, 3}, DType::Float64);
  d.copy_(t);
  CHECK(d.to_vector<double>() == std::vector<double>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("writes into an expanded view are refused, naming the op and the shape") {
  Tensor base = arange(0, 4, 1, DType::Float32).reshape({1, 4});
  Tensor e = base.expand({3, 4});  // strides (0, 1): each row is the same memory
  check_throws_with([&] { e.add_(ones({3, 4})); }, {"add_", "[3, 4]", "same memory location"});
  check_throws_with([&] { e.sub_(1.0); }, {"sub_", "[3, 4]"});
  check_throws_with([&] { e.mul_(2.0); }, {"mul_", "[3, 4]"});
  check_throws_with([&] { e.copy_(arange(0, 12, 1, DType::Float32).reshape({3, 4})); }, {"copy_", "[3, 4]"});
  check_throws_with([&] { e.fill_(1.0); }, {"fill_", "[3, 4]"});
  check_throws_with([&] { e.zero_(); }, {"fill_", "[3, 4]"});
  // A broadcast through a size-1 dimension of a tensor's own view too (unsqueeze + expand).
  Tensor col = zeros({3}).unsqueeze(1).expand({3, 5});
  check_throws_with([&] { col.add_(ones({3, 5})); }, {"add_", "[3, 5]"});
  // Nothing was written.
  CHECK(base.to_vector<float>() == std::vector<float>{0, 1, 2, 3});
  // Reading an expanded view is fine, and so is writing into a tensor through a size-1 stride-0 dimension.
  Tensor dst = zeros({3, 4});
  dst.copy_(e);
  CHECK(dst.sum().item() == 18);
  Tensor single = zeros({4}).unsqueeze(0).expand({1, 4});
  single.add_(ones({1, 4}));
  CHECK(single.sum().item() == 4);
}

TEST_CASE("writes into an as_strided view whose elements overlap are refused") {
  Tensor t = zeros({6});
  Tensor overlapping = raw::as_strided(t, {3, 2}, {1, 1}, 0);  // elements 0,1 / 1,2 / 2,3
  check_throws_with([&] { raw::fill_(overlapping, 1.0); }, {"fill_", "[3, 2]", "[1, 1]"});
  check_throws_with([&] { raw::copy_(overlapping, ones({3, 2})); }, {"copy_", "[3, 2]"});
  CHECK(t.sum().item() == 0);
  // Non-overlapping strided views (a slice with a step, a transpose) stay writable.
  Tensor m = zeros({4, 4});
  m.slice(1, 0, 4, 2).fill_(1.0);
  m.t().slice(0, 1, 2).add_(ones({1, 4}));
  CHECK(m.sum().item() == 12);
}

TEST_CASE("the fused optimiser updates refuse state buffers that alias the parameter") {
  Tensor p = ones({8});
  Tensor g = full({8}, 0.5);
  Tensor m = zeros({8});
  check_throws_with([&] { raw::adam_step_(p, g, p, m, 1, 0.1, AdamHyperparameters{}); }, {"exp_avg", "shares memory"});
  check_throws_with([&] { raw::adam_step_(p, g, m, m, 1, 0.1, AdamHyperparameters{}); }, {"share memory"});
  SgdHyperparameters momentum;
  momentum.momentum = 0.9;
  check_throws_with([&] { raw::sgd_step_(p, g, p, 1, 0.1, momentum); }, {"momentum buffer", "shares memory"});
  // A gradient that is the parameter itself is read from a copy: p <- p - 0.5 p.
  raw::sgd_step_(p, p, Tensor(), 1, 0.5, SgdHyperparameters{});
  CHECK(p.to_vector<float>() == std::vector<float>(8, 0.5f));
}
