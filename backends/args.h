// One small argument struct per backend primitive. Kernels see raw pointers, element sizes and element strides,
// never a Tensor: the backend floor knows nothing of the floors above it. Every struct is trivially copyable so
// the CUDA backend can pass it to a kernel by value.
#pragma once

#include <cstdint>

#include "backends/dtype.h"

namespace atelier {

// Tensors have at most this many dimensions.
constexpr int kMaxDims = 8;

// Sizes and strides (in elements) of one strided operand. A broadcast dimension has stride 0.
struct Layout {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= sizes[d];
    return n;
  }
  bool is_contiguous() const {
    if (numel() == 0) return true;  // no element to place: any strides will do
    int64_t expected = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      if (sizes[d] != 1 && strides[d] != expected) return false;
      expected *= sizes[d];
    }
    return true;
  }
};

// dst[i] = src[i] for every index of `layout` (same dtype; both operands strided, sizes shared).
struct CopyArgs {
  DType dtype;
  Layout dst;  // sizes are the shared sizes
  void* dst_data;
  Layout src;  // same sizes as dst, own strides
  const void* src_data;
};

// dst[i] = static_cast<dst_dtype>(src[i]); bool output is (src != 0).
struct CastArgs {
  DType src_dtype;
  DType dst_dtype;
  Layout dst;
  void* dst_data;
  Layout src;
  const void* src_data;
};

// dst[i] = value for every index of the strided `dst`.
struct FillArgs {
  DType dtype;
  Layout dst;
  void* dst_data;
  double value;
};

enum class RandomKind : uint8_t { Uniform, Normal };

// Fills `numel` contiguous elements from Philox4x32-10 (see backends/philox.h): key = seed, counter =
// (offset + block, stream). Uniform: lo + (hi - lo) * u with u = top 24 bits * 2^-24. Normal: mean + std * z,
// Box-Muller. Element i reads block (offset + i / 4) word (i % 4) for uniforms; for normals the pair p = i / 2
// reads block (offset + p / 2), words 2(p % 2) and 2(p % 2) + 1. A call consumes ceil(numel / 4) blocks.
struct RandomArgs {
  DType dtype;
  int64_t numel;
  void* dst_data;
  RandomKind kind;
  uint64_t seed;
  uint64_t stream;
  uint64_t offset;  // in Philox blocks of four 32-bit words
  double a;         // uniform: lo   normal: mean
  double b;         // uniform: hi   normal: std
};

enum class UnaryOp : uint8_t {
  Neg,
  Exp,
  Log,
  Abs,
  Sign,
  Sqrt,
  Tanh,
  Sigmoid,
  Relu,
  Elu,    // x > 0 ? x : alpha * (exp(x) - 1), alpha = p0
  Pow,    // x ^ p0
  Clamp,  // min(max(x, p0), p1)
  // x where p0 x > p1, else log(1 + exp(p0 x)) / p0 (beta = p0 > 0, threshold = p1: PyTorch's softplus), computed as
  // (max(b, 0) + log1p(exp(-|b|))) / p0 with b = p0 x, finite for any x
  Softplus,
  LeakyRelu,  // x > 0 ? x : p0 x (negative_slope = p0; PyTorch's leaky_relu)
  Silu,       // x sigmoid(x) = x / (1 + exp(-x)) (PyTorch's silu)
  Gelu,       // x Phi(x) = x (1 + erf(x / sqrt(2))) / 2, Phi the standard normal CDF (PyTorch's gelu)
  // x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2 (PyTorch's gelu with approximate = "tanh")
  GeluTanh,
};

// The GELUs' constants, one copy for every backend: 1 / sqrt(2) and 1 / sqrt(2 pi) (the normal CDF's and density's),
// and the tanh approximation's k = sqrt(2 / pi) and c.
inline constexpr double kGeluSqrtHalf = 0.70710678118654752, kGeluInvSqrt2Pi = 0.39894228040143268;
inline constexpr double kGeluK = 0.79788456080286536, kGeluC = 0.044715;

// dst (contiguous, src.sizes) = op(src) elementwise; float32/float64.
struct UnaryArgs {
  UnaryOp op;
  DType dtype;
  Layout src;
  const void* src_data;
  void* dst_data;
  double p0 = 0;
  double p1 = 0;
};

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Pow, Maximum, Minimum };

