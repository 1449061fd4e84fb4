// check_checkpoints RUN_DIR: loads every file in RUN_DIR/checkpoints with the library (nn::load_safetensors) and
// checks that each is a complete checkpoint: named step_N.safetensors, its metadata's "step" is N, and it holds
// both networks and both optimisers. Temporary files of killed saves (".atelier-tmp.*") are counted, not loaded.
// Prints "newest N" (0 when there is none) and "temporary K"; exits 1 naming the first bad file.
// Used by scripts/kill-test.sh.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "nn/safetensors.h"

using namespace atelier;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: check_checkpoints RUN_DIR\n");
    return 2;
  }
  const std::filesystem::path dir = std::filesystem::path(argv[1]) / "checkpoints";
  long long newest = 0, temporary = 0, loaded = 0;
  try {
    if (!std::filesystem::exists(dir)) {
      std::printf("newest 0\ntemporary 0\nloaded 0\n");
      return 0;
    }
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with(".atelier-tmp.")) {
        ++temporary;
        continue;
      }
      long long step = -1;
      char tail[32] = {0};
      if (std::sscanf(name.c_str(), "step_%lld.%31s", &step, tail) != 2 || std::string(tail) != "safetensors") {
        std::fprintf(stderr, "check_checkpoints: %s: not a checkpoint name\n", entry.path().c_str());
        return 1;
      }
      const nn::SafetensorsFile file = nn::load_safetensors(entry.path().string());
      const auto it = file.metadata.find("step");
      if (it == file.metadata.end() || it->second != std::to_string(step)) {
        std::fprintf(stderr, "check_checkpoints: %s: metadata step '%s', expected %lld\n", entry.path().c_str(),
                     it == file.metadata.end() ? "(none)" : it->second.c_str(), step);
        return 1;
      }
      for (const char* prefix : {"G.", "D.", "opt_g.", "opt_d."}) {
        const bool found = std::any_of(file.tensors.begin(), file.tensors.end(),
                                       [&](const auto& named) { return named.first.starts_with(prefix); });
        if (!found) {
          std::fprintf(stderr, "check_checkpoints: %s: no tensor named %s*\n", entry.path().c_str(), prefix);
          return 1;
        }
      }
      ++loaded;
      newest = std::max(newest, step);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "check_checkpoints: %s\n", e.what());
    return 1;
  }
  std::printf("newest %lld\ntemporary %lld\nloaded %lld\n", newest, temporary, loaded);
  return 0;
}
