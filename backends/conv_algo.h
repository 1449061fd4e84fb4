// The CPU convolution algorithm, one library-wide setting read by the CPU conv kernels (backends/cpu/conv.cpp):
//   auto    the default: Winograd where it is expected to win (3x3, stride 1, at least 16 channels in and 3 out;
//           F(2x2) where its tiles fit the output better, e.g. 6x6, else F(4x4)), im2col + GEMM everywhere else
//   im2col  im2col + GEMM for every convolution (a few 1e-7 relative L2 error in float32)
//   wino2   Winograd F(2x2, 3x3) for every 3x3 stride-1 convolution (a few 1e-7, as im2col)
//   wino4   Winograd F(4x4, 3x3) for every 3x3 stride-1 convolution (~2e-6 relative L2 error in float32)
// Winograd applies only to 3x3 kernels with stride 1 (any padding); other shapes always use im2col. The CUDA
// backend ignores the setting. The first read takes ATELIER_CONV_ALGO from the environment (unset or empty:
// auto); set_conv_algo() overrides it from then on, e.g. for a test:
//   atelier::set_conv_algo(atelier::ConvAlgo::Wino2);
//
// Beside it, the CUDA convolutions' workspace limit (conv_workspace_limit below), which the CPU ignores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace atelier {

enum class ConvAlgo : uint8_t { Auto, Im2col, Wino2, Wino4 };

// The setting now: the last set_conv_algo(), else ATELIER_CONV_ALGO as read on the first call (a bad value
// throws atelier::Error here, naming it, on every call until it is overridden).
ConvAlgo conv_algo();
void set_conv_algo(ConvAlgo algo);

const char* conv_algo_name(ConvAlgo algo);  // "auto", "im2col", "wino2", "wino4"
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
