// Raw (non-differentiable) ops: check shapes, dtypes and devices, allocate the output, call the backend of the
// inputs' device. They never touch autograd metadata: their outputs have no grad_fn and do not require grad.
// autograd/ builds the differentiable ops (and their backward formulas) from these.
//
// Every op accepts non-contiguous inputs: elementwise and copy kernels take strides; the others call
// contiguous() on their inputs first.
#pragma once

#include <vector>

#include "backends/args.h"
#include "tensor/tensor.h"

namespace atelier::raw {

// Uninitialised contiguous tensor.
Tensor empty(const Shape& shape, DType dtype, Device device);

// --- views: share storage, no copy ---
Tensor as_strided(const Tensor& t, const Shape& sizes, const Shape& strides, int64_t offset);
// Resolves one -1 in `shape` against numel; throws naming op and shapes on mismatch.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op);
// A view when the strides allow it, otherwise an undefined Tensor (reshape then copies).
Tensor view_or_undefined(const Tensor& t, const Shape& shape);
Tensor reshape(const Tensor& t, const Shape& shape);
Tensor permute(const Tensor& t, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& t, int64_t dim0, int64_t dim1);
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step);
Tensor expand(const Tensor& t, const Shape& shape);
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor unsqueeze(const Tensor& t, int64_t dim);

// --- copies and conversions ---
// dst (any strides) <- src broadcast to dst's shape, converting dtype and crossing devices as needed.
void copy_(const Tensor& dst, const Tensor& src);
Tensor contiguous(const Tensor& t);
Tensor clone(const Tensor& t);
Tensor cast(const Tensor& t, DType dtype);
Tensor to_device(const Tensor& t, Device device);
void fill_(const Tensor& t, double value);

// --- elementwise ---
Tensor unary(UnaryOp op, const Tensor& t, double p0 = 0, double p1 = 0);
// a and b broadcast (NumPy rules); same dtype and device required.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
// A scalar operand, on either side (x - 2, 2 - x): it travels by value in the args (BinaryArgs::scalar), costing no
// tensor and no device memory. The result has the tensor's dtype (the scalar converted to it as fill converts).
Tensor binary(BinaryOp op, const Tensor& a, double b);
Tensor binary(BinaryOp op, double a, const Tensor& b);
// dst = op(dst, other), written into dst's own bytes; `other` broadcasts to dst's shape. Bumps dst's version.
// A non-contiguous dst is computed aside and copied back (the kernels write contiguous outputs).
void binary_(BinaryOp op, const Tensor& dst, const Tensor& other);
void binary_(BinaryOp op, const Tensor& dst, double other);
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b);
Tensor compare(CompareOp op, const Tensor& a, double b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// A scalar operand by value, as for binary (WhereArgs::scalar): the result has the tensor's dtype.
Tensor where(const Tensor& cond, const Tensor& a, double b);
Tensor where(const Tensor& cond, double a, const Tensor& b);
// An activation's input gradient from its output y = op(x), one kernel: op Elu (grad * (y > 0 ? 1 : y + alpha)),
// Relu, Tanh or Sigmoid; or from its input x (`out` is x): Softplus (beta alpha, threshold), LeakyRelu (slope alpha),
// Silu, Gelu, GeluTanh (backends/args.h, ActivationBackwardArgs). grad and out have one shape (no broadcasting).
Tensor activation_backward(UnaryOp op, const Tensor& grad, const Tensor& out, double alpha = 0, double threshold = 0);

// --- reductions ---
// dims empty = all dims. keepdim keeps reduced dims as size 1.
Tensor reduce(ReduceOp op, const Tensor& t, const std::vector<int64_t>& dims, bool keepdim);
Tensor argmax(const Tensor& t, int64_t dim, bool keepdim);
// Sums `t` down to `shape` (the inverse of broadcasting `shape` up to t's shape): undoes broadcasting in backward.
Tensor sum_to(const Tensor& t, const Shape& shape);
// log(softmax(t)) along dim, in one kernel: t - max - log(sum(exp(t - max))) (floating dtypes; the shift by the max
// keeps exp from overflowing).
Tensor log_softmax(const Tensor& t, int64_t dim);
// Its input gradient from its output y = log_softmax(t, dim): grad - exp(y) * sum(grad, dim), one kernel. grad and y
// have one shape (no broadcasting).
Tensor log_softmax_backward(const Tensor& grad, const Tensor& out, int64_t dim);
// exp(log_softmax(t, dim)) in the same kernel, and its input gradient from its output y: y * (grad - sum(grad * y,
// dim)), one kernel (the log_softmax primitives' softmax mode).
Tensor softmax(const Tensor& t, int64_t dim);
Tensor softmax_backward(const Tensor& grad, const Tensor& out, int64_t dim);

// --- indexing ---
// out[..., j, ...] = t[..., index[..., j, ...], ...] along `dim`; index is int64 with t's shape except at dim.
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index);
// A tensor of `shape` (zeros) with src scatter-added along dim at index: the adjoint of gather.
Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);

// --- linear algebra ---
// (..., m, k) @ (..., k, n) -> (..., m, n); 1-D operands are not accepted. Batch dims broadcast. A transposed
// operand (a view with unit stride in its second-to-last dim) goes to the GEMM as a transpose flag, not a copy.
Tensor matmul(const Tensor& a, const Tensor& b);

