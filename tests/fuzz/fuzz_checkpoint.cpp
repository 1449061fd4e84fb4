// libFuzzer target: nn::load_checkpoint of arbitrary bytes into a small model (Linear(2, 3), ELU, Linear(3, 1))
// with an Adam optimiser. Every input is either loaded or refused with an atelier::Error naming the file; a refusal
// must leave the model's state exactly as it was (load_checkpoint is all or nothing).
#include <cstring>
#include <memory>

#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "tests/fuzz/fuzz_util.h"

using namespace atelier;

namespace {

// The model's state as bytes, to compare before and after a refused load.
std::string state_bytes(const nn::Module& model) {
  std::string out;
  for (const auto& [name, t] : model.state_dict()) {
    out += name;
    out.append(static_cast<const char*>(t.raw_data()), static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_input("checkpoint", data, size);
  static auto model = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(2, 3), std::make_shared<nn::ELU>(),
                                                       std::make_shared<nn::Linear>(3, 1));
  static nn::Adam optimizer(model->parameters(), 1e-3);
  const std::string before = state_bytes(*model);
  try {
    nn::load_checkpoint(path, *model, &optimizer);
  } catch (const Error& e) {
    fuzz::check_refusal(e, path, data, size);
    if (state_bytes(*model) != before) {
      std::fprintf(stderr, "fuzz: a refused checkpoint changed the model\n");
      std::abort();
    }
  }
  return 0;
}
