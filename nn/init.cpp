// The initialisers of nn/init.h: each computes its bound or std from the fans, draws a fresh tensor from the
// counter-based generator and copies it in under NoGradGuard.
#include "nn/init.h"

#include <cmath>

#include "backends/error.h"
#include "tensor/grad_mode.h"
#include "tensor/raw_ops.h"

namespace atelier::nn::init {
namespace {

void check_floating(const Tensor& t, const char* op) {
  ATELIER_CHECK(t.defined(), op << ": tensor is undefined");
  ATELIER_CHECK(is_floating(t.dtype()),
                op << ": needs a float32/float64 tensor, got " << t.dtype() << " of shape " << t.shape());
}

Tensor assign(const Tensor& t, const Tensor& values) {
  NoGradGuard no_grad;
  raw::copy_(t, values);
  return t;
}

int64_t fan(const Tensor& t, FanMode mode, const char* op) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  const int64_t f = mode == FanMode::FanIn ? fan_in : fan_out;
  ATELIER_CHECK(f > 0, op << ": the fan of a tensor of shape " << t.shape() << " is 0");
  return f;
}

}  // namespace

double calculate_gain(Nonlinearity nonlinearity, double param) {
  switch (nonlinearity) {
    case Nonlinearity::Linear:
    case Nonlinearity::Conv2d:
    case Nonlinearity::Sigmoid:
    case Nonlinearity::ELU: return 1.0;
    case Nonlinearity::Tanh: return 5.0 / 3.0;
    case Nonlinearity::ReLU: return std::sqrt(2.0);
    case Nonlinearity::LeakyReLU: return std::sqrt(2.0 / (1.0 + param * param));
  }
  return 1.0;
}

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t) {
  ATELIER_CHECK(t.defined() && t.dim() >= 2,
                "fan_in_and_fan_out: needs a weight with at least 2 dims (out, in, ...), got shape "
                    << (t.defined() ? shape_str(t.shape()) : std::string("undefined")));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

Tensor uniform_(const Tensor& t, double lo, double hi, std::optional<RandomKey> key) {
  check_floating(t, "uniform_");
  const RandomKey k = key ? *key : next_random_key(t.numel());
  return assign(t, uniform(t.shape(), lo, hi, k, t.dtype(), t.device()));
}

Tensor normal_(const Tensor& t, double mean, double std, std::optional<RandomKey> key) {
  check_floating(t, "normal_");
  const RandomKey k = key ? *key : next_random_key(t.numel());
  return assign(t, normal(t.shape(), mean, std, k, t.dtype(), t.device()));
}

Tensor constant_(const Tensor& t, double value) {
  ATELIER_CHECK(t.defined(), "constant_: tensor is undefined");
  NoGradGuard no_grad;
  raw::fill_(t, value);
  return t;
}

Tensor zeros_(const Tensor& t) { return constant_(t, 0.0); }
Tensor ones_(const Tensor& t) { return constant_(t, 1.0); }

Tensor xavier_uniform_(const Tensor& t, double gain, std::optional<RandomKey> key) {
  check_floating(t, "xavier_uniform_");
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  const double a = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return uniform_(t, -a, a, key);
}

Tensor xavier_normal_(const Tensor& t, double gain, std::optional<RandomKey> key) {
  check_floating(t, "xavier_normal_");
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), key);
}

Tensor kaiming_uniform_(const Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity,
                        std::optional<RandomKey> key) {
  check_floating(t, "kaiming_uniform_");
  const double sd = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan(t, mode, "kaiming_uniform_")));
  const double bound = std::sqrt(3.0) * sd;
  return uniform_(t, -bound, bound, key);
}

Tensor kaiming_normal_(const Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity,
                       std::optional<RandomKey> key) {
  check_floating(t, "kaiming_normal_");
  const double sd = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan(t, mode, "kaiming_normal_")));
  return normal_(t, 0.0, sd, key);
}

}  // namespace atelier::nn::init
