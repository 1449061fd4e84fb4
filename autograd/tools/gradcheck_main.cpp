// bin/gradcheck: runs the whole op table through the float64 gradient check and prints one line per row,
// `op  max_abs_err  PASS|FAIL`. Exits non-zero if any row fails. An optional argument filters rows by substring.
#include <cstdio>
#include <exception>
#include <string>

#include "autograd/op_table.h"

int main(int argc, char** argv) {
  std::string filter = argc > 1 ? argv[1] : "";
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
  std::printf("%d passed, %d failed\n", run - failed, failed);
  return failed == 0 ? 0 : 1;
}
