// Winograd convolution F(m x m, 3x3), m = 2 or 4, for 3x3 stride-1 convolutions on the CPU (NCHW, groups 1).
//
// The output is cut into m x m tiles. Tile (ty, tx) of image n needs the a x a input patch (a = m + 2) at
// (ty*m - pad_h, tx*m - pad_w), zero outside the image. With the transform matrices B^T (a x a), G (a x 3) and
// A^T (m x a) of Lavin & Gray (2016), for every output channel o:
//   out tile (m x m) = A^T [ sum over c of (G w[o, c] G^T) (.) (B^T d[c] B) ] A          ((.) elementwise)
// The a*a products (.) are a*a independent matrix products over the channels, one per transform point xi:
//   filter transform  U[xi] (C_in, C_out)  = (G w[o, c] G^T)[xi]                      once per call
//   input transform   V[xi] (tiles, C_in)  = (B^T d[c] B)[xi]                         per chunk of tiles
//   GEMM              M[xi] (tiles, C_out) = V[xi] * U[xi]                            a*a GEMMs per chunk
//   output transform  out tile            = A^T M[.][tile, o] A (+ bias, then ELU)    straight into the output
// so a 3x3 convolution costs a*a / (9 m*m) of im2col's multiplications: 16/36 for F(2x2), 36/144 for F(4x4).
// The price is accuracy: the transforms add and subtract (F(4x4)'s with factors up to 8 and 1/24), so float32
// results differ from the exact sum by a relative L2 error of ~2e-6 for F(4x4), where F(2x2) (a sum over C_in
// rather than C_in*9 products) stays at im2col's few 1e-7 (tests/test_winograd.cpp measures it).
//
// The input gradient is the forward pass of grad_output with the filter rotated by 180 degrees and its channels
// transposed, padding 2 - pad (negative padding crops: the same code). The weight gradient is the adjoint of the
// forward: per chunk dM[xi] (tiles, C_out) = (A dY A^T)[xi] of the grad_output tiles, dU[xi] (C_out, C_in) +=
// dM[xi]^T * V[xi], and at the end grad_w[o, c] = G^T dU[., o, c] G.
//
// The chunk GEMMs. In float32 where AVX-512 is compiled in they run on the packed kernel of the stride-2
// convolutions (backends/cpu/packed_gemm.h: 8x32 register blocks, every term of a block summed in registers), with
// no packing per chunk: U is written by the filter transform straight into the kernel's B panels, once per call,
// and V is read where the input transform wrote it, as the kernel's A row-major (gemm_rows_a: a block's eight tiles
// as eight streams). The weight gradient dU[xi] (C_out, C_in) += dM[xi]^T V[xi] reads both in place
// (gemm_columns_a): dM[xi]'s rows are the steps of the transposed A (eight output channels side by side), V[xi]'s
// rows are B's rows, which is why V's rows are padded to whole 32-column panels (v_stride). Eigen packed U (up to
// 256 KiB per point) and V again for every one of the a*a products of every chunk, and its kernel ran at ~165
// GFLOP/s on one Zen 5 core on these shapes, the packed kernel at ~260 (docs/benchmarks.md, "Fifth pass").
// float64, and float32 without AVX-512, keep Eigen.
//
// Threads: the tiles of all images are numbered in order and cut into chunks of at most winograd_chunk_tiles (a
// limit by the layer's channels and the core's L2), the chunk count a multiple of the thread count so the static
// split is even. Chunk boundaries depend only on the shape, the thread count and that limit, each chunk's GEMMs
// are single-threaded (each element's sum in one fixed order), and the weight gradient is summed per thread then
// reduced in thread order: on one machine, results depend only on the thread count. Scratch comes from the caching
// allocator before each parallel region (backends/cpu/scratch.h).
//
// The transforms run over Eigen::Array of one 64-byte vector of channels (16 floats, 8 doubles): written as
// scalar loops over a tile, GCC 12 did not vectorise them and the transforms took 4x longer.
#include "backends/cpu/winograd.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include <unistd.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "backends/cpu/eigen.h"
#include "backends/cpu/packed_gemm.h"
#include "backends/cpu/scratch.h"
#include "backends/error.h"
#include "backends/thread_pool.h"
#include "backends/winograd_transforms.h"

