// The progress line of `began train` (began/train_progress.h).
#include "began/train_progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace atelier::began {

ProgressMeter::ProgressMeter(double interval_s, int64_t images_per_step, double start_s)
    : interval_s_(interval_s), images_per_step_(images_per_step), since_s_(start_s), last_done_s_(start_s) {}

void ProgressMeter::add(const StepResult& r, double done_s) {
  ++steps_;
  last_done_s_ = done_s;
  sum_real_ += r.loss_real;
  sum_fake_ += r.loss_fake_g;
  sum_m_ += r.m_global;
  last_k_ = r.k_t;
}

bool ProgressMeter::due(bool force) const {
  if (steps_ == 0) return false;
  if (force || !printed_) return true;
  return last_done_s_ - since_s_ >= interval_s_;
}

std::string ProgressMeter::line(int64_t epoch, int64_t epochs, int64_t step, int64_t total_steps, double lr) {
  const double seconds = last_done_s_ - since_s_;
  const double steps_per_s = seconds > 0 ? static_cast<double>(steps_) / seconds : 0;
  const double eta = steps_per_s > 0 ? static_cast<double>(total_steps - step) / steps_per_s : 0;
  const double n = static_cast<double>(steps_ > 0 ? steps_ : 1);
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "epoch %lld/%lld  step %lld/%lld  %.0f img/s  ETA %s  L(x) %.4f  L(G(z)) %.4f  k_t %.4f  M %.4f  "
                "lr %.3g",
                static_cast<long long>(epoch), static_cast<long long>(epochs), static_cast<long long>(step),
                static_cast<long long>(total_steps), steps_per_s * static_cast<double>(images_per_step_),
                format_duration(eta).c_str(), sum_real_ / n, sum_fake_ / n, last_k_, sum_m_ / n, lr);
  since_s_ = last_done_s_;
  printed_ = true;
  steps_ = 0;
  sum_real_ = sum_fake_ = sum_m_ = 0;
  return buf;
}

std::string format_duration(double seconds) {
  const long long s = std::llround(std::max(seconds, 0.0));
  char buf[64];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%llds", s);
  }
  return buf;
}

}  // namespace atelier::began
