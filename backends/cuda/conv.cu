// 2-d convolution on the GPU (NCHW, groups = 1): im2col and col2im kernels written as gathers, the products on
// cuBLAS (CudaBackend::gemm, backends/cuda/gemm.cu). CPU twin: backends/cpu/conv.cpp.
//
// For one image, the im2col matrix col has one row per (c, i, j) of the kernel and one column per output pixel:
//   col (C_in*kh*kw, H_out*W_out) [(c, i, j), (oy, ox)] = input[c, oy*stride_h - pad_h + i, ox*stride_w - pad_w + j]
// (zero outside the image), so with CKK = C_in*kh*kw and P = H_out*W_out:
//   forward          out[n] (C_out, P) = W (C_out, CKK) * col[n] (CKK, P) + bias   one strided-batched GEMM
//   backward-input   col[n] (CKK, P) = W^T * grad_out[n] (C_out, P), then col2im: grad_in[n, c, y, x] = the sum
//                    of the col entries that im2col read from (c, y, x), gathered in (i, j) order by the thread
//                    of that input element (no atomics)
//   backward-weight  gW (C_out, CKK) = sum over n and P of grad_out[n] (C_out, P) * col[n]^T (P, CKK): the
//                    chunk's col matrices side by side (CKK, images * P) and grad_out rearranged to match
//                    (C_out, images * P), one GEMM per chunk of images with K = images * P (beta = 1 after the
//                    first chunk); grad_bias = grad_out summed over (n, P) by the deterministic reduce (reduce.cu)
// A 1x1, stride-1, unpadded convolution needs no col: the image (C_in, H*W) is its own im2col matrix. A 3x3 stride-1
// convolution that the convolution algorithm setting gives to Winograd (conv_choice, conv.h) runs in winograd.cu, and
// one it gives to the direct kernels (3x3, stride 1, padding 1, few output channels) in direct_conv.cu.
//
// Input upsampling (Conv2dGeometry::input_upsample u = 2, backends/args.h): the convolution sees an (H, W) image
// but the stored input is (H/u, W/u). im2col reads pixel (iy / u, ix / u) of the small image, so the upsampled
// image is never made; col2im runs one thread per small input element, which sums the u x u pixels of its block,
// each one's taps gathered as above, in the order upsample_nearest2d_backward sums a block: the input gradient is
// bit for bit that of upsample_nearest2d followed by the plain convolution.
//
// Images are processed in chunks whose col fits conv_workspace_limit() bytes (backends/conv_algo.h; 256 MiB by
// default) of the context's workspace, at least one image per chunk.
// Everything is deterministic: fixed-order gathers and cuBLAS, whose results do not vary between runs.
#include "backends/cuda/conv.h"

#include <algorithm>
#include <cstdint>

#include "backends/conv_algo.h"
#include "backends/cuda/context.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/device_math.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/fast_divide.h"
#include "backends/host_device.h"
#include "backends/image_checks.h"
#include "backends/precision.h"

