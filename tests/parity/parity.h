// Parity between two devices, as ggml's test-backend-ops does it: the same inputs through the same computation on
// a reference device (the CPU) and a device under test (the GPU), the results compared within the tolerances of
// docs/architecture.md ("Tests"):
//   elementwise  |got - want| <= 1e-6 (1 + |want|) per element
//   norm         ||got - want|| / ||want|| <= 1e-5 for reductions, GEMM and convolution (under another library
//                precision, gemm_parity_tolerance of backends/precision.h: 1e-2 with TF32, 3e-2 with BF16)
//   exact        bit-identical (indices, booleans, integers, uniform random numbers, moves of bytes)
//   ulp12        within 12 units in the last place (normal random numbers: libm and CUDA's math differ; the bound
//                is derived in tests/parity/parity.cpp's random rows)
//
// Two tables drive it: one row per primitive of backends/primitives.def and dtype the CPU supports (a row calls
// the primitive itself, through launch(), with raw arguments), and the op catalogue (autograd/op_table.h), each
// row run in float32 forward and backward. The CUDA test program runs both CPU against CUDA; the CPU suite runs
// every row CPU against CPU, which checks the rows and this harness where no GPU is at hand.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/op_table.h"
#include "backends/backend.h"
#include "tensor/tensor.h"

namespace atelier::parity {

enum class Tolerance { Exact, Elementwise, Norm, Ulp12 };
const char* tolerance_name(Tolerance tolerance);

// "" when `got` matches `want` (shape, dtype and values, both read back to the host) within `tolerance`; else
// a message naming the first element out of tolerance, or the relative norm.
std::string compare(const Tensor& got, const Tensor& want, Tolerance tolerance);

// One parity row of a primitive: run(device) makes its inputs (the same values on every device: made on the CPU
// from fixed keys, then moved), calls primitive `op` on `dtype` through launch(), and returns what it wrote.
struct PrimitiveRow {
  PrimitiveOp op;
  DType dtype;
  std::string name;  // "<primitive>/<dtype>/<case>"
  Tolerance tolerance;
  std::function<std::vector<Tensor>(Device)> run;
};

const std::vector<PrimitiveRow>& primitive_rows();

// "" when row `row` of the primitive table gives the same results on `test` as on `ref`.
std::string primitive_row_parity(const PrimitiveRow& row, Device ref, Device test);

// "" when op-table row `c`, run in float32 on `ref` and on `test` from the same inputs, gives the same output and
// the same gradient for every input that requires one (backward of sum(y * r) with fixed weights r).
std::string op_row_parity(const OpCase& c, Device ref, Device test);

// Every (primitive, dtype) the CPU supports, as "<primitive>/<dtype>", that has no row in primitive_rows().
std::vector<std::string> primitives_without_rows();

}  // namespace atelier::parity
