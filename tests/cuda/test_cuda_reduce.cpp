// The CUDA reductions (backends/cuda/reduce.cu) beyond the parity rows (tests/parity/parity.cpp, which compare
// them with the CPU): a reduction run twice gives the same bytes (no atomics, the chunks depend only on the
// sizes), each path queues the kernels the header states, and a split reduction's scratch comes from the caching
// allocator's cache once it is warm (no cudaMalloc in steady steps).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "backends/backend.h"
#include "tensor/creation.h"

namespace atelier {
namespace {

Backend& cuda() { return backend_for(Device::cuda()); }

Layout dim1(int64_t size, int64_t stride) { return make_layout({size}, {stride}); }

// dst (kept's shape) = op over `reduced` of src, on the CUDA backend through launch().
Tensor reduce_on_cuda(ReduceOp op, const Tensor& src, const Layout& kept, const Layout& reduced) {
  Tensor dst = empty(Shape(kept.sizes, kept.sizes + kept.ndim), src.dtype(), Device::cuda());
  ReduceArgs a{};
  a.op = op;
  a.dtype = src.dtype();
  a.kept = kept;
  a.reduced = reduced;
  a.src_data = src.raw_data();
  a.dst_data = dst.raw_data();
  launch<PrimitiveOp::reduce>(cuda(), "reduce", dst.numel(), a);
  return dst;
}

// The result's bytes, read back.
std::vector<unsigned char> bytes_of(const Tensor& t) {
  const Tensor host = t.to(Device::cpu());
  const auto* p = static_cast<const unsigned char*>(host.raw_data());
  return std::vector<unsigned char>(p, p + host.numel() * static_cast<int64_t>(dtype_size(host.dtype())));
}

// Values in (-1e6, 1e6) whose float64 sums round, so that another order of summation would show in the last
// bits: uniform's draws have fewer significant bits than a double, and the sums of such values are exact in
// any order.
Tensor full_mantissas(const Shape& shape) {
  std::vector<double> v = uniform(shape, -1, 1, RandomKey{31, 0, 0}, DType::Float64).to_vector<double>();
  for (double& x : v) x = std::sin(3 * x) * 1e6 / 3;
  return from_vector(v, shape, DType::Float64);
}

// The kernels one reduction queues.
int64_t kernels_of(ReduceOp op, const Tensor& src, const Layout& kept, const Layout& reduced) {
  const int64_t before = cuda().kernels_launched();
  reduce_on_cuda(op, src, kept, reduced);
  return cuda().kernels_launched() - before;
}

TEST_CASE("cuda reduce: long reductions into 1, 2 and 3 outputs give the same bytes every time") {
  const Layout none = make_layout({}, {});
  for (DType dtype : {DType::Float64, DType::Float32, DType::Int64}) {
    const Tensor src = full_mantissas({3, 200000}).to(dtype).to(Device::cuda());
    struct Case {
      Layout kept, reduced;
    };
    const Case cases[] = {
        {none, dim1(200000, 1)},
        {dim1(2, 200000), dim1(200000, 1)},
        {dim1(3, 1), dim1(200000, 3)},  // strided, on a (200000, 3) reading
        {make_layout({1}, {0}), make_layout({400, 500}, {1, 1200})},
    };
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max}) {
      if (op == ReduceOp::Mean && dtype == DType::Int64) continue;
      for (const Case& c : cases) {
        INFO(std::string(dtype_name(dtype)) << " " << std::string(reduce_op_name(op)) << " kept " << c.kept.numel()
                                            << " reduced " << c.reduced.numel());
        const std::vector<unsigned char> first = bytes_of(reduce_on_cuda(op, src, c.kept, c.reduced));
        const std::vector<unsigned char> second = bytes_of(reduce_on_cuda(op, src, c.kept, c.reduced));
        CHECK(first == second);
      }
    }
  }
}

TEST_CASE("cuda reduce: one kernel per call, two where a long range is split over blocks; the scratch is cached") {
  const Tensor src = uniform({300, 2000}, -1, 1, RandomKey{32, 0, 0}).to(Device::cuda());
  const Layout none = make_layout({}, {});
  // Nothing to reduce: a memset. Short rows: one thread each. 64 or more: one block each.
  CHECK(kernels_of(ReduceOp::Sum, src, dim1(300, 2000), dim1(0, 1)) == 1);
  CHECK(kernels_of(ReduceOp::Sum, src, dim1(300, 2000), dim1(63, 1)) == 1);
  CHECK(kernels_of(ReduceOp::Max, src, dim1(300, 2000), dim1(64, 1)) == 1);
  // 264 outputs or more fill the GPU with one block each, however long; fewer than 4,096 elements stay whole.
  CHECK(kernels_of(ReduceOp::Sum, src, dim1(264, 2000), dim1(4096, 1)) == 1);
  CHECK(kernels_of(ReduceOp::Sum, src, dim1(2, 2000), dim1(4095, 1)) == 1);
  // Split: the chunks' kernel, then the partials' combine.
  CHECK(kernels_of(ReduceOp::Sum, src, dim1(263, 2000), dim1(4096, 1)) == 2);
  CHECK(kernels_of(ReduceOp::Mean, src, none, dim1(600000, 1)) == 2);
  CHECK(kernels_of(ReduceOp::Max, src, dim1(3, 1), dim1(200000, 3)) == 2);

  // Once warm, a split reduction's scratch (the context's workspace) is a cached block: no system allocation.
  const size_t allocs = cuda().allocator_stats().system_allocs;
  for (int i = 0; i < 3; ++i) reduce_on_cuda(ReduceOp::Mean, src, none, dim1(600000, 1));
  CHECK(cuda().allocator_stats().system_allocs == allocs);
}

}  // namespace
}  // namespace atelier
