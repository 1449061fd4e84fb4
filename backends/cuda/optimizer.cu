// The fused optimiser step on the GPU: one pass over a contiguous parameter updates it and its state in place,
// with the formulas of SgdStepArgs and AdamStepArgs (backends/args.h; PyTorch's SGD, Adam, AdamW). CPU twin:
// backends/cpu/optimizer.cpp; Adam's arithmetic is backends/adam_math.h for both: every element is widened to
// double, the step's constants (bias corrections) are computed once on the host with std::pow and std::sqrt,
// and each stored value is rounded once. adam_step_multi updates up to 32 tensors per launch.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backends/adam_math.h"
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

// CPU twin: adam_step_typed (both run adam_element, backends/adam_math.h). Element i.
template <typename T>
struct AdamStep {
  T* p;
  const T* grad;
  T* m;
  T* v;
  AdamHyperparameters h;
  AdamConstants c;
  ATELIER_HOST_DEVICE void operator()(int64_t i) const { adam_element(p, grad, m, v, i, h, c); }
};

// Tensors per adam_step_multi launch: the functor travels as a kernel argument (~2.4 KB at 32, under the 4 KB
// that every toolkit allows; launch_linear checks it, launch_config.h).
constexpr int kAdamTensorsPerLaunch = 32;

// CPU twin: adam_step_multi_typed. Element e of the launch's run of elements belongs to the tensor j with
// begin[j] <= e < begin[j + 1] (a binary search over at most 32 starts; empty tensors share their start with the
// next one, and the search finds the last tensor starting at or before e).
template <typename T>
struct AdamMultiStep {
  int count;
  int64_t begin[kAdamTensorsPerLaunch + 1];
  T* p[kAdamTensorsPerLaunch];
  const T* grad[kAdamTensorsPerLaunch];
  T* m[kAdamTensorsPerLaunch];
  T* v[kAdamTensorsPerLaunch];
  AdamConstants c[kAdamTensorsPerLaunch];
  const AdamConstants* device_c;  // not null: the launch's constants in device memory, in place of c (a captured step)
  AdamHyperparameters h;
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    int lo = 0, hi = count;  // begin[lo] <= e < begin[hi]
    while (hi - lo > 1) {
      const int mid = (lo + hi) / 2;
      if (begin[mid] <= e) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    adam_element(p[lo], grad[lo], m[lo], v[lo], e - begin[lo], h, device_c != nullptr ? device_c[lo] : c[lo]);
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
  const AdamConstants c = adam_constants(a.lr, a.h, a.step);
  dispatch(cuda::adam_step_types{}, a.dtype, "cuda adam_step", [&]<class T> {
    cuda::launch_linear(a.numel, AdamStep<T>{static_cast<T*>(a.param), static_cast<const T*>(a.grad),
                                             static_cast<T*>(a.exp_avg), static_cast<T*>(a.exp_avg_sq), a.h, c});
  });
}

void CudaBackend::adam_step_multi(const AdamMultiStepArgs& a) {
  check_adam_multi_args(a, "cuda adam_step_multi");
  dispatch(cuda::adam_step_multi_types{}, a.dtype, "cuda adam_step_multi", [&]<class T> {
    for (int64_t first = 0; first < a.count; first += kAdamTensorsPerLaunch) {
      AdamMultiStep<T> op{};
      op.count = static_cast<int>(std::min<int64_t>(kAdamTensorsPerLaunch, a.count - first));
      op.h = a.h;
      op.device_c = a.constants != nullptr ? a.constants + first : nullptr;
      for (int j = 0; j < op.count; ++j) {
        const int64_t k = first + j;
        op.begin[j + 1] = op.begin[j] + a.numels[k];
        op.p[j] = static_cast<T*>(a.params[k]);
        op.grad[j] = static_cast<const T*>(a.grads[k]);
        op.m[j] = static_cast<T*>(a.exp_avgs[k]);
        op.v[j] = static_cast<T*>(a.exp_avg_sqs[k]);
        if (a.constants == nullptr) op.c[j] = adam_constants(a.lr, a.h, a.steps[k]);
      }
      cuda::launch_linear(op.begin[op.count], op);
    }
  });
}

}  // namespace atelier