namespace atelier::cpu {
namespace {

// The most bytes the weight gradient's per-thread partials may take (winograd_weight_grad_fits).
constexpr int64_t kPartialBudgetBytes = int64_t{256} << 20;

// The most tiles a chunk holds (winograd_chunk_tiles below). F(4x4) on 64 channels: V and M are 36 * 96 * 64 floats =
// 864 KiB each, so together they do not stay in a 1 MiB L2; on a Zen 5 core smaller chunks helped the 64-channel
// layers but cost the wider ones (their weight gradient re-reads its partials once per chunk), and no size measured
// better everywhere (docs/benchmarks.md, "Sixth pass"). On a Xeon core with 2 MiB of L2, chunks of 40 tiles made
// every pass of the 64- and 128-channel layers faster (the 64 -> 64 layer at 64x64 0.82-0.90 of its time, the
// 128 -> 128 at 32x32 0.90), the 192-channel weight gradient slower, and the BEGAN 64x64 step 0.91-0.93 at one and
// two threads (docs/benchmarks.md, "Intel Xeon"): there layers of at most kNarrowChannels channels in and out
// together take kNarrowChunkTiles. The L2 is only how the rule tells those cores apart; why the Xeon prefers small
// chunks was not resolved (the VM has no hardware counters).
constexpr int64_t kChunkTiles = 96;
constexpr int64_t kNarrowChunkTiles = 40;
constexpr int64_t kNarrowChannels = 256;
constexpr long kLargeL2Bytes = long{2} << 20;

// 0: the rule above; else every layer's chunk limit (set_winograd_chunk_tiles).
std::atomic<int64_t> g_chunk_tiles{0};

// One 64-byte vector of T, the unit the transforms work on: lane l is channel c0 + l.
template <typename T>
constexpr int kLanes = static_cast<int>(64 / sizeof(T));
template <typename T>
using Lanes = Eigen::Array<T, kLanes<T>, 1>;

// Whether the chunk GEMMs of T run on the packed kernel (float where AVX-512 is compiled in) or on Eigen.
template <typename T>
constexpr bool kPackedChunks = std::is_same_v<T, float>&& kPackedGemmFast;

// The row stride of a chunk's V[xi] (tiles, channels). The packed kernel's weight gradient reads V as its B,
// kPanelColumns columns at a time, so its rows are padded to a whole panel (the padding zero); Eigen reads
// exactly `channels`.
template <typename T>
int64_t v_stride(int64_t channels) {
  return kPackedChunks<T> ? (channels + kPanelColumns - 1) / kPanelColumns * kPanelColumns : channels;
}

// The elements of one transformed filter U[xi] (rows, cols): packed B panels (packed_gemm.h, the padding columns
// zero) for the packed kernel, row-major for Eigen.
template <typename T>
int64_t u_point_size(int64_t rows, int64_t cols) {
  return kPackedChunks<T> ? packed_b_size(rows, cols) : rows * cols;
}

// Up to kLanes<T> values at p into v (missing lanes zero), and back.
template <typename T>
Lanes<T> load_lanes(const T* p, int64_t count) {
  if (count == kLanes<T>) return Eigen::Map<const Lanes<T>>(p);
  Lanes<T> v = Lanes<T>::Zero();
  for (int64_t l = 0; l < count; ++l) v(l) = p[l];
  return v;
}
template <typename T>
void store_lanes(const Lanes<T>& v, T* p, int64_t count) {
  if (count == kLanes<T>) {
    Eigen::Map<Lanes<T>> out(p);
    out = v;
  } else {
    for (int64_t l = 0; l < count; ++l) p[l] = v(l);
  }
}

// One Winograd pass as a correlation of `in` (n, c_in, h, w) with a 3x3 filter into `out` (n, c_out, h_out,
// w_out): out[y, x] reads in[y - pad_h + i, x - pad_w + j]. The forward pass is the convolution's geometry; the
// input gradient swaps the roles (pad 2 - pad may be negative).
struct Problem {
  int64_t n, c_in, h, w, c_out, pad_h, pad_w, h_out, w_out;
};

Problem forward_problem(const Conv2dGeometry& g) {
  return {g.n, g.c_in, g.h, g.w, g.c_out, g.pad_h, g.pad_w, g.h_out, g.w_out};
}

// The tiles of a problem (numbered image by image, row by row) and their split into chunks.
template <int M>
struct Tiling {
  int64_t tiles_y, tiles_x, per_image, tiles, chunk, chunks;

