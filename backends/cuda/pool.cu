// 2-d max and average pooling on the GPU (contiguous NCHW), forward and backward. CPU twin: backends/cpu/pool.cpp.
// Both run the arithmetic of backends/pool_math.h, one thread per output element forward and one per input pixel
// backward (a gather over the windows that hold the pixel: no atomics), so the results are the CPU's bit for bit.
// A thread splits its index with Divisors prepared on the host (backends/fast_divide.h; docs/gpu.md, "Index
// arithmetic").
#include <cstdint>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/launch.h"
#include "backends/error.h"
#include "backends/fast_divide.h"
#include "backends/host_device.h"
#include "backends/image_checks.h"
#include "backends/pool_math.h"

namespace atelier {
namespace {

// CPU twin: forward_typed. Output element e.
template <typename T>
struct PoolForward {
  const T* input;
  T* output;
  int64_t* indices;
  Pool2dGeometry g;
  PoolMode mode;
  Divisor by_w_out, by_h_out;
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    int64_t b, a;
    const int64_t plane = by_h_out.divide(by_w_out.divide(e, b), a);
    int64_t index = 0;
    output[e] = pool_output(input + plane * g.h * g.w, g, mode, a, b, &index);
    if (mode == PoolMode::Max) indices[e] = index;
  }
};

// CPU twin: backward_typed. Input pixel e.
template <typename T>
struct PoolBackward {
  const T* grad_output;
  const int64_t* indices;
  T* grad_input;
  Pool2dGeometry g;
  PoolMode mode;
  Divisor by_w, by_h;
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    int64_t q, r;
    const int64_t plane = by_h.divide(by_w.divide(e, q), r);
    const int64_t out_plane = plane * g.h_out * g.w_out;
    int64_t a0, a1, b0, b1;
    pool_windows_holding(r, g.kh, g.stride_h, g.pad_h, g.h_out, &a0, &a1);
    pool_windows_holding(q, g.kw, g.stride_w, g.pad_w, g.w_out, &b0, &b1);
    grad_input[e] = pool_gather(grad_output + out_plane, mode == PoolMode::Max ? indices + out_plane : nullptr, g, mode,
                                r * g.w + q, a0, a1, b0, b1);
  }
};

}  // namespace

void CudaBackend::pool2d(const Pool2dArgs& a) {
  check_pool_args("cuda pool2d", a.g, a.mode, a.indices);
  dispatch(cuda::pool2d_types{}, a.dtype, "cuda pool2d", [&]<class T> {
    const int64_t n = a.g.planes * a.g.h_out * a.g.w_out;
    if (n == 0) return;
    cuda::launch_linear(n, PoolForward<T>{static_cast<const T*>(a.input), static_cast<T*>(a.output), a.indices, a.g,
                                          a.mode, Divisor(a.g.w_out), Divisor(a.g.h_out)});
  });
}

void CudaBackend::pool2d_backward(const Pool2dBackwardArgs& a) {
  check_pool_args("cuda pool2d_backward", a.g, a.mode, a.indices);
  dispatch(cuda::pool2d_backward_types{}, a.dtype, "cuda pool2d_backward", [&]<class T> {
    const int64_t n = a.g.planes * a.g.h * a.g.w;
    if (n == 0) return;
    cuda::launch_linear(n, PoolBackward<T>{static_cast<const T*>(a.grad_output), a.indices,
                                           static_cast<T*>(a.grad_input), a.g, a.mode, Divisor(a.g.w), Divisor(a.g.h)});
  });
}

}  // namespace atelier
