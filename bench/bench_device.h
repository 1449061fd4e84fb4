// The --device flag of the benchmark programs: `--device cpu|cuda` (or --device=cuda) is taken out of argv before
// Google Benchmark reads the rest. A value that is not a device, or a device this build or machine lacks, ends the
// program with exit 2 and one line naming it.
//   atelier::Device device = atelier::bench::take_device_flag(argc, argv, "bench_ops");
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "backends/backend.h"
#include "backends/error.h"

namespace atelier::bench {

inline Device take_device_flag(int& argc, char** argv, const char* program) {
  Device device = Device::cpu();
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string value;
    if (arg == "--device" && i + 1 < argc) {
      value = argv[++i];
    } else if (arg.rfind("--device=", 0) == 0) {
      value = arg.substr(9);
    } else {
      argv[kept++] = argv[i];
      continue;
    }
    if (value != "cpu" && value != "cuda") {
      std::fprintf(stderr, "%s: --device '%s' is not a device (cpu or cuda)\n", program, value.c_str());
      std::exit(2);
    }
    device = value == "cpu" ? Device::cpu() : Device::cuda();
  }
  argc = kept;
  try {
    (void)backend_for(device);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    std::exit(2);
  }
  return device;
}

// Waits for the device's queued work, so a timed iteration measures the kernels, not their launches.
inline void finish(Device device) {
  if (!device.is_cpu()) backend_for(device).synchronize();
}

}  // namespace atelier::bench
