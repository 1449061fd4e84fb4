// nn::Module: registration, the dotted-name walks, device/dtype moves by storage rebinding, and state dicts.
#include "nn/module.h"

#include <algorithm>
#include <iomanip>
#include <set>
#include <sstream>
#include <unordered_set>

#include "nn/state_mismatch.h"
#include "tensor/grad_mode.h"
#include "tensor/raw_ops.h"

namespace atelier::nn {

Tensor Module::forward(const Tensor&) {
  ATELIER_FAIL(type_name() << ".forward: this module has no forward(); call its children, or subclass Module and "
                           << "override forward()");
}

void Module::check_new_name(const std::string& name, const char* what) const {
  ATELIER_CHECK(!name.empty() && name.find('.') == std::string::npos,
                type_name() << ".register_" << what << "('" << name
                            << "'): a name must be non-empty and contain no '.' (dots join the path)");
  auto used = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& entry) { return entry.first == name; });
  };
  ATELIER_CHECK(!used(parameters_) && !used(buffers_) && !used(children_),
                type_name() << ".register_" << what << "('" << name << "'): the name is already registered");
}

Tensor Module::register_parameter(const std::string& name, const Tensor& tensor) {
  check_new_name(name, "parameter");
  ATELIER_CHECK(tensor.defined(), type_name() << ".register_parameter('" << name << "'): tensor is undefined");
  ATELIER_CHECK(is_floating(tensor.dtype()), type_name() << ".register_parameter('" << name
                                                         << "'): parameters must be float32 or float64, got "
                                                         << tensor.dtype());
  ATELIER_CHECK(tensor.is_leaf(), type_name() << ".register_parameter('" << name
                                              << "'): the tensor is the output of an op; register a leaf (detach() "
                                              << "it or make it with a creation function)");
  tensor.requires_grad_(true);
  parameters_.emplace_back(name, tensor);
  return tensor;
}

Tensor Module::register_buffer(const std::string& name, const Tensor& tensor) {
  check_new_name(name, "buffer");
  ATELIER_CHECK(tensor.defined(), type_name() << ".register_buffer('" << name << "'): tensor is undefined");
  buffers_.emplace_back(name, tensor);
  return tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name, "module");
  ATELIER_CHECK(child.get() != this, type_name() << ".register_module('" << name << "'): a module cannot own itself");
  children_.emplace_back(name, std::move(child));
}

template <typename Fn>
void Module::walk(const std::string& prefix, bool buffers, Fn&& fn) const {
  for (const auto& [name, t] : buffers ? buffers_ : parameters_) fn(prefix + name, t);
  for (const auto& [name, child] : children_) child->walk(prefix + name + ".", buffers, fn);
}

NamedTensors Module::named_parameters() const {
  // A parameter shared by two modules (tied weights) is listed once, under its first name, as in PyTorch: an
  // optimiser must not update it twice.
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  walk("", false, [&](const std::string& name, const Tensor& t) {
    if (seen.insert(t.impl_ptr()).second) out.emplace_back(name, t);
  });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  walk("", true, [&](const std::string& name, const Tensor& t) { out.emplace_back(name, t); });
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

std::string Module::summary() const {
  const NamedTensors params = named_parameters();
  size_t name_width = 5, shape_width = 5;  // "total", "shape"
  for (const auto& [name, t] : params) {
    name_width = std::max(name_width, name.size());
    shape_width = std::max(shape_width, shape_str(t.shape()).size());
  }
  const int nw = static_cast<int>(name_width) + 2, sw = static_cast<int>(shape_width) + 2, cw = 12;
  std::ostringstream os;
  os << type_name() << "\n";
  os << std::left << std::setw(nw) << "name" << std::setw(sw) << "shape" << std::right << std::setw(cw) << "parameters"
     << "\n";
  for (const auto& [name, t] : params) {
    os << std::left << std::setw(nw) << name << std::setw(sw) << shape_str(t.shape()) << std::right << std::setw(cw)
       << t.numel() << "\n";
  }
  os << std::left << std::setw(nw + sw) << "total" << std::right << std::setw(cw) << num_parameters() << "\n";
  return os.str();
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::rebind_all(const std::function<Tensor(const Tensor&)>& convert, bool floating_only) {
  // Convert everything first, then swap: if one conversion throws (no such device), nothing has moved.
  struct Move {
    Tensor target, converted, grad;
  };
  std::vector<Move> moves;
  auto plan = [&](const std::string&, const Tensor& t) {
    if (floating_only && !is_floating(t.dtype())) return;
    Tensor g = t.grad();
    moves.push_back({t, convert(t), g.defined() ? convert(g) : Tensor()});
  };
  walk("", false, plan);
  walk("", true, plan);
  for (const Move& m : moves) {
    m.target.set_data(m.converted);  // every handle to the parameter sees the move
    if (m.grad.defined()) m.target.set_grad(m.grad);
  }
}

void Module::to(Device device) {
  rebind_all([device](const Tensor& t) { return raw::to_device(t, device); }, false);
}

void Module::to(DType dtype) {
  ATELIER_CHECK(is_floating(dtype), type_name() << ".to(" << dtype << "): parameters must stay float32 or float64");
  rebind_all([dtype](const Tensor& t) { return t.dtype() == dtype ? t : raw::cast(t, dtype); }, true);
}

void Module::zero_grad() {
  walk("", false, [](const std::string&, const Tensor& t) { t.set_grad(Tensor()); });
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  for (const auto& [name, t] : named_parameters()) out.emplace_back(name, t.detach());
  for (const auto& [name, t] : named_buffers()) out.emplace_back(name, t.detach());
  return out;
}

void Module::load_state_dict(const NamedTensors& state) {
  const NamedTensors own = state_dict();
  std::map<std::string, const Tensor*> expected;
  for (const auto& [name, t] : own) expected.emplace(name, &t);

  StateMismatch bad;
  std::set<std::string> given;
  for (const auto& [name, t] : state) {
    if (!given.insert(name).second) {
      bad.duplicated.push_back(name);
      continue;
    }
    auto it = expected.find(name);
    if (it == expected.end()) {
      bad.unexpected.push_back(name);
    } else if (!t.defined()) {
      bad.misshaped.push_back(name + " (undefined tensor)");
    } else if (t.shape() != it->second->shape()) {
      bad.misshaped.push_back(name + " (expected " + shape_str(it->second->shape()) + ", got " + shape_str(t.shape()) +
                              ")");
    }
  }
  for (const auto& [name, t] : own) {
    if (!given.count(name)) bad.missing.push_back(name);
  }

  if (!bad.empty())
    bad.raise(type_name() + ".load_state_dict: the state does not match the model; nothing was loaded.");

  NoGradGuard no_grad;
  for (const auto& [name, t] : state) raw::copy_(*expected.at(name), t);
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state) {
  load_state_dict(NamedTensors(state.begin(), state.end()));
}

}  // namespace atelier::nn
