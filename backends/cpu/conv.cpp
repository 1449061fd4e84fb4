// 2-d convolution on the CPU (NCHW, groups = 1): im2col + single-threaded Eigen GEMMs, threads from our pool.
//
// For one image, the im2col matrix col has one row per (c, i, j) of the kernel and one column per output pixel:
//   col (C_in*kh*kw, H_out*W_out) [(c, i, j), (oy, ox)] = input[c, oy*stride_h - pad_h + i, ox*stride_w - pad_w + j]
// (zero outside the image), so the convolution is a matrix product. We build col one tile at a time, a block of
// whole output rows sized to stay in L2, and hand each tile to a GEMM that sees it right after it was written:
//   forward          out[:, tile] (C_out, P) = W (C_out, CKK) * col[:, tile] (CKK, P) + bias
//   backward-weight  gW (C_out, CKK)        += grad_out[:, tile] (C_out, P) * col[:, tile]^T (P, CKK)
//   backward-input   stride 1, pad <= k - 1, C_out <= 2 C_in: the forward convolution of grad_out with the
//                    weights flipped in space and transposed in channels, padding k - 1 - pad (a gather: GEMM
//                    depth C_out*kh*kw);
//                    otherwise col (CKK, P) = W^T * grad_out[:, tile], then col2im adds col back into the image
// A 1x1, stride-1, unpadded convolution needs no col at all: the image (C_in, H*W) is its own im2col matrix.
//
// Stride 2 in x (BEGAN's downsampling layers): im2col gathers every second input column with vector shuffles from
// a zero-padded copy of each input row (im2col_stride2). For float where AVX-512 is compiled in and w_out divides
// 32, the forward pass and the input gradient use packed_gemm (backends/cpu/packed_gemm.h) instead of Eigen: the
// weights (or their transpose) are packed once per call, not once per tile, and im2col writes its tile straight
// into the GEMM's 32-column panels; the input gradient's col2im builds each input row whole from the taps that
// reach it and writes it once (col2im_stride2), so the image is never zero-filled first. On one core these took
// BEGAN's stride-2 layers from 0.8-0.9x oneDNN's speed to about parity (docs/benchmarks.md, "Third pass"). Since
// the fourth pass: the weights are cut into channel blocks that stay in L2 (ChannelBlocks); the float weight
// gradient of any stride-2 convolution uses the packed kernel too, as gW^T = col * grad_out^T with col read as
// im2col writes it (backward_weight_packed); and 3-wide, padding-1 kernels (BEGAN's) gather and scatter their
// three taps in one pass per row (take_three_taps, add_three_taps).
//
// Small images: where a whole image has fewer than kMinTileColumns output pixels (an 8x8 output has 64), one
// item is a group of whole images instead, side by side in col (CKK, images * P) and in one GEMM, so the GEMM is
// not thin: Eigen packs the whole weight matrix on every call, which for 64 columns costs about as much as the
// multiplication. The GEMM's result then goes to each image's place in the output (or grad_output is gathered
// into one (C_out, images * P) block first, for the backward passes).
//
// Threads: the items (an image's tile, or a group of images) are split statically by parallel_for, so thread t
// always gets the same items and results depend only on the thread count. Weight gradients are summed into one partial
// per thread and the partials added in thread order; with fewer tiles than threads the threads split the input channels
// (disjoint column blocks of gW) instead. col2im runs on one thread per (image, channel group):
// no two threads touch one element. Scratch (col tiles, partials, flipped weights) comes from the caching
// allocator, taken before each parallel region starts, so a steady training step allocates nothing from the
// system however the threads are scheduled.
//
// This file is the one entry point per conv primitive, and chooses the algorithm per call without the callers
// knowing: 3x3 stride-1 convolutions may go to Winograd (backends/cpu/winograd.cpp), which computes each 4x4
// (or 2x2) output tile from a 6x6 (4x4) input patch with 36 (16) multiplications per channel pair instead of 144
// (36), through linear transforms of the input, filter and output tiles and one GEMM per transform point. F(4x4)'s
// transforms cost accuracy: float32 results are within a relative L2 error of ~2e-6 of the exact sums, where
// im2col and F(2x2) stay at a few 1e-7. 3x3 stride-1 padding-1 convolutions with few output channels go to the
// direct kernels (backends/cpu/direct_conv.cpp), which need no col matrix. ATELIER_CONV_ALGO=im2col|wino2|wino4|
// direct|auto (or atelier::set_conv_algo, backends/conv_algo.h) forces one; auto, the default, takes each where it
// is expected to win (choose_conv_algo in backends/conv_algo.h: direct for 1 to 3 output channels, Winograd for at
// least 16 channels in and 3 out, F(4x4) unless F(2x2)'s tiles fit the output better).
//
// Input upsampling (Conv2dGeometry::input_upsample = 2, the BEGAN decoder's upsample + conv): the CPU upsamples
// the small input into scratch and runs the plain convolution on it (Winograd included), and sums the plain input
// gradient's 2x2 blocks into the small gradient: the results are bit for bit those of upsample_nearest2d and
// conv2d as separate ops, at the same cost (the same upsampling pass; only the weight gradient upsamples again,
// where the separate ops kept the upsampled tensor alive from the forward pass to the backward).
#include <algorithm>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "backends/conv_algo.h"
#include "backends/cpu/conv_epilogue.h"
#include "backends/cpu/direct_conv.h"
#include "backends/cpu/eigen.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/packed_gemm.h"
#include "backends/cpu/scratch.h"
#include "backends/cpu/simd.h"
#include "backends/cpu/winograd.h"
#include "backends/error.h"
#include "backends/image_checks.h"
#include "backends/thread_pool.h"

