// Nearest-neighbour upsampling by integer factors on the CPU (contiguous NCHW), forward and backward.
//
//   forward   big (n, c, h*sh, w*sw)[y, x] = small (n, c, h, w)[y / sh, x / sw]
//   backward  small (n, c, h, w)[y, x]      = sum of big[y*sh + a, x*sw + b] over a < sh, b < sw
// Both are gathers (each output element reads its sources, in a fixed order), parallel over the n*c planes:
// deterministic, and the same code shape as the CUDA kernels (backends/cuda/upsample.cu).
#include <algorithm>

#include "backends/cpu/kernels.h"
#include "backends/error.h"
#include "backends/image_checks.h"
#include "backends/thread_pool.h"

namespace atelier::cpu {
namespace {

template <typename T>
void forward_typed(const UpsampleNearestArgs& a) {
  const T* src = static_cast<const T*>(a.src);
  T* dst = static_cast<T*>(a.dst);
  const int64_t big_w = a.w * a.scale_w, big_plane = a.h * a.scale_h * big_w;
  parallel_for(a.n * a.c, grain_for_items(big_plane), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const T* s = src + p * a.h * a.w;
      T* d = dst + p * big_plane;
      for (int64_t y = 0; y < a.h; ++y) {
        // Build the first of the scale_h identical rows, then copy it.
        T* row = d + y * a.scale_h * big_w;
        const T* in = s + y * a.w;
        if (a.scale_w == 2) {
          // BEGAN's case, written so the compiler vectorises it (an interleaving store); the general loop below
          // calls std::fill per pixel and ran at 17% of copy speed.
          for (int64_t x = 0; x < a.w; ++x) row[2 * x] = row[2 * x + 1] = in[x];
        } else {
          for (int64_t x = 0; x < a.w; ++x) std::fill(row + x * a.scale_w, row + (x + 1) * a.scale_w, in[x]);
        }
        for (int64_t r = 1; r < a.scale_h; ++r) std::copy(row, row + big_w, row + r * big_w);
      }
    }
  });
}

template <typename T>
void backward_typed(const UpsampleNearestArgs& a) {
  const T* src = static_cast<const T*>(a.src);  // the big gradient (n, c, h*sh, w*sw)
  T* dst = static_cast<T*>(a.dst);              // the small gradient (n, c, h, w)
  const int64_t big_w = a.w * a.scale_w, big_plane = a.h * a.scale_h * big_w;
  parallel_for(a.n * a.c, grain_for_items(big_plane), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const T* s = src + p * big_plane;
      T* d = dst + p * a.h * a.w;
      for (int64_t y = 0; y < a.h; ++y) {
        if (a.scale_h == 2 && a.scale_w == 2) {
          // BEGAN's case, unrolled so the compiler vectorises it; the sum runs in the general loop's order.
          const T* r0 = s + 2 * y * big_w;
          const T* r1 = r0 + big_w;
          T* out = d + y * a.w;
          for (int64_t x = 0; x < a.w; ++x) out[x] = ((r0[2 * x] + r0[2 * x + 1]) + r1[2 * x]) + r1[2 * x + 1];
          continue;
        }
        for (int64_t x = 0; x < a.w; ++x) {
          T sum = 0;
          for (int64_t r = 0; r < a.scale_h; ++r) {
            const T* block = s + (y * a.scale_h + r) * big_w + x * a.scale_w;
            for (int64_t b = 0; b < a.scale_w; ++b) sum += block[b];
          }
          d[y * a.w + x] = sum;
        }
      }
    }
  });
}

}  // namespace

void upsample_nearest2d(const UpsampleNearestArgs& args) {
  check_upsample_args("cpu upsample_nearest2d", args);
  dispatch(upsample_nearest2d_types{}, args.dtype, "cpu upsample_nearest2d", [&]<class T> { forward_typed<T>(args); });
}

void upsample_nearest2d_backward(const UpsampleNearestArgs& args) {
  check_upsample_args("cpu upsample_nearest2d_backward", args);
  dispatch(upsample_nearest2d_backward_types{}, args.dtype, "cpu upsample_nearest2d_backward",
           [&]<class T> { backward_typed<T>(args); });
}

}  // namespace atelier::cpu
