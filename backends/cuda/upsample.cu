// Nearest-neighbour upsampling by integer factors on the GPU (contiguous NCHW), forward and backward. CPU twin:
// backends/cpu/upsample.cpp.
//
//   forward   big (n, c, h*sh, w*sw)[y, x] = small (n, c, h, w)[y / sh, x / sw]
//   backward  small (n, c, h, w)[y, x]      = sum of big[y*sh + a, x*sw + b] over a < sh, b < sw
// Both are gathers, one thread per output element; the backward sums its block in the CPU's order (rows, then
// columns, from 0), so the results are bit-identical to the CPU's. No atomics. A thread splits its index with
// Divisors prepared on the host (backends/fast_divide.h), not `/` and `%` (docs/gpu.md, "Index arithmetic").
#include <cstdint>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/fast_divide.h"
#include "backends/host_device.h"
#include "backends/image_checks.h"

namespace atelier {
namespace {

// CPU twin: forward_typed. Element e of the big image.
template <typename T>
struct UpsampleForward {
  const T* small;
  T* big;
  int64_t h, w;
  Divisor by_big_w, by_big_h, by_scale_h, by_scale_w;  // w * scale_w, h * scale_h, scale_h, scale_w
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    int64_t x, y;
    const int64_t plane = by_big_h.divide(by_big_w.divide(e, x), y);
    big[e] = small[(plane * h + by_scale_h.divide(y)) * w + by_scale_w.divide(x)];
  }
};

// CPU twin: backward_typed. Element e of the small gradient.
template <typename T>
struct UpsampleBackward {
  const T* big;
  T* small;
  int64_t h, w, scale_h, scale_w;
  Divisor by_w, by_h;
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    const int64_t big_w = w * scale_w, big_h = h * scale_h;
    int64_t x, y;
    const int64_t plane = by_h.divide(by_w.divide(e, x), y);
    const T* block = big + (plane * big_h + y * scale_h) * big_w + x * scale_w;
    T sum = 0;
    for (int64_t r = 0; r < scale_h; ++r) {
      for (int64_t b = 0; b < scale_w; ++b) sum += block[r * big_w + b];
    }
    small[e] = sum;
  }
};

}  // namespace

void CudaBackend::upsample_nearest2d(const UpsampleNearestArgs& a) {
  check_upsample_args("cuda upsample_nearest2d", a);
  dispatch(cuda::upsample_nearest2d_types{}, a.dtype, "cuda upsample_nearest2d", [&]<class T> {
    const int64_t n = a.n * a.c * a.h * a.scale_h * a.w * a.scale_w;
    if (n == 0) return;  // (a size of 0 has no Divisor)
    cuda::launch_linear(
        n, UpsampleForward<T>{static_cast<const T*>(a.src), static_cast<T*>(a.dst), a.h, a.w, Divisor(a.w * a.scale_w),
                              Divisor(a.h * a.scale_h), Divisor(a.scale_h), Divisor(a.scale_w)});
  });
}

void CudaBackend::upsample_nearest2d_backward(const UpsampleNearestArgs& a) {
  check_upsample_args("cuda upsample_nearest2d_backward", a);
  dispatch(cuda::upsample_nearest2d_backward_types{}, a.dtype, "cuda upsample_nearest2d_backward", [&]<class T> {
    const int64_t n = a.n * a.c * a.h * a.w;
    if (n == 0) return;
    cuda::launch_linear(n, UpsampleBackward<T>{static_cast<const T*>(a.src), static_cast<T*>(a.dst), a.h, a.w,
                                               a.scale_h, a.scale_w, Divisor(a.w), Divisor(a.h)});
  });
}

}  // namespace atelier
