// Latent paths and fitting z to images (began/latent.h).
#include "began/latent.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "autograd/functions.h"
#include "backends/error.h"
#include "began/step.h"
#include "nn/optim.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"

namespace atelier::began {

namespace {

// Both ends as float64 vectors after checking they are two (h) vectors on one device.
void path_ends(const Tensor& a, const Tensor& b, int64_t points, std::vector<double>& va, std::vector<double>& vb) {
  ATELIER_CHECK(a.dim() == 1 && b.dim() == 1 && a.size(0) == b.size(0),
                "latent path: the ends must be two (h) vectors, got " << a.shape() << " and " << b.shape());
  ATELIER_CHECK(a.device() == b.device(), "latent path: the ends are on " << a.device() << " and " << b.device());
  ATELIER_CHECK(points >= 2, "latent path: needs at least 2 points, got " << points);
  va = a.to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>();
  vb = b.to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>();
}

// The rows coefficient_a(t) a + coefficient_b(t) b for t = i / (points - 1), as float32 on a's device.
template <class Weights>
Tensor weighted_path(const std::vector<double>& va, const std::vector<double>& vb, int64_t points, Device device,
                     Weights weights) {
  const int64_t h = static_cast<int64_t>(va.size());
  std::vector<float> rows(static_cast<size_t>(points * h));
  for (int64_t i = 0; i < points; ++i) {
    const double t = static_cast<double>(i) / static_cast<double>(points - 1);
    const auto [wa, wb] = weights(t);
    for (int64_t j = 0; j < h; ++j) rows[static_cast<size_t>(i * h + j)] = static_cast<float>(wa * va[j] + wb * vb[j]);
  }
  return from_vector(rows, {points, h}).to(device);
}

}  // namespace

Tensor lerp_path(const Tensor& a, const Tensor& b, int64_t points) {
  std::vector<double> va, vb;
  path_ends(a, b, points, va, vb);
  return weighted_path(va, vb, points, a.device(), [](double t) { return std::pair{1 - t, t}; });
}

Tensor slerp_path(const Tensor& a, const Tensor& b, int64_t points) {
  std::vector<double> va, vb;
  path_ends(a, b, points, va, vb);
  double dot = 0, na = 0, nb = 0;
  for (size_t j = 0; j < va.size(); ++j) {
    dot += va[j] * vb[j];
    na += va[j] * va[j];
    nb += vb[j] * vb[j];
  }
  const double cos_w = na > 0 && nb > 0 ? std::clamp(dot / std::sqrt(na * nb), -1.0, 1.0) : 1.0;
  const double w = std::acos(cos_w), sin_w = std::sin(w);
  if (sin_w < 1e-6) return lerp_path(a, b, points);
  return weighted_path(va, vb, points, a.device(), [w, sin_w](double t) {
    return std::pair{std::sin((1 - t) * w) / sin_w, std::sin(t * w) / sin_w};
  });
}

Tensor fit_latent(Generator& G, const Tensor& x, const FitOptions& options) {
  const ModelConfig& c = G.config();
  ATELIER_CHECK(x.dim() == 4 && x.size(1) == c.channels && x.size(2) == c.image_size && x.size(3) == c.image_size,
                "fit_latent: images must be (N, " << c.channels << ", " << c.image_size << ", " << c.image_size
                                                  << ") to match G, got " << x.shape());
  ATELIER_CHECK(options.steps >= 0 && options.lr > 0 && std::isfinite(options.lr),
                "fit_latent: steps must be >= 0 and lr finite and > 0, got " << options.steps << " and " << options.lr);
  FreezeParameters frozen(G);
  Tensor z = sample_z(x.size(0), c.h, options.seed, 0, LatentStream::fixed_samples, x.device());
  z.requires_grad_(true);
  nn::Adam adam({z}, options.lr);
  for (int64_t step = 0; step < options.steps; ++step) {
    adam.zero_grad();
    Tensor loss = l1_loss(G.forward(z), x);
    loss.backward();
    adam.step();
    NoGradGuard no_grad;
    z.copy_(clamp(z, -1.0, 1.0));
  }
  return z.detach();
}

}  // namespace atelier::began
