// The optimisers of nn/optim.h: argument checks, lazily created state, one fused raw op per tensor and step, and
// the state dict (hyperparameters, step counts, buffers) that makes a resumed run continue exactly.
#include "nn/optim.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <unordered_set>

#include "backends/adam_math.h"
#include "backends/backend.h"
#include "nn/state_mismatch.h"
#include "tensor/creation.h"
#include "tensor/grad_mode.h"
#include "tensor/raw_ops.h"
#include "tensor/upload.h"

namespace atelier::nn {
namespace {

// The rules by their number in "param_groups.kind".
constexpr const char* kKindNames[] = {"SGD", "Adam", "AdamW"};
constexpr int kSgdKind = 0, kAdamKind = 1, kAdamWKind = 2;

// True when `v` is a whole number in [lo, hi] (false for NaN): checked before a loaded double is cast to an integer.
bool is_whole_in(double v, double lo, double hi) { return v >= lo && v <= hi && v == std::floor(v); }

constexpr const char* kGroupPrefix = "param_groups.";
constexpr const char* kStatePrefix = "state.";

std::string state_prefix(size_t index) { return kStatePrefix + std::to_string(index) + "."; }

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

std::string shape_or_undefined(const Tensor& t) { return t.defined() ? shape_str(t.shape()) : "undefined"; }

}  // namespace

// --- Optimizer: what every rule shares ---

Optimizer::Optimizer(std::vector<Tensor> params, std::string type_name, int kind, double lr)
    : type_name_(std::move(type_name)), kind_(kind), lr_(lr), params_(std::move(params)), state_(params_.size()) {
  const char* name = type_name_.c_str();
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
  check_lr(lr_);
}

void Optimizer::check_lr(double lr) const { ATELIER_CHECK(lr >= 0, type_name_ << ": invalid learning rate " << lr); }

void Optimizer::set_lr(double lr) {
  ATELIER_CHECK(lr >= 0, type_name_ << ".set_lr: invalid learning rate " << lr);
  lr_ = lr;
}

int64_t Optimizer::step_count(size_t i) const {
  ATELIER_CHECK(i < state_.size(), type_name_ << ".step_count(" << i << "): only " << state_.size() << " tensors");
  return state_[i].step;
}

double Optimizer::value_of(const NamedValues& values, const std::string& name) {
  for (const auto& [key, value] : values) {
    if (key == name) return value;
  }
  ATELIER_ASSERT(false, "no hyperparameter named " << name);
  return 0;
}

void Optimizer::step() {
  NoGradGuard no_grad;
  const Backend& backend = backend_for(params_.front().device());
  const bool capturing = backend.capturing();
  const std::vector<std::string> names = state_names(hyperparameters());
  std::vector<Update> updates;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor grad = p.grad();
    if (!grad.defined()) continue;
    ParamState& st = state_[i];
    if (st.buffers.size() != names.size()) st.buffers.resize(names.size());
    for (Tensor& buf : st.buffers) {
      ATELIER_CHECK(buf.defined() || !capturing,
                    type_name_ << ".step: tensor " << i << " (shape " << p.shape()
                               << ") has no state yet and a graph capture is recording: run one step eagerly "
                                  "first (a captured zero-fill would reset the state at every replay)");
      if (!buf.defined()) buf = zeros(p.shape(), p.dtype(), p.device());
      ATELIER_CHECK(buf.device() == p.device() && buf.dtype() == p.dtype(),
                    type_name_ << ".step: the state of tensor " << i << " is " << buf.dtype() << " on " << buf.device()
                               << " but the tensor is " << p.dtype() << " on " << p.device()
                               << "; to keep the state, take state_dict() before module.to(...) and "
                                  "load_state_dict() after it (it copies the state onto each tensor's device and "
                                  "dtype), or create the optimiser after the move");
    }
    updates.push_back({i, p, grad, &st.buffers, st.step + 1});
  }
  if (capturing) {
    ATELIER_CHECK(!has_captured_step_ || captured_in_ != backend.captures_begun(),
                  type_name_ << ".step: called twice in one graph capture; a captured graph holds one step per "
                                "optimiser");
    try {
      update_all_captured(updates);
    } catch (const Error& e) {
      throw Error(type_name_ + ".step: " + e.what());
    }
    captured_.clear();
    for (const Update& u : updates) captured_.push_back(u.index);
    has_captured_step_ = true;
    captured_in_ = backend.captures_begun();
    return;  // the step counts move in prepare_replay, once per replay
  }
  bool all_at_once = false;
  try {
    all_at_once = update_all(updates);
  } catch (const Error& e) {
    throw Error(type_name_ + ".step: " + e.what());
  }
  for (const Update& u : updates) {
    if (!all_at_once) {
      try {
        update(u.param, u.grad, *u.state, u.step);
      } catch (const Error& e) {
        throw Error(type_name_ + ".step: tensor " + std::to_string(u.index) + ": " + e.what());
      }
    }
    ++state_[u.index].step;
  }
}

