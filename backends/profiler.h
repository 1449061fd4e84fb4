// Where the time of some work goes, primitive by primitive: the profiler behind `bench_train --profile`.
//
// While a Profiler is open, every primitive call (launch(), backends/backend.h) that the opening thread makes on the
// profiled backend is counted and bracketed by two marks on the backend's DeviceTimeline, and the device kernels it
// queued are counted (Backend::kernels_launched). report() waits for the device and sums the calls by primitive and
// op name (the name the caller gave launch: "conv2d", "mul", "adam_step_multi", ...):
//
//   Profiler profiler(backend_for(Device::cuda()));
//   for (int s = 0; s < 5; ++s) step();
//   const ProfileReport report = profiler.report();  // ends the profile
//   std::fputs(format_profile(report, 5).c_str(), stdout);  // per step
//
// What the times mean. On a GPU the marks are events on the stream, so a call's time is the device's time from
// the mark before the call to the mark after it: its kernels' run time, plus the time the device spent waiting for
// them if it had run out of work (the host was behind). The time between one call's closing mark and the next
// call's opening mark ("between calls") is the device idle or running work queued outside primitives (host
// copies, the allocator's cudaMalloc). On the CPU a call's time is its wall time, and the time between calls is the
// host's own work (autograd, allocation, the trainer). The marks themselves cost time (on CUDA an event per mark,
// a few microseconds of host time per call), so a profiled step runs slower than a timed one: profile and time
// different steps. Calls recorded into a graph capture are neither run nor profiled, and a replay is not broken
// down. One profiler per thread at a time; calls of other threads are not seen.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace atelier {

// One primitive and op name: its calls, the kernels they queued (-1 where the backend counts none: the CPU) and
// their time in seconds (see the header comment).
struct ProfileRow {
  PrimitiveOp op;
  std::string what;
  int64_t calls = 0;
  int64_t kernels = -1;
  double seconds = 0;
};

struct ProfileReport {
  std::string backend;           // the backend's name
  std::vector<ProfileRow> rows;  // most time first (ties: primitive order, then name)
  int64_t calls = 0;             // over all rows
  int64_t kernels = -1;          // over all rows; -1 where the backend counts none
  double call_seconds = 0;       // time inside calls, over all rows
  double span_seconds = 0;       // from the first call's opening mark to the last call's closing mark
  double between_seconds() const { return span_seconds - call_seconds; }
};

class Profiler final : public ProfileHook {
 public:
  // Opens the profile of the calling thread's calls on `backend`. Throws if this thread already has one open.
  explicit Profiler(Backend& backend);
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  const Backend& backend() const { return backend_; }
  // Ends the profile (later calls are not seen), waits for the device and sums the calls. Once only.
  ProfileReport report();

  // ProfileHook, called by launch().
  void before() override;
  void after(PrimitiveOp op, const char* what) override;

 private:
  struct Call {
    PrimitiveOp op;
    std::string what;
    int64_t kernels;
    size_t open_mark, close_mark;
  };
  void close();

  Backend& backend_;
  std::unique_ptr<DeviceTimeline> timeline_;
  std::vector<Call> calls_;
  size_t marks_ = 0;            // marks taken so far
  size_t open_mark_ = 0;        // the opening mark of the call under way
  int64_t kernels_before_ = 0;  // kernels_launched() as it started
  bool open_ = true;
};

// The report as a table, every figure divided by `per` (the number of steps profiled, to show a step's share):
// primitive, op, calls, kernels, milliseconds, share of the span; then the totals and the time between calls.
std::string format_profile(const ProfileReport& report, int64_t per = 1);

}  // namespace atelier
