// The optimisers of nn/optim.h: argument checks, lazily created state, one backend optimizer_step per tensor,
// and the state dict (hyperparameters, step counts, buffers) that makes a resumed run continue exactly.
#include "nn/optim.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <unordered_set>

#include "backends/backend.h"
#include "nn/state_mismatch.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/raw_ops.h"

namespace atelier::nn {
namespace {

const char* kind_name(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::Sgd: return "SGD";
    case OptimizerKind::Adam: return "Adam";
    case OptimizerKind::AdamW: return "AdamW";
  }
  return "?";
}

constexpr const char* kGroupPrefix = "param_groups.";
constexpr const char* kStatePrefix = "state.";

// "state.12.exp_avg" -> (12, "exp_avg"); false when the name has another form.
bool parse_state_name(const std::string& name, size_t& index, std::string& slot) {
  const std::string prefix = kStatePrefix;
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size() || dot + 1 == name.size()) return false;
  const std::string digits = name.substr(prefix.size(), dot - prefix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) return false;
  index = std::stoul(digits);
  slot = name.substr(dot + 1);
  return true;
}

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params, OptimizerKind kind, const Hyperparameters& hyper)
    : kind_(kind), hyper_(hyper), params_(std::move(params)), state_(params_.size()) {
  const char* name = kind_name(kind_);
  ATELIER_CHECK(!params_.empty(), name << ": got an empty list of tensors to optimise");
  std::unordered_set<const TensorImpl*> seen;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    ATELIER_CHECK(p.defined(), name << ": tensor " << i << " is undefined");
    ATELIER_CHECK(is_floating(p.dtype()),
                  name << ": tensor " << i << " (shape " << p.shape() << ") is " << p.dtype() << ", not float32/64");
    ATELIER_CHECK(p.is_contiguous(), name << ": tensor " << i << " (shape " << p.shape() << ", strides " << p.strides()
                                          << ") is not contiguous; the fused update needs it");
    ATELIER_CHECK(p.is_leaf(), name << ": tensor " << i << " (shape " << p.shape()
                                    << ") is the output of an op; only leaf tensors can be optimised");
    ATELIER_CHECK(seen.insert(p.impl_ptr()).second,
                  name << ": tensor " << i << " (shape " << p.shape() << ") appears twice in the list");
  }
  check_hyperparameters(hyper_);
}

std::string Optimizer::type_name() const { return kind_name(kind_); }

void Optimizer::check_hyperparameters(const Hyperparameters& h) const {
  const char* name = kind_name(kind_);
  ATELIER_CHECK(h.lr >= 0, name << ": invalid learning rate " << h.lr);
  ATELIER_CHECK(h.weight_decay >= 0, name << ": invalid weight_decay " << h.weight_decay);
  if (kind_ == OptimizerKind::Sgd) {
    ATELIER_CHECK(h.momentum >= 0, name << ": invalid momentum " << h.momentum);
    ATELIER_CHECK(!h.nesterov || (h.momentum > 0 && h.dampening == 0),
                  name << ": Nesterov momentum needs momentum > 0 and dampening 0 (got momentum " << h.momentum
                       << ", dampening " << h.dampening << ")");
  } else {
    ATELIER_CHECK(h.beta1 >= 0 && h.beta1 < 1, name << ": invalid beta1 " << h.beta1 << " (need 0 <= beta1 < 1)");
    ATELIER_CHECK(h.beta2 >= 0 && h.beta2 < 1, name << ": invalid beta2 " << h.beta2 << " (need 0 <= beta2 < 1)");
    ATELIER_CHECK(h.eps >= 0, name << ": invalid eps " << h.eps);
  }
}

void Optimizer::set_lr(double lr) {
  ATELIER_CHECK(lr >= 0, type_name() << ".set_lr: invalid learning rate " << lr);
  hyper_.lr = lr;
}

int64_t Optimizer::step_count(size_t i) const {
  ATELIER_CHECK(i < state_.size(), type_name() << ".step_count(" << i << "): only " << state_.size() << " tensors");
  return state_[i].step;
}

std::vector<std::string> Optimizer::slot_names(const Hyperparameters& h) const {
  if (kind_ == OptimizerKind::Sgd) {
    if (h.momentum == 0) return {};
    return {"momentum_buffer"};
  }
  return {"exp_avg", "exp_avg_sq"};
}

std::vector<std::pair<std::string, double*>> Optimizer::hyper_fields(Hyperparameters& h) const {
  if (kind_ == OptimizerKind::Sgd) {
    return {{"lr", &h.lr}, {"momentum", &h.momentum}, {"dampening", &h.dampening}, {"weight_decay", &h.weight_decay}};
  }
  return {{"lr", &h.lr}, {"beta1", &h.beta1}, {"beta2", &h.beta2}, {"eps", &h.eps}, {"weight_decay", &h.weight_decay}};
}