namespace atelier::cpu {
namespace {

// The bytes of one col tile: small enough to stay in L2 between im2col and the GEMM, large enough that the GEMM
// sees a few hundred columns. Measured (one core, 3x3 convs of 64 to 256 channels): 1 MiB tiles of at least 256
// columns run the GEMMs at 120-150 GFLOP/s; 128-256 KiB tiles drop the forward pass to 50-80, and whole 64x64
// images (9.4 MiB for 64 channels) fall out of L2 and lose 15%.
constexpr int64_t kTileBytes = int64_t{1} << 20;
constexpr int64_t kMinTileColumns = 256;

// 1x1 kernel, stride 1, no padding: col is the image itself.
bool is_pointwise(const Conv2dGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

// ceil(a / b) for b > 0, and 0 when a <= 0.
int64_t ceil_div_pos(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }

// Output rows per tile when each tile column has `rows_of_col` elements of T.
template <typename T>
int64_t tile_rows(const Conv2dGeometry& g, int64_t rows_of_col) {
  const int64_t columns = std::max(kMinTileColumns, kTileBytes / (rows_of_col * static_cast<int64_t>(sizeof(T))));
  return std::clamp<int64_t>(columns / std::max<int64_t>(g.w_out, 1), 1, std::max<int64_t>(g.h_out, 1));
}

// How a pass cuts its images into items (see the file comment): tiles of output rows of one image, or groups of
// whole small images. `rows_of_col` is the number of col rows a column has (its bytes set the tile size).
// Pointwise convolutions have no col and are never grouped.
struct ItemPlan {
  int64_t rows = 1;    // output rows per tile (h_out for a group)
  int64_t tiles = 1;   // tiles per image (1 for a group)
  int64_t images = 1;  // images per item
  int64_t items = 0;
  int64_t max_columns = 0;  // the most col columns an item has

  struct Item {
    int64_t n0, count, oy0, oy1;  // images [n0, n0 + count), output rows [oy0, oy1) of each
  };
  Item item(const Conv2dGeometry& g, int64_t i) const {
    if (images > 1) return {i * images, std::min(images, g.n - i * images), 0, g.h_out};
    const int64_t oy0 = (i % tiles) * rows;
    return {i / tiles, 1, oy0, std::min(g.h_out, oy0 + rows)};
  }
};

template <typename T>
ItemPlan plan_items(const Conv2dGeometry& g, int64_t rows_of_col) {
  const bool may_group = !is_pointwise(g);
  ItemPlan p;
  p.rows = tile_rows<T>(g, rows_of_col);
  p.tiles = (g.h_out + p.rows - 1) / p.rows;
  const int64_t pixels_out = g.h_out * g.w_out;
  if (may_group && p.tiles == 1 && pixels_out > 0 && pixels_out < kMinTileColumns) {
    p.images = std::clamp<int64_t>(ceil_div_pos(kMinTileColumns, pixels_out), 1, std::max<int64_t>(g.n, 1));
  }
  p.items = p.images > 1 ? ceil_div_pos(g.n, p.images) : g.n * p.tiles;
  p.max_columns = p.images > 1 ? p.images * pixels_out : p.rows * g.w_out;
  return p;
}

// dst (c_out, count * pixels) = the (c_out, pixels) blocks of images [n0, n0 + count) of t (n, c_out, pixels)
// side by side: grad_output gathered for one GEMM over a group of images.
template <typename T>
void gather_images(const T* t, int64_t n0, int64_t count, int64_t c_out, int64_t pixels, T* dst) {
  for (int64_t b = 0; b < count; ++b) {
    for (int64_t o = 0; o < c_out; ++o) {
      const T* src = t + ((n0 + b) * c_out + o) * pixels;
      std::copy(src, src + pixels, dst + o * count * pixels + b * pixels);
    }
  }
}

// The output columns ox whose input column ox*stride - pad + j lies inside [0, w): [lo, hi).
struct ColumnRange {
  int64_t lo, hi;
};
ColumnRange valid_columns(const Conv2dGeometry& g, int64_t j) {
  const int64_t lo = std::min(g.w_out, ceil_div_pos(g.pad_w - j, g.stride_w));
  const int64_t hi = std::clamp<int64_t>(ceil_div_pos(g.w + g.pad_w - j, g.stride_w), lo, g.w_out);
  return {lo, hi};
}

// dst[x] = src[x] (Add: dst[x] += src[x]) for x in [0, n), inline: these rows are 8 to 64 floats, where a call to
// memmove costs as much as the copy (5-8% of a stride-2 pass when im2col and col2im called std::copy).
template <bool Add = false, typename T>
void copy_row(const T* src, int64_t n, T* dst) {
  int64_t x = 0;
  if constexpr (std::is_same_v<T, float>) {
    for (; x + 16 <= n; x += 16) {
      const Vec16 v = *reinterpret_cast<const Vec16*>(src + x);
      Vec16* d = reinterpret_cast<Vec16*>(dst + x);
      *d = Add ? *d + v : v;
    }
  }
  for (; x < n; ++x) dst[x] = Add ? dst[x] + src[x] : src[x];
}

// dst[x] = 0 for x in [0, n), inline for the same reason.
template <typename T>
void zero_row(int64_t n, T* dst) {
  int64_t x = 0;
  if constexpr (std::is_same_v<T, float>) {
    for (; x + 16 <= n; x += 16) *reinterpret_cast<Vec16*>(dst + x) = Vec16{};
  }
  for (; x < n; ++x) dst[x] = T(0);
}

// The shuffles below are written on 8-float vectors (one AVX2 register; AVX-512 runs them on its 256-bit forms):
// GCC builds a shuffle of 16-float vectors on AVX2 lane by lane through the stack (16 loads and stores for 8
// useful floats), which held the stride-2 gather to 9 GB/s; on 8-float ones it emits two or three register
// shuffles (vpermd, vunpcklps, vperm2f128).

// dst[ox] = src[2 * ox] for ox in [0, n): every second element. For float, 8 at a time as two loads and a
// shuffle (GCC does not vectorise the plain loop: it cannot rule out dst and src overlapping).
template <typename T>
void every_second(const T* src, int64_t n, T* dst) {
  int64_t ox = 0;
  if constexpr (std::is_same_v<T, float>) {
    for (; ox + 8 <= n; ox += 8) {
      const Vec8* s = reinterpret_cast<const Vec8*>(src + 2 * ox);
      *reinterpret_cast<Vec8*>(dst + ox) = __builtin_shufflevector(s[0], s[1], 0, 2, 4, 6, 8, 10, 12, 14);
    }
  }
  for (; ox < n; ++ox) dst[ox] = src[2 * ox];
}

// dst[2 * ox] += src[ox] for ox in [0, n): the adjoint of every_second, 8 at a time for float (src's values
// interleaved with zeros, added to two vectors of dst).
template <typename T>
void add_every_second(const T* src, int64_t n, T* dst) {
  int64_t ox = 0;
  if constexpr (std::is_same_v<T, float>) {
    for (; ox + 8 <= n; ox += 8) {
      const Vec8 v = *reinterpret_cast<const Vec8*>(src + ox), zero{};
      Vec8* d = reinterpret_cast<Vec8*>(dst + 2 * ox);
      d[0] += __builtin_shufflevector(v, zero, 0, 8, 1, 8, 2, 8, 3, 8);
      d[1] += __builtin_shufflevector(v, zero, 4, 8, 5, 8, 6, 8, 7, 8);
    }
  }
  for (; ox < n; ++ox) dst[2 * ox] += src[ox];
}

// t_j[ox] = row[2*ox - 1 + j] (0 outside the row) for the taps j = 0, 1, 2 of a 3-wide kernel with padding 1 and
// ox in [0, n), n a multiple of 8 and the row 2 * n long: each 16 floats of the row give 8 columns of all three
// taps, t_1 the even entries, t_2 the odd ones and t_0 the odd ones shifted by a lane (the previous chunk's last
// carried in, 0 at the start). Against a buffer copy of the row and three gathers, this is a third of im2col's
// loads and stores at BEGAN's 8 to 32 output columns.
template <typename T>
void take_three_taps(const T* row, int64_t n, T* t0, T* t1, T* t2) {
  if constexpr (std::is_same_v<T, float>) {
    Vec8 carry{};
    for (int64_t ox = 0; ox < n; ox += 8) {
      const Vec8 a = *reinterpret_cast<const Vec8*>(row + 2 * ox), b = *reinterpret_cast<const Vec8*>(row + 2 * ox + 8);
      const Vec8 even = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
      const Vec8 odd = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
      *reinterpret_cast<Vec8*>(t0 + ox) = __builtin_shufflevector(carry, odd, 7, 8, 9, 10, 11, 12, 13, 14);
      *reinterpret_cast<Vec8*>(t1 + ox) = even;
      *reinterpret_cast<Vec8*>(t2 + ox) = odd;
      carry = odd;
    }
  } else {
    for (int64_t ox = 0; ox < n; ++ox) {
      t0[ox] = ox > 0 ? row[2 * ox - 1] : T(0);
      t1[ox] = row[2 * ox];
      t2[ox] = row[2 * ox + 1];
    }
  }
}

// buf[2*ox + j] += t_j[ox] for the three taps j = 0, 1, 2 of one kernel row and ox in [0, n), n a multiple of 8:
// what three add_every_second calls add, in one pass (the 3-wide kernels of BEGAN's stride-2 layers, whose col2im
// was a quarter of the input gradient at 8 output columns). Per 8 columns: even entries buf[2*ox] get t_0[ox] +
// t_2[ox - 1] (t_2 shifted by a lane, the previous chunk's last lane carried in), odd entries t_1[ox]; the last
// t_2 lands on buf[2*n]. The sums are those of the three calls up to rounding: an even entry's two terms of one
// kernel row are added together before they reach buf.
template <typename T>
void add_three_taps(const T* t0, const T* t1, const T* t2, int64_t n, T* buf) {
  if constexpr (std::is_same_v<T, float>) {
    Vec8 carry{};
    for (int64_t ox = 0; ox < n; ox += 8) {
      const Vec8 a = *reinterpret_cast<const Vec8*>(t0 + ox), b = *reinterpret_cast<const Vec8*>(t1 + ox);
      const Vec8 c = *reinterpret_cast<const Vec8*>(t2 + ox);
      const Vec8 even = a + __builtin_shufflevector(carry, c, 7, 8, 9, 10, 11, 12, 13, 14);
      carry = c;
      Vec8* d = reinterpret_cast<Vec8*>(buf + 2 * ox);
      d[0] += __builtin_shufflevector(even, b, 0, 8, 1, 9, 2, 10, 3, 11);
      d[1] += __builtin_shufflevector(even, b, 4, 12, 5, 13, 6, 14, 7, 15);
    }
    buf[2 * n] += t2[n - 1];
  } else {
    for (int64_t ox = 0; ox < n; ++ox) {
      buf[2 * ox] += t0[ox];
      buf[2 * ox + 1] += t1[ox];
      buf[2 * ox + 2] += t2[ox];
    }
  }
}

// Where im2col writes: row r of col, output row oy of the tile [oy0, oy1) starts at
//   col + (oy - oy0) / rows * stride + r * ld + (oy - oy0) % rows * w_out,
// so the default (one panel) is the row-major matrix with rows ld apart, and rows = R, stride = CKK * 32, ld = 32
// is the packed B operand of packed_gemm (forward_packed below).
struct ColPanels {
  int64_t rows = std::numeric_limits<int64_t>::max();  // output rows per panel
  int64_t stride = 0;                                  // elements from one panel to the next
};

// im2col (below) for stride_w == 2, BEGAN's downsampling layers. The kw taps of kernel row i read the same input
// row, at columns 2*ox - pad_w + j; the row is copied once into a buffer with zeros around it (buf[pad_w + x] =
// row[x]), so that each tap is one gather of every second float with no bounds checks, where the generic loop's
// per-segment bounds and fills cost more than the copying. The loops run channel by channel over all the tile's
// rows, so the reads walk each input plane in order, which the prefetcher follows (one call per 32-column panel
// cost 4x more: each call touched three rows of every channel plane, from L3).
template <typename T>
void im2col_stride2(const Conv2dGeometry& g, const T* image, int64_t c0, int64_t c1, int64_t oy0, int64_t oy1, T* col,
                    int64_t ld, ColPanels panels = {}) {
  // The taps read buf[2*ox + j] for ox < w_out, j < kw; every_second reads 16 floats from 2*ox at a time.
  const int64_t length = std::max(g.pad_w + g.w, 2 * g.w_out + g.kw + 32);
  const int64_t copied = std::clamp<int64_t>(length - g.pad_w, 0, g.w);
  thread_local std::vector<T> buffer;
  buffer.assign(static_cast<size_t>(length), T(0));
  T* const buf = buffer.data();
  const int64_t kk = g.kh * g.kw;
  // BEGAN's case (3 wide, padding 1, w = 2 * w_out, w_out a multiple of 8) reads the row in place, no buffer.
  const bool three_taps =
      std::is_same_v<T, float> && g.kw == 3 && g.pad_w == 1 && g.w == 2 * g.w_out && g.w_out % 8 == 0;
  for (int64_t c = c0; c < c1; ++c) {
    const T* plane = image + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i) {
      T* const taps = col + ((c - c0) * kk + i * g.kw) * ld;  // the kw rows of (c, i, 0..kw-1)
      for (int64_t oy = oy0; oy < oy1; ++oy) {
        T* dst = taps + (oy - oy0) / panels.rows * panels.stride + (oy - oy0) % panels.rows * g.w_out;
        const int64_t iy = oy * g.stride_h - g.pad_h + i;
        if (iy < 0 || iy >= g.h) {
          for (int64_t j = 0; j < g.kw; ++j) std::fill(dst + j * ld, dst + j * ld + g.w_out, T(0));
          continue;
        }
        if (three_taps) {
          take_three_taps(plane + iy * g.w, g.w_out, dst, dst + ld, dst + 2 * ld);
          continue;
        }
        copy_row(plane + iy * g.w, copied, buf + g.pad_w);
        for (int64_t j = 0; j < g.kw; ++j) every_second(buf + j, g.w_out, dst + j * ld);
      }
    }
  }
}

// col ((c1 - c0)*kh*kw, (oy1 - oy0)*w_out), rows ld elements apart = the rows of channels [c0, c1) and the
// columns of output rows [oy0, oy1) of the im2col matrix of `image` (c_in, h, w).
template <typename T>
void im2col(const Conv2dGeometry& g, const T* image, int64_t c0, int64_t c1, int64_t oy0, int64_t oy1, T* col,
            int64_t ld) {
  if (g.stride_w == 2) return im2col_stride2(g, image, c0, c1, oy0, oy1, col, ld);
  T* row = col;
  for (int64_t c = c0; c < c1; ++c) {
    const T* plane = image + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j, row += ld) {
        const auto [lo, hi] = valid_columns(g, j);
        for (int64_t oy = oy0; oy < oy1; ++oy) {
          T* dst = row + (oy - oy0) * g.w_out;
          const int64_t iy = oy * g.stride_h - g.pad_h + i;
          if (iy < 0 || iy >= g.h) {
            std::fill(dst, dst + g.w_out, T(0));
            continue;
          }
          std::fill(dst, dst + lo, T(0));
          // Output column ox reads input column ox*stride_w + shift (>= 0 for ox >= lo).
          const T* src = plane + iy * g.w;
          const int64_t shift = j - g.pad_w;
          if (g.stride_w == 1 && lo < hi) {
            std::copy(src + lo + shift, src + hi + shift, dst + lo);
          } else if (g.stride_w != 1) {
            for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = src[ox * g.stride_w + shift];
          }
          std::fill(dst + hi, dst + g.w_out, T(0));
        }
      }
    }
  }
}

