// Direct 3x3 convolutions for thin layers (direct_conv.h), float and double, on one-register vectors (simd.h: 64 bytes
// with AVX-512, 32 with AVX2).
//
// Every pass reads zero-padded copies of image planes (pad_planes), so the taps need no bounds tests: input pixel
// (y, x) sits at row y + 1, column x + 1 of its padded plane, and the tap (i, j) of output pixel (y, x) is padded
// element (y + i, x + j).
//
//   forward          out[o](y, x) = sum over c, i, j of w[o, c, i, j] * in[c](y + i, x + j)       (padded in)
//   backward-input   the forward pass of the output gradient with the filters flipped in space and transposed in
//                    channels, wt[c, o, i, j] = w[o, c, 2 - i, 2 - j] (conv.cpp's input_gradient_as_forward, which
//                    im2col's input gradient shares): padding 1 again
//   backward-weight  gw[o, c, i, j] = sum over n, y, x of grad_out[n, o](y, x) * in[n, c](y + i, x + j)
//
// The correlation (correlate_image) keeps a block of up to 4 output channels times up to 4 vectors of one output
// row in registers (up to 16 accumulators; kBlockVectors sizes the block to the registers), and walks the input
// channels and the 9 taps: per tap it loads each vector once and multiplies it by every channel's weight (a broadcast).
// With 1 to 3 output channels (BEGAN's last layers) that is one pass over the input; with many output channels and few
// input ones (its first layer) the small padded image stays in L1 and is re-read per block of 4. The weight gradient
// keeps the 9 taps of 1 or 2 output channels (9 or 18 accumulators; 2 only where 32 registers hold them) and walks
// every output gradient vector of every image: per vector, its channels' gradient vectors and the 9 shifted input
// vectors, 9 products per channel.
//
// Threads: the forward and input-gradient passes split the images, the weight gradient the (input channel, output
// channel group) units; each output element is one thread's, summed in a fixed order, so the results do not depend
// on the thread count.
#include "backends/cpu/direct_conv.h"

#include <algorithm>

#include "backends/cpu/scratch.h"
#include "backends/cpu/simd.h"
#include "backends/thread_pool.h"

namespace atelier::cpu {
namespace {

// The first `count` lanes of v to p (count <= the lanes).
template <typename T>
void store_lanes(T* p, const typename Simd<T>::V& v, int64_t count) {
  if (count == Simd<T>::kLanes) {
    store_vector(p, v);
    return;
  }
  T lanes[Simd<T>::kLanes];
  store_vector(lanes, v);
  std::copy(lanes, lanes + count, p);
}

// Where an image's planes lie once padded: (h + 2) rows of `width` elements each. A row holds the image row's
// vectors plus one more, so every vector a tap loads (up to two elements past the last vector) is inside the row.
struct PaddedLayout {
  int64_t vectors;  // vectors per image row: ceil(w / lanes)
  int64_t width;    // elements per padded row
  int64_t plane;    // elements per padded plane
};

template <typename T>
PaddedLayout padded_layout(int64_t h, int64_t w) {
  const int64_t vectors = (w + Simd<T>::kLanes - 1) / Simd<T>::kLanes;
  const int64_t width = (vectors + 1) * Simd<T>::kLanes;
  return {vectors, width, (h + 2) * width};
}

// planes (h, w) planes of src, each to its padded plane in dst, zeros around and past it.
template <typename T>
void pad_planes(const T* src, int64_t planes, int64_t h, int64_t w, const PaddedLayout& p, T* dst) {
  for (int64_t c = 0; c < planes; ++c) {
    T* plane = dst + c * p.plane;
    std::fill(plane, plane + p.width, T(0));
    for (int64_t y = 0; y < h; ++y) {
      T* row = plane + (y + 1) * p.width;
      const T* from = src + (c * h + y) * w;
      row[0] = T(0);
      std::copy(from, from + w, row + 1);
      std::fill(row + 1 + w, row + p.width, T(0));
    }
    std::fill(plane + (h + 1) * p.width, plane + p.plane, T(0));
  }
}

// One image's correlation, for output channels [o0, o0 + OB) and NV vectors of output row y from column x0:
// out[o](y, x) = sum over c < ins, i, j < 3 of weight[(o * ins + c) * 9 + i * 3 + j] * in[c](y + i, x + j).
template <typename T, int OB, int NV>
void correlate_block(const T* in, const PaddedLayout& p, int64_t ins, const T* weight, int64_t o0, int64_t y,
                     int64_t x0, typename Simd<T>::V (&acc)[OB][NV]) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::kLanes;
  for (int o = 0; o < OB; ++o) {
    for (int v = 0; v < NV; ++v) acc[o][v] = V{};
  }
  for (int64_t c = 0; c < ins; ++c) {
    const T* rows = in + c * p.plane + y * p.width + x0;
    const T* w = weight + (o0 * ins + c) * 9;
    // Unrolled whole, so that the accumulators stay in registers.
#pragma GCC unroll 3
    for (int i = 0; i < 3; ++i) {
#pragma GCC unroll 3
      for (int j = 0; j < 3; ++j) {
        V x[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) x[v] = load_vector(rows + i * p.width + j + v * L);
#pragma GCC unroll 4
        for (int o = 0; o < OB; ++o) {
          const T s = w[o * ins * 9 + i * 3 + j];
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) acc[o][v] += x[v] * s;
        }
      }
    }
  }
}

