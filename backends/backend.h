// The narrow interface every device implements, and the registry that maps a Device to its Backend.
//
// A Backend owns its device's memory (allocate/deallocate through a caching allocator, host<->device copies)
// and runs primitives. The primitives are listed once in backends/primitives.def; each becomes a virtual here
// whose default body throws "<op> is not implemented on <backend>", so a backend overrides only what it
// implements and says so through supports(). The floors above never call a virtual directly: launch() (below)
// checks supports() on the way in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>

#include "backends/args.h"
#include "backends/dtype.h"

namespace atelier {

enum class PrimitiveOp {
#define X(name, Args) name,
#include "backends/primitives.def"
#undef X
};

const char* primitive_name(PrimitiveOp op);

// Counters of a caching allocator (bytes unless named otherwise).
struct AllocatorStats {
  size_t in_use = 0;  // handed out and not yet returned
  size_t cached = 0;  // returned and kept for reuse
  size_t peak_in_use = 0;
  size_t system_allocs = 0;  // calls that reached the system allocator (malloc / cudaMalloc)
  size_t cache_hits = 0;
};

// A copy of device bytes into host memory that the host does not wait for when it queues it: start() queues the
// copy behind the work already queued on the device, wait() blocks until it has landed and returns the host bytes.
// The trainer reads a step's scalars this way one step later, so a step never waits for the device. The CUDA
// backend copies into pinned memory and records an event; the default (the CPU's) copies at once in start().
//   std::unique_ptr<HostReadback> r = backend.make_readback(8 * sizeof(double));
//   r->start(device_ptr);  ...queue more work...;  const double* v = static_cast<const double*>(r->wait());
class HostReadback {
 public:
  explicit HostReadback(size_t bytes) : bytes_(bytes) {}
  virtual ~HostReadback() = default;
  HostReadback(const HostReadback&) = delete;
  HostReadback& operator=(const HostReadback&) = delete;

  size_t bytes() const { return bytes_; }
  // Queues the copy of bytes() bytes from device_src (which must stay valid for the work queued before it).
  virtual void start(const void* device_src) = 0;
  // Waits for the copy that start() queued and returns the host bytes (valid until the next start()).
  virtual const void* wait() = 0;

 private:
  size_t bytes_;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  // True when the device can be used now (a CUDA backend without a driver or GPU says false).
  virtual bool available() const = 0;

  // Memory: aligned to 64 bytes, uninitialised. deallocate gets the size that allocate was given.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual AllocatorStats allocator_stats() const = 0;
  // Returns every cached block to the system.
  virtual void empty_cache() = 0;
  virtual void copy_to_host(void* host_dst, const void* device_src, size_t bytes) = 0;
  virtual void copy_from_host(void* device_dst, const void* host_src, size_t bytes) = 0;
  // Waits for queued work (a no-op on the CPU).
  virtual void synchronize() {}
  // A reusable asynchronous copy of `bytes` device bytes to the host (HostReadback above). The default copies
  // with copy_to_host in start().
  virtual std::unique_ptr<HostReadback> make_readback(size_t bytes);

  // Whether this backend implements `op` for elements of type `dtype`.
  virtual bool supports(PrimitiveOp op, DType dtype) const = 0;

#define X(name, Args) virtual void name(const Args& args);
#include "backends/primitives.def"
#undef X

 protected:
  [[noreturn]] void not_implemented(PrimitiveOp op) const;
};

// The args struct of each primitive and the call that runs it, for code generic over primitives (launch below):
// Primitive<PrimitiveOp::unary>::Args is UnaryArgs, and run(backend, args) calls backend.unary(args).
template <PrimitiveOp op>
struct Primitive;
#define X(name, ArgsStruct)                                                     \
  template <>                                                                   \
  struct Primitive<PrimitiveOp::name> {                                         \
    using Args = ArgsStruct;                                                    \
    static void run(Backend& backend, const Args& args) { backend.name(args); } \
  };
#include "backends/primitives.def"
#undef X

// The dtype a backend is asked to support for a call: the args' dtype, or a cast's source dtype.
template <class Args>
DType primitive_dtype(const Args& args) {
  if constexpr (requires { args.dtype; }) {
    return args.dtype;
  } else {
    return args.src_dtype;
  }
}

// Throws, naming `what`, the primitive, the dtype and the backend, unless `backend` supports `op` on `dtype`.
void check_supported(const Backend& backend, PrimitiveOp op, DType dtype, const char* what);
// Throws the atelier::Error that stands for a std::bad_alloc in primitive `op` (see launch).
[[noreturn]] void throw_out_of_memory(const Backend& backend, PrimitiveOp op, const char* what, int64_t work);

// The one way the floors above call a primitive: the support check (the only one in the project), then the call,
// skipped when `work` (the number of output elements, or whatever the op computes) is 0. `what` is the name the
// caller knows the op by, for the error message.
//   launch<PrimitiveOp::unary>(backend_for(t.device()), "exp", out.numel(), UnaryArgs{...});
// A std::bad_alloc from inside a kernel (host scratch it could not get) becomes an atelier::Error naming the op,
// the primitive and the work size.
template <PrimitiveOp op>
void launch(Backend& backend, const char* what, int64_t work, const typename Primitive<op>::Args& args) {
  check_supported(backend, op, primitive_dtype(args), what);
  if (work <= 0) return;
  try {
    Primitive<op>::run(backend, args);
  } catch (const std::bad_alloc&) {
    throw_out_of_memory(backend, op, what, work);
  }
}

// The backend of a device. The CPU backend always exists; asking for an unavailable device throws, naming it.
Backend& backend_for(Device device);
// The CUDA backend if it was built, even when no device is present (nullptr in a CPU-only build).
Backend* cuda_backend_or_null();

}  // namespace atelier
