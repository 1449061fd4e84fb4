// The differentiable ops: each runs its raw forward (tensor/raw_ops.h) and, when grad mode is on and an input
// requires grad, records a Node with its backward formula. autograd/differentiable_ops.def lists them all; the op table
// (autograd/op_table.h) checks each against finite differences.
#pragma once

#include <optional>
#include <vector>

#include "tensor/tensor.h"

namespace atelier {

// --- elementwise (autograd/ops/elementwise.cpp); binary ops broadcast (NumPy rules) ---
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor rsub(double a, const Tensor& b);  // a - b
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor rdiv(double a, const Tensor& b);  // a / b
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor elu(const Tensor& x, double alpha = 1.0);
// log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's softplus, its defaults); beta > 0.
// Computed so that no exp overflows: finite for any x. Its gradient is sigmoid(beta x) (1 past the threshold).
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
// x > 0 ? x : negative_slope x (PyTorch's leaky_relu, its default slope; any slope, 0 and negative ones included).
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
// x sigmoid(x) (PyTorch's silu, also called swish).
Tensor silu(const Tensor& x);
// x Phi(x), Phi the standard normal CDF (PyTorch's gelu); Tanh: PyTorch's approximate = "tanh",
// x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2.
enum class GeluApproximate { None, Tanh };
Tensor gelu(const Tensor& x, GeluApproximate approximate = GeluApproximate::None);
Tensor clamp(const Tensor& x, double lo, double hi);
// The larger (smaller) of a and b elementwise, broadcast (torch.maximum, torch.minimum; NaN in either gives NaN).
// The gradient goes to the larger (smaller), half to each where they are equal.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
// cond ? a : b (cond is bool; all three broadcast). Differentiable in a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// --- reductions (autograd/ops/reduce.cpp); dims empty = every dim ---
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Maximum over dims, as torch.amax (values only; argmax gives the indices); the gradient is split evenly
// between tied maxima.
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Minimum over dims, as torch.amin: -amax(-x), so ties split the gradient as amax's do.
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance over dims: sum((x - mean)^2) / (n - correction), n the elements per output (torch.var's correction; 1
// is Bessel's). Refuses n - correction <= 0, where PyTorch returns NaN or inf. std is sqrt(var(...)).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1, bool keepdim = false);
// log(sum(exp(x))) over dims without overflow (the maximum taken out first), as torch.logsumexp.
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);

// --- linear algebra (autograd/ops/linalg.cpp) ---
// (..., m, k) @ (..., k, n) -> (..., m, n), batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
// x (..., in) @ weight (out, in)^T + bias (out); bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// --- shape and conversion (autograd/ops/shape.cpp) ---
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor contiguous(const Tensor& x);
Tensor clone(const Tensor& x);
Tensor to_dtype(const Tensor& x, DType dtype);
// A copy on `device` (x itself if already there); the gradient is copied back to x's device.
Tensor to_device(const Tensor& x, Device device);
// out[..., j, ...] = x[..., index[..., j, ...], ...] along dim; differentiable in x.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);

// --- convolution and image ops (autograd/ops/conv.cpp) ---
// x (N, C_in, H, W), weight (C_out, C_in, kh, kw), bias (C_out) or undefined -> (N, C_out, H_out, W_out), with
// H_out = (H + 2 padding.h - kh) / stride.h + 1 and likewise W_out; stride and padding are one value for both
// directions or {h, w} (HW, tensor/shape.h).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), HW stride = 1, HW padding = 0);
// elu(conv2d(x, weight, bias, stride, padding), alpha) as one op: the ELU is applied in the convolution's output
// pass and its gradient computed from the output, so the pre-activation tensor is never made (alpha >= 0).
Tensor conv2d_elu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), HW stride = 1, HW padding = 0,
                  double alpha = 1.0);
