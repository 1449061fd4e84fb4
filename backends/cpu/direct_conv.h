// Direct 3x3 convolutions for thin layers on the CPU: the three passes computed straight from the (zero-padded)
// image, with no im2col matrix. Thin means few output channels (BEGAN's decoders' last layer, C_out 1 or 3), where
// im2col + GEMM does badly: the GEMM has 1 to 3 rows (a GEMV), so the time goes to writing and reading a col
// matrix 9 * C_in rows tall for few multiplications, and Winograd's transforms cost more than the products they
// save (backends/conv_algo.h). With few input channels instead (BEGAN's first layer) im2col's GEMM is as fast, so
// auto leaves those to it. docs/architecture.md section 6 has the loops, docs/benchmarks.md ("Direct convolution
// for thin layers") what they bought.
#pragma once

#include <cstdint>

#include "backends/args.h"
#include "backends/cpu/conv_epilogue.h"

namespace atelier::cpu {

// The forward pass and the weight gradient, for the shapes direct_applies (backends/conv_algo.h) accepts, with the
// contracts of conv2d and conv2d_backward_weight (the weight gradient only; the bias gradient is the caller's). The
// input gradient is direct_forward of the output gradient with the filters flipped (conv.cpp,
// input_gradient_as_forward). float and double.
template <typename T>
void direct_forward(const Conv2dGeometry& g, const T* input, const T* weight, const ConvEpilogue<T>& epilogue,
                    T* output);
template <typename T>
void direct_backward_weight(const Conv2dGeometry& g, const T* input, const T* grad_output, T* grad_weight);

}  // namespace atelier::cpu
