// The primitive names, the support check, the default bodies of the primitives and the default readback.
#include "backends/backend.h"

#include <vector>

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

namespace {

// The default readback: copy_to_host at once into a host buffer (on the CPU, a memcpy that waits for nothing).
class CopyReadback final : public HostReadback {
 public:
  CopyReadback(Backend& backend, size_t bytes) : HostReadback(bytes), backend_(backend), buffer_(bytes) {}
  void start(const void* device_src) override { backend_.copy_to_host(buffer_.data(), device_src, bytes()); }
  const void* wait() override { return buffer_.data(); }

 private:
  Backend& backend_;
  std::vector<unsigned char> buffer_;
};

}  // namespace

std::unique_ptr<HostReadback> Backend::make_readback(size_t bytes) {
  return std::make_unique<CopyReadback>(*this, bytes);
}

void Backend::not_implemented(PrimitiveOp op) const {
  throw Error(std::string(primitive_name(op)) + " is not implemented on " + name());
}

#define X(op_name, Args) \
  void Backend::op_name(const Args&) { not_implemented(PrimitiveOp::op_name); }
#include "backends/primitives.def"
#undef X

}  // namespace atelier
