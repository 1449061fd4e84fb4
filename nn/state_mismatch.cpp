#include "nn/state_mismatch.h"

#include <sstream>

#include "backends/error.h"

namespace atelier::nn {

void StateMismatch::raise(const std::string& header) const {
  std::ostringstream os;
  os << header;
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    os << "\n  " << names.size() << " " << what << ":";
    for (size_t i = 0; i < names.size(); ++i) os << (i == 0 ? " " : ", ") << names[i];
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list("duplicated", duplicated);
  list("mis-shaped", misshaped);
  throw Error(os.str());
}

}  // namespace atelier::nn
