// What load_state_dict found wrong, collected so that one error names every bad entry at once (a user fixing a
// checkpoint by hand should not discover its faults one run at a time). Modules and optimisers both use it.
#pragma once

#include <string>
#include <vector>

namespace atelier::nn {

struct StateMismatch {
  std::vector<std::string> missing, unexpected, duplicated, misshaped;

  bool empty() const { return missing.empty() && unexpected.empty() && duplicated.empty() && misshaped.empty(); }
  // Throws atelier::Error: `header`, then one line per non-empty list ("  2 missing: a, b").
  [[noreturn]] void raise(const std::string& header) const;
};

}  // namespace atelier::nn
