// Direct 3x3 convolutions on the GPU (stride 1, padding 1, no input upsampling): the three passes without an im2col
// matrix, for thin layers (conv_algo.h's auto takes them for 1 to 3 output channels, BEGAN's decoders' last layer).
// CPU twin: backends/cpu/direct_conv.cpp (the same sums, in other orders).
//
// Why, by napkin math (not measured: no GPU has run it): at 64x64 with 64 input channels and 3 output channels, batch
// 16, im2col writes and the GEMM reads a col matrix of 151 MB per pass (~63 us at the H200's 4.8 TB/s) for a GEMM with
// 3 rows, where the input is 16 MB; Winograd's transformed input is 2.25x the input, read by 36 GEMMs of 3 columns.
// Here each pass reads its inputs once from memory (the taps' re-reads hit L1 and L2):
//   forward          one thread per output pixel (n, y, x) and block of up to 4 output channels: the pixel's 9 taps
//                    of every input channel, each multiplied by the block's weights (a uniform read, every thread
//                    the same address: one broadcast per warp); + bias, ELU as the im2col path's epilogue
//   backward-input   one thread per input element (n, c, y, x): the sum over output channels o and taps (i, j) of
//                    w[o, c, i, j] * grad_out[n, o, y + 1 - i, x + 1 - j] (zero outside the image)
//   backward-weight  gw[o, c, i, j] = the sum over (n, y, x) of grad_out[n, o, y, x] * input[n, c, y + i - 1,
//                    x + j - 1]: one block per (input channel c, block of up to 3 output channels, chunk of the N*H*W
//                    pixels), its threads accumulating the 27 (or fewer) sums over their pixels in double, then the
//                    block's fixed-order combine per sum (block_reduce.h, reduce.cu's); a second kernel adds each sum's
//                    chunk partials in chunk order. Deterministic: no atomics, every order fixed by the sizes.
#include <algorithm>
#include <cstdint>

#include "backends/conv_algo.h"
#include "backends/cuda/block_reduce.h"
#include "backends/cuda/context.h"
#include "backends/cuda/conv.h"
#include "backends/cuda/device_math.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/fast_divide.h"
#include "backends/host_device.h"

// Unrolls a loop whole in device code (nvcc's pragma; the host compiler, the emulation's, knows no such pragma).
#if defined(__CUDA_ARCH__)
#define ATELIER_UNROLL _Pragma("unroll")
#else
#define ATELIER_UNROLL
#endif

namespace atelier::cuda {
namespace {

// Output channels per forward thread, and per weight-gradient block.
constexpr int kForwardChannels = 4;
constexpr int kWeightChannels = 3;

// Thread e: output pixel p of image n, channels [o0, o0 + count) (e = (n * blocks + block) * pixels + p).
template <typename T>
struct DirectForward {
  const T* input;
  const T* weight;  // (C_out, C_in, 3, 3)
  const T* bias;    // (C_out) or null
  T* output;
  int64_t c_in, c_out, h, w;
  Divisor by_pixels, by_blocks, by_width;  // h * w, output channel blocks, w
  bool elu;
  T alpha;
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    int64_t p, block, x;
    const int64_t n = by_blocks.divide(by_pixels.divide(e, p), block);
    const int64_t y = by_width.divide(p, x);
    const int64_t pixels = h * w, o0 = block * kForwardChannels;
    const int64_t count = c_out - o0 < kForwardChannels ? c_out - o0 : kForwardChannels;
    T acc[kForwardChannels] = {};
    const T* plane = input + n * c_in * pixels;
    for (int64_t c = 0; c < c_in; ++c, plane += pixels) {
      const T* taps = weight + (o0 * c_in + c) * 9;  // channel o0 + o's at taps[o * c_in * 9]
      ATELIER_UNROLL
      for (int i = 0; i < 3; ++i) {
        const int64_t iy = y + i - 1;
        if (iy < 0 || iy >= h) continue;
        ATELIER_UNROLL
        for (int j = 0; j < 3; ++j) {
          const int64_t ix = x + j - 1;
          if (ix < 0 || ix >= w) continue;
          const T v = plane[iy * w + ix];
          ATELIER_UNROLL
          for (int o = 0; o < kForwardChannels; ++o) {
            if (o < count) acc[o] += taps[o * c_in * 9 + i * 3 + j] * v;
          }
        }
      }
    }
    for (int o = 0; o < kForwardChannels && o < count; ++o) {
      const T v = acc[o] + (bias != nullptr ? bias[o0 + o] : T(0));
      output[(n * c_out + o0 + o) * pixels + p] = elu ? dev_elu(v, alpha) : v;
    }
  }
};

// Thread e: input element (n, c, y, x), e = (n * C_in + c) * pixels + y * w + x.
template <typename T>
struct DirectBackwardInput {
  const T* grad_out;
  const T* weight;
  T* grad_in;
  int64_t c_in, c_out, h, w;
  Divisor by_pixels, by_channels, by_width;  // h * w, c_in, w
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    int64_t p, c, x;
    const int64_t n = by_channels.divide(by_pixels.divide(e, p), c);
    const int64_t y = by_width.divide(p, x);
    const int64_t pixels = h * w;
    T acc = 0;
    for (int64_t o = 0; o < c_out; ++o) {
      const T* g = grad_out + (n * c_out + o) * pixels;
      const T* taps = weight + (o * c_in + c) * 9;
      for (int i = 0; i < 3; ++i) {
        const int64_t oy = y + 1 - i;
        if (oy < 0 || oy >= h) continue;
        for (int j = 0; j < 3; ++j) {
          const int64_t ox = x + 1 - j;
          if (ox >= 0 && ox < w) acc += taps[i * 3 + j] * g[oy * w + ox];
        }
      }
    }
    grad_in[e] = acc;
  }
};