// dst (contiguous, `out` sizes) = op(a, b). a and b carry the output sizes with broadcast strides (0 where an
// operand is broadcast). float32/float64.
// A scalar operand travels by value, on either side (x - 2 and 2 - x): b_data == nullptr (or a_data == nullptr,
// not both) means that operand is `scalar` (converted to dtype as fill converts, backends/convert.h) at every
// index, and its strides are 0 (scalar_layout). No device memory, no copy.
struct BinaryArgs {
  BinaryOp op;
  DType dtype;
  Layout a;
  const void* a_data;
  Layout b;
  const void* b_data;
  void* dst_data;
  double scalar = 0;
};

enum class CompareOp : uint8_t { Eq, Ne, Gt, Ge, Lt, Le };

// dst (contiguous bool, a.sizes) = a op b, with broadcast strides as in BinaryArgs. float32/float64/int64.
// b_data == nullptr: b is `scalar`, as in BinaryArgs (here on the right only; a_data is always a tensor's).
struct CompareArgs {
  CompareOp op;
  DType dtype;
  Layout a;
  const void* a_data;
  Layout b;
  const void* b_data;
  bool* dst_data;
  double scalar = 0;
};

// dst (contiguous, cond.sizes) = cond ? a : b; all three with broadcast strides; cond is bool. a_data or b_data
// null (not both): that operand is `scalar`, strides 0, as in BinaryArgs.
struct WhereArgs {
  DType dtype;
  Layout cond;
  const bool* cond_data;
  Layout a;
  const void* a_data;
  Layout b;
  const void* b_data;
  void* dst_data;
  double scalar = 0;
};

// The gradient of an activation from its saved output y = op(x), so the input need not be kept:
//   dst (contiguous, grad.sizes) = grad * d, with d by op:
//     Elu      y > 0 ? 1 : y + alpha   for x <= 0, d/dx alpha (e^x - 1) = alpha e^x = y + alpha; y > 0 exactly
//                                      when x > 0 for alpha >= 0 (autograd's elu refuses a negative alpha)
//     Relu     y > 0 ? 1 : 0
//     Tanh     1 - y * y
//     Sigmoid  y * (1 - y)
//     Softplus from the forward's input instead (out is x): beta x > threshold ? 1 : sigmoid(beta x), beta = alpha
//              (from y it would take an exp too, and lose precision where y is tiny)
//   and these from the forward's input x too (out is x: y does not give x back where the map is not one-to-one,
//   as silu and gelu are not, nor leaky_relu with a slope of 0 or less), with k = sqrt(2 / pi), c = 0.044715:
//     LeakyRelu x > 0 ? 1 : negative_slope (= alpha)
//     Silu     s (1 + x (1 - s)), s = sigmoid(x)
//     Gelu     Phi(x) + x phi(x) = (1 + erf(x / sqrt(2))) / 2 + x exp(-x^2 / 2) / sqrt(2 pi)
//     GeluTanh (1 + t) / 2 + x (1 - t^2) k (1 + 3 c x^2) / 2, t = tanh(u), u = k (x + c x^3); 1 - t^2 computed as
//              4 e / (1 + e)^2, e = exp(-2 |u|), which keeps its value where t rounds to +-1
// Any other op is refused. grad and y share sizes, each with its own strides. float32/float64; the arithmetic is
// in the dtype, in the order written (Tanh's 1 - y * y may be one fused multiply-add, rounded once).
struct ActivationBackwardArgs {
  UnaryOp op;
  DType dtype;
  Layout grad;
  const void* grad_data;
  Layout out;  // y, the forward's output (its input x for Softplus, LeakyRelu, Silu, Gelu, GeluTanh)
  const void* out_data;
  void* dst_data;
  double alpha = 0;      // Elu's alpha, Softplus's beta, LeakyRelu's negative_slope
  double threshold = 0;  // Softplus's
};

enum class ReduceOp : uint8_t { Sum, Mean, Max };

// The op's name for messages ("sum", "mean", "max"), the same on every backend.
inline const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Mean: return "mean";
    case ReduceOp::Max: return "max";
  }
  return "?";
}

// dst (contiguous, kept.sizes) [k] = reduce over every index r of `reduced` of src[k, r]. `kept` and `reduced`
// split the source's dimensions: their strides are the source strides. float32 sums accumulate in double.
struct ReduceArgs {
  ReduceOp op;
  DType dtype;
  Layout kept;
  Layout reduced;
  const void* src_data;
  void* dst_data;
};

