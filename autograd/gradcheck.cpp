#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/functions.h"
#include "backends/backend.h"
#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"

namespace atelier {

namespace {

// L = sum(y * r) as a double.
double project(const Tensor& y, const Tensor& r) {
  NoGradGuard no_grad;
  return sum(mul(y.to(DType::Float64), r)).item();
}

// Writes element j of a contiguous float64 tensor in place, on whatever device it lives (a host copy on the CPU, a
// copy ordered on the device's stream elsewhere), so the next call of the function reads the perturbed value.
void set_element(const Tensor& x, int64_t j, double value) {
  backend_for(x.device()).copy_from_host(static_cast<double*>(x.raw_data()) + j, &value, sizeof(value));
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  GradcheckResult result;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    ATELIER_CHECK(x.dtype() == DType::Float64 && x.is_leaf() && x.is_contiguous(),
                  "gradcheck: input " << i << " (shape " << x.shape()
                                      << ") must be a contiguous float64 leaf; make views inside the function");
    x.set_grad(Tensor());
  }

  Tensor y = fn(inputs);
  ATELIER_CHECK(y.requires_grad(),
                "gradcheck: the output does not require grad (no input requires grad, or the "
                "function cut the graph)");
  // Fixed weights in [0.5, 1.5): every output element counts, none cancels another.
  Tensor r = uniform(y.shape(), 0.5, 1.5, RandomKey{0x5eed, 7, 0}, DType::Float64).to(y.device());
  sum(mul(y.to(DType::Float64), r)).backward();

  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    Tensor grad = x.grad();
    std::vector<double> analytic = grad.defined() ? grad.to_vector<double>() : std::vector<double>(x.numel(), 0.0);
    const std::vector<double> values = x.to_vector<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      double saved = values[j];
      set_element(x, j, saved + options.eps);
      double plus = project(fn(inputs), r);
      set_element(x, j, saved - options.eps);
      double minus = project(fn(inputs), r);
      set_element(x, j, saved);
      double numerical = (plus - minus) / (2 * options.eps);
      double err = std::fabs(analytic[j] - numerical);
      if (!(err <= result.max_abs_err)) result.max_abs_err = std::isnan(err) ? INFINITY : err;
      bool ok = err <= options.atol + options.rtol * std::fabs(numerical);
      if (!ok && result.message.empty()) {
        std::ostringstream os;
        os << "input " << i << " element " << j << ": analytic " << analytic[j] << ", numerical " << numerical;
        result.message = os.str();
      }
    }
  }
  result.passed = result.message.empty();
  return result;
}

}  // namespace atelier
