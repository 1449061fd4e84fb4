// The progress line a person watching `began train` reads every few seconds:
//
//   epoch 2/10  step 4100/37500  212 img/s  ETA 41m12s  L(x) 0.1831  L(G(z)) 0.0907  k_t 0.0213  M 0.1874  lr 0.0001
//
// Losses are means over the steps since the previous line (a single step's values are noisy); k_t is the latest.
// Speed and ETA come from the same interval, so they follow the current pace rather than the run's average. Times
// are the caller's (seconds on one clock, e.g. since the run started): when each step was done, which for a
// pipelined trainer is not when its results are read.
#pragma once

#include <cstdint>
#include <string>

#include "began/step.h"

namespace atelier::began {

class ProgressMeter {
 public:
  // interval_s: the shortest time between lines; images_per_step: the batch size; start_s: the time the first
  // step began.
  ProgressMeter(double interval_s, int64_t images_per_step, double start_s);

  // Adds one finished step, done at time done_s.
  void add(const StepResult& r, double done_s);
  // True when a line is due: the first step, `interval_s` between the last line's last step and the latest step,
  // or `force`.
  bool due(bool force = false) const;
  // The line for the steps added since the previous one (epoch is 1-based), and starts a new interval.
  std::string line(int64_t epoch, int64_t epochs, int64_t step, int64_t total_steps, double lr);

 private:
  double interval_s_;
  int64_t images_per_step_;
  double since_s_;      // when the interval began: the previous line's last step was done, or start_s
  double last_done_s_;  // when the latest step was done
  bool printed_ = false;
  int64_t steps_ = 0;
  double sum_real_ = 0, sum_fake_ = 0, sum_m_ = 0, last_k_ = 0;
};

// "1h02m03s", "4m05s", "12s".
std::string format_duration(double seconds);

}  // namespace atelier::began
