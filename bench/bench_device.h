// The flags of the benchmark programs that Google Benchmark does not know: each `--NAME VALUE` (or --NAME=VALUE) is
// taken out of argv before it reads the rest (take_flag). `--device cpu|cuda` is one of them; a value that is not a
// device, or a device this build or machine lacks, ends the program with exit 2 and one line naming it, and so
// does a flag given last without its value. print_usage_on_help lists them on --help.
//   atelier::Device device = atelier::bench::take_device_flag(argc, argv, "bench_ops");
// run_benchmarks then does the rest of an op benchmark program's main (Google Benchmark's flags, the run).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include <benchmark/benchmark.h>

#include "atelier.h"
#include "backends/backend.h"
#include "backends/error.h"
#include "backends/precision.h"

namespace atelier::bench {

// Takes every `--NAME VALUE` or `--NAME=VALUE` out of argv and hands each VALUE to `use`, which ends the program with
// exit 2 and one line when the value is bad. A `--NAME` with no value after it is refused here (Google Benchmark
// would call it an unknown flag).
template <class Use>
void take_flag(int& argc, char** argv, const char* program, const std::string& name, Use use) {
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--" + name) {
      if (i + 1 == argc) {
        std::fprintf(stderr, "%s: --%s needs a value\n", program, name.c_str());
        std::exit(2);
      }
      use(std::string(argv[++i]));
    } else if (arg.rfind("--" + name + "=", 0) == 0) {
      use(arg.substr(name.size() + 3));
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
}

inline Device take_device_flag(int& argc, char** argv, const char* program) {
  Device device = Device::cpu();
  take_flag(argc, argv, program, "device", [&](const std::string& value) {
    if (value != "cpu" && value != "cuda") {
      std::fprintf(stderr, "%s: --device '%s' is not a device (cpu or cuda)\n", program, value.c_str());
      std::exit(2);
    }
    device = value == "cpu" ? Device::cpu() : Device::cuda();
  });
  try {
    (void)backend_for(device);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    std::exit(2);
  }
  return device;
}

// `--precision fp32|tf32|bf16` sets the library's GEMM and convolution precision (backends/precision.h); a bad
// value ends the program with exit 2 and one line.
inline void take_precision_flag(int& argc, char** argv, const char* program) {
  take_flag(argc, argv, program, "precision", [program](const std::string& text) {
    try {
      set_precision(parse_precision(text));
    } catch (const Error& e) {
      std::fprintf(stderr, "%s: --precision: %s\n", program, e.what());
      std::exit(2);
    }
  });
}

// One small matrix product on the device, waited for: on CUDA the first GEMM opens cuBLAS and makes its handle
// (about 140 ms on an H200), which would otherwise land in the first benchmark's first timed iteration (seen on
// the GPU machine on 2026-12-04: gemm/1024x1024x1024 and conv_algo/.../im2col reported 140-150 ms, one iteration).
inline void warm_up(Device device) {
  if (device.is_cpu()) return;
  const Tensor a = ones({8, 8}).to(device);
  (void)matmul(a, a);
  backend_for(device).synchronize();
}

// --help: prints `usage`, the program's own flags, first; Google Benchmark's help, which knows only its own flags,
// follows when benchmark::Initialize sees --help (and exits).
inline void print_usage_on_help(int argc, char** argv, const char* usage) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help") {
      std::fputs(usage, stdout);
      return;
    }
  }
}

// Waits for the device's queued work, so a timed iteration measures the kernels, not their launches.
inline void finish(Device device) {
  if (!device.is_cpu()) backend_for(device).synchronize();
}

// The rest of an op benchmark program's main, once its own flags are taken: Google Benchmark's flags (exit 1 on
// an unknown one), the default generator seeded with 0, the benchmarks registered, the thread count and device
// in the report's context, and the run.
inline int run_benchmarks(int argc, char** argv, Device device, void (*register_all)()) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  manual_seed(0);
  register_all();
  benchmark::AddCustomContext("atelier_threads", std::to_string(num_threads()));
  benchmark::AddCustomContext("atelier_device", device.str());
  benchmark::AddCustomContext("atelier_precision", precision_name(precision()));
  warm_up(device);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace atelier::bench
