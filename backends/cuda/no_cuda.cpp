// The CPU-only build (-DATELIER_CUDA=OFF): there is no CUDA backend.
#include "backends/backend.h"

namespace atelier {

Backend* cuda_backend_or_null() { return nullptr; }

}  // namespace atelier