// col ((c1 - c0)*kh*kw, count * P): the im2col matrices of a group's images [n0, n0 + count) side by side,
// channels [c0, c1), every output row (a group's image is always whole).
template <typename T>
void im2col_images(const Conv2dGeometry& g, const T* input, const ItemPlan::Item& it, int64_t c0, int64_t c1, T* col) {
  const int64_t pixels_out = g.h_out * g.w_out, columns = it.count * pixels_out;
  for (int64_t b = 0; b < it.count; ++b) {
    im2col(g, input + (it.n0 + b) * g.c_in * g.h * g.w, c0, c1, 0, g.h_out, col + b * pixels_out, columns);
  }
}

// The adjoint of im2col: adds col (same layout as above) into the channels [c0, c1) of `image` (c_in, h, w).
template <typename T>
void col2im_add(const Conv2dGeometry& g, const T* col, int64_t c0, int64_t c1, int64_t oy0, int64_t oy1, int64_t ld,
                T* image) {
  const T* row = col;
  for (int64_t c = c0; c < c1; ++c) {
    T* plane = image + c * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j, row += ld) {
        const auto [lo, hi] = valid_columns(g, j);
        for (int64_t oy = oy0; oy < oy1; ++oy) {
          const int64_t iy = oy * g.stride_h - g.pad_h + i;
          if (iy < 0 || iy >= g.h) continue;
          const T* src = row + (oy - oy0) * g.w_out;
          T* dst = plane + iy * g.w;
          const int64_t shift = j - g.pad_w;
          if (g.stride_w == 1) {
            for (int64_t ox = lo; ox < hi; ++ox) dst[ox + shift] += src[ox];
          } else {
            for (int64_t ox = lo; ox < hi; ++ox) dst[ox * g.stride_w + shift] += src[ox];
          }
        }
      }
    }
  }
}

// The input gradient's rows that output rows [oy0, oy1) reach through a kernel of kh rows: [r0, r1).
std::pair<int64_t, int64_t> input_rows(const Conv2dGeometry& g, int64_t oy0, int64_t oy1) {
  const int64_t r0 = std::clamp<int64_t>(oy0 * g.stride_h - g.pad_h, 0, g.h);
  return {r0, std::clamp<int64_t>((oy1 - 1) * g.stride_h - g.pad_h + g.kh, r0, g.h)};
}

