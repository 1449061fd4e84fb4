// The convolution algorithm setting, the rule that applies it to a shape, and the CUDA convolutions' workspace limit
// (see conv_algo.h).
#include "backends/conv_algo.h"

#include <atomic>
#include <cstdlib>

#include "backends/error.h"

namespace atelier {

namespace {
// -1: not overridden, the environment's value applies; else a ConvAlgo.
std::atomic<int> g_override{-1};
}  // namespace

ConvAlgo conv_algo() {
  const int overridden = g_override.load(std::memory_order_relaxed);
  if (overridden >= 0) return static_cast<ConvAlgo>(overridden);
  // Read once; a throwing initialisation is retried by the next call, so a bad value is refused every time.
  static const ConvAlgo from_environment = conv_algo_from_environment();
  return from_environment;
}

void set_conv_algo(ConvAlgo algo) { g_override.store(static_cast<int>(algo), std::memory_order_relaxed); }

namespace {
std::atomic<size_t> g_workspace_limit{kDefaultConvWorkspaceLimit};
}  // namespace

size_t conv_workspace_limit() { return g_workspace_limit.load(std::memory_order_relaxed); }

void set_conv_workspace_limit(size_t bytes) {
  ATELIER_CHECK(bytes >= 1, "set_conv_workspace_limit: the limit must be at least 1 byte, got " << bytes);
  g_workspace_limit.store(bytes, std::memory_order_relaxed);
}

const char* conv_algo_name(ConvAlgo algo) {
  switch (algo) {
    case ConvAlgo::Auto: return "auto";
    case ConvAlgo::Im2col: return "im2col";
    case ConvAlgo::Wino2: return "wino2";
    case ConvAlgo::Wino4: return "wino4";
    case ConvAlgo::Direct: return "direct";
  }
  return "?";
}

ConvAlgo parse_conv_algo(const std::string& name) {
  for (ConvAlgo algo : {ConvAlgo::Auto, ConvAlgo::Im2col, ConvAlgo::Wino2, ConvAlgo::Wino4, ConvAlgo::Direct}) {
    if (name == conv_algo_name(algo)) return algo;
  }
  // The value is quoted only in part: it may come from an arbitrarily long environment variable.
  ATELIER_FAIL("conv algorithm '" << name.substr(0, 32) << (name.size() > 32 ? "...'" : "'")
                                  << " is not one of auto, im2col, wino2, wino4, direct (ATELIER_CONV_ALGO)");
  return ConvAlgo::Auto;
}

ConvAlgo conv_algo_from_environment() {
  const char* env = std::getenv("ATELIER_CONV_ALGO");
  if (env == nullptr || *env == '\0') return ConvAlgo::Auto;
  return parse_conv_algo(env);
}

bool winograd_applies(const Conv2dGeometry& g) { return g.kh == 3 && g.kw == 3 && g.stride_h == 1 && g.stride_w == 1; }

bool direct_applies(const Conv2dGeometry& g) {
  return winograd_applies(g) && g.pad_h == 1 && g.pad_w == 1 && g.input_upsample == 1;
}

ConvAlgo choose_conv_algo(const Conv2dGeometry& g, ConvAlgo algo) {
  const bool direct = direct_applies(g);
  if (algo == ConvAlgo::Direct) return direct ? ConvAlgo::Direct : ConvAlgo::Im2col;
  if (!winograd_applies(g) || algo == ConvAlgo::Im2col) return ConvAlgo::Im2col;
  if (algo != ConvAlgo::Auto) return algo;
  if (direct && g.c_out <= kDirectMaxOutChannels) return ConvAlgo::Direct;
  if (g.c_in < 16 || g.c_out < 3) return ConvAlgo::Im2col;
  return winograd_tile_rule(g);
}

ConvAlgo winograd_tile_rule(const Conv2dGeometry& g) {
  // Multiplications per image and channel pair of each tile size, partial tiles counted whole.
  auto tiles = [&](int64_t m) { return ((g.h_out + m - 1) / m) * ((g.w_out + m - 1) / m); };
  return 16 * tiles(2) <= 36 * tiles(4) ? ConvAlgo::Wino2 : ConvAlgo::Wino4;
}

int winograd_tile_size(ConvAlgo chosen) {
  switch (chosen) {
    case ConvAlgo::Wino2: return 2;
    case ConvAlgo::Wino4: return 4;
    default: return 0;
  }
}

}  // namespace atelier
