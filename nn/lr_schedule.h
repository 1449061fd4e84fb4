// Learning-rate schedules: one rate that a schedule changes over time and writes into one or more optimisers
// (BEGAN drives both of its Adam optimisers with a single rate). Call step() once per training step, after the
// optimisers' own steps; the rate a step used is lr() read before that call.
//
//   nn::WindowPlateauLR schedule({&opt_d, &opt_g}, {.window = 2000, .threshold = 1e-3, .factor = 0.5,
//                                                    .min_lr = 2e-5});
//   for (...) { double lr_used = schedule.lr(); ...; schedule.step(m_global); }
//
// Every schedule saves its whole state (the rate and its counters, as float64 0-d tensors) in state_dict(), so a
// resumed run continues with exactly the rate and the window it stopped in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.h"
#include "nn/optim.h"

namespace atelier::nn {

// The part every schedule shares: the optimisers it drives and the current rate.
class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  LrSchedule(const LrSchedule&) = delete;
  LrSchedule& operator=(const LrSchedule&) = delete;

  // "StepLR" or "WindowPlateauLR".
  virtual std::string type_name() const = 0;
  // The rate now; every driven optimiser has it.
  double lr() const { return lr_; }

  // "lr" and the schedule's counters, each a float64 0-d tensor.
  virtual NamedTensors state_dict() const = 0;
  // requires: exactly the names of this schedule's state_dict().
  // ensures:  the rate (written into every optimiser) and the counters are replaced; on any mismatch nothing
  //           changes and one Error lists every missing, unexpected and mis-shaped name.
  virtual void load_state_dict(const NamedTensors& state) = 0;

 protected:
  // requires: a non-empty list of distinct non-null optimisers that all have the same lr (the starting rate).
  explicit LrSchedule(std::vector<Optimizer*> optimizers, const std::string& type);
  // Sets the rate here and in every optimiser.
  void set_lr(double lr);

 private:
  std::vector<Optimizer*> optimizers_;
  double lr_ = 0;
};

// Step decay (torch.optim.lr_scheduler.StepLR): every `step_size` calls to step(), lr *= gamma.
class StepLR : public LrSchedule {
 public:
  // requires: step_size >= 1, gamma > 0.
  StepLR(std::vector<Optimizer*> optimizers, int64_t step_size, double gamma = 0.1);
  std::string type_name() const override { return "StepLR"; }

  void step();
  int64_t steps() const { return steps_; }

  // "lr", "steps".
  NamedTensors state_dict() const override;
  void load_state_dict(const NamedTensors& state) override;

 private:
  int64_t step_size_;
  double gamma_;
  int64_t steps_ = 0;  // calls to step() so far
};

struct WindowPlateauOptions {
  int64_t window = 2000;    // steps per window, >= 1
  double threshold = 1e-3;  // relative: a window improves when its mean < best * (1 - threshold); in [0, 1)
  double factor = 0.5;      // the rate's multiplier when a window does not improve; in (0, 1)
  double min_lr = 2e-5;     // the rate never goes below this (a rate already below it is left alone); >= 0
};

// The BEGAN rule: a watched metric (BEGAN: M_global) is averaged over consecutive windows of `window` steps. At
// the end of each window its mean is compared with the best (lowest) mean of the earlier windows; unless it is
// lower by at least `threshold` (relative), lr = max(lr * factor, min_lr). The first window only sets the best.
class WindowPlateauLR : public LrSchedule {
 public:
  WindowPlateauLR(std::vector<Optimizer*> optimizers, const WindowPlateauOptions& options);
  std::string type_name() const override { return "WindowPlateauLR"; }

  // Adds this step's metric (finite: throws naming the value otherwise). Returns true when this call ended a
  // window and cut the rate.
  bool step(double metric);

  const WindowPlateauOptions& options() const { return options_; }
  // True when the next step() ends a window (and may change the rate): a trainer that reads the metric late
  // must read it before queueing more work at that rate.
  bool next_step_ends_window() const { return window_count_ + 1 >= options_.window; }
  // Windows completed so far, and the lowest window mean among them (meaningful when windows() > 0).
  int64_t windows() const { return windows_; }
  double best() const { return best_; }

  // "lr", "window_sum", "window_count", "windows", "best".
  NamedTensors state_dict() const override;
  void load_state_dict(const NamedTensors& state) override;

 private:
  WindowPlateauOptions options_;
  double window_sum_ = 0;     // sum of the metric over the current, unfinished window
  int64_t window_count_ = 0;  // steps in the current window so far
  int64_t windows_ = 0;
  double best_ = 0;
};

}  // namespace atelier::nn