// dst (contiguous int64, kept.sizes) = index of the first maximum along one reduced dimension.
struct ArgmaxArgs {
  DType dtype;
  Layout kept;
  int64_t reduced_size;
  int64_t reduced_stride;
  const void* src_data;
  int64_t* dst_data;
};

// Log-softmax along the middle dimension of contiguous tensors viewed as (outer, dim, inner), dim > 0:
//   dst[o, j, i] = src[o, j, i] - m - log(sum_j' exp(src[o, j', i] - m)),  m = max_j' src[o, j', i]
// (the shift by m keeps exp from overflowing and changes nothing else). A NaN in a row makes the whole row NaN, as
// does +inf (inf - inf); a row of -inf is NaN too. Each row is reduced in one fixed order on each backend; the sum
// of exponentials accumulates in double (on the CPU, sums of 256 in the dtype are added in double).
struct LogSoftmaxArgs {
  DType dtype;
  int64_t outer;
  int64_t dim;
  int64_t inner;
  const void* src_data;
  void* dst_data;
  bool softmax = false;  // write exp(dst): the softmax, in the same pass
};

// Log-softmax's gradient from its output y (same view, same shapes, all contiguous):
//   dst[o, j, i] = grad[o, j, i] - exp(y[o, j, i]) * sum_j' grad[o, j', i]
// (the sum accumulates as log_softmax's does).
// With softmax, y is the softmax's output and dst[o, j, i] = y[o, j, i] * (grad[o, j, i] - sum_j' grad y[o, j', i]).
struct LogSoftmaxBackwardArgs {
  DType dtype;
  int64_t outer;
  int64_t dim;
  int64_t inner;
  const void* grad_data;
  const void* out_data;
  void* dst_data;
  bool softmax = false;
};

// Gather along one dimension of contiguous tensors viewed as (outer, dim, inner):
//   dst[o, j, i] = src[o, index[o, j, i], i]    src: (outer, src_dim, inner)  index, dst: (outer, index_dim, inner)
// Indices are checked: one outside [0, src_dim) throws.
struct GatherArgs {
  DType dtype;
  int64_t outer;
  int64_t src_dim;
  int64_t index_dim;
  int64_t inner;
  const void* src_data;
  const int64_t* index_data;
  void* dst_data;
};

// The adjoint of gather: dst[o, index[o, j, i], i] += src[o, j, i]. dst: (outer, dst_dim, inner), contiguous.
struct ScatterAddArgs {
  DType dtype;
  int64_t outer;
  int64_t dst_dim;
  int64_t index_dim;
  int64_t inner;
  const void* src_data;
  const int64_t* index_data;
  void* dst_data;
};

// Batched row-major GEMM: for each b < batch,
//   C_b (M x N) = alpha * op(A_b) (M x K) * op(B_b) (K x N) + beta * C_b
// op(X) = X or X^T. lda/ldb/ldc are row strides of the stored matrices (A stored M x K, or K x M when
// trans_a); batch strides in elements (0 repeats one matrix across the batch). k = 0 or alpha = 0: C_b = beta * C_b
// without reading A or B (beta = 0 writes zeros without reading C), on every backend.
struct GemmArgs {
  DType dtype;
  int64_t batch;
  int64_t m, n, k;
  const void* a;
  int64_t lda;
  int64_t batch_stride_a;
  bool trans_a;
  const void* b;
  int64_t ldb;
  int64_t batch_stride_b;
  bool trans_b;
  void* c;
  int64_t ldc;
  int64_t batch_stride_c;
  double alpha = 1;
  double beta = 0;
};

// The geometry of one 2-d convolution (NCHW, groups = 1). Every tensor is contiguous:
//   input (n, c_in, h, w), weight (c_out, c_in, kh, kw), output (n, c_out, h_out, w_out) with
//   h_out = (h + 2 pad_h - kh) / stride_h + 1 (and the same for w).
// input_upsample (1 or 2) folds a nearest upsampling of the input into the convolution: the convolution sees an
// (h, w) image, but the stored input (and the input gradient) is the small image (n, c_in, h / u, w / u), and
// pixel (y, x) of the image seen is small pixel (y / u, x / u). So with u = 2,
//   conv2d(input_upsample 2)(small) = conv2d(upsample_nearest2d(small, 2)), and the input gradient is
//   upsample_nearest2d_backward(the input gradient of the plain convolution): each small pixel sums its 2x2 block.
// h and w must be multiples of u. (The BEGAN decoder's upsample + 3x3 conv: the 4x larger image is never made.)
struct Conv2dGeometry {
  int64_t n, c_in, h, w;
  int64_t c_out, kh, kw;
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;
  int64_t h_out, w_out;
  int64_t input_upsample = 1;
};

