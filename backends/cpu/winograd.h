// Winograd convolution for 3x3 stride-1 kernels on the CPU: F(2x2, 3x3) and F(4x4, 3x3), float and double,
// forward and both backward passes (backends/cpu/winograd.cpp). Internal to the CPU backend: conv.cpp decides,
// per call, which algorithm computes a convolution (choose_conv_algo, backends/conv_algo.h) and calls these.
#pragma once

#include <cstdint>

#include "backends/args.h"
#include "backends/conv_algo.h"
#include "backends/cpu/conv_epilogue.h"

namespace atelier::cpu {

// The Winograd weight gradient sums into one partial of (m+2)^2 * C_out * C_in elements per thread that has tiles.
// False when those partials would take more than 256 MiB (F(4x4), float32, 16 threads: about 340 channels in and
// out): conv.cpp then computes that weight gradient by im2col, whose partials are 9 / (m+2)^2 the size.
bool winograd_weight_grad_fits(int m, const Conv2dGeometry& g, int threads, int64_t element_bytes);

// The most tiles a chunk of a layer with `channels` channels in and out together holds on this machine (the tiles
// are cut into chunks; each chunk's transforms and per-point GEMMs run on one thread through its own scratch):
// 96, or 40 for layers of at most 256 channels on cores with at least 2 MiB of L2 (winograd.cpp says why), unless
// set_winograd_chunk_tiles set a limit for every layer. Which chunks a shape gets changes results within rounding
// (the weight gradient's order of summation; in float64 Eigen's blocking of the chunk GEMMs too).
int64_t winograd_chunk_tiles(int64_t channels);
// The limit set for every layer, or 0 (the default) for the rule above. Tests pin it so that a shape's chunks are the
// ones they were written for; a benchmark can compare limits on a new machine (bench_train --winograd-chunk-tiles).
// A negative value throws atelier::Error.
int64_t winograd_chunk_tiles_setting();
void set_winograd_chunk_tiles(int64_t tiles);

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
