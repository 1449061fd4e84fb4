// CPU-vs-CUDA parity (tests/parity/parity.h): every primitive row and every op-table row in float32, forward and
// backward, within the tolerances of docs/architecture.md ("Tests"); the gradient check itself on the GPU in
// float64; and a bad index refused on the GPU as on the CPU. (The TF32 and BF16 modes: test_cuda_precision.cpp.)
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "autograd/op_table.h"
#include "backends/backend.h"
#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/readback.h"
#include "tests/parity/parity.h"

namespace atelier {
namespace {

// What a parity check returns ("" when it passes), or the error it threw (a kernel that refuses its input).
template <class Check>
std::string on_cuda(Check&& check) {
  try {
    return check();
  } catch (const Error& e) {
    return std::string("threw: ") + e.what();
  }
}

TEST_CASE("parity: every primitive and CPU-supported dtype has a row") {
  for (const std::string& missing : parity::primitives_without_rows()) {
    INFO("primitive without a parity row in tests/parity/parity.cpp: " << missing);
    CHECK(false);
  }
}

TEST_CASE("parity: every primitive row gives the CPU's results on CUDA") {
  int checked = 0;
  for (const parity::PrimitiveRow& row : parity::primitive_rows()) {
    INFO("row " << row.name << " (" << std::string(parity::tolerance_name(row.tolerance)) << ")");
    CHECK(on_cuda([&] { return parity::primitive_row_parity(row, Device::cpu(), Device::cuda()); }) == "");
    ++checked;
  }
  CHECK(checked >= 50);
}

// The normalisation rows alone (backends/cuda/norm.cu: block folds over groups, columns and channels), a case of
// their own so that the sanitize plan's racecheck and synccheck can run them without every other row.
TEST_CASE("cuda norm: the normalize and normalize_backward parity rows, forward and affine gradients by blocks") {
  int checked = 0;
  for (const parity::PrimitiveRow& row : parity::primitive_rows()) {
    if (row.op != PrimitiveOp::normalize && row.op != PrimitiveOp::normalize_backward) continue;
    INFO("row " << row.name);
    CHECK(on_cuda([&] { return parity::primitive_row_parity(row, Device::cpu(), Device::cuda()); }) == "");
    ++checked;
  }
  CHECK(checked == 4);  // both primitives, float32 and float64
}

TEST_CASE("parity: every op-table row in float32 gives the CPU's output and gradients on CUDA") {
  for (const OpCase& c : op_table()) {
    INFO("row " << c.name);
    CHECK(on_cuda([&] { return parity::op_row_parity(c, Device::cpu(), Device::cuda()); }) == "");
  }
}

TEST_CASE("gradcheck on the GPU: every op-table row in float64") {
  for (const OpCase& c : op_table()) {
    INFO("row " << c.name);
    const std::vector<Tensor> inputs = inputs_as(c.make_inputs(), DType::Float64, Device::cuda());
    GradcheckResult r;
    try {
      r = gradcheck(c.fn, inputs, c.options);
    } catch (const Error& e) {
      r.message = std::string("threw: ") + e.what();
    }
    INFO(r.message);
    CHECK(r.passed);
  }
}

TEST_CASE("to(Device) is differentiable: a CPU leaf feeds a graph on the GPU and gets its .grad on the CPU") {
  const Tensor x = uniform({3, 4}, -1, 1, RandomKey{7, 1, 0}, DType::Float64);
  const Tensor w = uniform({3, 4}, -1, 1, RandomKey{7, 2, 0}, DType::Float64);
  // L = sum(tanh(x) * w), computed on the GPU from CPU tensors, the loss brought back to the CPU.
  auto loss = [&](const Tensor& leaf, Device where) {
    return sum(mul(tanh(leaf.to(where)), w.to(where))).to(Device::cpu());
  };
  Tensor on_cpu = x.detach();
  on_cpu.requires_grad_(true);
  loss(on_cpu, Device::cpu()).backward();
  Tensor via_gpu = x.detach();
  via_gpu.requires_grad_(true);
  const Tensor l = loss(via_gpu, Device::cuda());
  CHECK(l.device() == Device::cpu());
  CHECK(l.grad_fn() != nullptr);
  l.backward();
  REQUIRE(via_gpu.grad().defined());
  CHECK(via_gpu.grad().device() == Device::cpu());
  CHECK(parity::compare(via_gpu.grad(), on_cpu.grad(), parity::Tolerance::Elementwise) == "");

  // The other way: a leaf on the GPU, a loss on the CPU; the gradient arrives on the GPU.
  Tensor on_gpu = x.detach().to(Device::cuda());
  on_gpu.requires_grad_(true);
  sum(mul(tanh(on_gpu.to(Device::cpu())), w)).backward();
  REQUIRE(on_gpu.grad().defined());
  CHECK(on_gpu.grad().device() == Device::cuda());
  CHECK(parity::compare(on_gpu.grad(), on_cpu.grad(), parity::Tolerance::Elementwise) == "");

  // Moving within one device records nothing: the tensor itself comes back.
  CHECK(on_gpu.to(Device::cuda()).impl() == on_gpu.impl());
}

TEST_CASE(
    "cuda gather and scatter_add report an out-of-range index at the next host read, naming it, without a sync of "
    "their own, and leave scatter_add's dst alone") {
  const Tensor src = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}).to(Device::cuda());
  const Tensor bad = from_vector(std::vector<int64_t>{0, 1, 3, 2}, {2, 2}).to(Device::cuda());
  const Tensor worse = from_vector(std::vector<int64_t>{0, 9, 1, 2}, {2, 2}).to(Device::cuda());
  Tensor dst = zeros({2, 2}).to(Device::cuda());
  GatherArgs g{};
  g.dtype = DType::Float32;
  g.outer = 2;
  g.src_dim = 3;
  g.index_dim = 2;
  g.inner = 1;
  g.src_data = src.raw_data();
  g.index_data = static_cast<const int64_t*>(bad.raw_data());
  g.dst_data = dst.raw_data();
  Backend& cuda = backend_for(Device::cuda());
  const uint64_t reads = host_sync_reads();
  launch<PrimitiveOp::gather>(cuda, "gather", 4, g);  // queued: nothing read back yet
  // A second bad call before the read: the first one is reported, as the CPU would have thrown there.
  g.index_data = static_cast<const int64_t*>(worse.raw_data());
  launch<PrimitiveOp::gather>(cuda, "gather", 4, g);
  CHECK(host_sync_reads() == reads);
  CHECK_THROWS_WITH_AS(dst.to_vector<float>(),
                       doctest::Contains("cuda gather: index 3 at position (outer 1, 0, inner 0) is out of range "
                                         "[0, 3) (found by a gather queued before this host read"),
                       Error);
  // Reported once: the next read succeeds. The good positions were gathered.
  const std::vector<float> gathered = dst.to_vector<float>();
  CHECK(gathered[0] == 1.0f);
  CHECK(gathered[3] == 6.0f);

