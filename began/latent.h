// Walking BEGAN's latent space: straight (linear) and spherical (slerp) paths between two latent points, and
// fitting a latent point to an image as the BEGAN paper did (section 4.3: Adam on z, z starting U[-1, 1] and kept
// in [-1, 1]), so that `began interpolate` can also walk between two real images.
#pragma once

#include <cstdint>

#include "began/model.h"

namespace atelier::began {

// a, b (h) -> (points, h): row i is a + t (b - a) with t = i / (points - 1); row 0 is a, the last row b.
// points >= 2; a and b on one device, float32; the result on that device.
Tensor lerp_path(const Tensor& a, const Tensor& b, int64_t points);

// Like lerp_path along the great circle (White 2016, "Sampling generative networks"):
//   slerp(t) = sin((1 - t) w) / sin w  a + sin(t w) / sin w  b,   w = the angle between a and b,
// computed in float64. Nearly parallel (sin w < 1e-6) or zero vectors fall back to the straight line.
Tensor slerp_path(const Tensor& a, const Tensor& b, int64_t points);

struct FitOptions {
  int64_t steps = 1000;  // Adam steps
  double lr = 0.05;      // Adam's learning rate (betas 0.9, 0.999)
  uint64_t seed = 0;     // the U[-1, 1] start: sample_z(N, h, seed, 0, fixed_samples)
};

// For images x (N, C, S, S) on G's device, the latent points z (N, h) that minimise the L1 distance
// mean |x - G(z)|: z starts U[-1, 1] and is clamped to [-1, 1] after each Adam step. Each image's z is fitted on
// its own (the loss is a mean over images, and Adam's steps are per element). G is left unchanged: its
// parameters are frozen while fitting and get no gradient. Returns z without a graph.
Tensor fit_latent(Generator& G, const Tensor& x, const FitOptions& options = {});

}  // namespace atelier::began
