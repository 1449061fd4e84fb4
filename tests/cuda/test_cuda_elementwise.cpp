// The CUDA memory and elementwise families against the CPU, at their edges: the caching allocator and the
// context, strided copies of permuted views for every dtype, casts at the saturation and NaN rules of
// backends/convert.h, fills through strides, Philox uniforms bit-identical and normals within 12 ulp (float32: 1),
// every unary, binary and compare op with broadcasting and non-contiguous inputs, scalar operands passed by value, and
// where. (tests/cuda/test_cuda_parity.cpp holds the one-row-per-primitive table; these are the cases it does not
// reach.)
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "backends/backend.h"
#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/raw_ops.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

namespace atelier {
namespace {

const Device kCuda = Device::cuda();

std::vector<double> host_values(const Tensor& t) { return t.to_vector<double>(); }

// The raw bytes of a tensor (any device), for bit-exact comparisons.
std::vector<unsigned char> bytes_of(const Tensor& t) {
  const Tensor host = raw::contiguous(raw::to_device(t, Device::cpu()));
  const auto* p = static_cast<const unsigned char*>(host.raw_data());
  return std::vector<unsigned char>(p, p + static_cast<size_t>(host.numel()) * dtype_size(host.dtype()));
}

// The distance in units in the last place between two finite doubles of the same sign (0 when equal).
int64_t ulp_distance(double a, double b) {
  if (a == b) return 0;
  const int64_t ia = std::bit_cast<int64_t>(a), ib = std::bit_cast<int64_t>(b);
  if ((ia < 0) != (ib < 0)) return std::numeric_limits<int64_t>::max();
  return ia > ib ? ia - ib : ib - ia;
}

int64_t ulp_distance(float a, float b) {
  if (a == b) return 0;
  const int32_t ia = std::bit_cast<int32_t>(a), ib = std::bit_cast<int32_t>(b);
  if ((ia < 0) != (ib < 0)) return std::numeric_limits<int64_t>::max();
  return ia > ib ? int64_t{ia} - ib : int64_t{ib} - ia;
}

// Elementwise parity: |gpu - cpu| <= tol (1 + |cpu|); NaN must meet NaN and infinities their like.
void check_close(const Tensor& gpu, const Tensor& cpu, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(gpu.shape() == cpu.shape());
  const std::vector<double> g = host_values(gpu), c = host_values(cpu);
  int bad = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool ok = std::isnan(c[i])   ? std::isnan(g[i])
                    : std::isinf(c[i]) ? g[i] == c[i]
                                       : std::abs(g[i] - c[i]) <= tol * (1 + std::abs(c[i]));
    if (!ok && ++bad <= 3) {
      INFO("element " << i << ": cuda " << g[i] << ", cpu " << c[i]);
      CHECK(ok);
    }
  }
  CHECK(bad == 0);
}

double tolerance(DType dtype) { return dtype == DType::Float32 ? 1e-6 : 1e-12; }

const std::vector<DType> kAllTypes = {DType::Float32, DType::Float64, DType::Int64, DType::Bool, DType::UInt8};

TEST_CASE("cuda caching allocator: reuse without cudaMalloc, counters, empty_cache, workspace-free steady state") {
  Backend& cuda = backend_for(kCuda);
  cuda.empty_cache();
  const AllocatorStats start = cuda.allocator_stats();
  CHECK(start.cached == 0);
  void* p = cuda.allocate(1000);
  REQUIRE(p != nullptr);
  const AllocatorStats one = cuda.allocator_stats();
  CHECK(one.system_allocs == start.system_allocs + 1);
  CHECK(one.in_use >= start.in_use + 1000);
  cuda.deallocate(p, 1000);
  for (int i = 0; i < 5; ++i) {
    void* q = cuda.allocate(1000);  // the same bucket: served from the cache
    cuda.deallocate(q, 1000);
  }
  const AllocatorStats reused = cuda.allocator_stats();
  CHECK(reused.system_allocs == one.system_allocs);
  CHECK(reused.cache_hits >= start.cache_hits + 5);
  CHECK(reused.cached >= 1000);
  CHECK(reused.peak_in_use >= one.in_use);
  cuda.reset_peak_in_use();  // the peak starts again from what is in use now
  CHECK(cuda.allocator_stats().peak_in_use == cuda.allocator_stats().in_use);
  cuda.empty_cache();
  CHECK(cuda.allocator_stats().cached == 0);
  // A steady loop of tensor ops makes no new cudaMalloc after its first pass.
  const Tensor x = uniform({64, 33}, -1, 1, RandomKey{1, 0, 0}, DType::Float32, kCuda);
  auto pass = [&] { return raw::binary(BinaryOp::Mul, raw::unary(UnaryOp::Tanh, x.t()), 2.0); };
  (void)pass();
  const size_t warm = cuda.allocator_stats().system_allocs;
  for (int i = 0; i < 3; ++i) (void)pass();
  CHECK(cuda.allocator_stats().system_allocs == warm);
}

TEST_CASE("cuda copy: permuted, sliced and broadcast views of every dtype, bit for bit") {
  for (DType dtype : kAllTypes) {
    CAPTURE(dtype);
    // 3 x 5 x 7 values that survive every dtype's conversion differently (bool: nonzero; uint8: mod 256).
    const Tensor base = raw::cast(arange(-50, 55, 1, DType::Float64).reshape({3, 5, 7}), dtype);
    const Tensor dev = base.to(kCuda);
    const std::vector<Tensor> views_cpu = {raw::permute(base, {2, 0, 1}), raw::slice(base, 2, 1, 7, 2),
                                           raw::transpose(raw::slice(base, 1, 0, 5, 3), 0, 2),
                                           raw::expand(raw::slice(base, 0, 1, 2, 1), {4, 5, 7})};
    const std::vector<Tensor> views_gpu = {raw::permute(dev, {2, 0, 1}), raw::slice(dev, 2, 1, 7, 2),
                                           raw::transpose(raw::slice(dev, 1, 0, 5, 3), 0, 2),
                                           raw::expand(raw::slice(dev, 0, 1, 2, 1), {4, 5, 7})};
    for (size_t v = 0; v < views_cpu.size(); ++v) {
      CAPTURE(v);
      CHECK(bytes_of(raw::contiguous(views_gpu[v])) == bytes_of(raw::contiguous(views_cpu[v])));
    }
    // Into a strided destination: every other column of a wider tensor.
    Tensor wide_cpu = zeros({5, 14}, dtype), wide_gpu = zeros({5, 14}, dtype, kCuda);
    raw::copy_(raw::slice(wide_cpu, 1, 0, 14, 2), raw::transpose(raw::slice(base, 0, 0, 1, 1).reshape({7, 5}), 0, 1));
    raw::copy_(raw::slice(wide_gpu, 1, 0, 14, 2), raw::transpose(raw::slice(dev, 0, 0, 1, 1).reshape({7, 5}), 0, 1));
    CHECK(bytes_of(wide_gpu) == bytes_of(wide_cpu));
  }
}

TEST_CASE("cuda cast: every dtype pair, saturation and NaN -> 0 as on the CPU") {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> edge = {0.0,    -0.0,    0.5,   -0.5,  1.0,   -1.0,   2.75,        -2.75,
                                    127.9,  128.0,   255.0, 255.9, 256.0, -129.0, 1e10,        -1e10,
                                    9.3e18, -9.3e18, 1e30,  -1e30, inf,   -inf,   std::nan("")};
  const Tensor source64 = from_vector(edge, {static_cast<int64_t>(edge.size())}, DType::Float64);
  for (DType src : kAllTypes) {
    // Float sources carry the edge values themselves; the others their own conversions of them.
    const Tensor s_cpu =
        is_floating(src) ? raw::cast(source64, src) : raw::cast(raw::cast(source64, DType::Int64), src);
    const Tensor s_gpu = s_cpu.to(kCuda);
    for (DType dst : kAllTypes) {
      CAPTURE(src);
      CAPTURE(dst);
      // Bit for bit, but a NaN matches any NaN (testing::same_bits): the GPU's float32 NaN is 0x7fffffff, so a
      // float64 NaN cast to float32 there is not the CPU's 0x7fc00000.
      CHECK(testing::same_bits(raw::cast(s_gpu, dst), raw::cast(s_cpu, dst)));
      // And through a strided source (reversed by a negative-free stride: every other element).
      CHECK(testing::same_bits(raw::cast(raw::slice(s_gpu, 0, 1, s_gpu.shape()[0], 2), dst),
                               raw::cast(raw::slice(s_cpu, 0, 1, s_cpu.shape()[0], 2), dst)));
    }
  }
  // The rule itself, spelled out once on the GPU: NaN -> 0, beyond the range -> the range's ends.
  const Tensor i64 = raw::cast(source64.to(kCuda), DType::Int64);
  const std::vector<int64_t> got = i64.to_vector<int64_t>();
  CHECK(got.back() == 0);                                              // NaN
  CHECK(got[edge.size() - 3] == std::numeric_limits<int64_t>::max());  // +inf
  CHECK(got[edge.size() - 2] == std::numeric_limits<int64_t>::min());  // -inf
  CHECK(got[7] == -2);                                                 // truncation toward zero
}

TEST_CASE("cuda fill: every dtype, through strides") {
  for (DType dtype : kAllTypes) {
    for (double value : {2.5, -1.0, 300.0, std::nan("")}) {
      CAPTURE(dtype);
      CAPTURE(value);
      Tensor c = zeros({6, 8}, dtype), g = zeros({6, 8}, dtype, kCuda);
      raw::fill_(raw::slice(raw::transpose(c, 0, 1), 0, 1, 8, 3), value);
      raw::fill_(raw::slice(raw::transpose(g, 0, 1), 0, 1, 8, 3), value);
      CHECK(testing::same_bits(g, c));  // a NaN fill matches as NaN (see the cast test)
    }
  }
}

TEST_CASE("cuda random: uniforms bit-identical to the CPU's, normals within 12 ulp (float32: 1), offsets compose") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1001}, int64_t{65537}}) {
      CAPTURE(dtype);
      CAPTURE(n);
      const RandomKey key{0x1234abcdULL, 3, 17};
      CHECK(bytes_of(uniform({n}, -2.0, 3.0, key, dtype, kCuda)) == bytes_of(uniform({n}, -2.0, 3.0, key, dtype)));
      CHECK(bytes_of(uniform({n}, 0.0, 1.0, key, dtype, kCuda)) == bytes_of(uniform({n}, 0.0, 1.0, key, dtype)));
      const Tensor g = normal({n}, 0.0, 1.0, key, dtype, kCuda), c = normal({n}, 0.0, 1.0, key, dtype);
      int64_t worst = 0;
      if (dtype == DType::Float32) {
        const std::vector<float> gv = g.to_vector<float>(), cv = c.to_vector<float>();
        for (size_t i = 0; i < gv.size(); ++i) worst = std::max(worst, ulp_distance(gv[i], cv[i]));
      } else {
        const std::vector<double> gv = g.to_vector<double>(), cv = c.to_vector<double>();
        for (size_t i = 0; i < gv.size(); ++i) worst = std::max(worst, ulp_distance(gv[i], cv[i]));
      }
      // The bound is derived at the random rows of tests/parity/parity.cpp: float64 z may differ by up to 12 ulp
      // (CUDA's log/cos/sin against libm), float32 z is that double rounded once.
      CHECK(worst <= (dtype == DType::Float32 ? 1 : 12));
    }
  }
  // Two consecutive fills are one fill split in two (offsets in blocks of 4).
  const Tensor whole = uniform({16}, 0, 1, RandomKey{9, 0, 0}, DType::Float32, kCuda);
  const Tensor first = uniform({8}, 0, 1, RandomKey{9, 0, 0}, DType::Float32, kCuda);
  const Tensor second = uniform({8}, 0, 1, RandomKey{9, 0, 2}, DType::Float32, kCuda);
  CHECK(bytes_of(whole) == bytes_of(raw::cat({first, second}, 0)));
}

