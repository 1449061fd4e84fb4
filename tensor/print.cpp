// Readable printing, PyTorch-like: nested brackets, a shared format per tensor, long dimensions elided.
#include <cmath>
#include <iomanip>
#include <sstream>

#include "tensor/raw_ops.h"
#include "tensor/tensor.h"

namespace atelier {

namespace {

constexpr int64_t kEdgeItems = 3;     // shown at each end of a long dimension
constexpr int64_t kSummarise = 1000;  // elide when the tensor has more elements than this

struct Printer {
  const std::vector<double>& values;
  const Shape& shape;
  bool integral;
  bool summarise;
  int precision;

  void element(std::ostream& os, double v) const {
    if (integral) {
      os << static_cast<int64_t>(v);
    } else if (std::isnan(v) || std::isinf(v)) {
      os << v;
    } else {
      os << std::fixed << std::setprecision(precision) << v;
    }
  }

  void recurse(std::ostream& os, size_t dim, int64_t base, int indent) const {
    if (dim == shape.size()) {
      element(os, values[base]);
      return;
    }
    int64_t stride = 1;
    for (size_t d = dim + 1; d < shape.size(); ++d) stride *= shape[d];
    os << '[';
    int64_t n = shape[dim];
    for (int64_t i = 0; i < n; ++i) {
      if (summarise && n > 2 * kEdgeItems && i == kEdgeItems) {
        os << "...";
        i = n - kEdgeItems - 1;
        os << (dim + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
        continue;
      }
      recurse(os, dim + 1, base + i * stride, indent + 1);
      if (i + 1 < n) os << (dim + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
    }
    os << ']';
  }
};

}  // namespace

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  std::vector<double> values = to_vector<double>();
  bool integral = !is_floating(dtype());
  double max_abs = 0;
  for (double v : values) {
    if (std::isfinite(v)) max_abs = std::max(max_abs, std::fabs(v));
  }
  std::ostringstream os;
  os << "tensor(";
  Printer printer{values, shape(), integral, numel() > kSummarise, max_abs >= 1e4 ? 1 : 4};
  printer.recurse(os, 0, 0, 7);
  os << ", shape=" << shape() << ", dtype=" << dtype();
  if (!device().is_cpu()) os << ", device=" << device();
  if (requires_grad()) os << ", requires_grad";
  os << ')';
  return os.str();
}

}  // namespace atelier