// --- convolution and image ops (NCHW; inputs are made contiguous first) ---
// x (N, C_in, H, W) conv weight (C_out, C_in, kh, kw) + bias (C_out; may be undefined), stride and padding one
// value for both directions or {h, w} -> (N, C_out, H_out, W_out) with H_out = (H + 2 padding.h - kh) / stride.h + 1
// and W_out likewise.
// With activation Elu the output is ELU(conv + bias) with `alpha` (>= 0), computed in the same pass.
// input_upsample 2 convolves upsample_nearest2d(x, 2) without making it (Conv2dGeometry::input_upsample): H and W
// above are then 2 H and 2 W of x. The backward passes take the same factor and x's own (small) shape.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, HW stride, HW padding,
              ConvActivation activation = ConvActivation::None, double alpha = 1, int64_t input_upsample = 1);
// The gradient of conv2d with respect to x, of shape input_shape (N, C_in, H, W): the adjoint of the convolution
// applied to grad_out (N, C_out, H_out, W_out).
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape, HW stride,
                             HW padding, int64_t input_upsample = 1);
struct Conv2dWeightGrads {
  Tensor weight;  // (C_out, C_in, kh, kw)
  Tensor bias;    // (C_out), undefined unless asked for
};
// The gradients of conv2d with respect to its weight (of shape weight_shape) and, if with_bias, its bias.
Conv2dWeightGrads conv2d_backward_weight(const Tensor& x, const Tensor& grad_out, const Shape& weight_shape,
                                         bool with_bias, HW stride, HW padding, int64_t input_upsample = 1);
// (N, C, H, W) -> (N, C, H * scale, W * scale), each pixel repeated in a scale x scale block (scale >= 1).
Tensor upsample_nearest2d(const Tensor& x, int64_t scale);
// Its adjoint: (N, C, H * scale, W * scale) -> (N, C, H, W), the sum of each scale x scale block.
Tensor upsample_nearest2d_backward(const Tensor& grad_out, int64_t scale);
// x (N, C, H, W) -> (N, C, H_out, W_out), H_out = (H + 2 padding.h - kernel.h) / stride.h + 1 (likewise W): the
// maximum or the mean of each window (backends/args.h, Pool2dArgs); kernel, stride >= 1, padding <= kernel / 2.
// For Max, indices (int64, the output's shape) holds where each maximum is in its plane (y * W + x).
struct Pool2dResult {
  Tensor output, indices;
};
Pool2dResult pool2d(const Tensor& x, PoolMode mode, HW kernel, HW stride, HW padding);
// The gradient with respect to x (of shape input_shape) from grad_out and, for Max, pool2d's indices.
Tensor pool2d_backward(const Tensor& grad_out, const Tensor& indices, PoolMode mode, const Shape& input_shape,
                       HW kernel, HW stride, HW padding);

// --- normalisation by groups (tensor/raw/norm.cpp) ---
// x (made contiguous) viewed as (outer, groups, inner), each group's outer * inner elements normalised by their
// mean and biased variance, then scaled and shifted by weight and bias (each undefined, or `affine`'s size:
// (groups) PerGroup, (inner) PerInner, (channels.count) PerChannel); backends/args.h, NormArgs. y has x's shape;
// mean, var and rstd (groups).
struct NormResult {
  Tensor y, mean, var, rstd;
};
NormResult normalize(const Tensor& x, int64_t outer, int64_t groups, int64_t inner, NormAffine affine,
                     const Tensor& weight, const Tensor& bias, double eps, NormChannels channels = {});
// The gradients of normalize's y from grad_y, each only if asked (undefined otherwise); weight as given to it.
struct NormGrads {
  Tensor x, weight, bias;
};
NormGrads normalize_backward(const Tensor& grad_y, const Tensor& x, const NormResult& forward, NormAffine affine,
                             const Tensor& weight, int64_t outer, bool need_x, bool need_weight, bool need_bias,
                             NormChannels channels = {});

// --- joining (tensor/raw/join.cpp) ---
// Concatenation along dim (negative counts from the end); every other dimension must match.
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);

// --- optimiser updates (tensor/raw/optim.cpp) ---
// One fused in-place update of `param` by its gradient (formulas in backends/args.h). Every tensor has param's
// shape, dtype and device; param and the state buffers are contiguous (grad is made so). step counts from 1.
// Bumps the version of every tensor written. momentum_buffer may be undefined when h.momentum is 0.
void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, int64_t step, double lr,
               const SgdHyperparameters& h);
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq, int64_t step,
                double lr, const AdamHyperparameters& h);

// adam_step_ on many tensors with one primitive call (adam_step_multi) per dtype and device among them. Each item
// is checked as adam_step_ checks its operands, an error naming it "tensor <label>: ...", and nothing is written
// when any check fails. Each item gets exactly adam_step_'s result. The params must be distinct tensors.
struct AdamTensors {
  Tensor param, grad, exp_avg, exp_avg_sq;
  int64_t step = 1;
  int64_t label = 0;  // what an error calls the item (an optimiser passes the tensor's index)
};
// `constants`, when defined, is the captured form (AdamMultiStepArgs::constants): a contiguous float64 tensor of
// 4 * items.size() elements on the items' device, item j's AdamConstants at [4j, 4j + 4), read by the kernel in
// place of lr and the steps (which are then not checked); the items must then share one dtype and device.
void adam_step_multi_(const std::vector<AdamTensors>& items, double lr, const AdamHyperparameters& h,
                      const Tensor& constants = Tensor());

}  // namespace atelier::raw
