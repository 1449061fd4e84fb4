// The layers of nn/layers.h: constructors register PyTorch-named parameters and draw PyTorch's default
// initialisation; forward() calls the differentiable op of autograd/functions.h.
#include "nn/layers.h"

#include <cmath>

#include "autograd/functions.h"
#include "nn/init.h"

namespace atelier::nn {
namespace {

// PyTorch's reset_parameters for Linear and Conv2d: kaiming_uniform(a = sqrt(5)) for the weight and
// U(+-1/sqrt(fan_in)) for the bias, both of which come to U(+-1/sqrt(fan_in)).
void default_init(const Tensor& weight, const Tensor& bias) {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const int64_t fan_in = init::fan_in_and_fan_out(weight).first;
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, -bound, bound);
  }
}

}  // namespace

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_features(in_features), out_features(out_features) {
  ATELIER_CHECK(in_features > 0 && out_features > 0,
                "Linear(" << in_features << ", " << out_features << "): sizes must be positive");
  weight = register_parameter("weight", empty({out_features, in_features}));
  if (bias) this->bias = register_parameter("bias", empty({out_features}));
  reset_parameters();
}

void Linear::reset_parameters() { default_init(weight, bias); }

Tensor Linear::forward(const Tensor& x) {
  ATELIER_CHECK(x.dim() >= 1 && x.size(-1) == in_features,
                "Linear(" << in_features << ", " << out_features << "): input of shape " << x.shape()
                          << " does not end in " << in_features << " features");
  return linear(x, weight, bias);
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, HW kernel_size, HW stride, HW padding, bool bias)
    : in_channels(in_channels), out_channels(out_channels), kernel_size(kernel_size), stride(stride), padding(padding) {
  ATELIER_CHECK(in_channels > 0 && out_channels > 0 && kernel_size.h > 0 && kernel_size.w > 0 && stride.h > 0 &&
                    stride.w > 0 && padding.h >= 0 && padding.w >= 0,
                "Conv2d(in " << in_channels << ", out " << out_channels << ", kernel " << kernel_size << ", stride "
                             << stride << ", padding " << padding
                             << "): channels, kernel and stride must be positive, padding non-negative");
  weight = register_parameter("weight", empty({out_channels, in_channels, kernel_size.h, kernel_size.w}));
  if (bias) this->bias = register_parameter("bias", empty({out_channels}));
  reset_parameters();
}

void Conv2d::reset_parameters() { default_init(weight, bias); }

namespace {
void check_conv_input(const Conv2d& conv, const Tensor& x) {
  ATELIER_CHECK(x.dim() == 4 && x.size(1) == conv.in_channels,
                "Conv2d(" << conv.in_channels << " -> " << conv.out_channels << "): expected input (N, "
                          << conv.in_channels << ", H, W), got " << x.shape());
}
}  // namespace

Tensor Conv2d::forward(const Tensor& x) {
  check_conv_input(*this, x);
  return conv2d(x, weight, bias, stride, padding);
}

Tensor Conv2d::forward_elu(const Tensor& x, double alpha) {
  check_conv_input(*this, x);
  return conv2d_elu(x, weight, bias, stride, padding, alpha);
}

Tensor Conv2d::forward_upsample_elu(const Tensor& x, double alpha) {
  check_conv_input(*this, x);
  return upsample_conv2d_elu(x, weight, bias, stride, padding, alpha);
}

Tensor ELU::forward(const Tensor& x) { return elu(x, alpha); }
Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

UpsampleNearest2d::UpsampleNearest2d(int64_t scale) : scale(scale) {
  ATELIER_CHECK(scale >= 1, "UpsampleNearest2d: scale must be >= 1, got " << scale);
}

Tensor UpsampleNearest2d::forward(const Tensor& x) { return upsample_nearest2d(x, scale); }

Tensor Flatten::forward(const Tensor& x) { return x.flatten(start_dim, end_dim); }

Tensor Reshape::forward(const Tensor& x) {
  ATELIER_CHECK(x.dim() >= 1, "Reshape" << shape << ": input must have a batch dim, got shape " << x.shape());
  Shape full{x.size(0)};
  full.insert(full.end(), shape.begin(), shape.end());
  return x.reshape(full);
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor out = x;
  for (const auto& layer : layers_) out = layer->forward(out);
  return out;
}

const std::shared_ptr<Module>& Sequential::operator[](size_t i) const {
  ATELIER_CHECK(i < layers_.size(), "Sequential[" << i << "]: index out of range (size " << layers_.size() << ")");
  return layers_[i];
}

}  // namespace atelier::nn