void Optimizer::step() {
  NoGradGuard no_grad;
  const size_t nslots = slot_names(hyper_).size();
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    Tensor grad = p.grad();
    if (!grad.defined()) continue;
    ATELIER_CHECK(grad.shape() == p.shape() && grad.dtype() == p.dtype() && grad.device() == p.device(),
                  type_name() << ".step: tensor " << i << " is " << p.dtype() << " " << p.shape() << " on "
                              << p.device() << " but its grad is " << grad.dtype() << " " << grad.shape() << " on "
                              << grad.device());
    ATELIER_CHECK(p.is_contiguous(),
                  type_name() << ".step: tensor " << i << " (shape " << p.shape() << ") is no longer contiguous");
    grad = raw::contiguous(grad);
    Backend& backend = backend_for(p.device());
    ATELIER_CHECK(backend.supports(PrimitiveOp::optimizer_step, p.dtype()),
                  type_name() << ".step: the " << backend.name() << " backend has no optimizer_step for " << p.dtype());

    ParamState& st = state_[i];
    Tensor* slots[2] = {&st.state0, &st.state1};
    for (size_t s = 0; s < nslots; ++s) {
      Tensor& buf = *slots[s];
      if (!buf.defined()) buf = zeros(p.shape(), p.dtype(), p.device());
      ATELIER_CHECK(buf.device() == p.device() && buf.dtype() == p.dtype(),
                    type_name() << ".step: the state of tensor " << i << " is " << buf.dtype() << " on " << buf.device()
                                << " but the tensor is " << p.dtype() << " on " << p.device()
                                << "; create the optimiser after moving the model (module.to(...))");
    }

    OptimizerStepArgs args{};
    args.kind = kind_;
    args.dtype = p.dtype();
    args.numel = p.numel();
    args.param = p.raw_data();
    args.grad = grad.raw_data();
    args.state0 = nslots > 0 ? st.state0.raw_data() : nullptr;
    args.state1 = nslots > 1 ? st.state1.raw_data() : nullptr;
    args.step = st.step + 1;
    args.lr = hyper_.lr;
    args.momentum = hyper_.momentum;
    args.dampening = hyper_.dampening;
    args.nesterov = hyper_.nesterov;
    args.beta1 = hyper_.beta1;
    args.beta2 = hyper_.beta2;
    args.eps = hyper_.eps;
    args.weight_decay = hyper_.weight_decay;
    backend.optimizer_step(args);

    st.step = args.step;
    p.storage()->bump_version();
    for (size_t s = 0; s < nslots; ++s) slots[s]->storage()->bump_version();
  }
}