using WeightSum = SumReducer<double>;  // accumulates in double, for float and double alike

// Block b = (c * blocks_o + ob) * chunks + s: the chunk s of pixels (over n, y, x) of input channel c and output
// channels [ob * 3, ob * 3 + count); writes the chunk's 9 * count sums to partials[b * 27 + o * 9 + k].
template <typename T>
struct DirectWeightChunks {
  const T* input;
  const T* grad_out;
  double* partials;
  int64_t c_in, c_out, h, w, total, chunk;  // total = n * h * w
  Divisor by_chunks, by_blocks_o, by_pixels, by_width;
  // A template (over BlockContext<double, kReduceBlock> and the emulation's twin), as block_fold is: so its own
  // b.sync() may be host-device code that calls a device-only member.
  template <class Block>
  ATELIER_HOST_DEVICE void operator()(Block& b) const {
    int64_t s, ob;
    const int64_t c = by_blocks_o.divide(by_chunks.divide(b.block, s), ob);
    const int64_t o0 = ob * kWeightChannels, pixels = h * w;
    const int64_t count = c_out - o0 < kWeightChannels ? c_out - o0 : kWeightChannels;
    const int64_t begin = s * chunk, end = begin + chunk < total ? begin + chunk : total;
    double acc[kWeightChannels * 9] = {};
    for (int64_t q = begin + b.thread; q < end; q += kReduceBlock) {
      int64_t p, x;
      const int64_t n = by_pixels.divide(q, p);
      const int64_t y = by_width.divide(p, x);
      const T* plane = input + (n * c_in + c) * pixels;
      double go[kWeightChannels];
      ATELIER_UNROLL
      for (int o = 0; o < kWeightChannels; ++o) {
        go[o] = o < count ? static_cast<double>(grad_out[(n * c_out + o0 + o) * pixels + p]) : 0.0;
      }
      // Unrolled whole (here and in the folds below), so that acc's indices are constants and it stays in registers.
      ATELIER_UNROLL
      for (int i = 0; i < 3; ++i) {
        const int64_t iy = y + i - 1;
        const bool row = iy >= 0 && iy < h;
        ATELIER_UNROLL
        for (int j = 0; j < 3; ++j) {
          const int64_t ix = x + j - 1;
          const double v = row && ix >= 0 && ix < w ? static_cast<double>(plane[iy * w + ix]) : 0.0;
          ATELIER_UNROLL
          for (int o = 0; o < kWeightChannels; ++o) acc[o * 9 + i * 3 + j] += go[o] * v;
        }
      }
    }
    ATELIER_UNROLL
    for (int k = 0; k < kWeightChannels * 9; ++k) {
      const double total_k = block_fold<WeightSum>(b, acc[k]);
      if (b.thread == 0) partials[b.block * kWeightChannels * 9 + k] = total_k;
      b.sync();  // thread 0 has read the shared array before the next fold writes it
    }
  }
};

