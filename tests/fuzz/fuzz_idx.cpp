// libFuzzer target: nn::read_idx on arbitrary bytes (plain or gzip). Every input is either read (and then the
// data holds exactly prod(dims) bytes) or refused with an atelier::Error naming the file (tests/fuzz/fuzz_util.h).
#include "nn/data/idx.h"
#include "tests/fuzz/fuzz_util.h"

using namespace atelier;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = fuzz::write_input("idx", data, size);
  try {
    const nn::IdxArray a = nn::read_idx(path);
    uint64_t numel = 1;
    for (int64_t d : a.dims) {
      if (d < 0) std::abort();
      numel *= static_cast<uint64_t>(d);
    }
    if (a.dims.empty() || numel != a.data.size()) std::abort();
  } catch (const Error& e) {
    fuzz::check_refusal(e, path, data, size);
  }
  return 0;
}
