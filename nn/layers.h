// The layers: small Module subclasses with PyTorch's parameter names, layouts and default initialisation
// (Linear, Conv2d), the activations (ELU, ReLU, LeakyReLU, Tanh, Sigmoid, Softplus, SiLU, GELU), Dropout, the
// normalisations (BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm), pooling (MaxPool2d, AvgPool2d), shape layers
// (Flatten, Reshape),
// UpsampleNearest2d, and Sequential, which chains modules under the child names "0", "1", ...
//
// Default initialisation (PyTorch's reset_parameters): weight ~ kaiming_uniform(a = sqrt(5)) and
// bias ~ U(+-1/sqrt(fan_in)), which are both U(+-1/sqrt(fan_in)) with fan_in = in * kh * kw. Values come from the
// default counter-based generator, so manual_seed(s) before building a model fixes its weights.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "nn/module.h"

namespace atelier::nn {

// y = x W^T + b.  x (..., in) -> (..., out).  Parameters: weight (out, in), bias (out) unless bias = false.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }

  // Re-draws weight and bias with PyTorch's defaults.
  void reset_parameters();

  const int64_t in_features, out_features;
  Tensor weight;  // (out, in)
  Tensor bias;    // (out), undefined when constructed with bias = false
};

// 2-d convolution. x (N, in, H, W) -> (N, out, H', W') with H' = (H + 2 padding.h - kernel_size.h) / stride.h + 1
// and W' likewise. kernel_size, stride and padding are each one value for both directions (Conv2d(3, 8, 3, 2, 1))
// or {h, w} (Conv2d(3, 8, {3, 5}, {1, 2}, {1, 2})). Parameters: weight (out, in, kernel_size.h, kernel_size.w),
// bias (out) unless bias = false.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, HW kernel_size, HW stride = 1, HW padding = 0, bool bias = true);
  Tensor forward(const Tensor& x) override;
  // elu(forward(x), alpha) as one fused op (conv2d_elu): the ELU runs in the convolution's output pass.
  Tensor forward_elu(const Tensor& x, double alpha = 1.0);
  // forward_elu(upsample_nearest2d(x, 2), alpha) as one op (upsample_conv2d_elu): the convolution reads x itself.
  Tensor forward_upsample_elu(const Tensor& x, double alpha = 1.0);
  std::string type_name() const override { return "Conv2d"; }
  void reset_parameters();

  const int64_t in_channels, out_channels;
  const HW kernel_size, stride, padding;
  Tensor weight;  // (out, in, kh, kw)
  Tensor bias;    // (out), undefined when constructed with bias = false
};

// ELU: x for x > 0, alpha (exp(x) - 1) otherwise.
class ELU : public Module {
 public:
  explicit ELU(double alpha = 1.0) : alpha(alpha) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ELU"; }
  const double alpha;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ReLU"; }
};

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Tanh"; }
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sigmoid"; }
};

// log(1 + exp(beta x)) / beta, x itself where beta x > threshold (PyTorch's Softplus).
class Softplus : public Module {
 public:
  explicit Softplus(double beta = 1.0, double threshold = 20.0);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Softplus"; }
  const double beta, threshold;
};

// x for x > 0, negative_slope x otherwise (PyTorch's LeakyReLU and its default slope).
class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LeakyReLU"; }
  const double negative_slope;
};

// x sigmoid(x) (PyTorch's SiLU).
class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "SiLU"; }
};

// x Phi(x), Phi the standard normal CDF, or PyTorch's tanh approximation of it (PyTorch's GELU).
class GELU : public Module {
 public:
  explicit GELU(GeluApproximate approximate = GeluApproximate::None) : approximate(approximate) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GELU"; }
  const GeluApproximate approximate;
};

// (N, C, H, W) -> (N, C, H * scale, W * scale), each pixel repeated.
class UpsampleNearest2d : public Module {
 public:
  explicit UpsampleNearest2d(int64_t scale);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "UpsampleNearest2d"; }
  const int64_t scale;
};

// In training mode (Module::train(), the default) each element is zeroed with probability p and the others are
// scaled by 1 / (1 - p); in eval mode the identity. The masks come from the default generator (manual_seed).
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  const double p;
};