// Inputs for the maps: both signs, zeros, values near the branch points of sigmoid and ELU, and NaN/inf.
Tensor map_input(DType dtype, Device device) {
  std::vector<double> v;
  for (int i = 0; i < 60; ++i) v.push_back((i - 30) * 0.37);
  v.insert(v.end(), {0.0, -0.0, 1e-8, -1e-8, 80.0, -80.0, 700.0, -700.0, std::nan(""),
                     std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), 0.25});
  return raw::reshape(from_vector(v, {static_cast<int64_t>(v.size())}, dtype, device), {6, 12});
}

TEST_CASE("cuda unary: every op on contiguous and transposed inputs, float32 and float64") {
  const std::vector<std::pair<UnaryOp, std::pair<double, double>>> ops = {
      {UnaryOp::Neg, {0, 0}},
      {UnaryOp::Exp, {0, 0}},
      {UnaryOp::Log, {0, 0}},
      {UnaryOp::Abs, {0, 0}},
      {UnaryOp::Sign, {0, 0}},
      {UnaryOp::Sqrt, {0, 0}},
      {UnaryOp::Tanh, {0, 0}},
      {UnaryOp::Sigmoid, {0, 0}},
      {UnaryOp::Relu, {0, 0}},
      {UnaryOp::Elu, {1.5, 0}},
      {UnaryOp::Pow, {2.0, 0}},
      {UnaryOp::Pow, {0.5, 0}},
      {UnaryOp::Pow, {-1.5, 0}},
      {UnaryOp::Clamp, {-1.0, 2.5}},
      {UnaryOp::Softplus, {1.0, 20.0}},
      {UnaryOp::Softplus, {2.0, 3.0}},
      {UnaryOp::Softplus, {1.0, std::numeric_limits<double>::infinity()}},
      {UnaryOp::LeakyRelu, {0.01, 0}},
      {UnaryOp::LeakyRelu, {-0.3, 0}},
      {UnaryOp::Silu, {0, 0}},
      {UnaryOp::Gelu, {0, 0}},
      {UnaryOp::GeluTanh, {0, 0}}};
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor c = map_input(dtype, Device::cpu()), g = map_input(dtype, kCuda);
    for (const auto& [op, p] : ops) {
      const std::string what = "unary op " + std::to_string(static_cast<int>(op)) + " p0 " + std::to_string(p.first) +
                               " " + dtype_name(dtype);
      check_close(raw::unary(op, g, p.first, p.second), raw::unary(op, c, p.first, p.second), tolerance(dtype), what);
      check_close(raw::unary(op, g.t(), p.first, p.second), raw::unary(op, c.t(), p.first, p.second), tolerance(dtype),
                  what + " (transposed)");
    }
  }
}