namespace atelier {
namespace {

// 1x1 kernel, stride 1, no padding, no input upsampling: col is the image itself.
bool is_pointwise(const Conv2dGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0 &&
         g.input_upsample == 1;
}

// The pixels of one stored input plane: (h / u) * (w / u).
int64_t stored_pixels(const Conv2dGeometry& g) { return g.h / g.input_upsample * (g.w / g.input_upsample); }

// How im2col lays out the col matrices of several images: one after the other, (images, CKK, P), for the
// batched GEMMs of the forward and input-gradient passes; or side by side, (CKK, images * P), so that one GEMM
// sums the weight gradient over images and pixels at once (CPU twin: im2col_images, backends/cpu/conv.cpp).
enum class ColLayout { PerImage, SideBySide };

// A GPU has no integer divider: dividing by a value known only at run time is a routine of about 25 instructions
// (read in the SASS, sm_90: a check that both operands fit 32 bits, then a reciprocal and two corrections; the
// 64-bit path is a call). So these kernels divide a few times per thread and then walk the kernel's taps. The
// first versions ran one thread per col element and divided about 10 times in each: some 250 instructions per
// 4-byte element. At the H200's rates (about 33 T instructions and 4.8 TB/s per second) the D step's largest
// im2col (32 images, 64 channels, 64x64 with a 3x3 kernel: 302 MB of col) costs ~0.07 ms of memory traffic but
// would have spent ~0.55 ms issuing instructions. Now a thread makes a pixel's 9 entries from 3 index splits, each
// a Divisor's multiply-high and shift (backends/fast_divide.h) rather than a division.

// q = t / s when t >= 0, s divides t and q < limit; else -1. s is a convolution's stride: 1 and 2 (every BEGAN
// layer) take no division.
ATELIER_HOST_DEVICE inline int64_t exact_quotient(int64_t t, int64_t s, int64_t limit) {
  if (t < 0) return -1;
  int64_t q = t;
  if (s == 2) {
    if ((t & 1) != 0) return -1;
    q = t >> 1;
  } else if (s != 1) {
    if (t % s != 0) return -1;
    q = t / s;
  }
  return q < limit ? q : -1;
}

// CPU twin: im2col (backends/cpu/conv.cpp). Thread e is output pixel p of channel c of one of `images`
// consecutive images of `input` (e = (image * C_in + c) * P + p): it writes that pixel's kh*kw col entries, rows
// (c, i, j) in the layout above, each row P (or images * P, side by side) elements after the last. Consecutive
// threads write consecutive elements of every row. With g.input_upsample 2, pixel (iy, ix) of the image the
// convolution sees is read at (iy / 2, ix / 2) of the stored one.
template <typename T>
struct Im2col {
  const T* input;
  T* col;
  Conv2dGeometry g;
  int64_t images;
  ColLayout layout;
  Divisor by_pixels, by_channels, by_width;  // h_out * w_out, c_in, w_out (backends/fast_divide.h)
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    const int64_t kk = g.kh * g.kw, pixels = g.h_out * g.w_out;
    int64_t p, c, ox;
    const int64_t plane = by_pixels.divide(e, p);  // plane = image * C_in + c
    const int64_t image = by_channels.divide(plane, c);
    const int64_t oy = by_width.divide(p, ox);
    const bool upsampled = g.input_upsample == 2;  // 1 or 2 (check_conv_geometry)
    const int64_t ws = upsampled ? g.w / 2 : g.w;
    const T* src = input + plane * (upsampled ? g.h / 2 : g.h) * ws;
    // Row c * kk of this image: PerImage (images, CKK, P), SideBySide (CKK, images * P).
    const bool side_by_side = layout == ColLayout::SideBySide;
    const int64_t row_step = side_by_side ? images * pixels : pixels;
    T* dst = col + (side_by_side ? c * kk * images * pixels + image * pixels : (image * g.c_in + c) * kk * pixels) + p;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t iy = oy * g.stride_h - g.pad_h + i;
      const bool row_inside = iy >= 0 && iy < g.h;
      const T* src_row = src + (upsampled ? iy / 2 : iy) * ws;
      for (int64_t j = 0; j < g.kw; ++j, dst += row_step) {
        const int64_t ix = ox * g.stride_w - g.pad_w + j;
        *dst = row_inside && ix >= 0 && ix < g.w ? src_row[upsampled ? ix / 2 : ix] : T(0);
      }
    }
  }
};