void Optimizer::zero_grad() {
  for (const Tensor& p : params_) p.set_grad(Tensor());
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  const std::string group = kGroupPrefix;
  out.emplace_back(group + "kind", scalar_tensor(static_cast<double>(kind_), DType::Float64));
  Hyperparameters h = hyper_;
  for (const auto& [name, value] : hyper_fields(h)) {
    out.emplace_back(group + name, scalar_tensor(*value, DType::Float64));
  }
  if (kind_ == OptimizerKind::Sgd) out.emplace_back(group + "nesterov", scalar_tensor(h.nesterov, DType::Float64));

  const std::vector<std::string> slots = slot_names(hyper_);
  for (size_t i = 0; i < state_.size(); ++i) {
    const ParamState& st = state_[i];
    if (st.step == 0) continue;
    const std::string prefix = kStatePrefix + std::to_string(i) + ".";
    out.emplace_back(prefix + "step", scalar_tensor(static_cast<double>(st.step), DType::Int64));
    const Tensor* bufs[2] = {&st.state0, &st.state1};
    for (size_t s = 0; s < slots.size(); ++s) out.emplace_back(prefix + slots[s], bufs[s]->detach());
  }
  return out;
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  const std::string name = type_name();
  StateMismatch bad;
  std::map<std::string, Tensor> given;
  for (const auto& [key, t] : state) {
    if (!given.emplace(key, t).second) bad.unexpected.push_back(key + " (given twice)");
  }
  auto scalar = [&](const std::string& key, double& value) {
    auto it = given.find(key);
    if (it == given.end()) {
      bad.missing.push_back(key);
      return false;
    }
    const Tensor& t = it->second;
    if (!t.defined() || t.numel() != 1) {
      bad.misshaped.push_back(key + " (expected 1 element, got " +
                              (t.defined() ? shape_str(t.shape()) : std::string("undefined")) + ")");
      return false;
    }
    value = t.item<double>();
    return true;
  };

  // Hyperparameters first: SGD's buffers depend on the loaded momentum.
  std::set<std::string> used;
  const std::string group = kGroupPrefix;
  double kind = -1;
  if (scalar(group + "kind", kind) && kind != static_cast<double>(kind_)) {
    const int k = static_cast<int>(kind);
    const bool known = kind == static_cast<double>(k) && k >= 0 && k <= 2;
    ATELIER_FAIL(name << ".load_state_dict: the state is from "
                      << (known ? kind_name(static_cast<OptimizerKind>(k)) : "an unknown optimiser") << ", not "
                      << name);
  }
  used.insert(group + "kind");
  Hyperparameters h = hyper_;
  for (const auto& [field, value] : hyper_fields(h)) {
    scalar(group + field, *value);
    used.insert(group + field);
  }
  if (kind_ == OptimizerKind::Sgd) {
    double nesterov = 0;
    if (scalar(group + "nesterov", nesterov)) h.nesterov = nesterov != 0;
    used.insert(group + "nesterov");
  }

  // Then per-tensor state: each index is all there or absent.
  const std::vector<std::string> slots = slot_names(h);
  std::vector<ParamState> loaded(params_.size());
  std::set<size_t> present;
  for (const auto& [key, t] : given) {
    size_t index = 0;
    std::string slot;
    if (used.count(key)) continue;
    if (!parse_state_name(key, index, slot) || index >= params_.size()) {
      bad.unexpected.push_back(key);
      continue;
    }
    if (slot != "step" && std::find(slots.begin(), slots.end(), slot) == slots.end()) {
      bad.unexpected.push_back(key);
      continue;
    }
    present.insert(index);
  }
  for (size_t i : present) {
    const std::string prefix = kStatePrefix + std::to_string(i) + ".";
    double step = 0;
    if (scalar(prefix + "step", step)) {
      if (step < 1 || step != static_cast<double>(static_cast<int64_t>(step))) {
        bad.misshaped.push_back(prefix + "step (expected a whole number >= 1, got " + std::to_string(step) + ")");
      }
      loaded[i].step = static_cast<int64_t>(step);
    }
    Tensor* bufs[2] = {&loaded[i].state0, &loaded[i].state1};
    for (size_t s = 0; s < slots.size(); ++s) {
      auto it = given.find(prefix + slots[s]);
      if (it == given.end()) {
        bad.missing.push_back(prefix + slots[s]);
      } else if (!it->second.defined() || it->second.shape() != params_[i].shape()) {
        bad.misshaped.push_back(prefix + slots[s] + " (expected " + shape_str(params_[i].shape()) + ", got " +
                                (it->second.defined() ? shape_str(it->second.shape()) : std::string("undefined")) +
                                ")");
      } else {
        *bufs[s] = it->second;
      }
    }
  }

  if (!bad.empty()) bad.raise(name + ".load_state_dict: the state does not match this optimiser; nothing was loaded.");
  check_hyperparameters(h);

  // Copy the buffers onto each tensor's device and dtype (never alias the caller's tensors).
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    for (Tensor* buf : {&loaded[i].state0, &loaded[i].state1}) {
      if (!buf->defined()) continue;
      Tensor copy = raw::empty(p.shape(), p.dtype(), p.device());
      raw::copy_(copy, *buf);
      *buf = copy;
    }
  }
  hyper_ = h;
  state_ = std::move(loaded);
}

SGD::SGD(std::vector<Tensor> params, double lr, double momentum, double dampening, double weight_decay, bool nesterov)
    : Optimizer(std::move(params), OptimizerKind::Sgd, [&] {
        Hyperparameters h;
        h.lr = lr;
        h.momentum = momentum;
        h.dampening = dampening;
        h.weight_decay = weight_decay;
        h.nesterov = nesterov;
        return h;
      }()) {}

Adam::Adam(std::vector<Tensor> params, double lr, std::array<double, 2> betas, double eps, double weight_decay)
    : Adam(std::move(params), OptimizerKind::Adam, lr, betas, eps, weight_decay) {}

Adam::Adam(std::vector<Tensor> params, OptimizerKind kind, double lr, std::array<double, 2> betas, double eps,
           double weight_decay)
    : Optimizer(std::move(params), kind, [&] {
        Hyperparameters h;
        h.lr = lr;
        h.beta1 = betas[0];
        h.beta2 = betas[1];
        h.eps = eps;
        h.weight_decay = weight_decay;
        return h;
      }()) {}

AdamW::AdamW(std::vector<Tensor> params, double lr, std::array<double, 2> betas, double eps, double weight_decay)
    : Adam(std::move(params), OptimizerKind::AdamW, lr, betas, eps, weight_decay) {}

}  // namespace atelier::nn
