// Hardening of sizes and byte counts: every product or sum of sizes is checked, so absurd shapes are refused
// with an atelier::Error that names the shape, never turned into a short buffer, a wrapped count or a
// malformed view; and out-of-memory is an atelier::Error naming the size asked for.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include <doctest/doctest.h>

#include "atelier.h"
#include "backends/backend.h"
#include "backends/cpu/cpu_allocator.h"
#include "tensor/raw_ops.h"
#include "tests/test_util.h"

// The out-of-memory test asks for 4 PiB. ASan and TSan abort on such a request unless told to return null, as
// the system allocator does; these hooks tell them (they are read only by a sanitizer build's runtime).
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
extern "C" const char* __tsan_default_options() { return "allocator_may_return_null=1"; }

using namespace atelier;
using atelier::testing::error_of;

namespace {

constexpr int64_t kHuge = int64_t{1} << 62;
constexpr int64_t k2to32 = int64_t{1} << 32;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

}  // namespace

TEST_CASE("creation refuses element and byte counts beyond 64 bits, naming the shape") {
  // 2^62 float32 elements are 2^64 bytes: the byte count overflows (it used to wrap to a 0-byte buffer).
  std::string msg = error_of([] { zeros({kHuge}); });
  CHECK(msg.find("[4611686018427387904]") != std::string::npos);
  CHECK(msg.find("float32") != std::string::npos);
  // 2^32 x 2^32 elements: the element count overflows (it used to be 0).
  msg = error_of([] { zeros({k2to32, k2to32}); });
  CHECK(msg.find("[4294967296, 4294967296]") != std::string::npos);
  CHECK(msg.find("too many elements") != std::string::npos);
  CHECK(error_of([] { ones({3, -2}); }).find("[3, -2]") != std::string::npos);
  CHECK(error_of([] { rand({k2to32, k2to32, 4}); }).find("[4294967296, 4294967296, 4]") != std::string::npos);
  // A 0-element shape has 0 elements whatever its other sizes, but strides beyond 64 bits are still refused.
  CHECK(zeros({0, k2to32, 4}).numel() == 0);
  CHECK(error_of([] { zeros({0, kHuge, kHuge}); }).find("strides") != std::string::npos);
  CHECK(zeros({kHuge, kHuge, 0}).numel() == 0);
}

TEST_CASE("out of memory is an atelier::OutOfMemoryError naming the bytes asked for") {
  // 2^50 float32 elements: 4 PiB, more than any machine's address space; the count itself is valid.
  CHECK_THROWS_AS(empty({int64_t{1} << 50}), OutOfMemoryError);
  const std::string msg = error_of([] { empty({int64_t{1} << 50}); });
  CHECK(msg.find("out of memory") != std::string::npos);
  CHECK(msg.find("4503599627370496 bytes") != std::string::npos);
  // The allocator still works afterwards.
  CHECK(ones({4}).sum().item() == 4);
  // A request whose rounding to a block size would overflow size_t is refused too.
  CHECK(error_of([] { CpuAllocator::bucket_size(std::numeric_limits<size_t>::max()); }).find("too large") !=
        std::string::npos);
}

TEST_CASE("reshape and expand refuse 2^64 elements, naming the shape") {
  Tensor t = ones({4});
  CHECK(error_of([&] { t.reshape({k2to32, k2to32}); }).find("[4294967296, 4294967296]") != std::string::npos);
  CHECK(error_of([&] { t.reshape({k2to32, k2to32, -1}); }).find("[4294967296, 4294967296, -1]") != std::string::npos);
  Tensor one = ones({1});
  CHECK(error_of([&] { one.expand({k2to32, k2to32}); }).find("[4294967296, 4294967296]") != std::string::npos);
  CHECK(error_of([&] { one.expand({kHuge, 4}); }).find("too many elements") != std::string::npos);
  // A large but countable broadcast is a valid view (stride 0, no memory).
  Tensor big = one.expand({kHuge});
  CHECK(big.numel() == kHuge);
  CHECK(big.stride(0) == 0);
  // cat of two such views would have 2^63 elements along the dimension: refused before any allocation.
  CHECK(error_of([&] { raw::cat({big, big}, 0); }).find("2^63 - 1") != std::string::npos);
}

TEST_CASE("expand refuses negative sizes other than -1") {
  Tensor t = ones({2, 1});
  std::string msg = error_of([&] { t.expand({2, -2}); });
  CHECK(msg.find("-2") != std::string::npos);
  CHECK(msg.find("only -1") != std::string::npos);
  CHECK(!error_of([&] { t.expand({-5, 2, 3}); }).empty());
  CHECK(!error_of([&] { ones({1}).expand({-3}); }).empty());
  CHECK(t.expand({-1, 3}).shape() == Shape{2, 3});
}