// Batch normalisation per channel (batch_norm in autograd/functions.h), as PyTorch's: in training mode each channel
// is normalised by the batch's mean and (biased) variance, which also move the running statistics (running =
// (1 - momentum) running + momentum batch, the variance unbiased) and count num_batches_tracked; in eval mode the
// running statistics are used. Parameters weight (C, ones) and bias (C, zeros) unless affine = false; buffers
// running_mean (C, zeros), running_var (C, ones) and num_batches_tracked (int64, 0-d) unless track_running_stats
// = false, when the batch's statistics are used in both modes. BatchNorm1d takes (N, C) or (N, C, L),
// BatchNorm2d (N, C, H, W).
class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& x) override;

  const int64_t num_features;
  const double eps, momentum;
  Tensor weight, bias;                                    // (C), undefined without affine
  Tensor running_mean, running_var, num_batches_tracked;  // undefined without track_running_stats

 protected:
  // input_ranks: the ranks forward() accepts, with their description for messages ("(N, C, H, W)").
  BatchNorm(int64_t num_features, double eps, double momentum, bool affine, bool track_running_stats,
            std::vector<int64_t> input_ranks, std::string input_shapes);

 private:
  const std::vector<int64_t> input_ranks_;
  const std::string input_shapes_;
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats, {2, 3}, "(N, C) or (N, C, L)") {}
  std::string type_name() const override { return "BatchNorm1d"; }
};

class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats, {4}, "(N, C, H, W)") {}
  std::string type_name() const override { return "BatchNorm2d"; }
};

// Normalises each sample over its last normalized_shape.size() dims (layer_norm), the same in both modes.
// Parameters weight (normalized_shape, ones) and bias (normalized_shape, zeros) unless elementwise_affine = false.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LayerNorm"; }
  const Shape normalized_shape;
  const double eps;
  Tensor weight, bias;  // undefined without elementwise_affine
};

// Normalises each sample's num_groups groups of num_channels / num_groups channels (group_norm), the same in both
// modes. Parameters weight (C, ones) and bias (C, zeros) unless affine = false. num_groups = num_channels is
// PyTorch's InstanceNorm without running statistics, with an affine.
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5, bool affine = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GroupNorm"; }
  const int64_t num_groups, num_channels;
  const double eps;
  Tensor weight, bias;  // undefined without affine
};

// (N, C, H, W) -> (N, C, H', W'): the maximum (MaxPool2d) or mean (AvgPool2d) of each kernel_size window, with
// H' = (H + 2 padding.h - kernel_size.h) / stride.h + 1 (max_pool2d, avg_pool2d). stride defaults to kernel_size.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(HW kernel_size, std::optional<HW> stride = std::nullopt, HW padding = 0)
      : kernel_size(kernel_size), stride(stride.value_or(kernel_size)), padding(padding) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MaxPool2d"; }
  const HW kernel_size, stride, padding;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(HW kernel_size, std::optional<HW> stride = std::nullopt, HW padding = 0)
      : kernel_size(kernel_size), stride(stride.value_or(kernel_size)), padding(padding) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AvgPool2d"; }
  const HW kernel_size, stride, padding;
};

// Merges dims start_dim..end_dim into one: (N, C, H, W) -> (N, C * H * W) with the defaults.
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Flatten"; }
  const int64_t start_dim, end_dim;
};

// Reshapes each sample, keeping the batch dim: (N, ...) -> (N, shape...). One entry of `shape` may be -1.
// Example: Reshape({64, 8, 8}) turns a linear layer's (N, 4096) into (N, 64, 8, 8).
class Reshape : public Module {
 public:
  explicit Reshape(Shape shape) : shape(std::move(shape)) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Reshape"; }
  const Shape shape;
};

// Runs its children in order, each on the previous one's output. Children are named "0", "1", ... so
// parameters read "0.weight", "2.bias" as in PyTorch.
class Sequential : public Module {
 public:
  Sequential() = default;
  template <typename... Ms>
  explicit Sequential(std::shared_ptr<Ms>... modules) {
    (push_back(std::move(modules)), ...);
  }

  // Appends a module under the next index; returns it with its own type.
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> module) {
    register_module(std::to_string(layers_.size()), module);
    layers_.push_back(module);
    return module;
  }
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }

  size_t size() const { return layers_.size(); }
  // requires: i < size().
  const std::shared_ptr<Module>& operator[](size_t i) const;

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace atelier::nn
