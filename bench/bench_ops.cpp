// Op benchmarks, float32, at the shapes BEGAN trains with (batch 16): GEMM, conv2d forward / input gradient /
// weight gradient, ELU, nearest upsampling, and a copy for the memory-bandwidth reference. On the CPU by default;
// `--device cuda` runs the same ops on the GPU (each iteration then ends with a synchronize, so the time is the
// kernels', not the launches'; the CPU's own rows, the FMA peak and packed_gemm/, are left out).
//
// Every name is shared with bench/peers/ops_torch.py, so scripts/bench-vs-torch.sh can join the two tables:
//   gemm/MxKxN                      (M x K) @ (K x N)
//   conv/NxCxHxW->C_out[s2]/PASS    3x3, padding 1, stride 1 (or 2), no bias; PASS = fwd, bwd_input, bwd_weight,
//                                   all3 (the three in a row: what one training step costs a conv layer)
//   elu/..., upsample/..., copy/... NCHW shapes
//   reduce/mean|sum/SHAPE_into_K     a sum or mean of SHAPE into K outputs (the BEGAN L1 losses, a bias gradient)
//   log_softmax/RxC/fwd_bwd          a classifier's loss over R x C logits, forward and backward
//   general/OP/fwd_bwd               common differentiable ops beyond BEGAN's, forward and backward through
//                                    autograd at about 1M elements (general_cases() below): where a framework's
//                                    everyday ops stand against PyTorch's
// except the conv_algo/ rows, atelier's own (no PyTorch twin; the join shows "-" for PyTorch):
//   conv_algo/NxCxHxW->C_out/all3/ALGO   a stride-1 conv's all3 with the conv algorithm forced (on either
//                                        device), for the stride-1 conv/ rows and the thin layers around auto's
//                                        thresholds (ALGO = im2col, wino2, wino4, direct; see backends/conv_algo.h)
//   adam/began_encoder_n64/per_tensor    that row's 21 tensors through raw adam_step, once per tensor
//   adam/began_encoder_n64/multi         the same through one adam_step_multi call (what the multi-tensor step,
//                                        nn::Adam's, buys)
//   peak/fma, peak/fma_1thread           the FMA peak (below)
//   packed_gemm/...                      the stride-2 convolutions' packed GEMM kernel alone, one thread (below)
// The conv/ rows run whatever ATELIER_CONV_ALGO selects (default auto: Winograd F(4x4) for every stride-1 row).
// Counters: GFLOP/s (FLOPs counted as 2 per multiply-add) for GEMM and conv, GB/s (bytes read + written, each
// once) for the memory-bound ops. Threads: the pool's size, from ATELIER_NUM_THREADS (default: all cores).
//
// Napkin math for the reference machine (2 vCPUs of an AMD EPYC Zen 5, AVX-512, 32 MiB L3, see
// docs/benchmarks.md): the issue assumed an FMA peak of 232 GFLOP/s on 2 threads; peak/fma below measures 260-288
// GFLOP/s per thread depending on the host's clock (2 x 512-bit FMA pipes x 16 floats x 2 FLOPs x 4.1-4.5 GHz),
// 520-573 on two when both cores are free. Times "at peak" below use 520. Copying 33.5 MB runs at 50-190 GB/s,
// depending on how much stays in L3.
//
// Every op goes through the raw ops of tensor/raw_ops.h (public, in atelier.h): the kernels plus the output's
// allocation from the caching allocator (as PyTorch's calls allocate theirs), without autograd bookkeeping,
// which is O(1) per call. The conv gradients are raw::conv2d_backward_input / raw::conv2d_backward_weight.
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#if defined(__AVX512F__) || defined(__AVX2__)
// g++ 12 reports false -Wuninitialized / -Wmaybe-uninitialized inside its AVX-512 intrinsic headers.
#pragma GCC diagnostic push
#ifndef __clang__  // a g++ name: clang does not know it (-Wunknown-warning-option)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#include "atelier.h"
#include "backends/cpu/packed_gemm.h"
#include "bench/bench_device.h"