// CPU twin: col2im_add (backends/cpu/conv.cpp), as a gather. The thread of grad_in[image, c, y, x] (element e)
// sums, in (i, j) order, the col entries (c, i, j), (oy, ox) with oy*stride_h - pad_h + i == y and the same for x.
// With input upsampling u = 2, element e is a small pixel (ys, xs): the sum over its block's pixels (ys*2 + a,
// xs*2 + b), rows then columns from 0 (upsample_nearest2d_backward's order), of each pixel's sum above.
template <typename T>
struct Col2im {
  const T* col;
  T* image_out;
  Conv2dGeometry g;
  Divisor by_pixels, by_width;  // of the stored input: (h / u) * (w / u), w / u
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    const int64_t u = g.input_upsample;
    int64_t pixel, x;
    const int64_t plane = by_pixels.divide(e, pixel);  // plane = image * C_in + c
    const int64_t y = by_width.divide(pixel, x);
    const T* rows = col + plane * g.kh * g.kw * g.h_out * g.w_out;  // channel c's kh*kw rows of its image's col
    if (u == 1) {
      image_out[e] = pixel_sum(rows, y, x);
      return;
    }
    T sum = 0;
    for (int64_t a = 0; a < u; ++a) {
      for (int64_t b = 0; b < u; ++b) sum += pixel_sum(rows, y * u + a, x * u + b);
    }
    image_out[e] = sum;
  }
  // The col entries that im2col read from pixel (y, x) of the image the convolution sees, from channel c's
  // kh*kw rows of col.
  ATELIER_HOST_DEVICE T pixel_sum(const T* rows, int64_t y, int64_t x) const {
    const int64_t pixels = g.h_out * g.w_out;
    T sum = 0;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t oy = exact_quotient(y + g.pad_h - i, g.stride_h, g.h_out);
      if (oy < 0) continue;
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t ox = exact_quotient(x + g.pad_w - j, g.stride_w, g.w_out);
        if (ox >= 0) sum += rows[(i * g.kw + j) * pixels + oy * g.w_out + ox];
      }
    }
    return sum;
  }
};

// The forward pass's epilogue, one pass over the output: out (n, C_out, P) element e += bias[o] (if bias), then
// ELU (if elu). CPU twin: ConvEpilogue (backends/cpu/conv_epilogue.h).
template <typename T>
struct BiasActivation {
  T* out;
  const T* bias;
  Divisor by_pixels, by_channels;  // h_out * w_out, c_out
  bool elu;
  T alpha;
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    T v = out[e];
    if (bias != nullptr) {
      int64_t o;
      by_channels.divide(by_pixels.divide(e), o);
      v += bias[o];
    }
    out[e] = elu ? cuda::dev_elu(v, alpha) : v;
  }
};

// Images per chunk so that a chunk's col (CKK rows of P per image), with `extra_rows` more rows of P per image
// (the weight gradient's rearranged output gradients), stays within conv_workspace_limit() (one image may need
// more: it then gets that much).
template <typename T>
int64_t chunk_images(const Conv2dGeometry& g, int64_t extra_rows = 0) {
  const int64_t per_image = (g.c_in * g.kh * g.kw + extra_rows) * g.h_out * g.w_out * static_cast<int64_t>(sizeof(T));
  return cuda::images_per_chunk(0, per_image, g.n);
}

template <typename T>
void im2col(const T* input, const Conv2dGeometry& g, int64_t images, T* col, ColLayout layout = ColLayout::PerImage) {
  const int64_t pixels = g.h_out * g.w_out, n = images * g.c_in * pixels;
  cuda::launch_linear(n, Im2col<T>{input, col, g, images, layout, Divisor(pixels), Divisor(g.c_in), Divisor(g.w_out)});
}

// The output gradients of `images` images, (images, C_out, P), side by side: (C_out, images * P), the columns in
// the order of a side-by-side col's, for the weight gradient's one GEMM.
template <typename T>
struct SideBySide {
  const T* src;
  T* dst;
  int64_t channels, pixels;
  Divisor by_pixels, by_images;  // pixels, images
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    int64_t p, image;
    const int64_t c = by_images.divide(by_pixels.divide(e, p), image);
    dst[e] = src[(image * channels + c) * pixels + p];
  }
};

}  // namespace

