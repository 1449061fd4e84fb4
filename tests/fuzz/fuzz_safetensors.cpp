// libFuzzer target: nn::load_safetensors on arbitrary bytes. Every input is either loaded (and then must be
// self-consistent: each tensor's bytes fit its shape and dtype, and writing it back and reading that again gives
// the same tensors) or refused with an atelier::Error naming the file (tests/fuzz/fuzz_util.h).
#include <cstring>

#include "nn/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

using namespace atelier;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_input("safetensors", data, size);
  nn::SafetensorsFile file;
  try {
    file = nn::load_safetensors(path);
  } catch (const Error& e) {
    fuzz::check_refusal(e, path, data, size);
    return 0;
  }
  // Loaded: it must survive a round trip through the writer unchanged. (The writer refuses an empty tensor name,
  // which the format and the reader allow: such a file is not written back.)
  for (const auto& named : file.tensors) {
    if (named.first.empty()) return 0;
  }
  const std::string again = path + ".again";
  nn::save_safetensors(again, file.tensors, file.metadata);
  const nn::SafetensorsFile back = nn::load_safetensors(again);
  if (back.tensors.size() != file.tensors.size() || back.metadata != file.metadata) std::abort();
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const Tensor& a = file.tensors[i].second;
    const Tensor& b = back.tensors[i].second;
    const size_t bytes = static_cast<size_t>(a.numel()) * dtype_size(a.dtype());
    if (back.tensors[i].first != file.tensors[i].first || a.shape() != b.shape() || a.dtype() != b.dtype() ||
        (bytes > 0 && std::memcmp(a.raw_data(), b.raw_data(), bytes) != 0)) {
      std::abort();
    }
  }
  return 0;
}
