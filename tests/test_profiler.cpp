// The per-primitive profiler (backends/profiler.h) on the CPU: each call counted under its primitive and op name,
// times that add up, only the opening thread's calls on the profiled backend, nothing while a capture records,
// one profiler per thread, and the table. The kernel counts are CUDA's (tests/cuda/test_cuda_training.cpp).
#include <cmath>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "atelier.h"
#include "tests/test_util.h"

using namespace atelier;
using testing::check_throws_with;

namespace {

Backend& cpu() { return backend_for(Device::cpu()); }

const ProfileRow* find_row(const ProfileReport& report, PrimitiveOp op, const std::string& what) {
  for (const ProfileRow& row : report.rows) {
    if (row.op == op && row.what == what) return &row;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("profiler: every primitive call of the thread is counted under its primitive and op name, and timed") {
  const Tensor a = ones({64, 64});
  Profiler profiler(cpu());
  Tensor b = a * 2.0;          // binary mul (the scalar travels by value: no tensor, no fill)
  Tensor c = b + a;            // binary add
  Tensor d = c * c;            // binary mul
  Tensor e = atelier::exp(d);  // unary exp
  Tensor s = e.sum();          // reduce sum
  const ProfileReport report = profiler.report();

  const ProfileRow* mul = find_row(report, PrimitiveOp::binary, "mul");
  const ProfileRow* add = find_row(report, PrimitiveOp::binary, "add");
  const ProfileRow* exp = find_row(report, PrimitiveOp::unary, "exp");
  REQUIRE(mul != nullptr);
  REQUIRE(add != nullptr);
  REQUIRE(exp != nullptr);
  CHECK(mul->calls == 2);
  CHECK(add->calls == 1);
  CHECK(exp->calls == 1);
  int64_t reduces = 0, calls = 0;
  double seconds = 0;
  for (const ProfileRow& row : report.rows) {
    if (row.op == PrimitiveOp::reduce) reduces += row.calls;
    calls += row.calls;
    seconds += row.seconds;
    CHECK(row.seconds >= 0);
    CHECK(row.kernels == -1);  // the CPU launches no kernels
  }
  CHECK(reduces == 1);
  CHECK(report.calls == calls);
  CHECK(find_row(report, PrimitiveOp::fill, "fill_") == nullptr);
  CHECK(report.calls == 5);
  CHECK(report.kernels == -1);
  CHECK(report.backend == "cpu");
  CHECK(report.call_seconds == doctest::Approx(seconds));
  CHECK(report.span_seconds >= report.call_seconds);
  CHECK(report.between_seconds() >= 0);
  for (size_t i = 1; i < report.rows.size(); ++i) CHECK(report.rows[i - 1].seconds >= report.rows[i].seconds);
  CHECK(s.item() == doctest::Approx(64 * 64 * std::exp(9.0)).epsilon(1e-5));  // profiling changed nothing
}

TEST_CASE("profiler: only the opening thread's calls are seen, and none after the report") {
  const Tensor a = ones({16});
  Profiler profiler(cpu());
  std::thread other([&] {
    Tensor t = a + a;         // another thread: not profiled
    Profiler its_own(cpu());  // and it may open its own
    Tensor u = t * t;
    CHECK(its_own.report().calls == 1);
  });
  other.join();
  Tensor mine = a - a;
  const ProfileReport report = profiler.report();
  CHECK(report.calls == 1);
  REQUIRE(report.rows.size() == 1);
  CHECK(report.rows[0].what == "sub");
  Tensor later = a * a;  // after report(): not seen, and no error
  check_throws_with([&] { profiler.report(); }, {"already taken"});
}

TEST_CASE("profiler: one per thread at a time; a new one may open once the last is closed or reported") {
  {
    Profiler first(cpu());
    check_throws_with([] { Profiler second(cpu()); }, {"already has a profiler open"});
    first.report();
    Profiler after_report(cpu());  // the reported one no longer holds the thread
  }
  Profiler after_destructor(cpu());
  Tensor t = ones({4}) + ones({4});
  CHECK(after_destructor.report().calls == 3);  // two fills and the add
}

TEST_CASE("profiler: calls recorded by a capture are neither run nor profiled, nor is the replay broken down") {
  Tensor x = ones({8});
  Tensor y = zeros({8});
  Profiler profiler(cpu());
  cpu().begin_capture();
  Tensor(y).copy_(x * 3.0);
  std::unique_ptr<CapturedGraph> graph = cpu().end_capture();
  graph->replay();
  Tensor z = y + x;  // an eager call after the capture is seen
  const ProfileReport report = profiler.report();
  CHECK(report.calls == 1);
  REQUIRE(report.rows.size() == 1);
  CHECK(report.rows[0].what == "add");
  CHECK(z.to_vector<float>()[0] == 4.0f);  // 3 + 1: the replay ran
}

TEST_CASE("profiler: the table shows each row per step, the totals and the time between calls") {
  const Tensor a = ones({32});
  Profiler profiler(cpu());
  for (int step = 0; step < 4; ++step) Tensor b = a * a + a;
  const ProfileReport report = profiler.report();
  CHECK(report.calls == 8);
  const std::string table = format_profile(report, 4);
  CHECK(table.find("binary") != std::string::npos);
  CHECK(table.find("mul") != std::string::npos);
  CHECK(table.find("in calls") != std::string::npos);
  CHECK(table.find("between calls") != std::string::npos);
  CHECK(table.find("span") != std::string::npos);
  // Per step: 2 calls in all, one of each; the CPU's kernel column is "-".
  CHECK(table.find("       2        -") != std::string::npos);
  check_throws_with([&] { format_profile(report, 0); }, {"per must be > 0"});
}
