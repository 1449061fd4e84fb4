// The grad-mode flag: whether differentiable ops record a graph. A thread-local flag, so the data-loading
// thread and the training thread do not see each other's setting. It lives on the tensor floor because in-place
// ops (tensor/) must refuse to write to a tensor that requires grad unless grad mode is off; autograd/ reads it
// to decide whether to record.
#pragma once

namespace atelier {

bool grad_mode_enabled();
void set_grad_mode(bool enabled);

// Turns grad mode off for a scope (optimiser updates, evaluation, sampling), restoring it on exit.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_mode_enabled()) { set_grad_mode(false); }
  ~NoGradGuard() { set_grad_mode(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace atelier