void Optimizer::prepare_replay() {
  ATELIER_CHECK(has_captured_step_, type_name_ << ".prepare_replay: no step() was captured (or load_state_dict "
                                                  "replaced the state since): capture the step first");
  std::vector<Update> updates;
  for (size_t i : captured_) updates.push_back({i, params_[i], Tensor(), &state_[i].buffers, state_[i].step + 1});
  write_replay_values(updates);
  for (size_t i : captured_) ++state_[i].step;
}

void Optimizer::update_all_captured(const std::vector<Update>&) {
  ATELIER_FAIL("a graph capture is recording, and " << type_name_ << " has no captured form (per-step values such as "
                                                    << "its step count would be frozen into the graph)");
}

void Optimizer::zero_grad() {
  for (const Tensor& p : params_) p.set_grad(Tensor());
}

NamedTensors Optimizer::state_dict() const {
  NamedTensors out;
  const std::string group = kGroupPrefix;
  out.emplace_back(group + "kind", scalar_tensor(static_cast<double>(kind_), DType::Float64));
  out.emplace_back(group + "lr", scalar_tensor(lr_, DType::Float64));
  const NamedValues h = hyperparameters();
  for (const auto& [name, value] : h) out.emplace_back(group + name, scalar_tensor(value, DType::Float64));

  const std::vector<std::string> names = state_names(h);
  for (size_t i = 0; i < state_.size(); ++i) {
    const ParamState& st = state_[i];
    if (st.step == 0) continue;
    const std::string prefix = state_prefix(i);
    out.emplace_back(prefix + "step", scalar_tensor(static_cast<double>(st.step), DType::Int64));
    for (size_t s = 0; s < names.size(); ++s) out.emplace_back(prefix + names[s], st.buffers[s].detach());
  }
  return out;
}

// --- load_state_dict: read everything, report every mismatch at once, then commit ---

struct Optimizer::Loaded {
  std::map<std::string, Tensor> given;  // the state dict by name
  std::set<std::string> used;           // names read as hyperparameters
  StateMismatch bad;
  double lr = 0;
  NamedValues hyper;
  std::vector<ParamState> states;

  // The one-element tensor `key` as a double into `value`; false (and the problem noted) otherwise.
  bool scalar(const std::string& key, double& value) {
    used.insert(key);
    auto it = given.find(key);
    if (it == given.end()) {
      bad.missing.push_back(key);
      return false;
    }
    const Tensor& t = it->second;
    if (!t.defined() || t.numel() != 1) {
      bad.misshaped.push_back(key + " (expected 1 element, got " + shape_or_undefined(t) + ")");
      return false;
    }
    value = t.item<double>();
    return true;
  }
};

Optimizer::Loaded Optimizer::read_state(const NamedTensors& state) const {
  Loaded loaded;
  for (const auto& [key, t] : state) {
    if (!loaded.given.emplace(key, t).second) loaded.bad.unexpected.push_back(key + " (given twice)");
  }
  read_hyperparameters(loaded);  // first: SGD's buffers depend on the loaded momentum
  read_param_states(loaded);
  return loaded;
}

void Optimizer::read_hyperparameters(Loaded& loaded) const {
  const std::string group = kGroupPrefix;
  double kind = -1;
  if (loaded.scalar(group + "kind", kind) && kind != static_cast<double>(kind_)) {
    // Range first: casting a double outside int's range (or NaN) to int is undefined behaviour.
    const bool known = is_whole_in(kind, 0, kAdamWKind);
    const int k = known ? static_cast<int>(kind) : -1;
    ATELIER_FAIL(type_name_ << ".load_state_dict: the state is from "
                            << (known ? kKindNames[k] : "an unknown optimiser") << ", not " << type_name_);
  }
  loaded.lr = lr_;
  loaded.scalar(group + "lr", loaded.lr);
  loaded.hyper = hyperparameters();
  for (auto& [name, value] : loaded.hyper) loaded.scalar(group + name, value);
}

