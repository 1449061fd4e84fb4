// Hardening of numeric conversions and settings: float -> integer casts are defined for every input (saturate,
// NaN -> 0, by the shared rule of backends/convert.h), integer sums wrap instead of overflowing a signed type,
// and ATELIER_NUM_THREADS is checked by a function programs call before any work.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "atelier.h"
#include "backends/convert.h"
#include "backends/thread_pool.h"
#include "tensor/raw_ops.h"
#include "tests/test_util.h"

using namespace atelier;
using atelier::testing::error_of;

namespace {

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

}  // namespace

// The rule itself, at compile time: the CUDA backend's kernels will include the same header.
static_assert(convert_element<int64_t>(2.9) == 2);
static_assert(convert_element<int64_t>(-2.9) == -2);
static_assert(convert_element<int64_t>(1e30) == kI64Max);
static_assert(convert_element<int64_t>(-1e30f) == kI64Min);
static_assert(convert_element<int64_t>(9223372036854775808.0) == kI64Max);              // 2^63, the first value beyond
static_assert(convert_element<int64_t>(9223372036854774784.0) == 9223372036854774784);  // the last below
static_assert(convert_element<uint8_t>(-1.0) == 0);
static_assert(convert_element<uint8_t>(255.9f) == 255);
static_assert(convert_element<uint8_t>(256.0) == 255);
static_assert(convert_element<bool>(0.5) && !convert_element<bool>(0.0));
static_assert(convert_element<uint8_t>(int64_t{300}) == 44);  // integer narrowing wraps modulo 256

TEST_CASE("casting NaN and out-of-range floats to integers saturates, NaN to 0, for both float dtypes") {
  const std::vector<double> in = {kNaN, kInf, -kInf, 1e30, -1e30, 2.7, -2.7, 255.5, 256, -1, 9.3e18, 0};
  for (DType from : {DType::Float32, DType::Float64}) {
    CAPTURE(from);
    Tensor t = from_vector(in, {static_cast<int64_t>(in.size())}, from);
    CHECK(raw::cast(t, DType::Int64).to_vector<int64_t>() ==
          std::vector<int64_t>{0, kI64Max, kI64Min, kI64Max, kI64Min, 2, -2, 255, 256, -1, kI64Max, 0});
    CHECK(raw::cast(t, DType::UInt8).to_vector<uint8_t>() ==
          std::vector<uint8_t>{0, 255, 0, 255, 0, 2, 0, 255, 255, 0, 255, 0});
    // NaN is "not zero": true, as in C++ and PyTorch.
    CHECK(raw::cast(t, DType::Bool).to_vector<uint8_t>() == std::vector<uint8_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0});
    // A strided source takes the same rule (the kernel's other loop).
    Tensor every_other = t.slice(0, 0, static_cast<int64_t>(in.size()), 2);
    CHECK(raw::cast(every_other, DType::Int64).to_vector<int64_t>() ==
          std::vector<int64_t>{0, kI64Min, kI64Min, -2, 256, kI64Max});
  }
}

TEST_CASE("filling an integer tensor with NaN or an out-of-range value saturates") {
  Tensor t = zeros({5}, DType::Int64);
  t.fill_(kNaN);
  CHECK(t.to_vector<int64_t>() == std::vector<int64_t>(5, 0));
  t.fill_(1e300);
  CHECK(t.to_vector<int64_t>() == std::vector<int64_t>(5, kI64Max));
  Tensor u = full({3}, -5.0, DType::UInt8);
  CHECK(u.to_vector<uint8_t>() == std::vector<uint8_t>(3, 0));
}

TEST_CASE("an int64 sum past the type's range wraps, never overflows a signed type") {
  Tensor t = from_vector(std::vector<int64_t>{kI64Max, 1}, {2});
  CHECK(raw::reduce(ReduceOp::Sum, t, {}, false).item<int64_t>() == kI64Min);
  Tensor big = full({100000}, static_cast<double>(int64_t{1} << 60), DType::Int64);
  // 100000 * 2^60 mod 2^64 = (100000 mod 16) * 2^60 = 0
  CHECK(raw::reduce(ReduceOp::Sum, big, {}, false).item<int64_t>() == 0);
}

TEST_CASE("ATELIER_NUM_THREADS is checked by num_threads_from_environment, naming the value") {
  for (const char* bad : {"0", "-1", "abc", "3x", " 3", "+3", "4097", "99999999999999999999", "1e3", "2.5"}) {
    CAPTURE(bad);
    testing::ScopedEnv env("ATELIER_NUM_THREADS", std::string(bad));
    const std::string msg = error_of([] { num_threads_from_environment(); });
    CHECK(msg.find("ATELIER_NUM_THREADS must be an integer in [1, 4096]") != std::string::npos);
    CHECK(msg.find(std::string("'") + bad + "'") != std::string::npos);
  }
  {
    // An absurdly long value is quoted only in part.
    testing::ScopedEnv env("ATELIER_NUM_THREADS", std::string(100000, '7'));
    const std::string msg = error_of([] { num_threads_from_environment(); });
    CHECK(msg.find("...'") != std::string::npos);
    CHECK(msg.size() < 200);
  }
  {
    testing::ScopedEnv env("ATELIER_NUM_THREADS", std::string("7"));
    CHECK(num_threads_from_environment() == 7);
  }
  {
    testing::ScopedEnv env("ATELIER_NUM_THREADS", std::string("4096"));
    CHECK(num_threads_from_environment() == 4096);
  }
  {
    testing::ScopedEnv env("ATELIER_NUM_THREADS", std::nullopt);
    const unsigned hw = std::thread::hardware_concurrency();
    CHECK(num_threads_from_environment() == (hw == 0 ? 1 : static_cast<int>(hw)));
  }
  {
    testing::ScopedEnv env("ATELIER_NUM_THREADS", std::string(""));  // empty counts as unset
    CHECK(num_threads_from_environment() >= 1);
  }
}