// Thread e = (o * C_in + c) * 9 + k: gw[e] = the sum of its chunks' partials, in chunk order.
template <typename T>
struct DirectWeightCombine {
  const double* partials;
  T* grad_weight;
  int64_t c_in, chunks, blocks_o;
  Divisor by_taps, by_c_in;  // 9, c_in
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    int64_t k, c;
    const int64_t o = by_c_in.divide(by_taps.divide(e, k), c);
    const int64_t ob = o / kWeightChannels, slot = (o % kWeightChannels) * 9 + k;
    const double* p = partials + ((c * blocks_o + ob) * chunks) * kWeightChannels * 9 + slot;
    double sum = 0;
    for (int64_t s = 0; s < chunks; ++s) sum += p[s * kWeightChannels * 9];
    grad_weight[e] = static_cast<T>(sum);
  }
};

}  // namespace

template <typename T>
void direct_forward(const Conv2dGeometry& g, const T* input, const T* weight, const T* bias, bool elu, T alpha,
                    T* output) {
  const int64_t pixels = g.h * g.w, blocks = (g.c_out + kForwardChannels - 1) / kForwardChannels;
  if (g.n * blocks * pixels == 0) return;
  launch_linear(g.n * blocks * pixels, DirectForward<T>{input, weight, bias, output, g.c_in, g.c_out, g.h, g.w,
                                                        Divisor(pixels), Divisor(blocks), Divisor(g.w), elu, alpha});
}

template <typename T>
void direct_backward_input(const Conv2dGeometry& g, const T* grad_output, const T* weight, T* grad_input) {
  const int64_t pixels = g.h * g.w;
  if (g.n * g.c_in * pixels == 0) return;
  launch_linear(g.n * g.c_in * pixels, DirectBackwardInput<T>{grad_output, weight, grad_input, g.c_in, g.c_out, g.h,
                                                              g.w, Divisor(pixels), Divisor(g.c_in), Divisor(g.w)});
}

template <typename T>
void direct_backward_weight(const Conv2dGeometry& g, const T* input, const T* grad_output, T* grad_weight) {
  const int64_t weights = g.c_out * g.c_in * 9;
  if (weights == 0) return;
  const int64_t pixels = g.h * g.w, total = g.n * pixels;
  const int64_t blocks_o = (g.c_out + kWeightChannels - 1) / kWeightChannels, units = g.c_in * blocks_o;
  // The pixels cut as a reduction's long range is (reduce.cu's rule, block_reduce.h): enough blocks to fill the GPU.
  const Chunking cut = chunking(units, total);
  const int64_t chunks = cut.count, chunk = cut.size;
  auto* partials = static_cast<double*>(
      context().workspace(static_cast<size_t>(units * chunks * kWeightChannels * 9) * sizeof(double)));
  launch_blocks<double, kReduceBlock>(
      units * chunks, DirectWeightChunks<T>{input, grad_output, partials, g.c_in, g.c_out, g.h, g.w, total, chunk,
                                            Divisor(chunks), Divisor(blocks_o), Divisor(std::max<int64_t>(pixels, 1)),
                                            Divisor(std::max<int64_t>(g.w, 1))});
  launch_linear(weights,
                DirectWeightCombine<T>{partials, grad_weight, g.c_in, chunks, blocks_o, Divisor(9), Divisor(g.c_in)});
}

#define ATELIER_DIRECT_INSTANCES(T)                                                                  \
  template void direct_forward<T>(const Conv2dGeometry&, const T*, const T*, const T*, bool, T, T*); \
  template void direct_backward_input<T>(const Conv2dGeometry&, const T*, const T*, T*);             \
  template void direct_backward_weight<T>(const Conv2dGeometry&, const T*, const T*, T*);
ATELIER_DIRECT_INSTANCES(float)
ATELIER_DIRECT_INSTANCES(double)
#undef ATELIER_DIRECT_INSTANCES

}  // namespace atelier::cuda
