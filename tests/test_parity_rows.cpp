// The parity tables of tests/parity/ (run CPU against CUDA by the CUDA test program), checked here on the CPU:
// every primitive and dtype the CPU supports has a row, every row runs and agrees with itself CPU against CPU
// (so a row's own bugs show up without a GPU), every op-table row passes the float32 op harness CPU against CPU,
// and the comparison does fail on a wrong result; and testing::same_bits, the CUDA tests' bit-for-bit comparison,
// lets a NaN match any NaN (a GPU's float32 NaN is 0x7fffffff) and nothing else.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/op_table.h"
#include "backends/backend.h"
#include "tensor/creation.h"
#include "tests/parity/parity.h"
#include "tests/test_util.h"

using namespace atelier;

TEST_CASE("parity: every primitive and CPU-supported dtype has a row") {
  for (const std::string& missing : parity::primitives_without_rows()) {
    INFO("primitive without a parity row in tests/parity/parity.cpp: " << missing);
    CHECK(false);
  }
  // And every row is of a dtype the CPU supports (so it can run as the reference).
  for (const parity::PrimitiveRow& row : parity::primitive_rows()) {
    INFO("row " << row.name);
    CHECK(backend_for(Device::cpu()).supports(row.op, row.dtype));
  }
}

TEST_CASE("parity: every primitive row runs on the CPU and agrees with itself") {
  CHECK(parity::primitive_rows().size() >= 50);
  for (const parity::PrimitiveRow& row : parity::primitive_rows()) {
    INFO("row " << row.name);
    CHECK(parity::primitive_row_parity(row, Device::cpu(), Device::cpu()) == "");
  }
}

TEST_CASE("parity: every op-table row passes the float32 harness CPU against CPU") {
  for (const OpCase& c : op_table()) {
    INFO("row " << c.name);
    CHECK(parity::op_row_parity(c, Device::cpu(), Device::cpu()) == "");
  }
}

TEST_CASE("parity: the comparison catches wrong results") {
  const Tensor want = from_vector(std::vector<float>{1.0f, -2.0f, 3.0f, 1e-3f}, {4});
  const Tensor off_by_1e4 = from_vector(std::vector<float>{1.0f, -2.0f, 3.0003f, 1e-3f}, {4});
  const Tensor nan = from_vector(std::vector<float>{1.0f, -2.0f, std::numeric_limits<float>::quiet_NaN(), 1e-3f}, {4});
  CHECK(parity::compare(want, want, parity::Tolerance::Exact) == "");
  CHECK(parity::compare(off_by_1e4, want, parity::Tolerance::Exact).find("element 2") != std::string::npos);
  CHECK(parity::compare(off_by_1e4, want, parity::Tolerance::Elementwise).find("element 2") != std::string::npos);
  CHECK(parity::compare(off_by_1e4, want, parity::Tolerance::Norm).find("||got - want||") != std::string::npos);
  CHECK(parity::compare(nan, want, parity::Tolerance::Norm) != "");
  CHECK(parity::compare(nan, nan, parity::Tolerance::Exact) == "");
  CHECK(parity::compare(want, want.to(DType::Float64), parity::Tolerance::Exact).find("float64") != std::string::npos);
  // 12 ulp of float32 at 3 is 12 * 2^-22: 3 + 11 ulp passes, 3 + 13 ulp does not.
  const float three = 3.0f, ulp = std::nextafter(three, 4.0f) - three;
  const Tensor eleven_ulp = from_vector(std::vector<float>{1.0f, -2.0f, three + 11 * ulp, 1e-3f}, {4});
  const Tensor thirteen_ulp = from_vector(std::vector<float>{1.0f, -2.0f, three + 13 * ulp, 1e-3f}, {4});
  CHECK(parity::compare(eleven_ulp, want, parity::Tolerance::Ulp12) == "");
  CHECK(parity::compare(thirteen_ulp, want, parity::Tolerance::Ulp12) != "");
}

TEST_CASE("testing::same_bits: any NaN matches any NaN; signed zeros, one ulp, dtypes and shapes do not") {
  // The CPU's NaN from a float64 cast, a GPU's canonical float32 NaN, and a negative NaN with a payload.
  const float cpu_nan = std::bit_cast<float>(uint32_t{0x7fc00000}),
              gpu_nan = std::bit_cast<float>(uint32_t{0x7fffffff});
  const float other_nan = std::bit_cast<float>(uint32_t{0xffc00123});
  const Tensor want = from_vector(std::vector<float>{1.5f, -0.0f, cpu_nan}, {3});
  CHECK(testing::same_bits(want, from_vector(std::vector<float>{1.5f, -0.0f, gpu_nan}, {3})));
  CHECK(testing::same_bits(want, from_vector(std::vector<float>{1.5f, -0.0f, other_nan}, {3})));
  CHECK_FALSE(testing::same_bits(want, from_vector(std::vector<float>{1.5f, 0.0f, cpu_nan}, {3})));
  CHECK_FALSE(
      testing::same_bits(want, from_vector(std::vector<float>{std::nextafter(1.5f, 2.0f), -0.0f, cpu_nan}, {3})));
  CHECK_FALSE(testing::same_bits(want, from_vector(std::vector<float>{1.5f, -0.0f, 2.0f}, {3})));
  CHECK_FALSE(testing::same_bits(want, want.to(DType::Float64)));
  CHECK_FALSE(testing::same_bits(want, want.reshape({3, 1})));
  const double nan64 = std::bit_cast<double>(uint64_t{0x7ff8000000000000}),
               gpu_nan64 = std::bit_cast<double>(uint64_t{0x7fffffffffffffff});
  CHECK(testing::same_bits(from_vector(std::vector<double>{nan64, -0.0}, {2}),
                           from_vector(std::vector<double>{gpu_nan64, -0.0}, {2})));
  CHECK_FALSE(testing::same_bits(from_vector(std::vector<double>{nan64, -0.0}, {2}),
                                 from_vector(std::vector<double>{gpu_nan64, 0.0}, {2})));
  // Integers compare bytes: no NaN rule there.
  CHECK_FALSE(
      testing::same_bits(from_vector(std::vector<int64_t>{1, 2}, {2}), from_vector(std::vector<int64_t>{1, 3}, {2})));
}
