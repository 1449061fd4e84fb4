// The fused optimiser step on the CPU: one pass over a contiguous parameter updates the parameter and its state
// (momentum buffer, or Adam's two moments) in place, with the formulas of SgdStepArgs and AdamStepArgs
// (backends/args.h), which are PyTorch's (torch.optim.SGD, Adam, AdamW, single-tensor path).
//
// Napkin math: Adam reads p, g, m, v and writes p, m, v: 28 bytes per float32 element and ~15 flops, so it is
// memory-bound (a 13.5M-parameter critic moves ~380 MB per step). Widening float32 to double for the arithmetic
// costs nothing measurable and rounds once per stored value, so float32 results stay within an ulp or two of
// PyTorch's float32 path; float64 matches PyTorch to the last few bits (tests/test_optim.cpp).
#include <cmath>

#include "backends/cpu/kernels.h"
#include "backends/cpu/strided.h"
#include "backends/error.h"

namespace atelier::cpu {
namespace {

template <typename T>
void sgd_step_typed(const SgdStepArgs& a) {
  T* p = static_cast<T*>(a.param);
  const T* grad = static_cast<const T*>(a.grad);
  T* buf = static_cast<T*>(a.momentum_buffer);  // unused when momentum == 0
  const SgdHyperparameters& h = a.h;
  const bool first = a.step == 1;
  parallel_elements(a.numel, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      double g = static_cast<double>(grad[i]) + h.weight_decay * static_cast<double>(p[i]);
      if (h.momentum != 0) {
        // PyTorch starts the buffer at the first gradient itself (no dampening on step 1).
        const double b = first ? g : h.momentum * static_cast<double>(buf[i]) + (1 - h.dampening) * g;
        buf[i] = static_cast<T>(b);
        g = h.nesterov ? g + h.momentum * b : b;
      }
      p[i] = static_cast<T>(static_cast<double>(p[i]) - a.lr * g);
    }
  });
}

// Adam and AdamW, in PyTorch's order of operations: denom = sqrt(v) / sqrt(1 - beta2^t) + eps,
// p -= (lr / (1 - beta1^t)) m / denom.
template <typename T>
void adam_step_typed(const AdamStepArgs& a) {
  T* p = static_cast<T*>(a.param);
  const T* grad = static_cast<const T*>(a.grad);
  T* m = static_cast<T*>(a.exp_avg);
  T* v = static_cast<T*>(a.exp_avg_sq);
  const AdamHyperparameters& h = a.h;
  const double t = static_cast<double>(a.step);
  const double step_size = a.lr / (1 - std::pow(h.beta1, t));
  const double bias_correction2_sqrt = std::sqrt(1 - std::pow(h.beta2, t));
  const double l2 = h.decoupled_weight_decay ? 0.0 : h.weight_decay;
  const double shrink = h.decoupled_weight_decay ? 1 - a.lr * h.weight_decay : 1.0;
  parallel_elements(a.numel, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double pi = static_cast<double>(p[i]) * shrink;
      const double g = static_cast<double>(grad[i]) + l2 * pi;
      const double mi = h.beta1 * static_cast<double>(m[i]) + (1 - h.beta1) * g;
      const double vi = h.beta2 * static_cast<double>(v[i]) + (1 - h.beta2) * g * g;
      m[i] = static_cast<T>(mi);
      v[i] = static_cast<T>(vi);
      const double denom = std::sqrt(vi) / bias_correction2_sqrt + h.eps;
      p[i] = static_cast<T>(pi - step_size * mi / denom);
    }
  });
}

}  // namespace

void sgd_step(const SgdStepArgs& args) {
  ATELIER_CHECK(args.step >= 1, "cpu sgd_step: step counts from 1, got " << args.step);
  ATELIER_CHECK(args.h.momentum == 0 || args.momentum_buffer != nullptr, "cpu sgd_step: missing momentum buffer");
  dispatch(sgd_step_types{}, args.dtype, "cpu sgd_step", [&]<class T> { sgd_step_typed<T>(args); });
}

void adam_step(const AdamStepArgs& args) {
  ATELIER_CHECK(args.step >= 1, "cpu adam_step: step counts from 1, got " << args.step);
  ATELIER_CHECK(args.exp_avg != nullptr && args.exp_avg_sq != nullptr, "cpu adam_step: missing moment buffers");
  dispatch(adam_step_types{}, args.dtype, "cpu adam_step", [&]<class T> { adam_step_typed<T>(args); });
}

}  // namespace atelier::cpu