  Tiling(const Problem& p, int threads) {
    tiles_y = (p.h_out + M - 1) / M;
    tiles_x = (p.w_out + M - 1) / M;
    per_image = tiles_y * tiles_x;
    tiles = p.n * per_image;
    // At least ceil(tiles / limit) chunks, rounded up to a multiple of the thread count, then equal sizes.
    const int64_t limit = winograd_chunk_tiles(p.c_in + p.c_out);
    const int64_t wanted = std::max<int64_t>(1, (tiles + limit - 1) / limit);
    const int64_t even = (wanted + threads - 1) / threads * threads;
    chunk = std::max<int64_t>(1, (tiles + even - 1) / even);
    chunks = (tiles + chunk - 1) / chunk;
  }
  // Tile t: its image and the top-left corner of its m x m output block.
  struct Where {
    int64_t n, y, x;
  };
  Where where(int64_t t) const {
    const int64_t r = t % per_image;
    return {t / per_image, (r / tiles_x) * M, (r % tiles_x) * M};
  }
};

// The most bytes of a gather strip (below): one vector of channels of a run of tiles, kept within the 48 KiB L1 with
// room for the lines being read and stored around it. A 64-wide image's whole tile row of F(4x4) is 25 KiB.
constexpr int64_t kStripBytes = int64_t{32} << 10;

// The elements from one point's matrix of a chunk to the next (V[xi] to V[xi + 1], likewise M and dM): k rows of
// ld, plus one 64-byte line. The transforms store (input) or load (output) a tile's a*a values of a vector of
// channels at once, one per point; were the points a multiple of 4 KiB apart, as k*ld is at 96 tiles of 64
// channels (24 KiB), all a*a lines would fall into one set of the 12-way L1 and evict each other. One line more
// per point spreads them over a*a sets: 64 -> 64 channels at 64x64, one thread, the forward pass took 0.84 of its
// time and the weight gradient 0.72 (docs/benchmarks.md, "Sixth pass"). Which shapes alias depends on the chunk
// size, so on the thread count (at two threads the 192-channel 16x16 layer does, the 64x64 ones do not).
template <typename T>
int64_t point_stride(int64_t k, int64_t ld) {
  return k * ld + kLanes<T>;
}

// One chunk's scratch, as the forward pass and the weight gradient lay it out: V (P matrices of `chunk` rows of
// ldv, point_stride apart), then M or dM (P matrices of `chunk` rows of c_out, likewise), then a gather strip.
template <typename T>
struct ChunkScratch {
  int64_t v_elements, m_elements, strip_elements;
  ChunkScratch(int64_t points, int64_t chunk, int64_t ldv, int64_t c_out, int64_t strip)
      : v_elements(points * point_stride<T>(chunk, ldv)),
        m_elements(points * point_stride<T>(chunk, c_out)),
        strip_elements(strip) {}
  int64_t elements() const { return v_elements + m_elements + strip_elements; }
  T* m(T* v) const { return v + v_elements; }
  T* strip(T* v) const { return v + v_elements + m_elements; }
};

// Channels rounded up to whole vectors: the stride of a channels-last strip, whose extra lanes are zero.
template <typename T>
int64_t padded_channels(int64_t channels) {
  return (channels + kLanes<T> - 1) / kLanes<T> * kLanes<T>;
}

// Tiles per strip (one vector of channels, R1 rows): at most a tile row, and at most kStripBytes of strip.
template <typename T, int M, int R1>
int64_t strip_tiles(const Tiling<M>& tiling) {
  const int64_t per_tile = R1 * M * kLanes<T> * static_cast<int64_t>(sizeof(T));
  return std::clamp<int64_t>(kStripBytes / per_tile, 1, tiling.tiles_x);
}

// The elements of the strip buffer a gather_transform needs.
template <typename T, int M, int R1>
int64_t strip_elements(const Tiling<M>& tiling) {
  return R1 * (strip_tiles<T, M, R1>(tiling) * M + R1 - M) * kLanes<T>;
}

// dst[x * ld + c] = src[c * plane + shift + x] for the channels [0, channels) and the columns [x0, x1): a row of
// an NCHW image to channels-last. Square blocks of one SIMD packet each way are transposed in registers (Eigen's
// ptranspose, which its GEMM packing uses too); the channels and columns left over go one element at a time.
// (Eigen's packet types are vector types with alignment attributes, which g++ drops, with a warning, when they are
// template arguments; Eigen's own code silences the same warning.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
template <typename T>
void transpose_to_channels_last(const T* src, int64_t plane, int64_t shift, int64_t channels, int64_t x0, int64_t x1,
                                T* dst, int64_t ld) {
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  constexpr int PS = Eigen::internal::unpacket_traits<Packet>::size;
  const int64_t whole_channels = PS > 1 ? channels / PS * PS : 0;
  int64_t x = x0;
  if constexpr (PS > 1) {
    for (; x + PS <= x1; x += PS) {
      for (int64_t c = 0; c < whole_channels; c += PS) {
        Eigen::internal::PacketBlock<Packet, PS> block;
        for (int r = 0; r < PS; ++r)
          block.packet[r] = Eigen::internal::ploadu<Packet>(src + (c + r) * plane + shift + x);
        Eigen::internal::ptranspose(block);
        for (int r = 0; r < PS; ++r) Eigen::internal::pstoreu(dst + (x + r) * ld + c, block.packet[r]);
      }
      for (int64_t c = whole_channels; c < channels; ++c) {
        for (int r = 0; r < PS; ++r) dst[(x + r) * ld + c] = src[c * plane + shift + x + r];
      }
    }
  }
  for (; x < x1; ++x) {
    for (int64_t c = 0; c < channels; ++c) dst[x * ld + c] = src[c * plane + shift + x];
  }
}
#pragma GCC diagnostic pop

// For the tiles t0 + i, i in [0, k), whose output corners are (y, x): dst[xi] (k, channels) row i = the 2-D
// transform f (R1 -> R2 per line) of the R1 x R1 patch at (y - off_y, x - off_x) of each channel of `src`
// (n, channels, h, w), zero outside the image. dst[xi]'s rows are ld >= channels apart (the columns past
// `channels` zero), and dst[xi] starts at dst + xi*k*ld.
//
// The patches of a run of tiles in one tile row are first copied channels-last into `strip`, so each patch value
// of a vector of channels is one load; read from the NCHW planes, each lane would be a scalar load and insert.
// The strip holds one vector of channels at a time (R1 rows, the run's columns, kLanes channels, zero outside the
// image and past `channels`): those channels' rows are transposed in, the run's tiles transformed from it, then
// the next vector of channels. Holding all channels (as up to the seventh pass), a 64-channel tile row of F(4x4)
// took 100 KiB: the transposes wrote it out of L1, and the transform's 36 loads per tile and vector (each value
// read by up to four overlapping patches) came back from L2. One vector's strip, 25 KiB, stays in L1 between its
// stores and its loads: 64 -> 64 channels at 64x64, one thread, the forward pass took 0.95 of its CPU time and
// the weight gradient (which gathers twice) 0.88; the BEGAN 64x64 step's CPU time 0.94-0.96 at one thread,
// 0.93-0.98 at two (docs/benchmarks.md, "Eighth pass"). Each value is computed from the same operands in the
// same order as before, so V and dM are those of before bit for bit.
template <typename T, int M, int R1, int R2, class F>
void gather_transform(const Tiling<M>& tiling, const T* src, int64_t channels, int64_t h, int64_t w, int64_t off_y,
                      int64_t off_x, int64_t t0, int64_t k, F f, T* strip, T* dst, int64_t ld) {
  constexpr int L = kLanes<T>;
  const int64_t plane = h * w, cp = padded_channels<T>(channels), point = point_stride<T>(k, ld);
  const int64_t run_max = strip_tiles<T, M, R1>(tiling);
  for (int64_t i = 0; i < k;) {
    const auto at = tiling.where(t0 + i);
    const int64_t run = std::min({k - i, tiling.tiles_x - at.x / M, run_max});
    const int64_t y0 = at.y - off_y, x0 = at.x - off_x, cols = run * M + R1 - M;
    const int64_t xlo = std::clamp<int64_t>(-x0, 0, cols), xhi = std::clamp<int64_t>(w - x0, xlo, cols);
    for (int64_t c0 = 0; c0 < channels; c0 += L) {
      const int64_t count = std::min<int64_t>(L, channels - c0);
      const T* const planes = src + (at.n * channels + c0) * plane;  // the vector's first channel
      // strip (R1, cols, L) = src[n, c0 + c, y0 + y, x0 + x], zero outside the image and for c >= count.
      for (int64_t y = 0; y < R1; ++y) {
        T* const row = strip + y * cols * L;
        const int64_t sy = y0 + y;
        if (sy < 0 || sy >= h) {
          std::fill(row, row + cols * L, T(0));
          continue;
        }
        // Ask for the vector's next image row now: the rows of many channels in a row defeat the hardware
        // prefetcher, and the reads were the strip's bottleneck (without this, 3-7% slower).
        if (sy + 1 < h) {
          for (int64_t c = 0; c < count; ++c) {
            const T* next = planes + c * plane + (sy + 1) * w + x0;
            for (int64_t x = xlo; x < xhi; x += 64 / static_cast<int64_t>(sizeof(T))) __builtin_prefetch(next + x);
          }
        }
        std::fill(row, row + xlo * L, T(0));
        std::fill(row + xhi * L, row + cols * L, T(0));
        transpose_to_channels_last(planes, plane, sy * w + x0, count, xlo, xhi, row, L);
        if (count < L) {
          for (int64_t x = xlo; x < xhi; ++x) std::fill(row + x * L + count, row + (x + 1) * L, T(0));
        }
      }
      // Whole vectors where the row has room: their lanes past `channels` are zero (the strip's padding).
      const int64_t stored = std::min<int64_t>(L, ld - c0);
      for (int64_t j = 0; j < run; ++j) {
        Lanes<T> d[R1 * R1];
        for (int y = 0; y < R1; ++y) {
          for (int x = 0; x < R1; ++x) d[y * R1 + x] = Eigen::Map<const Lanes<T>>(strip + (y * cols + j * M + x) * L);
        }
        Lanes<T> v[R2 * R2];
        apply_2d<R1, R2>(d, v, f);
        T* const out = dst + (i + j) * ld + c0;
        for (int xi = 0; xi < R2 * R2; ++xi) store_lanes(v[xi], out + xi * point, stored);
      }
    }
    if (ld > cp) {
      for (int64_t j = i; j < i + run; ++j) {
        for (int xi = 0; xi < R2 * R2; ++xi)
          std::fill(dst + xi * point + j * ld + cp, dst + xi * point + (j + 1) * ld, T(0));
      }
    }
    i += run;
  }
}

// The input transform of a chunk: V[xi] (k, c_in), rows v_stride apart, = (B^T d B)[xi].
template <typename T, int M>
void transform_input(const Problem& p, const Tiling<M>& tiling, const T* input, int64_t t0, int64_t k, T* strip, T* V) {
  gather_transform<T, M, M + 2, M + 2>(
      tiling, input, p.c_in, p.h, p.w, p.pad_h, p.pad_w, t0, k,
      [](const Lanes<T>* a, int as, Lanes<T>* b, int bs) { Transforms<T, M>::input(a, as, b, bs); }, strip, V,
      v_stride<T>(p.c_in));
}

// The output transform of one tile and one vector of output channels [o0, o0 + count): y (M x M, row-major, lane
// l = channel o0 + l) = A^T M[.][tile i] A, then the epilogue (+ bias, ELU) on the vectors.
template <typename T, int M>
void output_tile(const T* Mb, int64_t point, int64_t c_out, int64_t i, int64_t o0, int64_t count,
                 const ConvEpilogue<T>& epilogue, Lanes<T>* y) {
  constexpr int A = M + 2;
  Lanes<T> m[A * A];
  for (int xi = 0; xi < A * A; ++xi) m[xi] = load_lanes(Mb + xi * point + i * c_out + o0, count);
  apply_2d<A, M>(m, y, [](const Lanes<T>* a, int as, Lanes<T>* b, int bs) { Transforms<T, M>::output(a, as, b, bs); });
  if (epilogue.bias != nullptr) {
    const Lanes<T> b = load_lanes(epilogue.bias + o0, count);
    for (int e = 0; e < M * M; ++e) y[e] += b;
  }
  if (epilogue.elu) {
    for (int e = 0; e < M * M; ++e) y[e] = elu_array(y[e], epilogue.alpha);
  }
}

// Eigen's SIMD packet of T. Where it is one whole Lanes<T> (float and double where AVX-512 is compiled in), a
// square of kLanes<T> vectors can be transposed in registers and a vector is one 64-byte cache line.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
template <typename T>
using Packet = typename Eigen::internal::packet_traits<T>::type;
template <typename T>
constexpr bool kLanePackets = Eigen::internal::unpacket_traits<Packet<T>>::size == kLanes<T>;

// Stores v as the whole 64-byte line at dst (64-byte aligned) without reading the line into the cache first (a
// non-temporal store: it goes to memory through a write-combining buffer). Only called where AVX-512 is compiled in
// (kLanePackets); elsewhere its body is empty, and clang, which checks a template's definition, would call the
// parameters unused.
template <typename T>
void stream_line([[maybe_unused]] T* dst, [[maybe_unused]] const Packet<T>& v) {
  static_assert(kLanePackets<T>, "stream_line stores one 64-byte packet");
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    _mm512_stream_ps(dst, v);
  } else {
    _mm512_stream_pd(dst, v);
  }
#endif
}

// A whole F(4x4) float tile y (4 x 4 vectors, lane l = channel l; count channels, a multiple of 4) stored into the
// output, where a vector is not one 64-byte packet (AVX2, SSE): dst is channel 0's top-left output pixel, channels
// `plane` apart, rows `w_out`. Row r of the tile is four vectors, one per column; each 4 x 4 block of them (the
// columns x channels q .. q + 3) is transposed in registers (Eigen's ptranspose, as in transpose_to_channels_last)
// into those channels' rows, one 16-byte store each. Lane by lane, the 16 scalar stores per channel and their loop
// took 45% of the output transform's perf samples on AVX2; this took the transform 6% faster (its loads of M are
// what bound it: docs/benchmarks.md, "AVX2: the last shuffles").
[[maybe_unused]] void store_tile_by_quads(const Lanes<float>* y, int64_t count, float* dst, int64_t plane,
                                          int64_t w_out) {
  using Quad = Eigen::internal::Packet4f;
  for (int64_t q = 0; q < count; q += 4) {
    for (int r = 0; r < 4; ++r) {
      Eigen::internal::PacketBlock<Quad, 4> block;  // packet[s] lane j: column s of channel q + j's row r
      for (int s = 0; s < 4; ++s) block.packet[s] = Eigen::internal::ploadu<Quad>(y[4 * r + s].data() + q);
      Eigen::internal::ptranspose(block);  // packet[j]: channel q + j's row r
      for (int j = 0; j < 4; ++j) Eigen::internal::pstoreu(dst + (q + j) * plane + r * w_out, block.packet[j]);
    }
  }
}

// The output transform of a chunk, into the output: out tile = A^T M[.][tile] A, then the epilogue (+ bias, ELU:
// on the tile's vectors, before they are stored), cropped at the edges.
//
// A tile's result is M*M vectors of channels, the output NCHW: a channel's row of a tile is M floats of its plane.
// Stored lane by lane, that is 16 scalar stores per channel and tile at F(4x4), each line of the output written a
// quarter at a time by four tiles (on other targets whole float F(4x4) tiles go four channels at a time instead,
// store_tile_by_quads above; their edges and F(2x2) still go lane by lane). Where a vector is one 64-byte packet
// (AVX-512), the tiles go in groups of kLanes / M side by side in a tile row (F(4x4) in float: 4 tiles, 16 output
// columns): row r of a group is kLanes vectors of channels, one per column, and one kLanes x kLanes transpose in
// registers (Eigen's ptranspose, as in transpose_to_channels_last) turns them into one vector per channel, that
// channel's row r of the group, a whole line where the group starts on one. Groups sit at multiples of kLanes / M
// tiles in the tile row; a group cut by the chunk's ends or the image's right edge stores only its own columns.
//
// Whole lines are what non-temporal stores need, and those bought the time: the grouping alone measured no
// faster (the stores were not the bound), but streamed past the caches the output (16 MiB for 64 channels of
// 64x64 at batch 16) is no longer read into the cache before it is written over, nor does it push the chunk's M, V
// and U out of L2 on its way to memory. (The profile had put the output transform's time on its loads of M, which
// neither prefetching nor smaller chunks sped up: they were, it seems, waiting behind those lines; no hardware
// counters on the host to say so directly.) 64 -> 64 at 64x64, one thread: the forward pass and the input gradient
// 0.83-0.89 of their time; the BEGAN 64x64 step 0.93-0.97 at one and two threads, the 32x32 step 0.97-1.01
// (docs/benchmarks.md, "Seventh pass").
// The next layer then reads the output from memory rather than from L3, which the step's figure includes. Lines that
// are not whole (a group's edges, rows that do not start on a line) are stored through the cache. One fence at the end
// orders the streamed lines before anything stored after them (the pool's done flag).
template <typename T, int M>
void transform_output(const Problem& p, const Tiling<M>& tiling, const T* Mb, int64_t t0, int64_t k,
                      const ConvEpilogue<T>& epilogue, T* output) {
  constexpr int L = kLanes<T>;
  const int64_t plane = p.h_out * p.w_out, point = point_stride<T>(k, p.c_out);
  if constexpr (kLanePackets<T>) {
    constexpr int64_t G = L / M;  // tiles per group
    using P = Packet<T>;
    for (int64_t i = 0; i < k;) {
      const auto at = tiling.where(t0 + i);
      // The group holds tiles i .. i + g - 1 at places first .. first + g - 1 of its G, so output columns
      // x_base + [lo, hi) of its x_base + [0, L).
      const int64_t first = (at.x / M) % G, g = std::min({G - first, tiling.tiles_x - at.x / M, k - i});
      const int64_t x_base = at.x - first * M, lo = first * M;
      const int64_t hi = std::min<int64_t>((first + g) * M, p.w_out - x_base);
      const int64_t rows = std::min<int64_t>(M, p.h_out - at.y);
      T* const image = output + at.n * p.c_out * plane + at.y * p.w_out + x_base;
      for (int64_t o0 = 0; o0 < p.c_out; o0 += L) {
        const int64_t count = std::min<int64_t>(L, p.c_out - o0);
        // group[r * L + x]: the channels of the group's output row r, column x_base + x (zero where no tile).
        Lanes<T> group[M * L];
        if (g < G) {
          for (auto& v : group) v.setZero();
        }
        for (int64_t j = 0; j < g; ++j) {
          Lanes<T> y[M * M];
          output_tile<T, M>(Mb, point, p.c_out, i + j, o0, count, epilogue, y);
          for (int r = 0; r < M; ++r) {
            for (int s = 0; s < M; ++s) group[r * L + (first + j) * M + s] = y[r * M + s];
          }
        }
        for (int64_t r = 0; r < rows; ++r) {
          Eigen::internal::PacketBlock<P, L> block;
          for (int x = 0; x < L; ++x) block.packet[x] = Eigen::internal::pload<P>(group[r * L + x].data());
          Eigen::internal::ptranspose(block);  // block.packet[l]: channel o0 + l's row r, columns x_base + [0, L)
          for (int64_t l = 0; l < count; ++l) {
            T* const dst = image + (o0 + l) * plane + r * p.w_out;
            if (lo == 0 && hi == L && reinterpret_cast<uintptr_t>(dst) % 64 == 0) {
              stream_line<T>(dst, block.packet[l]);
            } else {
              alignas(64) T row[L];
              Eigen::internal::pstore(row, block.packet[l]);
              std::copy(row + lo, row + hi, dst + lo);
            }
          }
        }
      }
      i += g;
    }
#if defined(__AVX512F__)
    _mm_sfence();
#endif
  } else {
    for (int64_t i = 0; i < k; ++i) {
      const auto at = tiling.where(t0 + i);
      const int64_t rows = std::min<int64_t>(M, p.h_out - at.y), cols = std::min<int64_t>(M, p.w_out - at.x);
      T* const image = output + at.n * p.c_out * plane + at.y * p.w_out + at.x;
      for (int64_t o0 = 0; o0 < p.c_out; o0 += L) {
        const int64_t count = std::min<int64_t>(L, p.c_out - o0);
        Lanes<T> y[M * M];
        output_tile<T, M>(Mb, point, p.c_out, i, o0, count, epilogue, y);
        if constexpr (std::is_same_v<T, float> && M == 4) {
          if (rows == M && cols == M && count % 4 == 0) {
            store_tile_by_quads(y, count, image + o0 * plane, plane, p.w_out);
            continue;
          }
        }
        for (int64_t l = 0; l < count; ++l) {
          T* const dst = image + (o0 + l) * plane;
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t s = 0; s < cols; ++s) dst[r * p.w_out + s] = y[r * M + s](l);
          }
        }
      }
    }
  }
}
#pragma GCC diagnostic pop