namespace atelier {
namespace {

constexpr double kGiga = 1e-9;

// The device the ops run on (--device, bench/bench_device.h), and the wait that ends each timed iteration there.
Device g_device = Device::cpu();

Tensor on_device(const Tensor& t) { return t.to(g_device); }
void finish() { bench::finish(g_device); }

// Rates in units of 10^9 per second: printed "GFLOP=95.2/s", and the JSON fields GFLOP and GB hold GFLOP/s and
// GB/s.
void set_flops(benchmark::State& state, double flops) {
  state.counters["GFLOP"] = benchmark::Counter(flops * kGiga, benchmark::Counter::kIsIterationInvariantRate);
}
void set_bytes(benchmark::State& state, double bytes) {
  state.counters["GB"] = benchmark::Counter(bytes * kGiga, benchmark::Counter::kIsIterationInvariantRate);
}

// "16x64x32x32". (Streams, not string +: g++ 12 gives false -Wrestrict warnings on the latter.)
std::string dims(const Shape& shape) {
  std::ostringstream s;
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? "x" : "") << shape[i];
  return s.str();
}

// ---- GEMM ----
// C (M x N) = op(A) (M x K) @ op(B) (K x N). FLOPs 2 M N K; bytes 4 (MK + KN + MN), small beside the FLOPs for
// every shape here (arithmetic intensity >= 57 FLOP/byte), so all are compute bound: the goal is the FMA peak.
struct GemmCase {
  std::string name;
  int64_t m, k, n;
  bool trans_a, trans_b;  // A stored K x M / B stored N x K, passed to matmul as transposed views
};

void bench_gemm(benchmark::State& state, const GemmCase& c) {
  Tensor a = c.trans_a ? on_device(randn({c.k, c.m})).transpose(0, 1) : on_device(randn({c.m, c.k}));
  Tensor b = c.trans_b ? on_device(randn({c.n, c.k})).transpose(0, 1) : on_device(randn({c.k, c.n}));
  for (auto _ : state) {
    Tensor out = raw::matmul(a, b);
    benchmark::DoNotOptimize(out.raw_data());
    finish();
  }
  set_flops(state, 2.0 * static_cast<double>(c.m) * static_cast<double>(c.n) * static_cast<double>(c.k));
}

std::vector<GemmCase> gemm_cases() {
  return {
      // 2.15 GFLOP; 12 MiB of operands (fits L3). At peak: 4.1 ms.
      {"gemm/1024x1024x1024", 1024, 1024, 1024, false, false},
      // One image of conv 3x3 64->64 at 64x64 (the BEGAN stem), per-image im2col, 0.302 GFLOP each:
      //   forward      out (64 x 4096)   = W (64 x 576) @ cols (576 x 4096)      cols 9.4 MB, stays in L3
      //   bwd_input    dcols (576 x 4096) = W^T (576 x 64) @ dout (64 x 4096)    then col2im
      //   bwd_weight   dW (64 x 576)     = dout (64 x 4096) @ cols^T (4096 x 576) K = 4096 is the long side
      // Batch 16 is 16 of these (4.83 GFLOP): at peak 0.58 ms each, 9.3 ms per pass.
      {"gemm/im2col_fwd_64x576x4096", 64, 576, 4096, false, false},
      {"gemm/im2col_bwd_input_576x64x4096", 576, 64, 4096, true, false},
      {"gemm/im2col_bwd_weight_64x4096x576", 64, 4096, 576, false, true},
  };
}

// ---- conv2d ----
struct ConvCase {
  int64_t n, c_in, h, w, c_out, stride;
};

std::string conv_name(const ConvCase& c) {
  std::ostringstream s;
  s << "conv/" << dims({c.n, c.c_in, c.h, c.w}) << "->" << c.c_out;
  if (c.stride != 1) s << "s" << c.stride;
  return s.str();
}

Conv2dGeometry geometry(const ConvCase& c) {
  const int64_t k = 3, pad = 1;
  const int64_t h_out = (c.h + 2 * pad - k) / c.stride + 1, w_out = (c.w + 2 * pad - k) / c.stride + 1;
  return {c.n, c.c_in, c.h, c.w, c.c_out, k, k, c.stride, c.stride, pad, pad, h_out, w_out};
}

// Each pass is one GEMM-shaped contraction of 2 N C_out H_out W_out C_in kh kw FLOPs (the bias is left out).
double conv_flops(const Conv2dGeometry& g) {
  return 2.0 * static_cast<double>(g.n * g.c_out * g.h_out * g.w_out) * static_cast<double>(g.c_in * g.kh * g.kw);
}

enum class ConvPass { Forward, BackwardInput, BackwardWeight, All3 };

// The BEGAN shapes, batch 16, 3x3, padding 1. FLOPs per pass (x 3 for all3), time per pass at peak:
//   16x64x64x64->64      4.83 GFLOP  9.3 ms   input and output 16.8 MB each, im2col per image 9.4 MB
//   16x128x32x32->128    4.83 GFLOP  9.3 ms   input 8.4 MB, im2col per image 4.7 MB
//   16x192x16x16->192    2.72 GFLOP  5.2 ms   input 3.1 MB; H W = 256 columns per image: short GEMMs
//   16x64x64x64->128s2   2.42 GFLOP  4.7 ms   output 32x32; im2col per image 2.4 MB
//   16x128x32x32->192s2  1.81 GFLOP  3.6 ms   output 16x16: 256 columns per image
//   16x192x16x16->256s2  0.91 GFLOP  1.8 ms   output 8x8: 64 columns per image, so 4 images per GEMM
// Memory traffic is a few tens of MB per pass (under 1 ms at copy speed), so all are compute bound. The issue's
// target: 16x64x64x64->64 all3 (14.5 GFLOP) in <= 150 ms on 2 threads.
void bench_conv(benchmark::State& state, const ConvCase& c, ConvPass pass) {
  const Conv2dGeometry g = geometry(c);
  const int64_t stride = c.stride, padding = g.pad_h;
  Tensor input = on_device(randn({g.n, g.c_in, g.h, g.w}));                 // (N, C_in, H, W)
  Tensor weight = on_device(randn({g.c_out, g.c_in, g.kh, g.kw}));          // (C_out, C_in, 3, 3)
  Tensor grad_output = on_device(randn({g.n, g.c_out, g.h_out, g.w_out}));  // (N, C_out, H_out, W_out)
  for (auto _ : state) {
    if (pass == ConvPass::Forward || pass == ConvPass::All3) {
      Tensor output = raw::conv2d(input, weight, Tensor(), stride, padding);
      benchmark::DoNotOptimize(output.raw_data());
    }
    if (pass == ConvPass::BackwardInput || pass == ConvPass::All3) {
      Tensor grad_input = raw::conv2d_backward_input(grad_output, weight, input.shape(), stride, padding);
      benchmark::DoNotOptimize(grad_input.raw_data());
    }
    if (pass == ConvPass::BackwardWeight || pass == ConvPass::All3) {
      raw::Conv2dWeightGrads grads =
          raw::conv2d_backward_weight(input, grad_output, weight.shape(), /*with_bias=*/false, stride, padding);
      benchmark::DoNotOptimize(grads.weight.raw_data());
    }
    finish();
  }
  set_flops(state, conv_flops(g) * (pass == ConvPass::All3 ? 3 : 1));
}

// A stride-1 conv's all3 under one conv algorithm (restored afterwards). FLOPs are counted as im2col's, so
// the GFLOP/s of a Winograd row is an effective rate (it does 2.25x or 4x fewer multiplications).
void bench_conv_algo(benchmark::State& state, const ConvCase& c, ConvAlgo algo) {
  const ConvAlgo saved = conv_algo();
  set_conv_algo(algo);
  bench_conv(state, c, ConvPass::All3);
  set_conv_algo(saved);
}

// ---- memory-bound ops: 4 bytes per element read and written ----
// The reference for all of them is copy: 16.8 MB in, 16.8 MB out, the best any elementwise op can do.
// 16x64x64x64 = 4.19 M elements; the 33.5 MB moved are about the L3's size, so they are partly cache-resident.
const Shape kActivation = {16, 64, 64, 64};

void bench_copy(benchmark::State& state) {
  Tensor x = on_device(randn(kActivation));
  for (auto _ : state) {
    Tensor out = raw::clone(x);
    benchmark::DoNotOptimize(out.raw_data());
    finish();
  }
  set_bytes(state, 2.0 * 4 * static_cast<double>(x.numel()));
}

// ELU (alpha 1): x > 0 ? x : e^x - 1. Bytes as copy; one exp per element (the kernel computes
// max(x, 0) + (exp(min(x, 0)) - 1) branch-free). A vectorised exp costs ~10-20 FLOPs: 4.19 M x ~10 = 0.04 GFLOP,
// far under the copy time, so ELU should run near copy speed (it does: ~75%; scalar expm1 took 18.8 ms).
void bench_elu(benchmark::State& state) {
  Tensor x = on_device(randn(kActivation));
  for (auto _ : state) {
    Tensor out = raw::unary(UnaryOp::Elu, x, 1.0);
    benchmark::DoNotOptimize(out.raw_data());
    finish();
  }
  set_bytes(state, 2.0 * 4 * static_cast<double>(x.numel()));
}

// Nearest upsampling x2 of (16, 64, 32, 32) into (16, 64, 64, 64), the BEGAN decoder's step.
//   forward:  reads 4.2 MB, writes 16.8 MB;  backward (sum of each 2x2 block): reads 16.8 MB, writes 4.2 MB.
void bench_upsample(benchmark::State& state, bool backward) {
  const int64_t scale = 2;
  Tensor small = on_device(randn({16, 64, 32, 32}));  // (N, C, H, W)
  Tensor large = on_device(randn({16, 64, 64, 64}));  // (N, C, 2H, 2W)
  for (auto _ : state) {
    Tensor out = backward ? raw::upsample_nearest2d_backward(large, scale) : raw::upsample_nearest2d(small, scale);
    benchmark::DoNotOptimize(out.raw_data());
    finish();
  }
  set_bytes(state, 4.0 * static_cast<double>(small.numel() + large.numel()));
}

// ELU's gradient from the saved output (the BEGAN step's backward of every conv2d_elu): dx = dy * (y > 0 ? 1 :
// y + 1). Reads dy and y, writes dx: 1.5x copy's bytes.
void bench_elu_backward(benchmark::State& state) {
  Tensor y = on_device(raw::unary(UnaryOp::Elu, randn(kActivation), 1.0));
  Tensor dy = on_device(randn(kActivation));
  for (auto _ : state) {
    Tensor dx = raw::activation_backward(UnaryOp::Elu, dy, y, 1.0);
    benchmark::DoNotOptimize(dx.raw_data());
    finish();
  }
  set_bytes(state, 3.0 * 4 * static_cast<double>(y.numel()));
}

// The BEGAN loss: mean |D(x) - x| over a (16, 3, 64, 64) batch, forward and backward through autograd.
void bench_l1_loss(benchmark::State& state) {
  Tensor target = on_device(randn({16, 3, 64, 64}));
  Tensor input = on_device(randn({16, 3, 64, 64})).requires_grad_();
  for (auto _ : state) {
    Tensor loss = l1_loss(input, target);
    loss.backward();
    benchmark::DoNotOptimize(input.grad().raw_data());
    input.set_grad(Tensor());
    finish();
  }
}

// Not BEGAN's: a classifier's loss, log_softmax forward and backward through autograd (the gradient seeded with
// `grad`), over (rows, classes) logits: 256 x 1000 (an ImageNet-sized head) and 4096 x 10 (many short rows).
void bench_log_softmax(benchmark::State& state, int64_t rows, int64_t classes) {
  Tensor logits = on_device(randn({rows, classes})).requires_grad_();
  const Tensor grad = on_device(randn({rows, classes}));
  for (auto _ : state) {
    log_softmax(logits, 1).backward(grad);
    benchmark::DoNotOptimize(logits.grad().raw_data());
    logits.set_grad(Tensor());
    finish();
  }
}

// general/: an op of autograd/functions.h on float32 leaves (uniform in [lo, hi]) forward, then backward from a
// gradient of ones (made once), the leaves' gradients cleared each iteration. The shapes are bench/peers/
// ops_torch.py's general_cases(): mostly 512 x 2048 (1M elements), a row or column for the broadcasts.
struct GeneralCase {
  std::string name;
  std::vector<Shape> shapes;
  double lo, hi;
  std::function<Tensor(const std::vector<Tensor>&)> op;
};

std::vector<GeneralCase> general_cases() {
  using X = const std::vector<Tensor>&;
  const Shape m = {512, 2048}, half_rows = {256, 2048}, half_cols = {512, 1024}, image = {16, 64, 32, 32};
  return {
      {"add", {m, m}, -1, 1, [](X x) { return add(x[0], x[1]); }},
      {"add/row_bias", {m, {2048}}, -1, 1, [](X x) { return add(x[0], x[1]); }},
      {"add/column_bias", {m, {512, 1}}, -1, 1, [](X x) { return add(x[0], x[1]); }},
      {"mul", {m, m}, -1, 1, [](X x) { return mul(x[0], x[1]); }},
      {"mul/scalar", {m}, -1, 1, [](X x) { return mul(x[0], 3.0); }},
      {"div", {m, m}, 1, 2, [](X x) { return div(x[0], x[1]); }},
      {"exp", {m}, -1, 1, [](X x) { return exp(x[0]); }},
      {"log", {m}, 0.5, 2, [](X x) { return log(x[0]); }},
      {"sqrt", {m}, 0.5, 2, [](X x) { return sqrt(x[0]); }},
      {"pow2", {m}, -1, 1, [](X x) { return pow(x[0], 2.0); }},
      {"abs", {m}, -1, 1, [](X x) { return abs(x[0]); }},
      {"tanh", {m}, -1, 1, [](X x) { return tanh(x[0]); }},
      {"sigmoid", {m}, -1, 1, [](X x) { return sigmoid(x[0]); }},
      {"softplus", {m}, -4, 4, [](X x) { return softplus(x[0]); }},
      {"leaky_relu", {m}, -1, 1, [](X x) { return leaky_relu(x[0]); }},
      {"silu", {m}, -4, 4, [](X x) { return silu(x[0]); }},
      {"gelu", {m}, -4, 4, [](X x) { return gelu(x[0]); }},
      {"gelu_tanh", {m}, -4, 4, [](X x) { return gelu(x[0], GeluApproximate::Tanh); }},
      {"relu", {m}, -1, 1, [](X x) { return relu(x[0]); }},
      {"elu", {m}, -1, 1, [](X x) { return elu(x[0]); }},
      {"clamp", {m}, -1, 1, [](X x) { return clamp(x[0], -0.5, 0.5); }},
      {"sum/all", {m}, -1, 1, [](X x) { return sum(x[0]); }},
      {"sum/dim0", {m}, -1, 1, [](X x) { return sum(x[0], {0}); }},
      {"sum/dim1", {m}, -1, 1, [](X x) { return sum(x[0], {1}); }},
      {"mean/dim1", {m}, -1, 1, [](X x) { return mean(x[0], {1}); }},
      {"amax/dim0", {m}, -1, 1, [](X x) { return amax(x[0], {0}); }},
      {"amax/dim1", {m}, -1, 1, [](X x) { return amax(x[0], {1}); }},
      {"amin/dim1", {m}, -1, 1, [](X x) { return amin(x[0], {1}); }},
      {"var/dim1", {m}, -1, 1, [](X x) { return var(x[0], {1}); }},
      {"logsumexp/dim1", {m}, -2, 2, [](X x) { return logsumexp(x[0], {1}); }},
      {"maximum", {m, m}, -1, 1, [](X x) { return maximum(x[0], x[1]); }},
      {"matmul/512", {{512, 512}, {512, 512}}, -1, 1, [](X x) { return matmul(x[0], x[1]); }},
      {"linear/256x1024x1024",
       {{256, 1024}, {1024, 1024}, {1024}},
       -1,
       1,
       [](X x) { return linear(x[0], x[1], x[2]); }},
      {"transpose_contiguous", {m}, -1, 1, [](X x) { return contiguous(transpose(x[0], 0, 1)); }},
      {"permute3d_contiguous",
       {{64, 128, 128}},
       -1,
       1,
       [](X x) {
         return contiguous(permute(x[0], {2, 0, 1}));
       }},
      {"cat/dim0",
       {half_rows, half_rows},
       -1,
       1,
       [](X x) {
         return cat({x[0], x[1]}, 0);
       }},
      {"stack/dim0",
       {half_rows, half_rows},
       -1,
       1,
       [](X x) {
         return stack({x[0], x[1]}, 0);
       }},
      {"cat/dim1",
       {half_cols, half_cols},
       -1,
       1,
       [](X x) {
         return cat({x[0], x[1]}, 1);
       }},
      {"slice_step2", {m}, -1, 1, [](X x) { return contiguous(slice(x[0], 1, 0, 2048, 2)); }},
      {"mse_loss", {m, m}, -1, 1, [](X x) { return mse_loss(x[0], x[1]); }},
      {"l1_loss", {m, m}, -1, 1, [](X x) { return l1_loss(x[0], x[1]); }},
      {"bce_with_logits", {m, m}, -1, 1, [](X x) { return binary_cross_entropy_with_logits(x[0], x[1]); }},
      {"softmax/dim1", {m}, -2, 2, [](X x) { return softmax(x[0], 1); }},
      {"to_float64", {m}, -1, 1, [](X x) { return to_dtype(x[0], DType::Float64); }},
      // the layers' ops (1M elements; batch_norm without running statistics, as nothing else differs)
      {"dropout", {m}, -1, 1, [](X x) { return dropout(x[0], 0.5); }},
      {"batch_norm/nchw",
       {image, {64}, {64}},
       -1,
       1,
       [](X x) { return batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true); }},
      {"batch_norm/nc",
       {{4096, 256}, {256}, {256}},
       -1,
       1,
       [](X x) { return batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true); }},
      {"group_norm/nchw_g32", {image, {64}, {64}}, -1, 1, [](X x) { return group_norm(x[0], 32, x[1], x[2]); }},
      {"group_norm/nc", {{4096, 256}, {256}, {256}}, -1, 1, [](X x) { return group_norm(x[0], 32, x[1], x[2]); }},
      {"group_norm/nc16", {{1024, 64, 16}, {64}, {64}}, -1, 1, [](X x) { return group_norm(x[0], 32, x[1], x[2]); }},

