// One full BEGAN training step (began_step_device, the trainer's step: D step, G step with D frozen, k_t update on
// the device, no host read), float32, batch 16, at the sizes of the paper and of the demo, on the CPU or
// (`--device cuda`, each step then ends with a synchronize) the GPU:
//   began_step/32x32/C1/n16     the demo's size                   4.95 GFLOP per step
//   began_step/32x32/C1/n32     `began train`'s default size      19.5 GFLOP per step
//   began_step/64x64/C3/n64     the paper's 64x64 model           0.318 TFLOP per step
//   began_step/64x64/C3/n128    the paper's wider model           1.26 TFLOP per step
// bench/peers/began_step_torch.py --bench times the same step in PyTorch (same model, same FLOP count).
//
// Counters: s_per_step (also the time column, in ms); images/s; GFLOP/s, the step's FLOPs (below) over its time;
// step_s_min and step_s_median, the fastest and the median of the timed steps, each timed alone (the same figures
// began_step_torch.py --bench prints); peak_MiB, the device's caching allocator's peak bytes in use during the case
// (Backend::reset_peak_in_use before it builds its model; the cases still run smallest first, for max_rss_MiB);
// reserved_MiB, what the allocator holds after the steps (in use and cached); model_MiB, the bytes in use between steps
// (parameters, gradients, Adam's moments, the batch); system_allocs, the allocator's calls to the system during the
// timed steps (0 in a steady state: backends/caching_allocator.h); max_rss_MiB, the process's peak resident memory
// (getrusage; like peak_MiB it only grows, so run one case per process to compare it with PyTorch's), and rss_base_MiB,
// the resident memory before the case built its model (the program and its libraries). Threads: the pool's size, from
// ATELIER_NUM_THREADS.
//
// Flags besides Google Benchmark's (--help lists both; scripts/bench-vs-torch.sh --began passes both):
//   --steps N          exactly N timed steps per case (default: as many as --benchmark_min_time asks for)
//   --warmup-steps N   untimed steps before them (default 1; at least 1, so Adam's state and the allocator's cache
//                      are in place)
//   --precision P      fp32 (default), tf32 or bf16: the GEMM and convolution precision (backends/precision.h;
//                      the CPU always computes fp32)
//   --cuda-graph M     off (default) or on: the step runs through began/step_runner.h's captured runner (the
//                      trainer's --cuda-graph): after the warm-up steps one step is captured and its first replay
//                      done, untimed; every timed step is then a replay (on the CPU, of the recorded calls)
//   --profile N        after the timed steps, N more steps under a Profiler (backends/profiler.h), printed as a
//                      table per step: each primitive and op name with its calls, device kernels, milliseconds and
//                      share, and the time between calls; the counters calls_per_step, kernels_per_step (CUDA) and
//                      profile_ms_per_step, profile_between_ms_per_step join the row. Eager steps only (a replay
//                      is one call): refused with --cuda-graph on. The timed steps are not profiled.
//   --conv-workspace-mib N  the CUDA convolutions' im2col workspace limit in MiB (backends/conv_algo.h; default
//                      256): a smaller limit splits a layer's images into more chunks, more and smaller GEMMs, whose
//                      columns may stay in the GPU's L2 cache between im2col and the GEMM (the GPU check's targets
//                      plan times 24 and 48 beside the default). The CPU ignores it.
//   --winograd-chunk-tiles N  the CPU's Winograd chunks hold at most N tiles in every layer (backends/cpu/winograd.h;
//                      default: the machine's rule, 96 or 40 by the layer's channels and the L2's size), to compare
//                      limits on a new machine. CUDA ignores it.
//
// FLOPs (2 per multiply-add) of the convolutions and linear layers as the step executes them, with F_D and F_G
// one forward of D and G over the batch:
//   D step  G forward (no grad) + 2 D forwards + 2 D backwards (weight and input gradients, except the input
//           gradient of D's first layer: x and G(z_D) need none)            = F_G + 6 F_D - 2 first
//   G step  G forward + D forward + D backward (input gradients only: D frozen) + G backward (weight gradients,
//           and input gradients except into z)                              = 3 F_G + 2 F_D - fc_G
// about 8 D forwards and 4 G forwards. Elementwise work (ELU, L1, Adam) is not counted.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include "atelier.h"
#include "backends/cpu/winograd.h"
#include "began/model.h"
#include "began/number_text.h"
#include "began/step.h"
#include "began/step_runner.h"
#include "bench/bench_device.h"