// col2im for stride_w == 2 without the zero-filled image: the channels [c0, c1) of `image` (c_in, h, w) get the
// sums of col's terms (layout as for im2col, rows ld apart, output rows [oy0, oy1)), each input row built whole in
// a buffer (the kw taps of every kernel row that reaches it, interleaved by add_every_second) and then written
// once. Tiles of one image must come in order, oy0 = 0 first: rows the previous tile reached are added to, rows
// it did not are written, rows no tile reaches are zeroed (those before the tile, and after it for the last).
template <typename T>
void col2im_stride2(const Conv2dGeometry& g, const T* col, int64_t c0, int64_t c1, int64_t oy0, int64_t oy1, int64_t ld,
                    T* image) {
  const auto [r0, r1] = input_rows(g, oy0, oy1);
  const int64_t reached = oy0 == 0 ? 0 : input_rows(g, oy0 - 1, oy0).second;  // rows [0, reached) hold sums
  const int64_t zero_to = oy1 == g.h_out ? g.h : r1;                          // rows [r1, zero_to): none reach
  // buf[pad_w + x] is input column x; the taps write buf[2*ox + j] (add_every_second: 16 floats from 2*ox at a time).
  const int64_t length = std::max(g.pad_w + g.w, 2 * g.w_out + g.kw + 32);
  thread_local std::vector<T> buffer;
  buffer.resize(static_cast<size_t>(length));
  T* const buf = buffer.data();
  const int64_t kk = g.kh * g.kw;
  for (int64_t c = c0; c < c1; ++c) {
    T* plane = image + c * g.h * g.w;
    if (reached < r0) std::fill(plane + reached * g.w, plane + r0 * g.w, T(0));
    std::fill(plane + r1 * g.w, plane + zero_to * g.w, T(0));
    for (int64_t iy = r0; iy < r1; ++iy) {
      zero_row(length, buf);
      for (int64_t i = 0; i < g.kh; ++i) {
        // Output row oy reaches input row iy through kernel row i when oy * stride_h - pad_h + i = iy.
        const int64_t from = iy + g.pad_h - i;
        if (from % g.stride_h != 0 || from / g.stride_h < oy0 || from / g.stride_h >= oy1 || from < 0) continue;
        const T* taps = col + ((c - c0) * kk + i * g.kw) * ld + (from / g.stride_h - oy0) * g.w_out;
        if (std::is_same_v<T, float> && g.kw == 3 && g.w_out % 8 == 0) {
          add_three_taps(taps, taps + ld, taps + 2 * ld, g.w_out, buf);
        } else {
          for (int64_t j = 0; j < g.kw; ++j) add_every_second(taps + j * ld, g.w_out, buf + j);
        }
      }
      T* row = plane + iy * g.w;
      const T* sums = buf + g.pad_w;
      if (iy < reached) {
        copy_row<true>(sums, g.w, row);
      } else {
        copy_row(sums, g.w, row);
      }
    }
  }
}

// ---- The packed-GEMM path (packed_gemm.h): float convolutions of stride_w 2, where AVX-512 is compiled in. ----
// The weights (or their transpose) are packed once per call; each tile's B operand is written in panel order, and
// a tile is one image's output rows (no groups of images: the GEMM runs one 32-column panel at a time anyway, so
// an 8x8 output's two panels cost what they would inside a group). The forward pass needs w_out to divide the
// panel width, so that a panel holds R = 32 / w_out whole output rows and im2col writes it directly (rows 32
// apart); BEGAN's stride-2 layers have w_out 32, 16 and 8.
template <typename T>
bool use_packed(const Conv2dGeometry& g) {
  return std::is_same_v<T, float> && kPackedGemmFast && g.stride_w == 2 && g.w_out > 0 && kPanelColumns % g.w_out == 0;
}

// The weight gradient takes the packed path for any w_out: its im2col matrix is the GEMM's A, row-major.
template <typename T>
bool use_packed_weight_grad(const Conv2dGeometry& g) {
  return std::is_same_v<T, float> && kPackedGemmFast && g.stride_w == 2;
}

// Output rows per tile on the packed path: tile_rows' rule, rounded up to whole panels of R rows.
int64_t packed_tile_rows(const Conv2dGeometry& g, int64_t rows_of_col) {
  const int64_t per_panel = kPanelColumns / g.w_out;
  const int64_t rows = ceil_div_pos(tile_rows<float>(g, rows_of_col), per_panel) * per_panel;
  return std::min(rows, std::max<int64_t>(g.h_out, 1));
}

// The packed B ((c1 - c0)*kh*kw, (oy1 - oy0)*w_out) of channels [c0, c1) and output rows [oy0, oy1) of `image`
// (c_in, h, w): panel q is the im2col matrix of output rows oy0 + q*R .. oy0 + q*R + R - 1 with rows
// kPanelColumns apart. A last panel cut short by the tile's end has its columns past the tile zeroed: packed_gemm
// computes and drops them, and what the scratch held there (a denormal, say) could cost microcode assists.
void im2col_panels(const Conv2dGeometry& g, const float* image, int64_t c0, int64_t c1, int64_t oy0, int64_t oy1,
                   float* bp) {
  const int64_t depth = (c1 - c0) * g.kh * g.kw, per_panel = kPanelColumns / g.w_out;
  im2col_stride2(g, image, c0, c1, oy0, oy1, bp, kPanelColumns, {per_panel, depth * kPanelColumns});
  const int64_t full = (oy1 - oy0) / per_panel, filled = (oy1 - oy0) % per_panel * g.w_out;
  if (filled == 0) return;
  float* const last = bp + full * depth * kPanelColumns;
  for (int64_t r = 0; r < depth; ++r)
    std::fill(last + r * kPanelColumns + filled, last + (r + 1) * kPanelColumns, 0.0f);
}

// Channel blocks: the packed weights (or their transpose) are cut by input channels into blocks of at most
// kWeightBlockBytes, so that a block stays in L2 (1 MiB a core) while a thread runs it over all its images, with
// the B panels and C beside it. Unblocked, BEGAN's layer 3 (256 x 1728 weights, 1.7 MiB packed) streamed the whole
// weight set from L3 for every 32-column panel, and each of two threads did (docs/benchmarks.md, "Fourth pass").
constexpr int64_t kWeightBlockBytes = int64_t{512} << 10;

struct ChannelBlocks {
  int64_t count = 1;
  // Block b's input channels [first, second).
  std::pair<int64_t, int64_t> channels(const Conv2dGeometry& g, int64_t b) const {
    return {b * g.c_in / count, (b + 1) * g.c_in / count};
  }
  // The most channels a block has.
  int64_t max_channels(const Conv2dGeometry& g) const { return ceil_div_pos(g.c_in, count); }
};

// At least `at_least` blocks (at most one per channel), more where the packed weights exceed kWeightBlockBytes.
ChannelBlocks channel_blocks(const Conv2dGeometry& g, int64_t at_least) {
  const int64_t bytes = packed_a_size(g.c_out, g.c_in * g.kh * g.kw) * int64_t{sizeof(float)};
  return {
      std::clamp<int64_t>(std::max(at_least, ceil_div_pos(bytes, kWeightBlockBytes)), 1, std::max<int64_t>(g.c_in, 1))};
}

// out[n][:, tile] (C_out, P) = sum over channel blocks of W[:, block] (C_out, block's CKK) * col[block, tile] +
// bias. The weights are packed once per call, block by block (block b at packed_a_size(C_out, c0 * kh * kw)), the
// threads packing row panels in parallel; each thread then runs every block over all its tiles (im2col of the
// block's channels straight into panels), the first block writing the output and the others adding to it.
void forward_packed(const Conv2dGeometry& g, const float* input, const float* weight,
                    const ConvEpilogue<float>& epilogue, float* output) {
  const int64_t ckk = g.c_in * g.kh * g.kw, kk = g.kh * g.kw, pixels_in = g.h * g.w, pixels_out = g.h_out * g.w_out;
  const int64_t rows = packed_tile_rows(g, ckk), tiles = ceil_div_pos(g.h_out, rows), items = g.n * tiles;
  const ChannelBlocks blocks = channel_blocks(g, 1);
  Scratch<float> packed_w(packed_a_size(g.c_out, ckk));
  parallel_for(ceil_div_pos(g.c_out, kPanelRows), 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = 0; b < blocks.count; ++b) {
      const auto [c0, c1] = blocks.channels(g, b);
      const int64_t depth = (c1 - c0) * kk, r0 = begin * kPanelRows;
      const int64_t r1 = std::min(g.c_out, end * kPanelRows);
      pack_a(weight + r0 * ckk + c0 * kk, r1 - r0, depth, ckk, 1,
             packed_w.get() + packed_a_size(g.c_out, c0 * kk) + r0 * depth);
    }
  });
  ScratchSlots<float> panels(std::min<int64_t>(num_threads(), items),
                             packed_b_size(blocks.max_channels(g) * kk, rows * g.w_out));
  parallel_for(items, 1, [&](int64_t begin, int64_t end) {
    float* const bp = panels.take();
    for (int64_t b = 0; b < blocks.count; ++b) {
      const auto [c0, c1] = blocks.channels(g, b);
      const float* const wb = packed_w.get() + packed_a_size(g.c_out, c0 * kk);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / tiles, oy0 = (i % tiles) * rows, oy1 = std::min(g.h_out, oy0 + rows);
        const int64_t columns = (oy1 - oy0) * g.w_out;
        im2col_panels(g, input + n * g.c_in * pixels_in, c0, c1, oy0, oy1, bp);
        float* out = output + n * g.c_out * pixels_out + oy0 * g.w_out;  // (C_out, columns), rows P apart
        packed_gemm(wb, bp, g.c_out, columns, (c1 - c0) * kk, out, pixels_out, b > 0);
        if (b == blocks.count - 1 && !epilogue.empty()) {
          for (int64_t o = 0; o < g.c_out; ++o) epilogue.apply(o, out + o * pixels_out, columns);
        }
      }
    }
  });
}

