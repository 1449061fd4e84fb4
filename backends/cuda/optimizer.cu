// The fused optimiser step on the GPU: one pass over a contiguous parameter updates it and its state in place,
// with the formulas of SgdStepArgs and AdamStepArgs (backends/args.h; PyTorch's SGD, Adam, AdamW). CPU twin:
// backends/cpu/optimizer.cpp, whose arithmetic this copies operation for operation: every element is widened
// to double, the step's constants (bias corrections) are computed once on the host with std::pow and std::sqrt,
// and each stored value is rounded once.
#include <cmath>
#include <cstdint>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/host_device.h"

namespace atelier {
namespace {

// CPU twin: sgd_step_typed. Element i.
template <typename T>
struct SgdStep {
  T* p;
  const T* grad;
  T* buf;  // unused when momentum is 0
  double lr;
  SgdHyperparameters h;
  bool first;
  ATELIER_HOST_DEVICE void operator()(int64_t i) const {
    double g = static_cast<double>(grad[i]) + h.weight_decay * static_cast<double>(p[i]);
    if (h.momentum != 0) {
      // PyTorch starts the buffer at the first gradient itself (no dampening on step 1).
      const double b = first ? g : h.momentum * static_cast<double>(buf[i]) + (1 - h.dampening) * g;
      buf[i] = static_cast<T>(b);
      g = h.nesterov ? g + h.momentum * b : b;
    }
    p[i] = static_cast<T>(static_cast<double>(p[i]) - lr * g);
  }
};

// CPU twin: adam_step_typed, in PyTorch's order: denom = sqrt(v) / sqrt(1 - beta2^t) + eps,
// p -= (lr / (1 - beta1^t)) m / denom. Element i.
template <typename T>
struct AdamStep {
  T* p;
  const T* grad;
  T* m;
  T* v;
  AdamHyperparameters h;
  double step_size, bias_correction2_sqrt, l2, shrink;
  ATELIER_HOST_DEVICE void operator()(int64_t i) const {
    const double pi = static_cast<double>(p[i]) * shrink;
    const double g = static_cast<double>(grad[i]) + l2 * pi;
    const double mi = h.beta1 * static_cast<double>(m[i]) + (1 - h.beta1) * g;
    const double vi = h.beta2 * static_cast<double>(v[i]) + (1 - h.beta2) * g * g;
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
    const double denom = sqrt(vi) / bias_correction2_sqrt + h.eps;
    p[i] = static_cast<T>(pi - step_size * mi / denom);
  }
};

}  // namespace

void CudaBackend::sgd_step(const SgdStepArgs& a) {
  ATELIER_CHECK(a.step >= 1, "cuda sgd_step: step counts from 1, got " << a.step);
  ATELIER_CHECK(a.h.momentum == 0 || a.momentum_buffer != nullptr, "cuda sgd_step: missing momentum buffer");
  dispatch(cuda::sgd_step_types{}, a.dtype, "cuda sgd_step", [&]<class T> {
    cuda::launch_linear(a.numel, SgdStep<T>{static_cast<T*>(a.param), static_cast<const T*>(a.grad),
                                            static_cast<T*>(a.momentum_buffer), a.lr, a.h, a.step == 1});
  });
}

void CudaBackend::adam_step(const AdamStepArgs& a) {
  ATELIER_CHECK(a.step >= 1, "cuda adam_step: step counts from 1, got " << a.step);
  ATELIER_CHECK(a.exp_avg != nullptr && a.exp_avg_sq != nullptr, "cuda adam_step: missing moment buffers");
  const AdamHyperparameters& h = a.h;
  const double t = static_cast<double>(a.step);
  const double step_size = a.lr / (1 - std::pow(h.beta1, t));
  const double bias_correction2_sqrt = std::sqrt(1 - std::pow(h.beta2, t));
  const double l2 = h.decoupled_weight_decay ? 0.0 : h.weight_decay;
  const double shrink = h.decoupled_weight_decay ? 1 - a.lr * h.weight_decay : 1.0;
  dispatch(cuda::adam_step_types{}, a.dtype, "cuda adam_step", [&]<class T> {
    cuda::launch_linear(a.numel,
                        AdamStep<T>{static_cast<T*>(a.param), static_cast<const T*>(a.grad), static_cast<T*>(a.exp_avg),
                                    static_cast<T*>(a.exp_avg_sq), h, step_size, bias_correction2_sqrt, l2, shrink});
  });
}

}  // namespace atelier
