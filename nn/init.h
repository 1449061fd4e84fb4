// Parameter initialisers, as torch.nn.init defines them: uniform, normal, Xavier/Glorot and Kaiming/He, plus
// the fan and gain helpers they use. Every random initialiser draws from the counter-based generator: the
// default one (tensor/creation.h: manual_seed) unless an explicit RandomKey is given, so the same seed (or key)
// gives the same weights on every run and backend.
//
// All of them write in place under NoGradGuard (so they work on parameters that require grad), keep the
// tensor's dtype and device, and return the tensor.
#pragma once

#include <optional>
#include <utility>

#include "tensor/creation.h"
#include "tensor/tensor.h"

namespace atelier::nn::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, Conv2d, Sigmoid, Tanh, ReLU, LeakyReLU, ELU };

// torch.nn.init.calculate_gain: 1 for Linear, Conv2d and Sigmoid, 5/3 for Tanh, sqrt(2) for ReLU and
// sqrt(2 / (1 + param^2)) for LeakyReLU (param = the negative slope). ELU is not in PyTorch's table; it gets 1.
double calculate_gain(Nonlinearity nonlinearity, double param = 0.01);

// (fan_in, fan_out) of a weight of shape (out, in, k...): fan_in = in * prod(k), fan_out = out * prod(k).
// requires: t.dim() >= 2.
std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t);

Tensor uniform_(const Tensor& t, double lo = 0.0, double hi = 1.0, std::optional<RandomKey> key = std::nullopt);
Tensor normal_(const Tensor& t, double mean = 0.0, double std = 1.0, std::optional<RandomKey> key = std::nullopt);
Tensor constant_(const Tensor& t, double value);
Tensor zeros_(const Tensor& t);
Tensor ones_(const Tensor& t);

// U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)).
Tensor xavier_uniform_(const Tensor& t, double gain = 1.0, std::optional<RandomKey> key = std::nullopt);
// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal_(const Tensor& t, double gain = 1.0, std::optional<RandomKey> key = std::nullopt);
// U(-b, b) with b = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a), fan by `mode`. PyTorch's
// layer default is a = sqrt(5), LeakyReLU, FanIn, which works out to b = 1 / sqrt(fan_in).
Tensor kaiming_uniform_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                        Nonlinearity nonlinearity = Nonlinearity::LeakyReLU,
                        std::optional<RandomKey> key = std::nullopt);
// N(0, std^2) with std = gain / sqrt(fan).
Tensor kaiming_normal_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                       Nonlinearity nonlinearity = Nonlinearity::LeakyReLU,
                       std::optional<RandomKey> key = std::nullopt);

}  // namespace atelier::nn::init