void Optimizer::read_param_states(Loaded& loaded) const {
  // Which tensors have state: each index is all there or absent.
  const std::vector<std::string> names = state_names(loaded.hyper);
  std::set<size_t> present;
  for (const auto& [key, t] : loaded.given) {
    if (loaded.used.count(key)) continue;
    size_t index = 0;
    std::string slot;
    const bool known_slot = parse_state_name(key, index, slot) && index < params_.size() &&
                            (slot == "step" || std::find(names.begin(), names.end(), slot) != names.end());
    if (known_slot) {
      present.insert(index);
    } else {
      loaded.bad.unexpected.push_back(key);
    }
  }
  loaded.states.assign(params_.size(), ParamState{});
  for (size_t i : present) {
    const std::string prefix = state_prefix(i);
    ParamState& st = loaded.states[i];
    double step = 0;
    if (loaded.scalar(prefix + "step", step)) {
      // At most 2^53: a step count beyond what a double holds exactly is no real run (and NaN or huge values
      // must not reach the cast to int64, which would be undefined behaviour).
      if (is_whole_in(step, 1, 9007199254740992.0)) {
        st.step = static_cast<int64_t>(step);
      } else {
        std::ostringstream got;
        got << step;  // "1e+300", not 301 digits
        loaded.bad.misshaped.push_back(prefix + "step (expected a whole number from 1 to 2^53, got " + got.str() + ")");
      }
    }
    st.buffers.resize(names.size());
    for (size_t s = 0; s < names.size(); ++s) {
      auto it = loaded.given.find(prefix + names[s]);
      if (it == loaded.given.end()) {
        loaded.bad.missing.push_back(prefix + names[s]);
      } else if (!it->second.defined() || it->second.shape() != params_[i].shape()) {
        loaded.bad.misshaped.push_back(prefix + names[s] + " (expected " + shape_str(params_[i].shape()) + ", got " +
                                       shape_or_undefined(it->second) + ")");
      } else {
        st.buffers[s] = it->second;
      }
    }
  }
}

void Optimizer::commit(Loaded& loaded) {
  // Copy the buffers onto each tensor's device and dtype (never alias the caller's tensors).
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    for (Tensor& buf : loaded.states[i].buffers) {
      Tensor copy = raw::empty(p.shape(), p.dtype(), p.device());
      raw::copy_(copy, buf);
      buf = copy;
    }
  }
  lr_ = loaded.lr;
  set_hyperparameters(loaded.hyper);
  state_ = std::move(loaded.states);
  has_captured_step_ = false;  // a captured step would update the buffers just replaced
}

void Optimizer::load_state_dict(const NamedTensors& state) {
  Loaded loaded = read_state(state);
  if (!loaded.bad.empty()) {
    loaded.bad.raise(type_name_ + ".load_state_dict: the state does not match this optimiser; nothing was loaded.");
  }
  check_lr(loaded.lr);
  check_hyperparameters(loaded.hyper);
  commit(loaded);
}

// --- SGD ---

SGD::SGD(std::vector<Tensor> params, double lr, double momentum, double dampening, double weight_decay, bool nesterov)
    : Optimizer(std::move(params), "SGD", kSgdKind, lr), h_{momentum, dampening, weight_decay, nesterov} {
  check_hyperparameters(hyperparameters());
}

SgdHyperparameters SGD::parse(const NamedValues& values) {
  return SgdHyperparameters{value_of(values, "momentum"), value_of(values, "dampening"),
                            value_of(values, "weight_decay"), value_of(values, "nesterov") != 0};
}

Optimizer::NamedValues SGD::hyperparameters() const {
  return {{"momentum", h_.momentum},
          {"dampening", h_.dampening},
          {"weight_decay", h_.weight_decay},
          {"nesterov", h_.nesterov ? 1.0 : 0.0}};
}

void SGD::check_hyperparameters(const NamedValues& values) const {
  const SgdHyperparameters h = parse(values);
  ATELIER_CHECK(h.weight_decay >= 0, "SGD: invalid weight_decay " << h.weight_decay);
  ATELIER_CHECK(h.momentum >= 0, "SGD: invalid momentum " << h.momentum);
  ATELIER_CHECK(!h.nesterov || (h.momentum > 0 && h.dampening == 0),
                "SGD: Nesterov momentum needs momentum > 0 and dampening 0 (got momentum "
                    << h.momentum << ", dampening " << h.dampening << ")");
}

std::vector<std::string> SGD::state_names(const NamedValues& values) const {
  if (value_of(values, "momentum") == 0) return {};
  return {"momentum_buffer"};
}

void SGD::update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& state, int64_t step) {
  raw::sgd_step_(param, grad, state.empty() ? Tensor() : state[0], step, lr(), h_);
}

// --- Adam and AdamW ---

Adam::Adam(std::vector<Tensor> params, double lr, std::array<double, 2> betas, double eps, double weight_decay)
    : Adam(std::move(params), false, lr, betas, eps, weight_decay) {}

Adam::Adam(std::vector<Tensor> params, bool decoupled_weight_decay, double lr, std::array<double, 2> betas, double eps,
           double weight_decay)
    : Optimizer(std::move(params), decoupled_weight_decay ? "AdamW" : "Adam",
                decoupled_weight_decay ? kAdamWKind : kAdamKind, lr),
      h_{betas[0], betas[1], eps, weight_decay, decoupled_weight_decay} {
  check_hyperparameters(hyperparameters());
}

