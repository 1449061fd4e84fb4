// Gradient clipping by the global norm, as torch.nn.utils.clip_grad_norm_: every gradient is multiplied by
// min(1, max_norm / (total_norm + 1e-6)), total_norm being the 2-norm of all the gradients taken together. The
// norm and the scale are computed on the gradients' device and never read on the host, so a step that clips
// still runs without a host synchronisation, and can be captured as a CUDA graph (docs/gpu.md).
//
//   loss.backward();
//   const Tensor norm = nn::clip_grad_norm_(model.parameters(), 1.0);  // read it later (a readback), or never
//   opt.step();
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace atelier::nn {

// requires: max_norm finite and > 0; the defined gradients of `params` on one device, float32 or float64.
// ensures:  each defined gradient is scaled in place (a tensor without one is skipped); returns total_norm as a
//           0-d tensor on their device, of the first gradient's dtype (0 on the CPU when none has a gradient).
//           A non-finite total norm makes the scale 0 or NaN, so the gradients become non-finite too and the
//           returned norm says why (PyTorch's default, error_if_nonfinite=False, does the same).
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

}  // namespace atelier::nn
