// bin/gradcheck: runs the whole op table through the float64 gradient check and prints one line per row,
// `op  max_abs_err  PASS|FAIL`. Exits 1 if any row fails. An optional argument filters rows by substring; a
// filter that matches no row, a flag or a second argument is a usage error (one line, exit 2), so a typo never
// passes as "0 passed, 0 failed". A bad ATELIER_NUM_THREADS is refused first, before any work (exit 2).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "autograd/op_table.h"
#include "backends/thread_pool.h"

namespace {

constexpr const char* kUsage = "usage: gradcheck [FILTER] (run only the rows whose op name contains FILTER)";

}  // namespace

int main(int argc, char** argv) {
  try {
    atelier::num_threads_from_environment();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gradcheck: error: %s\n", e.what());
    return 2;
  }
  if (argc > 2) {
    std::fprintf(stderr, "gradcheck: error: expected at most one argument (a filter), got %d; %s\n", argc - 1, kUsage);
    return 2;
  }
  std::string filter = argc > 1 ? argv[1] : "";
  if (filter == "-h" || filter == "--help") {
    std::printf("%s\n", kUsage);
    return 0;
  }
  if (!filter.empty() && filter[0] == '-') {
    std::fprintf(stderr, "gradcheck: error: unknown option '%.40s'; %s\n", filter.c_str(), kUsage);
    return 2;
  }
  int failed = 0, run = 0;
  for (const atelier::OpCase& c : atelier::op_table()) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
    ++run;
    try {
      atelier::GradcheckResult r = atelier::gradcheck(c.fn, c.make_inputs(), c.options);
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
    std::fprintf(stderr, "gradcheck: error: no op name contains '%.40s'\n", filter.c_str());
    return 2;
  }
  std::printf("%d passed, %d failed\n", run - failed, failed);
  return failed == 0 ? 0 : 1;
}