// U[xi] (c_in, c_out) of the problem from weight (C_out, C_in, 3, 3). Forward: U[xi][c][o] = (G w[o, c] G^T)[xi].
// Input gradient (flip): the problem's input channels are the convolution's outputs and the kernel is rotated,
// U[xi][o][c] = (G rot180(w[o, c]) G^T)[xi]. The U[xi] are u_point_size apart, each in the layout the chunk GEMM
// reads (u_point_size): the packed kernel's B panels are written here directly, so U is packed once per call.
template <typename T, int M>
void transform_filter(const T* weight, int64_t c_out, int64_t c_in, bool flip, T* U) {
  constexpr int A = M + 2, L = kLanes<T>;
  // U[xi] is (rows, cols): (c_in, c_out) for the forward, (c_out, c_in) flipped. Threads take rows; a row's
  // columns go a vector at a time (lane l: column q + l). Packed, the columns run on to whole panels (the padding
  // zero) and a vector's 16 columns lie in one panel row (kPanelColumns is a multiple of 16).
  const int64_t rows = flip ? c_out : c_in, cols = flip ? c_in : c_out;
  const int64_t per_point = u_point_size<T>(rows, cols);
  const int64_t width = kPackedChunks<T> ? (cols + kPanelColumns - 1) / kPanelColumns * kPanelColumns : cols;
  auto offset = [&](int64_t r, int64_t q0) {
    return kPackedChunks<T> ? (q0 / kPanelColumns * rows + r) * kPanelColumns + q0 % kPanelColumns : r * cols + q0;
  };
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t q0 = 0; q0 < width; q0 += L) {
        const int64_t count = std::min<int64_t>(L, width - q0), valid = std::clamp<int64_t>(cols - q0, 0, L);
        Lanes<T> g[9];
        for (auto& v : g) v.setZero();
        for (int64_t l = 0; l < valid; ++l) {
          const int64_t o = flip ? r : q0 + l, c = flip ? q0 + l : r;
          const T* src = weight + (o * c_in + c) * 9;
          for (int e = 0; e < 9; ++e) g[e](l) = flip ? src[8 - e] : src[e];
        }
        Lanes<T> u[A * A];
        apply_2d<3, A>(g, u,
                       [](const Lanes<T>* a, int as, Lanes<T>* b, int bs) { Transforms<T, M>::filter(a, as, b, bs); });
        for (int xi = 0; xi < A * A; ++xi) store_lanes(u[xi], U + xi * per_point + offset(r, q0), count);
      }
    }
  });
}

