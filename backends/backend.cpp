#include "backends/backend.h"

#include "backends/error.h"

namespace atelier {

const char* primitive_name(PrimitiveOp op) {
  switch (op) {
#define X(name, Args)     \
  case PrimitiveOp::name: \
    return #name;
#include "backends/primitives.def"
#undef X
  }
  return "?";
}

void check_supported(const Backend& backend, PrimitiveOp op, DType dtype, const char* what) {
  ATELIER_CHECK(backend.supports(op, dtype), what << ": " << primitive_name(op) << " on " << dtype
                                                  << " is not supported by the " << backend.name() << " backend");
}

void throw_out_of_memory(const Backend& backend, PrimitiveOp op, const char* what, int64_t work) {
  ATELIER_FAIL(what << ": out of memory (std::bad_alloc) in " << primitive_name(op) << " on the " << backend.name()
                    << " backend, working on " << work << " elements");
}

void Backend::not_implemented(PrimitiveOp op) const {
  throw Error(std::string(primitive_name(op)) + " is not implemented on " + name());
}

#define X(op_name, Args) \
  void Backend::op_name(const Args&) { not_implemented(PrimitiveOp::op_name); }
#include "backends/primitives.def"
#undef X

}  // namespace atelier
