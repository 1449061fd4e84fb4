// Winograd convolution F(m x m, 3x3), m = 2 or 4, on the GPU (NCHW, groups 1). CPU twin:
// backends/cpu/winograd.cpp, whose header comment derives the passes; both use the transforms of
// backends/winograd_transforms.h.
//
// Why on the GPU: a 3x3 convolution by im2col + GEMM multiplies 9 m*m times per output tile and channel pair,
// F(4x4) 36 times (F(2x2): 16 per 2x2 tile against 36). BEGAN's step is 0.318 TFLOP at n = 64, 6.2 ms at the
// H200's measured FP32 GEMM rate (51 TFLOP/s, cuBLAS 8192^3): more than half the 10 ms FP32 target before any
// other work, and GEMMs of a convolution's shapes do not reach that rate. Its 3x3 stride-1 layers are nearly all
// of those FLOPs, and F(4x4) does them with a quarter of the multiplications. Under TF32 and BF16 the products run
// on the tensor cores, where their rounding would be amplified by F(4x4)'s factors (up to 8 and 1/24), so auto
// takes F(2x2) there, whose transforms hold 0 and +-1 only (backends/cuda/conv.cu, conv_choice).
//
// A pass is a correlation of `in` (images, c_in, h, w) with 3x3 filters into `out` (images, c_out, h_out, w_out):
// out[y, x] reads in[y - pad_h + i, x - pad_w + j]. The output is cut into m x m tiles, numbered image by image,
// row by row; a = m + 2, and the a*a transform points xi each get one matrix product over the channels:
//   filter transform  U[xi] (c_out, c_in)  = (G w[o, c] G^T)[xi]            one thread per (o, c)
//   input transform   V[xi] (c_in, tiles)  = (B^T d[c, t] B)[xi]            one thread per (c, tile)
//   products          M[xi] (c_out, tiles) = U[xi] V[xi]                    one strided-batched GEMM, a*a matrices
//   output transform  out tile            = A^T M[.][o, t] A (+ bias, ELU)  one thread per (o, tile)
// Each thread reads and writes its a*a points a plane apart (U, V and M are (a*a, rows, columns)), so consecutive
// threads touch consecutive elements of every plane.
//
// The input gradient is the pass over grad_output with the filter rotated by 180 degrees and its channels swapped,
// padding 2 - pad (negative: cropped, the same bounds test). The weight gradient is the forward pass's adjoint:
// dM[xi] (c_out, tiles) = (A dY A^T)[xi] of the output-gradient tiles, dU[xi] (c_out, c_in) = sum over the tiles
// of dM[xi] V[xi]^T (one strided-batched GEMM per chunk of images, K = the chunk's tiles, summed into dU from the
// second chunk on), then grad_w[o, c] = G^T dU[.][o, c] G.
//
// Input upsampling (Conv2dGeometry::input_upsample 2, the nearest 2x upsampling folded in): the forward pass and the
// weight gradient's input transform read pixel (y, x) of the image the convolution sees at (y / 2, x / 2) of the
// stored one. The input gradient's output transform writes the stored (half-size) image: an m x m tile starts on
// an even row and column, so it holds whole 2x2 blocks, and each stored pixel gets its block's sum, rows then
// columns, the order upsample_nearest2d_backward sums it in.
//
// Scratch: one workspace request per call (the context's one growing block) holds the transformed filter and a
// chunk's V and M, each 256-byte aligned for cuBLAS; chunks are whole images, as many as fit
// conv_workspace_limit() (at least one). Everything is deterministic: fixed-order transforms, cuBLAS's fixed order.
#include <algorithm>
#include <cstdint>

#include "backends/conv_algo.h"
#include "backends/cuda/context.h"
#include "backends/cuda/conv.h"
#include "backends/cuda/device_math.h"
#include "backends/cuda/launch.h"
#include "backends/fast_divide.h"
#include "backends/host_device.h"
#include "backends/winograd_transforms.h"