// The forward pass of a problem with its filter already transformed.
template <typename T, int M>
void run_forward(const Problem& p, const T* input, const T* U, const ConvEpilogue<T>& epilogue, T* output) {
  constexpr int64_t P = (M + 2) * (M + 2);
  const int threads = num_threads();
  const Tiling<M> tiling(p, threads);
  if (tiling.tiles == 0) return;
  const int64_t ldv = v_stride<T>(p.c_in), u_point = u_point_size<T>(p.c_in, p.c_out);
  const int64_t strip = strip_elements<T, M, M + 2>(tiling);
  const ChunkScratch<T> layout(P, tiling.chunk, ldv, p.c_out, strip);
  ScratchSlots<T> slots(std::min<int64_t>(threads, tiling.chunks), layout.elements());
  parallel_for(tiling.chunks, 1, [&](int64_t begin, int64_t end) {
    T* const V = slots.take();
    T* const Mb = layout.m(V);
    T* const strip_buffer = layout.strip(V);
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t t0 = chunk * tiling.chunk, k = std::min(tiling.chunk, tiling.tiles - t0);
      transform_input<T, M>(p, tiling, input, t0, k, strip_buffer, V);
      for (int64_t xi = 0; xi < P; ++xi) {
        T* const m_xi = Mb + xi * point_stride<T>(k, p.c_out);
        const T *const v_xi = V + xi * point_stride<T>(k, ldv), *const u_xi = U + xi * u_point;
        if constexpr (kPackedChunks<T>) {
          gemm_rows_a(v_xi, ldv, u_xi, k, p.c_out, p.c_in, m_xi, p.c_out);
        } else {
          mat(m_xi, k, p.c_out, p.c_out).noalias() = cmat(v_xi, k, p.c_in, ldv) * cmat(u_xi, p.c_in, p.c_out, p.c_out);
        }
      }
      transform_output<T, M>(p, tiling, Mb, t0, k, epilogue, output);
    }
  });
}