      {"layer_norm/dim1", {m, {2048}, {2048}}, -1, 1, [](X x) { return layer_norm(x[0], {2048}, x[1], x[2]); }},
      {"layer_norm/short", {{32768, 32}, {32}, {32}}, -1, 1, [](X x) { return layer_norm(x[0], {32}, x[1], x[2]); }},
      {"max_pool2d/k2", {image}, -1, 1, [](X x) { return max_pool2d(x[0], 2); }},
      {"max_pool2d/k3_s2_p1", {image}, -1, 1, [](X x) { return max_pool2d(x[0], 3, 2, 1); }},
      {"avg_pool2d/k2", {image}, -1, 1, [](X x) { return avg_pool2d(x[0], 2); }},
  };
}

void bench_general(benchmark::State& state, const GeneralCase& c) {
  std::vector<Tensor> leaves;
  uint64_t stream = 0;
  for (const Shape& shape : c.shapes) {
    leaves.push_back(on_device(uniform(shape, c.lo, c.hi, RandomKey{7, stream++})).requires_grad_());
  }
  const Tensor probe = c.op(leaves);
  const Tensor seed = on_device(ones(probe.shape(), probe.dtype()));
  for (auto _ : state) {
    c.op(leaves).backward(seed);
    benchmark::DoNotOptimize(leaves[0].grad().raw_data());
    for (const Tensor& leaf : leaves) leaf.set_grad(Tensor());
    finish();
  }
}