// What the convolution applies to each output element after the bias, while the element is still in cache:
// nothing, or ELU with alpha (x > 0 ? x : alpha * (exp(x) - 1)), the fused conv + bias + ELU of the BEGAN layers.
// Saves the separate elementwise pass over the whole output and its temporary (the ELU gradient is computed from
// the output, by elu_backward).
enum class ConvActivation : uint8_t { None, Elu };

// output = activation(conv(input, weight) + bias) (bias may be null).
struct Conv2dForwardArgs {
  DType dtype;
  Conv2dGeometry g;
  const void* input;
  const void* weight;
  const void* bias;
  void* output;
  ConvActivation activation = ConvActivation::None;
  double alpha = 1;  // ELU's alpha (>= 0)
};

// grad_input = the adjoint of the convolution applied to grad_output (overwrites grad_input).
struct Conv2dBackwardInputArgs {
  DType dtype;
  Conv2dGeometry g;
  const void* grad_output;
  const void* weight;
  void* grad_input;
};

// grad_weight = sum over the batch of grad_output (x) im2col(input); grad_bias (if not null) = grad_output summed
// over n, h, w. Both overwritten. Deterministic for a fixed thread count (per-thread partials, fixed-order sum).
struct Conv2dBackwardWeightArgs {
  DType dtype;
  Conv2dGeometry g;
  const void* input;
  const void* grad_output;
  void* grad_weight;
  void* grad_bias;
};

// Nearest-neighbour upsampling by integer factors, contiguous NCHW:
//   forward:  dst (n, c, h * scale_h, w * scale_w)[.., y, x] = src (n, c, h, w)[.., y / scale_h, x / scale_w]
//   backward: dst (n, c, h, w) = the sum of each scale_h x scale_w block of src (n, c, h * scale_h, w * scale_w)
// (written as a gather: one output element per thread, no atomics).
struct UpsampleNearestArgs {
  DType dtype;
  int64_t n, c, h, w;  // the small (input of forward) image
  int64_t scale_h, scale_w;
  const void* src;
  void* dst;
};

// 2-d pooling over contiguous NCHW planes (planes = n * c), kh x kw windows at strides (stride_h, stride_w) over
// the input padded by (pad_h, pad_w) on each side, with 2 pad_h <= kh and 2 pad_w <= kw so that every window holds
// a real pixel: h_out = (h + 2 pad_h - kh) / stride_h + 1, w_out likewise.
struct Pool2dGeometry {
  int64_t planes, h, w;
  int64_t kh, kw, stride_h, stride_w, pad_h, pad_w;
  int64_t h_out, w_out;
};

enum class PoolMode : uint8_t { Max, Average };

// output (planes, h_out, w_out) from input (planes, h, w):
//   Max:     the largest real pixel of each window, the first in row-major window order among equals (the first NaN
//            wins over everything), and indices (int64, output's shape) its y * w + x in its plane;
//   Average: the sum of the window's real pixels in row-major order, divided by kh * kw (the padding counts as
//            zeros: PyTorch's count_include_pad); indices unused (may be null).
struct Pool2dArgs {
  PoolMode mode;
  DType dtype;
  Pool2dGeometry g;
  const void* input;
  void* output;
  int64_t* indices;
};

// grad_input (planes, h, w): each pixel the sum, over the windows that hold it in row-major window order, of
//   Max:     grad_output where indices names this pixel;  Average: grad_output / (kh * kw).
// A gather (each pixel visits its windows; no atomics), so the result does not depend on the thread count.
struct Pool2dBackwardArgs {
  PoolMode mode;
  DType dtype;
  Pool2dGeometry g;
  const void* grad_output;
  const int64_t* indices;
  void* grad_input;
};

// Normalisation by groups: x contiguous, viewed as (outer, groups, inner); group c is the outer * inner elements
// x[o][c][i] (batch norm: (N, C, H W), a group per channel; layer norm: (1, rows, row length), a group per row;
// group norm: (1, N G, C / G H W), a group per sample's group of channels). weight and bias (each may be null: 1
// and 0) are indexed by the group (PerGroup), by i (PerInner), or by channel (PerChannel, group norm's): a run of
// inner elements is k = inner / channels.size channels of channels.size elements, and element i of group c has
// channel (c % (channels.count / k)) k + i / channels.size (norm_math.h, NormAffineMap).
enum class NormAffine : uint8_t { PerGroup, PerInner, PerChannel };
struct NormChannels {
  int64_t count = 0, size = 0;  // PerChannel only: the affine's length, and a channel's elements in a run
};

