// 2-d max and average pooling on the CPU (contiguous NCHW), forward and backward, parallel over the planes. They
// give the GPU's kernels' bits (backends/cuda/pool.cu, which runs backends/pool_math.h one element per thread) in
// loops shaped for a CPU:
//   forward   an output row whose windows lie inside the image goes window offset by window offset (row-major, the
//             order pool_output reads a window in), each offset one pass over the row's outputs without branches;
//             outputs at the border run pool_output itself. Same first maximum, same sums.
//   backward  a scatter in output order (each window adds its gradient to its maximum, or its share to each of its
//             pixels), which adds every pixel's terms in the order the GPU's gather does, from the same zero.
// Measured (docs/benchmarks.md, "Pooling as one kernel"): per-output pool_output calls and a per-pixel gather ran
// 2-4x slower on the CPU (a branch per comparison; four integer divisions a pixel).
#include <algorithm>

#include "backends/cpu/kernels.h"
#include "backends/error.h"
#include "backends/image_checks.h"
#include "backends/pool_math.h"
#include "backends/thread_pool.h"

namespace atelier::cpu {
namespace {

// Outputs b in [b_lo, b_hi) of output row a, whose windows lie inside the image: out and idx point at the row.
template <typename T>
void interior_outputs(const T* in, const Pool2dGeometry& g, PoolMode mode, int64_t a, int64_t b_lo, int64_t b_hi,
                      T* out, int64_t* idx) {
  const int64_t top = a * g.stride_h - g.pad_h, sw = g.stride_w;
  for (int64_t i = 0; i < g.kh; ++i) {
    for (int64_t j = 0; j < g.kw; ++j) {
      const int64_t first = (top + i) * g.w + j - g.pad_w;  // the pixel of output 0 at this offset
      const T* pixels = in + first;
      if (i == 0 && j == 0) {
        for (int64_t b = b_lo; b < b_hi; ++b) out[b] = pixels[b * sw];
        if (mode == PoolMode::Max) {
          for (int64_t b = b_lo; b < b_hi; ++b) idx[b] = first + b * sw;
        }
      } else if (mode == PoolMode::Average) {
        for (int64_t b = b_lo; b < b_hi; ++b) out[b] += pixels[b * sw];
      } else {
        for (int64_t b = b_lo; b < b_hi; ++b) {
          const T v = pixels[b * sw], best = out[b];
          const bool take = v > best || (v != v && best == best);  // pool_output's rule: the first NaN stays
          out[b] = take ? v : best;
          idx[b] = take ? first + b * sw : idx[b];
        }
      }
    }
  }
  if (mode == PoolMode::Average) {
    const T count = static_cast<T>(g.kh * g.kw);
    for (int64_t b = b_lo; b < b_hi; ++b) out[b] /= count;
  }
}

template <typename T>
void forward_typed(const Pool2dArgs& args) {
  const Pool2dGeometry& g = args.g;
  const T* input = static_cast<const T*>(args.input);
  T* output = static_cast<T*>(args.output);
  const int64_t out_plane = g.h_out * g.w_out;
  // The outputs whose windows lie inside the image's columns: b stride_w - pad_w >= 0 and + kw <= w.
  const int64_t b_lo = std::min(g.w_out, (g.pad_w + g.stride_w - 1) / g.stride_w);
  const int64_t b_hi = std::max(b_lo, std::min(g.w_out, (g.w + g.pad_w - g.kw) / g.stride_w + 1));
  parallel_for(g.planes, grain_for_items(g.h * g.w), [&](int64_t begin, int64_t end) {
    int64_t unused = 0;
    for (int64_t p = begin; p < end; ++p) {
      const T* in = input + p * g.h * g.w;
      for (int64_t a = 0; a < g.h_out; ++a) {
        T* out = output + p * out_plane + a * g.w_out;
        int64_t* idx = args.mode == PoolMode::Max ? args.indices + p * out_plane + a * g.w_out : nullptr;
        const int64_t top = a * g.stride_h - g.pad_h;
        const bool inside = top >= 0 && top + g.kh <= g.h;
        const int64_t lo = inside ? b_lo : g.w_out, hi = inside ? b_hi : g.w_out;
        for (int64_t b = 0; b < g.w_out; ++b) {
          if (b == lo && lo < hi) {
            interior_outputs(in, g, args.mode, a, lo, hi, out, idx);
            b = hi - 1;
            continue;
          }
          out[b] = pool_output(in, g, args.mode, a, b, idx != nullptr ? idx + b : &unused);
        }
      }
    }
  });
}

template <typename T>
void backward_typed(const Pool2dBackwardArgs& args) {
  const Pool2dGeometry& g = args.g;
  const T* grad_output = static_cast<const T*>(args.grad_output);
  T* grad_input = static_cast<T*>(args.grad_input);
  const int64_t out_plane = g.h_out * g.w_out;
  const T count = static_cast<T>(g.kh * g.kw);
  parallel_for(g.planes, grain_for_items(g.h * g.w), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const T* go = grad_output + p * out_plane;
      T* gi = grad_input + p * g.h * g.w;
      std::fill(gi, gi + g.h * g.w, T(0));
      if (args.mode == PoolMode::Max) {
        const int64_t* indices = args.indices + p * out_plane;
        for (int64_t o = 0; o < out_plane; ++o) gi[indices[o]] += go[o];
        continue;
      }
      for (int64_t a = 0; a < g.h_out; ++a) {
        const int64_t top = a * g.stride_h - g.pad_h;
        const int64_t r0 = std::max<int64_t>(top, 0), r1 = std::min(top + g.kh, g.h);
        for (int64_t b = 0; b < g.w_out; ++b) {
          const int64_t left = b * g.stride_w - g.pad_w;
          const int64_t q0 = std::max<int64_t>(left, 0), q1 = std::min(left + g.kw, g.w);
          const T share = go[a * g.w_out + b] / count;
          for (int64_t r = r0; r < r1; ++r) {
            for (int64_t q = q0; q < q1; ++q) gi[r * g.w + q] += share;
          }
        }
      }
    }
  });
}

}  // namespace

void pool2d(const Pool2dArgs& args) {
  check_pool_args("cpu pool2d", args.g, args.mode, args.indices);
  dispatch(pool2d_types{}, args.dtype, "cpu pool2d", [&]<class T> { forward_typed<T>(args); });
}

void pool2d_backward(const Pool2dBackwardArgs& args) {
  check_pool_args("cpu pool2d_backward", args.g, args.mode, args.indices);
  dispatch(pool2d_backward_types{}, args.dtype, "cpu pool2d_backward", [&]<class T> { backward_typed<T>(args); });
}

}  // namespace atelier::cpu
