// Learning-rate schedules (nn/lr_schedule.h): the shared rate, step decay, the window rule, and their state as
// named float64 scalars.
#include "nn/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "backends/error.h"
#include "nn/state_mismatch.h"
#include "tensor/creation.h"

namespace atelier::nn {

namespace {

using Scalars = std::vector<std::pair<std::string, double>>;

NamedTensors to_tensors(const Scalars& scalars) {
  NamedTensors out;
  for (const auto& [name, value] : scalars) out.emplace_back(name, scalar_tensor(value, DType::Float64));
  return out;
}

// Reads exactly the scalars named in `wanted` from `state`; all or nothing (one Error lists every fault).
std::map<std::string, double> read_scalars(const std::string& type, const NamedTensors& state,
                                           const std::vector<std::string>& wanted) {
  StateMismatch bad;
  std::map<std::string, double> values;
  const std::set<std::string> known(wanted.begin(), wanted.end());
  for (const auto& [name, t] : state) {
    if (!known.count(name)) {
      bad.unexpected.push_back(name);
    } else if (values.count(name)) {
      bad.duplicated.push_back(name);
    } else if (!t.defined() || t.numel() != 1) {
      bad.misshaped.push_back(name + " (expected 1 element, got " +
                              (t.defined() ? shape_str(t.shape()) : std::string("undefined")) + ")");
      values[name] = 0;
    } else {
      values[name] = t.item<double>();
    }
  }
  for (const std::string& name : wanted) {
    if (!values.count(name)) bad.missing.push_back(name);
  }
  if (!bad.empty()) bad.raise(type + ".load_state_dict: the state does not match");
  return values;
}

// A whole, non-negative count stored as a double.
int64_t to_count(const std::string& type, const std::string& name, double value) {
  ATELIER_CHECK(value >= 0 && value == std::floor(value) && value < 9.0e15,
                type << ".load_state_dict: '" << name << "' must be a whole number >= 0, got " << value);
  return static_cast<int64_t>(value);
}

void check_lr(const std::string& type, double lr) {
  ATELIER_CHECK(std::isfinite(lr) && lr >= 0, type << ".load_state_dict: 'lr' must be finite and >= 0, got " << lr);
}

}  // namespace

// ---- LrSchedule ----

LrSchedule::LrSchedule(std::vector<Optimizer*> optimizers, const std::string& type)
    : optimizers_(std::move(optimizers)) {
  ATELIER_CHECK(!optimizers_.empty(), type << ": needs at least one optimizer");
  for (size_t i = 0; i < optimizers_.size(); ++i) {
    ATELIER_CHECK(optimizers_[i] != nullptr, type << ": optimizer " << i << " is null");
    for (size_t j = 0; j < i; ++j) {
      ATELIER_CHECK(optimizers_[j] != optimizers_[i], type << ": optimizer " << i << " is listed twice");
    }
    ATELIER_CHECK(optimizers_[i]->lr() == optimizers_[0]->lr(),
                  type << ": the optimizers must start at one rate, got lr " << optimizers_[0]->lr()
                       << " (optimizer 0) and " << optimizers_[i]->lr() << " (optimizer " << i << ")");
  }
  lr_ = optimizers_[0]->lr();
}

void LrSchedule::set_lr(double lr) {
  for (Optimizer* opt : optimizers_) opt->set_lr(lr);
  lr_ = lr;
}

// ---- StepLR ----

StepLR::StepLR(std::vector<Optimizer*> optimizers, int64_t step_size, double gamma)
    : LrSchedule(std::move(optimizers), "StepLR"), step_size_(step_size), gamma_(gamma) {
  ATELIER_CHECK(step_size >= 1, "StepLR: step_size must be >= 1, got " << step_size);
  ATELIER_CHECK(std::isfinite(gamma) && gamma > 0, "StepLR: gamma must be finite and > 0, got " << gamma);
}

void StepLR::step() {
  ++steps_;
  if (steps_ % step_size_ == 0) set_lr(lr() * gamma_);
}

NamedTensors StepLR::state_dict() const { return to_tensors({{"lr", lr()}, {"steps", static_cast<double>(steps_)}}); }

void StepLR::load_state_dict(const NamedTensors& state) {
  std::map<std::string, double> v = read_scalars(type_name(), state, {"lr", "steps"});
  check_lr(type_name(), v["lr"]);
  const int64_t steps = to_count(type_name(), "steps", v["steps"]);
  steps_ = steps;
  set_lr(v["lr"]);
}

// ---- WindowPlateauLR ----

WindowPlateauLR::WindowPlateauLR(std::vector<Optimizer*> optimizers, const WindowPlateauOptions& options)
    : LrSchedule(std::move(optimizers), "WindowPlateauLR"), options_(options) {
  ATELIER_CHECK(options.window >= 1, "WindowPlateauLR: window must be >= 1 step, got " << options.window);
  ATELIER_CHECK(options.threshold >= 0 && options.threshold < 1,
                "WindowPlateauLR: threshold must be in [0, 1), got " << options.threshold);
  ATELIER_CHECK(options.factor > 0 && options.factor < 1,
                "WindowPlateauLR: factor must be in (0, 1), got " << options.factor);
  ATELIER_CHECK(std::isfinite(options.min_lr) && options.min_lr >= 0,
                "WindowPlateauLR: min_lr must be finite and >= 0, got " << options.min_lr);
}

bool WindowPlateauLR::step(double metric) {
  ATELIER_CHECK(std::isfinite(metric), "WindowPlateauLR.step: the watched metric is not finite (" << metric << ")");
  window_sum_ += metric;
  if (++window_count_ < options_.window) return false;

  const double mean = window_sum_ / static_cast<double>(window_count_);
  const bool first = windows_ == 0;
  const bool improved = first || mean < best_ * (1 - options_.threshold);
  best_ = first ? mean : std::min(best_, mean);
  ++windows_;
  window_sum_ = 0;
  window_count_ = 0;
  if (improved || lr() <= options_.min_lr) return false;
  set_lr(std::max(lr() * options_.factor, options_.min_lr));
  return true;
}

NamedTensors WindowPlateauLR::state_dict() const {
  return to_tensors({{"lr", lr()},
                     {"window_sum", window_sum_},
                     {"window_count", static_cast<double>(window_count_)},
                     {"windows", static_cast<double>(windows_)},
                     {"best", best_}});
}

void WindowPlateauLR::load_state_dict(const NamedTensors& state) {
  std::map<std::string, double> v =
      read_scalars(type_name(), state, {"lr", "window_sum", "window_count", "windows", "best"});
  check_lr(type_name(), v["lr"]);
  const int64_t window_count = to_count(type_name(), "window_count", v["window_count"]);
  const int64_t windows = to_count(type_name(), "windows", v["windows"]);
  ATELIER_CHECK(window_count < options_.window, "WindowPlateauLR.load_state_dict: window_count "
                                                    << window_count << " is not below the window of " << options_.window
                                                    << " steps (a state from another window?)");
  ATELIER_CHECK(std::isfinite(v["window_sum"]) && std::isfinite(v["best"]),
                "WindowPlateauLR.load_state_dict: window_sum and best must be finite, got " << v["window_sum"]
                                                                                            << " and " << v["best"]);
  window_sum_ = v["window_sum"];
  window_count_ = window_count;
  windows_ = windows;
  best_ = v["best"];
  set_lr(v["lr"]);
}

}  // namespace atelier::nn