// grad_in[n] = col2im(W^T (CKK, C_out) * grad_out[n][:, tile] (C_out, P)) tile by tile, by channel blocks: block b
// computes the col rows of its channels (W^T's rows [c0*kk, c1*kk), packed once per call, the threads packing
// blocks in parallel) and col2im writes those channels alone. The items are (block, image) pairs, block-major, so
// that a thread's consecutive items share a block (in L2); with fewer images than threads there are at least as
// many blocks as threads need. grad_out's tile is packed by a copy.
void backward_input_packed(const Conv2dGeometry& g, const float* grad_out, const float* weight, float* grad_in) {
  const int64_t ckk = g.c_in * g.kh * g.kw, kk = g.kh * g.kw, pixels_in = g.h * g.w, pixels_out = g.h_out * g.w_out;
  const int threads = num_threads();
  const int64_t rows = packed_tile_rows(g, ckk), tiles = ceil_div_pos(g.h_out, rows);
  const ChannelBlocks blocks = channel_blocks(g, g.n >= threads ? 1 : ceil_div_pos(threads, g.n));
  // Block b's W^T rows at packed_wt + offset(b) (a block's rows are padded to whole 8-row panels).
  std::vector<int64_t> offsets(static_cast<size_t>(blocks.count + 1), 0);
  for (int64_t b = 0; b < blocks.count; ++b) {
    const auto [c0, c1] = blocks.channels(g, b);
    offsets[static_cast<size_t>(b + 1)] = offsets[static_cast<size_t>(b)] + packed_a_size((c1 - c0) * kk, g.c_out);
  }
  Scratch<float> packed_wt(offsets.back());
  parallel_for(blocks.count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const auto [c0, c1] = blocks.channels(g, b);
      pack_a(weight + c0 * kk, (c1 - c0) * kk, g.c_out, 1, ckk, packed_wt.get() + offsets[static_cast<size_t>(b)]);
    }
  });
  const int64_t items = blocks.count * g.n;
  const int64_t col_size = blocks.max_channels(g) * kk * rows * g.w_out;
  ScratchSlots<float> slots(std::min<int64_t>(threads, items), col_size + packed_b_size(g.c_out, rows * g.w_out));
  parallel_for(items, 1, [&](int64_t begin, int64_t end) {
    float* const col = slots.take();
    float* const bp = col + col_size;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / g.n, n = item % g.n;
      const auto [c0, c1] = blocks.channels(g, b);
      float* image = grad_in + n * g.c_in * pixels_in;
      for (int64_t tile = 0; tile < tiles; ++tile) {
        const int64_t oy0 = tile * rows, oy1 = std::min(g.h_out, oy0 + rows), columns = (oy1 - oy0) * g.w_out;
        pack_b(grad_out + n * g.c_out * pixels_out + oy0 * g.w_out, g.c_out, columns, pixels_out, bp);
        packed_gemm(packed_wt.get() + offsets[static_cast<size_t>(b)], bp, (c1 - c0) * kk, columns, g.c_out, col,
                    columns);
        col2im_stride2(g, col, c0, c1, oy0, oy1, columns, image);
      }
    }
  });
}

// The weight gradient's items on the packed path: K columns of col each (a group of whole images, or a tile of
// one image's output rows), K as large as keeps grad_output^T's packed block (K, C_out) within kWeightGradBBytes,
// so that it stays in L2 while the im2col rows stream past it, and at most kWeightGradColumns (each item's sum is
// one chain of K float additions per weight: longer chains cost accuracy); at least one output row.
constexpr int64_t kWeightGradBBytes = int64_t{512} << 10;
constexpr int64_t kWeightGradColumns = 1024;
// col's rows are K + kColPad floats apart: K is often a multiple of 256 (512 or 1024 floats), and rows 4 KiB apart
// share L1 sets and alias in the load queue; the pad made the layer-3 GEMM 6% faster (one core).
constexpr int64_t kColPad = 16;

ItemPlan packed_weight_plan(const Conv2dGeometry& g) {
  const int64_t pixels_out = g.h_out * g.w_out;
  const int64_t target =
      std::clamp<int64_t>(kWeightGradBBytes / (g.c_out * int64_t{sizeof(float)}), 1, kWeightGradColumns);
  ItemPlan p;
  p.rows = pixels_out <= target ? g.h_out : std::clamp<int64_t>(target / std::max<int64_t>(g.w_out, 1), 1, g.h_out);
  p.tiles = ceil_div_pos(g.h_out, p.rows);
  if (p.tiles == 1 && pixels_out > 0) p.images = std::clamp<int64_t>(target / pixels_out, 1, std::max<int64_t>(g.n, 1));
  p.items = p.images > 1 ? ceil_div_pos(g.n, p.images) : g.n * p.tiles;
  p.max_columns = p.images > 1 ? p.images * pixels_out : p.rows * g.w_out;
  return p;
}

// The row length of col on that path.
int64_t packed_weight_ld(const ItemPlan& plan) { return plan.max_columns + kColPad; }

// Input channels per col chunk on that path: about kWeightGradChunkBytes of col rows, in whole multiples of the
// kernel's 8-row blocks (a multiple of 8 channels; at least 8), so that only a last chunk can end in a partial
// block (7 channels at layer 1 gave 63 rows: a partial block, with its scalar store, in every chunk).
constexpr int64_t kWeightGradChunkBytes = int64_t{256} << 10;
int64_t weight_grad_chunk(const Conv2dGeometry& g, const ItemPlan& plan) {
  const int64_t channel_bytes = g.kh * g.kw * packed_weight_ld(plan) * int64_t{sizeof(float)};
  const int64_t chunk = std::max<int64_t>(kWeightGradChunkBytes / channel_bytes / kPanelRows, 1) * kPanelRows;
  return std::clamp<int64_t>(chunk, 1, std::max<int64_t>(g.c_in, 1));
}

// gw's columns of channels [c0, c1) (C_out, (c1-c0)*kk, rows ckk apart) += the items [i0, i1) of `plan`, each
// (col (the im2col rows of those channels, (c1-c0)*kk x K) times grad_output^T (K, C_out))^T. An item's
// grad_output^T is packed first; then col is built and multiplied a chunk of weight_grad_chunk(g, plan) channels
// at a time, so that the chunk's rows are still in L2 when the GEMM reads them (im2col of all the channels first
// wrote 3.5 MB per item at layer 3, which went to L3 and back). `scratch` holds one chunk's col rows, then the
// packed grad_output^T.
void accumulate_weight_grad_packed(const Conv2dGeometry& g, const ItemPlan& plan, const float* input,
                                   const float* grad_out, int64_t i0, int64_t i1, int64_t c0, int64_t c1,
                                   float* scratch, float* gw) {
  const int64_t ckk = g.c_in * g.kh * g.kw, kk = g.kh * g.kw, pixels_in = g.h * g.w, pixels_out = g.h_out * g.w_out;
  const int64_t chunk = weight_grad_chunk(g, plan);
  float* const col = scratch;
  float* const bp = scratch + chunk * kk * packed_weight_ld(plan);
  for (int64_t i = i0; i < i1; ++i) {
    const ItemPlan::Item it = plan.item(g, i);
    const int64_t per_image = (it.oy1 - it.oy0) * g.w_out, columns = it.count * per_image;
    const int64_t ld = columns + kColPad;
    for (int64_t b = 0; b < it.count; ++b) {
      pack_b_transposed(grad_out + (it.n0 + b) * g.c_out * pixels_out + it.oy0 * g.w_out, per_image, g.c_out,
                        pixels_out, columns, bp + b * per_image * kPanelColumns);
    }
    for (int64_t cc0 = c0; cc0 < c1; cc0 += chunk) {
      const int64_t cc1 = std::min(c1, cc0 + chunk);
      for (int64_t b = 0; b < it.count; ++b) {
        im2col(g, input + (it.n0 + b) * g.c_in * pixels_in, cc0, cc1, it.oy0, it.oy1, col + b * per_image, ld);
      }
      gemm_add_transposed(col, ld, bp, (cc1 - cc0) * kk, g.c_out, columns, gw + cc0 * kk, ckk);
    }
  }
}