  Tensor target = from_vector(std::vector<float>{7, 7, 7, 7, 7, 7}, {2, 3}).to(Device::cuda());
  ScatterAddArgs s{};
  s.dtype = DType::Float32;
  s.outer = 2;
  s.dst_dim = 3;
  s.index_dim = 2;
  s.inner = 1;
  s.src_data = dst.raw_data();
  s.index_data = static_cast<const int64_t*>(bad.raw_data());
  s.dst_data = target.raw_data();
  launch<PrimitiveOp::scatter_add>(cuda, "scatter_add", 4, s);
  CHECK_THROWS_WITH_AS(cuda.synchronize(),
                       doctest::Contains("cuda scatter_add: index 3 at position (outer 1, 0, inner 0) is out of "
                                         "range [0, 3)"),
                       Error);
  CHECK(target.to_vector<float>() == std::vector<float>{7, 7, 7, 7, 7, 7});

  // A readback's wait reports it too (the no-sync step's way of reading its scalars).
  launch<PrimitiveOp::gather>(cuda, "gather", 4, g);
  const std::unique_ptr<HostReadback> readback = cuda.make_readback(sizeof(float));
  readback->start(dst.raw_data());
  CHECK_THROWS_WITH_AS(readback->wait(), doctest::Contains("index 9 at position (outer 0, 1, inner 0)"), Error);

  // Good indices afterwards: nothing left to report, and the adds land.
  const Tensor good = from_vector(std::vector<int64_t>{2, 2, 0, 1}, {2, 2}).to(Device::cuda());
  const Tensor ones = full({2, 2}, 1.0, DType::Float32, Device::cuda());
  s.index_data = static_cast<const int64_t*>(good.raw_data());
  s.src_data = ones.raw_data();
  launch<PrimitiveOp::scatter_add>(cuda, "scatter_add", 4, s);
  CHECK(target.to_vector<float>() == std::vector<float>{7, 7, 9, 8, 8, 7});
}

TEST_CASE("cuda max_pool2d: a NaN is a window's maximum and takes its gradient, as on the CPU") {
  // Windows {NaN, 5, 1, 2} (the NaN first) and {7, 2, 3, NaN} (the NaN after a larger number). The parity rows hold
  // no NaN (their comparison cannot tell one NaN from another), so the rule is checked here, value by value.
  const std::vector<float> values{NAN, 5, 7, 2, 1, 2, 3, NAN};
  for (Device device : {Device::cpu(), Device::cuda()}) {
    INFO("on " << device);
    Tensor x = from_vector(values, {1, 1, 2, 4}).to(device);
    x.requires_grad_(true);
    const Tensor y = max_pool2d(x, 2);
    const std::vector<float> pooled = y.to(Device::cpu()).to_vector<float>();
    CHECK(std::isnan(pooled[0]));
    CHECK(std::isnan(pooled[1]));
    y.sum().backward();
    CHECK(x.grad().to(Device::cpu()).to_vector<float>() == std::vector<float>{1, 0, 0, 0, 0, 0, 0, 1});
  }
}

}  // namespace
}  // namespace atelier