TEST_CASE("slice with a huge step gives a well-formed view") {
  Tensor t = arange(0, 10, 1, DType::Float64);
  Tensor s = t.slice(0, 0, 10, kMax);
  CHECK(s.shape() == Shape{1});
  CHECK(s.item() == 0);
  CHECK(t.slice(0, 3, 10, kMax / 2).shape() == Shape{1});
  CHECK(t.slice(0, 3, 10, kMax / 2).item() == 3);
  CHECK(t.slice(0, 10, 10, kMax).shape() == Shape{0});
  CHECK(t.slice(0, 0, 10, 3).to_vector<double>() == std::vector<double>{0, 3, 6, 9});
  CHECK(t.slice(0, 1, 10, 3).to_vector<double>() == std::vector<double>{1, 4, 7});
  // A step whose product with the stride overflows, on a dimension that would step, is refused.
  // A broadcast view of 2^62 x 4: the step never multiplies a stride it does not need.
  Tensor wide = ones({1, 4}).expand({kHuge / 4, 4});  // strides (0, 1)
  CHECK(wide.slice(1, 0, 4, kHuge).shape() == Shape{kHuge / 4, 1});
  CHECK(wide.slice(0, 0, kHuge / 4, kHuge / 8).shape() == Shape{2, 4});
}

TEST_CASE("narrow refuses a length that overflows its range check") {
  Tensor t = zeros({4, 6});
  std::string msg = error_of([&] { t.narrow(1, 2, kMax); });
  CHECK(msg.find("length 9223372036854775807") != std::string::npos);
  CHECK(msg.find("[4, 6]") != std::string::npos);
  CHECK(!error_of([&] { t.narrow(1, kMax, 2); }).empty());
  CHECK(!error_of([&] { t.narrow(1, 7, 0); }).empty());
  CHECK(!error_of([&] { t.narrow(1, 2, -1); }).empty());
  CHECK(t.narrow(1, 6, 0).shape() == Shape{4, 0});
  CHECK(t.narrow(1, 2, 4).shape() == Shape{4, 4});
}

TEST_CASE("as_strided refuses views that reach outside their storage") {
  Tensor t = zeros({2, 3});  // 6 elements
  CHECK(raw::as_strided(t, {3, 2}, {2, 1}, 0).numel() == 6);
  std::string msg = error_of([&] { raw::as_strided(t, {3, 2}, {2, 1}, 1); });
  CHECK(msg.find("outside its storage of 6 elements") != std::string::npos);
  CHECK(!error_of([&] { raw::as_strided(t, {2}, {1}, -1); }).empty());
  CHECK(!error_of([&] { raw::as_strided(t, {2, 2}, {kMax, 1}, 0); }).empty());
  CHECK(!error_of([&] { raw::as_strided(t, {2}, {1, 1}, 0); }).empty());
  CHECK(!error_of([&] { raw::as_strided(t, {-1}, {1}, 0); }).empty());
  // Zero elements reach nothing, whatever the offset.
  CHECK(raw::as_strided(t, {0}, {1}, 100).numel() == 0);
}

TEST_CASE("arange, upsampling and convolution refuse sizes beyond 64 bits") {
  CHECK(error_of([] { arange(0.0, 1e30); }).find("too many") != std::string::npos);
  CHECK(!error_of([] { arange(-1e308, 1e308, 1.0); }).empty());
  CHECK(arange(5.0, 0.0).numel() == 0);
  CHECK(arange(0.0, 1.0, 0.25).to_vector<double>() == std::vector<double>{0, 0.25, 0.5, 0.75});
  Tensor x = zeros({1, 1, 2, 2});
  CHECK(error_of([&] { upsample_nearest2d(x, kHuge); }).find("too large") != std::string::npos);
  Tensor w = zeros({1, 1, 1, 1});
  CHECK(error_of([&] { conv2d(x, w, Tensor(), 1, kHuge); }).find("padding") != std::string::npos);
}

TEST_CASE("a dimension index is refused one past either end of the rank, naming the op and the rank") {
  // Valid dimensions of a rank-2 tensor are -2..1; -3 and 2 are the first ones out on each side.
  const Tensor t = zeros({2, 3});
  CHECK(t.size(-2) == 2);
  CHECK(t.size(1) == 3);
  for (int64_t d : {int64_t{-3}, int64_t{2}}) {
    const std::string text = std::to_string(d);
    atelier::testing::check_throws_with([&] { (void)t.size(d); },
                                        {"size: dimension " + text, "a tensor with 2 dimensions"});
    atelier::testing::check_throws_with([&] { (void)transpose(t, d, 0); }, {"transpose: dimension " + text});
    atelier::testing::check_throws_with([&] { (void)cat({t, t}, d); }, {"cat: dimension " + text});
    atelier::testing::check_throws_with([&] { (void)sum(t, {d}); }, {"dimension " + text});
  }
  atelier::testing::check_throws_with([&] { (void)sum(t, {0, -2}); }, {"repeated"});
}