namespace atelier::cuda {
namespace {

// One pass as a correlation (above). in_upsample 2: `in` is stored at (h/2, w/2). out_upsample 2: `out` is stored at
// (h_out/2, w_out/2), each pixel the sum of its 2x2 block. CPU twin: Problem (backends/cpu/winograd.cpp).
struct Pass {
  int64_t c_in, h, w, c_out, pad_h, pad_w, h_out, w_out;
  int64_t tiles_y, tiles_x;  // of one image's output
  int64_t in_upsample, out_upsample;
  // The pixels of a stored input plane and of a stored output plane.
  int64_t in_plane() const { return h / in_upsample * (w / in_upsample); }
  int64_t out_plane() const { return h_out / out_upsample * (w_out / out_upsample); }
};

template <int M>
Pass make_pass(int64_t c_in, int64_t h, int64_t w, int64_t c_out, int64_t pad_h, int64_t pad_w, int64_t h_out,
               int64_t w_out, int64_t in_upsample, int64_t out_upsample) {
  Pass p{c_in, h, w, c_out, pad_h, pad_w, h_out, w_out, 0, 0, in_upsample, out_upsample};
  p.tiles_y = (h_out + M - 1) / M;
  p.tiles_x = (w_out + M - 1) / M;
  return p;
}

// The tiles of a chunk, and the divisions that split the index e = channel * count + t of a thread of a kernel over
// (channel, tile): prepared on the host once per launch (backends/fast_divide.h), so a thread's split costs a few
// multiplications instead of three divisions.
struct ChunkTiles {
  int64_t count;  // of the chunk
  Divisor by_count, by_per_image, by_tiles_x;
};
ChunkTiles chunk_tiles(const Pass& p, int64_t count) {
  const int64_t per_image = p.tiles_y * p.tiles_x;
  return {count, Divisor(count), Divisor(per_image), Divisor(p.tiles_x)};
}

// Thread e's channel, its tile's image in the chunk and the top-left corner of the tile's m x m output block.
struct TileAt {
  int64_t channel, image, y, x;
};
template <int M>
ATELIER_HOST_DEVICE TileAt tile_at(const ChunkTiles& tiles, int64_t e) {
  int64_t t, r, tx;
  const int64_t channel = tiles.by_count.divide(e, t);
  const int64_t image = tiles.by_per_image.divide(t, r);
  const int64_t ty = tiles.by_tiles_x.divide(r, tx);
  return {channel, image, ty * M, tx * M};
}

// The a*a points of one thread's tile live a plane apart in U, V and M: write the 2-D transform f of `in` (R1 x R1
// -> R2 x R2) there, point xi at dst[xi * plane]; or read R x R points back.
template <int R1, int R2, class T, class F>
ATELIER_HOST_DEVICE void transform_to_planes(const T* in, F f, T* dst, int64_t plane) {
  T out[R2 * R2];
  apply_2d<R1, R2>(in, out, f);
  for (int xi = 0; xi < R2 * R2; ++xi) dst[xi * plane] = out[xi];
}
template <int R, class T>
ATELIER_HOST_DEVICE void load_from_planes(const T* src, int64_t plane, T* out) {
  for (int xi = 0; xi < R * R; ++xi) out[xi] = src[xi * plane];
}

// U[xi] (rows, cols) = (G g G^T)[xi], thread e = r * cols + s. Forward: rows o, cols c, g = w[o, c]. Input gradient
// (rotated): rows c, cols o, g[i][j] = w[o, c][2 - i][2 - j].
template <typename T, int M>
struct FilterTransform {
  const T* weight;  // (c_out, c_in, 3, 3) of the convolution
  T* u;
  int64_t c_out, c_in;
  bool rotated;
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    constexpr int A = M + 2;
    const int64_t cols = rotated ? c_out : c_in, r = e / cols, s = e - r * cols;
    const T* w = weight + ((rotated ? s : r) * c_in + (rotated ? r : s)) * 9;
    T g[9];
    for (int k = 0; k < 9; ++k) g[k] = w[rotated ? 8 - k : k];
    transform_to_planes<3, A>(
        g, [](const T* a, int as, T* b, int bs) { Transforms<T, M>::filter(a, as, b, bs); }, u + e, c_out * c_in);
  }
};

// V[xi] (c_in, tiles) = (B^T d B)[xi] of tile t's a x a input patch in channel c (zero outside the image), thread
// e = c * tiles + t.
template <typename T, int M>
struct InputTransform {
  const T* in;  // the chunk's first image, stored (h / in_upsample, w / in_upsample)
  T* v;
  Pass p;
  ChunkTiles tiles;
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    constexpr int A = M + 2;
    const TileAt at = tile_at<M>(tiles, e);
    const int64_t c = at.channel;
    const bool up = p.in_upsample == 2;
    const int64_t ws = up ? p.w / 2 : p.w;
    const T* plane = in + (at.image * p.c_in + c) * (up ? p.h / 2 : p.h) * ws;
    T d[A * A];
    for (int i = 0; i < A; ++i) {
      const int64_t y = at.y - p.pad_h + i;
      const bool row_inside = y >= 0 && y < p.h;
      const T* row = plane + (up ? y / 2 : y) * ws;
      for (int j = 0; j < A; ++j) {
        const int64_t x = at.x - p.pad_w + j;
        d[i * A + j] = row_inside && x >= 0 && x < p.w ? row[up ? x / 2 : x] : T(0);
      }
    }
    transform_to_planes<A, A>(
        d, [](const T* a, int as, T* b, int bs) { Transforms<T, M>::input(a, as, b, bs); }, v + e,
        p.c_in * tiles.count);
  }
};

