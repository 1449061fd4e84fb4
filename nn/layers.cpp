// The layers of nn/layers.h: constructors register PyTorch-named parameters and draw PyTorch's default
// initialisation; forward() calls the differentiable op of autograd/functions.h.
#include "nn/layers.h"

#include <algorithm>
#include <cmath>

#include "autograd/functions.h"
#include "nn/init.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"

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

Softplus::Softplus(double beta, double threshold) : beta(beta), threshold(threshold) {
  ATELIER_CHECK(beta > 0, "Softplus: beta must be positive, got " << beta);
}
Tensor Softplus::forward(const Tensor& x) { return softplus(x, beta, threshold); }
Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, negative_slope); }
Tensor SiLU::forward(const Tensor& x) { return silu(x); }
Tensor GELU::forward(const Tensor& x) { return gelu(x, approximate); }

UpsampleNearest2d::UpsampleNearest2d(int64_t scale) : scale(scale) {
  ATELIER_CHECK(scale >= 1, "UpsampleNearest2d: scale must be >= 1, got " << scale);
}

Tensor UpsampleNearest2d::forward(const Tensor& x) { return upsample_nearest2d(x, scale); }

Dropout::Dropout(double p) : p(p) { ATELIER_CHECK(p >= 0 && p <= 1, "Dropout: p must be in [0, 1], got " << p); }

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training()); }

BatchNorm::BatchNorm(int64_t num_features, double eps, double momentum, bool affine, bool track_running_stats,
                     std::vector<int64_t> input_ranks, std::string input_shapes)
    : num_features(num_features),
      eps(eps),
      momentum(momentum),
      input_ranks_(std::move(input_ranks)),
      input_shapes_(std::move(input_shapes)) {
  ATELIER_CHECK(num_features > 0, "BatchNorm(" << num_features << "): num_features must be positive");
  ATELIER_CHECK(eps > 0 && momentum >= 0 && momentum <= 1,
                "BatchNorm(" << num_features << "): eps must be positive and momentum in [0, 1], got eps " << eps
                             << ", momentum " << momentum);
  if (affine) {
    weight = register_parameter("weight", ones({num_features}));
    bias = register_parameter("bias", zeros({num_features}));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", zeros({num_features}));
    running_var = register_buffer("running_var", ones({num_features}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::Int64));
  }
}

Tensor BatchNorm::forward(const Tensor& x) {
  const bool rank_ok = std::find(input_ranks_.begin(), input_ranks_.end(), x.dim()) != input_ranks_.end();
  ATELIER_CHECK(rank_ok && x.size(1) == num_features, type_name()
                                                          << "(" << num_features << "): input must be " << input_shapes_
                                                          << " with C = " << num_features << ", got " << x.shape());
  const bool use_batch_stats = is_training() || !running_mean.defined();
  if (is_training() && num_batches_tracked.defined()) {
    NoGradGuard no_grad;  // the count on its own device without a host read: int64 -> float64, + 1, back
    num_batches_tracked.copy_(add(num_batches_tracked.to(DType::Float64), 1.0));
  }
  return batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, momentum, eps);
}

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine)
    : normalized_shape(std::move(normalized_shape)), eps(eps) {
  ATELIER_CHECK(!this->normalized_shape.empty() && shape_numel(this->normalized_shape) > 0,
                "LayerNorm" << this->normalized_shape << ": normalized_shape must be non-empty with positive sizes");
  if (elementwise_affine) {
    weight = register_parameter("weight", ones(this->normalized_shape));
    bias = register_parameter("bias", zeros(this->normalized_shape));
  }
}

Tensor LayerNorm::forward(const Tensor& x) { return layer_norm(x, normalized_shape, weight, bias, eps); }

GroupNorm::GroupNorm(int64_t num_groups, int64_t num_channels, double eps, bool affine)
    : num_groups(num_groups), num_channels(num_channels), eps(eps) {
  ATELIER_CHECK(num_groups > 0 && num_channels > 0 && num_channels % num_groups == 0,
                "GroupNorm(" << num_groups << ", " << num_channels << "): num_groups must divide num_channels");
  ATELIER_CHECK(eps > 0, "GroupNorm(" << num_groups << ", " << num_channels << "): eps must be positive, got " << eps);
  if (affine) {
    weight = register_parameter("weight", ones({num_channels}));
    bias = register_parameter("bias", zeros({num_channels}));
  }
}

Tensor GroupNorm::forward(const Tensor& x) {
  ATELIER_CHECK(x.dim() >= 2 && x.size(1) == num_channels,
                "GroupNorm(" << num_groups << ", " << num_channels
                             << "): input must be (N, C, ...) with C = " << num_channels << ", got " << x.shape());
  return group_norm(x, num_groups, weight, bias, eps);
}

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel_size, stride, padding); }
Tensor AvgPool2d::forward(const Tensor& x) { return avg_pool2d(x, kernel_size, stride, padding); }

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
