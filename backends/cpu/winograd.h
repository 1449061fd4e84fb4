// Winograd convolution for 3x3 stride-1 kernels on the CPU: F(2x2, 3x3) and F(4x4, 3x3), float and double,
// forward and both backward passes (backends/cpu/winograd.cpp). Internal to the CPU backend: conv.cpp decides,
// per call, which algorithm computes a convolution (choose_conv_algo below) and calls these.
#pragma once

#include "backends/args.h"
#include "backends/conv_algo.h"
#include "backends/cpu/conv_epilogue.h"

namespace atelier::cpu {

// True for the convolutions Winograd can compute: a 3x3 kernel with stride 1 (any padding).
bool winograd_applies(const Conv2dGeometry& g);

// The algorithm that computes convolution g under the setting `algo` (conv_algo()): never Auto.
//   im2col, or a shape Winograd cannot compute          -> Im2col
//   wino2 / wino4 (forced)                              -> Wino2 / Wino4 for every 3x3 stride-1 shape
//   auto -> Im2col unless 3x3 stride 1 with C_in >= 16 and C_out >= 3: fewer input channels leave the per-point
//           GEMMs too thin to pay for the transforms (measured: 8 -> 32 channels at 32x32 is slower than im2col,
//           16 -> 3 and 64 -> 3 are faster, 16 -> 1 slower). Then Wino2 when its 2x2 tiles need no more
//           multiplications than the 4x4 tiles of Wino4 (16 per 2x2 tile against 36 per 4x4 tile, a partial tile
//           counted whole: outputs of 1, 2, 5 or 6 rows and columns), Wino4 otherwise. Measured on one core of
//           the reference machine, fwd + both gradients, batch 16: 64 -> 64 at 64x64 wino4 0.5x im2col's time,
//           at 8x8 0.3x; 128 -> 128 at 6x6 wino2 0.4x (wino4 0.5x). The same rule for the three passes.
//           Re-measured with the packed per-point products (docs/benchmarks.md, "Sixth pass"): each choice the
//           fastest or within 3% of it; 8 -> 32 at 32x32 is now a tie (wino4 0.98x im2col), left to im2col, the
//           more exact.
ConvAlgo choose_conv_algo(const Conv2dGeometry& g, ConvAlgo algo);

// The Winograd weight gradient sums into one partial of (m+2)^2 * C_out * C_in elements per thread that has tiles.
// False when those partials would take more than 256 MiB (F(4x4), float32, 16 threads: about 340 channels in and
// out): conv.cpp then computes that weight gradient by im2col, whose partials are 9 / (m+2)^2 the size.
bool winograd_weight_grad_fits(int m, const Conv2dGeometry& g, int threads, int64_t element_bytes);

// m = 2 or 4: F(m x m, 3x3). Preconditions: winograd_applies(g), check_conv_geometry(g) passed. The same
// contracts as the conv2d primitives (backends/args.h): output, grad_input and grad_weight are overwritten.
template <typename T>
void winograd_forward(int m, const Conv2dGeometry& g, const T* input, const T* weight, const ConvEpilogue<T>& epilogue,
                      T* output);
template <typename T>
void winograd_backward_input(int m, const Conv2dGeometry& g, const T* grad_output, const T* weight, T* grad_input);
template <typename T>
void winograd_backward_weight(int m, const Conv2dGeometry& g, const T* input, const T* grad_output, T* grad_weight);

}  // namespace atelier::cpu
