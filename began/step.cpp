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

DStepTensors d_step_tensors(Generator& G, Discriminator& D, nn::Optimizer& opt_d, const Tensor& x, const Tensor& z_d,
                            const Tensor& k) {
  Tensor fake;
  {
    NoGradGuard no_grad;  // G(z_d) is a constant for D's loss: no graph through G, no G gradients
    fake = G.forward(z_d);
  }
  opt_d.zero_grad();
  // D reconstructs x and G(z_D) as one batch: each image's numbers are those of two separate passes (D has no
  // layer that mixes images), but every layer launches once for both, with GEMMs twice as large, and the weight
  // gradients sum over both halves in one go. L(x) and L(G(z_D)) are the mean |D(v) - v| of the two halves, made
  // by one reduction over the (2, B*C*H*W) view of |D(v) - v|.
  ATELIER_CHECK(fake.shape() == x.shape(), "d_step: G(z_D) is " << shape_text(fake) << " but x is " << shape_text(x)
                                                                << " (z_D must hold one latent per image of x)");
  const Tensor input = cat({x, fake}, 0);
  const Tensor recon = D.forward(input);
  const Tensor losses = mean(reshape(abs(recon - input), Shape{2, x.numel()}), {1});  // (2,): L(x), L(G(z_D))
  const std::vector<Tensor> halves = split(losses, 1, 0);  // one node: its backward is one cat, no zero fills
  Tensor loss_real = squeeze(halves[0], 0);
  Tensor loss_fake = squeeze(halves[1], 0);
  // k in float32, as a float64 scalar operand would be converted: the same products as `k * loss_fake`.
  Tensor loss_d = loss_real - k.to(DType::Float32) * loss_fake;
  loss_d.backward();
  opt_d.step();
  return {loss_real, loss_fake, loss_d};
}

Tensor pulling_away(const Tensor& codes) {
  ATELIER_CHECK(codes.defined() && codes.dim() == 2 && codes.size(0) >= 2,
                "pulling_away: codes must be (B, h) with B >= 2 (pairs of distinct codes), got " << shape_text(codes));
  const int64_t b = codes.size(0);
  // Unit codes u_i = c_i / sqrt(|c_i|^2 + eps); S = U U^T holds every pair's cosine, its diagonal |u_i|^2 (about 1,
  // slightly less for eps), which is taken out exactly rather than assumed to be 1.
  const Tensor unit = codes / sqrt(sum(codes * codes, {1}, true) + 1e-12);
  const Tensor cosines = matmul(unit, transpose(unit, 0, 1));  // (B, B)
  const Tensor self = sum(unit * unit, {1});                   // (B,): S's diagonal
  return (sum(cosines * cosines) - sum(self * self)) / static_cast<double>(b * (b - 1));
}

Tensor g_step_tensor(Generator& G, Discriminator& D, nn::Optimizer& opt_g, const Tensor& z_g, double pull_away) {
  ATELIER_CHECK(pull_away >= 0 && std::isfinite(pull_away),
                "g_step: pull_away must be finite and >= 0, got " << pull_away);
  FreezeParameters frozen(D);  // no D weight gradients are computed; D's .grad stays as the D step left it
  opt_g.zero_grad();
  const Tensor fake = G.forward(z_g);
  Tensor loss_g;
  if (pull_away == 0) {
    loss_g = reconstruction_loss(D, fake);
    loss_g.backward();
  } else {
    // D(v) = Dec(Enc(v)) as in reconstruction_loss, with the code kept for the pulling-away term.
    const Tensor codes = D.enc->forward(fake);
    loss_g = l1_loss(D.dec->forward(codes), fake);
    (loss_g + pull_away * pulling_away(codes)).backward();
  }
  opt_g.step();
  return loss_g;
}

DStepResult d_step(Generator& G, Discriminator& D, nn::Optimizer& opt_d, const Tensor& x, const Tensor& z_d, double k) {
  const DStepTensors d = d_step_tensors(G, D, opt_d, x, z_d, scalar_tensor(k, DType::Float64, x.device()));
  return {d.loss_real.item(), d.loss_fake.item(), d.loss_d.item()};
}

