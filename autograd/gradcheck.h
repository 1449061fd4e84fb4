// gradcheck: compares an op's analytic gradient (backward) with central finite differences, in float64.
//
// The function's output y is reduced to the scalar L = sum(y * r) with fixed random weights r, so one
// backward gives dL/dx for every input element, and each element's numerical derivative
// (L(x + eps) - L(x - eps)) / (2 eps) checks it: |analytic - numerical| <= atol + rtol * |numerical|.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace atelier {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-4;
};

struct GradcheckResult {
  bool passed = false;
  double max_abs_err = 0;  // largest |analytic - numerical| over every checked element
  std::string message;     // the first failing element, or why the check could not run
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks the gradient of `fn` with respect to every input that requires grad. Those inputs must be contiguous
// float64 leaves (make views inside fn), on any one device: on the GPU the whole check runs there. Their .grad is
// overwritten.
GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace atelier