namespace cuda {

int64_t images_per_chunk(int64_t fixed_bytes, int64_t per_image_bytes, int64_t n) {
  const auto limit = static_cast<int64_t>(std::min<size_t>(conv_workspace_limit(), size_t{1} << 62));
  return std::clamp<int64_t>((limit - fixed_bytes) / std::max<int64_t>(per_image_bytes, 1), 1, std::max<int64_t>(n, 1));
}

ConvAlgo conv_choice(const Conv2dGeometry& g, DType dtype) {
  const ConvAlgo setting = conv_algo();
  ConvAlgo chosen = choose_conv_algo(g, setting);
  // The thin layers (1 to 3 output channels) the CPU gives the direct kernels: on the GPU Winograd is faster
  // from 16 input channels (an H200, fp32, fwd + both gradients, batch 16: 64 -> 3 at 64x64 F(4x4) 0.167 ms,
  // direct 0.292; 32 -> 1 at 32x32 F(4x4) 0.078, direct 0.084; docs/benchmarks.md, "First runs on an H200").
  if (setting == ConvAlgo::Auto && chosen == ConvAlgo::Direct && g.c_in >= 16) chosen = winograd_tile_rule(g);
  // Under TF32 and BF16 the point products round their operands to 10 (7) mantissa bits, and F(4x4)'s transforms
  // (factors up to 8 and 1/24) amplify that: on an H200 a BEGAN step's worst gradient was 8.6e-3 off the CPU's
  // FP32 by F(4x4) against 1.1e-3 by im2col, and 1.1e-3 by F(2x2), whose transforms hold 0 and +-1 only. So auto
  // takes F(2x2) there (tests/cuda/test_cuda_precision.cpp, "BEGAN step, tf32, auto").
  if (chosen == ConvAlgo::Wino4 && setting == ConvAlgo::Auto && dtype == DType::Float32 &&
      precision() != Precision::FP32) {
    return ConvAlgo::Wino2;
  }
  return chosen;
}

GemmArgs gemm_args(DType dtype, int64_t batch, int64_t m, int64_t n, int64_t k, const void* a, bool trans_a,
                   int64_t stride_a, const void* b, bool trans_b, int64_t stride_b, void* c, int64_t stride_c,
                   double beta) {
  GemmArgs args{};
  args.dtype = dtype;
  args.batch = batch;
  args.m = m;
  args.n = n;
  args.k = k;
  args.a = a;
  args.lda = trans_a ? m : k;
  args.batch_stride_a = stride_a;
  args.trans_a = trans_a;
  args.b = b;
  args.ldb = trans_b ? k : n;
  args.batch_stride_b = stride_b;
  args.trans_b = trans_b;
  args.c = c;
  args.ldc = n;
  args.batch_stride_c = stride_c;
  args.alpha = 1;
  args.beta = beta;
  return args;
}

}  // namespace cuda

void CudaBackend::conv2d(const Conv2dForwardArgs& args) {
  const Conv2dGeometry& g = args.g;
  check_conv_geometry("cuda conv2d", g);
  ATELIER_CHECK(args.activation == ConvActivation::None || args.activation == ConvActivation::Elu,
                "cuda conv2d: unknown activation " << static_cast<int>(args.activation));
  dispatch(cuda::conv2d_types{}, args.dtype, "cuda conv2d", [&]<class T> {
    const int64_t ckk = g.c_in * g.kh * g.kw, pixels = g.h_out * g.w_out, pixels_in = stored_pixels(g);
    const T* input = static_cast<const T*>(args.input);
    T* output = static_cast<T*>(args.output);
    const bool elu = args.activation == ConvActivation::Elu;
    const ConvAlgo algo = cuda::conv_choice(g, args.dtype);
    if (algo == ConvAlgo::Direct) {
      cuda::direct_forward<T>(g, input, static_cast<const T*>(args.weight), static_cast<const T*>(args.bias), elu,
                              static_cast<T>(args.alpha), output);
      return;
    }
    if (const int m = winograd_tile_size(algo); m != 0) {
      cuda::winograd_forward<T>(*this, m, g, input, static_cast<const T*>(args.weight),
                                static_cast<const T*>(args.bias), elu, static_cast<T>(args.alpha), output);
      return;
    }
    if (is_pointwise(g)) {
      // out[n] (C_out, P) = W (C_out, C_in) * input[n] (C_in, P), all images in one batched call.
      gemm(cuda::gemm_args(args.dtype, g.n, g.c_out, pixels, ckk, args.weight, false, 0, input, false,
                           g.c_in * pixels_in, output, g.c_out * pixels, 0.0));
    } else {
      const int64_t chunk = chunk_images<T>(g);
      for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
        const int64_t images = std::min(chunk, g.n - n0);
        T* col = static_cast<T*>(cuda::context().workspace(static_cast<size_t>(images * ckk * pixels) * sizeof(T)));
        im2col(input + n0 * g.c_in * pixels_in, g, images, col);
        gemm(cuda::gemm_args(args.dtype, images, g.c_out, pixels, ckk, args.weight, false, 0, col, false, ckk * pixels,
                             output + n0 * g.c_out * pixels, g.c_out * pixels, 0.0));
      }
    }
    if (args.bias != nullptr || elu) {
      const int64_t n = g.n * g.c_out * pixels;
      cuda::launch_linear(n, BiasActivation<T>{output, static_cast<const T*>(args.bias), Divisor(pixels),
                                               Divisor(g.c_out), elu, static_cast<T>(args.alpha)});
    }
  });
}

