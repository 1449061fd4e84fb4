// bin/gradcheck: runs the whole op table through the float64 gradient check and prints one line per row,
// `name  max_abs_err  PASS|FAIL` (the row's name, op/case). Exits 1 if any row fails. An optional argument filters rows
// by substring; a filter that matches no row, an unknown flag or a second argument is a usage error (one line, exit 2),
// so a typo never passes as "0 passed, 0 failed". `--device cuda` (before or after the filter, or `--device=cuda`)
// runs every row on the GPU (inputs moved there first; a device that is not available is a usage error too). A bad
// ATELIER_NUM_THREADS or ATELIER_CONV_ALGO is refused first, before any work (exit 2); ATELIER_CONV_ALGO=wino2 or
// wino4 runs the 3x3 stride-1 conv rows through Winograd on the CPU.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "autograd/op_table.h"
#include "backends/backend.h"
#include "backends/conv_algo.h"
#include "backends/thread_pool.h"

namespace {

constexpr const char* kUsage =
    "usage: gradcheck [--device cpu|cuda] [FILTER] (run only the rows whose name, op/case, contains FILTER)";

// The row's inputs on `device`, each still requiring grad where the table's does.
std::vector<atelier::Tensor> inputs_on(const atelier::OpCase& c, atelier::Device device) {
  std::vector<atelier::Tensor> inputs = c.make_inputs();
  if (device.is_cpu()) return inputs;
  for (atelier::Tensor& x : inputs) {
    atelier::Tensor moved = x.detach().to(device);
    if (x.requires_grad()) moved.requires_grad_(true);
    x = moved;
  }
  return inputs;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    atelier::num_threads_from_environment();
    atelier::conv_algo_from_environment();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gradcheck: error: %s\n", e.what());
    return 2;
  }
  // The arguments in any order: `--device NAME` (or `--device=NAME`) and at most one filter.
  atelier::Device device = atelier::Device::cpu();
  std::string filter;
  int filters = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::printf("%s\n", kUsage);
      return 0;
    }
    if (arg == "--device" || arg.rfind("--device=", 0) == 0) {
      if (arg == "--device" && i + 1 == argc) {
        std::fprintf(stderr, "gradcheck: error: --device needs a value (cpu or cuda); %s\n", kUsage);
        return 2;
      }
      const std::string name = arg == "--device" ? argv[++i] : arg.substr(std::strlen("--device="));
      if (name != "cpu" && name != "cuda") {
        std::fprintf(stderr, "gradcheck: error: --device '%.40s' is not a device (cpu or cuda); %s\n", name.c_str(),
                     kUsage);
        return 2;
      }
      device = name == "cpu" ? atelier::Device::cpu() : atelier::Device::cuda();
      try {
        (void)atelier::backend_for(device);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "gradcheck: error: --device %s: %s\n", name.c_str(), e.what());
        return 2;
      }
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "gradcheck: error: unknown option '%.40s'; %s\n", arg.c_str(), kUsage);
      return 2;
    } else {
      filter = arg;
      ++filters;
    }
  }
  if (filters > 1) {
    std::fprintf(stderr, "gradcheck: error: expected at most one argument (a filter), got %d; %s\n", filters, kUsage);
    return 2;
  }
  int failed = 0, run = 0;
  for (const atelier::OpCase& c : atelier::op_table()) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
    ++run;
    try {
      atelier::GradcheckResult r = atelier::gradcheck(c.fn, inputs_on(c, device), c.options);
      std::printf("%-34s %10.3e  %s\n", c.name.c_str(), r.max_abs_err, r.passed ? "PASS" : "FAIL");
      if (!r.passed) {
        std::printf("    %s\n", r.message.c_str());
        ++failed;
      }
    } catch (const std::exception& e) {
      std::printf("%-34s %10s  FAIL\n    %s\n", c.name.c_str(), "-", e.what());
      ++failed;
    }
  }
  if (run == 0) {
    std::fprintf(stderr, "gradcheck: error: no row name contains '%.40s'\n", filter.c_str());
    return 2;
  }
  std::printf("%d passed, %d failed\n", run - failed, failed);
  return failed == 0 ? 0 : 1;
}