// gw (C_out, CKK) = the sum over images and pixels of grad_out (C_out, P) col^T (P, CKK), computed as the
// transpose of col * grad_out^T, so that col is the GEMM's A as im2col writes it (no transpose of the large
// operand) and only grad_output is packed (transposed: C_out * P floats an image against col's CKK * P); the
// kernel transposes its blocks of sums into gw. Threads split the items, each summing into its own partial
// (thread 0's is gw), added in thread order; with fewer items than threads they split the input channels
// (disjoint columns of gw) instead.
void backward_weight_packed(const Conv2dGeometry& g, const float* input, const float* grad_out, float* gw) {
  const int64_t ckk = g.c_in * g.kh * g.kw, kk = g.kh * g.kw;
  const ItemPlan plan = packed_weight_plan(g);
  const int threads = num_threads();
  const bool split_items = threads > 1 && plan.items >= threads;
  const bool split_channels = !split_items && threads > 1 && g.c_in >= 2 && !in_parallel_region();
  const int64_t scratch_size =
      weight_grad_chunk(g, plan) * kk * packed_weight_ld(plan) + packed_b_size(plan.max_columns, g.c_out);
  if (split_items) {
    Scratch<float> others((threads - 1) * g.c_out * ckk);  // thread t's partial at others + (t - 1) * C_out * CKK
    const auto partial = [&](int t) { return t == 0 ? gw : others.get() + (t - 1) * g.c_out * ckk; };
    ScratchSlots<float> slots(threads, scratch_size);
    parallel_run([&](int t, int nthreads) {
      float* const p = partial(t);
      std::fill(p, p + g.c_out * ckk, 0.0f);
      accumulate_weight_grad_packed(g, plan, input, grad_out, t * plan.items / nthreads,
                                    (t + 1) * plan.items / nthreads, 0, g.c_in, slots.take(), p);
    });
    parallel_for(g.c_out * ckk, 4096, [&](int64_t begin, int64_t end) {
      for (int t = 1; t < threads; ++t) copy_row<true>(partial(t) + begin, end - begin, gw + begin);
    });
    return;
  }
  ScratchSlots<float> slots(split_channels ? std::min<int64_t>(threads, g.c_in) : 1, scratch_size);
  const auto run = [&](int64_t c0, int64_t c1) {
    for (int64_t o = 0; o < g.c_out; ++o) std::fill(gw + o * ckk + c0 * kk, gw + o * ckk + c1 * kk, 0.0f);
    accumulate_weight_grad_packed(g, plan, input, grad_out, 0, plan.items, c0, c1, slots.take(), gw);
  };
  if (split_channels) {
    parallel_for(g.c_in, 1, run);
  } else {
    run(0, g.c_in);
  }
}

template <typename T>
void forward_typed(const Conv2dGeometry& g, const T* input, const T* weight, const ConvEpilogue<T>& epilogue,
                   T* output) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_packed<T>(g)) return forward_packed(g, input, weight, epilogue, output);
  }
  const int64_t ckk = g.c_in * g.kh * g.kw, pixels_in = g.h * g.w, pixels_out = g.h_out * g.w_out;
  const bool pointwise = is_pointwise(g);
  const ItemPlan plan = plan_items<T>(g, ckk);
  const int64_t items = plan.items;
  const auto w = cmat(weight, g.c_out, ckk, ckk);  // (C_out, CKK)
  // Per item: col (CKK, columns), and for a group of images the GEMM's result (C_out, columns) before it is
  // spread over the images.
  const int64_t col_size = pointwise ? 0 : ckk * plan.max_columns;
  const int64_t result_size = plan.images > 1 ? g.c_out * plan.max_columns : 0;
  ScratchSlots<T> cols(std::min<int64_t>(num_threads(), items), col_size + result_size);
  parallel_for(items, 1, [&](int64_t begin, int64_t end) {
    T* const col = cols.take();
    for (int64_t i = begin; i < end; ++i) {
      if (plan.images > 1) {
        // Whole small images side by side: result (C_out, count * P) = W * col, then each image's block.
        const ItemPlan::Item it = plan.item(g, i);
        const int64_t columns = it.count * pixels_out;
        im2col_images(g, input, it, 0, g.c_in, col);
        T* const result = col + col_size;
        mat(result, g.c_out, columns, columns).noalias() = w * cmat(col, ckk, columns, columns);
        for (int64_t b = 0; b < it.count; ++b) {
          for (int64_t o = 0; o < g.c_out; ++o) {
            const T* src = result + o * columns + b * pixels_out;
            T* dst = output + ((it.n0 + b) * g.c_out + o) * pixels_out;
            std::copy(src, src + pixels_out, dst);
            if (!epilogue.empty()) epilogue.apply(o, dst, pixels_out);
          }
        }
        continue;
      }
      const ItemPlan::Item it = plan.item(g, i);  // one image, output rows [oy0, oy1)
      const int64_t columns = (it.oy1 - it.oy0) * g.w_out;
      const T* image = input + it.n0 * g.c_in * pixels_in;
      T* out = output + it.n0 * g.c_out * pixels_out + it.oy0 * g.w_out;  // (C_out, columns), rows P apart
      auto out_tile = mat(out, g.c_out, columns, pixels_out);
      if (pointwise) {
        out_tile.noalias() = w * cmat(image + it.oy0 * g.w_out, ckk, columns, pixels_in);
      } else {
        im2col(g, image, 0, g.c_in, it.oy0, it.oy1, col, columns);
        out_tile.noalias() = w * cmat(col, ckk, columns, columns);
      }
      if (!epilogue.empty()) {
        for (int64_t o = 0; o < g.c_out; ++o) epilogue.apply(o, out + o * pixels_out, columns);
      }
    }
  });
}

// Stride 1 and pad <= k - 1 in both directions: grad_input is a forward convolution of grad_output. Its im2col
// matrix has C_out*kh*kw rows against col2im's C_in*kh*kw, so it pays when C_out is not much larger than C_in
// (measured: 3->64 channels is 3x faster with col2im, 64->3 4x faster as a forward conv, equal channels a tie).
bool backward_input_as_forward(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.pad_h <= g.kh - 1 && g.pad_w <= g.kw - 1 && g.c_out <= 2 * g.c_in;
}

// The input gradient of a stride-1 convolution with pad <= k - 1 as a forward convolution:
//   grad_in[c, y, x] = sum over (o, i, j) of grad_out[o, y + pad - i, x + pad - j] W[o, c, i, j]
//                    = conv(grad_out, W') with W'[c, o, i', j'] = W[o, c, kh-1-i', kw-1-j'], padding k - 1 - pad,
// computed by `forward(t, grad_out, W', grad_in)` with t that convolution's geometry (im2col's forward pass, or the
// direct kernels', whose shapes, 3x3 with padding 1, keep padding 1).
template <typename T, class Forward>
void input_gradient_as_forward(const Conv2dGeometry& g, const T* grad_out, const T* weight, T* grad_in,
                               Forward forward) {
  Scratch<T> flipped(g.c_in * g.c_out * g.kh * g.kw);  // (C_in, C_out, kh, kw)
  T* wf = flipped.get();
  for (int64_t o = 0; o < g.c_out; ++o) {
    for (int64_t c = 0; c < g.c_in; ++c) {
      const T* src = weight + (o * g.c_in + c) * g.kh * g.kw;
      T* dst = wf + (c * g.c_out + o) * g.kh * g.kw;
      for (int64_t k = 0; k < g.kh * g.kw; ++k) dst[k] = src[g.kh * g.kw - 1 - k];
    }
  }
  Conv2dGeometry t = g;
  t.c_in = g.c_out;
  t.h = g.h_out;
  t.w = g.w_out;
  t.c_out = g.c_in;
  t.pad_h = g.kh - 1 - g.pad_h;
  t.pad_w = g.kw - 1 - g.pad_w;
  t.h_out = g.h;
  t.w_out = g.w;
  forward(t, grad_out, static_cast<const T*>(wf), grad_in);
}