template <typename T, int M>
void forward_m(const Conv2dGeometry& g, const T* input, const T* weight, const ConvEpilogue<T>& epilogue, T* output) {
  constexpr int64_t P = (M + 2) * (M + 2);
  Scratch<T> U(P * u_point_size<T>(g.c_in, g.c_out));
  transform_filter<T, M>(weight, g.c_out, g.c_in, false, U.get());
  run_forward<T, M>(forward_problem(g), input, U.get(), epilogue, output);
}

template <typename T, int M>
void backward_input_m(const Conv2dGeometry& g, const T* grad_output, const T* weight, T* grad_input) {
  // grad_in[c, y, x] = sum over (o, i, j) of grad_out[o, y + pad - i, x + pad - j] w[o, c, i, j]
  //                  = a correlation of grad_out with rot180(w) transposed, padding 2 - pad.
  constexpr int64_t P = (M + 2) * (M + 2);
  Scratch<T> U(P * u_point_size<T>(g.c_out, g.c_in));
  transform_filter<T, M>(weight, g.c_out, g.c_in, true, U.get());
  const Problem p{g.n, g.c_out, g.h_out, g.w_out, g.c_in, 2 - g.pad_h, 2 - g.pad_w, g.h, g.w};
  run_forward<T, M>(p, grad_output, U.get(), ConvEpilogue<T>{}, grad_input);
}

