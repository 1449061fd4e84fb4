// Module and Optimizer checkpoints (nn/checkpoint.h): both state dicts, prefixed, in one safetensors file, and an
// all-or-nothing load.
#include "nn/checkpoint.h"

#include <sstream>
#include <vector>

#include "backends/error.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "tensor/raw_ops.h"

namespace atelier::nn {
namespace {

const std::string kModelPrefix = "model.";
const std::string kOptimPrefix = "optim.";

// A file's tensors sorted by prefix (the prefix removed). Any tensor with neither prefix is an error.
struct CheckpointParts {
  NamedTensors model, optim;
};

CheckpointParts split_by_prefix(const std::string& path, const NamedTensors& tensors) {
  CheckpointParts parts;
  std::ostringstream stray;
  for (const auto& [name, t] : tensors) {
    if (name.starts_with(kModelPrefix)) {
      parts.model.emplace_back(name.substr(kModelPrefix.size()), t);
    } else if (name.starts_with(kOptimPrefix)) {
      parts.optim.emplace_back(name.substr(kOptimPrefix.size()), t);
    } else {
      stray << (stray.tellp() > 0 ? ", " : "") << "'" << name << "'";
    }
  }
  ATELIER_CHECK(stray.tellp() == 0, "load_checkpoint: '" << path << "': unexpected tensors with neither the \""
                                                         << kModelPrefix << "\" nor the \"" << kOptimPrefix
                                                         << "\" prefix: " << stray.str());
  return parts;
}

}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     const std::map<std::string, std::string>& metadata) {
  NamedTensors all;
  for (auto& [name, t] : model.state_dict()) all.emplace_back(kModelPrefix + name, t);
  if (optimizer) {
    for (auto& [name, t] : optimizer->state_dict()) all.emplace_back(kOptimPrefix + name, t);
  }
  save_safetensors(path, all, metadata);
}

std::map<std::string, std::string> load_checkpoint(const std::string& path, Module& model, Optimizer* optimizer) {
  SafetensorsFile file = load_safetensors(path);
  CheckpointParts parts = split_by_prefix(path, file.tensors);

  // A snapshot of the model, to undo its load if the optimizer's then fails (each load is all-or-nothing alone).
  NamedTensors snapshot;
  if (optimizer) {
    for (auto& [name, t] : model.state_dict()) snapshot.emplace_back(name, raw::clone(t));
  }
  try {
    model.load_state_dict(parts.model);
  } catch (const Error& e) {
    ATELIER_FAIL("load_checkpoint: '" << path << "': the model does not match: " << e.what());
  }
  if (optimizer) {
    try {
      optimizer->load_state_dict(parts.optim);
    } catch (const Error& e) {
      model.load_state_dict(snapshot);
      ATELIER_FAIL("load_checkpoint: '" << path << "': the optimizer does not match: " << e.what());
    }
  }
  return file.metadata;
}

}  // namespace atelier::nn