// Tile t of output channel o = A^T M[.][o, t] A, + bias[o] (if bias), then ELU (if elu), written where it falls
// inside the output (out_upsample 2: each stored pixel its 2x2 block's sum), thread e = o * tiles + t.
template <typename T, int M>
struct OutputTransform {
  const T* m;
  T* out;  // the chunk's first image
  const T* bias;
  Pass p;
  ChunkTiles tiles;
  bool elu;
  T alpha;
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    constexpr int A = M + 2;
    const TileAt at = tile_at<M>(tiles, e);
    const int64_t o = at.channel;
    T mv[A * A];
    load_from_planes<A>(m + e, p.c_out * tiles.count, mv);
    T y[M * M];
    apply_2d<A, M>(mv, y, [](const T* a, int as, T* b, int bs) { Transforms<T, M>::output(a, as, b, bs); });
    for (int k = 0; k < M * M; ++k) {
      if (bias != nullptr) y[k] += bias[o];
      if (elu) y[k] = dev_elu(y[k], alpha);
    }
    if (p.out_upsample == 1) {
      T* plane = out + (at.image * p.c_out + o) * p.h_out * p.w_out;
      for (int i = 0; i < M && at.y + i < p.h_out; ++i) {
        for (int j = 0; j < M && at.x + j < p.w_out; ++j) plane[(at.y + i) * p.w_out + at.x + j] = y[i * M + j];
      }
      return;
    }
    const int64_t hs = p.h_out / 2, ws = p.w_out / 2, sy = at.y / 2, sx = at.x / 2;
    T* plane = out + (at.image * p.c_out + o) * hs * ws;
    for (int i = 0; i < M / 2 && sy + i < hs; ++i) {
      for (int j = 0; j < M / 2 && sx + j < ws; ++j) {
        const T* block = y + 2 * i * M + 2 * j;
        plane[(sy + i) * ws + sx + j] = block[0] + block[1] + block[M] + block[M + 1];
      }
    }
  }
};

// dM[xi] (c_out, tiles) = (A y A^T)[xi] of output channel o's m x m gradient tile t (zero past the output's edge),
// thread e = o * tiles + t.
template <typename T, int M>
struct GradOutputTransform {
  const T* grad;  // the chunk's first image, (c_out, h_out, w_out) each
  T* dm;
  Pass p;
  ChunkTiles tiles;
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    constexpr int A = M + 2;
    const TileAt at = tile_at<M>(tiles, e);
    const int64_t o = at.channel;
    const T* plane = grad + (at.image * p.c_out + o) * p.h_out * p.w_out;
    T y[M * M];
    for (int i = 0; i < M; ++i) {
      for (int j = 0; j < M; ++j) {
        const bool inside = at.y + i < p.h_out && at.x + j < p.w_out;
        y[i * M + j] = inside ? plane[(at.y + i) * p.w_out + at.x + j] : T(0);
      }
    }
    transform_to_planes<M, A>(
        y, [](const T* a, int as, T* b, int bs) { Transforms<T, M>::output_adjoint(a, as, b, bs); }, dm + e,
        p.c_out * tiles.count);
  }
};