// The weight gradient's partials: one per thread that has chunks (at least one).
template <int M>
int64_t partial_count(const Tiling<M>& tiling, int threads) {
  return std::max<int64_t>(1, std::min<int64_t>(threads, tiling.chunks));
}

template <typename T, int M>
void backward_weight_m(const Conv2dGeometry& g, const T* input, const T* grad_output, T* grad_weight) {
  constexpr int A = M + 2;
  constexpr int64_t P = A * A;
  const Problem p = forward_problem(g);
  const int threads = num_threads();
  const Tiling<M> tiling(p, threads);
  const int64_t per_point = g.c_out * g.c_in;
  // One partial dU (P, C_out, C_in) per thread that has chunks; thread t's chunks are [t*C/T, (t+1)*C/T), and
  // with fewer chunks than threads the threads with chunks are numbered by their first chunk.
  const int64_t parts = partial_count(tiling, threads);
  Scratch<T> partials(parts * P * per_point);
  if (tiling.chunks == 0) std::fill(partials.get(), partials.get() + P * per_point, T(0));  // no tiles: zero
  const int64_t strip = std::max(strip_elements<T, M, A>(tiling), strip_elements<T, M, M>(tiling));
  const int64_t ldv = v_stride<T>(g.c_in);
  const ChunkScratch<T> layout(P, tiling.chunk, ldv, g.c_out, strip);
  ScratchSlots<T> slots(parts, layout.elements());
  parallel_run([&](int t, int nthreads) {
    const int64_t begin = t * tiling.chunks / nthreads, end = (t + 1) * tiling.chunks / nthreads;
    if (begin >= end) return;
    T* const V = slots.take();
    T* const dM = layout.m(V);
    T* const strip_buffer = layout.strip(V);
    T* const dU = partials.get() + (tiling.chunks >= nthreads ? t : begin) * P * per_point;
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t t0 = chunk * tiling.chunk, k = std::min(tiling.chunk, tiling.tiles - t0);
      transform_input<T, M>(p, tiling, input, t0, k, strip_buffer, V);
      // dM[xi] (k, C_out) = (A dY A^T)[xi] of each grad_output tile (zero beyond the output's edge).
      gather_transform<T, M, M, A>(
          tiling, grad_output, g.c_out, g.h_out, g.w_out, 0, 0, t0, k,
          [](const Lanes<T>* a, int as, Lanes<T>* b, int bs) { Transforms<T, M>::output_adjoint(a, as, b, bs); },
          strip_buffer, dM, g.c_out);
      // The thread's first chunk assigns its partial, the others add to it.
      for (int64_t xi = 0; xi < P; ++xi) {
        T* const du_xi = dU + xi * per_point;
        const T *const dm_xi = dM + xi * point_stride<T>(k, g.c_out), *const v_xi = V + xi * point_stride<T>(k, ldv);
        if constexpr (kPackedChunks<T>) {
          // dM[xi]^T read in place (each tile's row of C_out values is a step of the transposed A), V[xi] as B.
          gemm_columns_a(dm_xi, g.c_out, v_xi, ldv, g.c_out, g.c_in, k, du_xi, g.c_in, chunk != begin);
          continue;
        }
        auto du = mat(du_xi, g.c_out, g.c_in, g.c_in);
        const auto product = cmat(dm_xi, k, g.c_out, g.c_out).transpose() * cmat(v_xi, k, g.c_in, ldv);
        if (chunk == begin) {
          du.noalias() = product;
        } else {
          du.noalias() += product;
        }
      }
    }
  });
  // grad_w[o, c] = G^T (the partials summed in order)[., o, c] G, a vector of input channels at a time.
  constexpr int L = kLanes<T>;
  parallel_for(g.c_out, 1, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      for (int64_t c0 = 0; c0 < g.c_in; c0 += L) {
        const int64_t count = std::min<int64_t>(L, g.c_in - c0);
        Lanes<T> u[P];
        for (int64_t xi = 0; xi < P; ++xi) {
          const T* part = partials.get() + xi * per_point + o * g.c_in + c0;
          u[xi] = load_lanes(part, count);
          for (int64_t q = 1; q < parts; ++q) u[xi] += load_lanes(part + q * P * per_point, count);
        }
        Lanes<T> w[9];
        apply_2d<A, 3>(u, w, [](const Lanes<T>* a, int as, Lanes<T>* b, int bs) {
          Transforms<T, M>::filter_adjoint(a, as, b, bs);
        });
        for (int64_t l = 0; l < count; ++l) {
          T* dst = grad_weight + (o * g.c_in + c0 + l) * 9;
          for (int e = 0; e < 9; ++e) dst[e] = w[e](l);
        }
      }
    }
  });
}

