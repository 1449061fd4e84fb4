// The argument check of adam_step_multi shared by the CPU and CUDA kernels (backends/adam_math.h).
#include "backends/adam_math.h"

#include "backends/error.h"

namespace atelier {

void check_adam_multi_args(const AdamMultiStepArgs& a, const char* what) {
  ATELIER_CHECK(a.count >= 0, what << ": count must be >= 0, got " << a.count);
  for (int64_t j = 0; j < a.count; ++j) {
    ATELIER_CHECK(a.constants != nullptr || a.steps[j] >= 1,
                  what << ": tensor " << j << ": step counts from 1, got " << a.steps[j]);
    ATELIER_CHECK(a.numels[j] >= 0, what << ": tensor " << j << ": numel must be >= 0, got " << a.numels[j]);
    ATELIER_CHECK(a.numels[j] == 0 || (a.params[j] != nullptr && a.grads[j] != nullptr && a.exp_avgs[j] != nullptr &&
                                       a.exp_avg_sqs[j] != nullptr),
                  what << ": tensor " << j << ": a parameter, gradient or moment buffer is missing");
  }
}

}  // namespace atelier
