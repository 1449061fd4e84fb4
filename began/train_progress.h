// The progress line a person watching `began train` reads every few seconds:
//
//   epoch 2/10  step 4100/37500  212 img/s  ETA 41m12s  L(x) 0.1831  L(G(z)) 0.0907  k_t 0.0213  M 0.1874  lr 0.0001
//
// Losses are means over the steps since the previous line (a single step's values are noisy); k_t is the latest.
// Speed and ETA come from the same interval, so they follow the current pace rather than the run's average.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "began/step.h"

namespace atelier::began {

class ProgressMeter {
 public:
  // interval_s: the shortest time between lines; images_per_step: the batch size.
  ProgressMeter(double interval_s, int64_t images_per_step);

  // Adds one finished step.
  void add(const StepResult& r);
  // True when a line is due: the first step, `interval_s` since the last line, or `force`.
  bool due(bool force = false) const;
  // The line for the steps added since the previous one (epoch is 1-based), and starts a new interval.
  std::string line(int64_t epoch, int64_t epochs, int64_t step, int64_t total_steps, double lr);

 private:
  using Clock = std::chrono::steady_clock;
  double interval_s_;
  int64_t images_per_step_;
  Clock::time_point since_ = Clock::now();
  bool printed_ = false;
  int64_t steps_ = 0;
  double sum_real_ = 0, sum_fake_ = 0, sum_m_ = 0, last_k_ = 0;
};

// "1h02m03s", "4m05s", "12s".
std::string format_duration(double seconds);

}  // namespace atelier::began
