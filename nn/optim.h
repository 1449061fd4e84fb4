// Optimisers: SGD (momentum, dampening, Nesterov, weight decay), Adam (L2 weight decay added to the gradient, as
// torch.optim.Adam) and AdamW (decoupled weight decay). Each step is one fused in-place raw op per parameter
// tensor (raw::sgd_step_ / raw::adam_step_ over the sgd_step / adam_step primitives, formulas in backends/args.h),
// so every backend updates parameters the same way and a step costs one pass over each parameter and its state.
//
// Optimizer holds what every rule shares (the tensors, lr, step counts, state buffers, the state dict); each
// rule class holds its own hyperparameters (SgdHyperparameters, AdamHyperparameters) and names its buffers.
//
//   nn::Adam opt(model->parameters(), 1e-4, {0.5, 0.999});
//   loss.backward(); opt.step(); opt.zero_grad();
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/args.h"
#include "nn/module.h"
#include "tensor/upload.h"

namespace atelier::nn {

// WHAT THIS OBJECT REPRESENTS
//   An update rule applied to a fixed list of tensors: module parameters or any leaf tensor being fitted (a
//   latent vector, an input image). Per tensor it keeps a step count and its state (SGD: the momentum buffer,
//   Adam: the two moments), created on that tensor's first step with the tensor's dtype and device.
//
// REQUIRES (at construction)
//   - a non-empty list of distinct, defined, contiguous float32/float64 leaf tensors;
//   - valid hyperparameters (lr >= 0, weight_decay >= 0, momentum >= 0, 0 <= beta < 1, eps >= 0, Nesterov only
//     with momentum > 0 and dampening 0), as PyTorch checks them.
//
// step() skips a tensor whose grad is undefined (as PyTorch); for the others the grad must have the tensor's
// shape, dtype and device. It runs under NoGradGuard and bumps each updated tensor's storage version, so a graph
// that saved the old values reports the change at backward time instead of using stale data.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // "SGD", "Adam" or "AdamW".
  std::string type_name() const { return type_name_; }

  // One update of every tensor that has a gradient. While a graph capture records on the params' device
  // (Backend::begin_capture; docs/gpu.md, "--cuda-graph"), step() captures the update instead: it reads its
  // per-step values (Adam: lr and the bias corrections) from device memory that prepare_replay() fills, and the
  // step counts do not move (prepare_replay moves them, once per replay). A captured step needs every tensor's
  // state to exist already (one eager step first: a captured zero-fill would reset the state at every replay), one
  // step() per optimiser per capture, and a rule with a captured form (Adam, AdamW; SGD has none yet).
  void step();
  // Before each replay of a graph that captured step(): advances the step counts of the tensors the captured step
  // updated and writes that step's values where the captured update reads them, exactly what an eager step()
  // would compute (so replayed steps equal eager ones bit for bit). Throws when no step() was captured, or when
  // load_state_dict() replaced the state since (the graph then updates buffers that are gone: capture again).
  void prepare_replay();
  // Drops every tensor's gradient (sets it undefined, like PyTorch 2's set_to_none=True).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr);
  const std::vector<Tensor>& params() const { return params_; }
  // Number of steps tensor i has taken (0 before its first gradient).
  int64_t step_count(size_t i) const;

  // Everything a resumed run needs to continue exactly:
  //   "param_groups.<name>"  float64 0-d: each hyperparameter (lr, momentum ... or lr, beta1, beta2 ...), and
  //                          "param_groups.kind" (0 SGD, 1 Adam, 2 AdamW) so state is never loaded into the
  //                          wrong rule;
  //   "state.<i>.step"       int64 0-d: steps taken by tensor i;
  //   "state.<i>.<buffer>"   the tensor's shape: momentum_buffer (SGD with momentum), exp_avg and exp_avg_sq
  //                          (Adam, AdamW).
  // State entries exist only for tensors that have taken a step. The tensors share storage with the optimiser
  // (write them out, or clone() them to keep a snapshot).
  NamedTensors state_dict() const;
  // requires: the names of a state_dict() of the same rule over tensors of the same shapes (i < params().size()).
  // ensures:  hyperparameters and state are replaced (values copied onto each tensor's device and dtype); on any
  //           mismatch nothing changes and one Error lists every missing, unexpected and mis-shaped name.
  void load_state_dict(const NamedTensors& state);

 protected:
  // Hyperparameter values by name, in state-dict order.
  using NamedValues = std::vector<std::pair<std::string, double>>;

  // kind: the rule's number in "param_groups.kind". Checks the tensors and lr; the rule checks the rest.
  Optimizer(std::vector<Tensor> params, std::string type_name, int kind, double lr);

