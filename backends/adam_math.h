// Adam's arithmetic, written once for every kernel that runs it (the CPU's and the GPU's adam_step and
// adam_step_multi), in PyTorch's order of operations (torch.optim.Adam/AdamW, single-tensor path):
//   per step:    step_size = lr / (1 - beta1^t), bias_correction2_sqrt = sqrt(1 - beta2^t), computed on the host
//                with std::pow and std::sqrt;
//   per element: p' = p shrink; g = grad + l2 p'; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
//                p = p' - step_size m / (sqrt(v) / bias_correction2_sqrt + eps)
// with l2 = weight_decay, shrink = 1 (Adam) or l2 = 0, shrink = 1 - lr weight_decay (AdamW). Every element is
// widened to double and each stored value rounded once (backends/args.h, AdamStepArgs).
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/args.h"
#include "backends/host_device.h"

namespace atelier {

// One tensor's per-step constants. Also the layout of AdamMultiStepArgs::constants in device memory (four doubles
// per tensor: a float64 tensor of 4 * count elements holds them).
struct AdamConstants {
  double step_size = 0, bias_correction2_sqrt = 1, l2 = 0, shrink = 1;
};
static_assert(sizeof(AdamConstants) == 4 * sizeof(double), "AdamConstants must be four packed doubles");

inline AdamConstants adam_constants(double lr, const AdamHyperparameters& h, int64_t step) {
  const double t = static_cast<double>(step);
  AdamConstants c;
  c.step_size = lr / (1 - std::pow(h.beta1, t));
  c.bias_correction2_sqrt = std::sqrt(1 - std::pow(h.beta2, t));
  c.l2 = h.decoupled_weight_decay ? 0.0 : h.weight_decay;
  c.shrink = h.decoupled_weight_decay ? 1 - lr * h.weight_decay : 1.0;
  return c;
}

// Element i of one tensor: p, m and v updated in place.
template <typename T>
ATELIER_HOST_DEVICE inline void adam_element(T* p, const T* grad, T* m, T* v, int64_t i, const AdamHyperparameters& h,
                                             const AdamConstants& c) {
  const double pi = static_cast<double>(p[i]) * c.shrink;
  const double g = static_cast<double>(grad[i]) + c.l2 * pi;
  const double mi = h.beta1 * static_cast<double>(m[i]) + (1 - h.beta1) * g;
  const double vi = h.beta2 * static_cast<double>(v[i]) + (1 - h.beta2) * g * g;
  m[i] = static_cast<T>(mi);
  v[i] = static_cast<T>(vi);
  const double denom = sqrt(vi) / c.bias_correction2_sqrt + h.eps;
  p[i] = static_cast<T>(pi - c.step_size * mi / denom);
}

// The checks both backends' adam_step_multi make on their arguments (`what` names the kernel). Host only.
void check_adam_multi_args(const AdamMultiStepArgs& a, const char* what);

}  // namespace atelier
