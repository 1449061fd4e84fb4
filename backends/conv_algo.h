// The convolution algorithm, one library-wide setting read by the conv kernels of both backends
// (backends/cpu/conv.cpp, backends/cuda/conv.cu):
//   auto    the default: the direct kernels for 3x3, stride-1, padding-1 layers with 1 to 3 output channels;
//           Winograd where it is expected to win (3x3, stride 1, at least 16 channels in and 3 out;
//           F(2x2) where its tiles fit the output better, e.g. 6x6, else F(4x4)), im2col + GEMM everywhere else.
//           On CUDA (backends/cuda/conv.cu, conv_choice, measured on an H200) two changes: the thin layers of at
//           least 16 input channels take Winograd rather than the direct kernels, and under Precision::TF32 and
//           BF16 (backends/precision.h) float32 takes F(2x2) where the rule says F(4x4), whose transforms would
//           amplify the tensor cores' rounding 8x.
//   im2col  im2col + GEMM for every convolution (a few 1e-7 relative L2 error in float32)
//   wino2   Winograd F(2x2, 3x3) for every 3x3 stride-1 convolution (a few 1e-7, as im2col)
//   wino4   Winograd F(4x4, 3x3) for every 3x3 stride-1 convolution (~2e-6 relative L2 error in float32)
//   direct  the direct kernels (backends/cpu/direct_conv.h, backends/cuda/direct_conv.cu) for every 3x3,
//           stride-1, padding-1 convolution without input upsampling (a few 1e-7, as im2col)
// Winograd applies only to 3x3 kernels with stride 1 (any padding); other shapes always use im2col. A forced
// wino2 or wino4 holds on CUDA under every precision. The first read takes ATELIER_CONV_ALGO from the environment
// (unset or empty: auto); set_conv_algo() overrides it from then on, e.g. for a test:
//   atelier::set_conv_algo(atelier::ConvAlgo::Wino2);
//
// Beside it, the CUDA convolutions' workspace limit (conv_workspace_limit below), which the CPU ignores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "backends/args.h"

namespace atelier {

enum class ConvAlgo : uint8_t { Auto, Im2col, Wino2, Wino4, Direct };

// The setting now: the last set_conv_algo(), else ATELIER_CONV_ALGO as read on the first call (a bad value
// throws atelier::Error here, naming it, on every call until it is overridden).
ConvAlgo conv_algo();
void set_conv_algo(ConvAlgo algo);

// True for the convolutions Winograd can compute: a 3x3 kernel with stride 1 (any padding).
bool winograd_applies(const Conv2dGeometry& g);
// True for the convolutions the direct kernels compute (backends/cpu/direct_conv.h, backends/cuda/direct_conv.cu):
// a 3x3 kernel, stride 1, padding 1, no input upsampling (the CPU's entry points upsample first; CUDA's fold the
// upsampling into im2col or Winograd instead).
bool direct_applies(const Conv2dGeometry& g);

// The algorithm that computes convolution g under the setting `algo` (conv_algo()): never Auto. The rule was
// measured on the CPU; on the GPU it is the starting point until measured there (docs/gpu.md, "Winograd",
// "Direct convolution for thin layers").
//   im2col, or a shape no other algorithm computes      -> Im2col
//   wino2 / wino4 (forced)                              -> Wino2 / Wino4 for every 3x3 stride-1 shape
//   direct (forced)                                     -> Direct for every shape direct_applies to; Im2col
//                                                          otherwise
//   auto -> Direct where direct_applies and C_out <= 3: a GEMM with 1 to 3 rows is a GEMV,
//           and Winograd's transforms cost more than the few products they save (measured, all3 at one thread,
//           batch 16: 32 -> 1 at 32x32 0.29x im2col's time, 16 -> 1 0.30x, 64 -> 3 at 64x64 0.76x wino4's,
//           32 -> 3 at 32x32 0.59x; at 4 output channels a tie with wino4, at 6 and 8 slower, and with few input
//           channels instead, 3 -> 64 and 1 -> 32, slower than im2col; docs/benchmarks.md, "Direct convolution").
//           Else Im2col unless 3x3 stride 1 with C_in >= 16 and C_out >= 3: fewer input channels leave the
//           per-point GEMMs too thin to pay for the transforms (measured: 8 -> 32 channels at 32x32 is slower than
//           im2col, 16 -> 3 and 64 -> 3 are faster, 16 -> 1 slower). Then Wino2 when its 2x2 tiles need no more
//           multiplications than the 4x4 tiles of Wino4 (16 per 2x2 tile against 36 per 4x4 tile, a partial tile
//           counted whole: outputs of 1, 2, 5 or 6 rows and columns), Wino4 otherwise. Measured on one core of
//           the reference machine, fwd + both gradients, batch 16: 64 -> 64 at 64x64 wino4 0.5x im2col's time,
//           at 8x8 0.3x; 128 -> 128 at 6x6 wino2 0.4x (wino4 0.5x). The same rule for the three passes.
//           Re-measured with the packed per-point products (docs/benchmarks.md, "Sixth pass"): each choice the
//           fastest or within 3% of it; 8 -> 32 at 32x32 is now a tie (wino4 0.98x im2col), left to im2col, the
//           more exact.
constexpr int64_t kDirectMaxOutChannels = 3;
ConvAlgo choose_conv_algo(const Conv2dGeometry& g, ConvAlgo algo);
// The Winograd tile auto takes for a shape Winograd applies to: Wino2 when its 2x2 tiles need no more
// multiplications than Wino4's 4x4 tiles, else Wino4 (the rule above; CUDA's conv_choice uses it too).
ConvAlgo winograd_tile_rule(const Conv2dGeometry& g);

// The tile size m of Winograd F(m x m, 3x3) an algorithm chosen by choose_conv_algo computes with: 2 or 4, or 0 for
// im2col.
int winograd_tile_size(ConvAlgo chosen);

const char* conv_algo_name(ConvAlgo algo);  // "auto", "im2col", "wino2", "wino4", "direct"
// The name to a ConvAlgo; anything else throws atelier::Error naming the text and the allowed names.
ConvAlgo parse_conv_algo(const std::string& name);
// ATELIER_CONV_ALGO parsed now (auto when unset or empty). Programs call it first, to refuse a bad setting in one
// line before any work (bin/began and bin/gradcheck do).
ConvAlgo conv_algo_from_environment();

// The most bytes of im2col columns a CUDA convolution makes at once (backends/cuda/conv.cu): a batch whose columns
// need more runs in chunks of images, each a GEMM of its own (at least one image per chunk, whatever the limit).
// More means fewer, larger GEMMs and launches, and more device memory held by the context's workspace. Default
// kDefaultConvWorkspaceLimit; tests set it small to run the chunked paths.
constexpr size_t kDefaultConvWorkspaceLimit = size_t{256} << 20;
size_t conv_workspace_limit();
// bytes >= 1; throws atelier::Error naming the value otherwise.
void set_conv_workspace_limit(size_t bytes);

}  // namespace atelier