// Reductions alone (backends/cuda/reduce.cu's paths on CUDA): `shape` summed or averaged over `dims`. The BEGAN
// L1 losses are 196,608 elements into 1 output (or 2, the D step's two losses in one call); a bias gradient at
// 64x64, 64 channels and batch 16 is 65,536 elements into each of 64 outputs. Reads the source once.
void bench_reduce(benchmark::State& state, const Shape& shape, const std::vector<int64_t>& dims, bool mean) {
  const Tensor x = on_device(randn(shape));
  for (auto _ : state) {
    Tensor y = mean ? x.mean(dims) : x.sum(dims);
    benchmark::DoNotOptimize(y.raw_data());
    finish();
  }
  set_bytes(state, 4.0 * static_cast<double>(x.numel()));
}

// One Adam step (betas 0.5, 0.999) over tensors of the shapes of the 64x64, n = 64 BEGAN encoder's convolutions
// and both fully connected layers (3.7 M parameters, 21 tensors with the biases). Reads parameter, gradient and
// both moments, writes three: 7 x 4 bytes per parameter.
std::vector<Shape> adam_shapes() {
  std::vector<Shape> shapes;
  const int64_t convs[][2] = {{3, 64},    {64, 64},   {64, 128},  {128, 128}, {128, 192},
                              {192, 192}, {192, 256}, {256, 256}, {256, 256}};
  for (const auto& c : convs) {
    shapes.push_back({c[1], c[0], 3, 3});
    shapes.push_back({c[1]});
  }
  shapes.push_back({64, 8 * 8 * 256});  // encoder fc
  shapes.push_back({64});
  shapes.push_back({8 * 8 * 64, 64});  // decoder fc
  return shapes;
}