// grad_w[o, c] (3 x 3) = G^T dU[.][o, c] G, thread e = o * c_in + c.
template <typename T, int M>
struct FilterAdjoint {
  const T* du;
  T* grad_weight;
  int64_t point;  // c_out * c_in
  ATELIER_HOST_DEVICE void operator()(int64_t e) const {
    constexpr int A = M + 2;
    T uv[A * A];
    load_from_planes<A>(du + e, point, uv);
    T g[9];
    apply_2d<A, 3>(uv, g, [](const T* a, int as, T* b, int bs) { Transforms<T, M>::filter_adjoint(a, as, b, bs); });
    for (int k = 0; k < 9; ++k) grad_weight[e * 9 + k] = g[k];
  }
};

// Elements rounded up to a whole 256 bytes, so that each piece of the scratch starts aligned for cuBLAS.
template <typename T>
int64_t aligned_elements(int64_t elements) {
  constexpr int64_t unit = 256 / static_cast<int64_t>(sizeof(T));
  return (elements + unit - 1) / unit * unit;
}

// The scratch of a call, one workspace request (the context's one growing block): the a*a planes of a transformed
// filter (the forward's U, or the weight gradient's sum dU: c_out x c_in each), then those of a chunk's transformed
// input tiles (V: c_in x tiles) and of its transformed output tiles (M, or dM: c_out x tiles), each piece 256-byte
// aligned for cuBLAS. A chunk is as many whole images as fit conv_workspace_limit(), at least one (images_per_chunk,
// conv.h); every chunk uses the same pieces.
template <typename T>
struct Scratch {
  int64_t images;  // per chunk
  T *filter, *v, *m;
};
template <typename T, int M>
Scratch<T> scratch(const Pass& p, int64_t n) {
  constexpr int64_t points = (M + 2) * (M + 2), size = sizeof(T);
  const int64_t per_image = p.tiles_y * p.tiles_x;
  const int64_t filter = aligned_elements<T>(points * p.c_out * p.c_in);
  const int64_t images = images_per_chunk(
      filter * size,
      size * (aligned_elements<T>(points * p.c_in * per_image) + aligned_elements<T>(points * p.c_out * per_image)), n);
  const int64_t v = aligned_elements<T>(points * p.c_in * per_image * images);
  const int64_t m = aligned_elements<T>(points * p.c_out * per_image * images);
  T* base = static_cast<T*>(context().workspace(static_cast<size_t>(filter + v + m) * sizeof(T)));
  return {images, base, base + filter, base + filter + v};
}

// The forward pass and the input gradient: U, then per chunk V, M = U V, the output transform.
template <typename T, int M>
void correlate(CudaBackend& backend, const Pass& p, int64_t n, const T* in, const T* weight, bool rotated,
               const T* bias, bool elu, T alpha, T* out) {
  constexpr int64_t points = (M + 2) * (M + 2);
  const Scratch<T> s = scratch<T, M>(p, n);
  const int64_t conv_c_out = rotated ? p.c_in : p.c_out, conv_c_in = rotated ? p.c_out : p.c_in;
  launch_linear(p.c_out * p.c_in, FilterTransform<T, M>{weight, s.filter, conv_c_out, conv_c_in, rotated});
  for (int64_t n0 = 0; n0 < n; n0 += s.images) {
    const int64_t tiles = std::min(s.images, n - n0) * p.tiles_y * p.tiles_x;
    launch_linear(p.c_in * tiles, InputTransform<T, M>{in + n0 * p.c_in * p.in_plane(), s.v, p, chunk_tiles(p, tiles)});
    backend.gemm(gemm_args(dtype_of<T>(), points, p.c_out, tiles, p.c_in, s.filter, false, p.c_out * p.c_in, s.v, false,
                           p.c_in * tiles, s.m, p.c_out * tiles, 0.0));
    launch_linear(p.c_out * tiles, OutputTransform<T, M>{s.m, out + n0 * p.c_out * p.out_plane(), bias, p,
                                                         chunk_tiles(p, tiles), elu, alpha});
  }
}

}  // namespace

