// How a training loop runs its BEGAN steps: eagerly, or captured once and replayed (`began train --cuda-graph`,
// docs/gpu.md). Both run began_step_device (began/step.h) and give the same numbers bit for bit; the captured
// runner turns each step's hundreds of kernel launches into one graph launch.
//
// The captured runner: the first `warmup` steps at a shape run eagerly (they create the optimisers' state, size
// the caches and the workspace), the next one is captured (Backend::begin_capture; the capture itself runs
// nothing) and every step from then on copies its inputs into the graph's own input tensors, writes the
// optimisers' per-step values (nn::Optimizer::prepare_replay: lr and Adam's bias corrections) and replays the
// graph. A step whose x or z has another shape drops the graph and starts over at that shape (warm-up, capture).
// A capture that fails (an atelier::Error from the captured step: a host read, an optimiser without a captured
// form, a CUDA call that breaks the capture) ran nothing: that step and every later one run eagerly, and
// fallback_reason() says why (the trainer prints it once).
// What a replay cannot take as an argument comes in through tensors the graph reads: x and the two latent draws
// (sampled outside the graph, so their keys need not be captured), k_t (already a device tensor, updated in
// place) and the optimisers' constants.
//
//   std::unique_ptr<StepRunner> runner = make_step_runner(StepMode::graph, G, D, opt_g, opt_d, k, options);
//   Tensor scalars = runner->run(x, z_d, z_g);  // (kStepScalars,) float64 on the device, as began_step_device's
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "began/step.h"

namespace atelier::began {

enum class StepMode { eager, graph };

// "eager" or "graph".
const char* step_mode_name(StepMode mode);

class StepRunner {
 public:
  virtual ~StepRunner() = default;
  // One step on x (B, C, S, S) with latent draws z_d, z_g (B, h), on any device (copied onto the models' as
  // needed, with to(), which may make the host wait: the trainer sends x up through a TensorUpload first,
  // tensor/upload.h); k is updated in place. Returns the step's scalars, (kStepScalars,) float64 on the models' device,
  // StepScalar order. The graph runner returns the same tensor every replayed step, overwritten by the next step:
  // read it (or queue its copy, TensorReadback) before the next run().
  virtual Tensor run(const Tensor& x, const Tensor& z_d, const Tensor& z_g) = 0;
  virtual StepMode mode() const = 0;
  // Graphs captured so far (a shape change captures again) and steps replayed; 0 for the eager runner.
  virtual int64_t captures() const { return 0; }
  virtual int64_t replays() const { return 0; }
  // Why the graph runner runs its steps eagerly after a failed capture ("" while it does not).
  virtual const std::string& fallback_reason() const {
    static const std::string none;
    return none;
  }
};

// The models, optimisers and k (a 0-d float64 tensor on the models' device) must outlive the runner. warmup:
// eager steps at each shape before the capture (graph mode; at least 1, since the optimisers' state must exist).
std::unique_ptr<StepRunner> make_step_runner(StepMode mode, Generator& G, Discriminator& D, nn::Optimizer& opt_g,
                                             nn::Optimizer& opt_d, const Tensor& k, const StepOptions& options = {},
                                             int64_t warmup = 2);

}  // namespace atelier::began