AdamHyperparameters Adam::parse(const NamedValues& values) const {
  return AdamHyperparameters{value_of(values, "beta1"), value_of(values, "beta2"), value_of(values, "eps"),
                             value_of(values, "weight_decay"), h_.decoupled_weight_decay};
}

Optimizer::NamedValues Adam::hyperparameters() const {
  return {{"beta1", h_.beta1}, {"beta2", h_.beta2}, {"eps", h_.eps}, {"weight_decay", h_.weight_decay}};
}

void Adam::check_hyperparameters(const NamedValues& values) const {
  const AdamHyperparameters h = parse(values);
  const std::string name = type_name();
  ATELIER_CHECK(h.weight_decay >= 0, name << ": invalid weight_decay " << h.weight_decay);
  ATELIER_CHECK(h.beta1 >= 0 && h.beta1 < 1, name << ": invalid beta1 " << h.beta1 << " (need 0 <= beta1 < 1)");
  ATELIER_CHECK(h.beta2 >= 0 && h.beta2 < 1, name << ": invalid beta2 " << h.beta2 << " (need 0 <= beta2 < 1)");
  ATELIER_CHECK(h.eps >= 0, name << ": invalid eps " << h.eps);
}

std::vector<std::string> Adam::state_names(const NamedValues&) const { return {"exp_avg", "exp_avg_sq"}; }

void Adam::update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& state, int64_t step) {
  raw::adam_step_(param, grad, state[0], state[1], step, lr(), h_);
}

namespace {

// The raw op's items for an optimiser's updates (Optimizer::Update, named through a template: it is protected).
template <class Updates>
std::vector<raw::AdamTensors> adam_items(const Updates& updates) {
  std::vector<raw::AdamTensors> items;
  items.reserve(updates.size());
  for (const auto& u : updates) {
    items.push_back({u.param, u.grad, (*u.state)[0], (*u.state)[1], u.step, static_cast<int64_t>(u.index)});
  }
  return items;
}

}  // namespace

// One adam_step_multi call for every tensor (per dtype and device): an error names the tensor by its index. The
// first step also makes the buffer a captured step reads its constants from (update_all_captured).
bool Adam::update_all(const std::vector<Update>& updates) {
  raw::adam_step_multi_(adam_items(updates), lr(), h_);
  if (!replay_constants_.defined() && !updates.empty()) {
    replay_constants_ = raw::empty({4 * static_cast<int64_t>(params().size())}, DType::Float64, params()[0].device());
  }
  return true;
}

// Captured: the bias corrections and lr change every step, and a replay repeats a launch's arguments as captured,
// so the kernel reads them from replay_constants_, which prepare_replay writes before each replay (the other
// option, leaving the optimiser out of the graph, would split the step into three graphs around two eager launches).
// The constants come from the same host function as an eager step's, so a replayed step equals an eager one bit
// for bit. The buffer is an input of the graph, written before the replay starts, so it must not be memory the
// graph's own temporaries reuse: it is made by an eager step, outside any capture, never during one.
void Adam::update_all_captured(const std::vector<Update>& updates) {
  if (updates.empty()) return;
  ATELIER_CHECK(replay_constants_.defined(),
                "the buffer of the captured step's constants is made by an eager step: "
                "run one step eagerly first");
  raw::adam_step_multi_(adam_items(updates), lr(), h_, constants_for(updates.size()));
}

Tensor Adam::constants_for(size_t count) const {
  return raw::slice(replay_constants_, 0, 0, 4 * static_cast<int64_t>(count), 1);
}

void Adam::write_replay_values(const std::vector<Update>& updates) {
  if (updates.empty()) return;
  std::vector<AdamConstants> constants;
  constants.reserve(updates.size());
  for (const Update& u : updates) constants.push_back(adam_constants(lr(), h_, u.step));
  const Tensor buffer = constants_for(constants.size());
  // Through a staging buffer the host fills while the previous replay may still run (tensor/upload.h): a copy from
  // pageable memory could make the host wait for it. The copy is ordered after the replays queued before it.
  const size_t bytes = constants.size() * sizeof(AdamConstants);
  if (constants_upload_ == nullptr || constants_upload_->bytes() != bytes) {
    constants_upload_ = std::make_unique<UploadPair>(buffer.device(), bytes);
  }
  std::memcpy(constants_upload_->staging(), constants.data(), bytes);
  constants_upload_->start(buffer.raw_data());
  replay_constants_.storage()->bump_version();
}

AdamW::AdamW(std::vector<Tensor> params, double lr, std::array<double, 2> betas, double eps, double weight_decay)
    : Adam(std::move(params), true, lr, betas, eps, weight_decay) {}

}  // namespace atelier::nn