void CudaBackend::conv2d_backward_input(const Conv2dBackwardInputArgs& args) {
  const Conv2dGeometry& g = args.g;
  check_conv_geometry("cuda conv2d_backward_input", g);
  dispatch(cuda::conv2d_backward_input_types{}, args.dtype, "cuda conv2d_backward_input", [&]<class T> {
    const int64_t ckk = g.c_in * g.kh * g.kw, pixels = g.h_out * g.w_out, pixels_in = stored_pixels(g);
    const T* grad_out = static_cast<const T*>(args.grad_output);
    T* grad_in = static_cast<T*>(args.grad_input);
    if (pixels_in == 0) return;  // an empty input (h or w 0, padded): an empty gradient
    const ConvAlgo algo = cuda::conv_choice(g, args.dtype);
    if (algo == ConvAlgo::Direct) {
      return cuda::direct_backward_input<T>(g, grad_out, static_cast<const T*>(args.weight), grad_in);
    }
    if (const int m = winograd_tile_size(algo); m != 0) {
      return cuda::winograd_backward_input<T>(*this, m, g, grad_out, static_cast<const T*>(args.weight), grad_in);
    }
    if (is_pointwise(g)) {
      // grad_in[n] (C_in, P) = W^T (C_in, C_out) * grad_out[n] (C_out, P).
      gemm(cuda::gemm_args(args.dtype, g.n, g.c_in, pixels, g.c_out, args.weight, true, 0, grad_out, false,
                           g.c_out * pixels, grad_in, g.c_in * pixels_in, 0.0));
      return;
    }
    const int64_t chunk = chunk_images<T>(g);
    for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
      const int64_t images = std::min(chunk, g.n - n0);
      T* col = static_cast<T*>(cuda::context().workspace(static_cast<size_t>(images * ckk * pixels) * sizeof(T)));
      // col[n] (CKK, P) = W^T (CKK, C_out) * grad_out[n] (C_out, P)
      gemm(cuda::gemm_args(args.dtype, images, ckk, pixels, g.c_out, args.weight, true, 0,
                           grad_out + n0 * g.c_out * pixels, false, g.c_out * pixels, col, ckk * pixels, 0.0));
      const int64_t n = images * g.c_in * pixels_in;
      cuda::launch_linear(
          n, Col2im<T>{col, grad_in + n0 * g.c_in * pixels_in, g, Divisor(pixels_in), Divisor(g.w / g.input_upsample)});
    }
  });
}

