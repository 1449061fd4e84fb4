// The library's matrix-multiply precision, one setting read by the GEMM and convolution kernels of every backend:
//   FP32  full float32 products (the default; the CPU always computes this way)
//   TF32  float32 storage, TensorFloat-32 products on GPUs that have them (10-bit mantissa inputs, float32 sums):
//         several times faster on Ampere and later; parity with the CPU drops to ~1e-2 relative (DESIGN tolerances)
// The setting is global and may change between ops (it is an atomic read per GEMM call).
//   atelier::set_precision(atelier::Precision::TF32);
#pragma once

#include <cstdint>
#include <string>

namespace atelier {

enum class Precision : uint8_t { FP32, TF32 };

void set_precision(Precision precision);
Precision precision();

const char* precision_name(Precision precision);  // "fp32", "tf32"
// "fp32" or "tf32" to a Precision; anything else throws atelier::Error naming the text.
Precision parse_precision(const std::string& name);

}  // namespace atelier
