// Library settings of the backend floor and the CUDA backend's shape as far as a machine without a GPU can see
// it: the matrix-multiply precision, cuda:N refused for N > 0, and the CUDA backend's support table.
#include <string>

#include <doctest/doctest.h>

#include "atelier.h"
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
  check_throws_with([] { parse_precision("bf17"); }, {"precision", "bf17", "fp32", "tf32"});
}

TEST_CASE("cuda:N other than cuda:0 is refused, naming the device") {
  // With CUDA built: "only the first GPU, cuda:0"; without: "built without CUDA". Both name the device.
  check_throws_with([] { zeros({2}).to(Device::cuda(1)); }, {"cuda:1"});
  if (cuda_backend_or_null() != nullptr) {
    check_throws_with([] { backend_for(Device::cuda(2)); }, {"cuda:2", "cuda:0", "CUDA_VISIBLE_DEVICES"});
  }
}