template <typename T>
void backward_input_typed(const Conv2dGeometry& g, const T* grad_out, const T* weight, T* grad_in) {
  const int64_t ckk = g.c_in * g.kh * g.kw, pixels_in = g.h * g.w, pixels_out = g.h_out * g.w_out;
  if (is_pointwise(g)) {
    // grad_in[n] (C_in, HW) = W^T (C_in, C_out) * grad_out[n] (C_out, HW), a column block per item.
    const int64_t rows = tile_rows<T>(g, g.c_in);
    const int64_t tiles = (g.h_out + rows - 1) / rows;
    const auto wt = cmat(weight, g.c_out, g.c_in, g.c_in).transpose();
    parallel_for(g.n * tiles, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t n = item / tiles, p0 = (item % tiles) * rows * g.w_out;
        const int64_t columns = std::min(pixels_out, p0 + rows * g.w_out) - p0;
        mat(grad_in + n * g.c_in * pixels_in + p0, g.c_in, columns, pixels_in).noalias() =
            wt * cmat(grad_out + n * g.c_out * pixels_out + p0, g.c_out, columns, pixels_out);
      }
    });
    return;
  }
  if (backward_input_as_forward(g)) {
    return input_gradient_as_forward(
        g, grad_out, weight, grad_in,
        [](const Conv2dGeometry& t, const T* x, const T* w, T* y) { forward_typed<T>(t, x, w, ConvEpilogue<T>{}, y); });
  }
  if constexpr (std::is_same_v<T, float>) {
    if (use_packed<T>(g)) return backward_input_packed(g, grad_out, weight, grad_in);
  }
  // General case: col = W^T grad_out per tile (or per group of small images, grad_out gathered first), then
  // col2im. With fewer items than threads each image's input channels are split into groups (the col rows of a
  // group land only in its own channels).
  const int threads = num_threads();
  const ItemPlan plan = plan_items<T>(g, ckk);
  const int64_t image_items = plan.images > 1 ? plan.items : g.n;  // tiles are looped inside an item
  const int64_t groups =
      image_items >= threads ? 1 : std::min<int64_t>(g.c_in, (threads + image_items - 1) / image_items);
  const int64_t kk = g.kh * g.kw;
  const int64_t col_size = ckk * plan.max_columns;
  const int64_t gathered_size = plan.images > 1 ? g.c_out * plan.max_columns : 0;
  ScratchSlots<T> cols(std::min<int64_t>(threads, image_items * groups), col_size + gathered_size);
  parallel_for(image_items * groups, 1, [&](int64_t begin, int64_t end) {
    T* const col = cols.take();
    for (int64_t item = begin; item < end; ++item) {
      const int64_t group = item % groups;
      const int64_t c0 = group * g.c_in / groups, c1 = (group + 1) * g.c_in / groups;
      // W^T rows [c0*kk, c1*kk): the transpose of W's columns of those channels, (C_out, (c1-c0)*kk).
      const auto wt = cmat(weight + c0 * kk, g.c_out, (c1 - c0) * kk, ckk).transpose();
      if (plan.images > 1) {
        const ItemPlan::Item it = plan.item(g, item / groups);
        const int64_t columns = it.count * pixels_out;
        T* const gathered = col + col_size;
        gather_images(grad_out, it.n0, it.count, g.c_out, pixels_out, gathered);
        mat(col, (c1 - c0) * kk, columns, columns).noalias() = wt * cmat(gathered, g.c_out, columns, columns);
        for (int64_t b = 0; b < it.count; ++b) {
          T* image = grad_in + (it.n0 + b) * g.c_in * pixels_in;
          std::fill(image + c0 * pixels_in, image + c1 * pixels_in, T(0));
          col2im_add(g, col + b * pixels_out, c0, c1, 0, g.h_out, columns, image);
        }
        continue;
      }
      const int64_t n = item / groups;
      T* image = grad_in + n * g.c_in * pixels_in;
      std::fill(image + c0 * pixels_in, image + c1 * pixels_in, T(0));
      for (int64_t tile = 0; tile < plan.tiles; ++tile) {
        const int64_t oy0 = tile * plan.rows, oy1 = std::min(g.h_out, oy0 + plan.rows), columns = (oy1 - oy0) * g.w_out;
        const T* go = grad_out + n * g.c_out * pixels_out + oy0 * g.w_out;
        mat(col, (c1 - c0) * kk, columns, columns).noalias() = wt * cmat(go, g.c_out, columns, pixels_out);
        col2im_add(g, col, c0, c1, oy0, oy1, columns, image);
      }
    }
  });
}

// gw's columns of channels [c0, c1) (C_out, (c1-c0)*kk, rows ckk apart) += the contributions of the items
// [i0, i1) of `plan`. `col` holds one item's col rows of those channels, then (for a group of small images) its
// gathered grad_output (C_out, columns).
template <typename T>
void accumulate_weight_grad(const Conv2dGeometry& g, const ItemPlan& plan, const T* input, const T* grad_out,
                            int64_t i0, int64_t i1, int64_t c0, int64_t c1, T* col, T* gw) {
  const int64_t ckk = g.c_in * g.kh * g.kw, kk = g.kh * g.kw, pixels_in = g.h * g.w, pixels_out = g.h_out * g.w_out;
  auto gw_block = mat(gw + c0 * kk, g.c_out, (c1 - c0) * kk, ckk);
  for (int64_t i = i0; i < i1; ++i) {
    const ItemPlan::Item it = plan.item(g, i);
    if (plan.images > 1) {
      const int64_t columns = it.count * pixels_out;
      T* const gathered = col + (c1 - c0) * kk * columns;
      gather_images(grad_out, it.n0, it.count, g.c_out, pixels_out, gathered);
      im2col_images(g, input, it, c0, c1, col);
      gw_block.noalias() +=
          cmat(gathered, g.c_out, columns, columns) * cmat(col, (c1 - c0) * kk, columns, columns).transpose();
      continue;
    }
    const int64_t columns = (it.oy1 - it.oy0) * g.w_out;
    const T* image = input + it.n0 * g.c_in * pixels_in;
    const auto go = cmat(grad_out + it.n0 * g.c_out * pixels_out + it.oy0 * g.w_out, g.c_out, columns, pixels_out);
    if (is_pointwise(g)) {
      gw_block.noalias() +=
          go * cmat(image + c0 * pixels_in + it.oy0 * g.w_out, c1 - c0, columns, pixels_in).transpose();
    } else {
      im2col(g, image, c0, c1, it.oy0, it.oy1, col, columns);
      gw_block.noalias() += go * cmat(col, (c1 - c0) * kk, columns, columns).transpose();
    }
  }
}

template <typename T>
void backward_weight_typed(const Conv2dBackwardWeightArgs& args) {
  const Conv2dGeometry& g = args.g;
  const T* input = static_cast<const T*>(args.input);
  const T* grad_out = static_cast<const T*>(args.grad_output);
  T* gw = static_cast<T*>(args.grad_weight);
  if constexpr (std::is_same_v<T, float>) {
    if (use_packed_weight_grad<T>(g)) return backward_weight_packed(g, input, grad_out, gw);
  }
  const int64_t ckk = g.c_in * g.kh * g.kw, kk = g.kh * g.kw;
  // Pointwise convolutions need no col and are never grouped.
  const ItemPlan plan = plan_items<T>(g, ckk);
  const int64_t items = plan.items;
  // Per item and channel: col rows, plus the gathered grad_output of a group of images.
  const auto scratch_for = [&](int64_t channels) {
    if (is_pointwise(g)) return int64_t{0};
    return (channels * kk + (plan.images > 1 ? g.c_out : 0)) * plan.max_columns;
  };
  const int threads = num_threads();

  if (threads > 1 && items >= threads) {
    // Thread t sums the items [t*I/T, (t+1)*I/T) into its own partial (thread 0's is grad_weight itself); the
    // partials are then added in thread order, element by element.
    std::vector<T*> partials(static_cast<size_t>(threads), gw);
    std::vector<std::unique_ptr<Scratch<T>>> owned;
    for (int t = 1; t < threads; ++t) {
      owned.push_back(std::make_unique<Scratch<T>>(g.c_out * ckk));
      partials[static_cast<size_t>(t)] = owned.back()->get();
    }
    ScratchSlots<T> cols(threads, scratch_for(g.c_in));
    parallel_run([&](int t, int nthreads) {
      T* const col = cols.take();
      T* partial = partials[static_cast<size_t>(t)];
      std::fill(partial, partial + g.c_out * ckk, T(0));
      accumulate_weight_grad(g, plan, input, grad_out, t * items / nthreads, (t + 1) * items / nthreads, 0, g.c_in, col,
                             partial);
    });
    parallel_for(g.c_out * ckk, 4096, [&](int64_t begin, int64_t end) {
      for (int t = 1; t < threads; ++t) {
        const T* p = partials[static_cast<size_t>(t)];
        for (int64_t e = begin; e < end; ++e) gw[e] += p[e];
      }
    });
  } else {
    // Fewer tiles than threads (one small image): each thread owns the columns of a group of input channels.
    // A chunk's channels are at most ceil(C_in / threads) (or all C_in when it runs alone).
    const bool split = threads > 1 && g.c_in >= 2 && !in_parallel_region();
    const int64_t max_channels = split ? (g.c_in + threads - 1) / threads : g.c_in;
    ScratchSlots<T> cols(split ? std::min<int64_t>(threads, g.c_in) : 1, scratch_for(max_channels));
    parallel_for(g.c_in, 1, [&](int64_t c0, int64_t c1) {
      T* const col = cols.take();
      for (int64_t o = 0; o < g.c_out; ++o) std::fill(gw + o * ckk + c0 * kk, gw + o * ckk + c1 * kk, T(0));
      accumulate_weight_grad(g, plan, input, grad_out, 0, items, c0, c1, col, gw);
    });
  }
}

