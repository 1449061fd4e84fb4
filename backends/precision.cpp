// The matrix-multiply precision setting (see precision.h).
#include "backends/precision.h"

#include <atomic>

#include "backends/error.h"

namespace atelier {

namespace {
std::atomic<Precision> g_precision{Precision::FP32};
}  // namespace

void set_precision(Precision precision) { g_precision.store(precision, std::memory_order_relaxed); }

Precision precision() { return g_precision.load(std::memory_order_relaxed); }

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

Precision parse_precision(const std::string& name) {
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16}) {
    if (name == precision_name(p)) return p;
  }
  ATELIER_FAIL("precision: '" << name << "' is not a precision (fp32, tf32 or bf16)");
  return Precision::FP32;
}

double gemm_parity_tolerance(Precision precision) {
  switch (precision) {
    case Precision::FP32: return 1e-5;
    case Precision::TF32: return 1e-2;
    case Precision::BF16: return 3e-2;
  }
  return 1e-5;
}

}  // namespace atelier