void bench_adam(benchmark::State& state) {
  std::vector<Tensor> params;
  int64_t count = 0;
  for (const Shape& s : adam_shapes()) {
    Tensor p = on_device(randn(s)).requires_grad_();
    p.set_grad(on_device(randn(s)));
    count += p.numel();
    params.push_back(p);
  }
  nn::Adam adam(params, 1e-4, {0.5, 0.999});
  for (auto _ : state) {
    adam.step();
    finish();
  }
  set_bytes(state, 7.0 * 4 * static_cast<double>(count));
}

// The same tensors through the raw ops: adam_step once per tensor (21 launches on CUDA) against one
// adam_step_multi call (one launch): what the multi-tensor step (nn::Adam's since it exists) buys.
void bench_adam_raw(benchmark::State& state, bool multi) {
  std::vector<raw::AdamTensors> items;
  double elements = 0;
  for (const Shape& shape : adam_shapes()) {
    items.push_back({on_device(randn(shape)), on_device(randn(shape)), on_device(zeros(shape)), on_device(zeros(shape)),
                     1, static_cast<int64_t>(items.size())});
    elements += static_cast<double>(items.back().param.numel());
  }
  AdamHyperparameters h;
  h.beta1 = 0.5;
  for (auto _ : state) {
    if (multi) {
      raw::adam_step_multi_(items, 1e-4, h);
    } else {
      for (const raw::AdamTensors& t : items) raw::adam_step_(t.param, t.grad, t.exp_avg, t.exp_avg_sq, 1, 1e-4, h);
    }
    finish();
  }
  set_bytes(state, 28.0 * elements);
}

