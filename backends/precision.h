// The library's matrix-multiply precision, one setting read by the GEMM and convolution kernels of every backend:
//   FP32  full float32 products (the default; the CPU always computes this way, under every setting)
//   TF32  float32 storage, TensorFloat-32 products on GPUs that have them (10-bit mantissa inputs, float32 sums):
//         several times faster on Ampere and later; parity with the CPU drops to ~1e-2 relative (DESIGN tolerances)
//   BF16  float32 storage and float32 master weights, bfloat16 products inside the GEMMs (7-bit mantissa inputs,
//         float32 sums: cuBLAS's CUBLAS_COMPUTE_32F_FAST_16BF); no tensor is ever stored in bfloat16. Parity with
//         the CPU drops to ~3e-2 relative. The error of each mode on a BEGAN step is stated in docs/gpu.md.
// The setting is global and may change between ops (it is an atomic read per GEMM call). Only float32 GEMMs and
// convolutions on CUDA read it; float64 is always full precision.
//   atelier::set_precision(atelier::Precision::TF32);
#pragma once

#include <cstdint>
#include <string>

namespace atelier {

enum class Precision : uint8_t { FP32, TF32, BF16 };

void set_precision(Precision precision);
Precision precision();

const char* precision_name(Precision precision);  // "fp32", "tf32", "bf16"
// "fp32", "tf32" or "bf16" to a Precision; anything else throws atelier::Error naming the text.
Precision parse_precision(const std::string& name);

// The relative-norm tolerance of a float32 GEMM or convolution against the CPU's FP32 result under `precision`
// (the parity tests' "norm" tolerance): 1e-5 for FP32, 1e-2 for TF32, 3e-2 for BF16.
double gemm_parity_tolerance(Precision precision);

}  // namespace atelier
