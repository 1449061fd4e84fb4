// The fused optimiser step on the CPU: one pass over a contiguous parameter updates the parameter and its state
// (momentum buffer, or Adam's two moments) in place, with the formulas of OptimizerStepArgs (backends/args.h),
// which are PyTorch's (torch.optim.SGD, Adam, AdamW, single-tensor path).
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
void sgd_step(const OptimizerStepArgs& a) {
  T* p = static_cast<T*>(a.param);
  const T* grad = static_cast<const T*>(a.grad);
  T* buf = static_cast<T*>(a.state0);  // (numel) momentum buffer; unused when momentum == 0
  const bool first = a.step == 1;
  parallel_elements(a.numel, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      double g = static_cast<double>(grad[i]) + a.weight_decay * static_cast<double>(p[i]);
      if (a.momentum != 0) {
        // PyTorch starts the buffer at the first gradient itself (no dampening on step 1).
        const double b = first ? g : a.momentum * static_cast<double>(buf[i]) + (1 - a.dampening) * g;
        buf[i] = static_cast<T>(b);
        g = a.nesterov ? g + a.momentum * b : b;
      }
      p[i] = static_cast<T>(static_cast<double>(p[i]) - a.lr * g);
    }
  });
}

// Adam and AdamW, in PyTorch's order of operations: denom = sqrt(v) / sqrt(1 - beta2^t) + eps,
// p -= (lr / (1 - beta1^t)) m / denom.
template <typename T>
void adam_step(const OptimizerStepArgs& a) {
  T* p = static_cast<T*>(a.param);
  const T* grad = static_cast<const T*>(a.grad);
  T* m = static_cast<T*>(a.state0);  // (numel) first moment
  T* v = static_cast<T*>(a.state1);  // (numel) second moment
  const double t = static_cast<double>(a.step);
  const double step_size = a.lr / (1 - std::pow(a.beta1, t));
  const double bias_correction2_sqrt = std::sqrt(1 - std::pow(a.beta2, t));
  const bool decoupled = a.kind == OptimizerKind::AdamW;
  const double l2 = decoupled ? 0.0 : a.weight_decay;
  const double shrink = decoupled ? 1 - a.lr * a.weight_decay : 1.0;
  parallel_elements(a.numel, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double pi = static_cast<double>(p[i]) * shrink;
      const double g = static_cast<double>(grad[i]) + l2 * pi;
      const double mi = a.beta1 * static_cast<double>(m[i]) + (1 - a.beta1) * g;
      const double vi = a.beta2 * static_cast<double>(v[i]) + (1 - a.beta2) * g * g;
      m[i] = static_cast<T>(mi);
      v[i] = static_cast<T>(vi);
      const double denom = std::sqrt(vi) / bias_correction2_sqrt + a.eps;
      p[i] = static_cast<T>(pi - step_size * mi / denom);
    }
  });
}

template <typename T>
void step_typed(const OptimizerStepArgs& a) {
  switch (a.kind) {
    case OptimizerKind::Sgd: sgd_step<T>(a); return;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: adam_step<T>(a); return;
  }
}

}  // namespace

void optimizer_step(const OptimizerStepArgs& args) {
  ATELIER_CHECK(args.step >= 1, "cpu optimizer_step: step counts from 1, got " << args.step);
  const bool needs_state0 = args.kind != OptimizerKind::Sgd || args.momentum != 0;
  const bool needs_state1 = args.kind != OptimizerKind::Sgd;
  ATELIER_CHECK((!needs_state0 || args.state0 != nullptr) && (!needs_state1 || args.state1 != nullptr),
                "cpu optimizer_step: missing optimiser state buffer");
  switch (args.dtype) {
    case DType::Float32: step_typed<float>(args); return;
    case DType::Float64: step_typed<double>(args); return;
    default: unsupported_dtype("optimizer_step", args.dtype);
  }
}

}  // namespace atelier::cpu
