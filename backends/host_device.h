// ATELIER_HOST_DEVICE marks a header-only function that both backends run: nvcc compiles it for the host and the
// GPU (__host__ __device__), every other compiler sees a plain inline function.
#pragma once

#if defined(__CUDACC__)
#define ATELIER_HOST_DEVICE __host__ __device__
#else
#define ATELIER_HOST_DEVICE
#endif
