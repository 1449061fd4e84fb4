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
  // One context (stream, handle, allocator) on one device: cuda:0. Device N would need a context per device.
  ATELIER_CHECK(device.index == 0,
                "device " << device << " requested, but atelier uses only the first GPU, cuda:0 (select another GPU "
                          << "with CUDA_VISIBLE_DEVICES=N)");
  ATELIER_CHECK(cuda->available(), "device " << device << " is not available: no CUDA driver or GPU was found");
  return *cuda;
}

}  // namespace atelier
