// The backend floor's settings and shared pieces, as far as a machine without a GPU can see them: the
// matrix-multiply precision, the CUDA convolutions' workspace limit, cuda:N refused for N > 0, scalar operands passed
// by value, and the caching allocator both backends use, over a system memory that runs out.
#include <cstdlib>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "atelier.h"
#include "backends/caching_allocator.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::check_throws_with;

TEST_CASE("precision: fp32 by default, settable, parsed by name") {
  CHECK(precision() == Precision::FP32);
  set_precision(Precision::TF32);
  CHECK(precision() == Precision::TF32);
  CHECK(std::string(precision_name(precision())) == "tf32");
  set_precision(Precision::FP32);
  CHECK(precision() == Precision::FP32);
  CHECK(parse_precision("fp32") == Precision::FP32);
  CHECK(parse_precision("tf32") == Precision::TF32);
  CHECK(parse_precision("bf16") == Precision::BF16);
  CHECK(std::string(precision_name(Precision::BF16)) == "bf16");
  check_throws_with([] { parse_precision("bf17"); }, {"precision", "bf17", "fp32", "tf32", "bf16"});
  CHECK(gemm_parity_tolerance(Precision::FP32) < gemm_parity_tolerance(Precision::TF32));
  CHECK(gemm_parity_tolerance(Precision::TF32) < gemm_parity_tolerance(Precision::BF16));
}

TEST_CASE("conv workspace limit: 256 MiB by default, settable, at least 1 byte") {
  CHECK(conv_workspace_limit() == kDefaultConvWorkspaceLimit);
  CHECK(kDefaultConvWorkspaceLimit == size_t{256} << 20);
  set_conv_workspace_limit(4096);
  CHECK(conv_workspace_limit() == 4096);
  check_throws_with([] { set_conv_workspace_limit(0); }, {"at least 1 byte", "got 0"});
  CHECK(conv_workspace_limit() == 4096);  // a refused value changes nothing
  set_conv_workspace_limit(kDefaultConvWorkspaceLimit);
}

TEST_CASE("precision: the CPU computes float32 under every setting (matmul and conv2d bit for bit)") {
  // Values with all 23 mantissa bits in use, so a product rounded to TF32 or bfloat16 would differ.
  const Tensor a = uniform({33, 70}, -1, 1, RandomKey{5, 0, 0}), b = uniform({70, 19}, -1, 1, RandomKey{5, 1, 0});
  const Tensor x = uniform({2, 5, 9, 9}, -1, 1, RandomKey{5, 2, 0}),
               w = uniform({4, 5, 3, 3}, -1, 1, RandomKey{5, 3, 0});
  auto results = [&] {
    return std::vector<std::vector<float>>{matmul(a, b).to_vector<float>(),
                                           conv2d(x, w, Tensor(), 1, 1).to_vector<float>()};
  };
  const auto fp32 = results();
  for (Precision p : {Precision::TF32, Precision::BF16}) {
    INFO("precision " << precision_name(p));
    const testing::PrecisionScope scope(p);
    CHECK(results() == fp32);
  }
}

TEST_CASE("cuda:N other than cuda:0 is refused, naming the device") {
  // With CUDA built: "only the first GPU, cuda:0"; without: "built without CUDA". Both name the device.
  check_throws_with([] { zeros({2}).to(Device::cuda(1)); }, {"cuda:1"});
  if (cuda_backend_or_null() != nullptr) {
    check_throws_with([] { backend_for(Device::cuda(2)); }, {"cuda:2", "cuda:0", "CUDA_VISIBLE_DEVICES"});
  }
}

TEST_CASE("a tensor-scalar op allocates its output and nothing else (the scalar travels in the args)") {
  Backend& cpu = backend_for(Device::cpu());
  const Tensor a = tensor({1, -2, 3, 4}, {2, 2});
  auto blocks_taken = [&] {
    const AllocatorStats s = cpu.allocator_stats();
    return s.system_allocs + s.cache_hits;
  };
  const size_t before = blocks_taken();
  const Tensor sum = raw::binary(BinaryOp::Add, a, 0.5);
  const Tensor above = raw::compare(CompareOp::Gt, a, 0.0);
  const Tensor reflected = raw::binary(BinaryOp::Div, 2.0, a.t());  // the scalar first, a strided tensor second
  CHECK(blocks_taken() - before == 3);                              // the three outputs
  CHECK(sum.to_vector<float>() == std::vector<float>{1.5f, -1.5f, 3.5f, 4.5f});
  CHECK(reflected.to_vector<float>() == std::vector<float>{2.0f, 2.0f / 3, -1.0f, 0.5f});
  CHECK(above.to_vector<bool>() == std::vector<bool>{true, false, true, true});
  // In place, on a non-contiguous view too (computed aside, copied back).
  const Tensor b = tensor({1, 2, 3, 4}, {2, 2});
  raw::binary_(BinaryOp::Mul, b.t(), 10.0);
  CHECK(b.to_vector<float>() == std::vector<float>{10, 20, 30, 40});
  const Tensor c = tensor({1, 2, 3, 4}, {2, 2});
  const size_t before_inplace = blocks_taken();
  raw::binary_(BinaryOp::Sub, c, 1.0);
  CHECK(blocks_taken() == before_inplace);
  CHECK(c.to_vector<float>() == std::vector<float>{0, 1, 2, 3});
  // An int64 comparison converts the scalar as fill does (truncation toward zero).
  const Tensor labels = from_vector(std::vector<int64_t>{-1, 0, 1, 2}, {4});
  CHECK(raw::compare(CompareOp::Ge, labels, 0.9).to_vector<bool>() == std::vector<bool>{false, true, true, true});
}

namespace {

// A system memory of at most two live blocks, counting its calls: it stands in for cudaMalloc/cudaFree.
int g_system_live = 0, g_system_calls = 0, g_system_releases = 0;
void* two_block_allocate(size_t bytes) {
  ++g_system_calls;
  if (g_system_live == 2) return nullptr;  // "out of memory"
  ++g_system_live;
  return std::malloc(bytes);
}
void two_block_release(void* ptr) noexcept {
  ++g_system_releases;
  --g_system_live;
  std::free(ptr);
}

}  // namespace

TEST_CASE("caching allocator: out of system memory it returns its cache and tries again, then names the size") {
  CachingAllocator alloc(SystemMemory{"test", &two_block_allocate, &two_block_release});
  void* a = alloc.allocate(1000);
  void* b = alloc.allocate(5000);
  alloc.deallocate(a, 1000);  // cached, still held from the system
  CHECK(alloc.stats().cached == CachingAllocator::bucket_size(1000));
  // A third size: the system refuses, the cache goes back, the second try succeeds.
  void* c = alloc.allocate(20000);
  CHECK(c != nullptr);
  CHECK(g_system_releases == 1);
  CHECK(alloc.stats().cached == 0);
  CHECK(alloc.stats().system_allocs == 3);
  // Both blocks in use: no cache to return, so the error names the allocator and the size.
  check_throws_with([&] { (void)alloc.allocate(70000); }, {"test allocator", "out of memory", "70000"});
  alloc.deallocate(b, 5000);
  alloc.deallocate(c, 20000);
  alloc.deallocate(nullptr, 8);  // ignored
  CHECK(alloc.stats().in_use == 0);
  alloc.empty_cache();
  CHECK(g_system_live == 0);
}
