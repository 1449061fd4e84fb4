// One BEGAN training step, as a free function over the two networks and their optimisers, so that the trainer,
// the golden-step test (against a PyTorch reference) and the benchmarks all run the very same code.
//
//   L(v)   = mean |v - D(v)|                                    (L1 over batch, channels and pixels)
//   D step: L_D = L(x) - k_t L(G(z_D)), G(z_D) computed under NoGradGuard; updates D only.
//   G step: L_G = L(G(z_G)), D's parameters with requires_grad false (no D weight gradients are computed; D's
//           existing .grad is left untouched); updates G only. With StepOptions::pull_away = w > 0, G minimises
//           L(G(z_G)) + w PT(Enc(G(z_G))) (pulling_away below); L(G(z_G)) alone is what k_t and M_global see.
//   k_{t+1}  = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1), with L(x) from the D step and L(G(z_G))
//              from the G step (D after its update).
//   M_global = L(x) + |gamma L(x) - L(G(z_G))|.
#pragma once

#include <cstdint>
#include <vector>

#include "began/model.h"
#include "nn/optim.h"

namespace atelier::began {

struct StepOptions {
  double gamma = 0.5;       // the diversity ratio: the target of L(G(z)) / L(x)
  double lambda_k = 0.001;  // k_t's learning rate
  // Weight of EBGAN's pulling-away term in G's loss (0: off, the paper's BEGAN). Needs a batch of at least 2.
  double pull_away = 0;
};

// EBGAN's pulling-away term (Zhao, Mathieu, LeCun 2016, arXiv 1609.03126) over a batch of codes (B, h), B >= 2:
// the mean squared cosine similarity of the B (B - 1) ordered pairs of distinct codes,
//   PT = sum_{i != j} (c_i . c_j / (|c_i| |c_j|))^2 / (B (B - 1)),
// in [0, 1]: 0 when the codes are orthogonal, 1 when they all point one way. Applied to D's codes of G's batch it
// rewards G for images that D's encoder tells apart, which opposes G settling on one group of images (the mode
// collapse of docs/began.md, "Mode coverage"). Differentiable; a zero code gets a small epsilon in its norm.
Tensor pulling_away(const Tensor& codes);

// What one step measured; one metrics.csv row.
struct StepResult {
  double loss_real = 0;    // L(x), D before its update
  double loss_fake_d = 0;  // L(G(z_D)) in the D step
  double loss_fake_g = 0;  // L(G(z_G)) in the G step (D after its update)
  double loss_d = 0;       // L(x) - k_t L(G(z_D))
  double loss_g = 0;       // = loss_fake_g
  double k_t = 0;          // k as used in this step (before its update)
  double m_global = 0;     // L(x) + |gamma L(x) - L(G(z_G))|
};

// x (B, C, S, S) real images in [-1, 1]; z_d, z_g (B, h) latent vectors; k is read and updated in place.
// Requires G, D, x, z_d, z_g on one device, opt_g over G's parameters and opt_d over D's. Runs began_step_device
// and reads its scalars at once (one synchronous read: tests and tools; the trainer reads them a step later).
StepResult began_step(Generator& G, Discriminator& D, nn::Optimizer& opt_g, nn::Optimizer& opt_d, const Tensor& x,
                      const Tensor& z_d, const Tensor& z_g, double& k, const StepOptions& options = {});

// The step without a single host read (what a GPU step needs so that the host never waits for the device): k is
// a 0-d float64 tensor on the models' device, updated in place by device ops (in float64, the same arithmetic as
// began_step's host k), and the step's scalars come back as one (kStepScalars,) float64 tensor on the device, in
// StepScalar order. step_result() turns their values into a StepResult. Nothing is checked that needs a value:
// k outside [0, 1] is clipped by the update but not refused.
enum StepScalar : int64_t { kLossReal, kLossFakeD, kLossFakeG, kLossD, kLossG, kKt, kMGlobal, kKNext, kStepScalars };
Tensor began_step_device(Generator& G, Discriminator& D, nn::Optimizer& opt_g, nn::Optimizer& opt_d, const Tensor& x,
                         const Tensor& z_d, const Tensor& z_g, const Tensor& k, const StepOptions& options = {});
// requires: kStepScalars values, as began_step_device's result holds them.
StepResult step_result(const std::vector<double>& scalars);

// The two halves of began_step, for tests that check each half on its own (began_step calls exactly these, through
// their tensor forms below).
struct DStepResult {
  double loss_real = 0;  // L(x)
  double loss_fake = 0;  // L(G(z_d))
  double loss_d = 0;     // L(x) - k L(G(z_d))
};
// Zeroes D's gradients, computes L_D with G(z_d) under NoGradGuard (G gets no graph and no gradient), backward,
// opt_d.step(). G's parameters and gradients are not touched.
DStepResult d_step(Generator& G, Discriminator& D, nn::Optimizer& opt_d, const Tensor& x, const Tensor& z_d, double k);
// Zeroes G's gradients, freezes D (requires_grad false on every D parameter, restored on exit even when an
// exception is thrown), computes L_G = L(G(z_g)), backward, opt_g.step(). Returns L(G(z_g)). D's parameters and
// gradients are not touched.
double g_step(Generator& G, Discriminator& D, nn::Optimizer& opt_g, const Tensor& z_g);

// d_step and g_step without reading their losses: 0-d float32 tensors on the device (k a 0-d float64 tensor).
struct DStepTensors {
  Tensor loss_real, loss_fake, loss_d;
};
DStepTensors d_step_tensors(Generator& G, Discriminator& D, nn::Optimizer& opt_d, const Tensor& x, const Tensor& z_d,
                            const Tensor& k);
// pull_away: StepOptions::pull_away (0: L_G = L(G(z_g)) exactly as the paper). Returns L(G(z_g)) either way.
Tensor g_step_tensor(Generator& G, Discriminator& D, nn::Optimizer& opt_g, const Tensor& z_g, double pull_away = 0);

// Sets requires_grad false on every parameter of a module and restores each one's previous flag when destroyed,
// also during stack unwinding: an exception in the G step must not leave D frozen for the next D step. (The G
// step freezes D; fitting z to an image, began/latent.h, freezes G.)
class FreezeParameters {
 public:
  explicit FreezeParameters(const nn::Module& module);
  ~FreezeParameters();
  FreezeParameters(const FreezeParameters&) = delete;
  FreezeParameters& operator=(const FreezeParameters&) = delete;

 private:
  std::vector<Tensor> params_;
  std::vector<bool> flags_;
};

// Which latent draw of a step.
enum class LatentStream : uint64_t { discriminator = 1, generator = 2, fixed_samples = 3 };

// z ~ U[-1, 1], (batch, h), float32, keyed by (seed, step, stream) through the counter-based generator: the same
// key always gives the same z, whatever ran before (exact resume), and the streams never overlap.
Tensor sample_z(int64_t batch, int64_t h, uint64_t seed, int64_t step, LatentStream stream,
                Device device = Device::cpu());

}  // namespace atelier::began
