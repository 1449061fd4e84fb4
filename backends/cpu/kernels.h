// The CPU kernels, one free function per primitive of backends/primitives.def, grouped in files by family
// (copy_fill.cpp, elementwise.cpp, reduce.cpp, index.cpp, gemm.cpp, conv.cpp, upsample.cpp, pool.cpp, norm.cpp,
// random.cpp, optimizer.cpp). CpuBackend's overrides are generated from the primitive list and only forward here.
//
// <name>_types is the list of element types of primitive <name>: its kernel dispatches over that list
// (backends/dispatch.h) and CpuBackend::supports() answers from it, so support is written once, here. A kernel
// called with a dtype outside its list throws atelier::Error naming the primitive and the dtype.
#pragma once

#include "backends/args.h"
#include "backends/dispatch.h"

namespace atelier::cpu {

using copy_types = AllTypes;
using cast_types = AllTypes;  // every (source, destination) pair; supports() is asked about the source
using fill_types = AllTypes;
using random_types = FloatingTypes;
using unary_types = FloatingTypes;
using binary_types = FloatingTypes;
using compare_types = SignedTypes;
using where_types = AllTypes;
using activation_backward_types = FloatingTypes;
using reduce_types = SignedTypes;  // int64: sum and max (mean needs a floating dtype)
using argmax_types = FloatingTypes;
using log_softmax_types = FloatingTypes;
using log_softmax_backward_types = FloatingTypes;
using gather_types = AllTypes;
using scatter_add_types = SignedTypes;
using gemm_types = FloatingTypes;
using conv2d_types = FloatingTypes;
using conv2d_backward_input_types = FloatingTypes;
using conv2d_backward_weight_types = FloatingTypes;
using upsample_nearest2d_types = FloatingTypes;
using upsample_nearest2d_backward_types = FloatingTypes;
using pool2d_types = FloatingTypes;
using pool2d_backward_types = FloatingTypes;
using normalize_types = FloatingTypes;
using normalize_backward_types = FloatingTypes;
using sgd_step_types = FloatingTypes;
using adam_step_types = FloatingTypes;
using adam_step_multi_types = FloatingTypes;

#define X(name, Args) void name(const Args& args);
#include "backends/primitives.def"
#undef X

}  // namespace atelier::cpu