namespace atelier {
namespace {

constexpr double kMiB = 1.0 / (1024.0 * 1024.0);

Device g_device = Device::cpu();     // --device (bench/bench_device.h)
int64_t g_steps = 0;                 // --steps: 0 lets Google Benchmark choose the iteration count
int64_t g_warmup_steps = 1;          // --warmup-steps
bool g_cuda_graph = false;           // --cuda-graph
int64_t g_profile_steps = 0;         // --profile
int64_t g_conv_workspace_mib = 0;    // --conv-workspace-mib (0: the library's default)
int64_t g_winograd_chunk_tiles = 0;  // --winograd-chunk-tiles (0: the machine's rule)

// The process's peak resident set so far (Linux reports ru_maxrss in KiB).
double max_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// The resident set now: the second field of /proc/self/statm, in pages (0 where the file is missing).
double rss_now_mib() {
  std::ifstream statm("/proc/self/statm");
  double total_pages = 0, resident_pages = 0;
  if (!(statm >> total_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<double>(sysconf(_SC_PAGESIZE)) * kMiB;
}

using bench::take_flag;

// --NAME N with N a whole number in [min_value, max_value], read strictly (began/number_text.h): strtoll would take
// 99999999999999999999 as 2^63 - 1 steps (a run that never ends) and " 5" as 5.
void take_int_flag(int& argc, char** argv, const std::string& name, int64_t min_value, int64_t& value,
                   int64_t max_value = std::numeric_limits<int64_t>::max()) {
  take_flag(argc, argv, "bench_train", name, [&](const std::string& text) {
    const std::string why = began::read_whole_number<int64_t>(text, &value, min_value, max_value);
    if (!why.empty()) {
      std::fprintf(stderr, "bench_train: --%s '%.40s' is %s\n", name.c_str(), text.c_str(), why.c_str());
      std::exit(2);
    }
  });
}

// --cuda-graph on|off.
void take_cuda_graph_flag(int& argc, char** argv) {
  take_flag(argc, argv, "bench_train", "cuda-graph", [](const std::string& text) {
    if (text != "on" && text != "off") {
      std::fprintf(stderr, "bench_train: --cuda-graph '%s' is not on or off\n", text.c_str());
      std::exit(2);
    }
    g_cuda_graph = text == "on";
  });
}

struct TrainCase {
  int64_t image_size, channels, n;
  int64_t h = 64, batch = 16;
};

// FLOPs of one forward over one image of each layer of the encoder (in order, the linear last) and of the decoder
// (the linear first), as began/model.h lays them out.
struct LayerFlops {
  std::vector<double> encoder, decoder;
};

LayerFlops layer_flops(const TrainCase& c) {
  const int64_t k = began::num_upsamplings({c.image_size, c.channels, c.n, c.h, false, false});
  auto conv = [](int64_t in, int64_t out, int64_t side) { return 2.0 * in * out * 9 * side * side; };
  LayerFlops f;
  int64_t side = c.image_size;
  f.encoder = {conv(c.channels, c.n, side), conv(c.n, c.n, side)};
  for (int64_t i = 1; i <= k; ++i) {
    side /= 2;
    f.encoder.push_back(conv(i * c.n, (i + 1) * c.n, side));
    f.encoder.push_back(conv((i + 1) * c.n, (i + 1) * c.n, side));
  }
  f.encoder.push_back(conv((k + 1) * c.n, (k + 1) * c.n, side));
  f.encoder.push_back(2.0 * 64 * (k + 1) * c.n * c.h);
  f.decoder = {2.0 * c.h * 64 * c.n, conv(c.n, c.n, 8), conv(c.n, c.n, 8)};
  for (side = 16; side <= c.image_size; side *= 2) {
    f.decoder.push_back(conv(c.n, c.n, side));
    f.decoder.push_back(conv(c.n, c.n, side));
  }
  f.decoder.push_back(conv(c.n, c.channels, c.image_size));
  return f;
}

double step_flops(const TrainCase& c) {
  const LayerFlops f = layer_flops(c);
  double fe = 0, fd = 0;
  for (double x : f.encoder) fe += x;
  for (double x : f.decoder) fd += x;
  const double forward_d = fe + fd, forward_g = fd;
  const double d_step = forward_g + 6 * forward_d - 2 * f.encoder.front();
  const double g_step = 3 * forward_g + 2 * forward_d - f.decoder.front();
  return static_cast<double>(c.batch) * (d_step + g_step);
}

std::string case_name(const TrainCase& c) {
  std::ostringstream s;
  s << "began_step/" << c.image_size << "x" << c.image_size << "/C" << c.channels << "/n" << c.n;
  return s.str();
}

void bench_step(benchmark::State& state, const TrainCase& c) {
  const double rss_base = rss_now_mib();
  backend_for(g_device).reset_peak_in_use();  // peak_MiB: this case's own
  manual_seed(0);
  const began::ModelConfig config{c.image_size, c.channels, c.n, c.h, false, false};
  began::Generator G(config);
  began::Discriminator D(config);
  G.to(g_device);  // before the optimisers, which hold the parameters
  D.to(g_device);
  nn::Adam opt_g(G.parameters(), 1e-4, {0.5, 0.999});
  nn::Adam opt_d(D.parameters(), 1e-4, {0.5, 0.999});
  const Tensor x = uniform({c.batch, c.channels, c.image_size, c.image_size}, -1, 1).to(g_device);
  const Tensor k = scalar_tensor(0, DType::Float64, g_device);  // k_t on the device, as the trainer keeps it
  int64_t step = 0;
  const std::unique_ptr<began::StepRunner> runner = began::make_step_runner(
      g_cuda_graph ? began::StepMode::graph : began::StepMode::eager, G, D, opt_g, opt_d, k, {}, g_warmup_steps);
  auto one_step = [&] {
    const Tensor z_d = began::sample_z(c.batch, c.h, 0, step, began::LatentStream::discriminator, g_device);
    const Tensor z_g = began::sample_z(c.batch, c.h, 0, step, began::LatentStream::generator, g_device);
    Tensor scalars = runner->run(x, z_d, z_g);  // the trainer's step (began_step_device): no read
    benchmark::DoNotOptimize(scalars);
    bench::finish(g_device);
    ++step;
  };
  // Adam's state and the allocator's cache in place; with --cuda-graph also the capture and its first replay.
  for (int64_t i = 0; i < g_warmup_steps + (g_cuda_graph ? 1 : 0); ++i) one_step();
  if (!runner->fallback_reason().empty()) {
    state.SkipWithError(("--cuda-graph: the capture failed: " + runner->fallback_reason()).c_str());
    return;
  }
  Backend& backend = backend_for(g_device);
  const double resident = static_cast<double>(backend.allocator_stats().in_use);
  const size_t system_allocs_before = backend.allocator_stats().system_allocs;
  std::vector<double> seconds;  // each timed step alone, for the minimum and the median
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    one_step();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  using benchmark::Counter;
  state.counters["s_per_step"] = Counter(1, Counter::Flags(Counter::kIsIterationInvariantRate | Counter::kInvert));
  state.counters["images"] = Counter(static_cast<double>(c.batch), Counter::kIsIterationInvariantRate);
  state.counters["GFLOP"] = Counter(step_flops(c) * 1e-9, Counter::kIsIterationInvariantRate);
  const AllocatorStats stats = backend.allocator_stats();
  state.counters["peak_MiB"] = static_cast<double>(stats.peak_in_use) * kMiB;
  // What the allocator holds after the steps, in use or cached for reuse: above peak_MiB by the cached small blocks
  // no request of the step fits and the free pieces of segments that no request fits at its peak.
  state.counters["reserved_MiB"] = static_cast<double>(stats.in_use + stats.cached) * kMiB;
  state.counters["model_MiB"] = resident * kMiB;
  state.counters["system_allocs"] = static_cast<double>(stats.system_allocs - system_allocs_before);
  state.counters["GFLOP_per_step"] = step_flops(c) * 1e-9;
  if (!seconds.empty()) {
    state.counters["step_s_min"] = seconds.front();
    state.counters["step_s_median"] = seconds[seconds.size() / 2];  // the upper median, as the PyTorch peer's
  }
  state.counters["max_rss_MiB"] = max_rss_mib();
  state.counters["rss_base_MiB"] = rss_base;
  if (g_profile_steps > 0) {
    Profiler profiler(backend);
    for (int64_t i = 0; i < g_profile_steps; ++i) one_step();
    const ProfileReport report = profiler.report();
    const double n = static_cast<double>(g_profile_steps);
    std::printf("\nprofile: %s on %s, %s, per step over %lld eager steps (not the timed ones)\n%s\n",
                case_name(c).c_str(), g_device.str().c_str(), precision_name(precision()),
                static_cast<long long>(g_profile_steps), format_profile(report, g_profile_steps).c_str());
    std::fflush(stdout);
    state.counters["calls_per_step"] = static_cast<double>(report.calls) / n;
    if (report.kernels >= 0) state.counters["kernels_per_step"] = static_cast<double>(report.kernels) / n;
    state.counters["profile_ms_per_step"] = report.span_seconds / n * 1e3;
    state.counters["profile_between_ms_per_step"] = report.between_seconds() / n * 1e3;
  }
}

void register_all() {
  // Smallest first: the process's peak resident memory only grows (see the header comment).
  for (const TrainCase& c : {TrainCase{32, 1, 16}, TrainCase{32, 1, 32}, TrainCase{64, 3, 64}, TrainCase{64, 3, 128}}) {
    benchmark::internal::Benchmark* b =
        benchmark::RegisterBenchmark(case_name(c).c_str(), [c](benchmark::State& s) { bench_step(s, c); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    if (g_steps > 0) b->Iterations(g_steps);
  }
}

}  // namespace
}  // namespace atelier

int main(int argc, char** argv) {
  atelier::bench::print_usage_on_help(
      argc, argv,
      "bench_train: one BEGAN training step per case (bench/bench_train.cpp says what each counter means).\n"
      "Its own flags:\n"
      "  --device cpu|cuda           the device (default cpu)\n"
      "  --steps N                   exactly N timed steps per case (default: as --benchmark_min_time asks)\n"
      "  --warmup-steps N            untimed steps before them (default 1)\n"
      "  --precision fp32|tf32|bf16  the GEMM and convolution precision (default fp32; the CPU computes fp32)\n"
      "  --cuda-graph on|off         each timed step a replay of the step captured once (default off)\n"
      "  --profile N                 N more eager steps under the profiler: a table per step, op by op\n"
      "  --conv-workspace-mib N      the CUDA convolutions' im2col workspace limit (default 256)\n"
      "  --winograd-chunk-tiles N    the CPU's Winograd chunk limit in tiles (default: the machine's rule)\n"
      "Google Benchmark's:\n");
  atelier::g_device = atelier::bench::take_device_flag(argc, argv, "bench_train");
  atelier::take_int_flag(argc, argv, "steps", 1, atelier::g_steps);
  atelier::take_int_flag(argc, argv, "warmup-steps", 1, atelier::g_warmup_steps);
  atelier::bench::take_precision_flag(argc, argv, "bench_train");
  atelier::take_cuda_graph_flag(argc, argv);
  atelier::take_int_flag(argc, argv, "profile", 1, atelier::g_profile_steps);
  atelier::take_int_flag(argc, argv, "conv-workspace-mib", 1, atelier::g_conv_workspace_mib,
                         int64_t{1} << 20);  // 1 TiB
  atelier::take_int_flag(argc, argv, "winograd-chunk-tiles", 1, atelier::g_winograd_chunk_tiles, int64_t{1} << 30);
  atelier::cpu::set_winograd_chunk_tiles(atelier::g_winograd_chunk_tiles);
  if (atelier::g_conv_workspace_mib > 0) {
    atelier::set_conv_workspace_limit(static_cast<size_t>(atelier::g_conv_workspace_mib) << 20);
  }
  if (atelier::g_profile_steps > 0 && atelier::g_cuda_graph) {
    std::fprintf(stderr,
                 "bench_train: --profile breaks eager steps down by primitive; with --cuda-graph on each step is one "
                 "replay: use --cuda-graph off\n");
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  atelier::register_all();
  benchmark::AddCustomContext("atelier_threads", std::to_string(atelier::num_threads()));
  benchmark::AddCustomContext("atelier_device", atelier::g_device.str());
  benchmark::AddCustomContext("atelier_precision", atelier::precision_name(atelier::precision()));
  benchmark::AddCustomContext("atelier_cuda_graph", atelier::g_cuda_graph ? "on" : "off");
  benchmark::AddCustomContext("atelier_conv_workspace_mib", std::to_string(atelier::conv_workspace_limit() >> 20));
  // The CPU's Winograd chunk limit: "rule (N at 128 channels)" by default, else the limit set.
  const int64_t chunk_tiles = atelier::cpu::winograd_chunk_tiles_setting();
  benchmark::AddCustomContext(
      "atelier_winograd_chunk_tiles",
      chunk_tiles > 0 ? std::to_string(chunk_tiles)
                      : "rule (" + std::to_string(atelier::cpu::winograd_chunk_tiles(128)) + " at 128 channels)");
  benchmark::AddCustomContext("atelier_conv_algo", atelier::conv_algo_name(atelier::conv_algo()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
