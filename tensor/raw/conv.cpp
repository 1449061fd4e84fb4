// Convolution, nearest upsampling and pooling: geometry checks, then the backend primitives.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>

#include "backends/pool_math.h"
#include "tensor/creation.h"
#include "tensor/raw/common.h"

namespace atelier::raw {

using namespace detail;

namespace {

// The geometry of x (N, C_in, H, W), upsampled by `upsample` (1 or 2; Conv2dGeometry::input_upsample), conv
// w (C_out, C_in, kh, kw), with every check that names the op and shapes.
Conv2dGeometry conv_geometry(const Shape& small_x, const Shape& w, HW stride, HW padding, const char* op,
                             int64_t upsample) {
  ATELIER_CHECK(upsample == 1 || upsample == 2,
                op << ": the input upsampling factor must be 1 or 2, got " << upsample << " (input " << small_x << ")");
  ATELIER_CHECK(small_x.size() == 4, op << ": input must be (N, C, H, W), got " << small_x);
  Shape x = small_x;  // the image the convolution sees
  ATELIER_CHECK(mul_fits(x[2], upsample, x[2]) && mul_fits(x[3], upsample, x[3]),
                op << ": input " << small_x << " is too large to upsample by " << upsample);
  auto input = [&] {  // how the messages below name the input (only made when a check fails)
    std::ostringstream text;
    text << small_x;
    if (upsample != 1) text << " upsampled to " << x;
    return text.str();
  };
  ATELIER_CHECK(w.size() == 4, op << ": weight must be (C_out, C_in, kh, kw), got " << w);
  ATELIER_CHECK(x[1] == w[1],
                op << ": input " << input() << " has " << x[1] << " channels but weight " << w << " expects " << w[1]);
  ATELIER_CHECK(stride.h >= 1 && stride.w >= 1,
                op << ": stride must be positive, got " << stride << " (input " << input() << ", weight " << w << ")");
  ATELIER_CHECK(padding.h >= 0 && padding.w >= 0, op << ": padding must be non-negative, got " << padding << " (input "
                                                     << input() << ", weight " << w << ")");
  ATELIER_CHECK(w[0] > 0 && w[1] > 0 && w[2] > 0 && w[3] > 0, op << ": weight " << w << " has an empty dimension");
  ATELIER_CHECK(x[2] >= 0 && x[3] >= 0 && padding.h <= (INT64_MAX - x[2]) / 2 && padding.w <= (INT64_MAX - x[3]) / 2,
                op << ": padding " << padding << " is too large for input " << input());
  const int64_t ph = x[2] + 2 * padding.h, pw = x[3] + 2 * padding.w;
  ATELIER_CHECK(w[2] <= ph && w[3] <= pw, op << ": kernel " << w[2] << "x" << w[3]
                                             << " is larger than the padded input " << ph << "x" << pw << " (input "
                                             << input() << ", weight " << w << ", padding " << padding << ")");
  Conv2dGeometry g{};
  g.n = x[0];
  g.c_in = x[1];
  g.h = x[2];
  g.w = x[3];
  g.c_out = w[0];
  g.kh = w[2];
  g.kw = w[3];
  g.stride_h = stride.h;
  g.stride_w = stride.w;
  g.pad_h = padding.h;
  g.pad_w = padding.w;
  g.h_out = (ph - g.kh) / stride.h + 1;
  g.w_out = (pw - g.kw) / stride.w + 1;
  g.input_upsample = upsample;
  return g;
}

void check_conv_operands(const Tensor& a, const Tensor& b, const char* op) {
  check_same_device(a, b, op);
  check_same_dtype(a, b, op);
  check_floating(a, op);
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, HW stride, HW padding,
              ConvActivation activation, double alpha, int64_t input_upsample) {
  Conv2dGeometry g = conv_geometry(x.shape(), weight.shape(), stride, padding, "conv2d", input_upsample);
  ATELIER_CHECK(std::isfinite(alpha) && alpha >= 0,
                "conv2d: ELU alpha " << alpha << " must be finite and >= 0 (its gradient is computed from the output)");
  check_conv_operands(x, weight, "conv2d");
  if (bias.defined()) {
    ATELIER_CHECK(bias.dim() == 1 && bias.size(0) == g.c_out, "conv2d: bias of shape "
                                                                  << bias.shape() << " for weight " << weight.shape()
                                                                  << " (expected [" << g.c_out << "])");
    check_conv_operands(x, bias, "conv2d");
  }
  Tensor xc = contiguous(x), wc = contiguous(weight), bc = bias.defined() ? contiguous(bias) : Tensor();
  Tensor out = raw::empty({g.n, g.c_out, g.h_out, g.w_out}, x.dtype(), x.device());
  launch<PrimitiveOp::conv2d>(
      x.device(), "conv2d", out.numel(),
      Conv2dForwardArgs{x.dtype(), g, xc.raw_data(), wc.raw_data(), bc.defined() ? bc.raw_data() : nullptr,
                        out.raw_data(), activation, alpha});
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& input_shape, HW stride,
                             HW padding, int64_t input_upsample) {
  const char* op = "conv2d_backward_input";
  Conv2dGeometry g = conv_geometry(input_shape, weight.shape(), stride, padding, op, input_upsample);
  const Shape expected{g.n, g.c_out, g.h_out, g.w_out};
  ATELIER_CHECK(grad_out.shape() == expected, op << ": gradient of shape " << grad_out.shape() << " for input "
                                                 << input_shape << " and weight " << weight.shape() << " (expected "
                                                 << expected << ")");
  check_conv_operands(grad_out, weight, op);
  Tensor go = contiguous(grad_out), wc = contiguous(weight);
  Tensor grad_in = raw::empty(input_shape, grad_out.dtype(), grad_out.device());
  launch<PrimitiveOp::conv2d_backward_input>(
      grad_out.device(), op, grad_in.numel(),
      Conv2dBackwardInputArgs{grad_out.dtype(), g, go.raw_data(), wc.raw_data(), grad_in.raw_data()});
  return grad_in;
}

Conv2dWeightGrads conv2d_backward_weight(const Tensor& x, const Tensor& grad_out, const Shape& weight_shape,
                                         bool with_bias, HW stride, HW padding, int64_t input_upsample) {
  const char* op = "conv2d_backward_weight";
  Conv2dGeometry g = conv_geometry(x.shape(), weight_shape, stride, padding, op, input_upsample);
  const Shape expected{g.n, g.c_out, g.h_out, g.w_out};
  ATELIER_CHECK(grad_out.shape() == expected, op << ": gradient of shape " << grad_out.shape() << " for input "
                                                 << x.shape() << " and weight " << weight_shape << " (expected "
                                                 << expected << ")");
  check_conv_operands(x, grad_out, op);
  Tensor xc = contiguous(x), go = contiguous(grad_out);
  Conv2dWeightGrads grads;
  grads.weight = raw::empty(weight_shape, x.dtype(), x.device());
  if (with_bias) grads.bias = raw::empty({g.c_out}, x.dtype(), x.device());
  // Runs even on an empty batch: the weight gradient (never empty) is then zeros.
  launch<PrimitiveOp::conv2d_backward_weight>(
      x.device(), op, grads.weight.numel(),
      Conv2dBackwardWeightArgs{x.dtype(), g, xc.raw_data(), go.raw_data(), grads.weight.raw_data(),
                               with_bias ? grads.bias.raw_data() : nullptr});
  return grads;
}

namespace {

UpsampleNearestArgs upsample_args(const Shape& small, int64_t scale, DType dtype) {
  UpsampleNearestArgs a{};
  a.dtype = dtype;
  a.n = small[0];
  a.c = small[1];
  a.h = small[2];
  a.w = small[3];
  a.scale_h = a.scale_w = scale;
  return a;
}

}  // namespace

Tensor upsample_nearest2d(const Tensor& x, int64_t scale) {
  ATELIER_CHECK(x.dim() == 4, "upsample_nearest2d: input must be (N, C, H, W), got " << x.shape());
  ATELIER_CHECK(scale >= 1, "upsample_nearest2d: scale must be >= 1, got " << scale << " (input " << x.shape() << ")");
  check_floating(x, "upsample_nearest2d");
  Tensor xc = contiguous(x);
  int64_t h = 0, w = 0;
  ATELIER_CHECK(mul_fits(x.size(2), scale, h) && mul_fits(x.size(3), scale, w),
                "upsample_nearest2d: scale " << scale << " is too large for input " << x.shape());
  Tensor out = raw::empty({x.size(0), x.size(1), h, w}, x.dtype(), x.device());
  UpsampleNearestArgs a = upsample_args(x.shape(), scale, x.dtype());
  a.src = xc.raw_data();
  a.dst = out.raw_data();
  launch<PrimitiveOp::upsample_nearest2d>(x.device(), "upsample_nearest2d", out.numel(), a);
  return out;
}

Tensor upsample_nearest2d_backward(const Tensor& grad_out, int64_t scale) {
  const char* op = "upsample_nearest2d_backward";
  ATELIER_CHECK(grad_out.dim() == 4, op << ": gradient must be (N, C, H, W), got " << grad_out.shape());
  ATELIER_CHECK(scale >= 1, op << ": scale must be >= 1, got " << scale);
  ATELIER_CHECK(grad_out.size(2) % scale == 0 && grad_out.size(3) % scale == 0,
                op << ": gradient " << grad_out.shape() << " is not a multiple of the scale " << scale);
  check_floating(grad_out, op);
  Tensor go = contiguous(grad_out);
  Tensor out = raw::empty({go.size(0), go.size(1), go.size(2) / scale, go.size(3) / scale}, go.dtype(), go.device());
  UpsampleNearestArgs a = upsample_args(out.shape(), scale, go.dtype());
  a.src = go.raw_data();
  a.dst = out.raw_data();
  launch<PrimitiveOp::upsample_nearest2d_backward>(go.device(), op, out.numel(), a);
  return out;
}

namespace {

const char* pool_name(PoolMode mode) { return mode == PoolMode::Max ? "max_pool2d" : "avg_pool2d"; }

// The geometry of pooling x_shape (N, C, H, W), checked with messages in the op's words.
Pool2dGeometry pool_geometry(const Shape& x_shape, PoolMode mode, HW kernel, HW stride, HW padding) {
  const char* op = pool_name(mode);
  ATELIER_CHECK(x_shape.size() == 4, op << ": input must be (N, C, H, W), got " << x_shape);
  ATELIER_CHECK(kernel.h >= 1 && kernel.w >= 1 && stride.h >= 1 && stride.w >= 1,
                op << ": kernel and stride must be at least 1, got kernel " << kernel << ", stride " << stride);
  ATELIER_CHECK(padding.h >= 0 && padding.w >= 0 && 2 * padding.h <= kernel.h && 2 * padding.w <= kernel.w,
                op << ": padding must be in [0, kernel / 2], got padding " << padding << " for kernel " << kernel);
  const int64_t h = x_shape[2], w = x_shape[3];
  ATELIER_CHECK(h > 0 && w > 0 && h + 2 * padding.h >= kernel.h && w + 2 * padding.w >= kernel.w,
                op << ": kernel " << kernel << " is larger than the input " << x_shape << " padded by " << padding);
  return make_pool_geometry(x_shape[0] * x_shape[1], h, w, kernel.h, kernel.w, stride.h, stride.w, padding.h,
                            padding.w);
}

}  // namespace

Pool2dResult pool2d(const Tensor& x, PoolMode mode, HW kernel, HW stride, HW padding) {
  const Pool2dGeometry g = pool_geometry(x.shape(), mode, kernel, stride, padding);
  check_floating(x, pool_name(mode));
  const Tensor xc = contiguous(x);
  const Shape out_shape{x.size(0), x.size(1), g.h_out, g.w_out};
  Pool2dResult r{raw::empty(out_shape, x.dtype(), x.device()), Tensor()};
  if (mode == PoolMode::Max) r.indices = raw::empty(out_shape, DType::Int64, x.device());
  const Pool2dArgs a{
      mode,          x.dtype(),           g,
      xc.raw_data(), r.output.raw_data(), r.indices.defined() ? static_cast<int64_t*>(r.indices.raw_data()) : nullptr};
  launch<PrimitiveOp::pool2d>(x.device(), pool_name(mode), r.output.numel(), a);
  return r;
}

Tensor pool2d_backward(const Tensor& grad_out, const Tensor& indices, PoolMode mode, const Shape& input_shape,
                       HW kernel, HW stride, HW padding) {
  const Pool2dGeometry g = pool_geometry(input_shape, mode, kernel, stride, padding);
  const std::string op = std::string(pool_name(mode)) + "_backward";
  const Shape out_shape{input_shape[0], input_shape[1], g.h_out, g.w_out};
  ATELIER_CHECK(grad_out.shape() == out_shape,
                op << ": gradient " << grad_out.shape() << " is not the output's shape " << out_shape);
  check_floating(grad_out, op.c_str());
  const Tensor go = contiguous(grad_out);
  Tensor idx;
  if (mode == PoolMode::Max) {
    ATELIER_CHECK(
        indices.defined() && indices.dtype() == DType::Int64 && indices.shape() == out_shape,
        op << ": indices must be int64 " << out_shape << ", got " << (indices.defined() ? indices.shape() : Shape{}));
    check_same_device(go, indices, op.c_str());
    idx = contiguous(indices);
  }
  Tensor out = raw::empty(input_shape, go.dtype(), go.device());
  const Pool2dBackwardArgs a{mode,
                             go.dtype(),
                             g,
                             go.raw_data(),
                             idx.defined() ? static_cast<const int64_t*>(idx.raw_data()) : nullptr,
                             out.raw_data()};
  launch<PrimitiveOp::pool2d_backward>(go.device(), op.c_str(), out.numel(), a);
  return out;
}

}  // namespace atelier::raw
