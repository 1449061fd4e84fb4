// The fused optimiser updates as raw ops: check every operand against the parameter, then one primitive call that
// writes the parameter and its state in place, then bump the versions of what it wrote.
#include <initializer_list>
#include <string>
#include <vector>

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

namespace {

// adam_step_'s checks; returns the gradient to read (a copy when it aliases a written tensor, which would change
// under the update).
Tensor checked_adam_grad(const char* op, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                         const Tensor& exp_avg_sq, int64_t step) {
  check_param(op, param, step);
  check_operand(op, param, grad, "gradient");
  check_state(op, param, exp_avg, "exp_avg");
  check_state(op, param, exp_avg_sq, "exp_avg_sq");
  ATELIER_CHECK(!may_share_memory(exp_avg, exp_avg_sq),
                op << ": exp_avg and exp_avg_sq share memory (parameter " << param.shape() << ")");
  const bool aliased =
      may_share_memory(param, grad) || may_share_memory(exp_avg, grad) || may_share_memory(exp_avg_sq, grad);
  return aliased ? clone(grad) : contiguous(grad);
}

const char* adam_name(const AdamHyperparameters& h) { return h.decoupled_weight_decay ? "adamw_step" : "adam_step"; }

}  // namespace

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq, int64_t step,
                double lr, const AdamHyperparameters& h) {
  const char* op = adam_name(h);
  const Tensor g = checked_adam_grad(op, param, grad, exp_avg, exp_avg_sq, step);
  launch<PrimitiveOp::adam_step>(param.device(), op, param.numel(),
                                 AdamStepArgs{param.dtype(), param.numel(), param.raw_data(), g.raw_data(),
                                              exp_avg.raw_data(), exp_avg_sq.raw_data(), step, lr, h});
  for (const Tensor* written : {&param, &exp_avg, &exp_avg_sq}) written->storage()->bump_version();
}

void adam_step_multi_(const std::vector<AdamTensors>& items, double lr, const AdamHyperparameters& h,
                      const Tensor& constants) {
  const char* op = adam_name(h);
  if (constants.defined() && !items.empty()) {
    const Tensor& p0 = items.front().param;
    ATELIER_CHECK(constants.dtype() == DType::Float64 && constants.is_contiguous() &&
                      constants.numel() == 4 * static_cast<int64_t>(items.size()) && constants.device() == p0.device(),
                  op << ": the constants must be a contiguous float64 tensor of " << 4 * items.size() << " elements on "
                     << p0.device() << ", got " << constants.dtype() << " " << constants.shape() << " on "
                     << constants.device());
    for (const AdamTensors& t : items) {
      ATELIER_CHECK(!t.param.defined() || (t.param.dtype() == p0.dtype() && t.param.device() == p0.device()),
                    op << ": with device constants every tensor must be " << p0.dtype() << " on " << p0.device()
                       << "; tensor " << t.label << " is not");
    }
  }
  // Every check first, so that a bad item leaves every tensor as it was.
  std::vector<Tensor> grads;
  grads.reserve(items.size());
  for (const AdamTensors& t : items) {
    try {
      grads.push_back(
          checked_adam_grad(op, t.param, t.grad, t.exp_avg, t.exp_avg_sq, constants.defined() ? 1 : t.step));
    } catch (const Error& e) {
      throw Error("tensor " + std::to_string(t.label) + ": " + e.what());
    }
  }
  // One call per (dtype, device), the items in their order.
  std::vector<bool> done(items.size(), false);
  for (size_t first = 0; first < items.size(); ++first) {
    if (done[first]) continue;
    const DType dtype = items[first].param.dtype();
    const Device device = items[first].param.device();
    std::vector<void*> params, exp_avgs, exp_avg_sqs;
    std::vector<const void*> grad_data;
    std::vector<int64_t> numels, steps;
    int64_t work = 0;
    for (size_t j = first; j < items.size(); ++j) {
      const AdamTensors& t = items[j];
      if (done[j] || t.param.dtype() != dtype || t.param.device() != device) continue;
      done[j] = true;
      params.push_back(t.param.raw_data());
      grad_data.push_back(grads[j].raw_data());
      exp_avgs.push_back(t.exp_avg.raw_data());
      exp_avg_sqs.push_back(t.exp_avg_sq.raw_data());
      numels.push_back(t.param.numel());
      steps.push_back(t.step);
      work += t.param.numel();
    }
    launch<PrimitiveOp::adam_step_multi>(
        device, op, work,
        AdamMultiStepArgs{dtype, static_cast<int64_t>(params.size()), params.data(), grad_data.data(), exp_avgs.data(),
                          exp_avg_sqs.data(), numels.data(), steps.data(), lr, h,
                          constants.defined() ? static_cast<const AdamConstants*>(constants.raw_data()) : nullptr});
  }
  for (const AdamTensors& t : items) {
    for (const Tensor* written : {&t.param, &t.exp_avg, &t.exp_avg_sq}) written->storage()->bump_version();
  }
}

}  // namespace atelier::raw