// The vectors of an output row that correlate_block sums at once for OB output channels: OB x NV sums, OB
// broadcast weights and the input vector in registers. AVX-512 (32 registers): 4 (16 sums for OB = 4). AVX2 (16):
// 8 sums, so 2 vectors for 3 or 4 channels, 4 for 1 or 2; with 4 x 4 there GCC kept every sum on the stack.
template <int OB>
constexpr int kBlockVectors = std::clamp(kVectorRegisters / 2 / OB, 1, 4);

// Output channels [o0, o0 + OB) of one image (outs planes of h x w at out), row by row, the epilogue on each row.
template <typename T, int OB>
void correlate_channels(const T* in, const PaddedLayout& p, int64_t ins, const T* weight, int64_t o0, int64_t h,
                        int64_t w, const ConvEpilogue<T>& epilogue, T* out) {
  constexpr int64_t L = Simd<T>::kLanes;
  const auto block = [&]<int NV>(int64_t y, int64_t first_vector) {
    alignas(kVectorBytes) typename Simd<T>::V acc[OB][NV];  // bound to a reference: simd.h
    correlate_block<T, OB, NV>(in, p, ins, weight, o0, y, first_vector * L, acc);
    for (int o = 0; o < OB; ++o) {
      T* row = out + ((o0 + o) * h + y) * w;
      for (int v = 0; v < NV; ++v) {
        const int64_t x = (first_vector + v) * L;
        store_lanes<T>(row + x, acc[o][v], std::min(L, w - x));
      }
    }
  };
  for (int64_t y = 0; y < h; ++y) {
    int64_t v = 0;
    for (; v + kBlockVectors<OB> <= p.vectors; v += kBlockVectors<OB>)
      block.template operator()<kBlockVectors<OB>>(y, v);
    switch (p.vectors - v) {
      case 3: block.template operator()<3>(y, v); break;
      case 2: block.template operator()<2>(y, v); break;
      case 1: block.template operator()<1>(y, v); break;
      default: break;
    }
    if (!epilogue.empty()) {
      for (int o = 0; o < OB; ++o) epilogue.apply(o0 + o, out + ((o0 + o) * h + y) * w, w);
    }
  }
}

// Every output channel of one image, in blocks of 4.
template <typename T>
void correlate_image(const T* in, const PaddedLayout& p, int64_t ins, const T* weight, int64_t outs, int64_t h,
                     int64_t w, const ConvEpilogue<T>& epilogue, T* out) {
  for (int64_t o0 = 0; o0 < outs; o0 += 4) {
    switch (std::min<int64_t>(4, outs - o0)) {
      case 4: correlate_channels<T, 4>(in, p, ins, weight, o0, h, w, epilogue, out); break;
      case 3: correlate_channels<T, 3>(in, p, ins, weight, o0, h, w, epilogue, out); break;
      case 2: correlate_channels<T, 2>(in, p, ins, weight, o0, h, w, epilogue, out); break;
      default: correlate_channels<T, 1>(in, p, ins, weight, o0, h, w, epilogue, out); break;
    }
  }
}

// The correlation of every image of src (n, ins, h, w) with weight (outs, ins, 3, 3) into dst (n, outs, h, w),
// the images split over the threads, each padded into its thread's scratch first.
template <typename T>
void correlate(const T* src, int64_t n, int64_t ins, int64_t outs, int64_t h, int64_t w, const T* weight,
               const ConvEpilogue<T>& epilogue, T* dst) {
  const PaddedLayout p = padded_layout<T>(h, w);
  ScratchSlots<T> padded(std::min<int64_t>(num_threads(), n), ins * p.plane);
  parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    T* const image = padded.take();
    for (int64_t b = begin; b < end; ++b) {
      pad_planes(src + b * ins * h * w, ins, h, w, p, image);
      correlate_image(image, p, ins, weight, outs, h, w, epilogue, dst + b * outs * h * w);
    }
  });
}

// The sum of v's lanes, in lane order.
template <typename T>
T lane_sum(const typename Simd<T>::V& v) {
  T sum = 0;
  for (int64_t l = 0; l < Simd<T>::kLanes; ++l) sum += v[l];
  return sum;
}

// acc[o][i * 3 + j] += the sum over one image's pixels (y, x) of grads[o](y, x) * plane(y + i, x + j): `plane` the
// image's padded input plane, grads[o] output gradient rows of whole vectors, `grad_row` elements apart. The
// accumulators are copied into locals for the loop, which calls nothing, so that they stay in registers.
template <typename T, int OB>
void weight_grad_image(const T* plane, const PaddedLayout& p, const T* const (&grads)[OB], int64_t grad_row, int64_t h,
                       typename Simd<T>::V (&acc)[OB][9]) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::kLanes;
  V sum[OB][9];
