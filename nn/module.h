// nn::Module: the base of every layer and model. A module owns named parameters (tensors an optimiser updates),
// named buffers (state that is saved but not trained) and named child modules, so a whole model can be walked
// with dotted names as PyTorch spells them ("encoder.0.weight"): for optimisers, checkpoints, device moves and
// the summary table.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/error.h"
#include "tensor/tensor.h"

namespace atelier::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// WHAT THIS OBJECT REPRESENTS
//   A node of a model tree. Its parameters, buffers and children are kept in registration order, and every
//   walk (named_parameters, state_dict, summary) visits a module's own tensors first, then each child's, so
//   names and order are stable from run to run.
//
//   Registered tensors are shared handles: a layer keeps its `weight` member and the module registry holds the
//   same TensorImpl, so what an optimiser updates is what forward() reads. Operations that change a parameter's
//   device or dtype (to()) rebind the storage inside that same TensorImpl, so every handle stays valid.
//
//   Modules are not copyable (a copy would share parameters silently); hold them by std::shared_ptr.
class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The layer's computation. The base version throws: a container-only module has no forward of its own.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  // A short type name for messages and the summary ("Linear", "Conv2d", "Module" ...).
  virtual std::string type_name() const { return "Module"; }

  // --- registration (called from a subclass's constructor) ---
  // requires: `name` is non-empty, has no '.', and is not yet used by a parameter, buffer or child here;
  //           `tensor` is a defined floating-point leaf.
  // ensures:  the tensor requires grad and is returned (the same handle, for the layer to keep as a member).
  Tensor register_parameter(const std::string& name, const Tensor& tensor);
  // Saved in state_dict and moved by to(), never trained. Any dtype.
  Tensor register_buffer(const std::string& name, const Tensor& tensor);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    ATELIER_CHECK(module != nullptr, type_name() << ".register_module('" << name << "'): module is null");
    add_child(name, module);
    return module;
  }

  // --- walking the tree ---
  // Every parameter with its dotted path, own parameters first, then each child's in registration order.
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  NamedTensors named_buffers() const;
  // Direct children only.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // Total number of parameter elements.
  int64_t num_parameters() const;
  // A table: one row per parameter (name, shape, count), then the total. For printing.
  std::string summary() const;

  // --- modes and devices ---
  // Sets training mode here and in every descendant (no layer behaves differently yet; dropout would).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves every parameter, buffer and gradient to `device`, rebinding storage inside the existing TensorImpls,
  // so handles held by layers and optimisers stay valid (create optimisers after to(): their state is not
  // moved). Nothing changes if any move fails. A parameter already on `device` is not copied.
  void to(Device device);
  // Converts floating parameters and buffers (and gradients) to `dtype` in the same way (e.g. float64 for
  // gradient checks).
  void to(DType dtype);
  // Drops every parameter's gradient (sets it undefined, as PyTorch 2's set_to_none=True): the next backward
  // writes fresh gradients instead of adding to stale ones.
  void zero_grad();

  // --- checkpoints ---
  // Parameters then buffers, dotted names, as detach()ed tensors that share storage with the model.
  NamedTensors state_dict() const;
  // Copies values in (under NoGradGuard; dtype converted, device crossed as needed; handles stay valid).
  // requires: exactly the names of state_dict(), each with the same shape.
  // ensures:  on any mismatch nothing is copied and one Error lists every missing, unexpected, duplicated and
  //           mis-shaped name.
  void load_state_dict(const NamedTensors& state);
  void load_state_dict(const std::map<std::string, Tensor>& state);

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name, const char* what) const;
  // Calls fn(dotted_name, tensor) for every parameter (or buffer) of the tree, in walk order.
  template <typename Fn>
  void walk(const std::string& prefix, bool buffers, Fn&& fn) const;
  void rebind_all(const std::function<Tensor(const Tensor&)>& convert, bool floating_only);

  bool training_ = true;
  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace atelier::nn