TEST_CASE("cuda binary and compare: every op, broadcasting, strided operands and scalars by value") {
  const std::vector<BinaryOp> binary_ops = {BinaryOp::Add, BinaryOp::Sub,     BinaryOp::Mul,    BinaryOp::Div,
                                            BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Minimum};
  const std::vector<CompareOp> compare_ops = {CompareOp::Eq, CompareOp::Ne, CompareOp::Gt,
                                              CompareOp::Ge, CompareOp::Lt, CompareOp::Le};
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor a_c = map_input(dtype, Device::cpu()), a_g = map_input(dtype, kCuda);  // (6, 12)
    // b: (12) broadcast over rows, and a transposed (12, 6) view used as (6, 12).
    const Tensor row_c = raw::slice(a_c, 0, 2, 3, 1).reshape({12}), row_g = raw::slice(a_g, 0, 2, 3, 1).reshape({12});
    const Tensor tr_c = raw::contiguous(a_c.t()).t(), tr_g = raw::contiguous(a_g.t()).t();
    for (BinaryOp op : binary_ops) {
      const std::string what = "binary op " + std::to_string(static_cast<int>(op)) + " " + dtype_name(dtype);
      check_close(raw::binary(op, a_g, row_g), raw::binary(op, a_c, row_c), tolerance(dtype), what + " broadcast");
      check_close(raw::binary(op, a_g, tr_g), raw::binary(op, a_c, tr_c), tolerance(dtype), what + " strided");
      check_close(raw::binary(op, a_g, -1.25), raw::binary(op, a_c, -1.25), tolerance(dtype), what + " scalar");
      Tensor in_c = raw::clone(a_c), in_g = raw::clone(a_g);
      raw::binary_(op, in_c, 0.75);
      raw::binary_(op, in_g, 0.75);
      check_close(in_g, in_c, tolerance(dtype), what + " in place, scalar");
    }
    for (CompareOp op : compare_ops) {
      CAPTURE(static_cast<int>(op));
      CHECK(bytes_of(raw::compare(op, a_g, row_g)) == bytes_of(raw::compare(op, a_c, row_c)));
      CHECK(bytes_of(raw::compare(op, a_g, tr_g)) == bytes_of(raw::compare(op, a_c, tr_c)));
      CHECK(bytes_of(raw::compare(op, a_g, 0.37)) == bytes_of(raw::compare(op, a_c, 0.37)));
    }
  }
  // int64 compare, with a scalar converted as fill converts it.
  const Tensor labels_c = from_vector(std::vector<int64_t>{-3, 0, 2, 7, 7, -1}, {2, 3});
  const Tensor labels_g = labels_c.to(kCuda);
  for (CompareOp op : compare_ops) {
    CHECK(bytes_of(raw::compare(op, labels_g, labels_g.slice(0, 1, 2, 1))) ==
          bytes_of(raw::compare(op, labels_c, labels_c.slice(0, 1, 2, 1))));
    CHECK(bytes_of(raw::compare(op, labels_g, 2.9)) == bytes_of(raw::compare(op, labels_c, 2.9)));
  }
}

TEST_CASE("cuda where: every dtype, broadcast condition and operands") {
  const Tensor cond_c = from_vector(std::vector<bool>{true, false, false, true, true, false, true}, {7, 1});
  const Tensor cond_g = cond_c.to(kCuda);
  for (DType dtype : kAllTypes) {
    CAPTURE(dtype);
    const Tensor base_c = raw::cast(arange(0, 35, 1, DType::Float64).reshape({5, 7}), dtype);
    const Tensor a_c = base_c.t(), a_g = base_c.to(kCuda).t();  // (7, 5), strided on both devices
    const Tensor b_c = raw::cast(full({5}, -4.0, DType::Float64), dtype), b_g = b_c.to(kCuda);
    CHECK(bytes_of(raw::where(cond_g, a_g, b_g)) == bytes_of(raw::where(cond_c, a_c, b_c)));
    CHECK(bytes_of(raw::where(cond_g, b_g, a_g)) == bytes_of(raw::where(cond_c, b_c, a_c)));
  }
}

}  // namespace
}  // namespace atelier