#pragma GCC unroll 2
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 9
    for (int k = 0; k < 9; ++k) sum[o][k] = acc[o][k];
  }
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t v = 0; v < p.vectors; ++v) {
      V go[OB];
#pragma GCC unroll 2
      for (int o = 0; o < OB; ++o) go[o] = load_vector(grads[o] + y * grad_row + v * L);
      const T* taps = plane + y * p.width + v * L;
#pragma GCC unroll 3
      for (int i = 0; i < 3; ++i) {
#pragma GCC unroll 3
        for (int j = 0; j < 3; ++j) {
          const V in = load_vector(taps + i * p.width + j);
#pragma GCC unroll 2
          for (int o = 0; o < OB; ++o) sum[o][i * 3 + j] += go[o] * in;
        }
      }
    }
  }
#pragma GCC unroll 2
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 9
    for (int k = 0; k < 9; ++k) acc[o][k] = sum[o][k];
  }
}

// gw[o, c, :, :] for output channels [o0, o0 + OB) and input channel c, over every image. `scratch` holds a padded
// plane, then (rows that are no whole number of vectors) OB output gradient planes with their rows zero-padded
// to whole vectors.
template <typename T, int OB>
void weight_grad_unit(const Conv2dGeometry& g, const PaddedLayout& p, const T* input, const T* grad_out, int64_t c,
                      int64_t o0, T* scratch, T* gw) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::kLanes;
  const int64_t h = g.h, w = g.w, pixels = h * w;
  const bool whole = w % L == 0;
  const int64_t grad_row = whole ? w : p.vectors * L;
  T* const plane = scratch;
  T* const padded_grads = scratch + p.plane;
  alignas(kVectorBytes) V acc[OB][9];  // bound to a reference: simd.h
  for (int o = 0; o < OB; ++o) {
    for (int k = 0; k < 9; ++k) acc[o][k] = V{};
  }
  for (int64_t n = 0; n < g.n; ++n) {
    pad_planes(input + (n * g.c_in + c) * pixels, 1, h, w, p, plane);
    const T* grads[OB];
    for (int o = 0; o < OB; ++o) {
      const T* src = grad_out + (n * g.c_out + o0 + o) * pixels;
      if (whole) {
        grads[o] = src;
        continue;
      }
      T* const dst = padded_grads + o * h * grad_row;
      for (int64_t y = 0; y < h; ++y) {
        std::copy(src + y * w, src + (y + 1) * w, dst + y * grad_row);
        std::fill(dst + y * grad_row + w, dst + (y + 1) * grad_row, T(0));
      }
      grads[o] = dst;
    }
    weight_grad_image<T, OB>(plane, p, grads, grad_row, h, acc);
  }
  for (int o = 0; o < OB; ++o) {
    for (int k = 0; k < 9; ++k) gw[((o0 + o) * g.c_in + c) * 9 + k] = lane_sum<T>(acc[o][k]);
  }
}

}  // namespace

template <typename T>
void direct_forward(const Conv2dGeometry& g, const T* input, const T* weight, const ConvEpilogue<T>& epilogue,
                    T* output) {
  correlate(input, g.n, g.c_in, g.c_out, g.h, g.w, weight, epilogue, output);
}

template <typename T>
void direct_backward_weight(const Conv2dGeometry& g, const T* input, const T* grad_output, T* grad_weight) {
  // Output channels per unit: their 9 sums each, the gradient vectors and the input vector stay in registers, 21 of
  // AVX-512's 32 for 2 channels; AVX2's 16 hold one channel's 11.
  constexpr int64_t per_unit = kVectorRegisters >= 32 ? 2 : 1;
  const PaddedLayout p = padded_layout<T>(g.h, g.w);
  const int64_t groups = (g.c_out + per_unit - 1) / per_unit, units = g.c_in * groups;  // unit u: channel u / groups
  // Per thread: a padded plane and per_unit output gradient planes of whole vectors (weight_grad_unit).
  ScratchSlots<T> planes(std::min<int64_t>(num_threads(), units),
                         p.plane + per_unit * g.h * p.vectors * Simd<T>::kLanes);
  parallel_for(units, 1, [&](int64_t begin, int64_t end) {
    T* const plane = planes.take();
    for (int64_t u = begin; u < end; ++u) {
      const int64_t c = u / groups, o0 = u % groups * per_unit;
      if (per_unit == 2 && o0 + 1 < g.c_out) {
        weight_grad_unit<T, 2>(g, p, input, grad_output, c, o0, plane, grad_weight);
      } else {
        weight_grad_unit<T, 1>(g, p, input, grad_output, c, o0, plane, grad_weight);
      }
    }
  });
}

template void direct_forward<float>(const Conv2dGeometry&, const float*, const float*, const ConvEpilogue<float>&,
                                    float*);
template void direct_forward<double>(const Conv2dGeometry&, const double*, const double*, const ConvEpilogue<double>&,
                                     double*);
template void direct_backward_weight<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void direct_backward_weight<double>(const Conv2dGeometry&, const double*, const double*, double*);

}  // namespace atelier::cpu