template <typename T>
void winograd_forward(CudaBackend& backend, int m, const Conv2dGeometry& g, const T* input, const T* weight,
                      const T* bias, bool elu, T alpha, T* output) {
  with_winograd_tile(m, [&]<int M> {
    const Pass p = make_pass<M>(g.c_in, g.h, g.w, g.c_out, g.pad_h, g.pad_w, g.h_out, g.w_out, g.input_upsample, 1);
    correlate<T, M>(backend, p, g.n, input, weight, false, bias, elu, alpha, output);
  });
}

template <typename T>
void winograd_backward_input(CudaBackend& backend, int m, const Conv2dGeometry& g, const T* grad_output,
                             const T* weight, T* grad_input) {
  with_winograd_tile(m, [&]<int M> {
    const Pass p =
        make_pass<M>(g.c_out, g.h_out, g.w_out, g.c_in, 2 - g.pad_h, 2 - g.pad_w, g.h, g.w, 1, g.input_upsample);
    correlate<T, M>(backend, p, g.n, grad_output, weight, true, nullptr, false, T(0), grad_input);
  });
}

template <typename T>
void winograd_backward_weight(CudaBackend& backend, int m, const Conv2dGeometry& g, const T* input,
                              const T* grad_output, T* grad_weight) {
  with_winograd_tile(m, [&]<int M> {
    constexpr int64_t points = (M + 2) * (M + 2);
    const Pass p = make_pass<M>(g.c_in, g.h, g.w, g.c_out, g.pad_h, g.pad_w, g.h_out, g.w_out, g.input_upsample, 1);
    const Scratch<T> s = scratch<T, M>(p, g.n);  // s.filter is dU, s.m is dM
    for (int64_t n0 = 0; n0 < g.n; n0 += s.images) {
      const int64_t tiles = std::min(s.images, g.n - n0) * p.tiles_y * p.tiles_x;
      launch_linear(g.c_in * tiles,
                    InputTransform<T, M>{input + n0 * g.c_in * p.in_plane(), s.v, p, chunk_tiles(p, tiles)});
      launch_linear(g.c_out * tiles, GradOutputTransform<T, M>{grad_output + n0 * g.c_out * p.out_plane(), s.m, p,
                                                               chunk_tiles(p, tiles)});
      // dU[xi] (c_out, c_in) (+)= dM[xi] (c_out, tiles) V[xi]^T (tiles, c_in)
      backend.gemm(gemm_args(dtype_of<T>(), points, g.c_out, g.c_in, tiles, s.m, false, g.c_out * tiles, s.v, true,
                             g.c_in * tiles, s.filter, g.c_out * g.c_in, n0 == 0 ? 0.0 : 1.0));
    }
    launch_linear(g.c_out * g.c_in, FilterAdjoint<T, M>{s.filter, grad_weight, g.c_out * g.c_in});
  });
}

#define ATELIER_CUDA_WINOGRAD_INSTANTIATE(T)                                                                         \
  template void winograd_forward<T>(CudaBackend&, int, const Conv2dGeometry&, const T*, const T*, const T*, bool, T, \
                                    T*);                                                                             \
  template void winograd_backward_input<T>(CudaBackend&, int, const Conv2dGeometry&, const T*, const T*, T*);        \
  template void winograd_backward_weight<T>(CudaBackend&, int, const Conv2dGeometry&, const T*, const T*, T*);
ATELIER_CUDA_WINOGRAD_INSTANTIATE(float)
ATELIER_CUDA_WINOGRAD_INSTANTIATE(double)
#undef ATELIER_CUDA_WINOGRAD_INSTANTIATE

}  // namespace atelier::cuda
