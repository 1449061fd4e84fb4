#include "backends/backend.h"

#include "backends/error.h"

namespace atelier {

const char* primitive_name(PrimitiveOp op) {
  switch (op) {
#define X(name, Args)     \
  case PrimitiveOp::name: \
    return #name;
#include "backends/ops.def"
#undef X
  }
  return "?";
}

void Backend::not_implemented(PrimitiveOp op) const {
  throw Error(std::string(primitive_name(op)) + " is not implemented on " + name());
}

#define X(op_name, Args) \
  void Backend::op_name(const Args&) { not_implemented(PrimitiveOp::op_name); }
#include "backends/ops.def"
#undef X

}  // namespace atelier