// ---- FMA peak: the ceiling the GFLOP/s above are fractions of ----
// 12 independent chains of vector FMAs (2 FMA pipes x 4 cycles latency need >= 8 in flight), no memory traffic:
// 2 x lanes FLOPs per instruction. peak/fma runs it on every thread of the pool at once, peak/fma_1thread on the
// calling thread alone. On a shared machine the first drops when other processes hold a core.
constexpr int kChains = 12;
constexpr int64_t kFmaIters = int64_t{1} << 20;

#if defined(__AVX512F__)
constexpr int kLanes = 16;
float fma_chains(int64_t iters) {
  __m512 acc[kChains];
  const __m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], b, c);
  }
  float sum = 0;
  for (int j = 0; j < kChains; ++j) sum += _mm512_reduce_add_ps(acc[j]);
  return sum;
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8;
float fma_chains(int64_t iters) {
  __m256 acc[kChains];
  const __m256 b = _mm256_set1_ps(1.0000001f), c = _mm256_set1_ps(1e-7f);
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(static_cast<float>(j));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], b, c);
  }
  float lanes[8], sum = 0;
  for (int j = 0; j < kChains; ++j) {
    _mm256_storeu_ps(lanes, acc[j]);
    for (float v : lanes) sum += v;
  }
  return sum;
}
#else
constexpr int kLanes = 1;
float fma_chains(int64_t iters) {
  float acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = static_cast<float>(j);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < kChains; ++j) acc[j] = std::fma(acc[j], 1.0000001f, 1e-7f);
  }
  float sum = 0;
  for (float v : acc) sum += v;
  return sum;
}
#endif