// grad_bias[o] = sum over images and pixels of grad_out[n, o, :], one channel a thread. Each image's row is
// summed by Eigen's vectorised sum in T (16 float lanes, then a fixed tree: deterministic, and each lane adds
// at most a few hundred values), the rows in double. A scalar loop in double cannot be vectorised without
// reordering the additions, and neither was Eigen's sum of the row cast to double: both took ~3% of a 64x64
// BEGAN step, more than a copy of grad_out would.
template <typename T>
void bias_grad(const Conv2dGeometry& g, const T* grad_out, T* gb) {
  const int64_t pixels_out = g.h_out * g.w_out;
  parallel_for(g.c_out, 1, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      double sum = 0;
      for (int64_t n = 0; n < g.n; ++n) {
        const Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> r(grad_out + (n * g.c_out + o) * pixels_out,
                                                                     pixels_out);
        sum += static_cast<double>(r.sum());
      }
      gb[o] = static_cast<T>(sum);
    }
  });
}

// Input upsampling, by the upsampling kernels: the small input (n, c_in, h / u, w / u) of an input-upsampling
// geometry g is upsampled into a scratch image (n, c_in, h, w) (upsampled_image), which the plain geometry
// (input_upsample 1) convolves; the plain input gradient goes to such an image too, then to the small gradient.
Scratch<char> upsampled_image(const Conv2dGeometry& g, DType dtype) {
  return Scratch<char>(g.n * g.c_in * g.h * g.w * static_cast<int64_t>(dtype_size(dtype)));
}

// Forward (src the small image, dst the upsampled one) or backward (src the upsampled gradient, dst the small).
UpsampleNearestArgs upsample_args(const Conv2dGeometry& g, DType dtype, const void* src, void* dst) {
  UpsampleNearestArgs a{};
  a.dtype = dtype;
  a.n = g.n;
  a.c = g.c_in;
  a.h = g.h / g.input_upsample;
  a.w = g.w / g.input_upsample;
  a.scale_h = a.scale_w = g.input_upsample;
  a.src = src;
  a.dst = dst;
  return a;
}

// The forward pass or the weight gradient of an input-upsampling convolution: `run` (the entry point itself)
// gets the plain args, whose input is the small input upsampled into scratch.
template <class Args, class Run>
void with_upsampled_input(const Args& args, Run run) {
  Scratch<char> big = upsampled_image(args.g, args.dtype);
  upsample_nearest2d(upsample_args(args.g, args.dtype, args.input, big.get()));
  Args plain = args;
  plain.g.input_upsample = 1;
  plain.input = big.get();
  run(plain);
}

}  // namespace

void conv2d(const Conv2dForwardArgs& args) {
  check_conv_geometry("cpu conv2d", args.g);
  ATELIER_CHECK(args.activation == ConvActivation::None || args.activation == ConvActivation::Elu,
                "cpu conv2d: unknown activation " << static_cast<int>(args.activation));
  if (args.g.input_upsample != 1) return with_upsampled_input(args, [](const Conv2dForwardArgs& p) { conv2d(p); });
  const ConvAlgo algo = choose_conv_algo(args.g, conv_algo());
  const int m = winograd_tile_size(algo);
  dispatch(conv2d_types{}, args.dtype, "cpu conv2d", [&]<class T> {
    const auto epilogue = ConvEpilogue<T>::from(args);
    if (algo == ConvAlgo::Direct) {
      return direct_forward<T>(args.g, static_cast<const T*>(args.input), static_cast<const T*>(args.weight), epilogue,
                               static_cast<T*>(args.output));
    }
    if (m != 0) {
      winograd_forward<T>(m, args.g, static_cast<const T*>(args.input), static_cast<const T*>(args.weight), epilogue,
                          static_cast<T*>(args.output));
      return;
    }
    forward_typed<T>(args.g, static_cast<const T*>(args.input), static_cast<const T*>(args.weight), epilogue,
                     static_cast<T*>(args.output));
  });
}

void conv2d_backward_input(const Conv2dBackwardInputArgs& args) {
  check_conv_geometry("cpu conv2d_backward_input", args.g);
  if (args.g.input_upsample != 1) {
    // The plain input gradient (n, c_in, h, w), then each small pixel sums its block.
    Scratch<char> big = upsampled_image(args.g, args.dtype);
    Conv2dBackwardInputArgs p = args;
    p.g.input_upsample = 1;
    p.grad_input = big.get();
    conv2d_backward_input(p);
    upsample_nearest2d_backward(upsample_args(args.g, args.dtype, big.get(), args.grad_input));
    return;
  }
  const ConvAlgo algo = choose_conv_algo(args.g, conv_algo());
  const int m = winograd_tile_size(algo);
  dispatch(conv2d_backward_input_types{}, args.dtype, "cpu conv2d_backward_input", [&]<class T> {
    if (algo == ConvAlgo::Direct) {
      return input_gradient_as_forward(args.g, static_cast<const T*>(args.grad_output),
                                       static_cast<const T*>(args.weight), static_cast<T*>(args.grad_input),
                                       [](const Conv2dGeometry& t, const T* x, const T* w, T* y) {
                                         direct_forward<T>(t, x, w, ConvEpilogue<T>{}, y);
                                       });
    }
    if (m != 0) {
      winograd_backward_input<T>(m, args.g, static_cast<const T*>(args.grad_output), static_cast<const T*>(args.weight),
                                 static_cast<T*>(args.grad_input));
      return;
    }
    backward_input_typed<T>(args.g, static_cast<const T*>(args.grad_output), static_cast<const T*>(args.weight),
                            static_cast<T*>(args.grad_input));
  });
}

void conv2d_backward_weight(const Conv2dBackwardWeightArgs& args) {
  check_conv_geometry("cpu conv2d_backward_weight", args.g);
  if (args.g.input_upsample != 1) {
    return with_upsampled_input(args, [](const Conv2dBackwardWeightArgs& p) { conv2d_backward_weight(p); });
  }
  const ConvAlgo algo = choose_conv_algo(args.g, conv_algo());
  const int m = winograd_tile_size(algo);
  dispatch(conv2d_backward_weight_types{}, args.dtype, "cpu conv2d_backward_weight", [&]<class T> {
    const T* grad_out = static_cast<const T*>(args.grad_output);
    if (algo == ConvAlgo::Direct) {
      direct_backward_weight<T>(args.g, static_cast<const T*>(args.input), grad_out, static_cast<T*>(args.grad_weight));
    } else if (m != 0 && winograd_weight_grad_fits(m, args.g, num_threads(), sizeof(T))) {
      winograd_backward_weight<T>(m, args.g, static_cast<const T*>(args.input), grad_out,
                                  static_cast<T*>(args.grad_weight));
    } else {
      backward_weight_typed<T>(args);
    }
    if (args.grad_bias != nullptr) bias_grad<T>(args.g, grad_out, static_cast<T*>(args.grad_bias));
  });
}

}  // namespace atelier::cpu
