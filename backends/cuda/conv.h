// What the CUDA convolutions share between conv.cu (the entry points, im2col + GEMM), winograd.cu (Winograd
// F(2x2, 3x3) and F(4x4, 3x3) for 3x3 stride-1 convolutions) and direct_conv.cu (direct 3x3 stride-1 padding-1
// convolutions for thin layers). Private to backends/cuda/.
#pragma once

#include <cstdint>

#include "backends/args.h"
#include "backends/conv_algo.h"
#include "backends/cuda/cuda_backend.h"

namespace atelier::cuda {

// A GEMM of `dtype` over contiguous row-major operands: C_b (m x n) = op(A_b) op(B_b) + beta C_b, b < batch, each
// operand `stride_*` elements after the last (0: one matrix for every b).
GemmArgs gemm_args(DType dtype, int64_t batch, int64_t m, int64_t n, int64_t k, const void* a, bool trans_a,
                   int64_t stride_a, const void* b, bool trans_b, int64_t stride_b, void* c, int64_t stride_c,
                   double beta);

// Images per chunk of a convolution's scratch: as many as fit conv_workspace_limit() (backends/conv_algo.h) after
// `fixed_bytes`, at `per_image_bytes` each; at least one (one image may need more), at most n.
int64_t images_per_chunk(int64_t fixed_bytes, int64_t per_image_bytes, int64_t n);

// The algorithm of convolution g on CUDA under the library's settings (choose_conv_algo, backends/conv_algo.h;
// under auto, float32 takes Winograd only under Precision::FP32).
ConvAlgo conv_choice(const Conv2dGeometry& g, DType dtype);

// The direct kernels (direct_conv.cu) for a convolution that direct_applies() to and check_conv_geometry() passed.
// The contracts of the conv2d primitives: output (with bias and ELU), input gradient and weight gradient
// overwritten; the weight gradient's scratch is the context's workspace.
template <typename T>
void direct_forward(const Conv2dGeometry& g, const T* input, const T* weight, const T* bias, bool elu, T alpha,
                    T* output);
template <typename T>
void direct_backward_input(const Conv2dGeometry& g, const T* grad_output, const T* weight, T* grad_input);
template <typename T>
void direct_backward_weight(const Conv2dGeometry& g, const T* input, const T* grad_output, T* grad_weight);

// F(m x m, 3x3), m = 2 or 4, for a convolution that winograd_applies() to and check_conv_geometry() passed (any
// padding, input upsampling 1 or 2). The contracts of the conv2d primitives (backends/args.h): the output, the
// input gradient and the weight gradient are overwritten; the forward pass adds the bias (if any) and applies ELU
// (if elu) in its output transform. The products run on `backend`'s GEMM (cuBLAS), the rest in our kernels, all on
// the context's stream, with scratch from the context's workspace.
template <typename T>
void winograd_forward(CudaBackend& backend, int m, const Conv2dGeometry& g, const T* input, const T* weight,
                      const T* bias, bool elu, T alpha, T* output);
template <typename T>
void winograd_backward_input(CudaBackend& backend, int m, const Conv2dGeometry& g, const T* grad_output,
                             const T* weight, T* grad_input);
template <typename T>
void winograd_backward_weight(CudaBackend& backend, int m, const Conv2dGeometry& g, const T* input,
                              const T* grad_output, T* grad_weight);

}  // namespace atelier::cuda