// Per group: mean = sum x / n, var = sum (x - mean)^2 / n (biased), rstd = 1 / sqrt(var + eps), with
// n = outer * inner; then y = (x - mean) rstd weight + bias. mean, var (may be null) and rstd (groups) are written
// in dtype. n >= 1. The statistics are exact to the dtype's rounding (the CPU computes in dtype, its sums folded
// into double; the GPU in double: backends/norm_math.h).
struct NormArgs {
  DType dtype;
  int64_t outer, groups, inner;
  NormAffine affine;
  double eps;
  const void* x;
  const void* weight;
  const void* bias;
  void* y;
  void* mean;
  void* var;
  void* rstd;
  NormChannels channels{};
};

// The gradients of NormArgs' y from grad_y, with xhat = (x - mean) rstd and w the weight (1 when null), per group:
//   grad_x = rstd (g w - sum(g w) / n - xhat sum(g w xhat) / n)  (the batch's statistics' own gradient included);
//   grad_weight = sum of g xhat and grad_bias = sum of g, over each group (PerGroup), over o and c (PerInner), or
//   over the elements of each channel (PerChannel).
// Each output may be null (not computed).
struct NormBackwardArgs {
  DType dtype;
  int64_t outer, groups, inner;
  NormAffine affine;
  const void* grad_y;
  const void* x;
  const void* mean;
  const void* rstd;
  const void* weight;
  void* grad_x;
  void* grad_weight;
  void* grad_bias;
  NormChannels channels{};
};

// The fused optimiser updates, one contiguous parameter tensor (numel elements) at a time, in place, as PyTorch
// defines them (torch.optim.SGD, Adam, AdamW, single-tensor path). `step` counts from 1. Each rule has its own
// hyperparameters (besides the learning rate, which every rule has) and its own args.

// SGD: g = grad + weight_decay p; buf = momentum buf + (1 - dampening) g (buf = g at step 1);
//      g = nesterov ? g + momentum buf : buf (momentum 0: plain g); p -= lr g
struct SgdHyperparameters {
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

struct SgdStepArgs {
  DType dtype;
  int64_t numel;
  void* param;
  const void* grad;
  void* momentum_buffer;  // (numel); null when momentum is 0
  int64_t step;
  double lr;
  SgdHyperparameters h;
};

// Adam:  g = grad + weight_decay p; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
//        p -= lr (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
// AdamW (decoupled_weight_decay): p *= 1 - lr weight_decay, then Adam without the L2 term.
struct AdamHyperparameters {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool decoupled_weight_decay = false;
};

struct AdamStepArgs {
  DType dtype;
  int64_t numel;
  void* param;
  const void* grad;
  void* exp_avg;     // (numel) m, the first moment
  void* exp_avg_sq;  // (numel) v, the second moment
  int64_t step;
  double lr;
  AdamHyperparameters h;
};

struct AdamConstants;  // backends/adam_math.h: one tensor's per-step constants (lr, bias corrections)

// adam_step over `count` tensors in one call (on CUDA one kernel launch per 32 tensors): tensor j is params[j],
// grads[j], exp_avgs[j] and exp_avg_sqs[j], numels[j] contiguous elements each, at step steps[j] (from 1); one
// dtype, lr and set of hyperparameters for all. The arrays are host memory of `count` entries each (a recorded
// call copies them: recorded_call in backends/backend.h). Each tensor gets exactly adam_step's result. What an
// optimiser over many small tensors (BEGAN's ~50) launches per step.
// A captured step (docs/gpu.md, "--cuda-graph") replays its launches with the arguments they were captured with,
// so the values that change every step cannot travel in them: when `constants` is not null it is device memory
// holding `count` AdamConstants, tensor j's at [j], computed on the host by adam_constants() and written there
// before each replay; lr and steps are then not read.
struct AdamMultiStepArgs {
  DType dtype;
  int64_t count;
  void* const* params;
  const void* const* grads;
  void* const* exp_avgs;
  void* const* exp_avg_sqs;
  const int64_t* numels;
  const int64_t* steps;
  double lr;
  AdamHyperparameters h;
  const AdamConstants* constants = nullptr;
};

}  // namespace atelier