void bench_fma_peak(benchmark::State& state, bool whole_pool) {
  const int threads = whole_pool ? num_threads() : 1;
  std::vector<float> sums(static_cast<size_t>(threads));
  int64_t iters = kFmaIters;
  for (auto _ : state) {
    benchmark::DoNotOptimize(iters);  // opaque: the chains cannot be hoisted out of the loop
    if (whole_pool) {
      parallel_run([&](int t, int) { sums[static_cast<size_t>(t)] = fma_chains(iters); });
    } else {
      sums[0] = fma_chains(iters);
    }
    benchmark::DoNotOptimize(sums.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * kLanes * kChains * static_cast<double>(kFmaIters) * threads);
}

// ---- The packed float GEMM kernel alone (backends/cpu/packed_gemm.h), against the peak above ----
// One call on the calling thread at a shape the stride-2 convolutions call it with, the operands packed once
// before the loop (so they are warm in L2, where the conv's im2col leaves most of B; in the conv the kernel runs
// a few % slower than here, docs/benchmarks.md "Fourth pass"). Without AVX-512 the rows time the same portable
// code, which the convolutions do not use there. Rows (M x K x N, as the gemm/ rows):
//   packed_gemm/128x576x448   layer 1's forward: W (C_out 128, 64 x 9) times a tile of 14 output rows (448 columns)
//   packed_gemm/192x576x256   layer 2's forward: one of its two channel blocks, one 16x16 image
//   packed_gemm/256x432x64    layer 3's forward: one of its four channel blocks, one 8x8 image
//   packed_gemm/576x128x448   layer 1's input gradient: W^T (576, 128) times grad_output's tile
//   packed_gemm/wgrad_72x1024x128  layer 1's weight gradient (gemm_add_transposed): 8 channels' col rows (72, one
//                             image's 1024 pixels, rows 1040 apart) times grad_output^T (1024, C_out 128)
struct PackedGemmCase {
  std::string name;
  int64_t m, k, n;
  bool weight_grad;
};

void bench_packed_gemm(benchmark::State& state, const PackedGemmCase& c) {
  using namespace atelier::cpu;
  // Small values in [-1, 1]: the sums stay finite, and the FMAs run on ordinary floats (no denormals).
  auto values = [](int64_t count) {
    std::vector<float> v(static_cast<size_t>(count));
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(static_cast<int64_t>(i % 17) - 8) / 8.0f;
    return v;
  };
  std::vector<float> bp = values(packed_b_size(c.k, c.n));
  if (c.weight_grad) {
    const int64_t lda = c.k + 16;  // col's rows as the weight gradient lays them out (kColPad in conv.cpp)
    const std::vector<float> a = values(c.m * lda);
    std::vector<float> gw(static_cast<size_t>(c.n * c.m), 0.0f);
    for (auto _ : state) {
      gemm_add_transposed(a.data(), lda, bp.data(), c.m, c.n, c.k, gw.data(), c.m);
      benchmark::DoNotOptimize(gw.data());
      benchmark::ClobberMemory();
    }
  } else {
    const std::vector<float> ap = values(packed_a_size(c.m, c.k));
    std::vector<float> out(static_cast<size_t>(c.m * c.n));
    for (auto _ : state) {
      packed_gemm(ap.data(), bp.data(), c.m, c.n, c.k, out.data(), c.n);
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
  }
  set_flops(state, 2.0 * static_cast<double>(c.m) * static_cast<double>(c.n) * static_cast<double>(c.k));
}

void register_all() {
  auto add = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->Unit(benchmark::kMillisecond)->UseRealTime();
  };
  if (g_device.is_cpu()) {
    add("peak/fma", [](benchmark::State& s) { bench_fma_peak(s, true); });
    add("peak/fma_1thread", [](benchmark::State& s) { bench_fma_peak(s, false); });
    const std::vector<PackedGemmCase> packed = {{"packed_gemm/128x576x448", 128, 576, 448, false},
                                                {"packed_gemm/192x576x256", 192, 576, 256, false},
                                                {"packed_gemm/256x432x64", 256, 432, 64, false},
                                                {"packed_gemm/576x128x448", 576, 128, 448, false},
                                                {"packed_gemm/wgrad_72x1024x128", 72, 1024, 128, true}};
    for (const PackedGemmCase& c : packed) add(c.name, [c](benchmark::State& s) { bench_packed_gemm(s, c); });
  }
  for (const GemmCase& c : gemm_cases()) {
    add(c.name, [c](benchmark::State& s) { bench_gemm(s, c); });
  }
  const std::vector<ConvCase> convs = {{16, 64, 64, 64, 64, 1},  {16, 128, 32, 32, 128, 1}, {16, 192, 16, 16, 192, 1},
                                       {16, 64, 64, 64, 128, 2}, {16, 128, 32, 32, 192, 2}, {16, 192, 16, 16, 256, 2}};
  const std::vector<std::pair<ConvPass, const char*>> passes = {{ConvPass::Forward, "fwd"},
                                                                {ConvPass::BackwardInput, "bwd_input"},
                                                                {ConvPass::BackwardWeight, "bwd_weight"},
                                                                {ConvPass::All3, "all3"}};
  for (const ConvCase& c : convs) {
    for (const auto& [pass, suffix] : passes) {
      std::ostringstream name;
      name << conv_name(c) << "/" << suffix;
      add(name.str(), [c, pass = pass](benchmark::State& s) { bench_conv(s, c, pass); });
    }
  }
  // Beside BEGAN's wide layers, the thin ones on either side of auto's thresholds (Winograd from 16 channels in
  // and 3 out, backends/conv_algo.h): the first and last convolutions of the 64x64 RGB and 32x32 grey models
  // (3 -> 64, 64 -> 3, 1 -> 32, 32 -> 1) and the shapes the rule was first measured on (8 -> 32, 16 -> 32, 16 -> 1);
  // and the widest layer of the n = 128 model, 512 channels at 8x8 (Winograd's rows of V 2 KiB apart).
  std::vector<ConvCase> algo_convs = {{16, 3, 64, 64, 64, 1}, {16, 64, 64, 64, 3, 1}, {16, 1, 32, 32, 32, 1},
                                      {16, 32, 32, 32, 1, 1}, {16, 8, 32, 32, 32, 1}, {16, 16, 32, 32, 32, 1},
                                      {16, 16, 32, 32, 1, 1}, {16, 512, 8, 8, 512, 1}};
  algo_convs.insert(algo_convs.begin(), convs.begin(), convs.end());
  for (const ConvCase& c : algo_convs) {
    if (c.stride != 1) continue;
    for (ConvAlgo algo : {ConvAlgo::Im2col, ConvAlgo::Wino2, ConvAlgo::Wino4, ConvAlgo::Direct}) {
      std::string name = "conv_algo" + conv_name(c).substr(4) + "/all3/" + conv_algo_name(algo);
      add(name, [c, algo](benchmark::State& s) { bench_conv_algo(s, c, algo); });
    }
  }
  add("copy/16x64x64x64", bench_copy);
  add("elu/16x64x64x64", bench_elu);
  add("upsample/16x64x32x32/fwd", [](benchmark::State& s) { bench_upsample(s, false); });
  add("upsample/16x64x32x32/bwd", [](benchmark::State& s) { bench_upsample(s, true); });
  add("elu_bwd/16x64x64x64", bench_elu_backward);
  add("l1_loss/16x3x64x64/fwd_bwd", bench_l1_loss);
  add("log_softmax/256x1000/fwd_bwd", [](benchmark::State& s) { bench_log_softmax(s, 256, 1000); });
  add("log_softmax/4096x10/fwd_bwd", [](benchmark::State& s) { bench_log_softmax(s, 4096, 10); });
  for (const GeneralCase& c : general_cases()) {
    add("general/" + c.name + "/fwd_bwd", [c](benchmark::State& s) { bench_general(s, c); });
  }
  add("reduce/mean/16x3x64x64_into_1", [](benchmark::State& s) { bench_reduce(s, {16, 3, 64, 64}, {}, true); });
  add("reduce/mean/2x16x3x64x64_into_2", [](benchmark::State& s) {
    bench_reduce(s, {2, 16 * 3 * 64 * 64}, {1}, true);
  });
  add("reduce/sum/16x64x64x64_into_64", [](benchmark::State& s) {
    bench_reduce(s, {16, 64, 64, 64}, {0, 2, 3}, false);
  });
  add("adam/began_encoder_n64", bench_adam);
  add("adam/began_encoder_n64/per_tensor", [](benchmark::State& s) { bench_adam_raw(s, false); });
  add("adam/began_encoder_n64/multi", [](benchmark::State& s) { bench_adam_raw(s, true); });
}

}  // namespace
}  // namespace atelier

int main(int argc, char** argv) {
  atelier::bench::print_usage_on_help(
      argc, argv,
      "bench_ops: the ops of a BEGAN step, one benchmark each (bench/bench_ops.cpp).\n"
      "Its own flag:\n"
      "  --device cpu|cuda  the device the ops run on (default cpu)\n"
      "  --precision fp32|tf32|bf16  the GEMM and convolution precision (default fp32;\n"
      "                     the CPU computes fp32)\n"
      "Google Benchmark's:\n");
  atelier::g_device = atelier::bench::take_device_flag(argc, argv, "bench_ops");
  atelier::bench::take_precision_flag(argc, argv, "bench_ops");
  return atelier::bench::run_benchmarks(argc, argv, atelier::g_device, atelier::register_all);
}
