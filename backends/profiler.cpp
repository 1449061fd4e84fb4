// The per-primitive profiler (backends/profiler.h): the thread's open profiler that launch() asks for, the marks
// around each call, and the sums and table of the report.
#include "backends/profiler.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>
#include <utility>

#include "backends/error.h"

namespace atelier {

namespace {
thread_local Profiler* t_open_profiler = nullptr;
}  // namespace

ProfileHook* profile_hook(const Backend& backend) {
  Profiler* const profiler = t_open_profiler;
  if (profiler == nullptr || &profiler->backend() != &backend) return nullptr;
  // A call captured natively (CUDA's stream capture) runs only at replay: an event in it would time nothing.
  return backend.capturing() ? nullptr : profiler;
}

Profiler::Profiler(Backend& backend) : backend_(backend) {
  ATELIER_CHECK(t_open_profiler == nullptr, "Profiler on " << backend.name()
                                                           << ": this thread already has a profiler open (on "
                                                           << t_open_profiler->backend().name() << "); one at a time");
  timeline_ = backend_.make_timeline();
  t_open_profiler = this;
}

Profiler::~Profiler() { close(); }

void Profiler::close() {
  if (open_ && t_open_profiler == this) t_open_profiler = nullptr;
  open_ = false;
}

void Profiler::before() {
  // A call that threw never reached after(): its opening mark is simply left unpaired (its time counts between
  // calls).
  open_mark_ = marks_++;
  timeline_->mark();
  kernels_before_ = backend_.kernels_launched();
}

void Profiler::after(PrimitiveOp op, const char* what) {
  const int64_t kernels = backend_.kernels_launched();
  const size_t close_mark = marks_++;
  timeline_->mark();
  calls_.push_back({op, what, kernels < 0 ? -1 : kernels - kernels_before_, open_mark_, close_mark});
}

ProfileReport Profiler::report() {
  ATELIER_CHECK(open_, "Profiler::report on " << backend_.name() << ": the report was already taken");
  close();
  const std::vector<double> at = timeline_->seconds();
  ATELIER_ASSERT(at.size() == marks_, "profiler: " << at.size() << " mark times for " << marks_ << " marks");
  ProfileReport report;
  report.backend = backend_.name();
  std::map<std::pair<PrimitiveOp, std::string>, ProfileRow> rows;
  for (const Call& call : calls_) {
    ProfileRow& row = rows[{call.op, call.what}];
    row.op = call.op;
    row.what = call.what;
    row.calls += 1;
    row.kernels = call.kernels < 0 ? -1 : std::max<int64_t>(row.kernels, 0) + call.kernels;
    row.seconds += std::max(0.0, at[call.close_mark] - at[call.open_mark]);
  }
  if (!calls_.empty()) {
    report.span_seconds = at[calls_.back().close_mark] - at[calls_.front().open_mark];
    report.kernels = calls_.front().kernels < 0 ? -1 : 0;
  }
  for (auto& [key, row] : rows) {
    report.calls += row.calls;
    if (report.kernels >= 0) report.kernels += row.kernels;
    report.call_seconds += row.seconds;
    report.rows.push_back(std::move(row));
  }
  std::stable_sort(report.rows.begin(), report.rows.end(),
                   [](const ProfileRow& a, const ProfileRow& b) { return a.seconds > b.seconds; });
  return report;
}

std::string format_profile(const ProfileReport& report, int64_t per) {
  ATELIER_CHECK(per > 0, "format_profile: per must be > 0, got " << per);
  const double n = static_cast<double>(per);
  const double span = report.span_seconds > 0 ? report.span_seconds : 1;
  auto count = [&](int64_t value) {
    if (value < 0) return std::string("-");
    char text[32];
    std::snprintf(text, sizeof text, "%.6g", static_cast<double>(value) / n);
    return std::string(text);
  };
  std::ostringstream out;
  char line[256];
  auto row = [&](const std::string& primitive, const std::string& what, const std::string& calls,
                 const std::string& kernels, double seconds) {
    std::snprintf(line, sizeof line, "  %-28s %-24s %8s %8s %10.3f %6.1f%%\n", primitive.c_str(), what.c_str(),
                  calls.c_str(), kernels.c_str(), seconds / n * 1e3, 100 * seconds / span);
    out << line;
  };
  std::snprintf(line, sizeof line, "  %-28s %-24s %8s %8s %10s %7s\n", "primitive", "op", "calls", "kernels", "ms",
                "share");
  out << line;
  for (const ProfileRow& r : report.rows)
    row(primitive_name(r.op), r.what, count(r.calls), count(r.kernels), r.seconds);
  row("in calls", "", count(report.calls), count(report.kernels), report.call_seconds);
  row("between calls", "", "", "", report.between_seconds());
  row("span", "", "", "", report.span_seconds);
  return out.str();
}

}  // namespace atelier
