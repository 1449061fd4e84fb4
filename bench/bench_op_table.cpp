// The op table's benchmarks: every row of autograd/op_table.cpp (the table that drives the gradient check and the
// CPU-vs-CUDA parity tests) timed as it is recorded and differentiated, in float32, at the row's own small shapes
// (a few to a few hundred elements). What they measure is the framework around the kernels: argument checks,
// the output's allocation from the caching allocator, the backend's dispatch, recording the graph's nodes, and the
// backward walk (the engine's queue, the gradient formulas, accumulation into the leaves). Kernel throughput at
// real shapes is bench_ops' (GFLOP/s, GB/s); a BEGAN step's is bench_train's.
//
// Two benchmarks a row, named after it:
//   op_table/ROW/forward    y = the row's function of its inputs, graph recorded (grad mode on, as in training)
//   op_table/ROW/backward   the same forward, then y.backward(ones) into the inputs' .grad (cleared first)
// Counters: nodes (the graph nodes the forward records, counted once from y's grad_fn), and us_per_node (an
// iteration's microseconds over them: what one recorded op costs, forward or forward plus backward). On the GPU
// (`--device cuda`) each iteration ends with a synchronize: every launch's latency is in the time, as a small
// op's would be for a host that waits on its result.
//
// The inputs are the row's make_inputs() (fixed seeds), floating ones cast to float32 and moved to the device
// (inputs_as, autograd/op_table.h, as the parity tests make theirs). Threads: the pool's size, from
// ATELIER_NUM_THREADS; at these sizes every kernel runs on one of them.
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include <benchmark/benchmark.h>

#include "atelier.h"
#include "autograd/node.h"
#include "autograd/op_table.h"
#include "bench/bench_device.h"

namespace atelier {
namespace {

Device g_device = Device::cpu();

// The nodes reachable from y's grad_fn: the ops one forward records.
int64_t count_nodes(const Tensor& y) {
  std::unordered_set<const Node*> seen;
  std::vector<const Node*> stack;
  if (y.grad_fn()) stack.push_back(y.grad_fn().get());
  while (!stack.empty()) {
    const Node* node = stack.back();
    stack.pop_back();
    if (!seen.insert(node).second) continue;
    for (const Edge& e : node->next_edges()) {
      if (e.node) stack.push_back(e.node.get());
    }
  }
  return static_cast<int64_t>(seen.size());
}

// `seconds`: the timed loop's wall time, over state.iterations() iterations.
void set_counters(benchmark::State& state, int64_t nodes, double seconds) {
  state.counters["nodes"] = static_cast<double>(nodes);
  if (nodes > 0 && state.iterations() > 0) {
    state.counters["us_per_node"] =
        seconds * 1e6 / static_cast<double>(state.iterations()) / static_cast<double>(nodes);
  }
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void forward(benchmark::State& state, const OpCase& row) {
  const std::vector<Tensor> inputs = inputs_as(row.make_inputs(), DType::Float32, g_device);
  const int64_t nodes = count_nodes(row.fn(inputs));
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    Tensor y = row.fn(inputs);
    benchmark::DoNotOptimize(y);
    bench::finish(g_device);
  }
  set_counters(state, nodes, seconds_since(start));
}

void backward(benchmark::State& state, const OpCase& row) {
  const std::vector<Tensor> inputs = inputs_as(row.make_inputs(), DType::Float32, g_device);
  const Tensor first = row.fn(inputs);
  const int64_t nodes = count_nodes(first);
  if (!first.requires_grad()) {
    state.SkipWithError(("row " + row.name + ": its output does not require grad").c_str());
    return;
  }
  const Tensor seed = ones(first.shape(), first.dtype(), first.device());
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (const Tensor& x : inputs) {
      if (x.requires_grad()) x.set_grad(Tensor());
    }
    row.fn(inputs).backward(seed);
    bench::finish(g_device);
  }
  set_counters(state, nodes, seconds_since(start));
}

void register_all() {
  for (const OpCase& row : op_table()) {
    const std::string base = "op_table/" + row.name;
    benchmark::RegisterBenchmark((base + "/forward").c_str(), [&row](benchmark::State& s) { forward(s, row); })
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark((base + "/backward").c_str(), [&row](benchmark::State& s) { backward(s, row); })
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
}

}  // namespace
}  // namespace atelier

int main(int argc, char** argv) {
  atelier::bench::print_usage_on_help(
      argc, argv,
      "bench_op_table: every op-table row, forward and forward + backward, at its own small shapes: what the\n"
      "framework costs per recorded op (bench/bench_op_table.cpp).\n"
      "Its own flag:\n"
      "  --device cpu|cuda  the device the rows run on (default cpu)\n"
      "Google Benchmark's:\n");
  atelier::g_device = atelier::bench::take_device_flag(argc, argv, "bench_op_table");
  return atelier::bench::run_benchmarks(argc, argv, atelier::g_device, atelier::register_all);
}