double g_step(Generator& G, Discriminator& D, nn::Optimizer& opt_g, const Tensor& z_g) {
  return g_step_tensor(G, D, opt_g, z_g).item();
}

Tensor began_step_device(Generator& G, Discriminator& D, nn::Optimizer& opt_g, nn::Optimizer& opt_d, const Tensor& x,
                         const Tensor& z_d, const Tensor& z_g, const Tensor& k, const StepOptions& options) {
  const Device device = check_models(G, D);
  const ModelConfig& c = D.config();
  ATELIER_CHECK(x.defined() && x.dim() == 4 && x.size(0) >= 1 && x.size(1) == c.channels && x.size(2) == c.image_size &&
                    x.size(3) == c.image_size,
                "began_step: x must be (B, " << c.channels << ", " << c.image_size << ", " << c.image_size
                                             << ") with B >= 1, got " << shape_text(x));
  ATELIER_CHECK(x.device() == device, "began_step: x is on " << x.device() << " but the models are on " << device);
  check_latent("z_d", z_d, x.size(0), c.h, device);
  check_latent("z_g", z_g, x.size(0), c.h, device);
  ATELIER_CHECK(options.pull_away == 0 || x.size(0) >= 2,
                "began_step: the pulling-away term (weight "
                    << options.pull_away << ") compares pairs of G's images and needs a batch of at least 2, got "
                    << shape_text(x));
  ATELIER_CHECK(k.defined() && k.dim() == 0 && k.dtype() == DType::Float64 && k.device() == device,
                "began_step: k must be a 0-d float64 tensor on " << device << ", got " << shape_text(k));

  const DStepTensors d = d_step_tensors(G, D, opt_d, x, z_d, k);
  const Tensor loss_g = g_step_tensor(G, D, opt_g, z_g, options.pull_away);

  // The k_t update and M_global in float64 on the device, in began_step's order of operations:
  // balance = gamma L(x) - L(G(z_G)); k <- clip(k + lambda_k balance, 0, 1); M_global = L(x) + |balance|.
  NoGradGuard no_grad;
  auto as_double = [](const Tensor& t) { return t.detach().to(DType::Float64).reshape({1}); };
  const Tensor real = as_double(d.loss_real), fake_g = as_double(loss_g);
  const Tensor balance = options.gamma * real - fake_g;
  const Tensor k_next = clamp(k.reshape({1}) + options.lambda_k * balance, 0.0, 1.0);
  // The scalars in StepScalar order; cat copies, so k_t is k before the update below.
  Tensor scalars = cat(
      {real, as_double(d.loss_fake), fake_g, as_double(d.loss_d), fake_g, k.reshape({1}), real + abs(balance), k_next},
      0);
  Tensor(k).copy_(k_next.reshape({}));  // a handle to k's storage: the caller's k sees the new value
  return scalars;
}

StepResult step_result(const std::vector<double>& v) {
  ATELIER_CHECK(v.size() == static_cast<size_t>(kStepScalars),
                "step_result: expected " << kStepScalars << " values, got " << v.size());
  StepResult r;
  r.loss_real = v[kLossReal];
  r.loss_fake_d = v[kLossFakeD];
  r.loss_fake_g = v[kLossFakeG];
  r.loss_d = v[kLossD];
  r.loss_g = v[kLossG];
  r.k_t = v[kKt];
  r.m_global = v[kMGlobal];
  return r;
}

StepResult began_step(Generator& G, Discriminator& D, nn::Optimizer& opt_g, nn::Optimizer& opt_d, const Tensor& x,
                      const Tensor& z_d, const Tensor& z_g, double& k, const StepOptions& options) {
  ATELIER_CHECK(std::isfinite(k) && k >= 0 && k <= 1, "began_step: k must be in [0, 1], got " << k);
  const Device device = check_models(G, D);
  const Tensor k_device = scalar_tensor(k, DType::Float64, device);
  const std::vector<double> values =
      began_step_device(G, D, opt_g, opt_d, x, z_d, z_g, k_device, options).to_vector<double>();
  k = values[kKNext];
  return step_result(values);
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
