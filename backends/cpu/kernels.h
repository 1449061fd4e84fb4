// The CPU kernels, one free function per primitive, grouped in files by family (copy_fill.cpp,
// elementwise.cpp, reduce.cpp, index.cpp, gemm.cpp, conv.cpp, upsample.cpp, random.cpp). CpuBackend only forwards
// to them.
// Each throws atelier::Error, naming the primitive and dtype, for a dtype it does not handle.
#pragma once

#include "backends/args.h"

namespace atelier::cpu {

void copy(const CopyArgs& args);               // all dtypes
void cast(const CastArgs& args);               // all dtype pairs
void fill(const FillArgs& args);               // all dtypes
void random(const RandomArgs& args);           // float32, float64
void unary(const UnaryArgs& args);             // float32, float64
void binary(const BinaryArgs& args);           // float32, float64
void compare(const CompareArgs& args);         // float32, float64, int64
void where(const WhereArgs& args);             // all dtypes
void reduce(const ReduceArgs& args);           // float32, float64, int64 (sum and max)
void argmax(const ArgmaxArgs& args);           // float32, float64
void gather(const GatherArgs& args);           // all dtypes
void scatter_add(const ScatterAddArgs& args);  // float32, float64, int64
void gemm(const GemmArgs& args);               // float32, float64

// 2-d convolution, NCHW (conv.cpp): im2col + Eigen GEMM, threads over the batch; float32 and float64.
void conv2d_fwd(const Conv2dForwardArgs& args);
void conv2d_bwd_input(const Conv2dBackwardInputArgs& args);
void conv2d_bwd_weight(const Conv2dBackwardWeightArgs& args);
// Nearest-neighbour upsampling by integer factors, as gathers (upsample.cpp); float32 and float64.
void upsample_nearest_fwd(const UpsampleNearestArgs& args);
void upsample_nearest_bwd(const UpsampleNearestArgs& args);

// The fused SGD/Adam/AdamW update, float32 and float64 (optimizer.cpp).
void optimizer_step(const OptimizerStepArgs& args);

[[noreturn]] void unsupported_dtype(const char* primitive, DType dtype);

}  // namespace atelier::cpu