  // --- what each rule provides: its own hyperparameters, the names of its state buffers, and its update ---
  // The hyperparameters besides lr, by name, with their current values.
  virtual NamedValues hyperparameters() const = 0;
  // Checks `values` (the names of hyperparameters(), with new values), throwing on an invalid one, as PyTorch.
  virtual void check_hyperparameters(const NamedValues& values) const = 0;
  // Takes `values` (already checked).
  virtual void set_hyperparameters(const NamedValues& values) = 0;
  // The per-tensor state buffers under these hyperparameters, in the order update() receives them.
  virtual std::vector<std::string> state_names(const NamedValues& values) const = 0;
  // One fused update of `param` (a raw op: raw::sgd_step_, raw::adam_step_); `state` holds the buffers of
  // state_names(), created as zeros before the first step.
  virtual void update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& state, int64_t step) = 0;
  // One tensor's update within a step (index: its place in params()).
  struct Update {
    size_t index;
    Tensor param, grad;
    const std::vector<Tensor>* state;
    int64_t step;
  };
  // Every update of one step at once, where the rule has a multi-tensor primitive (Adam: one adam_step_multi
  // launch instead of one per tensor); nothing is written when it throws. Returns false when the rule has none
  // (the default), and step() then calls update() tensor by tensor.
  virtual bool update_all(const std::vector<Update>&) { return false; }
  // The captured form of update_all (see step()): launches the update reading its per-step values from device
  // memory that write_replay_values fills. The default refuses: the rule has no captured form.
  virtual void update_all_captured(const std::vector<Update>& updates);
  // Writes the per-step values of `updates` (the captured step's tensors at their next step) for the captured
  // update to read; called by prepare_replay, outside any capture.
  virtual void write_replay_values(const std::vector<Update>&) {}

  // The value named `name` in `values` (which the rule itself produced, so it is there).
  static double value_of(const NamedValues& values, const std::string& name);

 private:
  struct ParamState {
    int64_t step = 0;
    std::vector<Tensor> buffers;  // (param shape) each, in state_names() order
  };
  struct Loaded;  // what load_state_dict has read and checked, before it commits
  void check_lr(double lr) const;
  Loaded read_state(const NamedTensors& state) const;
  void read_hyperparameters(Loaded& loaded) const;
  void read_param_states(Loaded& loaded) const;
  void commit(Loaded& loaded);

  std::string type_name_;
  int kind_;
  double lr_;
  std::vector<Tensor> params_;
  std::vector<ParamState> state_;
  // The captured step (see step()): which tensors it updates, and the number of the capture it was recorded in.
  bool has_captured_step_ = false;
  std::vector<size_t> captured_;
  uint64_t captured_in_ = 0;
};

// torch.optim.SGD: g = grad + weight_decay p; buf = momentum buf + (1 - dampening) g (buf = g on the first step);
// g = nesterov ? g + momentum buf : buf (plain g without momentum); p -= lr g.
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, double lr, double momentum = 0, double dampening = 0, double weight_decay = 0,
      bool nesterov = false);
  double momentum() const { return h_.momentum; }
  double dampening() const { return h_.dampening; }
  double weight_decay() const { return h_.weight_decay; }
  bool nesterov() const { return h_.nesterov; }

 private:
  static SgdHyperparameters parse(const NamedValues& values);
  NamedValues hyperparameters() const override;
  void check_hyperparameters(const NamedValues& values) const override;
  void set_hyperparameters(const NamedValues& values) override { h_ = parse(values); }
  std::vector<std::string> state_names(const NamedValues& values) const override;
  void update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& state, int64_t step) override;

  SgdHyperparameters h_;
};

// torch.optim.Adam: weight_decay is L2 added to the gradient (g = grad + weight_decay p), then the Adam update
// p -= lr m_hat / (sqrt(v_hat) + eps) with bias-corrected moments.
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, double lr = 1e-3, std::array<double, 2> betas = {0.9, 0.999}, double eps = 1e-8,
       double weight_decay = 0);
  std::array<double, 2> betas() const { return {h_.beta1, h_.beta2}; }
  double eps() const { return h_.eps; }
  double weight_decay() const { return h_.weight_decay; }

 protected:
  // AdamW's: decoupled weight decay.
  Adam(std::vector<Tensor> params, bool decoupled_weight_decay, double lr, std::array<double, 2> betas, double eps,
       double weight_decay);

 private:
  AdamHyperparameters parse(const NamedValues& values) const;
  NamedValues hyperparameters() const override;
  void check_hyperparameters(const NamedValues& values) const override;
  void set_hyperparameters(const NamedValues& values) override { h_ = parse(values); }
  std::vector<std::string> state_names(const NamedValues& values) const override;
  void update(const Tensor& param, const Tensor& grad, const std::vector<Tensor>& state, int64_t step) override;
  bool update_all(const std::vector<Update>& updates) override;
  void update_all_captured(const std::vector<Update>& updates) override;
  void write_replay_values(const std::vector<Update>& updates) override;

  AdamHyperparameters h_;
  // The first 4 * count elements of replay_constants_.
  Tensor constants_for(size_t count) const;

  // A captured step's AdamConstants, one per updated tensor (float64, 4 per parameter, on the params' device),
  // made by the first eager step.
  Tensor replay_constants_;
  // How prepare_replay's constants go up to replay_constants_ without the host waiting (pinned on CUDA).
  std::unique_ptr<UploadPair> constants_upload_;
};

// torch.optim.AdamW: decoupled weight decay, p *= 1 - lr weight_decay, then Adam without the L2 term.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, double lr = 1e-3, std::array<double, 2> betas = {0.9, 0.999}, double eps = 1e-8,
        double weight_decay = 1e-2);
};

}  // namespace atelier::nn
