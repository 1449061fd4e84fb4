// One BEGAN training step (began/step.h): the D step, the G step with D frozen, the k_t update and M_global, and
// the counter-based latent draws. The trainer, the golden-step test and the benchmarks all call these.
#include "began/step.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "backends/error.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"

namespace atelier::began {
namespace {

// L(v) = mean |v - D(v)|, over batch, channels and pixels. v may carry a graph (the G step) or not (the D step).
Tensor reconstruction_loss(Discriminator& D, const Tensor& v) { return l1_loss(D.forward(v), v); }

}  // namespace

FreezeParameters::FreezeParameters(const nn::Module& module) : params_(module.parameters()) {
  flags_.reserve(params_.size());
  for (const Tensor& p : params_) {
    flags_.push_back(p.requires_grad());
    p.requires_grad_(false);
  }
}

FreezeParameters::~FreezeParameters() {
  for (size_t i = 0; i < params_.size(); ++i) params_[i].requires_grad_(flags_[i]);
}

namespace {

std::string shape_text(const Tensor& t) {
  std::ostringstream os;
  if (t.defined()) {
    os << t.shape();
  } else {
    os << "(undefined)";
  }
  return os.str();
}

// A latent batch must be (B, h) on the model's device.
void check_latent(const char* name, const Tensor& z, int64_t batch, int64_t h, Device device) {
  ATELIER_CHECK(
      z.defined() && z.dim() == 2 && z.size(0) == batch && z.size(1) == h,
      "began_step: " << name << " must be (" << batch << ", " << h << ") to match x and G, got " << shape_text(z));
  ATELIER_CHECK(z.device() == device,
                "began_step: " << name << " is on " << z.device() << " but the models are on " << device);
}

// G and D must agree on what an image and a latent vector are (their n may differ), and sit on one device.
Device check_models(const Generator& G, const Discriminator& D) {
  const ModelConfig& g = G.config();
  const ModelConfig& d = D.config();
  ATELIER_CHECK(g.image_size == d.image_size && g.channels == d.channels && g.h == d.h,
                "began_step: G makes (" << g.channels << ", " << g.image_size << ", " << g.image_size << ") from z of "
                                        << g.h << " but D expects (" << d.channels << ", " << d.image_size << ", "
                                        << d.image_size << ") with h " << d.h);
  const Device device = G.fc->weight.device();
  ATELIER_CHECK(D.enc->fc->weight.device() == device,
                "began_step: G is on " << device << " but D on " << D.enc->fc->weight.device());
  return device;
}

// Beyond this, a step's draw would run into the next step's counter range (see sample_z).
constexpr uint64_t kBlocksPerStep = uint64_t{1} << 32;
// Latent streams live far from stream 0 (the default generator) and from the DataLoader's shuffle streams.
constexpr uint64_t kLatentStreamTag = 0x4245474146000000ull;  // "BEGAF"

}  // namespace

DStepResult d_step(Generator& G, Discriminator& D, nn::Optimizer& opt_d, const Tensor& x, const Tensor& z_d, double k) {
  Tensor fake;
  {
    NoGradGuard no_grad;  // G(z_d) is a constant for D's loss: no graph through G, no G gradients
    fake = G.forward(z_d);
  }
  opt_d.zero_grad();
  Tensor loss_real = reconstruction_loss(D, x);
  Tensor loss_fake = reconstruction_loss(D, fake);
  Tensor loss_d = loss_real - k * loss_fake;
  loss_d.backward();
  opt_d.step();
  return {loss_real.item(), loss_fake.item(), loss_d.item()};
}

double g_step(Generator& G, Discriminator& D, nn::Optimizer& opt_g, const Tensor& z_g) {
  FreezeParameters frozen(D);  // no D weight gradients are computed; D's .grad stays as the D step left it
  opt_g.zero_grad();
  Tensor loss_g = reconstruction_loss(D, G.forward(z_g));
  loss_g.backward();
  opt_g.step();
  return loss_g.item();
}

StepResult began_step(Generator& G, Discriminator& D, nn::Optimizer& opt_g, nn::Optimizer& opt_d, const Tensor& x,
                      const Tensor& z_d, const Tensor& z_g, double& k, const StepOptions& options) {
  const Device device = check_models(G, D);
  const ModelConfig& c = D.config();
  ATELIER_CHECK(x.defined() && x.dim() == 4 && x.size(0) >= 1 && x.size(1) == c.channels && x.size(2) == c.image_size &&
                    x.size(3) == c.image_size,
                "began_step: x must be (B, " << c.channels << ", " << c.image_size << ", " << c.image_size
                                             << ") with B >= 1, got " << shape_text(x));
  ATELIER_CHECK(x.device() == device, "began_step: x is on " << x.device() << " but the models are on " << device);
  check_latent("z_d", z_d, x.size(0), c.h, device);
  check_latent("z_g", z_g, x.size(0), c.h, device);
  ATELIER_CHECK(std::isfinite(k) && k >= 0 && k <= 1, "began_step: k must be in [0, 1], got " << k);

  StepResult r;
  r.k_t = k;
  const DStepResult d = d_step(G, D, opt_d, x, z_d, k);
  r.loss_real = d.loss_real;
  r.loss_fake_d = d.loss_fake;
  r.loss_d = d.loss_d;
  r.loss_fake_g = g_step(G, D, opt_g, z_g);
  r.loss_g = r.loss_fake_g;

  const double balance = options.gamma * r.loss_real - r.loss_fake_g;
  k = std::clamp(k + options.lambda_k * balance, 0.0, 1.0);
  r.m_global = r.loss_real + std::abs(balance);
  return r;
}

// Step s of stream t uses Philox blocks [s * 2^32, s * 2^32 + batch * h / 4) of stream kLatentStreamTag + t: each
// (step, stream) owns its own counter range, so no two draws share a number and none depends on what ran before.
Tensor sample_z(int64_t batch, int64_t h, uint64_t seed, int64_t step, LatentStream stream, Device device) {
  ATELIER_CHECK(batch >= 1 && h >= 1, "sample_z: batch and h must be >= 1, got " << batch << " and " << h);
  ATELIER_CHECK(step >= 0 && static_cast<uint64_t>(step) < kBlocksPerStep,
                "sample_z: step must be in [0, 2^32), got " << step);
  ATELIER_CHECK(static_cast<uint64_t>(batch) * static_cast<uint64_t>(h) / 4 < kBlocksPerStep,
                "sample_z: " << batch << " x " << h << " latent values are more than one step's counter range");
  const RandomKey key{seed, kLatentStreamTag + static_cast<uint64_t>(stream),
                      static_cast<uint64_t>(step) * kBlocksPerStep};
  return uniform({batch, h}, -1.0, 1.0, key, DType::Float32, device);
}

}  // namespace atelier::began