// conv2d_elu(upsample_nearest2d(x, 2), weight, bias, stride, padding, alpha) as one op: the convolution reads pixel
// (y / 2, x / 2) of x where the upsampled image would be read (on CUDA; the CPU upsamples into scratch), so the
// upsampled tensor is never made nor kept for the backward pass, and the input gradient is x's shape.
Tensor upsample_conv2d_elu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), HW stride = 1,
                           HW padding = 0, double alpha = 1.0);
// (N, C, H, W) -> (N, C, H * scale, W * scale), each pixel repeated.
Tensor upsample_nearest2d(const Tensor& x, int64_t scale);

// --- joining and splitting (autograd/ops/join.cpp) ---
// Concatenation along dim; every other dim must match.
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
// Tensors of one shape joined along a new dim (torch.stack): cat of each unsqueezed at dim.
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Pieces of split_size along dim (the last may be smaller); views of x, the outputs of one node.
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);
// `chunks` pieces of (nearly) equal size along dim; views of x.
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);

// --- losses (autograd/ops/loss.cpp); all reduce by the mean ---
Tensor mse_loss(const Tensor& input, const Tensor& target);
Tensor l1_loss(const Tensor& input, const Tensor& target);
Tensor log_softmax(const Tensor& x, int64_t dim);
// exp(log_softmax(x, dim)): the rows along dim sum to 1.
Tensor softmax(const Tensor& x, int64_t dim);
// logits (N, C), labels int64 (N) in [0, C).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);
// mean of -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))) over every element, from the logits x (the GAN and
// multi-label loss); target t of x's shape, usually in [0, 1]. Stable for any |x| (no sigmoid is formed).
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target);

// --- the ops behind nn's dropout, normalisation and pooling layers (autograd/ops/layer_ops.cpp) ---
// training: each element zeroed with probability p, the others scaled by 1 / (1 - p), the mask drawn from the
// default generator (manual_seed); otherwise (or p = 0) x itself. 0 <= p <= 1. In training mode it is refused
// inside a graph capture, as every default-generator draw is (each replay would repeat the capture's mask).
Tensor dropout(const Tensor& x, double p, bool training = true);
// x (N, C, ...) normalised per channel: (x - mean) / sqrt(var + eps) * weight + bias, mean and var (biased) over
// every dim but 1. With training, or without running statistics, mean and var are the batch's, and defined
// running_mean / running_var (C) become (1 - momentum) r + momentum s under no-grad (the variance unbiased, as
// PyTorch); otherwise the running statistics are used. weight, bias (C) or undefined.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5);
// x (..., normalized_shape) normalised over its last normalized_shape.size() dims: (x - mean) / sqrt(var + eps)
// (var biased) * weight + bias; weight, bias (normalized_shape) or undefined.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// x (N, C, ...) with its C channels in num_groups groups of C / num_groups: each sample's group normalised over
// its channels and the rest of the dims, (x - mean) / sqrt(var + eps) (var biased), then * weight + bias per
// channel; weight, bias (C) or undefined. PyTorch's group_norm; num_groups = C is instance normalisation.
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  double eps = 1e-5);
// x (N, C, H, W) -> (N, C, H_out, W_out), H_out = (H + 2 padding.h - kernel.h) / stride.h + 1 (likewise W): the
// maximum (or the mean) of each window. stride defaults to kernel; padding <= kernel / 2 (never the maximum; zeros
// in the mean, which always divides by kernel.h * kernel.w: PyTorch's count_include_pad). A window's gradient goes
// to its first maximum in row-major order (a NaN is the maximum), as PyTorch's.
Tensor max_pool2d(const Tensor& x, HW kernel, std::optional<HW> stride = std::nullopt, HW padding = 0);
Tensor avg_pool2d(const Tensor& x, HW kernel, std::optional<HW> stride = std::nullopt, HW padding = 0);

// --- operators ---
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, b); }
inline Tensor operator+(double a, const Tensor& b) { return add(b, a); }
inline Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
inline Tensor operator-(double a, const Tensor& b) { return rsub(a, b); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
inline Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
inline Tensor operator/(const Tensor& a, double b) { return div(a, b); }
inline Tensor operator/(double a, const Tensor& b) { return rdiv(a, b); }

}  // namespace atelier
