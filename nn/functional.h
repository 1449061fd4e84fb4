// nn::functional: the stateless form of every layer, for code that holds its own tensors (a latent vector being
// fitted, weights shared by hand). Each is a one-line forward to the differentiable op of autograd/functions.h,
// where the shapes are documented and checked; the layers of nn/layers.h call the same ops.
#pragma once

#include "autograd/functions.h"

namespace atelier::nn::functional {

// x (..., in), weight (out, in), bias (out) or undefined -> (..., out).
inline Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor()) {
  return atelier::linear(x, weight, bias);
}
// x (N, C_in, H, W), weight (C_out, C_in, kh, kw), bias (C_out) or undefined -> (N, C_out, H', W').
inline Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), int64_t stride = 1,
                     int64_t padding = 0) {
  return atelier::conv2d(x, weight, bias, stride, padding);
}
// elu(conv2d(...), alpha) in one op: the ELU is applied in the convolution's output pass.
inline Tensor conv2d_elu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), int64_t stride = 1,
                         int64_t padding = 0, double alpha = 1.0) {
  return atelier::conv2d_elu(x, weight, bias, stride, padding, alpha);
}
// (N, C, H, W) -> (N, C, H * scale, W * scale).
inline Tensor upsample_nearest2d(const Tensor& x, int64_t scale) { return atelier::upsample_nearest2d(x, scale); }
inline Tensor elu(const Tensor& x, double alpha = 1.0) { return atelier::elu(x, alpha); }
inline Tensor relu(const Tensor& x) { return atelier::relu(x); }
inline Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0) {
  return atelier::softplus(x, beta, threshold);
}
inline Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01) {
  return atelier::leaky_relu(x, negative_slope);
}
inline Tensor silu(const Tensor& x) { return atelier::silu(x); }
inline Tensor gelu(const Tensor& x, GeluApproximate approximate = GeluApproximate::None) {
  return atelier::gelu(x, approximate);
}
inline Tensor tanh(const Tensor& x) { return atelier::tanh(x); }
inline Tensor sigmoid(const Tensor& x) { return atelier::sigmoid(x); }
inline Tensor flatten(const Tensor& x, int64_t start_dim = 1, int64_t end_dim = -1) {
  return x.flatten(start_dim, end_dim);
}
inline Tensor dropout(const Tensor& x, double p = 0.5, bool training = true) {
  return atelier::dropout(x, p, training);
}
// x (N, C, ...); running_mean, running_var, weight, bias (C) or undefined (autograd/functions.h says when which
// statistics are used and moved).
inline Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                         const Tensor& weight = Tensor(), const Tensor& bias = Tensor(), bool training = false,
                         double momentum = 0.1, double eps = 1e-5) {
  return atelier::batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps);
}
inline Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                         const Tensor& bias = Tensor(), double eps = 1e-5) {
  return atelier::layer_norm(x, normalized_shape, weight, bias, eps);
}
// x (N, C, ...), C a multiple of num_groups; weight, bias (C) or undefined.
inline Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = Tensor(),
                         const Tensor& bias = Tensor(), double eps = 1e-5) {
  return atelier::group_norm(x, num_groups, weight, bias, eps);
}
// (N, C, H, W) -> (N, C, H', W'); stride defaults to kernel.
inline Tensor max_pool2d(const Tensor& x, HW kernel, std::optional<HW> stride = std::nullopt, HW padding = 0) {
  return atelier::max_pool2d(x, kernel, stride, padding);
}
inline Tensor avg_pool2d(const Tensor& x, HW kernel, std::optional<HW> stride = std::nullopt, HW padding = 0) {
  return atelier::avg_pool2d(x, kernel, stride, padding);
}
inline Tensor log_softmax(const Tensor& x, int64_t dim) { return atelier::log_softmax(x, dim); }
inline Tensor softmax(const Tensor& x, int64_t dim) { return atelier::softmax(x, dim); }

// Losses, all reduced by the mean over every element (cross-entropy: over the batch).
inline Tensor l1_loss(const Tensor& input, const Tensor& target) { return atelier::l1_loss(input, target); }
inline Tensor mse_loss(const Tensor& input, const Tensor& target) { return atelier::mse_loss(input, target); }
// logits (N, C), labels int64 (N) in [0, C).
inline Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  return atelier::cross_entropy(logits, labels);
}
// From logits x, targets of x's shape (usually in [0, 1]).
inline Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target) {
  return atelier::binary_cross_entropy_with_logits(input, target);
}

}  // namespace atelier::nn::functional
