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
  }
  return "?";
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  ATELIER_CHECK(name == "tf32", "precision: '" << name << "' is not a precision (fp32 or tf32)");
  return Precision::TF32;
}

}  // namespace atelier
