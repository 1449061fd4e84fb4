// The fused optimiser step on the CPU: one pass over a contiguous parameter updates the parameter and its state
// (momentum buffer, or Adam's two moments) in place, with the formulas of SgdStepArgs and AdamStepArgs
// (backends/args.h), which are PyTorch's (torch.optim.SGD, Adam, AdamW, single-tensor path); adam_step_multi
// updates many tensors in one pass over the pool (AdamMultiStepArgs).
//
// Napkin math: Adam reads p, g, m, v and writes p, m, v: 28 bytes per float32 element and ~15 flops, so it is
// memory-bound (a 13.5M-parameter critic moves ~380 MB per step). Widening float32 to double for the arithmetic
// costs nothing measurable and rounds once per stored value, so float32 results stay within an ulp or two of
// PyTorch's float32 path; float64 matches PyTorch to the last few bits (tests/test_optim.cpp).
#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/adam_math.h"
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

// Adam and AdamW (backends/adam_math.h), one tensor over the pool.
template <typename T>
void adam_step_typed(const AdamStepArgs& a) {
  T* p = static_cast<T*>(a.param);
  const T* grad = static_cast<const T*>(a.grad);
  T* m = static_cast<T*>(a.exp_avg);
  T* v = static_cast<T*>(a.exp_avg_sq);
  const AdamConstants c = adam_constants(a.lr, a.h, a.step);
  parallel_elements(a.numel, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) adam_element(p, grad, m, v, i, a.h, c);
  });
}

// Many tensors as one run of elements split over the pool: element e of the run is element e - begin[j] of the
// tensor j with begin[j] <= e < begin[j + 1], so many small tensors cost one parallel pass, not one each.
template <typename T>
void adam_step_multi_typed(const AdamMultiStepArgs& a) {
  const size_t count = static_cast<size_t>(a.count);
  std::vector<int64_t> begin(count + 1, 0);
  std::vector<AdamConstants> constants(count);
  for (size_t j = 0; j < count; ++j) {
    begin[j + 1] = begin[j] + a.numels[j];
    constants[j] = a.constants != nullptr ? a.constants[j] : adam_constants(a.lr, a.h, a.steps[j]);
  }
  parallel_elements(begin[count], [&](int64_t lo, int64_t hi) {
    // The last tensor starting at or before lo holds it (empty tensors share their start with the next one).
    size_t j = static_cast<size_t>(std::upper_bound(begin.begin(), begin.end(), lo) - begin.begin()) - 1;
    for (; lo < hi; ++j) {
      const int64_t end = std::min(hi, begin[j + 1]);
      T* p = static_cast<T*>(a.params[j]);
      const T* grad = static_cast<const T*>(a.grads[j]);
      T* m = static_cast<T*>(a.exp_avgs[j]);
      T* v = static_cast<T*>(a.exp_avg_sqs[j]);
      for (int64_t e = lo; e < end; ++e) adam_element(p, grad, m, v, e - begin[j], a.h, constants[j]);
      lo = end;
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

void adam_step_multi(const AdamMultiStepArgs& args) {
  check_adam_multi_args(args, "cpu adam_step_multi");
  dispatch(adam_step_multi_types{}, args.dtype, "cpu adam_step_multi",
           [&]<class T> { adam_step_multi_typed<T>(args); });
}

}  // namespace atelier::cpu
