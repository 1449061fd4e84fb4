// Checkpoints: a Module's state_dict under "model." and an Optimizer's under "optim.", with string metadata, in
// one safetensors file (nn/safetensors.h, included here so that this header alone gives both levels).
#pragma once

#include <map>
#include <string>

#include "nn/safetensors.h"

namespace atelier::nn {

class Module;
class Optimizer;

// Writes model.state_dict() as "model.<name>" and, when given, optimizer->state_dict() as "optim.<name>", with
// `metadata` (e.g. the step and the trainer's k_t), atomically as save_safetensors does.
void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer = nullptr,
                     const std::map<std::string, std::string>& metadata = {});

// Loads a file written by save_checkpoint into `model` and, when given, `optimizer`; returns the metadata.
// "optim." entries are ignored when no optimizer is given (loading weights only, e.g. to sample). All or nothing:
// on any error neither the model nor the optimizer changes. A mismatch throws one Error naming the file and listing
// every missing, unexpected and mis-shaped name of the failing part (Module/Optimizer::load_state_dict's report);
// an entry with neither prefix is reported as unexpected.
std::map<std::string, std::string> load_checkpoint(const std::string& path, Module& model,
                                                   Optimizer* optimizer = nullptr);

}  // namespace atelier::nn
