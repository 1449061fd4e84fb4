// The backend registry: Device -> Backend.
#include "backends/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/error.h"

namespace atelier {

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu_backend();
  Backend* cuda = cuda_backend_or_null();
  ATELIER_CHECK(cuda != nullptr,
                "device " << device << " requested, but atelier was built without CUDA (-DATELIER_CUDA=OFF)");
  ATELIER_CHECK(cuda->available(), "device " << device << " is not available: no CUDA driver or GPU was found");
  return *cuda;
}

}  // namespace atelier