void CudaBackend::conv2d_backward_weight(const Conv2dBackwardWeightArgs& args) {
  const Conv2dGeometry& g = args.g;
  check_conv_geometry("cuda conv2d_backward_weight", g);
  dispatch(cuda::conv2d_backward_weight_types{}, args.dtype, "cuda conv2d_backward_weight", [&]<class T> {
    const int64_t ckk = g.c_in * g.kh * g.kw, pixels = g.h_out * g.w_out, pixels_in = stored_pixels(g);
    const T* input = static_cast<const T*>(args.input);
    const T* grad_out = static_cast<const T*>(args.grad_output);
    cudaStream_t stream = cuda::context().stream();
    if (g.n == 0) {
      // No image: both gradients are zero (all-zero bytes for float32 and float64).
      ATELIER_CUDA_CHECK(cudaMemsetAsync(args.grad_weight, 0, static_cast<size_t>(g.c_out * ckk) * sizeof(T), stream));
      cuda::count_kernel();
      if (args.grad_bias != nullptr) {
        ATELIER_CUDA_CHECK(cudaMemsetAsync(args.grad_bias, 0, static_cast<size_t>(g.c_out) * sizeof(T), stream));
        cuda::count_kernel();
      }
      return;
    }
    const ConvAlgo algo = cuda::conv_choice(g, args.dtype);
    if (algo == ConvAlgo::Direct) {
      cuda::direct_backward_weight<T>(g, input, grad_out, static_cast<T*>(args.grad_weight));
    } else if (const int m = winograd_tile_size(algo); m != 0) {
      cuda::winograd_backward_weight<T>(*this, m, g, input, grad_out, static_cast<T*>(args.grad_weight));
    } else {
      // gW (C_out, CKK) (+)= G (C_out, images * P) * col^T (images * P, CKK): one GEMM per chunk of images, whose
      // col holds the chunk's im2col matrices side by side and G its output gradients in the same column order.
      // (A GEMM per image, as the CPU sums, would queue one cuBLAS call per image: 16 at batch 16.) A single image
      // needs no rearranging of its gradient, and a pointwise convolution's single image is its own col.
      const bool pointwise = is_pointwise(g);
      const int64_t chunk = chunk_images<T>(g, g.c_out);
      for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
        const int64_t images = std::min(chunk, g.n - n0);
        const T* image_grads = grad_out + n0 * g.c_out * pixels;
        const T* col = input + n0 * g.c_in * pixels_in;
        const int64_t col_elements = images * ckk * pixels;
        const int64_t grad_offset = (col_elements + 63) / 64 * 64;  // at least 256-byte aligned, for cuBLAS
        // col, then (several images) their gradients side by side; one image's gradient is used where it is.
        const int64_t scratch_elements = images > 1 ? grad_offset + images * g.c_out * pixels : col_elements;
        const size_t scratch_bytes = static_cast<size_t>(scratch_elements) * sizeof(T);
        T* scratch = static_cast<T*>(cuda::context().workspace(scratch_bytes));
        if (!(pointwise && images == 1)) {
          im2col(col, g, images, scratch, ColLayout::SideBySide);
          col = scratch;
        }
        if (images > 1) {
          T* grads = scratch + grad_offset;
          const int64_t n = images * g.c_out * pixels;
          cuda::launch_linear(n, SideBySide<T>{image_grads, grads, g.c_out, pixels, Divisor(pixels), Divisor(images)});
          image_grads = grads;
        }
        gemm(cuda::gemm_args(args.dtype, 1, g.c_out, ckk, images * pixels, image_grads, false, 0, col, true, 0,
                             args.grad_weight, 0, n0 == 0 ? 0.0 : 1.0));
      }
    }
    if (args.grad_bias != nullptr) {
      // grad_bias[o] = the sum over (n, p) of grad_out[n, o, p]: kept o (stride P), reduced (n, p).
      ReduceArgs sum{};
      sum.op = ReduceOp::Sum;
      sum.dtype = args.dtype;
      sum.kept.ndim = 1;
      sum.kept.sizes[0] = g.c_out;
      sum.kept.strides[0] = pixels;
      sum.reduced.ndim = 2;
      sum.reduced.sizes[0] = g.n;
      sum.reduced.strides[0] = g.c_out * pixels;
      sum.reduced.sizes[1] = pixels;
      sum.reduced.strides[1] = 1;
      sum.src_data = grad_out;
      sum.dst_data = args.grad_bias;
      reduce(sum);
    }
  });
}

}  // namespace atelier
