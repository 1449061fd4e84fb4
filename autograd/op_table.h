// The op table: one row per checked case of every differentiable op. It drives the float64 gradient check
// (tests/test_gradcheck.cpp and the `gradcheck` program), the CPU-vs-CUDA parity checks (tests/parity/) and the
// per-op benchmarks (bench/bench_op_table.cpp).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "tensor/tensor.h"

namespace atelier {

struct OpCase {
  std::string op;    // the name in autograd/differentiable_ops.def
  std::string name;  // what this row covers, e.g. "add/broadcast"
  // Makes fresh inputs: contiguous float64 leaves that require grad, plus any int64/bool inputs.
  std::function<std::vector<Tensor>()> make_inputs;
  GradcheckFn fn;
  GradcheckOptions options = {};
};

const std::vector<OpCase>& op_table();

// A row's inputs (make_inputs()) in `dtype` on `device`: each floating input as a new leaf of that dtype that requires
// grad if the original does, the others (int64 labels, bool masks) moved as they are. How the parity tests and the
// op benchmarks run the float64 rows in float32.
std::vector<Tensor> inputs_as(const std::vector<Tensor>& inputs, DType dtype, Device device);

// Every name in autograd/differentiable_ops.def, in order.
const std::vector<std::string>& differentiable_op_names();

}  // namespace atelier
