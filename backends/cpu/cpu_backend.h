// The CPU backend: Eigen for GEMM (single-threaded inside our thread pool), plain loops elsewhere, memory from
// a thread-safe caching allocator.
#pragma once

#include "backends/backend.h"

namespace atelier {

Backend& cpu_backend();

}  // namespace atelier