// Calls fn.template operator()<M>() for m = 2 or 4.
}  // namespace

int64_t winograd_chunk_tiles(int64_t channels) {
  if (const int64_t set = g_chunk_tiles.load(std::memory_order_relaxed); set > 0) return set;
  // sysconf answers 0 or -1 where it cannot tell: the default limit then.
  static const bool large_l2 = sysconf(_SC_LEVEL2_CACHE_SIZE) >= kLargeL2Bytes;
  return large_l2 && channels <= kNarrowChannels ? kNarrowChunkTiles : kChunkTiles;
}

int64_t winograd_chunk_tiles_setting() { return g_chunk_tiles.load(std::memory_order_relaxed); }

void set_winograd_chunk_tiles(int64_t tiles) {
  ATELIER_CHECK(tiles >= 0,
                "set_winograd_chunk_tiles: the limit must be 0 (the rule) or a positive tile count, got " << tiles);
  g_chunk_tiles.store(tiles, std::memory_order_relaxed);
}

bool winograd_weight_grad_fits(int m, const Conv2dGeometry& g, int threads, int64_t element_bytes) {
  bool fits = false;
  with_winograd_tile(m, [&]<int M> {
    const int64_t parts = partial_count(Tiling<M>(forward_problem(g), threads), threads);
    const int64_t bytes = parts * (M + 2) * (M + 2) * g.c_out * g.c_in * element_bytes;
    fits = bytes <= kPartialBudgetBytes;
  });
  return fits;
}

template <typename T>
void winograd_forward(int m, const Conv2dGeometry& g, const T* input, const T* weight, const ConvEpilogue<T>& epilogue,
                      T* output) {
  with_winograd_tile(m, [&]<int M> { forward_m<T, M>(g, input, weight, epilogue, output); });
}

template <typename T>
void winograd_backward_input(int m, const Conv2dGeometry& g, const T* grad_output, const T* weight, T* grad_input) {
  with_winograd_tile(m, [&]<int M> { backward_input_m<T, M>(g, grad_output, weight, grad_input); });
}

template <typename T>
void winograd_backward_weight(int m, const Conv2dGeometry& g, const T* input, const T* grad_output, T* grad_weight) {
  with_winograd_tile(m, [&]<int M> { backward_weight_m<T, M>(g, input, grad_output, grad_weight); });
}

#define ATELIER_WINOGRAD_INSTANTIATE(T)                                                                          \
  template void winograd_forward<T>(int, const Conv2dGeometry&, const T*, const T*, const ConvEpilogue<T>&, T*); \
  template void winograd_backward_input<T>(int, const Conv2dGeometry&, const T*, const T*, T*);                  \
  template void winograd_backward_weight<T>(int, const Conv2dGeometry&, const T*, const T*, T*);
ATELIER_WINOGRAD_INSTANTIATE(float)
ATELIER_WINOGRAD_INSTANTIATE(double)
#undef ATELIER_WINOGRAD_INSTANTIATE

}  // namespace atelier::cpu
