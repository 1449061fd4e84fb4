// The fused optimiser updates as raw ops: check every operand against the parameter, then one primitive call that
// writes the parameter and its state in place, then bump the versions of what it wrote.
#include <initializer_list>

#include "tensor/raw/common.h"

namespace atelier::raw {

using namespace detail;

namespace {

// `t` (the gradient or a state buffer, named `role`) must match param in shape, dtype and device.
void check_operand(const char* op, const Tensor& param, const Tensor& t, const char* role) {
  ATELIER_CHECK(t.defined(), op << ": the " << role << " is undefined (parameter " << param.shape() << ")");
  ATELIER_CHECK(t.shape() == param.shape() && t.dtype() == param.dtype() && t.device() == param.device(),
                op << ": the parameter is " << param.dtype() << " " << param.shape() << " on " << param.device()
                   << " but its " << role << " is " << t.dtype() << " " << t.shape() << " on " << t.device());
}

void check_state(const char* op, const Tensor& param, const Tensor& buffer, const char* role) {
  check_operand(op, param, buffer, role);
  ATELIER_CHECK(buffer.is_contiguous(), op << ": the " << role << " (shape " << buffer.shape()
                                           << ") is not contiguous; the fused update needs it");
  ATELIER_CHECK(!may_share_memory(param, buffer), op << ": the " << role << " shares memory with the parameter (shape "
                                                     << param.shape() << "); each needs its own buffer");
}

void check_param(const char* op, const Tensor& param, int64_t step) {
  ATELIER_CHECK(param.defined(), op << ": the parameter is undefined");
  check_floating(param, op);
  ATELIER_CHECK(param.is_contiguous(), op << ": the parameter (shape " << param.shape() << ", strides "
                                          << param.strides() << ") is not contiguous; the fused update needs it");
  ATELIER_CHECK(step >= 1, op << ": step counts from 1, got " << step);
}

}  // namespace

void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, int64_t step, double lr,
               const SgdHyperparameters& h) {
  const char* op = "sgd_step";
  check_param(op, param, step);
  check_operand(op, param, grad, "gradient");
  if (h.momentum != 0) check_state(op, param, momentum_buffer, "momentum buffer");
  // A gradient that aliases a written tensor would change under the update: read it from a copy.
  const bool aliased = may_share_memory(param, grad) || (h.momentum != 0 && may_share_memory(momentum_buffer, grad));
  const Tensor g = aliased ? clone(grad) : contiguous(grad);
  launch<PrimitiveOp::sgd_step>(param.device(), op, param.numel(),
                                SgdStepArgs{param.dtype(), param.numel(), param.raw_data(), g.raw_data(),
                                            h.momentum != 0 ? momentum_buffer.raw_data() : nullptr, step, lr, h});
  param.storage()->bump_version();
  if (h.momentum != 0) momentum_buffer.storage()->bump_version();
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq, int64_t step,
                double lr, const AdamHyperparameters& h) {
  const char* op = h.decoupled_weight_decay ? "adamw_step" : "adam_step";
  check_param(op, param, step);
  check_operand(op, param, grad, "gradient");
  check_state(op, param, exp_avg, "exp_avg");
  check_state(op, param, exp_avg_sq, "exp_avg_sq");
  ATELIER_CHECK(!may_share_memory(exp_avg, exp_avg_sq),
                op << ": exp_avg and exp_avg_sq share memory (parameter " << param.shape() << ")");
  // A gradient that aliases a written tensor would change under the update: read it from a copy.
  const bool aliased =
      may_share_memory(param, grad) || may_share_memory(exp_avg, grad) || may_share_memory(exp_avg_sq, grad);
  const Tensor g = aliased ? clone(grad) : contiguous(grad);
  launch<PrimitiveOp::adam_step>(param.device(), op, param.numel(),
                                 AdamStepArgs{param.dtype(), param.numel(), param.raw_data(), g.raw_data(),
                                              exp_avg.raw_data(), exp_avg_sq.raw_data(), step, lr, h});
  for (const Tensor* written : {&param, &exp_avg, &exp_avg_sq}) written->storage()->bump_version();
}

}  // namespace atelier::raw
